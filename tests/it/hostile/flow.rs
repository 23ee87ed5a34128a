//! Flow integrity: what `login_flow.rs` already pins (callback in a browser
//! without state, made-up or duplicated state, replay with a copied state
//! cookie, response delivered to another connection's callback, a forged
//! `iss`) is not repeated. Added here: a state from another browser that has
//! its own pending login, authorization-code injection into the attacker's
//! own login (PKCE binds the code to the browser that asked for it), a PKCE
//! downgrade asked for in the query, the RFC 9207 mix-up with the issuer of
//! another *configured* connection, provider error responses, and a callback
//! whose code and state arrive by query and form at once.

use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use super::{location, param, session_cookie, with_query, World, ALICE, BOB, HTML};

/// The callback answered without a session, and the user is still signed out.
async fn assert_no_login(w: &World, browser: &super::Browser, resp: reqwest::Response, what: &str) {
    let status = resp.status();
    assert!(
        status.is_client_error(),
        "{what}: expected a 4xx, got {status}"
    );
    assert!(
        session_cookie(resp.headers()).is_none(),
        "{what}: session set"
    );
    let page = resp.text().await.unwrap();
    assert!(!page.contains("eyJ"), "{what}: a token in the page");
    let me = browser.get(&w.url("/.auth/me")).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "{what}: signed in");
}

#[tokio::test]
async fn a_state_from_another_browser_with_its_own_pending_login_is_refused() {
    let w = World::start().await;
    let victim = w.browser();
    let attacker = w.browser();
    let victim_authorize = victim.authorize_url(&w, "contoso").await;
    let attacker_authorize = attacker.authorize_url(&w, "contoso").await;
    let victim_back = w.idp.complete_login(&victim_authorize, ALICE).unwrap();
    // The attacker's browser has a valid state cookie, just not for this state.
    let calls = w.idp.token_calls();
    let resp = attacker.get(&victim_back.url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_no_login(&w, &attacker, resp, "foreign state").await;
    assert_eq!(w.idp.token_calls(), calls, "the code was not redeemed");
    // Both real logins still complete in their own browsers.
    let resp = victim.get(&victim_back.url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let attacker_back = w.idp.complete_login(&attacker_authorize, BOB).unwrap();
    assert_eq!(
        attacker.get(&attacker_back.url).await.status(),
        StatusCode::FOUND
    );
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn a_stolen_code_injected_into_the_attackers_own_login_does_not_sign_in() {
    // Code injection (RFC 9700 4.5): the attacker has the victim's code and
    // pastes it into a callback of a login the attacker started (valid state
    // and cookie). The gateway sends the attacker's PKCE verifier; the code
    // was issued for the victim's challenge, so the provider refuses it, and
    // the victim's nonce would not match either.
    let w = World::start().await;
    let victim = w.browser();
    let victim_back = w
        .idp
        .complete_login(&victim.authorize_url(&w, "contoso").await, ALICE)
        .unwrap();
    let attacker = w.browser();
    let attacker_authorize = attacker.authorize_url(&w, "contoso").await;
    let attacker_state = param(&attacker_authorize, "state").unwrap();
    let injected = w.url(&format!(
        "/.auth/login/contoso/callback?code={}&state={}",
        victim_back.code, attacker_state
    ));
    let resp = attacker.get(&injected).await;
    assert_no_login(&w, &attacker, resp, "injected code").await;
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn pkce_cannot_be_downgraded_from_the_login_url() {
    let w = World::start().await;
    let browser = w.browser();
    let resp = browser
        .client
        .get(with_query(
            w.url("/.auth/login/contoso"),
            &[
                ("code_challenge_method", "plain"),
                ("code_challenge", "attacker-chosen"),
                ("state", "attacker-state"),
                ("nonce", "attacker-nonce"),
                ("redirect_uri", "https://evil.example/cb"),
                ("response_type", "token"),
                ("client_id", "someone-else"),
            ],
        ))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let authorize = location(&resp);
    let pairs: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let all = |k: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(all("code_challenge_method"), ["S256"]);
    let challenge = all("code_challenge");
    assert_eq!(challenge.len(), 1);
    assert_eq!(challenge[0].len(), 43, "a SHA-256 challenge");
    assert_ne!(all("state"), ["attacker-state"]);
    assert_ne!(all("nonce"), ["attacker-nonce"]);
    assert_eq!(all("response_type"), ["code"]);
    assert_eq!(all("client_id"), [realmgate::demo::idp::DEMO_CLIENT_ID]);
    assert_eq!(
        all("redirect_uri"),
        [w.url("/.auth/login/contoso/callback")]
    );
    // And the login it started works normally.
    let back = w.idp.complete_login(&authorize, ALICE).unwrap();
    assert_eq!(browser.get(&back.url).await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_response_carrying_another_configured_connections_issuer_is_refused() {
    // RFC 9207 mix-up: both connections are real and configured; the login
    // started at contoso but the response says it came from fabrikam's issuer.
    let w = World::start_full("", "", |idp| idp.set_send_iss(true)).await;
    let browser = w.browser();
    let back = w
        .idp
        .complete_login(&browser.authorize_url(&w, "contoso").await, ALICE)
        .unwrap();
    let contoso_iss = back.iss.clone().expect("the mock sends iss");
    let fabrikam_iss = w.idp.issuer(realmgate::demo::idp::DEMO_FABRIKAM_TENANT);
    assert_ne!(contoso_iss, fabrikam_iss);
    let mut u = url::Url::parse(&back.url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "iss" {
                (k, fabrikam_iss.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    let calls = w.idp.token_calls();
    let resp = browser.get(u.as_str()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(w.idp.token_calls(), calls, "the code never left");
    // Without iss while discovery says the provider always sends it: a
    // response stripped of it is a downgrade, refused too.
    let mut stripped = url::Url::parse(&back.url).unwrap();
    let pairs: Vec<(String, String)> = stripped
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .collect();
    stripped.query_pairs_mut().clear().extend_pairs(pairs);
    let resp = browser.get(stripped.as_str()).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "iss removed from the response"
    );
    assert_eq!(w.idp.token_calls(), calls);
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn provider_errors_and_malformed_callbacks_are_clear_4xx_without_a_session() {
    let w = World::start().await;
    let browser = w.browser();
    let authorize = browser.authorize_url(&w, "contoso").await;
    let state = param(&authorize, "state").unwrap();
    let cb = w.url("/.auth/login/contoso/callback");
    let cases = [
        format!("{cb}?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state={state}"),
        format!("{cb}?error=access_denied"),
        format!("{cb}?state={state}"),
        format!("{cb}?code=&state={state}"),
        format!("{cb}?code={}&state={state}", "A".repeat(20_000)),
        format!("{cb}?code=x&state={}", "S".repeat(20_000)),
        format!("{cb}?code=%00%ff&state=%00"),
        format!("{cb}?%zz=%zz&code=x&state={state}"),
        format!("{cb}?code=x&code=y&state={state}"),
        format!("{cb}?code=x&state={state}&iss="),
        format!("{cb}?code=x&state={state}&response=eyJhbGciOiJub25lIn0.e30."),
        format!("{cb}?id_token=eyJhbGciOiJub25lIn0.e30.&state={state}"),
        w.url("/.auth/login/nosuch/callback?code=x&state=y"),
        w.url("/.auth/login/contoso/callback/extra?code=x&state=y"),
        w.url("/.auth/login/%2e%2e/callback?code=x&state=y"),
    ];
    for url in &cases {
        let resp = browser.get(url).await;
        let what = format!("{url:.160}");
        assert!(
            !resp.text().await.unwrap().contains("<script>alert(1)"),
            "{what}: provider text reflected unescaped"
        );
        let resp = browser.get(url).await;
        assert_no_login(&w, &browser, resp, &what).await;
    }
    // Code and state by query and by form at once: one request, two sources.
    let back = w.idp.complete_login(&authorize, ALICE).unwrap();
    let resp = browser
        .client
        .post(format!("{cb}?code=other&state={state}"))
        .form(&[("code", back.code.as_str()), ("state", state.as_str())])
        .send()
        .await
        .unwrap();
    if resp.status() == StatusCode::FOUND {
        // The form is what form_post delivers; the query must not have been used.
        assert!(session_cookie(resp.headers()).is_some());
    } else {
        assert_no_login(&w, &browser, resp, "query and form").await;
    }
    w.upstream.assert_received_nothing().await;
}
