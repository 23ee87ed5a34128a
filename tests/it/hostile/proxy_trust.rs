//! Who wrote the headers, and which headers reach the app (issue 17, holes 2
//! and 7; SPEC 6.1).
//!
//! - A PROXY header is believed only from a TCP peer in `trusted_proxies`;
//!   anyone else is closed and counted, so a forged header can no longer make
//!   realmgate believe a client's `X-Forwarded-*`, `Forwarded`, `X-Real-IP`,
//!   `X-Request-Id`, nor turn the callback URL and the state cookie https.
//! - Behind a believed PROXY header, the HTTP headers are judged on the client
//!   it declares.
//! - Routing and method overrides never reach the app; client-address,
//!   scheme and host headers only from a trusted proxy, in any spelling.

use super::{param, World, ALICE, HOST, HTML};
use crate::util::{raw_exchange, raw_status, Echoed};

/// Routing and method overrides, and other auth layers' identity
/// statements: never reach the app.
const OVERRIDES: &[&str] = &[
    "X-Original-URL",
    "X-Original-URI",
    "X-Original-Path",
    "X-Original-Request-URI",
    "X-Rewrite-URL",
    "X-Rewrite-URI",
    "X-Forwarded-Uri",
    "X-Forwarded-Url",
    "X-Forwarded-Path",
    "X-Envoy-Original-Path",
    "X-Envoy-Original-Url",
    "X-Request-URI",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Original-Method",
    "X-Forwarded-Method",
    "X-WAWS-Unencoded-URL",
    "X-Middleware-Subrequest",
    "X-Invoke-Path",
    "X-Matched-Path",
    // httpoxy: CGI's HTTP_PROXY, an outbound proxy to client libraries (review 12).
    "Proxy",
    // Another authentication layer's identity statements (review 9).
    "X-Amzn-Oidc-Identity",
    "X-Goog-Authenticated-User-Email",
];

/// Client-address, scheme, host and certificate headers: only from a trusted proxy.
const RELAYED: &[&str] = &[
    "Forwarded",
    "Forwarded-For",
    "X-Forwarded",
    "X-Real-IP",
    "True-Client-IP",
    "X-Client-IP",
    "Client-IP",
    "X-Cluster-Client-IP",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
    "X-ProxyUser-Ip",
    "Proxy-Client-IP",
    "WL-Proxy-Client-IP",
    "HTTP-Client-IP",
    "Front-End-Https",
    "X-Url-Scheme",
    "X-Scheme",
    "X-Https",
    "X-ARR-SSL",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-Protocol",
    "X-Host",
    "X-HTTP-Host-Override",
    "X-Original-Host",
    "X-Forwarded-Server",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-ARR-ClientCert",
    "X-Client-Cert",
    "X-SSL-Client-Verify",
    "X-Forwarded-Client-Cert",
    "CF-Connecting-IP",
    "CF-Visitor",
    "CloudFront-Viewer-Address",
    "Fastly-Client-IP",
    "X-Azure-ClientIP",
    "X-Envoy-External-Address",
    "X-Proxied-Https",
    "Proxy-Auth-Cert",
    "Proxy-Ssl-Id",
    "X-Sendfile-Type",
    "X-Accel-Mapping",
    "X-Script-Name",
    // gunicorn cuts a `SCRIPT_NAME` header off the path it routes on (review 12).
    "Script-Name",
    "Path-Info",
    "Disguised-Host",
    "Client-Cert",
    "Client-Cert-Chain",
    "Fly-Client-IP",
    "Incap-Client-IP",
    "X-Sucuri-ClientIP",
];

/// `name` as sent (`X-Original-URL`), lowercase, UPPERCASE, `_` for `-`
/// (`x_original_url`, `X_ORIGINAL_URL`), and one `_` among `-`.
fn spellings(name: &str) -> [String; 6] {
    let lower = name.to_ascii_lowercase();
    let one = match lower.rfind('-') {
        Some(i) => format!("{}_{}", &lower[..i], &lower[i + 1..]),
        None => lower.clone(),
    };
    [
        name.to_string(),
        lower.clone(),
        name.to_ascii_uppercase(),
        lower.replace('-', "_"),
        name.to_ascii_uppercase().replace('-', "_"),
        one,
    ]
}

/// The value a test header carries: marked, and plausible for its family.
fn value(name: &str, i: usize) -> String {
    let n = name.to_ascii_lowercase();
    if n.contains("url") || n.contains("uri") || n.contains("path") || n.contains("prefix") {
        format!("/spoofed-{i}/admin")
    } else if n.contains("method") {
        format!("DELETE-spoofed-{i}")
    } else {
        format!("spoofed-{i}")
    }
}

/// A raw HTTP/1.1 request with every name of `names` in spelling `variant`.
fn request(
    prefix: &[u8],
    path: &str,
    cookie: Option<&str>,
    names: &[&str],
    variant: usize,
) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    for (i, name) in names.iter().enumerate() {
        req.push_str(&format!(
            "{}: {}\r\n",
            spellings(name)[variant],
            value(name, i)
        ));
    }
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    [prefix, req.as_bytes()].concat()
}

fn echoed(raw: &str) -> Echoed {
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Echoed(
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not echo JSON ({e}): {raw:.2000}")),
    )
}

/// Every (name, value) the app received.
fn received(e: &Echoed) -> Vec<(String, String)> {
    e.0["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn v1(client: &str) -> Vec<u8> {
    let family = if client.contains(':') { "TCP6" } else { "TCP4" };
    let server = if client.contains(':') {
        "::1"
    } else {
        "10.0.0.1"
    };
    format!("PROXY {family} {client} {server} 51000 8080\r\n").into_bytes()
}

fn v2(client: &str) -> Vec<u8> {
    let src: std::net::SocketAddr = if client.contains(':') {
        format!("[{client}]:51000")
    } else {
        format!("{client}:51000")
    }
    .parse()
    .unwrap();
    let dst: std::net::SocketAddr = if client.contains(':') {
        "[::1]:8080"
    } else {
        "10.0.0.1:8080"
    }
    .parse()
    .unwrap();
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (src, dst),
    )
    .build()
    .unwrap()
}

/// The forwarding headers of issue 17's report.
const CLAIMS: &str = "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;proto=https;host=evil.example\r\nX-Real-IP: 6.6.6.6\r\nX-Request-Id: attacker-chosen\r\nX-Original-URL: /admin\r\n";

fn claiming(prefix: &[u8], path: &str) -> Vec<u8> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: {HTML}\r\n{CLAIMS}Connection: close\r\n\r\n"
    );
    [prefix, req.as_bytes()].concat()
}

/// `realmgate_proxy_protocol_rejected_total{reason}` from the admin listener.
async fn rejected(w: &World, reason: &str) -> u64 {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", w.gateway.admin_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("realmgate_proxy_protocol_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
}

/// Issue 17's report: from 127.0.0.1, with `trusted_proxies = ["10.0.0.0/8"]`,
/// a PROXY header declaring 10.1.2.3 made realmgate believe the client's
/// headers, and a spoofed X-Forwarded-Proto made the callback URL https and
/// the state cookie Secure. Now the connection is closed before anything is
/// served, for v1 and v2, IPv4, IPv6 and IPv4-mapped declared addresses, and
/// plain HTTP from that peer is closed too (the listener needs a PROXY header).
#[tokio::test]
async fn a_proxy_header_from_an_untrusted_peer_is_refused_and_counted() {
    let w = World::start_with(
        "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]",
        "",
    )
    .await;
    let mut prefixes = Vec::new();
    for client in ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8::7", "203.0.113.7"] {
        prefixes.push(v1(client));
        prefixes.push(v2(client));
    }
    prefixes.push(b"PROXY UNKNOWN\r\n".to_vec());
    prefixes.push(Vec::new());
    let mut sent = 0;
    for prefix in &prefixes {
        for path in ["/static/x", "/secret", "/.auth/login/contoso"] {
            let raw = raw_exchange(w.gateway.addr, &claiming(prefix, path)).await;
            assert_eq!(raw, "", "{path} after {prefix:?} was answered");
            sent += 1;
        }
    }
    w.upstream.assert_received_nothing().await;
    assert_eq!(rejected(&w, "untrusted_peer").await, sent);
    assert_eq!(rejected(&w, "invalid_header").await, 0);
}

/// A trusted load balancer (127.0.0.1) declares the client: the HTTP headers
/// are that client's, believed only when it is itself a trusted proxy.
#[tokio::test]
async fn behind_a_trusted_balancer_headers_are_judged_on_the_declared_client() {
    let w = World::start_with(
        "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]",
        "",
    )
    .await;
    // An end user (untrusted): nothing of its claims is believed.
    for prefix in [
        v1("203.0.113.7"),
        v2("203.0.113.7"),
        v2("::ffff:203.0.113.7"),
        v1("2001:db8::7"),
    ] {
        let raw = raw_exchange(w.gateway.addr, &claiming(&prefix, "/static/x")).await;
        assert_eq!(raw_status(&raw), Some(200), "{raw:.500}");
        let e = echoed(&raw);
        let xff = e.header("x-forwarded-for").unwrap();
        assert!(xff == "203.0.113.7" || xff == "2001:db8::7", "{xff}");
        assert_eq!(e.header("x-forwarded-host").as_deref(), Some(HOST));
        assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_ne!(e.header("x-request-id").as_deref(), Some("attacker-chosen"));
        for gone in ["forwarded", "x-real-ip", "x-original-url"] {
            assert!(e.header_all(gone).is_empty(), "{gone}: {:?}", e.0);
        }
        assert_eq!(e.uri(), "/static/x");
    }
    // An L7 proxy inside trusted_proxies behind the L4 one (IPv4 or mapped):
    // its forwarding headers are believed; a routing override still is not.
    for prefix in [v1("10.1.2.3"), v2("10.1.2.3"), v2("::ffff:10.1.2.3")] {
        let raw = raw_exchange(w.gateway.addr, &claiming(&prefix, "/static/x")).await;
        assert_eq!(raw_status(&raw), Some(200), "{raw:.500}");
        let e = echoed(&raw);
        assert_eq!(e.header("x-forwarded-for").as_deref(), Some("10.1.2.3"));
        assert_eq!(
            e.header("x-forwarded-host").as_deref(),
            Some("evil.example")
        );
        assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(e.header("x-request-id").as_deref(), Some("attacker-chosen"));
        assert_eq!(e.header("x-real-ip").as_deref(), Some("6.6.6.6"));
        assert!(e.header("forwarded").is_some());
        assert!(e.header_all("x-original-url").is_empty());
        assert_eq!(e.uri(), "/static/x");
    }
    assert_eq!(rejected(&w, "untrusted_peer").await, 0);
}

/// The callback URL and the state cookie: https only when TLS ended at
/// realmgate or a trusted party said so.
#[tokio::test]
async fn a_spoofed_proto_behind_a_balancer_makes_neither_the_callback_https_nor_the_cookie_secure()
{
    let w = World::start_with(
        "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]",
        "",
    )
    .await;
    let login = |prefix: Vec<u8>| {
        let addr = w.gateway.addr;
        async move {
            let raw = raw_exchange(addr, &claiming(&prefix, "/.auth/login/contoso")).await;
            assert_eq!(raw_status(&raw), Some(302), "{raw:.500}");
            let head = raw.split_once("\r\n\r\n").unwrap().0.to_string();
            let location = head
                .lines()
                .find_map(|l| l.strip_prefix("location: "))
                .unwrap()
                .to_string();
            let cookies: Vec<String> = head
                .lines()
                .filter_map(|l| l.strip_prefix("set-cookie: "))
                .map(str::to_string)
                .collect();
            (param(&location, "redirect_uri").unwrap(), cookies)
        }
    };
    for prefix in [v1("203.0.113.7"), v2("::ffff:203.0.113.7")] {
        let (redirect_uri, cookies) = login(prefix).await;
        assert_eq!(
            redirect_uri,
            format!("http://{HOST}/.auth/login/contoso/callback")
        );
        assert!(!cookies.is_empty());
        assert!(
            cookies
                .iter()
                .all(|c| !c.starts_with("__Host-") && !c.contains("Secure")),
            "{cookies:?}"
        );
    }
    // The same request from a client that is a trusted proxy: believed
    // (the test tells the two apart).
    let (redirect_uri, cookies) = login(v1("10.1.2.3")).await;
    assert!(redirect_uri.starts_with("https://"), "{redirect_uri}");
    assert!(cookies.iter().any(|c| c.contains("Secure")), "{cookies:?}");
}

/// Every listed header, in every spelling, from an untrusted client: absent
/// at the app on a public path and on a protected one (signed in).
#[tokio::test]
async fn routing_address_scheme_and_host_headers_never_reach_the_app_from_an_untrusted_client() {
    let w = World::start_with("max_header_bytes = 262144", "").await;
    let names: Vec<&str> = [OVERRIDES, RELAYED].concat();
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    for (path, cookie) in [
        ("/static/app.css", None),
        ("/secret", Some(cookie.as_str())),
    ] {
        for variant in 0..6 {
            let raw =
                raw_exchange(w.gateway.addr, &request(b"", path, cookie, &names, variant)).await;
            assert_eq!(raw_status(&raw), Some(200), "{path} #{variant}: {raw:.500}");
            let e = echoed(&raw);
            for (name, value) in received(&e) {
                assert!(
                    !value.contains("spoofed"),
                    "{path} #{variant}: the client's {name}: {value} reached the app"
                );
            }
            for name in &names {
                for spelled in spellings(name) {
                    let n = spelled.to_ascii_lowercase();
                    assert!(e.header_all(&n).is_empty(), "{path}: {n}");
                }
            }
            assert_eq!(e.uri(), path, "the app serves the judged path");
            assert_eq!(e.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
            assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("http"));
        }
    }
}

/// A trusted proxy's client-address, scheme and host headers pass in their
/// `-` spelling; routing and method overrides and other spellings never do.
#[tokio::test]
async fn a_trusted_proxy_passes_address_scheme_and_host_headers_but_never_overrides() {
    let w = World::start_with(
        "max_header_bytes = 262144\ntrusted_proxies = [\"::ffff:127.0.0.1\"]",
        "",
    )
    .await;
    let names: Vec<&str> = [OVERRIDES, RELAYED].concat();
    let browser = w.signed_in(ALICE).await;
    let cookie = format!("realmgate={}", browser.session(&w).unwrap());
    for (path, cookie) in [
        ("/static/app.css", None),
        ("/secret", Some(cookie.as_str())),
    ] {
        for variant in 0..6 {
            let raw =
                raw_exchange(w.gateway.addr, &request(b"", path, cookie, &names, variant)).await;
            assert_eq!(raw_status(&raw), Some(200), "{path} #{variant}: {raw:.500}");
            let e = echoed(&raw);
            for name in OVERRIDES {
                for spelled in spellings(name) {
                    let n = spelled.to_ascii_lowercase();
                    assert!(
                        e.header_all(&n).is_empty(),
                        "{path}: override {n} reached the app"
                    );
                }
            }
            for (i, name) in names.iter().enumerate() {
                let spelled = spellings(name)[variant].to_ascii_lowercase();
                let got = e.header_all(&spelled);
                if OVERRIDES.contains(name) {
                    continue;
                }
                if spelled.contains('_') {
                    assert!(
                        got.is_empty(),
                        "{path}: {spelled} (not the - spelling) reached the app"
                    );
                } else {
                    assert_eq!(
                        got,
                        [value(name, i)],
                        "{path}: {spelled} from the trusted proxy"
                    );
                }
            }
            assert_eq!(e.uri(), path);
        }
    }
}

/// lighttpd hands every header to CGI/FastCGI/SCGI apps under a name where
/// each byte that is not a letter or digit is `_`: `X.Original.URL` is the
/// app's `HTTP_X_ORIGINAL_URL`, `X.Forwarded.User` its
/// `HTTP_X_FORWARDED_USER`. Such spellings of listed and identity headers
/// never reach the app from an untrusted client, nor, but for the `-`
/// spelling of a relayed header, from a trusted proxy.
#[tokio::test]
async fn headers_spelled_with_any_separator_never_reach_the_app() {
    const SPELLED: &[&str] = &[
        "X.Original.URL",
        "x+rewrite+url",
        "X~HTTP~Method~Override",
        "X.Real.IP",
        "True!Client!IP",
        "X.Forwarded.For",
        "x*forwarded*proto",
        "X|Forwarded|Host",
        "X^Request^Id",
        "X'Forwarded'Prefix",
        "X.Forwarded.User",
        "x.forwarded.email",
        "Remote.User",
        "X~Auth~Request~User",
        "X`MS`CLIENT`PRINCIPAL`NAME",
    ];
    for trusted in [false, true] {
        let proxies = if trusted {
            "\ntrusted_proxies = [\"127.0.0.1\"]"
        } else {
            ""
        };
        let w = World::start_with(&format!("max_header_bytes = 262144{proxies}"), "").await;
        let browser = w.signed_in(ALICE).await;
        let cookie = format!("realmgate={}", browser.session(&w).unwrap());
        for (path, cookie) in [
            ("/static/app.css", None),
            ("/secret", Some(cookie.as_str())),
        ] {
            let mut req = format!(
                "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\nConnection: close\r\nX-Real-IP: 6.6.6.6\r\n"
            );
            for (i, name) in SPELLED.iter().enumerate() {
                req.push_str(&format!("{name}: {}\r\n", value(name, i)));
            }
            if let Some(c) = cookie {
                req.push_str(&format!("Cookie: {c}\r\n"));
            }
            req.push_str("\r\n");
            let raw = raw_exchange(w.gateway.addr, req.as_bytes()).await;
            assert_eq!(raw_status(&raw), Some(200), "{path}: {raw:.500}");
            let e = echoed(&raw);
            for (name, value) in received(&e) {
                assert!(
                    !value.contains("spoofed"),
                    "trusted={trusted} {path}: the client's {name}: {value} reached the app"
                );
            }
            assert_eq!(e.uri(), path);
            assert_eq!(e.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
            assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("http"));
            let real_ip = trusted.then_some("6.6.6.6");
            assert_eq!(
                e.header("x-real-ip").as_deref(),
                real_ip,
                "trusted={trusted}"
            );
        }
    }
}

/// A PROXY header from a trusted balancer that names no client address:
/// v1 `UNKNOWN`, v2 `LOCAL` (HAProxy sends it for any relayed connection
/// whose client is not an IPv4/IPv6 address, not only for its health
/// checks), v2 `PROXY` with an unspecified or AF_UNIX address. The party
/// that wrote the HTTP headers is unknown, so none of its claims is
/// believed; the request is still served, with the balancer's address as
/// the client address.
#[tokio::test]
async fn a_proxy_header_without_a_client_address_makes_nobody_trusted() {
    let w = World::start_with(
        "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]",
        "",
    )
    .await;
    let v2_with = |command: ppp::v2::Command, addresses: ppp::v2::Addresses| {
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | command,
            ppp::v2::Protocol::Stream,
            addresses,
        )
        .build()
        .unwrap()
    };
    let mut socket = [0u8; 108];
    socket[..b"/run/haproxy.sock".len()].copy_from_slice(b"/run/haproxy.sock");
    let prefixes = [
        b"PROXY UNKNOWN\r\n".to_vec(),
        b"PROXY UNKNOWN 10.1.2.3 10.0.0.1 1 2\r\n".to_vec(),
        v2_with(ppp::v2::Command::Local, ppp::v2::Addresses::Unspecified),
        v2_with(ppp::v2::Command::Proxy, ppp::v2::Addresses::Unspecified),
        v2_with(
            ppp::v2::Command::Proxy,
            ppp::v2::Unix::new(socket, socket).into(),
        ),
    ];
    for prefix in &prefixes {
        let raw = raw_exchange(w.gateway.addr, &claiming(prefix, "/static/x")).await;
        assert_eq!(raw_status(&raw), Some(200), "{prefix:?}: {raw:.500}");
        let e = echoed(&raw);
        assert_eq!(
            e.header("x-forwarded-for").as_deref(),
            Some("127.0.0.1"),
            "{prefix:?}"
        );
        assert_eq!(
            e.header("x-forwarded-host").as_deref(),
            Some(HOST),
            "{prefix:?}"
        );
        assert_eq!(
            e.header("x-forwarded-proto").as_deref(),
            Some("http"),
            "{prefix:?}"
        );
        assert_ne!(e.header("x-request-id").as_deref(), Some("attacker-chosen"));
        for gone in ["forwarded", "x-real-ip", "x-original-url"] {
            assert!(
                e.header_all(gone).is_empty(),
                "{prefix:?} {gone}: {:?}",
                e.0
            );
        }
        // Nor does it make a sign-in's callback https.
        let raw = raw_exchange(w.gateway.addr, &claiming(prefix, "/.auth/login/contoso")).await;
        assert_eq!(raw_status(&raw), Some(302), "{raw:.500}");
        let location = raw
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap();
        assert_eq!(
            param(location, "redirect_uri").unwrap(),
            format!("http://{HOST}/.auth/login/contoso/callback"),
            "{prefix:?}"
        );
    }
    assert_eq!(rejected(&w, "untrusted_peer").await, 0);
    assert_eq!(rejected(&w, "invalid_header").await, 0);
}
