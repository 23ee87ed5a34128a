//! Login targets that downgrade (issue 17, part of hole 11): on a site the
//! browser reaches over HTTPS, an absolute `http://` target, even on a
//! configured route host, would send the browser (and whatever the app
//! appends to the URL) over plain HTTP. It becomes `/`, whether the gateway
//! terminates TLS itself or a trusted proxy says `X-Forwarded-Proto: https`;
//! plain-HTTP sites keep such targets. Every door that takes a target is
//! checked: a whole sign-in, the login page, `/.auth/verify` and logout.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::header::{ACCEPT, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{location, param, with_query, World, ALICE, HTML};
use crate::util::AcceptAny;

/// Absolute http targets on route hosts: accepted on plain HTTP, refused on HTTPS.
const DOWNGRADES: &[&str] = &[
    "http://other.test/x?y=1",
    "http://app.test/",
    "HTTP://EASY.TEST/Page",
    "http://app.test:443/x",
    "http://app.test:80/x",
];

/// `name=value` of every cookie an answer sets, as a Cookie header.
fn cookies_of(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Behind a trusted proxy: a whole sign-in started with `rd=target`, every
/// request carrying `X-Forwarded-Proto: <proto>`; the final Location.
async fn land_behind_proxy(w: &World, proto: &str, target: &str) -> String {
    let client = w.bare();
    let resp = client
        .get(with_query(w.url("/.auth/login/contoso"), &[("rd", target)]))
        .header(ACCEPT, HTML)
        .header("X-Forwarded-Proto", proto)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{target}: login starts");
    let state_cookie = cookies_of(resp.headers());
    let back = w
        .idp
        .complete_login(&location(&resp), ALICE)
        .expect("IdP issues a code");
    // The redirect URI names the scheme the proxy reported; the proxy
    // itself talks plain HTTP to the gateway.
    let callback = back.url.replacen("https://", "http://", 1);
    let resp = client
        .get(&callback)
        .header(COOKIE, state_cookie)
        .header("X-Forwarded-Proto", proto)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{target}: signed in");
    location(&resp)
}

/// The target each door ends up with, for `target` over `proto`.
async fn doors(w: &World, proto: Option<&str>, target: &str) -> Vec<(&'static str, String)> {
    let client = w.bare();
    let with_proto = |rb: reqwest::RequestBuilder| match proto {
        Some(p) => rb.header("X-Forwarded-Proto", p),
        None => rb,
    };
    let mut out = Vec::new();
    // Signed out, logout redirects straight to its target.
    for name in ["post_logout_redirect_uri", "rd"] {
        let resp = with_proto(client.get(with_query(w.url("/.auth/logout"), &[(name, target)])))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        out.push(("logout", location(&resp)));
    }
    // Forward auth names the login URL with the checked target.
    let resp = with_proto(client.get(with_query(w.url("/.auth/verify"), &[("rd", target)])))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let next = param(&location(&resp), "post_login_redirect_uri").unwrap_or_default();
    out.push(("verify", next));
    // The login page carries it in a hidden field.
    let resp = with_proto(client.get(with_query(
        w.url("/.auth/login"),
        &[("post_login_redirect_uri", target)],
    )))
    .send()
    .await
    .unwrap();
    let html = resp.text().await.unwrap();
    let hidden = html
        .split("name=\"post_login_redirect_uri\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .replace("&#x3d;", "=")
        .replace("&#x3f;", "?");
    out.push(("login page", hidden));
    // The email form posts it back.
    let resp = with_proto(client.post(w.url("/.auth/login")))
        .form(&[("email", ALICE), ("post_login_redirect_uri", target)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let state_cookie = cookies_of(resp.headers());
    let back = w.idp.complete_login(&location(&resp), ALICE).unwrap();
    let resp = with_proto(client.get(back.url.replacen("https://", "http://", 1)))
        .header(COOKIE, state_cookie)
        .send()
        .await
        .unwrap();
    out.push(("email form", location(&resp)));
    out
}

#[tokio::test]
async fn http_targets_are_refused_when_a_trusted_proxy_says_https() {
    let w = World::start_with("trusted_proxies = [\"127.0.0.1\"]", "").await;
    for target in DOWNGRADES {
        assert_eq!(
            land_behind_proxy(&w, "https", target).await,
            "/",
            "{target}"
        );
        for (door, got) in doors(&w, Some("https"), target).await {
            assert_eq!(got, "/", "{door}: {target} over https");
        }
    }
    // https targets on route hosts, and paths, are untouched.
    let kept = "https://other.test/x";
    assert_eq!(land_behind_proxy(&w, "https", kept).await, kept);
    assert_eq!(land_behind_proxy(&w, "https", "/ok?x=1").await, "/ok?x=1");
    for (door, got) in doors(&w, Some("https"), kept).await {
        assert_eq!(got, kept, "{door}");
    }
    // The proxy saying http keeps the old answer.
    let plain = "http://other.test/x";
    assert_eq!(land_behind_proxy(&w, "http", plain).await, plain);
    for (door, got) in doors(&w, Some("http"), plain).await {
        assert_eq!(got, plain, "{door}");
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn plain_http_sites_keep_http_targets_and_untrusted_proto_claims_change_nothing() {
    // No trusted proxy: a client's X-Forwarded-Proto is not believed, so the
    // site is plain HTTP and http targets on route hosts stay valid.
    let w = World::start().await;
    for target in ["http://other.test/x?y=1", "http://app.test/"] {
        for proto in [None, Some("https")] {
            for (door, got) in doors(&w, proto, target).await {
                assert_eq!(got, target, "{door}: {target} with proto {proto:?}");
            }
        }
    }
    // The scheme-relative and backslash tricks are still refused.
    for trick in [
        "//other.test/x",
        "/\\other.test/x",
        "\\\\other.test",
        "http:other.test",
    ] {
        for (door, got) in doors(&w, None, trick).await {
            assert_eq!(got, "/", "{door}: {trick:?}");
        }
    }
    w.upstream.assert_received_nothing().await;
}

// --- TLS on the gateway itself ---

/// `GET path_and_query` over TLS to app.test; (status, Location, Cookie
/// header of what it set).
async fn tls_get(addr: SocketAddr, path: &str, cookie: &str) -> (u16, String, String) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("app.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: app.test:{}\r\nAccept: {HTML}\r\n{cookie}Connection: close\r\n\r\n",
        addr.port()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut raw),
    )
    .await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let status = crate::util::raw_status(&raw).unwrap_or(0);
    let header = |name: &str| -> Vec<String> {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    let location = header("location").into_iter().next().unwrap_or_default();
    let cookies = header("set-cookie")
        .iter()
        .filter_map(|c| c.split(';').next().map(str::to_string))
        .collect::<Vec<_>>()
        .join("; ");
    (status, location, cookies)
}

/// A whole sign-in over TLS started with `rd=target`; the final Location.
async fn land_over_tls(w: &World, target: &str) -> String {
    let addr = w.gateway.addr;
    let start = with_query("https://app.test/.auth/login/contoso", &[("rd", target)]);
    let path = &start["https://app.test".len()..];
    let (status, authorize, cookie) = tls_get(addr, path, "").await;
    assert_eq!(status, 302, "{target}: login starts");
    let back = w.idp.complete_login(&authorize, ALICE).expect("a code");
    let url = url::Url::parse(&back.url).unwrap();
    assert_eq!(url.scheme(), "https", "the redirect URI is https");
    let path = &url[url::Position::BeforePath..];
    let (status, landed, _) = tls_get(addr, path, &cookie).await;
    assert_eq!(status, 302, "{target}: signed in");
    landed
}

#[tokio::test]
async fn http_targets_are_refused_when_the_gateway_terminates_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["app.test".into()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    let w = World::start_with(
        &format!("[server.tls]\ncert = {cert_file:?}\nkey = {key_file:?}"),
        "",
    )
    .await;
    for target in DOWNGRADES {
        assert_eq!(land_over_tls(&w, target).await, "/", "{target}");
        let logout = with_query(
            "https://app.test/.auth/logout",
            &[("post_logout_redirect_uri", target)],
        );
        let (status, to, _) =
            tls_get(w.gateway.addr, &logout["https://app.test".len()..], "").await;
        assert_eq!((status, to.as_str()), (302, "/"), "logout {target}");
    }
    let kept = "https://other.test/x";
    assert_eq!(land_over_tls(&w, kept).await, kept);
    w.upstream.assert_received_nothing().await;
}
