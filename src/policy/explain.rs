//! `realmgate explain` (placeholder until the integrator's implementation is
//! merged; it keeps the command line compiling with the final signature).

use std::path::Path;
use std::process::ExitCode;

use crate::config::Settings;

/// Prints which route, connection and policy decide `url` for an identity.
pub fn run(settings: &Settings, url: &str, claims: Option<&Path>, user: Option<&str>) -> ExitCode {
    let _ = (settings, url, claims, user);
    eprintln!("realmgate explain is not yet available in this build");
    ExitCode::FAILURE
}
