//! The assertion signing key of `server.assertion_key` (a PEM file), loaded
//! and checked with the rest of the configuration; `auth::assertion` signs
//! with it. Here, not in `auth`, so that the configuration does not import
//! the authentication code (no `config` <-> `auth` import loop).

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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

    pub(crate) fn sign(&self, claims: &Value) -> Option<String> {
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

pub(crate) fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()))
}
