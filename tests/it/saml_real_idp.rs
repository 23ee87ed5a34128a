//! The real SAML / WS-Federation IdP tier (issue 20): a web server built
//! from Auth0's IdP libraries (npm `samlp` and `wsfed` under Express,
//! tests/node/saml-idp-server.mjs) runs on 127.0.0.2, serves its metadata
//! over HTTP, shows a user/password login page and posts its signed answer
//! back through the browser. realmgate fetches the metadata from it like
//! from AD FS or Entra.
//!
//! Debian chromium (tests/node/saml-browser.mjs) signs in end to end
//! through SAML and WS-Fed and signs out at the IdP (SAML LogoutRequest to
//! `/.auth/saml/{name}/slo`, WS-Fed `wsignout1.0` → `wsignoutcleanup1.0`).
//! The rest walks the same pages with an HTTP client that acts as a browser
//! without script (it submits the IdP's self-posting form itself): signing
//! key rollover announced in the metadata, the IdP down, the IdP's clock
//! off. `scripts/test.sh` installs the npm packages and chromium; a missing
//! part fails the test with what to run, never skips it.

use std::process::Stdio;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::node::{node_dir, require_node_modules, run_script};
use crate::saml_idp::{idp_key, IdpKey};
use crate::signin::{location, Browser, HTML};
use crate::util::{echo_route, Echoed, ReservedPort};

/// The IdP's user (the script's default).
const LOGIN: &str = "carol@fabrikam.test";
const PASSWORD: &str = "carol-password";

enum RealIdpSuite {}
type World = crate::util::World<RealIdpSuite>;

/// tests/node/saml-idp-server.mjs on 127.0.0.2; killed on drop (and it
/// exits by itself when the test's end of its stdin closes).
struct RealIdp {
    base: String,
    child: Option<Child>,
    _keys: Vec<IdpKey>,
}

impl RealIdp {
    /// Three signing keys: 0 signs and is published; 1 is the next one
    /// (rollover); 2 is never published.
    async fn start() -> RealIdp {
        require_node_modules();
        for package in ["express", "wsfed"] {
            assert!(
                node_dir().join("node_modules").join(package).is_dir(),
                "npm package {package} is missing: run `npm ci` in {} (scripts/test.sh does it)",
                node_dir().display()
            );
        }
        let keys: Vec<IdpKey> = (0..3).map(|_| idp_key()).collect();
        let spec: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({ "cert": k.dir.path().join("cert.pem"), "key": k.dir.path().join("key.pem") })
            })
            .collect();
        let mut child = Command::new("node")
            .arg(node_dir().join("saml-idp-server.mjs"))
            .args(["--host", "127.0.0.2", "--port", "0", "--stdin-lifeline"])
            .env("SAML_IDP_KEYS", serde_json::Value::Array(spec).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (install Node.js 20+)");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).lines().next_line(),
        )
        .await
        .expect("the IdP prints READY within 30 s")
        .expect("read the IdP's stdout")
        .expect("the IdP exited before READY");
        let base = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected IdP output: {line}"))
            .trim()
            .to_string();
        RealIdp {
            base,
            child: Some(child),
            _keys: keys,
        }
    }

    fn saml_metadata_url(&self) -> String {
        format!(
            "{}/saml/FederationMetadata/2007-06/FederationMetadata.xml",
            self.base
        )
    }

    fn wsfed_metadata_url(&self) -> String {
        format!(
            "{}/wsfed/FederationMetadata/2007-06/FederationMetadata.xml",
            self.base
        )
    }

    /// POST /control (the script's test controls); the IdP's state after.
    async fn control(&self, body: serde_json::Value) -> serde_json::Value {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
            .post(format!("{}/control", self.base))
            .json(&body)
            .send()
            .await
            .expect("the IdP answers /control");
        assert_eq!(resp.status(), StatusCode::OK, "control {body}");
        resp.json().await.expect("the control answer is JSON")
    }

    /// How often each metadata document (SAML, WS-Fed) was fetched so far.
    async fn metadata_hits(&self) -> (u64, u64) {
        let state = self.control(json!({})).await;
        let hits = |kind: &str| {
            state["metadataHits"][kind]
                .as_u64()
                .unwrap_or_else(|| panic!("metadataHits.{kind} in {state}"))
        };
        (hits("saml"), hits("wsfed"))
    }

    /// The IdP goes down: its process is killed and waited for, so its port
    /// refuses connections from now on.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the IdP");
        }
    }
}

/// A SAML connection `fabrikam` (fabrikam.test) and a WS-Fed connection
/// `northwind` (northwind.test), both described by the IdP's metadata URLs.
fn connections(idp: &RealIdp) -> (String, String) {
    (
        format!(
            r#"
[[connection]]
name = "fabrikam"
display_name = "Fabrikam"
type = "saml"
idp_metadata_url = "{}"
home_realm_domains = ["fabrikam.test"]
trusted_email = true
"#,
            idp.saml_metadata_url()
        ),
        format!(
            r#"
[[connection]]
name = "northwind"
display_name = "Northwind"
type = "wsfed"
metadata_url = "{}"
realm = "urn:realmgate:apps"
home_realm_domains = ["northwind.test"]
"#,
            idp.wsfed_metadata_url()
        ),
    )
}

/// The gateway with both connections, the echo upstream on 127.0.0.1.
async fn world(idp: &RealIdp, extra: &[String]) -> World {
    let (saml, wsfed) = connections(idp);
    let mut b = World::builder().connection(saml).connection(wsfed);
    for table in extra {
        b = b.connection(table);
    }
    b.route(echo_route("app", "127.0.0.1")).start().await
}

fn url(w: &World, path: &str) -> String {
    w.gateway.url("127.0.0.1", path)
}

/// `value` of HTML text with the entities the IdP libraries' templates
/// write (ejs escapes `&<>"'`).
fn unescape(value: &str) -> String {
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The value of `attr="…"` in one tag's text.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    let len = tag[at..].find('"')?;
    Some(unescape(&tag[at..at + len]))
}

/// The IdP's self-posting answer: the form's action and its fields.
fn self_posting_form(html: &str) -> (String, Vec<(String, String)>) {
    let form_at = html
        .find("<form")
        .unwrap_or_else(|| panic!("no form in the IdP's answer:\n{html}"));
    let form_end = form_at + html[form_at..].find('>').expect("form tag ends");
    let action = attr(&html[form_at..form_end], "action").expect("form action");
    let mut fields = Vec::new();
    let mut rest = &html[form_end..];
    while let Some(at) = rest.find("<input") {
        let end = at + rest[at..].find('>').expect("input tag ends");
        let tag = &rest[at..end];
        if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((name, value));
        }
        rest = &rest[end..];
    }
    (action, fields)
}

/// A browser without script: the email box → the IdP's login page → its
/// answer posted back to the callback (the returned response).
async fn sign_in_without_script(
    w: &World,
    idp: &RealIdp,
    browser: &Browser,
    email: &str,
) -> reqwest::Response {
    let to_idp = browser
        .post_email(&url(w, "/.auth/login"), email, "/private")
        .await;
    assert!(to_idp.starts_with(&idp.base), "sent to the IdP: {to_idp}");
    let page = browser.get(&to_idp).await;
    assert_eq!(page.status(), StatusCode::OK, "the IdP's login page");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="password""#), "{html}");
    let return_to = to_idp.strip_prefix(&idp.base).expect("on the IdP");
    let resp = browser
        .client
        .post(format!("{}/login", idp.base))
        .header(ACCEPT, HTML)
        .form(&[
            ("login", LOGIN),
            ("password", PASSWORD),
            ("return", return_to),
        ])
        .send()
        .await
        .expect("the IdP takes the password");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed in at the IdP");
    let answer = browser
        .get(&format!("{}{}", idp.base, location(&resp)))
        .await;
    assert_eq!(answer.status(), StatusCode::OK, "the IdP's answer page");
    let (action, fields) = self_posting_form(&answer.text().await.unwrap());
    assert!(action.starts_with(&url(w, "/.auth/login/")), "{action}");
    browser
        .client
        .post(&action)
        .header(ACCEPT, HTML)
        .form(&fields)
        .send()
        .await
        .expect("the callback answers")
}

/// Follows what `resp` asks of a browser without script: redirects, and
/// the IdP's or gateway's self-posting forms; returns the first answer that
/// is neither (status, URL, text). Bounded: at most 8 steps.
async fn follow(browser: &Browser, mut resp: reqwest::Response) -> (StatusCode, url::Url, String) {
    for _ in 0..8 {
        let here = resp.url().clone();
        if resp.status().is_redirection() {
            let next = here.join(&location(&resp)).expect("a redirect URL");
            resp = browser.get(next.as_str()).await;
            continue;
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !(text.contains("<form") && text.contains("document.forms[0].submit()")) {
            return (status, here, text);
        }
        let (action, fields) = self_posting_form(&text);
        let action = here.join(&action).expect("a form action");
        resp = browser
            .client
            .post(action)
            .header(ACCEPT, HTML)
            .form(&fields)
            .send()
            .await
            .expect("the form's target answers");
    }
    panic!("more than 8 redirects or forms");
}

/// Signs in without script and expects to be back at `/private`.
async fn signed_in(w: &World, idp: &RealIdp, email: &str) -> Browser {
    let browser = Browser::new(&w.gateway);
    let resp = sign_in_without_script(w, idp, &browser, email).await;
    let status = resp.status();
    let to = location(&resp);
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::FOUND, "/private"),
        "signed in: {}",
        resp.text().await.unwrap_or_default()
    );
    browser
}

async fn app_sees(w: &World, browser: &Browser) -> Echoed {
    let resp = browser.get(&url(w, "/private")).await;
    assert_eq!(resp.status(), StatusCode::OK, "the app is reached");
    Echoed::from(resp).await
}

/// The gateway for Chromium, on HTTPS (a self-signed certificate the
/// browser is told to accept) in front of the demo app, which shows the
/// headers it received. HTTPS because the IdP posts its answer from another
/// site (127.0.0.2): only a `SameSite=None; Secure` state cookie goes along
/// with a cross-site POST, as with OpenID Connect's form_post.
struct ChromiumGateway {
    gateway: crate::util::TestGateway,
    _app: realmgate::demo::app::App,
    _tls: tempfile::TempDir,
}

impl ChromiumGateway {
    async fn start(idp: &RealIdp) -> ChromiumGateway {
        let app = realmgate::demo::app::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let tls = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let (cert, key) = (tls.path().join("tls.crt"), tls.path().join("tls.key"));
        std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
        std::fs::write(&cert, c.cert.pem()).unwrap();
        let (saml, wsfed) = connections(idp);
        let config = crate::util::Config::new()
            .table(format!("[server.tls]\ncert = {cert:?}\nkey = {key:?}"))
            .table(saml)
            .table(wsfed)
            .table(echo_route("app", "127.0.0.1").with(r#"headers = "forwarded""#));
        let gateway = crate::util::TestGateway::start(&config.render_for("", &app.url())).await;
        ChromiumGateway {
            gateway,
            _app: app,
            _tls: tls,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.gateway.addr.port())
    }
}

/// Runs tests/node/saml-browser.mjs; returns its stdout.
async fn chromium(args: &[String]) -> String {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian chromium is missing: apt-get install chromium (scripts/test.sh does it)"
    );
    let (ok, stdout, stderr) = run_script("saml-browser.mjs", args, Duration::from_secs(120)).await;
    assert!(ok, "browser run failed:\n{stderr}\n{stdout}");
    stdout
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn chromium_signs_in_through_a_real_saml_idp_and_its_logout_request_ends_the_session() {
    let idp = RealIdp::start().await;
    let gw = ChromiumGateway::start(&idp).await;
    let target = gw.url("/reports?quarter=3");
    let shots = tempfile::tempdir().unwrap();
    let out = chromium(&strings(&[
        "--url",
        &target,
        "--email",
        "carol@fabrikam.test",
        "--login",
        LOGIN,
        "--password",
        PASSWORD,
        "--expect-header",
        "X-Forwarded-User=fabrikam:u-carol",
        "--expect-header",
        "X-Forwarded-Email=carol@fabrikam.test",
        "--expect-header",
        "X-Forwarded-Groups~HR Admins",
        "--then-idp-logout",
        &format!("{}/saml/slo", idp.base),
        "--signed-out-text",
        "Signed out at the IdP",
        "--screenshots",
        shots.path().to_str().unwrap(),
    ]))
    .await;
    assert!(out.starts_with("OK "), "{out}");
    assert!(shots.path().join("02-idp-login.png").exists());
    gw.gateway.stop().await;
}

#[tokio::test]
async fn chromium_signs_in_through_a_real_wsfed_idp_and_wsignout_ends_the_session() {
    let idp = RealIdp::start().await;
    let gw = ChromiumGateway::start(&idp).await;
    let target = gw.url("/reports");
    let out = chromium(&strings(&[
        "--url",
        &target,
        "--email",
        "dan@northwind.test",
        "--login",
        LOGIN,
        "--password",
        PASSWORD,
        // The SAML 1.1 token's NameIdentifier (persistent) and AD FS's
        // Group claim, split into AttributeNamespace/AttributeName.
        "--expect-header",
        "X-Forwarded-User=northwind:u-carol",
        "--expect-header",
        "X-Forwarded-Groups~Finance",
        "--then-idp-logout",
        &format!("{}/wsfed?wa=wsignout1.0", idp.base),
        "--signed-out-text",
        "You are signed out",
    ]))
    .await;
    assert!(out.starts_with("OK "), "{out}");
    gw.gateway.stop().await;
}

#[tokio::test]
async fn chromium_is_shown_a_clear_refusal_when_the_idp_clock_is_far_behind() {
    let idp = RealIdp::start().await;
    // Ten minutes behind: the assertion (valid five minutes) expired
    // before it was issued, as far as realmgate's clock is concerned.
    idp.control(json!({ "clockOffsetSeconds": -600 })).await;
    let gw = ChromiumGateway::start(&idp).await;
    let target = gw.url("/reports");
    chromium(&strings(&[
        "--url",
        &target,
        "--email",
        "carol@fabrikam.test",
        "--login",
        LOGIN,
        "--password",
        PASSWORD,
        "--expect-refusal",
        "clock differ by more than 120 seconds",
        "--expect-status",
        "401",
    ]))
    .await;
    gw.gateway.stop().await;
}

/// Clock skew against the real IdP, SAML 2.0 and WS-Fed (SAML 1.1 token):
/// realmgate allows 120 s either way; beyond, the page says to check the
/// clocks.
#[tokio::test]
async fn an_idp_clock_within_the_skew_is_accepted_and_beyond_it_refused() {
    let idp = RealIdp::start().await;
    let w = world(&idp, &[]).await;
    let cases = [(-600, false), (600, false), (60, true), (-60, true)];
    for ((offset, accepted), email) in cases
        .into_iter()
        .flat_map(|c| [(c, "carol@fabrikam.test"), (c, "dan@northwind.test")])
    {
        idp.control(json!({ "clockOffsetSeconds": offset })).await;
        let browser = Browser::new(&w.gateway);
        let resp = sign_in_without_script(&w, &idp, &browser, email).await;
        let status = resp.status();
        let page = resp.text().await.unwrap_or_default();
        if accepted {
            assert_eq!(
                status,
                StatusCode::FOUND,
                "{email}, IdP clock {offset:+} s: {page}"
            );
            app_sees(&w, &browser).await;
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{email}, IdP clock {offset:+} s: {page}"
            );
            assert!(
                page.contains("differ by more than 120 seconds"),
                "{email}, IdP clock {offset:+} s: the page says what is wrong:\n{page}"
            );
            let resp = browser.get(&url(&w, "/private")).await;
            assert_eq!(resp.status(), StatusCode::FOUND, "not signed in");
        }
    }
}

/// The IdP announces its next signing certificate in its metadata (AD FS
/// does so for weeks before a rollover), then signs with it: sign-in keeps
/// working without restarting realmgate. A key the metadata never listed is
/// still refused.
#[tokio::test]
async fn a_signing_key_rollover_announced_in_the_metadata_keeps_sign_in_working() {
    let idp = RealIdp::start().await;
    idp.control(json!({ "publish": [0, 1] })).await;
    let w = world(&idp, &[]).await;
    for email in ["carol@fabrikam.test", "dan@northwind.test"] {
        let browser = signed_in(&w, &idp, email).await;
        app_sees(&w, &browser).await;
    }

    // The IdP rolls over: the new key signs, the metadata lists only it.
    idp.control(json!({ "signWith": 1, "publish": [1] })).await;
    for (email, user) in [
        ("carol@fabrikam.test", "fabrikam:u-carol"),
        ("dan@northwind.test", "northwind:u-carol"),
    ] {
        let browser = signed_in(&w, &idp, email).await;
        let echoed = app_sees(&w, &browser).await;
        assert_eq!(echoed.header("x-forwarded-user").as_deref(), Some(user));
    }

    // A key never published: the answer cannot be verified.
    idp.control(json!({ "signWith": 2 })).await;
    let browser = Browser::new(&w.gateway);
    let resp = sign_in_without_script(&w, &idp, &browser, "carol@fabrikam.test").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("could not be verified"));
}

/// The IdP publishes its next certificate only AFTER realmgate cached its
/// metadata, and signs with it at once: the first response signed by the
/// new key makes realmgate fetch the metadata again (one fetch per
/// connection) and verify once more with it, so sign-in keeps working
/// without a restart or waiting for the hourly refresh. A key the metadata
/// never lists is still refused.
#[tokio::test]
async fn a_key_published_after_the_metadata_was_cached_is_fetched_when_it_first_signs() {
    let idp = RealIdp::start().await;
    let w = world(&idp, &[]).await;
    for email in ["carol@fabrikam.test", "dan@northwind.test"] {
        let browser = signed_in(&w, &idp, email).await;
        app_sees(&w, &browser).await;
    }
    let (saml_before, wsfed_before) = idp.metadata_hits().await;

    idp.control(json!({ "publish": [0, 1], "signWith": 1 }))
        .await;
    for (email, user) in [
        ("carol@fabrikam.test", "fabrikam:u-carol"),
        ("dan@northwind.test", "northwind:u-carol"),
    ] {
        let browser = signed_in(&w, &idp, email).await;
        let echoed = app_sees(&w, &browser).await;
        assert_eq!(echoed.header("x-forwarded-user").as_deref(), Some(user));
    }
    assert_eq!(
        idp.metadata_hits().await,
        (saml_before + 1, wsfed_before + 1),
        "one refetch per connection"
    );
    // The refreshed copy serves the next sign-ins without fetching.
    signed_in(&w, &idp, "carol@fabrikam.test").await;
    assert_eq!(
        idp.metadata_hits().await,
        (saml_before + 1, wsfed_before + 1)
    );

    idp.control(json!({ "signWith": 2 })).await;
    for email in ["carol@fabrikam.test", "dan@northwind.test"] {
        let browser = Browser::new(&w.gateway);
        let resp = sign_in_without_script(&w, &idp, &browser, email).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert!(resp.text().await.unwrap().contains("could not be verified"));
    }
}

/// Hostile: a flood of responses signed by a key the IdP never publishes,
/// sent at once. Every one is refused, and the IdP's metadata is fetched
/// again at most once a minute per connection (concurrent sign-ins share
/// the one refetch).
#[tokio::test]
async fn a_flood_of_responses_signed_by_an_unknown_key_refetches_the_metadata_at_most_once_a_minute(
) {
    const FLOOD: usize = 6;
    let idp = RealIdp::start().await;
    let w = world(&idp, &[]).await;
    // The first sign-ins make sure the startup fetch is done.
    for email in ["carol@fabrikam.test", "dan@northwind.test"] {
        signed_in(&w, &idp, email).await;
    }
    let (saml_before, wsfed_before) = idp.metadata_hits().await;
    let started = std::time::Instant::now();
    idp.control(json!({ "signWith": 2 })).await;
    let one = |email: &'static str| {
        let (w, idp) = (&w, &idp);
        async move {
            let browser = Browser::new(&w.gateway);
            let resp = sign_in_without_script(w, idp, &browser, email).await;
            (resp.status(), resp.text().await.unwrap_or_default())
        }
    };
    let answers = futures_util::future::join_all(
        (0..FLOOD).flat_map(|_| [one("carol@fabrikam.test"), one("dan@northwind.test")]),
    )
    .await;
    for (status, page) in &answers {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{page}");
        assert!(page.contains("could not be verified"), "{page}");
    }
    let (saml_after, wsfed_after) = idp.metadata_hits().await;
    let minutes = started.elapsed().as_secs() / 60;
    for (kind, before, after) in [
        ("saml", saml_before, saml_after),
        ("wsfed", wsfed_before, wsfed_after),
    ] {
        let fetched = after - before;
        assert!(
            (1..=1 + minutes).contains(&fetched),
            "{kind}: {fetched} metadata fetches for {FLOOD} forged responses in {minutes} whole minute(s)"
        );
    }
}

/// The IdP down: a connection whose metadata was never fetched answers new
/// sign-ins with a clear 503 page; one fetched before keeps its copy;
/// sessions made before are unaffected.
#[tokio::test]
async fn an_idp_that_is_down_gives_a_clear_503_and_leaves_sessions_alone() {
    let mut idp = RealIdp::start().await;
    // A third connection whose metadata URL nothing listens on: down from
    // the start.
    let nobody = ReservedPort::new();
    let down = format!(
        r#"
[[connection]]
name = "tailspin"
type = "saml"
idp_metadata_url = "http://127.0.0.1:{}/FederationMetadata.xml"
home_realm_domains = ["tailspin.test"]
"#,
        nobody.port()
    );
    let w = world(&idp, &[down]).await;
    let browser = Browser::new(&w.gateway);
    let resp = browser
        .client
        .post(url(&w, "/.auth/login"))
        .header(ACCEPT, HTML)
        .form(&[
            ("email", "eve@tailspin.test"),
            ("post_login_redirect_uri", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("identity provider cannot be reached"),
        "says what is wrong:\n{page}"
    );

    // carol signs in through SAML while the IdP is up; then it goes down.
    let carol = signed_in(&w, &idp, "carol@fabrikam.test").await;
    idp.stop().await;
    let echoed = app_sees(&w, &carol).await;
    assert_eq!(
        echoed.header("x-forwarded-user").as_deref(),
        Some("fabrikam:u-carol"),
        "the session outlives the IdP"
    );
    let (status, me) = carol.me(&url(&w, "/.auth/me")).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // The WS-Fed connection fetched its metadata when the gateway started
    // (background refresh) and keeps that copy while the IdP is down: its
    // sign-ins are still sent to the IdP (nothing here can tell it is down
    // without probing it), and carol's session is still there.
    let resp = Browser::new(&w.gateway)
        .client
        .post(url(&w, "/.auth/login"))
        .header(ACCEPT, HTML)
        .form(&[
            ("email", "dan@northwind.test"),
            ("post_login_redirect_uri", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert!(
        location(&resp).starts_with(&idp.base),
        "the kept metadata still names the IdP: {}",
        location(&resp)
    );
    app_sees(&w, &carol).await;
}

/// The IdP is set up from realmgate's SP metadata, as an IdP admin would
/// (entity id, ACS, single logout URL, signing certificate). It checks
/// realmgate's signed AuthnRequest (HTTP-Redirect query signature,
/// RSA-SHA256) and signed LogoutResponse with that certificate; its
/// LogoutRequest over HTTP-POST (enveloped signature) ends the session of
/// that IdP session only (SessionIndex), not the user's others. With
/// another certificate registered, the IdP refuses realmgate's requests.
#[tokio::test]
async fn the_idp_registers_realmgate_from_its_sp_metadata_and_verifies_its_signatures() {
    let sp = idp_key();
    let idp = RealIdp::start().await;
    idp.control(json!({ "sloBinding": "post" })).await;
    let (saml, _) = connections(&idp);
    let w: World = World::builder()
        .connection(format!(
            "{saml}sp_key_file = {:?}\nsp_certificate_file = {:?}\n",
            sp.dir.path().join("key.pem"),
            sp.dir.path().join("cert.pem")
        ))
        .route(echo_route("app", "127.0.0.1"))
        .start()
        .await;
    let sp_metadata = url(&w, "/.auth/saml/fabrikam/metadata");
    idp.control(json!({ "registerSp": sp_metadata })).await;
    let carol = signed_in(&w, &idp, "carol@fabrikam.test").await;
    app_sees(&w, &carol).await;
    // carol on another device: another IdP session, another SessionIndex.
    let laptop = signed_in(&w, &idp, "carol@fabrikam.test").await;

    // Signed out at the IdP: its LogoutRequest is posted to the single
    // logout URL from the SP metadata, and the IdP accepts realmgate's
    // signed LogoutResponse.
    let resp = carol.get(&format!("{}/saml/slo", idp.base)).await;
    let (status, at, page) = follow(&carol, resp).await;
    assert_eq!(status, StatusCode::OK, "{at}: {page}");
    assert!(
        at.as_str().starts_with(&idp.base) && page.contains("Signed out at the IdP"),
        "the IdP took realmgate's LogoutResponse: {at}\n{page}"
    );
    let resp = carol.get(&url(&w, "/private")).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "the session ended");
    // Only the session of that IdP session (SessionIndex) ended.
    app_sees(&w, &laptop).await;

    // The IdP admin registered another certificate for realmgate: the IdP
    // refuses its AuthnRequests.
    let wrong = idp_key();
    idp.control(
        json!({ "registerSp": sp_metadata, "certFile": wrong.dir.path().join("cert.pem") }),
    )
    .await;
    let browser = Browser::new(&w.gateway);
    let to_idp = browser
        .post_email(&url(&w, "/.auth/login"), "carol@fabrikam.test", "/private")
        .await;
    let page = browser.get(&to_idp).await;
    assert_eq!(page.status(), StatusCode::OK, "the IdP's login page");
    let resp = browser
        .client
        .post(format!("{}/login", idp.base))
        .form(&[
            ("login", LOGIN),
            ("password", PASSWORD),
            ("return", to_idp.strip_prefix(&idp.base).unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = browser
        .get(&format!("{}{}", idp.base, location(&resp)))
        .await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        status.is_server_error() && text.contains("Signature check errors"),
        "the IdP refuses a request it cannot verify: {status} {text}"
    );
}

/// The user cancels at the IdP's login page: the IdP posts a signed
/// Response with a failed status and no assertion; realmgate says the IdP
/// did not complete the sign-in (401), not that it could not verify it.
#[tokio::test]
async fn a_sign_in_cancelled_at_the_idp_says_the_idp_did_not_complete_it() {
    let idp = RealIdp::start().await;
    let w = world(&idp, &[]).await;
    let browser = Browser::new(&w.gateway);
    let to_idp = browser
        .post_email(&url(&w, "/.auth/login"), "carol@fabrikam.test", "/private")
        .await;
    let page = browser.get(&to_idp).await;
    assert_eq!(page.status(), StatusCode::OK, "the IdP's login page");
    let resp = browser
        .client
        .post(format!("{}/login", idp.base))
        .header(ACCEPT, HTML)
        .form(&[
            ("cancel", "1"),
            ("return", to_idp.strip_prefix(&idp.base).unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let (status, at, page) = follow(&browser, resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{at}: {page}");
    assert!(
        at.path().ends_with("/callback") && page.contains("did not complete the sign-in"),
        "{at}: {page}"
    );
    let resp = browser.get(&url(&w, "/private")).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "not signed in");
}
