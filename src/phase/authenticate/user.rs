//! The proof of authentication. A leaf (it imports no phase), so that the
//! policy can demand one without an import loop.

use std::sync::Arc;

use crate::session::model::Session;
use crate::session::store::SessionId;

/// A user whose identity realmgate verified, for one request: from a
/// verified bearer token or a session the store returned
/// (`phase::authenticate`), or from a verified ID token at the end of
/// sign-in (`auth::callback`, `AuthenticatedUser::signed_in`).
///
/// Private fields, and constructors visible only to `phase::authenticate`
/// (plus the documented one for the callback): no other code can claim a
/// user is authenticated. `policy::authorize` takes one, so no code can get
/// a `Permit` (and so identity headers) for a user nobody authenticated.
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

    /// The user of a sign-in whose ID token `_verified` was verified
    /// (`oidc::Provider`: signature, issuer, audience, nonce, times), with
    /// the session built from it and stored under `id`. Only the callback
    /// calls this; holding a verified token is the proof.
    #[allow(dead_code)] // The callback takes it up with the connection seam (issue 18 item 4).
    pub(crate) fn signed_in(
        _verified: &crate::oidc::VerifiedIdToken,
        user: Arc<Session>,
        id: SessionId,
    ) -> AuthenticatedUser {
        AuthenticatedUser {
            user,
            session: Some(id),
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
