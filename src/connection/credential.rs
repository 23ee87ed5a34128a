//! How a connection proves itself at the provider's token endpoint (SPEC
//! 5.10): a client secret, a certificate (`private_key_jwt`, RFC 7523 with
//! the certificate's `x5t#S256`), or a federated token file (workload
//! identity federation: the file is read again for each use, since the
//! platform rotates it). Every token-endpoint call of a connection (code
//! exchange, refresh, client credentials for Graph and `test-connection`)
//! goes through [`ClientCredential::authenticate`].
//!
//! The certificate and its key are read and checked once, by `check` and at
//! start (they must match; an expired certificate is refused); the signed
//! assertion lives [`ASSERTION_LIFETIME_SECS`] and carries a fresh `jti`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// `client_assertion_type` of RFC 7523 2.2 (both assertion kinds).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A signed client assertion is good for this long (Entra accepts up to 10 minutes).
pub const ASSERTION_LIFETIME_SECS: u64 = 300;
/// A federated token file larger than this is refused (they are a few KiB).
pub const MAX_ASSERTION_FILE_BYTES: u64 = 64 * 1024;
/// `check` warns when a certificate expires within this many seconds.
pub const EXPIRY_WARNING_SECS: u64 = 30 * 24 * 3600;
/// RSA keys shorter than this are refused (as for `server.assertion_key`).
const MIN_RSA_BITS: usize = 2048;

/// One connection's client credential.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientCredential {
    /// `client_secret` / `client_secret_file`.
    Secret(Secret),
    /// `client_certificate_file` + `client_key_file`.
    Certificate(Arc<CertificateCredential>),
    /// `client_assertion_file`: read again for each use.
    AssertionFile(PathBuf),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind_name())
    }
}

/// What a token request carries to authenticate the client.
pub enum ClientAuthentication {
    /// The secret, sent as `client_secret_basic` or `client_secret_post`
    /// (what discovery says).
    Secret(Secret),
    /// A JWT sent as `client_assertion` with [`JWT_BEARER`].
    Assertion(Secret),
}

impl ClientCredential {
    /// How `check` names it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "client secret",
            ClientCredential::Certificate(_) => "certificate (private_key_jwt)",
            ClientCredential::AssertionFile(_) => "federated token file (workload identity)",
        }
    }

    /// What to send to the token endpoint `token_endpoint` now. Errors say
    /// what is wrong with the credential (never its content).
    pub async fn authenticate(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: u64,
    ) -> Result<ClientAuthentication, String> {
        match self {
            ClientCredential::Secret(s) => Ok(ClientAuthentication::Secret(s.clone())),
            ClientCredential::Certificate(c) => c
                .assertion(client_id, token_endpoint, now)
                .map(|a| ClientAuthentication::Assertion(Secret::new(a))),
            ClientCredential::AssertionFile(path) => read_assertion_file(path)
                .await
                .map(ClientAuthentication::Assertion),
        }
    }
}

/// A certificate and its private key, checked to belong together.
pub struct CertificateCredential {
    /// The certificate (DER), for equality on reload.
    cert_der: Vec<u8>,
    /// base64url SHA-256 of `cert_der` (the JOSE `x5t#S256`).
    x5t_s256: String,
    not_before: u64,
    not_after: u64,
    alg: Algorithm,
    encoding: EncodingKey,
    /// The private key (PKCS#8 or PKCS#1 DER), for equality on reload.
    key_der: Secret,
}

impl PartialEq for CertificateCredential {
    fn eq(&self, other: &Self) -> bool {
        self.cert_der == other.cert_der && self.key_der == other.key_der
    }
}
impl Eq for CertificateCredential {}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CertificateCredential({:?}, x5t#S256 {})",
            self.alg, self.x5t_s256
        )
    }
}

impl CertificateCredential {
    /// Reads the certificate (PEM; the first `CERTIFICATE` of the file) and
    /// the private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 P-256), and checks
    /// that the key is the certificate's. Errors say what is wrong and what
    /// is expected.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertificateCredential, String> {
        use x509_cert::der::{Decode as _, Encode as _};
        let cert_text = std::str::from_utf8(cert_pem)
            .map_err(|_| "the certificate file is not a PEM file (not text)".to_string())?;
        let block = pem_block(cert_text, "CERTIFICATE").ok_or(
            "the certificate file has no -----BEGIN CERTIFICATE----- block (a PEM X.509 certificate is expected)",
        )?;
        let cert = x509_cert::Certificate::load_pem_chain(block.as_bytes())
            .ok()
            .and_then(|mut chain| (!chain.is_empty()).then(|| chain.remove(0)))
            .ok_or(
                "the certificate file's CERTIFICATE block is not a readable X.509 certificate",
            )?;
        let cert_der = cert
            .to_der()
            .map_err(|e| format!("cannot re-encode the certificate ({e})"))?;
        let validity = &cert.tbs_certificate.validity;
        let not_before = validity.not_before.to_unix_duration().as_secs();
        let not_after = validity.not_after.to_unix_duration().as_secs();
        let spki_der = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("cannot read the certificate's public key ({e})"))?;
        let key_text = std::str::from_utf8(key_pem)
            .map_err(|_| "the key file is not a PEM file (not text)".to_string())?;
        let (alg, encoding, key_der) = private_key(key_text, &spki_der)?;
        // Keep the DER parser honest: the certificate must parse back.
        x509_cert::Certificate::from_der(&cert_der)
            .map_err(|e| format!("the certificate does not parse back ({e})"))?;
        Ok(CertificateCredential {
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&cert_der)),
            cert_der,
            not_before,
            not_after,
            alg,
            encoding,
            key_der,
        })
    }

    /// The certificate (DER): its expiry is a metric
    /// (`realmgate_certificate_not_after_seconds`).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Reads both files (bounded).
    pub fn load(cert: &Path, key: &Path) -> Result<CertificateCredential, String> {
        let read = |p: &Path| {
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            if bytes.len() as u64 > MAX_ASSERTION_FILE_BYTES {
                return Err(format!("{} is larger than 64 KiB", p.display()));
            }
            Ok(bytes)
        };
        CertificateCredential::from_pem(&read(cert)?, &read(key)?)
    }

    /// Unix time after which the certificate is expired.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Unix time before which the certificate is not valid yet.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// `RS256` or `ES256`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The certificate's `x5t#S256` (base64url SHA-256 of its DER).
    pub fn thumbprint(&self) -> &str {
        &self.x5t_s256
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// A client assertion (RFC 7523 3): `iss` = `sub` = the client id, `aud`
    /// = the token endpoint, a random `jti`, `iat` = `nbf` = now, `exp` five
    /// minutes later; the header names the certificate by `x5t#S256`.
    pub fn assertion(&self, client_id: &str, audience: &str, now: u64) -> Result<String, String> {
        let mut header = Header::new(self.alg);
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let mut jti = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut jti);
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME_SECS),
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| format!("signing the client assertion failed: {e}"))
    }
}

/// The text of the first PEM block labelled `label` (BEGIN to END lines).
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..]
        .find(&end)?
        .checked_add(start)?
        .checked_add(end.len())?;
    text.get(start..stop)
}

/// The signing key of `key_text`, checked against the certificate's public key.
fn private_key(
    key_text: &str,
    spki_der: &[u8],
) -> Result<(Algorithm, EncodingKey, Secret), String> {
    use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};
    use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
    use rsa::traits::PublicKeyParts as _;
    let mismatch = || {
        "the private key does not belong to the certificate (its public key differs): \
         use the key the certificate was issued for"
            .to_string()
    };
    let rsa_key = |k: rsa::RsaPrivateKey| -> Result<(Algorithm, EncodingKey, Secret), String> {
        let bits = k.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "an RSA key of {bits} bits; use at least {MIN_RSA_BITS} bits"
            ));
        }
        let cert_key = rsa::RsaPublicKey::from_public_key_der(spki_der).map_err(|_| mismatch())?;
        if cert_key != k.to_public_key() {
            return Err(mismatch());
        }
        let der = k
            .to_pkcs1_der()
            .map_err(|e| format!("cannot re-encode the RSA key ({e})"))?;
        Ok((
            Algorithm::RS256,
            EncodingKey::from_rsa_der(der.as_bytes()),
            Secret::new(der.as_bytes().to_vec()),
        ))
    };
    let ec_key = |k: p256::SecretKey| -> Result<(Algorithm, EncodingKey, Secret), String> {
        let cert_key = p256::PublicKey::from_public_key_der(spki_der).map_err(|_| mismatch())?;
        if cert_key != k.public_key() {
            return Err(mismatch());
        }
        let der = k
            .to_pkcs8_der()
            .map_err(|e| format!("cannot re-encode the EC key ({e})"))?;
        Ok((
            Algorithm::ES256,
            EncodingKey::from_ec_der(der.as_bytes()),
            Secret::new(der.as_bytes().to_vec()),
        ))
    };
    if let Some(block) = pem_block(key_text, "PRIVATE KEY") {
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(block) {
            return ec_key(k);
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(block) {
            return rsa_key(k);
        }
        return Err("the key file holds a PKCS#8 private key that is neither RSA nor P-256".into());
    }
    if let Some(block) = pem_block(key_text, "RSA PRIVATE KEY") {
        let k = rsa::RsaPrivateKey::from_pkcs1_pem(block)
            .map_err(|e| format!("the key file holds an unreadable RSA private key ({e})"))?;
        return rsa_key(k);
    }
    if let Some(block) = pem_block(key_text, "EC PRIVATE KEY") {
        let k = p256::SecretKey::from_sec1_pem(block)
            .map_err(|_| "the key file holds an EC key that is not on the P-256 curve")?;
        return ec_key(k);
    }
    if pem_block(key_text, "ENCRYPTED PRIVATE KEY").is_some() {
        return Err(
            "the key file holds an encrypted private key; store it unencrypted \
                    (openssl pkey -in key.pem -out plain.pem) with file permissions protecting it"
                .into(),
        );
    }
    Err("the key file has no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)".into())
}

/// The federated token in `path`, read now (the platform rotates it):
/// trimmed, at most [`MAX_ASSERTION_FILE_BYTES`], and shaped like a JWT
/// (three base64url parts), so a wrong file is reported here rather than as
/// the provider's `invalid_client`.
pub async fn read_assertion_file(path: &Path) -> Result<Secret, String> {
    use tokio::io::AsyncReadExt as _;
    let shown = path.display();
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("client_assertion_file {shown} cannot be read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_ASSERTION_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("client_assertion_file {shown} cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_ASSERTION_FILE_BYTES {
        return Err(format!(
            "client_assertion_file {shown} is larger than 64 KiB: not a federated token"
        ));
    }
    let token = assertion_of(&bytes)
        .ok_or_else(|| format!("client_assertion_file {shown} does not hold a JWT (three base64url parts separated by dots)"))?;
    Ok(Secret::new(token.as_bytes().to_vec()))
}

/// The JWT in a federated token file's bytes (surrounding whitespace cut).
pub fn assertion_of(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let parts: Vec<&str> = text.split('.').collect();
    let base64url = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (parts.len() == 3 && parts.iter().all(|p| base64url(p))).then_some(text)
}

#[cfg(test)]
pub(crate) mod tests;
