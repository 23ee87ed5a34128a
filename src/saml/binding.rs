//! The SAML bindings realmgate speaks: AuthnRequest and LogoutRequest out
//! over HTTP-Redirect (raw DEFLATE, base64, query parameters; signed with
//! RSA-SHA256 over the query when `sp_key_file` is set), responses in over
//! HTTP-POST (base64 form field) or HTTP-Redirect (SLO).

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::metadata::escape;
use super::response::MAX_RESPONSE_BYTES;

pub const SIG_ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// A fresh request ID: `_` and 128 random bits in hex (an xs:ID must not
/// start with a digit).
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("_{hex}")
}

/// An xs:dateTime in UTC for `IssueInstant`.
pub fn instant(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// The AuthnRequest sent to the IdP.
pub fn authn_request(
    id: &str,
    now: u64,
    destination: &str,
    acs_url: &str,
    sp_entity_id: &str,
) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dst}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{iss}</saml:Issuer><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        id = escape(id),
        now = instant(now),
        dst = escape(destination),
        acs = escape(acs_url),
        iss = escape(sp_entity_id),
    )
}

/// The LogoutRequest for SP-initiated single logout: the NameID exactly
/// as the IdP sent it (value, Format, NameQualifier, SPNameQualifier) and
/// the session's SessionIndex.
pub fn logout_request(
    id: &str,
    now: u64,
    destination: &str,
    sp_entity_id: &str,
    name_id: &crate::session::model::SamlNameId,
    session_index: Option<&str>,
) -> String {
    let attr = |name: &str, v: &Option<String>| {
        v.as_ref()
            .map(|v| format!(r#" {name}="{}""#, escape(v)))
            .unwrap_or_default()
    };
    let si = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dst}"><saml:Issuer>{iss}</saml:Issuer><saml:NameID{fmt}{nq}{spnq}>{nid}</saml:NameID>{si}</samlp:LogoutRequest>"#,
        id = escape(id),
        now = instant(now),
        dst = escape(destination),
        iss = escape(sp_entity_id),
        fmt = attr("Format", &name_id.format),
        nq = attr("NameQualifier", &name_id.name_qualifier),
        spnq = attr("SPNameQualifier", &name_id.sp_name_qualifier),
        nid = escape(&name_id.value),
    )
}

/// The SP's request-signing key (`sp_key_file`, RSA).
pub struct SpSigner {
    key: rsa::RsaPrivateKey,
}

impl std::fmt::Debug for SpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpSigner(<redacted>)")
    }
}

impl SpSigner {
    /// From a PEM RSA private key (PKCS#8 or PKCS#1).
    pub fn from_pem(pem: &str) -> Result<SpSigner, String> {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| "is not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_string())?;
        Ok(SpSigner { key })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let digest = Sha256::digest(msg);
        self.key
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| format!("signing failed: {e}"))
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The HTTP-Redirect URL carrying `xml` as `param` (`SAMLRequest` or
/// `SAMLResponse`), with `RelayState`, signed when `signer` is given
/// (SAML bindings §3.4.4.1: the signature covers the encoded query).
pub fn redirect_url(
    endpoint: &str,
    param: &str,
    xml: &str,
    relay_state: Option<&str>,
    signer: Option<&SpSigner>,
) -> Result<String, String> {
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater
        .write_all(xml.as_bytes())
        .and_then(|_| deflater.flush())
        .map_err(|e| e.to_string())?;
    let deflated = deflater.finish().map_err(|e| e.to_string())?;
    let mut query = format!("{param}={}", enc(&STANDARD.encode(deflated)));
    if let Some(rs) = relay_state {
        query.push_str(&format!("&RelayState={}", enc(rs)));
    }
    if let Some(s) = signer {
        query.push_str(&format!("&SigAlg={}", enc(SIG_ALG_RSA_SHA256)));
        let sig = s.sign(query.as_bytes())?;
        query.push_str(&format!("&Signature={}", enc(&STANDARD.encode(sig))));
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{sep}{query}"))
}

/// Why a bound message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("the SAML message is missing")]
    Missing,
    #[error("the SAML message is not valid base64")]
    Base64,
    #[error("the SAML message is too large")]
    TooLarge,
    #[error("the SAML message is not valid DEFLATE data")]
    Deflate,
}

/// The HTTP-POST binding: base64 (line breaks tolerated) of the XML.
pub fn decode_post(b64: &str) -> Result<Vec<u8>, BindingError> {
    // base64 is 4/3 of the payload; refuse before decoding anything big.
    if b64.len() > MAX_RESPONSE_BYTES.saturating_mul(4) / 3 + 1024 {
        return Err(BindingError::TooLarge);
    }
    let clean: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if clean.is_empty() {
        return Err(BindingError::Missing);
    }
    STANDARD
        .decode(clean.as_bytes())
        .map_err(|_| BindingError::Base64)
}

/// The HTTP-Redirect binding: base64 of raw DEFLATE, inflated with a bound
/// (a small message may inflate to gigabytes).
pub fn decode_redirect(b64: &str) -> Result<Vec<u8>, BindingError> {
    let deflated = decode_post(b64)?;
    let limit = u64::try_from(MAX_RESPONSE_BYTES).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|_| BindingError::Deflate)?;
    if out.len() > MAX_RESPONSE_BYTES {
        return Err(BindingError::TooLarge);
    }
    Ok(out)
}
