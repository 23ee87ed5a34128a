//! Route selection: exact Host (port ignored, case-insensitive, one trailing
//! dot ignored) then the longest `path_prefix`.
//!
//! A prefix matches on path-segment boundaries: `/payroll` matches
//! `/payroll` and `/payroll/x`, never `/payrollx`. `/` matches every path.
//! The router only selects; it never builds a URL from the Host it is given
//! (an unknown host is answered by `respond` with a fixed page).
//!
//! The path it judges is the request's canonical target
//! (`pathnorm::CanonicalTarget`), the same form `public` is checked on and
//! the upstream receives.
//!
//! # Loose readings
//!
//! Many upstreams match paths more loosely than byte for byte: Express,
//! ASP.NET and IIS compare case-insensitively, Windows drops a segment's
//! trailing dots and spaces (`/admin./x`, `/admin%20/x`), ASP.NET removes
//! cookieless-session segments (`/(S(x))/admin`), and apps that normalize
//! Unicode read `/ａdmin` (fullwidth) as `/admin`. With `/admin` strict and
//! `/` lax on one host, `/ADMIN/users` would be judged under `/` and served
//! as `/admin/users`. So on a host with several routes the [`loose`]
//! reading must select the same route as the judged path, else the path is
//! [`Lookup::AmbiguousPath`] (400): realmgate refuses rather than guesses
//! how the upstream matches. (`public` needs no such reading: a variant of a
//! public prefix is not public, which fails closed.)

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::RouteSettings;
use crate::pathnorm::CanonicalTarget;

/// Routes indexed by host.
pub struct Router {
    /// Lowercased host -> its routes, longest `path_prefix` first.
    by_host: HashMap<String, Vec<Entry>>,
}

/// A route as the router matches it.
struct Entry {
    route: Arc<RouteSettings>,
    /// Its `path_prefix` in [`loose`] form.
    loose_prefix: String,
}

/// What the router decided for a request.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Arc<RouteSettings>),
    /// No route serves this host at all.
    UnknownHost,
    /// The host is served, but no route's prefix matches the path.
    NoPrefix,
    /// The readings of the path (encoded slashes decoded or not, `;params`
    /// stripped or not, `//` merged or not) select different routes of this
    /// host, or the path is refused (`pathnorm::PathError`): an upstream
    /// reading `/app%2F..` or `//admin` its own way would serve a path under
    /// another route's policy.
    AmbiguousPath,
}

impl Router {
    pub fn new(routes: &[Arc<RouteSettings>]) -> Router {
        let mut by_host: HashMap<String, Vec<Entry>> = HashMap::new();
        for route in routes {
            for host in &route.hosts {
                // Config hosts are already lowercased, IDNA-normalized, without port;
                // IPv6 literals are stored without brackets, as `normalize_host` returns them.
                let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                by_host.entry(host).or_default().push(Entry {
                    route: route.clone(),
                    loose_prefix: loose_folded(&route.path_prefix),
                });
            }
        }
        for list in by_host.values_mut() {
            // Longest prefix first; `sort_by` is stable so equal lengths keep file order
            // (config validation already rejects host+prefix pairs that are
            // equal, or equal in loose form).
            list.sort_by_key(|e| std::cmp::Reverse(e.route.path_prefix.len()));
        }
        Router { by_host }
    }

    /// The route for a Host header value (may include a port) and a request
    /// path (raw: it is brought to its canonical form first).
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<RouteSettings>> {
        match self.lookup(host, path) {
            Lookup::Found(r) => Some(r),
            Lookup::UnknownHost | Lookup::NoPrefix | Lookup::AmbiguousPath => None,
        }
    }

    /// Like [`Router::find`], but says whether the host or the path failed.
    /// A path the canonical form refuses is [`Lookup::AmbiguousPath`].
    pub fn lookup(&self, host: &str, path: &str) -> Lookup<'_> {
        match CanonicalTarget::parse(path) {
            Ok(target) => self.lookup_target(host, &target),
            Err(_) => match self.routes_of(host) {
                Some(_) => Lookup::AmbiguousPath,
                None => Lookup::UnknownHost,
            },
        }
    }

    /// The route for a Host and a request's canonical target (SPEC 6.1): its
    /// judged form selects the route; when the path has other readings
    /// (encoded separators, `;`, `//`) and the host several routes, every
    /// reading must select the same one, else [`Lookup::AmbiguousPath`].
    pub fn lookup_target(&self, host: &str, target: &CanonicalTarget<'_>) -> Lookup<'_> {
        let Some(routes) = self.routes_of(host) else {
            return Lookup::UnknownHost;
        };
        let pick = |path: &str| {
            routes
                .iter()
                .find(|e| prefix_matches(&e.route.path_prefix, path))
                .map(|e| &e.route)
        };
        let pick_loosely = |path: &str| {
            let path = loose(path);
            // Longest loose prefix (folding may change a prefix's length).
            routes
                .iter()
                .filter(|e| loose_prefix_matches(&e.loose_prefix, &path))
                .max_by_key(|e| e.loose_prefix.len())
                .map(|e| &e.route)
        };
        let judged = pick(target.judged());
        let same = |other: Option<&Arc<RouteSettings>>| match (judged, other) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        // With one route per host there is nothing to confuse.
        if routes.len() > 1 {
            // A plain ASCII path costs a case-insensitive comparison per
            // route here, no allocation.
            if !same(pick_loosely(target.judged())) {
                return Lookup::AmbiguousPath;
            }
            // What a PHP front controller or a format suffix makes of the
            // path (`framework_readings`), past the judged route's own prefix.
            let keep = judged.map_or(0, |r| r.path_prefix.trim_end_matches('/').len());
            let framework_disagrees = |path: &str| {
                framework_readings(path, keep)
                    .iter()
                    .flatten()
                    .any(|r| !same(pick(r)) || !same(pick_loosely(r)))
            };
            if framework_disagrees(target.judged()) {
                return Lookup::AmbiguousPath;
            }
            if target.has_other_readings() {
                // No reading models an NFKC-normalizing app's separators:
                // refuse rather than guess.
                if target.has_lookalike() {
                    return Lookup::AmbiguousPath;
                }
                for reading in target.readings() {
                    if !same(pick(&reading))
                        || !same(pick_loosely(&reading))
                        || framework_disagrees(&reading)
                    {
                        return Lookup::AmbiguousPath;
                    }
                }
            }
        }
        judged.map_or(Lookup::NoPrefix, Lookup::Found)
    }

    /// True when another route of `host` than `route` has its prefix
    /// below `target`'s path (as [`loose`] reads both): a WebDAV method that
    /// acts on the whole subtree there (`MOVE`, `DELETE`, `COPY`, ...)
    /// acts on that route's paths too.
    pub fn covers_another_route(
        &self,
        host: &str,
        target: &CanonicalTarget<'_>,
        route: &Arc<RouteSettings>,
    ) -> bool {
        let Some(routes) = self.routes_of(host) else {
            return false;
        };
        // Every reading an upstream may make of the path (`/projects;x`,
        // `//projects/`, `/projects%5C`, `//x/projects` are `/projects` to
        // some server), not only the judged one (review 11).
        let readings = target.readings();
        std::iter::once(target.judged())
            .chain(readings.iter().map(String::as_str))
            .any(|reading| {
                let path = loose_folded(reading);
                routes.iter().any(|e| {
                    !Arc::ptr_eq(&e.route, route) && loose_prefix_matches(&path, &e.loose_prefix)
                })
            })
    }

    /// True when some route serves `host`.
    pub fn serves(&self, host: &str) -> bool {
        self.routes_of(host).is_some()
    }

    /// True when some route of `host` is `wanted`.
    pub fn any_route_of(&self, host: &str, wanted: impl Fn(&RouteSettings) -> bool) -> bool {
        self.routes_of(host)
            .is_some_and(|routes| routes.iter().any(|e| wanted(&e.route)))
    }

    fn routes_of(&self, host: &str) -> Option<&Vec<Entry>> {
        let host = normalize_host(host)?;
        self.by_host.get(&*host)
    }
}

/// What frameworks that route on part of the path read as the path
/// (review 12), for the router's same-route check on hosts with several
/// routes, and for `public` (`pathnorm::CanonicalTarget::is_public`). But
/// for the Next.js reading, only what lies past `keep` bytes (the judged
/// route's or public prefix's own length) is read differently: a route
/// whose prefix is `/api/v1.2` or `/legacy/index.php` is not refused its
/// own paths, nor is `/favicon.ico` public only as `/favicon`.
///
/// - A PHP front controller (Symfony and so Laravel and Drupal,
///   CodeIgniter, Slim) routes on what follows the script:
///   `/index.php/admin/users` is `/admin/users` to it (Symfony takes the
///   script's base URL off `REQUEST_URI`, whatever the server's
///   `PATH_INFO`). The reading drops the first segment that ends in `.php`
///   (any case: PHP on Windows) and has more path after it. A second
///   reading drops what lies between `keep` and it too (review 12, C12):
///   Symfony's base URL is `SCRIPT_NAME` wherever it occurs in the URI, so
///   with the script in a folder the URLs do not show (Laravel's
///   `public/index.php` behind a root rewrite, Symfony's `web/app.php`),
///   `/public/index.php/admin` and `/x/public/index.php/admin` are `/admin`.
/// - Rails' optional `(.:format)` and Spring MVC's suffix pattern match
///   read `/admin.json` and `/admin.html` as `/admin`. The reading cuts the
///   last segment at its first `.` (a segment that starts with one, such
///   as `.well-known`, is left alone).
/// - Next.js (pages router) answers `/_next/data/<build id>/admin/users.json`
///   with the server-side data of the page `/admin/users` (under a
///   `basePath` too: `/app/_next/data/<id>/x.json` is `/app/x`); the build
///   id is in every page it serves. The reading is that page's path, with
///   a leading `/index/` dropped as Next.js drops it (`denormalizePagePath`:
///   `/_next/data/<id>/index/admin.json` is `/admin`'s), `/_next/data/`
///   found in any case (Next.js before 13.4 matched it so), review 12 (C12).
///   Gatsby's `/page-data/<page>/page-data.json` likewise (the page's
///   built data, served as a static file).
///
/// No reading changes what is forwarded: a path one of them reads under
/// another route than the judged path's is refused.
pub(crate) fn framework_readings(path: &str, keep: usize) -> [Option<Cow<'_, str>>; 4] {
    let mut out = [None, None, None, None];
    // Every reading needs a dot: plain paths without one cost one scan.
    if !path.contains('.') {
        return out;
    }
    // Whatever prefix holds it (a route or a public `/_next`): the page is
    // another path. Any case (ASCII only: `at` stays a char boundary).
    const NEXT_DATA: &[u8] = b"/_next/data/";
    if let Some(at) = path
        .as_bytes()
        .windows(NEXT_DATA.len())
        .position(|w| w.eq_ignore_ascii_case(NEXT_DATA))
    {
        let after_id = &path[at + NEXT_DATA.len()..];
        if let Some(slash) = after_id.find('/') {
            let page = &after_id[slash..];
            let page = page.strip_suffix(".json").unwrap_or(page);
            // `/index/x` is the page `/x` (the page `/index/x` is `/index/index/x`).
            let page = if page.starts_with("/index/") {
                &page["/index".len()..]
            } else {
                page
            };
            out[2] = Some(Cow::Owned(format!("{}{page}", &path[..at])));
        }
    }
    // Gatsby: `/page-data/admin/users/page-data.json` is the built data of
    // the page `/admin/users` (`/page-data/index/page-data.json` is `/`'s),
    // under a `pathPrefix` too (review 12, C12).
    const PAGE_DATA: &str = "/page-data/";
    const PAGE_DATA_FILE: &str = "/page-data.json";
    if out[2].is_none() {
        if let Some(at) = path.find(PAGE_DATA) {
            let rest = &path[at + PAGE_DATA.len()..];
            if let Some(page) = rest.strip_suffix(PAGE_DATA_FILE) {
                let page = if page == "index" { "" } else { page };
                out[2] = Some(Cow::Owned(format!("{}/{page}", &path[..at])));
            }
        }
    }
    let mut start = 0;
    for segment in path.split('/') {
        let end = start + segment.len();
        let has_more = path.len() > end + 1;
        let php = segment.len() > 4
            && segment.as_bytes()[segment.len() - 4..].eq_ignore_ascii_case(b".php");
        if php && has_more && start > keep {
            // `start - 1` is the `/` before the segment.
            out[0] = Some(Cow::Owned(format!(
                "{}{}",
                &path[..start - 1],
                &path[end..]
            )));
            // And with what lies between `keep` and the script dropped too
            // (the script in a folder the URLs do not show). `get`: a
            // reading of the path need not share the judged one's prefix.
            if start - 1 > keep {
                if let Some(kept) = path.get(..keep) {
                    out[3] = Some(Cow::Owned(format!("{kept}{}", &path[end..])));
                }
            }
            break;
        }
        start = end + 1;
    }
    // Trailing slashes ignored, as Rails does.
    let trimmed = path.trim_end_matches('/');
    let last = trimmed.rfind('/').map_or(0, |i| i + 1);
    if let Some(dot) = trimmed[last..].find('.') {
        if dot > 0 && last + dot >= keep {
            out[1] = Some(Cow::Borrowed(&trimmed[..last + dot]));
        }
    }
    out
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

/// `path` as an upstream that matches paths loosely reads it (see "Loose
/// readings"): [`crate::fold::fold`] (Unicode compatibility forms, marks
/// and invisible code points, case by its uppercase mapping, as .NET,
/// Java, Python's casefold and collation-based matchers compare),
/// cookieless-session segments (`(S(…))`) dropped, each segment's
/// trailing dots and spaces dropped. A plain ASCII path needs only ASCII
/// case folding, which [`loose_prefix_matches`] does as it compares: it is
/// borrowed as is.
pub(crate) fn loose(path: &str) -> Cow<'_, str> {
    let needs_work = !path.is_ascii()
        || path
            .split('/')
            .any(|s| s.starts_with('(') || s.ends_with('.') || s.ends_with(' '));
    if !needs_work {
        return Cow::Borrowed(path);
    }
    let folded = crate::fold::fold(path);
    let mut out = String::with_capacity(folded.len());
    let mut first = true;
    for segment in folded.split('/') {
        if is_cookieless(segment) {
            continue;
        }
        if !first {
            out.push('/');
        }
        first = false;
        out.push_str(segment.trim_end_matches(['.', ' ']));
    }
    Cow::Owned(out)
}

/// [`loose`] with ASCII letters folded too: the form two prefixes are
/// compared in.
pub(crate) fn loose_folded(path: &str) -> String {
    loose(path).to_ascii_lowercase()
}

/// An ASP.NET cookieless-session segment, such as `(S(abc))` or
/// `(A(x)F(y))`: letters each followed by a parenthesized value, all in
/// parentheses. ASP.NET removes them before routing.
fn is_cookieless(segment: &str) -> bool {
    let Some(inner) = segment.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
        return false;
    };
    let mut rest = inner;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let mut chars = rest.chars();
        let (Some(letter), Some('(')) = (chars.next(), chars.next()) else {
            return false;
        };
        if !letter.is_ascii_alphabetic() {
            return false;
        }
        let Some(end) = rest.find(')') else {
            return false;
        };
        rest = &rest[end + 1..];
    }
    true
}

/// [`prefix_matches`] between a prefix and a path both in [`loose`] form,
/// ignoring ASCII case (a borrowed loose path keeps its case).
fn loose_prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    match path.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            let rest = &path[prefix.len()..];
            rest.is_empty() || rest.starts_with('/')
        }
        _ => false,
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
