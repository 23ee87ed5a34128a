//! Phase 6, forward: X-Forwarded-* and X-Request-Id (believed only from
//! `trusted_proxies`, `headers::forwarding`), the W3C `traceparent`
//! (`headers::trace_context`), then the upstream exchange
//! (`proxy`). A tunnel (WebSocket) ends with the session or token that
//! authorized it.

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

/// What authorized a request, for its tunnel: when it must close, and the
/// session whose end closes it too (none for a bearer token).
pub struct Tunnel {
    pub until: SystemTime,
    pub session: Option<SessionId>,
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
    let (tunnel_until, tunnel_session) = match tunnel {
        Some(t) => (Some(t.until), t.session),
        None => (None, None),
    };
    let tunnel_alive = tunnel_session.map(|id| session_alive(gw.auth.shared.sessions.clone(), id));
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

/// A tunnel's liveness check: the session still exists in the store. A
/// store error keeps the tunnel (it was authorized; the next check decides).
/// Each check also counts as activity for the session's idle timeout.
fn session_alive(
    store: Arc<dyn crate::session::store::SessionStore>,
    id: crate::session::store::SessionId,
) -> crate::proxy::AliveCheck {
    Box::new(move || {
        let (store, id) = (store.clone(), id.clone());
        Box::pin(async move {
            match store.get(&id).await {
                Ok(found) => found.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "session store failed while checking a tunnel");
                    true
                }
            }
        })
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
