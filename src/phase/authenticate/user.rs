//! The proof of authentication. A leaf (it imports no phase), so that the
//! policy can demand one without an import loop.

use std::sync::Arc;

use crate::session::model::Session;
use crate::session::store::SessionId;

/// A user whose identity realmgate verified, for one request: from a
/// verified bearer token or a session the store returned
/// (`phase::authenticate`). A session itself is made only from an identity
/// a connection kind verified (`connection::VerifiedIdentity`, the one
/// `Session::new`), so a verified ID token, assertion or directory bind is
/// behind every stored session.
///
/// Private fields, and constructors visible only to `phase::authenticate`:
/// no other code can claim a
/// user is authenticated. `policy::authorize` takes one, so no code can get
/// a `Permit` (and so identity headers) for a user nobody authenticated.
///
/// Outside the crate nothing can make one either:
///
/// ```compile_fail
/// use realmgate::phase::authenticate::AuthenticatedUser;
/// use realmgate::session::store::SessionId;
/// fn forge(s: std::sync::Arc<realmgate::session::model::Session>) -> AuthenticatedUser {
///     AuthenticatedUser::from_session(s, SessionId::generate())
/// }
/// ```
///
/// ```compile_fail
/// use realmgate::phase::authenticate::AuthenticatedUser;
/// fn forge(user: std::sync::Arc<realmgate::session::model::Session>) -> AuthenticatedUser {
///     AuthenticatedUser { user, session: None }
/// }
/// ```
#[derive(Debug)]
pub struct AuthenticatedUser {
    user: Arc<Session>,
    /// The session the user came with (none for a bearer token).
    session: Option<SessionId>,
}

impl AuthenticatedUser {
    /// The session the store returned for `id`.
    pub(super) fn from_session(user: Arc<Session>, id: SessionId) -> AuthenticatedUser {
        AuthenticatedUser {
            user,
            session: Some(id),
        }
    }

    /// The caller of a verified bearer token (`auth::bearer`).
    pub(super) fn from_bearer(user: Arc<Session>) -> AuthenticatedUser {
        AuthenticatedUser {
            user,
            session: None,
        }
    }

    /// For unit tests of code that consumes the proof (the policy).
    #[cfg(test)]
    pub(crate) fn for_tests(user: Session) -> AuthenticatedUser {
        AuthenticatedUser {
            user: Arc::new(user),
            session: None,
        }
    }

    /// The user.
    pub fn user(&self) -> &Session {
        &self.user
    }

    /// The session id the user came with; none for a bearer token.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// The user's shared handle, consumed by the policy (moved into the
    /// `Permit`: no reference count changes).
    pub(crate) fn into_user(self) -> Arc<Session> {
        self.user
    }
}
