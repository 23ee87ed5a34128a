//! `realmgate demo` pieces, reused by the tests: a development identity
//! provider that behaves like Entra ID v2 (`idp`) and an app that shows the
//! headers it receives (`app`). [`run`] starts both and the gateway in front
//! of them, on 127.0.0.1 only.

pub mod app;
pub mod idp;

use anyhow::Context as _;
use rand::RngCore;

/// The embedded demo configuration. `{IDP}`, `{APP}`, `{PORT}` and
/// `{SECRET}` are filled in at start.
pub const DEMO_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{PORT}"
shutdown_grace = "2s"

[admin]
listen = "127.0.0.1:0"

[session]
secret = "{SECRET}"
lifetime = "8h"
idle_timeout = "1h"

[ui]
title = "Sign in to the realmgate demo"

[[connection]]
name = "contoso"
display_name = "Contoso (demo tenant)"
type = "entra"
tenant = "contoso.example"
authority_host = "{IDP}"
graph_endpoint = "{IDP}/graph"
client_id = "demo-client"
client_secret = "demo-secret"
home_realm_domains = ["contoso.example"]
group_names = { "{HR_GROUP}" = "HR Admins" }
extended_profile = true

[[connection]]
name = "fabrikam"
display_name = "Fabrikam (demo tenant)"
type = "entra"
tenant = "fabrikam.example"
authority_host = "{IDP}"
graph_endpoint = "{IDP}/graph"
client_id = "demo-client"
client_secret = "demo-secret"
home_realm_domains = ["fabrikam.example"]

[[route]]
name = "demo"
hosts = ["localhost", "127.0.0.1"]
upstream = "{APP}"
public = ["/favicon.ico"]
headers = "forwarded"
"#;

/// Starts the demo IdP, the demo app and the gateway; prints where to go;
/// runs until Ctrl-C or SIGTERM.
pub async fn run(port: u16) -> anyhow::Result<()> {
    let idp = idp::start(idp::IdpConfig::demo_default(), "127.0.0.1:0".parse()?)
        .await
        .context("cannot start the demo identity provider")?;
    let app = app::start("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the demo app")?;
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let toml = DEMO_CONFIG
        .replace("{IDP}", idp.base_url().trim_end_matches('/'))
        .replace("{APP}", app.url().trim_end_matches('/'))
        .replace("{PORT}", &port.to_string())
        .replace("{SECRET}", &secret)
        .replace("{HR_GROUP}", idp::DEMO_HR_GROUP);
    let settings =
        crate::config::load_str(&toml).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let running = crate::server::start(settings, None)
        .await
        .with_context(|| {
            format!("cannot start the gateway on 127.0.0.1:{port} (is the port in use? try --port)")
        })?;
    let url = format!("http://localhost:{}/", running.addr.port());
    println!();
    println!("realmgate demo is running.");
    println!();
    println!("  Open:          {url}");
    println!("  Your identity: {url}.auth/me");
    println!("  Sign out:      {url}.auth/logout");
    println!("  Metrics:       http://{}/metrics", running.admin_addr);
    println!();
    println!("Demo users (no password; pick one at the demo identity provider):");
    for user in idp::IdpConfig::demo_default().users() {
        println!("  {:<28} {}", user.email, user.description());
    }
    println!();
    println!("Press Ctrl-C to stop.");
    crate::server::wait_for_shutdown_signal().await;
    running.shutdown().await;
    drop(app);
    drop(idp);
    Ok(())
}
