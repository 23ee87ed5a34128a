//! Identity-header spoofing: a client sends the headers the app trusts, in
//! every spelling an app stack might read (case, `_` for `-`, duplicates),
//! and names them in `Connection`. On public paths, protected paths (signed
//! in or not), `/.auth/*` and over HTTP/2, no value the client chose may reach
//! the app, and the injected values must be the real ones, once.

use reqwest::header::{HeaderName, HeaderValue, ACCEPT};
use reqwest::StatusCode;

use super::{World, ALICE, EASY_HOST, HOST};
use crate::util::{raw_exchange, raw_status, Echoed};

/// Identity headers of every profile, every token header, the `headers_extra`
/// name of the app route and realmgate's own namespace.
const IDENTITY: &[&str] = &[
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Forwarded-Name",
    "X-Forwarded-Tenant",
    "X-Forwarded-Access-Token",
    "X-Forwarded-Id-Token",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Access-Token",
    "X-MS-CLIENT-PRINCIPAL",
    "X-MS-CLIENT-PRINCIPAL-NAME",
    "X-MS-CLIENT-PRINCIPAL-ID",
    "X-MS-CLIENT-PRINCIPAL-IDP",
    "X-MS-TOKEN-AAD-ID-TOKEN",
    "X-MS-TOKEN-AAD-ACCESS-TOKEN",
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Pomerium-Jwt-Assertion",
    "X-Pomerium-Claim-Email",
    "X-Pomerium-Claim-Groups",
    "OIDC_CLAIM_sub",
    "OIDC_CLAIM_email",
    "OIDC_CLAIM_groups",
    "OIDC_access_token",
    "OIDC_id_token",
    "X-Realmgate-Assertion",
    "X-Employee-Id",
];

/// Every spelling of `name` an HTTP/1.1 client can send and some app stack
/// reads as the same header.
fn spellings(name: &str) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let mixed: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let mut out = vec![
        name.to_string(),
        lower.clone(),
        name.to_ascii_uppercase(),
        mixed,
        lower.replace('-', "_"),
        name.to_ascii_uppercase().replace('-', "_"),
        lower.replace('_', "-"),
    ];
    // One separator of each kind in the same name.
    if let Some(i) = lower.find('-') {
        let mut m = lower.clone();
        m.replace_range(i..=i, "_");
        out.push(m);
    }
    out.sort();
    out.dedup();
    out
}

/// How many spellings [`spellings`] gives at most.
const SPELLINGS: usize = 8;

/// A raw HTTP/1.1 request carrying every identity header in spelling number
/// `variant` (when the name has it), each twice, plus `Connection` naming
/// them. One spelling per request keeps it under hyper's 100-header limit.
fn spoofed_request(host: &str, path: &str, cookie: Option<&str>, variant: usize) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n");
    let mut n = 0;
    for name in IDENTITY {
        if let Some(spelling) = spellings(name).get(variant) {
            for _ in 0..2 {
                n += 1;
                req.push_str(&format!("{spelling}: spoofed-{n}\r\n"));
            }
        }
    }
    req.push_str("Connection: close, X-Forwarded-User, X-Auth-Request-User, X-MS-CLIENT-PRINCIPAL-ID, Remote-User\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The echo JSON in a raw response.
fn echoed(raw: &str) -> Echoed {
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Echoed(
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not echo JSON ({e}): {raw:.2000}")),
    )
}

/// No header the upstream received carries a value the client chose.
fn assert_nothing_spoofed(e: &Echoed) {
    for pair in e.0["headers"].as_array().unwrap() {
        let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert!(
            !value.contains("spoofed"),
            "the client's {name}: {value} reached the app"
        );
    }
}

/// A large header section: the gateway in these tests allows 64 KiB.
fn server_extra() -> &'static str {
    "max_header_bytes = 262144"
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app_on_a_public_path() {
    let w = World::start_with(server_extra(), "").await;
    for v in 0..SPELLINGS {
        let req = spoofed_request(HOST, "/static/app.css", None, v);
        let raw = raw_exchange(w.gateway.addr, &req).await;
        assert_eq!(raw_status(&raw), Some(200), "spelling {v}: {raw:.500}");
        let e = echoed(&raw);
        assert_nothing_spoofed(&e);
        for name in IDENTITY {
            let n = name.to_ascii_lowercase();
            assert!(e.header_all(&n).is_empty(), "{n} on a public path");
        }
    }
    assert_eq!(w.upstream.count(), SPELLINGS);
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app_on_a_protected_path() {
    let w = World::start_with(server_extra(), "").await;
    // Not signed in: nothing at all reaches the app.
    for v in 0..SPELLINGS {
        let raw = raw_exchange(w.gateway.addr, &spoofed_request(HOST, "/secret", None, v)).await;
        assert_eq!(raw_status(&raw), Some(401), "spelling {v}: {raw:.500}");
    }
    w.upstream.assert_received_nothing().await;

    // Signed in: the real identity, once, and nothing of the client's.
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    for v in 0..SPELLINGS {
        let req = spoofed_request(HOST, "/secret", Some(&cookie), v);
        let raw = raw_exchange(w.gateway.addr, &req).await;
        assert_eq!(raw_status(&raw), Some(200), "spelling {v}: {raw:.500}");
        let e = echoed(&raw);
        assert_nothing_spoofed(&e);
        let user = e.header("x-forwarded-user").expect("injected user");
        assert!(!user.is_empty());
        assert_eq!(
            e.header("x-forwarded-email").as_deref(),
            Some(ALICE),
            "the real, verified email"
        );
        assert!(
            e.header("x-employee-id").is_some(),
            "headers_extra injected"
        );
        // `Connection` named the injected header: it is still there, and the
        // Connection header itself did not travel.
        for c in e.header_all("connection") {
            assert!(!c.to_ascii_lowercase().contains("x-forwarded"), "{c}");
        }
        // No other profile's headers appear.
        for name in [
            "remote-user",
            "x-auth-request-user",
            "x-ms-client-principal-id",
        ] {
            assert!(e.header_all(name).is_empty(), "{name}");
        }
    }
}

#[tokio::test]
async fn injected_identity_headers_arrive_once_with_and_without_a_request_body() {
    // Requests without a body go through realmgate's own upstream exchange
    // (identity headers written into the head), requests with one through
    // hyper's client (identity headers in the header map): the app sees the
    // same thing either way.
    let w = World::start_with(server_extra(), "").await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    for v in [0, 4] {
        let get = spoofed_request(HOST, "/secret", Some(&cookie), v);
        let mut post = get.strip_suffix(b"\r\n").unwrap().to_vec();
        post.splice(0..3, b"POST".iter().copied());
        post.extend_from_slice(
            b"Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
        );
        let mut seen = Vec::new();
        for req in [get, post] {
            let raw = raw_exchange(w.gateway.addr, &req).await;
            assert_eq!(raw_status(&raw), Some(200), "spelling {v}: {raw:.500}");
            let e = echoed(&raw);
            assert_nothing_spoofed(&e);
            let mut identity = Vec::new();
            for name in [
                "x-forwarded-user",
                "x-forwarded-email",
                "x-forwarded-groups",
                "x-employee-id",
            ] {
                let values = e.header_all(name);
                assert_eq!(values.len(), 1, "{name} once: {values:?}");
                identity.push(values[0].clone());
            }
            assert_eq!(identity[1], ALICE);
            seen.push(identity);
        }
        assert_eq!(seen[0], seen[1], "GET and POST carry the same identity");
    }
}

#[tokio::test]
async fn spoofed_easyauth_and_token_headers_are_replaced_by_the_real_ones() {
    let w = World::start_with(server_extra(), "").await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    for v in 0..SPELLINGS {
        let req = spoofed_request(EASY_HOST, "/secret", Some(&cookie), v);
        let raw = raw_exchange(w.gateway.addr, &req).await;
        assert_eq!(raw_status(&raw), Some(200), "spelling {v}: {raw:.500}");
        let e = echoed(&raw);
        assert_nothing_spoofed(&e);
        assert!(e.header("x-ms-client-principal-id").is_some());
        assert!(e.header("x-ms-client-principal").is_some());
        let id_token = e
            .header("x-ms-token-aad-id-token")
            .expect("id token passed");
        assert!(id_token.starts_with("eyJ"), "a JWT: {id_token:.20}");
        assert!(e.header("x-ms-token-aad-access-token").is_some());
        // Public path of the same route: no tokens, no identity.
        let req = spoofed_request(EASY_HOST, "/pub/x", Some(&cookie), v);
        let e = echoed(&raw_exchange(w.gateway.addr, &req).await);
        assert_nothing_spoofed(&e);
        assert!(e.header_all("x-ms-token-aad-id-token").is_empty());
        assert!(e.header_all("x-ms-client-principal-id").is_empty());
        assert!(
            e.header_all("cookie")
                .iter()
                .all(|c| !c.contains("realmgate=")),
            "realmgate's cookie stays at the gateway"
        );
    }
}

#[tokio::test]
async fn spoofed_identity_headers_do_not_leak_into_forward_auth_answers() {
    let w = World::start_with(server_extra(), "").await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    for v in 0..SPELLINGS {
        for signed_in in [false, true] {
            let req = spoofed_request(
                HOST,
                "/.auth/verify",
                signed_in.then_some(cookie.as_str()),
                v,
            );
            let raw = raw_exchange(w.gateway.addr, &req).await;
            let want = if signed_in { 200 } else { 401 };
            assert_eq!(raw_status(&raw), Some(want), "spelling {v}: {raw:.500}");
            let head = raw.split("\r\n\r\n").next().unwrap();
            assert!(!raw.contains("spoofed"), "echoed in the answer: {head}");
            let lower = head.to_ascii_lowercase();
            assert_eq!(lower.contains("x-auth-request-user:"), signed_in, "{head}");
        }
    }
    // `/.auth/me` reports the session, not the headers.
    let resp = w
        .bare()
        .get(w.url("/.auth/me"))
        .header("X-Forwarded-User", "spoofed")
        .header("X-Forwarded-Email", "spoofed@evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn spoofed_identity_headers_over_http2_never_reach_the_app() {
    let w = World::start_with(server_extra(), "").await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve(HOST, w.gateway.addr)
        .no_proxy()
        .build()
        .unwrap();
    for (path, with_cookie) in [("/static/x", false), ("/secret", true), ("/secret", false)] {
        let mut req = h2.get(w.url(path)).header(ACCEPT, "application/json");
        if with_cookie {
            req = req.header("cookie", &cookie);
        }
        let mut n = 0;
        for name in IDENTITY {
            // HTTP/2 field names are lowercase; `_` is still a valid name.
            let lower = name.to_ascii_lowercase();
            for spelling in [lower.clone(), lower.replace('-', "_")] {
                n += 1;
                req = req.header(
                    HeaderName::from_bytes(spelling.as_bytes()).unwrap(),
                    HeaderValue::from_str(&format!("spoofed-{n}")).unwrap(),
                );
            }
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        if path == "/secret" && !with_cookie {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            continue;
        }
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let e = Echoed::from(resp).await;
        assert_nothing_spoofed(&e);
        assert_eq!(
            e.header("x-forwarded-user").is_some(),
            with_cookie,
            "{path}"
        );
    }
    assert_eq!(
        w.upstream.count(),
        2,
        "the unauthenticated request got nothing through"
    );
}
