//! Connection kinds: the seam between "how a user proves who they are" and
//! everything after (sessions, policies, headers, logout, revocation).
//!
//! A kind ([`SignIn`]) does two things:
//!
//! - **begin** (`GET /.auth/login/{name}`): send the browser to the identity
//!   provider ([`Begin::Redirect`], OIDC, SAML, WS-Fed) or serve a page of
//!   realmgate's own ([`Begin::Page`], LDAP's password form). Either may bind
//!   a [`Pending`] login to the browser (the state cookie, `session::state`).
//! - **complete** (`GET|POST /.auth/login/{name}/callback`, or `POST
//!   /.auth/login/{name}` for a kind whose form posts back to itself): turn
//!   the callback request into a [`VerifiedIdentity`], or a [`SignInError`]
//!   that says whose fault it was (a clear 4xx page, or 503 when the
//!   provider cannot be reached; SPEC 9).
//!
//! What every kind shares is done once, by the caller (`auth::callback`),
//! before the kind is asked: the pending login named by the kind's state
//! parameter is taken from the browser's state cookie (spent even on error),
//! each state is redeemed once (replay), and a response that comes back to
//! another connection than the one the login started at is refused (RFC 9700
//! mix-up). A kind only ever sees a pending login its own begin made, for
//! this browser.
//!
//! [`VerifiedIdentity`] has private fields: only the kinds here (and the
//! kinds of later issues, through the crate-private builder) make one, from
//! something they verified. The user id is always [`user_id_for`]'s (SPEC
//! 6.1): kinds hand in the subject (and Entra's `oid`), never an id.
//! `Session::new` is the only way a sign-in becomes a session.
//!
//! # Adding a kind
//!
//! 1. A `ConnectionKind` variant in `config` and its settings.
//! 2. A type implementing [`SignIn`] (in its own module, e.g. `src/ldap/`).
//! 3. One arm in [`Kinds::for_connection`] that builds it (with whatever
//!    long-lived state it needs kept in [`Kinds`]).
//!
//! Nothing in the request pipeline changes.
//!
//! [`user_id_for`]: crate::session::model::user_id_for

pub mod credential;
pub mod entra;
pub mod oidc;

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{Map, Value};

use crate::config::{ConnectionKind, ConnectionSettings};
use crate::metrics::Metrics;
use crate::oidc::Providers;
use crate::respond::{Body, GatewayError};
use crate::session::model::{EmailTrust, Session};
use crate::session::state::PendingLogin;
use crate::ui::Pages;

/// One connection's way of signing users in.
pub trait SignIn: Send + Sync {
    /// `GET /.auth/login/{name}`: where the browser goes next.
    fn begin<'a>(&'a self, req: BeginRequest<'a>) -> BoxFuture<'a, Result<Begin, SignInError>>;

    /// The request parameter of the callback that names the pending login
    /// (OIDC `state`, SAML `RelayState`, WS-Fed `wctx`, a form's hidden field).
    fn state_param(&self) -> &'static str {
        "state"
    }

    /// An error the provider reported in the callback, checked before the
    /// pending login is judged (OIDC `error=access_denied`). The pending
    /// login is spent either way.
    fn provider_error(&self, _params: &[(String, String)]) -> Option<SignInError> {
        None
    }

    /// A callback that names no pending login of this browser (no state
    /// parameter, or one this browser does not hold). `None` (every kind
    /// but SAML): refused as expired or begun elsewhere. A kind that can
    /// verify an unsolicited answer on its own (SAML IdP-initiated sign-in)
    /// answers `Some(Ok(target))`: `complete` then runs with
    /// [`CompleteRequest::unsolicited`] set and a pending login made here
    /// (no nonce), and `target` (the raw return URL the answer asks for)
    /// passes the same open-redirect checks as every return URL (an unsafe
    /// one becomes `/`). `Some(Err(_))`: refused with the kind's reason.
    fn unsolicited(
        &self,
        _params: &[(String, String)],
    ) -> Option<Result<Option<String>, SignInError>> {
        None
    }

    /// Whether `POST /.auth/login/{name}` completes a sign-in (a form that
    /// realmgate served posts back to itself, LDAP). Otherwise that is a 405.
    fn completes_at_login_post(&self) -> bool {
        false
    }

    /// Verifies the callback and says who signed in. `req.pending` is the
    /// pending login this browser started at this connection.
    fn complete<'a>(
        &'a self,
        req: CompleteRequest<'a>,
    ) -> BoxFuture<'a, Result<VerifiedIdentity, SignInError>>;

    /// Logout at the provider when `/.auth/logout` ends a session this kind
    /// made (SAML SP-initiated single logout: a LogoutRequest to the IdP).
    /// `None` (the default): nothing to do at the provider, or not here
    /// (OIDC's RP-initiated logout is the provider client's).
    fn provider_logout<'a>(
        &'a self,
        _req: LogoutAtProvider<'a>,
    ) -> BoxFuture<'a, Option<ProviderLogout>> {
        Box::pin(async { None })
    }

    /// A notice to show after a successful [`SignIn::complete`], before the
    /// user goes on to the target (LDAP: the password expires soon). The
    /// session is made either way. Asked once, after `complete`.
    fn notice(&self) -> Option<Notice> {
        None
    }

    /// Endpoints the kind owns beyond begin and complete (SAML metadata and
    /// single logout at `/.auth/{prefix}/{name}/{path}`); `None`: not one of
    /// its endpoints (404). OIDC and Entra own none.
    fn endpoint<'a>(
        &'a self,
        _path: &'a str,
        _req: EndpointRequest<'a>,
    ) -> Option<BoxFuture<'a, Result<Response<Body>, GatewayError>>> {
        None
    }
}

/// What a kind tells the user after sign-in ([`SignIn::notice`]): a page
/// with `title`, `message`, the optional link (label, href), and a
/// Continue link to the sign-in's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub message: String,
    pub link: Option<(String, String)>,
}

/// What begin knows.
pub struct BeginRequest<'a> {
    pub connection: &'a ConnectionSettings,
    /// `{origin}/.auth/login/{name}/callback` as the browser sees it.
    pub redirect_uri: &'a str,
    /// Where to go after sign-in (already validated).
    pub target: &'a str,
    /// Provider parameters: `login_hint`/`domain_hint` from home realm
    /// discovery, allow-listed forwarded ones, then `upstream_params`.
    pub extra: &'a [(String, String)],
    /// The query of `GET /.auth/login/{name}` (empty when begun from the
    /// sign-in page): what a kind serving its own page reads, e.g. the
    /// `login_hint` home realm discovery put there.
    pub query: &'a [(String, String)],
    pub pages: &'a Pages,
}

/// What begin decided.
#[derive(Debug)]
pub enum Begin {
    /// 302 to `url`; `pending` is bound to the browser.
    Redirect { url: String, pending: Pending },
    /// Serve this HTML page (a form of realmgate's own); `pending`, when
    /// set, is bound to the browser (the form's anti-forgery binding).
    Page {
        status: StatusCode,
        html: String,
        pending: Option<Pending>,
    },
}

/// The secrets of a sign-in in flight, kept in the browser's state cookie
/// (authenticated, HttpOnly) until the callback.
#[derive(Clone)]
pub struct Pending {
    /// Names the pending login in the callback ([`SignIn::state_param`]).
    pub state: String,
    /// What the response must echo: the OIDC `nonce`, a SAML request's ID
    /// (`InResponseTo`). Empty when the kind has none.
    pub nonce: String,
    /// The PKCE verifier (OIDC); empty for other kinds.
    pub pkce_verifier: String,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending([redacted])")
    }
}

/// What complete receives: the callback request, and the pending login
/// taken from this browser's state cookie.
pub struct CompleteRequest<'a> {
    pub connection: &'a ConnectionSettings,
    pub method: &'a Method,
    /// The query (GET) or form body (POST), decoded. A parameter sent twice
    /// is ambiguous: read it with `auth::form_get`, which treats it as absent.
    pub params: &'a [(String, String)],
    pub pending: &'a PendingLogin,
    /// True when no pending login of this browser is answered: the kind
    /// accepted an unsolicited callback ([`SignIn::unsolicited`]) and
    /// `pending` was made by the seam (empty state and nonce).
    pub unsolicited: bool,
    /// The client's address (for per-address failure limits).
    pub client: IpAddr,
    /// Some route's policy needs groups: a sign-in whose groups cannot be
    /// read fails (503) instead of making a session without them.
    pub groups_required: bool,
    /// Unix seconds.
    pub now: u64,
    /// For a kind that answers a refusal with a page of its own.
    pub pages: &'a Pages,
}

/// What an extra endpoint of a kind receives.
pub struct EndpointRequest<'a> {
    pub connection: &'a ConnectionSettings,
    pub parts: &'a Parts,
    pub body: &'a [u8],
    pub pages: &'a Pages,
    /// `https://apps.contoso.com` as the browser sees this gateway.
    pub origin: &'a str,
    /// The pending login or logout of this browser named by the request's
    /// [`SignIn::state_param`], taken from the state cookie (spent).
    pub pending: Option<&'a PendingLogin>,
    /// The audit trail (an IdP's logout request that ends sessions).
    pub audit: &'a crate::audit::Audit,
    /// The session this browser's cookie names (its tag verified; the
    /// session itself not looked up): a front-channel logout (SAML
    /// LogoutRequest) can end the browser's own session.
    pub session_id: Option<crate::session::store::SessionId>,
}

/// What [`SignIn::provider_logout`] receives: the session being ended.
pub struct LogoutAtProvider<'a> {
    pub connection: &'a ConnectionSettings,
    pub session: &'a Session,
    /// `https://apps.contoso.com` as the browser sees this gateway.
    pub origin: &'a str,
}

/// Where the browser goes to log out at the provider, and what binds the
/// provider's answer to this browser (kept like a pending login, in the
/// state cookie, with the validated post-logout target).
#[derive(Debug)]
pub struct ProviderLogout {
    pub url: String,
    /// `state`: names it in the answer; `nonce`: what the answer must echo.
    pub pending: Pending,
    /// Where the answer comes back, kept as the pending login's redirect
    /// URI: never a callback URL, so it can never complete a sign-in.
    pub answer_uri: String,
}

/// Why a sign-in was refused. The label is the metrics outcome and the log's
/// `outcome`; [`Refusal::status`] the page's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The provider reported an error (`error=access_denied`, ...).
    ProviderError,
    NoState,
    UnknownState,
    ReplayedState,
    ConnectionMismatch,
    IssuerMismatch,
    NoCode,
    CodeExchange,
    IdToken,
    MissingUserId,
    /// The provider (token endpoint, JWKS, directory) could not be reached.
    ProviderUnavailable,
    /// The session could not be stored.
    StoreUnavailable,
    /// Group overage and Graph could not list the groups while some route's
    /// policy needs groups.
    GroupsUnavailable,
    /// A SAML response or WS-Fed token failed a check (signature, shape,
    /// audience, recipient, validity window, ...).
    Assertion,
    /// Unknown user or wrong password (a form of realmgate's own, LDAP):
    /// one answer for both.
    InvalidCredentials,
    /// The directory says the account cannot sign in now (locked, expired,
    /// disabled, must change its password).
    AccountState,
    /// Too many failed sign-ins for this login or client address.
    RateLimited,
    /// An answer no sign-in of this browser asked for (SAML IdP-initiated),
    /// at a connection that does not accept those (`allow_idp_initiated`).
    Unsolicited,
    /// No directory server answered.
    DirectoryUnavailable,
    /// A directory answered, but the search account or a search failed (a
    /// configuration problem).
    DirectoryError,
}

/// Whose fault a refusal is, which decides the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The sign-in took too long, was completed already, or began in another browser (400).
    Expired,
    /// The response does not belong to this sign-in (400).
    Foreign,
    /// The provider did not complete the sign-in (401).
    Provider,
    /// What came back could not be verified (401).
    Unverified,
    /// Not the user's fault: try again later (503).
    Unavailable,
    /// The account may not sign in now (403).
    Account,
    /// Too many failures: wait (429).
    Limited,
}

impl Refusal {
    /// The metrics and log label (stable: dashboards count them).
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ProviderError => "provider_error",
            Refusal::NoState => "no_state",
            Refusal::UnknownState => "unknown_state",
            Refusal::ReplayedState => "replayed_state",
            Refusal::ConnectionMismatch => "connection_mismatch",
            Refusal::IssuerMismatch => "issuer_mismatch",
            Refusal::NoCode => "no_code",
            Refusal::CodeExchange => "code_exchange",
            Refusal::IdToken => "id_token",
            Refusal::MissingUserId => "missing_user_id",
            Refusal::ProviderUnavailable => "provider_unavailable",
            Refusal::StoreUnavailable => "store_unavailable",
            Refusal::GroupsUnavailable => "groups_unavailable",
            Refusal::Assertion => "assertion",
            Refusal::InvalidCredentials => "invalid_credentials",
            Refusal::AccountState => "account_state",
            Refusal::RateLimited => "rate_limited",
            Refusal::Unsolicited => "unsolicited",
            Refusal::DirectoryUnavailable => "directory_unavailable",
            Refusal::DirectoryError => "directory_error",
        }
    }

    pub fn blame(self) -> Blame {
        match self {
            Refusal::NoState | Refusal::UnknownState | Refusal::ReplayedState => Blame::Expired,
            // A response that does not belong to this login (RFC 9700
            // mix-up, RFC 9207 issuer) or lacks its code is malformed input.
            Refusal::ConnectionMismatch
            | Refusal::IssuerMismatch
            | Refusal::NoCode
            | Refusal::Unsolicited => Blame::Foreign,
            Refusal::ProviderError => Blame::Provider,
            Refusal::CodeExchange
            | Refusal::IdToken
            | Refusal::MissingUserId
            | Refusal::Assertion
            | Refusal::InvalidCredentials => Blame::Unverified,
            Refusal::ProviderUnavailable
            | Refusal::StoreUnavailable
            | Refusal::GroupsUnavailable
            | Refusal::DirectoryUnavailable
            | Refusal::DirectoryError => Blame::Unavailable,
            Refusal::AccountState => Blame::Account,
            Refusal::RateLimited => Blame::Limited,
        }
    }

    pub fn status(self) -> StatusCode {
        match self.blame() {
            Blame::Expired | Blame::Foreign => StatusCode::BAD_REQUEST,
            Blame::Provider | Blame::Unverified => StatusCode::UNAUTHORIZED,
            Blame::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Blame::Account => StatusCode::FORBIDDEN,
            Blame::Limited => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// A refused sign-in: the reason, and a detail for the log (never a code,
/// token, password or email). `page`: the kind's own answer (its form again,
/// with the reason said); without one the caller shows its failure page.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", reason.label())]
pub struct SignInError {
    pub reason: Refusal,
    pub detail: String,
    pub page: Option<Box<RefusalPage>>,
}

impl SignInError {
    pub fn new(reason: Refusal, detail: impl Into<String>) -> SignInError {
        SignInError {
            reason,
            detail: detail.into(),
            page: None,
        }
    }

    /// Answers the refusal with the kind's own page.
    pub fn with_page(mut self, page: RefusalPage) -> SignInError {
        self.page = Some(Box::new(page));
        self
    }
}

/// A kind's own page for a refused sign-in (a form shown again, with the
/// reason): like [`Begin::Page`], `pending` is bound to the browser (a new
/// token for the next attempt: the refused one is spent).
#[derive(Clone)]
pub struct RefusalPage {
    pub status: StatusCode,
    pub html: String,
    pub pending: Option<Pending>,
}

impl std::fmt::Debug for RefusalPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalPage")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Tokens the provider issued with the identity; the session keeps only
/// what a feature needs (`Session::new`).
#[derive(Clone, Default)]
pub(crate) struct IdpTokens {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// When the first of them expires (Unix seconds).
    pub expire_at: Option<u64>,
}

/// Who signed in, as a kind verified it. Private fields: made only by a
/// kind, through [`VerifiedIdentity::builder`]; read by `Session::new`.
#[derive(Clone)]
pub struct VerifiedIdentity {
    user_id: String,
    subject: String,
    tenant_id: Option<String>,
    connection: String,
    issuer: String,
    sid: Option<String>,
    email: Option<String>,
    email_trust: EmailTrust,
    name: Option<String>,
    preferred_username: Option<String>,
    groups: Vec<String>,
    roles: Vec<String>,
    claims: Option<Map<String, Value>>,
    tokens: IdpTokens,
    /// The provider's bound on the session (SAML `SessionNotOnOrAfter`),
    /// Unix seconds: the session ends no later.
    ends_by: Option<u64>,
    /// SAML: the NameID, for SP-initiated single logout.
    saml_name_id: Option<Box<crate::session::model::SamlNameId>>,
}

impl std::fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Emails are never logged (SPEC 5.3); tokens never.
        f.debug_struct("VerifiedIdentity")
            .field("user_id", &self.user_id)
            .field("connection", &self.connection)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The parts of a [`VerifiedIdentity`], moved out for `Session::new`.
pub(crate) struct IdentityParts {
    pub user_id: String,
    pub subject: String,
    pub tenant_id: Option<String>,
    pub connection: String,
    pub issuer: String,
    pub sid: Option<String>,
    pub email: Option<String>,
    pub email_trust: EmailTrust,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub claims: Option<Map<String, Value>>,
    pub tokens: IdpTokens,
    pub ends_by: Option<u64>,
    pub saml_name_id: Option<Box<crate::session::model::SamlNameId>>,
}

impl VerifiedIdentity {
    /// Starts an identity for `subject` at `connection` (the user id is
    /// [`user_id_for`](crate::session::model::user_id_for)'s: Entra's `oid`,
    /// else `<connection>:<subject>`). For kinds only: what goes in must be
    /// what the kind verified. `None` when the id's claim is missing, or
    /// holds a control character: no header could carry that user id
    /// (`headers::identity` drops such values), and an app would get a
    /// signed-in request without a user (fail closed, review 13).
    pub(crate) fn builder(
        connection: &ConnectionSettings,
        subject: &str,
        oid: Option<&str>,
        issuer: &str,
    ) -> Option<IdentityBuilder> {
        let user_id = crate::session::model::user_id_for(connection, subject, oid)?;
        if user_id.chars().any(char::is_control) {
            return None;
        }
        Some(IdentityBuilder {
            entra: connection.is_entra(),
            inner: VerifiedIdentity {
                user_id,
                subject: subject.to_string(),
                tenant_id: None,
                connection: connection.name.clone(),
                issuer: issuer.to_string(),
                sid: None,
                email: None,
                email_trust: EmailTrust::Unverified,
                name: None,
                preferred_username: None,
                groups: Vec::new(),
                roles: Vec::new(),
                claims: None,
                tokens: IdpTokens::default(),
                ends_by: None,
                saml_name_id: None,
            },
        })
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn connection(&self) -> &str {
        &self.connection
    }

    pub(crate) fn into_parts(self) -> IdentityParts {
        IdentityParts {
            user_id: self.user_id,
            subject: self.subject,
            tenant_id: self.tenant_id,
            connection: self.connection,
            issuer: self.issuer,
            sid: self.sid,
            email: self.email,
            email_trust: self.email_trust,
            name: self.name,
            preferred_username: self.preferred_username,
            groups: self.groups,
            roles: self.roles,
            claims: self.claims,
            tokens: self.tokens,
            ends_by: self.ends_by,
            saml_name_id: self.saml_name_id,
        }
    }
}

/// Fills in a [`VerifiedIdentity`] (see [`VerifiedIdentity::builder`]).
pub(crate) struct IdentityBuilder {
    inner: VerifiedIdentity,
    /// The connection is Entra's (see [`IdentityBuilder::tenant_id`]).
    entra: bool,
}

impl IdentityBuilder {
    /// The token's `tid`, on Entra connections only
    /// ([`crate::session::model::tenant_id_for`]).
    pub fn tenant_id(mut self, tid: Option<&str>) -> Self {
        self.inner.tenant_id = tid.filter(|_| self.entra).map(str::to_string);
        self
    }
    /// An empty `sid` is none: it would index the session under `""`.
    pub fn sid(mut self, sid: Option<&str>) -> Self {
        self.inner.sid = sid.filter(|s| !s.is_empty()).map(str::to_string);
        self
    }
    /// The email and why it is believed ([`email_trust`]).
    pub fn email(mut self, email: Option<&str>, trust: EmailTrust) -> Self {
        self.inner.email = email.map(str::to_string);
        self.inner.email_trust = trust;
        self
    }
    pub fn name(mut self, name: Option<&str>) -> Self {
        self.inner.name = name.map(str::to_string);
        self
    }
    pub fn preferred_username(mut self, username: Option<String>) -> Self {
        self.inner.preferred_username = username;
        self
    }
    pub fn groups(mut self, groups: Vec<String>) -> Self {
        self.inner.groups = groups;
        self
    }
    /// App roles (the `roles` claim, SPEC 5.10).
    pub fn roles(mut self, roles: Vec<String>) -> Self {
        self.inner.roles = roles;
        self
    }
    pub fn claims(mut self, claims: Option<Map<String, Value>>) -> Self {
        self.inner.claims = claims;
        self
    }
    pub fn tokens(mut self, tokens: IdpTokens) -> Self {
        self.inner.tokens = tokens;
        self
    }
    /// The provider's bound on the session (Unix seconds).
    pub fn ends_by(mut self, at: Option<u64>) -> Self {
        self.inner.ends_by = at;
        self
    }
    /// SAML: the NameID the IdP's logout must name.
    pub fn saml_name_id(mut self, name_id: Option<crate::session::model::SamlNameId>) -> Self {
        self.inner.saml_name_id = name_id.map(Box::new);
        self
    }
    pub fn build(self) -> VerifiedIdentity {
        self.inner
    }
}

/// Why an email is believed (SPEC 5.6): the provider verified it
/// (`email_verified`), the kind vouches for it (Entra's `xms_edov`, see
/// [`entra::vouches_for_email`]), or the operator trusts the connection.
pub(crate) fn email_trust(
    conn: &ConnectionSettings,
    has_email: bool,
    email_verified: Option<bool>,
    kind_vouches: bool,
) -> EmailTrust {
    if !has_email {
        EmailTrust::Unverified
    } else if email_verified == Some(true) {
        EmailTrust::ProviderVerified
    } else if kind_vouches {
        EmailTrust::EntraDomainVerified
    } else if conn.trusted_email {
        EmailTrust::TrustedConnection
    } else {
        EmailTrust::Unverified
    }
}

/// The long-lived state kinds draw on (survives config reloads): the OIDC
/// provider clients with their discovery and JWKS caches, the metrics, the
/// LDAP directories and failure counters.
/// Kinds of later issues add theirs here (SAML metadata caches, replay caches).
pub struct Kinds<'a> {
    pub providers: &'a Providers,
    pub metrics: &'a Arc<Metrics>,
    /// SAML / WS-Fed metadata caches, SP keys, assertion replay cache.
    pub saml: &'a crate::saml::signin::Runtime,
    /// The session store (SAML's cross-replica replay check, single logout).
    pub sessions: &'a Arc<dyn crate::session::store::SessionStore>,
    pub ldap: crate::ldap::signin::Shared<'a>,
}

impl<'a> Kinds<'a> {
    /// The sign-in of `conn`; `None` when it has no client (cannot happen
    /// for a connection of the current config).
    pub fn for_connection(&self, conn: &'a ConnectionSettings) -> Option<Box<dyn SignIn + 'a>> {
        match &conn.kind {
            ConnectionKind::Entra(_) | ConnectionKind::Oidc(_) => {
                let provider = self.providers.get(&conn.name)?;
                let env = oidc::Env {
                    http: self.providers.http_client(),
                    metrics: self.metrics,
                    // Set by the sign-in from its own provider.
                    provider: None,
                };
                Some(Box::new(oidc::OidcSignIn::new(conn, provider, env)))
            }
            ConnectionKind::Ldap(_) => Some(Box::new(crate::ldap::signin::LdapSignIn::new(
                conn, self.ldap,
            ))),
            ConnectionKind::Saml(s) | ConnectionKind::WsFed(s) => {
                Some(Box::new(crate::saml::signin::SamlSignIn::new(
                    conn,
                    s,
                    self.saml,
                    self.providers.http_client(),
                    self.sessions,
                )))
            }
        }
    }
}

/// What sign-in would make of claims the operator describes (`realmgate
/// explain --claims`): the same user id, email trust and groups rules as a
/// real sign-in. Nothing here is verified, so no request ever reaches it.
pub(crate) fn described_identity(
    conn: &ConnectionSettings,
    claims: &Map<String, Value>,
) -> Option<VerifiedIdentity> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    let b = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.as_bool().or_else(|| v.as_str().map(|s| s == "true")))
    };
    let email = s("email");
    let vouches = entra::vouches_for_email(conn, b("xms_edov"));
    let groups = claims
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(
        VerifiedIdentity::builder(
            conn,
            s("sub").unwrap_or_default(),
            s("oid"),
            s("iss").unwrap_or_default(),
        )?
        .tenant_id(s("tid"))
        .email(
            email,
            email_trust(conn, email.is_some(), b("email_verified"), vouches),
        )
        .name(s("name"))
        .preferred_username(s("preferred_username").map(str::to_string))
        .groups(groups)
        .roles(roles_claim(claims))
        .claims(conn.extended_profile.then(|| claims.clone()))
        .build(),
    )
}

/// The `roles` claim (app roles, SPEC 5.10): an array of strings (other
/// entries ignored), or one string; anything else is no roles.
pub(crate) fn roles_claim(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("roles") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// A user about to sign in with `email` at `conn` (`realmgate explain
/// --email`): the email trusted, no other claim; the user id says so.
pub(crate) fn described_by_email(conn: &ConnectionSettings, email: &str) -> VerifiedIdentity {
    VerifiedIdentity {
        user_id: format!("(user signing in as {email})"),
        subject: String::new(),
        tenant_id: None,
        connection: conn.name.clone(),
        issuer: String::new(),
        sid: None,
        email: Some(email.to_string()),
        email_trust: EmailTrust::TrustedConnection,
        name: None,
        preferred_username: Some(email.to_string()),
        groups: Vec::new(),
        roles: Vec::new(),
        claims: None,
        tokens: IdpTokens::default(),
        ends_by: None,
        saml_name_id: None,
    }
}

/// The one constructor of a [`Session`].
/// It lives here, beside the identity it consumes, so that the session's
/// data model (`session::model`) imports nothing of the seam: the seam
/// depends on the model, never the other way round.
impl Session {
    /// The one way a sign-in becomes a session: from an identity a
    /// connection kind verified (`crate::connection`). Tokens are kilobytes
    /// each (bench/sessions.md): only what a feature needs is kept. The ID
    /// token is the `id_token_hint` of RP-initiated logout; the access token
    /// only for routes that pass it on; the refresh token only when
    /// refreshing is on.
    pub fn new(identity: VerifiedIdentity, terms: crate::session::model::SessionTerms) -> Session {
        let id = identity.into_parts();
        Session {
            derived: Default::default(),
            version: crate::session::model::SESSION_VERSION,
            user_id: id.user_id,
            subject: id.subject,
            tenant_id: id.tenant_id,
            connection: id.connection,
            issuer: id.issuer,
            sid: id.sid,
            email: id.email,
            email_trust: id.email_trust,
            name: id.name,
            preferred_username: id.preferred_username,
            groups: id.groups.into_iter().map(Into::into).collect(),
            roles: id.roles.into_iter().map(Into::into).collect(),
            saml_name_id: id.saml_name_id,
            claims: id.claims,
            id_token: id.tokens.id_token,
            access_token: id.tokens.access_token.filter(|_| terms.keep_access_token),
            refresh_token: id.tokens.refresh_token.filter(|_| terms.keep_refresh_token),
            tokens_expire_at: id.tokens.expire_at,
            client_addr: None,
            created_at: terms.created_at,
            // The provider may bound it (SAML `SessionNotOnOrAfter`).
            expires_at: id
                .ends_by
                .map_or(terms.expires_at, |e| e.min(terms.expires_at)),
        }
    }
}

#[cfg(test)]
mod tests;
