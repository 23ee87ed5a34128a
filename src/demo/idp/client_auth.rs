//! How the demo IdP's token endpoint authenticates a client, as Entra does:
//! a client secret (`client_secret_basic` or `client_secret_post`), a
//! certificate (`private_key_jwt`, RFC 7523: a JWT signed with the key of a
//! certificate registered for the client, named by `x5t#S256`), or a
//! federated token (workload identity federation: a JWT of an external
//! issuer whose `iss`, `sub` and `aud` match one of the client's federated
//! credentials, signed with that issuer's key).
//!
//! Each assertion is checked fully: signature, `iss`/`sub` (the client id
//! for a certificate assertion), `aud` (this token endpoint, or the
//! federated credential's audience), `exp`/`nbf`; a certificate assertion
//! also lives at most ten minutes and its `jti` is used at most once (a
//! federated token is reused until the platform rotates it).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::IdpClient;

/// The `client_assertion_type` of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra refuses client assertions living longer than this.
const MAX_ASSERTION_LIFETIME_SECS: u64 = 600;
/// Clock skew tolerated on `nbf` and `exp`.
const LEEWAY_SECS: u64 = 60;
/// Remembered `jti`s (until they expire); more is refused, not forgotten.
const MAX_SEEN_JTIS: usize = 100_000;

/// A federated credential of an app registration (Entra: "Certificates &
/// secrets" -> "Federated credentials"): tokens of `issuer` about `subject`
/// for `audience`, signed with the key whose public PEM is `public_key_pem`
/// (RSA or P-256; Entra fetches it from the issuer's JWKS).
#[derive(Debug, Clone)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    /// Entra's default: `api://AzureADTokenExchange`.
    pub audience: String,
    pub public_key_pem: String,
}

/// How a request authenticated (for [`super::Idp::client_authentications`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    Federated,
}

/// Why a client was refused: an OAuth error description in Entra's words.
pub(super) struct Refused(pub &'static str, pub String);

/// `jti`s of accepted assertions -> their `exp`.
#[derive(Default)]
pub(super) struct SeenJtis(Mutex<HashMap<String, u64>>);

impl SeenJtis {
    /// True the first time a `jti` is offered (until it expires).
    fn first_use(&self, jti: &str, exp: u64, now: u64) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, e| e.saturating_add(LEEWAY_SECS) >= now);
        if seen.contains_key(jti) || seen.len() >= MAX_SEEN_JTIS {
            return false;
        }
        seen.insert(jti.to_string(), exp);
        true
    }
}

/// What a token request carries to authenticate its client.
pub(super) struct Presented {
    pub client_id: Option<String>,
    secret: Option<(String, ClientAuthMethod)>,
    assertion: Option<String>,
}

/// Reads the client authentication of a token request (several at once is an error).
pub(super) fn presented(
    headers: &http::HeaderMap,
    form: &[(String, String)],
) -> Result<Presented, Refused> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(id)?, dec(secret)?))
        });
    let assertion =
        match (get("client_assertion_type"), get("client_assertion")) {
            (None, None) => None,
            (Some(t), Some(a)) if t == JWT_BEARER => Some(a),
            _ => return Err(Refused(
                "invalid_client",
                "AADSTS7000216: client_assertion_type must be jwt-bearer, with a client_assertion."
                    .into(),
            )),
        };
    let methods = usize::from(basic.is_some())
        + usize::from(get("client_secret").is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(Refused(
            "invalid_request",
            "more than one client authentication method".into(),
        ));
    }
    Ok(match basic {
        Some((id, secret)) => Presented {
            client_id: Some(id),
            secret: Some((secret, ClientAuthMethod::ClientSecretBasic)),
            assertion: None,
        },
        None => Presented {
            client_id: get("client_id"),
            secret: get("client_secret").map(|s| (s, ClientAuthMethod::ClientSecretPost)),
            assertion,
        },
    })
}

/// Checks what `p` presents for `client`; `token_endpoint` is the URL the
/// request was sent to (a certificate assertion's `aud`).
pub(super) fn authenticate(
    client: &IdpClient,
    p: &Presented,
    token_endpoint: &str,
    seen: &SeenJtis,
    now: u64,
) -> Result<ClientAuthMethod, Refused> {
    if let Some((secret, method)) = &p.secret {
        // An empty registered secret means "no secret": nothing matches it.
        if client.client_secret.is_empty() || *secret != client.client_secret {
            return Err(Refused(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.".into(),
            ));
        }
        return Ok(*method);
    }
    let Some(assertion) = &p.assertion else {
        return Err(Refused(
            "invalid_client",
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
        ));
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        Refused(
            "invalid_client",
            "AADSTS50027: Invalid JWT token (header).".into(),
        )
    })?;
    if let Some(x5t) = &header.x5t_s256 {
        // A certificate assertion (private_key_jwt).
        let Some(cert) = &client.certificate_der else {
            return Err(Refused(
                "invalid_client",
                "AADSTS700027: no certificate is registered for this client.".into(),
            ));
        };
        if *x5t != URL_SAFE_NO_PAD.encode(Sha256::digest(cert)) {
            return Err(Refused(
                "invalid_client",
                "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.".into(),
            ));
        }
        let (key, algs) = certificate_key(cert)?;
        let claims = verify(
            assertion,
            &key,
            &algs,
            header.alg,
            &client.client_id,
            token_endpoint,
        )?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp > now.saturating_add(MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS) {
            return Err(Refused(
                "invalid_client",
                "AADSTS700025: Client assertion lives too long.".into(),
            ));
        }
        if claims.get("sub").and_then(Value::as_str) != Some(client.client_id.as_str()) {
            return Err(Refused(
                "invalid_client",
                "AADSTS700023: sub must be the client id.".into(),
            ));
        }
        use_jti(&claims, seen, now)?;
        return Ok(ClientAuthMethod::PrivateKeyJwt);
    }
    // A federated token: its issuer and subject pick the credential.
    let unverified = unverified_claims(assertion)?;
    let s = |k: &str| unverified.get(k).and_then(Value::as_str).unwrap_or("");
    let Some(fed) = client
        .federated
        .iter()
        .find(|f| f.issuer == s("iss") && f.subject == s("sub"))
    else {
        return Err(Refused(
            "invalid_client",
            "AADSTS70021: No matching federated identity record found for presented assertion."
                .into(),
        ));
    };
    let key = DecodingKey::from_rsa_pem(fed.public_key_pem.as_bytes())
        .map(|k| (k, vec![Algorithm::RS256]))
        .or_else(|_| {
            DecodingKey::from_ec_pem(fed.public_key_pem.as_bytes())
                .map(|k| (k, vec![Algorithm::ES256]))
        })
        .map_err(|_| Refused("server_error", "federated key unreadable".into()))?;
    let claims = verify(
        assertion,
        &key.0,
        &key.1,
        header.alg,
        &fed.issuer,
        &fed.audience,
    )?;
    // A federated token is the platform's, used by every client of the pod
    // until it rotates (about an hour): Entra takes it again and again, so
    // neither its `jti` nor a short lifetime is demanded here.
    let _ = claims;
    Ok(ClientAuthMethod::Federated)
}

/// The verifying key of a registered certificate (DER) and its algorithms.
fn certificate_key(cert_der: &[u8]) -> Result<(DecodingKey, Vec<Algorithm>), Refused> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|_| Refused("server_error", "registered certificate unreadable".into()))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let bits = spki.subject_public_key.raw_bytes();
    if spki.algorithm.oid == x509_cert::der::oid::db::rfc5912::RSA_ENCRYPTION {
        Ok((
            DecodingKey::from_rsa_der(bits),
            vec![Algorithm::RS256, Algorithm::PS256],
        ))
    } else {
        Ok((DecodingKey::from_ec_der(bits), vec![Algorithm::ES256]))
    }
}

/// Signature (one of `algs`), `iss`, `aud`, `exp` and `nbf`.
fn verify(
    assertion: &str,
    key: &DecodingKey,
    algs: &[Algorithm],
    alg: Algorithm,
    issuer: &str,
    audience: &str,
) -> Result<serde_json::Map<String, Value>, Refused> {
    if !algs.contains(&alg) {
        return Err(Refused(
            "invalid_client",
            "AADSTS5002730: the assertion's algorithm does not fit the key.".into(),
        ));
    }
    let mut v = Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(assertion, key, &v).map_err(
        |e| {
            Refused(
                "invalid_client",
                format!("AADSTS700024: Client assertion is not valid ({e})."),
            )
        },
    )?;
    Ok(data.claims)
}

/// Each `jti` once (RFC 7523 3, item 7).
fn use_jti(
    claims: &serde_json::Map<String, Value>,
    seen: &SeenJtis,
    now: u64,
) -> Result<(), Refused> {
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
    if jti.is_empty() || !seen.first_use(jti, exp, now) {
        return Err(Refused(
            "invalid_client",
            "AADSTS700021: the client assertion's jti was used before (or is missing).".into(),
        ));
    }
    Ok(())
}

/// The payload of a JWT before its signature is checked (only to pick the
/// federated credential whose key then checks it).
fn unverified_claims(jwt: &str) -> Result<serde_json::Map<String, Value>, Refused> {
    let bad = || Refused("invalid_client", "AADSTS50027: Invalid JWT token.".into());
    let payload = jwt.split('.').nth(1).ok_or_else(bad)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
