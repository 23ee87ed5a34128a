//! X-Forwarded-For/-Proto/-Host and X-Request-Id: believed only from
//! `trusted_proxies`, always rewritten for the upstream.
//!
//! OWNER: engine-core helper.

use http::request::Parts;

use crate::config::ServerSettings;
use crate::handler::ConnInfo;

/// True when the connection's peer is one of `trusted_proxies`.
pub fn peer_is_trusted(server: &ServerSettings, conn: &ConnInfo) -> bool {
    let _ = (server, conn);
    todo!("engine-core")
}

/// The scheme the client used according to a trusted proxy's `X-Forwarded-Proto`
/// (None when the peer is not trusted or sent none). Lowercased.
pub fn trusted_proto(server: &ServerSettings, parts: &Parts, conn: &ConnInfo) -> Option<String> {
    let _ = (server, parts, conn);
    todo!("engine-core")
}
