use http::{HeaderName, Request};

use super::*;

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

fn bad(pairs: &[(&str, &str)]) -> bool {
    matches!(
        check_framing(&headers(pairs), 65536),
        Err(GatewayError::BadRequest(_))
    )
}

#[test]
fn ambiguous_framing_is_rejected() {
    assert!(bad(&[
        ("content-length", "5"),
        ("transfer-encoding", "chunked")
    ]));
    assert!(bad(&[("Content-Length", "5"), ("content-length", "6")]));
    assert!(bad(&[("content-length", "5, 5")]));
    assert!(bad(&[("content-length", "+5")]));
    assert!(bad(&[("content-length", " 5")]));
    assert!(bad(&[("content-length", "")]));
    assert!(bad(&[("content-length", "99999999999999999999")]));
    assert!(!bad(&[("content-length", "5"), ("content-length", "5")]));
    assert!(!bad(&[("content-length", "0")]));
    assert!(!bad(&[("transfer-encoding", "chunked")]));
    assert!(!bad(&[]));
}

#[test]
fn header_size_limit_allows_equal_to_limit() {
    // "x-a" (3) + 10 + 4 = 17 bytes
    let h = headers(&[("x-a", "0123456789")]);
    assert!(check_framing(&h, 17).is_ok());
    assert!(matches!(
        check_framing(&h, 16),
        Err(GatewayError::HeaderTooLarge)
    ));
}

#[test]
fn upgrade_needs_connection_upgrade_and_http11() {
    let req = Request::builder()
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .body(())
        .unwrap();
    assert_eq!(upgrade_request(&req).unwrap(), "websocket");
    let no_conn = Request::builder()
        .header("upgrade", "websocket")
        .body(())
        .unwrap();
    assert!(upgrade_request(&no_conn).is_none());
    let h2 = Request::builder()
        .version(Version::HTTP_2)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(())
        .unwrap();
    assert!(upgrade_request(&h2).is_none());
    for http in ["h2c", "HTTP/2.0", "websocket, h2c", "http/1.1", ""] {
        let smuggle = Request::builder()
            .header("connection", "Upgrade, HTTP2-Settings")
            .header("upgrade", http)
            .body(())
            .unwrap();
        assert!(upgrade_request(&smuggle).is_none(), "{http:?}");
    }
}

#[test]
fn host_comes_from_authority_else_the_single_host_header() {
    let abs = Request::builder()
        .uri("http://app.example.com/x")
        .header("host", "other.example.com")
        .body(())
        .unwrap();
    assert_eq!(client_host(&abs).unwrap(), "app.example.com");
    let plain = Request::builder()
        .uri("/x")
        .header("host", "app.example.com:8080")
        .body(())
        .unwrap();
    assert_eq!(client_host(&plain).unwrap(), "app.example.com:8080");
    let two = Request::builder()
        .uri("/x")
        .header("host", "a")
        .header("host", "b")
        .body(())
        .unwrap();
    assert!(matches!(
        client_host(&two),
        Err(GatewayError::BadRequest(_))
    ));
    let none = Request::builder().uri("/x").body(()).unwrap();
    assert!(matches!(
        client_host(&none),
        Err(GatewayError::BadRequest(_))
    ));
}

#[test]
fn logged_paths_have_no_controls_and_are_bounded() {
    assert_eq!(loggable_path("/a/b"), "/a/b");
    assert_eq!(loggable_path("/a\n\u{1b}"), "/a\\n\\u{1b}");
    let long = format!("/{}", "é".repeat(600));
    let out = loggable_path(&long);
    assert!(out.len() <= 512 + '…'.len_utf8());
}

#[test]
fn tunnel_deadlines_never_overflow_and_fail_closed() {
    let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    assert_eq!(tunnel_deadline(1_800_000_000), at(1_800_000_000));
    assert_eq!(
        tunnel_deadline(crate::oidc::id_token::MAX_NUMERIC_DATE),
        at(crate::oidc::id_token::MAX_NUMERIC_DATE)
    );
    // Values no claim can produce any more: a deadline already past, no panic.
    for secs in [u64::MAX, 1 << 63, (1 << 63) + 1] {
        assert_eq!(tunnel_deadline(secs), SystemTime::UNIX_EPOCH, "{secs}");
    }
}
