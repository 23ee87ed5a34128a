//! oauth2-proxy's `/oauth2/*` endpoints (`oauth2_proxy_endpoints`, issue 22):
//! the aliases against the mock IdP, what they never let through, the
//! ingress-nginx recipe behind Debian's nginx (started by the test on
//! loopback, stopped by its handle), and `realmgate migrate` then `check`
//! on each peer's sample configuration.

use std::path::Path;
use std::process::Command;

use realmgate::demo::idp;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::forward_auth::Proxy;
use crate::signin::{demo_user as user, location, session_cookie, Browser, HTML};
use crate::util::{echo_route, entra, Echoed};

const APP: &str = "app.test";
const OTHER: &str = "other.test";
const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const BIN: &str = env!("CARGO_BIN_EXE_realmgate");

enum Oauth2Proxy {}
type World = crate::util::World<Oauth2Proxy>;

impl World {
    /// app.test with the aliases (`/static/` public, `/admin` for HR Admins
    /// only, a route of its own), other.test without them. `trusted`:
    /// 127.0.0.1 is in `trusted_proxies`.
    async fn start(trusted: bool) -> World {
        let trusted_proxies = if trusted {
            r#"trusted_proxies = ["127.0.0.1/32"]"#
        } else {
            ""
        };
        World::builder()
            .server(trusted_proxies)
            .connection(entra("contoso", "contoso.example"))
            .route(
                echo_route("app", APP)
                    .public(&["/static/"])
                    .with("oauth2_proxy_endpoints = true"),
            )
            .route(echo_route("admin", APP).with(format!(
                "path_prefix = \"/admin\"\n[route.allow]\ngroups = [\"{}\"]",
                idp::DEMO_HR_GROUP
            )))
            .route(echo_route("other", OTHER))
            .start()
            .await
    }

    /// Signs `email` in through `/oauth2/start?rd=...` and `/oauth2/callback`;
    /// returns the browser and where the callback sent it.
    async fn sign_in(&self, email: &str, rd: &str) -> (Browser, String) {
        let browser = Browser::new(&self.gateway);
        let start = format!("/oauth2/start?rd={}", urlencode(rd));
        let authorize = browser.login_at(&self.gateway.url(APP, &start)).await;
        let redirect_uri = url::Url::parse(&authorize)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned());
        assert_eq!(
            redirect_uri.as_deref(),
            Some(self.gateway.url(APP, "/oauth2/callback").as_str()),
            "the redirect URI registered for oauth2-proxy"
        );
        let resp = browser.finish_login(&self.idp, &authorize, email).await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "/oauth2/callback signs in"
        );
        let back = location(&resp);
        session_cookie(&resp);
        (browser, back)
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn oauth2_proxy_endpoints_sign_in_answer_and_sign_out() {
    let w = World::start(false).await;
    let (browser, back) = w.sign_in(ALICE, "/reports?q=1").await;
    assert_eq!(back, "/reports?q=1");
    let url = |p: &str| w.gateway.url(APP, p);

    // /oauth2/auth: 202 with oauth2-proxy's X-Auth-Request-* headers.
    let resp = browser
        .client
        .get(url("/oauth2/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let alice = user(ALICE);
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(h("x-auth-request-user"), Some(alice.oid.clone()));
    assert_eq!(h("x-auth-request-email").as_deref(), Some(ALICE));
    assert!(h("x-auth-request-groups")
        .unwrap_or_default()
        .contains(idp::DEMO_HR_GROUP));

    // /oauth2/userinfo: oauth2-proxy's JSON shape.
    let info: serde_json::Value = browser
        .client
        .get(url("/oauth2/userinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["user"], alice.oid.as_str());
    assert_eq!(info["email"], ALICE);

    // The app sees the identity as usual.
    let echoed = Echoed::from(browser.get(&url("/hello")).await).await;
    assert_eq!(echoed.header("x-forwarded-user"), Some(alice.oid.clone()));

    // /oauth2/sign_out?rd=: the session ends, the browser goes to rd.
    let resp = browser.get(&url("/oauth2/sign_out?rd=%2Fbye")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let resp = browser
        .client
        .get(url("/oauth2/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = browser
        .client
        .get(url("/oauth2/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // None of the /oauth2/* requests reached the app.
    assert_eq!(w.upstream.count(), 1);
}

#[tokio::test]
async fn oauth2_auth_answers_401_never_302_and_403_when_the_policy_denies() {
    let w = World::start(true).await;
    let client = Browser::new(&w.gateway).client;
    let resp = client
        .get(w.gateway.url(APP, "/oauth2/auth"))
        .header(ACCEPT, HTML)
        .header("x-forwarded-uri", "/somewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "oauth2-proxy never redirects here"
    );
    // bob is signed in but not an HR Admin: 403 for /admin (the original
    // URL, from a trusted proxy), 202 elsewhere.
    let (bob, _) = w.sign_in(BOB, "/").await;
    let ask = |original: &'static str| {
        bob.client
            .get(w.gateway.url(APP, "/oauth2/auth"))
            .header("x-original-url", original)
            .send()
    };
    assert_eq!(
        ask("http://app.test/admin/x").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ask("http://app.test/hello").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    // Two headers naming different hosts cannot be judged either.
    let resp = bob
        .client
        .get(w.gateway.url(APP, "/oauth2/auth"))
        .header("x-original-url", "http://other.test/")
        .header("x-forwarded-host", "app.test:443")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A path the proxy would forward unresolved cannot be judged (SPEC 6.1).
    assert_eq!(
        ask("http://app.test/x/../admin/x").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    // Plain nginx passes a client's own X-Original-URL into its auth
    // subrequest: naming another route's host (other.test has no policy)
    // must not pick that route's policy for app.test's /admin.
    assert_eq!(
        ask("http://other.test/admin/x").await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "X-Original-URL cannot move the decision to another route"
    );
    let resp = bob
        .client
        .get(w.gateway.url(APP, "/.auth/verify"))
        .header("x-original-url", "http://other.test/admin/x")
        .header("x-original-uri", "/admin/x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "same at /.auth/verify"
    );
    // A Host nginx would not route to app.test (`?` in it) names no host.
    assert_eq!(
        ask("http://app.test?/admin/x").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    w.upstream.assert_received_nothing().await;
}

/// oauth2-proxy's `/oauth2/auth?allowed_groups=…&allowed_emails=…&
/// allowed_email_domains=…` (ingress-nginx `auth-url` annotations) narrow
/// who passes, each list as `[route.allow]` reads it and all of them
/// together; an entry that cannot be read is a 403 for everyone, never a
/// dropped restriction (which let every signed-in user through before).
#[tokio::test]
async fn oauth2_auth_query_restrictions_narrow_who_passes_and_fail_closed() {
    let w = World::start(true).await;
    let (alice, _) = w.sign_in(ALICE, "/").await;
    let (bob, _) = w.sign_in(BOB, "/").await;
    let status = |who: &Browser, query: String| {
        let req = who
            .client
            .get(w.gateway.url(APP, &format!("/oauth2/auth?{query}")));
        async move { req.send().await.unwrap().status() }
    };
    let hr = idp::DEMO_HR_GROUP;
    for (query, alice_gets, bob_gets) in [
        (format!("allowed_groups={hr}"), 202, 403),
        (format!("allowed_groups=nobody,{hr}"), 202, 403),
        (
            format!("allowed_groups=nobody&allowed_groups={hr}"),
            202,
            403,
        ),
        ("allowed_groups=nobody".to_string(), 403, 403),
        (format!("allowed_emails={}", urlencode(BOB)), 403, 202),
        (
            "allowed_email_domains=contoso.example".to_string(),
            202,
            202,
        ),
        (
            "allowed_email_domains=fabrikam.example".to_string(),
            403,
            403,
        ),
        // All given lists must match.
        (
            format!("allowed_groups={hr}&allowed_emails={}", urlencode(BOB)),
            403,
            403,
        ),
        // Empty lists restrict nothing (as in oauth2-proxy).
        ("allowed_groups=&allowed_emails=,".to_string(), 202, 202),
        // Entries [route.allow] would refuse: refused for everyone.
        (
            "allowed_email_domains=*.contoso.example".to_string(),
            403,
            403,
        ),
        (
            "allowed_emails=%22alice%22%40contoso.example".to_string(),
            403,
            403,
        ),
    ] {
        assert_eq!(
            status(&alice, query.clone()).await.as_u16(),
            alice_gets,
            "alice, {query}"
        );
        assert_eq!(
            status(&bob, query.clone()).await.as_u16(),
            bob_gets,
            "bob, {query}"
        );
    }
    // Why, for the operator: a reason naming the unreadable restriction.
    let resp = alice
        .client
        .get(
            w.gateway
                .url(APP, "/oauth2/auth?allowed_email_domains=*.contoso.example"),
        )
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "unreadable_restriction", "{body}");
    // Without a session it is still a 401 (sign in), restriction or not.
    let anonymous = Browser::new(&w.gateway);
    assert_eq!(
        status(&anonymous, format!("allowed_groups={hr}")).await,
        StatusCode::UNAUTHORIZED
    );
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn ingress_headers_from_an_untrusted_peer_are_ignored() {
    let w = World::start(false).await;
    let client = Browser::new(&w.gateway).client;
    // X-Original-URL naming a public path must not make an anonymous
    // request pass: it is only believed from trusted proxies.
    let resp = client
        .get(w.gateway.url(APP, "/oauth2/auth"))
        .header("x-original-url", "http://app.test/static/app.js")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Same from a trusted proxy: public.
    let trusted = World::start(true).await;
    let resp = Browser::new(&trusted.gateway)
        .client
        .get(trusted.gateway.url(APP, "/oauth2/auth"))
        .header("x-original-url", "http://app.test/static/app.js")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // bob signed in; an untrusted X-Original-URL cannot move the policy
    // decision to another route: naming one is a 400 that says to trust
    // the proxy (review 9); naming the request's own route is judged there.
    let (bob, _) = w.sign_in(BOB, "/").await;
    let resp = bob
        .client
        .get(w.gateway.url(APP, "/oauth2/auth"))
        .header("x-original-url", "http://other.test/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "another route named"
    );
    let resp = bob
        .client
        .get(w.gateway.url(APP, "/oauth2/auth"))
        .header("x-original-url", "http://app.test/reports")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::ACCEPTED,
        "judged on app.test's own route"
    );

    // X-Auth-Request-Redirect from an untrusted peer does not pick the
    // sign-in target; from a trusted one it does.
    for (world, expected) in [(&w, "/"), (&trusted, "/wanted")] {
        let browser = Browser::new(&world.gateway);
        let resp = browser
            .client
            .get(world.gateway.url(APP, "/oauth2/start"))
            .header(ACCEPT, HTML)
            .header("x-auth-request-redirect", "/wanted")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        let back = browser
            .finish_login(&world.idp, &location(&resp), ALICE)
            .await;
        assert_eq!(location(&back), expected);
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn oauth2_start_refuses_foreign_return_urls() {
    let w = World::start(false).await;
    for rd in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let (_, back) = w.sign_in(ALICE, rd).await;
        assert_eq!(back, "/", "{rd}");
    }
    // A route host is a fine target.
    let (_, back) = w.sign_in(ALICE, "http://other.test/x").await;
    assert_eq!(back, "http://other.test/x");
}

#[tokio::test]
async fn oauth2_paths_belong_to_the_app_without_the_option_and_confusions_never_reach_handlers() {
    let w = World::start(false).await;
    let client = Browser::new(&w.gateway).client;
    let get = |host: &'static str, path: &'static str| {
        client
            .get(w.gateway.url(host, path))
            .header(ACCEPT, "application/json")
            .send()
    };
    // Without the option, /oauth2/auth is the app's path: sign-in required
    // like any other (401 JSON, not a 202 or a 401 from the alias), nothing forwarded.
    for path in [
        "/oauth2/auth",
        "/oauth2/start",
        "/oauth2/callback?state=x&code=y",
    ] {
        let resp = get(OTHER, path).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        // The app's sign-in requirement, not the alias's forward-auth 401.
        assert!(
            resp.headers().get("x-realmgate-login-url").is_none(),
            "{path}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{path}");
    }
    // With the option: spellings that are not /oauth2/... once canonical
    // are the app's (sign-in required); the encoded one is realmgate's 404.
    for path in [
        "/oauth2/../hello",
        "/oauth2/%2e%2e/hello",
        "//oauth2/auth",
        "/OAUTH2/auth",
        "/oauth2x/auth",
    ] {
        let resp = get(APP, path).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/oauth2%2Fauth", "/oauth2/nothing", "/oauth2"] {
        assert_eq!(
            get(APP, path).await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    w.upstream.assert_received_nothing().await;

    // Signed in: those app paths are forwarded in their canonical form;
    // /oauth2/* on other.test reaches the app.
    let (browser, _) = w.sign_in(ALICE, "/").await;
    let echoed = Echoed::from(browser.get(&w.gateway.url(APP, "/oauth2/../hello")).await).await;
    assert_eq!(echoed.uri(), "/hello");
    // The same session on other.test (the gateway's sessions are not
    // per host): its /oauth2/auth is the app's path, forwarded as it is.
    let cookie = browser.cookie_header(&w.gateway.url(APP, "/"));
    let resp = client
        .get(w.gateway.url(OTHER, "/oauth2/auth"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(Echoed::from(resp).await.uri(), "/oauth2/auth");
}

/// ingress-nginx's rendering of `auth-url: https://$host/oauth2/auth` and
/// `auth-signin` (its auth location sets X-Original-URL, X-Original-Method,
/// X-Auth-Request-Redirect; `auth-response-headers` copies
/// X-Auth-Request-User/-Email), with the sign-in as oauth2-proxy documents
/// it for plain nginx (Debian's nginx has no `$escaped_request_uri`):
/// `error_page 401 = /oauth2/start`, whose `X-Auth-Request-Redirect` is
/// the original request URI.
fn ingress_conf(
    dir: &Path,
    listen: std::net::SocketAddr,
    gateway: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
) -> String {
    crate::util::nginx_conf_with(
        dir,
        "info",
        64,
        &format!(
            r#"
    server {{
        listen {listen};

        location /oauth2/ {{
            proxy_pass http://{gateway};
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
        }}

        location = /_external-auth {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Proto "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Sent-From "nginx-ingress-controller";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
            proxy_http_version 1.1;
            proxy_pass http://{gateway}/oauth2/auth;
        }}

        location / {{
            auth_request /_external-auth;
            auth_request_set $authHeader0 $upstream_http_x_auth_request_user;
            proxy_set_header X-Auth-Request-User $authHeader0;
            auth_request_set $authHeader1 $upstream_http_x_auth_request_email;
            proxy_set_header X-Auth-Request-Email $authHeader1;
            error_page 401 = /oauth2/start;
            proxy_pass http://{upstream};
        }}
    }}
"#
        ),
    )
}

#[tokio::test]
async fn ingress_nginx_recipe_signs_in_and_forwards_identity() {
    let w = World::start(true).await;
    let nginx =
        Proxy::nginx(|dir, listen| ingress_conf(dir, listen, w.gateway.addr, w.upstream.addr));
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .timeout(std::time::Duration::from_secs(30))
        .resolve(APP, nginx.addr())
        .no_proxy()
        .build()
        .unwrap();

    // Not signed in: nginx sends the browser to /oauth2/start, realmgate
    // starts the sign-in with the original URI as target.
    let resp = client
        .get(nginx.url(APP, "/reports?q=1"))
        .header(ACCEPT, HTML)
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{}", nginx.logs());
    let authorize = location(&resp);
    assert!(authorize.contains("redirect_uri="), "{authorize}");
    w.upstream.assert_received_nothing().await;

    // The IdP sends the browser back to /oauth2/callback through nginx.
    let back = w
        .idp
        .complete_login(&authorize, ALICE)
        .expect("IdP issues a code");
    let back = url::Url::parse(&back.url).unwrap();
    assert_eq!(back.path(), "/oauth2/callback");
    let callback = nginx.url(
        APP,
        &format!("{}?{}", back.path(), back.query().unwrap_or("")),
    );
    let resp = client
        .get(&callback)
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{}", nginx.logs());
    assert_eq!(location(&resp), "/reports?q=1");

    // Signed in: the app gets the identity from /oauth2/auth, never the client's copy.
    let resp = client
        .get(nginx.url(APP, "/reports?q=1"))
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", nginx.logs());
    let echoed = Echoed::from(resp).await;
    assert_eq!(echoed.header("x-auth-request-user"), Some(user(ALICE).oid));
    assert_eq!(
        echoed.header("x-auth-request-email").as_deref(),
        Some(ALICE)
    );
    assert_eq!(echoed.uri(), "/reports?q=1");

    // /admin's policy is decided on the original URL nginx names: bob is refused.
    let bob = Browser::new(&w.gateway);
    let start = bob.login_at(&w.gateway.url(APP, "/oauth2/start")).await;
    let resp = bob.finish_login(&w.idp, &start, BOB).await;
    let bob_cookie = session_cookie(&resp);
    let resp = reqwest::Client::builder()
        .resolve(APP, nginx.addr())
        .no_proxy()
        .build()
        .unwrap()
        .get(nginx.url(APP, "/admin/users"))
        .header("cookie", bob_cookie)
        .header("x-original-url", "http://app.test/hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{}", nginx.logs());
    assert_eq!(w.upstream.count(), 1);
}

// === migrate, then check ===

/// `realmgate migrate --from peer sample`, then `realmgate check` on its
/// output with the secrets it asks for supplied through `_FILE` variables.
fn migrate_then_check(peer: &str, sample: &str, secrets: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migrate")
        .join(sample);
    let out = Command::new(BIN)
        .args(["migrate", "--from", peer])
        .arg(&sample)
        .output()
        .unwrap();
    let toml = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("listed as comments at the end"), "{stderr}");
    let file = dir.path().join("realmgate.toml");
    std::fs::write(&file, &toml).unwrap();
    let mut check = Command::new(BIN);
    check
        .args(["check", "--config"])
        .arg(&file)
        .env_remove("REALMGATE_CONFIG");
    for var in secrets {
        let path = dir.path().join(var.to_ascii_lowercase());
        let value = if var.contains("REDIS") {
            "redis://:pw@127.0.0.1:6379/0".to_string()
        } else {
            "k4Jd8s0Qm2ZxV7bN1cT9eR5uY3wA6pLq-a-real-secret".to_string()
        };
        std::fs::write(&path, value).unwrap();
        check.env(format!("{var}_FILE"), &path);
    }
    let out = check.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{toml}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Configuration is valid."), "{stdout}");
    // Without the secrets, check says which are missing.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .env_remove("REALMGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    stdout.into_owned()
}

#[test]
fn migrated_oauth2_proxy_configs_pass_check() {
    let s = migrate_then_check(
        "oauth2-proxy",
        "oauth2-proxy.cfg",
        &[
            "REALMGATE_SESSION__SECRET",
            "REALMGATE_CONNECTION__ENTRA__CLIENT_SECRET",
            "REALMGATE_SESSION__REDIS_URL",
        ],
    );
    assert!(s.contains("https://hr.contoso.com/oauth2/callback"), "{s}");
    assert!(s.contains("oauth2-proxy endpoints: /oauth2/start"), "{s}");
    migrate_then_check(
        "oauth2-proxy",
        "oauth2-proxy.args",
        &[
            "REALMGATE_SESSION__SECRET",
            "REALMGATE_CONNECTION__OIDC__CLIENT_SECRET",
        ],
    );
    // The env sample names its own client secret file (a path, kept).
    let out = Command::new(BIN)
        .args(["migrate", "--from", "oauth2-proxy"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate/oauth2-proxy.env"))
        .output()
        .unwrap();
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(
        toml.contains("client_secret_file = \"/var/run/secrets/oauth2/client-secret\""),
        "{toml}"
    );
}

#[test]
fn migrated_mod_auth_openidc_and_easyauth_configs_pass_check() {
    let s = migrate_then_check(
        "mod_auth_openidc",
        "mod_auth_openidc.conf",
        &[
            "REALMGATE_SESSION__SECRET",
            "REALMGATE_CONNECTION__ENTRA__CLIENT_SECRET",
        ],
    );
    assert!(
        s.contains("https://intranet.contoso.com/.auth/login/entra/callback"),
        "{s}"
    );
    let s = migrate_then_check(
        "easyauth",
        "easyauth.json",
        &[
            "REALMGATE_SESSION__SECRET",
            "REALMGATE_CONNECTION__ENTRA__CLIENT_SECRET",
        ],
    );
    assert!(s.contains("contoso-hr.azurewebsites.net"), "{s}");
}

#[test]
fn migrate_names_the_line_of_garbage_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("garbage.cfg");
    std::fs::write(&file, "client_id = \"x\"\n\n]]] nonsense\n").unwrap();
    let out = Command::new(BIN)
        .args(["migrate", "--from", "oauth2-proxy"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("garbage.cfg: line 3:"), "{stderr}");
    let out = Command::new(BIN)
        .args(["migrate", "--from", "nginx"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown peer");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oauth2-proxy"));
}

/// A host with `/admin` (HR Admins) and `/` (anyone signed in): paths that
/// an app matching loosely (case-insensitive routing, Windows's trailing
/// dots and spaces, ASP.NET's cookieless segments, Unicode compatibility
/// forms) would serve from `/admin` are refused, not judged under `/`;
/// through the proxy and through the forward-auth endpoints alike.
#[tokio::test]
async fn loose_variants_of_a_stricter_prefix_are_refused_not_judged_under_the_laxer_route() {
    let w = World::start(true).await;
    let (bob, _) = w.sign_in(BOB, "/").await;
    let url = |p: &str| w.gateway.url(APP, p);
    assert_eq!(
        bob.get(&url("/admin/x")).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(bob.get(&url("/hello")).await.status(), StatusCode::OK);
    let before = w.upstream.count();
    for path in [
        "/ADMIN/x",
        "/Admin",
        "/aDmIn/x/y",
        "/admin./x",
        "/admin%20/x",
        "/admin.%20/x",
        "/(S(x1y2))/admin/x",
        "/%EF%BD%81dmin/x",
        "/adm%C4%B1n/x",
    ] {
        let resp = bob.get(&url(path)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path:?}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("path"),
            "{path:?}: the page says what was wrong"
        );
        refused_at_verify(&bob, &url("/.auth/verify"), path).await;
        let resp = bob
            .client
            .get(url("/oauth2/auth"))
            .header("x-original-url", format!("http://app.test{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "oauth2/auth: {path:?}"
        );
    }
    assert_eq!(w.upstream.count(), before, "none reached the app");
    // Variants inside one route's space stay with that route.
    assert_eq!(bob.get(&url("/Hello")).await.status(), StatusCode::OK);
    assert_eq!(
        bob.get(&url("/admin/X")).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.get(&url("/administrator")).await.status(),
        StatusCode::OK
    );
}

/// `/.auth/verify` (at `verify_url`) answers 400 to `path` forwarded as
/// `X-Original-URI` and as `X-Forwarded-Uri`, for `who`.
async fn refused_at_verify(who: &Browser, verify_url: &str, path: &str) {
    for header in ["x-original-uri", "x-forwarded-uri"] {
        let resp = who
            .client
            .get(verify_url)
            .header(header, path)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "verify {header}: {path:?}"
        );
    }
}

/// A target starting with `//` is a network-path reference to URL parsers:
/// Node's `new URL(req.url, base)`, PHP's `parse_url($_SERVER['REQUEST_URI'],
/// PHP_URL_PATH)`, Python's `urlsplit` and Java's `URI` take `//x` for a
/// host and serve `//x/admin/users` from `/admin/users`. Judged under `/`
/// (any signed-in user), bob reached the strict `/admin` route's pages
/// (review 11). Such a path naming another route is refused, through the
/// proxy and the forward-auth endpoints alike.
#[tokio::test]
async fn a_network_path_reference_to_a_stricter_prefix_is_refused() {
    let w = World::start(true).await;
    let (bob, _) = w.sign_in(BOB, "/").await;
    let url = |p: &str| w.gateway.url(APP, p);
    let before = w.upstream.count();
    for path in ["//x/admin/users", "//app.test/admin", "///x/admin/users"] {
        let resp = bob.get(&url(path)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path:?}");
        refused_at_verify(&bob, &url("/.auth/verify"), path).await;
    }
    assert_eq!(w.upstream.count(), before, "none reached the app");
    // Read past its "host" it stays under `/`: judged and forwarded as before.
    assert_eq!(bob.get(&url("//x/hello")).await.status(), StatusCode::OK);
}

/// WebDAV's COPY and MOVE write where `Destination` says, which the app
/// reads as a second request target: judged as the target is (review 11).
/// Before, bob (denied on `/admin`) could move a page into `/admin`, and
/// anyone could move a public file anywhere the app lets anonymous WebDAV
/// write.
#[tokio::test]
async fn a_webdav_destination_is_judged_like_the_request_target() {
    let w = World::start(true).await;
    let (bob, _) = w.sign_in(BOB, "/").await;
    let url = |p: &str| w.gateway.url(APP, p);
    let port = url::Url::parse(&url("/")).unwrap().port().unwrap();
    let method = |m: &str| reqwest::Method::from_bytes(m.as_bytes()).unwrap();
    let before = w.upstream.count();
    let admin_url = format!("http://{APP}:{port}/admin/x");
    let other_url = format!("http://{OTHER}:{port}/notes/y");
    for (m, destination) in [
        ("MOVE", "/admin/x"),
        ("COPY", "/admin"),
        ("MOVE", admin_url.as_str()),
        ("MOVE", "/Admin/x"),
        ("MOVE", "//x/admin/x"),
        ("MOVE", "/notes/../admin/x"),
        ("MOVE", "/notes/%2e%2e/admin/x"),
        ("COPY", other_url.as_str()),
        // Overwriting `/` replaces `/admin` too.
        ("COPY", "/"),
    ] {
        let resp = bob
            .client
            .request(method(m), url("/notes/x"))
            .header("destination", destination)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{m} {destination}");
    }
    // Two destinations: which one would the app take?
    let resp = bob
        .client
        .request(method("MOVE"), url("/notes/x"))
        .header("destination", "/notes/y")
        .header("destination", "/admin/y")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // From a public path, only to a public path.
    let anonymous = w.gateway.client();
    let resp = anonymous
        .request(method("MOVE"), url("/static/a.css"))
        .header("destination", "/notes/a.css")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.upstream.count(), before, "none reached the app");

    // Within the judged route (and public to public): forwarded as sent.
    let own_url = format!("http://{APP}:{port}/notes/y");
    for destination in ["/notes/y", own_url.as_str()] {
        let resp = bob
            .client
            .request(method("MOVE"), url("/notes/x"))
            .header("destination", destination)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{destination}");
        let echoed = Echoed::from(resp).await;
        assert_eq!(echoed.header("destination").as_deref(), Some(destination));
    }
    let resp = anonymous
        .request(method("COPY"), url("/static/a.css"))
        .header("destination", "/static/b.css")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// WebDAV methods that act on a whole collection (MOVE, DELETE, COPY and
/// LOCK at any depth but 0, PROPFIND at depth infinity) on a path of the
/// lax route whose subtree holds the strict route's prefix act on the
/// strict route's paths too: refused (review 11). Before, bob could
/// `MOVE /` or `DELETE /` (with `/admin` in it) or list all of it.
#[tokio::test]
async fn webdav_methods_on_a_collection_holding_another_route_are_refused() {
    let w = World::start(true).await;
    let (bob, _) = w.sign_in(BOB, "/").await;
    let url = |p: &str| w.gateway.url(APP, p);
    let method = |m: &str| reqwest::Method::from_bytes(m.as_bytes()).unwrap();
    let before = w.upstream.count();
    for (m, path, depth, destination) in [
        ("DELETE", "/", None, None),
        ("MOVE", "/", None, Some("/notes/all")),
        ("COPY", "/", None, Some("/notes/all")),
        ("COPY", "/", Some("infinity"), Some("/notes/all")),
        ("PROPFIND", "/", None, None),
        ("PROPFIND", "/", Some("infinity"), None),
        ("LOCK", "/", None, None),
        // Bodies that name members (CalDAV sync-collection at Depth 0, a
        // DASL scope, the member to unbind).
        ("REPORT", "/", Some("0"), None),
        ("SEARCH", "/", Some("0"), None),
        ("UNBIND", "/", None, None),
    ] {
        let mut req = bob.client.request(method(m), url(path));
        if let Some(depth) = depth {
            req = req.header("depth", depth);
        }
        if let Some(destination) = destination {
            req = req.header("destination", destination);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::BAD_REQUEST,
            "{m} {path} depth {depth:?}"
        );
    }
    assert_eq!(w.upstream.count(), before, "none reached the app");
    // Not the whole subtree, or one without another route: forwarded.
    for (m, path, depth) in [
        ("PROPFIND", "/", Some("0")),
        ("PROPFIND", "/", Some("1")),
        ("LOCK", "/", Some("0")),
        ("DELETE", "/notes", None),
        ("PROPFIND", "/notes", None),
        ("REPORT", "/notes", Some("0")),
        ("DELETE", "/administrator", None),
        ("GET", "/", None),
    ] {
        let mut req = bob.client.request(method(m), url(path));
        if let Some(depth) = depth {
            req = req.header("depth", depth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{m} {path} depth {depth:?}");
    }
}

/// Next.js's image optimizer fetches a relative `url` from the app itself
/// (`fetchInternalImage`), past realmgate: `/_next/image?url=/admin/x.png`
/// below a public prefix gave anyone an image of the strict `/admin`, and on
/// the lax route gave bob (denied on `/admin`) one (review 12, C12). The
/// request is judged as its `url` too.
#[tokio::test]
async fn next_image_optimizer_urls_are_judged_as_the_path_they_fetch() {
    let w = World::start(true).await;
    let (bob, _) = w.sign_in(BOB, "/").await;
    let anonymous = w.gateway.client();
    let url = |p: &str| w.gateway.url(APP, p);
    let before = w.upstream.count();
    for path in [
        "/static/_next/image?url=%2Fadmin%2Fchart.png&w=640&q=75",
        "/static/_next/image?w=64&url=/admin/chart.png",
        "/static/_next/image?url=%2FADMIN%2Fchart.png&w=64",
        "/static/_next/image/?url=%2Fadmin%2Fchart.png&w=64",
    ] {
        let resp = anonymous.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path:?}");
    }
    for path in [
        "/_next/image?url=%2Fadmin%2Fchart.png&w=640&q=75",
        "/_next/image?url=%2Fadmin&w=64",
    ] {
        let resp = bob.get(&url(path)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path:?}");
        // At forward auth too, from a trusted proxy and from any peer.
        refused_at_verify(&bob, &url("/.auth/verify"), path).await;
    }
    assert_eq!(w.upstream.count(), before, "none reached the app");
    let untrusted = World::start(false).await;
    let (bob_untrusted, _) = untrusted.sign_in(BOB, "/").await;
    refused_at_verify(
        &bob_untrusted,
        &untrusted.gateway.url(APP, "/.auth/verify"),
        "/_next/image?url=%2Fadmin%2Fchart.png&w=64",
    )
    .await;
    // An image of the public prefix stays public; one of the route's
    // protected paths needs a session; absolute urls change nothing.
    let resp = anonymous
        .get(url("/static/_next/image?url=%2Fstatic%2Fa.png&w=64"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = anonymous
        .get(url("/static/_next/image?url=%2Fdocs%2Fa.png&w=64"))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::OK);
    let resp = anonymous
        .get(url(
            "/static/_next/image?url=https%3A%2F%2Fcdn.example%2Fa.png&w=64",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = bob.get(&url("/_next/image?url=%2Fdocs%2Fa.png&w=64")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
