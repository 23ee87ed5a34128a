//! Home realm discovery (SPEC 5.3): email domain, lowercased and IDNA-normalized,
//! looked up among the connections a route allows. Subdomains do not match.
//!
//! OWNER: sess helper.

use crate::config::ConnectionSettings;

/// The normalized (lowercase, IDNA ASCII) domain of an email, or None if it is not an email.
pub fn domain_of(email: &str) -> Option<String> {
    let _ = email;
    todo!("sess")
}

/// The connection among `allowed` whose `home_realm_domains` contains the email's domain.
pub fn connection_for<'a>(
    email: &str,
    allowed: impl Iterator<Item = &'a ConnectionSettings>,
) -> Option<&'a ConnectionSettings> {
    let _ = (email, allowed.count());
    todo!("sess")
}
