//! Every fuzz entry point over its committed seed corpus (and a few edge
//! inputs), so the properties are checked by `cargo test` too.

use std::path::Path;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("seed"))
        .collect();
    assert!(!inputs.is_empty(), "no seeds in {}", dir.display());
    inputs.extend([Vec::new(), vec![0xff; 3], b"\n\n:".to_vec()]);
    inputs
}

#[test]
fn cookie_seeds_hold_the_properties() {
    corpus("cookie").iter().for_each(|d| super::cookie(d));
}

#[test]
fn callback_seeds_hold_the_properties() {
    corpus("callback").iter().for_each(|d| super::callback(d));
    // The genuine state redeems the genuine pending login.
    super::callback(b"\nstate=genuine-state-0123456789&code=x");
}

#[test]
fn login_target_seeds_hold_the_properties() {
    corpus("login_target")
        .iter()
        .for_each(|d| super::login_target(d));
}

#[test]
fn path_seeds_hold_the_properties() {
    corpus("path").iter().for_each(|d| super::path(d));
    // Issue 17's paths: resolved (or refused) the same under every reading.
    for p in [
        "/admin/../static/x",
        "/admin/%2e%2e/static/x",
        "/admin/.%2E/static/x",
        "/admin//../static/x",
        "/static/..;/admin",
        "/static/a%2Fb",
    ] {
        super::path(p.as_bytes());
    }
}

#[test]
fn headers_seeds_hold_the_properties() {
    corpus("headers").iter().for_each(|d| super::headers(d));
}

#[test]
fn saml_response_seeds_hold_the_properties() {
    corpus("saml_response")
        .iter()
        .for_each(|d| super::saml_response(d));
}

#[test]
fn jwt_seeds_hold_the_properties() {
    corpus("jwt").iter().for_each(|d| super::jwt(d));
}

#[test]
fn config_seeds_hold_the_properties() {
    corpus("config").iter().for_each(|d| super::config(d));
}

#[test]
fn upstream_response_seeds_hold_the_properties() {
    corpus("upstream_response")
        .iter()
        .for_each(|d| super::upstream_response(d));
}

#[test]
fn upstream_differential_seeds_hold_the_properties() {
    corpus("upstream_differential")
        .iter()
        .for_each(|d| super::upstream_differential(d));
}

#[test]
fn jwt_claims_seeds_hold_the_properties() {
    corpus("jwt").iter().for_each(|d| {
        super::jwt_claims(d);
    });
    let seed = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/jwt")
            .join(name);
        super::jwt_claims(&std::fs::read(path).expect("seed"))
    };
    // The unedited claim sets pass; each hostile time is refused.
    for valid in [
        "claims-id-valid",
        "claims-access-valid",
        "claims-logout-valid",
        "claims-exp-fraction",
    ] {
        assert!(seed(valid), "{valid}");
    }
    for hostile in [
        "claims-exp-1e300",
        "claims-exp-2pow63",
        "claims-exp-2pow64",
        "claims-exp-u64max",
        "claims-exp-minus0",
        "claims-exp-float-far",
        "claims-exp-string",
        "claims-exp-missing",
        "claims-nbf-huge-iat-huge",
        "claims-iat-max",
    ] {
        assert!(!seed(hostile), "{hostile}");
    }
    // Every value shape for every token kind (signing is slow unoptimized:
    // a few inputs each).
    for kind in 0..3u8 {
        for shape in 0..10u8 {
            for b in [0u8, 0xff] {
                let _ = super::jwt_claims(&[kind, shape % 8, shape, b, b, b, b, b, b, b, b, b]);
            }
        }
    }
}
