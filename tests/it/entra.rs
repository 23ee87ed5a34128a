//! Entra depth against the in-process mock Entra: identity by `oid` and
//! tenant (the "nOAuth" attack), group overage through Microsoft Graph
//! (paging, foreign `nextLink`, Graph down), the extended profile with
//! userinfo, back-channel logout, token refresh, and an unreachable provider.

use std::time::Duration;

use realmgate::demo::idp::{self, IdpConfig, IdpGroup, IdpUser};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use crate::signin::{location, Browser};
use crate::util::{
    echo_route, entra, Echoed, GraphFault, Hostile, HostileIdp, Outage, UserinfoFault,
};

const HOST: &str = "app.test";
const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const MANY_GROUPS: usize = 300;

/// Group ids of the user with many groups (GUID-shaped, like Graph's).
fn many_group_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// The demo IdP, with alice in 300 groups (above the overage limit of 200,
/// 3 Graph pages of 100), and `extra_users` added.
fn idp_config(extra_users: Vec<IdpUser>) -> IdpConfig {
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
    config.users.extend(extra_users);
    config
}

/// This file's world (see `util::world`): one Entra connection with groups and
/// Graph, one route, as [`Options`] say.
enum EntraTests {}
type World = crate::util::World<EntraTests>;

#[derive(Default)]
struct Options<'a> {
    /// `graph_endpoint`; `None` = the IdP's own Graph mock at `{base}/graph`.
    graph_endpoint: Option<String>,
    /// Extra lines after the route (e.g. `[route.allow]`, or more routes;
    /// `{upstream}` is replaced by the echo upstream's URL).
    route_extra: &'a str,
    /// Extra lines of the `[session]` table.
    session_extra: &'a str,
    /// Extra lines of the connection.
    connection_extra: String,
    /// The connection's `tenant` (default `contoso.example`).
    tenant: Option<&'a str>,
    /// Groups per page of the Graph mock (default 100).
    graph_page_size: Option<usize>,
    /// Users added to the IdP.
    extra_users: Vec<IdpUser>,
}

impl World {
    async fn start(opts: Options<'_>) -> World {
        let mut config = idp_config(opts.extra_users);
        if let Some(n) = opts.graph_page_size {
            config.graph_page_size = n;
        }
        let graph = opts
            .graph_endpoint
            .map(|g| g.replace("{port}", "{idp_port}"))
            .unwrap_or_else(|| "{idp}/graph".to_string());
        World::builder()
            .idp(config)
            .session(opts.session_extra)
            .connection(
                entra("contoso", opts.tenant.unwrap_or("contoso.example"))
                    .with(format!(
                        r#"graph_endpoint = "{graph}"
scopes = ["openid", "profile", "email", "offline_access"]
groups = true"#
                    ))
                    .with(opts.connection_extra),
            )
            .route(echo_route("app", HOST).with(opts.route_extra.replace("{base}", "{idp}")))
            .start()
            .await
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.gateway)
    }

    /// Runs the login of `user` (an email, or an oid when several users
    /// share the email) in `browser`; returns the callback's response.
    async fn login(&self, browser: &Browser, user: &str) -> reqwest::Response {
        let authorize = browser
            .login_at(&self.url("/.auth/login/contoso?rd=/page"))
            .await;
        browser.finish_login(&self.idp, &authorize, user).await
    }

    /// A browser in which `user` is signed in.
    async fn signed_in(&self, user: &str) -> Browser {
        let browser = self.browser();
        let resp = self.login(&browser, user).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
        assert_eq!(location(&resp), "/page");
        browser
    }

    async fn me(&self, browser: &Browser) -> (StatusCode, Value) {
        browser.me(&self.url("/.auth/me")).await
    }

    /// `GET path` as an API client would (JSON, so no redirect to sign in).
    async fn api_get(&self, browser: &Browser, path: &str) -> reqwest::Response {
        browser
            .client
            .get(self.url(path))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap()
    }

    /// What the upstream received for `GET path` by `browser` (which must be let through).
    async fn upstream_view(&self, browser: &Browser, path: &str) -> Echoed {
        let resp = self.api_get(browser, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path} is served");
        Echoed::from(resp).await
    }

    /// Admin `POST /sessions/revoke` of `user_id`: how many sessions ended.
    async fn revoke_user(&self, user_id: &str) -> Value {
        let resp = admin_client()
            .post(format!(
                "http://{}/sessions/revoke",
                self.gateway.admin_addr()
            ))
            .json(&json!({ "user_id": user_id }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json::<Value>().await.unwrap()["revoked"].clone()
    }

    async fn metrics(&self) -> String {
        admin_client()
            .get(format!("http://{}/metrics", self.gateway.admin_addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn admin_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Whether the metrics count an IdP call of `kind` that failed.
fn counts_idp_error(metrics: &str, kind: &str) -> bool {
    metrics.lines().any(|l| {
        !l.starts_with('#')
            && l.contains(&format!("kind=\"{kind}\""))
            && l.contains("outcome=\"error\"")
    })
}

fn groups_of(me: &Value) -> Vec<String> {
    me["groups"]
        .as_array()
        .expect("groups array")
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

// --- Identity is oid + tid, never the email ("nOAuth") ---

const ALICE_OID: &str = "a11ce000-0000-4000-8000-000000000001";
const IMPOSTOR_OID: &str = "3a11077e-0000-4000-8000-0000000000ee";

/// A fabrikam user whose directory entry carries alice's email. Entra sends
/// it as `email`, but without `xms_edov`: fabrikam does not own contoso's
/// domain, so the email is not trusted.
fn impostor() -> IdpUser {
    IdpUser {
        email: ALICE.into(),
        oid: IMPOSTOR_OID.into(),
        tenant_id: idp::DEMO_FABRIKAM_TENANT.into(),
        tenant_domain: "fabrikam.example".into(),
        name: "Alice Adams".into(),
        groups: Vec::new(),
        email_verified: None,
        xms_edov: None,
        extra_claims: Map::new(),
        userinfo_claims: Map::new(),
    }
}

/// A multi-tenant connection accepting contoso and fabrikam, the impostor
/// in fabrikam, and two routes keyed by email: `/team` for alice's email
/// only, `/staff` for emails of contoso.example.
fn noauth_world() -> Options<'static> {
    Options {
        tenant: Some("organizations"),
        connection_extra: format!(
            "allowed_tenants = [\"{}\", \"{}\"]",
            idp::DEMO_CONTOSO_TENANT,
            idp::DEMO_FABRIKAM_TENANT
        ),
        route_extra: r#"
[[route]]
name = "team"
hosts = ["app.test"]
path_prefix = "/team"
upstream = "{upstream}"
[route.allow]
users = ["alice@contoso.example"]

[[route]]
name = "contoso-staff"
hosts = ["app.test"]
path_prefix = "/staff"
upstream = "{upstream}"
[route.allow]
email_domains = ["contoso.example"]
"#,
        extra_users: vec![impostor()],
        ..Options::default()
    }
}

#[tokio::test]
async fn two_users_with_one_email_are_two_users_even_in_email_policies() {
    let w = World::start(noauth_world()).await;
    // The IdP itself cannot tell them apart by email: codes are per oid.
    let ambiguous = w
        .browser()
        .login_at(&w.url("/.auth/login/contoso?rd=/page"))
        .await;
    assert!(w.idp.complete_login(&ambiguous, ALICE).is_err());

    let alice = w.signed_in(ALICE_OID).await;
    let impostor = w.signed_in(IMPOSTOR_OID).await;

    let (status, me_alice) = w.me(&alice).await;
    assert_eq!(status, StatusCode::OK);
    let (status, me_impostor) = w.me(&impostor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me_alice["user_id"], ALICE_OID);
    assert_eq!(me_alice["tenant_id"], idp::DEMO_CONTOSO_TENANT);
    assert_eq!(me_alice["email_verified"], true);
    assert_eq!(me_impostor["user_id"], IMPOSTOR_OID);
    assert_eq!(me_impostor["tenant_id"], idp::DEMO_FABRIKAM_TENANT);
    assert_eq!(me_impostor["email"], ALICE, "the same email claim");
    assert_eq!(me_impostor["email_verified"], false, "but not trusted");

    // The app sees two users; only the trusted email is forwarded.
    let at_alice = w.upstream_view(&alice, "/page").await;
    let at_impostor = w.upstream_view(&impostor, "/page").await;
    assert_eq!(
        at_alice.header("x-forwarded-user").as_deref(),
        Some(ALICE_OID)
    );
    assert_eq!(
        at_impostor.header("x-forwarded-user").as_deref(),
        Some(IMPOSTOR_OID)
    );
    assert_eq!(at_alice.header("x-forwarded-email").as_deref(), Some(ALICE));
    assert_eq!(at_impostor.header("x-forwarded-email"), None);
    assert_eq!(
        at_impostor.header("x-forwarded-tenant").as_deref(),
        Some(idp::DEMO_FABRIKAM_TENANT)
    );

    // Policies keyed by email: only the trusted email matches.
    for path in ["/team/x", "/staff/x"] {
        assert_eq!(w.api_get(&alice, path).await.status(), StatusCode::OK);
        let denied = w.api_get(&impostor, path).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = denied.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("verified email"),
            "{path}: the reason is the untrusted email: {body}"
        );
    }

    // Revoking one user id ends that user's sessions only.
    assert_eq!(w.revoke_user(IMPOSTOR_OID).await, 1);
    assert_eq!(w.me(&impostor).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&alice).await.0, StatusCode::OK, "alice stays");
    assert_eq!(w.revoke_user(ALICE_OID).await, 1);
    assert_eq!(w.me(&alice).await.0, StatusCode::UNAUTHORIZED);
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

    let resp = w.api_get(&browser, "/page").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    let header = echoed.header("x-forwarded-groups").expect("groups header");
    let sent: Vec<&str> = header.split(',').map(str::trim).collect();
    assert_eq!(sent.len(), MANY_GROUPS);
    assert!(sent.contains(&many_group_id(0).as_str()));
    assert!(sent.contains(&many_group_id(299).as_str()));

    // Cached with the session: further requests do not call Graph.
    let _ = w.api_get(&browser, "/page").await;
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
async fn overage_without_the_graph_type_cast_keeps_only_the_groups_of_transitive_member_of() {
    // A Graph-compatible service without OData type casts: 404 to
    // `…/transitiveMemberOf/microsoft.graph.group`, every kind of directory
    // object at `…/transitiveMemberOf` (every other group without @odata.type).
    let w = World::start(Options::default()).await;
    w.idp.set_graph_fault(GraphFault::NoTypeCast);
    let browser = w.signed_in(ALICE).await;
    // The 404, then 302 objects in 4 pages of 100: a directory role and an
    // administrative unit on the first page, then the 300 groups.
    assert_eq!(w.idp.graph_calls(), 5);
    let (status, me) = w.me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    let want: Vec<String> = (0..MANY_GROUPS).map(many_group_id).collect();
    assert_eq!(
        groups_of(&me),
        want,
        "every group of every page, in order, without the role and the unit"
    );
    // The 404 is a failed Graph call; the pages that followed are not.
    let metrics = w.metrics().await;
    assert!(counts_idp_error(&metrics, "graph"), "{metrics}");
    assert!(
        metrics.contains(
            "realmgate_idp_requests_total{connection=\"contoso\",kind=\"graph\",outcome=\"ok\"} 4"
        ),
        "{metrics}"
    );

    // The app-only fallback (Graph refuses the user's token) falls back
    // the same way: the cast (404), the plain list (403 for the user's
    // token), then for the app-only token the cast (404) and 4 pages.
    w.idp.set_graph_refuses_user_tokens(true);
    let browser = w.signed_in(ALICE).await;
    assert_eq!(w.idp.graph_calls(), 5 + 7);
    assert_eq!(groups_of(&w.me(&browser).await.1), want);
}

#[tokio::test]
async fn overage_fallback_is_bounded_and_other_graph_errors_stay_errors() {
    // Without the type cast, 302 pages of one object: the fallback reads
    // 100 pages, as the cast would, and a truncated list is not used.
    let w = World::start(Options {
        graph_page_size: Some(1),
        ..Options::default()
    })
    .await;
    w.idp.set_graph_fault(GraphFault::NoTypeCast);
    let browser = w.signed_in(ALICE).await;
    assert_eq!(w.idp.graph_calls(), 1 + 100, "the 404, then 100 pages");
    let (_, me) = w.me(&browser).await;
    assert!(groups_of(&me).is_empty(), "a truncated list is not used");

    // Only a 404 to the cast's first page is the missing cast: any other
    // answer, or a 404 to a later page or to the plain list, is the error
    // it was (no groups; no policy here needs them).
    let w = World::start(Options::default()).await;
    for (fault, calls) in [
        (GraphFault::Status(400), 1),
        (GraphFault::Status(401), 1),
        (GraphFault::Status(500), 1),
        (GraphFault::Status(503), 1),
        (GraphFault::Status(404), 2),
        (GraphFault::NotFoundAfterFirstPage, 2),
    ] {
        w.idp.set_graph_fault(fault);
        let before = w.idp.graph_calls();
        let browser = w.signed_in(ALICE).await;
        assert_eq!(w.idp.graph_calls() - before, calls, "{fault:?}");
        let (_, me) = w.me(&browser).await;
        assert!(groups_of(&me).is_empty(), "{fault:?}");
    }
}

#[tokio::test]
async fn graph_down_without_group_policy_signs_in_without_groups() {
    // Reserved and never listened on: refused, and nobody else can take it meanwhile.
    let closed = crate::util::ReservedPort::new();
    let port = closed.port();
    let w = World::start(Options {
        graph_endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    let browser = w.signed_in(ALICE).await;
    let metrics = w.metrics().await;
    assert!(
        counts_idp_error(&metrics, "graph"),
        "the Graph failure is counted:\n{metrics}"
    );
    let (status, me) = w.me(&browser).await;
    assert_eq!(status, StatusCode::OK);
    assert!(groups_of(&me).is_empty());
    let resp = w.api_get(&browser, "/page").await;
    assert_eq!(resp.status(), StatusCode::OK, "no policy needs groups");
    let echoed = Echoed::from(resp).await;
    assert_eq!(echoed.header("x-forwarded-groups"), None);
}

#[tokio::test]
async fn graph_down_with_group_policy_fails_the_login_clearly() {
    // Reserved and never listened on: refused, and nobody else can take it meanwhile.
    let closed = crate::util::ReservedPort::new();
    let port = closed.port();
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
    let resp = w.api_get(&browser, "/page").await;
    assert_eq!(resp.status(), StatusCode::OK);
}

// --- Back-channel logout ---

/// The `sid` of the session `browser` holds, from the ID token the route
/// passes upstream (`pass_id_token = true`).
async fn session_sid(w: &World, browser: &Browser) -> String {
    use base64::Engine as _;
    let resp = w.api_get(browser, "/page").await;
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
    let resp = w.api_get(&first, "/page").await;
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

/// An empty `sid` names no provider session: the logout is by the user,
/// never of the sessions that happen to have no (empty) sid (review 9).
#[tokio::test]
async fn backchannel_logout_with_an_empty_sid_ends_the_user_s_sessions() {
    let w = World::start(backchannel_world()).await;
    let bob = w.signed_in(BOB).await;
    let alice = w.signed_in(ALICE).await;
    let token = w
        .idp
        .mint_logout_token(BOB, idp::DEMO_CLIENT_ID, Some(""))
        .unwrap();
    let (status, body, _) = post_logout_token(&w, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 1, "{body}");
    assert_eq!(w.me(&bob).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&alice).await.0, StatusCode::OK, "other users stay");
}

#[tokio::test]
async fn backchannel_logout_refuses_bad_tokens_with_a_reason() {
    let w = World::start(backchannel_world()).await;
    let bob = w.signed_in(BOB).await;
    let sid = session_sid(&w, &bob).await;
    let mint = |hostile: Option<Hostile>| {
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
            mint(Some(Hostile::BadSignature)),
            "signature",
        ),
        ("nonce present", mint(Some(Hostile::NonceWrong)), "nonce"),
        ("expired", mint(Some(Hostile::Expired)), "exp"),
        ("alg none", mint(Some(Hostile::AlgNone)), "alg"),
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

async fn get_page(w: &World, browser: &Browser) -> StatusCode {
    w.api_get(browser, "/page").await.status()
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
        let b = browser.client.clone();
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
    let resp = w.api_get(&other, "/.auth/refresh").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&other).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forced_refresh_rereads_groups_and_answers_the_new_expiry() {
    let w = World::start(Options::default()).await;
    let stranger = w.browser();
    let resp = w.api_get(&stranger, "/.auth/refresh").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "not signed in");

    let browser = w.signed_in(ALICE).await;
    assert_eq!(w.idp.graph_calls(), 3);
    let tokens_before = w.idp.token_calls();
    let resp = w.api_get(&browser, "/.auth/refresh").await;
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
    w.idp.set_token_endpoint_outage(Outage::Status503);
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
    w.idp.set_token_endpoint_outage(Outage::None);
    let short = w.signed_in(BOB).await;
    w.idp.set_token_endpoint_outage(Outage::Status503);
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
    let verify = |b: &Browser| {
        b.client
            .get(w.url("/.auth/verify"))
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

// --- Extended profile with userinfo (SPEC 5.5) ---

const ERIN: &str = "erin@contoso.example";

/// A contoso user with an extra ID token claim (`jobTitle`), a claim only
/// userinfo serves (`employeeId`), and one both carry (`department`).
fn profiled_user() -> IdpUser {
    let mut erin = crate::signin::demo_user(BOB);
    erin.email = ERIN.into();
    erin.oid = "e2140000-0000-4000-8000-000000000005".into();
    erin.name = "Erin Evans".into();
    erin.extra_claims = Map::from_iter([
        ("jobTitle".to_string(), json!("Engineer")),
        ("department".to_string(), json!("from the ID token")),
    ]);
    erin.userinfo_claims = Map::from_iter([
        ("employeeId".to_string(), json!("E-1005")),
        ("department".to_string(), json!("from userinfo")),
        (
            "tid".to_string(),
            json!("00000000-dead-4bad-8bad-000000000000"),
        ),
    ]);
    erin
}

fn profile_world() -> Options<'static> {
    Options {
        connection_extra: "extended_profile = true".into(),
        route_extra: r#"headers_extra = { "X-Employee-Id" = "claims.employeeId", "X-Job-Title" = "claims.jobTitle" }"#,
        extra_users: vec![profiled_user()],
        ..Options::default()
    }
}

#[tokio::test]
async fn userinfo_claims_join_the_profile_and_the_id_token_wins() {
    let w = World::start(profile_world()).await;
    let erin = w.signed_in(ERIN).await;
    assert_eq!(w.idp.userinfo_calls(), 1);
    let (status, me) = w.me(&erin).await;
    assert_eq!(status, StatusCode::OK);
    let claims = &me["claims"];
    assert_eq!(claims["employeeId"], "E-1005", "from userinfo: {me}");
    assert_eq!(claims["jobTitle"], "Engineer", "from the ID token");
    assert_eq!(
        claims["department"], "from the ID token",
        "on a conflict the ID token wins"
    );
    assert!(
        claims.get("tid").is_none() && claims.get("sub").is_none(),
        "identity claims never come from userinfo: {me}"
    );
    assert_eq!(me["tenant_id"], idp::DEMO_CONTOSO_TENANT);

    let resp = w.api_get(&erin, "/page").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    assert_eq!(echoed.header("x-employee-id").as_deref(), Some("E-1005"));
    assert_eq!(echoed.header("x-job-title").as_deref(), Some("Engineer"));
}

#[tokio::test]
async fn userinfo_about_another_subject_is_discarded() {
    let w = World::start(profile_world()).await;
    w.idp.set_userinfo_fault(UserinfoFault::WrongSub);
    let erin = w.signed_in(ERIN).await;
    assert_eq!(w.idp.userinfo_calls(), 1);
    let (_, me) = w.me(&erin).await;
    assert!(me["claims"].get("employeeId").is_none(), "discarded: {me}");
    assert_eq!(me["claims"]["jobTitle"], "Engineer", "the ID token's stay");
    assert!(counts_idp_error(&w.metrics().await, "userinfo"));
}

#[tokio::test]
async fn a_userinfo_failure_does_not_fail_the_login_and_refresh_reads_it_again() {
    let w = World::start(profile_world()).await;
    w.idp.set_userinfo_fault(UserinfoFault::Status503);
    let erin = w.signed_in(ERIN).await;
    let (status, me) = w.me(&erin).await;
    assert_eq!(status, StatusCode::OK, "signed in all the same");
    assert!(me["claims"].get("employeeId").is_none(), "{me}");
    assert_eq!(me["claims"]["jobTitle"], "Engineer");
    assert!(
        counts_idp_error(&w.metrics().await, "userinfo"),
        "the failure is counted"
    );
    let resp = w.api_get(&erin, "/page").await;
    assert_eq!(Echoed::from(resp).await.header("x-employee-id"), None);

    // The profile is read again at the next refresh.
    w.idp.set_userinfo_fault(UserinfoFault::None);
    let resp = w.api_get(&erin, "/.auth/refresh").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(w.idp.userinfo_calls(), 2);
    let (_, me) = w.me(&erin).await;
    assert_eq!(me["claims"]["employeeId"], "E-1005", "{me}");
}

#[tokio::test]
async fn without_extended_profile_userinfo_is_not_called() {
    let w = World::start(Options {
        extra_users: vec![profiled_user()],
        ..Options::default()
    })
    .await;
    let erin = w.signed_in(ERIN).await;
    let (_, me) = w.me(&erin).await;
    assert!(me.get("claims").is_none(), "{me}");
    assert_eq!(w.idp.userinfo_calls(), 0);
}

// --- An unreachable provider ---

#[tokio::test]
async fn a_stopped_provider_keeps_sessions_with_valid_tokens_and_logins_get_503() {
    let w = World::start(Options::default()).await;
    // Tokens within the refresh margin: every request would like to refresh.
    w.idp.set_access_token_lifetime(30);
    let browser = w.signed_in(BOB).await;
    // A login already at the provider when it stops.
    let late = w.browser();
    let authorize = late.login_at(&w.url("/.auth/login/contoso?rd=/page")).await;
    let back = w.idp.complete_login(&authorize, BOB).unwrap();
    let World {
        idp,
        upstream: _upstream,
        gateway,
        ..
    } = w;
    drop(idp);

    let page = gateway.url(HOST, "/page");
    for _ in 0..3 {
        let resp = browser
            .client
            .get(&page)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the tokens are still valid: the session is served"
        );
    }
    let resp = late.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("cannot be reached") && text.contains("Try again"),
        "the page says what is wrong and what to do: {text}"
    );
    let (status, _) = late.me(&gateway.url(HOST, "/.auth/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no session was made");
}

// === Issue 17: whose identity is it (holes 5, 6, 9; SPEC 6.1) ===

/// A second connection, `partner`: a generic OIDC provider (the mock's
/// fabrikam tenant, spoken to as plain OpenID Connect) that vouches for
/// emails; contoso owns contoso.example.
const PARTNER: &str = r#"
[[connection]]
name = "partner"
type = "oidc"
issuer = "{base}/7a9e2d4c-1b3f-4e6a-8c5d-0f1e2d3c4b5a/v2.0"
client_id = "5d1a3c7e-0000-4000-8000-00000000c001"
client_secret = "demo-client-secret-not-for-production"
home_realm_domains = ["fabrikam.example"]
trusted_email = true
"#;
const CAROL: &str = "carol@fabrikam.example";

fn partner_world(route_extra: &'static str, session_extra: &'static str) -> Options<'static> {
    Options {
        route_extra,
        session_extra,
        connection_extra: "home_realm_domains = [\"contoso.example\"]".into(),
        ..Options::default()
    }
}

/// Signs CAROL in through `partner`, the mock's ID token claims edited.
async fn partner_signed_in(w: &World, claims: Vec<(&str, Value)>) -> (Browser, reqwest::Response) {
    let browser = w.browser();
    let authorize = browser
        .login_at(&w.url("/.auth/login/partner?rd=/page"))
        .await;
    w.idp.set_hostile(Some(Hostile::Claims(
        claims
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )));
    let resp = browser.finish_login(&w.idp, &authorize, CAROL).await;
    w.idp.set_hostile(None);
    (browser, resp)
}

/// With two connections, a logout token for another application of the
/// partner's issuer says so ("aud"), not what the other connection found
/// ("iss mismatch", "unknown kid"), which sent operators to the wrong place
/// (review 13, H3).
#[tokio::test]
async fn a_logout_token_for_another_application_names_the_audience_among_several_connections() {
    let w = World::start(partner_world(PARTNER, "")).await;
    let token = w
        .idp
        .mint_logout_token(CAROL, "00000000-0000-4000-8000-0000000000ff", None)
        .unwrap();
    let (status, body, _) = post_logout_token(&w, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let described = body["error_description"].as_str().unwrap_or_default();
    assert!(described.contains("aud"), "{described}");
}

/// Review 13's swap from a sibling route host that shares the session
/// (`cookie_domain`) and allows only the partner: the browser's session is
/// of a connection that host's route does not allow, and a cross-site
/// start (`/.auth/login/partner`, or `/.auth/login` where the partner is
/// the route's only connection) went straight to the partner IdP, whose
/// answer replaced the shared session on every host (review 14).
#[tokio::test]
async fn a_sign_in_another_site_starts_on_a_sibling_host_does_not_swap_the_shared_session() {
    let partners = Box::leak(
        format!(
            "{}\n[[route]]\nname = \"partners\"\nhosts = [\"partners.app.test\"]\nupstream = \"{{upstream}}\"\nconnections = [\"partner\"]\n",
            PARTNER.replace("home_realm_domains = [\"fabrikam.example\"]\n", "")
        )
        .into_boxed_str(),
    );
    let w = World::start(partner_world(partners, "cookie_domain = \"app.test\"")).await;
    let alice = w.signed_in(ALICE).await;
    for path in ["/.auth/login/partner?rd=/page", "/.auth/login?rd=/page"] {
        let start = w.gateway.url("partners.app.test", path);
        let get = |site: &'static str| {
            alice
                .client
                .get(&start)
                .header(ACCEPT, "text/html")
                .header("sec-fetch-site", site)
                .send()
        };
        let resp = get("cross-site").await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{path}: the signed-in page, no redirect"
        );
        assert_eq!(w.me(&alice).await.1["connection"], "contoso", "{path}");
        // This site's own link still starts it.
        assert_eq!(
            get("same-origin").await.unwrap().status(),
            StatusCode::FOUND,
            "{path}"
        );
    }
    let authorize = location(
        &alice
            .client
            .get(
                w.gateway
                    .url("partners.app.test", "/.auth/login/partner?rd=/page"),
            )
            .header(ACCEPT, "text/html")
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap(),
    );
    let resp = alice.finish_login(&w.idp, &authorize, CAROL).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        w.me(&alice).await.1["connection"],
        "partner",
        "the session is shared"
    );
}

/// A user id no header can carry (a control character in the partner's
/// `sub`) is no user id: the sign-in is refused. It was signed in, and its
/// requests reached the app with no user header at all (review 13, H3).
#[tokio::test]
async fn a_sub_with_a_control_character_is_refused_at_sign_in() {
    let w = World::start(partner_world(PARTNER, "")).await;
    for sub in ["a\nb", "carol\u{0}", "x\u{85}y", "\u{7f}"] {
        let (browser, resp) = partner_signed_in(&w, vec![("sub", json!(sub))]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{sub:?}");
        assert_eq!(w.me(&browser).await.0, StatusCode::UNAUTHORIZED, "{sub:?}");
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn a_partner_whose_sub_is_a_contoso_oid_is_another_user() {
    let w = World::start(partner_world(PARTNER, "")).await;
    let alice = w.signed_in(ALICE).await;
    let alice_view = w.upstream_view(&alice, "/page").await;
    assert_eq!(
        alice_view.header("x-forwarded-user").as_deref(),
        Some(ALICE_OID)
    );

    let (mallory, resp) = partner_signed_in(&w, vec![("sub", json!(ALICE_OID))]).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "partner sign-in");
    let view = w.upstream_view(&mallory, "/page").await;
    let partner_id = format!("partner:{ALICE_OID}");
    assert_eq!(
        view.header("x-forwarded-user").as_deref(),
        Some(partner_id.as_str())
    );
    let (status, me) = w.me(&mallory).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user_id"], partner_id);
    assert_eq!(me["connection"], "partner");

    // Revocation by the contoso user's id ends contoso's session only, and
    // the partner's namespaced id revokes the partner's.
    assert_eq!(w.revoke_user(ALICE_OID).await, 1);
    assert_eq!(w.me(&alice).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(w.me(&mallory).await.0, StatusCode::OK);
    assert_eq!(w.revoke_user(&partner_id).await, 1);
    assert_eq!(w.me(&mallory).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_partner_vouching_for_a_contoso_email_is_refused_by_email_domains() {
    let w = World::start(partner_world(
        concat!(
            "[route.allow]\nemail_domains = [\"contoso.example\"]\n",
            r#"
[[connection]]
name = "partner"
type = "oidc"
issuer = "{base}/7a9e2d4c-1b3f-4e6a-8c5d-0f1e2d3c4b5a/v2.0"
client_id = "5d1a3c7e-0000-4000-8000-00000000c001"
client_secret = "demo-client-secret-not-for-production"
home_realm_domains = ["fabrikam.example"]
trusted_email = true
"#
        ),
        "",
    ))
    .await;
    // Contoso's own user passes (the rule is not vacuous).
    let alice = w.signed_in(ALICE).await;
    assert_eq!(w.api_get(&alice, "/page").await.status(), StatusCode::OK);
    for email in [
        "ceo@contoso.example",
        "CEO@Contoso.Example",
        "mallory@evil.example@contoso.example",
        "mallory@contoso.example.",
        "\"mallory@contoso.example \"",
    ] {
        let (browser, resp) = partner_signed_in(
            &w,
            vec![("email", json!(email)), ("email_verified", json!(true))],
        )
        .await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "{email}: sign-in itself works"
        );
        let resp = w.api_get(&browser, "/page").await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{email}");
    }
    // Nor may a contoso user with a malformed contoso-looking email pass.
    let w2 = &w;
    let browser = w2.browser();
    let authorize = browser
        .login_at(&w2.url("/.auth/login/contoso?rd=/page"))
        .await;
    w2.idp.set_hostile(Some(Hostile::Claims(vec![(
        "email".into(),
        json!("bob@fabrikam.example@contoso.example"),
    )])));
    let resp = browser.finish_login(&w2.idp, &authorize, BOB).await;
    w2.idp.set_hostile(None);
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        w2.api_get(&browser, "/page").await.status(),
        StatusCode::FORBIDDEN
    );
}

/// A partner vouching for an email of a domain contoso owns: policies
/// refuse it (above), and neither the headers nor `/.auth/me` present it
/// as verified, where an app would take it for contoso's user (review 9).
/// The partner's own domain's email is shown as usual.
#[tokio::test]
async fn a_partner_vouching_for_a_contoso_email_gets_no_email_header() {
    let w = World::start(partner_world(PARTNER, "")).await;
    let (mallory, resp) = partner_signed_in(
        &w,
        vec![
            ("email", json!("ceo@contoso.example")),
            ("email_verified", json!(true)),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let view = w.upstream_view(&mallory, "/page").await;
    assert_eq!(
        view.header("x-forwarded-email"),
        None,
        "not contoso's to vouch for"
    );
    let (_, me) = w.me(&mallory).await;
    assert_eq!(me["email_verified"], false, "{me}");
    let (carol, _) = partner_signed_in(&w, vec![("email_verified", json!(true))]).await;
    let view = w.upstream_view(&carol, "/page").await;
    assert_eq!(view.header("x-forwarded-email").as_deref(), Some(CAROL));
    let alice = w.signed_in(ALICE).await;
    let view = w.upstream_view(&alice, "/page").await;
    assert_eq!(view.header("x-forwarded-email").as_deref(), Some(ALICE));
}

#[tokio::test]
async fn a_partner_username_in_a_contoso_domain_is_not_forwarded() {
    // X-MS-CLIENT-PRINCIPAL-NAME and the username headers are what apps show
    // and key on: a partner's provider must not mint contoso's there.
    let w = World::start(partner_world(PARTNER, "")).await;
    for name in [
        "ceo@contoso.example",
        "CEO@Contoso.Example.",
        "contoso.example\\ceo",
    ] {
        let (mallory, resp) =
            partner_signed_in(&w, vec![("preferred_username", json!(name))]).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let view = w.upstream_view(&mallory, "/page").await;
        assert_eq!(
            view.header("x-forwarded-preferred-username"),
            None,
            "{name}"
        );
        let (_, me) = w.me(&mallory).await;
        assert_eq!(
            me["preferred_username"],
            serde_json::Value::Null,
            "{name}: {me}"
        );
    }
    let (carol, _) = partner_signed_in(
        &w,
        vec![("preferred_username", json!("carol@fabrikam.example"))],
    )
    .await;
    let view = w.upstream_view(&carol, "/page").await;
    assert_eq!(
        view.header("x-forwarded-preferred-username").as_deref(),
        Some("carol@fabrikam.example")
    );
    let alice = w.signed_in(ALICE).await;
    let view = w.upstream_view(&alice, "/page").await;
    assert_eq!(
        view.header("x-forwarded-preferred-username").as_deref(),
        Some(ALICE)
    );
}

async fn partner_logout_cannot_end_contoso_sessions(session_extra: &'static str) {
    let w = World::start(partner_world(
        concat!(
            "pass_id_token = true\n",
            r#"
[[connection]]
name = "partner"
type = "oidc"
issuer = "{base}/7a9e2d4c-1b3f-4e6a-8c5d-0f1e2d3c4b5a/v2.0"
client_id = "5d1a3c7e-0000-4000-8000-00000000c001"
client_secret = "demo-client-secret-not-for-production"
home_realm_domains = ["fabrikam.example"]
trusted_email = true
"#
        ),
        session_extra,
    ))
    .await;
    let alice = w.signed_in(ALICE).await;
    let alice_sid = session_sid(&w, &alice).await;
    // A partner user whose sub is alice's oid, with a session of its own.
    let (mallory, _) = partner_signed_in(&w, vec![("sub", json!(ALICE_OID))]).await;
    let partner_sid = session_sid(&w, &mallory).await;

    // Valid partner logout tokens naming contoso's sid, or alice's oid as sub.
    for (sid, sub) in [(Some(alice_sid.as_str()), None), (None, Some(ALICE_OID))] {
        let token = w
            .idp
            .mint_logout_token_edited(CAROL, idp::DEMO_CLIENT_ID, sid, |c| {
                if let Some(sub) = sub {
                    c.insert("sub".into(), json!(sub));
                    c.remove("oid");
                }
            })
            .unwrap();
        let (status, body, _) = post_logout_token(&w, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if sid.is_some() {
            assert_eq!(body["sessions_ended"], 0, "{body}");
        }
        assert_eq!(
            w.me(&alice).await.0,
            StatusCode::OK,
            "contoso session survives"
        );
    }
    // The sub-based token was the partner user's own: it ended that one.
    assert_eq!(w.me(&mallory).await.0, StatusCode::UNAUTHORIZED);

    // Contoso's own token still works.
    let token = w
        .idp
        .mint_logout_token(ALICE, idp::DEMO_CLIENT_ID, Some(&alice_sid))
        .unwrap();
    let (status, body, _) = post_logout_token(&w, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 1);
    assert_eq!(w.me(&alice).await.0, StatusCode::UNAUTHORIZED);
    let _ = partner_sid;
}

/// A partner provider's raw group equal to a group id contoso maps in
/// `group_names` is left out wherever groups are shown (headers,
/// `/.auth/me`): byte for byte it is contoso's group to an app keyed on
/// ids. The partner's other groups stay (contoso's users keeping theirs:
/// `headers::identity::tests`).
#[tokio::test]
async fn a_partner_group_equal_to_a_contoso_mapped_id_is_shown_nowhere() {
    let w = World::start(Options {
        route_extra: PARTNER,
        connection_extra: format!(
            "home_realm_domains = [\"contoso.example\"]\ngroup_names = {{ \"{}\" = \"HR Admins\" }}",
            idp::DEMO_HR_GROUP
        ),
        ..Options::default()
    })
    .await;
    let (mallory, resp) = partner_signed_in(
        &w,
        vec![(
            "groups",
            json!([
                idp::DEMO_HR_GROUP,
                idp::DEMO_HR_GROUP.to_ascii_uppercase(),
                "Partners"
            ]),
        )],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND, "partner sign-in");
    let view = w.upstream_view(&mallory, "/page").await;
    assert_eq!(
        view.header("x-forwarded-groups").as_deref(),
        Some("Partners")
    );
    let (status, me) = w.me(&mallory).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["groups"], json!(["Partners"]), "{me}");
}

/// A tenant id is Entra's: a partner provider (any OpenID Connect
/// provider) can put contoso's tenant id in a `tid` claim of its own. It
/// must neither pass `allow.tenants` nor reach the app as the user's
/// tenant (`X-Forwarded-Tenant`, Easy Auth's `tenantid`, `/.auth/me`),
/// where it reads as "a member of contoso's tenant" (SPEC 6.1: what
/// another connection issues never collides with an Entra identity).
#[tokio::test]
async fn a_partner_claiming_the_contoso_tenant_id_is_not_in_that_tenant() {
    let w = World::start(partner_world(
        concat!(
            "[route.allow]\ntenants = [\"3f2b6c1e-8d4a-4f5b-9c7e-1a2b3c4d5e6f\"]\n",
            r#"
[[connection]]
name = "partner"
type = "oidc"
issuer = "{base}/7a9e2d4c-1b3f-4e6a-8c5d-0f1e2d3c4b5a/v2.0"
client_id = "5d1a3c7e-0000-4000-8000-00000000c001"
client_secret = "demo-client-secret-not-for-production"
home_realm_domains = ["fabrikam.example"]
"#
        ),
        "",
    ))
    .await;
    // Contoso's own user passes (the rule is not vacuous) and is shown in
    // its tenant.
    let alice = w.signed_in(ALICE).await;
    let view = w.upstream_view(&alice, "/page").await;
    assert_eq!(
        view.header("x-forwarded-tenant").as_deref(),
        Some(idp::DEMO_CONTOSO_TENANT)
    );
    for tid in [
        idp::DEMO_CONTOSO_TENANT.to_string(),
        idp::DEMO_CONTOSO_TENANT.to_ascii_uppercase(),
    ] {
        let (mallory, resp) = partner_signed_in(&w, vec![("tid", json!(tid))]).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "partner sign-in");
        let resp = w.api_get(&mallory, "/page").await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{tid}");
        let (status, me) = w.me(&mallory).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["connection"], "partner");
        assert_eq!(me["tenant_id"], Value::Null, "{tid}");
    }
}

#[tokio::test]
async fn a_partner_logout_token_ends_no_contoso_session_memory() {
    partner_logout_cannot_end_contoso_sessions("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_logout_token_ends_no_contoso_session_redis() {
    let redis = crate::redis_util::RedisServer::start().await;
    let extra: &'static str =
        Box::leak(format!("store = \"redis\"\nredis_url = \"{}\"", redis.url()).into_boxed_str());
    partner_logout_cannot_end_contoso_sessions(extra).await;
}

#[tokio::test]
async fn a_refresh_that_changes_oid_or_tid_ends_the_session() {
    for (claim, value) in [
        ("oid", json!("0dd00000-0000-4000-8000-0000000000ff")),
        ("tid", json!(idp::DEMO_FABRIKAM_TENANT)),
    ] {
        let w = World::start(Options::default()).await;
        let bob = w.signed_in(BOB).await;
        let resp = w.api_get(&bob, "/.auth/refresh").await;
        assert_eq!(resp.status(), StatusCode::OK, "a plain refresh works");
        w.idp
            .set_hostile(Some(Hostile::Claims(vec![(claim.into(), value)])));
        let resp = w.api_get(&bob, "/.auth/refresh").await;
        w.idp.set_hostile(None);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{claim}");
        assert_eq!(w.me(&bob).await.0, StatusCode::UNAUTHORIZED, "{claim}");
    }
}

/// A sign-in another site starts at a partner connection ends the
/// browser's session when it completes; a partner IdP answering at once
/// for an account of its choosing signed a contoso user out and into that
/// account from one cross-site link (a sign-out started elsewhere asks
/// first). Now such a start, in a browser signed in through another
/// connection, shows who is signed in instead (review 13, H2).
#[tokio::test]
async fn a_sign_in_another_site_starts_does_not_swap_a_signed_in_browser_into_another_connection() {
    let w = World::start(partner_world(PARTNER, "")).await;
    let alice = w.signed_in(ALICE).await;
    let start = w.url("/.auth/login/partner?rd=/page");
    let get = |site: &'static str| {
        alice
            .client
            .get(&start)
            .header(ACCEPT, "text/html")
            .header("sec-fetch-site", site)
            .send()
    };
    // Before: a cross-site link went straight to the partner IdP, whose
    // answer for carol replaced alice's session.
    let resp = get("cross-site").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the signed-in page, no redirect"
    );
    let (status, me) = w.me(&alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["connection"], "contoso");
    // The home realm form posted from another site with a partner email.
    let resp = alice
        .client
        .post(w.url("/.auth/login"))
        .header(ACCEPT, "text/html")
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.test")
        .form(&[("email", "carol@fabrikam.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the signed-in page, no redirect"
    );
    assert_eq!(w.me(&alice).await.1["connection"], "contoso");
    // This site's own link still starts it, and the swap is the user's choice.
    let authorize = location(&get("same-origin").await.unwrap());
    let resp = alice.finish_login(&w.idp, &authorize, CAROL).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(w.me(&alice).await.1["connection"], "partner");
    // A browser not signed in (an IdP portal's tile) starts at once.
    let fresh = w.browser();
    let resp = fresh
        .client
        .get(&start)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
}
