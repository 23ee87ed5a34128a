//! Entra depth against the in-process mock Entra: group overage through
//! Microsoft Graph (paging, foreign `nextLink`, Graph down), back-channel
//! logout and token refresh.

use std::sync::Arc;
use std::time::Duration;

use realmgate::demo::idp::{self, Idp, IdpConfig, IdpGroup};
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;

use crate::util::{EchoUpstream, Echoed, TestGateway, SECRET};

const HOST: &str = "app.test";
const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const MANY_GROUPS: usize = 300;

/// Group ids of the user with many groups (GUID-shaped, like Graph's).
fn many_group_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// The demo IdP, with alice in 300 groups (above the overage limit of 200,
/// 3 Graph pages of 100).
fn idp_config() -> IdpConfig {
    let mut config = IdpConfig::demo_default();
    for user in &mut config.users {
        if user.email == ALICE {
            user.groups = (0..MANY_GROUPS)
                .map(|i| IdpGroup {
                    id: many_group_id(i),
                    name: format!("Group {i}"),
                })
                .collect();
        }
    }
    config
}

struct World {
    idp: Idp,
    _upstream: EchoUpstream,
    gateway: TestGateway,
}

#[derive(Default)]
struct Options<'a> {
    /// `graph_endpoint`; `None` = the IdP's own Graph mock at `{base}/graph`.
    graph_endpoint: Option<String>,
    /// Extra lines of the route (e.g. `[route.allow]`).
    route_extra: &'a str,
    /// Extra lines of the `[session]` table.
    session_extra: &'a str,
    /// Groups per page of the Graph mock (default 100).
    graph_page_size: Option<usize>,
    /// Port of the admin listener (default: any).
    admin_port: u16,
}

impl World {
    async fn start(opts: Options<'_>) -> World {
        let mut config = idp_config();
        if let Some(n) = opts.graph_page_size {
            config.graph_page_size = n;
        }
        let idp = idp::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("mock IdP starts");
        let upstream = EchoUpstream::start().await;
        let base = idp.base_url();
        let graph = opts
            .graph_endpoint
            .map(|g| g.replace("{port}", &idp.addr().port().to_string()))
            .unwrap_or_else(|| format!("{base}/graph"));
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:{admin_port}"

[session]
secret = "{SECRET}"
{session_extra}

[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
authority_host = "{base}"
graph_endpoint = "{graph}"
client_id = "{client}"
client_secret = "{secret}"
scopes = ["openid", "profile", "email", "offline_access"]
groups = true

[[route]]
name = "app"
hosts = ["{HOST}"]
upstream = "{up}"
{route_extra}
"#,
            client = idp::DEMO_CLIENT_ID,
            secret = idp::DEMO_CLIENT_SECRET,
            up = upstream.url(),
            session_extra = opts.session_extra,
            admin_port = opts.admin_port,
            route_extra = opts.route_extra,
        );
        let gateway = TestGateway::start(&toml).await;
        World {
            idp,
            _upstream: upstream,
            gateway,
        }
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    /// A browser that keeps cookies and follows no redirects.
    fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
            .timeout(Duration::from_secs(30))
            .resolve(HOST, self.gateway.addr)
            .no_proxy()
            .build()
            .unwrap()
    }

    /// Runs the login of `email` in `browser`; returns the callback's response.
    async fn login(&self, browser: &reqwest::Client, email: &str) -> reqwest::Response {
        let start = browser
            .get(self.url("/.auth/login/contoso?rd=/page"))
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), StatusCode::FOUND, "login starts");
        let authorize = location(&start);
        let back = self
            .idp
            .complete_login(&authorize, email)
            .expect("IdP issues a code");
        browser
            .get(&back.url)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap()
    }

    /// A browser in which `email` is signed in.
    async fn signed_in(&self, email: &str) -> reqwest::Client {
        let browser = self.browser();
        let resp = self.login(&browser, email).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
        assert_eq!(location(&resp), "/page");
        browser
    }

    async fn me(&self, browser: &reqwest::Client) -> (StatusCode, Value) {
        let resp = browser
            .get(self.url("/.auth/me"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .expect("Location")
        .to_str()
        .unwrap()
        .to_string()
}

fn groups_of(me: &Value) -> Vec<String> {
    me["groups"]
        .as_array()
        .expect("groups array")
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

/// A local port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

// --- Group overage (SPEC 5.4) ---

#[tokio::test]
async fn overage_groups_come_from_graph_over_three_pages() {
    let w = World::start(Options::default()).await;
    let browser = w.signed_in(ALICE).await;
    assert_eq!(w.idp.graph_calls(), 3, "300 groups are 3 pages of 100");

    let (status, me) = w.me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    let want: Vec<String> = (0..MANY_GROUPS).map(many_group_id).collect();
    assert_eq!(groups_of(&me), want, "every group of every page, in order");

    let resp = browser.get(w.url("/page")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    let header = echoed.header("x-forwarded-groups").expect("groups header");
    let sent: Vec<&str> = header.split(',').map(str::trim).collect();
    assert_eq!(sent.len(), MANY_GROUPS);
    assert!(sent.contains(&many_group_id(0).as_str()));
    assert!(sent.contains(&many_group_id(299).as_str()));

    // Cached with the session: further requests do not call Graph.
    let _ = browser.get(w.url("/page")).send().await.unwrap();
    assert_eq!(w.idp.graph_calls(), 3);

    // A user below the limit keeps the claim; Graph is not asked.
    let bob = w.signed_in(BOB).await;
    let (_, me) = w.me(&bob).await;
    assert_eq!(groups_of(&me), [idp::DEMO_ENGINEERING_GROUP]);
    assert_eq!(w.idp.graph_calls(), 3);
}

#[tokio::test]
async fn overage_next_link_to_another_host_is_refused() {
    // graph_endpoint names `localhost`, while the mock's nextLink names
    // 127.0.0.1: another origin, so the access token must not go there.
    let w = World::start(Options {
        graph_endpoint: Some("http://localhost:{port}/graph".into()),
        ..Options::default()
    })
    .await;
    let browser = w.signed_in(ALICE).await;
    assert_eq!(
        w.idp.graph_calls(),
        1,
        "the first page is read, the foreign nextLink is not followed"
    );
    let (status, me) = w.me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        groups_of(&me).is_empty(),
        "a partial list is never used: no groups"
    );
}

#[tokio::test]
async fn overage_paging_is_bounded() {
    // 300 pages of one group: more than the 100 pages realmgate reads.
    let w = World::start(Options {
        graph_page_size: Some(1),
        ..Options::default()
    })
    .await;
    let browser = w.signed_in(ALICE).await;
    assert_eq!(w.idp.graph_calls(), 100, "stops after 100 pages");
    let (_, me) = w.me(&browser).await;
    assert!(groups_of(&me).is_empty(), "a truncated list is not used");
}

#[tokio::test]
async fn graph_down_without_group_policy_signs_in_without_groups() {
    let port = closed_port().await;
    let admin_port = closed_port().await;
    let w = World::start(Options {
        graph_endpoint: Some(format!("http://127.0.0.1:{port}")),
        admin_port,
        ..Options::default()
    })
    .await;
    let browser = w.signed_in(ALICE).await;
    let metrics = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| !l.starts_with('#')
            && l.contains("kind=\"graph\"")
            && l.contains("outcome=\"error\"")),
        "the Graph failure is counted:\n{metrics}"
    );
    let (status, me) = w.me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    assert!(groups_of(&me).is_empty());
    let resp = browser.get(w.url("/page")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "no policy needs groups");
    let echoed = Echoed::from(resp).await;
    assert_eq!(echoed.header("x-forwarded-groups"), None);
}

#[tokio::test]
async fn graph_down_with_group_policy_fails_the_login_clearly() {
    let port = closed_port().await;
    let w = World::start(Options {
        graph_endpoint: Some(format!("http://127.0.0.1:{port}")),
        route_extra: &format!("[route.allow]\ngroups = [\"{}\"]", many_group_id(7)),
        ..Options::default()
    })
    .await;
    let browser = w.browser();
    let resp = w.login(&browser, ALICE).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("group memberships could not be read"),
        "the page says what failed: {page}"
    );
    let (status, _) = w.me(&browser).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no session was created");

    // With Graph working, the same policy lets alice in (group 7 of 300).
    let w = World::start(Options {
        route_extra: &format!("[route.allow]\ngroups = [\"{}\"]", many_group_id(7)),
        ..Options::default()
    })
    .await;
    let browser = w.signed_in(ALICE).await;
    let resp = browser.get(w.url("/page")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

// --- Back-channel logout ---

/// The `sid` of the session `browser` holds, from the ID token the route
/// passes upstream (`pass_id_token = true`).
async fn session_sid(w: &World, browser: &reqwest::Client) -> String {
    use base64::Engine as _;
    let resp = browser.get(w.url("/page")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    let token = echoed
        .header("x-forwarded-id-token")
        .expect("ID token passed");
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().expect("sid claim").to_string()
}

async fn post_logout_token(w: &World, token: &str) -> (StatusCode, Value, Option<String>) {
    let resp = w
        .gateway
        .client()
        .post(w.url("/.auth/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap_or(Value::Null), cache)
}

fn backchannel_world() -> Options<'static> {
    Options {
        route_extra: "pass_id_token = true",
        ..Options::default()
    }
}

#[tokio::test]
async fn backchannel_logout_by_sid_ends_that_session_only() {
    let w = World::start(backchannel_world()).await;
    let first = w.signed_in(BOB).await;
    let second = w.signed_in(BOB).await;
    let sid = session_sid(&w, &first).await;
    let token = w
        .idp
        .mint_logout_token(BOB, idp::DEMO_CLIENT_ID, Some(&sid))
        .unwrap();
    let (status, body, cache) = post_logout_token(&w, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 1);
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert_eq!(
        w.me(&first).await.0,
        StatusCode::UNAUTHORIZED,
        "cookie rejected"
    );
    let resp = first
        .get(w.url("/page"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.me(&second).await.0,
        StatusCode::OK,
        "another provider session of the same user stays"
    );

    // The same token again: its jti was seen.
    let (status, body, _) = post_logout_token(&w, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("replayed"),
        "{body}"
    );
    assert_eq!(w.me(&second).await.0, StatusCode::OK);
}

#[tokio::test]
async fn backchannel_logout_without_sid_ends_every_session_of_the_user() {
    let w = World::start(backchannel_world()).await;
    let first = w.signed_in(BOB).await;
    let second = w.signed_in(BOB).await;
    let alice = w.signed_in(ALICE).await;
    let token = w
        .idp
        .mint_logout_token(BOB, idp::DEMO_CLIENT_ID, None)
        .unwrap();
    let (status, body, _) = post_logout_token(&w, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 2);
    assert_eq!(w.me(&first).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&second).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&alice).await.0, StatusCode::OK, "other users stay");
}

#[tokio::test]
async fn backchannel_logout_refuses_bad_tokens_with_a_reason() {
    let w = World::start(backchannel_world()).await;
    let bob = w.signed_in(BOB).await;
    let sid = session_sid(&w, &bob).await;
    let mint = |hostile: Option<idp::Hostile>| {
        w.idp.set_hostile(hostile);
        let t = w
            .idp
            .mint_logout_token(BOB, idp::DEMO_CLIENT_ID, Some(&sid))
            .unwrap();
        w.idp.set_hostile(None);
        t
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad signature",
            mint(Some(idp::Hostile::BadSignature)),
            "signature",
        ),
        (
            "nonce present",
            mint(Some(idp::Hostile::NonceWrong)),
            "nonce",
        ),
        ("expired", mint(Some(idp::Hostile::Expired)), "exp"),
        ("alg none", mint(Some(idp::Hostile::AlgNone)), "alg"),
        (
            "no events claim",
            w.idp
                .mint_logout_token_edited(BOB, idp::DEMO_CLIENT_ID, Some(&sid), |c| {
                    c.remove("events");
                })
                .unwrap(),
            "events",
        ),
        (
            "neither sid nor sub",
            w.idp
                .mint_logout_token_edited(BOB, idp::DEMO_CLIENT_ID, None, |c| {
                    c.remove("sub");
                })
                .unwrap(),
            "sub",
        ),
        (
            "another application",
            w.idp
                .mint_logout_token(BOB, "00000000-0000-4000-8000-0000000000ff", Some(&sid))
                .unwrap(),
            "aud",
        ),
        (
            "not a JWT",
            "not-a-token".to_string(),
            "invalid logout token",
        ),
    ];
    for (what, token, reason) in cases {
        let (status, body, cache) = post_logout_token(&w, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}");
        let described = body["error_description"].as_str().unwrap_or_default();
        assert!(
            described.contains(reason),
            "{what}: reason {described:?} should mention {reason:?}"
        );
        assert_eq!(cache.as_deref(), Some("no-store"));
    }
    // No form field at all, and a GET.
    let resp = w
        .gateway
        .client()
        .post(w.url("/.auth/backchannel-logout"))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = w
        .gateway
        .client()
        .get(w.url("/.auth/backchannel-logout"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        w.me(&bob).await.0,
        StatusCode::OK,
        "nothing ended the session"
    );
}

// --- Refresh ---

async fn get_page(w: &World, browser: &reqwest::Client) -> StatusCode {
    browser
        .get(w.url("/page"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn concurrent_requests_near_expiry_cause_one_refresh() {
    let w = World::start(Options::default()).await;
    // Access token valid for 30 s: within the refresh margin at once.
    w.idp.set_access_token_lifetime(30);
    let browser = w.signed_in(BOB).await;
    w.idp.set_access_token_lifetime(3600);
    let before = w.idp.token_calls();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let b = browser.clone();
        let url = w.url("/page");
        tasks.push(tokio::spawn(async move {
            b.get(url)
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        w.idp.token_calls() - before,
        1,
        "50 concurrent requests of one session: exactly one refresh"
    );
    // Fresh tokens now: no further refresh.
    assert_eq!(get_page(&w, &browser).await, StatusCode::OK);
    assert_eq!(w.idp.token_calls() - before, 1);
}

#[tokio::test]
async fn failed_refresh_ends_the_session() {
    let w = World::start(Options::default()).await;
    w.idp.set_access_token_lifetime(30);
    let browser = w.signed_in(BOB).await;
    let other = w.signed_in(BOB).await;
    w.idp.revoke_refresh_tokens();
    assert_eq!(
        get_page(&w, &browser).await,
        StatusCode::UNAUTHORIZED,
        "refresh refused: signed out"
    );
    assert_eq!(w.me(&browser).await.0, StatusCode::UNAUTHORIZED);
    // The forced refresh of the other session fails the same way.
    let resp = other.get(w.url("/.auth/refresh")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&other).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forced_refresh_rereads_groups_and_answers_the_new_expiry() {
    let w = World::start(Options::default()).await;
    let stranger = w.browser();
    let resp = stranger.get(w.url("/.auth/refresh")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "not signed in");

    let browser = w.signed_in(ALICE).await;
    assert_eq!(w.idp.graph_calls(), 3);
    let tokens_before = w.idp.token_calls();
    let resp = browser.get(w.url("/.auth/refresh")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["refreshed"], true, "{body}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = body["tokens_expire_at"].as_u64().expect("new expiry");
    assert!(exp > now + 3000, "an hour from now: {exp} vs {now}");
    assert_eq!(w.idp.token_calls() - tokens_before, 1);
    assert_eq!(
        w.idp.graph_calls(),
        6,
        "groups re-read from Graph (3 pages)"
    );
    let (status, me) = w.me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(groups_of(&me).len(), MANY_GROUPS);
    assert_eq!(get_page(&w, &browser).await, StatusCode::OK);
}

#[tokio::test]
async fn unreachable_provider_keeps_valid_tokens_and_backs_off_then_ends_expired_ones() {
    let w = World::start(Options::default()).await;
    w.idp.set_access_token_lifetime(30);
    let browser = w.signed_in(BOB).await;
    w.idp.set_token_endpoint_outage(idp::Outage::Status503);
    let before = w.idp.token_calls();
    assert_eq!(
        get_page(&w, &browser).await,
        StatusCode::OK,
        "tokens still valid: the session keeps working"
    );
    assert_eq!(w.idp.token_calls() - before, 1, "one refresh attempt");
    for _ in 0..5 {
        assert_eq!(get_page(&w, &browser).await, StatusCode::OK);
    }
    assert_eq!(
        w.idp.token_calls() - before,
        1,
        "no retry within the back-off while the provider is down"
    );

    // Tokens that have expired are not kept when the refresh cannot happen.
    w.idp.set_access_token_lifetime(1);
    w.idp.set_token_endpoint_outage(idp::Outage::None);
    let short = w.signed_in(BOB).await;
    w.idp.set_token_endpoint_outage(idp::Outage::Status503);
    // Wall-clock expiry of a 1-second token: nothing to poll for.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get_page(&w, &short).await, StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&short).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forward_auth_refreshes_due_tokens_and_ends_sessions_that_cannot() {
    let w = World::start(Options::default()).await;
    w.idp.set_access_token_lifetime(30);
    let browser = w.signed_in(BOB).await;
    let doomed = w.signed_in(BOB).await;
    let verify = |b: &reqwest::Client| {
        b.get(w.url("/.auth/verify"))
            .header(ACCEPT, "application/json")
            .send()
    };
    let before = w.idp.token_calls();
    assert_eq!(verify(&browser).await.unwrap().status(), StatusCode::OK);
    assert_eq!(w.idp.token_calls() - before, 1, "refreshed at verify");
    w.idp.revoke_refresh_tokens();
    assert_eq!(
        verify(&doomed).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "refresh refused: signed out"
    );
    assert_eq!(w.me(&doomed).await.0, StatusCode::UNAUTHORIZED);
}
