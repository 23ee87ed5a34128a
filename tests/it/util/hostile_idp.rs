//! The demo IdP's hostile modes and outages, test support only: ways to break
//! every token it signs next ([`Hostile`]), and to make discovery, JWKS, the
//! token endpoint, userinfo or Graph fail ([`Outage`], [`UserinfoFault`],
//! [`GraphFault`]), to show that
//! relying parties refuse or cope. They reach the IdP through its two hidden
//! hooks ([`Idp::set_token_hook`], [`Idp::set_intercept_hook`]), so the
//! product's `realmgate demo` carries no switch for misbehaving.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use realmgate::demo::idp::{
    Idp, Intercept, InterceptHook, TokenHook, Unsigned, DEMO_CLIENT_ID, TOKEN_LIFETIME_SECS,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

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

/// How discovery/JWKS (or the token endpoint) fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Working normally.
    None,
    /// Answer 503.
    Status503,
    /// Close the connection without answering.
    Close,
}

/// How the userinfo endpoint misbehaves, to test that relying parties cope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserinfoFault {
    /// Working normally.
    None,
    /// Answers 200 with a `sub` other than the ID token's (OpenID Connect
    /// Core 5.3.2: the relying party must not use such a response).
    WrongSub,
    /// Answers 503.
    Status503,
}

/// How Graph's `transitiveMemberOf` misbehaves, to test that relying parties cope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFault {
    /// Working normally.
    None,
    /// A Graph-compatible service without OData type casts (a mock, an older
    /// proxy): 404 to `…/transitiveMemberOf/microsoft.graph.group`, while
    /// `…/transitiveMemberOf` lists every kind of directory object, and every
    /// other group on a page without `@odata.type`.
    NoTypeCast,
    /// Every `transitiveMemberOf` request answers this status.
    Status(u16),
    /// The first page works; the pages after it answer 404.
    NotFoundAfterFirstPage,
}

/// Hostile modes and outages on the demo IdP.
pub trait HostileIdp {
    /// Breaks every following token in this way (`None`: well-formed tokens again).
    fn set_hostile(&self, mode: Option<Hostile>);
    /// Discovery and JWKS answer 503, close the connection, or work (`Outage::None`).
    fn set_outage(&self, outage: Outage);
    /// The token endpoint answers 503, closes the connection, or works.
    fn set_token_endpoint_outage(&self, outage: Outage);
    /// Makes the userinfo endpoint misbehave (`UserinfoFault::None`: works again).
    fn set_userinfo_fault(&self, fault: UserinfoFault);
    /// Makes Graph's `transitiveMemberOf` misbehave (`GraphFault::None`: works again).
    fn set_graph_fault(&self, fault: GraphFault);
}

impl HostileIdp for Idp {
    fn set_hostile(&self, mode: Option<Hostile>) {
        let hook = mode.map(|mode| -> TokenHook { Arc::new(move |token| mode.sign(token)) });
        self.set_token_hook(hook);
    }

    fn set_outage(&self, outage: Outage) {
        let is_metadata = |path: &str| {
            path.ends_with("/.well-known/openid-configuration")
                || path.ends_with("/discovery/v2.0/keys")
        };
        intercept(self, is_metadata, move || outage_answer(outage));
    }

    fn set_token_endpoint_outage(&self, outage: Outage) {
        let is_token = |path: &str| path.ends_with("/oauth2/v2.0/token");
        intercept(self, is_token, move || outage_answer(outage));
    }

    fn set_userinfo_fault(&self, fault: UserinfoFault) {
        let is_userinfo = |path: &str| path == "/oidc/userinfo";
        intercept(self, is_userinfo, move || match fault {
            UserinfoFault::None => Intercept::Pass,
            UserinfoFault::Status503 => Intercept::Answer(unavailable()),
            // Another user's pairwise sub for the demo app registration.
            UserinfoFault::WrongSub => Intercept::EditJson(Box::new(|v: &mut Value| {
                v["sub"] = json!(pairwise_sub(DEMO_CLIENT_ID, "someone-else"));
            })),
        });
    }

    fn set_graph_fault(&self, fault: GraphFault) {
        let before = self.intercept_hook();
        let hook: InterceptHook = Arc::new(move |parts| {
            let path = parts.uri.path();
            let Some((_, tail)) = path.split_once("/transitiveMemberOf") else {
                return before.as_ref().map_or(Intercept::Pass, |b| b(parts));
            };
            let cast = tail == "/microsoft.graph.group";
            let later_page = parts.uri.query().is_some_and(|q| q.contains("skiptoken"));
            match fault {
                GraphFault::None => Intercept::Pass,
                GraphFault::NoTypeCast if cast => Intercept::Answer(graph_status(404)),
                GraphFault::NoTypeCast => Intercept::EditJson(Box::new(|v: &mut Value| {
                    let groups = v["value"]
                        .as_array_mut()
                        .into_iter()
                        .flatten()
                        .filter(|e| e["@odata.type"] == "#microsoft.graph.group");
                    for entry in groups.skip(1).step_by(2) {
                        entry.as_object_mut().map(|e| e.remove("@odata.type"));
                    }
                })),
                GraphFault::Status(status) => Intercept::Answer(graph_status(status)),
                GraphFault::NotFoundAfterFirstPage if later_page => {
                    Intercept::Answer(graph_status(404))
                }
                GraphFault::NotFoundAfterFirstPage => Intercept::Pass,
            }
        });
        self.set_intercept_hook(Some(hook));
    }
}

/// A Graph error answer with `status`, as Graph words it.
fn graph_status(status: u16) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).expect("an HTTP status");
    let body = json!({"error": {"code": "Request_ResourceNotFound", "message": status.canonical_reason()}});
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// From now on the requests whose path `mine` says are answered as `answer`
/// says; the others as the hook before said (so the outages of different
/// endpoints are set independently).
fn intercept(
    idp: &Idp,
    mine: impl Fn(&str) -> bool + Send + Sync + 'static,
    answer: impl Fn() -> Intercept + Send + Sync + 'static,
) {
    let before = idp.intercept_hook();
    let hook: InterceptHook = Arc::new(move |parts| {
        if mine(parts.uri.path()) {
            answer()
        } else {
            before.as_ref().map_or(Intercept::Pass, |b| b(parts))
        }
    });
    idp.set_intercept_hook(Some(hook));
}

fn outage_answer(outage: Outage) -> Intercept {
    match outage {
        Outage::None => Intercept::Pass,
        Outage::Status503 => Intercept::Answer(unavailable()),
        Outage::Close => Intercept::Close,
    }
}

/// 503 as the IdP answered it in an outage.
fn unavailable() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from_static(b"temporarily unavailable")))
        .expect("static response")
}

/// Entra's pairwise `sub`, as the IdP makes it.
fn pairwise_sub(client_id: &str, oid: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{client_id}:{oid}").as_bytes()))
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
