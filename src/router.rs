//! Route selection: exact Host (port ignored, case-insensitive, one trailing
//! dot ignored) then the longest `path_prefix`.
//!
//! A prefix matches on path-segment boundaries: `/payroll` matches
//! `/payroll` and `/payroll/x`, never `/payrollx`. `/` matches every path.
//! The router only selects; it never builds a URL from the Host it is given
//! (an unknown host is answered by `respond` with a fixed page).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::RouteSettings;

/// Routes indexed by host.
pub struct Router {
    /// Lowercased host -> its routes, longest `path_prefix` first.
    by_host: HashMap<String, Vec<Arc<RouteSettings>>>,
}

/// What the router decided for a request.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Arc<RouteSettings>),
    /// No route serves this host at all.
    UnknownHost,
    /// The host is served, but no route's prefix matches the path.
    NoPrefix,
    /// The path as sent and its normalized form (dot segments, encoded
    /// slashes, `;` parameters) select different routes of this host, or it
    /// cannot be normalized: an upstream resolving `/app/../admin` would
    /// serve `/admin` under the laxer route's policy.
    AmbiguousPath,
}

impl Router {
    pub fn new(routes: &[Arc<RouteSettings>]) -> Router {
        let mut by_host: HashMap<String, Vec<Arc<RouteSettings>>> = HashMap::new();
        for route in routes {
            for host in &route.hosts {
                // Config hosts are already lowercased, IDNA-normalized, without port;
                // IPv6 literals are stored without brackets, as `normalize_host` returns them.
                let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                by_host.entry(host).or_default().push(route.clone());
            }
        }
        for list in by_host.values_mut() {
            // Longest prefix first; `sort_by` is stable so equal lengths keep file order
            // (config validation already rejects duplicated host+prefix pairs).
            list.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        }
        Router { by_host }
    }

    /// The route for a Host header value (may include a port) and a request path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<RouteSettings>> {
        match self.lookup(host, path) {
            Lookup::Found(r) => Some(r),
            Lookup::UnknownHost | Lookup::NoPrefix | Lookup::AmbiguousPath => None,
        }
    }

    /// Like [`Router::find`], but says whether the host or the path failed.
    pub fn lookup(&self, host: &str, path: &str) -> Lookup<'_> {
        let Some(host) = normalize_host(host) else {
            return Lookup::UnknownHost;
        };
        let Some(routes) = self.by_host.get(&*host) else {
            return Lookup::UnknownHost;
        };
        let pick = |path: &str| routes.iter().find(|r| prefix_matches(&r.path_prefix, path));
        let by_raw = pick(path);
        // With one route per host there is nothing to confuse (and no
        // allocation on the hot path).
        if routes.len() > 1 {
            let same = match crate::pathnorm::normalized(path) {
                Some(normalized) => match (by_raw, pick(&normalized)) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                },
                None => false,
            };
            if !same {
                return Lookup::AmbiguousPath;
            }
        }
        by_raw.map_or(Lookup::NoPrefix, Lookup::Found)
    }
}

/// True when `prefix` (as validated: `/` or without a trailing `/`) covers `path`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The host part of a Host header or URI authority: lowercased, without port
/// and without one trailing dot. IPv6 literals lose their brackets (`[::1]` -> `::1`).
/// `None` for values that cannot be a host (empty, spaces, user info...).
pub fn normalize_host(value: &str) -> Option<Cow<'_, str>> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        // [v6]:port or [v6]
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || after.starts_with(':') && port_ok(&after[1..])) {
            return None;
        }
        &value[..end + 2]
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if port_ok(port) => h,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // Canonical text, as config validation stores IP hosts.
        return v6
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| Cow::Owned(ip.to_string()));
    }
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return None;
    }
    // Usually lowercase already: no copy then.
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// A port number as Host may carry it: digits, at most 65535.
fn port_ok(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65535)
}

#[cfg(test)]
mod tests;
