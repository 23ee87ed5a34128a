//! Sign-out started by another site (issue 17, hole 10): a link, a
//! self-submitting form or a sibling subdomain sending the browser to
//! `/.auth/logout` gets a confirmation page, and the session (here and at
//! the provider) stays; links of this site, a typed URL and the
//! confirmation's own button sign out as before.

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use reqwest::StatusCode;

use super::{location, param, with_query, Browser, World, ALICE, HTML, OTHER_HOST};

/// (what, by POST, headers)
type Case<'a> = (&'a str, bool, &'a [(&'a str, &'a str)]);
type OwnedCase<'a> = (&'a str, bool, Vec<(&'a str, &'a str)>);

/// Whether `browser` is still signed in (by `/.auth/me`).
async fn signed_in(w: &World, browser: &Browser) -> bool {
    let resp = browser
        .client
        .get(w.url("/.auth/me"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    resp.status() == StatusCode::OK
}

/// The `action` of the page's POST form, unescaped as a browser reads it.
fn form_action(html: &str) -> String {
    let form = html
        .split("<form method=\"post\" action=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no POST form in:\n{html}"));
    form.split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// A sign-out request as a browser sends it, with `headers`.
async fn logout(
    w: &World,
    browser: &Browser,
    post: bool,
    target: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let url = with_query(
        w.url("/.auth/logout"),
        &[("post_logout_redirect_uri", target)],
    );
    let mut req = if post {
        browser
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("")
    } else {
        browser.client.get(url)
    };
    req = req.header(ACCEPT, HTML);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_sign_out_started_by_another_site_asks_first_and_keeps_the_session() {
    let w = World::start().await;
    let browser = w.signed_in(ALICE).await;
    let cases: &[Case] = &[
        (
            "a link (Sec-Fetch-Site)",
            false,
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Sec-Fetch-Mode", "navigate"),
            ],
        ),
        (
            "a link with no Referer (Sec-Fetch-Site)",
            false,
            &[("Sec-Fetch-Site", "cross-site")],
        ),
        (
            "a link (Referer, old browser)",
            false,
            &[("Referer", "https://evil.example/page")],
        ),
        (
            "a redirect (Origin)",
            false,
            &[("Origin", "https://evil.example")],
        ),
        (
            "a sandboxed frame (Origin: null)",
            false,
            &[("Origin", "null")],
        ),
        (
            "a sibling subdomain not behind the gateway",
            false,
            &[
                ("Sec-Fetch-Site", "same-site"),
                ("Referer", "http://blog.app.test/"),
            ],
        ),
        (
            "cross-site, with a Referer naming us in its query",
            false,
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Referer", "https://evil.example/?http://app.test/"),
            ],
        ),
        (
            "a self-submitting form",
            true,
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Origin", "https://evil.example"),
            ],
        ),
        (
            "a form (Origin only)",
            true,
            &[("Origin", "https://evil.example")],
        ),
        ("a form from a sandboxed frame", true, &[("Origin", "null")]),
    ];
    let logouts_before = w.idp.logout_calls();
    for (what, post, headers) in cases {
        let resp = logout(&w, &browser, *post, "/bye", headers).await;
        assert_eq!(resp.status(), StatusCode::OK, "{what}");
        let h = resp.headers().clone();
        assert!(h.get(SET_COOKIE).is_none(), "{what}: no cookie is touched");
        assert_eq!(h[CACHE_CONTROL], "no-store", "{what}");
        assert!(h[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("Sign out?"), "{what}");
        assert_eq!(
            form_action(&html),
            "/.auth/logout?post_logout_redirect_uri=%2Fbye",
            "{what}"
        );
        assert!(signed_in(&w, &browser).await, "{what}: still signed in");
    }
    // A hostile target rides along only in its checked form.
    let resp = logout(
        &w,
        &browser,
        false,
        "https://evil.example/",
        &[("Sec-Fetch-Site", "cross-site")],
    )
    .await;
    let html = resp.text().await.unwrap();
    assert_eq!(
        form_action(&html),
        "/.auth/logout?post_logout_redirect_uri=%2F"
    );
    assert!(!html.contains("evil.example"));
    assert!(signed_in(&w, &browser).await);
    assert_eq!(
        w.idp.logout_calls(),
        logouts_before,
        "nothing reached the provider"
    );
    w.upstream.assert_received_nothing().await;
}

/// The session ended here and the browser was sent to the provider's
/// end-session endpoint with `/bye` on this gateway as the way back.
async fn assert_signed_out_at_the_provider(
    w: &World,
    browser: &Browser,
    resp: reqwest::Response,
    what: &str,
) {
    assert_eq!(resp.status(), StatusCode::FOUND, "{what}");
    let to = location(&resp);
    assert!(
        to.starts_with(&w.idp.base_url()),
        "{what}: to the IdP: {to}"
    );
    assert_eq!(
        param(&to, "post_logout_redirect_uri"),
        Some(w.url("/bye")),
        "{what}"
    );
    assert!(!signed_in(w, browser).await, "{what}: signed out");
}

#[tokio::test]
async fn this_sites_links_a_typed_url_and_the_confirmation_button_sign_out() {
    let w = World::start().await;
    let own = w.url("/page");
    let own_origin = w.url("");
    let other_route = format!("http://{OTHER_HOST}/");
    let direct: &[OwnedCase] = &[
        (
            "a typed URL (Sec-Fetch-Site: none)",
            false,
            vec![("Sec-Fetch-Site", "none")],
        ),
        ("no browser headers at all", false, vec![]),
        (
            "a link on this site",
            false,
            vec![("Sec-Fetch-Site", "same-origin"), ("Referer", own.as_str())],
        ),
        (
            "a link on this site (old browser)",
            false,
            vec![("Referer", own.as_str())],
        ),
        (
            "a link on another route host of this gateway",
            false,
            vec![
                ("Sec-Fetch-Site", "same-site"),
                ("Referer", other_route.as_str()),
            ],
        ),
        (
            "a form on this site",
            true,
            vec![
                ("Sec-Fetch-Site", "same-origin"),
                ("Origin", own_origin.as_str()),
            ],
        ),
        (
            "a form on this site (Origin only)",
            true,
            vec![("Origin", own_origin.as_str())],
        ),
    ];
    for (what, post, headers) in direct {
        let browser = w.signed_in(ALICE).await;
        let resp = logout(&w, &browser, *post, "/bye", headers).await;
        assert_signed_out_at_the_provider(&w, &browser, resp, what).await;
    }

    // The whole confirmation: a cross-site link shows the page, its button
    // (a same-origin POST, as the browser sends it) signs out.
    let browser = w.signed_in(ALICE).await;
    let page = logout(
        &w,
        &browser,
        false,
        "/bye",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Referer", "https://evil.example/"),
        ],
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let action = form_action(&page.text().await.unwrap());
    assert!(signed_in(&w, &browser).await);
    let resp = browser
        .client
        .post(w.url(&action))
        .header(ACCEPT, HTML)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("Origin", own_origin.as_str())
        .header("Sec-Fetch-Site", "same-origin")
        .header("Referer", w.url("/.auth/logout"))
        .body("")
        .send()
        .await
        .unwrap();
    assert_signed_out_at_the_provider(&w, &browser, resp, "the confirmation's button").await;
    w.upstream.assert_received_nothing().await;
}

/// `POST /.auth/logout` as a form (SPEC 4: `GET, POST /.auth/logout` takes
/// `post_logout_redirect_uri`): the target may come in the body, alias `rd`,
/// with the checks of login targets; the query's wins; only a form body is
/// read. A sign-out posted from another site still only gets the
/// confirmation page, which carries the body's target in its checked form.
#[tokio::test]
async fn a_posted_sign_out_form_carries_its_target_in_the_body() {
    let w = World::start().await;
    let own_origin = w.url("");
    let post = |browser: &Browser, query: &str, content_type: &str, body: &str, origin: &str| {
        browser
            .client
            .post(w.url(&format!("/.auth/logout{query}")))
            .header(ACCEPT, HTML)
            .header(CONTENT_TYPE, content_type)
            .header("Origin", origin)
            .body(body.to_string())
            .send()
    };
    const FORM: &str = "application/x-www-form-urlencoded";
    for (what, body) in [
        (
            "post_logout_redirect_uri",
            "post_logout_redirect_uri=%2Fbye",
        ),
        ("rd", "rd=%2Fbye"),
        ("charset", "x=1&post_logout_redirect_uri=%2Fbye"),
    ] {
        let browser = w.signed_in(ALICE).await;
        let content_type = if what == "charset" {
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        } else {
            FORM
        };
        let resp = post(&browser, "", content_type, body, &own_origin)
            .await
            .unwrap();
        assert_signed_out_at_the_provider(&w, &browser, resp, what).await;
    }
    // The query's target wins over the body's.
    let browser = w.signed_in(ALICE).await;
    let resp = post(
        &browser,
        "?post_logout_redirect_uri=%2Fbye",
        FORM,
        "post_logout_redirect_uri=%2Felsewhere",
        &own_origin,
    )
    .await
    .unwrap();
    assert_signed_out_at_the_provider(&w, &browser, resp, "query first").await;
    // Not signed in (no provider logout): straight to the target; a hostile
    // one becomes `/`.
    let anonymous = w.browser();
    for (body, to) in [
        ("post_logout_redirect_uri=%2Fbye", "/bye"),
        ("rd=https%3A%2F%2Fevil.example%2F", "/"),
    ] {
        let resp = post(&anonymous, "", FORM, body, &own_origin).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{body}");
        assert_eq!(location(&resp), to, "{body}");
    }
    // Another body type is not read: the signed-out page.
    let resp = post(
        &anonymous,
        "",
        "application/json",
        "post_logout_redirect_uri=%2Fbye",
        &own_origin,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("signed out"));
    // A form posted from another site: the confirmation, session kept.
    let browser = w.signed_in(ALICE).await;
    let resp = post(
        &browser,
        "",
        FORM,
        "post_logout_redirect_uri=%2Fbye",
        "https://evil.example",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sign out?"), "{html}");
    assert_eq!(
        form_action(&html),
        "/.auth/logout?post_logout_redirect_uri=%2Fbye"
    );
    assert!(signed_in(&w, &browser).await);
    w.upstream.assert_received_nothing().await;
}
