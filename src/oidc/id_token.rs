//! ID token validation (SPEC 6). Split in two steps so each is auditable alone:
//!
//! 1. [`parse_header`] + [`verify_signature`]: the JOSE header is read by hand
//!    (so `none` and `HS*` are named when refused), the algorithm must be on the
//!    allow-list, the key comes from the provider's JWKS only, and jsonwebtoken
//!    checks the signature with exactly that algorithm.
//! 2. [`check_claims`]: a pure function over the verified claims and what the
//!    login expected; every check says which attack it stops.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::metadata::IssuerRule;
use crate::config::TenantAllowList;
use crate::connection::entra;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// An ID token issued longer ago than this is refused even if it has not expired.
pub const MAX_AGE_SECS: u64 = 24 * 3600;
/// Larger tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The parts of the JOSE header realmgate looks at.
#[derive(Debug)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// `typ`, lowercased, without an `application/` prefix.
    pub typ: Option<String>,
}

impl Header {
    /// Explicit typing (RFC 8725 3.11): a token whose header says it is
    /// another kind of JWT (an RFC 9068 access token, a logout token) is
    /// refused where an ID token is expected, and vice versa, so one kind
    /// cannot be passed off as the other.
    pub fn check_typ(&self, purpose: &Purpose<'_>) -> Result<(), String> {
        let Some(typ) = self.typ.as_deref() else {
            return Ok(());
        };
        let ok = match purpose {
            Purpose::IdToken { .. } => typ == "jwt",
            Purpose::Logout => matches!(typ, "jwt" | "logout+jwt"),
            Purpose::Access { .. } => matches!(typ, "jwt" | "at+jwt"),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("wrong token type (typ {typ})"))
        }
    }
}

/// Reads the header of a compact JWS and applies the algorithm policy that
/// does not depend on the keys.
pub fn parse_header(raw: &str) -> Result<Header, String> {
    if raw.len() > MAX_TOKEN_BYTES {
        return Err("token too large".into());
    }
    let segments: Vec<&str> = raw.split('.').collect();
    match segments.len() {
        3 => {}
        // JWE (compact serialization has 5 parts): realmgate registers no encryption key.
        5 => return Err("encrypted ID tokens are not supported".into()),
        _ => return Err("not a JWT (expected three dot-separated parts)".into()),
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(segments[0])
        .map_err(|_| "header is not base64url")?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header_bytes).map_err(|_| "header is not a JSON object")?;
    // RFC 7515 4.1.11: an extension we do not understand listed in `crit` must make us refuse.
    if header.contains_key("crit") {
        return Err("header has critical extensions (crit) realmgate does not implement".into());
    }
    // `jku`, `x5u`, `jwk` and `x5c` in the header are ignored on purpose: keys
    // come only from the provider's JWKS, never from the token itself.
    let alg = match header.get("alg").and_then(Value::as_str) {
        None => return Err("header has no alg".into()),
        // Unsigned tokens: anyone could write one.
        Some(a) if a.eq_ignore_ascii_case("none") => {
            return Err("alg none is never accepted".into())
        }
        // HMAC: verifying with the provider's *public* key as the HMAC secret
        // would let anyone who has that public key forge tokens.
        Some(a) if a.starts_with("HS") => return Err(format!("alg {a} (HMAC) is never accepted")),
        Some("RS256") => Algorithm::RS256,
        Some("RS384") => Algorithm::RS384,
        Some("RS512") => Algorithm::RS512,
        Some("PS256") => Algorithm::PS256,
        Some("PS384") => Algorithm::PS384,
        Some("PS512") => Algorithm::PS512,
        Some("ES256") => Algorithm::ES256,
        Some("ES384") => Algorithm::ES384,
        Some(other) => {
            let shown: String = other
                .chars()
                .take(16)
                .filter(char::is_ascii_graphic)
                .collect();
            return Err(format!("alg {shown} is not accepted"));
        }
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("header kid is not a string".into()),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => {
            let t = t.to_ascii_lowercase();
            Some(
                t.strip_prefix("application/")
                    .map(str::to_string)
                    .unwrap_or(t),
            )
        }
        Some(_) => return Err("header typ is not a string".into()),
    };
    Ok(Header { alg, kid, typ })
}

/// Checks the signature with `key` and `alg` only, and returns the claims.
pub fn verify_signature(
    raw: &str,
    alg: Algorithm,
    key: &DecodingKey,
) -> Result<Map<String, Value>, String> {
    let mut validation = Validation::new(alg);
    // Exactly one algorithm: the one the allow-list and key selection approved.
    validation.algorithms = vec![alg];
    // Claims are checked by `check_claims`, all in one place.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(raw, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "signature invalid".to_string(),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                "algorithm does not match the key".to_string()
            }
            jsonwebtoken::errors::ErrorKind::Json(_) => "claims are not a JSON object".to_string(),
            _ => "signature could not be verified".to_string(),
        })
}

/// What to expect of `nonce`.
#[derive(Debug, Clone, Copy)]
pub enum NonceRule<'a> {
    /// A login: `nonce` must be present and equal.
    Equals(&'a str),
    /// A token refresh: no nonce was sent; if one is present it is not checked
    /// (OpenID Connect Core 12.2), but `sub` must not change.
    Refresh { sub: &'a str },
}

/// Which kind of token is checked; each has its own claim rules.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// An ID token from a login or a refresh.
    IdToken { nonce: NonceRule<'a> },
    /// An OpenID Connect Back-Channel Logout token.
    Logout,
    /// A bearer access token for one of these audiences (SPEC 5.9).
    Access { audiences: &'a [String] },
}

/// The `events` member that marks a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Everything the claims are checked against.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// `iss` must match one of these (access tokens may have a second issuer form).
    pub issuers: &'a [IssuerRule],
    pub client_id: &'a str,
    /// Entra connections: the tenant rule and the tenant pinned by discovery.
    pub tenants: Option<(&'a TenantAllowList, Option<&'a str>)>,
    pub purpose: Purpose<'a>,
    /// Entra: `oid` is the user id and must be present.
    pub require_oid: bool,
    /// Unix seconds.
    pub now: u64,
}

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z. Far beyond any
/// real token, and small enough that every time computed from a claim
/// (`SystemTime`, `Instant`, milliseconds for Redis) stays representable.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;
/// An `exp` further ahead than this (366 days) is refused: no provider
/// issues ID, access or logout tokens that live a year, and a token that
/// practically never expires cannot be contained once stolen.
pub const MAX_EXP_AHEAD_SECS: u64 = 366 * 24 * 3600;

/// A NumericDate claim (RFC 7519 2): a JSON number of seconds since 1970,
/// `1..=MAX_NUMERIC_DATE`. Integers are taken as they are; a finite float
/// (RFC 7519 allows fractions) is rounded down to whole seconds, which for
/// `exp` ends the token earlier, never later. Everything else is refused
/// with a reason: strings (`"1700000000"`), booleans, `null`, arrays,
/// negatives, `-0` and `0`, and values beyond year 9999 (`1e300`, `2^63`,
/// `2^64`), which would otherwise saturate to `u64::MAX` and overflow the
/// time arithmetic downstream.
pub fn numeric_date(name: &str, v: &Value) -> Result<u64, String> {
    let out_of_range = || {
        format!(
            "{name} is out of range (a NumericDate is seconds since 1970, from 1 to {MAX_NUMERIC_DATE} = year 9999)"
        )
    };
    let Value::Number(n) = v else {
        return Err(format!("{name} is not a number"));
    };
    let secs = if let Some(u) = n.as_u64() {
        u
    } else if n.is_i64() {
        return Err(out_of_range());
    } else {
        // A float. The comparisons are false for NaN, so NaN is refused too.
        let f = n.as_f64().ok_or_else(out_of_range)?;
        if !(f >= 1.0 && f < (MAX_NUMERIC_DATE + 1) as f64) {
            return Err(out_of_range());
        }
        // In range, so the conversion is exact after flooring.
        f.floor() as u64
    };
    if secs == 0 || secs > MAX_NUMERIC_DATE {
        return Err(out_of_range());
    }
    Ok(secs)
}

fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    claims.get(name).map(|v| numeric_date(name, v)).transpose()
}

/// Every claim check of SPEC 6, after the signature was verified.
pub fn check_claims(claims: &Map<String, Value>, want: &Expectations<'_>) -> Result<(), String> {
    // --- iss: a token from another provider (or another Entra tenant) that
    // happens to be signed by keys we trust must not be accepted (mix-up,
    // cross-tenant token substitution).
    let iss = str_claim(claims, "iss").ok_or("iss missing")?;
    let tid = str_claim(claims, "tid");
    let mut iss_ok = false;
    for rule in want.issuers {
        match rule {
            IssuerRule::Exact(expected) => iss_ok |= iss == expected,
            IssuerRule::Configured(base) => iss_ok |= IssuerRule::configured_matches(base, iss),
            IssuerRule::TenantTemplate(template) => {
                // Entra multi-tenant: the template filled with the token's own tid.
                iss_ok |= entra::issuer::matches_template_with_tid(template, iss, tid)?;
            }
        }
    }
    if !iss_ok {
        return Err("iss mismatch".into());
    }

    // --- tid: the tenant allow-list. A user of any Entra tenant can obtain a
    // validly signed token for a multi-tenant app; only the listed tenants may
    // sign in. A single-tenant connection accepts its own tenant only.
    if let Some((rule, pinned)) = want.tenants {
        entra::issuer::check_tenant(rule, pinned, tid)?;
    }

    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err("aud missing".into()),
    };
    if let Purpose::Access { audiences } = want.purpose {
        // --- aud (bearer): the token must be meant for this API, not for
        // another one that could replay it here.
        if !auds.iter().any(|a| audiences.iter().any(|x| x == a)) {
            return Err("aud mismatch".into());
        }
        // --- an ID token is not an access token: Entra access tokens carry
        // `scp` (delegated) or `roles` (application), RFC 9068 ones `scope`;
        // ID tokens carry none of them, and carry a nonce. Stops replaying a
        // user's ID token as a bearer token when the API's audience is the
        // app's own client id. (Entra ID tokens may carry `roles`: the Entra
        // rules in `access_token` also demand `azp`/`appid`.)
        if !(claims.contains_key("scp")
            || claims.contains_key("roles")
            || claims.contains_key("scope"))
        {
            return Err("not an access token (no scp, roles or scope claim)".into());
        }
        if claims.contains_key("nonce") {
            return Err("not an access token (it has a nonce, as ID tokens do)".into());
        }
    } else {
        // --- aud: a token issued to another application (which that
        // application could replay to us) must not be accepted.
        if !auds.contains(&want.client_id) {
            return Err("aud mismatch".into());
        }
        // --- azp: with several audiences the token was requested by one of
        // them; it must be us (OpenID Connect Core 3.1.3.7 steps 4-5). When
        // present with a single audience it must be us too.
        let azp = str_claim(claims, "azp");
        if auds.len() > 1 && azp.is_none() {
            return Err("several audiences without azp".into());
        }
        if let Some(azp) = azp {
            if azp != want.client_id {
                return Err("azp mismatch".into());
            }
        }
    }

    // --- exp: a stolen or logged old token must stop working.
    let exp = time_claim(claims, "exp")?.ok_or("exp missing")?;
    if want.now > exp.saturating_add(LEEWAY_SECS) {
        return Err("token expired".into());
    }
    if exp > want.now.saturating_add(MAX_EXP_AHEAD_SECS) {
        return Err("exp too far in the future (more than 366 days ahead)".into());
    }
    // --- nbf: not valid yet.
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if nbf > want.now.saturating_add(LEEWAY_SECS) {
            return Err("token not valid yet (nbf)".into());
        }
    }
    // --- iat: a token "issued" in the future or very long ago points at a
    // pre-minted or replayed token (or a badly wrong clock).
    let iat = time_claim(claims, "iat")?.ok_or("iat missing")?;
    if iat > want.now.saturating_add(LEEWAY_SECS) {
        return Err("iat in the future".into());
    }
    if want.now.saturating_sub(iat) > MAX_AGE_SECS {
        return Err("iat too old".into());
    }

    let sub = str_claim(claims, "sub").filter(|s| !s.is_empty());
    match want.purpose {
        Purpose::IdToken { nonce } => {
            // --- sub (and oid on Entra): without a stable subject there is no user id.
            let sub = sub.ok_or("sub missing")?;
            if want.require_oid && str_claim(claims, "oid").is_none_or(str::is_empty) {
                return Err("oid missing".into());
            }
            // --- nonce: binds the token to this browser's login attempt; stops
            // a token obtained elsewhere (or an old one) from being injected
            // into the callback (replay / token injection).
            match nonce {
                NonceRule::Equals(expected) => {
                    let got = str_claim(claims, "nonce").ok_or("nonce missing")?;
                    if expected.is_empty() || !bool::from(got.as_bytes().ct_eq(expected.as_bytes()))
                    {
                        return Err("nonce mismatch".into());
                    }
                }
                NonceRule::Refresh { sub: expected_sub } => {
                    if sub != expected_sub {
                        return Err("sub changed on refresh".into());
                    }
                }
            }
        }
        Purpose::Access { .. } => {
            sub.ok_or("sub missing")?;
            if want.require_oid && str_claim(claims, "oid").is_none_or(str::is_empty) {
                return Err("oid missing".into());
            }
        }
        Purpose::Logout => {
            // Back-Channel Logout 1.0 section 2.6: the events member marks the
            // token as a logout token (so an ID token cannot be posted as one),
            // a nonce is forbidden (same reason), sub or sid names what ends,
            // and jti lets the caller refuse replays.
            let is_logout = claims
                .get("events")
                .and_then(Value::as_object)
                .is_some_and(|e| e.contains_key(BACKCHANNEL_LOGOUT_EVENT));
            if !is_logout {
                return Err(
                    "not a logout token (events lacks the back-channel logout event)".into(),
                );
            }
            if claims.contains_key("nonce") {
                return Err("logout token must not contain a nonce".into());
            }
            if sub.is_none() && str_claim(claims, "sid").is_none_or(str::is_empty) {
                return Err("logout token has neither sub nor sid".into());
            }
            if str_claim(claims, "jti").is_none_or(str::is_empty) {
                return Err("jti missing".into());
            }
        }
    }
    Ok(())
}
