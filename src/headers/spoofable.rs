//! Headers that apps and frameworks take a request target, method, host,
//! scheme or client address from (SPEC 6.1): never from an untrusted client.
//!
//! Three kinds, matched case-insensitively with `_` and every other
//! separator read as `-` (CGI-style stacks such as PHP, WSGI, Rack and nginx
//! with `underscores_in_headers` read `X_Original_URL` as `X-Original-URL`;
//! lighttpd's CGI/FastCGI/SCGI environment reads `X.Original.URL`,
//! `X+Original~URL`, ... the same way), with the matching of the
//! identity-header strip (SPEC 5.8):
//!
//! - [`Kind::Own`]: what realmgate sets itself on every forwarded request
//!   (`X-Forwarded-For`, `-Proto`, `-Host`, `X-Request-Id`, written by
//!   `forwarding::apply` from what it judged). Any other spelling of them is
//!   removed from every peer: a CGI stack could prefer it to realmgate's.
//! - [`Kind::Override`]: routing and method overrides (`X-Original-URL`,
//!   `X-Rewrite-URL`, `X-Forwarded-Uri`, `X-HTTP-Method-Override`, ...),
//!   and another authentication layer's identity statements (AWS ALB's
//!   `X-Amzn-Oidc-*`, Google IAP's, Cloudflare Access's), removed from **every** peer, trusted
//!   proxies included. realmgate judged
//!   the request line it received (route, `public`, policy); an app that
//!   routes on one of these would serve a path or method other than the
//!   judged one, whoever wrote it. A proxy in front that wants the app to
//!   see another path or method sends that path or method.
//! - [`Kind::Relayed`]: client-address, scheme, host and client-certificate
//!   headers that a load balancer or CDN writes (`Forwarded`, `X-Real-IP`,
//!   `True-Client-IP`, `X-Forwarded-Ssl`, `Front-End-Https`, `X-Host`,
//!   `X-Original-Host`, the `X-Forwarded-*`, `X-Original-*`, `CF-*`,
//!   `Fastly-*`, `X-Azure-*`, `X-Envoy-*`, ... families): removed from an
//!   untrusted client; from a trusted proxy kept in the `-` spelling (it is
//!   that proxy's statement, as `X-Forwarded-Host` is), other spellings
//!   removed.
//!
//! The fast path is one pass over the names with no allocation when none of
//! them is listed (most requests): a name is compared only with the entries
//! that start with its first letter (a few, except for `x-` names).

use http::header::{HeaderMap, HeaderName};

use super::identity::{normalized_eq, normalized_starts_with};

/// What a listed header is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Set by realmgate itself from what it judged.
    Own,
    /// Routing or method override: removed from every peer.
    Override,
    /// Written by a load balancer: kept only from a trusted one.
    Relayed,
}

/// How an entry matches a (normalized) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Exact,
    Prefix,
}

use Kind::{Override, Own, Relayed};
use Match::{Exact, Prefix};

type Entry = (&'static str, Kind, Match);

/// The listed names, lowercase with `-`, grouped by first letter so that a
/// name is compared only with its group ([`group`]). Exact entries win over
/// prefixes (`x-forwarded-for` is [`Own`], `x-forwarded-uri` an
/// [`Override`], any other `x-forwarded-*` [`Relayed`]).
///
/// Overrides: IIS URL Rewrite / ARR, Symfony and Zend (`X-Original-URL`,
/// `X-Rewrite-URL`), nginx `auth_request` conventions (`X-Original-URI`),
/// Traefik/Authelia forward-auth (`X-Forwarded-Uri`, `-Method`), Envoy
/// (`X-Envoy-Original-Path`), Azure App Service (`X-WAWS-Unencoded-URL`),
/// Next.js internals (`X-Middleware-Subrequest`, `X-Invoke-*`), and the
/// method overrides of Rails, Express `method-override`, ASP.NET, Google
/// APIs and others.
///
/// Relayed prefixes: only load balancers, CDNs and meshes write these
/// families (`X-Forwarded-Ssl`, `-Port`, `-Server`, `-Prefix`,
/// `-Client-Cert`, `X-Original-Host`, `-For`, `CF-Connecting-IP`,
/// `CF-Visitor`, `CloudFront-Viewer-Address`, `Fastly-Client-IP`,
/// `X-Azure-ClientIP`, `X-Envoy-External-Address`, `X-Amzn-Oidc-Identity`,
/// IAP's `X-Goog-Authenticated-User-Email`, `WL-Proxy-Client-IP`,
/// `X-SSL-Client-*`, ...).
const X: &[Entry] = &[
    // Set by realmgate (`forwarding::apply`).
    ("x-forwarded-for", Own, Exact),
    ("x-forwarded-proto", Own, Exact),
    ("x-forwarded-host", Own, Exact),
    ("x-request-id", Own, Exact),
    // Routing overrides.
    ("x-original-url", Override, Exact),
    ("x-original-uri", Override, Exact),
    ("x-original-path", Override, Exact),
    ("x-original-request-uri", Override, Exact),
    ("x-rewrite-url", Override, Exact),
    ("x-rewrite-uri", Override, Exact),
    ("x-forwarded-uri", Override, Exact),
    ("x-forwarded-url", Override, Exact),
    ("x-forwarded-path", Override, Exact),
    ("x-envoy-original-path", Override, Exact),
    ("x-envoy-original-url", Override, Exact),
    ("x-request-uri", Override, Exact),
    // Azure App Service's raw URL.
    ("x-waws-unencoded-url", Override, Exact),
    // Next.js internal routing: `x-middleware-subrequest` skips its
    // middleware (CVE-2025-29927); the others select a page or its output.
    ("x-middleware-subrequest", Override, Exact),
    ("x-matched-path", Override, Exact),
    ("x-now-route-matches", Override, Exact),
    ("x-invoke-", Override, Prefix),
    // Method overrides.
    ("x-http-method-override", Override, Exact),
    ("x-http-method", Override, Exact),
    ("x-method-override", Override, Exact),
    ("x-original-method", Override, Exact),
    ("x-forwarded-method", Override, Exact),
    // Client address.
    ("x-forwarded", Relayed, Exact),
    ("x-real-ip", Relayed, Exact),
    ("x-client-ip", Relayed, Exact),
    ("x-cluster-client-ip", Relayed, Exact),
    ("x-originating-ip", Relayed, Exact),
    ("x-remote-ip", Relayed, Exact),
    ("x-remote-addr", Relayed, Exact),
    ("x-proxyuser-ip", Relayed, Exact),
    // Scheme.
    ("x-url-scheme", Relayed, Exact),
    ("x-scheme", Relayed, Exact),
    ("x-https", Relayed, Exact),
    ("x-arr-ssl", Relayed, Exact),
    // Jetty's ForwardedRequestCustomizer: "on" makes the request https.
    ("x-proxied-https", Relayed, Exact),
    // Host.
    ("x-host", Relayed, Exact),
    ("x-http-host-override", Relayed, Exact),
    // Path prefix (the common Flask/WSGI `ReverseProxied` recipe).
    ("x-script-name", Relayed, Exact),
    // Rack::Sendfile maps paths to nginx-internal locations with these
    // (X-Accel-Redirect): only the nginx that serves them may send them.
    ("x-sendfile-type", Relayed, Exact),
    ("x-accel-mapping", Relayed, Exact),
    // Client address (Sucuri's firewall).
    ("x-sucuri-clientip", Relayed, Exact),
    // Client certificate (a TLS-terminating proxy's verdict).
    ("x-arr-clientcert", Relayed, Exact),
    ("x-client-cert", Relayed, Exact),
    ("x-client-verify", Relayed, Exact),
    // Families.
    ("x-forwarded-", Relayed, Prefix),
    ("x-original-", Relayed, Prefix),
    ("x-akamai-", Relayed, Prefix),
    ("x-azure-", Relayed, Prefix),
    ("x-envoy-", Relayed, Prefix),
    // Another authentication layer's statements of who the user is (AWS
    // ALB's OIDC, Google IAP): realmgate is the one that says so here, and
    // a balancer that does not authenticate passes a client's copy through
    // (review 9). Removed from every peer, before the `x-amzn-` family.
    ("x-amzn-oidc-", Override, Prefix),
    ("x-amzn-", Relayed, Prefix),
    ("x-goog-authenticated-user-", Override, Prefix),
    ("x-goog-iap-", Override, Prefix),
    ("x-appengine-", Relayed, Prefix),
    ("x-ssl-", Relayed, Prefix),
];

const F: &[Entry] = &[
    ("forwarded", Relayed, Exact),
    ("forwarded-for", Relayed, Exact),
    ("front-end-https", Relayed, Exact),
    ("fastly-", Relayed, Prefix),
    // Fly.io's edge (`Fly-Client-IP`, `Fly-Forwarded-Proto`, ...).
    ("fly-", Relayed, Prefix),
];

const T: &[Entry] = &[("true-client-ip", Relayed, Exact)];

const C: &[Entry] = &[
    ("client-ip", Relayed, Exact),
    // RFC 9440: the client certificate a TLS-terminating proxy verified.
    ("client-cert", Relayed, Exact),
    ("client-cert-chain", Relayed, Exact),
    // Cloudflare Access's statement of who the user is (as ALB's above).
    ("cf-access-", Override, Prefix),
    ("cf-", Relayed, Prefix),
    ("cloudfront-", Relayed, Prefix),
];

/// Names PHP-era client-IP snippets read literally.
const H: &[Entry] = &[
    ("http-client-ip", Relayed, Exact),
    ("http-x-forwarded-for", Relayed, Exact),
];

/// `Proxy-Client-IP` (WebLogic, OHS); Jetty's `Proxy-auth-cert` and
/// `Proxy-ssl-id` (either makes Jetty treat the request as https).
const P: &[Entry] = &[
    // gunicorn's default `forwarder_headers` (review 12), with `SCRIPT_NAME`.
    ("path-info", Relayed, Exact),
    // httpoxy (CVE-2016-5385 and kin): CGI and FastCGI stacks hand it to
    // the app as `HTTP_PROXY`, which HTTP client libraries take for their
    // outbound proxy. No client or proxy has a use for it (review 12).
    ("proxy", Override, Exact),
    ("proxy-client-ip", Relayed, Exact),
    ("proxy-auth-cert", Relayed, Exact),
    ("proxy-ssl-id", Relayed, Exact),
];

/// WebLogic's plug-in headers (`WL-Proxy-Client-IP`, `WL-Proxy-SSL`).
const W: &[Entry] = &[("wl-proxy-", Relayed, Prefix)];

const A: &[Entry] = &[("akamai-", Relayed, Prefix)];

/// Apache's `SSL_CLIENT_*` forwarded as headers; gunicorn's `SCRIPT_NAME`
/// (review 12): gunicorn believes a `SCRIPT_NAME` header from any peer in
/// its `forwarded_allow_ips` (by default 127.0.0.1, where realmgate runs
/// beside the app) and cuts it off the path it routes on, so
/// `GET /static/admin/users` with `SCRIPT_NAME: /static` was judged public
/// and served as `/admin/users`. gunicorn reads only the `_` spelling,
/// which is never relayed.
const S: &[Entry] = &[
    ("script-name", Relayed, Exact),
    ("ssl-client-", Relayed, Prefix),
];

/// Azure App Service's original host (read by Azure Functions).
const D: &[Entry] = &[("disguised-host", Relayed, Exact)];

/// Imperva Incapsula's client address.
const I: &[Entry] = &[("incap-client-ip", Relayed, Exact)];

/// Every group, for tests.
#[cfg(test)]
const GROUPS: [&[Entry]; 11] = [X, F, T, C, H, P, W, A, S, D, I];

/// The entries a name starting with `first` can match.
fn group(first: u8) -> &'static [Entry] {
    match first.to_ascii_lowercase() {
        b'x' => X,
        b'f' => F,
        b't' => T,
        b'c' => C,
        b'h' => H,
        b'p' => P,
        b'w' => W,
        b'a' => A,
        b's' => S,
        b'd' => D,
        b'i' => I,
        _ => &[],
    }
}

/// Another authentication layer's identity statement (AWS ALB's OIDC,
/// Google IAP, Cloudflare Access): removed from every peer, but a name an
/// operator may have realmgate write (`headers_extra`) for an app moved
/// from behind that layer.
pub fn is_identity_statement(name: &str) -> bool {
    [
        "x-amzn-oidc-",
        "x-goog-authenticated-user-",
        "x-goog-iap-",
        "cf-access-",
    ]
    .iter()
    .any(|p| normalized_starts_with(name, p))
}

/// The kind of a header name, None for a name not listed.
pub fn classify(name: &str) -> Option<Kind> {
    let group = group(*name.as_bytes().first()?);
    let exact = group
        .iter()
        .find(|(e, _, m)| *m == Exact && normalized_eq(name, e));
    exact
        .or_else(|| {
            group
                .iter()
                .find(|(p, _, m)| *m == Prefix && normalized_starts_with(name, p))
        })
        .map(|(_, kind, _)| *kind)
}

/// True when `name` is not to reach the app from a peer that is `trusted`
/// (or not). The `-` spellings of [`Kind::Own`] names are never removed
/// here: `forwarding::apply` writes them.
fn doomed(name: &HeaderName, trusted: bool) -> bool {
    let name = name.as_str();
    match classify(name) {
        None => false,
        Some(Kind::Override) => true,
        Some(Kind::Own) => !dash_spelled(name),
        Some(Kind::Relayed) => !trusted || !dash_spelled(name),
    }
}

/// A listed name in its own spelling: a HeaderName is lowercase, so any
/// other spelling has a separator other than `-` (`_`, `.`, `+`, ...).
fn dash_spelled(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Removes every listed header the app must not get from this peer.
pub fn strip(headers: &mut HeaderMap, trusted: bool) {
    // One pass over the names; usually none is doomed and nothing is allocated.
    if !headers.keys().any(|k| doomed(k, trusted)) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| doomed(k, trusted))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests;
