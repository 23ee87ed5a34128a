//! Forwarding to upstreams: pooled hyper-util client (http, https with rustls),
//! streaming bodies, Upgrade tunnels, connect/response timeouts, never retrying
//! a non-idempotent request.
//!
//! OWNER: engine-core helper.
