//! Path normalization against public prefixes, end to end. The unit tests of
//! `pathnorm` (proptest) pin the normalizer itself; here every trick is sent
//! on the wire (HTTP/1.1 raw, so nothing is cleaned up by a client) to a
//! route whose `public` prefixes are `/static/` and `/favicon.ico`. Each
//! request is either not served as public (login redirect, 401, or 400), or
//! forwarded with a path that even the most aggressive app-side resolver
//! keeps under the public prefix.

use super::{World, HOST};
use crate::util::{raw_exchange, raw_status, Echoed};

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
