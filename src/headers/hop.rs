//! Hop-by-hop header removal (RFC 9110 7.6.1), including headers named by `Connection`.
//!
//! Runs on the request before authentication (so `Connection: X-Forwarded-User`
//! can never remove a header realmgate injects later) and on every upstream
//! response. Upgrade requests are detected before stripping and the two
//! headers a tunnel needs are put back by the proxy (`proxy::upgrade`).

use http::header::{HeaderName, CONNECTION, TE};
use http::HeaderMap;

/// Headers that describe one connection, never the message (RFC 9110 7.6.1,
/// RFC 9112, plus the legacy `Proxy-Connection` and the proxy auth pair,
/// which is consumed by the first proxy).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Remove hop-by-hop headers and every header `Connection` names.
///
/// One exception: `TE: trailers` is kept (only that value), because gRPC over
/// HTTP/2 needs it and the upstream client speaks HTTP/2 when the upstream
/// negotiates it; hyper drops every other `TE` value on HTTP/2 anyway.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let keep_te_trailers = headers.get_all(TE).iter().count() == 1
        && headers
            .get(TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_te_trailers {
        headers.insert(TE, http::HeaderValue::from_static("trailers"));
    }
}

/// The lowercased tokens of every `Connection` header (comma-separated lists).
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests;
