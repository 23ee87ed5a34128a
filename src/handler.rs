//! The request pipeline. One function per phase, in order (see `lib.rs`):
//!
//! 1. [`check_framing`]: reject ambiguous framing (both Content-Length and
//!    Transfer-Encoding, differing Content-Lengths) and oversized headers,
//!    before anything else looks at the request (request smuggling defence;
//!    hyper rejects most of these already, this is the second line).
//! 2. Bring the path to its canonical form once (`pathnorm`, SPEC 6.1:
//!    dot segments resolved, or 400 when servers would read it differently),
//!    then route by Host + that path. An unknown host gets a fixed 421 page;
//!    its Host value is never used to build a URL. Everything after judges
//!    and forwards the same canonical path.
//! 3. Remove hop-by-hop headers (before auth, so `Connection` can never name
//!    a header realmgate injects). An Upgrade request is remembered first.
//! 4. `/.auth/*` goes to `auth::endpoint`; everything else through
//!    `auth::gate`, which strips identity headers and authenticates.
//! 5. X-Forwarded-* and X-Request-Id, then forward (`proxy`).
//! 6. Metrics and one access log line (target `access`) per request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use crate::config::RouteSettings;
pub use crate::gateway::{Gateway, GatewayRef, Shared};
use crate::headers::forwarding::{self, X_REQUEST_ID};
use crate::headers::hop::{connection_tokens, strip_hop_by_hop};
use crate::pathnorm::CanonicalTarget;
pub use crate::peer::ConnInfo;
use crate::proxy::Outbound;
use crate::respond::{self, Body, GatewayError};
use crate::router::Lookup;

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
    upstream_latency: Option<Duration>,
}

/// Serve one request: route, auth, forward; never panics, errors become responses.
pub async fn handle(gw: GatewayRef, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let mut rec = Record {
        method: req.method().clone(),
        host: None,
        route: None,
        user: None,
        // Decided first, so every answer (errors and `/.auth/*` too) carries it.
        request_id: forwarding::request_id(&gw.settings.server, req.headers(), &conn),
        upstream_latency: None,
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
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        let host = rec
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(crate::router::normalize_host)
            .unwrap_or_default();
        tracing::info!(
            target: "access",
            method = %rec.method,
            host = %host,
            path = %loggable_path(uri.path()),
            status,
            upstream_ms = rec.upstream_latency.map(|d| d.as_secs_f64() * 1000.0),
            route = route_name,
            user = rec.user.as_ref().map(|u| u.user_id.as_str()),
            request_id = rec.request_id.to_str().ok(),
            peer = %conn.peer.ip(),
        );
    }
    response
}

/// `uri` is the request's URI as received (`handle` keeps it for errors and
/// the log); the canonical target borrows its path.
async fn pipeline<'g>(
    gw: &'g Gateway,
    mut req: Request<Incoming>,
    uri: &Uri,
    conn: &ConnInfo,
    rec: &mut Record<'g>,
) -> Result<Response<Body>, GatewayError> {
    check_framing(req.headers(), gw.settings.server.max_header_bytes)?;

    // h2 carries the host in `:authority`; an HTTP/1.1 absolute-form target's
    // authority wins over Host (RFC 9112 3.2.2).
    let client_host = client_host(&req)?;
    let host_text = client_host
        .to_str()
        .map_err(|_| GatewayError::UnknownHost)?;
    // SPEC 6.1: the path is brought to its canonical form once, here; the
    // router, `/.auth/` dispatch and `public` judge that form, and the
    // request goes on (upstream too) with it as its path. A path no form can
    // settle for every upstream is a 400. Plain paths are borrowed.
    let target = match CanonicalTarget::parse(uri.path()) {
        Ok(t) => t,
        Err(e) if gw.auth.router.serves(host_text) => {
            rec.host = Some(client_host.clone());
            return Err(GatewayError::BadRequest(e.message()));
        }
        Err(_) => return Err(GatewayError::UnknownHost),
    };
    let found = gw.auth.router.lookup_target(host_text, &target);
    if matches!(found, Lookup::UnknownHost) {
        // Never echoed, not even in the log.
        return Err(GatewayError::UnknownHost);
    }
    rec.host = Some(client_host.clone());
    let route = match found {
        Lookup::Found(r) => r,
        Lookup::AmbiguousPath => {
            return Err(GatewayError::BadRequest(
                "The path selects different routes depending on how a server reads it (encoded slashes, ';' parameters, '//' or look-alike characters). Use the plain path.",
            ))
        }
        Lookup::UnknownHost | Lookup::NoPrefix => return Err(GatewayError::NotFound),
    };
    rec.route = Some(route);
    if target.rewritten() {
        // Dot segments resolved: from here on (endpoints, `gate`, the
        // upstream) the request's path is the canonical one.
        *req.uri_mut() = with_path(uri, target.path())?;
    }

    // Remember an Upgrade request before its headers go; hyper keeps the
    // client side of the connection in the request's extensions.
    let upgrade = upgrade_request(&req).map(|proto| (hyper::upgrade::on(&mut req), proto));
    strip_hop_by_hop(req.headers_mut());

    if crate::auth::is_auth_target(&target) {
        // Boxed: sign-in endpoints have large futures; the proxied requests'
        // futures (moved several times per request) stay small without them.
        return Ok(Box::pin(crate::auth::endpoint(&gw.auth, route, req, conn)).await);
    }

    let (mut parts, body) = req.into_parts();
    // A tunnel outlives this request: remember which session it belongs to
    // (before `gate` removes realmgate's cookies) so it can end with it.
    let tunnel_session = match upgrade {
        Some(_) => crate::auth::session_id(&gw.auth, &parts, conn),
        None => None,
    };
    let outcome = crate::auth::gate(&gw.auth, route, &target, &mut parts, conn).await?;
    let (permit, identity, tunnel_session) = match outcome {
        crate::auth::GateOutcome::Public => (None, None, None),
        crate::auth::GateOutcome::Permitted(p, i) => (Some(p), Some(i), tunnel_session),
        // No session: a cookie the request may carry besides the token is
        // not what authorized it, so it does not decide the tunnel's life
        // (which ends when the token expires, `tunnel_until`).
        crate::auth::GateOutcome::PermittedBearer(p, i) => (Some(p), Some(i), None),
    };
    // Only the access log reads it; the clone changes the session's shared
    // count, so it is taken only when that log is on.
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        rec.user = permit.as_ref().map(|p| p.user_arc().clone());
    }
    let tunnel_until = permit
        .as_ref()
        .map(|p| tunnel_deadline(p.user().expires_at));

    forwarding::apply(
        &mut parts.headers,
        &gw.settings.server,
        conn,
        Some(&client_host),
        &rec.request_id,
    );

    let tunnel_alive = match (&permit, tunnel_session) {
        (Some(_), Some(id)) => Some(session_alive(gw.auth.shared.sessions.clone(), id)),
        _ => None,
    };
    let out = Outbound {
        request: Request::from_parts(parts, body),
        identity,
        upgrade,
        tunnel_until,
        tunnel_alive,
    };
    let forwarded = gw.upstreams.forward(route, out, Some(&client_host)).await?;
    rec.upstream_latency = Some(forwarded.latency);
    Ok(forwarded.response)
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

/// `uri` with its path replaced by `path` (the query kept as sent).
fn with_path(uri: &Uri, path: &str) -> Result<Uri, GatewayError> {
    let bad = || GatewayError::BadRequest("The request target is not a valid path.");
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse::<PathAndQuery>().map_err(|_| bad())?);
    Uri::from_parts(parts).map_err(|_| bad())
}

/// The Host the client addressed: the URI authority (HTTP/2, absolute-form),
/// else the single Host header. HTTP/1.1 without a Host is a 400.
fn client_host<B>(req: &Request<B>) -> Result<HeaderValue, GatewayError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadRequest(
            "The request has more than one Host header.",
        ));
    }
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).map_err(|_| GatewayError::UnknownHost);
    }
    match header {
        Some(h) => Ok(h.clone()),
        None if req.version() == Version::HTTP_11 || req.version() == Version::HTTP_2 => {
            Err(GatewayError::BadRequest("The request has no Host header."))
        }
        // HTTP/1.0 without Host cannot name a route.
        None => Err(GatewayError::UnknownHost),
    }
}

/// Reject requests whose body framing is ambiguous or whose headers are too large.
pub fn check_framing(headers: &HeaderMap, max_header_bytes: usize) -> Result<(), GatewayError> {
    let has_te = headers.contains_key(TRANSFER_ENCODING);
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if has_te {
            return Err(GatewayError::BadRequest(
                "The request has both Content-Length and Transfer-Encoding.",
            ));
        }
        let first = parse_content_length(first.as_bytes())?;
        for other in lengths {
            if parse_content_length(other.as_bytes())? != first {
                return Err(GatewayError::BadRequest(
                    "The request has conflicting Content-Length headers.",
                ));
            }
        }
    }
    // Name + value + ": " + CRLF, as on the wire.
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > max_header_bytes {
        return Err(GatewayError::HeaderTooLarge);
    }
    Ok(())
}

/// A Content-Length value: digits only (a comma list of equal values is
/// rejected too, it only ever appears in smuggling attempts).
fn parse_content_length(v: &[u8]) -> Result<u64, GatewayError> {
    let bad = || GatewayError::BadRequest("The request has an invalid Content-Length.");
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

/// The `Upgrade` value when this is an HTTP/1.1 upgrade request
/// (`Connection: upgrade` + one `Upgrade`). HTTP/2 has no Upgrade.
///
/// Upgrades to HTTP itself (`h2c`, `HTTP/2.0`, ...) are never tunnelled: the
/// tunnel would carry further HTTP requests straight to the app, past the
/// per-request auth check ("h2c smuggling"). Such requests are forwarded as
/// plain requests, their `Upgrade` removed with the other hop-by-hop headers.
fn upgrade_request<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let mut values = req.headers().get_all(UPGRADE).iter();
    let proto = values.next()?.clone();
    if values.next().is_some() {
        return None;
    }
    let text = proto.to_str().ok()?;
    let speaks_http = text.split(',').any(|p| {
        let p = p.trim().to_ascii_lowercase();
        p.is_empty() || p.starts_with("h2") || p.starts_with("http")
    });
    if speaks_http {
        return None;
    }
    connection_tokens(req.headers())
        .any(|t| t == "upgrade")
        .then_some(proto)
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

/// When a tunnel of a session ending at `expires_at` (Unix seconds) must
/// close. A time `SystemTime` cannot hold (claims are bounded to year 9999,
/// so only a bug gets here) fails closed: a deadline already past.
pub(crate) fn tunnel_deadline(expires_at: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(expires_at))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests;
