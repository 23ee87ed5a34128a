//! Header operations on the request path: hop-by-hop removal (`hop`),
//! X-Forwarded-* and X-Request-Id (`forwarding`), identity header stripping and
//! injection (`identity`).

pub mod forwarding;
pub mod hop;
pub mod identity;
