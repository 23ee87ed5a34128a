//! Provider tokens in compact form (SPEC 7: one million Entra sessions in
//! 2 GiB with refresh tokens).
//!
//! Tokens are kilobytes of base64url text: a JWT is three base64url
//! segments joined by `.`, an Entra refresh token a short version prefix
//! and base64url segments (`0.AXEA…`). Each `.`-separated segment that is
//! canonical base64url (what decoding and encoding again gives back
//! byte for byte) is kept as the bytes it encodes, a quarter smaller;
//! any other segment is kept as its text. Decoding gives back exactly the
//! text that was packed, whatever it was (`pack_tokens` then
//! `unpack_tokens` is the identity, proven by the tests for arbitrary
//! text).
//!
//! # Format
//!
//! For each token in order: one byte, 0 absent or 1 present; a present
//! token is a LEB128 segment count, then per segment a LEB128 of
//! `len << 1 | base64`, then `len` bytes (decoded bytes when `base64`, the
//! segment's text otherwise). Segments are joined with `.` on decoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The tokens a session may keep, in a fixed order (id, access, refresh).
pub(crate) const TOKENS: usize = 3;

/// The tokens in compact form; None when none is present (no allocation).
pub(crate) fn pack_tokens(tokens: [Option<&str>; TOKENS]) -> Option<Box<[u8]>> {
    if tokens.iter().all(Option::is_none) {
        return None;
    }
    let mut out = Vec::with_capacity(tokens.iter().flatten().map(|t| t.len()).sum::<usize>() + 16);
    for token in tokens {
        let Some(token) = token else {
            out.push(0);
            continue;
        };
        out.push(1);
        put_varint(&mut out, token.split('.').count() as u64);
        for segment in token.split('.') {
            match canonical_base64(segment) {
                Some(bytes) => {
                    put_varint(&mut out, (bytes.len() as u64) << 1 | 1);
                    out.extend_from_slice(&bytes);
                }
                None => {
                    put_varint(&mut out, (segment.len() as u64) << 1);
                    out.extend_from_slice(segment.as_bytes());
                }
            }
        }
    }
    Some(out.into_boxed_slice())
}

/// The tokens packed by [`pack_tokens`]; None for bytes it did not make
/// (the caller treats the session as gone, never as one without tokens).
pub(crate) fn unpack_tokens(packed: Option<&[u8]>) -> Option<[Option<String>; TOKENS]> {
    let mut tokens: [Option<String>; TOKENS] = Default::default();
    let Some(mut rest) = packed else {
        return Some(tokens);
    };
    for slot in &mut tokens {
        let (&present, after) = rest.split_first()?;
        rest = after;
        match present {
            0 => continue,
            1 => {}
            _ => return None,
        }
        let segments = take_varint(&mut rest)?;
        let mut text = String::new();
        for i in 0..segments {
            let head = take_varint(&mut rest)?;
            let len = usize::try_from(head >> 1).ok()?;
            if len > rest.len() {
                return None;
            }
            let (bytes, after) = rest.split_at(len);
            rest = after;
            if i > 0 {
                text.push('.');
            }
            if head & 1 == 1 {
                URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
            } else {
                text.push_str(std::str::from_utf8(bytes).ok()?);
            }
        }
        *slot = Some(text);
    }
    rest.is_empty().then_some(tokens)
}

/// The bytes `segment` encodes, when it is base64url without padding that
/// encodes back to the very same text.
fn canonical_base64(segment: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    (URL_SAFE_NO_PAD.encode(&bytes) == segment).then_some(bytes)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, after) = rest.split_first()?;
        *rest = after;
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests;
