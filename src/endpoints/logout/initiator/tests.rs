use super::*;

use http::HeaderValue;

fn route_hosts() -> HashSet<String> {
    ["app.contoso.com", "wiki.contoso.com", "::1"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn foreign(headers: &[(&str, &[u8])]) -> bool {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    from_another_site(&map, "app.contoso.com", &route_hosts())
}

const SFS: &str = "sec-fetch-site";

#[test]
fn no_evidence_is_a_typed_url_or_a_program() {
    assert!(!foreign(&[]));
    assert!(!foreign(&[("user-agent", b"curl/8")]));
}

#[test]
fn the_browsers_sec_fetch_site_decides_first() {
    assert!(!foreign(&[(SFS, b"same-origin")]));
    assert!(!foreign(&[(SFS, b"none")]));
    // Even a foreign Referer cannot overrule same-origin (the browser knows).
    assert!(!foreign(&[
        (SFS, b"same-origin"),
        ("referer", b"https://evil.example/")
    ]));
    // cross-site with nothing else, or naming another site: foreign.
    assert!(foreign(&[(SFS, b"cross-site")]));
    assert!(foreign(&[
        (SFS, b"cross-site"),
        ("referer", b"https://evil.example/x")
    ]));
    assert!(foreign(&[
        (SFS, b"cross-site"),
        ("origin", b"https://evil.example")
    ]));
    assert!(foreign(&[(SFS, b"cross-site"), ("origin", b"null")]));
    // A sibling subdomain is same-site to the browser, but another app.
    assert!(foreign(&[(SFS, b"same-site")]));
    assert!(foreign(&[
        (SFS, b"same-site"),
        ("referer", b"https://blog.contoso.com/")
    ]));
    // Another route host behind this gateway is ours.
    assert!(!foreign(&[
        (SFS, b"same-site"),
        ("referer", b"https://wiki.contoso.com/p")
    ]));
    assert!(!foreign(&[
        (SFS, b"cross-site"),
        ("origin", b"https://wiki.contoso.com")
    ]));
    // Unknown, miscased or repeated values are foreign.
    for v in [&b"Same-Origin"[..], b"same-origin, none", b"", b"\xff"] {
        assert!(foreign(&[(SFS, v)]), "{v:?}");
    }
    assert!(foreign(&[(SFS, b"same-origin"), (SFS, b"same-origin")]));
}

#[test]
fn without_sec_fetch_site_origin_then_referer_decide() {
    for ours in [
        &b"https://app.contoso.com"[..],
        b"http://app.contoso.com:8080",
        b"https://APP.contoso.com",
        b"https://wiki.contoso.com",
        b"http://[::1]:8080",
    ] {
        assert!(!foreign(&[("origin", ours)]), "{ours:?}");
    }
    for theirs in [
        &b"https://evil.example"[..],
        b"null",
        b"https://app.contoso.com.evil.example",
        b"https://evilapp.contoso.com",
        b"https://contoso.com",
        b"https://app.contoso.com@evil.example",
        b"app.contoso.com",
        b"ftp://app.contoso.com",
        b"",
        b"\xff",
    ] {
        assert!(foreign(&[("origin", theirs)]), "{theirs:?}");
        // Origin wins over a Referer that would pass.
        assert!(
            foreign(&[("origin", theirs), ("referer", b"https://app.contoso.com/")]),
            "{theirs:?}"
        );
    }
    assert!(!foreign(&[(
        "referer",
        b"https://app.contoso.com/some/page?x=1"
    )]));
    assert!(!foreign(&[("referer", b"https://wiki.contoso.com/")]));
    assert!(foreign(&[(
        "referer",
        b"https://evil.example/?https://app.contoso.com/"
    )]));
    assert!(foreign(&[(
        "referer",
        b"https://evil.example/app.contoso.com"
    )]));
    assert!(foreign(&[("referer", b"android-app://com.evil/")]));
    // Two Origins, or two Referers: foreign.
    assert!(foreign(&[
        ("origin", b"https://app.contoso.com"),
        ("origin", b"https://app.contoso.com")
    ]));
    assert!(foreign(&[
        ("referer", b"https://app.contoso.com/"),
        ("referer", b"https://app.contoso.com/")
    ]));
}
