//! Unit tests of the pure parts: header policy, claim checks, issuer templates.
//! End-to-end checks against the mock IdP are in `tests/it/id_token.rs`.

use serde_json::{json, Map, Value};

use super::id_token::{check_claims, parse_header, Expectations, NonceRule, Purpose};
use super::metadata::{is_guid, IssuerRule};
use super::template_matches;
use crate::config::TenantAllowList;

const TID: &str = "11111111-2222-4333-8444-555555555555";
const OTHER_TID: &str = "99999999-2222-4333-8444-555555555555";
const NOW: u64 = 1_800_000_000;

fn b64(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn good() -> Map<String, Value> {
    json!({
        "iss": format!("https://login.example/{TID}/v2.0"),
        "aud": "client",
        "tid": TID,
        "sub": "s",
        "oid": "o",
        "nonce": "n0nce",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn check_with(
    claims: &Map<String, Value>,
    rule: &IssuerRule,
    tenants: &TenantAllowList,
) -> Result<(), String> {
    check_claims(
        claims,
        &Expectations {
            issuers: std::slice::from_ref(rule),
            client_id: "client",
            tenants: Some((tenants, Some(TID))),
            purpose: Purpose::IdToken {
                nonce: NonceRule::Equals("n0nce"),
            },
            require_oid: true,
            now: NOW,
        },
    )
}

fn check(claims: &Map<String, Value>) -> Result<(), String> {
    check_with(
        claims,
        &IssuerRule::Exact(format!("https://login.example/{TID}/v2.0")),
        &TenantAllowList::Pinned,
    )
}

fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Map<String, Value> {
    let mut c = good();
    f(&mut c);
    c
}

#[test]
fn a_good_token_passes() {
    assert_eq!(check(&good()), Ok(()));
}

#[test]
fn each_claim_check_rejects_with_its_reason() {
    let cases: Vec<(Map<String, Value>, &str)> = vec![
        (
            with(|c| {
                c.remove("iss");
            }),
            "iss missing",
        ),
        (
            with(|c| {
                c.insert("iss".into(), json!("https://evil/v2.0"));
            }),
            "iss mismatch",
        ),
        (
            with(|c| {
                c.insert("tid".into(), json!(OTHER_TID));
            }),
            "tenant not allowed",
        ),
        (
            with(|c| {
                c.remove("tid");
            }),
            "tid missing",
        ),
        (
            with(|c| {
                c.insert("aud".into(), json!("other"));
            }),
            "aud mismatch",
        ),
        (
            with(|c| {
                c.remove("aud");
            }),
            "aud missing",
        ),
        (
            with(|c| {
                c.insert("aud".into(), json!(["client", "other"]));
            }),
            "several audiences without azp",
        ),
        (
            with(|c| {
                c.insert("azp".into(), json!("other"));
            }),
            "azp mismatch",
        ),
        (
            with(|c| {
                c.insert("exp".into(), json!(NOW - 61));
            }),
            "token expired",
        ),
        (
            with(|c| {
                c.remove("exp");
            }),
            "exp missing",
        ),
        (
            with(|c| {
                c.insert("exp".into(), json!("soon"));
            }),
            "exp is not a number",
        ),
        (
            with(|c| {
                c.insert("nbf".into(), json!(NOW + 120));
            }),
            "token not valid yet (nbf)",
        ),
        (
            with(|c| {
                c.insert("iat".into(), json!(NOW + 61));
            }),
            "iat in the future",
        ),
        (
            with(|c| {
                c.insert("iat".into(), json!(NOW - 2 * 86400));
            }),
            "iat too old",
        ),
        (
            with(|c| {
                c.remove("iat");
            }),
            "iat missing",
        ),
        (
            with(|c| {
                c.remove("sub");
            }),
            "sub missing",
        ),
        (
            with(|c| {
                c.insert("sub".into(), json!(""));
            }),
            "sub missing",
        ),
        (
            with(|c| {
                c.remove("oid");
            }),
            "oid missing",
        ),
        (
            with(|c| {
                c.remove("nonce");
            }),
            "nonce missing",
        ),
        (
            with(|c| {
                c.insert("nonce".into(), json!("other"));
            }),
            "nonce mismatch",
        ),
    ];
    for (claims, reason) in cases {
        assert_eq!(check(&claims), Err(reason.to_string()), "{claims:?}");
    }
}

#[test]
fn leeway_is_sixty_seconds_at_the_boundary() {
    assert_eq!(
        check(&with(|c| {
            c.insert("exp".into(), json!(NOW - 60));
        })),
        Ok(())
    );
    assert_eq!(
        check(&with(|c| {
            c.insert("iat".into(), json!(NOW + 60));
        })),
        Ok(())
    );
}

#[test]
fn several_audiences_with_our_azp_pass() {
    let c = with(|c| {
        c.insert("aud".into(), json!(["client", "other"]));
        c.insert("azp".into(), json!("client"));
    });
    assert_eq!(check(&c), Ok(()));
}

#[test]
fn multi_tenant_issuer_template_uses_the_tokens_own_tid() {
    let rule = IssuerRule::TenantTemplate("https://login.example/{tenantid}/v2.0".into());
    // Multi-tenant discovery pins no tenant (`discovery_rule`).
    let check_with = |claims: &Map<String, Value>, rule: &IssuerRule, tenants| {
        check_claims(
            claims,
            &Expectations {
                issuers: std::slice::from_ref(rule),
                client_id: "client",
                tenants: Some((tenants, None)),
                purpose: Purpose::IdToken {
                    nonce: NonceRule::Equals("n0nce"),
                },
                require_oid: true,
                now: NOW,
            },
        )
    };
    let list = TenantAllowList::List(vec![TID.to_string()]);
    assert_eq!(check_with(&good(), &rule, &list), Ok(()));
    // A listed tid, but iss names another tenant.
    let c = with(|c| {
        c.insert(
            "iss".into(),
            json!(format!("https://login.example/{OTHER_TID}/v2.0")),
        );
    });
    assert_eq!(check_with(&c, &rule, &list), Err("iss mismatch".into()));
    // A consistent token of an unlisted tenant.
    let c = with(|c| {
        c.insert(
            "iss".into(),
            json!(format!("https://login.example/{OTHER_TID}/v2.0")),
        );
        c.insert("tid".into(), json!(OTHER_TID));
    });
    assert_eq!(
        check_with(&c, &rule, &list),
        Err("tenant not allowed".into())
    );
    assert_eq!(check_with(&c, &rule, &TenantAllowList::Any), Ok(()));
    // A tid that tries to inject text into the template.
    let c = with(|c| {
        c.insert("iss".into(), json!("https://login.example/x/v2.0"));
        c.insert("tid".into(), json!("x"));
    });
    assert_eq!(
        check_with(&c, &rule, &TenantAllowList::Any),
        Err("tid is not a tenant id".into())
    );
}

#[test]
fn refresh_checks_sub_instead_of_nonce() {
    let rule = IssuerRule::Exact(format!("https://login.example/{TID}/v2.0"));
    let mut want = Expectations {
        issuers: std::slice::from_ref(&rule),
        client_id: "client",
        tenants: None,
        purpose: Purpose::IdToken {
            nonce: NonceRule::Refresh { sub: "s" },
        },
        require_oid: false,
        now: NOW,
    };
    let c = with(|c| {
        c.remove("nonce");
    });
    assert_eq!(check_claims(&c, &want), Ok(()));
    want.purpose = Purpose::IdToken {
        nonce: NonceRule::Refresh {
            sub: "someone-else",
        },
    };
    assert_eq!(
        check_claims(&c, &want),
        Err("sub changed on refresh".into())
    );
}

#[test]
fn header_policy_refuses_none_hmac_crit_and_jwe() {
    let tok = |h: Value| format!("{}.{}.sig", b64(&h), b64(&json!({})));
    let err = |h: Value| parse_header(&tok(h)).unwrap_err();
    assert!(err(json!({"alg": "none"})).contains("none"));
    assert!(err(json!({"alg": "NONE"})).contains("none"));
    assert!(err(json!({"alg": "HS256", "kid": "k"})).contains("HMAC"));
    assert!(err(json!({"alg": "HS512"})).contains("HMAC"));
    assert!(err(json!({"alg": "EdDSA"})).contains("not accepted"));
    assert!(err(json!({"typ": "JWT"})).contains("no alg"));
    assert!(err(json!({"alg": "RS256", "crit": ["exp"]})).contains("crit"));
    assert!(err(json!({"alg": "RS256", "kid": 5})).contains("kid"));
    assert!(parse_header("a.b.c.d.e").unwrap_err().contains("encrypted"));
    assert!(parse_header("a.b").is_err());
    assert!(parse_header("!!!.b.c").is_err());
    assert!(parse_header(&"a".repeat(70_000))
        .unwrap_err()
        .contains("too large"));
    let h = parse_header(&tok(json!({"alg": "RS256", "kid": "k1"}))).unwrap();
    assert_eq!(h.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(h.kid.as_deref(), Some("k1"));
}

#[test]
fn authorization_response_iss_template_needs_a_guid() {
    let t = "https://login.example/{tenantid}/v2.0";
    assert!(template_matches(
        t,
        &format!("https://login.example/{TID}/v2.0")
    ));
    assert!(!template_matches(t, "https://login.example/evil/v2.0"));
    assert!(!template_matches(t, "https://login.example/v2.0"));
    assert!(!template_matches(
        t,
        &format!("https://evil.example/{TID}/v2.0")
    ));
    assert!(is_guid(TID));
    assert!(!is_guid("11111111-2222-4333-8444-55555555555g"));
}

fn check_purpose(claims: &Map<String, Value>, purpose: Purpose<'_>) -> Result<(), String> {
    let rules = [
        IssuerRule::Exact(format!("https://login.example/{TID}/v2.0")),
        IssuerRule::TenantTemplate("https://sts.example/{tenantid}/".into()),
    ];
    check_claims(
        claims,
        &Expectations {
            issuers: &rules,
            client_id: "client",
            tenants: Some((&TenantAllowList::Pinned, Some(TID))),
            purpose,
            require_oid: true,
            now: NOW,
        },
    )
}

#[test]
fn access_tokens_need_the_api_audience_and_a_scope_and_are_not_id_tokens() {
    let apis = vec!["api://hr".to_string()];
    let access = || {
        with(|c| {
            c.remove("nonce");
            c.insert("aud".into(), json!("api://hr"));
            c.insert("azp".into(), json!("some-spa"));
            c.insert("scp".into(), json!("read"));
        })
    };
    let purpose = Purpose::Access { audiences: &apis };
    assert_eq!(check_purpose(&access(), purpose), Ok(()));
    // The v1.0 issuer form (second rule) with the token's tid.
    let v1 = {
        let mut c = access();
        c.insert("iss".into(), json!(format!("https://sts.example/{TID}/")));
        c
    };
    assert_eq!(check_purpose(&v1, purpose), Ok(()));
    let mut other_api = access();
    other_api.insert("aud".into(), json!("api://payroll"));
    assert_eq!(
        check_purpose(&other_api, purpose),
        Err("aud mismatch".into())
    );
    // Our own ID token replayed as a bearer token for an API whose audience is our client id.
    let own = vec!["client".to_string()];
    assert_eq!(
        check_purpose(&good(), Purpose::Access { audiences: &own }),
        Err("not an access token (no scp, roles or scope claim)".into())
    );
    let mut expired = access();
    expired.insert("exp".into(), json!(NOW - 3600));
    assert_eq!(
        check_purpose(&expired, purpose),
        Err("token expired".into())
    );
    let mut foreign = access();
    foreign.insert("tid".into(), json!(OTHER_TID));
    assert_eq!(
        check_purpose(&foreign, purpose),
        Err("tenant not allowed".into())
    );
}

/// Review 12: a single-tenant connection (discovery pinned its tenant)
/// that also lists `allowed_tenants` (accepted by `check`: say, an operator
/// thinking of B2B guests, or `["*"]`) took bearer tokens in Entra's v1.0
/// form from any listed tenant: the v1.0 issuer is a `{tenantid}` template
/// filled with the token's own `tid`, and the list was checked instead of
/// the pinned tenant. Another tenant's admin can register an app with the
/// same `api://` identifier URI there and mint v1.0 tokens for it, with
/// any app roles. ID tokens and v2.0 tokens were refused (exact issuer).
#[test]
fn a_single_tenant_connection_takes_only_its_own_tenant_whatever_allowed_tenants_lists() {
    let apis = vec!["api://hr".to_string()];
    let rules = [
        IssuerRule::Exact(format!("https://login.example/{TID}/v2.0")),
        IssuerRule::TenantTemplate("https://sts.example/{tenantid}/".into()),
    ];
    let foreign_v1 = with(|c| {
        c.remove("nonce");
        c.insert("aud".into(), json!("api://hr"));
        c.insert("appid".into(), json!("attacker-app"));
        c.insert("roles".into(), json!(["HR.Admin"]));
        c.insert(
            "iss".into(),
            json!(format!("https://sts.example/{OTHER_TID}/")),
        );
        c.insert("tid".into(), json!(OTHER_TID));
    });
    let listed = TenantAllowList::List(vec![TID.to_string(), OTHER_TID.to_string()]);
    for rule in [&listed, &TenantAllowList::Any] {
        let check = |pinned: Option<&str>| {
            check_claims(
                &foreign_v1,
                &Expectations {
                    issuers: &rules,
                    client_id: "client",
                    tenants: Some((rule, pinned)),
                    purpose: Purpose::Access { audiences: &apis },
                    require_oid: true,
                    now: NOW,
                },
            )
        };
        assert_eq!(
            check(Some(TID)),
            Err("tenant not allowed".into()),
            "{rule:?}"
        );
        // Multi-tenant (nothing pinned): the list decides.
        assert_eq!(check(None), Ok(()), "{rule:?}");
    }
}

#[test]
fn logout_tokens_need_the_event_a_subject_and_a_jti_and_no_nonce() {
    let logout = || {
        with(|c| {
            c.remove("nonce");
            c.insert("jti".into(), json!("j1"));
            c.insert("sid".into(), json!("s1"));
            c.insert(
                "events".into(),
                json!({ "http://schemas.openid.net/event/backchannel-logout": {} }),
            );
        })
    };
    assert_eq!(check_purpose(&logout(), Purpose::Logout), Ok(()));
    let cases: Vec<(Map<String, Value>, &str)> = vec![
        (
            {
                let mut c = logout();
                c.remove("events");
                c
            },
            "not a logout token",
        ),
        (
            {
                let mut c = logout();
                c.insert("nonce".into(), json!("n"));
                c
            },
            "must not contain a nonce",
        ),
        (
            {
                let mut c = logout();
                c.remove("jti");
                c
            },
            "jti missing",
        ),
        (
            {
                let mut c = logout();
                c.remove("sid");
                c.remove("sub");
                c
            },
            "neither sub nor sid",
        ),
        (
            {
                let mut c = logout();
                c.insert("aud".into(), json!("other"));
                c
            },
            "aud mismatch",
        ),
    ];
    for (claims, reason) in cases {
        let got = check_purpose(&claims, Purpose::Logout).unwrap_err();
        assert!(got.contains(reason), "{got} vs {reason}");
    }
    // An ID token is not a logout token.
    assert!(check_purpose(&good(), Purpose::Logout).is_err());
}

#[test]
fn explicit_typ_keeps_token_kinds_apart() {
    let tok = |h: Value| format!("{}.{}.sig", b64(&h), b64(&json!({})));
    let header = |typ: &str| parse_header(&tok(json!({"alg": "RS256", "typ": typ}))).unwrap();
    let id = Purpose::IdToken {
        nonce: NonceRule::Equals("n"),
    };
    let apis = vec!["api://x".to_string()];
    let access = Purpose::Access { audiences: &apis };
    assert!(header("JWT").check_typ(&id).is_ok());
    assert!(header("application/jwt").check_typ(&id).is_ok());
    assert!(header("at+jwt").check_typ(&id).is_err());
    assert!(header("logout+jwt").check_typ(&id).is_err());
    assert!(header("at+jwt").check_typ(&access).is_ok());
    assert!(header("logout+jwt").check_typ(&access).is_err());
    assert!(header("logout+jwt").check_typ(&Purpose::Logout).is_ok());
    assert!(header("at+jwt").check_typ(&Purpose::Logout).is_err());
    let untyped = parse_header(&tok(json!({"alg": "RS256"}))).unwrap();
    assert!(untyped.check_typ(&id).is_ok());
}

#[test]
fn jwks_keeps_only_public_signing_keys_of_rsa_and_ec() {
    use super::jwks::{KeySet, Selection};
    use jsonwebtoken::Algorithm;
    let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    let doc = json!({"keys": [
        {"kty": "RSA", "use": "sig", "kid": "rsa1", "n": n, "e": "AQAB"},
        {"kty": "RSA", "use": "enc", "kid": "enc1", "n": n, "e": "AQAB"},
        {"kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": n, "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "EC", "kid": "ec1", "crv": "P-256", "alg": "ES256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
        {"kty": "EC", "kid": "mismatch", "crv": "P-256", "alg": "RS256",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "weird"},
    ]});
    let set = KeySet::parse(doc.to_string().as_bytes(), 1).unwrap();
    let kept: Vec<&str> = set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    assert_eq!(kept, vec!["rsa1", "ec1", "ps"]);
    let skipped: Vec<Option<&str>> = set.skipped.iter().map(|(k, _)| k.as_deref()).collect();
    assert_eq!(
        skipped,
        vec![
            Some("enc1"),
            Some("oaep"),
            Some("hmac"),
            Some("ed"),
            Some("mismatch"),
            None
        ]
    );
    // Allow-list: RS256 always, plus what the kept keys declare; never HMAC.
    assert!(set.allows(Algorithm::RS256));
    assert!(set.allows(Algorithm::ES256));
    assert!(set.allows(Algorithm::PS256));
    assert!(!set.allows(Algorithm::RS512));
    assert!(!set.allows(Algorithm::HS256));
    // Selection by kid honours the key type and declared alg.
    assert!(matches!(
        set.select(Some("rsa1"), Algorithm::RS256),
        Selection::Found(_)
    ));
    assert!(matches!(
        set.select(Some("ec1"), Algorithm::RS256),
        Selection::UnknownKid
    ));
    assert!(matches!(
        set.select(Some("ps"), Algorithm::RS256),
        Selection::UnknownKid
    ));
    assert!(matches!(
        set.select(Some("nope"), Algorithm::RS256),
        Selection::UnknownKid
    ));
    // Without kid: exactly one suitable key, or nothing.
    assert!(matches!(
        set.select(None, Algorithm::ES256),
        Selection::Found(_)
    ));
    assert!(matches!(
        set.select(None, Algorithm::RS256),
        Selection::Found(_)
    ));
    assert!(matches!(
        set.select(None, Algorithm::PS256),
        Selection::Ambiguous(2)
    ));
    assert!(KeySet::parse(b"not json", 1).is_err());
    assert!(KeySet::parse(b"{\"keys\": 5}", 1).is_err());
}

#[test]
fn hostile_bytes_never_panic_the_header_parser_or_claim_checks() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let alphabet: Vec<char> = "ab.-_=+/{}\"[]:,0123456789eyJ \u{0}\u{ff}é"
        .chars()
        .collect();
    for _ in 0..5_000 {
        let len = rng.gen_range(0..200);
        let s: String = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();
        let _ = parse_header(&s);
        // Also as a base64url header segment.
        let _ = parse_header(&format!("{}.e30.sig", b64(&json!(s))));
    }
    let weird = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!(f64::MAX),
        json!("x"),
        json!([]),
        json!({}),
        json!([1, 2]),
    ];
    let rule = IssuerRule::TenantTemplate("https://login.example/{tenantid}/v2.0".into());
    for claim in [
        "iss", "aud", "tid", "exp", "iat", "nbf", "sub", "oid", "nonce", "azp",
    ] {
        for v in &weird {
            let c = with(|c| {
                c.insert(claim.into(), v.clone());
            });
            let _ = check(&c);
            let _ = check_with(&c, &rule, &TenantAllowList::Any);
        }
    }
}

/// JSON texts of hostile NumericDate values, parsed as serde_json does from a token.
const HOSTILE_TIMES: &[&str] = &[
    "1e300",
    "-1e300",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e19",
    "253402300800",
    "253402300799.99999999",
    "0",
    "-0",
    "-0.0",
    "0.5",
    "1e-300",
    "-1",
    "-9223372036854775808",
    "\"1800000000\"",
    "\"1e300\"",
    "true",
    "null",
    "[1800000000]",
    "{\"$numberLong\":\"1800000000\"}",
];

fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn numeric_dates_are_numbers_between_1970_and_year_9999() {
    use super::id_token::{numeric_date, MAX_NUMERIC_DATE};
    let ok = |text: &str| numeric_date("exp", &json_value(text));
    assert_eq!(ok("1800000000"), Ok(1_800_000_000));
    assert_eq!(ok("1"), Ok(1));
    assert_eq!(ok("253402300799"), Ok(MAX_NUMERIC_DATE));
    // Fractions are allowed by RFC 7519 and rounded down.
    assert_eq!(ok("1800000000.9"), Ok(1_800_000_000));
    assert_eq!(ok("1.8e9"), Ok(1_800_000_000));
    assert_eq!(ok("253402300799.5"), Ok(MAX_NUMERIC_DATE));
    for text in HOSTILE_TIMES
        .iter()
        .filter(|t| **t != "253402300799.99999999")
    {
        let err = ok(text).expect_err(text);
        assert!(err.starts_with("exp is "), "{text}: {err}");
    }
    assert_eq!(ok("\"1800000000\""), Err("exp is not a number".to_string()));
    assert!(ok("1e300").unwrap_err().contains("out of range"));
    assert!(ok("9223372036854775808").unwrap_err().contains("year 9999"));
}

#[test]
fn hostile_time_claims_are_refused_with_a_reason_for_every_token_kind() {
    let apis = vec!["api://hr".to_string()];
    let id_token = good;
    let access = || {
        with(|c| {
            c.remove("nonce");
            c.insert("aud".into(), json!("api://hr"));
            c.insert("azp".into(), json!("some-spa"));
            c.insert("scp".into(), json!("read"));
        })
    };
    let logout = || {
        with(|c| {
            c.remove("nonce");
            c.insert("jti".into(), json!("j1"));
            c.insert(
                "events".into(),
                json!({ "http://schemas.openid.net/event/backchannel-logout": {} }),
            );
        })
    };
    type Make<'a> = &'a dyn Fn() -> Map<String, Value>;
    let purposes: [(Make<'_>, Purpose<'_>); 3] = [
        (
            &id_token,
            Purpose::IdToken {
                nonce: NonceRule::Equals("n0nce"),
            },
        ),
        (&access, Purpose::Access { audiences: &apis }),
        (&logout, Purpose::Logout),
    ];
    for (make, purpose) in purposes {
        assert_eq!(check_purpose(&make(), purpose), Ok(()));
        for claim in ["exp", "nbf", "iat"] {
            for text in HOSTILE_TIMES {
                let mut c = make();
                c.insert(claim.into(), json_value(text));
                let err = check_purpose(&c, purpose).expect_err(text);
                // The reason names the claim (or, for a value that is a valid
                // date, why that date is refused).
                assert!(
                    err.contains(claim)
                        || err == "token expired"
                        || err == "token not valid yet (nbf)",
                    "{claim}: {text}: {err}"
                );
            }
        }
    }
}

#[test]
fn exp_more_than_366_days_ahead_is_refused() {
    use super::id_token::MAX_EXP_AHEAD_SECS;
    let at = |exp: u64| {
        check(&with(|c| {
            c.insert("exp".into(), json!(exp));
        }))
    };
    assert_eq!(at(NOW + MAX_EXP_AHEAD_SECS), Ok(()));
    assert_eq!(
        at(NOW + MAX_EXP_AHEAD_SECS + 1),
        Err("exp too far in the future (more than 366 days ahead)".to_string())
    );
    assert!(at(super::id_token::MAX_NUMERIC_DATE).is_err());
}

#[test]
fn a_configured_issuer_matches_with_or_without_one_trailing_slash() {
    // No discovery document says how the provider spells its issuer:
    // Auth0's ends in `/`, most others' do not.
    let rule = IssuerRule::Configured("https://tenant.auth0.example".into());
    for iss in [
        "https://tenant.auth0.example",
        "https://tenant.auth0.example/",
    ] {
        let c = with(|c| {
            c.insert("iss".into(), json!(iss));
        });
        assert_eq!(
            check_with(&c, &rule, &TenantAllowList::Pinned),
            Ok(()),
            "{iss}"
        );
    }
    for iss in [
        "https://tenant.auth0.example//",
        "https://tenant.auth0.example/x",
        "https://tenant.auth0.example.evil",
        "https://TENANT.auth0.example",
        "https://tenant.auth0.exampl",
    ] {
        let c = with(|c| {
            c.insert("iss".into(), json!(iss));
        });
        assert_eq!(
            check_with(&c, &rule, &TenantAllowList::Pinned),
            Err("iss mismatch".into()),
            "{iss}"
        );
    }
}
