//! Home realm discovery (SPEC 5.3): email domain, lowercased and IDNA-normalized,
//! looked up among the connections a route allows. Subdomains do not match.
//!
//! Nothing here logs: the input is an email address.

use crate::config::ConnectionSettings;

/// Longest email we look at (RFC 5321 path limit); longer input is not an email.
const MAX_EMAIL_LEN: usize = 320;

/// The normalized (lowercase, IDNA ASCII) domain of an email, or None if it is not an email.
///
/// The domain is what follows the last `@` (a quoted local part may itself
/// contain `@`); the local part before it must not be empty. The domain is
/// mapped with UTS #46 (`idna::domain_to_ascii`, which also lowercases), a
/// trailing dot is dropped, and empty labels, whitespace or control characters
/// make it invalid.
pub fn domain_of(email: &str) -> Option<String> {
    if email.len() > MAX_EMAIL_LEN {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || local.chars().any(char::is_control) {
        return None;
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let ascii = idna::domain_to_ascii(domain).ok()?;
    // `domain_to_ascii` accepts some inputs a mail domain cannot have.
    if ascii.is_empty()
        || ascii.split('.').any(str::is_empty)
        || ascii.contains(['@', '/', '\\', ':', '[', ']', '%'])
    {
        return None;
    }
    Some(ascii)
}

/// The connection among `allowed` whose `home_realm_domains` contains the email's domain.
/// `home_realm_domains` are already normalized by `config::normalize_domain`.
pub fn connection_for<'a>(
    email: &str,
    allowed: impl Iterator<Item = &'a ConnectionSettings>,
) -> Option<&'a ConnectionSettings> {
    let domain = domain_of(email)?;
    let mut allowed = allowed;
    allowed.find(|c| c.home_realm_domains.contains(&domain))
}

#[cfg(test)]
mod tests;
