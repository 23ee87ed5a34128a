//! SAML 2.0 and WS-Federation connections (SPEC §9, issue 20): the checks
//! that turn an IdP's `<samlp:Response>` into a verified identity.
//!
//! The surface is narrow on purpose so the connection seam can plug it in:
//! [`validate_response`] takes the decoded response bytes, the pinned IdP
//! certificates ([`IdpTrust`]) and what this SP expects ([`Expect`]), and
//! returns an [`Assertion`] read only from bytes a pinned key signed, or a
//! [`SamlError`] saying which check failed.
//!
//! # How a response is read (XML is where SAML implementations die)
//!
//! 1. [`xml::parse_strict`]: size bound, UTF-8, no DTD (so no entities,
//!    internal or external), a node and a depth bound.
//! 2. Shape checks on that parse ([`response`]): the root is a Response;
//!    exactly one `Assertion` anywhere in the document (and no encrypted one
//!    next to it), directly under the Response; ID values unique; every
//!    `ds:Signature` a direct child of the Response or of the Assertion, one
//!    at most each. All eight classic signature-wrapping (XSW) variants put a
//!    second assertion or a moved signature into the document and stop here.
//! 3. [`verify`]: the maintained library (bergshamra, see docs/decisions.md)
//!    checks each signature against the pinned certificates only (never a key
//!    from `KeyInfo`), with an algorithm allow-list, one `Reference` whose
//!    target is the signature's own parent (enveloped), and exactly the
//!    enveloped + exclusive-c14n transforms.
//! 4. Only the signed element is used afterwards: the library's exclusive
//!    canonical form of the signed element (the bytes whose digest was just
//!    checked, without the enveloped signature and without comments) is parsed
//!    again, and every field — issuer, subject, conditions, attributes — is read
//!    from that parse. A comment inside a NameID therefore cannot truncate it,
//!    and nothing outside the signed element is ever looked at, whatever a
//!    second parser might think the document says.
//! 5. [`response`] checks the protocol: status, issuer, `InResponseTo` (a
//!    request this browser started, or IdP-initiated when allowed), audience,
//!    recipient, destination, validity window with a small skew; the
//!    [`replay`] cache accepts each assertion ID once.

mod attributes;
pub mod binding;
pub mod check;
pub mod config;
pub mod decrypt;
pub mod flow;
#[doc(hidden)]
pub mod fuzz;
pub mod metadata;
mod replay;
mod response;
pub mod signin;
pub mod slo;
pub mod source;
mod verify;
pub mod wsfed;
mod xml;

pub use attributes::{AttributeMap, Identity, IdentityError};
pub use replay::ReplayCache;
pub use response::{
    validate_response, validate_response_with, Assertion, Expect, Requested, SamlError, SignedPart,
    MAX_RESPONSE_BYTES,
};
pub use verify::IdpTrust;

/// Unix time in seconds (the validity windows and request instants).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
