//! `X-Realmgate-Assertion` (`jwt_assertion = true`) and `GET /.auth/keys`:
//! the assertion the app receives verifies, with the JWKS the gateway serves,
//! in an independent JOSE implementation (npm `jose`, tests/node/
//! verify-assertion.mjs); a tampered one does not; a client cannot send its
//! own; ES256 and RS256 keys both work.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use realmgate::demo::idp;
use reqwest::header::{ACCEPT, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::node::run_script;
use crate::util::{config, echo_route, entra, route, EchoUpstream, Echoed, TestGateway};

const APP: &str = "app.test";
const POM: &str = "pom.test";
const PLAIN: &str = "plain.test";
const API: &str = "api.test";
const HTML: &str = "text/html,application/xhtml+xml";
const ALICE: &str = "alice@contoso.example";
const ALICE_OID: &str = "a11ce000-0000-4000-8000-000000000001";
const FORGED: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.";

/// This file's world (see `util::world`): four routes, the assertion key in a file.
enum AssertionTests {}
type World = crate::util::World<AssertionTests>;

impl World {
    async fn start(key_pem: &str) -> World {
        World::start_with(Some(key_pem)).await
    }

    /// Without a key file: the gateway signs with a key it makes at start.
    async fn start_with(key_pem: Option<&str>) -> World {
        let mut builder = World::builder();
        if let Some(pem) = key_pem {
            let mut key = tempfile::NamedTempFile::new().unwrap();
            key.write_all(pem.as_bytes()).unwrap();
            builder = builder
                .server(&format!(r#"assertion_key = "{}""#, key.path().display()))
                .keep(key);
        }
        builder
            .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
            .route(
                echo_route("app", APP)
                    .with("jwt_assertion = true")
                    .public(&["/static/"]),
            )
            .route(echo_route("pom", POM).with(r#"headers = "pomerium""#))
            .route(echo_route("plain", PLAIN))
            .route(echo_route("api", API).with(
                r#"jwt_assertion = true
api_audiences = ["api://hr"]"#,
            ))
            .start()
            .await
    }

    /// Signs `email` in at app.test (cookie domain: every route host shares
    /// nothing, so the cookie is sent explicitly); returns the Cookie value.
    async fn sign_in(&self, email: &str, host: &str) -> String {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
            .timeout(Duration::from_secs(30))
            .resolve(host, self.gateway.addr)
            .no_proxy()
            .build()
            .unwrap();
        let resp = browser
            .post(self.gateway.url(host, "/.auth/login"))
            .header(ACCEPT, HTML)
            .form(&[("email", email), ("post_login_redirect_uri", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "login starts");
        let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
        let back = self
            .idp
            .complete_login(&location, email)
            .expect("IdP issues a code");
        let resp = browser
            .get(&back.url)
            .header(ACCEPT, HTML)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "callback signs in");
        resp.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("realmgate="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_string()
    }

    async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.gateway.client().get(self.gateway.url(host, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("gateway answers")
    }

    async fn jwks(&self, host: &str) -> String {
        let resp = self.get(host, "/.auth/keys", &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "application/jwk-set+json",
            "JWKS media type"
        );
        resp.text().await.unwrap()
    }

    fn origin(&self, host: &str) -> String {
        format!("http://{host}:{}", self.gateway.addr.port())
    }
}

/// Runs the `jose` verifier; Ok(verified JSON) or Err(stderr).
async fn jose_verify(
    jwks: &str,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    let args: Vec<String> = [
        "--jwks",
        jwks,
        "--issuer",
        issuer,
        "--audience",
        audience,
        "--token",
        token,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, stdout, stderr) =
        run_script("verify-assertion.mjs", &args, Duration::from_secs(60)).await;
    if ok {
        Ok(serde_json::from_str(stdout.trim()).expect("verifier prints JSON"))
    } else {
        Err(stderr)
    }
}

fn p256_pem() -> String {
    realmgate::auth::assertion::generate_p256_pem()
}

fn rsa_pem() -> String {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// Re-encodes the payload with `sub` changed, keeping header and signature.
fn tamper(token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = Value::from("mallory");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    parts.join(".")
}

#[tokio::test]
async fn the_assertion_verifies_with_jose_against_auth_keys_and_tampering_fails() {
    let w = World::start(&p256_pem()).await;
    let cookie = w.sign_in(ALICE, APP).await;
    let resp = w
        .get(
            APP,
            "/report",
            &[
                ("cookie", cookie.as_str()),
                ("x-realmgate-assertion", FORGED),
                ("x_realmgate_assertion", FORGED),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echo = Echoed::from(resp).await;
    let token = echo
        .header("x-realmgate-assertion")
        .expect("assertion sent upstream");
    assert_ne!(token, FORGED, "the client's assertion never survives");
    assert!(echo.header("x_realmgate_assertion").is_none());

    let jwks = w.jwks(APP).await;
    let keys: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert!(keys["keys"][0].get("d").is_none(), "public key only");

    let verified = jose_verify(&jwks, &w.origin(APP), "app", &token)
        .await
        .unwrap_or_else(|e| panic!("jose refused the assertion: {e}"));
    assert_eq!(verified["header"]["alg"], "ES256");
    assert_eq!(verified["header"]["kid"], keys["keys"][0]["kid"]);
    let p = &verified["payload"];
    assert_eq!(p["sub"], ALICE_OID);
    assert_eq!(p["aud"], "app");
    assert_eq!(p["email"], ALICE, "xms_edov: the email is verified");
    assert_eq!(p["tid"], idp::DEMO_CONTOSO_TENANT);
    assert!(p["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == idp::DEMO_HR_GROUP));
    let lifetime = p["exp"].as_u64().unwrap() - p["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 300, "a few minutes");

    // Forward auth answers with the same assertion for auth_request_set.
    let resp = w
        .get(APP, "/.auth/verify", &[("cookie", cookie.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let from_verify = resp.headers()["x-realmgate-assertion"]
        .to_str()
        .unwrap()
        .to_string();
    jose_verify(&jwks, &w.origin(APP), "app", &from_verify)
        .await
        .unwrap_or_else(|e| panic!("jose refused the /.auth/verify assertion: {e}"));

    let err = jose_verify(&jwks, &w.origin(APP), "app", &tamper(&token))
        .await
        .expect_err("a tampered assertion must not verify");
    assert!(
        err.contains("ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
        "{err}"
    );
    // Replayed to another route (audience), it does not verify either.
    let err = jose_verify(&jwks, &w.origin(APP), "payroll", &token)
        .await
        .expect_err("another audience");
    assert!(err.contains("ERR_JWT_CLAIM_VALIDATION_FAILED"), "{err}");
}

#[tokio::test]
async fn rsa_keys_sign_rs256_assertions_that_jose_verifies() {
    let w = World::start(&rsa_pem()).await;
    let token = w
        .idp
        .mint_access_token(
            ALICE,
            "0c0ffee0-0000-4000-8000-0000000000c1",
            "api://hr",
            "read",
        )
        .unwrap();
    // A bearer caller gets the assertion too.
    let resp = w
        .get(
            API,
            "/data",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let assertion = Echoed::from(resp)
        .await
        .header("x-realmgate-assertion")
        .expect("assertion for a bearer caller");
    let jwks = w.jwks(API).await;
    let verified = jose_verify(&jwks, &w.origin(API), "api", &assertion)
        .await
        .unwrap_or_else(|e| panic!("jose refused the RS256 assertion: {e}"));
    assert_eq!(verified["header"]["alg"], "RS256");
    assert_eq!(verified["payload"]["sub"], ALICE_OID);
    assert!(
        jose_verify(&jwks, &w.origin(API), "api", &tamper(&assertion))
            .await
            .is_err()
    );
}

/// The pomerium profile's assertion as Pomerium's SDKs verify it: `iss` and
/// `aud` are the app's host, the keys are at
/// `https://{iss}/.well-known/pomerium/jwks.json` on that host (the same
/// key as `/.auth/keys`); a client's own assertion never arrives.
#[tokio::test]
async fn the_pomerium_profile_sends_an_assertion_in_pomerium_s_form() {
    let w = World::start(&p256_pem()).await;
    let cookie = w.sign_in(ALICE, POM).await;
    let resp = w
        .get(
            POM,
            "/",
            &[
                ("cookie", cookie.as_str()),
                ("x-pomerium-jwt-assertion", FORGED),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let token = Echoed::from(resp)
        .await
        .header("x-pomerium-jwt-assertion")
        .expect("pomerium assertion");
    let resp = w.get(POM, "/.well-known/pomerium/jwks.json", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
    let jwks = resp.text().await.unwrap();
    assert_eq!(jwks, w.jwks(POM).await, "one key, two addresses");
    let verified = jose_verify(&jwks, POM, POM, &token)
        .await
        .unwrap_or_else(|e| panic!("jose refused: {e}"));
    assert_eq!(verified["payload"]["sub"], ALICE_OID);
    assert_eq!(verified["payload"]["user"], ALICE_OID);
    assert_eq!(verified["payload"]["email"], ALICE);
    // Not realmgate's form: an app checking for the route's name refuses it.
    assert!(jose_verify(&jwks, &w.origin(POM), "pom", &token)
        .await
        .is_err());
    // Forward auth answers with it too, for nginx's `auth_request_set`.
    let resp = w
        .get(
            POM,
            "/.auth/verify",
            &[
                ("cookie", cookie.as_str()),
                ("x-pomerium-jwt-assertion", FORGED),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let answered = resp.headers()["x-pomerium-jwt-assertion"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(answered, FORGED);
    let verified = jose_verify(&jwks, POM, POM, &answered)
        .await
        .unwrap_or_else(|e| panic!("jose refused verify's: {e}"));
    assert_eq!(verified["payload"]["sub"], ALICE_OID);
    // Only the JWKS answers there, and only on pomerium routes: another
    // method is not forwarded, another route's app gets its own path.
    let resp = w
        .gateway
        .client()
        .post(w.gateway.url(POM, "/.well-known/pomerium/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let before = w.upstream.count();
    let resp = w.get(PLAIN, "/.well-known/pomerium/jwks.json", &[]).await;
    assert_ne!(resp.status(), StatusCode::OK, "a protected app's path");
    let resp = w
        .get(
            PLAIN,
            "/.well-known/pomerium/jwks.json",
            &[("cookie", w.sign_in(ALICE, PLAIN).await.as_str())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        Echoed::from(resp).await.uri(),
        "/.well-known/pomerium/jwks.json"
    );
    assert_eq!(w.upstream.count(), before + 1);
}

/// A pomerium route at `/app` beside another profile's `/` on one host:
/// Pomerium's JWKS path (where the SDKs look, on the app's host) is
/// realmgate's on that host, whichever route holds the path.
#[tokio::test]
async fn the_pomerium_keys_are_served_on_a_host_where_the_pomerium_route_has_a_prefix() {
    // No key file: the key made at start, as `/.auth/keys` serves it.
    let w: World = World::builder()
        .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
        .route(echo_route("root", POM))
        .route(
            echo_route("pomapp", POM)
                .with(r#"path_prefix = "/app""#)
                .with(r#"headers = "pomerium""#),
        )
        .start()
        .await;
    let before = w.upstream.count();
    let resp = w.get(POM, "/.well-known/pomerium/jwks.json", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let jwks = resp.text().await.unwrap();
    assert_eq!(jwks, w.jwks(POM).await);
    assert_eq!(w.upstream.count(), before, "not the app's");
    let cookie = w.sign_in(ALICE, POM).await;
    let resp = w.get(POM, "/app/x", &[("cookie", cookie.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let token = Echoed::from(resp)
        .await
        .header("x-pomerium-jwt-assertion")
        .expect("pomerium assertion");
    jose_verify(&jwks, POM, POM, &token)
        .await
        .unwrap_or_else(|e| panic!("jose refused: {e}"));
}

/// Both headers on one route: each in its own form.
#[tokio::test]
async fn jwt_assertion_beside_the_pomerium_profile_keeps_realmgate_s_form() {
    let w: World = World::builder()
        .connection(entra("contoso", "contoso.example").home_realm("contoso.example"))
        .route(
            echo_route("both", POM)
                .with(r#"headers = "pomerium""#)
                .with("jwt_assertion = true"),
        )
        .start()
        .await;
    let cookie = w.sign_in(ALICE, POM).await;
    let resp = w.get(POM, "/", &[("cookie", cookie.as_str())]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = Echoed::from(resp).await;
    let jwks = w.jwks(POM).await;
    let pomerium = echoed.header("x-pomerium-jwt-assertion").unwrap();
    let realmgate = echoed.header("x-realmgate-assertion").unwrap();
    jose_verify(&jwks, POM, POM, &pomerium)
        .await
        .unwrap_or_else(|e| panic!("pomerium form: {e}"));
    jose_verify(&jwks, &w.origin(POM), "both", &realmgate)
        .await
        .unwrap_or_else(|e| panic!("realmgate form: {e}"));
}

#[tokio::test]
async fn clients_cannot_send_an_assertion_where_none_is_made() {
    let w = World::start(&p256_pem()).await;
    let cookie = w.sign_in(ALICE, PLAIN).await;
    let resp = w
        .get(
            PLAIN,
            "/",
            &[
                ("cookie", cookie.as_str()),
                ("x-realmgate-assertion", FORGED),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(Echoed::from(resp)
        .await
        .header("x-realmgate-assertion")
        .is_none());
    // Public paths: stripped as well, and no assertion (nobody is signed in).
    let resp = w
        .get(APP, "/static/x.css", &[("x-realmgate-assertion", FORGED)])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(Echoed::from(resp)
        .await
        .header("x-realmgate-assertion")
        .is_none());
    assert_eq!(w.upstream.count(), 2);
}

#[tokio::test]
async fn without_a_key_the_gateway_signs_with_one_it_made() {
    // SPEC 3 names no key setting: `jwt_assertion` and the pomerium profile
    // work without `server.assertion_key`, verifiable with `/.auth/keys`.
    let w = World::start_with(None).await;
    let jwks = w.jwks(APP).await;
    let keys: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert!(keys["keys"][0].get("d").is_none(), "public key only");
    for (host, iss, aud, header) in [
        (APP, w.origin(APP), "app", "x-realmgate-assertion"),
        (POM, POM.to_string(), POM, "x-pomerium-jwt-assertion"),
    ] {
        let cookie = w.sign_in(ALICE, host).await;
        let resp = w.get(host, "/", &[("cookie", cookie.as_str())]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let token = Echoed::from(resp)
            .await
            .header(header)
            .unwrap_or_else(|| panic!("{header} sent upstream"));
        let verified = jose_verify(&jwks, &iss, aud, &token)
            .await
            .unwrap_or_else(|e| panic!("jose refused the {header}: {e}"));
        assert_eq!(verified["header"]["alg"], "ES256");
        assert_eq!(verified["payload"]["sub"], ALICE_OID);
    }
}

#[tokio::test]
async fn auth_keys_is_empty_without_a_key() {
    let upstream = EchoUpstream::start().await;
    let gw = TestGateway::start(&config("", &route("app", APP, "/", &upstream.url(), ""))).await;
    let resp = gw
        .client()
        .get(gw.url(APP, "/.auth/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"keys": []}));
    let resp = gw
        .client()
        .post(gw.url(APP, "/.auth/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // RFC 9110 15.5.6: every 405 names the methods it takes (review 13),
    // on the proxy listener and the admin one.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    for (client, method, url, allow) in [
        (gw.client(), "POST", gw.url(APP, "/.auth/keys"), "GET, HEAD"),
        (gw.client(), "POST", gw.url(APP, "/.auth/me"), "GET, HEAD"),
        (
            gw.client(),
            "DELETE",
            gw.url(APP, "/.auth/logout"),
            "GET, POST",
        ),
        (
            gw.client(),
            "PUT",
            gw.url(APP, "/.auth/backchannel-logout"),
            "POST",
        ),
        (
            gw.client(),
            "OPTIONS",
            gw.url(APP, "/.auth/login"),
            "GET, HEAD, POST",
        ),
        (
            gw.client(),
            "PUT",
            gw.url(APP, "/.auth/login/contoso/callback"),
            "GET, POST",
        ),
        (
            plain.clone(),
            "GET",
            format!("http://{}/sessions/revoke", gw.admin_addr()),
            "POST",
        ),
        (
            plain.clone(),
            "DELETE",
            format!("http://{}/sessions", gw.admin_addr()),
            "GET",
        ),
        (
            plain.clone(),
            "POST",
            format!("http://{}/healthz", gw.admin_addr()),
            "GET, HEAD",
        ),
    ] {
        let resp = client
            .request(method.parse().unwrap(), &url)
            .header("accept", "text/html")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {url}"
        );
        assert_eq!(
            resp.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {url}"
        );
    }
}
