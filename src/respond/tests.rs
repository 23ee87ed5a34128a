use std::sync::Arc;

use http::header::ACCEPT;
use http_body_util::BodyExt;

use super::*;
use crate::policy::{Denied, DenyReason};
use crate::session::model::{EmailTrust, Session};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn user(preferred: Option<&str>) -> Session {
    Session {
        derived: Default::default(),
        version: crate::session::model::SESSION_VERSION,
        user_id: "oid-123".into(),
        subject: "sub".into(),
        tenant_id: None,
        connection: "c".into(),
        issuer: "https://idp".into(),
        sid: None,
        email: Some("unverified@evil.example".into()),
        email_trust: EmailTrust::Unverified,
        name: None,
        preferred_username: preferred.map(str::to_string),
        groups: vec![],
        roles: Vec::new(),
        claims: None,
        id_token: Some("secret-id-token".into()),
        access_token: None,
        refresh_token: None,
        saml_name_id: None,
        tokens_expire_at: None,
        client_addr: None,
        created_at: 0,
        expires_at: u64::MAX,
    }
}

fn denied(preferred: Option<&str>) -> GatewayError {
    GatewayError::Denied(Box::new(Denied {
        reason: DenyReason::Groups,
        user: Arc::new(user(preferred)),
    }))
}

/// Every variant with its pinned status. Adding a variant without a line
/// here fails `every_variant_is_pinned`.
fn pinned() -> Vec<(GatewayError, u16)> {
    vec![
        (GatewayError::NotSignedIn, 401),
        (GatewayError::InvalidToken("token expired".into()), 401),
        (
            GatewayError::InvalidBearerRequest("several Authorization headers"),
            400,
        ),
        (GatewayError::NotFound, 404),
        (GatewayError::MethodNotAllowed("GET"), 405),
        (denied(Some("alice")), 403),
        (GatewayError::StoreUnavailable, 503),
        (GatewayError::ProviderUnavailable, 503),
        (GatewayError::Internal, 500),
        (GatewayError::UnknownHost, 421),
        (
            GatewayError::BadRequest("both Content-Length and Transfer-Encoding"),
            400,
        ),
        (GatewayError::HeaderTooLarge, 431),
        (GatewayError::UpstreamUnavailable, 502),
        (GatewayError::UpstreamTimeout, 504),
        (GatewayError::Unjudgeable(Unjudgeable::UnreadableUri), 400),
        (
            GatewayError::Unjudgeable(Unjudgeable::NonCanonicalPath("dot segments")),
            400,
        ),
        (GatewayError::Unjudgeable(Unjudgeable::AmbiguousPath), 400),
        (GatewayError::Unjudgeable(Unjudgeable::NoRoute), 403),
        (
            GatewayError::Unjudgeable(Unjudgeable::UntrustedForward),
            400,
        ),
        (
            GatewayError::Unjudgeable(Unjudgeable::UnreadableRestriction),
            403,
        ),
    ]
}

fn every_error() -> Vec<GatewayError> {
    pinned().into_iter().map(|(e, _)| e).collect()
}

#[test]
fn every_variant_is_pinned() {
    // A compile error here means a new variant: add it to `pinned` too.
    for (err, _) in pinned() {
        match err {
            GatewayError::NotSignedIn
            | GatewayError::InvalidToken(_)
            | GatewayError::InvalidBearerRequest(_)
            | GatewayError::NotFound
            | GatewayError::MethodNotAllowed(_)
            | GatewayError::Denied(_)
            | GatewayError::StoreUnavailable
            | GatewayError::ProviderUnavailable
            | GatewayError::Internal
            | GatewayError::UnknownHost
            | GatewayError::BadRequest(_)
            | GatewayError::HeaderTooLarge
            | GatewayError::UpstreamUnavailable
            | GatewayError::UpstreamTimeout
            | GatewayError::Unjudgeable(
                Unjudgeable::UnreadableUri
                | Unjudgeable::NonCanonicalPath(_)
                | Unjudgeable::AmbiguousPath
                | Unjudgeable::NoRoute
                | Unjudgeable::UntrustedForward
                | Unjudgeable::UnreadableRestriction,
            ) => {}
        }
    }
    assert_eq!(pinned().len(), 20);
}

async fn body_text(resp: Response<Body>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn respond(err: &GatewayError, accept: &str, method: Method, uri: &str) -> Response<Body> {
    error_response(
        err,
        &Negotiation::of(&headers(&[("accept", accept)])),
        &method,
        &uri.parse().unwrap(),
        None,
    )
}

#[test]
fn status_mapping_is_pinned() {
    for (err, status) in &pinned() {
        let (err, status) = (err, *status);
        assert_eq!(err.status().as_u16(), status, "{err:?}");
        let json = respond(err, "application/json", Method::GET, "/x");
        assert_eq!(json.status().as_u16(), status, "{err:?} json");
        let html = respond(err, BROWSER, Method::POST, "/x");
        assert_eq!(html.status().as_u16(), status, "{err:?} html");
    }
}

#[test]
fn every_response_is_no_store_and_html_gets_page_headers() {
    for err in every_error() {
        for accept in [BROWSER, "application/json"] {
            for method in [Method::GET, Method::POST] {
                let resp = respond(&err, accept, method.clone(), "/x");
                let h = resp.headers();
                assert_eq!(h[CACHE_CONTROL], "no-store", "{err:?}");
                let ct = h.get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
                if ct.as_deref().is_some_and(|c| c.starts_with("text/html")) {
                    assert_eq!(
                        h[http::header::CONTENT_SECURITY_POLICY],
                        crate::ui::CONTENT_SECURITY_POLICY
                    );
                    assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
                }
            }
        }
    }
}

#[tokio::test]
async fn browser_navigation_without_session_is_redirected_with_encoded_target() {
    let resp = respond(
        &GatewayError::NotSignedIn,
        BROWSER,
        Method::GET,
        "/reports/q1?a=1&b=%20x",
    );
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers()[LOCATION],
        "/.auth/login?post_login_redirect_uri=%2Freports%2Fq1%3Fa%3D1%26b%3D%2520x"
    );
    let head = respond(&GatewayError::NotSignedIn, BROWSER, Method::HEAD, "/");
    assert_eq!(head.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn api_clients_without_session_get_401_json_with_bearer_challenge() {
    for (accept, method) in [
        ("application/json", Method::GET),
        ("*/*", Method::GET),
        (BROWSER, Method::POST),
        (BROWSER, Method::DELETE),
    ] {
        let resp = respond(&GatewayError::NotSignedIn, accept, method, "/api");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer");
        let v: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
        assert_eq!(v["error"], "unauthorized");
    }
    // XHR from a browser page: JSON even with an HTML Accept.
    let xhr = error_response(
        &GatewayError::NotSignedIn,
        &Negotiation::of(&headers(&[
            ("accept", BROWSER),
            ("x-requested-with", "XMLHttpRequest"),
        ])),
        &Method::GET,
        &"/".parse().unwrap(),
        None,
    );
    assert_eq!(xhr.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn denied_page_says_who_and_why_and_offers_sign_out() {
    let resp = respond(
        &denied(Some("alice@contoso.com")),
        BROWSER,
        Method::GET,
        "/",
    );
    let page = body_text(resp).await;
    assert!(page.contains("You are signed in."), "{page}");
    assert!(
        page.contains(&escape_html(DenyReason::Groups.text())),
        "{page}"
    );
    assert!(page.contains("href=\"/.auth/logout\""), "{page}");
    assert!(!page.contains("unverified@evil.example"));
    assert!(!page.contains("secret-id-token"));

    let plain = body_text(respond(&denied(Some("alice")), BROWSER, Method::GET, "/")).await;
    assert!(plain.contains("You are signed in as alice."), "{plain}");

    let json = body_text(respond(
        &denied(Some("alice")),
        "application/json",
        Method::GET,
        "/",
    ))
    .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["error"], "forbidden");
    assert_eq!(v["reason"], "groups");
    assert!(!json.contains("alice"));
}

/// SPEC 6: no email on error pages. The display name, else a username
/// without `@`, else nobody by name; never the user id.
#[tokio::test]
async fn the_denied_page_names_the_user_but_never_by_an_email() {
    let denied_as = |name: Option<&str>, preferred: Option<&str>, user_id: &str| {
        let mut u = user(preferred);
        u.name = name.map(str::to_string);
        u.user_id = user_id.to_string();
        GatewayError::Denied(Box::new(Denied {
            reason: DenyReason::Groups,
            user: Arc::new(u),
        }))
    };
    for (name, preferred, user_id, shown, hidden) in [
        (
            None,
            Some("alice@contoso.com"),
            "oid-123",
            "You are signed in. ",
            &["alice@contoso.com", "oid-123"][..],
        ),
        (
            Some("Alice Example"),
            Some("alice@contoso.com"),
            "oid-123",
            "You are signed in as Alice Example.",
            &["alice@contoso.com"][..],
        ),
        (
            Some("bob@partner.example"),
            Some("bob"),
            "partner:bob@partner.example",
            "You are signed in as bob.",
            &["bob@partner.example"][..],
        ),
        (
            Some(" "),
            None,
            "partner:carol@partner.example",
            "You are signed in. ",
            &["carol@partner.example"][..],
        ),
    ] {
        let page = body_text(respond(
            &denied_as(name, preferred, user_id),
            BROWSER,
            Method::GET,
            "/",
        ))
        .await;
        assert!(page.contains(shown), "{shown:?}: {page}");
        for h in hidden {
            assert!(!page.contains(h), "{h:?}: {page}");
        }
        assert!(!page.contains('@'), "no email at all: {page}");
    }
}

#[tokio::test]
async fn hostile_names_are_escaped_in_pages() {
    let page = body_text(respond(
        &denied(Some("<script>alert(1)</script>\"'&")),
        BROWSER,
        Method::GET,
        "/%3Cscript%3E",
    ))
    .await;
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
}

#[tokio::test]
async fn the_request_uri_never_appears_in_error_pages() {
    for err in every_error() {
        if matches!(err, GatewayError::NotSignedIn) {
            continue;
        }
        for accept in [BROWSER, "application/json"] {
            let text = body_text(respond(&err, accept, Method::GET, "/marker-xyz?token=abc")).await;
            assert!(
                !text.contains("marker-xyz") && !text.contains("abc"),
                "{err:?}: {text}"
            );
        }
    }
}

#[test]
fn service_unavailable_says_when_to_retry() {
    let resp = respond(&GatewayError::StoreUnavailable, BROWSER, Method::GET, "/");
    assert!(resp.headers().contains_key(RETRY_AFTER));
}

#[test]
fn prefers_html_follows_accept_quality() {
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("accept", BROWSER)], true),
        (&[("accept", "text/html")], true),
        (&[("accept", "application/json")], false),
        (&[("accept", "application/json, text/html;q=0.5")], false),
        (
            &[("accept", "text/html;q=0.9, application/json;q=0.8")],
            true,
        ),
        (&[("accept", "text/html;q=0")], false),
        (&[("accept", "TEXT/HTML")], true),
        (&[("accept", "*/*")], false),
        (&[], false),
        (&[("accept", "text/html;q=garbage")], true),
        (
            &[("accept", BROWSER), ("x-requested-with", "XMLHttpRequest")],
            false,
        ),
        (
            &[("accept", "application/json"), ("accept", "text/html")],
            false,
        ),
    ];
    for (pairs, want) in cases {
        let h = headers(pairs);
        assert_eq!(prefers_html(&h), *want, "{pairs:?}");
        // The copy the handler keeps for error pages decides alike.
        assert_eq!(Negotiation::of(&h).prefers_html(), *want, "{pairs:?}");
    }
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_bytes(b"text/html\xff").unwrap());
    assert!(!prefers_html(&h));
}

#[tokio::test]
async fn invalid_bearer_tokens_get_401_json_with_the_reason_even_for_browsers() {
    for accept in [BROWSER, "application/json"] {
        let err = GatewayError::InvalidToken("aud mismatch".into());
        let resp = respond(&err, accept, Method::GET, "/api");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"aud mismatch\""
        );
        let v: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
        assert_eq!(v["error"], "invalid_token");
        assert_eq!(v["reason"], "aud mismatch");
    }
    // Quotes and backslashes cannot break out of the challenge's quoted string.
    let resp = respond(
        &GatewayError::InvalidToken("alg \"x\\y\" is not accepted".into()),
        "*/*",
        Method::GET,
        "/",
    );
    assert_eq!(
        resp.headers()[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\", error_description=\"alg xy is not accepted\""
    );
    let resp = respond(
        &GatewayError::InvalidBearerRequest("several Authorization headers"),
        BROWSER,
        Method::GET,
        "/",
    );
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_request\""));
}

#[test]
fn every_error_kind_has_its_status_and_the_error_headers_in_json_and_html() {
    for (err, status) in pinned() {
        for (accept, method) in [
            ("application/json", Method::GET),
            (BROWSER, Method::GET),
            (BROWSER, Method::POST),
        ] {
            let resp = respond(&err, accept, method.clone(), "/x");
            let h = resp.headers();
            // A browser GET without a session is the 302 to the login page.
            let want = match (&err, accept, &method) {
                (GatewayError::NotSignedIn, BROWSER, &Method::GET) => 302,
                _ => status,
            };
            assert_eq!(resp.status().as_u16(), want, "{err:?} {accept} {method}");
            assert_eq!(h[CACHE_CONTROL], "no-store", "{err:?} {accept}");
            if want == 302 {
                continue;
            }
            assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff", "{err:?} {accept}");
            let ct = h[CONTENT_TYPE].to_str().unwrap();
            if ct.starts_with("text/html") {
                assert_eq!(
                    h[http::header::CONTENT_SECURITY_POLICY],
                    crate::ui::CONTENT_SECURITY_POLICY
                );
            } else {
                assert_eq!(ct, "application/json; charset=utf-8", "{err:?}");
            }
        }
        // The proxies' answer (`/.auth/verify`) is JSON whatever they accept.
        let forced = json_error(&err);
        assert_eq!(forced.status().as_u16(), status, "{err:?}");
        assert_eq!(forced.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(forced.headers()[CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn forwarded_requests_that_cannot_be_judged_are_json_with_their_reason_even_for_browsers() {
    for (why, status) in [
        (Unjudgeable::UnreadableUri, 400),
        (Unjudgeable::NonCanonicalPath("dots"), 400),
        (Unjudgeable::AmbiguousPath, 400),
        (Unjudgeable::NoRoute, 403),
        (Unjudgeable::UntrustedForward, 400),
    ] {
        let resp = respond(&GatewayError::Unjudgeable(why), BROWSER, Method::GET, "/x");
        assert_eq!(resp.status().as_u16(), status);
        assert!(resp.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body: serde_json::Value = serde_json::from_str(&body_text(resp).await).unwrap();
        assert_eq!(body["reason"], why.reason());
    }
}

#[test]
fn every_fixed_reason_is_documented() {
    let docs = include_str!("../../docs/operations.md");
    let section = docs
        .split("## Error answers and their reasons")
        .nth(1)
        .expect("docs/operations.md has the reasons section");
    let mut reasons: Vec<&str> = [
        Unjudgeable::UnreadableUri,
        Unjudgeable::NonCanonicalPath(""),
        Unjudgeable::AmbiguousPath,
        Unjudgeable::NoRoute,
        Unjudgeable::UntrustedForward,
    ]
    .iter()
    .map(|u| u.reason())
    .collect();
    reasons.extend(
        [
            DenyReason::Connection,
            DenyReason::Groups,
            DenyReason::EmailUnverified,
            DenyReason::EmailDomain,
            DenyReason::User,
            DenyReason::EmailOwner,
            DenyReason::Tenant,
        ]
        .iter()
        .map(|d| d.label()),
    );
    for reason in reasons {
        assert!(
            section.contains(&format!("`{reason}`")),
            "{reason} undocumented"
        );
    }
    for (err, _) in pinned() {
        assert!(
            section.contains(&format!("`{}`", err.code())),
            "{} undocumented",
            err.code()
        );
    }
}
