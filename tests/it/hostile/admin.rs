//! The admin listener against web pages on the admin network (issue 17,
//! SPEC 6.1): a cross-site `text/plain` or form POST, a hostile `Origin`, DNS
//! rebinding (a Host that is the attacker's name), and, with `[admin]
//! token_file`, requests without the right bearer token. Health endpoints
//! stay open to every caller. Also `check`'s warning about an exposed
//! listener without a token, and a token replaced on reload.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;

use super::{World, ALICE};
use crate::util::{config, raw_exchange, raw_status, route, TestGateway};

const TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00dfeed-admin-token";

/// One request to the admin listener, every byte as written: the status and
/// the whole answer.
async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let raw = raw_exchange(addr, req.as_bytes()).await;
    (raw_status(&raw).unwrap_or(0), raw)
}

/// (what, extra headers, body, expected status)
type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

/// `Host: 127.0.0.1:<port>`, what curl and Prometheus send for an address.
fn ip_host(addr: SocketAddr) -> String {
    addr.to_string()
}

/// The user id behind a session cookie, or None when signed out.
async fn who(w: &World, cookie: &str) -> Option<String> {
    let resp = w
        .bare()
        .get(w.url("/.auth/me"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    if resp.status() != StatusCode::OK {
        return None;
    }
    let me: Value = resp.json().await.unwrap();
    me["user_id"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_web_page_cannot_revoke_sessions_through_the_admin_api() {
    let w = World::start().await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).expect("signed in"));
    let user = who(&w, &cookie).await.expect("alice is signed in");
    let addr = w.gateway.admin_addr();
    let host = ip_host(addr);
    let json_body = serde_json::json!({ "user_id": user }).to_string();
    let form_body = format!("user_id={user}");

    // What a page on evil.example can send without a CORS preflight, and
    // what a browser adds to it: each is refused and the session lives on.
    let evil = "https://evil.example";
    let attempts: Vec<Attempt> = vec![
        // The issue's case: a text/plain "simple" request needs no CORS
        // preflight (fetch with mode "no-cors", or a form with enctype
        // text/plain); tested here even without the Origin a browser adds.
        (
            "text/plain",
            vec![("Content-Type", "text/plain")],
            &json_body,
            415,
        ),
        (
            "text/plain;charset=UTF-8",
            vec![("Content-Type", "text/plain;charset=UTF-8")],
            &json_body,
            415,
        ),
        (
            "a form",
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            &form_body,
            415,
        ),
        (
            "multipart",
            vec![("Content-Type", "multipart/form-data; boundary=x")],
            &json_body,
            415,
        ),
        ("no content type", vec![], &json_body, 415),
        (
            "text/plain from evil.example",
            vec![("Content-Type", "text/plain"), ("Origin", evil)],
            &json_body,
            403,
        ),
        (
            "JSON from evil.example",
            vec![("Content-Type", "application/json"), ("Origin", evil)],
            &json_body,
            403,
        ),
        (
            "JSON from a sandboxed frame",
            vec![("Content-Type", "application/json"), ("Origin", "null")],
            &json_body,
            403,
        ),
        (
            "JSON with Sec-Fetch-Site: cross-site",
            vec![
                ("Content-Type", "application/json"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            &json_body,
            403,
        ),
        (
            "JSON with Sec-Fetch-Site: same-site",
            vec![
                ("Content-Type", "application/json"),
                ("Sec-Fetch-Site", "same-site"),
            ],
            &json_body,
            403,
        ),
        (
            "JSON from another port of the admin host",
            vec![
                ("Content-Type", "application/json"),
                ("Origin", "http://127.0.0.1:1"),
            ],
            &json_body,
            403,
        ),
    ];
    for (what, extra, body, status) in attempts {
        let mut headers = vec![("Host", host.as_str())];
        headers.extend(extra);
        let (got, raw) = admin(addr, "POST", "/sessions/revoke", &headers, body).await;
        assert_eq!(got, status, "{what}:\n{raw}");
        assert!(
            raw.contains("application/json"),
            "{what}: JSON answer\n{raw}"
        );
        assert_eq!(
            who(&w, &cookie).await.as_deref(),
            Some(user.as_str()),
            "{what}: the session must survive"
        );
    }
    // DNS rebinding: the page's own name resolves to the admin address.
    for rebound in [
        "evil.example",
        "evil.example:9090",
        "127.0.0.1.evil.example",
    ] {
        let (got, raw) = admin(
            addr,
            "POST",
            "/sessions/revoke",
            &[("Host", rebound), ("Content-Type", "application/json")],
            &json_body,
        )
        .await;
        assert_eq!(got, 421, "{rebound}:\n{raw}");
        let (got, raw) = admin(addr, "GET", "/metrics", &[("Host", rebound)], "").await;
        assert_eq!(got, 421, "{rebound}: metrics\n{raw}");
        assert!(!raw.contains("realmgate_"), "{rebound}: metrics leaked");
    }
    assert!(who(&w, &cookie).await.is_some(), "still signed in");

    // The program's request, from the admin's own origin or with no Origin.
    let (got, raw) = admin(
        addr,
        "POST",
        "/sessions/revoke",
        &[
            ("Host", &host),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Origin", &format!("http://{host}")),
        ],
        &json_body,
    )
    .await;
    assert_eq!(got, 200, "{raw}");
    assert!(raw.ends_with("{\"revoked\":1}"), "{raw}");
    assert_eq!(who(&w, &cookie).await, None, "revoked");
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn without_a_token_only_ip_localhost_and_listed_hosts_reach_metrics() {
    let toml = config(
        "",
        &route(
            "app",
            "app.test",
            "/",
            "http://127.0.0.1:9",
            "public = [\"/\"]",
        ),
    )
    .replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"127.0.0.1:0\"\nhosts = [\"Metrics.Internal\"]",
    );
    let gw = TestGateway::start(&toml).await;
    assert_eq!(
        gw.settings.admin.hosts,
        vec!["metrics.internal"],
        "config applied"
    );
    let addr = gw.admin_addr();
    let port = addr.port();
    for host in [
        addr.to_string(),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("[::1]:{port}"),
        format!("metrics.internal:{port}"),
        "METRICS.internal".to_string(),
    ] {
        let (got, raw) = admin(addr, "GET", "/metrics", &[("Host", &host)], "").await;
        assert_eq!(got, 200, "{host}:\n{raw}");
        assert!(raw.contains("realmgate_"), "{host}: metrics");
        let (got, raw) = admin(addr, "HEAD", "/metrics", &[("Host", &host)], "").await;
        assert_eq!(got, 200, "HEAD {host}:\n{raw}");
        let (got, raw) = admin(
            addr,
            "POST",
            "/sessions/revoke",
            &[("Host", &host), ("Content-Type", "application/json")],
            r#"{"sid":"nobody"}"#,
        )
        .await;
        assert_eq!(got, 200, "{host}:\n{raw}");
    }
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        "metrics.internal.evil.example".to_string(),
        "localhost.evil.example".to_string(),
        "admin".to_string(),
        String::new(),
    ] {
        for method in ["GET", "HEAD"] {
            let (got, raw) = admin(addr, method, "/metrics", &[("Host", &host)], "").await;
            assert_eq!(got, 421, "{method} {host:?}:\n{raw}");
            assert!(
                raw.contains("[admin] hosts") || method == "HEAD",
                "{host:?}: says what to do\n{raw}"
            );
            assert!(!raw.contains("realmgate_"), "{method} {host:?}: leaked");
        }
        let (got, _) = admin(
            addr,
            "POST",
            "/sessions/revoke",
            &[("Host", &host), ("Content-Type", "application/json")],
            r#"{"sid":"nobody"}"#,
        )
        .await;
        assert_eq!(got, 421, "{host:?}: revoke");
        // Any other path is guarded the same way (no probing for what exists).
        let (got, _) = admin(addr, "GET", "/sessions", &[("Host", &host)], "").await;
        assert_eq!(got, 421, "{host:?}: /sessions");
        // Probes answer any Host.
        for probe in ["/healthz", "/readyz"] {
            let (got, raw) = admin(addr, "GET", probe, &[("Host", &host)], "").await;
            assert_eq!(got, 200, "{host:?} {probe}:\n{raw}");
        }
    }
    // No Host at all (HTTP/1.0) is not an admin host either.
    let raw = raw_exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
    assert_eq!(raw_status(&raw), Some(421), "{raw}");
    // An absolute-form target naming another host than the Host header.
    let (got, _) = admin(
        addr,
        "GET",
        "http://evil.example/metrics",
        &[("Host", &addr.to_string())],
        "",
    )
    .await;
    assert_ne!(got, 200);
    gw.stop().await;
}

fn token_config(admin_extra: &str) -> String {
    config(
        "",
        &route(
            "app",
            "app.test",
            "/",
            "http://127.0.0.1:9",
            "public = [\"/\"]",
        ),
    )
    .replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"127.0.0.1:0\"\n{admin_extra}"),
    )
}

#[tokio::test]
async fn with_a_token_metrics_and_sessions_need_the_bearer_token() {
    let gw = TestGateway::start(&token_config(&format!("token = \"{TOKEN}\""))).await;
    let addr = gw.admin_addr();
    let host = addr.to_string();
    // HEAD is guarded exactly like GET.
    let scrape = |method: &'static str, auth: Option<String>| {
        let host = host.clone();
        async move {
            let mut h = vec![("Host", host.as_str())];
            if let Some(a) = &auth {
                h.push(("Authorization", a.as_str()));
            }
            admin(addr, method, "/metrics", &h, "").await
        }
    };
    // No token, a wrong one, a near miss, another scheme: 401 with a challenge.
    for auth in [
        None,
        Some("Bearer nope".to_string()),
        Some(format!("Bearer {}", &TOKEN[1..])),
        Some(format!("Bearer {TOKEN}0")),
        Some(format!("Bearer {}", TOKEN.to_uppercase())),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some("Bearer".to_string()),
    ] {
        let (got, raw) = scrape("HEAD", auth.clone()).await;
        assert_eq!(got, 401, "HEAD {auth:?}:\n{raw}");
        let (got, raw) = scrape("GET", auth.clone()).await;
        assert_eq!(got, 401, "{auth:?}:\n{raw}");
        let lower = raw.to_ascii_lowercase();
        assert!(
            lower.contains("www-authenticate: bearer realm=\"realmgate-admin\""),
            "{auth:?}: challenge\n{raw}"
        );
        assert!(
            !raw.contains("realmgate_requests_total"),
            "{auth:?}: leaked"
        );
        assert!(!raw.contains(TOKEN), "{auth:?}: token echoed");
    }
    // The right token, the scheme in any case, extra spaces before it.
    for auth in [
        format!("Bearer {TOKEN}"),
        format!("bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("Bearer    {TOKEN}"),
        format!("Bearer {TOKEN}   "),
    ] {
        let (got, raw) = scrape("GET", Some(auth.clone())).await;
        assert_eq!(got, 200, "{auth:?}:\n{raw}");
        assert!(raw.contains("realmgate_"), "{auth:?}");
        let (got, raw) = scrape("HEAD", Some(auth.clone())).await;
        assert_eq!(got, 200, "HEAD {auth:?}:\n{raw}");
        assert!(raw.ends_with("\r\n\r\n"), "HEAD {auth:?}: no body\n{raw}");
    }
    // With a token the Host no longer matters (a browser cannot add the
    // header, so rebinding gains nothing): a Kubernetes service name works.
    let auth = format!("Bearer {TOKEN}");
    let (got, _) = admin(
        addr,
        "GET",
        "/metrics",
        &[
            ("Host", "realmgate-admin.default.svc:9090"),
            ("Authorization", &auth),
        ],
        "",
    )
    .await;
    assert_eq!(got, 200);
    // Revoke: the token, then JSON from no other site.
    let revoke = |extra: &[(&str, &str)]| {
        let mut h: Vec<(String, String)> = vec![("Host".into(), host.clone())];
        h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            admin(addr, "POST", "/sessions/revoke", &h, r#"{"sid":"nobody"}"#).await
        }
    };
    let json = ("Content-Type", "application/json");
    let bearer = ("Authorization", auth.as_str());
    assert_eq!(revoke(&[json]).await.0, 401);
    assert_eq!(
        revoke(&[json, ("Authorization", "Bearer wrong")]).await.0,
        401
    );
    assert_eq!(
        revoke(&[bearer, ("Content-Type", "text/plain")]).await.0,
        415
    );
    assert_eq!(
        revoke(&[
            bearer,
            ("Content-Type", "application/x-www-form-urlencoded")
        ])
        .await
        .0,
        415
    );
    assert_eq!(
        revoke(&[bearer, json, ("Origin", "https://evil.example")])
            .await
            .0,
        403
    );
    assert_eq!(revoke(&[bearer, json, ("Origin", "null")]).await.0, 403);
    let (got, raw) = revoke(&[bearer, json]).await;
    assert_eq!(got, 200, "{raw}");
    assert!(raw.ends_with("{\"revoked\":0}"), "{raw}");
    // Health endpoints stay open, without a token and with any Host.
    for probe in ["/healthz", "/readyz"] {
        let (got, _) = admin(addr, "GET", probe, &[("Host", "evil.example")], "").await;
        assert_eq!(got, 200, "{probe}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_token_file_replaced_before_a_reload_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin_token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let path = dir.path().join("realmgate.toml");
    std::fs::write(&path, token_config("token_file = \"admin_token\"")).unwrap();
    let settings = realmgate::config::load(Some(&path)).expect("valid config");
    let running = realmgate::server::start(settings, Some(path.clone()))
        .await
        .expect("starts");
    let addr = running.admin_addr;
    let host = addr.to_string();
    let with = |token: &str| format!("Bearer {token}");
    let get = |auth: String| {
        let host = host.clone();
        async move {
            admin(
                addr,
                "GET",
                "/metrics",
                &[("Host", &host), ("Authorization", &auth)],
                "",
            )
            .await
            .0
        }
    };
    assert_eq!(get(with(TOKEN)).await, 200);
    let new = "0123456789abcdef0123456789abcdef-rotated";
    std::fs::write(&file, new).unwrap();
    assert!(running.reload().await, "reload accepted");
    assert_eq!(get(with(TOKEN)).await, 401, "the old token is refused");
    assert_eq!(get(with(new)).await, 200, "the new token is taken");
    // A broken token file keeps the running token (the reload is refused).
    std::fs::write(&file, "short").unwrap();
    assert!(!running.reload().await, "a short token is refused");
    assert_eq!(get(with(new)).await, 200);
    tokio::time::timeout(Duration::from_secs(30), running.shutdown())
        .await
        .expect("shuts down");
}

#[test]
fn check_warns_about_an_admin_listener_off_loopback_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let run_check = |admin_table: &str| {
        let file = dir.path().join("check.toml");
        let toml = config("", &route("app", "app.test", "/", "http://127.0.0.1:9", ""))
            .replace("[admin]\nlisten = \"127.0.0.1:0\"", admin_table);
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_realmgate"))
            .args(["check", "--config"])
            .arg(&file)
            .env_remove("REALMGATE_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "a warning is not an error:\n{stdout}"
        );
        stdout
    };
    for exposed in [
        "[admin]\nlisten = \"0.0.0.0:9090\"",
        "[admin]\nlisten = \"[::]:9090\"",
        "[admin]\nlisten = \"10.1.2.3:9090\"",
    ] {
        let out = run_check(exposed);
        let warning = out
            .lines()
            .find(|l| l.starts_with("Warning:"))
            .unwrap_or_else(|| panic!("{exposed}: no warning\n{out}"));
        assert!(
            warning.contains("[admin] listen") && warning.contains("[admin] token_file"),
            "{warning}"
        );
    }
    for quiet in [
        "[admin]\nlisten = \"127.0.0.1:9090\"".to_string(),
        "[admin]\nlisten = \"[::1]:9090\"".to_string(),
        format!("[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = \"{TOKEN}\""),
    ] {
        let out = run_check(&quiet);
        assert!(!out.contains("Warning:"), "{quiet}:\n{out}");
        assert!(!out.contains(TOKEN), "token printed:\n{out}");
    }
}
