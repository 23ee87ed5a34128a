//! Phase 3, authenticate: who is this? On a route with `api_audiences` a
//! bearer token, when sent, is the only credential looked at (an invalid one
//! is refused even next to a valid session cookie, `auth::bearer`); else
//! the session the store returns for the cookie's id, its tokens refreshed
//! first when about to expire (SPEC 5.2). A session whose connection left
//! the config is void. The answer is an [`AuthenticatedUser`], which only
//! this module can make.

pub mod user;

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;

pub use user::AuthenticatedUser;

use crate::auth::state::lookup_session;
use crate::auth::{bearer, refresh, AuthState};
use crate::config::{ConnectionSettings, RouteSettings};
use crate::respond::GatewayError;
use crate::session::store::SessionId;

/// An authenticated user and the connection that vouches for them:
/// borrowed from the config generation for a session (no shared count
/// changes per request), owned for a bearer token.
pub struct Authenticated<'s> {
    pub user: AuthenticatedUser,
    pub connection: Cow<'s, Arc<ConnectionSettings>>,
}

/// Authenticates a request to `route` by its bearer token (API routes) or
/// its session id (`phase::strip::credentials`, or the cookie read by
/// `/.auth/verify`). No credential, an unknown or expired session, a failed
/// refresh: `NotSignedIn`. A refused token: `InvalidToken`.
pub async fn authenticate<'s>(
    state: &'s AuthState,
    route: &RouteSettings,
    headers: &HeaderMap,
    session: Option<SessionId>,
) -> Result<Authenticated<'s>, GatewayError> {
    if !route.api_audiences.is_empty() {
        if let Some(token) = bearer::token(headers)? {
            // Boxed: token validation may fetch keys (a large future);
            // every request's future would otherwise carry its size.
            let caller = Box::pin(bearer::authenticate(state, route, token)).await?;
            return Ok(Authenticated {
                user: AuthenticatedUser::from_bearer(caller.user),
                connection: Cow::Owned(caller.connection),
            });
        }
    }
    let Some(id) = session else {
        return Err(GatewayError::NotSignedIn);
    };
    let user = lookup_session(state, &id)
        .await
        .ok_or(GatewayError::NotSignedIn)?;
    // Tokens about to expire are refreshed first (SPEC 5.2); a failed
    // refresh ends the session.
    let user = refresh::if_due(state, &id, user).await?;
    // Borrowed, not cloned: a clone would change the connection's shared
    // count on every request.
    let Some(connection) = state.connection(&user.connection) else {
        // The connection was removed from the config: the session is void.
        return Err(GatewayError::NotSignedIn);
    };
    Ok(Authenticated {
        user: AuthenticatedUser::from_session(user, id),
        connection: Cow::Borrowed(connection),
    })
}
