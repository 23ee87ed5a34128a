//! Forwarding to upstreams: plain `http://` upstreams through realmgate's own
//! HTTP/1.1 connection pool ([`pool`]), `https://` through hyper-util's pooled
//! client with rustls; streaming bodies, Upgrade tunnels, connect/response
//! timeouts, never retrying a non-idempotent request.
//!
//! - Which exchange serves a request (own HTTP/1.1 codec, hyper's HTTP/1.1
//!   connection, hyper-util's client, upgrade) is decided in one place,
//!   [`exchange`], and the access log names it. Every failure of every
//!   exchange becomes its 502/504 in one place, [`failure`].
//! - `http://` upstreams: one [`pool::Pool`] per upstream address and
//!   `connect_timeout`, driven from the request's own task (no task hops per
//!   request); its target, `Host` and base path are computed once per config
//!   generation. Requests without a body use realmgate's own HTTP/1.1
//!   exchange (`pool::raw`, its wire format in `pool::raw::codec`), the
//!   others hyper's. Only a GET or HEAD that never got an answer is retried,
//!   once, on a new connection. A route with `upstream_client = "hyper"` has
//!   no pool: it is served like an `https://` upstream.
//! - `https://` upstreams: one pair of clients per upstream and distinct
//!   (`upstream_ca`, `connect_timeout`), built once per config generation:
//!   `any` speaks HTTP/1.1 or HTTP/2 as the upstream negotiates with ALPN;
//!   `h1` speaks only HTTP/1.1 and carries Upgrade requests. They connect to
//!   the upstream whatever the request URI's authority, which with
//!   `preserve_host` names the client's host: an HTTP/2 upstream reads it
//!   as `:authority`.
//! - Bodies are handed over as streams in both directions; nothing is buffered.
//! - `request_timeout` bounds the time until the upstream's response headers
//!   (504); bodies then stream without a limit. A refused or broken connection
//!   is 502, a connect timeout 504.
//! - The hyper-util client never retries (`retry_canceled_requests(false)`),
//!   and the pool resends only a GET or HEAD that hyper handed back unsent,
//!   so a POST reaches the app at most once.
//! - The path is the request path appended to the upstream's base path; the
//!   route's `path_prefix` is not removed. The handler has already replaced
//!   the request path with its canonical form (`pathnorm`, SPEC 6.1), so the
//!   upstream gets exactly the path that was judged.
//! - Several `cookie` fields (HTTP/2) reach the upstream as one `Cookie`
//!   line, joined with `"; "` (RFC 9113 8.2.3).

pub(crate) mod clients;
pub mod exchange;
pub mod failure;
pub mod pool;
mod upgrade;

pub use clients::{CaError, ClientError};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{
    HeaderValue, CONNECTION, CONTENT_LENGTH, COOKIE, EXPECT, HOST, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::capture_connection;

use crate::config::RouteSettings;
use crate::headers::hop::strip_hop_by_hop;
use crate::headers::identity::Injected;
use crate::respond::{Body, GatewayError};

pub use clients::ClientKey;
pub use exchange::Exchange;
pub use upgrade::{AliveCheck, CHECK_EVERY};

use failure::UpstreamError;

/// The upstream clients of one config generation.
pub struct Upstreams {
    /// Route name -> its clients and pool (one lookup per request).
    by_route: HashMap<String, RouteUpstream>,
}

/// What forwarding to one route needs.
struct RouteUpstream {
    /// Routes with the same key share them.
    clients: Arc<clients::Clients>,
    /// The connection pool, for a plain `http://` upstream with
    /// `upstream_client = "auto"` (HTTP/1.1 only; the others use `clients`).
    plain: Option<pool::PlainRoute>,
}

/// A request the handler has authorized, ready to go upstream.
pub struct Outbound {
    /// The body is boxed only on the paths that send one through hyper's
    /// client (most requests have none and use the pool's own exchange).
    pub request: Request<hyper::body::Incoming>,
    /// The signed-in user's identity headers, not yet in `request`: realmgate's
    /// own exchange writes them straight into the request head, the other
    /// paths add them to the header map. `request`'s headers went through
    /// `headers::identity::strip`, so none of these names is there.
    pub identity: Option<Injected>,
    /// Set for Upgrade requests: the client side of the tunnel, and the
    /// `Upgrade` value the client asked for.
    pub upgrade: Option<(OnUpgrade, HeaderValue)>,
    /// When the tunnel must close at the latest (the session's end).
    pub tunnel_until: Option<SystemTime>,
    /// Asked every few seconds while a tunnel is open; false closes it
    /// (the session was signed out or revoked).
    pub tunnel_alive: Option<AliveCheck>,
}

/// The upstream's answer.
pub struct Forwarded {
    pub response: Response<Body>,
    /// Time from sending the request to the upstream's response headers.
    pub latency: Duration,
}

impl Upstreams {
    /// Build the clients every route needs, with idle-connection shards for
    /// `workers` proxy threads. Fails on an unreadable or empty `upstream_ca`.
    pub fn new(routes: &[Arc<RouteSettings>], workers: usize) -> Result<Upstreams, ClientError> {
        let mut by_key: HashMap<ClientKey, Vec<&RouteSettings>> = HashMap::new();
        for route in routes {
            by_key.entry(ClientKey::of(route)).or_default().push(route);
        }
        let mut by_route = HashMap::new();
        let mut plain = pool::PlainRoute::for_routes(routes, workers);
        for (key, routes) in by_key {
            let built = clients::Clients::build(&key, &routes)?;
            for route in routes {
                let Some(clients) = built.get(&clients::upstream_origin(route)) else {
                    continue;
                };
                let up = RouteUpstream {
                    clients: clients.clone(),
                    plain: plain.remove(&route.name),
                };
                by_route.insert(route.name.clone(), up);
            }
        }
        Ok(Upstreams { by_route })
    }

    /// Which exchange serves `out` on `route` ([`Exchange::choose`]), for
    /// [`Upstreams::forward`] and the access log.
    pub fn exchange(&self, route: &RouteSettings, out: &Outbound) -> Exchange {
        let own_pool = self
            .by_route
            .get(&route.name)
            .is_some_and(|up| up.plain.is_some());
        Exchange::choose(
            own_pool,
            out.upgrade.is_some(),
            !out.request.body().is_end_stream(),
        )
    }

    /// Send `out` to `route`'s upstream by `exchange` (what
    /// [`Upstreams::exchange`] chose for it) and return its response
    /// (hop-by-hop headers removed). `client_host` is the Host the client
    /// sent, used with `preserve_host`. Every failure is classified by
    /// [`failure::classify`].
    pub async fn forward(
        &self,
        route: &RouteSettings,
        out: Outbound,
        exchange: Exchange,
        client_host: Option<&HeaderValue>,
    ) -> Result<Forwarded, GatewayError> {
        let up = self
            .by_route
            .get(&route.name)
            .ok_or(GatewayError::Internal)?;
        let Outbound {
            mut request,
            identity,
            upgrade,
            tunnel_until,
            tunnel_alive,
        } = out;
        let plain = up.plain.as_ref();
        *request.uri_mut() = match plain {
            Some(p) => p.origin_form(request.uri())?,
            None => {
                let uri = upstream_uri(route, request.uri())?;
                // hyper-util's clients connect to the upstream whatever the
                // URI's authority ([`clients::ToUpstream`]); an HTTP/2
                // upstream reads the host from it (`:authority`), not from
                // `Host` (Kestrel replaces `Host` with it, Go's net/http
                // takes `r.Host` from it). So with `preserve_host` it names
                // the client's host, as `Host` does.
                match client_host.filter(|_| route.preserve_host) {
                    Some(h) => with_host_authority(uri, h),
                    None => uri,
                }
            }
        };
        *request.version_mut() = Version::HTTP_11;
        let host = match (route.preserve_host, client_host, plain) {
            (true, Some(h), _) => h.clone(),
            (_, _, Some(p)) => p.host.clone(),
            _ => upstream_host(route)?,
        };
        request.headers_mut().insert(HOST, host);
        join_cookie_fields(request.headers_mut());
        // `Expect: 100-continue` was answered here: hyper's server sends the
        // client its 100 as soon as the body is read, and every exchange then
        // sends the body at once, whatever the upstream answers. Passed on,
        // the upstream would be told to wait for a body it has not invited:
        // one that answers early and takes the connection to carry no body
        // (no 100 was sent) reads the client's body as the next request. As
        // Envoy and h2o do, the expectation ends at the proxy that met it.
        request.headers_mut().remove(EXPECT);

        // NTLM and Negotiate authenticate the connection, not the request:
        // IIS (http.sys) serves every later request on it as that Windows
        // user, with or without credentials (`authPersistSingleRequest` is
        // false by default). A pooled connection would hand one user's
        // Windows identity to the next user's requests, of any route to the
        // same upstream. Such a request asks the upstream to close it, and
        // no exchange keeps it (hyper's clients read the request's `close`,
        // as does the own codec; an upgrade the upstream refuses would
        // otherwise go back to hyper-util's pool). NTLM's three legs need
        // one connection, so NTLM through realmgate fails (closed); one-leg
        // Negotiate (Kerberos) still works, WebSockets included.
        let close = binds_connection(request.headers());
        let websocket_key = upgrade
            .as_ref()
            .and_then(|_| request.headers().get(SEC_WEBSOCKET_KEY).cloned());
        if let Some((_, proto)) = &upgrade {
            let connection = if close { "upgrade, close" } else { "upgrade" };
            request
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static(connection));
            request.headers_mut().insert(UPGRADE, proto.clone());
        } else if close {
            request
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }

        let started = Instant::now();
        let failed = |e: UpstreamError<'_>| failure::classify(&route.name, exchange, e);
        if exchange != Exchange::RawH1 {
            // hyper sends the header map as it is; the own codec writes the
            // identity headers straight into the request head.
            if let Some(identity) = &identity {
                identity.apply(request.headers_mut());
            }
        }
        // Every exchange but the own one is boxed: their futures are large,
        // and every request's future would otherwise carry their size (it is
        // moved several times per request). The exchange itself is pinned
        // where it is built, so the timeout holds a pointer to it rather than
        // a copy of its 2 KiB; the deadline reuses `started` (one clock read
        // fewer).
        let exchanging = std::pin::pin!(async {
            let client = |r: Result<Response<hyper::body::Incoming>, _>| match r {
                Ok(r) => Ok(r.map(|b| b.map_err(Into::into).boxed())),
                Err(e) => Err(failed(UpstreamError::Client(&e))),
            };
            match (exchange, plain) {
                (Exchange::RawH1, Some(p)) => {
                    let extra = identity.as_ref().map_or(&[][..], Injected::wire);
                    p.pool
                        .send_raw(request.into_parts().0, extra)
                        .await
                        .map_err(|e| failed(UpstreamError::Pool(&e)))
                }
                (Exchange::HyperH1, Some(p)) => Box::pin(p.pool.send_with_body(boxed(request)))
                    .await
                    .map_err(|e| failed(UpstreamError::Pool(&e))),
                (Exchange::Upgrade, Some(p)) => Box::pin(p.pool.send_upgrade(boxed(request)))
                    .await
                    .map_err(|e| failed(UpstreamError::Pool(&e))),
                (Exchange::Upgrade, None) => {
                    client(Box::pin(up.clients.h1.request(boxed(request))).await)
                }
                (Exchange::HyperClient, None) => {
                    // A request with a body: its HTTP/1 connection must not
                    // go back to hyper-util's pool after an answer that may
                    // have left the body unread (`pool::keeps_after_a_body`).
                    // hyper-util hands it back when the answer's body ends,
                    // so it is marked at once; a request already waiting
                    // for a connection at that instant can still get it.
                    let captured =
                        (!request.body().is_end_stream()).then(|| capture_connection(&mut request));
                    let answer = Box::pin(up.clients.any.request(boxed(request))).await;
                    if let (Some(captured), Ok(r)) = (&captured, &answer) {
                        if r.version() < Version::HTTP_2 && !pool::keeps_after_a_body(r.status()) {
                            if let Some(connected) = captured.connection_metadata().as_ref() {
                                connected.poison();
                            }
                        }
                    }
                    client(answer)
                }
                // Not what `Upstreams::exchange` chooses for this route.
                (Exchange::RawH1 | Exchange::HyperH1, None) | (Exchange::HyperClient, Some(_)) => {
                    Err(GatewayError::Internal)
                }
            }
        });
        let deadline = tokio::time::Instant::from_std(started).checked_add(route.request_timeout);
        let result = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, exchanging).await,
            // A timeout past the clock's range ("1000000y") never fires.
            None => Ok(exchanging.await),
        };
        let latency = started.elapsed();
        let mut response = match result {
            Err(_elapsed) => {
                return Err(failed(UpstreamError::NoAnswerInTime(route.request_timeout)));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(r)) => r,
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some((client_side, asked)) = upgrade else {
                return Err(failed(UpstreamError::UnaskedSwitch));
            };
            // Only tunnel what the client asked for: an upstream that answers
            // 101 to anything would otherwise open a raw pipe past the gateway.
            let proto = response.headers().get(UPGRADE).cloned();
            if !proto.as_ref().is_some_and(|p| offered(&asked, p)) {
                return Err(failed(UpstreamError::UnofferedProtocol));
            }
            // A WebSocket switch must answer the client's key: a 101 from
            // something that is no WebSocket server (a status an attacker
            // picks, a handler reflecting headers) would otherwise leave a
            // raw pipe to the app, past every check and identity header.
            if proto.as_ref().is_some_and(upgrade::is_websocket)
                && !upgrade::answers_key(
                    websocket_key.as_ref(),
                    response.headers().get(SEC_WEBSOCKET_ACCEPT),
                )
            {
                return Err(failed(UpstreamError::UnansweredKey));
            }
            let upstream_side = hyper::upgrade::on(&mut response);
            upgrade::spawn_tunnel(
                route.name.clone(),
                client_side,
                upstream_side,
                tunnel_until,
                tunnel_alive,
            );
            let (mut parts, _) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(p) = proto {
                parts.headers.insert(UPGRADE, p);
            }
            return Ok(Forwarded {
                response: Response::from_parts(parts, crate::respond::empty()),
                latency,
            });
        }

        let (mut parts, body) = response.into_parts();
        if parts.headers.contains_key(TRANSFER_ENCODING) {
            // RFC 9112 6.3: the body was framed by Transfer-Encoding, so a
            // Content-Length beside it is wrong (or a smuggling attempt) and
            // must go before forwarding. hyper's client keeps it (the own
            // codec removes it): the client got the body cut at that length.
            parts.headers.remove(CONTENT_LENGTH);
        }
        strip_hop_by_hop(&mut parts.headers);
        Ok(Forwarded {
            response: Response::from_parts(parts, body),
            latency,
        })
    }
}

/// Several `cookie` fields (HTTP/2 clients split them, RFC 9113 8.2.3;
/// some HTTP/1.1 clients repeat the header) become one `Cookie` field, the
/// values joined with `"; "`, as an HTTP/1.1 upstream expects: apps that read
/// only the first line would otherwise miss cookies.
fn join_cookie_fields(headers: &mut http::HeaderMap) {
    let mut values = headers.get_all(COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for value in headers.get_all(COOKIE) {
        let value = value.as_bytes().trim_ascii();
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value);
    }
    // The joined bytes are valid header values and "; ".
    match HeaderValue::from_bytes(&joined) {
        Ok(v) if !joined.is_empty() => {
            headers.insert(COOKIE, v);
        }
        _ => {
            headers.remove(COOKIE);
        }
    }
}

/// True when an `Authorization` field names a scheme that authenticates the
/// connection rather than the request (NTLM, Negotiate, Kerberos), in any
/// case and after any leading whitespace (HTTP/2 keeps it; IIS skips it).
fn binds_connection(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|v| {
            let value = v.as_bytes().trim_ascii_start();
            let scheme = value
                .split(|b| b.is_ascii_whitespace() || *b == b',')
                .next()
                .unwrap_or_default();
            [&b"ntlm"[..], b"negotiate", b"kerberos"]
                .iter()
                .any(|s| scheme.eq_ignore_ascii_case(s))
        })
}

/// True when `chosen` (the upstream's `Upgrade`) is one of the protocols in `asked`.
fn offered(asked: &HeaderValue, chosen: &HeaderValue) -> bool {
    let (Ok(asked), Ok(chosen)) = (asked.to_str(), chosen.to_str()) else {
        return false;
    };
    let chosen = chosen.trim();
    !chosen.is_empty()
        && !chosen.contains(',')
        && asked
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case(chosen))
}

/// The upstream URI: upstream scheme and authority, upstream base path joined
/// with the request's path, the request's query.
pub fn upstream_uri(route: &RouteSettings, incoming: &Uri) -> Result<Uri, GatewayError> {
    let up = &route.upstream;
    let scheme: Scheme = up.scheme().parse().map_err(|_| GatewayError::Internal)?;
    let authority = upstream_authority(route)?;
    let base = up.path().trim_end_matches('/');
    let path = incoming.path();
    let path = if path.starts_with('/') { path } else { "/" };
    let pq = match incoming.query() {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let pq: PathAndQuery = pq
        .parse()
        .map_err(|_| GatewayError::BadRequest("The request target is not a valid path."))?;
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(pq)
        .build()
        .map_err(|_| GatewayError::Internal)
}

/// `uri` with the host of `host` (a Host value the router accepted) as its
/// authority, in the router's form: lowercase, no trailing dot, no port.
/// hyper-util pools connections by the URI's authority, so it must be one of
/// the few configured hosts: with the port, case or dot as sent, a client
/// naming `app:1`, `app:2`, ... (the router ignores them) would open a new
/// upstream connection per request and leave each idle in the pool.
/// `uri` unchanged when `host` has no such form.
fn with_host_authority(uri: Uri, host: &HeaderValue) -> Uri {
    let Some(authority) = host
        .to_str()
        .ok()
        .and_then(crate::router::normalize_host)
        .and_then(|h| match h.contains(':') {
            // An IPv6 address comes back without its brackets.
            true => Authority::try_from(format!("[{h}]")).ok(),
            false => Authority::try_from(h.as_ref()).ok(),
        })
    else {
        return uri;
    };
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(authority);
    Uri::from_parts(parts).unwrap_or(uri)
}

fn upstream_authority(route: &RouteSettings) -> Result<Authority, GatewayError> {
    let up = &route.upstream;
    let host = up.host_str().ok_or(GatewayError::Internal)?;
    let text = match up.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    text.parse().map_err(|_| GatewayError::Internal)
}

fn upstream_host(route: &RouteSettings) -> Result<HeaderValue, GatewayError> {
    HeaderValue::from_str(upstream_authority(route)?.as_str()).map_err(|_| GatewayError::Internal)
}

/// The request with its body boxed, for hyper's client, without the
/// client's trailer section: identity headers are stripped from the head
/// only, and an HTTP/2 upstream would receive trailers as a second HEADERS
/// frame (`X-Forwarded-User` included). A trailers frame becomes an empty
/// data frame, which hyper does not send; nothing upstream of realmgate
/// needs request trailers (gRPC's are in responses), and realmgate already
/// removes `Trailer`, so its HTTP/1.1 requests never declared any.
fn boxed<B>(request: Request<B>) -> Request<Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<crate::respond::BoxError>,
{
    request.map(|b| {
        b.map_frame(|frame| {
            if frame.is_trailers() {
                http_body::Frame::data(bytes::Bytes::new())
            } else {
                frame
            }
        })
        .map_err(Into::into)
        .boxed()
    })
}

#[cfg(test)]
mod tests;
