//! realmgate: a reverse-proxy authentication gateway.
//!
//! The request path (see `handler`): the `server` accepts a connection
//! (believing a PROXY header only from `trusted_proxies`) and hands each
//! request to `handler::handle`, which brings its path to one canonical form
//! (`pathnorm`), routes it (`router`), strips every identity header
//! (`headers::identity`), serves `/.auth/*` itself (`auth`), lets public paths
//! through, and for everything else loads the session (`session`) or bearer
//! token, authorizes (`policy`), injects identity headers and forwards
//! (`proxy`) with the routing and client-address headers only realmgate or a
//! trusted proxy may set (`headers::forwarding`, `headers::spoofable`). What
//! is judged is what is forwarded (SPEC 6.1). Every error becomes a response
//! in exactly one place (`respond`).
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod email;
pub mod endpoints;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod handler;
pub mod headers;
pub mod http_client;
pub mod metrics;
pub mod oidc;
pub mod pathnorm;
pub mod peer;
pub mod per_thread;
pub mod phase;
pub mod policy;
pub mod proxy;
pub mod redirect;
pub mod respond;
pub mod router;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod ui;
