//! Sign-in end to end against the in-process mock Entra (tier 1, hermetic):
//! home realm discovery, the code flow with PKCE, the callback by GET and by
//! form_post, sessions, identity headers at the upstream, `/.auth/me`, logout,
//! and the ways a login must fail (hostile tokens, replay, mix-up, outage).

use std::time::Duration;

use realmgate::demo::idp::{self, Idp, IdpConfig};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::signin::{demo_user as user, location, set_cookies, Browser, HTML};
use crate::util::{echo_route, entra, Echoed, Hostile, HostileIdp, Outage, Table, WorldBuilder};

const HOST: &str = "app.test";
const OTHER_HOST: &str = "other.test";

/// The mock IdP, an echo upstream and a gateway with two Entra connections
/// (contoso, fabrikam) in front of it (this file's world, see `util::world`).
enum LoginFlow {}
type World = crate::util::World<LoginFlow>;

/// An Entra connection as this file's routes know them.
fn connection(name: &str, tenant: &str, extra: &str) -> Table {
    entra(name, tenant)
        .with(format!(r#"display_name = "{name} employees""#))
        .home_realm(tenant)
        .with(extra)
}

fn world(contoso_extra: &str, route_extra: &str) -> WorldBuilder {
    World::builder()
        .connection(connection("contoso", "contoso.example", contoso_extra))
        .connection(connection("fabrikam", "fabrikam.example", ""))
        .route(
            echo_route("app", HOST)
                .public(&["/static/"])
                .with(route_extra),
        )
        .route(echo_route("other", OTHER_HOST).with(r#"connections = ["fabrikam"]"#))
}

impl World {
    async fn start() -> World {
        World::start_with("", "").await
    }

    /// `contoso_extra` is added to the contoso connection, `route_extra` to the route.
    async fn start_with(contoso_extra: &str, route_extra: &str) -> World {
        world(contoso_extra, route_extra).start().await
    }

    async fn start_against(idp: Idp, contoso_extra: &str, route_extra: &str) -> World {
        world(contoso_extra, route_extra).start_with_idp(idp).await
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    /// A browser: keeps cookies, follows no redirects.
    fn browser(&self) -> Browser {
        Browser::new(&self.gateway)
    }

    /// Signs `email` in from a fresh browser, landing on `path`; returns the browser.
    async fn signed_in(&self, email: &str, path: &str) -> Browser {
        let browser = self.browser();
        let authorize = browser.start_login(self, email, path).await;
        let resp = browser.finish_login(&self.idp, &authorize, email).await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "callback redirects to the target"
        );
        assert_eq!(location(&resp), path, "lands on the page first asked for");
        browser
    }
}

impl Browser {
    /// Protected page -> login page -> email posted -> the IdP's authorize URL.
    async fn start_login(&self, w: &World, email: &str, path: &str) -> String {
        let resp = self.get(&w.url(path)).await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "browser navigation is redirected to sign in"
        );
        let login = location(&resp);
        assert!(
            login.starts_with("/.auth/login?"),
            "redirect to the login page: {login}"
        );
        let page = self.get(&w.url(&login)).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("name=\"email\""),
            "the login page asks for the email"
        );
        let authorize = self.post_email(&w.url("/.auth/login"), email, path).await;
        assert!(
            authorize.starts_with(&w.idp.base_url()),
            "redirect to the IdP: {authorize}"
        );
        authorize
    }
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn browser_signs_in_by_email_and_the_app_receives_identity_headers() {
    let w = World::start().await;
    let browser = w.browser();
    let authorize = browser
        .start_login(&w, "Alice@Contoso.Example", "/reports/q3?year=2026")
        .await;

    // The authorization request: code flow with PKCE S256, state, nonce, hints.
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(param(&authorize, "code_challenge").is_some_and(|c| c.len() >= 43));
    assert!(param(&authorize, "state").is_some_and(|s| s.len() >= 22));
    assert!(param(&authorize, "nonce").is_some_and(|s| s.len() >= 22));
    assert_eq!(
        param(&authorize, "login_hint").as_deref(),
        Some("Alice@Contoso.Example")
    );
    assert_eq!(
        param(&authorize, "domain_hint").as_deref(),
        Some("contoso.example")
    );
    assert_eq!(
        param(&authorize, "redirect_uri"),
        Some(w.url("/.auth/login/contoso/callback"))
    );

    let resp = browser
        .finish_login(&w.idp, &authorize, "alice@contoso.example")
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/reports/q3?year=2026");
    let cookies = set_cookies(resp.headers());
    let session = cookies
        .iter()
        .find(|c| c.starts_with("realmgate="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(session.contains("Path=/"), "{session}");

    // The app sees who it is, and nothing the browser tried to forge.
    let resp = browser
        .client
        .get(w.url("/reports/q3?year=2026"))
        .header(ACCEPT, HTML)
        .header("X-Forwarded-User", "mallory")
        .header("x_forwarded_groups", "HR Admins")
        .header(
            "Cookie",
            format!("app=kept; {}", browser.cookie_header(&w.url("/"))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    let alice = user("alice@contoso.example");
    assert_eq!(echoed.header("x-forwarded-user"), Some(alice.oid.clone()));
    assert_eq!(
        echoed.header("x-forwarded-tenant"),
        Some(alice.tenant_id.clone())
    );
    assert_eq!(echoed.header("x-forwarded-name"), Some(alice.name.clone()));
    let groups = echoed.header("x-forwarded-groups").unwrap_or_default();
    assert!(groups.contains(idp::DEMO_HR_GROUP), "groups: {groups}");
    assert!(echoed.header_all("x_forwarded_groups").is_empty());
    // realmgate's own cookies never reach the app; the app's own do.
    let cookie = echoed.header_all("cookie").join("; ");
    assert!(
        !cookie.contains("realmgate"),
        "own cookie forwarded: {cookie}"
    );
    assert!(cookie.contains("app=kept"), "app cookie lost: {cookie}");
    assert_eq!(echoed.uri(), "/reports/q3?year=2026");

    // /.auth/me describes the session.
    let me: serde_json::Value = browser
        .client
        .get(w.url("/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], alice.oid.as_str());
    assert_eq!(me["tenant_id"], alice.tenant_id.as_str());
    assert_eq!(me["connection"], "contoso");
    assert!(me["expires_at"].as_u64().is_some());
    assert!(me["groups"].as_array().is_some_and(|g| !g.is_empty()));
}

#[tokio::test]
async fn unknown_domain_shows_the_page_again_with_the_email_kept() {
    let w = World::start().await;
    let browser = w.browser();
    // SPEC 4: the page again, 200, a clear message, the email kept.
    let resp = browser
        .client
        .post(w.url("/.auth/login"))
        .form(&[
            ("email", "someone@unknown.example"),
            ("post_login_redirect_uri", "/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "no flash cookie"
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("someone@unknown.example"), "email kept");
    assert!(html.contains("role=\"alert\""), "message announced");
    assert!(html.contains("value=\"&#x2f;x\""), "target kept: {html}");
    // A browser's own form navigation: POST-redirect-GET (first hour 6),
    // so Back and reload never resubmit; the same page after the GET.
    let resp = browser
        .client
        .post(w.url("/.auth/login"))
        .header("sec-fetch-mode", "navigate")
        .form(&[
            ("email", "someone@unknown.example"),
            ("post_login_redirect_uri", "/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    assert_eq!(to, "/.auth/login?post_login_redirect_uri=%2Fx");
    assert!(!to.contains("someone"), "the email is not put in a URL");
    let page = browser.get(&w.url(&to)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("someone@unknown.example"), "email kept");
    assert!(html.contains("role=\"alert\""), "message announced");
    assert!(html.contains("value=\"&#x2f;x\""), "target kept: {html}");
    // Once: a reload of the page is the plain page.
    let html = browser.get(&w.url(&to)).await.text().await.unwrap();
    assert!(!html.contains("someone@unknown.example") && !html.contains("role=\"alert\""));
    // A subdomain of a home realm domain does not match.
    let resp = w
        .browser()
        .client
        .post(w.url("/.auth/login"))
        .form(&[("email", "a@eu.contoso.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("a@eu.contoso.example"));
    assert_eq!(w.idp.authorize_calls(), 0);
}

/// `POST /.auth/login` takes its target as the GET does, the form's first:
/// form `post_login_redirect_uri`, form `rd`, query
/// `post_login_redirect_uri`, query `rd`; checked like every target.
#[tokio::test]
async fn a_posted_email_keeps_the_target_of_the_form_else_of_the_query() {
    let w = World::start().await;
    for (query, field, want) in [
        ("", Some(("rd", "/form-rd")), "/form-rd"),
        ("?post_login_redirect_uri=%2Fdeep", None, "/deep"),
        ("?rd=%2Fdeep-rd", None, "/deep-rd"),
        ("?post_login_redirect_uri=%2Fq&rd=%2Fr", None, "/q"),
        ("?rd=%2Fq", Some(("post_login_redirect_uri", "/f")), "/f"),
        ("?post_login_redirect_uri=%2Fq", Some(("rd", "/f")), "/f"),
        ("?rd=https%3A%2F%2Fevil.example%2F", None, "/"),
    ] {
        let browser = w.browser();
        let mut form = vec![("email", "alice@contoso.example")];
        form.extend(field);
        let resp = browser
            .client
            .post(w.url(&format!("/.auth/login{query}")))
            .header(ACCEPT, HTML)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{query} {field:?}");
        let authorize = location(&resp);
        let back = browser
            .finish_login(&w.idp, &authorize, "alice@contoso.example")
            .await;
        assert_eq!(back.status(), StatusCode::FOUND);
        assert_eq!(location(&back), want, "{query} {field:?}");
    }
}

/// First hour 6: Back to the IdP after signing in, the account chosen
/// again: the callback's state is spent, but the browser is signed in, so
/// it goes on to its target (no "Sign-in expired"), without a new code
/// exchange; a browser without a session still gets the refusal.
#[tokio::test]
async fn a_spent_callback_sends_a_signed_in_browser_on_to_its_target() {
    let w = World::start().await;
    let browser = w.browser();
    let authorize = browser
        .start_login(&w, "alice@contoso.example", "/reports")
        .await;
    let back = w
        .idp
        .complete_login(&authorize, "alice@contoso.example")
        .unwrap();
    let resp = browser.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/reports");
    let token_calls = w.idp.token_calls();
    // The IdP answers the old authorization request again (Back, then the
    // account picked again): same state, a new code.
    let again = w
        .idp
        .complete_login(&authorize, "alice@contoso.example")
        .unwrap();
    let resp = browser.get(&again.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "not 'Sign-in expired'");
    assert_eq!(location(&resp), "/reports");
    assert_eq!(w.idp.token_calls(), token_calls, "no code exchanged");
    // The very answer that redeemed the state, sent again by the same
    // signed-in browser, is a replay: refused, not sent on.
    let replay = browser.get(&back.url).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "exact replay");
    assert_eq!(w.idp.token_calls(), token_calls, "no code exchanged");
    // Without a session: refused as before.
    let resp = w.browser().get(&again.url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// The spent-state rule sends on only the browser whose sign-in redeemed
/// the state: anyone can redeem a state of their own (with a target of
/// their choosing) and hand its callback URL, with a new answer, to a
/// signed-in victim, whose browser must not follow it.
#[tokio::test]
async fn a_spent_callback_sends_on_only_the_browser_that_redeemed_it() {
    let w = World::start().await;
    let attacker = w.browser();
    let authorize = attacker
        .start_login(&w, "bob@contoso.example", "/chosen-by-bob")
        .await;
    let back = w
        .idp
        .complete_login(&authorize, "bob@contoso.example")
        .unwrap();
    let resp = attacker.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/chosen-by-bob");
    let victim = w.signed_in("alice@contoso.example", "/").await;
    let again = w
        .idp
        .complete_login(&authorize, "bob@contoso.example")
        .unwrap();
    let resp = victim.get(&again.url).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "another browser's spent state is no way to send a signed-in browser anywhere"
    );
    // The browser that redeemed it is still sent on.
    let again = w
        .idp
        .complete_login(&authorize, "bob@contoso.example")
        .unwrap();
    let resp = attacker.get(&again.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/chosen-by-bob");
}

/// First hour 6: `/.auth/login` while signed in says who is signed in and
/// offers to continue or to use another account.
#[tokio::test]
async fn the_login_page_of_a_signed_in_browser_says_who_and_offers_continue_or_switch() {
    let w = World::start().await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let page = browser
        .get(&w.url("/.auth/login?post_login_redirect_uri=/reports"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let alice = user("alice@contoso.example");
    assert!(html.contains("You are signed in"), "{html}");
    assert!(html.contains(&alice.name), "who: {html}");
    assert!(
        html.contains("contoso employees"),
        "through which connection: {html}"
    );
    assert!(
        html.contains("href=\"&#x2f;reports\">Continue</a>"),
        "{html}"
    );
    assert!(html.contains("switch=1"), "{html}");
    assert!(!html.contains("name=\"email\""), "no empty form: {html}");
    // Switching shows the usual page.
    let html = browser
        .get(&w.url("/.auth/login?switch=1&post_login_redirect_uri=%2Freports"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"email\""), "{html}");
    // Not signed in: the usual page.
    let html = w
        .browser()
        .get(&w.url("/.auth/login"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"email\"") && !html.contains("You are signed in"));
}

/// SPEC 6: no email on realmgate's pages. A user without a display name,
/// whose username is an email (Entra's UPN), is not named by it.
#[tokio::test]
async fn the_signed_in_page_never_names_the_user_by_an_email() {
    let mut config = IdpConfig::demo_default();
    let alice = config
        .users
        .iter_mut()
        .find(|u| u.email == "alice@contoso.example")
        .expect("demo user alice");
    alice
        .extra_claims
        .insert("name".into(), serde_json::Value::Null);
    let idp = idp::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let w = World::start_against(idp, "", "").await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let html = browser
        .get(&w.url("/.auth/login"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("You are signed in"), "{html}");
    assert!(html.contains("your account"), "{html}");
    assert!(!html.contains("alice@contoso.example"), "{html}");
}

#[tokio::test]
async fn a_route_only_offers_the_connections_it_allows() {
    let w = World::start().await;
    // `other.test` allows fabrikam only: a contoso email finds no connection there.
    let resp = w
        .browser()
        .client
        .post(w.gateway.url(OTHER_HOST, "/.auth/login"))
        .form(&[("email", "alice@contoso.example")])
        .send()
        .await
        .unwrap();
    // The page again, not a redirect to any IdP.
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("name=\"email\""));
    let resp = w
        .browser()
        .get(&w.gateway.url(OTHER_HOST, "/.auth/login/contoso"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A contoso session is not accepted on the fabrikam-only route.
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let resp = browser.get(&w.gateway.url(OTHER_HOST, "/")).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "signed-in elsewhere is not signed-in here"
    );
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn form_post_callback_signs_in() {
    let w = World::start_with(r#"upstream_params = { response_mode = "form_post" }"#, "").await;
    let browser = w.browser();
    let authorize = browser
        .start_login(&w, "bob@contoso.example", "/after")
        .await;
    assert_eq!(
        param(&authorize, "response_mode").as_deref(),
        Some("form_post")
    );
    let back = w
        .idp
        .complete_login(&authorize, "bob@contoso.example")
        .unwrap();
    assert!(back.form_post);
    let resp = browser
        .client
        .post(&back.redirect_uri)
        .form(&back.form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/after");
    let resp = browser.get(&w.url("/after")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let bob = user("bob@contoso.example");
    assert_eq!(
        Echoed::from(resp).await.header("x-forwarded-user"),
        Some(bob.oid)
    );
}

#[tokio::test]
async fn unauthenticated_api_clients_get_401_json_and_the_app_nothing() {
    let w = World::start().await;
    let client = w.browser().client;
    for (method, accept) in [
        ("GET", "application/json"),
        ("POST", HTML),
        ("DELETE", "*/*"),
    ] {
        let resp = client
            .request(method.parse().unwrap(), w.url("/api/data"))
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {accept}");
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(resp.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    let resp = client
        .get(w.url("/page"))
        .header(ACCEPT, HTML)
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "XHR gets 401, not a redirect"
    );
    w.upstream.assert_received_nothing().await;
    // Public paths pass, without identity headers even when forged.
    let resp = client
        .get(w.url("/static/app.css"))
        .header("Remote-User", "admin")
        .header("OIDC_CLAIM_sub", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    assert!(echoed.header_all("remote-user").is_empty());
    assert!(echoed.header_all("oidc_claim_sub").is_empty());
    assert!(echoed.header_all("oidc-claim-sub").is_empty());
}

#[tokio::test]
async fn hostile_id_tokens_never_make_a_session() {
    let w = World::start().await;
    let modes = [
        Hostile::BadSignature,
        Hostile::AlgNone,
        Hostile::Hs256WithPublicKey,
        Hostile::WrongIssuer,
        Hostile::WrongAudience,
        Hostile::SeveralAudiencesWithoutAzp,
        Hostile::Expired,
        Hostile::IatInFuture,
        Hostile::NonceMissing,
        Hostile::NonceWrong,
        Hostile::UnknownKid,
        Hostile::SubMissing,
        Hostile::OidMissing,
        Hostile::Tid("00000000-0000-0000-0000-00000000beef".into()),
    ];
    for mode in modes {
        w.idp.set_hostile(Some(mode.clone()));
        let browser = w.browser();
        let authorize = browser
            .start_login(&w, "alice@contoso.example", "/secret")
            .await;
        let resp = browser
            .finish_login(&w.idp, &authorize, "alice@contoso.example")
            .await;
        assert!(
            resp.status().is_client_error() || resp.status().is_server_error(),
            "{mode:?}: login must fail, got {}",
            resp.status()
        );
        assert!(
            !set_cookies(resp.headers())
                .iter()
                .any(|c| c.starts_with("realmgate=") && !c.contains("Max-Age=0")),
            "{mode:?}: no session cookie"
        );
        let page = resp.text().await.unwrap();
        assert!(
            !page.contains("eyJ"),
            "{mode:?}: no token in the error page"
        );
        let resp = browser.get(&w.url("/secret")).await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "{mode:?}: still signed out"
        );
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn callbacks_without_this_browsers_state_or_replayed_are_refused() {
    let w = World::start().await;
    let browser = w.browser();
    let authorize = browser.start_login(&w, "alice@contoso.example", "/").await;
    let back = w
        .idp
        .complete_login(&authorize, "alice@contoso.example")
        .unwrap();

    // Login CSRF: the same callback URL in another browser (no state cookie).
    let attacker = w.browser();
    let resp = attacker.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(attacker.get(&w.url("/")).await.status(), StatusCode::FOUND);

    // No state at all, a made-up state.
    let cb = w.url("/.auth/login/contoso/callback");
    assert_eq!(
        browser.get(&format!("{cb}?code=x")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        browser
            .get(&format!("{cb}?code=x&state=nope"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    // Duplicated parameters are ambiguous, not "the first one".
    let state = back.state.clone().unwrap();
    let dup = format!("{cb}?code={}&state={state}&state={state}", back.code);
    assert_eq!(browser.get(&dup).await.status(), StatusCode::BAD_REQUEST);

    // The real browser completes, once.
    let saved_cookies = browser.cookie_header(&w.url("/"));
    let resp = browser.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    // Replaying the callback with the old state cookie: refused, and the code
    // is not sent to the token endpoint again.
    let token_calls = w.idp.token_calls();
    let replay = w
        .browser()
        .client
        .get(&back.url)
        .header("Cookie", saved_cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.idp.token_calls(), token_calls);
}

#[tokio::test]
async fn a_response_delivered_to_another_connections_callback_is_refused() {
    // RFC 9700 mix-up: the login started at contoso; the code arrives at fabrikam's callback.
    let w = World::start().await;
    let browser = w.browser();
    let authorize = browser.start_login(&w, "alice@contoso.example", "/").await;
    let back = w
        .idp
        .complete_login(&authorize, "alice@contoso.example")
        .unwrap();
    let mixed = back.url.replace(
        "/.auth/login/contoso/callback",
        "/.auth/login/fabrikam/callback",
    );
    let resp = browser.get(&mixed).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        w.idp.token_calls(),
        0,
        "the code is never sent to the wrong provider"
    );
}

#[tokio::test]
async fn issuer_in_the_authorization_response_is_checked() {
    // RFC 9207: the IdP sends `iss`; a response carrying another issuer is refused.
    let w = World::start().await;
    w.idp.set_send_iss(true);
    let browser = w.browser();
    let authorize = browser.start_login(&w, "alice@contoso.example", "/").await;
    let back = w
        .idp
        .complete_login(&authorize, "alice@contoso.example")
        .unwrap();
    assert!(back.iss.is_some(), "the mock sends iss");
    let forged = {
        let mut u = url::Url::parse(&back.url).unwrap();
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .into_owned()
            .map(|(k, v)| {
                if k == "iss" {
                    (k, "https://evil.example/v2.0".into())
                } else {
                    (k, v)
                }
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        u.to_string()
    };
    let resp = browser.get(&forged).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.idp.token_calls(), 0);
}

/// `iss` twice in the authorization response is refused, even from a
/// provider that does not announce RFC 9207 (read as absent, it would skip
/// the check: review 9).
#[tokio::test]
async fn a_repeated_issuer_in_the_authorization_response_is_refused() {
    let w = World::start().await;
    let browser = w.browser();
    let authorize = browser.start_login(&w, "alice@contoso.example", "/").await;
    let back = w
        .idp
        .complete_login(&authorize, "alice@contoso.example")
        .unwrap();
    assert!(back.iss.is_none(), "the provider does not send iss");
    let issuer = w.idp.issuer(idp::DEMO_CONTOSO_TENANT);
    let mut twice = url::Url::parse(&back.url).unwrap();
    twice
        .query_pairs_mut()
        .append_pair("iss", &issuer)
        .append_pair("iss", "https://evil.example/v2.0");
    let twice = twice.to_string();
    let resp = browser.get(&twice).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.idp.token_calls(), 0, "no code exchanged");
}

#[tokio::test]
async fn logout_ends_the_session_everywhere_and_at_the_provider() {
    let w = World::start().await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let cookie = browser.cookie_header(&w.url("/"));
    assert!(cookie.contains("realmgate="));
    let resp = browser
        .get(&w.url("/.auth/logout?post_logout_redirect_uri=/bye"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(&resp);
    assert!(
        to.starts_with(&w.idp.base_url()),
        "RP-initiated logout at the IdP: {to}"
    );
    // An Entra session keeps no ID token unless a route passes it (SPEC 7):
    // Entra's logout takes the redirect and the client id without a hint.
    assert!(param(&to, "id_token_hint").is_none(), "{to}");
    assert_eq!(
        param(&to, "client_id").as_deref(),
        Some(idp::DEMO_CLIENT_ID)
    );
    assert_eq!(param(&to, "post_logout_redirect_uri"), Some(w.url("/bye")));
    assert!(set_cookies(resp.headers())
        .iter()
        .any(|c| c.starts_with("realmgate=")));
    // The old cookie, replayed by anyone, is worthless now.
    let resp = w
        .browser()
        .client
        .get(w.url("/"))
        .header(ACCEPT, "application/json")
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // An unsafe logout target becomes `/`.
    let browser = w.signed_in("bob@contoso.example", "/").await;
    let resp = browser
        .get(&w.url("/.auth/logout?post_logout_redirect_uri=https://evil.example/"))
        .await;
    let to = location(&resp);
    assert_eq!(param(&to, "post_logout_redirect_uri"), Some(w.url("/")));
}

#[tokio::test]
async fn an_entra_session_keeps_its_id_token_only_when_a_route_passes_it() {
    // pass_id_token on: the session keeps the ID token, and logout sends it
    // as the hint (the app got it, the provider may use it).
    let w = World::start_with("", "pass_id_token = true").await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let resp = browser.get(&w.url("/.auth/logout")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let hint = param(&location(&resp), "id_token_hint").expect("the kept ID token as the hint");
    assert_eq!(hint.split('.').count(), 3, "a JWT");
}

#[tokio::test]
async fn login_targets_are_only_same_host_paths_or_route_hosts() {
    let w = World::start().await;
    let browser = w.browser();
    for (raw, expected) in [
        ("/ok?x=1", "/ok?x=1"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("https://app.test@evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/%2F%2Fevil.example", "/"),
    ] {
        let resp = browser
            .client
            .post(w.url("/.auth/login"))
            .form(&[
                ("email", "alice@contoso.example"),
                ("post_login_redirect_uri", raw),
            ])
            .send()
            .await
            .unwrap();
        let authorize = location(&resp);
        let resp = browser
            .finish_login(&w.idp, &authorize, "alice@contoso.example")
            .await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let landed = location(&resp);
        if expected == "/" {
            assert!(
                landed == "/" || landed.starts_with("/?"),
                "{raw:?} landed at {landed:?}"
            );
        } else {
            assert_eq!(landed, expected, "{raw:?}");
        }
    }
}

#[tokio::test]
async fn hostile_cookies_mean_signed_out_never_an_error() {
    let w = World::start().await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let good = browser.cookie_header(&w.url("/"));
    let good_value = good
        .split("; ")
        .find_map(|c| c.strip_prefix("realmgate="))
        .unwrap()
        .to_string();
    let mut flipped = good_value.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let huge = "A".repeat(8000);
    // Cookie tossing: another valid session next to this one is ambiguous.
    let other = w.signed_in("bob@contoso.example", "/").await;
    let other_value = other
        .cookie_header(&w.url("/"))
        .split("; ")
        .find_map(|c| c.strip_prefix("realmgate="))
        .unwrap()
        .to_string();
    let cases = [
        format!("realmgate={flipped}"),
        format!("realmgate={good_value}; realmgate={other_value}"),
        format!("realmgate={other_value}; realmgate={good_value}"),
        format!("realmgate={huge}"),
        "realmgate=".to_string(),
        "realmgate=%00%ff".to_string(),
        "realmgate_state=garbage; realmgate=garbage".to_string(),
        format!("realmgate={}", &good_value[..good_value.len() - 2]),
    ];
    for cookie in cases {
        let resp = w
            .browser()
            .client
            .get(w.url("/.auth/me"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "cookie {cookie} ({} bytes)",
            cookie.len()
        );
        let resp = w
            .browser()
            .client
            .get(w.url("/x"))
            .header(ACCEPT, HTML)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "cookie {:.60}", cookie);
    }
    // The real one still works.
    let resp = w
        .browser()
        .client
        .get(w.url("/.auth/me"))
        .header("Cookie", good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn each_login_gets_a_new_session_id() {
    // Session fixation: a cookie held before login is never the one after.
    let w = World::start().await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let first = browser.cookie_header(&w.url("/"));
    let authorize = browser.start_login_again(&w).await;
    let resp = browser
        .finish_login(&w.idp, &authorize, "alice@contoso.example")
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let second = browser.cookie_header(&w.url("/"));
    let sid = |c: &str| {
        c.split("; ")
            .find(|c| c.starts_with("realmgate="))
            .unwrap()
            .to_string()
    };
    assert_ne!(sid(&first), sid(&second));
    // And the first session is gone.
    let resp = w
        .browser()
        .client
        .get(w.url("/.auth/me"))
        .header("Cookie", sid(&first))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

impl Browser {
    async fn start_login_again(&self, w: &World) -> String {
        let resp = self
            .client
            .get(w.url("/.auth/login/contoso"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND);
        location(&resp)
    }
}

#[tokio::test]
async fn pending_logins_are_bounded_per_browser() {
    let w = World::start().await;
    let browser = w.browser();
    for _ in 0..25 {
        browser.start_login_again(&w).await;
    }
    let cookie = browser.cookie_header(&w.url("/"));
    assert!(
        cookie.len() < 4096,
        "state cookies pile up: {} bytes",
        cookie.len()
    );
}

#[tokio::test]
async fn an_unreachable_provider_stops_new_logins_with_503_but_not_existing_sessions() {
    let w = World::start().await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    // A login already on its way when the provider goes down: the code
    // cannot be redeemed, and the page says the provider is unreachable.
    let late = w.browser();
    let authorize = late.start_login(&w, "bob@contoso.example", "/").await;
    let back = w
        .idp
        .complete_login(&authorize, "bob@contoso.example")
        .unwrap();
    w.idp.set_outage(Outage::Close);
    w.idp.set_token_endpoint_outage(Outage::Close);
    let resp = late.get(&back.url).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = resp.text().await.unwrap();
    assert!(page.contains("cannot be reached"), "explains: {page}");
    // The signed-in user keeps working: a session whose tokens are valid
    // does not need the provider (docs/decisions.md, Sessions).
    let resp = browser.get(&w.url("/still-works")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_provider_down_at_startup_gives_503_then_recovers_by_itself() {
    let idp = idp::start(IdpConfig::demo_default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    idp.set_outage(Outage::Status503);
    let w = World::start_against(idp, "", "").await;
    let post = |w: &World| {
        w.browser()
            .client
            .post(w.url("/.auth/login"))
            .header(ACCEPT, HTML)
            .form(&[("email", "carol@fabrikam.example")])
            .send()
    };
    let resp = post(&w).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"),
        "an HTML page: {page}"
    );
    w.idp.set_outage(Outage::None);
    // Bounded: the next attempt fetches discovery again (no negative caching
    // beyond a short back-off).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = post(&w).await.unwrap().status();
        if status == StatusCode::FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "logins did not resume: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_demo_signs_in_a_demo_user_and_shows_the_headers() {
    let demo = realmgate::demo::start(0).await.expect("demo starts");
    let port = demo.gateway.addr.port();
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .resolve("localhost", demo.gateway.addr)
        .no_proxy()
        .build()
        .unwrap();
    let base = format!("http://localhost:{port}");
    let resp = client
        .get(format!("{base}/"))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let resp = client
        .post(format!("{base}/.auth/login"))
        .form(&[
            ("email", "carol@fabrikam.example"),
            ("post_login_redirect_uri", "/"),
        ])
        .send()
        .await
        .unwrap();
    let authorize = location(&resp);
    let back = demo
        .idp
        .complete_login(&authorize, "carol@fabrikam.example")
        .unwrap();
    assert_eq!(
        client.get(&back.url).send().await.unwrap().status(),
        StatusCode::FOUND
    );
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let carol = user("carol@fabrikam.example");
    assert!(
        html.contains(&carol.oid),
        "the demo app shows X-Forwarded-User"
    );
    assert!(html.contains("Partners"), "group names from group_names");
    // First hour 6: /.auth/me names the groups the headers name.
    let me: serde_json::Value = client
        .get(format!("{base}/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = me["group_names"]
        .as_object()
        .expect("group_names in /.auth/me");
    assert!(
        names.values().any(|n| n == "Partners"),
        "the name the header shows: {me}"
    );
    assert!(
        me["groups"].as_array().is_some_and(|g| !g.is_empty()),
        "ids stay: {me}"
    );
}

/// Issue 22 item 9: sign-ins, refused sign-ins (with the reason) and
/// sign-outs are audit events, one JSON line each, in the `[log] audit`
/// file: who (user id), where (route, connection), from where (client
/// address), never a token, cookie or email.
#[tokio::test]
async fn sign_in_refusal_and_sign_out_are_audit_events() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let w: World = world("", "")
        .table(format!("[log]\naudit = {:?}\n", audit.to_str().unwrap()))
        .keep(dir)
        .start()
        .await;
    let browser = w.signed_in("alice@contoso.example", "/").await;
    let cookie = browser.cookie_header(&w.url("/"));
    let resp = w
        .browser()
        .get(&w.url("/.auth/login/contoso/callback?code=x"))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = browser.get(&w.url("/.auth/logout")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);

    let text = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sign_in", "sign_in_failed", "sign_out"], "{text}");
    let user = events[0]["user_id"].as_str().unwrap();
    assert!(!user.is_empty() && !user.contains('@'), "{text}");
    for e in &events {
        assert_eq!(e["schema"], 1);
        assert_eq!(e["route"], "app");
        assert_eq!(e["connection"], "contoso");
        assert_eq!(e["client_address"], "127.0.0.1");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(events[1]["reason"], "no_state");
    assert_eq!(events[2]["user_id"], user);
    let session = cookie
        .split("realmgate=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    for secret in ["@contoso.example", session] {
        assert!(
            !text.contains(secret),
            "{secret} in the audit trail: {text}"
        );
    }
}
