//! The provider's signing keys (JWKS), parsed key by key so that one key of a
//! kind realmgate does not use (an encryption key, an Ed25519 key, …) does not
//! make the whole set unusable.
//!
//! Only public keys of the RSA (`RS*`, `PS*`) and EC (`ES256`, `ES384`)
//! families are kept. Symmetric (`oct`) keys are dropped: an ID token is never
//! accepted with an HMAC signature.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One usable verification key.
pub struct Key {
    pub kid: Option<String>,
    /// The `alg` the JWKS declares for the key, if any.
    pub alg: Option<Algorithm>,
    pub kind: KeyKind,
    pub decoding: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
}

impl Key {
    /// Whether this key can verify a signature made with `alg`.
    pub fn suits(&self, alg: Algorithm) -> bool {
        let family_ok = match self.kind {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::EcP256 => alg == Algorithm::ES256,
            KeyKind::EcP384 => alg == Algorithm::ES384,
        };
        family_ok && self.alg.is_none_or(|declared| declared == alg)
    }
}

/// A parsed JWKS.
pub struct KeySet {
    pub keys: Vec<Key>,
    /// Keys present in the document but not usable, with the reason (for `test-connection`).
    pub skipped: Vec<(Option<String>, String)>,
    /// Increases with every successful fetch; used for single-flight refreshes.
    pub generation: u64,
}

/// How the key for a token was looked up.
pub enum Selection<'a> {
    Found(&'a Key),
    /// The token names a `kid` the set does not have.
    UnknownKid,
    /// No `kid` in the token and not exactly one suitable key.
    Ambiguous(usize),
}

impl KeySet {
    /// Parses a JWKS document. Fails only when the document is not a JWKS at all.
    pub fn parse(body: &[u8], generation: u64) -> Result<KeySet, String> {
        let doc: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("the JWKS is not valid JSON ({e})"))?;
        let entries = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("the JWKS has no \"keys\" array")?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for entry in entries {
            let kid = entry
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            match parse_key(entry) {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push((kid, reason)),
            }
        }
        Ok(KeySet {
            keys,
            skipped,
            generation,
        })
    }

    /// RS256 (the OpenID Connect default) plus every algorithm the keys declare.
    pub fn allows(&self, alg: Algorithm) -> bool {
        alg == Algorithm::RS256 || self.keys.iter().any(|k| k.alg == Some(alg))
    }

    /// The key for a token with header `kid` and `alg`.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection<'_> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.suits(alg))
                .map_or(Selection::UnknownKid, Selection::Found),
            None => {
                let suitable: Vec<&Key> = self.keys.iter().filter(|k| k.suits(alg)).collect();
                match suitable.as_slice() {
                    [only] => Selection::Found(only),
                    _ => Selection::Ambiguous(suitable.len()),
                }
            }
        }
    }
}

fn parse_key(entry: &serde_json::Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(entry.clone())
        .map_err(|e| format!("not a JWK realmgate understands ({e})"))?;
    if let Some(usage) = &jwk.common.public_key_use {
        if *usage != PublicKeyUse::Signature {
            return Err("not a signing key (use is not \"sig\")".into());
        }
    }
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(match a {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            other => return Err(format!("algorithm {other:?} is not accepted for ID tokens")),
        }),
    };
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return Err("elliptic curve not supported (P-256 and P-384 are)".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric key: ID tokens are never accepted with HMAC".into())
        }
        _ => return Err("key type not supported (RSA and EC are)".into()),
    };
    let decoding =
        DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key material ({e})"))?;
    let key = Key {
        kid: jwk.common.key_id.clone(),
        alg,
        kind,
        decoding,
    };
    if let Some(a) = alg {
        if !key.suits(a) {
            return Err(format!(
                "declared algorithm {a:?} does not fit the key type"
            ));
        }
    }
    Ok(key)
}

/// The name of an algorithm as in a JOSE header.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "other",
    }
}
