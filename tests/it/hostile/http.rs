//! Hostile HTTP/1.1 written on raw sockets: every malformed or ambiguous
//! request gets a 4xx or a closed connection, and the upstream sees nothing.
//! (Slow clients are tested with the server, in `server.rs`.)

use crate::util::*;

/// A gateway with one fully public route, so anything that got through
/// framing checks would reach the upstream.
async fn setup(server_extra: &str) -> (EchoUpstream, TestGateway) {
    let up = EchoUpstream::start().await;
    let toml = config(
        server_extra,
        &route("app", "app.test", "/", &up.url(), "public = [\"/\"]"),
    );
    let gw = TestGateway::start(&toml).await;
    (up, gw)
}

/// The answer is a 4xx, or the connection was closed without a response.
fn refused(raw: &str) -> bool {
    match raw_status(raw) {
        Some(s) => (400..500).contains(&s),
        None => true,
    }
}

async fn assert_refused(request: &[u8]) {
    let (up, gw) = setup("").await;
    let raw = raw_exchange(gw.addr, request).await;
    assert!(
        refused(&raw),
        "request {:?}\nwas answered: {raw}",
        String::from_utf8_lossy(request)
    );
    up.assert_received_nothing().await;
}

#[tokio::test]
async fn a_well_formed_raw_request_is_forwarded() {
    // The control case: the helpers below would pass vacuously if nothing worked.
    let (up, gw) = setup("").await;
    let raw = raw_exchange(
        gw.addr,
        b"POST /ok HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(raw_status(&raw), Some(200), "{raw}");
    assert_eq!(up.count(), 1);
}

/// Content-Length together with Transfer-Encoding: hyper's parser follows
/// RFC 9112 6.1/6.3 — it drops Content-Length, decodes by Transfer-Encoding and
/// closes the connection after answering — so the handler never sees both
/// headers. What matters is that the request smuggled behind the body never
/// reaches the upstream: either the whole thing is refused, or exactly the
/// first request is answered and the connection is closed.
async fn assert_not_smuggled(request: &[u8]) {
    let (up, gw) = setup("").await;
    let raw = raw_exchange(gw.addr, request).await;
    if !refused(&raw) {
        let head = raw
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            head.contains("connection: close"),
            "kept the connection open: {raw}"
        );
        assert_eq!(raw.matches("HTTP/1.1 ").count(), 1, "answered twice: {raw}");
    }
    let second = wait_until(std::time::Duration::from_millis(300), || up.count() > 1).await;
    assert!(!second, "the smuggled request reached the upstream");
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    assert_not_smuggled(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn transfer_encoding_before_content_length_cannot_smuggle() {
    assert_not_smuggled(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn differing_content_lengths_are_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn content_length_lists_and_signs_are_refused() {
    assert_refused(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 6\r\n\r\nhello!")
        .await;
    assert_refused(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\n\r\nhello").await;
}

#[tokio::test]
async fn obfuscated_transfer_encoding_is_refused() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn obs_fold_is_refused() {
    assert_refused(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Folded: first\r\n second\r\n\r\n").await;
}

#[tokio::test]
async fn invalid_header_bytes_are_refused() {
    assert_refused(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Bad: a\x00b\r\n\r\n").await;
    assert_refused(b"GET / HTTP/1.1\r\nHost: app.test\r\nX Bad: value\r\n\r\n").await;
    assert_refused(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Bad: a\rb\r\n\r\n").await;
    assert_refused(b"GET / HTTP/1.1\r\nHost: app.test\nX-Bare-LF:\x7f\r\n\r\n").await;
}

#[tokio::test]
async fn missing_or_duplicate_host_is_refused() {
    assert_refused(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_request_line_is_refused() {
    let mut request = b"GET /".to_vec();
    request.extend(std::iter::repeat_n(b'a', 128 * 1024));
    request.extend_from_slice(b" HTTP/1.1\r\nHost: app.test\r\n\r\n");
    assert_refused(&request).await;
}

#[tokio::test]
async fn headers_larger_than_max_header_bytes_get_431() {
    let (up, gw) = setup("max_header_bytes = 8192").await;
    let big = "a".repeat(10_000);
    let request =
        format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let raw = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&raw), Some(431), "{raw}");
    // Many small headers add up the same way.
    let many: String = (0..400)
        .map(|i| format!("X-H{i}: 0123456789\r\n"))
        .collect();
    let request = format!("GET / HTTP/1.1\r\nHost: app.test\r\n{many}Connection: close\r\n\r\n");
    let raw = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&raw), Some(431), "{raw}");
    up.assert_received_nothing().await;
}

#[tokio::test]
async fn a_request_line_that_is_not_http_is_refused() {
    assert_refused(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n").await;
    assert_refused(b"GET / HTTP/9.9\r\nHost: app.test\r\n\r\n").await;
    assert_refused(b"GET http://app.test@evil.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
}

#[tokio::test]
async fn an_h2c_upgrade_is_forwarded_as_a_plain_request_never_tunnelled() {
    let (up, gw) = setup("").await;
    let raw = raw_exchange(
        gw.addr,
        b"GET /h2c HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&raw), Some(200), "{raw}");
    let body = raw.split_once("\r\n\r\n").expect("a body").1;
    let echoed = Echoed(serde_json::from_str(body).expect("echo JSON"));
    assert!(echoed.header_all("upgrade").is_empty());
    assert!(echoed.header_all("http2-settings").is_empty());
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn an_upstream_switching_to_a_protocol_nobody_asked_for_is_502() {
    // The echo upstream answers `101 Upgrade: websocket` on /ws whatever was asked.
    let (_up, gw) = setup("").await;
    let raw = raw_exchange(
        gw.addr,
        b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: not-websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&raw), Some(502), "{raw}");
}
