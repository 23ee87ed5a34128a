//! Login/logout target validation (SPEC 4): a same-host path or an absolute URL
//! whose host is a configured route host; anything else becomes `/`.
//!
//! On a request that reached the gateway over HTTPS, an absolute `http://`
//! target is "anything else" too, whatever its host: following it would send
//! the browser, and whatever the app puts in that URL, over plain HTTP where
//! a network attacker can read and rewrite it (a downgrade). Same-host paths
//! keep the request's scheme, so they are never affected.
//!
//! The checks are deliberately strict (the open-redirect advisories of peers
//! are a catalogue of parser differentials: `//evil`, `/\evil`, `/\t/evil`,
//! `https:evil`, `good@evil`, `evil\@good`), and the answer is never the raw
//! input: it is re-serialized by the `url` crate, so what the browser follows
//! is exactly what was checked (an IDN host is answered in its punycode form,
//! non-ASCII is percent-encoded, dot segments are resolved).

use std::collections::HashSet;

use url::Url;

/// Targets longer than this are refused (they travel in the state cookie).
const MAX_TARGET_LEN: usize = 2048;

/// The scheme the browser used to reach the gateway (TLS here, a trusted
/// proxy's `X-Forwarded-Proto`, or an https `public_origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The safe target for `raw` as received (already percent-decoded once by the
/// query/form parser). `host` is the request's host (no port, lowercase);
/// `scheme` how the request came in; `route_hosts` every configured route
/// host (lowercase).
pub fn safe_target(raw: &str, host: &str, scheme: Scheme, route_hosts: &HashSet<String>) -> String {
    checked(raw, host, scheme, route_hosts)
        // The limit holds for the answer too: percent-encoding can triple a
        // non-ASCII target, and the answer travels in the state cookie.
        .filter(|out| out.len() <= MAX_TARGET_LEN)
        .unwrap_or_else(|| "/".to_string())
}

fn checked(raw: &str, host: &str, scheme: Scheme, route_hosts: &HashSet<String>) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_TARGET_LEN {
        return None;
    }
    // Browsers silently drop tabs and newlines inside URLs and trim spaces and
    // C0 controls around them; a backslash is a slash to them in http(s) URLs.
    // None of that belongs in a legitimate target, so any of it is refused
    // outright instead of being cleaned up.
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    if raw.starts_with('/') {
        same_host_path(raw)
    } else {
        absolute(raw, host, route_hosts).filter(|url| {
            // No downgrade: `url` is re-serialized, so its scheme is lowercase.
            scheme == Scheme::Http || url.starts_with("https://")
        })
    }
}

/// A path on the request's own host: `/x`, never `//x` (scheme-relative) nor a
/// path that starts with an encoded slash or backslash.
fn same_host_path(raw: &str) -> Option<String> {
    if starts_like_another_host(raw) {
        return None;
    }
    // Resolve against a placeholder base on the same host, then keep only the
    // path, query and fragment: the browser resolves it the same way.
    let base = Url::parse("https://realmgate.invalid/").ok()?;
    let url = base.join(raw).ok()?;
    if url.host_str() != Some("realmgate.invalid") || url.path().starts_with("//") {
        return None;
    }
    let out = &url[url::Position::BeforePath..];
    // Checked again after resolution: `/./%2f` resolves to `/%2f`.
    (out.starts_with('/') && !starts_like_another_host(out)).then(|| out.to_string())
}

/// `//x`, `/%2fx` or `/%5cx`: a scheme-relative URL, or one a server that
/// decodes the path before redirecting turns into one.
fn starts_like_another_host(path: &str) -> bool {
    let lower = path.get(..4).map(str::to_ascii_lowercase);
    path.starts_with("//") || matches!(lower.as_deref(), Some("/%2f") | Some("/%5c"))
}

/// An absolute `http(s)://` URL on a configured route host (or the request's host).
fn absolute(raw: &str, host: &str, route_hosts: &HashSet<String>) -> Option<String> {
    // Require the literal `scheme://` so `https:evil.com` and `https:/evil.com`
    // (which URL parsers "fix up" in different ways) are refused.
    let (scheme, rest) = raw.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return None;
    }
    // Any `@` in the authority means userinfo, which has no business in a
    // redirect target (`https://good.com@evil.com`).
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[..authority_end].contains('@') || authority_end == 0 {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let target_host = url.host_str()?;
    let bare = target_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(target_host);
    let allowed = |h: &str| h == host || route_hosts.contains(h);
    if !(allowed(target_host) || allowed(bare)) {
        return None;
    }
    Some(url.as_str().to_string())
}

#[cfg(test)]
mod tests;
