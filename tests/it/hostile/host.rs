//! Host and X-Forwarded-* from peers that are not `trusted_proxies` (in this
//! World nobody is trusted). `proxying.rs` pins the plain replacement of
//! X-Forwarded-For/-Proto/-Host and `forward_auth.rs` the route choice by
//! X-Forwarded-Host; added here: the spellings CGI-style stacks read as the
//! same header (`X_Forwarded_For`), the URLs realmgate builds from the request
//! (callback `redirect_uri`, cookie names, login targets), and Host values
//! that try to smuggle another host.

use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use super::{location, param, World, HOST, HTML};
use crate::util::{raw_exchange, raw_status, Echoed};

/// Client-address and scheme headers in the spellings an app may read.
const FORWARDING: &[&str] = &[
    "X-Forwarded-For",
    "X_Forwarded_For",
    "x_forwarded_for",
    "X-Forwarded-Proto",
    "X_Forwarded_Proto",
    "X-Forwarded-Host",
    "X_Forwarded_Host",
    "X-Forwarded-Port",
    "X_Forwarded_Port",
    "X-Forwarded-Server",
    "X-Forwarded-Prefix",
    "X_Forwarded_Prefix",
    "X-Real-IP",
    "X_Real_IP",
    "X-Real_IP",
    "Forwarded",
    "X-Request-Id",
    "X_Request_Id",
];

#[tokio::test]
async fn forwarding_headers_in_any_spelling_from_an_untrusted_peer_never_reach_the_app() {
    let w = World::start().await;
    let mut req = format!(
        "GET /static/x HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    for (i, name) in FORWARDING.iter().enumerate() {
        let value = if name.to_ascii_lowercase().contains("proto") {
            "https".to_string()
        } else if name.to_ascii_lowercase().contains("host") {
            "evil.example".to_string()
        } else if name.eq_ignore_ascii_case("forwarded") {
            "for=6.6.6.6;proto=https;host=evil.example".to_string()
        } else {
            format!("6.6.6.{i}")
        };
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
    assert_eq!(raw_status(&raw), Some(200), "{raw:.300}");
    let e = Echoed(serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap());
    for pair in e.0["headers"].as_array().unwrap() {
        let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert!(
            !value.contains("6.6.6.") && !value.contains("evil.example"),
            "the client's {name}: {value} reached the app"
        );
        assert!(
            !(name.contains('_') && name.replace('_', "-").starts_with("x-")),
            "{name} (an underscore spelling) reached the app"
        );
    }
    assert_eq!(e.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(e.header("x-forwarded-host").as_deref(), Some(HOST));
    let id = e.header("x-request-id").unwrap();
    assert_eq!(id.len(), 32, "a fresh request id: {id}");
}

#[tokio::test]
async fn untrusted_forwarding_headers_do_not_change_the_urls_realmgate_builds() {
    let w = World::start().await;
    let browser = w.browser();
    let resp = browser
        .client
        .get(w.url("/.auth/login/contoso"))
        .header(ACCEPT, HTML)
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Port", "443")
        .header("Forwarded", "proto=https;host=evil.example")
        .header("X-Original-Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    // The state cookie is the plain-HTTP one (no `__Host-`, no `Secure`):
    // the claimed https was not believed.
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies
            .iter()
            .all(|c| !c.starts_with("__Host-") && !c.contains("Secure")),
        "{cookies:?}"
    );
    let authorize = location(&resp);
    let redirect_uri = param(&authorize, "redirect_uri").unwrap();
    assert_eq!(redirect_uri, w.url("/.auth/login/contoso/callback"));
    // The login page's redirect and the 401's login URL use the request's own host.
    let resp = w
        .bare()
        .get(w.url("/secret"))
        .header(ACCEPT, HTML)
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Uri", "/elsewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let login = location(&resp);
    assert!(login.starts_with("/.auth/login?"), "{login}");
    assert_eq!(
        param(&login, "post_login_redirect_uri").as_deref(),
        Some("/secret")
    );
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn host_values_that_smuggle_another_host_are_refused() {
    let w = World::start().await;
    for host in [
        "evil.example",
        "app.test@evil.example",
        "evil.example@app.test",
        "app.test:80@evil.example",
        "app.test.evil.example",
        "app.test:evil",
        "app.test:99999",
        "app.test\tevil.example",
        "app.test, evil.example",
        "app.test/evil",
        "app.test#evil",
        "[::1]@app.test",
        "",
    ] {
        let req = format!("GET /static/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
        let status = raw_status(&raw);
        assert!(
            matches!(status, Some(400 | 421) | None),
            "Host {host:?}: {raw:.300}"
        );
        assert!(!raw.contains("evil"), "Host {host:?} echoed: {raw:.300}");
    }
    // Spellings of the route host itself are the route host.
    for host in ["APP.TEST", "app.test.", "app.test:1234"] {
        let req = format!("GET /static/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
        assert_eq!(raw_status(&raw), Some(200), "Host {host:?}: {raw:.300}");
    }
    assert_eq!(w.upstream.count(), 3);
    // An absolute-form target names the host; a different Host header cannot
    // pick another route's policy (the authority wins, RFC 9112 3.2.2).
    let req = format!(
        "GET http://{HOST}/secret HTTP/1.1\r\nHost: easy.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
    assert!(matches!(raw_status(&raw), Some(400 | 401)), "{raw:.300}");
    let req =
        "GET http://evil.example/static/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
    assert!(matches!(raw_status(&raw), Some(400 | 421)), "{raw:.300}");
    assert_eq!(w.upstream.count(), 3);
}
