//! Sessions: fixation with a planted cookie (made up, or the attacker's own
//! valid session), replay after logout on every door (app, `/.auth/verify`,
//! `/.auth/me`, `/.auth/refresh`), replay after the absolute lifetime and the
//! idle timeout, a valid id re-tagged with another deployment's secret,
//! oversized and many-times-repeated cookies. `login_flow.rs` already covers
//! flipped, truncated, duplicated and empty cookie values and a new id at
//! every login.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{ACCEPT, COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use super::{session_cookie, World, ALICE, BOB, HOST};
use crate::util::{raw_exchange, raw_status};

/// `/.auth/me` for a raw Cookie header: the user id, or None when signed out.
async fn who(w: &World, cookie: &str) -> Option<String> {
    let resp = w
        .bare()
        .get(w.url("/.auth/me"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    match resp.status() {
        StatusCode::OK => {
            let me: Value = resp.json().await.unwrap();
            Some(me["user_id"].as_str().unwrap().to_string())
        }
        StatusCode::UNAUTHORIZED => None,
        other => panic!("/.auth/me answered {other}"),
    }
}

/// Every door a session cookie opens, with `cookie`: none may let it in.
async fn assert_locked_out(w: &World, cookie: &str, what: &str) {
    assert_eq!(who(w, cookie).await, None, "{what}: /.auth/me");
    let app = w
        .bare()
        .get(w.url("/secret"))
        .header(COOKIE, cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), StatusCode::UNAUTHORIZED, "{what}: app");
    let verify = w
        .bare()
        .get(w.url("/.auth/verify"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), StatusCode::UNAUTHORIZED, "{what}: verify");
    assert!(verify.headers().get("x-auth-request-user").is_none());
    let refresh = w
        .bare()
        .get(w.url("/.auth/refresh"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refresh.status(),
        StatusCode::UNAUTHORIZED,
        "{what}: refresh"
    );
}

#[tokio::test]
async fn a_planted_cookie_is_replaced_at_login_and_never_becomes_the_victims_session() {
    let w = World::start().await;
    // The attacker's own valid session, and a made-up value of the right shape.
    let attacker = w.signed_in(BOB).await;
    let attacker_value = attacker.session(&w).unwrap();
    let bob_id = who(&w, &format!("realmgate={attacker_value}"))
        .await
        .unwrap();
    let made_up = URL_SAFE_NO_PAD.encode([7u8; 64]);
    for planted in [attacker_value.clone(), made_up] {
        let victim = w.browser();
        let url: url::Url = w.url("/").parse().unwrap();
        victim
            .jar
            .add_cookie_str(&format!("realmgate={planted}; Path=/"), &url);
        let authorize = victim.authorize_url(&w, "contoso").await;
        let back = w.idp.complete_login(&authorize, ALICE).unwrap();
        let resp = victim.get(&back.url).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        let issued = session_cookie(resp.headers()).expect("a new session cookie");
        assert_ne!(issued, planted, "the planted id was kept");
        let alice_id = who(&w, &format!("realmgate={issued}")).await.unwrap();
        assert_ne!(alice_id, bob_id);
        // The planted cookie is still the attacker's (or nobody's), never Alice's.
        let planted_is = who(&w, &format!("realmgate={planted}")).await;
        assert_ne!(planted_is.as_deref(), Some(alice_id.as_str()));
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn a_cookie_replayed_after_logout_opens_no_door() {
    let w = World::start().await;
    for by_post in [false, true] {
        let browser = w.signed_in(ALICE).await;
        let cookie = format!("realmgate={}", browser.session(&w).unwrap());
        assert!(who(&w, &cookie).await.is_some());
        let logout = if by_post {
            browser.client.post(w.url("/.auth/logout")).send().await
        } else {
            browser.client.get(w.url("/.auth/logout")).send().await
        }
        .unwrap();
        assert!(logout.status().is_redirection() || logout.status().is_success());
        assert_locked_out(
            &w,
            &cookie,
            if by_post { "POST logout" } else { "GET logout" },
        )
        .await;
    }
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn a_cookie_replayed_after_the_lifetime_or_the_idle_timeout_opens_no_door() {
    // Absolute lifetime: 2 s, however busy the session is.
    let w = World::start_with("", "lifetime = \"2s\"\nidle_timeout = \"2s\"").await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    assert!(who(&w, &cookie).await.is_some());
    let mut expired = false;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        // Keep it busy: activity must not extend the absolute lifetime.
        if who(&w, &cookie).await.is_none() {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(expired, "the session outlived its lifetime");
    assert_locked_out(&w, &cookie, "after lifetime").await;

    // Idle timeout: 1 s without requests ends a session whose lifetime is long.
    let w = World::start_with("", "lifetime = \"1h\"\nidle_timeout = \"1s\"").await;
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    assert!(who(&w, &cookie).await.is_some());
    // Idle time is the condition itself: nothing to poll for.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_locked_out(&w, &cookie, "after idle timeout").await;
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn a_real_session_id_tagged_with_another_secret_is_refused() {
    let w = World::start().await;
    let browser = w.signed_in(ALICE).await;
    let value = browser.session(&w).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
    assert_eq!(raw.len(), 64);
    let id: [u8; 32] = raw[..32].try_into().unwrap();
    // The same id as another deployment (another secret) would write it.
    let other = realmgate::config::load_str(
        r#"
[session]
secret = "another-deployments-secret-0123456789abcdef"

[[connection]]
name = "x"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "x"

[[route]]
name = "x"
hosts = ["x.test"]
upstream = "http://127.0.0.1:9"
"#,
    )
    .unwrap();
    let foreign = realmgate::session::cookie::SessionCookies::new(&other.session)
        .value(&realmgate::session::store::SessionId::from_bytes(id));
    assert_ne!(foreign, value);
    assert_eq!(&URL_SAFE_NO_PAD.decode(&foreign).unwrap()[..32], &id[..]);
    assert_locked_out(&w, &format!("realmgate={foreign}"), "foreign tag").await;
    // The id alone, or with a zero tag, is nothing either.
    let bare_id = URL_SAFE_NO_PAD.encode(id);
    assert_locked_out(&w, &format!("realmgate={bare_id}"), "id without tag").await;
    let mut zero_tag = raw.clone();
    zero_tag[32..].fill(0);
    let zero = URL_SAFE_NO_PAD.encode(zero_tag);
    assert_locked_out(&w, &format!("realmgate={zero}"), "zero tag").await;
    // The genuine cookie still works (the checks above are not vacuous).
    assert!(who(&w, &format!("realmgate={value}")).await.is_some());
    w.upstream.assert_received_nothing().await;
}

#[tokio::test]
async fn oversized_and_repeated_cookies_are_refused_or_signed_out_never_an_error() {
    let w = World::start().await;
    let browser = w.signed_in(ALICE).await;
    let good = browser.session(&w).unwrap();
    // Many cookies of other names around the real one: still signed in, and
    // the app gets the others but not realmgate's.
    let crowd: String = (0..300).map(|i| format!("c{i}=v{i}; ")).collect();
    let resp = w
        .bare()
        .get(w.url("/secret"))
        .header(COOKIE, format!("{crowd}realmgate={good}"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let e = crate::util::Echoed::from(resp).await;
    let sent = e.header_all("cookie").join("; ");
    assert!(sent.contains("c299=v299"), "other cookies pass");
    assert!(!sent.contains(&good), "the session cookie reached the app");
    assert_eq!(w.upstream.count(), 1);
    // Hundreds of realmgate cookies, quoted, or split over Cookie headers.
    let cases = [
        (0..500)
            .map(|_| format!("realmgate={good}"))
            .collect::<Vec<_>>()
            .join("; "),
        format!("realmgate=\"{good}\""),
        format!("realmgate={good}; realmgate={good}"),
        format!("REALMGATE={good}"),
        format!(" realmgate = {good} "),
        format!("realmgate={good};realmgate_state=x"),
        format!("realmgate={}", "%".repeat(3000)),
    ];
    for cookie in &cases {
        let resp = w
            .bare()
            .get(w.url("/secret"))
            .header(COOKIE, cookie)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        let s = resp.status();
        assert!(
            s == StatusCode::UNAUTHORIZED
                || s == StatusCode::OK
                || s == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{cookie:.80}: {s}"
        );
        if s == StatusCode::OK {
            // Only the exact-duplicate cases may be read as the session, and
            // then realmgate's cookies still never reach the app.
            let e = crate::util::Echoed::from(resp).await;
            assert!(!e.header_all("cookie").join(";").contains(&good));
        }
    }
    // A Cookie header beyond max_header_bytes: 431 on the wire, app untouched.
    let before = w.upstream.count();
    let huge = format!("realmgate={good}; pad={}", "p".repeat(100_000));
    let raw = raw_exchange(
        w.gateway.addr,
        format!(
            "GET /secret HTTP/1.1\r\nHost: {HOST}\r\nCookie: {huge}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&raw), Some(431), "{raw:.200}");
    assert_eq!(
        w.upstream.count(),
        before,
        "the app got the oversized request"
    );
}
