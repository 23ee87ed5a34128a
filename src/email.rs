//! Plain email addresses (SPEC 6.1): the only emails that count for
//! `allow.email_domains` / `allow.users`, and the only ones sent upstream.
//!
//! A provider's `email` claim is free text. Read by a lenient parser
//! ("the domain is what follows the last `@`, trimmed"),
//! `mallory@evil.example@contoso.com`, `mallory@contoso.com.` or
//! `"mallory@contoso.com "` look like contoso.com addresses, while a mail
//! server or the upstream app may read them as something else. So an email
//! counts only when it is one plain addr-spec that every reader splits the
//! same way:
//!
//! - exactly one `@`; the local part a non-empty RFC 5322 dot-atom of ASCII
//!   `atext` (no quotes, no spaces, no `<>`, `,`, `;`, `[]`, `\`, no empty
//!   part around a dot), at most 64 bytes;
//! - the host a DNS name: labels of letters, digits and `-` (not at either
//!   end), 1 to 63 bytes each, no empty label, no trailing dot, at most 253
//!   bytes, and not all-numeric at the end (no address literals, no IPs);
//! - an internationalized host only in its own canonical form: its A-label
//!   (punycode) form, converted back, gives the lowercased input. UTS #46
//!   mapping (fullwidth letters, `。` and other Unicode dots) would make two
//!   parsers disagree, so a host that needs mapping is not plain;
//! - no control character or whitespace anywhere; at most 254 bytes.
//!
//! Anything else is "no usable email": the user is treated as having no
//! verified email (policy) and no email header is sent.

/// A plain email in the form policies compare: local part and host
/// lowercased, the host in its IDNA A-label form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainEmail {
    normalized: String,
    /// Byte offset of the host in `normalized` (just after the `@`).
    host_at: usize,
}

impl PlainEmail {
    /// `local@host`, lowercased, host in A-label form.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The host (A-label form, lowercase).
    pub fn domain(&self) -> &str {
        self.normalized.get(self.host_at..).unwrap_or_default()
    }
}

/// Longest addr-spec accepted (RFC 5321's forward-path limit minus `<>`).
const MAX_LEN: usize = 254;
const MAX_LOCAL: usize = 64;
const MAX_HOST: usize = 253;
const MAX_LABEL: usize = 63;

/// The email as policies compare it, or None when it is not one plain
/// addr-spec (see the module docs).
pub fn parse(email: &str) -> Option<PlainEmail> {
    if email.is_empty() || email.len() > MAX_LEN {
        return None;
    }
    let mut parts = email.split('@');
    let (Some(local), Some(host), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !is_dot_atom(local) {
        return None;
    }
    let host = ascii_host(host)?;
    let mut normalized = String::with_capacity(local.len() + 1 + host.len());
    normalized.push_str(&local.to_ascii_lowercase());
    normalized.push('@');
    let host_at = normalized.len();
    normalized.push_str(&host);
    Some(PlainEmail {
        normalized,
        host_at,
    })
}

/// True when `email` is one plain addr-spec (what `parse` accepts). No
/// allocation for ASCII addresses: this runs when headers are built.
pub fn is_plain(email: &str) -> bool {
    if email.is_ascii() {
        if email.len() > MAX_LEN {
            return false;
        }
        let mut parts = email.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            // Any case of the A-label prefix (`Xn--`, `xN--`) takes the full parse.
            (Some(local), Some(host), None)
                if !host
                    .as_bytes()
                    .windows(4)
                    .any(|w| w.eq_ignore_ascii_case(b"xn--")) =>
            {
                is_dot_atom(local) && is_dns_name(host)
            }
            (Some(_), Some(_), None) => parse(email).is_some(),
            _ => false,
        }
    } else {
        parse(email).is_some()
    }
}

/// RFC 5322 `dot-atom-text` of ASCII `atext`, 1 to 64 bytes.
fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// RFC 5322 `atext`.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// The host in lowercase A-label form, if it is a DNS name written in its
/// canonical form (ASCII in any case, or Unicode that needs no mapping).
fn ascii_host(host: &str) -> Option<String> {
    if host.is_ascii() {
        let lower = host.to_ascii_lowercase();
        // An A-label must decode: a reader that shows or compares the
        // Unicode form would otherwise see something else.
        if !is_dns_name(&lower)
            || (lower.contains("xn--") && idna::domain_to_unicode(&lower).1.is_err())
        {
            return None;
        }
        return Some(lower);
    }
    if host.len() > MAX_HOST * 4 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let lower = host.to_lowercase();
    let ascii = idna::domain_to_ascii_strict(&lower).ok()?;
    if !is_dns_name(&ascii) {
        return None;
    }
    // Only hosts already in their canonical Unicode form: a host that UTS #46
    // maps (fullwidth letters, ideographic full stop...) reads differently
    // to a reader that does not map it.
    let (back, result) = idna::domain_to_unicode(&ascii);
    (result.is_ok() && back == lower).then_some(ascii)
}

/// A DNS host name in ASCII (letters, digits, `-`; see the module docs).
pub(crate) fn is_dns_name(host: &str) -> bool {
    if host.is_empty() || host.len() > MAX_HOST {
        return false;
    }
    let mut last = "";
    for label in host.split('.') {
        let b = label.as_bytes();
        if b.is_empty()
            || b.len() > MAX_LABEL
            || b[0] == b'-'
            || b[b.len() - 1] == b'-'
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            return false;
        }
        last = label;
    }
    // A top-level label of digits only is an IPv4 address, not a host name.
    !last.bytes().all(|c| c.is_ascii_digit())
}

/// True when `text` (a username such as Entra's `preferred_username`, not
/// an email realmgate vouched for) names one of `domains` (lowercase A-label
/// form) where a lenient reader would find a user's domain: the host-like
/// run after any `@` (`alice@contoso.com`, `x@contoso.com@evil`,
/// `alice@contoso.com>`; Unicode or only its ASCII start, as ASCII email
/// regexes read `alice@contoso.comé`), or what comes before a `\`
/// (`contoso.com\alice`, or the NetBIOS `CONTOSO\alice`: an owned domain's
/// first label), read case-insensitively, without trailing dots, as
/// written and with full-width and other compatibility forms (`＠`, `ｃ`,
/// `。`) as the ASCII they stand for. (Comments and spaces, as in
/// `alice@(x)contoso.com`, are refused by the caller: `Session::vouched_username`.)
/// So a second provider cannot mint a username an app takes for a user of
/// the connection that owns the domain (SPEC 6.1).
pub fn names_any_domain(text: &str, domains: &std::collections::HashSet<String>) -> bool {
    if domains.is_empty() {
        return false;
    }
    if text.is_ascii() {
        return names_in(text, domains);
    }
    // Readings: NFKC (`＠`, `．` and full-width letters as ASCII; an
    // IDN as written, `bücher`), and `fold`, which also drops marks and
    // invisible code points (`bu\u{308}cher`, `con\u{ad}toso`). UTS #46 also
    // reads the ideographic full stop as a dot, which neither maps.
    // And as written: an ASCII regex stops at `²`, which NFKC makes a `2`.
    let nfkc = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(text);
    names_in(text, domains)
        || [nfkc.to_lowercase(), crate::fold::fold(text)]
            .iter()
            .any(|t| names_in(&t.replace('\u{3002}', "."), domains))
}

/// [`names_any_domain`] of one reading.
fn names_in(text: &str, domains: &std::collections::HashSet<String>) -> bool {
    let owned = |host: &str| {
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return false;
        }
        if host.is_ascii() {
            domains.contains(&host.to_ascii_lowercase())
        } else {
            idna::domain_to_ascii(host).is_ok_and(|a| domains.contains(a.trim_end_matches('.')))
        }
    };
    // The run of host characters after an `@`: Unicode ones (an IDN as
    // written), and ASCII ones only, as the email regexes of JavaScript,
    // Java or Go read `alice@contoso.comé` or `alice@contoso.com²`.
    let run = |rest: &str, host_char: fn(char) -> bool| -> bool {
        let end = rest.find(|c| !host_char(c)).unwrap_or(rest.len());
        owned(&rest[..end])
    };
    let after_at = text.match_indices('@').any(|(at, _)| {
        let rest = text[at + 1..].trim_start();
        run(rest, |c| c.is_alphanumeric() || c == '.' || c == '-')
            || run(rest, |c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    });
    // A down-level logon name: `contoso.com\alice`, or the NetBIOS form
    // `CONTOSO\alice` (the owned domain's first label), as apps moved off
    // Windows authentication compare `User.Identity.Name`.
    let down_level = text.split_once('\\').is_some_and(|(before, _)| {
        let before = before.trim();
        owned(before)
            || domains.iter().any(|d| {
                d.split('.')
                    .next()
                    .is_some_and(|label| label.eq_ignore_ascii_case(before))
            })
    });
    after_at || down_level
}

#[cfg(test)]
mod tests;
