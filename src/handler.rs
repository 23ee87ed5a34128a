//! The request pipeline. One function per phase, in order (see `lib.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Settings;

/// What the server knows about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer, or the client address from a PROXY protocol header.
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// TLS was terminated by realmgate on this connection.
    pub tls: bool,
}

/// One config generation: everything a request needs, replaced whole on reload.
pub struct Gateway {
    pub settings: Arc<Settings>,
    pub auth: crate::auth::AuthState,
}
