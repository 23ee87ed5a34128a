//! `realmgate demo` pieces, reused by the tests: a development identity
//! provider that behaves like Entra ID v2 (`idp`) and an app that shows the
//! headers it receives (`app`).

pub mod app;
pub mod idp;
