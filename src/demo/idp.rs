//! A development identity provider that behaves like Entra ID v2 for the demo and
//! the tests: per-tenant discovery at `/{tenant}/v2.0/.well-known/openid-configuration`
//! (tenant by domain or id; `common`/`organizations` with the `{tenantid}` issuer template),
//! JWKS with key rotation, `/authorize` (a user picker page, no password), `/token`
//! (PKCE S256 checked, each code once), `/logout`, and a hook through which tests
//! break the tokens it signs ([`Idp::set_token_hook`]).
//!
//! It listens on 127.0.0.1 only and trusts whoever clicks a name: it is a
//! development and test tool, never an identity provider for real users.
//!
//! Endpoints (`{t}` is a tenant id, a tenant domain, `common` or `organizations`):
//! - `GET /{t}/v2.0/.well-known/openid-configuration` — issuer `{base}/{tid}/v2.0`
//!   (the `{tenantid}` template for `common`/`organizations`); unknown tenant -> 400
//!   `invalid_tenant`, as Entra answers.
//! - `GET /{t}/discovery/v2.0/keys` — RS256 keys (2048 bit, generated at start).
//! - `GET|POST /{t}/oauth2/v2.0/authorize` — the picker page; the form posts
//!   `user=<oid>` back to the same URL (an email works too when only one user
//!   of the tenant has it), which redirects to `redirect_uri` with `code` and
//!   `state` (or auto-posts them with `response_mode=form_post`).
//! - `POST /{t}/oauth2/v2.0/token` — `authorization_code`, `refresh_token` and
//!   `client_credentials` grants; client_secret_basic, client_secret_post,
//!   private_key_jwt (a registered certificate) or a federated token
//!   (`client_auth`).
//! - `GET|POST /{t}/oauth2/v2.0/logout` — redirects to `post_logout_redirect_uri`.
//! - `GET /oidc/userinfo` — claims for a bearer access token (Entra serves it at
//!   `graph.microsoft.com/oidc/userinfo`; here the IdP serves it itself): `sub`,
//!   the profile, and the user's [`IdpUser::userinfo_claims`].
//!
//! Users are told apart by tenant and `oid`, never by email: two users may
//! share an email (in one tenant or in two), as in the "nOAuth" attack where
//! an attacker's tenant gives its user the victim's email. Codes, refresh
//! tokens and access tokens remember the tenant and `oid` they were issued for.
//!
//! The control API for tests is the methods of [`Idp`].

mod client_auth;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use client_auth::{ClientAuthMethod, FederatedCredential};

/// Group id of "HR Admins" in the demo tenant contoso.example.
pub const DEMO_HR_GROUP: &str = "6f1d3b8e-0000-4000-8000-00000000a001";
/// Group id of "Engineering" in the demo tenant contoso.example.
pub const DEMO_ENGINEERING_GROUP: &str = "6f1d3b8e-0000-4000-8000-00000000a002";
/// Group id of "Partners" in the demo tenant fabrikam.example.
pub const DEMO_PARTNERS_GROUP: &str = "7c2e4a9f-0000-4000-8000-00000000b001";
/// Id of a directory role every user of the mock holds: Graph's
/// `transitiveMemberOf` without the group type cast lists it (and
/// [`DEMO_ADMINISTRATIVE_UNIT_ID`]) before the groups.
pub const DEMO_DIRECTORY_ROLE_ID: &str = "d1ec7001-0000-4000-8000-0000000000a1";
/// Id of an administrative unit every user of the mock is in.
pub const DEMO_ADMINISTRATIVE_UNIT_ID: &str = "ad000001-0000-4000-8000-0000000000a2";
/// Tenant id of contoso.example.
pub const DEMO_CONTOSO_TENANT: &str = "3f2b6c1e-8d4a-4f5b-9c7e-1a2b3c4d5e6f";
/// Tenant id of fabrikam.example.
pub const DEMO_FABRIKAM_TENANT: &str = "7a9e2d4c-1b3f-4e6a-8c5d-0f1e2d3c4b5a";
/// The app registration the demo config uses.
pub const DEMO_CLIENT_ID: &str = "5d1a3c7e-0000-4000-8000-00000000c001";
/// Its client secret (a development value, printed nowhere).
pub const DEMO_CLIENT_SECRET: &str = "demo-client-secret-not-for-production";

/// How long a code may wait for redemption.
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Lifetime of issued ID and access tokens.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;
/// Request bodies larger than this are refused.
const MAX_BODY: usize = 64 * 1024;

/// A group of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpGroup {
    pub id: String,
    pub name: String,
}

/// A user the IdP can sign in.
#[derive(Debug, Clone)]
pub struct IdpUser {
    pub email: String,
    /// Object id (GUID): the stable user id, Entra's `oid`.
    pub oid: String,
    /// Tenant id (GUID) of the user's home tenant.
    pub tenant_id: String,
    /// Tenant domain, for display.
    pub tenant_domain: String,
    pub name: String,
    pub groups: Vec<IdpGroup>,
    /// Sent as `email_verified` when set.
    pub email_verified: Option<bool>,
    /// Sent as `xms_edov` (Entra's "email domain owner verified") when set.
    pub xms_edov: Option<bool>,
    /// Extra claims added to this user's ID tokens (job title, roles, …).
    pub extra_claims: Map<String, Value>,
    /// Claims only the userinfo endpoint serves (not in any token).
    pub userinfo_claims: Map<String, Value>,
}

impl IdpUser {
    /// One line for the demo banner (name, tenant, groups).
    pub fn description(&self) -> String {
        let groups = if self.groups.is_empty() {
            "no groups".to_string()
        } else {
            let names: Vec<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
            format!("groups: {}", names.join(", "))
        };
        format!("{}, tenant {}, {groups}", self.name, self.tenant_domain)
    }
}

/// A tenant.
#[derive(Debug, Clone)]
pub struct IdpTenant {
    /// Tenant id (GUID).
    pub id: String,
    /// Domain alias, usable in URLs instead of the id.
    pub domain: String,
}

/// An app registration.
#[derive(Debug, Clone)]
pub struct IdpClient {
    pub client_id: String,
    /// Empty: the client has no secret (it authenticates otherwise).
    pub client_secret: String,
    /// A registered certificate (DER): `private_key_jwt` assertions signed
    /// with its key and naming it by `x5t#S256` authenticate the client.
    pub certificate_der: Option<Vec<u8>>,
    /// Federated credentials (workload identity federation).
    pub federated: Vec<FederatedCredential>,
    /// Allowed redirect URIs; empty = any.
    pub redirect_uris: Vec<String>,
    /// OpenID Connect Back-Channel Logout: on a logout with an `id_token_hint`
    /// issued to this client, a `logout_token` is POSTed here.
    pub backchannel_logout_uri: Option<String>,
}

/// Tenants and users the IdP knows.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub tenants: Vec<IdpTenant>,
    pub users: Vec<IdpUser>,
    pub clients: Vec<IdpClient>,
    /// A user with more groups than this gets Entra's overage claims
    /// (`_claim_names.groups`) instead of `groups`; Graph lists them (default 200).
    pub groups_overage_limit: usize,
    /// Groups per page of the Graph `transitiveMemberOf` mock (default 100).
    pub graph_page_size: usize,
}

impl IdpConfig {
    /// Two tenants (contoso.example, fabrikam.example) with a few users and groups.
    pub fn demo_default() -> IdpConfig {
        let hr = IdpGroup {
            id: DEMO_HR_GROUP.into(),
            name: "HR Admins".into(),
        };
        let eng = IdpGroup {
            id: DEMO_ENGINEERING_GROUP.into(),
            name: "Engineering".into(),
        };
        let partners = IdpGroup {
            id: DEMO_PARTNERS_GROUP.into(),
            name: "Partners".into(),
        };
        let user =
            |email: &str, oid: &str, tid: &str, domain: &str, name: &str, groups: Vec<IdpGroup>| {
                IdpUser {
                    email: email.into(),
                    oid: oid.into(),
                    tenant_id: tid.into(),
                    tenant_domain: domain.into(),
                    name: name.into(),
                    groups,
                    email_verified: None,
                    xms_edov: Some(true),
                    extra_claims: Map::new(),
                    userinfo_claims: Map::new(),
                }
            };
        IdpConfig {
            tenants: vec![
                IdpTenant {
                    id: DEMO_CONTOSO_TENANT.into(),
                    domain: "contoso.example".into(),
                },
                IdpTenant {
                    id: DEMO_FABRIKAM_TENANT.into(),
                    domain: "fabrikam.example".into(),
                },
            ],
            users: vec![
                user(
                    "alice@contoso.example",
                    "a11ce000-0000-4000-8000-000000000001",
                    DEMO_CONTOSO_TENANT,
                    "contoso.example",
                    "Alice Adams",
                    vec![hr, eng.clone()],
                ),
                user(
                    "bob@contoso.example",
                    "b0b00000-0000-4000-8000-000000000002",
                    DEMO_CONTOSO_TENANT,
                    "contoso.example",
                    "Bob Brown",
                    vec![eng],
                ),
                user(
                    "carol@fabrikam.example",
                    "ca201000-0000-4000-8000-000000000003",
                    DEMO_FABRIKAM_TENANT,
                    "fabrikam.example",
                    "Carol Clark",
                    vec![partners],
                ),
            ],
            clients: vec![
                IdpClient {
                    client_id: DEMO_CLIENT_ID.into(),
                    client_secret: DEMO_CLIENT_SECRET.into(),
                    certificate_der: None,
                    federated: Vec::new(),
                    redirect_uris: Vec::new(),
                    backchannel_logout_uri: None,
                },
                // The registration the embedded demo config (src/demo.rs) uses.
                IdpClient {
                    client_id: "demo-client".into(),
                    client_secret: "demo-secret".into(),
                    certificate_der: None,
                    federated: Vec::new(),
                    redirect_uris: Vec::new(),
                    backchannel_logout_uri: None,
                },
            ],
            groups_overage_limit: 200,
            graph_page_size: 100,
        }
    }

    pub fn users(&self) -> Vec<IdpUser> {
        self.users.clone()
    }

    /// The tenant with this id or domain (case-insensitive).
    pub fn tenant(&self, id_or_domain: &str) -> Option<&IdpTenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(id_or_domain) || t.domain.eq_ignore_ascii_case(id_or_domain)
        })
    }

    /// The user with this `oid`, else the only user with this email (`None`
    /// when several users share it: pick them by `oid`).
    fn user(&self, oid_or_email: &str) -> Option<&IdpUser> {
        pick_user(self.users.iter(), oid_or_email)
    }

    /// The user a grant was issued for: tenant and `oid`, never the email.
    fn user_by_ref(&self, who: &UserRef) -> Option<&IdpUser> {
        self.users
            .iter()
            .find(|u| u.oid == who.oid && u.tenant_id == who.tenant_id)
    }
}

/// `users`' member with this `oid`, else the only one with this email.
fn pick_user<'a>(
    users: impl Iterator<Item = &'a IdpUser> + Clone,
    oid_or_email: &str,
) -> Option<&'a IdpUser> {
    if let Some(u) = users
        .clone()
        .find(|u| u.oid.eq_ignore_ascii_case(oid_or_email))
    {
        return Some(u);
    }
    let mut by_email = users.filter(|u| u.email.eq_ignore_ascii_case(oid_or_email));
    match (by_email.next(), by_email.next()) {
        (Some(u), None) => Some(u),
        _ => None,
    }
}

/// Who a code, refresh token or access token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserRef {
    tenant_id: String,
    oid: String,
}

impl UserRef {
    fn of(user: &IdpUser) -> UserRef {
        UserRef {
            tenant_id: user.tenant_id.clone(),
            oid: user.oid.clone(),
        }
    }
}

/// The two formats of Entra access tokens (chosen by the API's app
/// registration, `accessTokenAcceptedVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenVersion {
    /// `ver` 1.0 from the v1.0 issuer (`https://sts.windows.net/{tid}/` on the public cloud).
    V1,
    /// `ver` 2.0 from the v2.0 issuer.
    V2,
}

/// Where the IdP sent the browser after a login (see [`Idp::complete_login`]).
#[derive(Debug, Clone)]
pub struct LoginRedirect {
    /// `redirect_uri` with `code`, `state` (and `iss`) in the query. With form_post,
    /// the same parameters are also in `form`.
    pub url: String,
    pub redirect_uri: String,
    pub code: String,
    pub state: Option<String>,
    pub iss: Option<String>,
    /// The authorization request asked for `response_mode=form_post`.
    pub form_post: bool,
    /// The parameters to POST for form_post.
    pub form: Vec<(String, String)>,
}

/// Signs a token instead of the IdP ([`Idp::set_token_hook`]; tests only).
#[doc(hidden)]
pub type TokenHook = Arc<dyn Fn(Unsigned<'_>) -> anyhow::Result<String> + Send + Sync>;

/// Decides how discovery, JWKS, token or userinfo answer a request
/// ([`Idp::set_intercept_hook`]; tests only).
#[doc(hidden)]
pub type InterceptHook = Arc<dyn Fn(&http::request::Parts) -> Intercept + Send + Sync>;

/// A change to a JSON answer ([`Intercept::EditJson`]).
#[doc(hidden)]
pub type JsonEdit = Box<dyn FnOnce(&mut Value) + Send>;

/// What an [`InterceptHook`] makes of a request.
#[doc(hidden)]
pub enum Intercept {
    /// Answer as usual.
    Pass,
    /// Answer this instead (the request does nothing).
    Answer(Response<Full<Bytes>>),
    /// Close the connection without answering (the request does nothing).
    Close,
    /// Answer as usual, the JSON body first changed by this.
    EditJson(JsonEdit),
}

/// A token the IdP is about to sign, handed to a [`TokenHook`]: its claims,
/// and signing with the IdP's current key without giving the key away.
#[doc(hidden)]
pub struct Unsigned<'a> {
    /// The claims as the IdP would sign them.
    pub claims: Map<String, Value>,
    /// The application the token is issued to (the ID token's `aud`).
    pub client_id: &'a str,
    base: &'a str,
    key: &'a SigningKey,
}

impl Unsigned<'_> {
    /// The `kid` of the current signing key.
    pub fn kid(&self) -> &str {
        &self.key.kid
    }

    /// The current signing key's public key, as PEM.
    pub fn public_pem(&self) -> &str {
        &self.key.public_pem
    }

    /// The issuer of a tenant's tokens at this IdP (see [`Idp::issuer`]).
    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.base)
    }

    /// `header` and `claims` signed with the current key (RS256 whatever `header.alg` says).
    pub fn sign(&self, header: &Header, claims: &Value) -> anyhow::Result<String> {
        let mut header = header.clone();
        header.alg = Algorithm::RS256;
        Ok(jsonwebtoken::encode(&header, claims, &self.key.encoding)?)
    }

    /// The RS256 signature (base64url) of `signing_input` with the current key,
    /// for a hand-made JOSE header.
    pub fn sign_input(&self, signing_input: &str) -> anyhow::Result<String> {
        Ok(jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &self.key.encoding,
            Algorithm::RS256,
        )?)
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    public_pem: String,
    jwk: Value,
}

impl SigningKey {
    fn generate() -> anyhow::Result<SigningKey> {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
        let der = private.to_pkcs1_der()?;
        let public = private.to_public_key();
        let public_pem = public.to_public_key_pem(rsa::pkcs8::LineEnding::LF)?;
        let kid = random_id(16);
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        Ok(SigningKey {
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            public_pem,
            jwk,
        })
    }
}

struct KeyRing {
    /// Published keys; the last one signs.
    keys: Vec<Arc<SigningKey>>,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    user: UserRef,
    scope: String,
    sid: String,
    created: Instant,
}

struct RefreshGrant {
    client_id: String,
    user: UserRef,
    scope: String,
    sid: String,
}

#[derive(Default)]
struct Counters {
    discovery: AtomicUsize,
    jwks: AtomicUsize,
    authorize: AtomicUsize,
    token: AtomicUsize,
    logout: AtomicUsize,
    userinfo: AtomicUsize,
    graph: AtomicUsize,
    graph_names: AtomicUsize,
    backchannel: AtomicUsize,
}

struct State {
    base: String,
    config: IdpConfig,
    keys: Mutex<KeyRing>,
    /// Signs instead of [`State::sign`]'s default, when set (tests only).
    token_hook: Mutex<Option<TokenHook>>,
    /// Consulted before discovery, JWKS, token and userinfo answer (tests only).
    intercept_hook: Mutex<Option<InterceptHook>>,
    send_iss: AtomicBool,
    codes: Mutex<HashMap<String, CodeGrant>>,
    refresh_tokens: Mutex<HashMap<String, RefreshGrant>>,
    /// Access token -> (user, client id).
    access_tokens: Mutex<HashMap<String, (UserRef, String)>>,
    counters: Counters,
    /// `jti`s of accepted client assertions (each once).
    seen_assertions: client_auth::SeenJtis,
    /// How each token request authenticated its client, in order.
    client_auths: Mutex<Vec<ClientAuthMethod>>,
    /// App-only access tokens (client credentials grant) -> client id.
    app_tokens: Mutex<HashMap<String, String>>,
    /// Graph refuses users' own tokens (403), as without consent to
    /// `GroupMember.Read.All`; see [`Idp::set_graph_refuses_user_tokens`].
    graph_refuses_user_tokens: AtomicBool,
    /// `expires_in` of issued access tokens (seconds); see [`Idp::set_access_token_lifetime`].
    access_token_lifetime: AtomicU64,
    /// Delivers back-channel logout tokens.
    http: crate::http_client::HttpClient,
}

/// A running IdP; stops when dropped.
///
/// Control API for tests (no HTTP needed):
/// - [`Idp::base_url`] (use as `authority_host`), [`Idp::issuer`];
/// - [`Idp::complete_login`]: finish the login an authorization URL asks for,
///   as if a user had been picked (HTTP alternative: POST `user=<oid or email>` to the
///   authorization URL; it answers 302 to `redirect_uri?code=…&state=…`);
/// - [`Idp::set_token_hook`]: every following token is signed by the hook (the
///   integration tests' hostile modes: bad signature, `alg: none`, wrong `iss`...);
/// - [`Idp::rotate_keys`], [`Idp::retire_old_keys`], [`Idp::current_kid`];
/// - [`Idp::set_intercept_hook`]: discovery, JWKS, token or userinfo answer as
///   the hook says (the integration tests' outages: 503, a closed connection,
///   userinfo with another `sub`);
/// - [`Idp::set_send_iss`]: RFC 9207 `iss` in authorization responses;
/// - counters: [`Idp::discovery_calls`], [`Idp::jwks_calls`], [`Idp::authorize_calls`],
///   [`Idp::token_calls`], [`Idp::logout_calls`], [`Idp::userinfo_calls`],
///   [`Idp::graph_calls`], [`Idp::backchannel_logouts_delivered`];
/// - minting without the endpoints: [`Idp::mint_id_token`],
///   [`Idp::mint_access_token`] (v2.0), [`Idp::mint_access_token_as`] (v1.0
///   or v2.0, claims edited), [`Idp::mint_logout_token`].
pub struct Idp {
    state: Arc<State>,
    addr: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Idp {
    /// `http://127.0.0.1:PORT` — use as a connection's `authority_host`.
    pub fn base_url(&self) -> String {
        self.state.base.clone()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &IdpConfig {
        &self.state.config
    }

    /// The issuer of a tenant's tokens: `{base}/{tenant id}/v2.0`.
    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.state.base)
    }

    /// Every following token (ID, access and logout tokens, from the endpoints
    /// and the `mint_*` methods) is signed by `hook` instead of the IdP's own
    /// RS256 signing (`None`: the IdP signs again).
    ///
    /// Test support only, hence hidden: the integration tests' hostile modes
    /// (tests/it/util/hostile_idp.rs: bad signatures, `alg: none`, wrong issuer,
    /// expired...) live with the tests, so the `realmgate demo` binary carries no
    /// switch for misbehaving; they need this one narrow way in, because breaking
    /// a token that comes out of a real code flow takes the claims before signing
    /// and the IdP's signing key, which stays private ([`Unsigned`]).
    #[doc(hidden)]
    pub fn set_token_hook(&self, hook: Option<TokenHook>) {
        *lock(&self.state.token_hook) = hook;
    }

    /// Discovery, JWKS, token, userinfo and Graph `transitiveMemberOf` requests are shown to `hook` first
    /// (after they are counted), which may answer instead, close the connection
    /// or edit the JSON answer (`None`: they answer as usual again).
    ///
    /// Test support only, hence hidden, for the same reason as
    /// [`Idp::set_token_hook`]: the integration tests' outages
    /// (tests/it/util/hostile_idp.rs) live with the tests, and the `realmgate demo`
    /// binary carries no switch for failing.
    #[doc(hidden)]
    pub fn set_intercept_hook(&self, hook: Option<InterceptHook>) {
        *lock(&self.state.intercept_hook) = hook;
    }

    /// The hook [`Idp::set_intercept_hook`] set, to chain a new one to it.
    #[doc(hidden)]
    pub fn intercept_hook(&self) -> Option<InterceptHook> {
        lock(&self.state.intercept_hook).clone()
    }

    /// Advertise `authorization_response_iss_parameter_supported` and send `iss`
    /// with every authorization response (RFC 9207). Off by default, like Entra.
    pub fn set_send_iss(&self, on: bool) {
        self.state.send_iss.store(on, Ordering::SeqCst);
    }

    /// Adds a new signing key, publishes it next to the old ones and signs
    /// with it from now on. Returns its `kid`.
    pub async fn rotate_keys(&self) -> anyhow::Result<String> {
        let key = tokio::task::spawn_blocking(SigningKey::generate).await??;
        let kid = key.kid.clone();
        lock(&self.state.keys).keys.push(Arc::new(key));
        Ok(kid)
    }

    /// Stops publishing every key but the current signing key.
    pub fn retire_old_keys(&self) {
        let mut ring = lock(&self.state.keys);
        let n = ring.keys.len();
        if n > 1 {
            ring.keys.drain(..n - 1);
        }
    }

    /// The `kid` of the current signing key.
    pub fn current_kid(&self) -> String {
        self.state.signing_key().kid.clone()
    }

    /// Discovery documents served.
    pub fn discovery_calls(&self) -> usize {
        self.state.counters.discovery.load(Ordering::SeqCst)
    }
    /// JWKS documents served.
    pub fn jwks_calls(&self) -> usize {
        self.state.counters.jwks.load(Ordering::SeqCst)
    }
    /// Requests to the authorize endpoint (GET and POST).
    pub fn authorize_calls(&self) -> usize {
        self.state.counters.authorize.load(Ordering::SeqCst)
    }
    /// Requests to the token endpoint.
    pub fn token_calls(&self) -> usize {
        self.state.counters.token.load(Ordering::SeqCst)
    }
    /// Requests to the logout endpoint.
    pub fn logout_calls(&self) -> usize {
        self.state.counters.logout.load(Ordering::SeqCst)
    }
    /// Requests to the userinfo endpoint.
    pub fn userinfo_calls(&self) -> usize {
        self.state.counters.userinfo.load(Ordering::SeqCst)
    }
    /// `expires_in` of the access tokens issued from now on (default 3600 s;
    /// ID tokens keep their hour). Short values make relying parties refresh.
    pub fn set_access_token_lifetime(&self, secs: u64) {
        self.state
            .access_token_lifetime
            .store(secs, Ordering::SeqCst);
    }

    /// Forgets every refresh token issued so far (as if an admin revoked
    /// the user's sessions): their next use is `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.state.refresh_tokens).clear();
    }

    /// How each token request so far authenticated its client, in order.
    pub fn client_authentications(&self) -> Vec<ClientAuthMethod> {
        lock(&self.state.client_auths).clone()
    }

    /// Graph answers 403 to users' own access tokens (no consent to
    /// `GroupMember.Read.All`); app-only tokens of the client credentials
    /// grant still read `/v1.0/users/{oid}/transitiveMemberOf`.
    pub fn set_graph_refuses_user_tokens(&self, on: bool) {
        self.state
            .graph_refuses_user_tokens
            .store(on, Ordering::SeqCst);
    }

    /// Requests to the Graph `directoryObjects/getByIds` mock (group names).
    pub fn graph_name_calls(&self) -> usize {
        self.state.counters.graph_names.load(Ordering::SeqCst)
    }

    /// Requests to the Graph `transitiveMemberOf` mock (one per page).
    pub fn graph_calls(&self) -> usize {
        self.state.counters.graph.load(Ordering::SeqCst)
    }
    /// Back-channel logout tokens delivered (the relying party answered 2xx).
    pub fn backchannel_logouts_delivered(&self) -> usize {
        self.state.counters.backchannel.load(Ordering::SeqCst)
    }

    /// A v2.0 access token for `audience` (an API such as `api://hr`) requested
    /// by `client_id` for `email`, with delegated scopes `scp` (space-separated).
    /// A token hook applies.
    pub fn mint_access_token(
        &self,
        email: &str,
        client_id: &str,
        audience: &str,
        scp: &str,
    ) -> anyhow::Result<String> {
        self.mint_access_token_as(
            AccessTokenVersion::V2,
            email,
            client_id,
            audience,
            scp,
            |_| {},
        )
    }

    /// An access token in either Entra format for `audience`, requested by
    /// `client_id` for `email` with delegated scopes `scp`, with the claims
    /// changed by `edit` before signing (an `nbf` in the future, another
    /// `tid`, app roles instead of scopes, ...). A token hook applies.
    ///
    /// v2.0: issuer `{base}/{tid}/v2.0`, `ver` 2.0, `azp`, `preferred_username`.
    /// v1.0: issuer `{base}/{tid}/` (where Entra's public cloud says
    /// `https://sts.windows.net/{tid}/`), `ver` 1.0, `appid`, `upn` and
    /// `unique_name` instead of `preferred_username`.
    pub fn mint_access_token_as(
        &self,
        version: AccessTokenVersion,
        email: &str,
        client_id: &str,
        audience: &str,
        scp: &str,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> anyhow::Result<String> {
        let user = self
            .state
            .config
            .user(email)
            .with_context(|| format!("no user {email}"))?;
        let mut c = self.state.claims(user, audience, None, &random_id(16));
        c.remove("sid");
        c.remove("email");
        c.insert("scp".into(), json!(scp));
        match version {
            AccessTokenVersion::V2 => {
                c.insert("azp".into(), json!(client_id));
                c.insert("azpacr".into(), json!("1"));
            }
            AccessTokenVersion::V1 => {
                c.insert(
                    "iss".into(),
                    json!(format!("{}/{}/", self.state.base, user.tenant_id)),
                );
                c.insert("ver".into(), json!("1.0"));
                c.insert("appid".into(), json!(client_id));
                c.insert("appidacr".into(), json!("1"));
                c.remove("preferred_username");
                c.insert("upn".into(), json!(user.email));
                c.insert("unique_name".into(), json!(user.email));
            }
        }
        edit(&mut c);
        self.state.sign(c, audience)
    }

    /// A back-channel logout token for `email`'s session `sid` at `client_id`.
    /// A token hook applies.
    pub fn mint_logout_token(
        &self,
        email: &str,
        client_id: &str,
        sid: Option<&str>,
    ) -> anyhow::Result<String> {
        let user = self
            .state
            .config
            .user(email)
            .with_context(|| format!("no user {email}"))?;
        self.state.logout_token(user, client_id, sid, |_| {})
    }

    /// Like [`Idp::mint_logout_token`], with the claims changed by `edit`
    /// before signing (tests of malformed logout tokens: no `events`, …).
    pub fn mint_logout_token_edited(
        &self,
        email: &str,
        client_id: &str,
        sid: Option<&str>,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> anyhow::Result<String> {
        let user = self
            .state
            .config
            .user(email)
            .with_context(|| format!("no user {email}"))?;
        self.state.logout_token(user, client_id, sid, edit)
    }

    /// An ID token for `email` issued to `client_id` right now (a token hook applies),
    /// without going through the authorize and token endpoints.
    pub fn mint_id_token(
        &self,
        email: &str,
        client_id: &str,
        nonce: Option<&str>,
    ) -> anyhow::Result<String> {
        let user = self
            .state
            .config
            .user(email)
            .with_context(|| format!("no user {email}"))?;
        self.state.id_token(user, client_id, nonce, &random_id(16))
    }

    /// Completes the login an authorization URL (as the gateway built it) asks
    /// for, as if `user` had been picked on the page: the same checks as the
    /// authorize endpoint, and a code the token endpoint accepts once. `user`
    /// is an `oid`, or an email that only one user of the tenant has.
    pub fn complete_login(
        &self,
        authorization_url: &str,
        user: &str,
    ) -> anyhow::Result<LoginRedirect> {
        let url = url::Url::parse(authorization_url).context("not a URL")?;
        let prefix = format!("{}/", self.state.base);
        let path_tenant = url
            .as_str()
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').next())
            .context("the URL is not this IdP's")?
            .to_string();
        if !url.path().ends_with("/oauth2/v2.0/authorize") {
            anyhow::bail!("not an authorize URL");
        }
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let request = self
            .state
            .authorize_request(&path_tenant, &params)
            .map_err(|e| anyhow::anyhow!("{}", e.describe()))?;
        self.state
            .issue_code(&path_tenant, &request, user)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Which tenants a URL's `{tenant}` segment covers.
enum Scope<'a> {
    One(&'a IdpTenant),
    /// `common` / `organizations`: any tenant.
    Any,
}

/// A checked authorization request.
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    scope: String,
    form_post: bool,
    login_hint: Option<String>,
}

/// Why an authorization request is refused.
enum AuthorizeError {
    /// Shown on a page (the redirect URI cannot be trusted).
    Page(String),
    /// Sent back to the redirect URI as `error`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl AuthorizeError {
    fn describe(&self) -> String {
        match self {
            AuthorizeError::Page(m) => m.clone(),
            AuthorizeError::Redirect {
                error, description, ..
            } => format!("{error}: {description}"),
        }
    }
}

impl State {
    fn signing_key(&self) -> Arc<SigningKey> {
        let ring = lock(&self.keys);
        ring.keys
            .last()
            .cloned()
            .expect("the key ring always holds the key generated at start")
    }

    fn scope(&self, segment: &str) -> Option<Scope<'_>> {
        if segment.eq_ignore_ascii_case("common") || segment.eq_ignore_ascii_case("organizations") {
            return Some(Scope::Any);
        }
        self.config.tenant(segment).map(Scope::One)
    }

    fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.base)
    }

    fn discovery(&self, segment: &str) -> Option<Value> {
        let scope = self.scope(segment)?;
        let issuer = match scope {
            Scope::One(t) => self.issuer(&t.id),
            Scope::Any => format!("{}/{{tenantid}}/v2.0", self.base),
        };
        let b = &self.base;
        let mut doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{b}/{segment}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{b}/{segment}/oauth2/v2.0/token"),
            "jwks_uri": format!("{b}/{segment}/discovery/v2.0/keys"),
            "end_session_endpoint": format!("{b}/{segment}/oauth2/v2.0/logout"),
            "userinfo_endpoint": format!("{b}/oidc/userinfo"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "name", "preferred_username", "email", "oid", "tid", "ver", "groups"],
            "request_uri_parameter_supported": false,
            "frontchannel_logout_supported": true,
            "http_logout_supported": true,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "realmgate.demo",
        });
        if self.send_iss.load(Ordering::SeqCst) {
            doc["authorization_response_iss_parameter_supported"] = json!(true);
        }
        Some(doc)
    }

    fn jwks(&self) -> Value {
        let ring = lock(&self.keys);
        json!({ "keys": ring.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    fn client(&self, client_id: &str) -> Option<&IdpClient> {
        self.config
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
    }

    fn authorize_request(
        &self,
        segment: &str,
        params: &[(String, String)],
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if self.scope(segment).is_none() {
            return Err(AuthorizeError::Page(format!(
                "AADSTS90002: Tenant '{segment}' not found."
            )));
        }
        let client_id = get("client_id").unwrap_or_default();
        let Some(client) = self.client(&client_id) else {
            return Err(AuthorizeError::Page(format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found."
            )));
        };
        let Some(redirect_uri) = get("redirect_uri") else {
            return Err(AuthorizeError::Page(
                "AADSTS900144: the request must contain redirect_uri.".into(),
            ));
        };
        let redirect_ok = url::Url::parse(&redirect_uri)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            && (client.redirect_uris.is_empty() || client.redirect_uris.contains(&redirect_uri));
        if !redirect_ok {
            return Err(AuthorizeError::Page(
                "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.".into(),
            ));
        }
        let state = get("state");
        let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
            description: description.to_string(),
        };
        if get("response_type").as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        let scope = get("scope").unwrap_or_default();
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(fail("invalid_request", "scope must contain openid"));
        }
        let code_challenge = get("code_challenge").unwrap_or_default();
        if code_challenge.is_empty() || get("code_challenge_method").as_deref() != Some("S256") {
            return Err(fail(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        let form_post = match get("response_mode").as_deref() {
            None | Some("query") => false,
            Some("form_post") => true,
            Some(_) => {
                return Err(fail(
                    "invalid_request",
                    "response_mode must be query or form_post",
                ))
            }
        };
        Ok(AuthorizeRequest {
            client_id,
            redirect_uri,
            state,
            nonce: get("nonce"),
            code_challenge,
            scope,
            form_post,
            login_hint: get("login_hint"),
        })
    }

    fn users_in(&self, segment: &str) -> Vec<&IdpUser> {
        match self.scope(segment) {
            Some(Scope::One(t)) => self
                .config
                .users
                .iter()
                .filter(|u| u.tenant_id == t.id)
                .collect(),
            Some(Scope::Any) => self.config.users.iter().collect(),
            None => Vec::new(),
        }
    }

    /// A code for the user picked by `oid_or_email` among the tenant's users.
    fn issue_code(
        &self,
        segment: &str,
        req: &AuthorizeRequest,
        oid_or_email: &str,
    ) -> Result<LoginRedirect, String> {
        let users = self.users_in(segment);
        let user = pick_user(users.iter().copied(), oid_or_email).ok_or_else(|| {
            format!(
                "no user (or several users) {oid_or_email:?} in tenant {segment:?}; pick by oid"
            )
        })?;
        let code = random_id(32);
        lock(&self.codes).insert(
            code.clone(),
            CodeGrant {
                client_id: req.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                code_challenge: req.code_challenge.clone(),
                nonce: req.nonce.clone(),
                user: UserRef::of(user),
                scope: req.scope.clone(),
                sid: random_id(16),
                created: Instant::now(),
            },
        );
        let iss = self
            .send_iss
            .load(Ordering::SeqCst)
            .then(|| self.issuer(&user.tenant_id));
        let mut form = vec![("code".to_string(), code.clone())];
        if let Some(s) = &req.state {
            form.push(("state".into(), s.clone()));
        }
        if let Some(i) = &iss {
            form.push(("iss".into(), i.clone()));
        }
        let mut url = url::Url::parse(&req.redirect_uri).map_err(|e| e.to_string())?;
        url.query_pairs_mut().extend_pairs(form.iter());
        Ok(LoginRedirect {
            url: url.into(),
            redirect_uri: req.redirect_uri.clone(),
            code,
            state: req.state.clone(),
            iss,
            form_post: req.form_post,
            form,
        })
    }

    /// The claims of an ID token for `user`.
    fn claims(
        &self,
        user: &IdpUser,
        client_id: &str,
        nonce: Option<&str>,
        sid: &str,
    ) -> Map<String, Value> {
        let now = now_unix();
        let sub = pairwise_sub(client_id, &user.oid);
        let mut c = Map::new();
        c.insert("iss".into(), json!(self.issuer(&user.tenant_id)));
        c.insert("aud".into(), json!(client_id));
        c.insert("iat".into(), json!(now));
        c.insert("nbf".into(), json!(now));
        c.insert("exp".into(), json!(now + TOKEN_LIFETIME_SECS));
        c.insert("sub".into(), json!(sub));
        c.insert("oid".into(), json!(user.oid));
        c.insert("tid".into(), json!(user.tenant_id));
        c.insert("email".into(), json!(user.email));
        c.insert("preferred_username".into(), json!(user.email));
        c.insert("name".into(), json!(user.name));
        c.insert("ver".into(), json!("2.0"));
        c.insert("sid".into(), json!(sid));
        c.insert("uti".into(), json!(random_id(16)));
        if user.groups.len() > self.config.groups_overage_limit {
            // Entra's overage: too many groups for a token; fetch them from Graph.
            c.insert("_claim_names".into(), json!({"groups": "src1"}));
            c.insert(
                "_claim_sources".into(),
                json!({"src1": {"endpoint": format!("{}/{}/users/{}/getMemberObjects", self.base, user.tenant_id, user.oid)}}),
            );
        } else if !user.groups.is_empty() {
            c.insert(
                "groups".into(),
                json!(user.groups.iter().map(|g| g.id.clone()).collect::<Vec<_>>()),
            );
        }
        if let Some(n) = nonce {
            c.insert("nonce".into(), json!(n));
        }
        if let Some(v) = user.email_verified {
            c.insert("email_verified".into(), json!(v));
        }
        if let Some(v) = user.xms_edov {
            c.insert("xms_edov".into(), json!(v));
        }
        for (k, v) in &user.extra_claims {
            c.insert(k.clone(), v.clone());
        }
        c
    }

    /// A signed ID token.
    fn id_token(
        &self,
        user: &IdpUser,
        client_id: &str,
        nonce: Option<&str>,
        sid: &str,
    ) -> anyhow::Result<String> {
        let claims = self.claims(user, client_id, nonce, sid);
        self.sign(claims, client_id)
    }

    /// Sends a back-channel logout token for the session an ID token hint names,
    /// if its client registered a back-channel logout URI.
    async fn backchannel_logout(&self, id_token_hint: &str) {
        let claims: Option<Map<String, Value>> = id_token_hint
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(claims) = claims else { return };
        let get = |k: &str| claims.get(k).and_then(Value::as_str);
        let (Some(aud), Some(oid)) = (get("aud"), get("oid")) else {
            return;
        };
        let Some(uri) = self
            .client(aud)
            .and_then(|c| c.backchannel_logout_uri.clone())
        else {
            return;
        };
        let Some(user) = self.config.users.iter().find(|u| u.oid == oid) else {
            return;
        };
        let Ok(token) = self.logout_token(user, aud, get("sid"), |_| {}) else {
            return;
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &token)
            .finish();
        let Ok(request) = Request::post(uri.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.into_bytes())
        else {
            return;
        };
        if let Ok(r) = self.http.execute(request).await {
            if r.status().is_success() {
                self.counters.backchannel.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn logout_token(
        &self,
        user: &IdpUser,
        client_id: &str,
        sid: Option<&str>,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> anyhow::Result<String> {
        let now = now_unix();
        let mut c = Map::new();
        c.insert("iss".into(), json!(self.issuer(&user.tenant_id)));
        c.insert("aud".into(), json!(client_id));
        c.insert("iat".into(), json!(now));
        c.insert("exp".into(), json!(now + 120));
        c.insert("jti".into(), json!(random_id(16)));
        c.insert("sub".into(), json!(pairwise_sub(client_id, &user.oid)));
        c.insert("oid".into(), json!(user.oid));
        c.insert("tid".into(), json!(user.tenant_id));
        if let Some(sid) = sid {
            c.insert("sid".into(), json!(sid));
        }
        c.insert(
            "events".into(),
            json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        );
        edit(&mut c);
        self.sign(c, client_id)
    }

    /// Signs `claims` for `client_id`: RS256 with the current key, or the token hook.
    fn sign(&self, claims: Map<String, Value>, client_id: &str) -> anyhow::Result<String> {
        let key = self.signing_key();
        let hook = lock(&self.token_hook).clone();
        match hook {
            Some(hook) => hook(Unsigned {
                claims,
                client_id,
                base: &self.base,
                key: &key,
            }),
            None => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(key.kid.clone());
                Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
            }
        }
    }

    fn token_response(
        &self,
        user: &IdpUser,
        client_id: &str,
        scope: &str,
        nonce: Option<&str>,
        sid: &str,
    ) -> anyhow::Result<Value> {
        let id_token = self.id_token(user, client_id, nonce, sid)?;
        let access_token = random_id(32);
        lock(&self.access_tokens).insert(
            access_token.clone(),
            (UserRef::of(user), client_id.to_string()),
        );
        let lifetime = self.access_token_lifetime.load(Ordering::SeqCst);
        let mut body = json!({
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
            "id_token": id_token,
        });
        if scope.split(' ').any(|s| s == "offline_access") {
            let refresh = random_id(32);
            lock(&self.refresh_tokens).insert(
                refresh.clone(),
                RefreshGrant {
                    client_id: client_id.to_string(),
                    user: UserRef::of(user),
                    scope: scope.to_string(),
                    sid: sid.to_string(),
                },
            );
            body["refresh_token"] = json!(refresh);
        }
        Ok(body)
    }
}

/// Entra's `sub` is pairwise: stable per user and application.
fn pairwise_sub(client_id: &str, oid: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{client_id}:{oid}").as_bytes()))
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_response(status: StatusCode, v: &Value) -> Resp {
    respond(status, "application/json", v.to_string())
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Resp {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn redirect(location: &str) -> Resp {
    let mut r = respond(StatusCode::FOUND, "text/plain", "");
    if let Ok(v) = http::HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Resp {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
button{{display:block;width:100%;text-align:left;padding:.8rem;margin:.5rem 0;border:1px solid #999;border-radius:6px;background:#fff;cursor:pointer;font-size:1rem}}\
button.hint{{border:2px solid #0067b8}} small{{color:#555}}</style></head><body><h1>{t}</h1>{body_html}\
<p><small>realmgate development identity provider — not for real users.</small></p></body></html>",
        t = crate::respond::escape_html(title)
    );
    respond(status, "text/html; charset=utf-8", html)
}

fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn authorize_error_response(e: AuthorizeError) -> Resp {
    match e {
        AuthorizeError::Page(m) => page(
            StatusCode::BAD_REQUEST,
            "Sign-in request refused",
            &format!("<p>{}</p>", crate::respond::escape_html(&m)),
        ),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => match url::Url::parse(&redirect_uri) {
            Ok(mut u) => {
                {
                    let mut q = u.query_pairs_mut();
                    q.append_pair("error", error)
                        .append_pair("error_description", &description);
                    if let Some(s) = &state {
                        q.append_pair("state", s);
                    }
                }
                redirect(u.as_str())
            }
            Err(_) => page(
                StatusCode::BAD_REQUEST,
                "Sign-in request refused",
                "<p>bad redirect_uri</p>",
            ),
        },
    }
}

fn picker_page(
    state: &State,
    segment: &str,
    req: &AuthorizeRequest,
    uri: &http::Uri,
    notice: Option<&str>,
) -> Resp {
    let action = uri.path_and_query().map_or("", |p| p.as_str());
    let mut body = String::new();
    if let Some(n) = notice {
        body.push_str(&format!(
            "<p role=\"alert\">{}</p>",
            crate::respond::escape_html(n)
        ));
    }
    body.push_str("<p>Pick an account (no password needed):</p>");
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\">",
        crate::respond::escape_html(action)
    ));
    for u in state.users_in(segment) {
        let hinted = req
            .login_hint
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&u.email));
        body.push_str(&format!(
            "<button type=\"submit\" name=\"user\" value=\"{oid}\"{class}>{name}<br><small>{desc}</small></button>",
            oid = crate::respond::escape_html(&u.oid),
            class = if hinted { " class=\"hint\" autofocus" } else { "" },
            name = crate::respond::escape_html(&u.name),
            desc = crate::respond::escape_html(&format!("{} · {}", u.email, u.tenant_domain)),
        ));
    }
    body.push_str("</form>");
    page(StatusCode::OK, "Sign in", &body)
}

fn form_post_page(r: &LoginRedirect) -> Resp {
    let mut inputs = String::new();
    for (k, v) in &r.form {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            crate::respond::escape_html(k),
            crate::respond::escape_html(v)
        ));
    }
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Working...</title></head>\
<body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}\
<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
        crate::respond::escape_html(&r.redirect_uri)
    );
    respond(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// Reads the form body, bounded.
async fn read_form(body: Incoming) -> Option<Vec<(String, String)>> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// An `Err` closes the connection without an answer ([`Intercept::Close`]).
async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, std::io::Error> {
    let (parts, body) = req.into_parts();
    let segments: Vec<String> = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    // What the intercept hook says, for the endpoints it is shown.
    let mut edit: Option<JsonEdit> = None;
    let mut intercept = || -> Result<Option<Resp>, std::io::Error> {
        let hook = lock(&state.intercept_hook).clone();
        match hook.map(|h| h(&parts)) {
            None | Some(Intercept::Pass) => Ok(None),
            Some(Intercept::Answer(r)) => Ok(Some(r)),
            Some(Intercept::Close) => Err(std::io::Error::other("intercepted: closing")),
            Some(Intercept::EditJson(f)) => {
                edit = Some(f);
                Ok(None)
            }
        }
    };
    // Graph at the root or under `/graph` (graph_endpoint = "{base}/graph").
    if parts.method == Method::GET {
        if let Some((prefix, user, cast)) = graph_path(&seg) {
            state.counters.graph.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = intercept()? {
                return Ok(r);
            }
            let resp = graph_member_of(&state, &parts.headers, &parts.uri, prefix, user, cast);
            return Ok(match edit {
                Some(edit) => edit_json(resp, edit).await,
                None => resp,
            });
        }
    }
    if parts.method == Method::POST
        && matches!(
            seg.as_slice(),
            ["v1.0", "directoryObjects", "getByIds"]
                | ["graph", "v1.0", "directoryObjects", "getByIds"]
        )
    {
        state.counters.graph_names.fetch_add(1, Ordering::SeqCst);
        let bytes = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(graph_get_by_ids(&state, &parts.headers, &bytes));
    }
    let resp = match (&parts.method, seg.as_slice()) {
        (&Method::GET, [t, "v2.0", ".well-known", "openid-configuration"]) => {
            state.counters.discovery.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = intercept()? {
                return Ok(r);
            }
            match state.discovery(t) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_tenant",
                    &format!("AADSTS90002: Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
                ),
            }
        }
        (&Method::GET, [t, "discovery", "v2.0", "keys"]) => {
            state.counters.jwks.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = intercept()? {
                return Ok(r);
            }
            if state.scope(t).is_none() {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_tenant",
                    "AADSTS90002: Tenant not found.",
                )
            } else {
                json_response(StatusCode::OK, &state.jwks())
            }
        }
        (m, [t, "oauth2", "v2.0", "authorize"]) if m == Method::GET || m == Method::POST => {
            state.counters.authorize.fetch_add(1, Ordering::SeqCst);
            let params = query_pairs(&parts.uri);
            let request = match state.authorize_request(t, &params) {
                Ok(r) => r,
                Err(e) => return Ok(authorize_error_response(e)),
            };
            if m == Method::GET {
                picker_page(&state, t, &request, &parts.uri, None)
            } else {
                let form = read_form(body).await.unwrap_or_default();
                let user = form
                    .iter()
                    .find(|(k, _)| k == "user")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                match state.issue_code(t, &request, &user) {
                    Ok(r) if r.form_post => form_post_page(&r),
                    Ok(r) => redirect(&r.url),
                    Err(_) => {
                        let mut resp = picker_page(
                            &state,
                            t,
                            &request,
                            &parts.uri,
                            Some("That account is not in this tenant, or several accounts have that email. Pick one below."),
                        );
                        *resp.status_mut() = StatusCode::BAD_REQUEST;
                        resp
                    }
                }
            }
        }
        (&Method::POST, [t, "oauth2", "v2.0", "token"]) => {
            state.counters.token.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = intercept()? {
                return Ok(r);
            }
            let form = read_form(body).await.unwrap_or_default();
            let endpoint = format!("{}/{t}/oauth2/v2.0/token", state.base);
            token_endpoint(&state, &parts.headers, &form, &endpoint)
        }
        (m, [_t, "oauth2", "v2.0", "logout"]) if m == Method::GET || m == Method::POST => {
            state.counters.logout.fetch_add(1, Ordering::SeqCst);
            let mut params = query_pairs(&parts.uri);
            if m == Method::POST {
                params.extend(read_form(body).await.unwrap_or_default());
            }
            let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if let Some(hint) = param("id_token_hint") {
                state.backchannel_logout(&hint).await;
            }
            let target = param("post_logout_redirect_uri")
                .and_then(|v| url::Url::parse(&v).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            match target {
                Some(mut u) => {
                    if let Some(s) = param("state") {
                        u.query_pairs_mut().append_pair("state", &s);
                    }
                    redirect(u.as_str())
                }
                None => page(
                    StatusCode::OK,
                    "Signed out",
                    "<p>You have signed out of the development identity provider.</p>",
                ),
            }
        }
        (&Method::GET, ["oidc", "userinfo"]) => {
            state.counters.userinfo.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = intercept()? {
                return Ok(r);
            }
            userinfo(&state, &parts.headers)
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
    };
    match edit {
        Some(edit) => Ok(edit_json(resp, edit).await),
        None => Ok(resp),
    }
}

fn token_endpoint(
    state: &State,
    headers: &http::HeaderMap,
    form: &[(String, String)],
    endpoint: &str,
) -> Resp {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let presented = match client_auth::presented(headers, form) {
        Ok(p) => p,
        Err(client_auth::Refused(code, why)) => {
            return oauth_error(StatusCode::BAD_REQUEST, code, &why)
        }
    };
    let client = presented
        .client_id
        .as_deref()
        .and_then(|id| state.client(id));
    let Some(client) = client else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS700016: unknown client",
        );
    };
    match client_auth::authenticate(
        client,
        &presented,
        endpoint,
        &state.seen_assertions,
        now_unix(),
    ) {
        Ok(method) => lock(&state.client_auths).push(method),
        Err(client_auth::Refused(code, why)) => {
            return oauth_error(StatusCode::UNAUTHORIZED, code, &why)
        }
    }
    match get("grant_type").as_deref() {
        Some("authorization_code") => {
            let code = get("code").unwrap_or_default();
            // Each code once: taken out of the map by its first redemption, whatever happens next.
            let Some(grant) = lock(&state.codes).remove(&code) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "AADSTS54005: OAuth2 Authorization code was already redeemed or is unknown.",
                );
            };
            if grant.created.elapsed() > CODE_LIFETIME {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "AADSTS70008: The provided authorization code has expired.",
                );
            }
            if grant.client_id != client.client_id {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the code was issued to another client",
                );
            }
            if get("redirect_uri").as_deref() != Some(grant.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "AADSTS50148: redirect_uri does not match the authorization request.",
                );
            }
            let verifier = get("code_verifier").unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.is_empty() || challenge != grant.code_challenge {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.");
            }
            let Some(user) = state.config.user_by_ref(&grant.user) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "user gone");
            };
            match state.token_response(
                user,
                &client.client_id,
                &grant.scope,
                grant.nonce.as_deref(),
                &grant.sid,
            ) {
                Ok(v) => json_response(StatusCode::OK, &v),
                Err(e) => oauth_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    &e.to_string(),
                ),
            }
        }
        Some("refresh_token") => {
            let token = get("refresh_token").unwrap_or_default();
            // Refresh tokens rotate: the old one is spent.
            let Some(grant) = lock(&state.refresh_tokens).remove(&token) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "AADSTS70000: The provided refresh token is invalid or expired.",
                );
            };
            if grant.client_id != client.client_id {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the refresh token was issued to another client",
                );
            }
            let Some(user) = state.config.user_by_ref(&grant.user) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "user gone");
            };
            match state.token_response(user, &client.client_id, &grant.scope, None, &grant.sid) {
                Ok(v) => json_response(StatusCode::OK, &v),
                Err(e) => oauth_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    &e.to_string(),
                ),
            }
        }
        Some("client_credentials") => {
            // App-only: a resource's `.default` scope (Graph's here).
            if !get("scope").is_some_and(|s| s.ends_with("/.default")) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
                );
            }
            let token = random_id(32);
            lock(&state.app_tokens).insert(token.clone(), client.client_id.clone());
            let lifetime = state.access_token_lifetime.load(Ordering::SeqCst);
            json_response(
                StatusCode::OK,
                &json!({
                    "token_type": "Bearer",
                    "expires_in": lifetime,
                    "ext_expires_in": lifetime,
                    "access_token": token,
                }),
            )
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or client_credentials",
        ),
    }
}

/// The user and client an access token was issued to.
fn bearer_user<'a>(state: &'a State, headers: &http::HeaderMap) -> Option<(&'a IdpUser, String)> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    let (who, client_id) = lock(&state.access_tokens).get(token).cloned()?;
    Some((state.config.user_by_ref(&who)?, client_id))
}

/// A Graph `transitiveMemberOf` path: its prefix (`""` at the root,
/// `"/graph"` under `/graph`), the user (`None` for `me`) and whether it has
/// the `microsoft.graph.group` type cast.
fn graph_path<'a>(segments: &[&'a str]) -> Option<(&'static str, Option<&'a str>, bool)> {
    let (prefix, rest) = match segments {
        ["graph", rest @ ..] => ("/graph", rest),
        rest => ("", rest),
    };
    let (user, tail) = match rest {
        ["v1.0", "me", "transitiveMemberOf", tail @ ..] => (None, tail),
        ["v1.0", "users", id, "transitiveMemberOf", tail @ ..] => (Some(*id), tail),
        _ => return None,
    };
    match tail {
        [] => Some((prefix, user, false)),
        ["microsoft.graph.group"] => Some((prefix, user, true)),
        _ => None,
    }
}

/// Microsoft Graph `GET /v1.0/me/transitiveMemberOf/microsoft.graph.group`
/// (a user's token) or `/v1.0/users/{oid}/transitiveMemberOf/…` (an app-only
/// token of the client credentials grant, as with the `GroupMember.Read.All`
/// application permission), paged with `@odata.nextLink` like the real one.
/// Without the type cast (`cast = false`) it lists every kind of directory
/// object, as Graph does: [`DEMO_DIRECTORY_ROLE_ID`] and
/// [`DEMO_ADMINISTRATIVE_UNIT_ID`], then the groups.
fn graph_member_of(
    state: &State,
    headers: &http::HeaderMap,
    uri: &http::Uri,
    prefix: &str,
    user_id: Option<&str>,
    cast: bool,
) -> Resp {
    let unauthenticated = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty or invalid."}}),
        )
    };
    let forbidden = || {
        json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}),
        )
    };
    let user = match user_id {
        None => {
            let Some((user, _)) = bearer_user(state, headers) else {
                return unauthenticated();
            };
            if state.graph_refuses_user_tokens.load(Ordering::SeqCst) {
                return forbidden();
            }
            user
        }
        Some(id) => {
            let token = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let app = token.and_then(|t| lock(&state.app_tokens).get(t).cloned());
            if app.is_none() {
                return match token.and_then(|t| lock(&state.access_tokens).get(t).cloned()) {
                    // A user's delegated token without consent for other users.
                    Some(_) => forbidden(),
                    None => unauthenticated(),
                };
            }
            let Some(user) = state.config.users.iter().find(|u| u.oid == id) else {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": {"code": "Request_ResourceNotFound", "message": "Resource does not exist."}}),
                );
            };
            user
        }
    };
    let q = query_pairs(uri);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let skip: usize = get("$skiptoken").and_then(|v| v.parse().ok()).unwrap_or(0);
    let top: usize = get("$top")
        .and_then(|v| v.parse().ok())
        .unwrap_or(state.config.graph_page_size)
        .clamp(1, 999);
    let groups = user.groups.iter().map(
        |g| json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.name}),
    );
    let others = [
        json!({"@odata.type": "#microsoft.graph.directoryRole", "id": DEMO_DIRECTORY_ROLE_ID, "displayName": "Global Reader"}),
        json!({"@odata.type": "#microsoft.graph.administrativeUnit", "id": DEMO_ADMINISTRATIVE_UNIT_ID, "displayName": "Demo unit"}),
    ];
    let objects: Vec<Value> = if cast {
        groups.collect()
    } else {
        others.into_iter().chain(groups).collect()
    };
    let page: Vec<Value> = objects.iter().skip(skip).take(top).cloned().collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
        "value": page,
    });
    if skip + top < objects.len() {
        let who = user_id.map_or_else(|| "me".to_string(), |id| format!("users/{id}"));
        let cast = if cast { "/microsoft.graph.group" } else { "" };
        let mut next = url::Url::parse(&format!(
            "{}{prefix}/v1.0/{who}/transitiveMemberOf{cast}",
            state.base
        ))
        .expect("the base URL is a valid URL");
        next.query_pairs_mut()
            .append_pair("$select", "id")
            .append_pair("$top", &top.to_string())
            .append_pair("$skiptoken", &(skip + top).to_string());
        body["@odata.nextLink"] = json!(next.as_str());
    }
    json_response(StatusCode::OK, &body)
}

/// Microsoft Graph `POST /v1.0/directoryObjects/getByIds` for groups, with an
/// app-only token: `{"ids": [...]}` -> the known groups' ids and display names.
fn graph_get_by_ids(state: &State, headers: &http::HeaderMap, body: &[u8]) -> Resp {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| lock(&state.app_tokens).contains_key(t)) {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}),
        );
    }
    let ids: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("ids").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 1000 {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": "Request_BadRequest", "message": "ids: 1 to 1000 ids"}}),
        );
    }
    let mut value = Vec::new();
    for id in &ids {
        let group = state
            .config
            .users
            .iter()
            .flat_map(|u| u.groups.iter())
            .find(|g| g.id == *id);
        if let Some(g) = group {
            value.push(
                json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.name}),
            );
        }
    }
    json_response(
        StatusCode::OK,
        &json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects", "value": value}),
    )
}

/// `resp` with its JSON body changed by `edit` (as it was when not JSON).
async fn edit_json(resp: Resp, edit: JsonEdit) -> Resp {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes());
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) => {
            edit(&mut v);
            Bytes::from(v.to_string())
        }
        Err(_) => bytes,
    };
    Response::from_parts(parts, Full::new(body))
}

fn userinfo(state: &State, headers: &http::HeaderMap) -> Resp {
    let Some((user, client_id)) = bearer_user(state, headers) else {
        let mut r = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "unknown access token",
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return r;
    };
    // The same pairwise sub as the ID token (OpenID Connect Core 5.3.2).
    let sub = pairwise_sub(&client_id, &user.oid);
    let mut v = json!({
        "sub": sub,
        "name": user.name,
        "email": user.email,
        "preferred_username": user.email,
    });
    for (k, val) in user.extra_claims.iter().chain(&user.userinfo_claims) {
        v[k] = val.clone();
    }
    json_response(StatusCode::OK, &v)
}

pub async fn start(config: IdpConfig, addr: SocketAddr) -> anyhow::Result<Idp> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "the development identity provider listens on loopback addresses only, not {addr}"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let key = tokio::task::spawn_blocking(SigningKey::generate).await??;
    let state = Arc::new(State {
        base: format!("http://{addr}"),
        config,
        keys: Mutex::new(KeyRing {
            keys: vec![Arc::new(key)],
        }),
        token_hook: Mutex::new(None),
        intercept_hook: Mutex::new(None),
        send_iss: AtomicBool::new(false),
        codes: Mutex::new(HashMap::new()),
        refresh_tokens: Mutex::new(HashMap::new()),
        access_token_lifetime: AtomicU64::new(TOKEN_LIFETIME_SECS),
        access_tokens: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        seen_assertions: client_auth::SeenJtis::default(),
        client_auths: Mutex::new(Vec::new()),
        app_tokens: Mutex::new(HashMap::new()),
        graph_refuses_user_tokens: AtomicBool::new(false),
        http: crate::http_client::HttpClient::new()?,
    });
    let serve_state = state.clone();
    let task = tokio::spawn(async move {
        // Connections live in this set: aborting the accept loop (Idp dropped) drops them all.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let state = serve_state.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Idp {
        state,
        addr,
        task: task.abort_handle(),
    })
}
