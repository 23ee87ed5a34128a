//! OpenID Connect clients, one per connection: discovery and JWKS cached and
//! refreshed in the background, unknown `kid` -> at most one rate-limited
//! JWKS refresh, authorization requests (PKCE S256, state, nonce), code
//! exchange, ID token validation (SPEC 6), RP-initiated logout URL.
//!
//! Caching: a provider fetches discovery and JWKS when it is created (in the
//! background) and again every hour (with jitter); a failed refresh is logged,
//! counted (`record_idp_call`) and retried sooner, and the cached copy keeps
//! serving. If nothing was ever fetched, the first login fetches lazily; all
//! concurrent fetches of one document are collapsed into one (single-flight).
//! An unreachable provider without a cache gives [`OidcError::Unavailable`].

mod check;
mod flight;
pub mod id_token;
pub mod jwks;
pub mod metadata;
mod token;
mod userinfo;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{ConnectionKind, ConnectionSettings, Secret, Settings};
use crate::connection::credential::ClientCredential;
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use flight::Flight;
use id_token::{Expectations, NonceRule, Purpose};
use jwks::{KeySet, Selection};
use metadata::{IssuerRule, Metadata};

pub use check::test_connection;
/// What a refresh token grant answered (the ID token is optional there).
pub use token::Tokens as RefreshedTokens;
pub use userinfo::UserinfoError;

/// Background refresh period of discovery and JWKS (plus up to 10% jitter).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(3600);
/// After a failed background refresh, retry after this, doubling up to `REFRESH_INTERVAL / 6`.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// A token with an unknown `kid` triggers at most one JWKS refresh per this period.
pub const KID_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Logout token ids remembered per provider (until they expire) against replay.
const MAX_SEEN_JTIS: usize = 100_000;

/// Why an OIDC operation failed. Display texts never contain tokens or secrets.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery/JWKS/token endpoint unreachable or answering garbage: new logins get 503.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The ID token failed a check; the text names the check (e.g. "iss mismatch").
    #[error("invalid ID token: {0}")]
    InvalidToken(String),
    /// The token endpoint refused the code (invalid_grant, PKCE mismatch, ...).
    #[error("code exchange refused: {0}")]
    Exchange(String),
    /// RFC 9207 `iss` of the authorization response does not match.
    #[error("authorization response issuer mismatch")]
    IssuerMismatch,
}

/// What of a connection's settings a provider depends on; a reload that
/// changes none of it keeps the provider (and its caches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderConfig {
    pub name: String,
    pub kind: ConnectionKind,
    pub client_id: String,
    pub credential: Option<ClientCredential>,
    pub scopes: Vec<String>,
}

impl ProviderConfig {
    fn from_settings(c: &ConnectionSettings) -> ProviderConfig {
        ProviderConfig {
            name: c.name.clone(),
            kind: c.kind.clone(),
            client_id: c.client_id.clone(),
            credential: c.credential.clone(),
            scopes: c.scopes.clone(),
        }
    }

    fn discovery_url(&self) -> Option<String> {
        match &self.kind {
            ConnectionKind::Oidc(o) if o.endpoints.is_some() => None,
            _ => Some(discovery_url(&self.kind)),
        }
    }
}

fn discovery_url(kind: &ConnectionKind) -> String {
    let issuer = match kind {
        ConnectionKind::Entra(e) => format!(
            "{}/{}/v2.0",
            e.authority_host.as_str().trim_end_matches('/'),
            e.tenant
        ),
        ConnectionKind::Oidc(o) => o.issuer.as_str().trim_end_matches('/').to_string(),
        // Never built for LDAP (`Providers::update` skips them).
        ConnectionKind::Ldap(l) => l.urls.first().map(|u| u.to_string()).unwrap_or_default(),
        // Nor for SAML / WS-Fed (`Providers::update` keeps OIDC kinds only).
        ConnectionKind::Saml(_) | ConnectionKind::WsFed(_) => String::new(),
    };
    format!("{issuer}/.well-known/openid-configuration")
}

/// All providers; survives reloads (`update` reconciles with a new config).
#[derive(Clone)]
pub struct Providers {
    inner: Arc<ProvidersInner>,
}

struct ProvidersInner {
    http: HttpClient,
    metrics: Arc<Metrics>,
    map: RwLock<HashMap<String, Arc<Provider>>>,
}

impl Providers {
    /// Build clients for every connection; starts background refresh tasks (needs a tokio runtime).
    pub fn new(
        settings: &Settings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Providers, crate::http_client::SetupError> {
        let http = HttpClient::new()?;
        let providers = Providers {
            inner: Arc::new(ProvidersInner {
                http,
                metrics,
                map: RwLock::new(HashMap::new()),
            }),
        };
        providers.update(settings);
        Ok(providers)
    }

    /// Reconcile with a reloaded config (new/changed/removed connections).
    pub fn update(&self, settings: &Settings) {
        let mut next = HashMap::new();
        {
            let current = self.inner.map.read().unwrap_or_else(|p| p.into_inner());
            // LDAP, SAML and WS-Fed connections have no OpenID provider.
            for c in settings.connections.iter().filter(|c| c.is_oidc()) {
                let cfg = ProviderConfig::from_settings(c);
                let provider = match current.get(&c.name) {
                    Some(p) if p.cfg == cfg => p.clone(),
                    _ => Provider::start(cfg, self.inner.http.clone(), self.inner.metrics.clone()),
                };
                next.insert(c.name.clone(), provider);
            }
        }
        // Replaced and removed providers stop their refresh task when the last
        // login using them finishes (Drop).
        *self.inner.map.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    pub fn get(&self, connection: &str) -> Option<Arc<Provider>> {
        self.inner
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(connection)
            .cloned()
    }

    /// The shared HTTP client (for the caller's Graph calls).
    pub fn http_client(&self) -> &HttpClient {
        &self.inner.http
    }
}

/// One connection's client.
pub struct Provider {
    cfg: ProviderConfig,
    http: HttpClient,
    metrics: Arc<Metrics>,
    metadata: Flight<Metadata>,
    keys: Flight<KeySet>,
    key_generation: AtomicU64,
    last_kid_refresh: Mutex<Option<Instant>>,
    /// `jti` of accepted logout tokens -> their `exp`.
    seen_jtis: Mutex<HashMap<String, u64>>,
    /// App-only access tokens (client credentials grant) by scope, until
    /// shortly before they expire.
    app_tokens: Mutex<HashMap<String, (Secret, Instant)>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// A new authorization request: redirect the browser to `url`; keep the rest in the state cookie.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What the token endpoint answered.
#[derive(Clone)]
pub struct TokenSet {
    pub id_token: String,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSet([redacted])")
    }
}

/// A bearer access token that passed every check of SPEC 5.9.
#[derive(Debug, Clone)]
pub struct VerifiedAccessToken {
    inner: VerifiedIdToken,
}

impl VerifiedAccessToken {
    /// The token's claims, with the same accessors as an ID token's.
    pub fn identity(&self) -> &VerifiedIdToken {
        &self.inner
    }
    /// Delegated scopes (`scp`, space-separated in the token).
    pub fn scopes(&self) -> Vec<String> {
        self.inner
            .str_claim("scp")
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Application roles (`roles`).
    pub fn roles(&self) -> Vec<String> {
        match self.inner.claims.get("roles") {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A verified back-channel logout token: end the sessions with this `sid`
/// (or, without one, every session of `sub`) at this issuer.
#[derive(Debug, Clone)]
pub struct LogoutToken {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub iss: String,
    /// The token's `jti`, and how long it must be remembered (until `exp`
    /// plus leeway): the caller claims it once across replicas too.
    pub jti: String,
    pub remember_for: std::time::Duration,
    /// Entra's object id of the user, when the token carries one (the
    /// session's `user_id` on Entra connections).
    pub oid: Option<String>,
}

/// Claims the accessors of [`VerifiedIdToken`] cover; everything else is "extra".
const KNOWN_CLAIMS: &[&str] = &[
    "sub",
    "oid",
    "tid",
    "iss",
    "sid",
    "email",
    "email_verified",
    "xms_edov",
    "name",
    "preferred_username",
    "groups",
    "_claim_names",
    "_claim_sources",
    "hasgroups",
    "exp",
    "aud",
    "azp",
    "iat",
    "nbf",
    "nonce",
    "auth_time",
    "at_hash",
    "c_hash",
    "ver",
    "uti",
    "rh",
    "aio",
];

/// An ID token that passed every check of SPEC 6. Only [`Provider`] can make one.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    claims: Map<String, Value>,
}

impl VerifiedIdToken {
    fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn bool_claim(&self, name: &str) -> Option<bool> {
        match self.claims.get(name)? {
            Value::Bool(b) => Some(*b),
            // Some providers send "true"/"false" strings.
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    pub fn sub(&self) -> &str {
        // Presence and non-emptiness are checked by `check_claims`.
        self.str_claim("sub").unwrap_or_default()
    }
    pub fn oid(&self) -> Option<&str> {
        self.str_claim("oid")
    }
    pub fn tid(&self) -> Option<&str> {
        self.str_claim("tid")
    }
    pub fn iss(&self) -> &str {
        self.str_claim("iss").unwrap_or_default()
    }
    pub fn sid(&self) -> Option<&str> {
        self.str_claim("sid")
    }
    pub fn email(&self) -> Option<&str> {
        self.str_claim("email")
    }
    pub fn email_verified(&self) -> Option<bool> {
        self.bool_claim("email_verified")
    }
    pub fn xms_edov(&self) -> Option<bool> {
        self.bool_claim("xms_edov")
    }
    pub fn name(&self) -> Option<&str> {
        self.str_claim("name")
    }
    pub fn preferred_username(&self) -> Option<&str> {
        self.str_claim("preferred_username")
    }
    /// The `groups` claim (ids), empty when absent.
    pub fn groups(&self) -> Vec<String> {
        match self.claims.get("groups") {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
    /// `_claim_names.groups` or `hasgroups` present.
    pub fn has_group_overage(&self) -> bool {
        crate::connection::entra::signals_group_overage(&self.claims)
    }
    /// Every claim not listed above (for `extended_profile`).
    pub fn extra_claims(&self) -> serde_json::Map<String, serde_json::Value> {
        self.claims
            .iter()
            .filter(|(k, _)| !KNOWN_CLAIMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    /// `exp` (Unix seconds).
    pub fn exp(&self) -> Option<u64> {
        // Checked by `check_claims` already; read with the same rule.
        let v = self.claims.get("exp")?;
        id_token::numeric_date("exp", v).ok()
    }
    /// Every claim of the token.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 256 random bits, base64url (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Authorization request parameters realmgate sets itself; `extra` cannot
/// override them. (`response_mode` is handled apart: `query` or `form_post`
/// may be chosen, the callback serves both.)
const PROTOCOL_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
];

impl Provider {
    fn start(cfg: ProviderConfig, http: HttpClient, metrics: Arc<Metrics>) -> Arc<Provider> {
        let manual = Metadata::manual(&cfg).map(Arc::new);
        let provider = Arc::new(Provider {
            cfg,
            http,
            metrics,
            metadata: Flight::new(manual),
            keys: Flight::new(None),
            key_generation: AtomicU64::new(0),
            last_kid_refresh: Mutex::new(None),
            seen_jtis: Mutex::new(HashMap::new()),
            app_tokens: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&provider);
            let task = handle.spawn(refresh_loop(weak));
            *provider.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        }
        provider
    }

    /// The connection name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    fn cached_metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.cached()
    }

    fn cached_keys(&self) -> Option<Arc<KeySet>> {
        self.keys.cached()
    }

    /// Cached metadata, fetched now if there is none yet.
    async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        if let Some(m) = self.cached_metadata() {
            return Ok(m);
        }
        self.fetch_metadata(self.metadata.finished()).await
    }

    /// Fetches discovery unless another fetch finished since `seen` (single-flight).
    async fn fetch_metadata(&self, seen: u64) -> Result<Arc<Metadata>, OidcError> {
        let Some(url) = self.cfg.discovery_url() else {
            // Manual endpoints: nothing to fetch.
            return self
                .cached_metadata()
                .ok_or_else(|| OidcError::Unavailable("no endpoints configured".into()));
        };
        self.metadata
            .fetch(
                |done, _| done != seen,
                || self.timed("discovery", self.download_metadata(&url)),
            )
            .await
            .map_err(OidcError::Unavailable)
    }

    async fn download_metadata(&self, url: &str) -> Result<Metadata, String> {
        let response = self.http.get(url).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("discovery {url} answered {}", response.status()));
        }
        Metadata::from_discovery(response.body(), &self.cfg).map_err(|p| p.0)
    }

    /// Cached keys, fetched now if there are none yet.
    async fn keys(&self) -> Result<Arc<KeySet>, OidcError> {
        if let Some(k) = self.cached_keys() {
            return Ok(k);
        }
        let seen = self.keys.finished();
        self.fetch_keys(|done, _| done != seen).await
    }

    /// Fetches the JWKS unless the cached set is newer than `seen_generation`.
    async fn fetch_newer_keys(&self, seen_generation: u64) -> Result<Arc<KeySet>, OidcError> {
        self.fetch_keys(|_, cached| cached.is_some_and(|k| k.generation != seen_generation))
            .await
    }

    /// Fetches the JWKS unless `already_done` (see [`Flight::fetch`]).
    async fn fetch_keys(
        &self,
        already_done: impl FnOnce(u64, Option<&KeySet>) -> bool,
    ) -> Result<Arc<KeySet>, OidcError> {
        let meta = self.metadata().await?;
        self.keys
            .fetch(already_done, || {
                let generation = self.key_generation.fetch_add(1, Ordering::AcqRel) + 1;
                self.timed("jwks", self.download_keys(&meta, generation))
            })
            .await
            .map_err(OidcError::Unavailable)
    }

    /// Runs a download of `kind` ("discovery", "jwks"): its latency and
    /// outcome are counted, and a failure is logged.
    async fn timed<T>(
        &self,
        kind: &'static str,
        download: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let started = Instant::now();
        let result = download.await;
        self.metrics
            .record_idp_call(&self.cfg.name, kind, started.elapsed(), result.is_ok());
        if let Err(e) = &result {
            tracing::warn!(connection = %self.cfg.name, kind, error = %e, "provider document fetch failed");
        }
        result
    }

    async fn download_keys(&self, meta: &Metadata, generation: u64) -> Result<KeySet, String> {
        let url = meta.jwks_uri.as_str();
        let response = self.http.get(url).await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("JWKS {url} answered {}", response.status()));
        }
        let set = KeySet::parse(response.body(), generation)?;
        if set.keys.is_empty() {
            return Err(format!("JWKS {url} has no usable signing key"));
        }
        // Their expiry is a metric; keys without `x5c` have none to show.
        self.metrics.set_idp_certificates(
            &self.cfg.name,
            crate::metrics::Metrics::jwks_certificates(response.body()),
        );
        Ok(set)
    }

    /// The first background fetch: only what is not cached yet (a login may
    /// have fetched it already; single-flight collapses concurrent fetches).
    async fn ensure_cached(&self) -> Result<(), OidcError> {
        self.metadata().await?;
        self.keys().await.map(|_| ())
    }

    /// The background refresh: discovery (unless manual), then JWKS.
    async fn refresh(&self) -> Result<(), OidcError> {
        if self.cfg.discovery_url().is_some() {
            self.fetch_metadata(self.metadata.finished()).await?;
        }
        let seen = self.cached_keys().map_or(0, |k| k.generation);
        self.fetch_newer_keys(seen).await.map(|_| ())
    }

    /// A token named a `kid` we don't have: refresh the JWKS, at most once per
    /// [`KID_REFRESH_MIN_INTERVAL`]. Within the window, wait for a refresh
    /// already in flight and use whatever is cached.
    async fn keys_after_unknown_kid(&self, seen: &KeySet) -> Result<Arc<KeySet>, OidcError> {
        let allowed = {
            let mut last = self
                .last_kid_refresh
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match *last {
                Some(t) if t.elapsed() < KID_REFRESH_MIN_INTERVAL => false,
                _ => {
                    *last = Some(Instant::now());
                    true
                }
            }
        };
        if allowed {
            tracing::info!(connection = %self.cfg.name, "unknown kid in ID token: refreshing JWKS");
            return self.fetch_newer_keys(seen.generation).await;
        }
        self.keys.settled().await;
        self.keys().await
    }

    /// Start a login: fresh state, nonce, PKCE S256; `extra` are added query parameters
    /// (login_hint, domain_hint, upstream_params, forwarded params). Fails with
    /// `Unavailable` when discovery cannot be had.
    pub async fn authorization_request(
        &self,
        redirect_uri: &str,
        extra: &[(String, String)],
    ) -> Result<AuthorizationRequest, OidcError> {
        let meta = self.metadata().await?;
        // Make sure keys can be had too: no point sending a user to a provider
        // whose tokens we cannot verify.
        self.keys().await?;
        let state = random_token();
        let nonce = random_token();
        let pkce_verifier = random_token();
        let mut url = meta.authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.cfg.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.cfg.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &pkce_challenge(&pkce_verifier))
                .append_pair("code_challenge_method", "S256");
            let mut response_mode_set = false;
            for (k, v) in extra {
                let allowed = if k == "response_mode" {
                    // Only modes the callback serves (never `fragment`, which
                    // would hand the code to page scripts), and only once.
                    let ok = !response_mode_set && matches!(v.as_str(), "query" | "form_post");
                    response_mode_set |= ok;
                    ok
                } else {
                    !PROTOCOL_PARAMS.contains(&k.as_str())
                };
                if !allowed {
                    tracing::warn!(connection = %self.cfg.name, param = %k, "ignored extra authorization parameter that realmgate sets itself");
                    continue;
                }
                q.append_pair(k, v);
            }
        }
        Ok(AuthorizationRequest {
            url: url.into(),
            state,
            nonce,
            pkce_verifier,
        })
    }

    /// RFC 9207: when the response carries `iss` (or discovery says
    /// `authorization_response_iss_parameter_supported`), it must equal the issuer.
    pub fn check_authorization_response_iss(&self, iss: Option<&str>) -> Result<(), OidcError> {
        let Some(meta) = self.cached_metadata() else {
            // No metadata means no login was started with this provider object;
            // an `iss` we cannot check is refused.
            return match iss {
                None => Ok(()),
                Some(_) => Err(OidcError::IssuerMismatch),
            };
        };
        match iss {
            None if meta.iss_parameter_supported => Err(OidcError::IssuerMismatch),
            None => Ok(()),
            Some(iss) => {
                let ok = match &meta.issuer_rule {
                    IssuerRule::Exact(expected) => iss == expected,
                    IssuerRule::Configured(base) => IssuerRule::configured_matches(base, iss),
                    IssuerRule::TenantTemplate(template) => template_matches(template, iss),
                };
                if ok {
                    Ok(())
                } else {
                    Err(OidcError::IssuerMismatch)
                }
            }
        }
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, OidcError> {
        let meta = self.metadata().await?;
        let started = Instant::now();
        let result = token::request(
            &self.http,
            &self.cfg,
            &meta,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", pkce_verifier),
            ],
        )
        .await;
        self.metrics.record_idp_call(
            &self.cfg.name,
            "token",
            started.elapsed(),
            !matches!(result, Err(OidcError::Unavailable(_))),
        );
        let tokens = result?;
        let id_token = tokens.id_token.ok_or_else(|| {
            OidcError::Exchange(
                "no id_token in the token response (is the openid scope requested?)".into(),
            )
        })?;
        Ok(TokenSet {
            id_token,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
        })
    }

    /// An app-only access token for `scope` (client credentials grant with
    /// the connection's own credential; Graph: `https://graph.microsoft.com/.default`),
    /// cached until a minute before it expires.
    pub async fn client_credentials_token(&self, scope: &str) -> Result<Secret, OidcError> {
        if let Some((token, until)) = self
            .app_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
        {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        if self.cfg.credential.is_none() {
            return Err(OidcError::Exchange(
                "the connection has no client credential for an app-only token".into(),
            ));
        }
        let meta = self.metadata().await?;
        let started = Instant::now();
        let result = token::request(
            &self.http,
            &self.cfg,
            &meta,
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        self.metrics.record_idp_call(
            &self.cfg.name,
            "token",
            started.elapsed(),
            !matches!(result, Err(OidcError::Unavailable(_))),
        );
        let tokens = result?;
        let token = tokens.access_token.map(Secret::new).ok_or_else(|| {
            OidcError::Exchange("no access_token in the client credentials answer".into())
        })?;
        let lifetime = tokens
            .expires_in
            .unwrap_or(Duration::from_secs(300))
            .min(Duration::from_secs(24 * 3600))
            .saturating_sub(Duration::from_secs(60));
        if let Some(until) = Instant::now()
            .checked_add(lifetime)
            .filter(|_| !lifetime.is_zero())
        {
            let mut cache = self.app_tokens.lock().unwrap_or_else(|p| p.into_inner());
            // Scopes are the few a connection uses; bounded anyway.
            if cache.len() >= 16 {
                cache.clear();
            }
            cache.insert(scope.to_string(), (token.clone(), until));
        }
        Ok(token)
    }

    /// Redeems a refresh token (SPEC 5.2). A returned ID token must then be
    /// checked with [`Provider::verify_refreshed_id_token`].
    pub async fn refresh_tokens(&self, refresh_token: &str) -> Result<RefreshedTokens, OidcError> {
        let meta = self.metadata().await?;
        let scope = self.cfg.scopes.join(" ");
        let started = Instant::now();
        let result = token::request(
            &self.http,
            &self.cfg,
            &meta,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("scope", &scope),
            ],
        )
        .await;
        self.metrics.record_idp_call(
            &self.cfg.name,
            "token",
            started.elapsed(),
            !matches!(result, Err(OidcError::Unavailable(_))),
        );
        result
    }

    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
    ) -> Result<VerifiedIdToken, OidcError> {
        let purpose = Purpose::IdToken {
            nonce: NonceRule::Equals(nonce),
        };
        let claims = self.verify(raw, purpose).await?;
        Ok(VerifiedIdToken { claims })
    }

    /// Verifies an ID token from a refresh: every check of a login except the
    /// nonce, and `sub` must equal the session's.
    pub async fn verify_refreshed_id_token(
        &self,
        raw: &str,
        sub: &str,
    ) -> Result<VerifiedIdToken, OidcError> {
        let purpose = Purpose::IdToken {
            nonce: NonceRule::Refresh { sub },
        };
        let claims = self.verify(raw, purpose).await?;
        Ok(VerifiedIdToken { claims })
    }

    /// Verifies a bearer access token for one of `audiences` (SPEC 5.9): the
    /// same signature, algorithm, issuer, tenant and time checks as ID tokens;
    /// `aud` must be one of `audiences`, and the token must be an access token
    /// (`scp`, `roles` or `scope`, no `nonce`). On Entra, v1.0 tokens
    /// (`https://sts.windows.net/{tid}/`, `ver` 1.0, `appid`) are accepted as
    /// well as v2.0 ones (discovery's issuer, `ver` 2.0, `azp`).
    pub async fn verify_access_token(
        &self,
        raw: &str,
        audiences: &[String],
    ) -> Result<VerifiedAccessToken, OidcError> {
        if audiences.is_empty() {
            return Err(OidcError::InvalidToken("no audience configured".into()));
        }
        let claims = self.verify(raw, Purpose::Access { audiences }).await?;
        Ok(VerifiedAccessToken {
            inner: VerifiedIdToken { claims },
        })
    }

    /// Verifies an OpenID Connect Back-Channel Logout token (`POST
    /// /.auth/backchannel-logout`): signature, `iss`, `aud`, `iat`/`exp`,
    /// the logout event, no `nonce`, `sub` or `sid`, and a `jti` not seen before.
    pub async fn verify_logout_token(&self, raw: &str) -> Result<LogoutToken, OidcError> {
        let claims = self.verify(raw, Purpose::Logout).await?;
        let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        let jti = get("jti").unwrap_or_default();
        let now = now_unix();
        let exp = claims
            .get("exp")
            .and_then(|v| id_token::numeric_date("exp", v).ok())
            .unwrap_or(now.saturating_add(id_token::MAX_AGE_SECS));
        {
            // Replay: each logout token once (remembered until it expires).
            let mut seen = self.seen_jtis.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|_, e| e.saturating_add(id_token::LEEWAY_SECS) >= now);
            if seen.contains_key(&jti) {
                return Err(OidcError::InvalidToken(
                    "logout token replayed (jti seen before)".into(),
                ));
            }
            if seen.len() >= MAX_SEEN_JTIS {
                return Err(OidcError::InvalidToken(
                    "too many logout tokens at once; try again later".into(),
                ));
            }
            seen.insert(jti.clone(), exp);
        }
        let remember_for = std::time::Duration::from_secs(
            exp.saturating_add(id_token::LEEWAY_SECS)
                .saturating_sub(now)
                .max(1),
        );
        Ok(LogoutToken {
            jti,
            remember_for,
            sub: get("sub"),
            // An empty sid names no provider session: the logout is by sub
            // (sessions made without a sid have none either).
            sid: get("sid").filter(|s| !s.is_empty()),
            iss: get("iss").unwrap_or_default(),
            oid: get("oid"),
        })
    }

    /// Forgets a logout token's `jti` that [`Provider::verify_logout_token`]
    /// took but whose logout did not finish (the session store failed):
    /// the provider's retry of the same token must not read as a replay.
    pub fn forget_logout_jti(&self, jti: &str) {
        let mut seen = self.seen_jtis.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(jti);
    }

    /// Signature and every claim check for `purpose`; returns the verified claims.
    async fn verify(
        &self,
        raw: &str,
        purpose: Purpose<'_>,
    ) -> Result<Map<String, Value>, OidcError> {
        let header = id_token::parse_header(raw).map_err(OidcError::InvalidToken)?;
        header
            .check_typ(&purpose)
            .map_err(OidcError::InvalidToken)?;
        let meta = self.metadata().await?;
        let mut keys = self.keys().await?;
        // Allow-list: RS256 plus the algorithms the provider's keys declare.
        if !keys.allows(header.alg) {
            return Err(OidcError::InvalidToken(format!(
                "alg {} not allowed for this provider",
                jwks::alg_name(header.alg)
            )));
        }
        if matches!(
            keys.select(header.kid.as_deref(), header.alg),
            Selection::UnknownKid
        ) {
            keys = self.keys_after_unknown_kid(&keys).await?;
        }
        let key = match keys.select(header.kid.as_deref(), header.alg) {
            Selection::Found(k) => k,
            Selection::UnknownKid => {
                return Err(OidcError::InvalidToken(
                    "unknown kid (no such key in the provider's JWKS)".into(),
                ))
            }
            Selection::Ambiguous(n) => {
                return Err(OidcError::InvalidToken(format!(
                    "token has no kid and the JWKS has {n} suitable keys"
                )))
            }
        };
        let claims = id_token::verify_signature(raw, header.alg, &key.decoding)
            .map_err(OidcError::InvalidToken)?;
        let (tenants, entra) = match &self.cfg.kind {
            ConnectionKind::Entra(e) => (
                Some((&e.allowed_tenants, meta.pinned_tid.as_deref())),
                Some(e),
            ),
            ConnectionKind::Oidc(_)
            | ConnectionKind::Ldap(_)
            | ConnectionKind::Saml(_)
            | ConnectionKind::WsFed(_) => (None, None),
        };
        let issuers = self.issuers(&meta, &purpose);
        let want = Expectations {
            issuers: &issuers,
            client_id: &self.cfg.client_id,
            tenants,
            purpose,
            require_oid: entra.is_some() && !matches!(purpose, Purpose::Logout),
            now: now_unix(),
        };
        id_token::check_claims(&claims, &want).map_err(OidcError::InvalidToken)?;
        if let (Purpose::Access { .. }, Some(e)) = (&purpose, entra) {
            crate::connection::entra::access_token::check_entra_version(&claims, e)
                .map_err(OidcError::InvalidToken)?;
        }
        Ok(claims)
    }

    /// The issuer forms a token for `purpose` may carry: discovery's, and for
    /// Entra access tokens also the v1.0 form (see `connection::entra::access_token`).
    fn issuers(&self, meta: &Metadata, purpose: &Purpose<'_>) -> Vec<IssuerRule> {
        let mut issuers = vec![meta.issuer_rule.clone()];
        if let (Purpose::Access { .. }, ConnectionKind::Entra(e)) = (purpose, &self.cfg.kind) {
            issuers.push(IssuerRule::TenantTemplate(
                crate::connection::entra::access_token::v1_issuer_template(&e.authority_host),
            ));
        }
        issuers
    }

    /// Whether a bearer token whose (not yet verified) `iss` is `iss` could
    /// come from this provider. Only used to pick which of a route's
    /// connections verifies the token; the verification itself checks `iss`
    /// again, after the signature.
    pub async fn may_have_issued_access_token(&self, iss: &str) -> Result<bool, OidcError> {
        let meta = self.metadata().await?;
        let audiences: [String; 0] = [];
        let purpose = Purpose::Access {
            audiences: &audiences,
        };
        Ok(self.issuers(&meta, &purpose).iter().any(|rule| match rule {
            IssuerRule::Exact(expected) => iss == expected,
            IssuerRule::Configured(base) => IssuerRule::configured_matches(base, iss),
            IssuerRule::TenantTemplate(template) => template_matches(template, iss),
        }))
    }

    /// The RP-initiated logout URL at `end_session_endpoint`, if the provider has one.
    pub async fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        let meta = self.metadata().await.ok()?;
        let mut url = meta.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("client_id", &self.cfg.client_id);
        }
        Some(url.into())
    }
}

use crate::connection::entra::issuer::template_matches;

async fn refresh_loop(provider: std::sync::Weak<Provider>) {
    let mut failures = 0u32;
    let mut first = true;
    loop {
        let Some(p) = provider.upgrade() else { return };
        let result = if std::mem::take(&mut first) {
            p.ensure_cached().await
        } else {
            p.refresh().await
        };
        let name = p.cfg.name.clone();
        drop(p);
        let wait = match result {
            Ok(()) => {
                failures = 0;
                let jitter = rand::random::<u64>() % (REFRESH_INTERVAL.as_secs() / 10).max(1);
                REFRESH_INTERVAL + Duration::from_secs(jitter)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let backoff = RETRY_INTERVAL
                    .saturating_mul(2u32.saturating_pow(failures.min(8) - 1))
                    .min(REFRESH_INTERVAL / 6);
                tracing::warn!(connection = %name, error = %e, retry_in = ?backoff, "provider metadata refresh failed; cached copy kept");
                backoff
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests;
