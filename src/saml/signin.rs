//! SAML 2.0 and WS-Federation as connection kinds (`crate::connection`):
//! [`SamlSignIn`] begins (AuthnRequest over HTTP-Redirect, or WS-Fed
//! `wa=wsignin1.0`) and completes (the ACS) a sign-in, and serves the
//! kind's own endpoints (`/.auth/saml/{name}/metadata` and `/slo`).
//! [`Runtime`] is the long-lived state (survives config reloads): each
//! connection's IdP description (a metadata URL's cache, or the file / the
//! manual keys loaded once), the SP signing key, and the assertion replay
//! cache.
//!
//! The binding to the browser is the seam's: `RelayState` (SAML) or `wctx`
//! (WS-Fed) names the pending login in the state cookie, and a SAML
//! response must answer that login's AuthnRequest (`InResponseTo` = the
//! pending `nonce`). WS-Fed has no `InResponseTo`; the `wctx` binding and
//! the one-use assertion ID stand in for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures_util::future::BoxFuture;
use http::{Method, Response, StatusCode};

use super::binding::{self, SpSigner};
use super::config::{Protocol, SamlSettings};
use super::flow::{FlowError, SKEW_SECS};
use super::metadata::{self, IdpMetadata};
use super::replay::ReplayCache;
use super::response::{validate_response_with, Assertion, Expect, Requested, SamlError};
use super::source::{MetadataCache, SourceError};
use super::{slo, wsfed};
use crate::config::ConnectionSettings;
use crate::connection::{
    email_trust, Begin, BeginRequest, CompleteRequest, EndpointRequest, LogoutAtProvider, Pending,
    ProviderLogout, Refusal, SignIn, SignInError, VerifiedIdentity,
};
use crate::http_client::HttpClient;
use crate::respond::{Body, GatewayError};
use crate::session::store::SessionStore;

/// Where a connection's IdP description comes from at run time.
enum IdpSource {
    /// `idp_metadata_file`, `metadata_file` or the manual keys: read once.
    Local(Arc<IdpMetadata>),
    /// `idp_metadata_url` / `metadata_url`: fetched, cached, refreshed in
    /// the background, the last good copy kept (`source::MetadataCache`).
    Remote(Arc<MetadataCache>),
}

/// One connection ready to serve, built from its settings.
pub struct Prepared {
    settings: Arc<SamlSettings>,
    idp: IdpSource,
    signer: Option<SpSigner>,
    /// The same key, for encrypted assertions.
    decrypter: Option<super::decrypt::SpDecrypter>,
    sp_cert_der: Option<Vec<u8>>,
    /// The background refresh of a metadata URL (`source::spawn_refresh`),
    /// stopped when this connection is replaced or removed.
    refresh_task: Option<tokio::task::AbortHandle>,
    /// Counts the metadata refetches made for an unknown signing key.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(task) = self.refresh_task.take() {
            task.abort();
        }
    }
}

/// What a background metadata refresh needs (set by [`Runtime::update`]).
#[derive(Clone)]
struct RefreshEnv {
    http: HttpClient,
    metrics: Arc<crate::metrics::Metrics>,
}

/// How [`SamlSignIn::once`] marks a one-time value.
#[derive(Clone, Copy)]
enum Once {
    Claim,
    Begin,
}

/// Reads what a connection's sign-in is built from on this machine (the
/// SP's key and certificate, an IdP metadata file or certificate) as a
/// sign-in would, without fetching anything: `realmgate check` names what
/// would make every sign-in of the connection a 503 (review 13, H3).
pub fn check_local_files(name: &str, settings: &Arc<SamlSettings>) -> Result<(), String> {
    Prepared::build(name, settings, None).map(|_| ())
}

impl Prepared {
    fn build(
        name: &str,
        settings: &Arc<SamlSettings>,
        env: Option<RefreshEnv>,
    ) -> Result<Prepared, String> {
        // The SP's own key and certificate first: a connection that cannot
        // be built is retried at each use, and must not start a metadata
        // fetch each time.
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let (signer, decrypter) = match &settings.sp_key_file {
            Some(p) => {
                let pem = zeroize::Zeroizing::new(read(p)?);
                let at = |e: String| format!("{}: {e}", p.display());
                (
                    Some(SpSigner::from_pem(&pem).map_err(at)?),
                    Some(super::decrypt::SpDecrypter::from_pem(&pem).map_err(at)?),
                )
            }
            None => (None, None),
        };
        let sp_cert_der = match &settings.sp_certificate_file {
            Some(p) => Some(
                pem_certificate_der(&read(p)?)
                    .ok_or_else(|| format!("{}: no PEM CERTIFICATE block", p.display()))?,
            ),
            None => None,
        };
        let mut refresh_task = None;
        let metrics = env.as_ref().map(|e| e.metrics.clone());
        let idp = match settings.load_local_idp()? {
            Some(md) => IdpSource::Local(Arc::new(md)),
            None => match &settings.idp {
                super::config::IdpSource::MetadataUrl(u) => {
                    let cache = Arc::new(MetadataCache::new(u.as_str(), settings.protocol));
                    if let Some(env) = env {
                        refresh_task = super::source::spawn_refresh(
                            &cache,
                            env.http,
                            env.metrics,
                            name.to_string(),
                        );
                    }
                    IdpSource::Remote(cache)
                }
                _ => return Err("the IdP is not described".into()),
            },
        };
        Ok(Prepared {
            settings: settings.clone(),
            idp,
            signer,
            decrypter,
            sp_cert_der,
            refresh_task,
            metrics,
        })
    }

    /// The IdP description to use now; `Err` (503) only when a metadata
    /// URL never answered with a usable document.
    async fn idp(&self, http: &HttpClient) -> Result<Arc<IdpMetadata>, SourceError> {
        match &self.idp {
            IdpSource::Local(md) => Ok(md.clone()),
            IdpSource::Remote(cache) => cache.get(http).await,
        }
    }
}

impl Prepared {
    /// Newer metadata after a response whose signature no certificate of
    /// `used` verified (see `MetadataCache::refetch_for_unknown_key`: at
    /// most one fetch a minute, shared by concurrent sign-ins); None for a
    /// metadata file or when nothing newer is to be had.
    async fn idp_after_unknown_key(
        &self,
        http: &HttpClient,
        connection: &str,
        used: &Arc<IdpMetadata>,
    ) -> Option<Arc<IdpMetadata>> {
        let IdpSource::Remote(cache) = &self.idp else {
            return None;
        };
        let started = std::time::Instant::now();
        let (newer, fetched) = cache.refetch_for_unknown_key(http, used).await;
        if let (Some(ok), Some(metrics)) = (fetched, &self.metrics) {
            metrics.record_idp_call(connection, "saml_metadata", started.elapsed(), ok);
        }
        newer
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn pem_certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let body = &pem[start.checked_add("-----BEGIN CERTIFICATE-----".len())?..];
    let end = body.find("-----END CERTIFICATE-----")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The SAML and WS-Fed state that survives config reloads.
#[derive(Default)]
pub struct Runtime {
    connections: Mutex<HashMap<String, Arc<Prepared>>>,
    replay: ReplayCache,
    env: Mutex<Option<RefreshEnv>>,
}

impl Runtime {
    /// Reconciles with a (re)loaded config: every SAML and WS-Fed
    /// connection is prepared now (a metadata URL starts its background
    /// refresh, so the first sign-in finds the metadata fetched); changed
    /// ones are rebuilt, removed ones dropped (their refresh stops).
    pub fn update(
        &self,
        settings: &crate::config::Settings,
        http: &HttpClient,
        metrics: &Arc<crate::metrics::Metrics>,
    ) {
        let env = RefreshEnv {
            http: http.clone(),
            metrics: metrics.clone(),
        };
        *self.env.lock().unwrap_or_else(|p| p.into_inner()) = Some(env);
        let names: Vec<&str> = settings
            .connections
            .iter()
            .filter(|c| c.saml().is_some())
            .map(|c| c.name.as_str())
            .collect();
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(&name.as_str()));
        for c in &settings.connections {
            if let Some(s) = c.saml() {
                if let Err(e) = self.prepared(&c.name, s) {
                    // Retried at the connection's next use (503 until then).
                    tracing::warn!(connection = %c.name, error = %e, "SAML connection cannot be prepared");
                }
            }
        }
    }

    /// The prepared connection `name` with these settings (rebuilt when a
    /// reload changed them; a failed build is retried at the next use).
    fn prepared(&self, name: &str, settings: &Arc<SamlSettings>) -> Result<Arc<Prepared>, String> {
        let mut map = match self.connections.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(p) = map.get(name) {
            if *p.settings == **settings {
                return Ok(p.clone());
            }
        }
        let env = self.env.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let p = Arc::new(Prepared::build(name, settings, env)?);
        map.insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// Checks a connection's metadata now (`realmgate test-connection`).
    pub async fn check(
        &self,
        conn: &ConnectionSettings,
        http: &HttpClient,
    ) -> Result<Arc<IdpMetadata>, String> {
        let settings = conn.saml().ok_or("not a SAML or WS-Fed connection")?;
        let p = self.prepared(&conn.name, settings)?;
        p.idp(http).await.map_err(|e| e.to_string())
    }
}

/// A SAML or WS-Fed connection's sign-in (`connection::SignIn`).
pub struct SamlSignIn<'a> {
    conn: &'a ConnectionSettings,
    settings: &'a SamlSettings,
    prepared: Result<Arc<Prepared>, String>,
    replay: &'a ReplayCache,
    http: &'a HttpClient,
    sessions: &'a Arc<dyn SessionStore>,
}

impl<'a> SamlSignIn<'a> {
    pub(crate) fn new(
        conn: &'a ConnectionSettings,
        settings: &'a Arc<SamlSettings>,
        runtime: &'a Runtime,
        http: &'a HttpClient,
        sessions: &'a Arc<dyn SessionStore>,
    ) -> SamlSignIn<'a> {
        SamlSignIn {
            conn,
            settings,
            prepared: runtime.prepared(&conn.name, settings),
            replay: &runtime.replay,
            http,
            sessions,
        }
    }

    fn prepared(&self) -> Result<&Arc<Prepared>, SignInError> {
        self.prepared.as_ref().map_err(|e| {
            SignInError::new(
                Refusal::ProviderUnavailable,
                format!("IdP description: {e}"),
            )
        })
    }

    async fn idp(&self) -> Result<(Arc<Prepared>, Arc<IdpMetadata>), SignInError> {
        let p = self.prepared()?.clone();
        let md = p
            .idp(self.http)
            .await
            .map_err(|e| SignInError::new(Refusal::ProviderUnavailable, e.to_string()))?;
        Ok((p, md))
    }

    /// `https://apps.contoso.com` from `https://apps.contoso.com/.auth/login/x/callback`.
    fn origin_of<'u>(&self, acs: &'u str) -> &'u str {
        acs.strip_suffix(&self.conn.callback_path()).unwrap_or(acs)
    }

    fn entity_id(&self, origin: &str) -> String {
        self.settings.entity_id(&self.conn.name, origin)
    }

    /// The identity of a validated assertion (SPEC 6.1: user id
    /// `<connection>:<subject>`; the email counts only with
    /// `trusted_email`; `sid` = the `SessionIndex`, which the IdP's
    /// LogoutRequest names).
    fn identity(&self, assertion: &Assertion) -> Result<VerifiedIdentity, SignInError> {
        let id = self
            .settings
            .attributes
            .identity(assertion)
            .map_err(|e| refusal(&FlowError::Identity(e)))?;
        let builder = VerifiedIdentity::builder(self.conn, &id.subject, None, &assertion.issuer)
            .ok_or_else(|| {
                SignInError::new(
                    Refusal::MissingUserId,
                    "empty subject, or one with control characters",
                )
            })?;
        let email = id.email.as_deref();
        Ok(builder
            .sid(id.session_index.as_deref())
            .email(email, email_trust(self.conn, email.is_some(), None, false))
            .name(id.name.as_deref())
            .preferred_username(id.username.clone())
            .groups(id.groups.clone())
            .ends_by(assertion.session_not_on_or_after)
            .saml_name_id(
                saml_name_id(assertion).filter(|_| self.settings.protocol == Protocol::Saml),
            )
            .build())
    }

    /// Each assertion ID once: in this process, then across replicas
    /// through the session store (Redis), failing closed when it cannot answer.
    async fn claim(&self, assertion: &Assertion, now: u64) -> Result<(), SignInError> {
        match self
            .once(Once::Claim, &assertion.id, assertion.valid_until, now)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(refusal(&FlowError::Response(SamlError::Replay))),
            Err(e) => Err(SignInError::new(
                Refusal::StoreUnavailable,
                format!("assertion replay check: {e}"),
            )),
        }
    }

    /// Ends the sessions a verified LogoutRequest names: (how many, whether
    /// some may live on: `PartialLogout`).
    async fn end_for_logout_request(
        &self,
        req: &EndpointRequest<'_>,
        lr: &slo::LogoutRequest,
    ) -> Result<(u64, bool), crate::session::store::StoreError> {
        let mut ended = 0u64;
        // Without SessionIndex the user's sessions are found by who they
        // are. The front-channel request comes through the user's browser
        // (its cookie is sent on this top-level navigation or form post):
        // its own session ends when this connection made it for this very
        // NameID. Sessions in the user's other browsers are found only
        // under `<connection>:<NameID>`, the user id unless
        // `attributes.user_id` is mapped: then ids are that attribute's
        // values, `<connection>:<NameID>` names none of this user's
        // sessions and may name another user's, so it is not used.
        let mut partial = false;
        if lr.session_indexes.is_empty() {
            if let Some(id) = &req.session_id {
                let session = self.sessions.get(id).await?;
                let own = session.is_some_and(|s| {
                    s.connection == self.conn.name
                        && s.saml_name_id
                            .as_deref()
                            .is_some_and(|n| n.value == lr.name_id)
                });
                if own {
                    self.sessions.delete(id).await?;
                    ended = ended.saturating_add(1);
                }
            }
            if !self.settings.attributes.maps_user_id() {
                if let Some(user) = crate::session::model::user_id_for(self.conn, &lr.name_id, None)
                {
                    ended = ended
                        .saturating_add(self.sessions.revoke_user(&self.conn.name, &user).await?);
                }
            }
            // Nothing matched: the user may have no session here, or
            // sessions kept under an attribute's id (attributes.user_id, or
            // the default objectidentifier) that neither rule can reach.
            // Success would tell the IdP they ended; PartialLogout (core
            // 3.7.3.2) says some may live on.
            partial = ended == 0;
        }
        for index in &lr.session_indexes {
            ended = ended.saturating_add(self.sessions.revoke_sid(&self.conn.name, index).await?);
        }
        Ok((ended, partial))
    }

    /// The replay check: true the first time `key` is offered before
    /// `until`, in this process and then across replicas; Err when the
    /// shared store cannot answer. `Once::Claim` for assertions (used at
    /// once); `Once::Begin` for an action that may fail half-way (a
    /// LogoutRequest): also true when an earlier attempt never finished,
    /// and the caller forgets `key` in this process when it fails and marks
    /// it done in the store when it succeeds.
    async fn once(
        &self,
        how: Once,
        key: &str,
        until: u64,
        now: u64,
    ) -> Result<bool, crate::session::store::StoreError> {
        if !self.replay.first_use(key, until, now) {
            return Ok(false);
        }
        let ttl = std::time::Duration::from_secs(until.saturating_sub(now).max(1));
        let shared = match how {
            Once::Claim => self.sessions.claim_once(&self.conn.name, key, ttl).await?,
            Once::Begin => self.sessions.begin_once(&self.conn.name, key, ttl).await?,
        };
        Ok(shared.unwrap_or(true))
    }

    async fn complete_saml(
        &self,
        req: &CompleteRequest<'_>,
    ) -> Result<VerifiedIdentity, SignInError> {
        let (p, md) = self.idp().await?;
        let Some(b64) = crate::auth::form::form_get(req.params, "SAMLResponse") else {
            return Err(SignInError::new(Refusal::NoCode, "no single SAMLResponse"));
        };
        let raw = binding::decode_post(b64).map_err(|e| refusal(&FlowError::Binding(e)))?;
        let acs = req.pending.redirect_uri.as_str();
        let entity = self.entity_id(self.origin_of(acs));
        // A pending login made by begin answers at the ACS only (not one
        // bound by an SP-initiated logout, whose nonce is a LogoutRequest ID).
        if !acs.ends_with(&self.conn.callback_path()) {
            return Err(SignInError::new(
                Refusal::ConnectionMismatch,
                "the pending login is not a sign-in",
            ));
        }
        // The one request this browser started here (an empty nonce is
        // never an answer); none when unsolicited (IdP-initiated), which the
        // seam lets through only when `unsolicited` said so.
        if req.unsolicited && !self.settings.allow_idp_initiated {
            return Err(not_allowed(&self.conn.name));
        }
        let ids: Vec<String> = [req.pending.nonce.clone()]
            .into_iter()
            .filter(|n| !n.is_empty() && !req.unsolicited)
            .collect();
        let check = |md: &IdpMetadata| {
            let expect = Expect {
                idp_entity_id: &md.entity_id,
                sp_entity_id: &entity,
                acs_url: acs,
                requested: Requested {
                    ids: &ids,
                    // A pending SP-initiated sign-in must be answered by its
                    // response; only an unsolicited callback may answer none.
                    allow_idp_initiated: req.unsolicited,
                },
                recipient_required: true,
                signed: p.settings.require_signed,
                now: req.now,
                skew: SKEW_SECS,
            };
            validate_response_with(&raw, &md.trust, &expect, p.decrypter.as_ref())
        };
        let assertion = self
            .with_rollover(&p, &md, check)
            .await
            .map_err(|e| self.assertion_refusal(req, e))?;
        let identity = self.identity(&assertion)?;
        self.claim(&assertion, req.now).await?;
        Ok(identity)
    }

    async fn complete_wsfed(
        &self,
        req: &CompleteRequest<'_>,
    ) -> Result<VerifiedIdentity, SignInError> {
        let (p, md) = self.idp().await?;
        if crate::auth::form::form_get(req.params, "wa") != Some("wsignin1.0") {
            return Err(SignInError::new(Refusal::NoCode, "wa is not wsignin1.0"));
        }
        let Some(wresult) = crate::auth::form::form_get(req.params, "wresult") else {
            return Err(SignInError::new(Refusal::NoCode, "no single wresult"));
        };
        let acs = req.pending.redirect_uri.as_str();
        let realm = self.entity_id(self.origin_of(acs));
        let check = |md: &IdpMetadata| {
            let expect = Expect {
                idp_entity_id: &md.entity_id,
                sp_entity_id: &realm,
                acs_url: acs,
                requested: Requested {
                    ids: &[],
                    // No InResponseTo in WS-Fed: the answer is bound by `wctx`
                    // (the seam checked it names this browser's pending login).
                    allow_idp_initiated: true,
                },
                recipient_required: false,
                signed: p.settings.require_signed,
                now: req.now,
                skew: SKEW_SECS,
            };
            wsfed::validate_wresult(wresult, &md.trust, &expect)
        };
        let assertion = self
            .with_rollover(&p, &md, check)
            .await
            .map_err(|e| self.assertion_refusal(req, e))?;
        let identity = self.identity(&assertion)?;
        self.claim(&assertion, req.now).await?;
        Ok(identity)
    }
}

impl SamlSignIn<'_> {
    /// Runs `check` with the cached metadata; when it fails only because
    /// no pinned certificate verified the signature
    /// ([`SamlError::UnknownKey`]), once more with newer metadata if there
    /// is any (a refetch, rate-limited: the IdP may have rolled over to a
    /// key published after our last fetch). The second verdict is final:
    /// nothing that failed is accepted on the old trust.
    async fn with_rollover<T>(
        &self,
        p: &Prepared,
        md: &Arc<IdpMetadata>,
        check: impl Fn(&IdpMetadata) -> Result<T, SamlError>,
    ) -> Result<T, SamlError> {
        match check(md) {
            Err(SamlError::UnknownKey(e)) => {
                match p
                    .idp_after_unknown_key(self.http, &self.conn.name, md)
                    .await
                {
                    Some(newer) => check(&newer),
                    None => Err(SamlError::UnknownKey(e)),
                }
            }
            other => other,
        }
    }

    /// The refusal for an assertion that failed a check. One outside its
    /// validity window gets a page saying so: with a real IdP the cause is
    /// nearly always a clock off by more than the allowed skew, which the
    /// generic "could not be verified" page gives nobody a way to find.
    fn assertion_refusal(&self, req: &CompleteRequest<'_>, e: SamlError) -> SignInError {
        let expired = matches!(e, SamlError::Expired);
        let err = refusal(&FlowError::Response(e));
        if !expired {
            return err;
        }
        let status = err.reason.status();
        let retry = format!("/.auth/login/{}", self.conn.name);
        let message = format!(
            "The sign-in response from your identity provider is outside its validity time, so you were not signed in. Usually the identity provider's clock and this site's clock differ by more than {SKEW_SECS} seconds. Try again; if it keeps happening, ask your IT department to check the clocks (NTP) of the identity provider and of this site."
        );
        let html = req.pages.error(
            status.as_u16(),
            "Sign-in failed",
            &message,
            Some(("Try again", &retry)),
        );
        err.with_page(crate::connection::RefusalPage {
            status,
            html,
            pending: None,
        })
    }
}

/// The NameID a SAML 2.0 session keeps for SP-initiated logout (none
/// without a NameID, and none for WS-Fed, which has no LogoutRequest).
fn saml_name_id(a: &Assertion) -> Option<crate::session::model::SamlNameId> {
    (!a.name_id.is_empty()).then(|| crate::session::model::SamlNameId {
        value: a.name_id.clone(),
        format: a.name_id_format.clone(),
        name_qualifier: a.name_qualifier.clone(),
        sp_name_qualifier: a.sp_name_qualifier.clone(),
    })
}

/// `{origin}/.auth/saml/{name}/slo`.
fn slo_url(origin: &str, name: &str) -> String {
    format!("{}/.auth/saml/{name}/slo", origin.trim_end_matches('/'))
}

/// The refusal of an IdP-initiated response at a connection that does not
/// accept them: says so and names the key.
fn not_allowed(name: &str) -> SignInError {
    SignInError::new(
        Refusal::Unsolicited,
        format!("saml idp_initiated: an unsolicited (IdP-initiated) SAML response is refused at connection {name:?}; set allow_idp_initiated = true on it to accept them"),
    )
}

/// True when a (not yet verified) SAML response names a request it
/// answers (`InResponseTo` anywhere). Used only to choose the refusal of a
/// callback without a pending login: such a response answers a sign-in
/// this browser no longer holds (expired), not an IdP-initiated one.
/// Nothing is accepted on this reading; `complete` verifies everything.
fn names_a_request(b64: &str) -> bool {
    let Ok(raw) = binding::decode_post(b64) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&raw) else {
        return false;
    };
    let Ok(doc) = super::xml::parse_strict(text) else {
        return false;
    };
    let named = doc
        .descendants()
        .any(|n| n.attribute("InResponseTo").is_some());
    named
}

/// The refusal for a SAML check that failed: every one is a 4xx (SPEC 9).
fn refusal(e: &FlowError) -> SignInError {
    let reason = match e {
        // Not an answer to the request this browser started.
        FlowError::Response(SamlError::InResponseTo | SamlError::IdpInitiated) => {
            Refusal::ConnectionMismatch
        }
        FlowError::Response(SamlError::Replay) => Refusal::ReplayedState,
        FlowError::Response(SamlError::Status(_)) => Refusal::ProviderError,
        FlowError::Identity(_) => Refusal::MissingUserId,
        FlowError::Binding(_) | FlowError::Response(_) => Refusal::Assertion,
    };
    SignInError::new(reason, format!("saml {}: {e}", e.label()))
}

impl SignIn for SamlSignIn<'_> {
    fn begin<'b>(&'b self, req: BeginRequest<'b>) -> BoxFuture<'b, Result<Begin, SignInError>> {
        Box::pin(async move {
            let (p, md) = self.idp().await?;
            let acs = req.redirect_uri;
            let entity = self.entity_id(self.origin_of(acs));
            let state = binding::new_request_id();
            match self.settings.protocol {
                Protocol::Saml => {
                    let id = binding::new_request_id();
                    let xml = binding::authn_request(
                        &id,
                        crate::saml::unix_now(),
                        &md.sso_url,
                        acs,
                        &entity,
                    );
                    // RelayState carries the state only; the target stays
                    // in the cookie.
                    let url = binding::redirect_url(
                        &md.sso_url,
                        "SAMLRequest",
                        &xml,
                        Some(&state),
                        p.signer.as_ref(),
                    )
                    .map_err(|e| SignInError::new(Refusal::ProviderUnavailable, e))?;
                    Ok(Begin::Redirect {
                        url,
                        pending: Pending {
                            state,
                            nonce: id,
                            pkce_verifier: String::new(),
                        },
                    })
                }
                Protocol::WsFed => Ok(Begin::Redirect {
                    url: wsfed::signin_url(&md.sso_url, &entity, acs, &state),
                    pending: Pending {
                        state,
                        nonce: String::new(),
                        pkce_verifier: String::new(),
                    },
                }),
            }
        })
    }

    fn state_param(&self) -> &'static str {
        match self.settings.protocol {
            Protocol::Saml => "RelayState",
            Protocol::WsFed => "wctx",
        }
    }

    /// SAML IdP-initiated sign-in: a `SAMLResponse` that names no request,
    /// at a connection with `allow_idp_initiated = true`; `RelayState` is
    /// then the return URL (checked by the seam). Refused plainly, naming
    /// the key, when the connection does not allow it.
    fn unsolicited(
        &self,
        params: &[(String, String)],
    ) -> Option<Result<Option<String>, SignInError>> {
        if self.settings.protocol != Protocol::Saml {
            return None;
        }
        let b64 = crate::auth::form::form_get(params, "SAMLResponse")?;
        if names_a_request(b64) {
            return None;
        }
        if !self.settings.allow_idp_initiated {
            return Some(Err(not_allowed(&self.conn.name)));
        }
        Some(Ok(
            crate::auth::form::form_get(params, "RelayState").map(str::to_string)
        ))
    }

    fn complete<'b>(
        &'b self,
        req: CompleteRequest<'b>,
    ) -> BoxFuture<'b, Result<VerifiedIdentity, SignInError>> {
        Box::pin(async move {
            match self.settings.protocol {
                Protocol::Saml => self.complete_saml(&req).await,
                Protocol::WsFed => self.complete_wsfed(&req).await,
            }
        })
    }

    /// SP-initiated single logout: when the IdP has a SingleLogoutService
    /// and the session kept its NameID, a LogoutRequest (NameID with its
    /// qualifiers, the SessionIndex) over HTTP-Redirect, signed with
    /// `sp_key_file` when set. Its ID must come back as the
    /// LogoutResponse's `InResponseTo`, bound to this browser by the seam.
    fn provider_logout<'b>(
        &'b self,
        req: LogoutAtProvider<'b>,
    ) -> BoxFuture<'b, Option<ProviderLogout>> {
        Box::pin(async move {
            if self.settings.protocol != Protocol::Saml {
                return None;
            }
            let name_id = req.session.saml_name_id.as_deref()?;
            let (p, md) = match self.idp().await {
                Ok(x) => x,
                Err(e) => {
                    // The session here has ended; the IdP's stays.
                    tracing::warn!(connection = %self.conn.name, error = %e.detail, "SAML single logout not sent: IdP metadata unavailable");
                    return None;
                }
            };
            let idp_slo = md.slo_url.as_deref()?;
            let id = binding::new_request_id();
            let state = binding::new_request_id();
            let xml = binding::logout_request(
                &id,
                crate::saml::unix_now(),
                idp_slo,
                &self.entity_id(req.origin),
                name_id,
                req.session.sid.as_deref(),
            );
            let url = match binding::redirect_url(
                idp_slo,
                "SAMLRequest",
                &xml,
                Some(&state),
                p.signer.as_ref(),
            ) {
                Ok(u) => u,
                Err(e) => {
                    tracing::error!(connection = %self.conn.name, error = %e, "cannot build the SAML LogoutRequest");
                    return None;
                }
            };
            Some(ProviderLogout {
                url,
                pending: Pending {
                    state,
                    nonce: id,
                    pkce_verifier: String::new(),
                },
                answer_uri: slo_url(req.origin, &self.conn.name),
            })
        })
    }

    fn endpoint<'b>(
        &'b self,
        path: &'b str,
        req: EndpointRequest<'b>,
    ) -> Option<BoxFuture<'b, Result<Response<Body>, GatewayError>>> {
        if self.settings.protocol != Protocol::Saml {
            return None;
        }
        match (path, &req.parts.method) {
            ("metadata", &Method::GET | &Method::HEAD) => {
                Some(Box::pin(async move { self.sp_metadata(&req) }))
            }
            ("slo", &Method::GET | &Method::POST) => Some(Box::pin(self.slo(req))),
            ("metadata", _) => Some(Box::pin(async {
                Err(GatewayError::MethodNotAllowed("GET, HEAD"))
            })),
            ("slo", _) => Some(Box::pin(async {
                Err(GatewayError::MethodNotAllowed("GET, POST"))
            })),
            _ => None,
        }
    }
}

impl SamlSignIn<'_> {
    /// The IdP's LogoutResponse (verified: signature, Issuer, Destination)
    /// must answer the LogoutRequest this browser was sent with: the
    /// pending logout named by its RelayState, of this connection, whose
    /// ID is the response's `InResponseTo`. Then the post-logout target
    /// (the signed-out page unless `/.auth/logout` was given one).
    fn logout_answered(
        &self,
        req: &EndpointRequest<'_>,
        answer: &slo::LogoutResponse,
        slo_url: &str,
    ) -> Result<Response<Body>, GatewayError> {
        let bound = req.pending.filter(|p| {
            p.connection == self.conn.name
                && p.redirect_uri == slo_url
                && !p.nonce.is_empty()
                && answer.in_response_to.as_deref() == Some(p.nonce.as_str())
        });
        let Some(pending) = bound else {
            tracing::warn!(connection = %self.conn.name, "SAML LogoutResponse refused: it answers no logout this browser started");
            return Err(GatewayError::BadRequest(
                "This sign-out answer does not belong to a sign-out started in this browser. You are signed out of this application.",
            ));
        };
        if !answer.success {
            // Signed out here; the IdP says it could not end every session.
            tracing::warn!(connection = %self.conn.name, "SAML LogoutResponse: the IdP did not complete the logout");
            return Ok(crate::respond::html(
                StatusCode::OK,
                req.pages.error(
                    200,
                    "You are signed out of this application",
                    "Your identity provider could not end your sign-in everywhere. Close your browser to end it.",
                    None,
                ),
            ));
        }
        crate::respond::redirect(&pending.target, [])
    }

    /// `GET /.auth/saml/{name}/metadata`: what to give the IdP admin.
    fn sp_metadata(&self, req: &EndpointRequest<'_>) -> Result<Response<Body>, GatewayError> {
        let p = self
            .prepared()
            .map_err(|_| GatewayError::ProviderUnavailable)?;
        let origin = req.origin;
        let name = &self.conn.name;
        let xml = metadata::sp_metadata(
            &self.entity_id(origin),
            &SamlSettings::acs_url(name, origin),
            &format!("{origin}/.auth/saml/{name}/slo"),
            p.sp_cert_der.as_deref(),
        );
        let mut resp = Response::new(crate::respond::full(xml));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/samlmetadata+xml"),
        );
        Ok(resp)
    }

    /// `GET|POST /.auth/saml/{name}/slo`: the IdP's LogoutRequest ends the
    /// sessions it names (by `SessionIndex`, else every session of the
    /// NameID at this connection) and is answered with a LogoutResponse;
    /// a LogoutResponse ends at the signed-out page.
    async fn slo(&self, req: EndpointRequest<'_>) -> Result<Response<Body>, GatewayError> {
        let (p, md) = self.idp().await.map_err(|e| {
            tracing::warn!(connection = %self.conn.name, error = %e, "SAML single logout: IdP unavailable");
            GatewayError::ProviderUnavailable
        })?;
        let origin = req.origin;
        let slo_url = slo_url(origin, &self.conn.name);
        let now = crate::saml::unix_now();
        let bad = |e: SamlError| {
            tracing::warn!(connection = %self.conn.name, error = %e, "SAML single logout refused");
            GatewayError::BadRequest("The single logout message could not be verified.")
        };
        // The message, whether its binding was verified (a redirect's query
        // signature), and the RelayState.
        let (params, xml, binding_verified) = if req.parts.method == Method::GET {
            let query = req.parts.uri.query().unwrap_or("");
            let xml = slo::verify_redirect(query, &md.trust).map_err(bad)?;
            (crate::auth::form::form_pairs(query.as_bytes()), xml, true)
        } else {
            let params = crate::auth::form::form_pairs(req.body);
            let b64 = crate::auth::form::form_get(&params, "SAMLRequest")
                .or_else(|| crate::auth::form::form_get(&params, "SAMLResponse"))
                .ok_or(GatewayError::BadRequest(
                    "A single logout message (SAMLRequest or SAMLResponse) is missing.",
                ))?;
            let xml = binding::decode_post(b64).map_err(|_| {
                GatewayError::BadRequest("The single logout message is not valid base64.")
            })?;
            (params, xml, false)
        };
        let is_request = crate::auth::form::form_get(&params, "SAMLRequest").is_some();
        if !is_request {
            let answer = slo::parse_logout_response(
                &xml,
                &md.trust,
                binding_verified,
                &md.entity_id,
                &slo_url,
            )
            .map_err(bad)?;
            return self.logout_answered(&req, &answer, &slo_url);
        }
        let lr = slo::parse_logout_request(
            &xml,
            &md.trust,
            binding_verified,
            &md.entity_id,
            &slo_url,
            now,
        )
        .map_err(bad)?;
        // Each LogoutRequest once (the same replay cache as assertions,
        // shared through Redis; its own key space), marked done only once
        // its sessions have ended: a request the store failed half-way (a
        // 503) is taken again when the browser retries it.
        let key = format!("slo:{}", lr.id);
        match self.once(Once::Begin, &key, lr.valid_until, now).await {
            Ok(true) => {}
            Ok(false) => return Err(bad(SamlError::Replay)),
            Err(e) => {
                self.replay.forget(&key);
                tracing::error!(error = %e, "session store failed during the SAML logout replay check");
                return Err(GatewayError::StoreUnavailable);
            }
        }
        let (ended, partial) = match self.end_for_logout_request(&req, &lr).await {
            Ok(done) => done,
            Err(e) => {
                self.replay.forget(&key);
                tracing::error!(error = %e, "session store failed during SAML single logout");
                return Err(GatewayError::StoreUnavailable);
            }
        };
        let ttl = std::time::Duration::from_secs(lr.valid_until.saturating_sub(now).max(1));
        if let Err(e) = self.sessions.finish_once(&self.conn.name, &key, ttl).await {
            tracing::warn!(error = %e, "SAML single logout done, but not marked done in the session store: a replay would end the sessions again");
        }
        tracing::info!(connection = %self.conn.name, sessions = ended, "SAML single logout");
        // The IdP's logout request is a front-channel logout (it comes
        // through the browser), like WS-Fed's `wsignoutcleanup1.0`.
        req.audit.record(crate::audit::Event::FrontchannelLogout {
            connection: &self.conn.name,
            ended,
        });
        let Some(idp_slo) = md.slo_url.as_deref() else {
            // Never "signed out" when nothing ended: the browser may still
            // hold a session here.
            let page = if partial {
                req.pages.error(
                    200,
                    "Sign-out not confirmed",
                    "Your identity provider signed you out, but no session of yours was found to end here. If this application still shows you signed in, sign out of it too.",
                    Some(("Sign out", "/.auth/logout")),
                )
            } else {
                req.pages.error(
                    200,
                    "You are signed out",
                    "You have been signed out of this application.",
                    None,
                )
            };
            return Ok(crate::respond::html(StatusCode::OK, page));
        };
        let answer = slo::logout_response(
            &binding::new_request_id(),
            now,
            idp_slo,
            &lr.id,
            &self.entity_id(origin),
            partial,
        );
        let relay = crate::auth::form::form_get(&params, "RelayState");
        let url = binding::redirect_url(idp_slo, "SAMLResponse", &answer, relay, p.signer.as_ref())
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the SAML LogoutResponse");
                GatewayError::Internal
            })?;
        crate::respond::redirect(&url, [])
    }
}

#[cfg(test)]
mod tests {
    use super::pem_certificate_der;
    use crate::config::ConnectionKind;

    fn config(connections: &str) -> Result<crate::config::Settings, crate::config::ConfigErrors> {
        crate::config::load_str(&format!(
            r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
{connections}
[[route]]
name = "apps"
hosts = ["apps.contoso.com"]
upstream = "http://127.0.0.1:9000"
"#
        ))
    }

    const SAML: &str = r#"
[[connection]]
name = "fabrikam"
type = "saml"
idp_metadata_url = "https://adfs.fabrikam.com/FederationMetadata/2007-06/FederationMetadata.xml"
home_realm_domains = ["fabrikam.com"]

[[connection]]
name = "northwind"
type = "wsfed"
metadata_url = "https://adfs.northwind.com/FederationMetadata/2007-06/FederationMetadata.xml"
realm = "urn:realmgate:apps"
"#;

    #[test]
    fn allow_idp_initiated_on_a_wsfed_connection_is_refused_by_name() {
        for value in ["true", "false"] {
            let e = config(&SAML.replace(
                "realm = \"urn:realmgate:apps\"",
                &format!("realm = \"urn:realmgate:apps\"\nallow_idp_initiated = {value}"),
            ))
            .expect_err("refused");
            let text = e.to_string();
            assert!(
                text.contains("connection[1].allow_idp_initiated")
                    && text.contains("not supported on wsfed")
                    && text.contains("/.auth/login/<name>"),
                "{text}"
            );
        }
    }

    #[test]
    fn saml_and_wsfed_connections_are_kinds_and_check_prints_what_to_register() {
        let settings = config(SAML).expect("a SAML and a WS-Fed connection are served");
        let kinds: Vec<_> = settings.connections.iter().map(|c| &c.kind).collect();
        assert!(matches!(kinds[0], ConnectionKind::Saml(_)));
        assert!(matches!(kinds[1], ConnectionKind::WsFed(_)));
        assert!(settings.connections.iter().all(|c| !c.is_oidc()));
        let summary = crate::config::summary(&settings);
        assert!(
            summary.contains("https://apps.contoso.com/.auth/saml/fabrikam")
                && summary.contains("https://apps.contoso.com/.auth/login/fabrikam/callback")
                && summary.contains("urn:realmgate:apps")
                && summary.contains("https://apps.contoso.com/.auth/login/northwind/callback"),
            "{summary}"
        );
        assert!(!summary.contains("openid-configuration"), "{summary}");
    }

    #[test]
    fn the_idps_session_bound_ends_the_session_and_idp_initiated_can_be_allowed() {
        use crate::connection::VerifiedIdentity;
        use crate::session::model::{Session, SessionTerms};
        let settings = config(SAML).expect("valid");
        let conn = &settings.connections[0];
        let terms = || SessionTerms {
            created_at: 1_000,
            expires_at: 9_000,
            keep_access_token: false,
            keep_refresh_token: false,
        };
        let identity = |ends_by| {
            VerifiedIdentity::builder(conn, "u-123", None, "https://idp/")
                .expect("subject")
                .ends_by(ends_by)
                .build()
        };
        assert_eq!(
            Session::new(identity(Some(5_000)), terms()).expires_at,
            5_000
        );
        assert_eq!(
            Session::new(identity(Some(20_000)), terms()).expires_at,
            9_000
        );
        assert_eq!(Session::new(identity(None), terms()).expires_at, 9_000);
        assert_eq!(
            Session::new(identity(None), terms()).user_id,
            "fabrikam:u-123"
        );

        let allowed = config(&SAML.replace(
            "home_realm_domains = [\"fabrikam.com\"]",
            "home_realm_domains = [\"fabrikam.com\"]\nallow_idp_initiated = true",
        ))
        .expect("IdP-initiated sign-in is served when allowed");
        assert!(allowed.connections[0]
            .saml()
            .is_some_and(|s| s.allow_idp_initiated));
    }

    #[test]
    fn a_saml_connection_needs_no_client_id_and_refuses_oidc_keys() {
        let problems = config(&format!("{SAML}client_id = \"x\"\n"))
            .expect_err("client_id on a WS-Fed connection")
            .to_string();
        assert!(problems.contains("client_id"), "{problems}");
    }

    #[test]
    fn an_unsolicited_response_is_told_from_an_expired_one_and_the_refusal_names_the_key() {
        use base64::Engine as _;
        let enc = |xml: &str| base64::engine::general_purpose::STANDARD.encode(xml);
        let solicited = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" InResponseTo="_q"/>"#;
        let confirmed = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r"><x:SubjectConfirmationData xmlns:x="urn:x" InResponseTo="_q"/></samlp:Response>"#;
        let unsolicited =
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r"/>"#;
        assert!(super::names_a_request(&enc(solicited)));
        assert!(super::names_a_request(&enc(confirmed)));
        assert!(!super::names_a_request(&enc(unsolicited)));
        // Undecodable or hostile: names nothing (and `complete` refuses it).
        for junk in [
            "!!",
            "",
            &enc("<!DOCTYPE x [<!ENTITY a 'b'>]><x InResponseTo='&a;'/>"),
        ] {
            assert!(!super::names_a_request(junk), "{junk}");
        }
        let refusal = super::not_allowed("fabrikam");
        assert_eq!(refusal.reason, crate::connection::Refusal::Unsolicited);
        assert_eq!(refusal.reason.status(), http::StatusCode::BAD_REQUEST);
        assert!(
            refusal.detail.contains("allow_idp_initiated") && refusal.detail.contains("fabrikam"),
            "{}",
            refusal.detail
        );
    }

    #[test]
    fn pem_certificate_is_read_and_garbage_is_not() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAQID\nBA==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificate_der(pem), Some(vec![1, 2, 3, 4]));
        assert_eq!(
            pem_certificate_der("-----BEGIN CERTIFICATE-----\n!!\n"),
            None
        );
        assert_eq!(pem_certificate_der("nothing"), None);
    }

    /// A connection whose SP key cannot be read is retried at every use;
    /// no attempt may start a fetch of the IdP's metadata (a request loop
    /// against a misconfigured connection must not become fetches).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_cannot_be_built_fetches_no_metadata() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/metadata", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(sock);
            }
        });
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("sp.key");
        let cert = dir.path().join("sp.crt");
        std::fs::write(&key, "not a key").expect("write");
        std::fs::write(&cert, "not a certificate").expect("write");
        let settings = config(&format!(
            r#"
[[connection]]
name = "fabrikam"
type = "saml"
idp_metadata_url = "{url}"
sp_key_file = "{}"
sp_certificate_file = "{}"
home_realm_domains = ["fabrikam.com"]
"#,
            key.display(),
            cert.display()
        ))
        .expect("config");
        let http = crate::http_client::HttpClient::new().expect("client");
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let runtime = super::Runtime::default();
        runtime.update(&settings, &http, &metrics);
        let saml = settings.connections[0].saml().expect("saml").clone();
        // Many attempts, on a runtime whose other thread could start a
        // spawned fetch before the failed build drops its cache.
        for _ in 0..500 {
            let e = runtime
                .prepared("fabrikam", &saml)
                .err()
                .expect("an unreadable SP key cannot be built");
            assert!(e.contains("sp.key"), "{e}");
            tokio::task::yield_now().await;
        }
        // Long enough for a spawned fetch to connect.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "no metadata fetch");
        server.abort();
    }
}
