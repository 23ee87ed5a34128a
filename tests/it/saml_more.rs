//! SAML features beyond the SP-initiated sign-in (issue 20), end to end
//! through an in-process gateway, with npm samlp (tests/node/saml-idp.mjs)
//! signing the IdP's answers:
//!
//! - IdP-initiated sign-in: accepted only with `allow_idp_initiated`, the
//!   RelayState checked like every return URL, each response once;
//!   refused plainly otherwise.
//! - SP-initiated single logout: `/.auth/logout` sends a signed
//!   LogoutRequest naming the NameID and SessionIndex; the IdP's
//!   LogoutResponse must answer it, in this browser.
//! - The IdP's LogoutRequest is accepted once.

use base64::Engine as _;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::saml_idp::{idp_key, samlp_sign, IdpKey, Signed, IDP};
use crate::signin::{location, Browser, HTML};
use crate::util::echo_route;

const HOST: &str = "app.test";
const IDP_SLO: &str = "https://idp.samlp.test/slo";

enum SamlMore {}
type World = crate::util::World<SamlMore>;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A SAML connection `fabrikam` trusting `idp`, with the IdP's SLO
/// endpoint and `sp`'s key as the SP key; `extra` lines added.
async fn world(idp: &IdpKey, sp: &IdpKey, extra: &str) -> World {
    world_with(idp, sp, extra, "").await
}

/// [`world`] with more top-level tables (`[log]` for the audit trail).
async fn world_with(idp: &IdpKey, sp: &IdpKey, extra: &str, tables: &str) -> World {
    builder(idp, sp, extra)
        .table(tables.to_string())
        .start()
        .await
}

/// The builder of [`world`] (more `[session]` lines can be added).
fn builder(idp: &IdpKey, sp: &IdpKey, extra: &str) -> crate::util::WorldBuilder {
    let saml = format!(
        r#"
[[connection]]
name = "fabrikam"
type = "saml"
idp_entity_id = "{IDP}"
idp_sso_url = "https://idp.samlp.test/sso"
idp_slo_url = "{IDP_SLO}"
idp_certificate_file = "{cert}"
sp_key_file = "{sp_key}"
sp_certificate_file = "{sp_cert}"
home_realm_domains = ["fabrikam.test"]
{extra}
"#,
        cert = idp.dir.path().join("cert.pem").display(),
        sp_key = sp.dir.path().join("key.pem").display(),
        sp_cert = sp.dir.path().join("cert.pem").display(),
    );
    World::builder()
        .connection(saml)
        .route(echo_route("app", HOST))
}

impl World {
    fn url(&self, path: &str) -> String {
        self.gateway.url(HOST, path)
    }

    fn acs(&self) -> String {
        self.url("/.auth/login/fabrikam/callback")
    }

    async fn respond(&self, idp: &IdpKey, in_response_to: Option<&str>) -> String {
        let xml = samlp_sign(
            idp,
            &Signed {
                issuer: IDP,
                audience: &self.url("/.auth/saml/fabrikam"),
                acs: &self.acs(),
                in_response_to,
                sign_response: false,
            },
        )
        .await;
        b64().encode(xml)
    }
}

async fn post(browser: &Browser, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser
        .client
        .post(url)
        .header(ACCEPT, HTML)
        .form(form)
        .send()
        .await
        .expect("ACS answers")
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The XML a redirect-bound `param` carries.
fn inflate(url: &url::Url, name: &str) -> String {
    use std::io::Read as _;
    let deflated = b64()
        .decode(param(url, name).expect("the message"))
        .expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .expect("deflated XML");
    xml
}

fn attr(xml: &str, name: &str) -> String {
    let start = xml
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("{name} in {xml}"))
        + name.len()
        + 3;
    let len = xml[start..].find('"').expect("closed");
    xml[start..start + len].to_string()
}

async fn signed_in(w: &World, browser: &Browser) -> bool {
    browser.get(&w.url("/private")).await.status() == StatusCode::OK
}

#[tokio::test]
async fn idp_initiated_sign_in_lands_on_a_checked_relay_state_once() {
    let (idp, sp) = (idp_key(), idp_key());
    let w = world(&idp, &sp, "allow_idp_initiated = true").await;

    // The IdP's portal posts an unsolicited response; RelayState is the
    // page to land on.
    let browser = Browser::new(&w.gateway);
    let response = w.respond(&idp, None).await;
    let resp = post(
        &browser,
        &w.acs(),
        &[
            ("SAMLResponse", &response),
            ("RelayState", "/private?from=tile"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND, "IdP-initiated accepted");
    assert_eq!(location(&resp), "/private?from=tile");
    assert!(signed_in(&w, &browser).await);

    // The same response again (another browser): the replay cache refuses it.
    let other = Browser::new(&w.gateway);
    let resp = post(&other, &w.acs(), &[("SAMLResponse", &response)]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "replayed");
    assert!(!signed_in(&w, &other).await);

    // A RelayState off this gateway's hosts lands on `/`, not there.
    for relay in [
        "https://evil.test/",
        "//evil.test/x",
        "/\\evil.test",
        "javascript:alert(1)",
    ] {
        let browser = Browser::new(&w.gateway);
        let response = w.respond(&idp, None).await;
        let resp = post(
            &browser,
            &w.acs(),
            &[("SAMLResponse", &response), ("RelayState", relay)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{relay}");
        assert_eq!(location(&resp), "/", "{relay}");
    }
    // No RelayState: `/`.
    let browser = Browser::new(&w.gateway);
    let response = w.respond(&idp, None).await;
    let resp = post(&browser, &w.acs(), &[("SAMLResponse", &response)]).await;
    assert_eq!(location(&resp), "/");

    // An unsolicited response may not claim to answer a request.
    let browser = Browser::new(&w.gateway);
    let response = w.respond(&idp, Some("_never_sent")).await;
    let resp = post(
        &browser,
        &w.acs(),
        &[("SAMLResponse", &response), ("RelayState", "/private")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(!signed_in(&w, &browser).await);
}

#[tokio::test]
async fn idp_initiated_is_refused_plainly_unless_allowed() {
    let (idp, sp) = (idp_key(), idp_key());
    let w = world(&idp, &sp, "").await;
    let browser = Browser::new(&w.gateway);
    let response = w.respond(&idp, None).await;
    let resp = post(
        &browser,
        &w.acs(),
        &[("SAMLResponse", &response), ("RelayState", "/private")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let page = resp.text().await.unwrap();
    assert!(page.contains("portal"), "says why: {page}");
    assert!(
        page.replace("&#x2f;", "/")
            .contains(r#"href="/.auth/login/fabrikam""#),
        "offers to start here: {page}"
    );
    assert!(!signed_in(&w, &browser).await);

    // A solicited response whose sign-in this browser no longer holds is
    // an expired sign-in, not an IdP-initiated one.
    let response = w.respond(&idp, Some("_lost")).await;
    let resp = post(
        &browser,
        &w.acs(),
        &[("SAMLResponse", &response), ("RelayState", "_gone")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Sign-in expired"), "{page}");
}

/// Signs carol in SP-initiated; returns the browser.
async fn sp_sign_in(w: &World, idp: &IdpKey) -> Browser {
    let browser = Browser::new(&w.gateway);
    let resp = browser
        .get(&w.url("/.auth/login/fabrikam?rd=/private"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to_idp = url::Url::parse(&location(&resp)).expect("to the IdP");
    let request_id = attr(&inflate(&to_idp, "SAMLRequest"), "ID");
    let relay = param(&to_idp, "RelayState").expect("RelayState");
    let response = w.respond(idp, Some(&request_id)).await;
    let resp = post(
        &browser,
        &w.acs(),
        &[("SAMLResponse", &response), ("RelayState", &relay)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
    assert!(signed_in(w, &browser).await);
    browser
}

/// The IdP's LogoutResponse to `in_response_to`, over HTTP-Redirect signed
/// with its key, to this gateway's SLO endpoint.
fn logout_response(w: &World, idp: &IdpKey, in_response_to: &str, relay: &str) -> String {
    let slo = w.url("/.auth/saml/fabrikam/slo");
    let xml = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{slo}" InResponseTo="{in_response_to}"><saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
        realmgate::saml::binding::new_request_id(),
        realmgate::saml::binding::instant(now())
    );
    let pem = std::fs::read_to_string(idp.dir.path().join("key.pem")).unwrap();
    let signer = realmgate::saml::binding::SpSigner::from_pem(&pem).expect("IdP key");
    realmgate::saml::binding::redirect_url(&slo, "SAMLResponse", &xml, Some(relay), Some(&signer))
        .expect("redirect URL")
}

#[tokio::test]
async fn sp_initiated_logout_sends_a_signed_logout_request_and_checks_the_answer() {
    let (idp, sp) = (idp_key(), idp_key());
    let w = world(&idp, &sp, "").await;
    let browser = sp_sign_in(&w, &idp).await;

    let resp = browser
        .get(&w.url("/.auth/logout?post_logout_redirect_uri=/bye"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to_idp = url::Url::parse(&location(&resp)).expect("to the IdP");
    assert!(
        to_idp
            .as_str()
            .starts_with(&format!("{IDP_SLO}?SAMLRequest=")),
        "{to_idp}"
    );
    // Signed with the SP key (the IdP checks it with the SP certificate).
    let sp_trust = realmgate::saml::IdpTrust::from_pem(
        &std::fs::read_to_string(sp.dir.path().join("cert.pem")).unwrap(),
    )
    .expect("SP cert");
    let raw = realmgate::saml::slo::verify_redirect(to_idp.query().unwrap(), &sp_trust)
        .expect("a LogoutRequest signed with sp_key_file");
    let xml = String::from_utf8(raw).unwrap();
    assert!(xml.starts_with("<samlp:LogoutRequest"), "{xml}");
    assert!(
        xml.contains(
            r#"Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">u-123</saml:NameID>"#
        ),
        "the NameID as the IdP sent it: {xml}"
    );
    assert!(
        xml.contains("<samlp:SessionIndex>_idp_session_7</samlp:SessionIndex>"),
        "{xml}"
    );
    assert_eq!(attr(&xml, "Destination"), IDP_SLO);
    let request_id = attr(&xml, "ID");
    let relay = param(&to_idp, "RelayState").expect("RelayState");
    // Signed out here already.
    assert!(!signed_in(&w, &browser).await);

    // An answer to another request, or in another browser: refused.
    let wrong = logout_response(&w, &idp, "_other", &relay);
    assert_eq!(
        browser.get(&wrong).await.status(),
        StatusCode::BAD_REQUEST,
        "another InResponseTo"
    );
    // Start again (a new sign-in, a new logout) for the other cases.
    let browser = sp_sign_in(&w, &idp).await;
    let resp = browser.get(&w.url("/.auth/logout")).await;
    let to_idp = url::Url::parse(&location(&resp)).expect("to the IdP");
    let xml = inflate(&to_idp, "SAMLRequest");
    let request_id_2 = attr(&xml, "ID");
    assert_ne!(request_id, request_id_2);
    let relay = param(&to_idp, "RelayState").expect("RelayState");
    let answer = logout_response(&w, &idp, &request_id_2, &relay);
    let elsewhere = Browser::new(&w.gateway);
    assert_eq!(
        elsewhere.get(&answer).await.status(),
        StatusCode::BAD_REQUEST,
        "another browser"
    );
    // Unsigned: refused.
    let unsigned = answer.split("&SigAlg=").next().unwrap().to_string();
    assert_eq!(
        browser.get(&unsigned).await.status(),
        StatusCode::BAD_REQUEST
    );

    // The right answer in the right browser: the signed-out page (no target given).
    let resp = browser.get(&answer).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(location(&resp), "/.auth/logout/done");
    // Once.
    assert_eq!(browser.get(&answer).await.status(), StatusCode::BAD_REQUEST);
}

/// A gateway whose SAML connection names no IdP SLO endpoint (and has no SP
/// key), with `extra` lines in the connection.
async fn world_without_idp_slo(idp: &IdpKey, extra: &str) -> World {
    let saml = format!(
        r#"
[[connection]]
name = "fabrikam"
type = "saml"
idp_entity_id = "{IDP}"
idp_sso_url = "https://idp.samlp.test/sso"
idp_certificate_file = "{cert}"
home_realm_domains = ["fabrikam.test"]
{extra}
"#,
        cert = idp.dir.path().join("cert.pem").display(),
    );
    World::builder()
        .connection(saml)
        .route(echo_route("app", HOST))
        .start()
        .await
}

#[tokio::test]
async fn without_an_idp_slo_endpoint_logout_stays_local() {
    let idp = idp_key();
    let w = world_without_idp_slo(&idp, "").await;
    let browser = sp_sign_in(&w, &idp).await;
    let resp = browser.get(&w.url("/.auth/logout")).await;
    assert_eq!(resp.status(), StatusCode::OK, "the signed-out page");
    assert!(!signed_in(&w, &browser).await);
}

#[tokio::test]
async fn an_idp_logout_request_is_accepted_once() {
    let (idp, sp) = (idp_key(), idp_key());
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let log = format!("[log]\naudit = {:?}\n", audit.to_str().unwrap());
    let w = world_with(&idp, &sp, "", &log).await;
    let browser = sp_sign_in(&w, &idp).await;
    let slo = w.url("/.auth/saml/fabrikam/slo");
    let request = |id: &str, issued: u64| {
        format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{}" Destination="{slo}"><saml:Issuer>{IDP}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">u-123</saml:NameID><samlp:SessionIndex>_idp_session_7</samlp:SessionIndex></samlp:LogoutRequest>"#,
            realmgate::saml::binding::instant(issued)
        )
    };
    let pem = std::fs::read_to_string(idp.dir.path().join("key.pem")).unwrap();
    let signer = realmgate::saml::binding::SpSigner::from_pem(&pem).expect("IdP key");
    let url = realmgate::saml::binding::redirect_url(
        &slo,
        "SAMLRequest",
        &request("_lr_once", now()),
        None,
        Some(&signer),
    )
    .expect("redirect URL");
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "answered at the IdP's SLO"
    );
    let back = url::Url::parse(&location(&resp)).expect("to the IdP");
    assert!(back.as_str().starts_with(IDP_SLO), "{back}");
    let answer = inflate(&back, "SAMLResponse");
    assert_eq!(attr(&answer, "InResponseTo"), "_lr_once");
    assert!(!signed_in(&w, &browser).await, "the session ended");
    // An audit event, like every front-channel logout.
    let text = std::fs::read_to_string(&audit).unwrap();
    let ended: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|e| e["event"] == "frontchannel_logout")
        .collect();
    assert_eq!(ended.len(), 1, "{text}");
    assert_eq!(ended[0]["connection"], "fabrikam");
    assert_eq!(ended[0]["ended"], 1, "{text}");

    // The same request again, after carol signed in again: refused, and
    // her new session stays.
    let browser = sp_sign_in(&w, &idp).await;
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "replayed");
    assert!(signed_in(&w, &browser).await);

    // A request issued long ago is refused too.
    let url = realmgate::saml::binding::redirect_url(
        &slo,
        "SAMLRequest",
        &request("_lr_old", now() - 3600),
        None,
        Some(&signer),
    )
    .expect("redirect URL");
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "stale");
    assert!(signed_in(&w, &browser).await);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The IdP's LogoutRequest without SessionIndex for `name_id`, over
/// HTTP-Redirect signed with its key, to this gateway's SLO endpoint.
fn logout_request_without_index(w: &World, idp: &IdpKey, id: &str, name_id: &str) -> String {
    signed_logout_request(w, idp, id, name_id, None)
}

/// The IdP's LogoutRequest `id` for `name_id` (and `session_index`), over
/// HTTP-Redirect signed with its key, to this gateway's SLO endpoint.
fn signed_logout_request(
    w: &World,
    idp: &IdpKey,
    id: &str,
    name_id: &str,
    session_index: Option<&str>,
) -> String {
    let slo = w.url("/.auth/saml/fabrikam/slo");
    let index = session_index
        .map(|i| format!("<samlp:SessionIndex>{i}</samlp:SessionIndex>"))
        .unwrap_or_default();
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{}" Destination="{slo}"><saml:Issuer>{IDP}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">{name_id}</saml:NameID>{index}</samlp:LogoutRequest>"#,
        realmgate::saml::binding::instant(now())
    );
    let pem = std::fs::read_to_string(idp.dir.path().join("key.pem")).unwrap();
    let signer = realmgate::saml::binding::SpSigner::from_pem(&pem).expect("IdP key");
    realmgate::saml::binding::redirect_url(&slo, "SAMLRequest", &xml, None, Some(&signer))
        .expect("redirect URL")
}

/// The status codes (top level first) of the LogoutResponse `resp`
/// redirects to the IdP with, answering `request_id`.
fn logout_answer(resp: &reqwest::Response, request_id: &str) -> Vec<String> {
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "answered at the IdP's SLO"
    );
    let back = url::Url::parse(&location(resp)).expect("to the IdP");
    assert!(back.as_str().starts_with(IDP_SLO), "{back}");
    let answer = inflate(&back, "SAMLResponse");
    assert_eq!(attr(&answer, "InResponseTo"), request_id);
    answer
        .split("<samlp:StatusCode Value=\"")
        .skip(1)
        .map(|s| s.split('"').next().expect("closed").to_string())
        .collect()
}

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
const PARTIAL: &str = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout";

/// With `attributes.user_id` mapped, sessions are kept under that
/// attribute's value, not under the NameID: an IdP LogoutRequest without
/// SessionIndex ends the session of the browser it comes through when that
/// session carries the request's NameID, never the session of a user whose
/// attribute happens to equal the NameID, and answers PartialLogout when
/// it could end nothing.
#[tokio::test]
async fn a_logout_request_without_session_index_ends_the_browsers_session_when_user_id_is_mapped() {
    let (idp, sp) = (idp_key(), idp_key());
    // carol: NameID u-123, user id fabrikam:carol@fabrikam.test.
    let w = world(
        &idp,
        &sp,
        r#"attributes = { user_id = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress" }"#,
    )
    .await;
    let first = sp_sign_in(&w, &idp).await;
    let second = sp_sign_in(&w, &idp).await;

    // Another user, whose NameID equals carol's email, is signed out at the
    // IdP (through a browser without a session here): carol's sessions are
    // not that user's, and nothing is ended, so not Success.
    let url = logout_request_without_index(&w, &idp, "_lr_other_user", "carol@fabrikam.test");
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(logout_answer(&resp, "_lr_other_user"), [RESPONDER, PARTIAL]);
    assert!(signed_in(&w, &first).await, "another user's logout");
    assert!(signed_in(&w, &second).await, "another user's logout");

    // A request naming another NameID through carol's browser: her session stays.
    let url = logout_request_without_index(&w, &idp, "_lr_other_name", "u-999");
    let resp = first.get(&url).await;
    assert_eq!(logout_answer(&resp, "_lr_other_name"), [RESPONDER, PARTIAL]);
    assert!(signed_in(&w, &first).await, "another NameID");

    // carol's own logout through her first browser ends that session, and
    // only that one (the other browser's is not reachable without a
    // SessionIndex).
    let url = logout_request_without_index(&w, &idp, "_lr_carol", "u-123");
    let resp = first.get(&url).await;
    assert_eq!(logout_answer(&resp, "_lr_carol"), [SUCCESS]);
    assert!(!signed_in(&w, &first).await, "the browser's session ended");
    assert!(signed_in(&w, &second).await);

    // The same logout again through the browser now signed out: nothing
    // matched, so not Success.
    let url = logout_request_without_index(&w, &idp, "_lr_carol_again", "u-123");
    let resp = first.get(&url).await;
    assert_eq!(
        logout_answer(&resp, "_lr_carol_again"),
        [RESPONDER, PARTIAL]
    );
    assert!(signed_in(&w, &second).await);
}

/// Two replicas sharing sessions through Redis, with `attributes.user_id`
/// mapped: carol signs in at one, the IdP's LogoutRequest without
/// SessionIndex comes through her browser to the other, which ends her
/// session there (her other browser's stays), everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_request_without_session_index_at_another_replica_ends_the_browsers_session() {
    let (idp, sp) = (idp_key(), idp_key());
    let redis = crate::redis_util::RedisServer::start().await;
    // A long local cache: only an invalidation ends a cached session soon.
    let session = format!(
        "store = \"redis\"\nredis_url = \"{}\"\nredis_cache_ttl = \"30s\"",
        redis.url()
    );
    let mapped = r#"attributes = { user_id = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress" }"#;
    let a: World = builder(&idp, &sp, mapped).session(&session).start().await;
    let b: World = builder(&idp, &sp, mapped).session(&session).start().await;
    let first = sp_sign_in(&a, &idp).await;
    let second = sp_sign_in(&a, &idp).await;
    // The same browser at replica b: its cookie, sent to b's address.
    let cookie = first.cookie_header(&a.url("/private"));
    let at_b = Browser::new(&b.gateway);
    // A GET of `url` at replica b with this browser's cookie.
    let get_at_b = |url: String| {
        let (at_b, cookie) = (&at_b, &cookie);
        async move {
            at_b.client
                .get(&url)
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
                .expect("replica b answers")
        }
    };
    let signed_in_at_b = || async { get_at_b(b.url("/private")).await.status() == StatusCode::OK };
    assert!(signed_in_at_b().await, "one session, both replicas");

    // A LogoutRequest without SessionIndex for `name_id`, through this
    // browser at replica b.
    let logout_at_b = |id: &'static str, name_id: &'static str| {
        get_at_b(logout_request_without_index(&b, &idp, id, name_id))
    };
    // Another NameID through carol's browser at b: her session stays.
    let resp = logout_at_b("_lr_b_other", "u-999").await;
    assert_eq!(logout_answer(&resp, "_lr_b_other"), [RESPONDER, PARTIAL]);
    assert!(signed_in(&a, &first).await);

    let resp = logout_at_b("_lr_b_carol", "u-123").await;
    assert_eq!(logout_answer(&resp, "_lr_b_carol"), [SUCCESS]);
    assert!(!signed_in_at_b().await, "ended at b");
    // At a, where it was cached: ended within the deadline.
    let until = std::time::Instant::now() + crate::util::DEADLINE;
    while signed_in(&a, &first).await {
        assert!(
            std::time::Instant::now() < until,
            "the session still served at replica a"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        signed_in(&a, &second).await,
        "the other browser's session stays"
    );
    drop(redis);
}

/// The IdP's LogoutRequest that the session store failed half-way (a 503:
/// the sessions could not be listed to end them) is taken when the browser
/// retries it, and is a replay only once its sessions have ended; before,
/// the retry was refused as a replay and the session lived on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idp_logout_request_the_store_failed_half_way_is_taken_when_retried() {
    let (idp, sp) = (idp_key(), idp_key());
    let redis = crate::redis_util::RedisServer::start().await;
    let session = format!(
        "store = \"redis\"\nredis_url = \"{}\"\nredis_cache_ttl = \"30s\"",
        redis.url()
    );
    let w: World = builder(&idp, &sp, "").session(&session).start().await;
    let browser = sp_sign_in(&w, &idp).await;
    let url = signed_logout_request(&w, &idp, "_lr_half_way", "u-123", Some("_idp_session_7"));
    assert!(redis
        .command("ACL SETUSER default -smembers")
        .await
        .contains("OK"));
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(signed_in(&w, &browser).await, "nothing ended");
    assert!(redis
        .command("ACL SETUSER default +smembers")
        .await
        .contains("OK"));
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(logout_answer(&resp, "_lr_half_way"), [SUCCESS]);
    assert!(!signed_in(&w, &browser).await, "the session ended");
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "replayed");
    drop(redis);
}

/// Without the IdP's SLO endpoint the answer is a page: it does not say
/// "signed out" when a LogoutRequest without SessionIndex ended nothing.
#[tokio::test]
async fn without_an_idp_slo_endpoint_an_unmatched_logout_request_does_not_say_signed_out() {
    let idp = idp_key();
    let w = world_without_idp_slo(
        &idp,
        r#"attributes = { user_id = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress" }"#,
    )
    .await;
    let browser = sp_sign_in(&w, &idp).await;
    let page = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), StatusCode::OK, "a page");
        resp.text().await.expect("the page")
    };
    let url = logout_request_without_index(&w, &idp, "_lr_page_other", "u-999");
    let text = page(browser.get(&url).await).await;
    assert!(text.contains("Sign-out not confirmed"), "{text}");
    assert!(!text.contains("You are signed out"), "{text}");
    assert!(signed_in(&w, &browser).await);

    let url = logout_request_without_index(&w, &idp, "_lr_page_carol", "u-123");
    let text = page(browser.get(&url).await).await;
    assert!(text.contains("You are signed out"), "{text}");
    assert!(!signed_in(&w, &browser).await);
}

/// The HTTP-Redirect signature covers `RelayState`; a second one spelled
/// `Relay%53tate` (the form reader decodes names, the signature check did
/// not) beside a signed LogoutRequest was not signed, yet came back to the
/// IdP in realmgate's own signed LogoutResponse. Now it is the request's
/// `RelayState` for the signature too, which then does not verify (review
/// 13, H2).
#[tokio::test]
async fn an_unsigned_relay_state_spelled_with_an_escape_is_not_echoed_under_our_signature() {
    let (idp, sp) = (idp_key(), idp_key());
    let w = world_with(&idp, &sp, "", "").await;
    let browser = sp_sign_in(&w, &idp).await;
    let url = signed_logout_request(&w, &idp, "_lr_rs", "u-123", Some("_idp_session_7"));
    let tampered = format!("{url}&Relay%53tate=https%3A%2F%2Fevil.test%2F");
    let resp = Browser::new(&w.gateway).get(&tampered).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "an unsigned RelayState must not ride along: {:?}",
        resp.headers().get("location")
    );
    assert!(signed_in(&w, &browser).await);
    // The request as the IdP signed it still works.
    let resp = Browser::new(&w.gateway).get(&url).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = url::Url::parse(&location(&resp)).unwrap();
    assert!(back.query_pairs().all(|(k, _)| k != "RelayState"), "{back}");
    assert!(!signed_in(&w, &browser).await);
}
