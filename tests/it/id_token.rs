//! ID token validation and the provider client against the development IdP
//! (`realmgate::demo::idp`), over real HTTP on 127.0.0.1: every hostile token
//! is refused with its reason, key rotation costs exactly one JWKS refresh,
//! tenants are enforced, and provider outages surface as `Unavailable`.

use std::sync::Arc;

use realmgate::config::{load_str, Settings};
use realmgate::connection::credential::ClientCredential;
use realmgate::demo::idp::{
    self, Idp, IdpConfig, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_CONTOSO_TENANT,
    DEMO_FABRIKAM_TENANT, DEMO_HR_GROUP,
};
use realmgate::metrics::Metrics;
use realmgate::oidc::{test_connection, OidcError, Provider, Providers, TokenSet};

use crate::util::{Hostile, HostileIdp, Outage};

const REDIRECT: &str = "http://127.0.0.1:9/.auth/login/contoso/callback";

async fn start_idp() -> Idp {
    idp::start(IdpConfig::demo_default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("IdP starts")
}

/// A config with one connection named `contoso`; `conn` is the body of its table.
fn settings(conn: &str) -> Settings {
    let text = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"

[[connection]]
name = "contoso"
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"
{conn}

[[route]]
name = "app"
hosts = ["app.example"]
upstream = "http://127.0.0.1:9"
"#
    );
    load_str(&text).unwrap_or_else(|e| panic!("config: {e}"))
}

fn entra(idp: &Idp, tenant: &str, extra: &str) -> Settings {
    settings(&format!(
        "type = \"entra\"\ntenant = \"{tenant}\"\nauthority_host = \"{}\"\n{extra}",
        idp.base_url()
    ))
}

fn provider_for(s: &Settings) -> (Providers, Arc<Provider>) {
    let providers = Providers::new(s, Arc::new(Metrics::new())).expect("providers");
    let p = providers.get("contoso").expect("provider contoso");
    (providers, p)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The whole browser leg over HTTP: authorization request, picker page,
/// posting the user, the redirect back; then the code exchange.
async fn login_over_http(p: &Provider, email: &str) -> (TokenSet, String) {
    let req = p
        .authorization_request(REDIRECT, &[("login_hint".into(), email.into())])
        .await
        .expect("authorization request");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&req.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(email), "picker lists {email}");
    assert!(html.contains("class=\"hint\""), "login_hint preselects");
    let back = http
        .post(&req.url)
        .form(&[("user", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let location = back.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(req.state.as_str())
    );
    let code = query_param(&location, "code").expect("code");
    let tokens = p
        .exchange_code(&code, &req.pkce_verifier, REDIRECT)
        .await
        .expect("exchange");
    (tokens, req.nonce)
}

/// The same, with the IdP's control API for the browser leg.
async fn login(idp: &Idp, p: &Provider, email: &str) -> (TokenSet, String) {
    let req = p
        .authorization_request(REDIRECT, &[])
        .await
        .expect("authorization request");
    let back = idp.complete_login(&req.url, email).expect("login");
    assert_eq!(back.state.as_deref(), Some(req.state.as_str()));
    let tokens = p
        .exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
        .await
        .expect("exchange");
    (tokens, req.nonce)
}

fn invalid_reason(r: Result<realmgate::oidc::VerifiedIdToken, OidcError>) -> String {
    match r {
        Err(OidcError::InvalidToken(reason)) => reason,
        Err(other) => panic!("expected InvalidToken, got {other:?}"),
        Ok(t) => panic!("token accepted: sub {}", t.sub()),
    }
}

#[tokio::test]
async fn a_login_over_http_yields_a_verified_token_with_the_users_claims() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login_over_http(&p, "alice@contoso.example").await;
    assert!(tokens.access_token.is_some());
    assert!(
        tokens.refresh_token.is_some(),
        "offline_access is a default scope"
    );
    assert!(tokens.expires_in.is_some());
    assert!(
        !format!("{tokens:?}").contains(&tokens.id_token),
        "Debug redacts"
    );
    let t = p
        .verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("valid token");
    assert_eq!(t.tid(), Some(DEMO_CONTOSO_TENANT));
    assert_eq!(t.iss(), idp.issuer(DEMO_CONTOSO_TENANT));
    assert_eq!(t.oid(), Some("a11ce000-0000-4000-8000-000000000001"));
    assert_eq!(t.email(), Some("alice@contoso.example"));
    assert_eq!(t.preferred_username(), Some("alice@contoso.example"));
    assert_eq!(t.name(), Some("Alice Adams"));
    assert_eq!(t.xms_edov(), Some(true));
    assert!(t.groups().contains(&DEMO_HR_GROUP.to_string()));
    assert!(!t.has_group_overage());
    assert!(
        !t.sub().is_empty() && t.sub() != t.oid().unwrap(),
        "pairwise sub"
    );
    assert!(t.sid().is_some());
    assert!(t.exp().is_some());
    assert!(!t.extra_claims().contains_key("email"));
}

#[tokio::test]
async fn the_authorization_request_carries_pkce_state_nonce_and_extras_but_no_overrides() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let extra = vec![
        ("login_hint".to_string(), "bob@contoso.example".to_string()),
        ("domain_hint".to_string(), "contoso.example".to_string()),
        ("state".to_string(), "attacker".to_string()),
        (
            "redirect_uri".to_string(),
            "https://evil.example/".to_string(),
        ),
    ];
    let req = p.authorization_request(REDIRECT, &extra).await.unwrap();
    let q = |k: &str| query_param(&req.url, k);
    assert_eq!(q("response_type").as_deref(), Some("code"));
    assert_eq!(q("client_id").as_deref(), Some(DEMO_CLIENT_ID));
    assert_eq!(q("redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(q("state").as_deref(), Some(req.state.as_str()));
    assert_eq!(q("nonce").as_deref(), Some(req.nonce.as_str()));
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        q("code_challenge").unwrap(),
        realmgate::oidc::pkce_challenge(&req.pkce_verifier)
    );
    assert_eq!(q("login_hint").as_deref(), Some("bob@contoso.example"));
    assert_eq!(q("domain_hint").as_deref(), Some("contoso.example"));
    assert_eq!(q("response_mode"), None, "query response mode by default");
    assert_eq!(
        q("scope").as_deref(),
        Some("openid profile email offline_access")
    );
    // >= 128 bits of randomness each (32 bytes, base64url).
    assert!(req.state.len() >= 43 && req.nonce.len() >= 43 && req.pkce_verifier.len() >= 43);
    let url = url::Url::parse(&req.url).unwrap();
    assert_eq!(url.query_pairs().filter(|(k, _)| k == "state").count(), 1);
    assert_eq!(
        url.query_pairs()
            .filter(|(k, _)| k == "redirect_uri")
            .count(),
        1
    );
    // The response mode may be chosen (query or form_post), nothing else.
    for (mode, expected) in [
        ("form_post", Some("form_post")),
        ("query", Some("query")),
        ("fragment", None),
    ] {
        let extra = vec![("response_mode".to_string(), mode.to_string())];
        let r = p.authorization_request(REDIRECT, &extra).await.unwrap();
        assert_eq!(query_param(&r.url, "response_mode").as_deref(), expected);
    }
    let again = p.authorization_request(REDIRECT, &[]).await.unwrap();
    assert_ne!(again.state, req.state);
    assert_ne!(again.nonce, req.nonce);
}

#[tokio::test]
async fn every_hostile_token_is_refused_with_its_reason() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let cases = [
        (Hostile::BadSignature, "signature invalid"),
        (Hostile::AlgNone, "alg none"),
        (Hostile::Hs256WithPublicKey, "HMAC"),
        (Hostile::WrongIssuer, "iss mismatch"),
        (Hostile::WrongAudience, "aud mismatch"),
        (
            Hostile::SeveralAudiencesWithoutAzp,
            "several audiences without azp",
        ),
        (Hostile::Expired, "token expired"),
        (Hostile::IatInFuture, "iat in the future"),
        (Hostile::NonceMissing, "nonce missing"),
        (Hostile::NonceWrong, "nonce mismatch"),
        (Hostile::UnknownKid, "unknown kid"),
        (Hostile::SubMissing, "sub missing"),
        (Hostile::OidMissing, "oid missing"),
        (
            Hostile::Tid(DEMO_FABRIKAM_TENANT.into()),
            "tenant not allowed",
        ),
    ];
    for (mode, reason) in cases {
        idp.set_hostile(Some(mode.clone()));
        let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
        let got = invalid_reason(p.verify_id_token(&tokens.id_token, &nonce).await);
        assert!(
            got.contains(reason),
            "{mode:?}: expected {reason:?}, got {got:?}"
        );
    }
    // And back to normal: the same flow is accepted.
    idp.set_hostile(None);
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("valid again");
    // A valid token with another login's nonce is refused too.
    let (tokens, _) = login(&idp, &p, "alice@contoso.example").await;
    let got = invalid_reason(p.verify_id_token(&tokens.id_token, &nonce).await);
    assert!(got.contains("nonce mismatch"), "{got}");
    // Garbage is refused, not a panic.
    for raw in ["", "a.b", "a.b.c", "....", &"x".repeat(100_000)] {
        invalid_reason(p.verify_id_token(raw, &nonce).await);
    }
}

#[tokio::test]
async fn a_rotated_key_costs_exactly_one_jwks_refresh_and_unknown_kids_are_rate_limited() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("old key");
    let before = idp.jwks_calls();

    let new_kid = idp.rotate_keys().await.unwrap();
    assert_eq!(idp.current_kid(), new_kid);
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("new key accepted after a refresh");
    assert_eq!(idp.jwks_calls(), before + 1, "exactly one JWKS refresh");
    // Tokens of the new key need no more fetches.
    let (tokens, nonce) = login(&idp, &p, "bob@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    assert_eq!(idp.jwks_calls(), before + 1);

    // Another unknown kid inside the rate-limit window: refused, no fetch.
    idp.set_hostile(Some(Hostile::UnknownKid));
    for _ in 0..3 {
        let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
        let got = invalid_reason(p.verify_id_token(&tokens.id_token, &nonce).await);
        assert!(got.contains("unknown kid"), "{got}");
    }
    assert_eq!(idp.jwks_calls(), before + 1, "rate limited");
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refresh() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    let before = idp.jwks_calls();
    idp.rotate_keys().await.unwrap();
    let mut logins = Vec::new();
    for _ in 0..5 {
        logins.push(login(&idp, &p, "alice@contoso.example").await);
    }
    let checks = logins
        .iter()
        .map(|(t, n)| p.verify_id_token(&t.id_token, n));
    for r in futures_util::future::join_all(checks).await {
        r.expect("every concurrent token accepted");
    }
    assert_eq!(idp.jwks_calls(), before + 1);
}

#[tokio::test]
async fn a_retired_key_no_longer_verifies_after_a_refresh() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (old_tokens, old_nonce) = login(&idp, &p, "alice@contoso.example").await;
    idp.rotate_keys().await.unwrap();
    idp.retire_old_keys();
    // A new-key token forces the refresh; afterwards the old key is gone.
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    let got = invalid_reason(p.verify_id_token(&old_tokens.id_token, &old_nonce).await);
    assert!(got.contains("unknown kid"), "{got}");
}

#[tokio::test]
async fn a_multi_tenant_connection_accepts_listed_tenants_only() {
    let idp = start_idp().await;
    let s = entra(
        &idp,
        "common",
        &format!("allowed_tenants = [\"{DEMO_CONTOSO_TENANT}\"]"),
    );
    let (_providers, p) = provider_for(&s);
    let (tokens, nonce) = login_over_http(&p, "alice@contoso.example").await;
    let t = p
        .verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("listed tenant");
    assert_eq!(t.tid(), Some(DEMO_CONTOSO_TENANT));
    // Carol's token is consistent (iss matches her tid) but her tenant is not listed.
    let (tokens, nonce) = login(&idp, &p, "carol@fabrikam.example").await;
    let got = invalid_reason(p.verify_id_token(&tokens.id_token, &nonce).await);
    assert_eq!(got, "tenant not allowed");
    // A listed tid in a token whose iss names another tenant.
    idp.set_hostile(Some(Hostile::Tid(DEMO_CONTOSO_TENANT.into())));
    let (tokens, nonce) = login(&idp, &p, "carol@fabrikam.example").await;
    let got = invalid_reason(p.verify_id_token(&tokens.id_token, &nonce).await);
    assert_eq!(got, "iss mismatch");

    // With "*", any tenant.
    idp.set_hostile(None);
    let (_providers, any) =
        provider_for(&entra(&idp, "organizations", "allowed_tenants = [\"*\"]"));
    let (tokens, nonce) = login(&idp, &any, "carol@fabrikam.example").await;
    let t = any
        .verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("any tenant");
    assert_eq!(t.tid(), Some(DEMO_FABRIKAM_TENANT));
}

#[tokio::test]
async fn a_single_tenant_connection_refuses_other_tenants_tokens() {
    let idp = start_idp().await;
    // Configured by domain: the tenant id is learned from discovery.
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    let foreign = idp
        .mint_id_token("carol@fabrikam.example", DEMO_CLIENT_ID, Some(&nonce))
        .unwrap();
    assert_eq!(
        invalid_reason(p.verify_id_token(&foreign, &nonce).await),
        "iss mismatch"
    );
    // The contoso tenant's picker does not offer fabrikam's users.
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    assert!(idp
        .complete_login(&req.url, "carol@fabrikam.example")
        .is_err());

    // Configured by id.
    let (_providers, p) = provider_for(&entra(&idp, DEMO_CONTOSO_TENANT, ""));
    let own = idp
        .mint_id_token("bob@contoso.example", DEMO_CLIENT_ID, Some("n"))
        .unwrap();
    p.verify_id_token(&own, "n").await.expect("own tenant");
    let foreign = idp
        .mint_id_token("carol@fabrikam.example", DEMO_CLIENT_ID, Some("n"))
        .unwrap();
    assert_eq!(
        invalid_reason(p.verify_id_token(&foreign, "n").await),
        "iss mismatch"
    );
}

#[tokio::test]
async fn an_unreachable_provider_gives_unavailable_and_a_cached_one_keeps_working() {
    let idp = start_idp().await;
    for outage in [Outage::Status503, Outage::Close] {
        idp.set_outage(outage);
        let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
        match p.authorization_request(REDIRECT, &[]).await {
            Err(OidcError::Unavailable(why)) => assert!(!why.is_empty()),
            other => panic!("{outage:?}: expected Unavailable, got {other:?}"),
        }
        // Back up: the next login fetches again.
        idp.set_outage(Outage::None);
        p.authorization_request(REDIRECT, &[])
            .await
            .expect("recovers once the provider is back");
    }

    // Down after the first fetch: logins keep working from the cache.
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    p.authorization_request(REDIRECT, &[]).await.unwrap();
    idp.set_outage(Outage::Close);
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("cached keys");
    idp.set_outage(Outage::None);

    // Token endpoint down: Unavailable, not Exchange.
    idp.set_token_endpoint_outage(Outage::Status503);
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "alice@contoso.example")
        .unwrap();
    assert!(matches!(
        p.exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
            .await,
        Err(OidcError::Unavailable(_))
    ));
    idp.set_token_endpoint_outage(Outage::None);

    // Nobody listening at all.
    // Reserved and never listened on: refused, and nobody else can take it meanwhile.
    let closed = crate::util::ReservedPort::new();
    let port = closed.port();
    let s = settings(&format!(
        "type = \"entra\"\ntenant = \"contoso.example\"\nauthority_host = \"http://127.0.0.1:{port}\""
    ));
    let (_providers, p) = provider_for(&s);
    assert!(matches!(
        p.authorization_request(REDIRECT, &[]).await,
        Err(OidcError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_only_with_its_pkce_verifier() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "alice@contoso.example")
        .unwrap();
    let calls = idp.token_calls();
    p.exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
        .await
        .expect("first use");
    match p
        .exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
        .await
    {
        Err(OidcError::Exchange(code)) => assert_eq!(code, "invalid_grant"),
        other => panic!("replay: {other:?}"),
    }
    assert_eq!(idp.token_calls(), calls + 2);

    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "alice@contoso.example")
        .unwrap();
    let wrong_verifier = "x".repeat(43);
    match p.exchange_code(&back.code, &wrong_verifier, REDIRECT).await {
        Err(OidcError::Exchange(code)) => {
            assert_eq!(code, "invalid_grant");
            assert!(
                !code.contains("AADSTS"),
                "only the error code, never the body"
            );
        }
        other => panic!("PKCE mismatch: {other:?}"),
    }
    // The code was spent by the failed attempt too.
    assert!(matches!(
        p.exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
            .await,
        Err(OidcError::Exchange(_))
    ));

    // Another redirect_uri than the authorization request's.
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "alice@contoso.example")
        .unwrap();
    assert!(matches!(
        p.exchange_code(&back.code, &req.pkce_verifier, "http://127.0.0.1:9/other")
            .await,
        Err(OidcError::Exchange(_))
    ));
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_exchange_error() {
    let idp = start_idp().await;
    let text = format!(
        "type = \"entra\"\ntenant = \"contoso.example\"\nauthority_host = \"{}\"",
        idp.base_url()
    );
    let s = settings(&text);
    let mut s2 = s.clone();
    let mut conn = (*s2.connections[0]).clone();
    conn.credential = Some(ClientCredential::Secret(realmgate::config::Secret::new(
        "wrong",
    )));
    s2.connections[0] = Arc::new(conn);
    let (_providers, p) = provider_for(&s2);
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "alice@contoso.example")
        .unwrap();
    match p
        .exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
        .await
    {
        Err(OidcError::Exchange(code)) => assert_eq!(code, "invalid_client"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refreshed_tokens_verify_without_a_nonce_but_keep_the_subject() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    let first = p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    let refreshed = p
        .refresh_tokens(tokens.refresh_token.as_deref().unwrap())
        .await
        .expect("refresh");
    let id_token = refreshed.id_token.expect("an ID token on refresh");
    let again = p
        .verify_refreshed_id_token(&id_token, first.sub())
        .await
        .expect("refreshed token");
    assert_eq!(again.oid(), first.oid());
    assert!(p
        .verify_refreshed_id_token(&id_token, "someone-else")
        .await
        .is_err());
    // Refresh tokens rotate: the old one is spent.
    assert!(matches!(
        p.refresh_tokens(tokens.refresh_token.as_deref().unwrap())
            .await,
        Err(OidcError::Exchange(_))
    ));
    // userinfo with the new access token.
    let info = p
        .userinfo(refreshed.access_token.as_deref().unwrap(), again.sub())
        .await
        .unwrap()
        .expect("the IdP has a userinfo endpoint");
    assert_eq!(info["email"], "alice@contoso.example");
}

#[tokio::test]
async fn rfc9207_iss_is_checked_when_the_provider_sends_it() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    p.authorization_request(REDIRECT, &[]).await.unwrap();
    // Entra does not send iss: absent is fine, a wrong one is not.
    p.check_authorization_response_iss(None).unwrap();
    p.check_authorization_response_iss(Some(&idp.issuer(DEMO_CONTOSO_TENANT)))
        .unwrap();
    assert!(matches!(
        p.check_authorization_response_iss(Some("https://evil.example/")),
        Err(OidcError::IssuerMismatch)
    ));

    idp.set_send_iss(true);
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "alice@contoso.example")
        .unwrap();
    p.check_authorization_response_iss(back.iss.as_deref())
        .expect("the IdP's own iss");
    assert!(matches!(
        p.check_authorization_response_iss(None),
        Err(OidcError::IssuerMismatch)
    ));

    // Multi-tenant: the iss of any real tenant fits the template.
    let (_providers, p) = provider_for(&entra(&idp, "common", "allowed_tenants = [\"*\"]"));
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp
        .complete_login(&req.url, "carol@fabrikam.example")
        .unwrap();
    p.check_authorization_response_iss(back.iss.as_deref())
        .unwrap();
    assert!(p
        .check_authorization_response_iss(Some(&format!("{}/evil/v2.0", idp.base_url())))
        .is_err());
}

#[tokio::test]
async fn end_session_url_points_at_the_providers_logout_which_redirects_back() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let url = p
        .end_session_url(Some("the-id-token"), "http://127.0.0.1:9/bye")
        .await
        .expect("the IdP has an end_session_endpoint");
    assert!(url.starts_with(&format!(
        "{}/contoso.example/oauth2/v2.0/logout?",
        idp.base_url()
    )));
    assert_eq!(
        query_param(&url, "id_token_hint").as_deref(),
        Some("the-id-token")
    );
    assert_eq!(
        query_param(&url, "client_id").as_deref(),
        Some(DEMO_CLIENT_ID)
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye");
    assert_eq!(idp.logout_calls(), 1);
}

#[tokio::test]
async fn a_generic_oidc_connection_works_by_discovery_and_by_manual_endpoints() {
    let idp = start_idp().await;
    let issuer = idp.issuer(DEMO_CONTOSO_TENANT);
    let (_providers, p) = provider_for(&settings(&format!(
        "type = \"oidc\"\nissuer = \"{issuer}\""
    )));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    let t = p
        .verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("by discovery");
    assert_eq!(t.iss(), issuer);

    let b = idp.base_url();
    let t = DEMO_CONTOSO_TENANT;
    let manual = format!(
        "type = \"oidc\"\nissuer = \"{issuer}\"\n\
         authorization_endpoint = \"{b}/{t}/oauth2/v2.0/authorize\"\n\
         token_endpoint = \"{b}/{t}/oauth2/v2.0/token\"\n\
         jwks_uri = \"{b}/{t}/discovery/v2.0/keys\""
    );
    let discovery_before = idp.discovery_calls();
    let (_providers, p) = provider_for(&settings(&manual));
    let (tokens, nonce) = login(&idp, &p, "bob@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("manual endpoints");
    assert_eq!(
        idp.discovery_calls(),
        discovery_before,
        "no discovery with manual endpoints"
    );
    assert_eq!(p.end_session_url(None, "http://127.0.0.1:9/").await, None);

    // Without discovery nothing says how the provider spells its issuer:
    // one that ends in `/` (Auth0's) is accepted whether or not the
    // operator wrote the `/`, and so is one without it; another is not.
    for written in [issuer.clone(), format!("{issuer}/")] {
        let (_providers, p) = provider_for(&settings(&manual.replace(
            &format!("issuer = \"{issuer}\""),
            &format!("issuer = \"{written}\""),
        )));
        for (sent, ok) in [
            (format!("{issuer}/"), true),
            (issuer.clone(), true),
            (format!("{issuer}//"), false),
            (format!("{issuer}x"), false),
        ] {
            idp.set_hostile(Some(Hostile::Claims(vec![(
                "iss".into(),
                sent.clone().into(),
            )])));
            let (tokens, nonce) = login(&idp, &p, "bob@contoso.example").await;
            let got = p.verify_id_token(&tokens.id_token, &nonce).await;
            assert_eq!(got.is_ok(), ok, "written {written}, sent {sent}");
        }
        idp.set_hostile(None);
    }
}

#[tokio::test]
async fn the_idp_answers_form_post_when_asked() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let url = format!("{}&response_mode=form_post", req.url);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(&url)
        .form(&[("user", "bob@contoso.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{REDIRECT}\"")), "{html}");
    assert!(html.contains("name=\"code\""));
    assert!(html.contains(&req.state));
    let back = idp.complete_login(&url, "bob@contoso.example").unwrap();
    assert!(back.form_post);
    // Unknown users and clients are refused.
    let r = http
        .post(&req.url)
        .form(&[("user", "mallory@contoso.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let bad_client = req
        .url
        .replace(DEMO_CLIENT_ID, "00000000-0000-0000-0000-000000000000");
    assert_eq!(http.get(&bad_client).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn test_connection_reports_a_good_provider() {
    let idp = start_idp().await;
    let mut out = Vec::new();
    let ok = test_connection(&entra(&idp, "contoso.example", ""), "contoso", &mut out).await;
    let text = String::from_utf8(out).unwrap();
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "issuer:                 {}",
            idp.issuer(DEMO_CONTOSO_TENANT)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("tenant id:              {DEMO_CONTOSO_TENANT}")),
        "{text}"
    );
    for k in [
        "authorization_endpoint:",
        "token_endpoint:",
        "userinfo_endpoint:",
        "end_session_endpoint:",
        "jwks_uri:",
    ] {
        assert!(text.contains(k), "{k} in {text}");
    }
    assert!(
        text.contains(&format!("kid {}", idp.current_kid())),
        "{text}"
    );
    assert!(text.contains("OK:"), "{text}");
}

#[tokio::test]
async fn test_connection_says_precisely_what_is_broken() {
    let idp = start_idp().await;
    let run = |s: Settings, name: &'static str| async move {
        let mut out = Vec::new();
        let ok = test_connection(&s, name, &mut out).await;
        (ok, String::from_utf8(out).unwrap())
    };
    // A tenant the provider does not know.
    let (ok, text) = run(entra(&idp, "nosuch.example", ""), "contoso").await;
    assert!(!ok);
    assert!(
        text.contains("HTTP 400") && text.contains("invalid_tenant"),
        "{text}"
    );
    assert!(text.contains("tenant = \"nosuch.example\""), "{text}");
    // A tenant id whose discovery names another tenant: simulate with a generic
    // connection configured with the tenant's domain as issuer.
    let issuer = format!("{}/contoso.example/v2.0", idp.base_url());
    let (ok, text) = run(
        settings(&format!("type = \"oidc\"\nissuer = \"{issuer}\"")),
        "contoso",
    )
    .await;
    assert!(!ok);
    assert!(text.contains("issuer mismatch"), "{text}");
    // Unreachable.
    // Reserved and never listened on: refused, and nobody else can take it meanwhile.
    let closed = crate::util::ReservedPort::new();
    let port = closed.port();
    let s = settings(&format!(
        "type = \"entra\"\ntenant = \"contoso.example\"\nauthority_host = \"http://127.0.0.1:{port}\""
    ));
    let (ok, text) = run(s, "contoso").await;
    assert!(!ok);
    assert!(
        text.contains("unreachable") && text.contains(&format!("127.0.0.1:{port}")),
        "{text}"
    );
    // Discovery answering 503.
    idp.set_outage(Outage::Status503);
    let (ok, text) = run(entra(&idp, "contoso.example", ""), "contoso").await;
    assert!(!ok);
    assert!(text.contains("503"), "{text}");
    idp.set_outage(Outage::None);
    // Plain http to a non-loopback host is refused before any request.
    let s = settings("type = \"oidc\"\nissuer = \"http://idp.example.com\"");
    let (ok, text) = run(s, "contoso").await;
    assert!(!ok);
    assert!(text.contains("must be https"), "{text}");
    // No such connection.
    let (ok, text) = run(entra(&idp, "contoso.example", ""), "nope").await;
    assert!(!ok);
    assert!(
        text.contains("no connection named \"nope\"") && text.contains("contoso"),
        "{text}"
    );
}

#[tokio::test]
async fn providers_survive_reloads_that_do_not_change_the_connection() {
    let idp = start_idp().await;
    let s = entra(&idp, "contoso.example", "");
    let providers = Providers::new(&s, Arc::new(Metrics::new())).unwrap();
    let a = providers.get("contoso").unwrap();
    a.authorization_request(REDIRECT, &[]).await.unwrap();
    providers.update(&s);
    assert!(
        Arc::ptr_eq(&a, &providers.get("contoso").unwrap()),
        "unchanged: same provider"
    );
    providers.update(&entra(&idp, "fabrikam.example", ""));
    assert!(
        !Arc::ptr_eq(&a, &providers.get("contoso").unwrap()),
        "changed tenant: new provider"
    );
    assert!(providers.get("other").is_none());
}

#[tokio::test]
async fn bearer_access_tokens_are_checked_for_the_api_audience() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let apis = vec!["api://hr".to_string()];
    let at = idp
        .mint_access_token(
            "bob@contoso.example",
            DEMO_CLIENT_ID,
            "api://hr",
            "read write",
        )
        .unwrap();
    let t = p
        .verify_access_token(&at, &apis)
        .await
        .expect("valid access token");
    assert_eq!(t.identity().tid(), Some(DEMO_CONTOSO_TENANT));
    assert_eq!(t.scopes(), vec!["read", "write"]);
    assert!(t.roles().is_empty());

    let other = idp
        .mint_access_token(
            "bob@contoso.example",
            DEMO_CLIENT_ID,
            "api://payroll",
            "read",
        )
        .unwrap();
    assert_eq!(
        invalid_reason_at(p.verify_access_token(&other, &apis).await),
        "aud mismatch"
    );
    // An ID token is not a bearer token, even when the API audience is our client id.
    let id = idp
        .mint_id_token("bob@contoso.example", DEMO_CLIENT_ID, Some("n"))
        .unwrap();
    let own = vec![DEMO_CLIENT_ID.to_string()];
    let got = invalid_reason_at(p.verify_access_token(&id, &own).await);
    assert!(got.contains("not an access token"), "{got}");
    for (mode, reason) in [
        (Hostile::AlgNone, "alg none"),
        (Hostile::Hs256WithPublicKey, "HMAC"),
        (Hostile::BadSignature, "signature invalid"),
        (Hostile::Expired, "token expired"),
        (Hostile::WrongIssuer, "iss mismatch"),
        (
            Hostile::Tid(DEMO_FABRIKAM_TENANT.into()),
            "tenant not allowed",
        ),
    ] {
        idp.set_hostile(Some(mode.clone()));
        let at = idp
            .mint_access_token("bob@contoso.example", DEMO_CLIENT_ID, "api://hr", "read")
            .unwrap();
        let got = invalid_reason_at(p.verify_access_token(&at, &apis).await);
        assert!(got.contains(reason), "{mode:?}: {got}");
    }
}

fn invalid_reason_at(r: Result<realmgate::oidc::VerifiedAccessToken, OidcError>) -> String {
    match r {
        Err(OidcError::InvalidToken(reason)) => reason,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

#[tokio::test]
async fn logout_tokens_are_verified_once() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let lt = idp
        .mint_logout_token("alice@contoso.example", DEMO_CLIENT_ID, Some("sid-1"))
        .unwrap();
    let t = p
        .verify_logout_token(&lt)
        .await
        .expect("valid logout token");
    assert_eq!(t.sid.as_deref(), Some("sid-1"));
    assert!(t.sub.is_some());
    assert_eq!(t.iss, idp.issuer(DEMO_CONTOSO_TENANT));
    match p.verify_logout_token(&lt).await {
        Err(OidcError::InvalidToken(r)) => assert!(r.contains("replayed"), "{r}"),
        other => panic!("replay accepted: {other:?}"),
    }
    // An ID token posted as a logout token.
    let id = idp
        .mint_id_token("alice@contoso.example", DEMO_CLIENT_ID, Some("n"))
        .unwrap();
    assert!(p.verify_logout_token(&id).await.is_err());
    idp.set_hostile(Some(Hostile::WrongAudience));
    let lt = idp
        .mint_logout_token("alice@contoso.example", DEMO_CLIENT_ID, Some("sid-2"))
        .unwrap();
    match p.verify_logout_token(&lt).await {
        Err(OidcError::InvalidToken(r)) => assert_eq!(r, "aud mismatch"),
        other => panic!("{other:?}"),
    }
}

/// A tiny HTTP server that records POST bodies.
async fn capture_server() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            record
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::new(),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/.auth/backchannel-logout"), seen)
}

#[tokio::test]
async fn the_idp_delivers_a_backchannel_logout_token_on_logout() {
    let (uri, seen) = capture_server().await;
    let mut config = IdpConfig::demo_default();
    config.clients[0].backchannel_logout_uri = Some(uri);
    let idp = idp::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    let t = p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    let url = p
        .end_session_url(Some(&tokens.id_token), "http://127.0.0.1:9/bye")
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 302);
    assert_eq!(idp.backchannel_logouts_delivered(), 1);
    let body = seen
        .lock()
        .unwrap()
        .pop()
        .expect("a logout token was posted");
    let lt = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("logout_token field");
    let logout = p
        .verify_logout_token(&lt)
        .await
        .expect("valid logout token");
    assert_eq!(logout.sid.as_deref(), t.sid());
    assert_eq!(logout.sub.as_deref(), Some(t.sub()));
}

#[tokio::test]
async fn group_overage_points_to_graph_which_pages_through_every_group() {
    let mut config = IdpConfig::demo_default();
    config.groups_overage_limit = 1;
    config.graph_page_size = 1;
    let idp = idp::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    let t = p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    assert!(t.has_group_overage());
    assert!(t.groups().is_empty());
    // Bob has one group: no overage.
    let (bob, bob_nonce) = login(&idp, &p, "bob@contoso.example").await;
    let b = p.verify_id_token(&bob.id_token, &bob_nonce).await.unwrap();
    assert!(!b.has_group_overage());
    assert_eq!(b.groups().len(), 1);

    let http = reqwest::Client::new();
    let mut next = Some(format!(
        "{}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id",
        idp.base_url()
    ));
    let mut ids = Vec::new();
    while let Some(url) = next.take() {
        let page: serde_json::Value = http
            .get(&url)
            .bearer_auth(tokens.access_token.as_deref().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for g in page["value"].as_array().unwrap() {
            ids.push(g["id"].as_str().unwrap().to_string());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&DEMO_HR_GROUP.to_string()));
    assert_eq!(idp.graph_calls(), 2, "one call per page");
    // Also under /graph (graph_endpoint = "{base}/graph"), paging stays there.
    let page: serde_json::Value = http
        .get(format!(
            "{}/graph/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id",
            idp.base_url()
        ))
        .bearer_auth(tokens.access_token.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/graph/v1.0/", idp.base_url())),
        "{next}"
    );
    let anonymous = http
        .get(format!("{}/v1.0/me/transitiveMemberOf", idp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_token_without_kid_needs_exactly_one_suitable_key() {
    let idp = start_idp().await;
    let (_providers, p) = provider_for(&entra(&idp, "contoso.example", ""));
    idp.set_hostile(Some(Hostile::NoKid));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce)
        .await
        .expect("one key in the JWKS: it is used");
    // Two published keys: which one was meant is unknowable.
    idp.set_hostile(None);
    idp.rotate_keys().await.unwrap();
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    p.verify_id_token(&tokens.id_token, &nonce).await.unwrap();
    idp.set_hostile(Some(Hostile::NoKid));
    let (tokens, nonce) = login(&idp, &p, "alice@contoso.example").await;
    let got = invalid_reason(p.verify_id_token(&tokens.id_token, &nonce).await);
    assert_eq!(got, "token has no kid and the JWKS has 2 suitable keys");
}
