//! The demo IdP's hostile modes, test support only: ways to break every token
//! it signs next, to show that relying parties refuse them. They reach the IdP
//! through its one hidden hook ([`Idp::set_token_hook`]), so the product's
//! `realmgate demo` carries no switch for misbehaving.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use realmgate::demo::idp::{Idp, TokenHook, Unsigned, TOKEN_LIFETIME_SECS};
use serde_json::{json, Map, Value};

/// A way the next tokens are broken, to test that relying parties refuse them.
/// Applies to every token the IdP signs (token endpoint and the `mint_*`
/// methods) until changed with [`HostileIdp::set_hostile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostile {
    /// Valid token with one signature byte flipped.
    BadSignature,
    /// `alg: none`, empty signature.
    AlgNone,
    /// `alg: HS256` keyed with the signing key's public PEM (the classic key-confusion attack).
    Hs256WithPublicKey,
    /// `iss` of another tenant.
    WrongIssuer,
    /// `aud` of another application.
    WrongAudience,
    /// `aud: [client_id, other]` without `azp`.
    SeveralAudiencesWithoutAzp,
    /// Expired an hour ago.
    Expired,
    /// `iat` an hour in the future.
    IatInFuture,
    NonceMissing,
    NonceWrong,
    /// Signed with a key whose `kid` is not in the JWKS.
    UnknownKid,
    /// Properly signed, but without `kid` in the header (acceptable only
    /// while the JWKS has exactly one suitable key).
    NoKid,
    SubMissing,
    OidMissing,
    /// `tid` replaced by this value (`iss` still names the user's tenant).
    Tid(String),
    /// Properly signed (RS256, current key), the JOSE header edited: each
    /// member is set, or removed when the value is `null` (`kid` path
    /// traversal, `jku`/`x5u`/`jwk`, `crit`, `alg` spellings, size).
    Header(Vec<(String, Value)>),
    /// Properly signed, the claims edited the same way (`iat` missing, `nbf`
    /// in the future, claims of the wrong type, ...).
    Claims(Vec<(String, Value)>),
}

/// Hostile modes on the demo IdP.
pub trait HostileIdp {
    /// Breaks every following token in this way (`None`: well-formed tokens again).
    fn set_hostile(&self, mode: Option<Hostile>);
}

impl HostileIdp for Idp {
    fn set_hostile(&self, mode: Option<Hostile>) {
        let hook = mode.map(|mode| -> TokenHook { Arc::new(move |token| mode.sign(token)) });
        self.set_token_hook(hook);
    }
}

impl Hostile {
    /// Signs `token`, first breaking its claims (or the signature) as this mode says.
    fn sign(&self, token: Unsigned<'_>) -> anyhow::Result<String> {
        let mut claims = token.claims.clone();
        let now = now_unix();
        let mut kid = token.kid().to_string();
        match self {
            Hostile::WrongIssuer => {
                claims.insert(
                    "iss".into(),
                    json!(token.issuer("00000000-dead-4bad-8bad-000000000000")),
                );
            }
            Hostile::WrongAudience => {
                claims.insert("aud".into(), json!("00000000-0000-4000-8000-0000000000ff"));
            }
            Hostile::SeveralAudiencesWithoutAzp => {
                claims.insert(
                    "aud".into(),
                    json!([token.client_id, "00000000-0000-4000-8000-0000000000ff"]),
                );
                claims.remove("azp");
            }
            Hostile::Expired => {
                claims.insert("iat".into(), json!(now - 2 * TOKEN_LIFETIME_SECS));
                claims.insert("nbf".into(), json!(now - 2 * TOKEN_LIFETIME_SECS));
                claims.insert("exp".into(), json!(now - TOKEN_LIFETIME_SECS));
            }
            Hostile::IatInFuture => {
                claims.insert("iat".into(), json!(now + TOKEN_LIFETIME_SECS));
                claims.insert("exp".into(), json!(now + 2 * TOKEN_LIFETIME_SECS));
            }
            Hostile::NonceMissing => {
                claims.remove("nonce");
            }
            Hostile::NonceWrong => {
                claims.insert("nonce".into(), json!(random_id(32)));
            }
            Hostile::SubMissing => {
                claims.remove("sub");
            }
            Hostile::OidMissing => {
                claims.remove("oid");
            }
            Hostile::Tid(t) => {
                claims.insert("tid".into(), json!(t));
            }
            Hostile::Claims(edits) => edit_members(&mut claims, edits),
            // Same key material, a kid the JWKS never published: relying
            // parties look the kid up and find nothing.
            Hostile::UnknownKid => kid = format!("unpublished-{}", random_id(8)),
            Hostile::NoKid => kid = String::new(),
            Hostile::BadSignature
            | Hostile::AlgNone
            | Hostile::Hs256WithPublicKey
            | Hostile::Header(_) => {}
        }
        let claims = Value::Object(claims);
        let signed = match self {
            Hostile::AlgNone => {
                let header = json!({"typ": "JWT", "alg": "none"});
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                )
            }
            Hostile::Hs256WithPublicKey => {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(kid);
                jsonwebtoken::encode(
                    &header,
                    &claims,
                    &EncodingKey::from_secret(token.public_pem().as_bytes()),
                )?
            }
            Hostile::Header(edits) => {
                let mut header = Map::new();
                header.insert("typ".into(), json!("JWT"));
                header.insert("alg".into(), json!("RS256"));
                header.insert("kid".into(), json!(kid));
                edit_members(&mut header, edits);
                let signing_input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                let signature = token.sign_input(&signing_input)?;
                format!("{signing_input}.{signature}")
            }
            _ => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = (!kid.is_empty()).then_some(kid);
                let signed = token.sign(&header, &claims)?;
                if *self == Hostile::BadSignature {
                    flip_signature(&signed)?
                } else {
                    signed
                }
            }
        };
        Ok(signed)
    }
}

/// Sets each member, or removes it when the value is `null`.
fn edit_members(object: &mut Map<String, Value>, edits: &[(String, Value)]) {
    for (name, value) in edits {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
}

fn flip_signature(token: &str) -> anyhow::Result<String> {
    let (rest, sig) = token.rsplit_once('.').context("token without signature")?;
    let mut bytes = URL_SAFE_NO_PAD.decode(sig)?;
    let i = bytes.len() / 2;
    if let Some(b) = bytes.get_mut(i) {
        *b ^= 0x55;
    }
    Ok(format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn random_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
