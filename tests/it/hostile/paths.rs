//! Path normalization against public prefixes, end to end. The unit tests of
//! `pathnorm` (proptest, with models of real upstream resolvers) pin the
//! canonical form itself; here every trick is sent on the wire (HTTP/1.1
//! raw, absolute-form, HTTP/2 `:path` through hyper's client, so nothing is
//! cleaned up by a client) to a route whose `public` prefixes are `/static/`
//! and `/favicon.ico`. Each request is either not served as public (401 or
//! 400), or forwarded with its canonical path (SPEC 6.1), which the echo
//! upstream reports byte for byte, and which even the most aggressive
//! app-side resolver keeps under the public prefix.

use std::net::SocketAddr;

use super::{World, ALICE, HOST};
use crate::util::{raw_exchange, raw_status, Echoed, DEADLINE};

/// Tricks that try to leave `/static/` (or `/favicon.ico`) on the app side.
const ESCAPES: &[&str] = &[
    "/static/../secret",
    "/static/./../secret",
    "/static/%2e%2e/secret",
    "/static/%2E%2E/secret",
    "/static/.%2e/secret",
    "/static/%2e./secret",
    "/static/..%2fsecret",
    "/static/..%2Fsecret",
    "/static/%2e%2e%2fsecret",
    "/static/..%5csecret",
    "/static/..\\secret",
    "/static\\..\\secret",
    "/static/..;/secret",
    "/static/..;jsessionid=x/secret",
    "/static;x=y/../secret",
    "/static/%252e%252e/secret",
    "/static/%25%32%65%25%32%65/secret",
    "/static/%c0%ae%c0%ae/secret",
    "/static/%e0%80%ae%e0%80%ae/secret",
    "/static/%00/../secret",
    "/static/x/%00../../secret",
    "/static/%ef%bc%8e%ef%bc%8e/secret",
    "/static/%e2%80%a4%e2%80%a4/secret",
    "/static/%ef%b9%92%ef%b9%92/secret",
    "/static/%e2%80%a5/secret",
    "/static/..%ef%bc%8fsecret",
    "/static/..%ef%bc%bcsecret",
    "/static/x/..%2f..%2fsecret",
    "/static//..//..//secret",
    "//static/../secret",
    "/static/../../../../secret",
    "/favicon.ico/../secret",
    "/favicon.ico%2f..%2fsecret",
    "/favicon.ico;/../secret",
    "/favicon.ico/..;/secret",
    "/STATIC/../secret",
    "/%73tatic/../secret",
];

/// Protected look-alikes of public paths: they need a session.
const NOT_PUBLIC: &[&str] = &[
    "/static",
    "/staticx/a",
    "/Static/a",
    "/STATIC/a",
    "/favicon.icox",
    "/favicon.ico.bak",
    "/%2fstatic/a",
];

/// How the most aggressive app might resolve `path`: percent-decode until
/// nothing changes (at most 3 times), NFKC-like mapping of the lookalike
/// dots and slashes, overlong UTF-8 dots, `\` as `/`, `;params` dropped, dot
/// segments resolved. Returns None when it escapes above the root.
fn worst_case_app_path(path: &str) -> Option<String> {
    let mut p = path.to_string();
    for _ in 0..3 {
        let bytes = p.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        // Overlong encodings of `.` (invalid UTF-8 that lax decoders accept).
        let mut fixed = Vec::with_capacity(out.len());
        let mut j = 0;
        while j < out.len() {
            if out[j..].starts_with(&[0xc0, 0xae]) {
                fixed.push(b'.');
                j += 2;
            } else if out[j..].starts_with(&[0xe0, 0x80, 0xae]) {
                fixed.push(b'.');
                j += 3;
            } else {
                fixed.push(out[j]);
                j += 1;
            }
        }
        let next = String::from_utf8_lossy(&fixed).into_owned();
        if next == p {
            break;
        }
        p = next;
    }
    let p = p
        .replace(['\u{ff0e}', '\u{2024}', '\u{fe52}'], ".")
        .replace('\u{2025}', "..")
        .replace(['\u{ff0f}', '\u{ff3c}', '\\'], "/")
        .replace('\0', "");
    let mut segments: Vec<String> = Vec::new();
    for raw in p.split('/').skip(1) {
        let seg = raw.split(';').next().unwrap_or("").to_ascii_lowercase();
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s.to_string()),
        }
    }
    Some(format!("/{}", segments.join("/")))
}

fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn no_trick_reaches_a_protected_path_through_a_public_prefix() {
    let w = World::start().await;
    let mut forwarded = 0;
    for path in ESCAPES {
        let raw = raw_exchange(w.gateway.addr, &request(path)).await;
        let status = raw_status(&raw);
        match status {
            Some(200) => {
                forwarded += 1;
                let body = raw.split_once("\r\n\r\n").unwrap().1;
                let e = Echoed(serde_json::from_str(body).unwrap());
                let sent = e.uri().to_string();
                let resolved = worst_case_app_path(&sent);
                assert!(
                    resolved.as_deref().is_some_and(|r| r.starts_with("/static/")
                        || r == "/favicon.ico"),
                    "{path:?} was served as public and the app may resolve {sent:?} to {resolved:?}"
                );
                assert!(e.header_all("x-forwarded-user").is_empty());
            }
            Some(400 | 401) => {}
            other => panic!("{path:?}: unexpected answer {other:?}: {raw:.300}"),
        }
    }
    assert_eq!(w.upstream.count(), forwarded);
    // The check is not vacuous: the public prefix itself is forwarded.
    let raw = raw_exchange(w.gateway.addr, &request("/static/app.css")).await;
    assert_eq!(raw_status(&raw), Some(200), "{raw:.300}");
}

#[tokio::test]
async fn look_alikes_of_public_paths_need_a_session() {
    let w = World::start().await;
    for path in NOT_PUBLIC {
        let raw = raw_exchange(w.gateway.addr, &request(path)).await;
        assert!(
            matches!(raw_status(&raw), Some(400 | 401)),
            "{path:?}: {raw:.300}"
        );
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn absolute_form_and_http2_paths_are_normalized_the_same_way() {
    let w = World::start().await;
    // Absolute-form request target (RFC 9112 3.2.2).
    for path in [
        "/static/../secret",
        "/static/%2e%2e/secret",
        "/static/..;/secret",
    ] {
        let req = format!(
            "GET http://{HOST}{path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
        assert!(
            matches!(raw_status(&raw), Some(400 | 401)),
            "absolute-form {path:?}: {raw:.300}"
        );
    }
    // HTTP/2 (h2c prior knowledge): `:path` is taken as sent.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve(HOST, w.gateway.addr)
        .no_proxy()
        .build()
        .unwrap();
    for path in [
        "/static/%2e%2e/secret",
        "/static/..%2fsecret",
        "/static/..;/secret",
    ] {
        let resp = h2
            .get(w.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert!(
            matches!(resp.status().as_u16(), 400 | 401),
            "h2 {path:?}: {}",
            resp.status()
        );
    }
    w.upstream.assert_received_nothing().await;
}

/// What the gateway must do with a path (SPEC 6.1).
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Forwarded with exactly this path (and query).
    Forwarded(&'static str),
    /// Not forwarded: 401 (a session is needed for the canonical path).
    SignIn,
    /// Refused: 400.
    Refused,
}

/// The review's four paths (issue 17, hole 1) and more variants, on a host
/// whose `/static/` is public and everything else (say a Flask
/// `/admin/<path>` handler) needs a session.
const TARGETS: &[(&str, Expect)] = &[
    ("/admin/../static/x", Expect::Forwarded("/static/x")),
    ("/admin/%2e%2e/static/x", Expect::Forwarded("/static/x")),
    ("/admin/.%2E/static/x", Expect::Forwarded("/static/x")),
    // RFC 3986: `..` removes the empty segment: `/admin/static/x`.
    ("/admin//../static/x", Expect::SignIn),
    ("/admin//..//static/x", Expect::SignIn),
    ("/admin/%2E%2E/static/x", Expect::Forwarded("/static/x")),
    ("/admin/%2e./static/x", Expect::Forwarded("/static/x")),
    ("/admin/./../static/x", Expect::Forwarded("/static/x")),
    ("/admin/%2e/../static/x", Expect::Forwarded("/static/x")),
    ("/admin/x/../../static/x", Expect::Forwarded("/static/x")),
    ("/../static/x", Expect::Forwarded("/static/x")),
    ("/static/x/..", Expect::Forwarded("/static/")),
    // The query passes untouched, dots, slashes and all.
    (
        "/admin/../static/x?a=/../b&c=%2e%2e",
        Expect::Forwarded("/static/x?a=/../b&c=%2e%2e"),
    ),
    (
        "/admin/../static/caf%C3%A9",
        Expect::Forwarded("/static/caf%C3%A9"),
    ),
    ("/static/../admin/x", Expect::SignIn),
    ("/admin/../static/../admin/x", Expect::SignIn),
    ("/static/x/../../admin", Expect::SignIn),
    // realmgate's own paths are judged in canonical form too.
    ("/.auth/../admin/x", Expect::SignIn),
    ("/x/../.auth/me", Expect::SignIn),
    ("/static/..%2f.auth/me", Expect::Refused),
    // Servers disagree on these: no form satisfies all of them.
    ("/admin/..;/static/x", Expect::Refused),
    ("/admin/..;jsessionid=1/static/x", Expect::Refused),
    ("/admin;x/../static/x", Expect::Refused),
    ("/admin/%2e%2e;/static/x", Expect::Refused),
    ("/admin/..%2fstatic/x", Expect::Refused),
    ("/admin/..%2Fstatic/x", Expect::Refused),
    ("/admin/%2e%2e%2fstatic/x", Expect::Refused),
    ("/admin/x%2F..%2F..%2Fstatic/x", Expect::Refused),
    ("/admin/..%5cstatic/x", Expect::Refused),
    ("/admin\\..\\static\\x", Expect::Refused),
    ("/static\\x", Expect::Refused),
    ("/admin/%252e%252e/static/x", Expect::Refused),
    ("/admin/%25%32%65%25%32%65/static/x", Expect::Refused),
    ("/static/%252e", Expect::Refused),
    ("/admin/%c0%ae%c0%ae/static/x", Expect::Refused),
    ("/admin/%00/../static/x", Expect::Refused),
    ("/static/x%00.css", Expect::Refused),
    ("/static/%zz", Expect::Refused),
    ("/admin/\u{ff0e}\u{ff0e}/static/x/..", Expect::Refused),
];

fn request_with(target: &str, cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\n{cookie}Connection: close\r\n\r\n")
        .into_bytes()
}

/// The echo upstream's report in a raw HTTP/1.1 answer.
fn echoed(raw: &str) -> Echoed {
    let body = raw.split_once("\r\n\r\n").expect("a head and a body").1;
    Echoed(serde_json::from_str(body).unwrap_or_else(|e| panic!("not echo JSON ({e}): {raw:.400}")))
}

/// Checks one answer against `expect`; returns whether it was forwarded.
fn check(how: &str, target: &str, expect: Expect, status: Option<u16>, raw: &str) -> bool {
    match expect {
        Expect::Forwarded(path) => {
            assert_eq!(status, Some(200), "{how} {target:?}: {raw:.400}");
            let e = echoed(raw);
            assert_eq!(e.uri(), path, "{how} {target:?}: what the upstream got");
            assert!(!e.uri().starts_with("/admin"), "{how} {target:?}");
            assert!(e.header_all("x-forwarded-user").is_empty());
            true
        }
        Expect::SignIn => {
            assert_eq!(status, Some(401), "{how} {target:?}: {raw:.400}");
            false
        }
        Expect::Refused => {
            assert_eq!(status, Some(400), "{how} {target:?}: {raw:.400}");
            assert!(
                raw.contains("path"),
                "{how} {target:?}: the 400 says what was wrong: {raw:.600}"
            );
            false
        }
    }
}

#[tokio::test]
async fn what_is_judged_is_what_is_forwarded() {
    let w = World::start().await;
    let mut forwarded = 0;
    for &(target, expect) in TARGETS {
        let raw = raw_exchange(w.gateway.addr, &request_with(target, None)).await;
        forwarded += usize::from(check("origin-form", target, expect, raw_status(&raw), &raw));
        // The same through an absolute-form request target.
        let absolute = format!("http://{HOST}{target}");
        let raw = raw_exchange(w.gateway.addr, &request_with(&absolute, None)).await;
        forwarded += usize::from(check(
            "absolute-form",
            target,
            expect,
            raw_status(&raw),
            &raw,
        ));
    }
    assert_eq!(w.upstream.count(), forwarded);
}

/// One HTTP/2 (h2c, prior knowledge) GET through hyper's client, whose
/// `:path` is the target exactly as given; `cookies` become separate
/// `cookie` fields. Returns the status and the body.
async fn h2_get(addr: SocketAddr, target: &str, cookies: &[&str]) -> (u16, String) {
    use http_body_util::BodyExt;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        let mut req = http::Request::get(format!("http://{HOST}{target}"))
            .header("accept", "application/json");
        for c in cookies {
            req = req.header("cookie", *c);
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = send.send_request(req).await.expect("h2 answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("h2 exchange in time")
}

#[tokio::test]
async fn http2_paths_are_judged_and_forwarded_in_canonical_form() {
    let w = World::start().await;
    let mut forwarded = 0;
    for &(target, expect) in TARGETS {
        let (status, body) = h2_get(w.gateway.addr, target, &[]).await;
        // `check` reads a raw answer: give it one.
        let raw = format!("HTTP/1.1 {status} x\r\n\r\n{body}");
        forwarded += usize::from(check("h2", target, expect, Some(status), &raw));
    }
    assert_eq!(w.upstream.count(), forwarded);
}

/// Encodings that do not change the resolved path pass as sent, byte for
/// byte: `%2F` inside a segment, `//`, other escapes; dot segments of a
/// signed-in request are resolved too.
#[tokio::test]
async fn encodings_that_do_not_change_the_path_pass_as_sent() {
    let w = World::start().await;
    let browser = w.signed_in(ALICE).await;
    let cookie = browser.cookie_header(&w.url("/"));
    for (target, sent) in [
        ("/docs/a%2Fb", "/docs/a%2Fb"),
        ("/docs/a%2fb/c?x=%2F", "/docs/a%2fb/c?x=%2F"),
        ("/docs/a%5Cb", "/docs/a%5Cb"),
        ("/docs//b", "/docs//b"),
        ("/docs/caf%C3%A9", "/docs/caf%C3%A9"),
        ("/docs/%61b%2e", "/docs/%61b%2e"),
        ("/docs/a;jsessionid=1/b", "/docs/a;jsessionid=1/b"),
        ("/docs/100%25", "/docs/100%25"),
        ("/docs/x/../y", "/docs/y"),
        ("/docs/%2e%2e/admin/x", "/admin/x"),
        ("/docs//../b", "/docs/b"),
    ] {
        let raw = raw_exchange(w.gateway.addr, &request_with(target, Some(&cookie))).await;
        assert_eq!(raw_status(&raw), Some(200), "{target:?}: {raw:.400}");
        let e = echoed(&raw);
        assert_eq!(e.uri(), sent, "{target:?}");
        assert_eq!(e.header("x-forwarded-email").as_deref(), Some(ALICE));
    }
    // Without a session, public paths pass as sent too.
    for target in [
        "/static/caf%C3%A9.css",
        "/static//x",
        "/static/%61pp.js?v=%2F",
        // `%2F`, `%5C` and `;` inside a segment below the prefix: every
        // upstream reading stays under `/static/`.
        "/static/a%2Fb",
        "/static/a%5Cb",
        "/static/a;b",
    ] {
        let raw = raw_exchange(w.gateway.addr, &request_with(target, None)).await;
        assert_eq!(raw_status(&raw), Some(200), "{target:?}: {raw:.400}");
        assert_eq!(echoed(&raw).uri(), target);
    }
    // But a public prefix that some upstream reading leaves needs a session.
    for target in ["/static%2Fa", "/static;x/a", "/st%61tic/a", "//static/a"] {
        let raw = raw_exchange(w.gateway.addr, &request_with(target, None)).await;
        assert_eq!(raw_status(&raw), Some(401), "{target:?}: {raw:.400}");
    }
}

/// RFC 9113 8.2.3: an HTTP/2 request's `cookie` fields reach an HTTP/1.1
/// upstream as one `Cookie` line joined with `; ` (an app reading one line
/// would otherwise see only `a=1`). realmgate's own cookie is still removed.
#[tokio::test]
async fn http2_cookie_fields_reach_the_upstream_as_one_cookie_line() {
    let w = World::start().await;
    let (status, body) = h2_get(w.gateway.addr, "/static/x", &["a=1", "b=2"]).await;
    assert_eq!(status, 200, "{body}");
    let e = Echoed(serde_json::from_str(&body).expect("echo JSON"));
    assert_eq!(e.header_all("cookie"), vec!["a=1; b=2".to_string()]);

    // Signed in, the session cookie in a field of its own.
    let browser = w.signed_in(ALICE).await;
    let session = browser.cookie_header(&w.url("/"));
    let (status, body) = h2_get(w.gateway.addr, "/docs", &["a=1", &session, "b=2; c=3"]).await;
    assert_eq!(status, 200, "{body}");
    let e = Echoed(serde_json::from_str(&body).expect("echo JSON"));
    assert_eq!(e.header_all("cookie"), vec!["a=1; b=2; c=3".to_string()]);
    assert_eq!(e.header("x-forwarded-email").as_deref(), Some(ALICE));

    // HTTP/1.1 clients that repeat the header get the same.
    let raw = raw_exchange(
        w.gateway.addr,
        format!("GET /static/x HTTP/1.1\r\nHost: {HOST}\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&raw), Some(200), "{raw:.400}");
    assert_eq!(
        echoed(&raw).header_all("cookie"),
        vec!["a=1; b=2".to_string()]
    );
}

/// The review's finding for forward auth: on a host with one route and
/// `public = ["/static/"]`, a trusted proxy's `X-Original-URI:
/// /admin/../static/x` was `200 public`, while the proxy in front forwards
/// that path unresolved to the app. Every such URI is a 400 now; the plain
/// public path is still 200 and a protected one 401.
#[tokio::test]
async fn forward_auth_answers_400_for_a_forwarded_uri_that_resolves_differently() {
    let w = World::start_with(r#"trusted_proxies = ["127.0.0.1/32"]"#, "").await;
    let verify = |header: &'static str, uri: &'static str| {
        let client = w.bare();
        let url = w.url("/.auth/verify");
        async move {
            client
                .get(url)
                .header("accept", "application/json")
                .header(header, uri)
                .send()
                .await
                .expect("verify answers")
        }
    };
    for &(target, expect) in TARGETS {
        if target.contains('\u{ff0e}') || target.starts_with("/.auth") || target.starts_with("/x/")
        {
            continue;
        }
        for header in ["x-original-uri", "x-forwarded-uri"] {
            let resp = verify(header, target).await;
            let status = resp.status().as_u16();
            let wanted = match expect {
                // Only a URI that is its own canonical form can be judged.
                Expect::Forwarded(path) if path == target => 200,
                Expect::Forwarded(_) | Expect::Refused => 400,
                Expect::SignIn if target.contains("..") || target.contains("%2e") => 400,
                Expect::SignIn => 401,
            };
            assert_eq!(status, wanted, "{header}: {target:?}");
            if status == 400 {
                let body: serde_json::Value = resp.json().await.expect("JSON");
                assert_eq!(body["error"], "bad_request", "{target:?}: {body}");
            }
        }
    }
    assert_eq!(verify("x-original-uri", "/static/x").await.status(), 200);
    assert_eq!(verify("x-original-uri", "/admin/x").await.status(), 401);
    w.upstream.assert_received_nothing().await;
}
