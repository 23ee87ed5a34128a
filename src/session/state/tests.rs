use http::header::COOKIE;

use super::*;
use crate::session::cookie::tests::settings;

const S1: &str = "0123456789abcdef0123456789abcdef";
const S2: &str = "fedcba9876543210fedcba9876543210";
const NOW: u64 = 1_800_000_000;

fn states() -> StateCookies {
    StateCookies::new(&settings(&[S1], Some(".contoso.com")))
}

fn login(state: &str, created_at: u64) -> PendingLogin {
    PendingLogin {
        state: state.into(),
        nonce: format!("nonce-{state}"),
        pkce_verifier: "v".repeat(64),
        connection: "contoso".into(),
        redirect_uri: "https://hr.contoso.com/.auth/login/contoso/callback".into(),
        target: "/reports".into(),
        created_at,
    }
}

/// The request a browser sends after receiving `set` (or no cookie for a deletion).
fn browser(set: &HeaderValue) -> HeaderMap {
    let s = set.to_str().unwrap();
    let mut h = HeaderMap::new();
    if !s.contains("Max-Age=0") {
        let pair = s.split(';').next().unwrap();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
    }
    h
}

#[test]
fn a_login_round_trips_and_is_removed_when_taken() {
    let s = states();
    let set = s.add_at(&HeaderMap::new(), true, login("st-1", NOW), NOW);
    let (got, clear) = s
        .take_at(&browser(&set), true, "st-1", NOW + 5)
        .expect("pending");
    assert_eq!(got, login("st-1", NOW));
    let c = clear.to_str().unwrap();
    assert!(
        c.starts_with("__Host-realmgate_state=;") && c.contains("Max-Age=0"),
        "{c}"
    );
}

#[test]
fn https_cookie_is_host_only_secure_and_same_site_none() {
    let set = states().add_at(&HeaderMap::new(), true, login("a", NOW), NOW);
    let c = set.to_str().unwrap();
    assert!(c.starts_with("__Host-realmgate_state="));
    assert!(c.contains("; Path=/") && c.contains("; HttpOnly"));
    // Attribute order is the cookie crate's and carries no meaning.
    assert!(
        c.contains("; Secure") && c.contains("; SameSite=None"),
        "{c}"
    );
    assert!(c.contains("; Max-Age=600"));
    // Never shared with sibling hosts, even with session.cookie_domain set.
    assert!(!c.contains("Domain"));
}

#[test]
fn http_cookie_is_lax_without_secure() {
    let set = states().add_at(&HeaderMap::new(), false, login("a", NOW), NOW);
    let c = set.to_str().unwrap();
    assert!(c.starts_with("realmgate_state="));
    assert!(c.contains("; SameSite=Lax") && !c.contains("Secure"));
}

#[test]
fn at_most_three_pending_logins_are_kept_newest_first_out_last() {
    let s = states();
    let mut h = HeaderMap::new();
    for (i, st) in ["s1", "s2", "s3", "s4", "s5"].iter().enumerate() {
        let set = s.add_at(&h, true, login(st, NOW + i as u64), NOW + i as u64);
        h = browser(&set);
    }
    let t = NOW + 10;
    assert!(s.take_at(&h, true, "s1", t).is_none());
    assert!(s.take_at(&h, true, "s2", t).is_none());
    for st in ["s3", "s4", "s5"] {
        assert!(s.take_at(&h, true, st, t).is_some(), "{st}");
    }
}

#[test]
fn taking_one_keeps_the_others() {
    let s = states();
    let h = browser(&s.add_at(&HeaderMap::new(), true, login("a", NOW), NOW));
    let h = browser(&s.add_at(&h, true, login("b", NOW), NOW));
    let (_, rest) = s.take_at(&h, true, "a", NOW).unwrap();
    let h = browser(&rest);
    assert!(s.take_at(&h, true, "a", NOW).is_none(), "taken once");
    assert_eq!(s.take_at(&h, true, "b", NOW).unwrap().0.state, "b");
}

#[test]
fn expired_logins_are_refused_and_dropped() {
    let s = states();
    let h = browser(&s.add_at(&HeaderMap::new(), true, login("old", NOW), NOW));
    let late = NOW + STATE_LIFETIME.as_secs();
    assert!(s.take_at(&h, true, "old", late).is_none());
    assert!(s.take_at(&h, true, "old", late - 1).is_some());
    // Adding after expiry starts over.
    let set = s.add_at(&h, true, login("new", late), late);
    let h2 = browser(&set);
    assert!(s.take_at(&h2, true, "old", late).is_none());
    assert!(s.take_at(&h2, true, "new", late).is_some());
}

#[test]
fn logins_from_the_future_are_refused() {
    let s = states();
    let h = browser(&s.add_at(&HeaderMap::new(), true, login("f", NOW + 3600), NOW));
    assert!(s.take_at(&h, true, "f", NOW).is_none());
}

#[test]
fn wrong_empty_or_prefix_states_are_refused() {
    let s = states();
    let h = browser(&s.add_at(&HeaderMap::new(), true, login("state-123", NOW), NOW));
    for st in ["", "state-12", "state-1234", "STATE-123", "state-123\0"] {
        assert!(s.take_at(&h, true, st, NOW).is_none(), "{st:?}");
    }
}

#[test]
fn a_cookie_signed_with_another_secret_is_refused() {
    let other = StateCookies::new(&settings(&[S2], None));
    let h = browser(&other.add_at(&HeaderMap::new(), true, login("a", NOW), NOW));
    assert!(states().take_at(&h, true, "a", NOW).is_none());
}

#[test]
fn the_old_secret_still_verifies_during_rotation() {
    let old = StateCookies::new(&settings(&[S2], None));
    let rotated = StateCookies::new(&settings(&[S1, S2], None));
    let h = browser(&old.add_at(&HeaderMap::new(), true, login("a", NOW), NOW));
    assert!(rotated.take_at(&h, true, "a", NOW).is_some());
}

#[test]
fn tampered_and_malformed_cookies_are_refused() {
    let s = states();
    let set = s.add_at(&HeaderMap::new(), true, login("a", NOW), NOW);
    let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
    let (name, value) = pair.split_once('=').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(value).unwrap();
    let last = raw.len() - 3;
    raw[last] ^= 1;
    let tampered = URL_SAFE_NO_PAD.encode(&raw);
    for v in [
        tampered.as_str(),
        "",
        "abc",
        "!!!!",
        &"A".repeat(20_000),
        &value[..value.len() - 2],
    ] {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{name}={v}")).unwrap(),
        );
        assert!(s.take_at(&h, true, "a", NOW).is_none(), "{v:.40}");
    }
}

#[test]
fn forged_content_with_a_valid_format_is_refused() {
    let s = states();
    let json = serde_json::to_vec(&[login("a", NOW)]).unwrap();
    let mut raw = vec![0u8; 32];
    raw.extend_from_slice(&json);
    let mut h = HeaderMap::new();
    let v = format!("__Host-realmgate_state={}", URL_SAFE_NO_PAD.encode(raw));
    h.insert(COOKIE, HeaderValue::from_str(&v).unwrap());
    assert!(s.take_at(&h, true, "a", NOW).is_none());
}

#[test]
fn on_https_only_the_prefixed_cookie_counts() {
    let s = states();
    let plain = s.add_at(&HeaderMap::new(), false, login("a", NOW), NOW);
    let h = browser(&plain);
    assert!(s.take_at(&h, true, "a", NOW).is_none());
    assert!(s.take_at(&h, false, "a", NOW).is_some());
}

#[test]
fn duplicate_state_cookies_are_ambiguous() {
    let s = states();
    let a = s.add_at(&HeaderMap::new(), true, login("a", NOW), NOW);
    let b = s.add_at(&HeaderMap::new(), true, login("b", NOW), NOW);
    let pa = a.to_str().unwrap().split(';').next().unwrap().to_string();
    let pb = b.to_str().unwrap().split(';').next().unwrap().to_string();
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("{pa}; {pb}")).unwrap(),
    );
    assert!(s.take_at(&h, true, "a", NOW).is_none());
    assert!(s.take_at(&h, true, "b", NOW).is_none());
}

#[test]
fn the_cookie_stays_under_the_browser_limit() {
    let s = states();
    let mut h = HeaderMap::new();
    for i in 0..3 {
        let mut l = login(&format!("s{i}"), NOW);
        l.target = format!("/{}", "x".repeat(1500));
        let set = s.add_at(&h, true, l, NOW);
        assert!(set.len() < 4096, "{}", set.len());
        h = browser(&set);
    }
    // The newest login is always kept.
    assert!(s.take_at(&h, true, "s2", NOW).is_some());
    // A single huge target is replaced by `/` rather than losing the login.
    let mut huge = login("big", NOW);
    huge.target = format!("/{}", "y".repeat(5000));
    let set = s.add_at(&HeaderMap::new(), true, huge, NOW);
    assert!(set.len() < 4096);
    let (got, _) = s.take_at(&browser(&set), true, "big", NOW).unwrap();
    assert_eq!(got.target, "/");
}

/// Every attribute of the state cookie, read back by a cookie parser rather
/// than by substring.
#[test]
fn state_cookie_attributes_read_back_exactly() {
    use ::cookie::{Cookie, SameSite};
    let s = states();
    for https in [true, false] {
        let set = s.add_at(&HeaderMap::new(), https, login("a", NOW), NOW);
        let parsed = Cookie::parse(set.to_str().unwrap().to_string()).unwrap();
        assert_eq!(parsed.name(), s.name_for(https));
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!(parsed.http_only(), Some(true));
        assert_eq!(parsed.secure(), https.then_some(true));
        let same_site = if https { SameSite::None } else { SameSite::Lax };
        assert_eq!(parsed.same_site(), Some(same_site));
        assert_eq!(parsed.domain(), None);
        let max_age = parsed.max_age().map(|d| d.whole_seconds());
        assert_eq!(max_age, Some(STATE_LIFETIME.as_secs() as i64));
        let (_, clear) = s.take_at(&browser(&set), https, "a", NOW).unwrap();
        let cleared = Cookie::parse(clear.to_str().unwrap().to_string()).unwrap();
        assert_eq!(cleared.value(), "");
        assert_eq!(cleared.max_age().map(|d| d.whole_seconds()), Some(0));
    }
}
