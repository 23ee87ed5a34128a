//! Tier 3: a real browser (Debian chromium driven by playwright-core) opens a
//! protected URL, types the email on realmgate's login page, picks the user
//! at the identity provider, and lands on the page it first asked for, which
//! shows the identity headers the app received.

use std::time::Duration;

use realmgate::demo::{app, idp};

use crate::node::run_script;
use crate::util::{echo_route, entra, Config, TestGateway};

/// The demo IdP (its user picker), the demo app (a page of the headers it
/// received) and a gateway in front of the app on 127.0.0.1, with
/// `group_names` naming the demo HR group "HR Admins". Shared with the pages'
/// browser tests (`pages_browser.rs`).
pub(crate) struct DemoSite {
    pub idp: idp::Idp,
    _app: app::App,
    pub gateway: TestGateway,
}

impl DemoSite {
    pub(crate) async fn start() -> DemoSite {
        assert!(
            std::path::Path::new("/usr/bin/chromium").exists(),
            "Debian chromium is missing: apt-get install chromium (scripts/test.sh does it)"
        );
        let idp = idp::start(
            idp::IdpConfig::demo_default(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let app = app::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        // The demo app, not the echo upstream, is `{upstream}` here.
        let config = Config::new()
            .table("[ui]\ntitle = \"Contoso apps\"")
            .table(
                entra("contoso", "contoso.example")
                    .with(r#"display_name = "Contoso""#)
                    .home_realm("contoso.example")
                    .with(format!(
                        r#"group_names = {{ "{}" = "HR Admins" }}"#,
                        idp::DEMO_HR_GROUP
                    )),
            )
            .table(echo_route("app", "127.0.0.1").with(r#"headers = "forwarded""#));
        let gateway = TestGateway::start(&config.render_for(&idp.base_url(), &app.url())).await;
        DemoSite {
            idp,
            _app: app,
            gateway,
        }
    }

    /// A demo user by email.
    pub(crate) fn user(&self, email: &str) -> idp::IdpUser {
        self.idp
            .config()
            .users()
            .into_iter()
            .find(|u| u.email == email)
            .unwrap_or_else(|| panic!("no demo user {email}"))
    }

    /// `path` on the gateway, as the browser opens it.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway.addr.port())
    }
}

#[tokio::test]
async fn a_real_browser_signs_in_and_lands_on_the_original_url() {
    let site = DemoSite::start().await;
    let alice = site.user("alice@contoso.example");
    let url = site.url("/reports?quarter=3");
    let shots = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--url",
        &url,
        "--email",
        "alice@contoso.example",
        "--expect-header",
        &format!("X-Forwarded-User={}", alice.oid),
        "--expect-header",
        "X-Forwarded-Groups~HR Admins",
        "--expect-header",
        &format!("X-Forwarded-Tenant={}", alice.tenant_id),
        "--expect-absent",
        "Cookie",
        "--screenshots",
        shots.path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, stdout, stderr) =
        run_script("browser-login.mjs", &args, Duration::from_secs(120)).await;
    assert!(ok, "browser sign-in failed:\n{stderr}\n{stdout}");
    assert_eq!(stdout.trim(), format!("OK {url}"));
    assert!(
        shots.path().join("01-login.png").exists(),
        "the login page was shown"
    );
    site.gateway.stop().await;
}
