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
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
home_realm_domains = ["contoso.example"]
group_names = { "{HR_GROUP}" = "HR Admins", "{ENG_GROUP}" = "Engineering" }
extended_profile = true

[[connection]]
name = "fabrikam"
display_name = "Fabrikam (demo tenant)"
type = "entra"
tenant = "fabrikam.example"
authority_host = "{IDP}"
graph_endpoint = "{IDP}/graph"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
home_realm_domains = ["fabrikam.example"]
group_names = { "{PARTNERS_GROUP}" = "Partners" }

[[route]]
name = "demo"
hosts = ["localhost", "127.0.0.1"]
upstream = "{APP}"
public = ["/favicon.ico"]
headers = "forwarded"
"#;

/// A running demo: the IdP, the app and the gateway in front of the app.
pub struct Demo {
    pub idp: idp::Idp,
    pub app: app::App,
    pub gateway: crate::server::Running,
}

impl Demo {
    /// `http://localhost:PORT/`, the page to open.
    pub fn url(&self) -> String {
        format!("http://localhost:{}/", self.gateway.addr.port())
    }
}

/// Starts the demo IdP, the demo app and the gateway (on 127.0.0.1:`port`;
/// 0 picks a free port), all on loopback only.
pub async fn start(port: u16) -> anyhow::Result<Demo> {
    let idp = idp::start(idp::IdpConfig::demo_default(), "127.0.0.1:0".parse()?)
        .await
        .context("cannot start the demo identity provider")?;
    let app = app::start("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the demo app")?;
    // A fresh session secret per run: demo sessions do not outlive the process.
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let toml = DEMO_CONFIG
        .replace("{IDP}", idp.base_url().trim_end_matches('/'))
        .replace("{APP}", app.url().trim_end_matches('/'))
        .replace("{PORT}", &port.to_string())
        .replace("{SECRET}", &secret)
        .replace("{HR_GROUP}", idp::DEMO_HR_GROUP)
        .replace("{ENG_GROUP}", idp::DEMO_ENGINEERING_GROUP)
        .replace("{PARTNERS_GROUP}", idp::DEMO_PARTNERS_GROUP)
        .replace("{CLIENT_ID}", idp::DEMO_CLIENT_ID)
        .replace("{CLIENT_SECRET}", idp::DEMO_CLIENT_SECRET);
    let settings =
        crate::config::load_str(&toml).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let gateway = crate::server::start(settings, None)
        .await
        .with_context(|| {
            format!("cannot start the gateway on 127.0.0.1:{port} (is the port in use? try --port)")
        })?;
    Ok(Demo { idp, app, gateway })
}

/// `realmgate demo`: starts everything, prints where to go and who can sign
/// in, and runs until Ctrl-C or SIGTERM.
pub async fn run(port: u16) -> anyhow::Result<()> {
    let demo = start(port).await?;
    let url = demo.url();
    println!();
    println!("realmgate demo is running (on 127.0.0.1 only).");
    println!();
    println!("  Open:          {url}");
    println!("  Your identity: {url}.auth/me");
    println!("  Sign out:      {url}.auth/logout");
    println!(
        "  Metrics:       http://{}/metrics",
        demo.gateway.admin_addr
    );
    println!();
    println!("Demo users (no password; pick one at the demo identity provider):");
    for user in idp::IdpConfig::demo_default().users() {
        println!("  {:<26} {}", user.email, user.description());
    }
    println!();
    println!("Press Ctrl-C to stop.");
    crate::server::wait_for_shutdown_signal().await;
    let Demo { idp, app, gateway } = demo;
    gateway.shutdown().await;
    drop(app);
    drop(idp);
    Ok(())
}
