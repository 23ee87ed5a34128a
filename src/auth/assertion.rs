//! `X-Realmgate-Assertion` (route `jwt_assertion = true`, and the `pomerium`
//! profile's `X-Pomerium-Jwt-Assertion`): a short-lived JWT signed by the
//! gateway that tells the app who the user is, so an app that can reach the
//! network behind the gateway can still not be fooled by forged headers.
//!
//! The key comes from `server.assertion_key`, a PEM file every replica
//! shares, so an assertion from any replica verifies with the one JWKS at
//! `GET /.auth/keys`:
//!
//! - ES256 with a P-256 key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`),
//!   or RS256 with an RSA key of at least 2048 bits (PKCS#8 or PKCS#1).
//! - `kid` is the key's RFC 7638 thumbprint, so it changes exactly when the
//!   key does and every replica derives the same one.
//!
//! Claims: `iss` = the origin the request came to (`https://hr.contoso.com`,
//! where `/.auth/keys` is), `aud` = the route's name, `sub` = the user id,
//! `email` only when verified (SPEC 5.6), `groups` (ids, filtered like the
//! headers with `groups_in_headers = "known"`), `name`, `tid` when known,
//! `iat`/`nbf` = now, `exp` = now + [`LIFETIME`].
//!
//! Signing an RSA assertion costs about a millisecond, so a signed assertion
//! is reused for identical claims (same user, route and origin) for
//! [`REUSE`]: every assertion handed out has at least
//! `LIFETIME - REUSE` left to live.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::{ConnectionSettings, GroupsInHeaders};
use crate::session::model::Session;

/// How long an assertion is valid.
pub const LIFETIME: Duration = Duration::from_secs(300);
/// How long one signed assertion is handed out again for the same claims.
pub const REUSE: Duration = Duration::from_secs(120);
/// RSA keys shorter than this are refused.
const MIN_RSA_BITS: usize = 2048;

/// The gateway's assertion signing key (private; never printed).
pub struct AssertionKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    /// The public JWK (with `kid`, `use`, `alg`).
    jwk: Value,
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssertionKey({:?}, kid {})", self.alg, self.kid)
    }
}

impl AssertionKey {
    /// Reads and parses the PEM file at `path`. The error says what is wrong
    /// and what is expected, for `realmgate check`.
    pub fn load(path: &Path) -> Result<AssertionKey, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        AssertionKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a PEM private key: P-256 (ES256) or RSA >= 2048 bits (RS256).
    pub fn from_pem(pem: &[u8]) -> Result<AssertionKey, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file (not text)")?;
        let label = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
            })
            .ok_or("not a PEM file (no -----BEGIN ...----- line)")?;
        match label {
            "PRIVATE KEY" => {
                use p256::pkcs8::DecodePrivateKey as _;
                if let Ok(k) = p256::SecretKey::from_pkcs8_pem(text) {
                    return AssertionKey::from_p256(&k);
                }
                if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
                    return AssertionKey::from_rsa(&k);
                }
                Err("a PKCS#8 private key that is neither a P-256 EC key nor an RSA key (P-384, Ed25519 and others are not supported)".into())
            }
            "EC PRIVATE KEY" => {
                let k = p256::SecretKey::from_sec1_pem(text).map_err(|_| {
                    "an EC key that is not on the P-256 curve (only P-256 is supported, for ES256)"
                })?;
                AssertionKey::from_p256(&k)
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey as _;
                let k = rsa::RsaPrivateKey::from_pkcs1_pem(text)
                    .map_err(|e| format!("an unreadable RSA private key ({e})"))?;
                AssertionKey::from_rsa(&k)
            }
            "ENCRYPTED PRIVATE KEY" => Err("an encrypted private key; store it unencrypted (e.g. `openssl pkey -in key.pem -out plain.pem`) with file permissions protecting it".into()),
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => Err(format!(
                "a {label}, not a private key; the gateway signs, so it needs the private key"
            )),
            other => Err(format!("a PEM {other:?}, not a private key")),
        }
    }

    fn from_p256(key: &p256::SecretKey) -> Result<AssertionKey, String> {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::EncodePrivateKey as _;
        let point = key.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err("the EC public key is the identity point".into());
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 3.2: the required members, lexicographic order, no spaces.
        let kid = thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        let der = key
            .to_pkcs8_der()
            .map_err(|e| format!("cannot re-encode the EC key ({e})"))?;
        Ok(AssertionKey {
            alg: Algorithm::ES256,
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"}),
            kid,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
        })
    }

    fn from_rsa(key: &rsa::RsaPrivateKey) -> Result<AssertionKey, String> {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "an RSA key of {bits} bits; use at least {MIN_RSA_BITS} bits"
            ));
        }
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        let der = key
            .to_pkcs1_der()
            .map_err(|e| format!("cannot re-encode the RSA key ({e})"))?;
        Ok(AssertionKey {
            alg: Algorithm::RS256,
            jwk: json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "use": "sig", "alg": "RS256"}),
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        })
    }

    /// The key id (RFC 7638 thumbprint, base64url SHA-256).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `ES256` or `RS256`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The JWKS document served at `/.auth/keys`: the public key only.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    fn sign(&self, claims: &Value) -> Option<String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        match jsonwebtoken::encode(&header, claims, &self.encoding) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "signing the assertion failed; header left out");
                None
            }
        }
    }
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()))
}

/// Signs assertions with one key, reusing a signature for identical claims.
pub struct Assertions {
    key: std::sync::Arc<AssertionKey>,
    /// SHA-256 of the time-free claims -> (assertion, iat).
    recent: moka::sync::Cache<[u8; 32], (String, u64)>,
}

impl Assertions {
    pub fn new(key: std::sync::Arc<AssertionKey>) -> Assertions {
        Assertions {
            key,
            recent: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(REUSE)
                .build(),
        }
    }

    /// The assertion for `user` on route `route` reached at `origin`.
    pub fn issue(
        &self,
        user: &Session,
        route: &str,
        origin: &str,
        connection: &ConnectionSettings,
        policy_groups: &HashSet<String>,
        now: u64,
    ) -> Option<String> {
        let mut claims = json!({
            "iss": origin,
            "aud": route,
            "sub": user.user_id,
            "groups": groups(user, connection, policy_groups),
        });
        if let Some(email) = user.verified_email() {
            claims["email"] = json!(email);
        }
        if let Some(name) = &user.name {
            claims["name"] = json!(name);
        }
        if let Some(tid) = &user.tenant_id {
            claims["tid"] = json!(tid);
        }
        let digest: [u8; 32] = Sha256::digest(claims.to_string().as_bytes()).into();
        if let Some((token, iat)) = self.recent.get(&digest) {
            // `time_to_live` bounds the age too; this guards a clock jump.
            if now >= iat && now - iat < REUSE.as_secs() {
                return Some(token);
            }
        }
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now);
        claims["exp"] = json!(now + LIFETIME.as_secs());
        let token = self.key.sign(&claims)?;
        self.recent.insert(digest, (token.clone(), now));
        Some(token)
    }
}

/// Group ids as the headers would show them (only known groups with
/// `groups_in_headers = "known"`).
fn groups(
    user: &Session,
    connection: &ConnectionSettings,
    policy_groups: &HashSet<String>,
) -> Vec<String> {
    user.groups
        .iter()
        .filter(|id| {
            connection.groups_in_headers != GroupsInHeaders::Known
                || connection.group_names.contains_key(*id)
                || policy_groups.contains(*id)
        })
        .cloned()
        .collect()
}

/// A fresh P-256 key as PKCS#8 PEM, for tests that need a key file.
#[doc(hidden)]
pub fn generate_p256_pem() -> String {
    use p256::pkcs8::EncodePrivateKey as _;
    p256::SecretKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .map(|pem| pem.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
