//! Who is at the other end of a connection, and what of its word is
//! believed: [`ConnInfo`], the `trusted_proxies` check, and the scheme and
//! origin the browser used (for redirect URIs and cookie names).
//!
//! A leaf of the request path: it reads settings and the request's headers
//! and imports nothing else of realmgate's pipeline, so the server, the
//! phases, the endpoints and the header modules can all depend on it.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderValue};
use http::request::Parts;

use crate::config::ServerSettings;

/// Also `headers::names::X_FORWARDED_PROTO`; spelled here so that this leaf
/// imports no header module (which import it).
const X_FORWARDED_PROTO: http::header::HeaderName =
    http::header::HeaderName::from_static("x-forwarded-proto");

/// What the server knows about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer, or the client address from a PROXY protocol header.
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// TLS was terminated by realmgate on this connection.
    pub tls: bool,
    /// The peer's address as a header value (IPv4-mapped IPv6 as IPv4),
    /// rendered once per connection for `X-Forwarded-For`.
    pub peer_header: HeaderValue,
    /// A believed PROXY header named no client address (v1 `UNKNOWN`, v2
    /// `LOCAL`, v2 `PROXY` with an unspecified or AF_UNIX address): `peer`
    /// is then the balancer itself, but whoever wrote the HTTP headers is
    /// unknown, so they are never believed (SPEC 6.1).
    pub client_unknown: bool,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, tls: bool) -> ConnInfo {
        let text = peer.ip().to_canonical().to_string();
        let peer_header = HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
            .expect("an IP address is a valid header value");
        // Cloned once here so the value is shared: every request's clone is
        // then a reference count, not a copy.
        let _ = peer_header.clone();
        ConnInfo {
            peer,
            local,
            tls,
            peer_header,
            client_unknown: false,
        }
    }
}

/// True when the connection's peer is one of `trusted_proxies`: the TCP
/// peer, or the client a believed PROXY header declared (the party that
/// wrote the HTTP headers; SPEC 6.1). Never when a PROXY header declared no
/// client (`ConnInfo::client_unknown`): who wrote the headers is unknown.
pub fn peer_is_trusted(server: &ServerSettings, conn: &ConnInfo) -> bool {
    !conn.client_unknown && ip_is_trusted(&server.trusted_proxies, conn.peer.ip())
}

/// True when `ip` is in one of `trusted`, compared in canonical form: an
/// IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack socket
/// reports for an IPv4 client) is the IPv4 address. `config::validate`
/// brings mapped ranges (`::ffff:10.0.0.0/104`) to their IPv4 form, so an
/// address and a range match whichever way either is written.
pub fn ip_is_trusted(trusted: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The scheme the client used according to a trusted proxy's `X-Forwarded-Proto`
/// (None when the peer is not trusted or sent none). Lowercased.
///
/// Only `http` and `https` count; with a list, the first (client-facing) entry.
pub fn trusted_proto(server: &ServerSettings, parts: &Parts, conn: &ConnInfo) -> Option<String> {
    if !peer_is_trusted(server, conn) {
        return None;
    }
    first_proto(&parts.headers)
}

pub(crate) fn first_proto(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(X_FORWARDED_PROTO)?.to_str().ok()?;
    let first = value.split(',').next()?.trim().to_ascii_lowercase();
    matches!(first.as_str(), "http" | "https").then_some(first)
}

/// True when the browser reached realmgate over HTTPS: TLS here, or a trusted
/// proxy said so, or `public_origin` is https.
pub fn is_https(server: &ServerSettings, parts: &Parts, conn: &ConnInfo) -> bool {
    if let Some(origin) = &server.public_origin {
        return origin.scheme() == "https";
    }
    conn.tls || trusted_proto(server, parts, conn).as_deref() == Some("https")
}

/// The origin the browser used, for redirect URIs. Built only from
/// `public_origin`, or the scheme and the Host the router already matched to
/// a configured route (never from an unchecked header).
pub fn request_origin(server: &ServerSettings, parts: &Parts, conn: &ConnInfo) -> String {
    if let Some(origin) = &server.public_origin {
        return origin.as_str().trim_end_matches('/').to_string();
    }
    let scheme = if is_https(server, parts, conn) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", host_with_port(parts))
}

/// The Host as sent (with port), from the authority or the Host header.
fn host_with_port(parts: &Parts) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The host without port, lowercased.
pub fn host_of(parts: &Parts) -> String {
    let h = host_with_port(parts);
    match h.parse::<http::uri::Authority>() {
        Ok(a) => a.host().trim_end_matches('.').to_string(),
        Err(_) => String::new(),
    }
}

/// The address the client connected from: the TCP peer (or the client a
/// believed PROXY header declared); behind trusted proxies, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (what the
/// per-address failure limit of password sign-ins counts by).
pub fn client_address(
    server: &crate::config::ServerSettings,
    headers: &http::HeaderMap,
    conn: &ConnInfo,
) -> IpAddr {
    let peer = conn.peer.ip().to_canonical();
    if !peer_is_trusted(server, conn) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        let Ok(s) = v.to_str() else { return peer };
        for part in s.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip.to_canonical()),
                // An entry we cannot read: stop believing the list.
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !ip_is_trusted(&server.trusted_proxies, *ip))
        .unwrap_or(peer)
}
