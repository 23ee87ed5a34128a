//! Hop-by-hop header removal (RFC 9110 7.6.1), including headers named by `Connection`.
//!
//! Runs on the request before authentication (so `Connection: X-Forwarded-User`
//! can never remove a header realmgate injects later) and on every upstream
//! response. Upgrade requests are detected before stripping and the two
//! headers a tunnel needs are put back by the proxy (`proxy::upgrade`).

use http::header::{
    HeaderName, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::HeaderMap;

/// Headers that describe one connection, never the message (RFC 9110 7.6.1,
/// RFC 9112, plus the legacy `Proxy-Connection` and the proxy auth pair,
/// which is consumed by the first proxy). Pre-built names: no parsing or
/// allocation per request.
const HOP_BY_HOP: [HeaderName; HOP_COUNT] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

const HOP_COUNT: usize = 9;

/// Index of `TE` in [`HOP_BY_HOP`].
const TE_INDEX: usize = 3;

/// Remove hop-by-hop headers and every header `Connection` names.
///
/// One exception: `TE: trailers` is kept (only that value), because gRPC over
/// HTTP/2 needs it and the upstream client speaks HTTP/2 when the upstream
/// negotiates it; hyper drops every other `TE` value on HTTP/2 anyway.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (no hashing) finds which are present; most
    // requests carry none or only `Connection`.
    let mut present = [false; HOP_COUNT];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    // Names `Connection` lists, other than the ones removed anyway: usually
    // none besides `keep-alive`, which is compared as bytes, never parsed
    // into a name: usually no allocation.
    let named: Vec<HeaderName> = if present[0] {
        headers
            .get_all(CONNECTION)
            .iter()
            .filter(|v| v.to_str().is_ok())
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .filter(|t| {
                !HOP_BY_HOP
                    .iter()
                    .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(t))
            })
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect()
    } else {
        Vec::new()
    };
    let keep_te_trailers = present[TE_INDEX]
        && headers.get_all(TE).iter().count() == 1
        && headers
            .get(TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named {
        headers.remove(name);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
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
