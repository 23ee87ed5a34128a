//! The real-world tiers' tools work on this machine: the third-party OpenID
//! provider (npm oidc-provider) starts on loopback and stops with the test, and
//! Debian's chromium renders realmgate's demo app. The sign-in suites build on
//! these helpers (`node.rs`).

use std::time::{Duration, Instant};

use crate::node::{screenshot, Provider};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
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
    let provider = Provider::start("127.0.0.1", &test_client(), None);
    assert!(
        provider.issuer().starts_with("http://127.0.0.1:"),
        "{}",
        provider.issuer()
    );
    let discovery: serde_json::Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer()
        ))
        .send()
        .await
        .expect("discovery request")
        .json()
        .await
        .expect("discovery JSON");
    assert_eq!(discovery["issuer"], provider.issuer());
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
        "no RSA signing key with a kid: {jwks}\nprovider: {}",
        provider.stderr()
    );
}

#[tokio::test]
async fn oidc_provider_stops_when_the_test_drops_it() {
    let provider = Provider::start("127.0.0.1", &test_client(), None);
    let addr = provider
        .issuer()
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
        let run = screenshot(&format!("{}/reports?q=1", app.url()), &out, &args).await;
        run.assert_ok("screenshot.mjs");
        assert_eq!(run.stdout.trim(), format!("OK {}", out.display()));
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
    let run = screenshot(
        &format!("{}/favicon.ico", app.url()),
        &dir.path().join("x.png"),
        &["--expect-status", "200"],
    )
    .await;
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stderr.contains("status 404, expected 200"),
        "{}",
        run.stderr
    );
}
