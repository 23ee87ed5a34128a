//! What reading the session cookie costs: realmgate's byte scanner against
//! the `cookie` crate's `Cookie::split_parse` (docs/decisions.md, "The
//! design card's libraries").
//!
//! ```text
//! cargo run --release --example cookie_parse -- [ITERATIONS]
//! ```
//!
//! For three `Cookie` headers a signed-in browser sends (the session cookie
//! alone; with six app cookies, 0.4 KB; with twenty app cookies and analytics
//! values, 2 KB), each way finds the single value of `__Host-realmgate` under
//! realmgate's rule (a name present twice is ambiguous). `read_for` is the
//! whole public read (scan, then the per-thread memo of verified values), for
//! scale. Prints nanoseconds per read, the best of five rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cookie::Cookie;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use realmgate::config::{Secret, SessionSettings, StoreSettings};
use realmgate::session::cookie::SessionCookies;
use realmgate::session::store::SessionId;

const NAME: &str = "__Host-realmgate";

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|a| {
            a.replace('_', "")
                .parse()
                .expect("ITERATIONS must be a number")
        })
        .unwrap_or(2_000_000);
    let cookies = SessionCookies::new(&SessionSettings {
        secrets: vec![Secret::new(b"0123456789abcdef0123456789abcdef".to_vec())],
        cookie_name: "realmgate".into(),
        cookie_domain: None,
        lifetime: Duration::from_secs(8 * 3600),
        idle_timeout: Duration::from_secs(3600),
        store: StoreSettings::Memory { max_entries: 10 },
        refresh_tokens: true,
    });
    let session = format!("{NAME}={}", cookies.value(&SessionId::from_bytes([7; 32])));
    let small = session.clone();
    let medium = format!(
        "theme=dark; lang=en-GB; {session}; csrftoken=Q2xhc3NpY0NTUkZUb2tlbjEyMzQ1Njc4OTA; \
         consent=analytics%3Dno%26ads%3Dno; sidebar=collapsed; tz=Europe%2FLondon"
    );
    let mut large = String::new();
    for i in 0..20 {
        large.push_str(&format!("app_pref_{i}={}; ", "v".repeat(40 + i)));
    }
    large.push_str(&format!(
        "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; {session}; \
         AMCV_0123456789ABCDEF%40AdobeOrg=-1124106680%7CMCIDTS%7C19700%7CvVersion%7C5.2.0"
    ));
    println!(
        "{:<8} {:>6} {:>12} {:>12} {:>14}",
        "header", "bytes", "hand (ns)", "crate (ns)", "read_for (ns)"
    );
    for (label, header) in [("small", small), ("medium", medium), ("large", large)] {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&header).expect("header"));
        let want = hand(&headers);
        assert!(want.is_some(), "the session cookie is found");
        assert_eq!(crate_parse(&headers), want, "both ways agree");
        assert!(cookies.read_for(&headers, true).is_some());
        let h = best(iterations, || hand(black_box(&headers)).map(<[u8]>::len));
        let c = best(iterations, || {
            crate_parse(black_box(&headers)).map(<[u8]>::len)
        });
        let r = best(iterations, || {
            cookies.read_for(black_box(&headers), true).map(|_| 1)
        });
        println!(
            "{label:<8} {:>6} {h:>12.1} {c:>12.1} {r:>14.1}",
            header.len()
        );
    }
}

/// Nanoseconds per call of `f`, the best of five rounds of `iterations`.
fn best(iterations: u32, mut f: impl FnMut() -> Option<usize>) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(f());
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .fold(f64::INFINITY, f64::min)
}

/// realmgate's scan (`cookie_values` + `single_value` in src/session/cookie.rs):
/// bytes split on `;`, ASCII whitespace trimmed, names compared exactly.
fn hand(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let (n, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
                None => (pair, &[][..]),
            };
            (n == NAME.as_bytes()).then_some(v)
        });
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// The same rule with the `cookie` crate: the header as UTF-8, each pair
/// parsed by `Cookie::split_parse` (no percent-decoding: the `__Host-`
/// prefix is a property of the name as sent).
fn crate_parse(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == NAME)
        .filter_map(|c| c.value_raw());
    let first = values.next()?;
    values.next().is_none().then_some(first.as_bytes())
}
