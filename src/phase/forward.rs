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
    pub until: SystemTime,
    pub by: AuthorizedBy,
}

/// Who a tunnel runs for.
pub enum AuthorizedBy {
    /// A session: its end closes the tunnel, and after a reload the new
    /// configuration must still permit it.
    Session(SessionId),
    /// A bearer token: nothing to look up (it ends at `until`, the token's
    /// expiry), but after a reload the new configuration must still permit
    /// the identity it proved.
    Token(Arc<crate::session::model::Session>),
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
    let tunnel_until = tunnel.as_ref().map(|t| t.until);
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
            AuthorizedBy::Token(user) => token_alive(user, judged),
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
    gw.upstreams
        .forward(route, out, exchange, Some(client_host))
        .await
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
    /// True while the newest configuration still lets the session through
    /// this tunnel: its host and path still reach a route, and that route's
    /// policy (connection, groups, roles, ...) permits the session as a new
    /// request's would (review 10: a reload that took a partner's or a
    /// group's access away left its open WebSockets running until the
    /// session's end). The route is found again, not looked up by name: a
    /// reload may give the tunnel's host and path to another route, or the
    /// name to another host (review 11).
    fn still_permitted(&self, session: &crate::session::model::Session) -> bool {
        let latest = self
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(now) = latest.filter(|now| !Arc::ptr_eq(&now.settings, &self.settings)) else {
            return true;
        };
        let crate::router::Lookup::Found(route) = now.router.lookup(&self.host, &self.path) else {
            return false;
        };
        let connection = now.settings.connection(&session.connection);
        connection.is_some()
            && crate::policy::decide(route, connection.map(|c| &**c), session).is_ok()
    }
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

/// A bearer-token tunnel's liveness check: the newest configuration still
/// permits the token's identity ([`Judged`]; review 11: a reload left such
/// tunnels open until the token expired).
fn token_alive(
    user: Arc<crate::session::model::Session>,
    judged: Judged,
) -> crate::proxy::AliveCheck {
    Box::new(move || {
        let permitted = judged.still_permitted(&user);
        Box::pin(async move { permitted })
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
