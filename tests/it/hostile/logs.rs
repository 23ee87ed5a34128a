//! Log scan (SPEC 2 and 6): a whole sign-in, the app behind it with tokens
//! passed, `/.auth/me`, `/.auth/verify`, a hostile callback and a logout,
//! with JSON logs captured at debug level. Not one secret, token, cookie
//! value, authorization code, state, nonce or email may appear in them.
//! (`proxying.rs` checks the access line alone at info level.)

use std::sync::Arc;

use reqwest::header::{ACCEPT, COOKIE};
use reqwest::StatusCode;

use super::{location, param, session_cookie, World, ALICE, EASY_HOST, HTML};
use crate::util::{wait_until, Echoed, DEADLINE, SECRET};

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything secret one sign-in produced.
#[derive(Default)]
struct Secrets(Vec<(&'static str, String)>);

impl Secrets {
    fn add(&mut self, what: &'static str, value: impl Into<String>) {
        let value = value.into();
        assert!(
            value.len() >= 8,
            "{what} too short to search for: {value:?}"
        );
        self.0.push((what, value));
    }
}

/// One sign-in through easy.test (tokens passed to the app), collecting its secrets.
async fn sign_in_and_use(w: &World, secrets: &mut Secrets) {
    let browser = w.browser();
    let start = browser.get(&w.url("/.auth/login/contoso")).await;
    assert_eq!(start.status(), StatusCode::FOUND);
    let state_cookie = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("realmgate_state="))
        .and_then(|c| c.split(';').next())
        .expect("a state cookie")
        .to_string();
    let authorize = location(&start);
    secrets.add("state cookie", state_cookie);
    secrets.add("state", param(&authorize, "state").unwrap());
    secrets.add("nonce", param(&authorize, "nonce").unwrap());
    secrets.add(
        "PKCE challenge",
        param(&authorize, "code_challenge").unwrap(),
    );
    let back = w.idp.complete_login(&authorize, ALICE).unwrap();
    secrets.add("authorization code", back.code.clone());
    let done = browser.get(&back.url).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let session = session_cookie(done.headers()).expect("signed in");
    secrets.add("session cookie", session.clone());

    // The app gets the tokens (pass_id_token/pass_access_token on easy.test).
    let resp = browser
        .client
        .get(w.gateway.url(EASY_HOST, "/report"))
        .header(COOKIE, format!("realmgate={session}"))
        .header("authorization", "Bearer client-sent-bearer-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let e = Echoed::from(resp).await;
    let id_token = e.header("x-ms-token-aad-id-token").expect("id token");
    let access_token = e
        .header("x-ms-token-aad-access-token")
        .expect("access token");
    // The signature part of each JWT is unique to it; the payload too.
    for part in id_token.split('.').skip(1) {
        secrets.add("ID token part", part.to_string());
    }
    secrets.add("access token", access_token);
    secrets.add("client bearer token", "client-sent-bearer-token-123");

    for path in ["/.auth/me", "/.auth/verify", "/.auth/refresh"] {
        let resp = browser.get(&w.url(path)).await;
        let s = resp.status();
        assert!(
            s.is_success() || s == StatusCode::UNAUTHORIZED,
            "{path}: {s}"
        );
    }
    // A replayed callback and a garbage cookie: the failure paths log too.
    let replay = browser.get(&back.url).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let garbage = w
        .bare()
        .get(w.url("/secret"))
        .header(COOKIE, "realmgate=garbage-cookie-value-xyz; other=1")
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::FOUND);
    secrets.add("garbage cookie", "garbage-cookie-value-xyz");
    let unknown = w
        .bare()
        .post(w.url("/.auth/login"))
        .form(&[("email", "nobody@unknown-domain.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::OK);
    secrets.add("unknown email", "nobody@unknown-domain.example");
    let logout = browser.get(&w.url("/.auth/logout")).await;
    assert!(logout.status().is_redirection());
}

// current_thread: the gateway's and the IdP's tasks run on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_whole_sign_in_at_debug_level_logs_no_secret_token_cookie_code_or_email() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_target(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let w = World::start().await;
    let mut secrets = Secrets::default();
    // tracing caches per call site whether anyone listens, and a test running
    // in parallel may register a call site first: one warm-up sign-in
    // registers them all, then the cache is rebuilt and everything is measured.
    sign_in_and_use(&w, &mut secrets).await;
    tracing::callsite::rebuild_interest_cache();
    sign_in_and_use(&w, &mut secrets).await;

    let complete = wait_until(DEADLINE, || captured.text().contains("signed out")).await;
    let all = captured.text();
    assert!(complete, "the logout was not logged:\n{all}");
    // The scan means something: sign-ins, failures and access lines were logged.
    for expected in ["sign-in started", "\"access\"", "sign-in failed"] {
        assert!(
            all.contains(expected),
            "no {expected:?} in the logs:\n{all}"
        );
    }
    secrets.add("session secret", SECRET);
    secrets.add("client secret", realmgate::demo::idp::DEMO_CLIENT_SECRET);
    secrets.add("email", ALICE);
    secrets.add("email domain part", "@contoso.example");
    for (what, value) in &secrets.0 {
        if let Some(at) = all.find(value.as_str()) {
            let from = all[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = all[at..].find('\n').map_or(all.len(), |i| at + i);
            panic!("{what} was logged:\n{}", &all[from..to]);
        }
    }
}
