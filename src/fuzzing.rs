//! Entry points for the cargo-fuzz targets in `fuzz/` (one function per
//! target), not an API: compiled only with the `fuzzing` feature (which
//! fuzz/Cargo.toml turns on) and in unit tests, hidden from the docs and
//! free to change. Each takes
//! arbitrary bytes, runs one parser of attacker input the way the gateway
//! does, and panics when a property that security depends on fails (not only
//! on a crash): a stripped request still carrying an identity header, a login
//! target leaving the configured hosts, a token accepted with the wrong
//! nonce, normalization that is not idempotent.
//!
//! `cargo test --lib fuzzing::` runs every entry point on the seed corpora in
//! `fuzz/corpus/`, so the properties hold in the ordinary test run too.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Settings;

/// A fixed configuration: route `app.test` (public `/static/`, `headers_extra`
/// `X-Employee-Id`) and `other.test`; trusted proxies `10.0.0.0/8`.
fn settings() -> &'static Arc<Settings> {
    static SETTINGS: OnceLock<Arc<Settings>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let text = r#"
[server]
trusted_proxies = ["10.0.0.0/8"]

[session]
secret = "fuzzing-secret-0123456789abcdef0123456789"

[[connection]]
name = "contoso"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "client"
client_secret = "secret"

[[route]]
name = "app"
hosts = ["app.test"]
upstream = "http://127.0.0.1:9"
public = ["/static/", "/favicon.ico"]
headers_extra = { "X-Employee-Id" = "user_id" }

[[route]]
name = "admin"
hosts = ["app.test"]
path_prefix = "/admin/"
upstream = "http://127.0.0.1:9"

[[route]]
name = "other"
hosts = ["other.test"]
upstream = "http://127.0.0.1:9"
"#;
        Arc::new(crate::config::load_str(text).expect("the fuzzing config is valid"))
    })
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A header map from `name: value` lines; lines that are not a valid header are skipped.
fn header_lines(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    headers
}

/// Session cookie parsing: `Cookie` header values, one per line. Reading
/// never panics; after `strip_own_cookies` no session cookie is left; a
/// value realmgate wrote reads back as the same id.
pub fn cookie(data: &[u8]) {
    let s = settings();
    let cookies = crate::session::cookie::SessionCookies::new(&s.session);
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(http::header::COOKIE, v);
        }
    }
    let _ = cookies.read(&headers);
    let _ = cookies.read_for(&headers, true);
    let _ = cookies.read_for(&headers, false);
    let mut stripped = headers.clone();
    cookies.strip_own_cookies(&mut stripped);
    assert!(
        cookies.read(&stripped).is_none(),
        "a session cookie survived stripping"
    );
    // Round trip: the first 32 bytes as an id.
    let mut id = [0u8; 32];
    for (dst, src) in id.iter_mut().zip(data) {
        *dst = *src;
    }
    let id = crate::session::store::SessionId::from_bytes(id);
    let value = cookies.value(&id);
    let mut own = HeaderMap::new();
    own.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&format!("{}={value}", cookies.name_for(false)))
            .expect("cookie values are visible ASCII"),
    );
    assert_eq!(
        cookies.read(&own).as_ref().map(|i| *i.as_bytes()),
        Some(*id.as_bytes())
    );
}

/// The callback's parameters and state cookie: the first line is the
/// `Cookie` header, the rest the query or form. A state is only ever
/// redeemed by the browser whose cookie holds it.
pub fn callback(data: &[u8]) {
    let s = settings();
    let states = crate::session::state::StateCookies::new(&s.session);
    let (cookie_line, params) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let pairs = crate::auth::form_pairs(params);
    let state = crate::auth::form_get(&pairs, "state");
    let _ = crate::auth::form_get(&pairs, "code");
    let _ = crate::auth::form_get(&pairs, "iss");
    let _ = crate::auth::form_get(&pairs, "error");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(cookie_line) {
        headers.insert(http::header::COOKIE, v);
    }
    if let Some(state) = state {
        let _ = states.take(&headers, false, state);
        let _ = states.take(&headers, true, state);
        // A genuine pending login gives itself up only for its own state.
        let pending = crate::session::state::PendingLogin {
            state: "genuine-state-0123456789".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            connection: "contoso".into(),
            redirect_uri: "http://app.test/.auth/login/contoso/callback".into(),
            target: "/".into(),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let set = states.add(&HeaderMap::new(), false, pending.clone());
        let value = set
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("name=value");
        let mut own = HeaderMap::new();
        own.insert(
            http::header::COOKIE,
            HeaderValue::from_str(value).expect("ascii"),
        );
        let taken = states.take(&own, false, state);
        assert_eq!(taken.is_some(), state == pending.state, "state {state:?}");
    }
}

/// Login target validation: the answer is `/`, a same-host path, or an
/// absolute http(s) URL on a route host, with nothing a browser rewrites.
pub fn login_target(data: &[u8]) {
    let raw = text(data);
    let hosts: HashSet<String> = ["app.test".to_string(), "other.test".to_string()].into();
    use crate::redirect::Scheme;
    let out = crate::redirect::safe_target(&raw, "app.test", Scheme::Http, &hosts);
    // Over https the answer is the same, except that no plain-http URL survives.
    let over_https = crate::redirect::safe_target(&raw, "app.test", Scheme::Https, &hosts);
    if out.starts_with("http://") {
        assert_eq!(over_https, "/", "{raw:?} -> {over_https:?}");
    } else {
        assert_eq!(over_https, out, "{raw:?}");
    }
    assert!(
        !out.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
        "{raw:?} -> {out:?}"
    );
    if out.starts_with('/') {
        assert!(!out.starts_with("//"), "{raw:?} -> {out:?}");
        let base = url::Url::parse("https://app.test/").expect("base");
        let joined = base.join(&out).expect("a path joins");
        assert_eq!(joined.host_str(), Some("app.test"), "{raw:?} -> {out:?}");
    } else {
        let url = url::Url::parse(&out).unwrap_or_else(|e| panic!("{raw:?} -> {out:?}: {e}"));
        assert!(
            matches!(url.scheme(), "http" | "https"),
            "{raw:?} -> {out:?}"
        );
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(
            url.host_str().is_some_and(|h| hosts.contains(h)),
            "{raw:?} -> {out:?}"
        );
    }
    // What the gateway answered is accepted as is when it comes back.
    assert_eq!(
        crate::redirect::safe_target(&out, "app.test", Scheme::Http, &hosts),
        out,
        "{raw:?}"
    );
}

/// The canonical request target (SPEC 6.1): it is idempotent (its path is
/// its own canonical form, judged the same); the forwarded path has no dot
/// segment in any upstream's reading (decoded once or twice, `;params`
/// stripped, `\\` as `/`), so every upstream resolves it to itself; a public
/// path is forwarded under a public prefix; routing never panics.
pub fn path(data: &[u8]) {
    use crate::pathnorm::CanonicalTarget;
    let raw = text(data);
    let s = settings();
    if let Ok(t) = CanonicalTarget::parse(&raw) {
        let p = t.path();
        assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
        let again = CanonicalTarget::parse(p).expect("the canonical form is accepted");
        assert_eq!(again.path(), p, "{raw:?}");
        assert!(!again.rewritten(), "{raw:?} -> {p:?}");
        assert_eq!(again.judged(), t.judged(), "{raw:?}");
        assert!(!t.path().contains('\\'), "{raw:?} -> {p:?}");
        for reading in upstream_readings(p) {
            assert!(
                !reading
                    .split(['/', '\\'])
                    .any(|seg| seg == "." || seg == ".."),
                "{raw:?} forwarded as {p:?} reads as {reading:?}"
            );
        }
        let public = &s.routes[0].public;
        if t.is_public(public) {
            for reading in upstream_readings(p) {
                let reading = reading.replace('\\', "/");
                assert!(
                    reading.starts_with("/static/")
                        || reading == "/favicon.ico"
                        || reading.starts_with("/favicon.ico/"),
                    "{raw:?} public, forwarded as {p:?}, read as {reading:?}"
                );
            }
        }
        let router = crate::router::Router::new(&s.routes);
        let _ = router.lookup_target("app.test", &t);
        let _ = t.readings();
    }
    let router = crate::router::Router::new(&s.routes);
    let _ = router.lookup("app.test", &raw);
    let _ = router.lookup(&raw, "/");
}

/// How upstreams may read a forwarded path: as is, decoded once, decoded
/// twice, each also with `;params` stripped from every segment.
fn upstream_readings(path: &str) -> Vec<String> {
    let once = lossy_decode(path);
    let twice = lossy_decode(&once);
    let mut out = Vec::new();
    for r in [path.to_string(), once, twice] {
        let stripped = r
            .split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/");
        out.push(r);
        out.push(stripped);
    }
    out
}

fn lossy_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = (
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        );
        match (b[i], pair) {
            (b'%', (Some(hi), Some(lo))) => {
                out.push((hi * 16 + lo) as u8);
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

/// Header stripping: hop-by-hop removal, identity stripping and forwarding
/// headers over `name: value` lines. Afterwards no identity header (in any
/// spelling) and no hop-by-hop header is left, and an untrusted peer's
/// forwarding headers are realmgate's own.
pub fn headers(data: &[u8]) {
    let s = settings();
    let mut headers = header_lines(data);
    crate::headers::hop::strip_hop_by_hop(&mut headers);
    let extra = [HeaderName::from_static("x-employee-id")];
    crate::headers::identity::strip(&mut headers, &extra);
    for name in headers.keys() {
        assert!(
            !crate::headers::identity::is_identity_header(name.as_str(), &extra),
            "{name} survived stripping"
        );
        assert!(
            !matches!(
                name.as_str(),
                "connection" | "keep-alive" | "proxy-connection" | "te" | "upgrade" | "trailer"
            ),
            "{name} survived hop-by-hop removal"
        );
    }
    let conn = crate::peer::ConnInfo::new(
        "192.0.2.1:1234".parse().expect("addr"),
        "127.0.0.1:8080".parse().expect("addr"),
        false,
    );
    let id = crate::headers::forwarding::request_id(&s.server, &headers, &conn);
    crate::headers::forwarding::apply(&mut headers, &s.server, &conn, None, &id);
    let xff: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff, [HeaderValue::from_static("192.0.2.1")]);
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert!(headers.get("x-forwarded-host").is_none());
    for name in headers.keys() {
        let dashed = name.as_str().replace('_', "-");
        assert!(
            !(name.as_str().contains('_') && dashed.starts_with("x-forwarded-")),
            "{name} reached the app"
        );
    }
}

/// Modulus of a fixed RSA key (public part only) for signature checks.
const FUZZ_RSA_N: &str = "s8-DkvIi0FPbXwf80pWZHfy5_lE4bZ2msbrpWJmsY6VmYKTZm_n0nqFBi-zbTZKFVRjpwzZGR0WIufi4wVGzm3nziXhqgGkFZy6O-dxpAp9HHtckqh5maT4aLI4BXtS5FWvvjXmNYnHxKZA4cw0x-K0ikAi7L5VC-fe8QRT3jpOd8jr2ItO-qeL77qqndGIRePQzgon5HsPUKKTi58-D5k5VXWiaQGV02US7nTqe6cGV7pcbV-nrW0sco-3fZMGGLrMEby-LIKFWRQ_fWrneHuxw71H6FdwbQzvlC8_FoMT6an0EZmSKjPeIkv-9BwCRjfebueNCY98YYUX2QRzihQ";

/// JWT handling: the JOSE header parser (never accepts `none` or HMAC), the
/// signature check with a fixed key (never accepts a token nobody signed),
/// and the claim checks, which accept a claim set only when it satisfies
/// every rule. Input: a compact JWT, or (when it parses as JSON) a claim set.
pub fn jwt(data: &[u8]) {
    use crate::oidc::id_token::{self, Expectations, NonceRule, Purpose};
    let raw = text(data);
    if let Ok(header) = id_token::parse_header(&raw) {
        assert!(
            !matches!(
                header.alg,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            ),
            "HMAC accepted"
        );
        let key = jsonwebtoken::DecodingKey::from_rsa_components(FUZZ_RSA_N, "AQAB")
            .expect("valid RSA components");
        assert!(
            id_token::verify_signature(&raw, header.alg, &key).is_err(),
            "a token nobody signed verified"
        );
    }
    let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(data) else {
        return;
    };
    let issuers = [crate::oidc::metadata::IssuerRule::Exact(
        "https://idp.test/".into(),
    )];
    let now = 1_700_000_000;
    let want = Expectations {
        issuers: &issuers,
        client_id: "client",
        tenants: None,
        purpose: Purpose::IdToken {
            nonce: NonceRule::Equals("the-nonce"),
        },
        require_oid: false,
        now,
    };
    if id_token::check_claims(&claims, &want).is_ok() {
        let str_of = |k: &str| claims.get(k).and_then(serde_json::Value::as_str);
        assert_eq!(str_of("iss"), Some("https://idp.test/"));
        assert_eq!(str_of("nonce"), Some("the-nonce"));
        assert!(str_of("sub").is_some_and(|s| !s.is_empty()));
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => a == "client",
            Some(serde_json::Value::Array(l)) => l.iter().any(|a| a == "client"),
            _ => false,
        };
        assert!(aud_ok, "aud");
        let exp = claims.get("exp").and_then(serde_json::Value::as_f64);
        assert!(exp.is_some_and(|e| e + id_token::LEEWAY_SECS as f64 >= now as f64));
    }
}

/// Config parsing and validation of arbitrary text: a precise error or
/// settings, never a panic.
pub fn config(data: &[u8]) {
    let raw = text(data);
    match crate::config::load_str(&raw) {
        Ok(settings) => {
            // What `check` prints is built from valid settings without panicking.
            let _ = crate::config::summary(&settings);
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without problems");
            let _ = e.to_string();
        }
    }
}

#[cfg(test)]
mod tests;

/// The upstream response parser and body decoder for requests without a
/// body (`proxy::pool::raw`): the first byte chooses how the stream is cut
/// into reads and whether the request was HEAD. No panic, no endless loop,
/// no body longer than announced or than the bytes received.
pub fn upstream_response(data: &[u8]) {
    crate::proxy::pool::fuzz_response(data);
}

/// The own upstream response reader against hyper's HTTP/1 client on the
/// same bytes (`proxy::pool::raw::differential`): the first byte chooses
/// the request method, whether the upstream closes after the bytes, and
/// how the stream is cut into reads. Fails when they disagree on accepting,
/// status, body bytes, end of message or connection reuse, beyond the own
/// reader's documented strictness.
pub fn upstream_differential(data: &[u8]) {
    crate::proxy::pool::fuzz_differential(data);
}

/// A P-256 key used only here: the claim-set fuzzer signs with it so its
/// tokens get past the signature check to the claim checks.
const FUZZ_EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpwRxmGi6RGkWC68v
RXNhiWn6bdbRik+XLiqPLgGaeXChRANCAAQov8iqcv3MRdvkjI6mZ8NOvr3XotLl
ti1SHPbvQ8UMLlNoO10ra0uhVjzk+AWRY7Nnd/n0g6Jgps9ho5AoLRV6
-----END PRIVATE KEY-----
";
const FUZZ_EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKL/IqnL9zEXb5IyOpmfDTr6916LS
5bYtUhz270PFDC5TaDtdK2tLoVY85PgFkWOzZ3f59IOiYKbPYaOQKC0Veg==
-----END PUBLIC KEY-----
";

/// Number texts serde_json reads differently from what they look like.
const TRICKY_NUMBERS: &[&str] = &[
    "1e300",
    "-1e300",
    "1e-300",
    "-0",
    "-0.0",
    "0",
    "0.5",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "253402300799",
    "253402300799.5",
    "253402300800",
    "1.7e9",
    "1700000000.999999",
    "-1",
    "-9223372036854775808",
];

/// Reads the fuzz input as edits of a valid claim set.
struct Edits<'a>(&'a [u8]);

impl Edits<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let mut eight = [0u8; 8];
        for b in &mut eight {
            *b = self.byte()?;
        }
        Some(u64::from_le_bytes(eight))
    }
    /// A claim value: numbers of every shape (near `now`, any 64-bit
    /// integer, any finite float, the tricky texts), strings, and the
    /// other JSON types.
    fn value(&mut self, now: u64) -> Option<serde_json::Value> {
        use serde_json::{json, Value};
        Some(match self.byte()? % 10 {
            0 => json!(now.wrapping_add_signed(i64::from(self.byte()? as i8) * 601)),
            1 => json!(self.u64()?),
            2 => json!(self.u64()? as i64),
            3 => {
                let f = f64::from_bits(self.u64()?);
                if f.is_finite() {
                    json!(f)
                } else {
                    Value::Null
                }
            }
            4 => {
                let text = TRICKY_NUMBERS[usize::from(self.byte()?) % TRICKY_NUMBERS.len()];
                serde_json::from_str(text).expect("a JSON number")
            }
            5 => {
                let len = usize::from(self.byte()? % 24).min(self.0.len());
                let (s, rest) = self.0.split_at(len);
                self.0 = rest;
                Value::String(String::from_utf8_lossy(s).into_owned())
            }
            6 => json!(["client", "other"]),
            7 => json!(now.to_string()),
            8 => Value::Bool(self.byte()? & 1 == 1),
            _ => Value::Null,
        })
    }
}

/// The claim checks behind a valid signature: a claim set edited by the
/// input (arbitrary values in `exp`, `nbf`, `iat`, `aud`, `iss`, `sub`,
/// `nonce`, `azp`, or a claim removed) is signed with a fixed ES256 key and
/// goes through the real path (header, signature, `check_claims`) for an
/// ID token, an access token or a logout token. Never a panic; an accepted
/// token's times are NumericDates in range, and the session deadline the
/// gateway derives from `exp` is representable. Returns whether the token
/// was accepted.
pub fn jwt_claims(data: &[u8]) -> bool {
    use crate::oidc::id_token::{self, Expectations, NonceRule, Purpose};
    use serde_json::json;
    static KEYS: OnceLock<(jsonwebtoken::EncodingKey, jsonwebtoken::DecodingKey)> = OnceLock::new();
    let (signing, verifying) = KEYS.get_or_init(|| {
        (
            jsonwebtoken::EncodingKey::from_ec_pem(FUZZ_EC_PRIVATE.as_bytes())
                .expect("the fuzzing EC key parses"),
            jsonwebtoken::DecodingKey::from_ec_pem(FUZZ_EC_PUBLIC.as_bytes())
                .expect("the fuzzing EC public key parses"),
        )
    });
    let now: u64 = 1_700_000_000;
    let mut edits = Edits(data);
    let Some(kind) = edits.byte() else {
        return false;
    };
    let mut claims = serde_json::Map::new();
    for (k, v) in [
        ("iss", json!("https://idp.test/")),
        ("aud", json!("client")),
        ("sub", json!("subject")),
        ("exp", json!(now + 3600)),
        ("iat", json!(now - 10)),
        ("nbf", json!(now - 10)),
    ] {
        claims.insert(k.into(), v);
    }
    match kind % 3 {
        0 => {
            claims.insert("nonce".into(), json!("the-nonce"));
        }
        1 => {
            claims.insert("scp".into(), json!("read"));
        }
        _ => {
            claims.insert("jti".into(), json!("j"));
            claims.insert(
                "events".into(),
                json!({ id_token::BACKCHANNEL_LOGOUT_EVENT: {} }),
            );
        }
    }
    const NAMES: [&str; 8] = ["exp", "nbf", "iat", "aud", "iss", "sub", "nonce", "azp"];
    while let Some(which) = edits.byte() {
        let name = NAMES[usize::from(which) % NAMES.len()];
        if which >= 0xf0 {
            claims.remove(name);
        } else if let Some(v) = edits.value(now) {
            claims.insert(name.into(), v);
        }
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let token = jsonwebtoken::encode(&header, &claims, signing).expect("signing works");
    let parsed = id_token::parse_header(&token).expect("our own header parses");
    let verified = match id_token::verify_signature(&token, parsed.alg, verifying) {
        Ok(verified) => verified,
        // jsonwebtoken reads exp/nbf/iss/sub/aud for its own (disabled)
        // checks and gives up on some shapes (an array as exp): refused,
        // which fails closed, but never as a bad signature.
        Err(e) => {
            assert_eq!(e, "claims are not a JSON object", "{claims:?}");
            return false;
        }
    };
    // The verified claims are the signed ones (floats up to serde_json's
    // last-digit rounding when parsing without `float_roundtrip`).
    let same = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_f64() || b.is_f64() => {
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-12
        }
        _ => a == b,
    };
    assert!(
        verified.len() == claims.len()
            && claims
                .iter()
                .all(|(k, v)| verified.get(k).is_some_and(|w| same(v, w))),
        "signed {claims:?}, verified {verified:?}"
    );

    let issuers = [crate::oidc::metadata::IssuerRule::Exact(
        "https://idp.test/".into(),
    )];
    let audiences = ["client".to_string()];
    let purpose = match kind % 3 {
        0 => Purpose::IdToken {
            nonce: NonceRule::Equals("the-nonce"),
        },
        1 => Purpose::Access {
            audiences: &audiences,
        },
        _ => Purpose::Logout,
    };
    let want = Expectations {
        issuers: &issuers,
        client_id: "client",
        tenants: None,
        purpose,
        require_oid: false,
        now,
    };
    if id_token::check_claims(&verified, &want).is_err() {
        return false;
    }
    let date = |name: &str| {
        verified
            .get(name)
            .map(|v| id_token::numeric_date(name, v).expect("accepted dates parse"))
    };
    let exp = date("exp").expect("exp is required");
    assert!(exp + id_token::LEEWAY_SECS >= now && exp <= now + id_token::MAX_EXP_AHEAD_SECS);
    for t in [date("nbf"), date("iat")].into_iter().flatten() {
        assert!((1..=id_token::MAX_NUMERIC_DATE).contains(&t));
    }
    // What the gateway derives from exp: a bearer session's tunnel deadline.
    let deadline = crate::phase::forward::tunnel_deadline(exp);
    assert!(deadline > std::time::SystemTime::UNIX_EPOCH);
    let left = deadline
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    assert!(std::time::Instant::now().checked_add(left).is_some());
    true
}

/// A SAML response (or metadata, or a redirect-bound message) from an IdP:
/// never accepted without the pinned key (src/saml/fuzz.rs).
pub fn saml_response(data: &[u8]) {
    crate::saml::fuzz::saml_response(data);
}
