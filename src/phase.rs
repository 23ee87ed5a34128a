//! The phases of a proxied request, one module each, in the order
//! `handler::pipeline` calls them:
//!
//! 1. [`route`]: framing checks, the Host, the canonical path, the route.
//! 2. [`strip`]: hop-by-hop headers (an Upgrade remembered first), then
//!    every identity header and realmgate's own cookies (the session id
//!    taken out of them).
//! 3. [`authenticate`]: a bearer token or the session the store returns
//!    becomes an [`authenticate::AuthenticatedUser`] (the only way to get one).
//! 4. [`authorize`]: the route's policy turns it into a
//!    [`crate::policy::Permit`] (the only way to get one) or a 403.
//! 5. [`inject`]: the route profile's identity headers, rendered from a
//!    permit (`headers::identity::Injected`, only made from one).
//! 6. [`forward`]: X-Forwarded-*, then the upstream exchange.
//!
//! `/.auth/*` requests leave after `strip`'s first step for `endpoints`;
//! `/.auth/verify` runs `authenticate`, `authorize` and `inject` itself.
//! The phases import each other only forwards (no loops); all of them are
//! leaves below `handler` and `endpoints`.

pub mod authenticate;
pub mod authorize;
pub mod forward;
pub mod inject;
pub mod route;
pub mod strip;
