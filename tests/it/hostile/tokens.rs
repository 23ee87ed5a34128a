//! ID tokens: the OpenID Foundation RP certification ID-token cases and the
//! RFC 8725 (JWT best current practices) attacks that `login_flow.rs` and
//! `id_token.rs` do not already cover (those pin bad signature, `alg: none`,
//! HS256 keyed with the public key, wrong `iss`/`aud`, several audiences
//! without `azp`, expiry, `iat` in the future, nonce missing/wrong, unknown
//! `kid`, missing `sub`/`oid`, another tenant, `kid` absent).
//!
//! Added here: header attacks (`kid` path traversal and injection, `jku`,
//! `x5u`, `jwk` and `x5c` pointing at or carrying an attacker's key, `crit`,
//! `alg` spellings, explicit typing, oversized tokens) and claim attacks
//! (missing `iat`/`exp`/`iss`, wrong types, `nbf` in the future, very old
//! `iat`, empty `aud`, foreign `azp`, an ambiguous `email_verified`).
//! Each is checked twice: at the provider client, for the exact reason; and
//! end to end through the gateway, where the login must fail without a
//! session and without the app receiving anything.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use realmgate::config::load_str;
use realmgate::demo::idp::{Idp, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use realmgate::metrics::Metrics;
use realmgate::oidc::{OidcError, Provider, Providers};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{session_cookie, World, ALICE};
use crate::util::{Hostile, HostileIdp};

const REDIRECT: &str = "http://127.0.0.1:9/.auth/login/contoso/callback";

/// The provider client for the World's contoso connection.
fn provider(idp: &Idp) -> (Providers, Arc<Provider>) {
    let toml = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"

[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
authority_host = "{}"
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"

[[route]]
name = "app"
hosts = ["app.example"]
upstream = "http://127.0.0.1:9"
"#,
        idp.base_url()
    );
    let settings = load_str(&toml).unwrap();
    let providers = Providers::new(&settings, Arc::new(Metrics::new())).unwrap();
    let p = providers.get("contoso").unwrap();
    (providers, p)
}

/// A login at the provider level: the raw ID token and the nonce it must carry.
async fn id_token(idp: &Idp, p: &Provider) -> (String, String) {
    let req = p.authorization_request(REDIRECT, &[]).await.unwrap();
    let back = idp.complete_login(&req.url, ALICE).unwrap();
    let tokens = p
        .exchange_code(&back.code, &req.pkce_verifier, REDIRECT)
        .await
        .unwrap();
    (tokens.id_token, req.nonce)
}

fn refused_reason(r: Result<realmgate::oidc::VerifiedIdToken, OidcError>) -> String {
    match r {
        Err(OidcError::InvalidToken(reason)) => reason,
        Err(other) => panic!("expected InvalidToken, got {other:?}"),
        Ok(t) => panic!("token accepted: sub {}", t.sub()),
    }
}

/// A listener that counts connections: where `jku`/`x5u` point. Nothing may
/// ever connect to it.
struct Trap {
    url: String,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/keys.json", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((_s, _)) = listener.accept().await {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Trap { url, hits, task }
    }

    async fn assert_untouched(&self) {
        let touched = crate::util::wait_until(Duration::from_millis(200), || {
            self.hits.load(std::sync::atomic::Ordering::SeqCst) > 0
        })
        .await;
        assert!(!touched, "a key URL from the token header was fetched");
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An attacker's RSA key: the private key as jsonwebtoken wants it and the public JWK.
fn attacker_key() -> (jsonwebtoken::EncodingKey, Value) {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let der = private.to_pkcs1_der().unwrap();
    let jwk = json!({
        "kty": "RSA",
        "kid": "attacker",
        "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    });
    (jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()), jwk)
}

/// `claims` of a real token, re-signed by `key` under `header`.
fn resign(real: &str, header: &Value, key: &jsonwebtoken::EncodingKey) -> String {
    let payload = real.split('.').nth(1).unwrap();
    let signed = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let sig =
        jsonwebtoken::crypto::sign(signed.as_bytes(), key, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{signed}.{sig}")
}

fn edits(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Hostile modes the IdP applies, and the reason the provider client must give.
fn cases() -> Vec<(Hostile, &'static str)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let h = |pairs: &[(&str, Value)]| Hostile::Header(edits(pairs));
    let c = |pairs: &[(&str, Value)]| Hostile::Claims(edits(pairs));
    vec![
        // --- kid: looked up in the JWKS only, never used as a path or query.
        (
            h(&[("kid", json!("../../../../../../dev/null"))]),
            "unknown kid",
        ),
        (h(&[("kid", json!("/etc/passwd"))]), "unknown kid"),
        (h(&[("kid", json!("' OR '1'='1"))]), "unknown kid"),
        (h(&[("kid", json!("x".repeat(5000)))]), "unknown kid"),
        (h(&[("kid", json!(42))]), "kid is not a string"),
        // --- crit: an extension we do not implement must make us refuse (RFC 7515 4.1.11).
        (h(&[("crit", json!(["exp"])), ("exp", json!(0))]), "crit"),
        (
            h(&[("crit", json!(["b64"])), ("b64", json!(false))]),
            "crit",
        ),
        // --- alg spellings: the allow-list is exact (RFC 8725 3.1).
        (h(&[("alg", json!("rs256"))]), "not accepted"),
        (h(&[("alg", json!("Rs256"))]), "not accepted"),
        (h(&[("alg", json!("RS256 "))]), "not accepted"),
        (h(&[("alg", json!("None"))]), "alg none"),
        (h(&[("alg", json!("NONE"))]), "alg none"),
        (h(&[("alg", json!("nOnE"))]), "alg none"),
        (h(&[("alg", json!("HS256"))]), "HMAC"),
        (h(&[("alg", json!("HS512"))]), "HMAC"),
        (h(&[("alg", json!("ES256"))]), ""),
        (h(&[("alg", json!("PS256"))]), ""),
        (h(&[("alg", json!(["RS256"]))]), "no alg"),
        (h(&[("alg", Value::Null)]), "no alg"),
        // --- explicit typing (RFC 8725 3.11): another kind of JWT is not an ID token.
        (h(&[("typ", json!("at+jwt"))]), "wrong token type"),
        (
            h(&[("typ", json!("application/logout+jwt"))]),
            "wrong token type",
        ),
        (h(&[("typ", json!(7))]), "typ is not a string"),
        // --- size: refused before any parsing.
        (h(&[("pad", json!("A".repeat(70_000)))]), "too large"),
        // --- claims (OpenID RP certification rp-id_token-*).
        (c(&[("iat", Value::Null)]), "iat missing"),
        (c(&[("exp", Value::Null)]), "exp missing"),
        (c(&[("iss", Value::Null)]), "iss missing"),
        (c(&[("exp", json!("9999999999"))]), "exp is not a number"),
        (c(&[("iat", json!(-5))]), "iat is out of range"),
        // --- NumericDates beyond year 9999 (they used to saturate to u64::MAX).
        (c(&[("exp", json!(1e300))]), "exp is out of range"),
        (
            c(&[("exp", json!(9_223_372_036_854_775_808u64))]),
            "exp is out of range",
        ),
        (c(&[("nbf", json!(u64::MAX))]), "nbf is out of range"),
        (c(&[("iat", json!(1e300))]), "iat is out of range"),
        (
            c(&[("exp", json!(now + 400 * 86_400))]),
            "exp too far in the future",
        ),
        (c(&[("nbf", json!(now + 3600))]), "nbf"),
        (
            c(&[("iat", json!(now - 3 * 86_400)), ("exp", json!(now + 3600))]),
            "iat too old",
        ),
        (c(&[("aud", json!([]))]), "aud mismatch"),
        (c(&[("aud", json!(42))]), "aud missing"),
        (
            c(&[("azp", json!("00000000-0000-4000-8000-0000000000ff"))]),
            "azp mismatch",
        ),
        (c(&[("sub", json!(""))]), "sub missing"),
        (c(&[("sub", json!(42))]), "sub missing"),
        (c(&[("nonce", json!(""))]), "nonce mismatch"),
        (c(&[("nonce", json!(42))]), "nonce missing"),
        (c(&[("oid", json!(""))]), "oid missing"),
        (c(&[("tid", json!("../../common"))]), "tenant not allowed"),
    ]
}

#[tokio::test]
async fn header_and_claim_attacks_are_refused_with_their_reason() {
    let w = World::start().await;
    let (_providers, p) = provider(&w.idp);
    for (mode, reason) in cases() {
        w.idp.set_hostile(Some(mode.clone()));
        let (token, nonce) = id_token(&w.idp, &p).await;
        let got = refused_reason(p.verify_id_token(&token, &nonce).await);
        assert!(
            got.contains(reason),
            "{mode:.120?}: expected {reason:?}, got {got:?}"
        );
    }
}

#[tokio::test]
async fn header_and_claim_attacks_never_make_a_session_or_reach_the_app() {
    let w = World::start().await;
    for (mode, _) in cases() {
        w.idp.set_hostile(Some(mode.clone()));
        let browser = w.browser();
        let authorize = browser.authorize_url(&w, "contoso").await;
        let back = w.idp.complete_login(&authorize, ALICE).unwrap();
        let resp = browser.get(&back.url).await;
        assert!(
            resp.status().is_client_error() || resp.status().is_server_error(),
            "{mode:.120?}: login must fail, got {}",
            resp.status()
        );
        assert!(session_cookie(resp.headers()).is_none(), "{mode:.120?}");
        let page = resp.text().await.unwrap();
        assert!(!page.contains("eyJ"), "{mode:.120?}: token in the page");
        let resp = browser.get(&w.url("/secret")).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{mode:.120?}: signed out");
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn keys_named_or_carried_by_the_token_are_never_used_or_fetched() {
    let w = World::start().await;
    let trap = Trap::start().await;
    let (_providers, p) = provider(&w.idp);
    let (attacker, attacker_jwk) = attacker_key();
    let (real, nonce) = id_token(&w.idp, &p).await;
    let real_kid = w.idp.current_kid();
    // Signed by the attacker, with the attacker's key offered every way RFC
    // 7515 allows: embedded (`jwk`), by URL (`jku`, `x5u`), with the real kid
    // or the attacker's own, or none.
    let headers = [
        json!({"alg": "RS256", "kid": real_kid, "jwk": attacker_jwk}),
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "attacker", "jku": trap.url}),
        json!({"alg": "RS256", "kid": real_kid, "jku": trap.url}),
        json!({"alg": "RS256", "kid": "attacker", "x5u": trap.url}),
        json!({"alg": "RS256", "jku": trap.url, "x5u": trap.url}),
        json!({"alg": "RS256", "kid": real_kid, "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ];
    for header in &headers {
        let forged = resign(&real, header, &attacker);
        let got = refused_reason(p.verify_id_token(&forged, &nonce).await);
        assert!(
            got.contains("signature") || got.contains("kid") || got.contains("key"),
            "{header}: {got}"
        );
    }
    trap.assert_untouched().await;

    // Signed by the real key, the same header members are simply ignored:
    // the login works and the trap is still never contacted.
    for extra in [
        vec![("jku", json!(trap.url))],
        vec![("x5u", json!(trap.url))],
        vec![("jwk", attacker_jwk.clone())],
    ] {
        w.idp.set_hostile(Some(Hostile::Header(edits(&extra))));
        let browser = w.signed_in(ALICE).await;
        let resp = browser.get(&w.url("/secret")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{extra:?}");
    }
    trap.assert_untouched().await;
}

#[tokio::test]
async fn an_ambiguous_email_verified_claim_does_not_verify_the_email() {
    // Only `true` (or the string "true" some providers send) verifies an
    // email; `1`, "yes" or an object are not read as true, so an unverified
    // address never reaches X-Forwarded-Email.
    let w = World::start().await;
    w.idp.set_hostile(Some(Hostile::Claims(edits(&[
        ("xms_edov", json!(1)),
        ("email_verified", json!("yes")),
    ]))));
    let browser = w.signed_in(ALICE).await;
    let resp = browser
        .client
        .get(w.url("/secret"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let e = crate::util::Echoed::from(resp).await;
    assert!(e.header("x-forwarded-user").is_some());
    assert_eq!(e.header("x-forwarded-email"), None, "unverified email sent");
    let me: Value = browser
        .client
        .get(w.url("/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], json!(false), "{me}");
}

/// An ID token whose `exp` is `1e300` or 2^63 (or whose `nbf`/`iat` is huge)
/// at the callback: the login fails with no session, nothing reaches the
/// app, and the same client connection is served next (no panic took it
/// down).
#[tokio::test]
async fn huge_numeric_dates_at_the_callback_fail_the_login_and_the_connection_keeps_serving() {
    let w = World::start().await;
    let mut conn = crate::util::KeepAliveConn::connect(w.gateway.addr).await;
    for (claim, value) in [
        ("exp", json!(1e300)),
        ("exp", json!(9_223_372_036_854_775_808u64)),
        ("exp", json!(18_446_744_073_709_551_615u64)),
        ("nbf", json!(1e300)),
        ("iat", json!(9_223_372_036_854_775_808u64)),
    ] {
        w.idp
            .set_hostile(Some(Hostile::Claims(edits(&[(claim, value.clone())]))));
        let browser = w.browser();
        let authorize = browser.authorize_url(&w, "contoso").await;
        let back = w.idp.complete_login(&authorize, ALICE).unwrap();
        let url = url::Url::parse(&back.url).unwrap();
        let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\nCookie: {}\r\n\r\n",
            super::HOST,
            browser.cookie_header(&back.url)
        );
        let (status, body) = conn
            .exchange(request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{claim}: {value}: no answer, the connection died"));
        assert!(
            (400..600).contains(&status),
            "{claim}: {value}: the login must fail, got {status}"
        );
        assert!(!String::from_utf8_lossy(&body).contains("eyJ"));
        let request = format!(
            "GET /static/after HTTP/1.1\r\nHost: {}\r\n\r\n",
            super::HOST
        );
        let (status, _) = conn
            .exchange(request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{claim}: {value}: the connection did not survive"));
        assert_eq!(status, 200, "{claim}: {value}: the public path is served");
    }
    w.idp.set_hostile(None);
    // Only the public requests reached the app, and nobody is signed in.
    assert_eq!(w.upstream.count(), 5);
}
