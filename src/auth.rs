//! Authentication: its state, bearer tokens, token refresh,
//! the signed assertion, and sign-in (`login`, `callback`; reached
//! through `signin` from the `/.auth/*` endpoint router, `endpoints`).
//!
//! The pipeline's authentication step is `phase::authenticate`; the other
//! `/.auth/*` endpoints live in `endpoints`. This file only declares the
//! modules and re-exports what the sign-in modules name through `super::`
//! (the endpoint context `ctx`, the form helpers `form` and response
//! builders): it uses none of its children, so no import loop runs through
//! it. `ctx` and `form` serve every `/.auth/*` endpoint; they sit here, not
//! in `endpoints`, so that `auth` never imports `endpoints` (which imports
//! `auth`) while sign-in still lives here.

pub mod assertion;
pub(crate) mod bearer;
pub(crate) mod callback;
pub(crate) mod ctx;
pub(crate) mod form;
mod login;
pub(crate) mod refresh;
pub(crate) mod signin;
pub(crate) mod state;

pub use state::{AuthShared, AuthState};

pub(crate) use crate::respond::{html, redirect};
pub(crate) use ctx::Ctx;
pub(crate) use form::{form_get, form_pairs};

/// Unix time in seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
