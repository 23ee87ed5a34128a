//! Escaping of what a user typed before it goes into LDAP text.
//!
//! - [`filter_value`]: RFC 4515 §3 assertion values (`{login}` in
//!   `user_filter`, `{dn}` in `group_filter`). `*`, `(`, `)`, `\` and NUL
//!   must be escaped; every byte outside printable ASCII is escaped too
//!   (`\xx` of its UTF-8 bytes, which RFC 4515 allows for any octet), so the
//!   result is plain ASCII that no server or log reads differently.
//! - [`dn_value`]: RFC 4514 §2.4 attribute values inside a DN (`bind_as`
//!   templates such as `CN={login},OU=Users,...`).

use std::fmt::Write as _;

/// `value` as an RFC 4515 filter assertion value: no filter metacharacter
/// survives, so a typed `*)(uid=*` stays one literal value.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => hex(&mut out, b),
            0x20..=0x7e => out.push(char::from(b)),
            _ => hex(&mut out, b),
        }
    }
    out
}

/// `value` as an RFC 4514 DN attribute value: the special characters
/// (`"`, `+`, `,`, `;`, `<`, `>`, `\`, `=`), a leading `#` or space, a
/// trailing space, NUL and every byte outside printable ASCII are escaped,
/// so the value can neither end its RDN nor add one.
pub fn dn_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x21..=0x7e | b' ' => out.push(char::from(b)),
            _ => hex(&mut out, b),
        }
    }
    out
}

/// Puts `value` (escaped by `escape`) in place of every `{placeholder}` of
/// an operator-written template. The escaped value contains no `{`, so it
/// is never substituted twice.
pub fn fill(template: &str, placeholder: &str, value: &str, escape: fn(&str) -> String) -> String {
    template.replace(placeholder, &escape(value))
}

fn hex(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\{b:02x}");
}

#[cfg(test)]
mod tests;
