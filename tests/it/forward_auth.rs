//! `GET /.auth/verify` (forward auth): in process against the mock IdP, then
//! behind a real nginx (`auth_request`) and a real Caddy (`forward_auth`)
//! started by the test on 127.0.0.1. The proxies are Debian packages
//! (`apt-get install nginx caddy`); a missing binary fails the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use realmgate::demo::idp;
use reqwest::header::{ACCEPT, CACHE_CONTROL, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::signin::{demo_user as user, location, session_cookie, Browser, HTML};
use crate::util::{
    echo_route, entra, wait_listening, with_fresh_port, Echoed, NotListening, ReservedPort,
    DEADLINE,
};

const APP: &str = "app.test";
const HR: &str = "hr.test";
const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
/// The login page with target `/`: what every unsafe target becomes.
const LOGIN_HOME: &str = "/.auth/login?post_login_redirect_uri=%2F";

/// The mock IdP, an echo upstream and a gateway with three routes:
/// `app.test/` (any contoso user, `/static/` public), `app.test/admin` and
/// `hr.test/` (HR Admins only; alice is one, bob is not).
enum ForwardAuth {}
type World = crate::util::World<ForwardAuth>;

impl World {
    /// `trusted`: 127.0.0.1 is in `trusted_proxies` (a proxy on this machine).
    async fn start(trusted: bool) -> World {
        let trusted_proxies = if trusted {
            r#"trusted_proxies = ["127.0.0.1/32"]"#
        } else {
            ""
        };
        let hr_only = format!("[route.allow]\ngroups = [\"{}\"]", idp::DEMO_HR_GROUP);
        World::builder()
            .server(trusted_proxies)
            .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
            .route(echo_route("app", APP).public(&["/static/"]))
            .route(
                echo_route("admin", APP)
                    .with(r#"path_prefix = "/admin""#)
                    .with(&hr_only),
            )
            .route(echo_route("hr", HR).with(&hr_only))
            .start()
            .await
    }

    /// Signs `email` in at app.test; returns the `Cookie` header value of the session.
    async fn sign_in(&self, email: &str) -> String {
        let browser = Browser::new(&self.gateway);
        let authorize = browser
            .post_email(&self.gateway.url(APP, "/.auth/login"), email, "/")
            .await;
        let resp = browser.finish_login(&self.idp, &authorize, email).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "callback signs in");
        session_cookie(&resp)
    }

    /// `GET /.auth/verify` at `host` with `headers`.
    async fn verify(&self, host: &str, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .gateway
            .client()
            .get(self.gateway.url(host, &format!("/.auth/verify{query}")));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("verify answers")
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    let all: Vec<String> = resp
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
    all.into_iter().next()
}

// === In process ===

#[tokio::test]
async fn a_valid_session_gets_200_with_auth_request_headers_and_no_spoofed_ones() {
    let w = World::start(false).await;
    let cookie = w.sign_in(ALICE).await;
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("cookie", cookie.as_str()),
                ("x-auth-request-user", "mallory"),
                ("x_auth_request_groups", "HR Admins"),
                ("x-auth-request-email", "mallory@evil.example"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let alice = user(ALICE);
    assert_eq!(
        header(&resp, "x-auth-request-user"),
        Some(alice.oid.clone())
    );
    assert_eq!(
        header(&resp, "x-auth-request-email").as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        header(&resp, "x-auth-request-preferred-username").as_deref(),
        Some(ALICE)
    );
    let groups = header(&resp, "x-auth-request-groups").unwrap_or_default();
    assert!(groups.contains(idp::DEMO_HR_GROUP), "groups: {groups}");
    assert!(
        !groups.contains("HR Admins"),
        "spoofed groups echoed: {groups}"
    );
    assert!(header(&resp, "x_auth_request_groups").is_none());
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    // No other profile's headers, and nothing was proxied.
    assert!(header(&resp, "x-forwarded-user").is_none());
    assert_eq!(w.upstream.count(), 0);

    // HEAD answers the same way (nginx and Traefik may use it).
    let resp = w
        .gateway
        .client()
        .head(w.gateway.url(APP, "/.auth/verify"))
        .header("cookie", cookie.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "x-auth-request-user"), Some(alice.oid));
}

#[tokio::test]
async fn no_session_gets_401_json_with_the_login_url() {
    let w = World::start(false).await;
    for accept in ["application/json", HTML, "*/*"] {
        // Without a forwarded URI even a browser gets 401: there is no target.
        let resp = w
            .verify(
                APP,
                "",
                &[("accept", accept), ("x-auth-request-user", "mallory")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "accept {accept}");
        assert_eq!(header(&resp, "www-authenticate").as_deref(), Some("Bearer"));
        assert_eq!(
            header(&resp, "x-realmgate-login-url").as_deref(),
            Some(LOGIN_HOME)
        );
        assert!(header(&resp, "x-auth-request-user").is_none());
        assert_eq!(
            resp.headers().get(CACHE_CONTROL).unwrap(),
            "no-store",
            "never cached"
        );
        let body: serde_json::Value = resp.json().await.expect("JSON body");
        assert_eq!(body["error"], "unauthorized");
    }
    // A forged or unknown session cookie is no session.
    let resp = w
        .verify(
            APP,
            "",
            &[("cookie", "realmgate=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // An API client behind Traefik/Caddy (forwarded URI, JSON accept) gets 401, not 302.
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("accept", "application/json"),
                ("x-forwarded-uri", "/api/x"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "x-realmgate-login-url").as_deref(),
        Some("/.auth/login?post_login_redirect_uri=%2Fapi%2Fx")
    );
    let resp = w.verify(APP, "", &[]).await;
    assert_eq!(resp.headers().get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn a_browser_with_a_forwarded_uri_is_redirected_to_sign_in() {
    let w = World::start(false).await;
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("accept", HTML),
                ("x-forwarded-uri", "/reports/q3?year=2026&x=1"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        location(&resp),
        "/.auth/login?post_login_redirect_uri=%2Freports%2Fq3%3Fyear%3D2026%26x%3D1"
    );
    // `?rd=` does the same, and wins over the header (explicit operator choice).
    let resp = w
        .verify(
            APP,
            "?rd=%2Fdashboard",
            &[("accept", HTML), ("x-forwarded-uri", "/other")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        location(&resp),
        "/.auth/login?post_login_redirect_uri=%2Fdashboard"
    );
    // An absolute target on a configured route host is kept.
    let resp = w
        .verify(
            APP,
            "?rd=http%3A%2F%2Fhr.test%2Fpayroll",
            &[("accept", HTML)],
        )
        .await;
    assert_eq!(
        location(&resp),
        "/.auth/login?post_login_redirect_uri=http%3A%2F%2Fhr.test%2Fpayroll"
    );
    // A form post that lost its session is not a navigation: 401.
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("accept", HTML),
                ("x-forwarded-uri", "/submit"),
                ("x-forwarded-method", "POST"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // nginx's X-Original-URI names the target but never triggers a 302
    // (auth_request would turn it into a 500).
    let resp = w
        .verify(APP, "", &[("accept", HTML), ("x-original-uri", "/a?b=c")])
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "x-realmgate-login-url").as_deref(),
        Some("/.auth/login?post_login_redirect_uri=%2Fa%3Fb%3Dc")
    );
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn hostile_forwarded_uris_become_the_start_page() {
    let w = World::start(false).await;
    let hostile = [
        "//evil.example",
        "//evil.example/x",
        "https://evil.example",
        "https://evil.example/app",
        "http://app.test.evil.example/",
        "https://app.test@evil.example/",
        "/\\evil.example",
        "/%2F/evil.example",
        "javascript:alert(1)",
        "https:evil.example",
    ];
    for uri in hostile {
        let resp = w
            .verify(APP, "", &[("accept", HTML), ("x-forwarded-uri", uri)])
            .await;
        if uri.contains('\\') {
            // Not its own canonical form: 400, from any peer (SPEC 6.1).
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        } else {
            assert_eq!(resp.status(), StatusCode::FOUND, "{uri}");
            assert_eq!(location(&resp), LOGIN_HOME, "{uri}");
        }
        let encoded: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
        let resp = w
            .verify(APP, &format!("?rd={encoded}"), &[("accept", HTML)])
            .await;
        assert_eq!(location(&resp), LOGIN_HOME, "rd={uri}");
    }
    // A header value that is not visible text is not echoed: the URI
    // cannot be judged, which is a 400 from any peer (review 11).
    let resp = w
        .gateway
        .client()
        .get(w.gateway.url(APP, "/.auth/verify"))
        .header(ACCEPT, HTML)
        .header(
            "x-forwarded-uri",
            reqwest::header::HeaderValue::from_bytes(b"/caf\xc3\xa9").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(header(&resp, "location").is_none());
    assert!(!resp.text().await.unwrap().contains("caf"));
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn signed_in_but_denied_by_policy_is_403_json() {
    let w = World::start(false).await;
    let bob = w.sign_in(BOB).await;
    let resp = w
        .verify(
            HR,
            "",
            &[
                ("cookie", bob.as_str()),
                ("accept", HTML),
                ("x-forwarded-uri", "/"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(header(&resp, "x-auth-request-user").is_none());
    let body: serde_json::Value = resp.json().await.expect("JSON even for browsers");
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["reason"], "groups");
    // alice is in HR Admins.
    let alice = w.sign_in(ALICE).await;
    let resp = w.verify(HR, "", &[("cookie", alice.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "x-auth-request-user"), Some(user(ALICE).oid));
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn an_untrusted_forwarded_uri_that_reads_as_another_route_is_400_not_judged_here() {
    // Review 12: from a peer outside trusted_proxies, a forwarded path the
    // router refuses (its readings select different routes) was set aside
    // and the subrequest judged by the route of /.auth/verify's own path:
    // bob, denied on /admin, got 200 for /ADMIN/users, which the proxy then
    // forwards to an app that serves it from /admin. A trusted proxy's
    // gets 400 ambiguous_path; so does an untrusted one's.
    let w = World::start(false).await;
    let bob = w.sign_in(BOB).await;
    for uri in [
        "/ADMIN/users",
        "/admin;x/users",
        "//x/admin/users",
        "/(S(x))/admin/users",
        "/index.php/admin/users",
        "/admin.json",
    ] {
        let resp = w
            .verify(
                APP,
                "",
                &[("cookie", bob.as_str()), ("x-forwarded-uri", uri)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        let body: serde_json::Value = resp.json().await.expect("JSON");
        assert_eq!(body["reason"], "ambiguous_path", "{uri}: {body}");
    }
    // A path of this route is judged, as before.
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("cookie", bob.as_str()),
                ("x-forwarded-uri", "/reports.json"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_a_trusted_proxy_selects_the_route_by_forwarded_host_and_uri() {
    // Untrusted peer: X-Forwarded-Host/-Uri cannot pick another route, and
    // naming one is a 400 that says to trust the proxy (review 9): a proxy
    // missing from trusted_proxies had every subrequest judged by the
    // route of /.auth/verify's own path, so bob, denied on /admin, got 200.
    let w = World::start(false).await;
    let bob = w.sign_in(BOB).await;
    for (name, value) in [
        ("x-forwarded-host", HR),
        ("x-forwarded-uri", "/admin/users"),
    ] {
        let resp = w
            .verify(APP, "", &[("cookie", bob.as_str()), (name, value)])
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{name} from an untrusted peer names another route"
        );
        let body: serde_json::Value = resp.json().await.expect("JSON");
        assert_eq!(body["reason"], "untrusted_forward", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("trusted_proxies"),
            "{body}"
        );
    }
    // Naming the route the request is judged by anyway: judged, as before.
    let resp = w
        .verify(
            APP,
            "",
            &[("cookie", bob.as_str()), ("x-forwarded-uri", "/reports")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // And no path is public on its say-so.
    let resp = w
        .verify(APP, "", &[("x-forwarded-uri", "/static/app.css")])
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Trusted peer: the original host and path decide, as the router would.
    let w = World::start(true).await;
    let bob = w.sign_in(BOB).await;
    let alice = w.sign_in(ALICE).await;
    let cases: [(&[(&str, &str)], StatusCode); 9] = [
        (&[("x-forwarded-uri", "/reports")], StatusCode::OK),
        (
            &[("x-forwarded-uri", "/admin/users?x=1")],
            StatusCode::FORBIDDEN,
        ),
        (&[("x-original-uri", "/admin")], StatusCode::FORBIDDEN),
        (&[("x-forwarded-uri", "/administrator")], StatusCode::OK),
        (
            &[("x-forwarded-host", "HR.test:443")],
            StatusCode::FORBIDDEN,
        ),
        // Dot segments: the proxy forwards them unresolved, so the path
        // cannot be judged as one path (SPEC 6.1): 400.
        (
            &[("x-forwarded-uri", "/x/../admin/users")],
            StatusCode::BAD_REQUEST,
        ),
        // The same with an encoded slash.
        (
            &[("x-forwarded-uri", "/static/..%2Fadmin/users")],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[("x-forwarded-uri", "/a/../../admin")],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[("x-forwarded-host", "unknown.test")],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (headers, status) in cases {
        let mut all = vec![("cookie", bob.as_str())];
        all.extend_from_slice(headers);
        let resp = w.verify(APP, "", &all).await;
        assert_eq!(resp.status(), status, "bob with {headers:?}");
    }
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("cookie", alice.as_str()),
                ("x-forwarded-uri", "/admin/users"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "alice may use /admin");
    // A public path needs no session and gets no identity.
    let resp = w
        .verify(APP, "", &[("x-forwarded-uri", "/static/app.css?v=1")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("cookie", alice.as_str()),
                ("x-forwarded-uri", "/static/app.css"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "x-auth-request-user").is_none());
    assert_eq!(w.upstream.count(), 0);
}

/// SPEC 6.1: `/.auth/verify` cannot change what the proxy in front
/// forwards, so a trusted proxy's forwarded URI that is not its own
/// canonical form is a 400 (never `200 public`), with or without a session;
/// encodings that do not change the resolved path are judged as usual.
#[tokio::test]
async fn a_forwarded_uri_that_resolves_differently_is_400() {
    let w = World::start(true).await;
    let bob = w.sign_in(BOB).await;
    let hostile = [
        "/admin/../static/x",
        "/admin/%2e%2e/static/x",
        "/admin/.%2E/static/x",
        "/admin//../static/x",
        "/admin/./x",
        "/static/../admin/x",
        "/static/..;/admin/x",
        "/static/..%2fadmin/x",
        "/static/%2e%2e%2fadmin/x",
        "/static/%252e%252e/admin/x",
        "/static/..%5cadmin",
        "/static\\..\\admin",
        "/static/%00/x",
        "/static/a%zz",
        "https://app.test/admin/../static/x?y=1",
        // Readings that pick another route (`/` vs `/admin`).
        "//admin/x",
        "/admin%2Fx",
        "/admin;x/y",
    ];
    for uri in hostile {
        for header in ["x-original-uri", "x-forwarded-uri"] {
            for cookie in [None, Some(bob.as_str())] {
                let mut headers = vec![(header, uri), ("accept", "application/json")];
                if let Some(c) = cookie {
                    headers.push(("cookie", c));
                }
                let resp = w.verify(APP, "", &headers).await;
                assert_eq!(
                    resp.status(),
                    StatusCode::BAD_REQUEST,
                    "{header}: {uri:?} (session: {})",
                    cookie.is_some()
                );
                let body: serde_json::Value = resp.json().await.expect("JSON");
                assert_eq!(body["error"], "bad_request", "{uri:?}: {body}");
                assert!(
                    body["message"].as_str().is_some_and(|m| m.len() > 20),
                    "{uri:?}: {body}"
                );
            }
        }
    }
    // Encodings that do not change the resolved path are judged as usual.
    for (uri, cookie, status) in [
        ("/static/app.css", None, StatusCode::OK),
        ("/static/caf%C3%A9.css", None, StatusCode::OK),
        ("https://app.test", Some(bob.as_str()), StatusCode::OK),
        ("/docs/a%2Fb", Some(bob.as_str()), StatusCode::OK),
        ("/docs//b", Some(bob.as_str()), StatusCode::OK),
        // Public: every reading of an encoded slash inside a segment below
        // the prefix stays under it; one that joins the prefix does not.
        ("/static/a%2Fb", None, StatusCode::OK),
        ("/static%2Fa", None, StatusCode::UNAUTHORIZED),
        ("/admin/a%2Fb", Some(bob.as_str()), StatusCode::FORBIDDEN),
    ] {
        let mut headers = vec![("x-original-uri", uri), ("accept", "application/json")];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        let resp = w.verify(APP, "", &headers).await;
        assert_eq!(resp.status(), status, "{uri:?}");
    }
    // From an untrusted peer the forwarded URI decides nothing (route by
    // Host, no public path), but one that resolves differently is still a
    // 400 (SPEC 6.1: the proxy in front, trusted or not, forwards it as
    // it is; usually it is missing from `trusted_proxies`).
    let w = World::start(false).await;
    for uri in ["/admin/../static/x", "/static/%2e%2e/admin", "/a\\b"] {
        let resp = w.verify(APP, "", &[("x-original-uri", uri)]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
    }
    let resp = w.verify(APP, "", &[("x-original-uri", "/static/x")]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.upstream.count(), 0);
}

/// Review finding: a trusted proxy's URI header that the gateway could not
/// read (longer than 8192 bytes, raw non-ASCII, repeated) was skipped, so
/// the path judged was the client's own `X-Original-URI` (Traefik and
/// Caddy pass client headers on to forward auth), or, without one, the
/// host's root route: `/static/` public or `/` lax for a request the proxy
/// forwards to `/admin`. Such a URI, and two URI headers naming different
/// paths, are a 400 now; a readable one is judged as before.
/// Review 11: a trusted proxy that appends to the client's own
/// `X-Forwarded-Host` (Apache's mod_proxy, HAProxy's `add-header`) sends a
/// list whose first host is the client's choice: a list of different hosts,
/// or the header twice, is a 400, never judged by its first host (bob, whom
/// hr.test refuses, got 200 by naming app.test first).
#[tokio::test]
async fn a_forwarded_host_list_of_different_hosts_is_400_not_its_first_host() {
    let w = World::start(true).await;
    let bob = w.sign_in(BOB).await;
    for (hosts, status) in [
        (vec!["app.test, hr.test"], StatusCode::BAD_REQUEST),
        (vec!["app.test", "hr.test"], StatusCode::BAD_REQUEST),
        (vec!["hr.test", "hr.test"], StatusCode::BAD_REQUEST),
        // One host, however many proxies named it: judged (hr.test refuses bob).
        (vec!["hr.test, HR.test:443"], StatusCode::FORBIDDEN),
        (vec!["hr.test"], StatusCode::FORBIDDEN),
    ] {
        let mut headers: Vec<(&str, &str)> =
            hosts.iter().map(|h| ("x-forwarded-host", *h)).collect();
        headers.extend([
            ("x-forwarded-uri", "/"),
            ("cookie", bob.as_str()),
            ("accept", "application/json"),
        ]);
        let resp = w.verify(APP, "", &headers).await;
        assert_eq!(resp.status(), status, "{hosts:?}");
        if status == StatusCode::BAD_REQUEST {
            let body: serde_json::Value = resp.json().await.expect("JSON");
            assert_eq!(body["reason"], "unreadable_uri", "{hosts:?}: {body}");
        }
    }
    w.upstream.assert_received_nothing().await;
}

/// Bob's verify at app.test (for `/static/x` from a trusted proxy), with
/// one more header.
async fn ask_verify(
    w: &World,
    trusted: bool,
    cookie: &str,
    extra: Option<(&str, &str)>,
) -> StatusCode {
    let mut headers = vec![("cookie", cookie), ("accept", "application/json")];
    if trusted {
        headers.push(("x-forwarded-uri", "/static/x"));
    }
    headers.extend(extra);
    w.verify(APP, "", &headers).await.status()
}

/// The host and path overrides the proxy path refuses or strips are
/// judged at verify too (review 13, H3): the proxy in front forwards them to
/// the app as they are, and an app that takes its host from `Forwarded:
/// host=` or `X-Original-Host`, or routes on `X-Rewrite-URL`, would serve
/// another route's (or a non-public) page under this decision.
#[tokio::test]
async fn host_and_path_overrides_naming_another_route_or_path_are_400_at_verify() {
    for trusted in [true, false] {
        let w = World::start(trusted).await;
        let bob = w.sign_in(BOB).await;
        let judged_path = if trusted {
            "/static/x"
        } else {
            "/.auth/verify"
        };
        // Baseline: allowed (public when the proxy is trusted).
        assert_eq!(
            ask_verify(&w, trusted, &bob, None).await,
            StatusCode::OK,
            "trusted={trusted}"
        );
        for (name, value) in [
            ("forwarded", "host=hr.test"),
            ("forwarded", "for=1.2.3.4;host=\"hr.test\""),
            ("x-original-host", "hr.test"),
            ("x-host", "hr.test"),
            ("disguised-host", "HR.test."),
            ("x-http-host-override", "hr.test:443"),
            ("x-rewrite-url", "/admin/users"),
            ("x-rewrite-url", "http://app.test/admin/users?x=1"),
            ("x-original-path", "/admin"),
            ("x-forwarded-path", "/static/../admin"),
            ("x-envoy-original-path", "/secret"),
            ("x-request-uri", "/static/y"),
            // Next.js internals (CVE-2025-29927 skips its middleware).
            ("x-middleware-subrequest", "middleware"),
            ("x-matched-path", "/admin"),
            ("x-invoke-path", "/admin"),
        ] {
            assert_eq!(
                ask_verify(&w, trusted, &bob, Some((name, value))).await,
                StatusCode::BAD_REQUEST,
                "trusted={trusted} {name}: {value}"
            );
        }
        // Naming what is judged changes nothing.
        let same = judged_path;
        for (name, value) in [
            ("x-original-host", "app.test"),
            ("forwarded", "host=app.test;proto=https"),
            ("x-rewrite-url", same),
            ("x-envoy-original-path", same),
        ] {
            assert_eq!(
                ask_verify(&w, trusted, &bob, Some((name, value))).await,
                StatusCode::OK,
                "trusted={trusted} {name}: {value}"
            );
        }
        w.upstream.assert_received_nothing().await;
    }
}

#[tokio::test]
async fn a_forwarded_uri_the_gateway_cannot_read_is_400_not_another_path() {
    let w = World::start(true).await;
    let bob = w.sign_in(BOB).await;
    let long = format!("/admin/users?pad={}", "a".repeat(9000));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        // Traefik's own X-Forwarded-Uri too long, the client's X-Original-URI public.
        (
            vec![
                ("x-forwarded-uri", &long),
                ("x-original-uri", "/static/app.css"),
            ],
            "no session, client's copy public",
        ),
        (
            vec![
                ("x-forwarded-uri", &long),
                ("x-original-uri", "/static/app.css"),
                ("cookie", &bob),
            ],
            "bob, client's copy public",
        ),
        // Without a second header: the root route (`/`, any user) judged it.
        (
            vec![("x-forwarded-uri", &long), ("cookie", &bob)],
            "bob, too long",
        ),
        (
            vec![("x-original-uri", &long), ("cookie", &bob)],
            "bob, too long (original)",
        ),
        // nginx passes $request_uri's raw bytes on.
        (
            vec![
                ("x-original-uri", "/admin/users?q=caf\u{e9}"),
                ("cookie", &bob),
            ],
            "bob, raw non-ASCII",
        ),
        (
            vec![
                ("x-forwarded-uri", "/admin/caf\u{e9}"),
                ("x-original-uri", "/static/x"),
            ],
            "raw non-ASCII, client's copy public",
        ),
        // A proxy that forgot to clear the client's X-Forwarded-Uri: the
        // two headers disagree, and the gateway cannot know which one the
        // proxy forwards.
        (
            vec![
                ("x-forwarded-uri", "/static/app.css"),
                ("x-original-uri", "/admin/users"),
            ],
            "two URIs",
        ),
        (
            vec![
                ("x-forwarded-uri", "/reports"),
                ("x-original-uri", "/admin/users"),
                ("cookie", &bob),
            ],
            "bob, two URIs",
        ),
    ];
    for (headers, what) in &cases {
        let mut all = headers.clone();
        all.push(("accept", "application/json"));
        let resp = w.verify(APP, "", &all).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        let body: serde_json::Value = resp.json().await.expect("JSON");
        assert_eq!(body["error"], "bad_request", "{what}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("X-Forwarded-Uri")),
            "{what}: {body}"
        );
    }
    // Readable, and the same path in both headers (query aside): judged as before.
    for (headers, status) in [
        (
            vec![
                ("x-forwarded-uri", "/static/app.css?v=1"),
                ("x-original-uri", "/static/app.css"),
            ],
            StatusCode::OK,
        ),
        (
            vec![
                ("x-forwarded-uri", "/admin/users"),
                ("cookie", bob.as_str()),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            vec![("x-original-uri", "/reports"), ("cookie", bob.as_str())],
            StatusCode::OK,
        ),
        (
            vec![
                ("x-forwarded-uri", ""),
                ("x-original-uri", "/reports"),
                ("cookie", bob.as_str()),
            ],
            StatusCode::OK,
        ),
    ] {
        let resp = w.verify(APP, "", &headers).await;
        assert_eq!(resp.status(), status, "{headers:?}");
    }
    // From an untrusted peer (a proxy left out of trusted_proxies) the URI
    // headers select nothing, but one naming another route is a 400
    // (`untrusted_forward`); an unreadable one was skipped, and the request
    // judged by /.auth/verify's own route (`/`, any user): bob got 200 for
    // the /admin page the proxy forwards, with a padded URI or by adding an
    // `X-Original-URI` of his own beside Caddy's X-Forwarded-Uri (review
    // 11). Unreadable is a 400 from any peer.
    let w = World::start(false).await;
    let bob = w.sign_in(BOB).await;
    for (headers, what) in [
        (
            vec![("x-forwarded-uri", long.as_str())],
            "too long, untrusted",
        ),
        (
            vec![
                ("x-forwarded-uri", "/admin/users"),
                ("x-original-uri", "/reports"),
            ],
            "two URIs, untrusted",
        ),
        (
            vec![
                ("x-forwarded-uri", "/admin/users"),
                ("x-forwarded-uri", "/admin/users"),
            ],
            "repeated, untrusted",
        ),
    ] {
        let mut all = headers.clone();
        all.push(("cookie", bob.as_str()));
        let resp = w.verify(APP, "", &all).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        let body: serde_json::Value = resp.json().await.expect("JSON");
        assert_eq!(body["reason"], "unreadable_uri", "{what}: {body}");
    }
    // A readable URI of the route verify is judged by anyway: as before.
    let resp = w
        .verify(
            APP,
            "",
            &[("x-forwarded-uri", "/reports"), ("cookie", bob.as_str())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(w.upstream.count(), 0);
}

/// WebDAV through forward auth: the proxy forwards `Destination` and the
/// method as they are, so `/.auth/verify` judges them as the pipeline does
/// (review 11): a destination under another route, or a method that acts
/// on a collection holding another route's prefix, is a 400.
/// Review 11 (helper C): at `/.auth/verify` behind a trusted proxy, the
/// client's own `X-Forwarded-Method` beside ingress-nginx's
/// `X-Original-Method` cannot turn `DELETE /` into a GET; another reading of
/// an ancestor (`/;x`, `/%5C`) is still an ancestor; and a `Destination`
/// that is neither an absolute path nor an http(s) URL is refused.
#[tokio::test]
async fn webdav_method_and_destination_variants_are_refused_at_verify() {
    let w = World::start(true).await;
    let bob = w.sign_in(BOB).await;
    let mut cases: Vec<(Vec<(&str, &str)>, String)> = vec![(
        vec![
            ("cookie", bob.as_str()),
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/"),
            ("x-forwarded-method", "GET"),
        ],
        "client's X-Forwarded-Method GET beside X-Original-Method DELETE".into(),
    )];
    for uri in ["/;x", "/%5C"] {
        cases.push((
            vec![
                ("cookie", bob.as_str()),
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-uri", uri),
            ],
            format!("DELETE {uri}"),
        ));
    }
    for dest in [
        "x://app.test/admin/x",
        "x:/admin/x",
        "http:/admin/x",
        "admin/x",
    ] {
        cases.push((
            vec![
                ("x-forwarded-method", "MOVE"),
                ("x-forwarded-uri", "/static/x"),
                ("destination", dest),
            ],
            format!("anonymous MOVE /static/x to {dest}"),
        ));
    }
    for (headers, what) in &cases {
        let resp = w.verify(APP, "", headers).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    // The same method twice is one method: judged.
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("cookie", bob.as_str()),
                ("x-original-method", "GET"),
                ("x-forwarded-method", "get"),
                ("x-original-uri", "/reports"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn webdav_destinations_and_collection_methods_are_judged_at_verify() {
    let w = World::start(true).await;
    let bob = w.sign_in(BOB).await;
    for (method, uri, destination) in [
        ("MOVE", "/notes/x", Some("/admin/x")),
        ("COPY", "/notes/x", Some("http://app.test/admin/x")),
        ("MOVE", "/notes/x", Some("/")),
        ("DELETE", "/", None),
        ("PROPFIND", "/", None),
        ("move", "/", Some("/notes/all")),
    ] {
        let mut headers = vec![
            ("cookie", bob.as_str()),
            ("x-forwarded-method", method),
            ("x-forwarded-uri", uri),
            ("accept", "application/json"),
        ];
        if let Some(d) = destination {
            headers.push(("destination", d));
        }
        let resp = w.verify(APP, "", &headers).await;
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{method} {uri} -> {destination:?}"
        );
    }
    // ingress-nginx names the method X-Original-Method.
    let resp = w
        .verify(
            APP,
            "",
            &[
                ("cookie", bob.as_str()),
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    for (method, uri, destination) in [
        ("MOVE", "/notes/x", Some("/notes/y")),
        ("DELETE", "/notes/x", None),
        ("PROPFIND", "/", None),
        ("GET", "/", None),
    ] {
        let mut headers = vec![
            ("cookie", bob.as_str()),
            ("x-forwarded-method", method),
            ("x-forwarded-uri", uri),
        ];
        if let Some(d) = destination {
            headers.push(("destination", d));
        }
        if method == "PROPFIND" {
            headers.push(("depth", "1"));
        }
        let resp = w.verify(APP, "", &headers).await;
        assert_eq!(resp.status(), StatusCode::OK, "{method} {uri}");
    }
    assert_eq!(w.upstream.count(), 0);
}

// === Real proxies ===

/// A proxy process started by a test on a loopback port reserved for it (see
/// `util::ReservedPort`); killed by PID on drop.
pub(crate) struct Proxy {
    name: &'static str,
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    _port: ReservedPort,
}

impl Proxy {
    /// Runs `program` with stdout/stderr in a temp dir; `setup(dir, listen, command)`
    /// writes its config into `dir` and adds the arguments. Waits (bounded) until the
    /// process itself listens on `listen`; if it exits first (the port was taken by a
    /// program outside this test binary), starts again on a new port.
    pub(crate) fn start(
        name: &'static str,
        program: &str,
        install: &str,
        mut setup: impl FnMut(&Path, SocketAddr, &mut Command),
    ) -> Proxy {
        let path = which(program).unwrap_or_else(|| {
            panic!("{program} is not installed; these tests need it: {install}")
        });
        with_fresh_port(name, |port| {
            let dir = tempfile::tempdir().unwrap();
            let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
            let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let mut cmd = Command::new(&path);
            setup(dir.path(), port.addr(), &mut cmd);
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
            let mut proxy = Proxy {
                name,
                child,
                dir,
                addr: port.addr(),
                _port: port,
            };
            match wait_listening(&mut proxy.child, proxy.addr.port(), DEADLINE) {
                Ok(()) => Ok(proxy),
                Err(NotListening::Exited(status)) => Err(format!(
                    "{name} exited ({status}) at start:\n{}",
                    proxy.logs()
                )),
                Err(NotListening::TimedOut) => panic!(
                    "{name} did not listen on {} within {DEADLINE:?}:\n{}",
                    proxy.addr,
                    proxy.logs()
                ),
            }
        })
    }

    /// Debian's nginx with the config `conf(prefix dir, listen address)`
    /// written into its own temp dir, listening on a loopback port of its own.
    pub(crate) fn nginx(conf: impl Fn(&Path, SocketAddr) -> String) -> Proxy {
        Proxy::start(
            "nginx",
            "nginx",
            "apt-get install nginx",
            |dir, listen, cmd| {
                let file = dir.join("nginx.conf");
                std::fs::write(&file, conf(dir, listen)).unwrap();
                cmd.arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(&file)
                    .arg("-e")
                    .arg(dir.join("error.log"));
            },
        )
    }

    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        for f in ["stdout.log", "stderr.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(f)) {
                out.push_str(&format!("--- {} {f}\n{text}\n", self.name));
            }
        }
        out
    }

    /// A client that reaches `host` at this proxy and follows no redirects.
    pub(crate) fn client(&self, host: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .resolve(host, self.addr)
            .no_proxy()
            .build()
            .unwrap()
    }

    /// Where the proxy listens (loopback).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The nginx config documented in docs/policies.md, with test paths and ports.
fn nginx_conf(dir: &Path, listen: SocketAddr, gateway: SocketAddr, upstream: SocketAddr) -> String {
    crate::util::nginx_conf_with(
        dir,
        "info",
        64,
        &format!(
            r#"

    server {{
        listen {listen};

        # The sign-in endpoints, on the app's own host.
        location /.auth/ {{
            proxy_pass http://{gateway};
            proxy_set_header Host $host;
        }}

        # The subrequest: no body, the original host and URI.
        location = /.auth/verify {{
            internal;
            proxy_pass http://{gateway};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Original-URI $request_uri;
            # A client's copies would pick the route (nginx is trusted).
            proxy_set_header X-Forwarded-Uri "";
            proxy_set_header X-Forwarded-Host "";
            proxy_set_header X-Original-URL "";
        }}

        location @login {{
            return 302 $login_url;
        }}

        location / {{
            auth_request /.auth/verify;
            auth_request_set $user $upstream_http_x_auth_request_user;
            auth_request_set $email $upstream_http_x_auth_request_email;
            auth_request_set $groups $upstream_http_x_auth_request_groups;
            auth_request_set $login_url $upstream_http_x_realmgate_login_url;
            error_page 401 = @login;
            proxy_set_header X-User $user;
            proxy_set_header X-Auth-Request-User $user;
            proxy_set_header X-Auth-Request-Email $email;
            proxy_set_header X-Auth-Request-Groups $groups;
            proxy_pass http://{upstream};
        }}
    }}
"#
        ),
    )
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_the_app() {
    let w = World::start(true).await;
    let nginx =
        Proxy::nginx(|dir, listen| nginx_conf(dir, listen, w.gateway.addr, w.upstream.addr));
    let client = nginx.client(APP);

    // Not signed in: the app receives nothing; browsers go to sign in with
    // the URI they asked for, API clients get 401.
    let resp = client
        .get(nginx.url(APP, "/hello?x=1&y=2"))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{}", nginx.logs());
    // nginx makes the Location absolute, on the host and port the browser used.
    let login = "/.auth/login?post_login_redirect_uri=%2Fhello%3Fx%3D1%26y%3D2";
    assert_eq!(location(&resp), nginx.url(APP, login));
    // That login page is served through nginx on the app's host.
    let page = client
        .get(nginx.url(APP, login))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("name=\"email\""));
    let resp = client
        .get(nginx.url(APP, "/api/x"))
        .header(ACCEPT, "application/json")
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    // nginx's error_page sends everybody to @login; what matters is that
    // the app was not reached.
    assert!(
        matches!(resp.status(), StatusCode::FOUND | StatusCode::UNAUTHORIZED),
        "{}",
        resp.status()
    );
    w.upstream.assert_received_nothing().await;

    // Signed in: the app receives the user id from the verify answer, never
    // the client's copy.
    let cookie = w.sign_in(ALICE).await;
    let resp = client
        .get(nginx.url(APP, "/hello?x=1"))
        .header("cookie", cookie.as_str())
        .header("x-auth-request-user", "mallory")
        .header("x-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", nginx.logs());
    let echoed = Echoed::from(resp).await;
    let alice = user(ALICE);
    assert_eq!(echoed.header("x-user"), Some(alice.oid.clone()));
    assert_eq!(echoed.header("x-auth-request-user"), Some(alice.oid));
    assert_eq!(
        echoed.header("x-auth-request-email").as_deref(),
        Some(ALICE)
    );
    let groups = echoed.header("x-auth-request-groups").unwrap_or_default();
    assert!(groups.contains(idp::DEMO_HR_GROUP), "groups: {groups}");
    assert_eq!(echoed.uri(), "/hello?x=1");
    assert_eq!(w.upstream.count(), 1);

    // Denied by the /admin route's policy (bob is not in HR Admins): 403, nothing forwarded.
    let bob = w.sign_in(BOB).await;
    let resp = client
        .get(nginx.url(APP, "/admin/users"))
        .header("cookie", bob.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // ...even when bob claims another URI or host: nginx clears those.
    let resp = client
        .get(nginx.url(APP, "/admin/users"))
        .header("cookie", bob.as_str())
        .header("x-forwarded-uri", "/reports")
        .header("x-forwarded-host", "other.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.upstream.count(), 1);
}

/// The Caddy `forward_auth` setup of docs/policies.md, on the test's ports.
fn caddyfile_for(listen: SocketAddr, gateway: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        r#"{{
    admin off
    auto_https off
}}

http://:{port} {{
    bind 127.0.0.1

    # The sign-in endpoints, on the app's own host.
    handle /.auth/* {{
        reverse_proxy {gateway}
    }}

    handle {{
        forward_auth {gateway} {{
            uri /.auth/verify
            copy_headers X-Auth-Request-User X-Auth-Request-Email X-Auth-Request-Preferred-Username X-Auth-Request-Groups
        }}
        reverse_proxy {upstream}
    }}
}}
"#,
        port = listen.port(),
    )
}

#[tokio::test]
async fn caddy_forward_auth_in_front_of_the_app() {
    let w = World::start(true).await;
    let (gateway, upstream) = (w.gateway.addr, w.upstream.addr);
    let caddy = Proxy::start(
        "caddy",
        "caddy",
        "apt-get install caddy",
        |dir, listen, cmd| {
            let caddyfile = dir.join("Caddyfile");
            std::fs::write(&caddyfile, caddyfile_for(listen, gateway, upstream)).unwrap();
            let home = dir.join("home");
            std::fs::create_dir_all(&home).unwrap();
            cmd.arg("run")
                .arg("--config")
                .arg(&caddyfile)
                .args(["--adapter", "caddyfile"])
                .env("HOME", &home)
                .env("XDG_DATA_HOME", dir.join("data"))
                .env("XDG_CONFIG_HOME", dir.join("config"));
        },
    );
    let client = caddy.client(APP);

    // Not signed in: browsers get the gateway's 302 (Caddy passes it on),
    // API clients the 401; the app receives nothing.
    let resp = client
        .get(caddy.url(APP, "/hello?x=1&y=2"))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{}", caddy.logs());
    assert_eq!(
        location(&resp),
        "/.auth/login?post_login_redirect_uri=%2Fhello%3Fx%3D1%26y%3D2"
    );
    let resp = client
        .get(caddy.url(APP, "/api/x"))
        .header(ACCEPT, "application/json")
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    // A hostile forwarded URI cannot come from the client: Caddy sets it.
    let resp = client
        .get(caddy.url(APP, "//evil.example/"))
        .header(ACCEPT, HTML)
        .header("x-forwarded-uri", "https://evil.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(!location(&resp).contains("evil"), "{}", location(&resp));
    w.upstream.assert_received_nothing().await;

    // Signed in: the app gets the verify answer's user id, not the client's.
    let cookie = w.sign_in(ALICE).await;
    let resp = client
        .get(caddy.url(APP, "/hello?x=1"))
        .header("cookie", cookie.as_str())
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", caddy.logs());
    let echoed = Echoed::from(resp).await;
    assert_eq!(echoed.header("x-auth-request-user"), Some(user(ALICE).oid));
    assert_eq!(
        echoed.header("x-auth-request-email").as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        echoed
            .header("x-auth-request-preferred-username")
            .as_deref(),
        Some(ALICE)
    );
    let groups = echoed.header("x-auth-request-groups").unwrap_or_default();
    assert!(groups.contains(idp::DEMO_HR_GROUP), "groups: {groups}");
    assert_eq!(echoed.uri(), "/hello?x=1");
    assert_eq!(w.upstream.count(), 1);

    // The /admin route's policy holds behind Caddy (X-Forwarded-Uri from a trusted proxy).
    let bob = w.sign_in(BOB).await;
    let resp = client
        .get(caddy.url(APP, "/admin/users"))
        .header("cookie", bob.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.upstream.count(), 1);
}
