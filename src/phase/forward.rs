//! Phase 6, forward: X-Forwarded-* and X-Request-Id (believed only from
//! `trusted_proxies`, `headers::forwarding`), the W3C `traceparent`
//! (`headers::trace_context`), then the upstream exchange
//! (`proxy`). A tunnel (WebSocket) ends with the session or token that
//! authorized it, or when a reload's configuration no longer permits it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::HeaderValue;
use http::request::Parts;
use http::Request;
use hyper::body::Incoming;

use crate::config::RouteSettings;
use crate::gateway::Gateway;
use crate::headers::identity::Injected;
use crate::peer::ConnInfo;
use crate::phase::strip::Upgrade;
use crate::proxy::{Forwarded, Outbound};
use crate::respond::GatewayError;
use crate::session::store::SessionId;

/// What authorized a request, for its tunnel: when it must close, and what
/// is checked again while it is open.
pub struct Tunnel {
    /// None for an anonymous tunnel (nothing of the user's expires).
    pub until: Option<SystemTime>,
    pub by: AuthorizedBy,
}

/// Who a tunnel runs for. After a reload the newest configuration must
/// still let it through the route its host and path reach ([`Judged`]).
pub enum AuthorizedBy {
    /// A session: its end closes the tunnel, and the new configuration's
    /// policy must still permit it.
    Session(SessionId),
    /// A bearer token: nothing to look up (it ends at `until`, the token's
    /// expiry), but the new route must still accept tokens for the
    /// audiences the old one did (`api_audiences`), and its policy permit
    /// the identity the token proved.
    Token {
        user: Arc<crate::session::model::Session>,
        audiences: Vec<String>,
    },
    /// Nobody: a public path, or an anonymous request on an `auth =
    /// "optional"` route. The new route must still let anyone through
    /// there (review 11: an anonymous tunnel outlived a reload that locked
    /// its host).
    Anonymous,
}

impl Tunnel {
    /// For a request no user was judged for.
    pub fn anonymous() -> Tunnel {
        Tunnel {
            until: None,
            by: AuthorizedBy::Anonymous,
        }
    }
}

/// Adds the forwarding headers and sends the request upstream.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    gw: &Gateway,
    route: &Arc<RouteSettings>,
    conn: &ConnInfo,
    client_host: &HeaderValue,
    request_id: &HeaderValue,
    trace: &crate::headers::trace_context::TraceParent,
    (mut parts, body): (Parts, Incoming),
    identity: Option<Injected>,
    upgrade: Option<Upgrade>,
    tunnel: Option<Tunnel>,
    exchange_used: &mut Option<&'static str>,
) -> Result<Forwarded, GatewayError> {
    crate::headers::forwarding::apply(
        &mut parts.headers,
        &gw.settings.server,
        conn,
        Some(client_host),
        request_id,
    );
    trace.apply(&mut parts.headers);
    let tunnel_until = tunnel.as_ref().and_then(|t| t.until);
    // Only an upgrade opens a tunnel; a plain request needs no check.
    let tunnel_alive = tunnel.filter(|_| upgrade.is_some()).map(|t| {
        let judged = Judged {
            settings: gw.settings.clone(),
            host: String::from_utf8_lossy(client_host.as_bytes()).into_owned(),
            path: parts.uri.path().to_string(),
            latest: gw.auth.shared.latest.clone(),
        };
        match t.by {
            AuthorizedBy::Session(id) => session_alive(gw.auth.shared.sessions.clone(), id, judged),
            AuthorizedBy::Token { user, audiences } => token_alive(user, audiences, judged),
            AuthorizedBy::Anonymous => anonymous_alive(judged),
        }
    });
    let out = Outbound {
        request: Request::from_parts(parts, body),
        identity,
        upgrade,
        tunnel_until,
        tunnel_alive,
    };
    // Which exchange serves it (`proxy::exchange`), known to the access log
    // before it starts, so a failed exchange's line names it too.
    let exchange = gw.upstreams.exchange(route, &out);
    *exchange_used = Some(exchange.name());
    let mut forwarded = gw
        .upstreams
        .forward(route, out, exchange, Some(client_host))
        .await?;
    // The app's `Set-Cookie` for realmgate's own cookies never reaches the
    // browser (`SessionCookies::strip_own_set_cookies`).
    gw.auth
        .cookies
        .strip_own_set_cookies(forwarded.response.headers_mut());
    Ok(forwarded)
}

/// Where a tunnel was authorized: the generation's settings, and the host
/// and (canonical) path it was routed by, to route and judge it again under
/// the newest generation after a reload.
struct Judged {
    settings: Arc<crate::config::Settings>,
    host: String,
    path: String,
    latest: Arc<std::sync::RwLock<Option<Arc<crate::auth::state::Latest>>>>,
}

impl Judged {
    /// True while the newest generation is the one the tunnel was opened
    /// in, or `permits` says yes for the route the tunnel's host and path
    /// reach there; false when they reach none. The route is found again,
    /// not looked up by name: a reload may give the tunnel's host and path
    /// to another route, or the name to another host (review 11).
    fn permits(
        &self,
        permits: impl FnOnce(&crate::auth::state::Latest, &RouteSettings) -> bool,
    ) -> bool {
        let latest = self
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(now) = latest.filter(|now| !Arc::ptr_eq(&now.settings, &self.settings)) else {
            return true;
        };
        match now.router.lookup(&self.host, &self.path) {
            crate::router::Lookup::Found(route) => permits(&now, route),
            _ => false,
        }
    }

    /// The route's policy (connection, groups, roles, ...) permits the
    /// session as a new request's would (review 10: a reload that took a
    /// partner's or a group's access away left its open WebSockets running
    /// until the session's end).
    fn still_permitted(&self, session: &crate::session::model::Session) -> bool {
        self.permits(|now, route| policy_permits(now, route, session))
    }
}

/// `route`'s policy in the generation `now` permits `session`, whose
/// connection must still be configured there.
fn policy_permits(
    now: &crate::auth::state::Latest,
    route: &RouteSettings,
    session: &crate::session::model::Session,
) -> bool {
    let connection = now.settings.connection(&session.connection);
    connection.is_some() && crate::policy::decide(route, connection.map(|c| &**c), session).is_ok()
}

/// A tunnel's liveness check: the session still exists in the store, and
/// after a reload the new configuration still permits it ([`Judged`]). A
/// store error keeps the tunnel (it was authorized; the next check decides).
/// Each check also counts as activity for the session's idle timeout.
fn session_alive(
    store: Arc<dyn crate::session::store::SessionStore>,
    id: crate::session::store::SessionId,
    judged: Judged,
) -> crate::proxy::AliveCheck {
    let judged = Arc::new(judged);
    Box::new(move || {
        let (store, id, judged) = (store.clone(), id.clone(), judged.clone());
        Box::pin(async move {
            match store.get(&id).await {
                Ok(Some(session)) => judged.still_permitted(&session),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "session store failed while checking a tunnel");
                    true
                }
            }
        })
    })
}

/// A bearer-token tunnel's liveness check: the newest configuration's
/// route still accepts every audience the old one did, and its policy
/// permits the token's identity ([`Judged`]; review 11: a reload left such
/// tunnels open until the token expired).
fn token_alive(
    user: Arc<crate::session::model::Session>,
    audiences: Vec<String>,
    judged: Judged,
) -> crate::proxy::AliveCheck {
    Box::new(move || {
        let permitted = judged.permits(|now, route| {
            audiences.iter().all(|a| route.api_audiences.contains(a))
                && policy_permits(now, route, &user)
        });
        Box::pin(async move { permitted })
    })
}

/// An anonymous tunnel's liveness check: the newest configuration's route
/// still lets anyone through its path (`public`, or `auth = "optional"`).
fn anonymous_alive(judged: Judged) -> crate::proxy::AliveCheck {
    Box::new(move || {
        let open = judged.permits(|_, route| {
            route.auth == crate::config::RouteAuth::Optional
                || crate::pathnorm::CanonicalTarget::parse(&judged.path)
                    .is_ok_and(|t| t.is_public(&route.public))
        });
        Box::pin(async move { open })
    })
}

/// When a tunnel of a session ending at `expires_at` (Unix seconds) must
/// close. A time `SystemTime` cannot hold (claims are bounded to year 9999,
/// so only a bug gets here) fails closed: a deadline already past.
pub fn tunnel_deadline(expires_at: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(expires_at))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
