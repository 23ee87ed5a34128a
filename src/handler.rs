//! The request pipeline: the whole life of a request, one call per phase
//! (`phase::*`), in order:
//!
//! 1. **route** (`phase::route`): reject ambiguous framing (both
//!    Content-Length and Transfer-Encoding, differing Content-Lengths) and
//!    oversized headers before anything else looks at the request (request
//!    smuggling defence; hyper rejects most already, this is the second
//!    line); bring the path to its canonical form once (`pathnorm`, SPEC
//!    6.1: dot segments resolved, or 400 when servers would read it
//!    differently) and route by Host + that path. An unknown host gets a
//!    fixed 421 page; its Host value is never used to build a URL.
//! 2. **strip** (`phase::strip`): hop-by-hop headers (so `Connection` can
//!    never name a header realmgate injects; an Upgrade remembered first).
//!    `/.auth/*` goes to `endpoints::serve` here. Then identity headers and
//!    realmgate's own cookies, the session id taken out of them. A public
//!    path skips to 6 without identity.
//! 3. **authenticate** (`phase::authenticate`): bearer token or session ->
//!    `AuthenticatedUser`.
//! 4. **authorize** (`phase::authorize`): the route's policy ->
//!    `policy::Permit`, or 403.
//! 5. **inject** (`phase::inject`): the route profile's identity headers
//!    from the permit.
//! 6. **forward** (`phase::forward`): X-Forwarded-* and X-Request-Id, then
//!    the upstream exchange (`proxy`).
//!
//! Around them, [`handle`]: every error becomes a response in `respond`,
//! then metrics and one access log line (target `access`, `access_log`) per
//! request, finished when the response body is done.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;

use crate::config::{RouteAuth, RouteSettings};
pub use crate::gateway::{Gateway, GatewayRef, Shared};
use crate::headers::forwarding::{self, X_REQUEST_ID};
use crate::headers::trace_context::TraceParent;
pub use crate::peer::ConnInfo;
use crate::phase::route::{Routed, Unrouted};
use crate::phase::{authenticate, authorize, forward, inject, route, strip};
use crate::respond::{self, Body, GatewayError};

pub use crate::phase::forward::tunnel_deadline;
pub use crate::phase::route::{check_framing, client_host};
#[cfg(test)]
use crate::phase::strip::upgrade_request;
#[cfg(test)]
use http::{HeaderMap, Version};
#[cfg(test)]
use std::time::SystemTime;

/// What the access log line and metrics need, filled in as the request advances.
///
/// Only cheap handles are kept (reference-counted values, no formatting): the
/// log fields are rendered when a line is actually written, so a gateway
/// with the access log off pays nothing for them.
struct Record<'g> {
    method: Method,
    /// The client's Host once it named a route (an unknown host is never logged).
    host: Option<HeaderValue>,
    /// Borrowed from the generation: no shared count changes per request.
    route: Option<&'g RouteSettings>,
    user: Option<Arc<crate::session::model::Session>>,
    request_id: HeaderValue,
    /// The W3C trace context sent upstream (`headers::trace_context`).
    trace: TraceParent,
    /// The access log is on (decided once per request).
    log: bool,
    upstream_latency: Option<Duration>,
    /// Which exchange served the request (`proxy::Exchange::name`).
    exchange: Option<&'static str>,
}

/// Serve one request: route, auth, forward; never panics, errors become responses.
pub async fn handle(gw: GatewayRef, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let log = tracing::enabled!(target: "access", tracing::Level::INFO);
    // What only the access log needs, read before the request moves on.
    let logged = log.then(|| Arrival {
        started: std::time::Instant::now(),
        client: crate::peer::client_address(&gw.settings.server, req.headers(), &conn),
        user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
    });
    let mut rec = Record {
        method: req.method().clone(),
        host: None,
        route: None,
        user: None,
        // Decided first, so every answer (errors and `/.auth/*` too) carries it.
        request_id: forwarding::request_id(&gw.settings.server, req.headers(), &conn),
        trace: TraceParent::of(req.headers()),
        log,
        upstream_latency: None,
        exchange: None,
    };
    // What `error_response` looks at, kept before the request moves on
    // (only the headers that choose HTML or JSON, not the whole map).
    let negotiation = respond::Negotiation::of(req.headers());
    let uri = req.uri().clone();
    // Not boxed here: the caller boxes this whole future in place
    // (`server::conn::dispatch`).
    let mut response = match pipeline(&gw, req, &uri, &conn, &mut rec).await {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, GatewayError::Internal) {
                let path = loggable_path(uri.path());
                tracing::error!(%path, "internal error while serving a request");
            }
            respond::error_response(&e, &negotiation, &rec.method, &uri, gw.pages())
        }
    };
    if !response.headers().contains_key(X_REQUEST_ID) {
        response
            .headers_mut()
            .insert(X_REQUEST_ID, rec.request_id.clone());
    }
    let status = response.status().as_u16();
    let route_name = rec.route.as_ref().map_or("", |r| r.name.as_str());
    gw.metrics
        .record_request(route_name, status, rec.upstream_latency);
    if let Some(arrival) = logged {
        let host = rec
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(crate::router::normalize_host)
            .unwrap_or_default();
        let format = crate::access_log::format();
        let line = crate::access_log::start(
            format,
            &crate::access_log::Fields {
                method: rec.method.as_str(),
                host: &host,
                path: uri.path().as_bytes(),
                status,
                upstream: rec.upstream_latency,
                client: arrival.client,
                peer: conn.peer_header.as_bytes(),
                user: rec.user.as_ref().map(|u| u.user_id.as_str()),
                route: rec.route.map(|r| r.name.as_str()),
                exchange: rec.exchange,
                request_id: rec.request_id.as_bytes(),
                traceparent: rec.trace.value.as_bytes(),
                user_agent: arrival.user_agent.as_ref().map(HeaderValue::as_bytes),
            },
            std::time::SystemTime::now(),
        );
        response = response
            .map(|body| crate::access_log::Logged::wrap(body, line, format, arrival.started));
    }
    response
}

/// What the access log keeps from the request as it arrived.
struct Arrival {
    started: std::time::Instant,
    /// The client behind trusted proxies (`peer::client_address`).
    client: std::net::IpAddr,
    user_agent: Option<HeaderValue>,
}

/// `uri` is the request's URI as received (`handle` keeps it for errors and
/// the log); the canonical target borrows its path. One call per phase.
async fn pipeline<'g>(
    gw: &'g Gateway,
    mut req: Request<Incoming>,
    uri: &Uri,
    conn: &ConnInfo,
    rec: &mut Record<'g>,
) -> Result<Response<Body>, GatewayError> {
    // 1. Route: framing, Host, canonical path, route.
    check_framing(req.headers(), gw.settings.server.max_header_bytes)?;
    // h2 carries the host in `:authority`; an HTTP/1.1 absolute-form target's
    // authority wins over Host (RFC 9112 3.2.2).
    let client_host = client_host(&req)?;
    let host_text = client_host
        .to_str()
        .map_err(|_| GatewayError::UnknownHost)?;
    let Routed { route, target } = match route::route(&gw.auth.router, host_text, uri.path()) {
        Ok(routed) => routed,
        Err(Unrouted { error, host_served }) => {
            if host_served {
                rec.host = Some(client_host.clone());
            }
            return Err(error);
        }
    };
    rec.host = Some(client_host.clone());
    rec.route = Some(route);
    if target.rewritten() {
        // Dot segments resolved: from here on (endpoints, the phases, the
        // upstream) the request's path is the canonical one.
        *req.uri_mut() = route::with_path(uri, target.path())?;
    }

    // 2. Strip, first step: hop-by-hop headers (an Upgrade remembered).
    let upgrade = strip::hop_by_hop(&mut req);
    if crate::endpoints::is_own_target(&gw.auth.router, host_text, route, &target) {
        // Boxed: sign-in endpoints have large futures; the proxied requests'
        // futures (moved several times per request) stay small without them.
        return Ok(Box::pin(crate::endpoints::serve(&gw.auth, route, req, conn)).await);
    }
    // Only for what is forwarded: forward auth reads X-Forwarded-Host as
    // the original request's host (`endpoints::verify`).
    route::check_forwarded_host(
        &gw.auth.router,
        crate::peer::peer_is_trusted(&gw.settings.server, conn),
        req.headers(),
        route,
        &target,
    )?;
    let public = target.is_public(&route.public);
    // Next.js's image optimizer reads another path from the query.
    let public = route::check_next_image(
        &gw.auth.router,
        host_text,
        uri.query(),
        &target,
        route,
        public,
    )?;
    // WebDAV COPY/MOVE write where `Destination` says: judged as the target is.
    route::check_destination(&gw.auth.router, host_text, req.headers(), route, public)?;
    route::check_subtree(
        &gw.auth.router,
        host_text,
        req.method(),
        req.headers(),
        route,
        &target,
    )?;
    // 2. Strip, second step: identity headers and realmgate's cookies.
    let (mut parts, body) = req.into_parts();
    let session_id = strip::credentials(&gw.auth, &mut parts, conn);
    // An upgrade nobody was judged for still gets a tunnel that a reload
    // can end (`forward::AuthorizedBy::Anonymous`).
    let anonymous = || upgrade.is_some().then(forward::Tunnel::anonymous);
    let (identity, tunnel) = if public {
        (None, anonymous())
    } else {
        // 3. Authenticate. On an `auth = "optional"` route (SPEC 5.10) no
        // session (none, unknown, expired) is an anonymous request; a
        // refused bearer token is still refused.
        let optional = route.auth == RouteAuth::Optional;
        match authenticate::authenticate(&gw.auth, route, &parts.headers, session_id).await {
            Err(GatewayError::NotSignedIn) if optional => (None, anonymous()),
            Err(e) => return Err(e),
            Ok(authenticated) => {
                let connection = authenticated.connection;
                // A tunnel outlives this request: it ends with the session that
                // authorized it. A bearer token has none: a cookie the request may
                // carry besides the token is not what authorized it (the tunnel
                // ends when the token expires, `tunnel_until`).
                let tunnel_session = match upgrade {
                    Some(_) => authenticated.user.session_id().cloned(),
                    None => None,
                };
                // 4. Authorize. An optional route has no `allow` (`check`
                // refuses one): only its `connections` can deny, and a user
                // of another connection is anonymous there, as without a session.
                match authorize::authorize(route, &connection, authenticated.user) {
                    Err(GatewayError::Denied(_)) if optional => (None, anonymous()),
                    Err(e) => return Err(e),
                    Ok(permit) => {
                        // 5. Inject.
                        let injected =
                            inject::inject(&gw.auth, route, &mut parts, conn, &permit, &connection);
                        // Only the access log reads it; the clone changes the session's shared
                        // count, so it is taken only when that log is on.
                        if rec.log {
                            rec.user = Some(permit.user_arc().clone());
                        }
                        let until = Some(forward::tunnel_deadline(permit.user().expires_at));
                        let tunnel = match tunnel_session {
                            Some(id) => Some(forward::AuthorizedBy::Session(id)),
                            None if upgrade.is_some() => Some(forward::AuthorizedBy::Token {
                                user: permit.user_arc().clone(),
                                audiences: route.api_audiences.clone(),
                            }),
                            None => None,
                        }
                        .map(|by| forward::Tunnel { until, by });
                        (Some(injected), tunnel)
                    }
                }
            }
        }
    };

    // 6. Forward.
    let forwarded = forward::forward(
        gw,
        route,
        conn,
        &client_host,
        &rec.request_id,
        &rec.trace,
        (parts, body),
        identity,
        upgrade,
        tunnel,
        &mut rec.exchange,
    )
    .await?;
    rec.upstream_latency = Some(forwarded.latency);
    Ok(forwarded.response)
}

/// The path for logs: without the query (it may hold tokens), control
/// characters escaped, at most 512 bytes.
fn loggable_path(path: &str) -> String {
    // One allocation (not one per character).
    let mut out = String::with_capacity(path.len().min(600));
    for c in path.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.len() > 512 {
        let mut cut = 512;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
