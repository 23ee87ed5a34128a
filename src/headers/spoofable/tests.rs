use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

/// Routing and method overrides: removed from every peer.
pub(crate) const OVERRIDES: &[&str] = &[
    // Another authentication layer's identity statements (review 9).
    "x-amzn-oidc-identity",
    "x-amzn-oidc-data",
    "x-goog-authenticated-user-email",
    "x-goog-iap-jwt-assertion",
    "cf-access-authenticated-user-email",
    "cf-access-jwt-assertion",
    "x-original-url",
    "x-original-uri",
    "x-original-path",
    "x-original-request-uri",
    "x-rewrite-url",
    "x-rewrite-uri",
    "x-forwarded-uri",
    "x-forwarded-url",
    "x-forwarded-path",
    "x-envoy-original-path",
    "x-envoy-original-url",
    "x-request-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-forwarded-method",
    "x-waws-unencoded-url",
    "x-middleware-subrequest",
    "x-invoke-path",
    "x-invoke-query",
    "x-invoke-status",
    "x-invoke-output",
    "x-matched-path",
    "x-now-route-matches",
    "proxy",
];

/// Client-address, scheme, host and certificate headers (exact names and
/// members of the families): removed from untrusted peers only.
pub(crate) const RELAYED_NAMES: &[&str] = &[
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-proxyuser-ip",
    "proxy-client-ip",
    "http-client-ip",
    "http-x-forwarded-for",
    "front-end-https",
    "x-url-scheme",
    "x-scheme",
    "x-https",
    "x-arr-ssl",
    "x-host",
    "x-http-host-override",
    "x-arr-clientcert",
    "x-client-cert",
    "x-client-verify",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-forwarded-by",
    "x-forwarded-client-cert",
    "x-original-host",
    "x-original-for",
    "x-original-proto",
    "x-original-forwarded-for",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "cf-visitor",
    "cloudfront-viewer-address",
    "cloudfront-forwarded-proto",
    "fastly-client-ip",
    "fastly-ssl",
    "akamai-origin-hop",
    "x-akamai-edgescape",
    "x-azure-clientip",
    "x-azure-socketip",
    "x-azure-fdid",
    "x-envoy-external-address",
    "x-envoy-internal",
    "x-amzn-trace-id",
    "x-appengine-user-ip",
    "wl-proxy-client-ip",
    "wl-proxy-ssl",
    "x-ssl-client-verify",
    "x-ssl-client-cert",
    "ssl-client-cert",
    "x-proxied-https",
    "proxy-auth-cert",
    "proxy-ssl-id",
    "x-sendfile-type",
    "x-accel-mapping",
    "x-script-name",
    "script-name",
    "path-info",
    "disguised-host",
    "client-cert",
    "client-cert-chain",
    "fly-client-ip",
    "fly-forwarded-proto",
    "incap-client-ip",
    "x-sucuri-clientip",
];

/// What realmgate sets itself.
const OWN_NAMES: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Ordinary request headers, including look-alikes of listed names.
const ORDINARY: &[&str] = &[
    "host",
    "accept",
    "accept-encoding",
    "authorization",
    "cookie",
    "content-type",
    "cache-control",
    "sec-fetch-mode",
    "sec-ch-ua",
    "user-agent",
    "x-requested-with",
    "x-csrf-token",
    "x-client-id",
    "x-goog-api-key",
    "x-forwarded",
    "x-originals",
    "cfg-version",
    "true-client",
    "forwardedx",
    "client-ipx",
    "x-amz-date",
    "akamai",
    "ssl-protocol",
    "client-certx",
    "x-invoked",
    "x-accel-buffering",
    "flyer",
    "disguised",
    "proxy-authorization",
];

/// `x-original-url` as `X_ORIGINAL_URL`, `x_original_url`, `X-Original_Url`,
/// and with the other separators lighttpd's CGI/FastCGI/SCGI environment
/// reads as `_` (`X.Original.URL`, `x+original+url`, ...).
pub(crate) fn spellings(name: &str) -> Vec<String> {
    let under = name.replace('-', "_");
    let mixed: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-");
    let half = match name.rfind('-') {
        Some(i) => format!("{}_{}", &name[..i], &name[i + 1..]),
        None => name.to_string(),
    };
    let mut all = vec![
        name.to_string(),
        name.to_ascii_uppercase(),
        under.clone(),
        under.to_ascii_uppercase(),
        mixed,
        half,
    ];
    // Every token character that is not a letter, digit, `-` or `_`.
    for sep in [
        "!", "#", "$", "%", "&", "'", "*", "+", ".", "^", "`", "|", "~",
    ] {
        all.push(name.replace('-', sep));
    }
    all
}

#[test]
fn every_entry_is_normalized_and_in_the_group_of_its_first_letter() {
    for group_entries in GROUPS {
        for (name, _, _) in group_entries {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert_eq!(
                group(name.as_bytes()[0]),
                group_entries,
                "{name} is not in its letter's group"
            );
            assert_eq!(
                group(name.as_bytes()[0].to_ascii_uppercase()),
                group_entries,
                "{name}: uppercase first letter"
            );
        }
    }
}

#[test]
fn names_are_classified_in_every_spelling() {
    for (names, kind) in [
        (OVERRIDES, Kind::Override),
        (RELAYED_NAMES, Kind::Relayed),
        (OWN_NAMES, Kind::Own),
    ] {
        for name in names {
            for spelled in spellings(name) {
                assert_eq!(classify(&spelled), Some(kind), "{spelled}");
            }
        }
    }
    for name in ORDINARY {
        if *name == "x-forwarded" {
            continue; // listed itself (the old de-facto header)
        }
        assert_eq!(classify(name), None, "{name}");
    }
    assert_eq!(classify(""), None);
    assert_eq!(classify("_"), None);
}

fn map(names: &[String]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for n in names {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_static("/admin"),
        );
    }
    h
}

fn all_spellings(names: &[&str]) -> Vec<String> {
    names.iter().flat_map(|n| spellings(n)).collect()
}

#[test]
fn untrusted_peers_lose_every_listed_header_in_every_spelling() {
    let listed: Vec<String> = [OVERRIDES, RELAYED_NAMES]
        .concat()
        .iter()
        .flat_map(|n| spellings(n))
        .collect();
    let mut h = map(&listed);
    for n in ORDINARY {
        h.append(*n, HeaderValue::from_static("kept"));
    }
    strip(&mut h, false);
    let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    let mut expected: Vec<&str> = ORDINARY
        .iter()
        .copied()
        .filter(|n| *n != "x-forwarded")
        .collect();
    expected.sort_unstable();
    let mut sorted = left.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
}

#[test]
fn trusted_proxies_keep_relayed_headers_but_never_overrides_or_other_spellings() {
    let mut h = map(&all_spellings(
        &[OVERRIDES, RELAYED_NAMES, OWN_NAMES].concat(),
    ));
    strip(&mut h, true);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    let mut expected: Vec<&str> = [RELAYED_NAMES, OWN_NAMES].concat();
    expected.sort_unstable();
    assert_eq!(left, expected);
    for v in h.values() {
        assert_eq!(v, "/admin");
    }
}

#[test]
fn own_headers_in_their_dash_spelling_are_left_to_forwarding() {
    for trusted in [false, true] {
        let mut h = map(&all_spellings(OWN_NAMES));
        strip(&mut h, trusted);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        let mut expected = OWN_NAMES.to_vec();
        expected.sort_unstable();
        assert_eq!(left, expected, "trusted={trusted}");
    }
}

#[test]
fn nothing_listed_leaves_the_map_as_it_was() {
    for trusted in [false, true] {
        let mut h = HeaderMap::new();
        for n in ORDINARY.iter().filter(|n| **n != "x-forwarded") {
            h.append(*n, HeaderValue::from_static("v"));
        }
        let before = h.clone();
        strip(&mut h, trusted);
        assert_eq!(h, before);
    }
}
