//! Bearer access tokens on routes with `api_audiences` (SPEC 5.9), in the
//! pipeline and on `/.auth/verify`, against the in-process mock Entra: valid
//! v1.0 and v2.0 tokens reach the app with the same identity headers and
//! policy as sessions and create no session; every hostile token is a 401
//! with the reason and never reaches the app.

use realmgate::demo::idp::{self, AccessTokenVersion};
use reqwest::header::{ACCEPT, AUTHORIZATION, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::util::{echo_route, entra, Echoed, Hostile, HostileIdp};

/// Both connections, `api_audiences = ["api://hr"]`, any user.
const API: &str = "api.test";
/// Contoso only, HR Admins only.
const HR_API: &str = "hr-api.test";
/// The multi-tenant connection that allows fabrikam only.
const PARTNER_API: &str = "partner-api.test";
/// `api_audiences` is the app's own client id (the ID token's audience).
const OWN_API: &str = "own-api.test";
/// A browser app without `api_audiences`.
const APP: &str = "app.test";
const HTML: &str = "text/html,application/xhtml+xml";
const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const CAROL: &str = "carol@fabrikam.example";
const ALICE_OID: &str = "a11ce000-0000-4000-8000-000000000001";
const CAROL_OID: &str = "ca201000-0000-4000-8000-000000000003";
/// The calling app (a SPA or daemon) named in `azp`/`appid`.
const CALLER: &str = "0c0ffee0-0000-4000-8000-0000000000c1";

/// This file's world (see `util::world`): both connections, the five routes above.
enum Bearer {}
type World = crate::util::World<Bearer>;

impl World {
    async fn start() -> World {
        World::builder()
            .connection(
                entra("contoso", "contoso.example")
                    .home_realm("contoso.example")
                    .with(format!(
                        r#"group_names = {{ "{}" = "HR Admins" }}"#,
                        idp::DEMO_HR_GROUP
                    )),
            )
            .connection(
                entra("partners", "organizations")
                    .with(format!(
                        r#"allowed_tenants = ["{}"]"#,
                        idp::DEMO_FABRIKAM_TENANT
                    ))
                    .home_realm("fabrikam.example"),
            )
            .route(
                echo_route("api", API)
                    .with(r#"api_audiences = ["api://hr"]"#)
                    .public(&["/public/"]),
            )
            .route(echo_route("hr-api", HR_API).with(
                r#"connections = ["contoso"]
api_audiences = ["api://hr"]
[route.allow]
groups = ["HR Admins"]"#,
            ))
            .route(echo_route("partner-api", PARTNER_API).with(
                r#"connections = ["partners"]
api_audiences = ["api://hr"]"#,
            ))
            .route(echo_route("own-api", OWN_API).with(format!(
                r#"connections = ["contoso"]
api_audiences = ["{}"]"#,
                idp::DEMO_CLIENT_ID
            )))
            .route(echo_route("app", APP))
            .start()
            .await
    }

    fn token(&self, email: &str) -> String {
        self.idp
            .mint_access_token(email, CALLER, "api://hr", "read")
            .expect("mint")
    }

    fn token_as(
        &self,
        version: AccessTokenVersion,
        email: &str,
        edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> String {
        self.idp
            .mint_access_token_as(version, email, CALLER, "api://hr", "read", edit)
            .expect("mint")
    }

    async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.gateway.client().get(self.gateway.url(host, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("gateway answers")
    }

    async fn with_bearer(&self, host: &str, token: &str) -> reqwest::Response {
        let auth = format!("Bearer {token}");
        self.get(host, "/data", &[(AUTHORIZATION.as_str(), auth.as_str())])
            .await
    }

    /// Asserts a 401 `invalid_token` whose reason contains `reason`.
    async fn assert_refused(&self, host: &str, token: &str, reason: &str) {
        let resp = self.with_bearer(host, token).await;
        assert_refused(resp, reason).await;
    }
}

async fn assert_refused(resp: reqwest::Response, reason: &str) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{reason}");
    let challenge = resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        resp.headers().get(SET_COOKIE).is_none(),
        "no cookie on a refusal"
    );
    let body: Value = resp.json().await.expect("401 JSON");
    assert_eq!(body["error"], "invalid_token", "{body}");
    let got = body["reason"].as_str().unwrap_or_default();
    assert!(got.contains(reason), "expected {reason:?}, got {got:?}");
    assert!(
        challenge.contains(&got.replace(['"', '\\'], "")),
        "the challenge carries the reason: {challenge}"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_valid_v2_token_reaches_the_api_with_identity_headers_and_no_session() {
    let w = World::start().await;
    let token = w.token(ALICE);
    let resp = w
        .get(
            API,
            "/data",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-forwarded-user", "mallory"),
                ("x-forwarded-groups", "HR Admins"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get(SET_COOKIE).is_none(),
        "no session cookie for a bearer token"
    );
    let echo = Echoed::from(resp).await;
    assert_eq!(echo.header("x-forwarded-user").as_deref(), Some(ALICE_OID));
    assert_eq!(
        echo.header("x-forwarded-tenant").as_deref(),
        Some(idp::DEMO_CONTOSO_TENANT)
    );
    assert_eq!(
        echo.header("x-forwarded-preferred-username").as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        echo.header("x-forwarded-name").as_deref(),
        Some("Alice Adams")
    );
    let groups = echo.header("x-forwarded-groups").unwrap();
    assert!(groups.contains("HR Admins"), "{groups}");
    // The app's own token goes on to the app (it is the audience).
    assert_eq!(
        echo.header("authorization"),
        Some(format!("Bearer {token}"))
    );
    // No session was made: the same client without the token is not signed in.
    let me = w.get(API, "/.auth/me", &[]).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_v1_token_is_accepted_with_upn_as_the_username() {
    let w = World::start().await;
    let token = w.token_as(AccessTokenVersion::V1, ALICE, |_| {});
    let resp = w.with_bearer(API, &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echo = Echoed::from(resp).await;
    assert_eq!(echo.header("x-forwarded-user").as_deref(), Some(ALICE_OID));
    assert_eq!(
        echo.header("x-forwarded-preferred-username").as_deref(),
        Some(ALICE)
    );
}

#[tokio::test]
async fn the_token_format_must_be_consistent() {
    let w = World::start().await;
    // A v1.0 issuer with ver 2.0, and the reverse: Entra makes neither.
    let v1_says_v2 = w.token_as(AccessTokenVersion::V1, ALICE, |c| {
        c.insert("ver".into(), json!("2.0"));
    });
    w.assert_refused(API, &v1_says_v2, "ver does not match the issuer")
        .await;
    let v2_says_v1 = w.token_as(AccessTokenVersion::V2, ALICE, |c| {
        c.insert("ver".into(), json!("1.0"));
    });
    w.assert_refused(API, &v2_says_v1, "ver does not match the issuer")
        .await;
    // An access token names the calling app (azp in v2.0, appid in v1.0).
    let no_azp = w.token_as(AccessTokenVersion::V2, ALICE, |c| {
        c.remove("azp");
    });
    w.assert_refused(API, &no_azp, "no azp claim").await;
    let no_appid = w.token_as(AccessTokenVersion::V1, ALICE, |c| {
        c.remove("appid");
    });
    w.assert_refused(API, &no_appid, "no appid claim").await;
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn app_only_tokens_with_roles_are_accepted() {
    let w = World::start().await;
    let token = w.token_as(AccessTokenVersion::V2, ALICE, |c| {
        c.remove("scp");
        c.insert("roles".into(), json!(["Reports.Read.All"]));
    });
    let resp = w.with_bearer(API, &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn bearer_callers_get_the_routes_policy() {
    let w = World::start().await;
    let resp = w.with_bearer(HR_API, &w.token(ALICE)).await;
    assert_eq!(resp.status(), StatusCode::OK, "alice is in HR Admins");
    let resp = w.with_bearer(HR_API, &w.token(BOB)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "bob is not");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "groups");
    // Multi-tenant connection: fabrikam is allowed, contoso is not.
    let resp = w.with_bearer(PARTNER_API, &w.token(CAROL)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echo = Echoed::from(resp).await;
    assert_eq!(echo.header("x-forwarded-user").as_deref(), Some(CAROL_OID));
    w.assert_refused(PARTNER_API, &w.token(ALICE), "tenant not allowed")
        .await;
    // A route whose connections cannot have issued the token.
    w.assert_refused(HR_API, &w.token(CAROL), "iss is not an issuer")
        .await;
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_the_reason_and_never_reach_the_app() {
    let w = World::start().await;
    for (mode, reason) in [
        (Hostile::AlgNone, "alg none is never accepted"),
        (Hostile::Hs256WithPublicKey, "HMAC"),
        (Hostile::BadSignature, "signature invalid"),
        (Hostile::Expired, "token expired"),
        (Hostile::WrongIssuer, "iss"),
        (Hostile::UnknownKid, "unknown kid"),
        (Hostile::OidMissing, "oid missing"),
        (
            Hostile::Tid(idp::DEMO_FABRIKAM_TENANT.into()),
            "tenant not allowed",
        ),
    ] {
        w.idp.set_hostile(Some(mode.clone()));
        let token = w.token(ALICE);
        w.idp.set_hostile(None);
        let resp = w.with_bearer(HR_API, &token).await;
        assert_refused(resp, reason).await;
    }
    // Another API's token.
    let payroll = w
        .idp
        .mint_access_token(ALICE, CALLER, "api://payroll", "read")
        .unwrap();
    w.assert_refused(API, &payroll, "aud mismatch").await;
    // Not valid yet (beyond the leeway), and long expired.
    let later = w.token_as(AccessTokenVersion::V2, ALICE, |c| {
        c.insert("nbf".into(), json!(now() + 600));
    });
    w.assert_refused(API, &later, "nbf").await;
    let old = w.token_as(AccessTokenVersion::V1, ALICE, |c| {
        c.insert("exp".into(), json!(now() - 120));
    });
    w.assert_refused(API, &old, "token expired").await;
    // Garbage of several shapes.
    for (garbage, reason) in [
        ("not-a-jwt", "not a JWT"),
        ("a.b.c", "header is not"),
        ("e30.e30.", "header has no alg"),
        ("tok@en", "malformed bearer token"),
        ("two words", "malformed bearer token"),
    ] {
        w.assert_refused(API, garbage, reason).await;
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn an_id_token_is_not_a_bearer_token_even_for_its_own_audience() {
    let w = World::start().await;
    let id_token = w
        .idp
        .mint_id_token(ALICE, idp::DEMO_CLIENT_ID, None)
        .unwrap();
    // Its audience is the client id: on an api://hr route, simply the wrong audience.
    w.assert_refused(API, &id_token, "aud mismatch").await;
    // On a route whose API *is* the client id, it is still not an access token.
    w.assert_refused(OWN_API, &id_token, "not an access token")
        .await;
    // With app roles (Entra puts them in ID tokens too) it still lacks azp.
    let with_roles = w
        .idp
        .mint_access_token_as(
            AccessTokenVersion::V2,
            ALICE,
            CALLER,
            idp::DEMO_CLIENT_ID,
            "read",
            |c| {
                c.remove("scp");
                c.remove("azp");
                c.insert("roles".into(), json!(["Admin"]));
            },
        )
        .unwrap();
    w.assert_refused(OWN_API, &with_roles, "not an access token")
        .await;
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let w = World::start().await;
    let good = format!("Bearer {}", w.token(ALICE));
    let resp = w
        .gateway
        .client()
        .get(w.gateway.url(API, "/data"))
        .header(AUTHORIZATION, good.as_str())
        .header(AUTHORIZATION, "Bearer forged.forged.forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_request\""));
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn without_a_token_browsers_still_go_to_sign_in_and_others_get_401() {
    let w = World::start().await;
    let resp = w.get(API, "/data", &[("accept", HTML)]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(resp.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/.auth/login"));
    let resp = w.get(API, "/data", &[("accept", "application/json")]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer");
    // A browser that does send a bad token is told so, not redirected.
    let resp = w
        .get(
            API,
            "/data",
            &[(ACCEPT.as_str(), HTML), ("authorization", "Bearer x.y.z")],
        )
        .await;
    assert_refused(resp, "header is not").await;
    // Another scheme is the app's business: not a bearer token, not signed in.
    let resp = w
        .get(
            API,
            "/data",
            &[
                ("accept", "application/json"),
                ("authorization", "Basic YTpi"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer");
    // Public paths need nothing, whatever the token.
    let resp = w
        .get(API, "/public/x", &[("authorization", "Bearer x.y.z")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        w.upstream.count(),
        1,
        "only the public path reached the app"
    );
}

#[tokio::test]
async fn routes_without_api_audiences_do_not_accept_bearer_tokens() {
    let w = World::start().await;
    let resp = w
        .get(
            APP,
            "/data",
            &[
                ("accept", "application/json"),
                ("authorization", &format!("Bearer {}", w.token(ALICE))),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[WWW_AUTHENTICATE], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn forward_auth_accepts_bearer_tokens_on_api_routes() {
    let w = World::start().await;
    let good = format!("Bearer {}", w.token(ALICE));
    let resp = w
        .get(API, "/.auth/verify", &[("authorization", good.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["x-auth-request-user"].to_str().unwrap(),
        ALICE_OID
    );
    assert!(resp.headers().get(SET_COOKIE).is_none());
    // The route's policy applies.
    let bob = format!("Bearer {}", w.token(BOB));
    let resp = w
        .get(HR_API, "/.auth/verify", &[("authorization", bob.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Invalid: 401 with the reason, even with a browser's Accept and X-Forwarded-Uri.
    let payroll = w
        .idp
        .mint_access_token(ALICE, CALLER, "api://payroll", "read")
        .unwrap();
    let bad = format!("Bearer {payroll}");
    let resp = w
        .get(
            API,
            "/.auth/verify",
            &[
                ("authorization", bad.as_str()),
                ("accept", HTML),
                ("x-forwarded-uri", "/data"),
            ],
        )
        .await;
    assert_refused(resp, "aud mismatch").await;
    w.upstream.assert_received_nothing().await;
}

/// nginx `auth_request` for an API location (no `error_page`, so 401/403
/// reach the client), with `Authorization` passed to the subrequest as nginx
/// does by default.
fn nginx_api_conf(
    dir: &std::path::Path,
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

        location = /.auth/verify {{
            internal;
            proxy_pass http://{gateway};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Forwarded-Uri "";
            proxy_set_header X-Forwarded-Host "";
            proxy_set_header X-Original-URL "";
        }}

        location /api/ {{
            auth_request /.auth/verify;
            auth_request_set $user $upstream_http_x_auth_request_user;
            proxy_set_header X-Auth-Request-User $user;
            proxy_pass http://{upstream};
        }}
    }}
"#
        ),
    )
}

#[tokio::test]
async fn nginx_auth_request_passes_bearer_tokens_and_their_refusals() {
    use crate::forward_auth::Proxy;
    let w = World::start().await;
    let nginx =
        Proxy::nginx(|dir, listen| nginx_api_conf(dir, listen, w.gateway.addr, w.upstream.addr));
    let client = nginx.client(HR_API);

    // A valid token of an HR admin: the app gets her id from the verify answer.
    let resp = client
        .get(nginx.url(HR_API, "/api/reports"))
        .header(AUTHORIZATION, format!("Bearer {}", w.token(ALICE)))
        .header("x-auth-request-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", nginx.logs());
    let echo = Echoed::from(resp).await;
    assert_eq!(
        echo.header("x-auth-request-user").as_deref(),
        Some(ALICE_OID)
    );
    assert_eq!(w.upstream.count(), 1);

    // Not an HR admin: 403.
    let resp = client
        .get(nginx.url(HR_API, "/api/reports"))
        .header(AUTHORIZATION, format!("Bearer {}", w.token(BOB)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Another API's token: 401, and nginx hands on the bearer challenge.
    let payroll = w
        .idp
        .mint_access_token(ALICE, CALLER, "api://payroll", "read")
        .unwrap();
    let resp = client
        .get(nginx.url(HR_API, "/api/reports"))
        .header(AUTHORIZATION, format!("Bearer {payroll}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("aud mismatch"),
        "{challenge}"
    );

    // No token at all: 401.
    let resp = client
        .get(nginx.url(HR_API, "/api/reports"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.upstream.count(),
        1,
        "only the valid token reached the app"
    );
}

/// A WebSocket to api.test's `/ws` through the gateway at `addr` with the
/// bearer `token` (and `cookie`); the handshake must answer 101.
async fn api_websocket(
    addr: std::net::SocketAddr,
    token: &str,
    cookie: Option<&str>,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("ws://{API}:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    let h = request.headers_mut();
    if let Some(cookie) = cookie {
        h.insert("cookie", cookie.parse().unwrap());
    }
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, resp) = tokio::time::timeout(
        crate::util::DEADLINE,
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// How often the gateway checks an open tunnel (`proxy::upgrade::CHECK_EVERY`).
const TUNNEL_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

#[tokio::test]
async fn a_bearer_websocket_tunnel_lives_until_the_token_expires_whatever_cookie_comes_along() {
    let w = World::start().await;
    // A well-formed cookie of a session that does not exist: it did not
    // authorize the tunnel, so it must not end it either.
    let cookies = realmgate::session::cookie::SessionCookies::new(&w.gateway.settings.session);
    let stale = realmgate::session::store::SessionId::generate();
    let cookie = format!("{}={}", cookies.name_for(false), cookies.value(&stale));
    let lifetime = 2 * TUNNEL_CHECK_EVERY.as_secs() + 1;
    let token = w.token_as(AccessTokenVersion::V2, ALICE, |c| {
        c.insert("exp".into(), json!(now() + lifetime));
    });

    let mut ws = api_websocket(w.gateway.addr, &token, Some(&cookie)).await;
    // Past the first liveness check (nothing to wait for but time), the
    // tunnel still carries messages.
    tokio::time::sleep(TUNNEL_CHECK_EVERY + std::time::Duration::from_millis(500)).await;
    crate::util::websocket_echoes(&mut ws, "still here").await;
    // And it ends once the token has expired.
    assert!(
        crate::util::websocket_closes(
            &mut ws,
            std::time::Duration::from_secs(lifetime) + crate::util::DEADLINE
        )
        .await,
        "the tunnel outlived its token"
    );
}

/// Review 11: a reload that takes a token's access away (here the route
/// stops allowing its connection) ends the WebSocket the token opened within
/// the liveness check's period, as it does a session's; a reload that
/// changes nothing for it keeps it.
#[tokio::test]
async fn a_reload_that_takes_access_away_closes_bearer_tunnels() {
    use std::sync::Arc;
    let w = World::start().await;
    // A handler-only gateway on the same configuration: the test builds
    // its reloads' generations (`Gateway::new`, as a SIGHUP does).
    let gw = crate::util::serve_handler_for_tests((*w.gateway.settings).clone()).await;
    let shared = gw.shared.clone().expect("shared state");
    let reload = |edit: &dyn Fn(&mut realmgate::config::Settings)| {
        let mut settings = (*gw.settings).clone();
        edit(&mut settings);
        realmgate::handler::Gateway::new(Arc::new(settings), &shared).expect("generation")
    };
    let mut ws = api_websocket(gw.addr, &w.token(ALICE), None).await;

    // A new generation that still permits alice keeps the tunnel.
    let _same = reload(&|_| {});
    tokio::time::sleep(realmgate::proxy::CHECK_EVERY * 2).await;
    crate::util::websocket_echoes(&mut ws, "still here").await;

    // The route now allows the partner connection only: alice's token
    // would be refused there, so her tunnel ends.
    let _denied = reload(&|s| {
        let api = s.routes.iter_mut().find(|r| r.name == "api").expect("api");
        Arc::make_mut(api).connections = vec!["partners".into()];
    });
    assert!(
        crate::util::websocket_closes(&mut ws, crate::util::DEADLINE).await,
        "the bearer tunnel outlived the reload that denied it"
    );
}

/// Review 11 (helper C): a reload after which the route no longer accepts
/// the token (its `api_audiences` changed) ends the token's tunnel, as a new
/// request with it would be a 401.
#[tokio::test]
async fn a_reload_that_stops_accepting_the_token_closes_its_tunnel() {
    use std::sync::Arc;
    let w = World::start().await;
    let gw = crate::util::serve_handler_for_tests((*w.gateway.settings).clone()).await;
    let shared = gw.shared.clone().expect("shared state");
    let mut ws = api_websocket(gw.addr, &w.token(ALICE), None).await;
    let mut settings = (*gw.settings).clone();
    let api = settings
        .routes
        .iter_mut()
        .find(|r| r.name == "api")
        .expect("api");
    Arc::make_mut(api).api_audiences = vec!["api://some-other-api".into()];
    let _other = realmgate::handler::Gateway::new(Arc::new(settings), &shared).expect("generation");
    assert!(
        crate::util::websocket_closes(&mut ws, crate::util::DEADLINE).await,
        "the bearer tunnel outlived the reload after which its token is refused"
    );
}

/// A bearer token whose `exp` (or `nbf`/`iat`) is beyond any representable
/// time: `1e300` used to saturate to `u64::MAX` and be accepted, and the
/// tunnel deadline computed from it then panicked the connection's task
/// (likewise an integer `exp` of 2^63 or more). Now each is a 401 naming the
/// claim, and the same client connection goes on to be served.
#[tokio::test]
async fn huge_numeric_dates_are_refused_and_the_connection_keeps_serving() {
    let w = World::start().await;
    let mut conn = crate::util::KeepAliveConn::connect(w.gateway.addr).await;
    let request = |token: &str| {
        format!("GET /data HTTP/1.1\r\nHost: {API}\r\nAuthorization: Bearer {token}\r\n\r\n")
            .into_bytes()
    };
    let cases = [
        ("exp", json!(1e300), "exp is out of range"),
        (
            "exp",
            json!(9_223_372_036_854_775_808u64),
            "exp is out of range",
        ),
        ("exp", json!(u64::MAX), "exp is out of range"),
        ("exp", json!(-1), "exp is out of range"),
        ("exp", json!(-0.0), "exp is out of range"),
        ("exp", json!("1e300"), "exp is not a number"),
        (
            "exp",
            json!(now() + 400 * 86_400),
            "exp too far in the future",
        ),
        ("nbf", json!(1e300), "nbf is out of range"),
        (
            "iat",
            json!(9_223_372_036_854_775_808u64),
            "iat is out of range",
        ),
    ];
    let count = cases.len();
    for (claim, value, reason) in cases {
        let token = w.token_as(AccessTokenVersion::V2, ALICE, |c| {
            c.insert(claim.into(), value.clone());
        });
        let (status, body) = conn
            .exchange(&request(&token))
            .await
            .unwrap_or_else(|| panic!("{claim}: {value}: no answer, the connection died"));
        assert_eq!(status, 401, "{claim}: {value}");
        let body: Value = serde_json::from_slice(&body).expect("401 JSON");
        let got = body["reason"].as_str().unwrap_or_default();
        assert!(got.contains(reason), "{claim}: {value}: {got}");
        // The next request on the same connection is served.
        let (status, _) = conn
            .exchange(&request(&w.token(ALICE)))
            .await
            .unwrap_or_else(|| panic!("{claim}: {value}: the connection did not survive"));
        assert_eq!(status, 200, "{claim}: {value}");
    }
    // Only the valid tokens reached the app.
    assert_eq!(w.upstream.count(), count);
}

/// Review 12: a single-tenant connection that also lists another tenant in
/// `allowed_tenants` (which `check` accepts) took that tenant's v1.0 access
/// tokens: their issuer is a `{tenantid}` template filled with the token's
/// own `tid`, and the list was judged instead of the pinned tenant. The
/// other tenant's admin can register an app with the same `api://`
/// identifier URI and mint such tokens, app roles included.
#[tokio::test]
async fn a_single_tenant_connection_refuses_another_listed_tenants_v1_tokens() {
    let w = World::builder()
        .connection(entra("contoso", "contoso.example").with(format!(
            r#"allowed_tenants = ["{}", "{}"]"#,
            idp::DEMO_CONTOSO_TENANT,
            idp::DEMO_FABRIKAM_TENANT
        )))
        .route(echo_route("api", API).with(r#"api_audiences = ["api://hr"]"#))
        .start()
        .await;
    for version in [AccessTokenVersion::V1, AccessTokenVersion::V2] {
        let carol = w.token_as(version, CAROL, |c| {
            c.remove("scp");
            c.insert("roles".into(), json!(["HR.Admin"]));
        });
        let resp = w.with_bearer(API, &carol).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{version:?}");
    }
    w.upstream.assert_received_nothing().await;
    // The connection's own tenant still signs in with either format.
    for version in [AccessTokenVersion::V1, AccessTokenVersion::V2] {
        let alice = w.token_as(version, ALICE, |_| {});
        let resp = w.with_bearer(API, &alice).await;
        assert_eq!(resp.status(), StatusCode::OK, "{version:?}");
    }
}
