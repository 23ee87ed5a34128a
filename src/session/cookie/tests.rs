use std::time::Duration;

use http::header::SET_COOKIE;

use super::*;
use crate::config::{Secret, StoreSettings};

pub(crate) fn settings(secrets: &[&str], domain: Option<&str>) -> SessionSettings {
    SessionSettings {
        secrets: secrets
            .iter()
            .map(|s| Secret::new(s.as_bytes().to_vec()))
            .collect(),
        cookie_name: "realmgate".into(),
        cookie_domain: domain.map(String::from),
        lifetime: Duration::from_secs(8 * 3600),
        idle_timeout: Duration::from_secs(3600),
        store: StoreSettings::Memory { max_entries: 1000 },
        refresh_tokens: true,
    }
}

const S1: &str = "0123456789abcdef0123456789abcdef";
const S2: &str = "fedcba9876543210fedcba9876543210";

fn cookies() -> SessionCookies {
    SessionCookies::new(&settings(&[S1], None))
}

fn with_cookie(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_str(value).unwrap());
    h
}

/// `name=value` from a Set-Cookie header.
fn pair(set_cookie: &HeaderValue) -> String {
    set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_set_cookie_round_trips_over_https() {
    let c = cookies();
    let id = SessionId::generate();
    let set = c.set(&id, true);
    assert!(pair(&set).starts_with("__Host-realmgate="));
    let h = with_cookie(&format!("theme=dark; {}", pair(&set)));
    assert_eq!(c.read(&h), Some(id.clone()));
    assert_eq!(c.read_for(&h, true), Some(id));
}

#[test]
fn a_set_cookie_round_trips_over_http() {
    let c = cookies();
    let id = SessionId::generate();
    let set = c.set(&id, false);
    assert!(pair(&set).starts_with("realmgate="));
    let h = with_cookie(&pair(&set));
    assert_eq!(c.read(&h), Some(id.clone()));
    assert_eq!(c.read_for(&h, false), Some(id));
}

#[test]
fn https_attributes() {
    let set = cookies().set(&SessionId::generate(), true);
    let s = set.to_str().unwrap();
    assert!(s.contains("; Path=/"));
    assert!(s.contains("; HttpOnly"));
    assert!(s.contains("; Secure"));
    assert!(s.contains("; SameSite=Lax"));
    assert!(!s.contains("Domain"));
    assert!(!s.contains("Max-Age"));
    assert_eq!(pair(&set).len(), "__Host-realmgate=".len() + 86);
}

#[test]
fn http_attributes_have_no_secure_flag() {
    let s = cookies().set(&SessionId::generate(), false);
    let s = s.to_str().unwrap();
    assert!(!s.contains("Secure"));
    assert!(s.contains("; HttpOnly") && s.contains("; SameSite=Lax") && s.contains("; Path=/"));
}

#[test]
fn cookie_domain_drops_the_host_prefix_and_sets_domain() {
    let c = SessionCookies::new(&settings(&[S1], Some(".contoso.com")));
    let id = SessionId::generate();
    let set = c.set(&id, true);
    let s = set.to_str().unwrap();
    assert!(s.starts_with("realmgate="));
    // The cookie crate writes the domain without the leading dot, which user
    // agents ignore anyway (RFC 6265 5.2.3) and the server grammar omits.
    assert!(s.contains("; Domain=contoso.com"), "{s}");
    assert!(s.contains("; Secure"));
    assert_eq!(c.read_for(&with_cookie(&pair(&set)), true), Some(id));
}

#[test]
fn clear_expires_the_cookie_with_the_same_attributes() {
    let c = cookies();
    let s = c.clear(true);
    let s = s.to_str().unwrap();
    assert!(s.starts_with("__Host-realmgate=;"));
    assert!(s.contains("; Max-Age=0") && s.contains("; Path=/") && s.contains("; Secure"));
    assert!(c.clear(false).to_str().unwrap().starts_with("realmgate=;"));
}

#[test]
fn the_old_secret_still_verifies_and_the_new_one_signs() {
    let old = SessionCookies::new(&settings(&[S2], None));
    let rotated = SessionCookies::new(&settings(&[S1, S2], None));
    let id = SessionId::generate();
    let old_cookie = pair(&old.set(&id, true));
    assert_eq!(rotated.read(&with_cookie(&old_cookie)), Some(id.clone()));
    // The rotated config signs with S1: a config that only knows S2 refuses it.
    let new_cookie = pair(&rotated.set(&id, true));
    assert_ne!(new_cookie, old_cookie);
    assert_eq!(old.read(&with_cookie(&new_cookie)), None);
    assert_eq!(cookies().read(&with_cookie(&new_cookie)), Some(id));
}

#[test]
fn another_secret_is_refused() {
    let other = SessionCookies::new(&settings(&[S2], None));
    let set = other.set(&SessionId::generate(), true);
    assert_eq!(cookies().read(&with_cookie(&pair(&set))), None);
}

#[test]
fn tampered_malformed_and_oversized_values_are_refused() {
    let c = cookies();
    let good = c.value(&SessionId::generate());
    let mut flipped = good.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut tag_flipped = good.clone().into_bytes();
    tag_flipped[80] = if tag_flipped[80] == b'A' { b'B' } else { b'A' };
    let tag_flipped = String::from_utf8(tag_flipped).unwrap();
    for v in [
        flipped.as_str(),
        tag_flipped.as_str(),
        "",
        "x",
        &good[..85],
        &format!("{good}A"),
        &format!("{good}{good}"),
        &"A".repeat(86),
        &"!".repeat(86),
        &format!("\"{}\"", &good[..84]),
        &"A".repeat(10_000),
    ] {
        let h = with_cookie(&format!("__Host-realmgate={v}"));
        assert_eq!(c.read(&h), None, "{v:?}");
    }
}

#[test]
fn a_value_under_another_cookie_name_is_refused() {
    let a = cookies();
    let mut s = settings(&[S1], None);
    s.cookie_name = "other".into();
    let b = SessionCookies::new(&s);
    let v = b.value(&SessionId::generate());
    assert_eq!(a.read(&with_cookie(&format!("realmgate={v}"))), None);
}

#[test]
fn duplicate_cookies_with_different_values_are_ambiguous() {
    let c = cookies();
    let a = c.value(&SessionId::generate());
    let b = c.value(&SessionId::generate());
    let h = with_cookie(&format!("__Host-realmgate={a}; __Host-realmgate={b}"));
    assert_eq!(c.read(&h), None);
    // Split over two Cookie headers (HTTP/2).
    let mut h = with_cookie(&format!("__Host-realmgate={a}"));
    h.append(
        COOKIE,
        HeaderValue::from_str(&format!("__Host-realmgate={b}")).unwrap(),
    );
    assert_eq!(c.read(&h), None);
    // A forged duplicate next to a valid cookie is ambiguous too.
    let h = with_cookie(&format!("__Host-realmgate={a}; __Host-realmgate=forged"));
    assert_eq!(c.read(&h), None);
}

#[test]
fn even_an_identical_duplicate_is_ambiguous() {
    let c = cookies();
    let a = c.value(&SessionId::generate());
    let h = with_cookie(&format!("__Host-realmgate={a}; __Host-realmgate={a}"));
    assert_eq!(c.read(&h), None);
}

#[test]
fn on_https_a_plain_cookie_is_ignored() {
    let c = cookies();
    let id = SessionId::generate();
    let planted = c.value(&id);
    let h = with_cookie(&format!("realmgate={planted}"));
    assert_eq!(c.read_for(&h, true), None);
    assert_eq!(c.read_for(&h, false), Some(id));
}

#[test]
fn read_prefers_the_host_prefixed_cookie() {
    let c = cookies();
    let mine = SessionId::generate();
    let planted = SessionId::generate();
    let h = with_cookie(&format!(
        "realmgate={}; __Host-realmgate={}",
        c.value(&planted),
        c.value(&mine)
    ));
    assert_eq!(c.read(&h), Some(mine));
}

#[test]
fn names_are_case_sensitive_when_reading() {
    let c = cookies();
    let v = c.value(&SessionId::generate());
    assert_eq!(c.read(&with_cookie(&format!("__host-realmgate={v}"))), None);
    assert_eq!(c.read(&with_cookie(&format!("Realmgate={v}"))), None);
}

#[test]
fn whitespace_around_pairs_is_tolerated() {
    let c = cookies();
    let id = SessionId::generate();
    let v = c.value(&id);
    let h = with_cookie(&format!("a=1;__Host-realmgate={v} ;b=2"));
    assert_eq!(c.read(&h), Some(id));
}

/// The rules the byte scanner keeps where `cookie::Cookie::split_parse` reads
/// differently (docs/decisions.md): a non-UTF-8 app cookie does not hide the
/// session; a name behind non-ASCII whitespace is not ours, for reading and
/// for stripping alike; a bare name counts as a duplicate.
#[test]
fn the_read_rules_the_cookie_crate_would_change() {
    let c = cookies();
    let id = SessionId::generate();
    let v = c.value(&id);
    let mut h = HeaderMap::new();
    let mut bytes = vec![b'n', b'=', 0xe9, b't', 0xe9, b';', b' '];
    bytes.extend_from_slice(format!("__Host-realmgate={v}").as_bytes());
    h.insert(COOKIE, HeaderValue::from_bytes(&bytes).unwrap());
    assert_eq!(c.read_for(&h, true), Some(id.clone()));

    let nbsp = format!("\u{a0}__Host-realmgate={v}");
    let mut h = with_cookie(&nbsp);
    assert_eq!(c.read_for(&h, true), None);
    c.strip_own_cookies(&mut h);
    assert_eq!(h.get(COOKIE).unwrap().as_bytes(), nbsp.as_bytes());

    let h = with_cookie(&format!("__Host-realmgate={v}; __Host-realmgate"));
    assert_eq!(c.read_for(&h, true), None);
    assert_eq!(
        c.read_for(&with_cookie(&format!("__Host-realmgate={v}")), true),
        Some(id)
    );
}

#[test]
fn strip_removes_own_cookies_and_keeps_others_verbatim() {
    let c = cookies();
    let mut h = with_cookie(
        "theme=dark; __Host-realmgate=abc; realmgate=def; a=\"q u\"; __Host-realmgate_state=s; realmgate_state=t; z=1",
    );
    c.strip_own_cookies(&mut h);
    let all: Vec<_> = h
        .get_all(COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(all, vec!["theme=dark; a=\"q u\"; z=1"]);
}

/// SPEC 5.2: every cookie realmgate sets is removed, the unknown-domain
/// flash cookie of `/.auth/login` too (a client sends it anywhere it likes).
#[test]
fn strip_removes_the_flash_cookie_of_the_login_page() {
    let c = cookies();
    let mut h = with_cookie("a=1; realmgate=zz; realmgate_state=x; realmgate_hrd=y; b=2");
    c.strip_own_cookies(&mut h);
    assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
    let mut h = with_cookie("a=1; Realmgate_HRD=n.eA; b=2");
    let _ = c.take_for(&mut h, false);
    assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
    // Its name under another session cookie name too: it is fixed.
    let other = SessionCookies::new(&SessionSettings {
        cookie_name: "gw".into(),
        ..settings(&[S1], None)
    });
    let mut h = with_cookie("realmgate_hrd=y; realmgate_hrdx=1");
    other.strip_own_cookies(&mut h);
    assert_eq!(h.get(COOKIE).unwrap(), "realmgate_hrdx=1");
}

#[test]
fn strip_matches_names_case_insensitively() {
    let c = cookies();
    let mut h = with_cookie("REALMGATE=1; __HOST-Realmgate=2; Realmgate_State=3; keep=4");
    c.strip_own_cookies(&mut h);
    assert_eq!(h.get(COOKIE).unwrap(), "keep=4");
}

#[test]
fn strip_drops_the_header_when_nothing_remains() {
    let c = cookies();
    let mut h = with_cookie("__Host-realmgate=abc");
    h.append(COOKIE, HeaderValue::from_static("realmgate_state=x;  "));
    h.append(COOKIE, HeaderValue::from_static("app=1"));
    c.strip_own_cookies(&mut h);
    let all: Vec<_> = h.get_all(COOKIE).iter().collect();
    assert_eq!(all, vec![&HeaderValue::from_static("app=1")]);
    let mut h = with_cookie("realmgate=abc");
    c.strip_own_cookies(&mut h);
    assert!(h.get(COOKIE).is_none());
}

#[test]
fn strip_leaves_unrelated_headers_untouched() {
    let c = cookies();
    let mut h = with_cookie("realmgatex=1;x_realmgate=2;  spaced =3");
    h.insert(SET_COOKIE, HeaderValue::from_static("realmgate=1"));
    let before = h.clone();
    c.strip_own_cookies(&mut h);
    assert_eq!(h, before);
}

#[test]
fn strip_keeps_non_utf8_cookie_bytes() {
    let c = cookies();
    let mut h = HeaderMap::new();
    h.append(
        COOKIE,
        HeaderValue::from_bytes(b"n=\xe9t\xe9; realmgate=x").unwrap(),
    );
    c.strip_own_cookies(&mut h);
    assert_eq!(h.get(COOKIE).unwrap().as_bytes(), b"n=\xe9t\xe9");
}

#[test]
fn changing_the_last_character_is_refused() {
    let c = cookies();
    for _ in 0..64 {
        let good = c.value(&SessionId::generate());
        let mut b = good.into_bytes();
        let last = b.len() - 1;
        b[last] = if b[last] == b'A' { b'B' } else { b'A' };
        let v = String::from_utf8(b).unwrap();
        assert_eq!(
            c.read_for(&with_cookie(&format!("realmgate={v}")), false),
            None,
            "{v}"
        );
    }
}

/// The per-thread memo of verified values: a hit only for the very value
/// under the very instance; forged values never enter; a reload that drops a
/// secret refuses values the old instance verified on this thread.
#[test]
fn the_thread_memo_only_answers_for_values_it_verified() {
    let old = SessionCookies::new(&settings(&[S2], None));
    let id = SessionId::generate();
    let value = old.value(&id);
    let header = with_cookie(&format!("realmgate={value}"));
    assert_eq!(old.read_for(&header, false), Some(id.clone()));
    assert_eq!(old.read_for(&header, false), Some(id.clone()));
    assert_eq!(memo::len(old.number), 1);

    let reloaded = SessionCookies::new(&settings(&[S1], None));
    assert_eq!(reloaded.read_for(&header, false), None, "S2 was dropped");
    assert_eq!(memo::len(reloaded.number), 0);

    // Any single changed character, or a forged tag, is checked in full and
    // never remembered.
    for i in 0..VALUE_LEN {
        let mut b = value.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let v = String::from_utf8(b).unwrap();
        assert_eq!(
            old.read_for(&with_cookie(&format!("realmgate={v}")), false),
            None
        );
    }
    assert_eq!(memo::len(old.number), 1);
    assert_eq!(old.read_for(&header, false), Some(id));

    for _ in 0..(memo::CAPACITY * 2) {
        let id = SessionId::generate();
        let h = with_cookie(&format!("realmgate={}", old.value(&id)));
        assert_eq!(old.read_for(&h, false), Some(id));
        assert!(memo::len(old.number) <= memo::CAPACITY);
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn pair() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec![
            "realmgate",
            "__Host-realmgate",
            "REALMGATE",
            "realmgate_state",
            "__Host-realmgate_state",
            "realmgate_hrd",
            "app",
            "theme",
            "realmgatex",
            "x",
            "",
            "__Host-app",
        ]);
        let value = "[ -:<-~]{0,12}";
        (name, value).prop_map(|(n, v)| format!("{n}={v}"))
    }

    /// A pair of the cookies `take_for` looks for: a valid value for
    /// session ids `ids`, a forged one, or garbage, under any of our names.
    fn session_pair(valid: Vec<String>) -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec![
            "realmgate",
            "__Host-realmgate",
            "REALMGATE",
            " realmgate ",
        ]);
        let value = prop_oneof![
            prop::sample::select(valid),
            Just("A".repeat(86)),
            "[ -:<-~]{0,90}",
        ];
        (name, value).prop_map(|(n, v)| format!("{n}={v}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// After stripping, none of realmgate's cookies reach the upstream,
        /// every other pair is kept byte for byte and in order, and reading
        /// never panics.
        #[test]
        fn stripping_keeps_exactly_the_other_cookies(pairs in prop::collection::vec(pair(), 0..8)) {
            let c = cookies();
            let header = pairs.join("; ");
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&header) {
                h.insert(COOKIE, v);
            } else {
                return Ok(());
            }
            let _ = c.read(&h);
            let _ = c.read_for(&h, true);
            let before = h.clone();
            c.strip_own_cookies(&mut h);
            let own = ["realmgate", "__host-realmgate", "realmgate_state", "__host-realmgate_state", "realmgate_hrd"];
            let is_own = |p: &str| {
                let name = p.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
                own.contains(&name.as_str())
            };
            if !header.split(';').any(is_own) {
                // Nothing of ours: the header is left exactly as it was.
                prop_assert_eq!(h, before);
                return Ok(());
            }
            let expected: Vec<String> = header
                .split(';')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty() && !is_own(p))
                .collect();
            let got: Vec<String> = h
                .get_all(COOKIE)
                .iter()
                .flat_map(|v| v.to_str().unwrap().split("; ").map(String::from).collect::<Vec<_>>())
                .collect();
            if expected.is_empty() {
                prop_assert!(h.get(COOKIE).is_none());
            } else {
                prop_assert_eq!(got, expected);
            }
        }

        /// `take_for` answers exactly what `read_for` then `strip_own_cookies`
        /// answer, over one or several `Cookie` headers, on HTTP and HTTPS,
        /// with valid, forged, garbage and repeated session cookies.
        #[test]
        fn taking_the_session_cookie_is_reading_then_stripping(
            headers in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![pair(), session_pair(valid_values()), session_pair(valid_values())],
                    0..6,
                ),
                0..3,
            ),
            separator in prop::sample::select(vec!["; ", ";", " ; ", ";;"]),
            https in any::<bool>(),
        ) {
            let c = cookies();
            let mut h = HeaderMap::new();
            h.insert("accept", HeaderValue::from_static("*/*"));
            for pairs in &headers {
                match HeaderValue::from_str(&pairs.join(separator)) {
                    Ok(v) => { h.append(COOKIE, v); }
                    Err(_) => return Ok(()),
                }
            }
            let mut reference = h.clone();
            let want = c.read_for(&reference, https);
            c.strip_own_cookies(&mut reference);
            let got = c.take_for(&mut h, https);
            prop_assert_eq!(got, want);
            prop_assert_eq!(h, reference);
        }
    }

    /// Valid cookie values for two fixed ids, under both names.
    fn valid_values() -> Vec<String> {
        let c = cookies();
        let ids = [
            SessionId::from_bytes([7; 32]),
            SessionId::from_bytes([9; 32]),
        ];
        ids.iter().map(|id| c.value(id)).collect()
    }
}

/// Every attribute of the session cookie, read back by a cookie parser
/// rather than by substring: exactly these, on HTTPS, HTTP and for a delete.
#[test]
fn set_cookie_attributes_read_back_exactly() {
    use ::cookie::{Cookie, SameSite};
    let c = cookies();
    let id = SessionId::generate();
    for (https, set, value) in [
        (true, c.set(&id, true), c.value(&id)),
        (false, c.set(&id, false), c.value(&id)),
        (true, c.clear(true), String::new()),
    ] {
        let parsed = Cookie::parse(set.to_str().unwrap().to_string()).unwrap();
        assert_eq!(parsed.name(), c.name_for(https));
        assert_eq!(parsed.value(), value);
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!(parsed.http_only(), Some(true));
        assert_eq!(parsed.secure(), https.then_some(true));
        assert_eq!(parsed.same_site(), Some(SameSite::Lax));
        assert_eq!(parsed.domain(), None);
        let max_age = parsed.max_age().map(|d| d.whole_seconds());
        assert_eq!(max_age, value.is_empty().then_some(0));
        assert!(parsed.expires().is_none());
    }
}

#[test]
fn an_upstream_cannot_set_or_clear_realmgate_s_own_cookies() {
    let c = cookies();
    let mut h = HeaderMap::new();
    for v in [
        "realmgate=planted; Path=/; HttpOnly",
        "__Host-realmgate=planted; Path=/; Secure",
        " REALMGATE =x",
        "realmgate_state=x; Max-Age=0",
        "__Host-realmgate_state=x",
        "app=kept; Path=/",
        "realmgate-app=kept",
        "realmgate",
    ] {
        h.append(SET_COOKIE, HeaderValue::from_static(v));
    }
    c.strip_own_set_cookies(&mut h);
    let left: Vec<&str> = h
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    // A bare `realmgate` (no `=`) is a nameless cookie to browsers: kept.
    assert_eq!(
        left,
        ["app=kept; Path=/", "realmgate-app=kept", "realmgate"]
    );
    // Nothing of ours: the header map is left as it is.
    let mut h = HeaderMap::new();
    h.append(SET_COOKIE, HeaderValue::from_static("a=1"));
    h.append(SET_COOKIE, HeaderValue::from_static("b=2"));
    c.strip_own_set_cookies(&mut h);
    assert_eq!(h.get_all(SET_COOKIE).iter().count(), 2);
}
