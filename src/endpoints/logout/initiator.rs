//! Did a page of another site start this sign-out? (issue 17, hole 10)
//!
//! A link or a self-submitting form on any web page can send the browser to
//! `/.auth/logout`; the `SameSite=Lax` session cookie goes along with a
//! top-level GET, and with a POST from a sibling subdomain. Signing out
//! then (here and at the provider) is a nuisance attack, and a step in
//! login-CSRF chains. So a sign-out that a browser says came from elsewhere
//! gets a confirmation page instead.
//!
//! What counts as "ours": the request's own host and every configured route
//! host (any scheme, any port, as for login targets). A page on another
//! route host behind this gateway could link to its own `/.auth/logout`
//! anyway, so trusting it adds nothing an attacker could not already do; a
//! sibling subdomain that is *not* behind the gateway is same-site to the
//! browser but is another app, so it is not ours.
//!
//! The evidence, in order:
//!
//! 1. `Sec-Fetch-Site` (every current browser): `same-origin` and `none`
//!    (typed URL, bookmark) are ours; `same-site` and `cross-site` are ours
//!    only when `Origin`, else `Referer`, names one of our hosts; anything
//!    else (an unknown or repeated value) is foreign.
//! 2. Without it: an `Origin` (`null` is foreign), else a `Referer`, must
//!    name one of our hosts.
//! 3. None of the three headers: ours. That is a typed URL or a program
//!    (curl), and signing out is what the user asked for. Residual risk: an
//!    old browser without `Sec-Fetch-Site` following a GET link from a page
//!    that suppresses the `Referer` (`Referrer-Policy: no-referrer`) is
//!    still signed out. Every browser released since 2023 sends
//!    `Sec-Fetch-Site`, and every browser sends `Origin` on a POST.

use std::collections::HashSet;

use http::header::{HeaderMap, ORIGIN, REFERER};

/// True when the request's headers say it came from a page that is not on
/// `own_host` nor on one of `route_hosts` (lowercase, no port).
pub(super) fn from_another_site(
    headers: &HeaderMap,
    own_host: &str,
    route_hosts: &HashSet<String>,
) -> bool {
    let ours = |host: &str| host == own_host || route_hosts.contains(host);
    match single(headers, "sec-fetch-site") {
        Single::Absent => {}
        Single::One(site) => match site {
            "same-origin" | "none" => return false,
            "same-site" | "cross-site" => {
                return !initiator_host(headers).is_some_and(|h| ours(&h));
            }
            _ => return true,
        },
        Single::Many | Single::Unreadable => return true,
    }
    match (
        single(headers, ORIGIN.as_str()),
        single(headers, REFERER.as_str()),
    ) {
        (Single::Absent, Single::Absent) => false,
        _ => !initiator_host(headers).is_some_and(|h| ours(&h)),
    }
}

/// The host of the page that made the request: from `Origin`, else from
/// `Referer`. `None` for `null`, a repeated header, or anything that is not
/// an http(s) URL with a host.
fn initiator_host(headers: &HeaderMap) -> Option<String> {
    let value = match single(headers, ORIGIN.as_str()) {
        Single::One(origin) => origin,
        Single::Absent => match single(headers, REFERER.as_str()) {
            Single::One(referer) => referer,
            _ => return None,
        },
        Single::Many | Single::Unreadable => return None,
    };
    let url = url::Url::parse(value).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    // IPv6 literals are configured without brackets.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(bare.to_string())
}

enum Single<'a> {
    Absent,
    One(&'a str),
    /// Sent more than once: which one would another reader believe?
    Many,
    /// Not visible ASCII.
    Unreadable,
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Single<'a> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => Single::Absent,
        (Some(v), None) => v.to_str().map_or(Single::Unreadable, Single::One),
        (Some(_), Some(_)) => Single::Many,
    }
}

#[cfg(test)]
mod tests;
