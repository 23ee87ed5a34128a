//! The Redis record of a session: a compact binary form (issue 23), and the
//! serde JSON that earlier builds wrote, still read.
//!
//! The first byte tells them apart: JSON starts with `{`, a compact record
//! with [`COMPACT_V1`]. Anything else, or a record that does not decode in
//! full (truncated, a length past the end, an unknown flag, an invalid
//! string, bytes left over), is not a session: the store treats it as
//! signed out. A decode gives back every field or nothing, so a damaged
//! record can never become a session with fewer groups or roles.
//!
//! # Compact format, version 1
//!
//! ```text
//! 0xC1                           format tag
//! varint  session version        (`Session::version`)
//! u8      email trust            0..=3
//! varint  flags                  which optional parts follow (FLAG_*)
//! varint  created_at, expires_at
//! str     user_id                (absent with FLAG_USER_IS_CONN_SUB)
//! str     subject, connection, issuer
//! str     tenant_id, sid, email, name, preferred_username  (each if flagged)
//! varint  n, n × str             groups, then roles
//! saml    u8 parts, str value, str format / name_qualifier / sp_name_qualifier (if flagged)
//! bytes   claims as JSON          (if flagged)
//! token   id, access, refresh     (each if flagged)
//! varint  tokens_expire_at        (if flagged)
//! u8 4|16, bytes                 client address (if flagged)
//! ```
//!
//! A `str` is a varint head `len << 2 | kind` and `len` bytes: kind 0 the
//! UTF-8 text, 1 a GUID written as lowercase `8-4-4-4-12` hex (16 bytes:
//! Entra's object, tenant and group ids), 2 text that is canonical
//! base64url without padding (the decoded bytes: a quarter smaller, Entra's
//! `sub`). A kind is only used when decoding gives back the very same text,
//! so every string round-trips exactly. A `token` is a segment count and
//! that many `str`s joined by `.` (a JWT's three base64url parts). Varints
//! are LEB128; all lengths are checked against what is left.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::session::model::{EmailTrust, SamlNameId, Session};

/// The first byte of a compact record (version 1 of the format). Not `{`,
/// nor JSON whitespace, nor anything an earlier build wrote.
pub(super) const COMPACT_V1: u8 = 0xC1;

const FLAG_TENANT: u64 = 1 << 0;
const FLAG_SID: u64 = 1 << 1;
const FLAG_EMAIL: u64 = 1 << 2;
const FLAG_NAME: u64 = 1 << 3;
const FLAG_USERNAME: u64 = 1 << 4;
/// `preferred_username` equals `email` (Entra: the UPN is the address).
const FLAG_USERNAME_IS_EMAIL: u64 = 1 << 5;
const FLAG_SAML: u64 = 1 << 6;
const FLAG_CLAIMS: u64 = 1 << 7;
const FLAG_ID_TOKEN: u64 = 1 << 8;
const FLAG_ACCESS_TOKEN: u64 = 1 << 9;
const FLAG_REFRESH_TOKEN: u64 = 1 << 10;
const FLAG_TOKENS_EXPIRE: u64 = 1 << 11;
const FLAG_CLIENT_ADDR: u64 = 1 << 12;
/// `user_id` is `<connection>:<subject>` (every kind but Entra), not stored.
const FLAG_USER_IS_CONN_SUB: u64 = 1 << 13;
const KNOWN_FLAGS: u64 = (1 << 14) - 1;

const KIND_TEXT: u64 = 0;
const KIND_GUID: u64 = 1;
const KIND_BASE64: u64 = 2;

/// Why a record is not a session (logged, never shown to users).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unreadable {
    /// A JSON record serde could not read.
    Json(String),
    /// A first byte of no known format (a newer build's record?).
    UnknownFormat(u8),
    /// A compact record that does not decode in full.
    Damaged,
    /// No bytes at all.
    Empty,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Json(e) => write!(f, "JSON record: {e}"),
            Unreadable::UnknownFormat(b) => write!(f, "unknown record format 0x{b:02x}"),
            Unreadable::Damaged => f.write_str("compact record truncated or damaged"),
            Unreadable::Empty => f.write_str("empty record"),
        }
    }
}

/// The compact record of `session`.
pub(super) fn encode(s: &Session) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(COMPACT_V1);
    put_varint(&mut out, u64::from(s.version));
    out.push(trust_byte(s.email_trust));

    let user_is_conn_sub = text(&s.user_id)
        .strip_prefix(text(&s.connection))
        .and_then(|r| r.strip_prefix(':'))
        == Some(text(&s.subject));
    let username_is_email =
        s.preferred_username.is_some() && opt_text(&s.preferred_username) == opt_text(&s.email);
    let mut flags = 0;
    let mut flag = |on: bool, bit: u64| {
        if on {
            flags |= bit;
        }
    };
    flag(s.tenant_id.is_some(), FLAG_TENANT);
    flag(s.sid.is_some(), FLAG_SID);
    flag(s.email.is_some(), FLAG_EMAIL);
    flag(s.name.is_some(), FLAG_NAME);
    flag(
        s.preferred_username.is_some() && !username_is_email,
        FLAG_USERNAME,
    );
    flag(username_is_email, FLAG_USERNAME_IS_EMAIL);
    flag(s.saml_name_id.is_some(), FLAG_SAML);
    flag(s.claims.is_some(), FLAG_CLAIMS);
    flag(s.id_token.is_some(), FLAG_ID_TOKEN);
    flag(s.access_token.is_some(), FLAG_ACCESS_TOKEN);
    flag(s.refresh_token.is_some(), FLAG_REFRESH_TOKEN);
    flag(s.tokens_expire_at.is_some(), FLAG_TOKENS_EXPIRE);
    flag(s.client_addr.is_some(), FLAG_CLIENT_ADDR);
    flag(user_is_conn_sub, FLAG_USER_IS_CONN_SUB);
    put_varint(&mut out, flags);
    put_varint(&mut out, s.created_at);
    put_varint(&mut out, s.expires_at);

    if !user_is_conn_sub {
        put_str(&mut out, text(&s.user_id));
    }
    put_str(&mut out, text(&s.subject));
    put_str(&mut out, text(&s.connection));
    put_str(&mut out, text(&s.issuer));
    for field in [&s.tenant_id, &s.sid, &s.email, &s.name] {
        if let Some(v) = opt_text(field) {
            put_str(&mut out, v);
        }
    }
    if !username_is_email {
        if let Some(v) = opt_text(&s.preferred_username) {
            put_str(&mut out, v);
        }
    }
    for list in [&s.groups, &s.roles] {
        put_varint(&mut out, list.len() as u64);
        for v in list.iter() {
            put_str(&mut out, text(v));
        }
    }
    if let Some(n) = &s.saml_name_id {
        let parts = [&n.format, &n.name_qualifier, &n.sp_name_qualifier];
        let mut mask = 0u8;
        for (i, p) in parts.iter().enumerate() {
            if p.is_some() {
                mask |= 1 << i;
            }
        }
        out.push(mask);
        put_str(&mut out, text(&n.value));
        for p in parts.into_iter().flatten() {
            put_str(&mut out, text(p));
        }
    }
    if let Some(claims) = &s.claims {
        // A map of JSON values always serializes.
        let json = serde_json::to_vec(claims).unwrap_or_else(|_| b"{}".to_vec());
        put_bytes(&mut out, &json);
    }
    for token in [&s.id_token, &s.access_token, &s.refresh_token] {
        if let Some(t) = opt_text(token) {
            put_varint(&mut out, t.split('.').count() as u64);
            for segment in t.split('.') {
                put_str(&mut out, segment);
            }
        }
    }
    if let Some(at) = s.tokens_expire_at {
        put_varint(&mut out, at);
    }
    match s.client_addr {
        Some(std::net::IpAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        Some(std::net::IpAddr::V6(a)) => {
            out.push(16);
            out.extend_from_slice(&a.octets());
        }
        None => {}
    }
    out
}

/// The session in `raw`, either format.
pub(super) fn decode(raw: &[u8]) -> Result<Session, Unreadable> {
    match raw.first() {
        None => Err(Unreadable::Empty),
        Some(b'{') => serde_json::from_slice(raw).map_err(|e| Unreadable::Json(e.to_string())),
        Some(&COMPACT_V1) => decode_compact(&raw[1..]).ok_or(Unreadable::Damaged),
        Some(&other) => Err(Unreadable::UnknownFormat(other)),
    }
}

// The `.into()`s are conversions to the field types: no-ops while they are
// `String`, and what keeps a change to `Arc<str>` (or the like) a small one.
#[allow(clippy::useless_conversion)]
fn decode_compact(mut r: &[u8]) -> Option<Session> {
    let r = &mut r;
    let version = u32::try_from(take_varint(r)?).ok()?;
    let email_trust = trust_of(take_byte(r)?)?;
    let flags = take_varint(r)?;
    if flags & !KNOWN_FLAGS != 0 {
        return None;
    }
    let has = |bit: u64| flags & bit != 0;
    let created_at = take_varint(r)?;
    let expires_at = take_varint(r)?;
    let stored_user_id = if has(FLAG_USER_IS_CONN_SUB) {
        None
    } else {
        Some(take_str(r)?)
    };
    let subject = take_str(r)?;
    let connection = take_str(r)?;
    let issuer = take_str(r)?;
    let mut optional = |bit: u64| -> Option<Option<String>> {
        if has(bit) {
            take_str(r).map(Some)
        } else {
            Some(None)
        }
    };
    let tenant_id = optional(FLAG_TENANT)?;
    let sid = optional(FLAG_SID)?;
    let email = optional(FLAG_EMAIL)?;
    let name = optional(FLAG_NAME)?;
    let preferred_username = match (has(FLAG_USERNAME), has(FLAG_USERNAME_IS_EMAIL)) {
        (true, true) => return None,
        (false, true) => Some(email.clone()?),
        (true, false) => Some(take_str(r)?),
        (false, false) => None,
    };
    let groups = take_list(r)?;
    let roles = take_list(r)?;
    let saml_name_id = if has(FLAG_SAML) {
        let mask = take_byte(r)?;
        if mask & !0b111 != 0 {
            return None;
        }
        let value = take_str(r)?;
        let mut part = |i: u8| -> Option<Option<String>> {
            if mask & (1 << i) != 0 {
                take_str(r).map(Some)
            } else {
                Some(None)
            }
        };
        Some(Box::new(SamlNameId {
            value: value.into(),
            format: part(0)?.map(Into::into),
            name_qualifier: part(1)?.map(Into::into),
            sp_name_qualifier: part(2)?.map(Into::into),
        }))
    } else {
        None
    };
    let claims = if has(FLAG_CLAIMS) {
        Some(serde_json::from_slice(take_bytes(r)?).ok()?)
    } else {
        None
    };
    let mut token = |bit: u64| -> Option<Option<String>> {
        if !has(bit) {
            return Some(None);
        }
        let segments = take_varint(r)?;
        let mut t = String::new();
        for i in 0..segments {
            if i > 0 {
                t.push('.');
            }
            // Each segment takes at least one byte: the loop ends with the input.
            push_str(r, &mut t)?;
        }
        Some(Some(t))
    };
    let id_token = token(FLAG_ID_TOKEN)?;
    let access_token = token(FLAG_ACCESS_TOKEN)?;
    let refresh_token = token(FLAG_REFRESH_TOKEN)?;
    let tokens_expire_at = if has(FLAG_TOKENS_EXPIRE) {
        Some(take_varint(r)?)
    } else {
        None
    };
    let client_addr = if has(FLAG_CLIENT_ADDR) {
        Some(match take_byte(r)? {
            4 => std::net::IpAddr::from(<[u8; 4]>::try_from(take_n(r, 4)?).ok()?),
            16 => std::net::IpAddr::from(<[u8; 16]>::try_from(take_n(r, 16)?).ok()?),
            _ => return None,
        })
    } else {
        None
    };
    if !r.is_empty() {
        return None;
    }
    let user_id = match stored_user_id {
        Some(u) => u,
        None => format!("{connection}:{subject}"),
    };
    Some(Session {
        derived: Default::default(),
        version,
        user_id: user_id.into(),
        subject: subject.into(),
        tenant_id: tenant_id.map(Into::into),
        connection: connection.into(),
        issuer: issuer.into(),
        sid: sid.map(Into::into),
        email: email.map(Into::into),
        email_trust,
        name: name.map(Into::into),
        preferred_username: preferred_username.map(Into::into),
        groups: groups.into_iter().map(Into::into).collect(),
        roles: roles.into_iter().map(Into::into).collect(),
        saml_name_id,
        claims,
        id_token: id_token.map(Into::into),
        access_token: access_token.map(Into::into),
        refresh_token: refresh_token.map(Into::into),
        tokens_expire_at,
        created_at,
        expires_at,
        client_addr,
    })
}

// --- field access: the only places that know the fields' string types ---

fn text<T: AsRef<str> + ?Sized>(v: &T) -> &str {
    v.as_ref()
}

fn opt_text<T: AsRef<str>>(v: &Option<T>) -> Option<&str> {
    v.as_ref().map(AsRef::as_ref)
}

fn trust_byte(t: EmailTrust) -> u8 {
    match t {
        EmailTrust::Unverified => 0,
        EmailTrust::ProviderVerified => 1,
        EmailTrust::EntraDomainVerified => 2,
        EmailTrust::TrustedConnection => 3,
    }
}

fn trust_of(b: u8) -> Option<EmailTrust> {
    Some(match b {
        0 => EmailTrust::Unverified,
        1 => EmailTrust::ProviderVerified,
        2 => EmailTrust::EntraDomainVerified,
        3 => EmailTrust::TrustedConnection,
        _ => return None,
    })
}

// --- strings ---

fn put_str(out: &mut Vec<u8>, s: &str) {
    if let Some(guid) = guid_bytes(s) {
        put_varint(out, 16 << 2 | KIND_GUID);
        out.extend_from_slice(&guid);
    } else if let Some(bytes) = canonical_base64(s) {
        put_varint(out, (bytes.len() as u64) << 2 | KIND_BASE64);
        out.extend_from_slice(&bytes);
    } else {
        put_varint(out, (s.len() as u64) << 2 | KIND_TEXT);
        out.extend_from_slice(s.as_bytes());
    }
}

fn take_str(r: &mut &[u8]) -> Option<String> {
    let mut s = String::new();
    push_str(r, &mut s)?;
    Some(s)
}

/// Appends the next `str` of `r` to `out`.
fn push_str(r: &mut &[u8], out: &mut String) -> Option<()> {
    let head = take_varint(r)?;
    let len = usize::try_from(head >> 2).ok()?;
    let bytes = take_n(r, len)?;
    match head & 3 {
        KIND_TEXT => out.push_str(std::str::from_utf8(bytes).ok()?),
        KIND_GUID => {
            let g = <&[u8; 16]>::try_from(bytes).ok()?;
            push_guid(g, out);
        }
        KIND_BASE64 => URL_SAFE_NO_PAD.encode_string(bytes, out),
        _ => return None,
    }
    Some(())
}

/// The 16 bytes of `s` when it is a GUID exactly as [`push_guid`] writes it.
fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let hi = lower_hex(b[i])?;
        let lo = lower_hex(b[i + 1])?;
        *out.get_mut(n)? = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    Some(out)
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn push_guid(g: &[u8; 16], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(36);
    for (i, b) in g.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// The bytes `s` encodes, when it is base64url without padding that
/// encodes back to the very same text (and is at least 16 characters:
/// shorter words gain nothing and are often plain names).
fn canonical_base64(s: &str) -> Option<Vec<u8>> {
    if s.len() < 16 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    (URL_SAFE_NO_PAD.encode(&bytes) == s).then_some(bytes)
}

// --- bytes and varints ---

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn take_bytes<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(r)?).ok()?;
    take_n(r, len)
}

fn take_list(r: &mut &[u8]) -> Option<Vec<String>> {
    let n = take_varint(r)?;
    // Every item takes at least one byte: no more than what is left.
    let n = usize::try_from(n).ok().filter(|&n| n <= r.len())?;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(take_str(r)?);
    }
    Some(list)
}

fn take_n<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > r.len() {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

fn take_byte(r: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = r.split_first()?;
    *r = rest;
    Some(b)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A LEB128 of at most 10 bytes whose value fits in 64 bits, written in
/// its shortest form (one encoding per value).
fn take_varint(r: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for i in 0..10u32 {
        let b = take_byte(r)?;
        let part = u64::from(b & 0x7f);
        let shift = 7 * i;
        // The tenth byte may only carry the top bit of a u64.
        if i == 9 && part > 1 {
            return None;
        }
        n |= part << shift;
        if b & 0x80 == 0 {
            if i > 0 && part == 0 {
                return None;
            }
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests;
