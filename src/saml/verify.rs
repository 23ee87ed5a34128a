//! XML signature verification against pinned IdP certificates, by the
//! bergshamra library (pure Rust; docs/decisions.md says why this one). No
//! canonicalization or digest code is written here: this module only
//! narrows what the library is asked to accept and hands back the library's
//! canonical form of each element a signature covers.

use bergshamra::c14n::{canonicalize_doc, C14nMode};
use bergshamra::keys::{loader, KeysManager};
use bergshamra::xml::{Document as UDocument, NodeId, NodeSet};
use bergshamra::{DsigContext, VerifyResult};
use roxmltree::Node;

use super::xml::{children, is, one_child, NS_DSIG};

/// Why [`verify_all`] refused a document's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Refused for a reason new IdP metadata cannot change (shape, wrapping,
    /// or a signature that names a pinned certificate and still fails).
    Refused(String),
    /// No pinned certificate verifies a signature that does not name one
    /// of them: the IdP may have rolled over to a key its metadata lists
    /// only now. Still a refusal; the caller may refetch the metadata
    /// (rate-limited) and verify once more with that trust alone.
    NoPinnedKey(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Refused(m) | VerifyError::NoPinnedKey(m) => f.write_str(m),
        }
    }
}

impl From<String> for VerifyError {
    fn from(m: String) -> VerifyError {
        VerifyError::Refused(m)
    }
}

impl From<&str> for VerifyError {
    fn from(m: &str) -> VerifyError {
        VerifyError::Refused(m.to_string())
    }
}

/// Signature algorithms accepted (SHA-1, MD5, HMAC and DSA are not): what
/// Entra, AD FS, Okta and Shibboleth sign with.
const SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];

/// Digest algorithms accepted.
const DIGEST_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The pinned signing certificates of one IdP (two during a rollover).
#[derive(Clone, Default)]
pub struct IdpTrust {
    certs_der: Vec<Vec<u8>>,
}

impl std::fmt::Debug for IdpTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdpTrust({} certificate(s))", self.certs_der.len())
    }
}

impl IdpTrust {
    /// Pins the given DER certificates; each must hold a public key the
    /// library can use, else the error names which one is unusable.
    pub fn from_der(certs_der: Vec<Vec<u8>>) -> Result<IdpTrust, String> {
        if certs_der.is_empty() {
            return Err("no IdP signing certificate".into());
        }
        for (i, der) in certs_der.iter().enumerate() {
            loader::load_x509_cert_der(der)
                .map_err(|e| format!("IdP certificate {} is unusable: {e}", i + 1))?;
        }
        Ok(IdpTrust { certs_der })
    }

    /// The pinned certificates (DER): their expiry is a metric
    /// (`realmgate_certificate_not_after_seconds{kind="idp_signing"}`).
    pub fn certs_der(&self) -> &[Vec<u8>] {
        &self.certs_der
    }

    /// Pins the certificates of a PEM file's `CERTIFICATE` blocks.
    pub fn from_pem(pem: &str) -> Result<IdpTrust, String> {
        let mut ders = Vec::new();
        for block in pem.split("-----BEGIN CERTIFICATE-----").skip(1) {
            let body = block
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap_or("");
            let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            use base64::Engine;
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| "a CERTIFICATE block is not valid base64".to_string())?;
            ders.push(der);
        }
        IdpTrust::from_der(ders)
    }

    fn keys(&self) -> Result<KeysManager, String> {
        let mut km = KeysManager::new();
        for der in &self.certs_der {
            km.add_key(loader::load_x509_cert_der(der).map_err(|e| e.to_string())?);
        }
        Ok(km)
    }
}

/// One element a pinned key signed.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The element's `ID`.
    pub id: String,
    /// Exclusive canonical XML of the element without its enveloped
    /// signature and without comments: the bytes the digest covered.
    pub canonical: String,
}

/// Checks the shape of one `ds:Signature` (in the strict parse) before the
/// library sees it: one Reference to `#<parent ID>`, transforms exactly
/// enveloped + exclusive c14n, algorithms on the allow-list. Returns the
/// exclusive c14n `InclusiveNamespaces` prefix list.
pub fn check_signature_shape(sig: Node<'_, '_>, parent_id: &str) -> Result<Vec<String>, String> {
    let si = one_child(sig, NS_DSIG, "SignedInfo")?.ok_or("Signature without SignedInfo")?;
    let c14n = one_child(si, NS_DSIG, "CanonicalizationMethod")?
        .ok_or("SignedInfo without CanonicalizationMethod")?;
    if c14n.attribute("Algorithm") != Some(EXC_C14N) {
        return Err("SignedInfo is not canonicalized with exclusive c14n".into());
    }
    let method = one_child(si, NS_DSIG, "SignatureMethod")?.ok_or("no SignatureMethod")?;
    let alg = method.attribute("Algorithm").unwrap_or("");
    if !SIGNATURE_METHODS.contains(&alg) {
        return Err(format!("signature algorithm {alg:?} is not accepted (use RSA or ECDSA with SHA-256 or stronger)"));
    }
    let mut refs = children(si, NS_DSIG, "Reference");
    let reference = refs.next().ok_or("SignedInfo without Reference")?;
    if refs.next().is_some() {
        return Err("the signature has more than one Reference".into());
    }
    let uri = reference.attribute("URI").unwrap_or("");
    if uri.strip_prefix('#') != Some(parent_id) || parent_id.is_empty() {
        return Err("the signature does not reference the element that contains it".into());
    }
    let digest = one_child(reference, NS_DSIG, "DigestMethod")?.ok_or("no DigestMethod")?;
    let dalg = digest.attribute("Algorithm").unwrap_or("");
    if !DIGEST_METHODS.contains(&dalg) {
        return Err(format!(
            "digest algorithm {dalg:?} is not accepted (use SHA-256 or stronger)"
        ));
    }
    let transforms = one_child(reference, NS_DSIG, "Transforms")?.ok_or("no Transforms")?;
    let list: Vec<Node<'_, '_>> = transforms.children().filter(Node::is_element).collect();
    let shape_err =
        "the Reference transforms are not exactly enveloped-signature then exclusive c14n";
    let [enveloped, c14n] = list.as_slice() else {
        return Err(shape_err.into());
    };
    if !(is(*enveloped, NS_DSIG, "Transform")
        && enveloped.attribute("Algorithm") == Some(ENVELOPED)
        && is(*c14n, NS_DSIG, "Transform")
        && c14n.attribute("Algorithm") == Some(EXC_C14N))
    {
        return Err(shape_err.into());
    }
    let mut prefixes = Vec::new();
    for inc in c14n.children().filter(Node::is_element) {
        if inc.tag_name().name() != "InclusiveNamespaces"
            || inc.tag_name().namespace() != Some(EXC_C14N)
        {
            return Err("unexpected element inside the c14n transform".into());
        }
        prefixes.extend(
            inc.attribute("PrefixList")
                .unwrap_or("")
                .split_ascii_whitespace()
                .map(str::to_string),
        );
    }
    Ok(prefixes)
}

/// Verifies every `ds:Signature` of `text` with the pinned keys only.
/// `expected` lists, per signature in document order, the ID of the element
/// that contains it and the c14n prefix list (from
/// [`check_signature_shape`]). Any signature that does not verify fails the
/// whole document; so does one whose reference resolves anywhere but its
/// parent. A cryptographic failure is [`VerifyError::NoPinnedKey`] unless
/// every signature names a pinned certificate in its `KeyInfo`.
pub fn verify_all(
    text: &str,
    trust: &IdpTrust,
    expected: &[(String, Vec<String>)],
) -> Result<Vec<Signed>, VerifyError> {
    let doc = bergshamra::xml::uppsala::parse(text)
        .map_err(|e| format!("the signature library cannot parse the XML: {e}"))?;
    let keys = trust.keys()?;
    // Secure defaults: keys from the manager only (never KeyInfo), strict
    // reference positions, every Reference digest computed locally.
    let mut ctx = DsigContext::new(keys);
    ctx.trusted_keys_only = true;
    ctx.strict_verification = true;
    ctx.require_reference_digests = true;
    ctx.insecure = false;
    let results = bergshamra::dsig::verify::verify_all_document(&ctx, &doc)
        .map_err(|e| crypto_failure(text, trust, format!("signature check failed: {e}")))?;
    if results.len() != expected.len() {
        return Err("the signature library sees a different number of signatures".into());
    }
    let mut out = Vec::with_capacity(results.len());
    for (result, (want_id, prefixes)) in results.into_iter().zip(expected) {
        let (sig, references) = match result {
            VerifyResult::Valid {
                signature_node,
                references,
                ..
            } => (signature_node, references),
            VerifyResult::Invalid { reason } => {
                return Err(crypto_failure(
                    text,
                    trust,
                    format!(
                        "a signature does not verify with the pinned IdP certificates: {reason}"
                    ),
                ))
            }
        };
        let parent = doc.parent(sig).ok_or("signature without parent")?;
        let [reference] = references.as_slice() else {
            return Err("the signature does not have exactly one Reference".into());
        };
        if !reference.digest_verified || reference.resolved_node != Some(parent) {
            return Err("the signature covers an element other than the one containing it".into());
        }
        // SAML 2.0 names its ID `ID`, SAML 1.1 `AssertionID`.
        let id = doc
            .get_attribute(parent, "ID")
            .or_else(|| doc.get_attribute(parent, "AssertionID"));
        if id != Some(want_id.as_str()) {
            return Err("the signed element is not the one expected".into());
        }
        out.push(Signed {
            id: want_id.clone(),
            canonical: canonical_without(&doc, parent, sig, prefixes)?,
        });
    }
    Ok(out)
}

/// Classifies a failure of the library's check. Cryptographically a forged
/// signature and one made by a key we do not know look the same; the
/// signature's `KeyInfo` tells them apart when it carries a pinned
/// certificate (then the signature is simply bad and a refetch would not
/// help). Without such a hint it may be a rollover: [`VerifyError::NoPinnedKey`].
/// The hint only ever withholds a refetch; it never makes anything pass.
fn crypto_failure(text: &str, trust: &IdpTrust, msg: String) -> VerifyError {
    if every_signature_names_a_pinned_certificate(text, trust) {
        VerifyError::Refused(msg)
    } else {
        VerifyError::NoPinnedKey(msg)
    }
}

fn every_signature_names_a_pinned_certificate(text: &str, trust: &IdpTrust) -> bool {
    use base64::Engine;
    let Ok(doc) = super::xml::parse_strict(text) else {
        return false;
    };
    let mut signatures = doc
        .descendants()
        .filter(|n| is(*n, NS_DSIG, "Signature"))
        .peekable();
    if signatures.peek().is_none() {
        return false;
    }
    signatures.all(|sig| {
        children(sig, NS_DSIG, "KeyInfo")
            .flat_map(|ki| ki.descendants())
            .filter(|n| is(*n, NS_DSIG, "X509Certificate"))
            .filter_map(|n| {
                let b64: String = n.text()?.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            })
            .any(|der| trust.certs_der.contains(&der))
    })
}

/// The library's exclusive canonical form of `element` minus the `sig`
/// subtree and comments: what the enveloped + exc-c14n transforms digested.
fn canonical_without(
    doc: &UDocument<'_>,
    element: NodeId,
    sig: NodeId,
    prefixes: &[String],
) -> Result<String, String> {
    let set = NodeSet::tree_without_comments(element, doc)
        .subtract(&NodeSet::tree_with_comments(sig, doc));
    let bytes = canonicalize_doc(doc, C14nMode::Exclusive, Some(&set), prefixes)
        .map_err(|e| format!("canonicalization failed: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "canonical form is not UTF-8".to_string())
}

/// Query-string signature algorithms accepted on the HTTP-Redirect binding.
const QUERY_SIG_ALGS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
];

/// Verifies an HTTP-Redirect binding signature (SAML bindings §3.4.4.1):
/// `octets` is `SAMLRequest=..&RelayState=..&SigAlg=..` exactly as received,
/// `signature` the decoded `Signature`. Any pinned certificate may match.
pub fn verify_query_signature(
    trust: &IdpTrust,
    sig_alg: &str,
    octets: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    if !QUERY_SIG_ALGS.contains(&sig_alg) {
        return Err(format!(
            "SigAlg {sig_alg:?} is not accepted (use RSA with SHA-256 or stronger)"
        ));
    }
    let alg = bergshamra::crypto::sign::from_uri(sig_alg).map_err(|e| e.to_string())?;
    for der in &trust.certs_der {
        let key = loader::load_x509_cert_der(der).map_err(|e| e.to_string())?;
        let Ok(Some(public)) = key.to_signing_key() else {
            continue;
        };
        if alg.verify(&public, octets, signature).unwrap_or(false) {
            return Ok(());
        }
    }
    Err("the redirect signature does not verify with the pinned IdP certificates".into())
}
