//! The real-world tiers' tools work on this machine: the third-party OpenID
//! provider (npm oidc-provider) starts on loopback and stops with the test, and
//! Debian's chromium renders realmgate's demo app. The sign-in suites
//! (`real_provider`, `browser`) build on the same tools.

use std::time::{Duration, Instant};

use crate::node::{run_script, OidcProvider};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// `tests/node/screenshot.mjs URL OUT args…` -> (success, stdout, stderr).
async fn screenshot(url: &str, out: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec![url.to_owned(), out.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_script("screenshot.mjs", &all, Duration::from_secs(60)).await
}

fn test_client() -> serde_json::Value {
    serde_json::json!({
        "client_id": "realmgate",
        "client_secret": "node-tools-test-secret-0123456789abcdef",
        "redirect_uris": ["http://127.0.0.1:9/.auth/login/corp/callback"],
    })
}

#[tokio::test]
async fn oidc_provider_publishes_discovery_and_signing_keys_on_loopback() {
    let provider = OidcProvider::start(test_client()).await;
    assert!(
        provider.issuer.starts_with("http://127.0.0.1:"),
        "{}",
        provider.issuer
    );
    let discovery: serde_json::Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ))
        .send()
        .await
        .expect("discovery request")
        .json()
        .await
        .expect("discovery JSON");
    assert_eq!(discovery["issuer"], provider.issuer);
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(discovery["end_session_endpoint"].is_string());
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    let jwks: serde_json::Value = client()
        .get(jwks_uri)
        .send()
        .await
        .expect("JWKS request")
        .json()
        .await
        .expect("JWKS JSON");
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(
        keys.iter()
            .any(|k| k["kty"] == "RSA" && k["kid"].is_string()),
        "no RSA signing key with a kid: {jwks}"
    );
}

#[tokio::test]
async fn oidc_provider_stops_when_the_test_drops_it() {
    let provider = OidcProvider::start(test_client()).await;
    let addr = provider
        .issuer
        .trim_start_matches("http://")
        .parse::<std::net::SocketAddr>()
        .expect("issuer is http://ip:port");
    drop(provider);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the provider still listens after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Headers as the `forwarded` profile sends them, plus a forged-looking one.
const IDENTITY: [&str; 7] = [
    "X-Forwarded-User: 4f1c2d3e-0000-4000-8000-000000000001",
    "X-Forwarded-Email: alice@contoso.example",
    "X-Forwarded-Preferred-Username: alice@contoso.example",
    "X-Forwarded-Name: Alice Anders",
    "X-Forwarded-Groups: HR Admins,Staff",
    "X-Forwarded-Tenant: 0b9f0000-0000-4000-8000-00000000c0de",
    "X-Request-Id: 7f3a9c1e4b2d",
];

/// Renders the demo app with identity headers on a desktop and a phone viewport.
/// With `REALMGATE_UPDATE_SCREENSHOTS=1` the desktop one also replaces
/// `docs/screenshots/demo-app.png`.
#[tokio::test]
async fn demo_app_renders_in_chromium_on_desktop_and_phone() {
    let app = realmgate::demo::app::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("demo app");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, size) in [
        ("desktop.png", ["--width", "1280", "--height", "800"]),
        ("phone.png", ["--width", "390", "--height", "844"]),
    ] {
        let out = dir.path().join(name);
        let mut args = vec!["--expect-status", "200", "--full-page"];
        args.extend(size);
        for header in IDENTITY {
            args.extend(["--header", header]);
        }
        let (ok, stdout, stderr) =
            screenshot(&format!("{}/reports?q=1", app.url()), &out, &args).await;
        assert!(ok, "screenshot.mjs failed:\n{stdout}{stderr}");
        assert_eq!(stdout.trim(), format!("OK {}", out.display()));
        let png = std::fs::read(&out).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
        assert!(
            png.len() > 5_000,
            "{name} is suspiciously small ({} bytes)",
            png.len()
        );
        if name == "desktop.png" && std::env::var_os("REALMGATE_UPDATE_SCREENSHOTS").is_some() {
            let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs/screenshots/demo-app.png");
            std::fs::write(&docs, &png).expect("update docs/screenshots/demo-app.png");
        }
    }
}

#[tokio::test]
async fn screenshot_fails_clearly_on_an_unexpected_status() {
    let app = realmgate::demo::app::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("demo app");
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, stdout, stderr) = screenshot(
        &format!("{}/favicon.ico", app.url()),
        &dir.path().join("x.png"),
        &["--expect-status", "200"],
    )
    .await;
    assert!(!ok, "a 404 must fail the screenshot: {stdout}");
    assert!(stderr.contains("status 404, expected 200"), "{stderr}");
}
