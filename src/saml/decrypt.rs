//! Encrypted assertions (SAML core 2.3.4, XML Encryption 1.0/1.1):
//! `<saml:EncryptedAssertion>` is decrypted with the SP key (`sp_key_file`)
//! and the plaintext must be exactly one `<saml:Assertion>`, which then goes
//! through the same signature and condition checks as a plain one
//! (`response::validate_response_with`).
//!
//! The cryptography is the signature library's (bergshamra's RSA-OAEP key
//! transport and AES ciphers, RustCrypto underneath); this module only reads
//! the structure, strictly and from the strict parse, and narrows what is
//! accepted:
//!
//! - content encryption: AES-GCM (XML Enc 1.1) or AES-CBC (1.0), 128, 192
//!   or 256 bits; nothing else (3DES is not even built);
//! - key transport: RSA-OAEP only (`rsa-oaep-mgf1p`, `xmlenc11#rsa-oaep`,
//!   SHA-1 or SHA-2 digests and MGF1). RSA PKCS#1 v1.5 (`rsa-1_5`) is
//!   refused: it is the padding oracle of Jager and Somorovsky's attacks on
//!   XML Encryption;
//! - the key inline: `EncryptedKey` inside the `EncryptedData`'s `KeyInfo`
//!   or beside it in the `EncryptedAssertion` (no `RetrievalMethod`, no key
//!   names, no derived or agreed keys), the cipher text inline
//!   (`CipherValue`; a `CipherReference` would make realmgate fetch URLs);
//! - the transported key must have exactly the content cipher's length.
//!
//! Every failure is one [`DecryptError`] whose text goes to the log only:
//! the user sees the same refusal for a wrong key, bad padding or a
//! malformed plaintext, so no answer tells an attacker which one it was.

use base64::Engine as _;
use bergshamra::crypto::{cipher, keytransport};
use roxmltree::Node;

use super::xml::{self, is, NS_ASSERTION, NS_DSIG};

const NS_ENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_ENC11: &str = "http://www.w3.org/2009/xmlenc11#";

/// Content encryption algorithms accepted.
pub const CONTENT_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
];

/// The content algorithms the SP metadata offers, preferred first.
pub const ADVERTISED_CONTENT_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
];

/// Key transport algorithms accepted (RSA-OAEP only).
pub const KEY_TRANSPORT_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
];

const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

/// OAEP digests accepted (SHA-1 is sound inside OAEP; it is the default).
const OAEP_DIGESTS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

const OAEP_MGFS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#mgf1sha1",
    "http://www.w3.org/2009/xmlenc11#mgf1sha256",
    "http://www.w3.org/2009/xmlenc11#mgf1sha384",
    "http://www.w3.org/2009/xmlenc11#mgf1sha512",
];

/// Most `EncryptedKey` elements tried (one per recipient).
const MAX_ENCRYPTED_KEYS: usize = 4;

/// Why an encrypted assertion was refused (the log's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecryptError(pub String);

fn err(msg: impl Into<String>) -> DecryptError {
    DecryptError(msg.into())
}

/// The SP's decryption key (`sp_key_file`, RSA).
pub struct SpDecrypter {
    key: bergshamra::SoftwareKey,
}

impl std::fmt::Debug for SpDecrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpDecrypter(<redacted>)")
    }
}

impl SpDecrypter {
    /// From a PEM RSA private key (PKCS#8 or PKCS#1).
    pub fn from_pem(pem: &str) -> Result<SpDecrypter, String> {
        let key = bergshamra::keys::loader::load_rsa_private_pem(pem.as_bytes())
            .map_err(|_| "is not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_string())?;
        let key = key
            .software_key()
            .ok()
            .flatten()
            .ok_or_else(|| "the RSA key cannot be used for decryption".to_string())?;
        Ok(SpDecrypter { key })
    }

    /// Decrypts `encrypted` (a `saml:EncryptedAssertion` of the strict
    /// parse) into the plaintext XML of the assertion it holds (not yet
    /// parsed or checked: the caller does both).
    pub fn decrypt_assertion(&self, encrypted: Node<'_, '_>) -> Result<String, DecryptError> {
        if !is(encrypted, NS_ASSERTION, "EncryptedAssertion") {
            return Err(err("not a saml:EncryptedAssertion"));
        }
        // EncryptedData first, then only EncryptedKey siblings.
        let mut data = None;
        let mut keys = Vec::new();
        for child in encrypted.children().filter(Node::is_element) {
            if is(child, NS_ENC, "EncryptedData") && data.is_none() {
                data = Some(child);
            } else if is(child, NS_ENC, "EncryptedKey") {
                keys.push(child);
            } else {
                return Err(err(format!(
                    "unexpected {} in the EncryptedAssertion",
                    child.tag_name().name()
                )));
            }
        }
        let data = data.ok_or_else(|| err("the EncryptedAssertion has no EncryptedData"))?;
        if let Some(t) = data.attribute("Type") {
            if t != "http://www.w3.org/2001/04/xmlenc#Element" {
                return Err(err("the EncryptedData is not of type Element"));
            }
        }
        let content_alg = algorithm(data)?;
        if !CONTENT_ALGORITHMS.contains(&content_alg) {
            return Err(err(format!(
                "content encryption {content_alg:?} is not accepted (use AES-GCM or AES-CBC)"
            )));
        }
        for child in data.children().filter(Node::is_element) {
            if is(child, NS_DSIG, "KeyInfo") {
                for k in child.children().filter(Node::is_element) {
                    if is(k, NS_ENC, "EncryptedKey") {
                        keys.push(k);
                    } else if !is(k, NS_DSIG, "KeyName") {
                        // RetrievalMethod, AgreementMethod, DerivedKey, ...
                        return Err(err(format!(
                            "{} in the EncryptedData's KeyInfo is not accepted (the key must be an inline EncryptedKey)",
                            k.tag_name().name()
                        )));
                    }
                }
            }
        }
        if keys.is_empty() {
            return Err(err("no EncryptedKey for the assertion"));
        }
        if keys.len() > MAX_ENCRYPTED_KEYS {
            return Err(err("too many EncryptedKey elements"));
        }
        let content = cipher::from_uri(content_alg).map_err(|e| err(e.to_string()))?;
        let cipher_text = cipher_value(data)?;
        // The key transported to us: the first EncryptedKey our key opens
        // (one per recipient); every failure reads the same.
        let mut last = err("no EncryptedKey could be decrypted with sp_key_file");
        for k in keys {
            match self.unwrap_key(k, content.key_size()) {
                Ok(session_key) => {
                    let plain = content
                        .decrypt(&session_key, &cipher_text)
                        .map_err(|_| err("the assertion cannot be decrypted with sp_key_file"))?;
                    if plain.len() > super::MAX_RESPONSE_BYTES {
                        return Err(err("the decrypted assertion is too large"));
                    }
                    return String::from_utf8(plain)
                        .map_err(|_| err("the decrypted assertion is not UTF-8"));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The content key an `EncryptedKey` carries, of exactly `key_len` bytes.
    fn unwrap_key(&self, k: Node<'_, '_>, key_len: usize) -> Result<Vec<u8>, DecryptError> {
        let alg = algorithm(k)?;
        if alg == RSA_1_5 {
            return Err(err(
                "RSA PKCS#1 v1.5 key transport (rsa-1_5) is refused; configure the IdP for RSA-OAEP",
            ));
        }
        if !KEY_TRANSPORT_ALGORITHMS.contains(&alg) {
            return Err(err(format!(
                "key transport {alg:?} is not accepted (use RSA-OAEP)"
            )));
        }
        let method = xml::one_child(k, NS_ENC, "EncryptionMethod")
            .map_err(err)?
            .ok_or_else(|| err("EncryptedKey without EncryptionMethod"))?;
        let mut params = keytransport::OaepParams::default();
        for p in method.children().filter(Node::is_element) {
            let a = p.attribute("Algorithm").unwrap_or("");
            if is(p, NS_DSIG, "DigestMethod") && OAEP_DIGESTS.contains(&a) {
                params.digest_uri = Some(a.to_string());
            } else if is(p, NS_ENC11, "MGF") && OAEP_MGFS.contains(&a) {
                params.mgf_uri = Some(a.to_string());
            } else {
                return Err(err(format!(
                    "OAEP parameter {} {a:?} is not accepted",
                    p.tag_name().name()
                )));
            }
        }
        let transport =
            keytransport::from_uri_with_params(alg, params).map_err(|e| err(e.to_string()))?;
        let wrapped = cipher_value(k)?;
        let key = transport
            .decrypt(&self.key, &wrapped)
            .map_err(|_| err("no EncryptedKey could be decrypted with sp_key_file"))?;
        if key.len() != key_len {
            return Err(err("the transported key does not fit the content cipher"));
        }
        Ok(key)
    }
}

/// The `Algorithm` of the element's one `EncryptionMethod`.
fn algorithm<'a>(el: Node<'a, '_>) -> Result<&'a str, DecryptError> {
    let method = xml::one_child(el, NS_ENC, "EncryptionMethod")
        .map_err(err)?
        .ok_or_else(|| err(format!("{} without EncryptionMethod", el.tag_name().name())))?;
    method
        .attribute("Algorithm")
        .ok_or_else(|| err("EncryptionMethod without Algorithm"))
}

/// The inline cipher text (`CipherData/CipherValue`, base64).
fn cipher_value(el: Node<'_, '_>) -> Result<Vec<u8>, DecryptError> {
    let data = xml::one_child(el, NS_ENC, "CipherData")
        .map_err(err)?
        .ok_or_else(|| err("no CipherData"))?;
    let mut children = data.children().filter(Node::is_element);
    let value = match (children.next(), children.next()) {
        (Some(v), None) if is(v, NS_ENC, "CipherValue") => v,
        _ => {
            return Err(err(
                "CipherData must hold one inline CipherValue (CipherReference is not accepted)",
            ))
        }
    };
    let text = xml::text_only(value).map_err(err)?;
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .map_err(|_| err("CipherValue is not base64"))
}
