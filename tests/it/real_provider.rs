//! Tier 2: sign-in through a real third-party OpenID provider (npm
//! `oidc-provider`) over plain HTTP: its own interaction pages, its tokens,
//! its discovery and JWKS. The app must receive the identity the provider
//! asserted.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, LOCATION};
use reqwest::StatusCode;

use crate::node::OidcProvider;
use crate::util::{echo_route, Config, EchoUpstream, Echoed, TestGateway};

const CLIENT_SECRET: &str = "a-client-secret-of-at-least-32-characters";

#[tokio::test]
async fn signs_in_through_oidc_provider_interaction_pages() {
    sign_in_and_out(
        serde_json::json!({
            "client_secret": CLIENT_SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
        }),
        &format!(r#"client_secret = "{CLIENT_SECRET}""#),
    )
    .await;
}

/// SPEC 5.10: a certificate instead of a secret, `private_key_jwt` verified
/// by the provider against the client's registered JWKS.
#[tokio::test]
async fn signs_in_with_private_key_jwt_at_oidc_provider() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rsa::pkcs8::EncodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let key_pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["realmgate".to_string()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("rp.crt"), dir.path().join("rp.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key_pem.as_bytes()).unwrap();
    let jwk = serde_json::json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    });
    sign_in_and_out(
        serde_json::json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "RS256",
            "jwks": { "keys": [jwk] },
        }),
        &format!("client_certificate_file = {cert_path:?}\nclient_key_file = {key_path:?}"),
    )
    .await;
}

/// Signs alice in through the provider's pages, checks what the app gets,
/// signs out. `client` adds to the provider's client registration,
/// `credential` are the connection's credential lines.
async fn sign_in_and_out(client: serde_json::Value, credential: &str) {
    // The gateway's origin is a name (`public_origin`) that the test client
    // resolves to wherever the gateway bound port 0: the provider needs the
    // redirect URI before the gateway exists, and a pre-picked free port could
    // be taken by a parallel test in between.
    let origin = "http://rp.test".to_string();
    let mut registration = serde_json::json!({
        "client_id": "realmgate",
        "redirect_uris": [format!("{origin}/.auth/login/partner/callback")],
        "post_logout_redirect_uris": [format!("{origin}/.auth/logout/done")],
    });
    for (k, v) in client.as_object().expect("client fields") {
        registration[k] = v.clone();
    }
    let provider = OidcProvider::start(registration).await;
    let upstream = EchoUpstream::start().await;
    let config = Config::new()
        .server(&format!(r#"public_origin = "{origin}""#))
        .table(format!(
            r#"
[[connection]]
name = "partner"
display_name = "Partner"
type = "oidc"
issuer = "{issuer}"
client_id = "realmgate"
{credential}
home_realm_domains = ["contoso.example"]
trusted_email = false
"#,
            issuer = provider.issuer,
        ))
        .table(echo_route("app", "rp.test").with(r#"headers = "forwarded""#));
    let gateway = TestGateway::start(&config.render_for("", &upstream.url())).await;

    // A browser-like client that follows redirects across both sites and keeps cookies.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .resolve("rp.test", gateway.addr)
        .redirect(reqwest::redirect::Policy::limited(15))
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();

    let page = client
        .get(format!("{origin}/payroll?month=11"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.url().path().starts_with("/.auth/login"),
        "at the login page: {}",
        page.url()
    );

    // Home realm discovery sends us to the provider's own login page.
    let interaction = client
        .post(format!("{origin}/.auth/login"))
        .header(ACCEPT, "text/html")
        .form(&[
            ("email", "alice@contoso.example"),
            ("post_login_redirect_uri", "/payroll?month=11"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(interaction.status(), StatusCode::OK);
    let interaction_url = interaction.url().clone();
    assert!(
        interaction_url.as_str().starts_with(&provider.issuer),
        "at the provider: {interaction_url}"
    );
    let html = interaction.text().await.unwrap();
    let action =
        form_action(&html).unwrap_or_else(|| panic!("no login form on the provider page: {html}"));
    let action = interaction_url.join(&action).unwrap();
    assert!(
        html.contains("alice@contoso.example"),
        "login_hint prefilled the provider's form"
    );

    // Sign in at the provider; consent is automatic; back through the callback
    // to the page first asked for, now served by the app.
    let landed = client
        .post(action)
        .form(&[
            ("login", "alice@contoso.example"),
            ("password", "test-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        landed.status(),
        StatusCode::OK,
        "landed at {}",
        landed.url()
    );
    assert_eq!(landed.url().as_str(), format!("{origin}/payroll?month=11"));
    let echoed = Echoed::from(landed).await;
    assert_eq!(echoed.uri(), "/payroll?month=11");
    // A generic OIDC connection: the user id is `<connection>:<sub>` (SPEC 6.1).
    assert_eq!(
        echoed.header("x-forwarded-user").as_deref(),
        Some("partner:alice")
    );
    assert_eq!(
        echoed.header("x-forwarded-email").as_deref(),
        Some("alice@contoso.example")
    );
    assert_eq!(
        echoed.header("x-forwarded-name").as_deref(),
        Some("Alice Anders")
    );
    let groups = echoed.header("x-forwarded-groups").unwrap_or_default();
    assert!(groups.contains("HR Admins"), "groups: {groups}");

    // /.auth/me, then logout: to the provider's end_session_endpoint with an
    // id_token_hint (same cookie jar, redirects not followed).
    let me = client
        .get(format!("{origin}/.auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["user_id"], "partner:alice");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["connection"], "partner");
    let no_follow = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .resolve("rp.test", gateway.addr)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let resp = no_follow
        .get(format!("{origin}/.auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = resp.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&provider.issuer),
        "RP-initiated logout at the provider: {to}"
    );
    assert!(to.contains("id_token_hint="), "{to}");
    let me = no_follow
        .get(format!("{origin}/.auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "signed out at the gateway"
    );
    gateway.stop().await;
}

/// The `action` of the first form on a page (the provider's login form).
fn form_action(html: &str) -> Option<String> {
    let form = html.find("<form")?;
    let rest = &html[form..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let start = tag.find("action=\"")? + "action=\"".len();
    let value = &tag[start..];
    let value = &value[..value.find('"')?];
    Some(value.replace("&amp;", "&"))
}
