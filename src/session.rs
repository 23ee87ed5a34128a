//! Sessions: the stored [`model::Session`], the [`store::SessionStore`] trait and
//! its implementations, the signed session-id cookie and the short-lived
//! pending-login state cookie.

pub mod cookie;
pub mod memory;
pub mod model;
pub mod state;
pub mod store;
