use proptest::prelude::*;

use super::*;

fn public() -> Vec<String> {
    vec!["/public/".to_string(), "/favicon.ico".to_string()]
}

#[test]
fn plain_paths_are_unchanged() {
    for p in ["/", "/a", "/a/b", "/a/b/", "/static/app.js", "/caf\u{e9}"] {
        assert_eq!(normalize(p).as_deref(), Some(p));
    }
}

#[test]
fn only_already_normalized_paths_take_the_fast_path() {
    for p in ["/", "/a", "/a/b/", "/static/app.js", "/a.b/..c/.d", "/a?"] {
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
    ] {
        assert!(!is_plain(p), "{p:?}");
    }
}

#[test]
fn dot_segments_and_duplicate_slashes_resolve() {
    assert_eq!(normalize("/a/./b").as_deref(), Some("/a/b"));
    assert_eq!(normalize("/a/../b").as_deref(), Some("/b"));
    assert_eq!(normalize("//a///b//").as_deref(), Some("/a/b/"));
    assert_eq!(normalize("/a/b/..").as_deref(), Some("/a/"));
    assert_eq!(normalize("/a/b/.").as_deref(), Some("/a/b/"));
    assert_eq!(normalize("/a/..").as_deref(), Some("/"));
}

#[test]
fn escaping_above_the_root_is_refused() {
    for p in [
        "/..",
        "/../etc/passwd",
        "/a/../../b",
        "/%2e%2e/x",
        "/..;/x",
        "\\..\\x",
    ] {
        assert_eq!(normalize(p), None, "{p:?}");
    }
}

#[test]
fn percent_encoding_is_decoded_once_slashes_included() {
    assert_eq!(normalize("/public/..%2Fadmin").as_deref(), Some("/admin"));
    assert_eq!(normalize("/public/%2e%2E/admin").as_deref(), Some("/admin"));
    assert_eq!(normalize("/public%5C..%5Cadmin").as_deref(), Some("/admin"));
    assert_eq!(normalize("/%41%62c").as_deref(), Some("/Abc"));
    assert_eq!(normalize("/caf%C3%A9").as_deref(), Some("/caf\u{e9}"));
}

#[test]
fn backslashes_are_slashes() {
    assert_eq!(normalize("/public\\..\\admin").as_deref(), Some("/admin"));
    assert_eq!(normalize("\\a\\b").as_deref(), Some("/a/b"));
}

#[test]
fn parameters_are_stripped_from_segments() {
    assert_eq!(normalize("/public/..;/admin").as_deref(), Some("/admin"));
    assert_eq!(
        normalize("/public;jsessionid=1/x").as_deref(),
        Some("/public/x")
    );
    assert_eq!(normalize("/a/b;x=1").as_deref(), Some("/a/b"));
}

#[test]
fn double_encoding_invalid_encoding_nul_and_bad_utf8_are_refused() {
    for p in [
        "/public/%252e%252e/admin",
        "/public/%252f",
        "/public/%255c",
        "/a%25",
        "/a%",
        "/a%2",
        "/a%zz",
        "/a%u002e",
        "/a%00b",
        "/a\u{0}b",
        "/a%0d%0ab",
        "/a%7f",
        "/%c0%ae%c0%ae/x",
        "/%ff",
        "a/b",
        "",
        "*",
    ] {
        assert_eq!(normalize(p), None, "{p:?}");
    }
}

#[test]
fn public_prefixes_match_on_the_normalized_path() {
    let pre = public();
    assert!(is_public("/public/", &pre));
    assert!(is_public("/public/app.js", &pre));
    assert!(is_public("//public//app.js", &pre));
    assert!(is_public("/public/./a/../app.js", &pre));
    assert!(is_public("/public/%61pp.js", &pre));
    assert!(is_public("/favicon.ico", &pre));
    assert!(is_public("/favicon.ico/", &pre));
    assert!(!is_public("/public", &pre));
    assert!(!is_public("/publicity", &pre));
    assert!(!is_public("/favicon.icon", &pre));
    assert!(!is_public("/", &pre));
}

#[test]
fn traversal_out_of_a_public_prefix_is_not_public() {
    let pre = public();
    for p in [
        "/public/../admin",
        "/public/..%2Fadmin",
        "/public/..%2fadmin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E%2Fadmin",
        "/public/..;/admin",
        "/public/..%3B/admin",
        "/public\\..\\admin",
        "/public%5C..%5Cadmin",
        "/public/%252e%252e/admin",
        "/public/a%2Fb/../../admin",
        "/public;x/admin",
        "/public/x;/../../admin",
        "/public/../../admin",
        "/public/%00/../admin",
    ] {
        assert!(!is_public(p, &pre), "{p:?} must not be public");
    }
}

#[test]
fn unicode_lookalikes_of_dots_and_slashes_are_never_public() {
    // An app that NFKC-normalizes resolves these to `/public/../secret`.
    for p in [
        "/public/%ef%bc%8e%ef%bc%8e/secret",
        "/public/\u{ff0e}\u{ff0e}/secret",
        "/public/%e2%80%a5/secret",
        "/public/\u{2024}\u{2024}/secret",
        "/public/..%ef%bc%8fsecret",
        "/public/..\u{ff3c}secret",
        "/public/..%ef%b9%a8secret",
        "/public/..%cd%be/secret",
        "/public/%ef%bc%85%32%65/secret",
    ] {
        assert!(!is_public(p, &public()), "{p}");
    }
    // Other non-ASCII stays public.
    assert!(is_public("/public/caf%C3%A9.css", &public()));
    assert!(is_public("/public/caf\u{e9}.css", &public()));
}

#[test]
fn empty_or_relative_prefixes_never_match() {
    assert!(!is_public("/x", &["".to_string()]));
    assert!(!is_public("/x", &["x".to_string()]));
    assert!(!is_public("/x", &[]));
}

#[test]
fn a_slash_prefix_makes_everything_normalizable_public() {
    assert!(is_public("/anything", &["/".to_string()]));
    assert!(!is_public("/../x", &["/".to_string()]));
}

// === Properties ===

/// How one kind of upstream could read the raw path.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// `%2F`/`%5C` separate segments (decode before splitting).
    decode_before_split: bool,
    strip_params: bool,
    backslash_separates: bool,
    /// Decode a second time (broken upstreams).
    decode_twice: bool,
}

fn all_readings() -> Vec<Reading> {
    let mut out = Vec::new();
    for bits in 0..16u8 {
        out.push(Reading {
            decode_before_split: bits & 1 != 0,
            strip_params: bits & 2 != 0,
            backslash_separates: bits & 4 != 0,
            decode_twice: bits & 8 != 0,
        });
    }
    out
}

fn lossy_decode(s: &str) -> String {
    match percent_decode_once(s.as_bytes()) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => s.to_string(),
    }
}

/// The segments an upstream with `r` would resolve `raw` to. Going above the
/// root clamps at the root, as most servers do (the dangerous behaviour).
fn resolve(raw: &str, r: Reading) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(|c| c == '/' || (r.backslash_separates && c == '\\'))
            .map(String::from)
            .collect()
    };
    let mut raw_segments = if r.decode_before_split {
        let mut d = lossy_decode(raw);
        if r.decode_twice {
            d = lossy_decode(&d);
        }
        split(&d)
    } else {
        split(raw)
            .into_iter()
            .map(|s| {
                let d = lossy_decode(&s);
                if r.decode_twice {
                    lossy_decode(&d)
                } else {
                    d
                }
            })
            .collect()
    };
    if r.strip_params {
        for s in &mut raw_segments {
            if let Some(i) = s.find(';') {
                s.truncate(i);
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for s in raw_segments {
        match s.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(s),
        }
    }
    out
}

fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "public", "admin", "a", "", ".", "..", ";x", "..;", "%2e", "%2E%2e", "%2f", "%2F", "%5c",
        "\\", "%252e", "%252f", "%25", "%3b", "%00", "%", "..%2f", "x;y", "public;p", ".%2e",
        "%c0%ae",
    ])
    .prop_map(String::from)
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..8).prop_map(|segs| format!("/{}", segs.join("/")))
}

fn joined(segs: &[String]) -> String {
    segs.concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn normalized_paths_have_no_traversal_or_ambiguity(p in path()) {
        if let Some(n) = normalize(&p) {
            prop_assert!(n.starts_with('/'));
            prop_assert!(!n.contains("/../") && !n.ends_with("/.."));
            prop_assert!(!n.contains("/./") && !n.ends_with("/."));
            prop_assert!(!n.contains("//"));
            prop_assert!(!n.contains('\\'));
            prop_assert!(!n.contains('%'));
        }
    }

    #[test]
    fn the_fast_path_agrees_with_full_normalization(p in prop_oneof![path(), "[/.a%;\\\\ \t\u{e9}\u{ff0e}]{0,12}", ".{0,16}"]) {
        let fast = normalized(&p);
        let slow = normalize_slow(&p);
        prop_assert_eq!(fast.as_deref(), slow.as_deref());
        if is_plain(&p) {
            prop_assert!(matches!(fast, Some(std::borrow::Cow::Borrowed(_))));
        }
    }

    #[test]
    fn normalization_is_idempotent(p in path()) {
        if let Some(n) = normalize(&p) {
            prop_assert_eq!(normalize(&n), Some(n.clone()));
        }
    }

    #[test]
    fn public_paths_resolve_inside_the_prefix_for_every_upstream_reading(p in path()) {
        if is_public(&p, &["/public/".to_string()]) {
            for r in all_readings() {
                let segs = resolve(&p, r);
                prop_assert!(
                    segs.first().map(String::as_str) == Some("public"),
                    "{:?} is public but {:?} resolves it to /{}", p, r, joined(&segs)
                );
            }
        }
    }

    #[test]
    fn normalize_never_panics_on_arbitrary_input(s in ".*") {
        let _ = normalize(&s);
        let _ = is_public(&s, &public());
    }
}
