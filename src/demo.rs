//! `realmgate demo` pieces, reused by the tests: a development identity
//! provider that behaves like Entra ID v2 (`idp`) and an app that shows the
//! headers it receives (`app`).

pub mod app;
pub mod idp;

/// `realmgate demo` (placeholder until the integrator's runner is merged).
pub async fn run(port: u16) -> anyhow::Result<()> {
    anyhow::bail!("realmgate demo (port {port}) is not yet available in this build")
}
