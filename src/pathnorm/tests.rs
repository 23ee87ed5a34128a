use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn public() -> Vec<String> {
    vec!["/static/".to_string(), "/favicon.ico".to_string()]
}

fn parse(p: &str) -> CanonicalTarget<'_> {
    CanonicalTarget::parse(p).unwrap_or_else(|e| panic!("{p:?} refused: {e}"))
}

fn refused(p: &str) -> PathError {
    match CanonicalTarget::parse(p) {
        Ok(t) => panic!("{p:?} accepted as {:?}", t.path()),
        Err(e) => e,
    }
}

#[test]
fn plain_paths_are_kept_and_borrowed() {
    for p in ["/", "/a", "/a/b", "/a/b/", "/static/app.js", "/a.b/..c/.d"] {
        let t = parse(p);
        assert!(matches!(t.path, Cow::Borrowed(_)), "{p}");
        assert_eq!((t.path(), t.judged(), t.rewritten()), (p, p, false));
        assert!(!t.has_other_readings(), "{p}");
        assert!(t.readings().is_empty(), "{p}");
    }
}

#[test]
fn only_plain_paths_take_the_fast_path() {
    for p in ["/", "/a", "/a/b/", "/static/app.js", "/a.b/..c/.d"] {
        assert!(is_plain(p), "{p}");
    }
    for p in [
        "",
        "a",
        "//",
        "/a//b",
        "/.",
        "/..",
        "/a/./b",
        "/a/../b",
        "/a/.",
        "/a/..",
        "/%2e",
        "/a;b",
        "/a\\b",
        "/caf\u{e9}",
        "/a b",
        "/a\tb",
        "*",
        // Never in a request's path, but read like %3F/%23 by the full scan.
        "/a?",
        "/a#",
    ] {
        assert!(!is_plain(p), "{p:?}");
    }
}

/// The four paths of the review (issue 17, hole 1) and their relatives: the
/// dot segments are resolved as RFC 3986 says, empty segments kept.
#[test]
fn dot_segments_are_resolved_the_rfc_3986_way() {
    for (raw, canonical) in [
        ("/admin/../static/x", "/static/x"),
        ("/admin/%2e%2e/static/x", "/static/x"),
        ("/admin/%2E%2e/static/x", "/static/x"),
        ("/admin/.%2E/static/x", "/static/x"),
        ("/admin/%2e./static/x", "/static/x"),
        // An empty segment is a segment: `..` removes it (a server that
        // merges `//` first would say `/static/x`; neither is forwarded raw).
        ("/admin//../static/x", "/admin/static/x"),
        ("/a//..", "/a/"),
        ("/a/./b", "/a/b"),
        ("/a/%2e/b", "/a/b"),
        ("/a/../b", "/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/./", "/a/b/"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/..", "/"),
        ("/../etc/passwd", "/etc/passwd"),
        ("/a/../../b", "/b"),
        ("/a/./../b//c", "/b//c"),
        ("/x/../caf%C3%A9", "/caf%C3%A9"),
        ("/x/../a%2eb", "/a%2eb"),
        ("/x/../.auth/me", "/.auth/me"),
        ("*", "/"),
    ] {
        let t = parse(raw);
        assert_eq!(t.path(), canonical, "{raw:?}");
        assert!(t.rewritten(), "{raw:?}");
        // Idempotent: the canonical form is its own.
        let again = parse(t.path());
        assert_eq!((again.path(), again.rewritten()), (canonical, false));
    }
}

#[test]
fn encodings_that_do_not_change_the_resolved_path_pass_as_sent() {
    for (raw, judged) in [
        ("/a%2Fb", "/a/b"),
        ("/a%2fb/c", "/a/b/c"),
        ("/a%5Cb", "/a\\b"),
        ("/caf%C3%A9", "/caf\u{e9}"),
        ("/%61dmin", "/admin"),
        ("/a%20b", "/a b"),
        ("/a;jsessionid=1/b", "/a;jsessionid=1/b"),
        ("/a%3Bb", "/a;b"),
        ("/a//b", "/a//b"),
        ("//a", "//a"),
        ("/100%25", "/100%"),
        ("/a%25zz", "/a%zz"),
        ("/caf\u{e9}", "/caf\u{e9}"),
        ("/a%2e", "/a."),
        ("/...", "/..."),
    ] {
        let t = parse(raw);
        assert_eq!((t.path(), t.judged(), t.rewritten()), (raw, judged, false));
    }
}

#[test]
fn paths_that_servers_resolve_differently_are_refused() {
    for (raw, why) in [
        ("/static/..;/admin", PathError::Ambiguous),
        ("/static/..;x/admin", PathError::Ambiguous),
        ("/static/%2e%2e;/admin", PathError::Ambiguous),
        ("/static;x/../admin", PathError::Ambiguous),
        ("/static/..%2fadmin", PathError::Ambiguous),
        ("/static/%2e%2e%2Fadmin", PathError::Ambiguous),
        ("/static/x%2F..%2F..%2Fadmin", PathError::Ambiguous),
        ("/static/a%2Fb/../../admin", PathError::Ambiguous),
        ("/static/..%5cadmin", PathError::Ambiguous),
        ("/static/..%3Badmin/x", PathError::Ambiguous),
        ("/static/\u{ff0e}\u{ff0e}/x/../y", PathError::Ambiguous),
        ("/static\\..\\admin", PathError::Backslash),
        ("/a\\b", PathError::Backslash),
        ("\\a", PathError::NotAbsolute),
        ("/static/%252e%252e/admin", PathError::DoubleEncoding),
        (
            "/static/%25%32%65%25%32%65/admin",
            PathError::DoubleEncoding,
        ),
        ("/static/%252f", PathError::DoubleEncoding),
        ("/%2561dmin", PathError::DoubleEncoding),
        ("/a%", PathError::BadEscape),
        ("/a%2", PathError::BadEscape),
        ("/a%zz", PathError::BadEscape),
        ("/a%u002e", PathError::BadEscape),
        ("/a%00b", PathError::BadText),
        ("/a%0d%0ab", PathError::BadText),
        ("/a%7f", PathError::BadText),
        ("/a\u{0}b", PathError::BadText),
        ("/%c0%ae%c0%ae/x", PathError::BadText),
        ("/%e0%80%ae/x", PathError::BadText),
        ("/%ff", PathError::BadText),
        ("a/b", PathError::NotAbsolute),
        ("", PathError::NotAbsolute),
    ] {
        assert_eq!(refused(raw), why, "{raw:?}");
        assert!(!why.message().is_empty());
    }
}

#[test]
fn public_prefixes_match_the_canonical_path_in_every_reading() {
    let pre = public();
    for p in [
        "/static/",
        "/static/app.js",
        "/static//app.js",
        "/static/./a/../app.js",
        "/admin/../static/x",
        "/admin/%2e%2e/static/x",
        "/static/%61pp.js",
        "/static/caf%C3%A9.css",
        "/static/caf\u{e9}.css",
        "/favicon.ico",
        "/favicon.ico/",
        // SPEC 6.1: encodings that do not change the resolved path pass as
        // sent, and every reading of these (decoded or not, `\\` as `/`,
        // `;params` stripped) stays under the prefix.
        "/static/a%2Fb",
        "/static/a%5Cb",
        "/static/a;b",
        "/static/a%3Bb",
        "/static/a%2F%2Fb",
    ] {
        assert!(parse(p).is_public(&pre), "{p:?} is public");
        assert!(is_public(p, &pre), "{p:?}");
    }
    for p in [
        "/static",
        "/staticx",
        "/favicon.icon",
        "/",
        // `//static/x` is not `/static/x` to an RFC 3986 server.
        "//static/x",
        "/admin//../static/x",
        // Encoded separators and parameters read differently upstream: in
        // some reading these are not under the prefix.
        "/static%2Fa",
        "/static;x/a",
        "/static%3Bx/a",
        // Decoded it is under the prefix, as sent it is not.
        "/%73tatic/a",
        "/st%61tic/a",
        // Look-alikes an NFKC app reads as dots or slashes.
        "/static/%ef%bc%8e%ef%bc%8e/secret",
        "/static/\u{ff0e}\u{ff0e}/secret",
        "/static/%e2%80%a5/secret",
        "/static/..%ef%bc%8fsecret",
        "/static/..\u{ff3c}secret",
        "/static/..%cd%be/secret",
        "/static/%ef%bc%85%32%65/secret",
        // Found by NFKC, not by a list (review 9): `︰` is `..`, `︙` is
        // `...`, `︔` is `;`, `？` and `﹖` are `?`, `＃` and `﹟` are `#`,
        // `⁇` is `??`, `℀` is `a/c`.
        "/static/%EF%B8%B0/secret",
        "/static/\u{fe30}/secret",
        "/static/\u{fe19}/secret",
        "/static/a\u{fe14}/secret",
        "/static/a\u{ff1f}/secret",
        "/static/a\u{fe56}/secret",
        "/static/a\u{ff03}/secret",
        "/static/a\u{fe5f}/secret",
        "/static/a\u{2047}/secret",
        "/static/\u{2100}/secret",
    ] {
        assert!(!is_public(p, &pre), "{p:?} must not be public");
    }
}

#[test]
fn odd_prefixes_never_match() {
    for prefix in ["", "x", "//static/", "/a;b/"] {
        assert!(!is_public("/x", &[prefix.to_string()]), "{prefix:?}");
        assert!(
            !is_public("//static/a", &[prefix.to_string()]),
            "{prefix:?}"
        );
    }
    assert!(!is_public("/x", &[]));
    assert!(is_public("/anything", &["/".to_string()]));
    assert!(is_public("/../x", &["/".to_string()]));
}

#[test]
fn readings_cover_every_way_of_splitting() {
    let t = parse("/a%2Fb;x//c%5Cd");
    let r = t.readings();
    for expected in [
        "/a%2Fb;x//c%5Cd",
        "/a%2Fb//c%5Cd",
        "/a%2Fb;x/c%5Cd",
        "/a/b;x//c/d",
        "/a/b/c/d",
        "/a/b//c\\d",
    ] {
        assert!(r.iter().any(|x| x == expected), "{expected:?} in {r:?}");
    }
    assert!(!r.iter().any(|x| x == t.judged()));
}

#[test]
fn a_path_starting_with_two_slashes_is_also_read_past_its_host() {
    // URL parsers read `//x/admin` as host `x`, path `/admin` (WHATWG past
    // any further leading slashes too).
    for (path, expected) in [
        ("//x/admin/users", "/admin/users"),
        ("///x/admin", "/admin"),
        ("//x", "/"),
        ("//x/", "/"),
        ("/%2Fx/admin", "/admin"),
    ] {
        let t = parse(path);
        assert!(t.has_other_readings(), "{path}");
        assert!(
            t.readings().iter().any(|r| r == expected),
            "{path}: {expected:?} in {:?}",
            t.readings()
        );
    }
    assert!(!parse("/x//admin").readings().iter().any(|r| r == "/admin"));
}

#[test]
fn normalize_returns_the_canonical_path() {
    assert_eq!(normalize("/a/../b").as_deref(), Some("/b"));
    assert_eq!(normalize("/a%2Fb").as_deref(), Some("/a%2Fb"));
    assert_eq!(normalize("/a/..;/b"), None);
}

// === Properties: upstream resolvers ===

/// How one kind of upstream resolves the path it receives. Each returns the
/// resolved path decoded (what the app routes on or opens), `..` above the
/// root staying at the root (the lenient behaviour, which is the dangerous one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    /// RFC 3986 5.2.4 on the raw segments, decoded afterwards.
    Rfc,
    /// The same after merging `//` (nginx `merge_slashes`, many frameworks).
    RfcMerged,
    /// `%2e`, `%2f`, `%5c` decoded before the dot segments are resolved
    /// (WHATWG for `%2e`, servers that decode first for the rest).
    DecodeFirst,
    /// Resolved and decoded, then the decoded path resolved again (an app
    /// or file system that treats the decoded path as a path).
    DecodeAfter,
    /// Tomcat: `;params` stripped from every raw segment (`..;` is `..`),
    /// segments decoded, `//` merged, then resolved.
    Tomcat,
    /// IIS: decoded, `\` is `/`, `//` merged, then resolved.
    Iis,
    /// Decoded twice (`%252e` is `.`), then resolved.
    DoubleDecode,
}

const MODELS: [Model; 7] = [
    Model::Rfc,
    Model::RfcMerged,
    Model::DecodeFirst,
    Model::DecodeAfter,
    Model::Tomcat,
    Model::Iis,
    Model::DoubleDecode,
];

fn lossy_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        );
        match (b[i], pair) {
            (b'%', (Some(hi), Some(lo))) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes only `%2e`, `%2f`, `%5c` (any case).
fn decode_dots_and_slashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).map(str::to_ascii_lowercase);
        match code.as_deref() {
            Some("2e") => out.push('.'),
            Some("2f") => out.push('/'),
            Some("5c") => out.push('\\'),
            _ => {
                out.push('%');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}

/// RFC 3986 5.2.4 over `/`-separated `path` (empty segments kept).
fn rfc_resolve(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut dir = false;
    for seg in path.strip_prefix('/').unwrap_or(path).split('/') {
        dir = seg == "." || seg == "..";
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut r = format!("/{}", out.join("/"));
    if dir && !r.ends_with('/') {
        r.push('/');
    }
    r
}

fn merged(path: &str) -> String {
    merge_slashes(path)
}

fn resolve(model: Model, path: &str) -> String {
    match model {
        Model::Rfc => lossy_decode(&rfc_resolve(path)),
        Model::RfcMerged => lossy_decode(&rfc_resolve(&merged(path))),
        Model::DecodeFirst => lossy_decode(&rfc_resolve(&decode_dots_and_slashes(path))),
        Model::DecodeAfter => merged(&rfc_resolve(&lossy_decode(&rfc_resolve(path)))),
        Model::Tomcat => {
            let stripped: Vec<String> = path
                .split('/')
                .map(|s| lossy_decode(s.split(';').next().unwrap_or("")))
                .collect();
            rfc_resolve(&merged(&stripped.join("/")))
        }
        Model::Iis => rfc_resolve(&merged(&lossy_decode(path).replace('\\', "/"))),
        Model::DoubleDecode => rfc_resolve(&lossy_decode(&lossy_decode(path))),
    }
}

fn test_route(name: &str, prefix: &str) -> Arc<crate::config::RouteSettings> {
    let toml = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "c"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "y"
[[route]]
name = "{name}"
hosts = ["app.test"]
path_prefix = "{prefix}"
upstream = "http://127.0.0.1:9000"
public = ["/static/"]
"#
    );
    crate::config::load_str(&toml)
        .expect("valid test config")
        .routes[0]
        .clone()
}

/// One host, three routes: the lax root (with `public = ["/static/"]`), a
/// stricter `/admin` and a `/static` route.
fn test_routes() -> Vec<Arc<crate::config::RouteSettings>> {
    static ROUTES: std::sync::OnceLock<Vec<Arc<crate::config::RouteSettings>>> =
        std::sync::OnceLock::new();
    ROUTES
        .get_or_init(|| {
            vec![
                test_route("root", "/"),
                test_route("admin", "/admin"),
                test_route("static", "/static"),
            ]
        })
        .clone()
}

/// The route a resolved path selects, as the router's prefix rule does.
fn pick(routes: &[Arc<crate::config::RouteSettings>], path: &str) -> Option<String> {
    let mut sorted: Vec<_> = routes.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
    sorted
        .into_iter()
        .find(|r| crate::router::prefix_matches(&r.path_prefix, path))
        .map(|r| r.name.clone())
}

fn item() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "..",
        ".",
        "%2e",
        "%2E%2e",
        ".%2e",
        "%2e.",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        ";x",
        "..;",
        "",
        "%252e",
        "%252f",
        "%25%32%65",
        "%3b",
        "%3B",
        "static",
        "admin",
        "x",
        "%61dmin",
        "st%61tic",
        "%25",
        "%00",
        "%c0%ae",
        "%ef%bc%8e",
        "\u{ff0e}",
        "..%2f",
        "%2e%2e%2f",
        "a%2fb",
        "static;x",
        "%",
        "%2",
        "caf%C3%A9",
        "\u{e9}",
    ])
}

fn segment() -> impl Strategy<Value = String> {
    prop::collection::vec(item(), 1..3).prop_map(|items| items.concat())
}

fn hostile_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..7).prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6000, ..ProptestConfig::default() })]

    /// SPEC 6.1: what a route with `public = ["/static/"]` forwards without
    /// a session stays under `/static/` however the upstream resolves it.
    #[test]
    fn a_public_path_stays_public_under_every_resolver(p in hostile_path()) {
        if let Ok(t) = CanonicalTarget::parse(&p) {
            if t.is_public(&["/static/".to_string()]) {
                for m in MODELS {
                    let seen = resolve(m, t.path());
                    prop_assert!(
                        seen.starts_with("/static/"),
                        "{:?} forwarded as {:?} is public, but {:?} resolves it to {:?}",
                        p, t.path(), m, seen
                    );
                }
            }
        }
    }

    /// SPEC 6.1: whatever is forwarded at all selects, under every
    /// resolver, the route (and so the policy) that was judged.
    #[test]
    fn every_resolver_selects_the_judged_route(p in hostile_path()) {
        let routes = test_routes();
        let router = crate::router::Router::new(&routes);
        if let Ok(t) = CanonicalTarget::parse(&p) {
            if let crate::router::Lookup::Found(route) = router.lookup_target("app.test", &t) {
                for m in MODELS {
                    let seen = resolve(m, t.path());
                    let picked = pick(&routes, &seen);
                    prop_assert_eq!(
                        picked.as_deref(), Some(route.name.as_str()),
                        "{:?} forwarded as {:?} was judged for route {:?}, but {:?} resolves it to {:?}",
                        p, t.path(), route.name, m, seen
                    );
                }
            }
        }
    }

    /// A forwarded path whose segments read one way only resolves to the
    /// judged path under every resolver (up to merged `//`).
    #[test]
    fn every_resolver_agrees_with_the_judged_path(p in hostile_path()) {
        if let Ok(t) = CanonicalTarget::parse(&p) {
            if t.flags & SPLITS_DIFFERENTLY == 0 {
                for m in MODELS {
                    let seen = resolve(m, t.path());
                    prop_assert_eq!(
                        merged(&seen), merged(t.judged()),
                        "{:?} forwarded as {:?}: {:?} resolves it differently", p, t.path(), m
                    );
                }
            }
        }
    }

    /// The canonical form is its own canonical form, with the same readings.
    #[test]
    fn the_canonical_form_is_idempotent(p in prop_oneof![hostile_path(), "[/.a%;\\\\ \t\u{e9}\u{ff0e}2eEfF5c]{0,14}", ".{0,16}"]) {
        if let Ok(t) = CanonicalTarget::parse(&p) {
            let again = CanonicalTarget::parse(t.path()).expect("the canonical form is accepted");
            prop_assert_eq!(again.path(), t.path());
            prop_assert!(!again.rewritten());
            prop_assert_eq!(again.judged(), t.judged());
            prop_assert_eq!(again.flags, t.flags);
            prop_assert!(t.path().starts_with('/'));
            for m in MODELS {
                // No dot segment survives in any reading.
                let seen = resolve(m, t.path());
                prop_assert!(!seen.split('/').any(|s| s == ".."), "{:?}: {:?} -> {:?}", p, m, seen);
            }
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_scan(p in prop_oneof![hostile_path(), "[/.a%;\\\\ \t\u{e9}\u{ff0e}]{0,12}", ".{0,16}"]) {
        if is_plain(&p) {
            let s = scan(&p).expect("a plain path is accepted");
            prop_assert_eq!(s.flags, 0);
            prop_assert!(!s.has_dots);
        }
    }

    #[test]
    fn parsing_never_panics(s in ".*") {
        if let Ok(t) = CanonicalTarget::parse(&s) {
            let _ = t.is_public(&public());
            let _ = t.readings();
        }
    }
}

/// The properties above are not vacuous: hostile paths of the alphabet are
/// forwarded, some of them as public, some rewritten.
#[test]
fn the_property_alphabet_reaches_every_outcome() {
    let routes = test_routes();
    let router = crate::router::Router::new(&routes);
    let public = ["/static/".to_string()];
    let t = parse("/admin/../static/x");
    assert!(t.rewritten() && t.is_public(&public));
    assert!(matches!(
        router.lookup_target("app.test", &t),
        crate::router::Lookup::Found(r) if r.name == "static"
    ));
    let t = parse("/admin//../static/x");
    assert_eq!(t.path(), "/admin/static/x");
    assert!(!t.is_public(&public));
    assert!(matches!(
        router.lookup_target("app.test", &t),
        crate::router::Lookup::Found(r) if r.name == "admin"
    ));
    // `//admin` is `/` to RFC servers and `/admin` to merging ones.
    assert!(matches!(
        router.lookup_target("app.test", &parse("//admin/x")),
        crate::router::Lookup::AmbiguousPath
    ));
    assert!(matches!(
        router.lookup_target("app.test", &parse("/admin%2Fx")),
        crate::router::Lookup::AmbiguousPath
    ));
    assert!(matches!(
        router.lookup_target("app.test", &parse("/admin;x/y")),
        crate::router::Lookup::AmbiguousPath
    ));
    assert!(matches!(
        router.lookup_target("app.test", &parse("/admin/a%2Fb")),
        crate::router::Lookup::Found(r) if r.name == "admin"
    ));
}

#[test]
fn realmgates_own_paths_are_recognised_in_every_form() {
    for p in [
        "/.auth/me",
        "/x/../.auth/me",
        "/%2eauth/me",
        "/.auth%2Fme",
        "/.auth",
    ] {
        assert!(crate::endpoints::is_auth_target(&parse(p)), "{p:?}");
    }
    for p in ["/.auth/../admin", "/.authx", "/x/.auth/me", "//.auth/me"] {
        assert!(!crate::endpoints::is_auth_target(&parse(p)), "{p:?}");
    }
}

/// Review finding: an upstream that decodes the path and then reads a
/// decoded `?` or `#` as its end (Apache mod_rewrite's `%3F` truncation, a
/// second proxy that decodes and re-parses) read `/static/..%3F` as
/// `/static/..`, i.e. `/`, while `public` judged `/static/..?`. A dot
/// segment hidden that way is refused like `..;`; other `%3F`/`%23` pass.
#[test]
fn a_dot_segment_hidden_by_an_encoded_query_or_fragment_mark_is_refused() {
    for p in [
        "/static/..%3F",
        "/static/..%3f/admin",
        "/static/..%23",
        "/static/..%23x/admin",
        "/static/%2e%2e%3Fx",
        "/static/.%2E%23",
        "/static/.%3F",
        "/static/a%2F..%3F",
        // Left over after the dot segments are resolved.
        "/static/..%3F/x/..",
    ] {
        assert_eq!(refused(p), PathError::Ambiguous, "{p}");
        assert!(!is_public(p, &public()), "{p}");
    }
    for (p, forwarded, public_too) in [
        ("/static/a%3Fb.png", "/static/a%3Fb.png", true),
        ("/static/a%23b", "/static/a%23b", true),
        ("/static/..x%3F", "/static/..x%3F", true),
        ("/x/a%3F/../static/y", "/x/static/y", false),
    ] {
        let t = parse(p);
        assert_eq!(t.path(), forwarded, "{p}");
        assert_eq!(t.is_public(&public()), public_too, "{p}");
    }
}

/// The same readers cut the path at a decoded `?`/`#`: the router asks
/// that reading too.
#[test]
fn readings_include_the_path_cut_at_a_decoded_query_or_fragment_mark() {
    for (p, cut) in [("/admin%3F/x", "/admin"), ("/a/b%23c/d", "/a/b")] {
        let t = parse(p);
        assert!(t.has_other_readings(), "{p}");
        assert!(
            t.readings().iter().any(|r| r == cut),
            "{p}: {:?}",
            t.readings()
        );
    }
}

#[test]
fn a_public_path_a_framework_reads_as_another_path_is_not_public() {
    // Review 12: below a public `/_next`, Next.js answers
    // `/_next/data/<build id>/admin/users.json` with the data of the page
    // `/admin/users`.
    let pre: Vec<String> = ["/_next", "/static/", "/favicon.ico"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    for p in [
        "/_next/data/b1d-Id/admin/users.json",
        "/_next/data/b1d-Id/index.json",
        "/_next/data/b1d-Id/en/reports.json",
    ] {
        assert!(!parse(p).is_public(&pre), "{p:?} is not public");
    }
    // Readings inside the prefix, and ones that stay below it, change nothing.
    for p in [
        "/_next/static/chunks/app-1a2b.js",
        "/_next/image.png",
        "/static/app.min.js",
        "/static/index.php/x",
        "/favicon.ico",
    ] {
        assert!(parse(p).is_public(&pre), "{p:?} is public");
    }
}

#[test]
fn a_public_path_whose_other_readings_a_framework_reads_elsewhere_is_not_public() {
    // Review 12 (C12): the framework readings of each reading too (an
    // upstream merging `//` or dropping `;x` hands Next.js the data path),
    // and Next.js before 13.4 matched `/_next/data/` in any case.
    let pre: Vec<String> = ["/_next"].iter().map(|p| p.to_string()).collect();
    for p in [
        "/_next//data/b1d-Id/admin.json",
        "/_next/data;x/b1d-Id/admin.json",
        "/_next/DATA/b1d-Id/admin.json",
        "/_next/data/b1d-Id/index/admin.json",
    ] {
        assert!(!parse(p).is_public(&pre), "{p:?} is not public");
    }
    for p in [
        "/_next/static/chunks/a.js",
        "/_next//static/a.js",
        "/_next/image;x.png",
    ] {
        assert!(parse(p).is_public(&pre), "{p:?} is public");
    }
}
