//! Tier 3: a real browser (Debian chromium driven by playwright-core) opens a
//! protected URL, types the email on realmgate's login page, picks the user
//! at the identity provider, and lands on the page it first asked for, which
//! shows the identity headers the app received.

use std::time::Duration;

use realmgate::demo::{app, idp};

use crate::node::run_script;
use crate::util::{echo_route, entra, Config, TestGateway};

#[tokio::test]
async fn a_real_browser_signs_in_and_lands_on_the_original_url() {
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
    let alice = idp::IdpConfig::demo_default()
        .users()
        .into_iter()
        .find(|u| u.email == "alice@contoso.example")
        .unwrap();
    let url = format!("http://127.0.0.1:{}/reports?quarter=3", gateway.addr.port());
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
    gateway.stop().await;
}
