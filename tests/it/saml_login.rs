//! SAML 2.0 and WS-Federation sign-in end to end through an in-process
//! gateway (SPEC 9): the sign-in page's email box routes to a SAML (or
//! WS-Fed) connection, the AuthnRequest goes out over HTTP-Redirect, npm
//! samlp (a third-party IdP implementation, tests/node/saml-idp.mjs) signs
//! the answer, and the ACS turns it into a session with identity headers at
//! the app. Then the ways it must fail: replay, a response to another
//! request, a tampered one, no IdP metadata (503); the SP metadata
//! endpoint; the IdP's LogoutRequest and WS-Fed sign-out ending the session.

use base64::Engine as _;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::saml_idp::{idp_key, samlp_sign, IdpKey, Signed, IDP};
use crate::signin::{location, Browser, HTML};
use crate::util::{echo_route, Echoed};

const HOST: &str = "app.test";

enum SamlLogin {}
type World = crate::util::World<SamlLogin>;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A SAML connection `fabrikam` (fabrikam.test) and a WS-Fed connection
/// `northwind` (northwind.test), both trusting `key`'s certificate.
fn connections(key: &IdpKey, extra: &str) -> (String, String) {
    let cert = key.dir.path().join("cert.pem");
    let saml = format!(
        r#"
[[connection]]
name = "fabrikam"
type = "saml"
idp_entity_id = "{IDP}"
idp_sso_url = "https://idp.samlp.test/sso"
idp_certificate_file = "{cert}"
home_realm_domains = ["fabrikam.test"]
trusted_email = true
{extra}
"#,
        cert = cert.display()
    );
    // WS-Fed takes metadata only (FederationMetadata.xml, as AD FS serves it).
    let metadata = key.dir.path().join("FederationMetadata.xml");
    std::fs::write(
        &metadata,
        format!(
            r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><RoleDescriptor xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706" xsi:type="fed:SecurityTokenServiceType" protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706"><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo></KeyDescriptor><fed:PassiveRequestorEndpoint><wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>https://idp.samlp.test/wsfed</wsa:Address></wsa:EndpointReference></fed:PassiveRequestorEndpoint></RoleDescriptor></EntityDescriptor>"#,
            b64().encode(&key.cert_der)
        ),
    )
    .expect("metadata file");
    let wsfed = format!(
        r#"
[[connection]]
name = "northwind"
type = "wsfed"
metadata_file = "{}"
realm = "urn:realmgate:apps"
home_realm_domains = ["northwind.test"]
"#,
        metadata.display()
    );
    (saml, wsfed)
}

impl World {
    async fn start(key: &IdpKey) -> World {
        World::start_with(key, "").await
    }

    async fn start_with(key: &IdpKey, saml_extra: &str) -> World {
        let (saml, wsfed) = connections(key, saml_extra);
        World::builder()
            .connection(saml)
            .connection(wsfed)
            .route(echo_route("app", HOST))
            .start()
            .await
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    fn acs(&self, name: &str) -> String {
        self.url(&format!("/.auth/login/{name}/callback"))
    }

    /// `/private` -> the sign-in page -> `email` typed in its box -> the
    /// redirect to the IdP (returned).
    async fn start_sign_in(&self, browser: &Browser, email: &str) -> url::Url {
        let resp = browser.get(&self.url("/private")).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "sent to sign in");
        let login = location(&resp);
        let page = browser.get(&self.url(&login)).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("name=\"email\""));
        let to_idp = browser
            .post_email(&self.url("/.auth/login"), email, "/private")
            .await;
        url::Url::parse(&to_idp).expect("an absolute redirect to the IdP")
    }
}

fn param(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} in {url}"))
}

/// The ID of the AuthnRequest carried by an HTTP-Redirect URL.
fn authn_request_id(to_idp: &url::Url) -> String {
    use std::io::Read as _;
    let deflated = b64()
        .decode(param(to_idp, "SAMLRequest"))
        .expect("SAMLRequest is base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .expect("SAMLRequest is deflated XML");
    assert!(xml.starts_with("<samlp:AuthnRequest"), "{xml}");
    let start = xml.find(" ID=\"").expect("an ID") + 5;
    let len = xml[start..].find('"').expect("closed");
    xml[start..start + len].to_string()
}

/// Posts the IdP's answer to the ACS as the browser's auto-submitted form.
async fn post_to(browser: &Browser, acs: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser
        .client
        .post(acs)
        .header(ACCEPT, HTML)
        .form(form)
        .send()
        .await
        .expect("ACS answers")
}

/// Signs carol in at `fabrikam`: returns the browser (signed in) and the
/// response the IdP made (for replays).
async fn saml_sign_in(w: &World, key: &IdpKey) -> (Browser, String) {
    let browser = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&browser, "carol@fabrikam.test").await;
    assert!(
        to_idp
            .as_str()
            .starts_with("https://idp.samlp.test/sso?SAMLRequest="),
        "an AuthnRequest over HTTP-Redirect: {to_idp}"
    );
    let id = authn_request_id(&to_idp);
    let relay = param(&to_idp, "RelayState");
    let xml = samlp_sign(
        key,
        &Signed {
            issuer: IDP,
            audience: &w.url("/.auth/saml/fabrikam"),
            acs: &w.acs("fabrikam"),
            in_response_to: Some(&id),
            sign_response: false,
        },
    )
    .await;
    let response = b64().encode(&xml);
    let resp = post_to(
        &browser,
        &w.acs("fabrikam"),
        &[("SAMLResponse", &response), ("RelayState", &relay)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND, "the ACS signs carol in");
    assert_eq!(
        location(&resp),
        "/private",
        "back to the page first asked for"
    );
    (browser, response)
}

async fn app_sees(w: &World, browser: &Browser) -> Echoed {
    let resp = browser.get(&w.url("/private")).await;
    assert_eq!(resp.status(), StatusCode::OK, "the app is reached");
    Echoed::from(resp).await
}

#[tokio::test]
async fn saml_sign_in_from_the_email_box_reaches_the_app_with_identity_headers() {
    let key = idp_key();
    let w = World::start(&key).await;
    let (browser, _) = saml_sign_in(&w, &key).await;
    let echoed = app_sees(&w, &browser).await;
    // SPEC 6.1: `<connection>:<subject>` (persistent NameID u-123).
    assert_eq!(
        echoed.header("x-forwarded-user").as_deref(),
        Some("fabrikam:u-123")
    );
    assert_eq!(
        echoed.header("x-forwarded-email").as_deref(),
        Some("carol@fabrikam.test"),
        "trusted_email: the email is passed on"
    );
    let (status, me) = browser.me(&w.url("/.auth/me")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["connection"], "fabrikam", "{me}");
}

#[tokio::test]
async fn a_replayed_saml_response_is_refused_with_a_clear_page() {
    let key = idp_key();
    let w = World::start(&key).await;
    let (_, response) = saml_sign_in(&w, &key).await;
    // Another browser starts its own sign-in and presents the old response
    // with its own fresh RelayState: the InResponseTo and the assertion ID
    // are both spent.
    let other = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&other, "carol@fabrikam.test").await;
    let relay = param(&to_idp, "RelayState");
    let resp = post_to(
        &other,
        &w.acs("fabrikam"),
        &[("SAMLResponse", &response), ("RelayState", &relay)],
    )
    .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(
        resp.text().await.unwrap().contains("Sign-in"),
        "a page says so"
    );
    let resp = other.get(&w.url("/private")).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "not signed in");
}

#[tokio::test]
async fn the_same_assertion_twice_is_refused_even_for_its_own_request() {
    let key = idp_key();
    let w = World::start(&key).await;
    let browser = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&browser, "carol@fabrikam.test").await;
    let id = authn_request_id(&to_idp);
    let xml = samlp_sign(
        &key,
        &Signed {
            issuer: IDP,
            audience: &w.url("/.auth/saml/fabrikam"),
            acs: &w.acs("fabrikam"),
            in_response_to: Some(&id),
            sign_response: false,
        },
    )
    .await;
    let response = b64().encode(&xml);
    let relay = param(&to_idp, "RelayState");
    let form = [("SAMLResponse", response.as_str()), ("RelayState", &relay)];
    let first = post_to(&browser, &w.acs("fabrikam"), &form).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let second = post_to(&browser, &w.acs("fabrikam"), &form).await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST, "replayed");
}

#[tokio::test]
async fn a_response_to_another_request_or_tampered_is_refused() {
    let key = idp_key();
    let w = World::start(&key).await;
    let sign = |irt: &'static str| {
        let audience = w.url("/.auth/saml/fabrikam");
        let acs = w.acs("fabrikam");
        let key = &key;
        async move {
            samlp_sign(
                key,
                &Signed {
                    issuer: IDP,
                    audience: &audience,
                    acs: &acs,
                    in_response_to: Some(irt),
                    sign_response: false,
                },
            )
            .await
        }
    };
    // Wrong InResponseTo: a request this browser never started.
    let browser = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&browser, "carol@fabrikam.test").await;
    let relay = param(&to_idp, "RelayState");
    let other = b64().encode(sign("_some_other_request").await);
    let resp = post_to(
        &browser,
        &w.acs("fabrikam"),
        &[("SAMLResponse", &other), ("RelayState", &relay)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "wrong InResponseTo");
    let page = resp.text().await.unwrap();
    assert!(page.contains("does not belong to the sign-in"), "{page}");

    // Tampered: a signed value changed after signing.
    let browser = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&browser, "carol@fabrikam.test").await;
    let id = authn_request_id(&to_idp);
    let relay = param(&to_idp, "RelayState");
    let good = samlp_sign(
        &key,
        &Signed {
            issuer: IDP,
            audience: &w.url("/.auth/saml/fabrikam"),
            acs: &w.acs("fabrikam"),
            in_response_to: Some(&id),
            sign_response: false,
        },
    )
    .await;
    let evil = b64().encode(good.replace("carol@fabrikam.test", "admin@fabrikam.test"));
    let resp = post_to(
        &browser,
        &w.acs("fabrikam"),
        &[("SAMLResponse", &evil), ("RelayState", &relay)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "tampered");
    assert!(resp.text().await.unwrap().contains("could not be verified"));

    // No RelayState at all (an unsolicited response): refused before any check.
    let fresh = Browser::new(&w.gateway);
    let resp = post_to(&fresh, &w.acs("fabrikam"), &[("SAMLResponse", &evil)]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "IdP-initiated");
}

#[tokio::test]
async fn wsfed_sign_in_and_sign_out_through_the_callback() {
    let key = idp_key();
    let w = World::start(&key).await;
    let browser = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&browser, "dan@northwind.test").await;
    assert!(
        to_idp.as_str().starts_with("https://idp.samlp.test/wsfed?"),
        "{to_idp}"
    );
    assert_eq!(param(&to_idp, "wa"), "wsignin1.0");
    assert_eq!(param(&to_idp, "wtrealm"), "urn:realmgate:apps");
    assert_eq!(param(&to_idp, "wreply"), w.acs("northwind"));
    let wctx = param(&to_idp, "wctx");
    // The IdP's token: a SAML 2.0 assertion samlp signed (no InResponseTo
    // in WS-Fed), in a RequestSecurityTokenResponse.
    let response = samlp_sign(
        &key,
        &Signed {
            issuer: IDP,
            audience: "urn:realmgate:apps",
            acs: &w.acs("northwind"),
            in_response_to: None,
            sign_response: false,
        },
    )
    .await;
    let start = response.find("<saml:Assertion").expect("assertion");
    let end = response.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
    let wresult = format!(
        r#"<t:RequestSecurityTokenResponse xmlns:t="http://schemas.xmlsoap.org/ws/2005/02/trust"><t:RequestedSecurityToken>{}</t:RequestedSecurityToken></t:RequestSecurityTokenResponse>"#,
        &response[start..end]
    );
    let resp = post_to(
        &browser,
        &w.acs("northwind"),
        &[("wa", "wsignin1.0"), ("wresult", &wresult), ("wctx", &wctx)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND, "the token signs in");
    assert_eq!(location(&resp), "/private");
    let echoed = app_sees(&w, &browser).await;
    assert_eq!(
        echoed.header("x-forwarded-user").as_deref(),
        Some("northwind:u-123")
    );
    assert_eq!(
        echoed.header("x-forwarded-email"),
        None,
        "no trusted_email: an email from WS-Fed is not passed on as verified"
    );

    // The same token again, with a new sign-in's wctx: refused.
    let again = Browser::new(&w.gateway);
    let to_idp = w.start_sign_in(&again, "dan@northwind.test").await;
    let wctx = param(&to_idp, "wctx");
    let resp = post_to(
        &again,
        &w.acs("northwind"),
        &[("wa", "wsignin1.0"), ("wresult", &wresult), ("wctx", &wctx)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "replayed token");

    // Started by a page of another site (a link anywhere carries the Lax
    // cookie on a top-level GET): the confirmation page, nothing ends.
    let resp = browser
        .client
        .get(w.url("/.auth/login/northwind/callback?wa=wsignoutcleanup1.0"))
        .header("sec-fetch-site", "cross-site")
        .header("referer", "https://evil.example/page")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("set-cookie").is_none(),
        "the cookie stays"
    );
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("action=\"&#x2f;.auth&#x2f;logout\""),
        "{page}"
    );
    assert_eq!(
        browser.get(&w.url("/private")).await.status(),
        StatusCode::OK,
        "still signed in"
    );
    // wsignoutcleanup1.0 at the callback ends the session.
    let resp = browser
        .get(&w.url("/.auth/login/northwind/callback?wa=wsignoutcleanup1.0"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = browser.get(&w.url("/private")).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed out");
}

#[tokio::test]
async fn sp_metadata_is_served_for_the_idp_admin() {
    let key = idp_key();
    let w = World::start(&key).await;
    let resp = reqwest_client(&w)
        .get(w.url("/.auth/saml/fabrikam/metadata"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    let xml = resp.text().await.unwrap();
    assert!(
        xml.contains(&format!(r#"entityID="{}""#, w.url("/.auth/saml/fabrikam"))),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(r#"Location="{}""#, w.acs("fabrikam"))),
        "{xml}"
    );
    assert!(xml.contains(&format!(
        r#"Location="{}""#,
        w.url("/.auth/saml/fabrikam/slo")
    )));
    // No such endpoint, no such connection, a WS-Fed connection: 404.
    for path in [
        "/.auth/saml/fabrikam/nothing",
        "/.auth/saml/nobody/metadata",
        "/.auth/saml/northwind/metadata",
    ] {
        let resp = reqwest_client(&w).get(w.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

fn reqwest_client(w: &World) -> reqwest::Client {
    Browser::new(&w.gateway).client
}

#[tokio::test]
async fn an_idp_logout_request_ends_the_session_by_session_index() {
    let key = idp_key();
    let w = World::start(&key).await;
    let (browser, _) = saml_sign_in(&w, &key).await;
    app_sees(&w, &browser).await;

    // The IdP's LogoutRequest over HTTP-Redirect, signed with its key
    // (SAML bindings 3.4.4.1), naming the SessionIndex samlp issued.
    let slo = w.url("/.auth/saml/fabrikam/slo");
    let request = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr1" Version="2.0" IssueInstant="{}" Destination="{slo}"><saml:Issuer>{IDP}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">u-123</saml:NameID><samlp:SessionIndex>_idp_session_7</samlp:SessionIndex></samlp:LogoutRequest>"#,
        realmgate::saml::binding::instant(now())
    );
    let pem = std::fs::read_to_string(key.dir.path().join("key.pem")).unwrap();
    let signer = realmgate::saml::binding::SpSigner::from_pem(&pem).expect("IdP key");
    let url = realmgate::saml::binding::redirect_url(
        &slo,
        "SAMLRequest",
        &request,
        Some("rs1"),
        Some(&signer),
    )
    .expect("redirect URL");
    // Unsigned: refused, the session stays.
    let unsigned =
        realmgate::saml::binding::redirect_url(&slo, "SAMLRequest", &request, None, None).unwrap();
    let resp = browser.get(&unsigned).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "unsigned LogoutRequest"
    );
    app_sees(&w, &browser).await;

    // Signed by the IdP (no SLO endpoint known for it: a signed-out page).
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(resp.status(), StatusCode::OK, "LogoutRequest accepted");
    let resp = browser.get(&w.url("/private")).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "the session ended");
}

#[tokio::test]
async fn unreachable_idp_metadata_without_a_copy_is_a_503() {
    let key = idp_key();
    // The IdP's metadata URL answers 503 (it is down), and no good copy
    // was ever fetched.
    let (url, server) =
        crate::saml_idp::metadata_server(std::sync::Arc::new(std::sync::Mutex::new(None))).await;
    let table = format!(
        r#"
[[connection]]
name = "down"
type = "saml"
idp_metadata_url = "{url}"
home_realm_domains = ["down.test"]
"#
    );
    let (saml, _) = connections(&key, "");
    let w: World = World::builder()
        .connection(saml)
        .connection(table)
        .route(echo_route("app", HOST))
        .start()
        .await;
    let browser = Browser::new(&w.gateway);
    let resp = browser
        .client
        .post(w.url("/.auth/login"))
        .header(ACCEPT, HTML)
        .form(&[("email", "eve@down.test"), ("post_login_redirect_uri", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The other connection is unaffected.
    saml_sign_in(&w, &key).await;
    server.abort();
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `realmgate test-connection` on a SAML connection: the metadata is fetched
/// and what sign-in will use is printed; an IdP that is down is a PROBLEM.
#[tokio::test]
async fn test_connection_fetches_and_checks_the_metadata() {
    use std::sync::{Arc, Mutex};
    let key = idp_key();
    let body = Arc::new(Mutex::new(None::<String>));
    let (url, server) = crate::saml_idp::metadata_server(body.clone()).await;
    let settings = realmgate::config::load_str(&format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"

[[connection]]
name = "fabrikam"
type = "saml"
idp_metadata_url = "{url}"

[[route]]
name = "app"
hosts = ["{HOST}"]
upstream = "http://127.0.0.1:9"
"#
    ))
    .expect("valid config");
    let conn = settings.connection("fabrikam").expect("connection");

    let mut out = Vec::new();
    assert!(!realmgate::saml::check::test_connection(conn, &mut out).await);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("PROBLEM") && text.contains("503"), "{text}");

    *body.lock().unwrap() = Some(crate::saml_idp::metadata_xml(&key.cert_der));
    let mut out = Vec::new();
    assert!(realmgate::saml::check::test_connection(conn, &mut out).await);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("IdP entity id: {IDP}"))
            && text.contains("IdP sign-in URL: https://idp.samlp.test/sso")
            && text.contains("OK"),
        "{text}"
    );
    server.abort();
}
