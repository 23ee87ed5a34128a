//! The demo identity provider (mock Entra ID v2) as a standalone process, for
//! `bench/run.sh`: realmgate and Apache mod_auth_openidc sign in against the
//! same provider so their authenticated throughput can be compared.
//!
//! `cargo run --release --example mock_idp -- [PORT]` prints `READY <base url>`
//! once listening and serves until killed. Loopback only; never for real users.

use realmgate::demo::idp;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let running = idp::start(
        idp::IdpConfig::demo_default(),
        ([127, 0, 0, 1], port).into(),
    )
    .await?;
    println!("READY {}", running.base_url());
    tokio::signal::ctrl_c().await?;
    drop(running);
    Ok(())
}
