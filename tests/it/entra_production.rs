//! Entra in production (SPEC 5.10, issue 21) against the mock Entra:
//! `auth = "optional"`, app roles in policies and headers, front-channel
//! logout (with a real browser framing it from the IdP's origin), Easy Auth
//! fidelity, and the paths the review found untested (`trusted_email`,
//! `forward_params`, the sign-in page's buttons).

use std::time::Duration;

use base64::Engine as _;
use realmgate::demo::idp::{self, IdpConfig, IdpUser};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use crate::signin::{demo_user, location, Browser, HTML};
use crate::util::{echo_route, entra, Echoed, Table};

const HOST: &str = "app.test";
const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const ROLE_USER: &str = "rita@contoso.example";
const PLAIN_USER: &str = "pat@contoso.example";

enum EntraProduction {}
type World = crate::util::World<EntraProduction>;

/// A contoso user with app roles (`roles` claim).
fn role_user() -> IdpUser {
    let mut u = demo_user(BOB);
    u.email = ROLE_USER.into();
    u.oid = "a0e50000-0000-4000-8000-000000000011".into();
    u.name = "Rita Roles".into();
    u.extra_claims = Map::from_iter([("roles".to_string(), json!(["Reader", "HR.Admin"]))]);
    u
}

/// A contoso user whose email nobody vouches for (no `email_verified`, no
/// `xms_edov`).
fn plain_user() -> IdpUser {
    let mut u = demo_user(BOB);
    u.email = PLAIN_USER.into();
    u.oid = "a0e50000-0000-4000-8000-000000000012".into();
    u.name = "Pat Plain".into();
    u.email_verified = None;
    u.xms_edov = None;
    u
}

impl World {
    /// The IdP (with the two users above), one Entra connection "contoso"
    /// (`connection_extra` added), the route `route` (to the echo upstream).
    async fn with(connection_extra: &str, route: Table) -> World {
        let mut config = IdpConfig::demo_default();
        config.users.extend([role_user(), plain_user()]);
        World::builder()
            .idp(config)
            .connection(entra("contoso", "contoso.example").with(connection_extra))
            .route(route)
            .start()
            .await
    }

    fn at(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    async fn signed_in(&self, user: &str) -> Browser {
        let browser = Browser::new(&self.gateway);
        let authorize = browser
            .login_at(&self.at("/.auth/login/contoso?rd=/page"))
            .await;
        let resp = browser.finish_login(&self.idp, &authorize, user).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{user} signed in");
        assert_eq!(location(&resp), "/page");
        browser
    }

    async fn api_get(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client
            .get(self.at(path))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap()
    }

    async fn me(&self, browser: &Browser) -> (StatusCode, Value) {
        browser.me(&self.at("/.auth/me")).await
    }
}

fn route() -> Table {
    echo_route("app", HOST)
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

// === auth = "optional" ===

#[tokio::test]
async fn an_optional_route_forwards_anonymous_users_without_identity_and_signed_in_ones_with_it() {
    let w = World::with("", route().with(r#"auth = "optional""#)).await;
    let anonymous = Browser::new(&w.gateway);
    // Spoofed identity headers are stripped; no sign-in is asked for.
    let resp = anonymous
        .client
        .get(w.at("/page"))
        .header(ACCEPT, HTML)
        .header("X-Forwarded-User", "admin")
        .header("X-Forwarded-Email", "ceo@contoso.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "anonymous is forwarded");
    let seen = Echoed::from(resp).await;
    assert_eq!(seen.header("x-forwarded-user"), None);
    assert_eq!(seen.header("x-forwarded-email"), None);

    // An invalid or unknown session cookie counts as no session.
    for cookie in [
        "realmgate=garbage",
        "realmgate=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let resp = anonymous
            .client
            .get(w.at("/page"))
            .header(ACCEPT, "application/json")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{cookie}");
        assert_eq!(Echoed::from(resp).await.header("x-forwarded-user"), None);
    }

    // /.auth/login works there as usual; signed in, the identity goes along.
    let alice = w.signed_in(ALICE).await;
    let seen = Echoed::from(w.api_get(&alice.client, "/page").await).await;
    assert_eq!(
        seen.header("x-forwarded-user").as_deref(),
        Some(demo_user(ALICE).oid.as_str())
    );

    // Forward auth: 200 without identity headers for anonymous users.
    let resp = anonymous
        .client
        .get(w.at("/.auth/verify"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-auth-request-user").is_none());
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"anonymous": true})
    );
    let resp = alice
        .client
        .get(w.at("/.auth/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-auth-request-user").is_some());
}

#[tokio::test]
async fn an_invalid_bearer_token_on_an_optional_route_is_still_refused() {
    let w = World::with(
        "",
        route().with(format!(
            "auth = \"optional\"\napi_audiences = [\"{}\"]",
            idp::DEMO_CLIENT_ID
        )),
    )
    .await;
    let client = Browser::new(&w.gateway).client;
    // A tab after the scheme is still a bearer credential (apps split on
    // any whitespace): judged and refused, never forwarded as "another scheme".
    for value in [
        "Bearer not.a.token",
        "Bearer\tnot.a.token",
        "bearer\t not.a.token",
    ] {
        let resp = client
            .get(w.at("/page"))
            .header(AUTHORIZATION, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{value:?}");
        assert!(
            w.upstream.count() == 0,
            "nothing reached the app: {value:?}"
        );
        let resp = client
            .get(w.at("/.auth/verify"))
            .header(AUTHORIZATION, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{value:?}");
    }
    // HTTP/2 keeps a value's leading whitespace, which an HTTP/1.1 upstream
    // would drop: still judged as a bearer credential.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve(HOST, w.gateway.addr)
        .no_proxy()
        .build()
        .unwrap();
    for value in [" Bearer not.a.token", "\tbearer not.a.token"] {
        let resp = h2
            .get(w.at("/page"))
            .header(AUTHORIZATION, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "h2 {value:?}");
    }
    assert!(w.upstream.count() == 0, "nothing reached the app");
}

// === App roles ===

#[tokio::test]
async fn app_roles_decide_access_without_extended_profile_and_reach_me_and_headers() {
    let w = World::with("", route().with("[route.allow]\nroles = [\"HR.Admin\"]")).await;
    let rita = w.signed_in(ROLE_USER).await;
    let (status, me) = w.me(&rita).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["roles"], json!(["Reader", "HR.Admin"]));
    assert!(me.get("claims").is_none(), "no extended profile: {me}");
    let resp = w.api_get(&rita.client, "/page").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = Echoed::from(resp).await;
    assert_eq!(
        seen.header("x-forwarded-roles").as_deref(),
        Some("Reader,HR.Admin")
    );

    // Bob has no app role: 403, and the app saw nothing of him.
    let bob = w.signed_in(BOB).await;
    let before = w.upstream.count();
    let resp = w.api_get(&bob.client, "/page").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.upstream.count(), before);

    // A client cannot bring its own roles header.
    let resp = rita
        .client
        .get(w.at("/page"))
        .header(ACCEPT, "application/json")
        .header("X-Forwarded-Roles", "Owner")
        .send()
        .await
        .unwrap();
    let seen = Echoed::from(resp).await;
    assert_eq!(seen.header_all("x-forwarded-roles"), ["Reader,HR.Admin"]);
}

// === Front-channel logout ===

/// The `sid` and `iss` of the session `browser` holds (from the passed ID token).
async fn sid_and_iss(w: &World, browser: &Browser) -> (String, String) {
    let resp = w.api_get(&browser.client, "/page").await;
    let seen = Echoed::from(resp).await;
    let claims = jwt_claims(
        &seen
            .header("x-forwarded-id-token")
            .expect("ID token passed"),
    );
    (
        claims["sid"].as_str().expect("sid").to_string(),
        claims["iss"].as_str().expect("iss").to_string(),
    )
}

#[tokio::test]
async fn front_channel_logout_ends_the_sessions_of_that_sid_and_may_be_framed_by_the_idp() {
    let w = World::with("", route().with("pass_id_token = true")).await;
    let first = w.signed_in(BOB).await;
    let second = w.signed_in(BOB).await;
    let (sid, _) = sid_and_iss(&w, &first).await;
    // The IdP's iframe: no cookie of ours, a cross-site request.
    let idp_client = reqwest::Client::builder()
        .resolve(HOST, w.gateway.addr)
        .no_proxy()
        .build()
        .unwrap();
    let resp = idp_client
        .get(w.at(&format!("/.auth/logout/frontchannel/contoso?sid={sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let idp_origin = w.idp.base_url().trim_end_matches('/').to_string();
    assert!(
        csp.contains(&format!("frame-ancestors {idp_origin};")),
        "{csp}"
    );
    assert!(resp.headers().get("x-frame-options").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(
        w.me(&first).await.0,
        StatusCode::UNAUTHORIZED,
        "that sid ended"
    );
    assert_eq!(w.me(&second).await.0, StatusCode::OK, "another sid stays");

    // An unknown sid, or none: 200 all the same.
    for q in ["?sid=not-a-known-sid", ""] {
        let resp = idp_client
            .get(w.at(&format!("/.auth/logout/frontchannel/contoso{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{q}");
    }
    assert_eq!(w.me(&second).await.0, StatusCode::OK);
    // An unknown connection is a 404 (a URL registered wrongly).
    let resp = idp_client
        .get(w.at("/.auth/logout/frontchannel/nobody?sid=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_generic_front_channel_form_picks_connections_by_issuer() {
    let w = World::with("", route().with("pass_id_token = true")).await;
    let bob = w.signed_in(BOB).await;
    let (sid, iss) = sid_and_iss(&w, &bob).await;
    let client = Browser::new(&w.gateway).client;
    let get = |q: String| {
        let client = client.clone();
        let url = w.at(&format!("/.auth/logout/frontchannel{q}"));
        async move { client.get(url).send().await.unwrap() }
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    // Another issuer ends nothing, and cannot be framed by anyone.
    let resp = get(format!(
        "?iss={}&sid={sid}",
        enc("https://elsewhere.example/")
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(w.me(&bob).await.0, StatusCode::OK);
    // Without iss: 400 naming the per-connection URL.
    let resp = get(format!("?sid={sid}")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The per-connection URL refuses another connection's iss.
    let resp = client
        .get(w.at(&format!(
            "/.auth/logout/frontchannel/contoso?iss={}&sid={sid}",
            enc("https://elsewhere.example/")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.me(&bob).await.0, StatusCode::OK);
    // The issuer's own: ended.
    let resp = get(format!("?iss={}&sid={sid}", enc(&iss))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(w.me(&bob).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_real_browser_on_the_idps_origin_frames_the_logout_and_the_session_ends() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian chromium is missing: apt-get install chromium (scripts/test.sh does it)"
    );
    // The route host is 127.0.0.1 so that chromium reaches the gateway without DNS.
    let mut config = IdpConfig::demo_default();
    config.users.push(role_user());
    let w: World = World::builder()
        .idp(config)
        .connection(entra("contoso", "contoso.example"))
        .route(echo_route("app", "127.0.0.1").with("pass_id_token = true"))
        .start()
        .await;
    let base = format!("http://127.0.0.1:{}", w.gateway.addr.port());
    let browser = Browser::new(&w.gateway);
    let authorize = browser
        .login_at(&format!("{base}/.auth/login/contoso?rd=/page"))
        .await;
    let resp = browser.finish_login(&w.idp, &authorize, BOB).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let seen = Echoed::from(
        browser
            .client
            .get(format!("{base}/page"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sid = jwt_claims(&seen.header("x-forwarded-id-token").unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let me_url = format!("{base}/.auth/me");
    assert_eq!(browser.me(&me_url).await.0, StatusCode::OK);

    let frame = format!("{base}/.auth/logout/frontchannel/contoso?sid={sid}");
    // A page of another origin may not frame it (the request still ends
    // nothing more than the sid it names; what matters is the rendering).
    let (ok, stdout, stderr) = crate::node::run_script(
        "frontchannel-frame.mjs",
        &[
            "--parent".into(),
            "http://127.0.0.1:2".into(),
            "--frame".into(),
            format!("{base}/.auth/logout/frontchannel/contoso?sid=unknown"),
        ],
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "BLOCKED", "{stderr}");
    assert_eq!(browser.me(&me_url).await.0, StatusCode::OK);

    // Entra's sign-out page on the IdP's origin frames it: rendered, session ended.
    let (ok, stdout, stderr) = crate::node::run_script(
        "frontchannel-frame.mjs",
        &["--parent".into(), w.idp.base_url(), "--frame".into(), frame],
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("RENDERED "), "{stdout}\n{stderr}");
    assert!(stdout.contains("signed out"), "{stdout}");
    assert_eq!(browser.me(&me_url).await.0, StatusCode::UNAUTHORIZED);
}

// === Easy Auth fidelity ===

/// `/.auth/me` in Easy Auth's shape gives the tokens the route passes
/// only to a user the route admits: a script of the app's public pages
/// read the tokens of a signed-in user whom `[route.allow]` (or the
/// route's connections) keeps out, whose tokens the proxy never hands to
/// the app (review 14).
#[tokio::test]
async fn easyauth_me_gives_no_tokens_to_a_user_the_route_does_not_admit() {
    let w = World::with(
        "",
        route().with(
            "headers = \"easyauth\"\npass_access_token = true\npass_id_token = true\npublic = [\"/landing\"]\n[route.allow]\nroles = [\"HR.Admin\"]",
        ),
    )
    .await;
    let pat = w.signed_in(PLAIN_USER).await;
    assert_eq!(
        w.api_get(&pat.client, "/page").await.status(),
        StatusCode::FORBIDDEN,
        "pat is not admitted"
    );
    let (status, me) = w.me(&pat).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me[0]["access_token"], Value::Null, "{me}");
    assert_eq!(me[0]["id_token"], Value::Null, "{me}");
    // An admitted user still gets both.
    let rita = w.signed_in(ROLE_USER).await;
    let (_, me) = w.me(&rita).await;
    assert!(me[0]["access_token"].is_string(), "{me}");
    assert!(me[0]["id_token"].is_string(), "{me}");
}

#[tokio::test]
async fn easyauth_routes_answer_me_in_easy_auths_array_shape() {
    let w = World::with(
        "",
        route().with("headers = \"easyauth\"\npass_id_token = true"),
    )
    .await;
    let rita = w.signed_in(ROLE_USER).await;
    let (status, me) = w.me(&rita).await;
    assert_eq!(status, StatusCode::OK);
    let list = me.as_array().expect("an array");
    assert_eq!(list.len(), 1);
    let entry = list[0].as_object().unwrap();
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_on",
            "id_token",
            "provider_name",
            "user_claims",
            "user_id"
        ]
    );
    assert_eq!(entry["provider_name"], "aad");
    assert_eq!(entry["user_id"], ROLE_USER, "the principal's name");
    assert!(entry["id_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(
        entry["access_token"],
        Value::Null,
        "the route does not pass it"
    );
    let expires = entry["expires_on"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(expires).is_ok(), "{expires}");
    let claims = entry["user_claims"].as_array().unwrap();
    for c in claims {
        let o = c.as_object().unwrap();
        assert_eq!(o.len(), 2, "{c}");
        assert!(o["typ"].is_string() && o["val"].is_string(), "{c}");
    }
    let has = |typ: &str, val: &str| claims.iter().any(|c| c["typ"] == typ && c["val"] == val);
    let rita_user = role_user();
    assert!(has(
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
        &rita_user.oid
    ));
    assert!(has("roles", "HR.Admin") && has("roles", "Reader"));
}

#[tokio::test]
async fn x_ms_client_principal_is_easy_auths_format_field_by_field() {
    let w = World::with("", route().with("headers = \"easyauth\"")).await;
    let rita = w.signed_in(ROLE_USER).await;
    let seen = Echoed::from(w.api_get(&rita.client, "/page").await).await;
    let user = role_user();
    assert_eq!(
        seen.header("x-ms-client-principal-idp").as_deref(),
        Some("aad")
    );
    assert_eq!(
        seen.header("x-ms-client-principal-id").as_deref(),
        Some(user.oid.as_str())
    );
    let raw = seen.header("x-ms-client-principal").expect("principal");
    // Standard base64 (with padding), as App Service sends it.
    let json: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(&raw)
            .unwrap(),
    )
    .unwrap();
    let p = json.as_object().unwrap();
    let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["auth_typ", "claims", "name_typ", "role_typ"]);
    assert_eq!(p["auth_typ"], "aad");
    assert_eq!(
        p["role_typ"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    );
    let name_typ = p["name_typ"].as_str().unwrap();
    let claims = p["claims"].as_array().unwrap();
    for c in claims {
        let o = c.as_object().unwrap();
        let mut k: Vec<&str> = o.keys().map(String::as_str).collect();
        k.sort_unstable();
        assert_eq!(k, ["typ", "val"], "{c}");
        assert!(o["val"].is_string(), "every val is a string: {c}");
    }
    let val = |typ: &str| -> Vec<&str> {
        claims
            .iter()
            .filter(|c| c["typ"] == typ)
            .map(|c| c["val"].as_str().unwrap())
            .collect()
    };
    // name_typ names a claim the principal carries (ClaimsIdentity.Name):
    // the principal's name, as X-MS-CLIENT-PRINCIPAL-NAME; the display
    // name is the `name` claim.
    let principal_name = seen.header("x-ms-client-principal-name").expect("name");
    assert_eq!(val(name_typ), [principal_name.as_str()]);
    assert_eq!(val("name"), [user.name.as_str()]);
    assert_eq!(
        val("http://schemas.microsoft.com/identity/claims/objectidentifier"),
        [user.oid.as_str()]
    );
    assert_eq!(
        val("http://schemas.microsoft.com/identity/claims/tenantid"),
        [idp::DEMO_CONTOSO_TENANT]
    );
    assert_eq!(
        val("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"),
        [ROLE_USER]
    );
    assert_eq!(val("roles"), ["Reader", "HR.Admin"]);
    assert_eq!(val("iss").len(), 1);
    assert_eq!(
        val("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier").len(),
        1
    );
}

// === Untested paths (issue 21 item 7) ===

#[tokio::test]
async fn trusted_email_vouches_for_an_unverified_email_and_me_says_so() {
    let w = World::with("", route()).await;
    let pat = w.signed_in(PLAIN_USER).await;
    let (_, me) = w.me(&pat).await;
    assert_eq!(me["email_verified"], false);
    assert_eq!(me["email_verified_by"], "unverified");
    let seen = Echoed::from(w.api_get(&pat.client, "/page").await).await;
    assert_eq!(seen.header("x-forwarded-email"), None);
    // Bob's tenant vouches for his domain (xms_edov).
    let bob = w.signed_in(BOB).await;
    assert_eq!(
        w.me(&bob).await.1["email_verified_by"],
        "entra_domain_verified"
    );

    let w = World::with("trusted_email = true", route()).await;
    let pat = w.signed_in(PLAIN_USER).await;
    let (_, me) = w.me(&pat).await;
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["email_verified_by"], "trusted_connection");
    let seen = Echoed::from(w.api_get(&pat.client, "/page").await).await;
    assert_eq!(
        seen.header("x-forwarded-email").as_deref(),
        Some(PLAIN_USER)
    );
}

#[tokio::test]
async fn forward_params_pass_only_the_listed_parameters_to_the_idp() {
    let w = World::with(
        r#"forward_params = ["login_hint", "domain_hint", "prompt"]"#,
        route(),
    )
    .await;
    let browser = Browser::new(&w.gateway);
    let authorize = browser
        .login_at(&w.at(
            "/.auth/login/contoso?login_hint=bob%40contoso.example&domain_hint=contoso.example&prompt=login&max_age=0&acr_values=x",
        ))
        .await;
    let q = query_of(&authorize);
    let get = |k: &str| value_of(&q, k);
    assert_eq!(get("login_hint"), Some("bob@contoso.example"));
    assert_eq!(get("domain_hint"), Some("contoso.example"));
    assert_eq!(get("prompt"), Some("login"));
    assert_eq!(get("max_age"), None, "not listed: not passed");
    assert_eq!(get("acr_values"), None);

    // Without forward_params nothing is passed through.
    let w = World::with("", route()).await;
    let browser = Browser::new(&w.gateway);
    let authorize = browser
        .login_at(&w.at("/.auth/login/contoso?login_hint=x%40y.example&prompt=login"))
        .await;
    let url = url::Url::parse(&authorize).unwrap();
    assert!(!url
        .query_pairs()
        .any(|(k, _)| k == "login_hint" || k == "prompt"));
}

/// The query of an absolute URL as pairs.
fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn value_of<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// SPEC 3: `forward_params` "may be passed through /.auth/login?…": when
/// the page is skipped (one connection without home realm domains), and
/// through the page (hidden fields, buttons) into the sign-in at the
/// connection chosen, whose own allow-list decides; the hints realmgate
/// takes from the email typed are never replaced by forwarded ones.
#[tokio::test]
async fn forward_params_pass_through_the_sign_in_page() {
    // The page is skipped: as `/.auth/login/contoso?…` would.
    let w = World::with(
        r#"forward_params = ["login_hint", "domain_hint", "prompt"]"#,
        route(),
    )
    .await;
    let browser = Browser::new(&w.gateway);
    let authorize = browser
        .login_at(
            &w.at("/.auth/login?prompt=login&login_hint=bob%40contoso.example&max_age=0&rd=%2Fx"),
        )
        .await;
    let q = query_of(&authorize);
    assert_eq!(value_of(&q, "prompt"), Some("login"), "{authorize}");
    assert_eq!(value_of(&q, "login_hint"), Some("bob@contoso.example"));
    assert_eq!(value_of(&q, "max_age"), None, "not listed: not passed");

    // The page: contoso and fabrikam by email (fabrikam forwards nothing),
    // guests by its button (prompt only).
    let w: World = World::builder()
        .connection(
            entra("contoso", "contoso.example")
                .home_realm("contoso.example")
                .with(r#"forward_params = ["login_hint", "domain_hint", "prompt"]"#),
        )
        .connection(entra("fabrikam", "fabrikam.example").home_realm("fabrikam.example"))
        .connection(entra("guests", "contoso.example").with(r#"forward_params = ["prompt"]"#))
        .route(route())
        .start()
        .await;
    let browser = Browser::new(&w.gateway);
    let page = browser
        .get(&w.at(
            "/.auth/login?prompt=login&login_hint=x%40y.example&max_age=0&domain_hint=%22%3E%3Cb%3E&rd=%2Fx",
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for field in [
        r#"<input type="hidden" name="prompt" value="login">"#,
        r#"<input type="hidden" name="login_hint" value="x@y.example">"#,
        r#"<input type="hidden" name="domain_hint" value="&quot;&gt;&lt;b&gt;">"#,
    ] {
        assert!(html.contains(field), "{field}: {html}");
    }
    assert!(!html.contains("max_age"), "{html}");
    assert!(!html.contains("\"><b>"), "escaped: {html}");
    // The guests button passes what guests allows.
    let unescaped = html.replace("&#x2f;", "/").replace("&amp;", "&");
    let guests = unescaped
        .split("href=\"")
        .find(|h| h.starts_with("/.auth/login/guests?"))
        .and_then(|h| h.split('"').next())
        .unwrap_or_else(|| panic!("guests button: {html}"));
    assert_eq!(
        guests,
        "/.auth/login/guests?post_login_redirect_uri=%2Fx&prompt=login"
    );

    // The email posted with the page's fields: contoso's allow-list passes
    // `prompt`; the hints are the email's, not the forwarded ones.
    let post = |email: &'static str| {
        browser
            .client
            .post(w.at("/.auth/login"))
            .header(ACCEPT, HTML)
            .form(&[
                ("post_login_redirect_uri", "/x"),
                ("prompt", "login"),
                ("login_hint", "x@y.example"),
                ("domain_hint", "evil.example"),
                ("email", email),
            ])
            .send()
    };
    let resp = post(BOB).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(value_of(&q, "prompt"), Some("login"));
    assert_eq!(value_of(&q, "login_hint"), Some(BOB));
    assert_eq!(value_of(&q, "domain_hint"), Some("contoso.example"));
    // fabrikam allow-lists nothing.
    let resp = post("carol@fabrikam.example").await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(value_of(&q, "prompt"), None);
    assert_eq!(value_of(&q, "login_hint"), Some("carol@fabrikam.example"));
    assert_eq!(value_of(&q, "domain_hint"), Some("fabrikam.example"));

    // An unknown domain keeps them for the next attempt (page and redirect).
    let resp = browser
        .client
        .post(w.at("/.auth/login"))
        .header("sec-fetch-mode", "navigate")
        .form(&[("email", "a@unknown.example"), ("prompt", "login")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        "/.auth/login?post_login_redirect_uri=%2F&prompt=login"
    );
}

/// The connection names whose buttons the sign-in page shows.
fn buttons(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Attribute values are HTML-escaped (`/` as `&#x2f;`).
    let page = page.replace("&#x2f;", "/").replace("&#47;", "/");
    for part in page.split("href=\"/.auth/login/").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[tokio::test]
async fn the_sign_in_page_shows_buttons_for_always_show_button_and_domainless_connections() {
    let w: World = World::builder()
        .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
        .connection(
            entra("fabrikam", "fabrikam.example")
                .home_realm("fabrikam.example")
                .with("always_show_button = true"),
        )
        .connection(entra("guests", "contoso.example"))
        .route(route())
        .start()
        .await;
    let browser = Browser::new(&w.gateway);
    let resp = browser.get(&w.at("/.auth/login")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    let mut shown = buttons(&page);
    shown.sort();
    assert_eq!(
        shown,
        ["fabrikam", "guests"],
        "contoso is reached by email only"
    );
}

#[tokio::test]
async fn one_connection_without_home_realm_domains_skips_the_page_and_one_with_them_does_not() {
    let w: World = World::builder()
        .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
        .connection(entra("guests", "contoso.example"))
        .route(route().with(r#"connections = ["guests"]"#))
        .route(echo_route("hr", "hr.test").with(r#"connections = ["contoso"]"#))
        .start()
        .await;
    let browser = Browser::new(&w.gateway);
    let resp = browser.get(&w.at("/.auth/login?rd=/x")).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "skipped to the one connection"
    );
    // Straight to the provider, with the connection's own redirect URI.
    let to = location(&resp);
    assert!(
        to.contains("redirect_uri=http%3A%2F%2Fapp.test%3A")
            && to.contains("%2F.auth%2Flogin%2Fguests%2Fcallback"),
        "{to}"
    );
    let resp = browser.get(&w.gateway.url("hr.test", "/.auth/login")).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "home realm discovery needs the page"
    );
    assert!(buttons(&resp.text().await.unwrap()).is_empty());
}
