//! realmgate: a reverse-proxy authentication gateway.
//!
//! The request path: the `server` accepts a connection (believing a PROXY
//! header only from `trusted_proxies`; who the peer is and what of its word
//! counts is `peer`) and hands each request to `handler::handle` with its
//! config generation (`gateway`). The handler calls one module per phase,
//! in order (`phase::*`, top-level under `phase` so that the pipeline reads
//! as one list and each phase is a leaf the handler and `/.auth/verify`
//! share):
//! `route` (framing, Host, the canonical path of `pathnorm`, `router`) ->
//! `strip` (hop-by-hop, then identity headers and realmgate's cookies; here
//! `/.auth/*` leaves for `endpoints`) -> `authenticate` (bearer token or
//! session -> `AuthenticatedUser`) -> `authorize` (`policy` -> `Permit`) ->
//! `inject` (identity headers, `headers::identity`, from a permit only) ->
//! `forward` (`headers::forwarding`, `headers::spoofable`, `proxy`). What is
//! judged is what is forwarded (SPEC 6.1). `auth` holds the authentication
//! state, bearer tokens, refresh and sign-in; `endpoints` the other
//! `/.auth/*` endpoints. Every error becomes a response in exactly one place
//! (`respond`). No two request-path modules import each other (checked by
//! the script in the issue 18 notes); `server` <-> `admin` is the one loop
//! left (see `admin`).
//!
//! Errors are typed, one `thiserror` enum per module where they arise (e.g.
//! `server::StartError` wrapping `server::TlsError`), each message saying
//! what was wrong and what to do, with its cause in the same line. `anyhow`
//! is only the binary's edge: `cli`, and the `demo` subcommand (its IdP and
//! app are demo and test fixtures, not the gateway).
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connection;
pub mod demo;
pub mod discovery;
pub mod email;
pub mod endpoints;
pub mod fold;
/// Only with the `fuzzing` feature (fuzz/Cargo.toml) and in unit tests: not
/// part of the library's API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod handler;
pub mod headers;
pub mod healthcheck;
pub mod http_client;
pub mod ldap;
pub mod metrics;
pub mod migrate;
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
pub mod saml;
pub mod secret;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod ui;
