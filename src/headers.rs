//! Header operations on the request path: hop-by-hop removal (`hop`),
//! X-Forwarded-* and X-Request-Id (`forwarding`), identity header stripping and
//! injection (`identity`), routing/client-address headers only realmgate or a
//! trusted proxy may send (`spoofable`), W3C `traceparent` (`trace_context`).

pub mod forwarding;
pub mod hop;
pub mod identity;
pub mod names;
pub mod spoofable;
pub mod trace_context;
