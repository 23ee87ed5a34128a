use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn names(h: &HeaderMap) -> Vec<&str> {
    let mut v: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    v.sort();
    v
}

#[test]
fn removes_every_hop_by_hop_header_in_any_case() {
    let mut h = map(&[
        ("Connection", "keep-alive"),
        ("KEEP-ALIVE", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("te", "gzip"),
        ("Trailer", "Expires"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Proxy-Authenticate", "Basic"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Accept", "*/*"),
        ("Content-Length", "3"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(names(&h), vec!["accept", "content-length"]);
}

#[test]
fn removes_headers_named_by_connection_case_insensitively() {
    let mut h = map(&[
        ("Connection", "X-Secret, , x-other"),
        ("connection", "CLOSE, X-Third"),
        ("x-secret", "1"),
        ("X-Other", "2"),
        ("x-THIRD", "3"),
        ("x-kept", "4"),
    ]);
    strip_hop_by_hop(&mut h);
    assert_eq!(names(&h), vec!["x-kept"]);
}

#[test]
fn te_trailers_alone_is_kept_for_grpc() {
    let mut h = map(&[("TE", "Trailers")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.get("te").unwrap(), "trailers");

    let mut h = map(&[("te", "trailers, deflate")]);
    strip_hop_by_hop(&mut h);
    assert!(h.get("te").is_none());

    // HTTP/1.1 senders must list TE in Connection; that does not drop `trailers`.
    let mut h = map(&[("te", "trailers"), ("connection", "te")]);
    strip_hop_by_hop(&mut h);
    assert_eq!(h.get("te").unwrap(), "trailers");
}

#[test]
fn garbage_connection_tokens_are_ignored_without_panicking() {
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        HeaderValue::from_bytes(b"\xff\xfe, x a, (").unwrap(),
    );
    h.insert("x-a", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    assert_eq!(names(&h), vec!["x-a"]);
}
