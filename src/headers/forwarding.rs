//! X-Forwarded-For/-Proto/-Host and X-Request-Id: believed only from
//! `trusted_proxies`, always rewritten for the upstream.
//!
//! From a trusted peer (a load balancer): `X-Forwarded-For` gets the peer
//! appended, `-Proto`, `-Host` and `X-Request-Id` are kept when present and
//! well-formed. From anyone else all of them are replaced with what realmgate
//! saw itself, and the other client-address, scheme and host headers
//! (`Forwarded`, `X-Real-IP`, `True-Client-IP`, `X-Forwarded-Ssl`, ...) are
//! removed; routing and method overrides (`X-Original-URL`, ...) are removed
//! from every peer ([`spoofable`]), so an app can trust what it receives.
//!
//! "The peer" is the party that wrote the HTTP headers (SPEC 6.1): the TCP
//! peer, or the client a PROXY header declared, which the server believes
//! only from a TCP peer in `trusted_proxies` (`server::conn`). A PROXY
//! header that declares no client (`UNKNOWN`, `LOCAL`, AF_UNIX) leaves the
//! writer unknown: nothing it sent is believed.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::spoofable;
use crate::config::ServerSettings;
#[cfg(test)]
use crate::peer::trusted_proto;
use crate::peer::{first_proto, peer_is_trusted, ConnInfo};

pub use super::names::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};

/// Longest X-Request-Id accepted from a trusted proxy.
const MAX_REQUEST_ID: usize = 128;

/// The request id for this request: a trusted proxy's well-formed
/// `X-Request-Id`, else a fresh one.
pub fn request_id(server: &ServerSettings, headers: &HeaderMap, conn: &ConnInfo) -> HeaderValue {
    peer_is_trusted(server, conn)
        .then(|| {
            headers
                .get(X_REQUEST_ID)
                .filter(|v| is_token_like(v.as_bytes(), MAX_REQUEST_ID))
        })
        .flatten()
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// Rewrite the forwarding headers for the upstream. `host` is the client's
/// Host (or `:authority`) as received; `request_id` comes from [`request_id`].
pub fn apply(
    headers: &mut HeaderMap,
    server: &ServerSettings,
    conn: &ConnInfo,
    host: Option<&HeaderValue>,
    request_id: &HeaderValue,
) {
    let trusted = peer_is_trusted(server, conn);
    // Routing/method overrides from anyone, client-address/scheme/host
    // headers from an untrusted peer, other spellings of all of them
    // (before realmgate's own are set: fewer names to look at).
    spoofable::strip(headers, trusted);
    // X-Forwarded-For, -Proto, -Host and X-Request-Id: one growth of the map.
    headers.reserve(4);

    if trusted {
        let peer = conn.peer_header.to_str().unwrap_or_default();
        let earlier: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        let xff = earlier
            .into_iter()
            .chain(std::iter::once(peer))
            .collect::<Vec<_>>()
            .join(", ");
        set(headers, X_FORWARDED_FOR, &xff);
    } else {
        // The common case: only what realmgate saw, rendered once per connection.
        headers.insert(X_FORWARDED_FOR, conn.peer_header.clone());
    }

    let https = match trusted.then(|| first_proto(headers)).flatten() {
        Some(proto) => proto == "https",
        None => conn.tls,
    };
    let proto = HeaderValue::from_static(if https { "https" } else { "http" });
    headers.insert(X_FORWARDED_PROTO, proto);

    let trusted_host = trusted
        .then(|| {
            headers
                .get(X_FORWARDED_HOST)
                .filter(|v| is_token_like(v.as_bytes(), 255))
        })
        .flatten()
        .cloned();
    match trusted_host.or_else(|| host.cloned()) {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST, h);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }

    headers.insert(X_REQUEST_ID, request_id.clone());
}

/// Request ids rendered per batch: one buffer (and one shared handle) per
/// this many requests instead of an allocation each.
const IDS_PER_BATCH: usize = 64;
const ID_LEN: usize = 32;

thread_local! {
    /// This thread's rendered ids not handed out yet, front first.
    static IDS: std::cell::RefCell<bytes::Bytes> = const { std::cell::RefCell::new(bytes::Bytes::new()) };
}

/// A fresh request id: 128 random bits as 32 lowercase hex digits. Every id
/// is drawn separately from the thread's CSPRNG; ids are only rendered in
/// batches, each a slice of a shared buffer.
pub fn new_request_id() -> HeaderValue {
    let id = IDS
        .try_with(|ids| {
            let mut ids = ids.borrow_mut();
            if ids.len() < ID_LEN {
                *ids = render_ids(IDS_PER_BATCH);
            }
            ids.split_to(ID_LEN)
        })
        .unwrap_or_else(|_| render_ids(1));
    HeaderValue::from_maybe_shared(id).expect("hex digits are a valid header value")
}

/// `n` ids of 32 hex digits back to back.
fn render_ids(n: usize) -> bytes::Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(n * ID_LEN);
    for _ in 0..n {
        let id = rand::random::<u128>();
        out.extend((0..ID_LEN).map(|i| HEX[((id >> (124 - 4 * i)) & 0xf) as usize]));
    }
    out.into()
}

/// Non-empty, at most `max` bytes, visible ASCII only (no spaces, commas or controls).
fn is_token_like(v: &[u8], max: usize) -> bool {
    !v.is_empty() && v.len() <= max && v.iter().all(|b| b.is_ascii_graphic() && *b != b',')
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    // Built from an IpAddr, "http"/"https", or values already accepted as header values.
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    } else {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests;
