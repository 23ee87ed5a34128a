//! Authorization: `[route.allow]` turns an authenticated user into a
//! [`Permit`] or a denial. A `Permit` can only be made here, and header
//! injection and forwarding demand one, so no code path can forward a
//! protected request without passing this check.

use std::sync::Arc;

use crate::session::model::Session;

/// Proof that `user` may reach `route`. Private fields: only this module builds it.
#[derive(Debug, Clone)]
pub struct Permit {
    user: Arc<Session>,
    route: String,
}

impl Permit {
    /// The signed-in user this permit was issued for.
    pub fn user(&self) -> &Session {
        &self.user
    }

    /// The name of the route the permit is valid for.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// For unit tests of code that consumes permits (header injection).
    #[doc(hidden)]
    pub fn for_tests(user: Session, route: &str) -> Self {
        Permit {
            user: Arc::new(user),
            route: route.to_string(),
        }
    }
}
