//! Open redirects: every parameter that names where the browser goes next
//! (`post_login_redirect_uri` and its alias `rd` on `/.auth/login` and
//! `/.auth/login/{connection}`, `post_logout_redirect_uri` and `rd` on
//! `/.auth/logout`, `X-Forwarded-Uri` and `?rd=` on `/.auth/verify`) gets the
//! catalogue of tricks that produced advisories in peer proxies. Each must
//! land on this gateway's own host (or a configured route host), never
//! anywhere else, and never inject a header.

use reqwest::StatusCode;

use super::{location, param, with_query, World, ALICE, HOST, HTML};

/// Targets that must never leave the gateway's hosts. Most of them must
/// become `/`; a few are harmless same-host paths once percent-encoded.
const HOSTILE: &[&str] = &[
    // scheme-relative and slash games
    "//evil.example/",
    "///evil.example/",
    "////evil.example",
    "/\\evil.example/",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    // whitespace browsers drop or trim
    "/\t/evil.example",
    "/\n/evil.example",
    "/ /evil.example",
    " //evil.example",
    "\t//evil.example",
    "//evil.example\t/",
    // encoded slashes and backslashes
    "/%2Fevil.example",
    "/%2f/evil.example",
    "/%5Cevil.example",
    "/%5c%5cevil.example",
    "/%09/evil.example",
    // absolute URLs elsewhere, and parser differentials
    "https://evil.example/",
    "http://evil.example",
    "HTTPS://EVIL.EXAMPLE/",
    "https:evil.example",
    "https:/evil.example",
    "https:\\\\evil.example",
    "https:/\\evil.example",
    "ftp://app.test/",
    "https://app.test.evil.example/",
    "https://evilapp.test/",
    "https://evil.example/app.test",
    "https://evil.example?app.test",
    "https://evil.example#app.test",
    // userinfo
    "https://app.test@evil.example/",
    "https://app.test:443@evil.example",
    "//app.test@evil.example",
    "https://evil.example\\@app.test/",
    "https://evil.example%40app.test/",
    "https://user:pass@app.test/",
    // other schemes
    "javascript:alert(1)",
    "JavaScript:alert(document.domain)",
    "java\tscript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    // CR/LF: header injection and response splitting
    "/\r\nSet-Cookie: injected=1",
    "/\rSet-Cookie: injected=1",
    "/x\r\n\r\n<script>alert(1)</script>",
    "https://app.test/\r\nSet-Cookie: injected=1",
    // unicode lookalikes of `/`, `.` and latin letters
    "\u{2215}\u{2215}evil.example",
    "\u{ff0f}\u{ff0f}evil.example",
    "/\u{ff0f}evil.example",
    "/\u{2215}evil.example",
    "https://app.test\u{3002}evil.example/",
    "https://evil.example\u{2044}app.test/",
    "https://\u{430}pp.test/",
    "https://app\u{ff0e}test/",
    "https://ａｐｐ.test@evil.example/",
    // NUL and other controls
    "/\0//evil.example",
    "/\u{7f}//evil.example",
    "/\u{85}//evil.example",
];

/// Legitimate targets, to show the checks are not vacuous: (sent, landed).
const GOOD: &[(&str, &str)] = &[
    ("/ok?x=1", "/ok?x=1"),
    ("/a/../b", "/b"),
    ("/caf\u{e9}", "/caf%C3%A9"),
    ("/x#frag", "/x#frag"),
];

/// The route hosts a target may name.
const ROUTE_HOSTS: &[&str] = &["app.test", "easy.test", "other.test"];

/// Where a browser following `loc` (from a page on app.test) ends up must be
/// a route host, and `loc` must not carry anything a browser would "fix up".
fn assert_stays_home(sent: &str, loc: &str) {
    assert!(
        !loc.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
        "{sent:?}: Location {loc:?} has characters browsers rewrite"
    );
    assert!(
        !loc.starts_with("//"),
        "{sent:?}: scheme-relative Location {loc:?}"
    );
    let base = url::Url::parse(&format!("http://{HOST}/")).unwrap();
    let landed = base
        .join(loc)
        .unwrap_or_else(|e| panic!("{sent:?}: Location {loc:?} is not a URL ({e})"));
    assert!(
        matches!(landed.scheme(), "http" | "https"),
        "{sent:?}: Location {loc:?} has scheme {}",
        landed.scheme()
    );
    let host = landed.host_str().unwrap_or_default();
    assert!(
        ROUTE_HOSTS.contains(&host),
        "{sent:?}: Location {loc:?} leaves for {host:?}"
    );
    assert!(
        landed.username().is_empty() && landed.password().is_none(),
        "{sent:?}: Location {loc:?} has userinfo"
    );
}

/// A hostile target becomes `/`, a harmless percent-encoded same-host path,
/// or (for lookalikes that IDNA maps onto a route host, like `app\u{ff0e}test`)
/// that route host: in every case the browser stays home.
fn assert_safe(sent: &str, loc: &str) {
    assert_stays_home(sent, loc);
}

/// The Location after a whole sign-in started with `?{name}={target}` at `start`.
async fn land_after_login(w: &World, start: &str, name: &str, target: &str) -> String {
    let browser = w.browser();
    let resp = browser
        .client
        .get(with_query(w.url(start), &[(name, target)]))
        .header(reqwest::header::ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{target:?}: login starts");
    let authorize = location(&resp);
    let back = w
        .idp
        .complete_login(&authorize, ALICE)
        .unwrap_or_else(|e| panic!("{target:?}: {e}"));
    let resp = browser.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "{target:?}: signed in");
    assert_no_injected_cookie(target, &resp);
    location(&resp)
}

fn assert_no_injected_cookie(target: &str, resp: &reqwest::Response) {
    for c in resp.headers().get_all(reqwest::header::SET_COOKIE) {
        let c = c.to_str().unwrap_or_default();
        assert!(
            !c.starts_with("injected"),
            "{target:?}: header injected: {c}"
        );
    }
}

#[tokio::test]
async fn login_targets_of_every_hostile_kind_land_on_the_gateways_own_host() {
    let w = World::start().await;
    for (start, name) in [
        ("/.auth/login/contoso", "post_login_redirect_uri"),
        ("/.auth/login/contoso", "rd"),
    ] {
        for target in HOSTILE {
            let loc = land_after_login(&w, start, name, target).await;
            assert_safe(target, &loc);
        }
        for (target, expected) in GOOD {
            let loc = land_after_login(&w, start, name, target).await;
            assert_eq!(&loc, expected, "{name}={target:?}");
        }
        // Longer than any real target: refused, not truncated.
        let long = format!("/{}", "a".repeat(3000));
        assert_eq!(land_after_login(&w, start, name, &long).await, "/");
        // An absolute URL on another configured route host is allowed.
        let other = format!("http://{}/x", super::OTHER_HOST);
        assert_eq!(land_after_login(&w, start, name, &other).await, other);
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn the_login_page_and_the_email_form_carry_only_a_safe_target() {
    let w = World::start().await;
    let browser = w.browser();
    for name in ["post_login_redirect_uri", "rd"] {
        for target in HOSTILE {
            let resp = browser
                .client
                .get(with_query(w.url("/.auth/login"), &[(name, target)]))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let html = resp.text().await.unwrap();
            let hidden = html
                .split("name=\"post_login_redirect_uri\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{target:?}: no hidden target in the page"));
            // minijinja escapes HTML; unescape the few entities it uses.
            let hidden = hidden
                .replace("&#x2f;", "/")
                .replace("&amp;", "&")
                .replace("&#x27;", "'")
                .replace("&quot;", "\"");
            assert_safe(target, &hidden);
        }
    }
    // The form posts the target back; a hostile one posted directly is checked again.
    for target in HOSTILE {
        let resp = browser
            .client
            .post(w.url("/.auth/login"))
            .form(&[("email", ALICE), ("post_login_redirect_uri", target)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        let back = w.idp.complete_login(&location(&resp), ALICE).unwrap();
        let resp = browser.get(&back.url).await;
        assert_no_injected_cookie(target, &resp);
        assert_safe(target, &location(&resp));
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn logout_targets_of_every_hostile_kind_land_on_the_gateways_own_host() {
    let w = World::start().await;
    for name in ["post_logout_redirect_uri", "rd"] {
        // Signed out: realmgate redirects itself.
        for target in HOSTILE {
            let resp = w
                .bare()
                .get(with_query(w.url("/.auth/logout"), &[(name, target)]))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::FOUND, "{target:?}");
            assert_no_injected_cookie(target, &resp);
            assert_safe(target, &location(&resp));
        }
    }
    // Signed in: the target travels to the provider's end-session endpoint as
    // an absolute URL on this gateway.
    for target in HOSTILE.iter().take(40) {
        let browser = w.signed_in(ALICE).await;
        let resp = browser
            .client
            .get(with_query(
                w.url("/.auth/logout"),
                &[("post_logout_redirect_uri", target)],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        let to = location(&resp);
        assert!(to.starts_with(&w.idp.base_url()), "{to}");
        let back = param(&to, "post_logout_redirect_uri").expect("a return URL");
        assert!(back.starts_with(&w.url("/")), "{target:?}: {back}");
        assert_stays_home(target, &back);
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn forward_auth_targets_of_every_hostile_kind_become_a_safe_login_target() {
    let w = World::start().await;
    let verify = w.url("/.auth/verify");
    for target in HOSTILE {
        // `?rd=` may carry anything; a header value cannot hold CR, LF or NUL.
        let by_query = w
            .bare()
            .get(with_query(&verify, &[("rd", target)]))
            .header(reqwest::header::ACCEPT, HTML)
            .send()
            .await
            .unwrap();
        let mut answers = vec![("rd", by_query)];
        if let Ok(v) = reqwest::header::HeaderValue::from_str(target) {
            let by_header = w
                .bare()
                .get(&verify)
                .header("X-Forwarded-Uri", v)
                .header(reqwest::header::ACCEPT, HTML)
                .send()
                .await
                .unwrap();
            answers.push(("X-Forwarded-Uri", by_header));
        }
        for (how, resp) in answers {
            if resp.status() == StatusCode::BAD_REQUEST && how == "X-Forwarded-Uri" {
                // A path that is not its own canonical form: refused (SPEC
                // 6.1), no redirect anywhere.
                assert!(resp.headers().get("location").is_none(), "{target:?}");
                continue;
            }
            if resp.status() == StatusCode::UNAUTHORIZED && how == "X-Forwarded-Uri" {
                // A header value that is not visible ASCII counts as absent:
                // no redirect, and the login URL for nginx has the safe default.
                let login = resp.headers()["x-realmgate-login-url"].to_str().unwrap();
                assert_eq!(
                    login, "/.auth/login?post_login_redirect_uri=%2F",
                    "{target:?}"
                );
                continue;
            }
            assert_eq!(resp.status(), StatusCode::FOUND, "{how} {target:?}");
            let loc = location(&resp);
            assert!(loc.starts_with("/.auth/login?"), "{how} {target:?}: {loc}");
            let next = param(&loc, "post_login_redirect_uri").expect("a target");
            assert_safe(target, &next);
        }
    }
    // The 401 for nginx names the same safe login URL.
    let resp = w
        .bare()
        .get(&verify)
        .header("X-Original-URI", "//evil.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let login = resp.headers()["x-realmgate-login-url"].to_str().unwrap();
    assert_eq!(login, "/.auth/login?post_login_redirect_uri=%2F");
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn a_protected_request_with_a_hostile_path_still_lands_home_after_login() {
    // The target of the first redirect is the request's own path; paths that
    // look like other hosts must not become an open redirect after sign-in.
    let w = World::start().await;
    for path in ["//evil.example/", "/\\evil.example", "/%2F%2Fevil.example"] {
        let browser = w.browser();
        let resp = browser.get(&w.url(path)).await;
        let status = resp.status();
        if status == StatusCode::BAD_REQUEST {
            continue; // refused outright is fine too
        }
        assert_eq!(status, StatusCode::FOUND, "{path}");
        let login = location(&resp);
        assert!(login.starts_with("/.auth/login?"), "{path}: {login}");
        let target = param(&login, "post_login_redirect_uri").unwrap_or_default();
        let loc = land_after_login(&w, "/.auth/login/contoso", "rd", &target).await;
        assert_stays_home(path, &loc);
    }
    w.upstream.assert_received_nothing().await;
}
