//! Authentication state: [`AuthShared`] (created once at startup: the
//! session store, provider caches, redeemed states, refresh locks) and
//! [`AuthState`] (built from one config generation), and the session look-ups
//! every phase and endpoint shares. A leaf of the request path: it imports
//! no phase and no endpoint.

use std::collections::HashSet;
use std::sync::Arc;

use http::header::HeaderName;

use crate::config::{ConnectionSettings, Settings};
use crate::oidc::Providers;
use crate::respond::GatewayError;
use crate::session::cookie::SessionCookies;
use crate::session::model::Session;
use crate::session::state::StateCookies;
use crate::session::store::{SessionId, SessionStore};
use crate::ui::Pages;

/// Per-session refresh locks (SHA-256 of the session id -> lock), see
/// `auth::refresh`. The lock holds when the provider was last found
/// unreachable for this session.
pub(crate) type Flights = moka::future::Cache<[u8; 32], Arc<tokio::sync::Mutex<Option<u64>>>>;

fn new_flights() -> Flights {
    moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_idle(std::time::Duration::from_secs(300))
        .build()
}

/// Authentication state that survives config reloads: the session store and
/// the provider caches. Created once at startup.
#[derive(Clone)]
pub struct AuthShared {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub sessions: Arc<dyn SessionStore>,
    pub providers: Providers,
    /// States already redeemed (SHA-256 of the state), so a callback URL
    /// cannot be replayed even with a copy of the old state cookie. Each
    /// keeps its login's target and the SHA-256 of the answer that redeemed
    /// it: the browser signed in by that redemption, coming back with a
    /// *new* answer to the spent state (Back to the IdP, the account chosen
    /// again), is sent on to the target; the same answer again is a replay
    /// and refused, and so is the state in any other browser.
    pub(crate) used_states: moka::future::Cache<[u8; 32], Arc<SpentState>>,
    /// Per-session token refresh locks (single-flight, see `refresh`).
    pub(crate) refresh_flights: Flights,
    /// Failed password sign-ins (LDAP connections) when the session store
    /// does not count them itself.
    pub(crate) ldap_failures: crate::ldap::limit::Failures,
    /// SAML and WS-Fed connections' metadata caches and replay cache.
    pub(crate) saml: Arc<crate::saml::signin::Runtime>,
    /// The assertion key made at start when routes send assertions and no
    /// `server.assertion_key` is set ([`AuthShared::ephemeral_assertion_key`]).
    ephemeral_key: Arc<std::sync::OnceLock<Option<Arc<super::assertion::AssertionKey>>>>,
    /// The newest generation built (set by [`AuthState::new`]): an open
    /// tunnel is routed and judged again under it after a reload
    /// (`phase::forward`).
    pub(crate) latest: Arc<std::sync::RwLock<Option<Arc<Latest>>>>,
}

/// What an open tunnel is judged by again after a reload.
pub(crate) struct Latest {
    pub settings: Arc<Settings>,
    pub router: Arc<crate::router::Router>,
}

impl AuthShared {
    pub fn new(
        settings: &Settings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, GatewayError> {
        let sessions = crate::session::open_store(&settings.session).map_err(|e| {
            tracing::error!(error = %e, "cannot open the session store");
            GatewayError::Internal
        })?;
        let providers = Providers::new(settings, metrics.clone()).map_err(|e| {
            tracing::error!(error = %e, "cannot build the identity provider clients");
            GatewayError::Internal
        })?;
        Ok(AuthShared {
            metrics,
            sessions,
            providers,
            used_states: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(crate::session::state::STATE_LIFETIME)
                .build(),
            refresh_flights: new_flights(),
            ldap_failures: crate::ldap::limit::Failures::default(),
            saml: Arc::default(),
            ephemeral_key: Arc::default(),
            latest: Arc::default(),
        })
    }

    /// A P-256 key made once per process, for routes that send a signed
    /// assertion (`jwt_assertion`, the `pomerium` profile) when no
    /// `server.assertion_key` is set: SPEC 3 names no key setting, so such a
    /// route works out of the box. It lives as long as the process (config
    /// reloads keep it), and every replica has its own: apps that fetch
    /// `/.auth/keys` through a balancer need the shared key of
    /// `server.assertion_key`, which the warning says.
    fn ephemeral_assertion_key(&self) -> Option<Arc<super::assertion::AssertionKey>> {
        self.ephemeral_key
            .get_or_init(|| {
                let pem = super::assertion::generate_p256_pem();
                match super::assertion::AssertionKey::from_pem(pem.as_bytes()) {
                    Ok(key) => {
                        tracing::warn!(
                            kid = %key.kid(),
                            "no [server] assertion_key: assertions are signed with a P-256 key made at start; it changes at every restart and differs between replicas, so set server.assertion_key (the same PEM file on every replica) before apps rely on /.auth/keys"
                        );
                        Some(Arc::new(key))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot make an assertion key; no assertion is sent");
                        None
                    }
                }
            })
            .clone()
    }
}

/// Authentication state built from one config generation.
#[derive(Clone)]
pub struct AuthState {
    pub settings: Arc<Settings>,
    pub shared: AuthShared,
    pub pages: Arc<Pages>,
    pub(crate) cookies: Arc<SessionCookies>,
    pub(crate) states: Arc<StateCookies>,
    /// Every `headers_extra` name of every route: stripped from every request.
    pub(crate) extra_headers: Arc<[HeaderName]>,
    /// Routes by host and path prefix (the pipeline's router too).
    pub router: Arc<crate::router::Router>,
    /// Every route host, for login target validation.
    pub(crate) route_hosts: Arc<HashSet<String>>,
    /// Group ids or names used by some `allow.groups` (for `groups_in_headers = "known"`).
    pub(crate) policy_groups: Arc<HashSet<String>>,
    /// Signs `X-Realmgate-Assertion`, when `server.assertion_key` is set.
    pub(crate) assertions: Option<Arc<super::assertion::Assertions>>,
    /// The directories of `type = "ldap"` connections.
    pub(crate) directories: Arc<crate::ldap::Directories>,
    /// The audit trail (`[log] audit`), opened anew by every generation.
    pub audit: Arc<crate::audit::Audit>,
}

impl AuthState {
    pub fn new(settings: Arc<Settings>, shared: &AuthShared) -> Self {
        let router = Arc::new(crate::router::Router::new(&settings.routes));
        *shared.latest.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Latest {
            settings: settings.clone(),
            router: router.clone(),
        }));
        shared.providers.update(&settings);
        shared
            .saml
            .update(&settings, shared.providers.http_client(), &shared.metrics);
        let mut extra: Vec<HeaderName> = settings
            .routes
            .iter()
            .flat_map(|r| r.headers_extra.iter().map(|(h, _)| h.clone()))
            .collect();
        extra.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        extra.dedup();
        AuthState {
            audit: Arc::new(crate::audit::Audit::open(&settings.log.audit)),
            pages: Arc::new(Pages::new(&settings.ui)),
            cookies: Arc::new(SessionCookies::new(&settings.session)),
            states: Arc::new(StateCookies::new(&settings.session)),
            extra_headers: extra.into(),
            router,
            route_hosts: Arc::new(
                settings
                    .routes
                    .iter()
                    .flat_map(|r| r.hosts.iter().cloned())
                    .collect(),
            ),
            policy_groups: Arc::new(
                settings
                    .routes
                    .iter()
                    // As written and without a `<connection>:` prefix.
                    .flat_map(|r| {
                        r.allow
                            .groups
                            .iter()
                            .cloned()
                            .chain(r.allow.group_rules.iter().map(|g| g.value.clone()))
                    })
                    .collect(),
            ),
            assertions: settings
                .server
                .assertion_key
                .clone()
                .or_else(|| {
                    let wanted = settings.routes.iter().any(|r| r.sends_assertion());
                    wanted.then(|| shared.ephemeral_assertion_key()).flatten()
                })
                .map(|k| Arc::new(super::assertion::Assertions::new(k))),
            directories: Arc::new(crate::ldap::Directories::new(&settings)),
            shared: shared.clone(),
            settings,
        }
    }

    pub(crate) fn connection(&self, name: &str) -> Option<&Arc<ConnectionSettings>> {
        self.settings.connection(name)
    }
}

/// The session for `id`, if it exists and has not expired. A store failure
/// is an error (fail closed), not "signed out".
pub(crate) async fn load_session(
    state: &AuthState,
    id: &SessionId,
) -> Result<Option<Arc<Session>>, GatewayError> {
    state.shared.sessions.get(id).await.map_err(|e| {
        tracing::error!(error = %e, "session store failed");
        GatewayError::StoreUnavailable
    })
}

/// The session for a request being authenticated (`gate`, `/.auth/verify`).
/// A store that cannot answer (Redis down and the session not in this
/// replica's cache) means "not signed in": the request fails closed with
/// the sign-in redirect or a 401, and a new login then gets a clear 503
/// from the callback if the store is still down (SPEC 5.2, issue 6).
pub(crate) async fn lookup_session(state: &AuthState, id: &SessionId) -> Option<Arc<Session>> {
    let store = &state.shared.sessions;
    let found = match store.get_ready(id) {
        Some(ready) => ready,
        None => store.get(id).await,
    };
    match found {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable; treating the request as not signed in");
            None
        }
    }
}

/// A redeemed state: the SHA-256 of the callback's parameters that
/// redeemed it, and once its sign-in's session is stored, that session and
/// the login's target. Small until then: anyone can start logins with long
/// targets and redeem them with bad codes, and an entry lives for the
/// state's lifetime (review 9: 2 KiB targets of refused callbacks could
/// fill the cache's million entries with gigabytes).
#[derive(Debug)]
pub(crate) struct SpentState {
    pub(crate) answer: [u8; 32],
    /// Only the browser holding this session is sent on to the target when
    /// it comes back with the spent state: anyone can redeem a state of
    /// their own, with a target of their choosing, and hand its callback
    /// URL to someone else's signed-in browser.
    pub(crate) signed_in: std::sync::OnceLock<SignedIn>,
}

/// What a redeemed state's sign-in made.
#[derive(Debug)]
pub(crate) struct SignedIn {
    /// SHA-256 of the session id.
    pub(crate) session: [u8; 32],
    /// The login's target.
    pub(crate) target: Box<str>,
}
