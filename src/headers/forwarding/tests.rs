use std::net::SocketAddr;

use http::{HeaderName, HeaderValue, Request};

use super::*;

fn server(trusted: &[&str]) -> ServerSettings {
    let list = trusted
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(",");
    let toml = format!(
        r#"
[server]
trusted_proxies = [{list}]
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "c"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "y"
[[route]]
name = "r"
hosts = ["app.example.com"]
upstream = "http://127.0.0.1:9000"
"#
    );
    crate::config::load_str(&toml).expect("valid").server
}

fn conn(peer: &str, tls: bool) -> ConnInfo {
    ConnInfo::new(
        peer.parse::<SocketAddr>().unwrap(),
        "127.0.0.1:8080".parse().unwrap(),
        tls,
    )
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const SPOOF: &[(&str, &str)] = &[
    ("x-forwarded-for", "6.6.6.6"),
    ("X-Forwarded-For", "7.7.7.7"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("x-request-id", "attacker-chosen"),
    ("forwarded", "for=6.6.6.6"),
    ("x-real-ip", "6.6.6.6"),
    ("x-forwarded-port", "443"),
];

#[test]
fn untrusted_peer_gets_every_forwarding_header_replaced() {
    let s = server(&["10.0.0.0/8"]);
    let mut h = headers(SPOOF);
    let host = HeaderValue::from_static("app.example.com");
    let c = conn("192.0.2.7:5555", false);
    let id = request_id(&s, &h, &c);
    apply(&mut h, &s, &c, Some(&host), &id);
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-for"], "192.0.2.7");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "app.example.com");
    assert_ne!(h["x-request-id"], "attacker-chosen");
    assert_eq!(h["x-request-id"], id);
    assert_eq!(id.len(), 32);
    assert!(id.to_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit()));
    for gone in ["forwarded", "x-real-ip", "x-forwarded-port"] {
        assert!(h.get(gone).is_none(), "{gone}");
    }
}

#[test]
fn trusted_peer_headers_are_kept_and_for_is_appended() {
    let s = server(&["10.0.0.0/8", "127.0.0.1/32"]);
    let mut h = headers(SPOOF);
    let host = HeaderValue::from_static("app.example.com");
    let c = conn("10.1.2.3:5555", false);
    let id = request_id(&s, &h, &c);
    apply(&mut h, &s, &c, Some(&host), &id);
    assert_eq!(h["x-forwarded-for"], "6.6.6.6, 7.7.7.7, 10.1.2.3");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "evil.example");
    assert_eq!(id, "attacker-chosen");
    assert_eq!(h["forwarded"], "for=6.6.6.6");
}

#[test]
fn trusted_peer_without_headers_gets_own_values() {
    let s = server(&["10.0.0.0/8"]);
    let mut h = HeaderMap::new();
    let host = HeaderValue::from_static("app.example.com:8443");
    let c = conn("10.1.2.3:5555", true);
    let id = request_id(&s, &h, &c);
    apply(&mut h, &s, &c, Some(&host), &id);
    assert_eq!(h["x-forwarded-for"], "10.1.2.3");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "app.example.com:8443");
    assert_eq!(h["x-request-id"].len(), 32);
}

#[test]
fn malformed_values_from_trusted_peers_are_replaced() {
    let s = server(&["10.0.0.0/8"]);
    let long = "a".repeat(MAX_REQUEST_ID + 1);
    let mut h = headers(&[
        ("x-forwarded-proto", "gopher"),
        ("x-request-id", &long),
        ("x-forwarded-host", "a b"),
    ]);
    let c = conn("10.9.9.9:1", false);
    let id = request_id(&s, &h, &c);
    apply(&mut h, &s, &c, None, &id);
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-request-id"].len(), 32);
    assert!(h.get("x-forwarded-host").is_none());
}

#[test]
fn ipv4_mapped_peers_are_matched_and_printed_as_ipv4() {
    let s = server(&["127.0.0.1/32"]);
    let c = conn("[::ffff:127.0.0.1]:4000", false);
    assert!(peer_is_trusted(&s, &c));
    let mut h = HeaderMap::new();
    let id = request_id(&s, &h, &c);
    apply(&mut h, &s, &c, None, &id);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert!(!peer_is_trusted(&s, &conn("[::1]:4000", false)));
}

#[test]
fn trusted_proto_only_from_trusted_peers() {
    let s = server(&["10.0.0.0/8"]);
    let (parts, ()) = Request::builder()
        .header("x-forwarded-proto", "HTTPS, http")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        trusted_proto(&s, &parts, &conn("10.0.0.1:1", false)).as_deref(),
        Some("https")
    );
    assert_eq!(trusted_proto(&s, &parts, &conn("11.0.0.1:1", false)), None);
    let (none, ()) = Request::builder().body(()).unwrap().into_parts();
    assert_eq!(trusted_proto(&s, &none, &conn("10.0.0.1:1", false)), None);
}

/// A balancer in trusted_proxies whose PROXY header named no client: the
/// balancer's address is the client address, but what the unknown client
/// wrote is treated as an untrusted peer's.
#[test]
fn a_client_a_proxy_header_did_not_name_is_never_trusted() {
    let s = server(&["10.0.0.0/8"]);
    let mut c = conn("10.0.0.5:5555", false);
    c.client_unknown = true;
    assert!(!peer_is_trusted(&s, &c));
    let mut h = headers(SPOOF);
    let host = HeaderValue::from_static("app.example.com");
    let id = request_id(&s, &h, &c);
    assert_ne!(id, "attacker-chosen");
    apply(&mut h, &s, &c, Some(&host), &id);
    assert_eq!(h["x-forwarded-for"], "10.0.0.5");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "app.example.com");
    for gone in ["forwarded", "x-real-ip", "x-forwarded-port"] {
        assert!(h.get(gone).is_none(), "{gone}");
    }
    let (parts, ()) = Request::builder()
        .header("x-forwarded-proto", "https")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(trusted_proto(&s, &parts, &c), None);
}

/// Ids are rendered in batches of slices of one buffer: across many
/// batches and threads, every id is different.
#[test]
fn request_ids_are_unique() {
    let on_thread = || (0..1000).map(|_| new_request_id()).collect::<Vec<_>>();
    let other = std::thread::spawn(on_thread);
    let mut all: Vec<HeaderValue> = on_thread();
    all.extend(other.join().unwrap());
    let distinct: std::collections::HashSet<&[u8]> = all.iter().map(|v| v.as_bytes()).collect();
    assert_eq!(distinct.len(), 2000);
}

#[test]
fn request_ids_are_32_lowercase_hex_digits() {
    for _ in 0..100 {
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
    }
}

#[test]
fn underscore_spellings_are_removed_from_every_peer() {
    // PHP/WSGI read `X_Forwarded_For` as HTTP_X_FORWARDED_FOR, the same
    // variable as the real header: the client's copy must not get through.
    for (trusted, peer) in [
        (&["10.0.0.0/8"][..], "192.0.2.7:1"),
        (&["10.0.0.0/8"][..], "10.0.0.1:1"),
    ] {
        let s = server(trusted);
        let mut h = headers(&[
            ("x_forwarded_for", "6.6.6.6"),
            ("X_Forwarded_Proto", "https"),
            ("x_forwarded_host", "evil.example"),
            ("x-forwarded_uri", "/admin"),
            ("x_real_ip", "6.6.6.6"),
            ("x_request_id", "attacker-chosen"),
            ("true_client_ip", "6.6.6.6"),
            ("x_custom_app_header", "kept"),
        ]);
        let c = conn(peer, false);
        let id = request_id(&s, &h, &c);
        apply(&mut h, &s, &c, None, &id);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| !n.contains('_') || *n == "x_custom_app_header"),
            "{peer}: {names:?}"
        );
        assert_eq!(h["x_custom_app_header"], "kept");
    }
}

/// Issue 17, hole 7: routing overrides and client-address, scheme and host
/// headers of every family, in odd spellings, through `apply`.
const HOSTILE: &[(&str, &str)] = &[
    ("x-original-url", "/admin"),
    ("X_ORIGINAL_URL", "/admin"),
    ("x_rewrite_url", "/admin"),
    ("x-original-uri", "/admin"),
    ("x-forwarded-uri", "/admin"),
    ("x-forwarded-prefix", "/evil"),
    ("x-envoy-original-path", "/admin"),
    ("x-http-method-override", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("true-client-ip", "6.6.6.6"),
    ("x-client-ip", "6.6.6.6"),
    ("cf-connecting-ip", "6.6.6.6"),
    ("fastly-client-ip", "6.6.6.6"),
    ("x-forwarded-ssl", "on"),
    ("x-forwarded-scheme", "https"),
    ("front-end-https", "on"),
    ("x-original-host", "evil.example"),
    ("x-host", "evil.example"),
    ("x-forwarded-server", "evil.example"),
    ("forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
    ("x-real-ip", "6.6.6.6"),
];

/// Kept from a trusted proxy: its statements about the client.
const RELAYED_FROM_TRUSTED: &[&str] = &[
    "x-forwarded-prefix",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "front-end-https",
    "x-original-host",
    "x-host",
    "x-forwarded-server",
    "forwarded",
    "x-real-ip",
];

#[test]
fn untrusted_peers_lose_routing_address_scheme_and_host_headers() {
    let s = server(&["10.0.0.0/8"]);
    for peer in ["192.0.2.7:1", "[2001:db8::7]:1", "[::ffff:192.0.2.7]:1"] {
        let mut h = headers(HOSTILE);
        h.append("x-app-header", HeaderValue::from_static("kept"));
        let c = conn(peer, false);
        let id = request_id(&s, &h, &c);
        apply(&mut h, &s, &c, None, &id);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "x-app-header",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-request-id"
            ],
            "{peer}"
        );
    }
}

#[test]
fn trusted_peers_keep_relayed_headers_but_never_routing_or_method_overrides() {
    let s = server(&["10.0.0.0/8", "::ffff:192.0.2.0/120"]);
    for peer in ["10.1.2.3:1", "[::ffff:10.1.2.3]:1"] {
        let mut h = headers(HOSTILE);
        let c = conn(peer, false);
        let id = request_id(&s, &h, &c);
        apply(&mut h, &s, &c, None, &id);
        for name in RELAYED_FROM_TRUSTED {
            assert!(h.get(*name).is_some(), "{peer}: {name} was removed");
        }
        for name in [
            "x-original-url",
            "x_original_url",
            "x_rewrite_url",
            "x-original-uri",
            "x-forwarded-uri",
            "x-envoy-original-path",
            "x-http-method-override",
            "x-method-override",
        ] {
            assert!(h.get(name).is_none(), "{peer}: {name} reached the app");
        }
    }
}

#[test]
fn trust_is_compared_in_canonical_form_both_ways() {
    // An IPv4 range matches an IPv4-mapped peer ...
    let v4 = server(&["10.0.0.0/8"]);
    assert!(peer_is_trusted(&v4, &conn("[::ffff:10.9.8.7]:1", false)));
    assert!(!peer_is_trusted(&v4, &conn("[::ffff:11.9.8.7]:1", false)));
    // ... and an IPv4-mapped range (config::validate makes it 10.0.0.0/8) an IPv4 peer.
    let mapped = server(&["::ffff:10.0.0.0/104"]);
    assert!(peer_is_trusted(&mapped, &conn("10.9.8.7:1", false)));
    assert!(peer_is_trusted(
        &mapped,
        &conn("[::ffff:10.9.8.7]:1", false)
    ));
    assert!(!peer_is_trusted(&mapped, &conn("11.9.8.7:1", false)));
    // Plain IPv6 is not an IPv4 address.
    let v6 = server(&["2001:db8::/32"]);
    assert!(peer_is_trusted(&v6, &conn("[2001:db8::1]:1", false)));
    assert!(!peer_is_trusted(&v6, &conn("10.0.0.1:1", false)));
}
