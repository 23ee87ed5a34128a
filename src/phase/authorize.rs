//! Phase 4, authorize: may this user reach this route? `policy::authorize`
//! turns an [`AuthenticatedUser`] into a `Permit` (which only the policy
//! makes) or a denial, logged here and answered 403 by `respond`.

use crate::config::{ConnectionSettings, RouteSettings};
use crate::phase::authenticate::AuthenticatedUser;
use crate::policy::{self, Permit};
use crate::respond::GatewayError;

/// The route's policy for `user`, who signed in through `connection`.
pub fn authorize(
    route: &RouteSettings,
    connection: &ConnectionSettings,
    user: AuthenticatedUser,
) -> Result<Permit, GatewayError> {
    policy::authorize(route, Some(connection), user).map_err(|denied| {
        tracing::info!(
            route.name = %route.name,
            user.id = %denied.user.user_id,
            reason = %denied.reason,
            "access denied"
        );
        GatewayError::Denied(Box::new(denied))
    })
}
