//! Phase 1, route: reject ambiguous framing and oversized headers, find the
//! Host the client addressed, bring the path to its canonical form once
//! (`pathnorm`, SPEC 6.1) and pick the route by Host + that path. Everything
//! after judges and forwards the same canonical path.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, FORWARDED, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Uri, Version};

use crate::config::RouteSettings;
use crate::pathnorm::CanonicalTarget;
use crate::respond::GatewayError;
use crate::router::{Lookup, Router};

/// A request the router placed: its route and canonical target.
pub struct Routed<'g, 'u> {
    pub route: &'g Arc<RouteSettings>,
    pub target: CanonicalTarget<'u>,
}

/// Why no route takes a request, and whether its Host is one of ours (only
/// then is it logged: an unknown Host is never echoed, not even in the log).
pub struct Unrouted {
    pub error: GatewayError,
    pub host_served: bool,
}

/// The route for `host` + `path` (the request's path as received).
pub fn route<'g, 'u>(
    router: &'g Router,
    host: &str,
    path: &'u str,
) -> Result<Routed<'g, 'u>, Unrouted> {
    // SPEC 6.1: the router, `/.auth/` dispatch and `public` judge the
    // canonical form, and the request goes on (upstream too) with it as its
    // path. A path no form can settle for every upstream is a 400. Plain
    // paths are borrowed.
    let target = match CanonicalTarget::parse(path) {
        Ok(t) => t,
        Err(e) => {
            return Err(Unrouted {
                host_served: router.serves(host),
                error: if router.serves(host) {
                    GatewayError::BadRequest(e.message())
                } else {
                    GatewayError::UnknownHost
                },
            })
        }
    };
    let refused = |error| {
        Err(Unrouted {
            error,
            host_served: true,
        })
    };
    match router.lookup_target(host, &target) {
        Lookup::Found(route) => Ok(Routed { route, target }),
        // Never echoed, not even in the log.
        Lookup::UnknownHost => Err(Unrouted {
            error: GatewayError::UnknownHost,
            host_served: false,
        }),
        Lookup::AmbiguousPath => refused(GatewayError::BadRequest(
            "The path selects different routes depending on how a server reads it (encoded slashes, ';' parameters, '//', look-alike characters, or letter case, trailing dots and spaces or cookieless segments such as (S(...)) that some apps ignore; a PHP front controller's /index.php/..., a format suffix such as /admin.json, a Next.js /_next/data/... path that frameworks route as another route's path). Use the path exactly as the route's prefix spells it, or give such a file a name or place under its own route.",
        )),
        Lookup::NoPrefix => refused(GatewayError::NotFound),
    }
}

/// `uri` with its path replaced by `path` (the query kept as sent).
pub fn with_path(uri: &Uri, path: &str) -> Result<Uri, GatewayError> {
    let bad = || GatewayError::BadRequest("The request target is not a valid path.");
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse::<PathAndQuery>().map_err(|_| bad())?);
    Uri::from_parts(parts).map_err(|_| bad())
}

/// The Host the client addressed: the URI authority (HTTP/2, absolute-form),
/// else the single Host header. HTTP/1.1 without a Host is a 400.
pub fn client_host<B>(req: &Request<B>) -> Result<HeaderValue, GatewayError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadRequest(
            "The request has more than one Host header.",
        ));
    }
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).map_err(|_| GatewayError::UnknownHost);
    }
    match header {
        Some(h) => Ok(h.clone()),
        None if req.version() == Version::HTTP_11 || req.version() == Version::HTTP_2 => {
            Err(GatewayError::BadRequest("The request has no Host header."))
        }
        // HTTP/1.0 without Host cannot name a route.
        None => Err(GatewayError::UnknownHost),
    }
}

/// A trusted proxy's `X-Forwarded-Host` reaches the app as sent (SPEC 5.7),
/// and so do `Forwarded: host=`, `X-Original-Host` and their kind; apps that
/// take their host from one of them (Rails, Django's `USE_X_FORWARDED_HOST`,
/// ASP.NET Core's forwarded headers, Spring, Symfony) act on that host.
/// Behind a balancer that passes a client's own header through, a request
/// for `Host: a` judged by a's route could then be served as another
/// host's. So when such a header names a host realmgate serves (read as
/// leniently as apps read it: up to the first `:`, without trailing dots),
/// that host must select the same route for this path, else 400 (review 9). A
/// host realmgate does not serve (its public name behind a proxy that
/// rewrites `Host`) stays as before; so does any value from an untrusted
/// peer, which `headers::forwarding` and `headers::spoofable` remove.
pub fn check_forwarded_host(
    router: &Router,
    trusted: bool,
    headers: &HeaderMap,
    route: &Arc<RouteSettings>,
    target: &CanonicalTarget<'_>,
) -> Result<(), GatewayError> {
    if !trusted {
        return Ok(());
    }
    // Checked as found: no list is built (this runs for every request from
    // a trusted proxy, most of which send one X-Forwarded-Host).
    let check = |value: &str| -> Result<(), GatewayError> {
        let host = host_part(value);
        if host.is_empty() || !router.serves(host) {
            return Ok(());
        }
        match router.lookup_target(host, target) {
            Lookup::Found(other) if Arc::ptr_eq(other, route) => Ok(()),
            _ => Err(GatewayError::BadRequest(
                "A forwarded host header (X-Forwarded-Host, Forwarded host=, X-Original-Host) names a host this gateway serves with another route than the Host the request was sent to. The proxy in front should set it to the host it received, or not send it.",
            )),
        }
    };
    for name in HOST_HEADERS {
        for value in headers.get_all(name) {
            // Unreadable values name no host an app could act on.
            let Ok(text) = value.to_str() else { continue };
            text.split(',').map(str::trim).try_for_each(check)?;
        }
    }
    // `Forwarded`: every `host=` anywhere in the value (Spring searches the
    // whole value, `xhost=` included), quoted-string escapes undone
    // (Symfony and Jetty read `"b\.example"` as `b.example`).
    for value in headers.get_all(FORWARDED) {
        let Ok(text) = value.to_str() else { continue };
        let lower = text.to_ascii_lowercase();
        for (at, _) in lower.match_indices("host") {
            let rest = text[at + 4..].trim_start();
            let Some(rest) = rest.strip_prefix('=') else {
                continue;
            };
            let rest = rest.trim_start().trim_start_matches('"');
            let end = rest.find([';', ',', '"', ' ']).unwrap_or(rest.len());
            check(&rest[..end].replace('\\', ""))?;
        }
    }
    Ok(())
}

/// WebDAV's `Destination` (RFC 4918 10.3).
const DESTINATION: HeaderName = HeaderName::from_static("destination");

/// WebDAV's `COPY` and `MOVE` (RFC 4918 10.3) act on a second resource,
/// named by the `Destination` header: the app writes there, although only
/// the request target was judged. Beside a strict `/admin` route and a lax
/// `/`, `MOVE /notes/x` with `Destination: /admin/x` (or
/// `https://app/admin/x`) let a user the `/admin` route denies write into
/// it; from a `public` path, anyone could (review 11). So a destination
/// must be judged as a request target is: its canonical form (a path that
/// is not its own canonical form is refused, it is forwarded as sent),
/// selecting the same route as the request on the request's host (sabre/dav,
/// under Nextcloud and ownCloud, takes only the path of an absolute URL)
/// and on the URL's own host when realmgate serves it; from a public path
/// only a public destination. A value that is neither an absolute path nor
/// an http(s) URL is refused: servers find a path in those too.
pub fn check_destination(
    router: &Router,
    host: &str,
    headers: &HeaderMap,
    route: &Arc<RouteSettings>,
    public: bool,
) -> Result<(), GatewayError> {
    let refused = || {
        Err(GatewayError::BadRequest(
            "The Destination header names a resource that is judged differently from the request target (another route, a path that is not public, or a path that is not its own canonical form). COPY and MOVE are only allowed within what the request target's route decides.",
        ))
    };
    let mut values = headers.get_all(DESTINATION).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return refused();
    }
    let Ok(text) = value.to_str() else {
        return refused();
    };
    let text = text.trim();
    let (named_host, rest) = match text.split_once("://") {
        Some((scheme, after))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        _ if text.starts_with('/') => (None, text),
        // RFC 4918 10.3: an absolute URI or an absolute path. Anything else
        // is not left to the app: Go's x/net/webdav finds `/admin/x` in
        // `x:/admin/x`, `x://host/admin/x` and `admin/x`, sabre/dav in any
        // `scheme://` (review 11).
        _ if text.is_empty() => return Ok(()),
        _ => return refused(),
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    let target = match CanonicalTarget::parse(path) {
        Ok(t) if !t.rewritten() => t,
        _ => return refused(),
    };
    if public && !target.is_public(&route.public) {
        return refused();
    }
    let same = |host: &str| matches!(router.lookup_target(host, &target), Lookup::Found(r) if Arc::ptr_eq(r, route));
    // Overwriting a collection replaces its whole subtree.
    if !same(host) || router.covers_another_route(host, &target, route) {
        return refused();
    }
    if let Some(named) = named_host {
        // Userinfo or another oddity: not a host any app reads as ours.
        let named = named.rsplit('@').next().unwrap_or(named);
        if router.serves(named) && !same(named) {
            return refused();
        }
    }
    Ok(())
}

/// Next.js's image optimizer (`/_next/image?url=/admin/chart.png&w=640&q=75`)
/// fetches a relative `url` from the app itself, past realmgate
/// (`fetchInternalImage` calls its own request handler), and answers with
/// the image (review 12, C12). Below a public `/_next` that let anyone read
/// an image of a stricter route's paths (a file in `public/admin/`, an API
/// route's chart); below a lax route, anyone that route admits. So such a
/// request is judged as its `url` too: a `url` another route serves is a
/// 400, and the request is public only when that path is public as well.
/// `Ok`: whether the request is public. Absolute `url`s are fetched from
/// outside (`remotePatterns`) and change nothing.
pub fn check_next_image(
    router: &Router,
    host: &str,
    query: Option<&str>,
    target: &CanonicalTarget<'_>,
    route: &Arc<RouteSettings>,
    public: bool,
) -> Result<bool, GatewayError> {
    const IMAGE: &[u8] = b"/_next/image";
    // Most requests end here: no query.
    let Some(query) = query else {
        return Ok(public);
    };
    let path = target.judged().trim_end_matches('/').as_bytes();
    if path.len() < IMAGE.len() || !path[path.len() - IMAGE.len()..].eq_ignore_ascii_case(IMAGE) {
        return Ok(public);
    }
    // Next.js refuses a repeated `url` (an array) with a 400 of its own.
    let mut urls = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "url")
        .map(|(_, v)| v);
    let (Some(src), None) = (urls.next(), urls.next()) else {
        return Ok(public);
    };
    if !src.starts_with('/') {
        return Ok(public);
    }
    let refused = || {
        GatewayError::BadRequest(
            "The image optimizer's url names a path of another route (Next.js fetches it from the app itself). Give the image a path under this route, or an absolute URL.",
        )
    };
    let src_path = src.split(['?', '#']).next().unwrap_or("/");
    let src_target = CanonicalTarget::parse(src_path).map_err(|_| refused())?;
    match router.lookup_target(host, &src_target) {
        Lookup::Found(r) if Arc::ptr_eq(r, route) => {
            Ok(public && src_target.is_public(&route.public))
        }
        _ => Err(refused()),
    }
}

/// WebDAV methods that act on a collection's whole subtree: `MOVE` and
/// `DELETE` always (RFC 4918 9.9, 9.6.1), `COPY` and `LOCK` unless
/// `Depth: 0`, `PROPFIND` unless `Depth: 0` or `1`; and those whose body
/// names what they reach, whatever the `Depth`: `REPORT` (RFC 3253; CalDAV's
/// `sync-collection` at `Depth: 0` reports every member below, `multiget`
/// names members by href), `SEARCH` (RFC 5323: the scope is in the body),
/// `UNBIND` (RFC 5842: the member to remove is in the body). Under a lax route whose path holds a stricter route's
/// prefix (`/projects` lax, `/projects/secret` strict), `MOVE /projects`
/// moved the secret folder out from under its route, `COPY` copied it
/// where the lax route's users read it, `PROPFIND` listed it (review 11).
/// Such a request is refused when another route's prefix lies below the
/// judged path.
pub fn check_subtree(
    router: &Router,
    host: &str,
    method: &http::Method,
    headers: &HeaderMap,
    route: &Arc<RouteSettings>,
    target: &CanonicalTarget<'_>,
) -> Result<(), GatewayError> {
    let depth = || {
        let mut values = headers.get_all("depth").iter();
        match (values.next(), values.next()) {
            (Some(v), None) => v.as_bytes().trim_ascii(),
            _ => b"infinity",
        }
    };
    // Any case: hyper keeps an extension method's case, and some servers
    // read `delete` as `DELETE`. Compared in place: this runs on every
    // request.
    let is = |name: &str| method.as_str().eq_ignore_ascii_case(name);
    let whole_subtree =
        if is("MOVE") || is("DELETE") || is("REPORT") || is("SEARCH") || is("UNBIND") {
            true
        } else if is("COPY") || is("LOCK") {
            depth() != b"0"
        } else if is("PROPFIND") {
            // Depth 1 (what WebDAV clients send when they list a folder) only
            // shows the members' own properties, not what they hold.
            !matches!(depth(), b"0" | b"1")
        } else {
            false
        };
    if whole_subtree && router.covers_another_route(host, target, route) {
        return Err(GatewayError::BadRequest(
            "The request acts on a collection whose subtree holds paths of another route (WebDAV MOVE, DELETE, REPORT, SEARCH or UNBIND, COPY or LOCK without Depth: 0, PROPFIND with Depth: infinity). Act on the other route's paths directly.",
        ));
    }
    Ok(())
}

/// Headers that carry the host a client asked for, kept from trusted peers.
const HOST_HEADERS: [&str; 5] = [
    "x-forwarded-host",
    "x-original-host",
    "x-host",
    "disguised-host",
    "x-http-host-override",
];

/// The host of a host header value as lenient apps read it: up to the
/// first `:` (Express and gorilla/mux cut there, whatever follows), `/` or
/// space, without trailing dots (`[v6]` keeps its brackets for
/// `router::normalize_host`).
fn host_part(value: &str) -> &str {
    let host = match value.strip_prefix('[') {
        Some(rest) => match rest.find(']') {
            Some(end) => &value[..end + 2],
            None => value,
        },
        None => value.split([':', '/', ' ']).next().unwrap_or(value),
    };
    host.trim_end_matches('.')
}

/// Reject requests whose body framing is ambiguous or whose headers are too large.
pub fn check_framing(headers: &HeaderMap, max_header_bytes: usize) -> Result<(), GatewayError> {
    let has_te = headers.contains_key(TRANSFER_ENCODING);
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if has_te {
            return Err(GatewayError::BadRequest(
                "The request has both Content-Length and Transfer-Encoding.",
            ));
        }
        let first = parse_content_length(first.as_bytes())?;
        for other in lengths {
            if parse_content_length(other.as_bytes())? != first {
                return Err(GatewayError::BadRequest(
                    "The request has conflicting Content-Length headers.",
                ));
            }
        }
    }
    // Name + value + ": " + CRLF, as on the wire.
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > max_header_bytes {
        return Err(GatewayError::HeaderTooLarge);
    }
    Ok(())
}

/// A Content-Length value: digits only (a comma list of equal values is
/// rejected too, it only ever appears in smuggling attempts).
fn parse_content_length(v: &[u8]) -> Result<u64, GatewayError> {
    let bad = || GatewayError::BadRequest("The request has an invalid Content-Length.");
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}
