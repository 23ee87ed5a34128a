//! Hostile HTTP/1.1 written on raw sockets: every malformed or ambiguous
//! request gets a 4xx or a closed connection, and the upstream sees nothing.
//! HTTP/2 abuse (rapid reset, CONTINUATION flood) is written frame by frame
//! on h2c. (Slow clients are tested with the server, in `server.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// An upstream that answers every request head with a 101 carrying `accept`
/// as its `Sec-WebSocket-Accept` ("RIGHT": the one the client's key asks
/// for; "KEY": the client's key reflected; "": none), as an endpoint whose
/// status an attacker picks would, then records what arrives after it.
async fn switching_upstream(accept: &'static str) -> (SocketAddr, Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let after: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
    let seen = after.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let key = String::from_utf8_lossy(&head)
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("sec-websocket-key")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let value = match accept {
                    "RIGHT" => {
                        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
                    }
                    "KEY" => key,
                    _ => String::new(),
                };
                let line = if value.is_empty() {
                    String::new()
                } else {
                    format!("Sec-WebSocket-Accept: {value}\r\n")
                };
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{line}\r\n"
                );
                if sock.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                // Bytes past the head that came with it belong to the tunnel too.
                let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                seen.lock().unwrap().extend_from_slice(&head[end..]);
                let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
                while let Ok(Ok(n)) = tokio::time::timeout_at(until, sock.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, after)
}

/// Writes `request`, reads the response head (5 s at most), then writes
/// `then` on the same connection; returns the head.
async fn head_then_write(addr: SocketAddr, request: &[u8], then: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let _ = stream.write_all(then).await;
    // Held open a moment so the bytes can travel through a tunnel.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_101_that_does_not_answer_the_websocket_key_opens_no_tunnel() {
    // An endpoint that answers 101 without being a WebSocket server (a status
    // an attacker picks, a reflecting handler) would leave a raw pipe to the
    // app: every request written into it reaches the app unjudged, identity
    // headers of the attacker's choosing included. RFC 6455 4.1: a client
    // must fail a handshake whose Sec-WebSocket-Accept does not answer its
    // key; realmgate, the client here, does the same.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    let smuggled = "GET /admin HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-User: admin\r\n\r\n";
    for (accept, key_line, want) in [
        ("", true, 502),
        ("KEY", true, 502),
        ("RIGHT", false, 502),
        ("RIGHT", true, 101),
    ] {
        let (up, after) = switching_upstream(accept).await;
        let gw = two_public_routes(&format!("http://{up}"), "").await;
        let key = if key_line {
            format!("Sec-WebSocket-Key: {KEY}\r\n")
        } else {
            String::new()
        };
        let head = format!(
            "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n"
        );
        let raw = head_then_write(gw.addr, head.as_bytes(), smuggled.as_bytes()).await;
        assert_eq!(
            raw_status(&raw),
            Some(want),
            "accept {accept:?}, key {key_line}: {raw}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let seen = String::from_utf8_lossy(&after.lock().unwrap()).to_string();
        if want == 101 {
            // The control case: a real handshake tunnels what follows.
            assert!(
                seen.contains("GET /admin"),
                "the tunnel carried nothing: {seen:?}"
            );
        } else {
            assert!(
                seen.is_empty(),
                "accept {accept:?}: reached the app: {seen:?}"
            );
        }
    }
}

/// An upstream that authenticates connections as IIS does with Windows
/// authentication: a request with `Authorization: NTLM <type 3>` (or
/// `Negotiate`) signs the whole connection in, and every later request on it
/// is served as that user, credentials or not. Answers `user=<name>` or 401.
async fn connection_authenticating_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let signed_in: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let signed_in = signed_in.clone();
                async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    // Read the body to its end: the connection stays usable.
                    let _ = req.into_body().collect().await;
                    if let Some(user) = auth
                        .strip_prefix("NTLM TYPE3 ")
                        .or_else(|| auth.strip_prefix("Negotiate TICKET "))
                    {
                        *signed_in.lock().unwrap() = Some(user.to_string());
                    }
                    let user = signed_in.lock().unwrap().clone();
                    let response = match user {
                        Some(user) => Response::new(Full::new(Bytes::from(format!("user={user}")))),
                        None => Response::builder()
                            .status(401)
                            .header("www-authenticate", "NTLM")
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service),
            );
        }
    });
    addr
}

/// A gateway with one proxy thread (every request draws from the same idle
/// list) and two public routes, `app.test` and `other.test`, to `upstream`
/// (sharing its connections), served by the exchange `client` says.
async fn two_public_routes(upstream: &str, client: &str) -> TestGateway {
    let public = format!("public = [\"/\"]\n{client}");
    let routes = [
        route("app", "app.test", "/", upstream, &public),
        route("other", "other.test", "/", upstream, &public),
    ]
    .concat();
    TestGateway::start(&config("workers = 1", &routes)).await
}

#[tokio::test]
async fn a_connection_signed_in_by_ntlm_or_negotiate_never_serves_another_client() {
    // Two public routes to one upstream address share its connection pool
    // (realmgate's own, or hyper-util's with `upstream_client = "hyper"`);
    // one proxy thread, so every request draws from the same idle list.
    let up = connection_authenticating_upstream().await;
    let upstream = format!("http://{up}");
    for client in ["", "upstream_client = \"hyper\""] {
        let gw = two_public_routes(&upstream, client).await;
        for (credentials, body) in [
            ("NTLM TYPE3 alice-admin", ""),
            ("Negotiate TICKET alice-admin", ""),
            ("NTLM TYPE3 alice-admin", "x=1"),
        ] {
            let with_body = if body.is_empty() {
                String::new()
            } else {
                format!("Content-Length: {}\r\n", body.len())
            };
            // Alice signs in to the app with Windows credentials.
            let mut alice = KeepAliveConn::connect(gw.addr).await;
            let request = format!(
                "POST /me HTTP/1.1\r\nHost: app.test\r\nAuthorization: {credentials}\r\n{with_body}\r\n{body}"
            );
            let (status, answer) = alice.exchange(request.as_bytes()).await.expect("an answer");
            assert_eq!((status, answer.as_slice()), (200, &b"user=alice-admin"[..]));
            // Mallory, on his own connection, without credentials, on either route.
            for host in ["app.test", "other.test"] {
                let mut mallory = KeepAliveConn::connect(gw.addr).await;
                let request = format!("POST /me HTTP/1.1\r\nHost: {host}\r\n{with_body}\r\n{body}");
                let (status, answer) = mallory
                    .exchange(request.as_bytes())
                    .await
                    .expect("an answer");
                assert_eq!(
                    status,
                    401,
                    "{client} {credentials}: Mallory was served as {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }
        gw.stop().await;
    }
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_leaves_no_signed_in_connection_behind() {
    // hyper-util's HTTP/1.1 client (https upstreams, `upstream_client =
    // "hyper"`) pools the connection of an upgrade the upstream refused;
    // with Windows credentials on it, that connection is signed in.
    let up = connection_authenticating_upstream().await;
    let routes = route(
        "app",
        "app.test",
        "/",
        &format!("http://{up}"),
        "public = [\"/\"]\nupstream_client = \"hyper\"",
    );
    let gw = TestGateway::start(&config("workers = 1", &routes)).await;
    let upgrade = |credentials: &str| {
        format!(
            "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{credentials}\r\n"
        )
    };
    let mut alice = KeepAliveConn::connect(gw.addr).await;
    let request = upgrade("Authorization: NTLM TYPE3 alice-admin\r\n");
    let (status, answer) = alice.exchange(request.as_bytes()).await.expect("an answer");
    assert_eq!((status, answer.as_slice()), (200, &b"user=alice-admin"[..]));
    let mut mallory = KeepAliveConn::connect(gw.addr).await;
    let (status, answer) = mallory
        .exchange(upgrade("").as_bytes())
        .await
        .expect("an answer");
    assert_eq!(
        status,
        401,
        "Mallory was served as {}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn websockets_with_windows_credentials_still_open_on_either_client() {
    let up = EchoUpstream::start().await;
    for client in ["", "upstream_client = \"hyper\""] {
        let routes = route(
            "app",
            "app.test",
            "/",
            &up.url(),
            &format!("public = [\"/\"]\n{client}"),
        );
        let gw = TestGateway::start(&config("", &routes)).await;
        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let mut request = format!("ws://app.test:{}/ws", gw.addr.port())
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            http::HeaderValue::from_static("Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag"),
        );
        let (mut ws, resp) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        assert_eq!(resp.status(), 101, "{client}");
        websocket_echoes(&mut ws, "hello").await;
        gw.stop().await;
    }
}

/// An upstream that answers every request (head, then a `Content-Length`
/// body) with `answer`, keeping the connection open.
async fn raw_upstream(answer: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + length {
                        match sock.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    buf.drain(..end + 4 + length);
                    if sock.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_response_with_content_length_and_transfer_encoding_reaches_the_client_whole() {
    // RFC 9112 6.3: Transfer-Encoding frames the body and a proxy removes
    // the Content-Length before forwarding. The own codec (no request body)
    // and hyper's client (a request body) must agree on it.
    let up = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
    )
    .await;
    let routes = route(
        "app",
        "app.test",
        "/",
        &format!("http://{up}"),
        "public = [\"/\"]",
    );
    let gw = TestGateway::start(&config("", &routes)).await;
    let mut client = KeepAliveConn::connect(gw.addr).await;
    for request in [
        &b"GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\n\r\nx",
    ] {
        let (status, body) = client.exchange(request).await.expect("an answer");
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"0123456789abcdef"[..]),
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

#[tokio::test]
async fn a_client_expectation_is_met_here_and_never_passed_to_the_upstream() {
    // hyper's server answers `Expect: 100-continue` itself and realmgate
    // then sends the body at once: an upstream told to expect must not be
    // left thinking no body follows. With and without a body (hyper's
    // exchange and the own codec).
    let (up, gw) = setup("").await;
    for request in [
        &b"POST /e HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"[..],
        b"GET /e HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    ] {
        let raw = raw_exchange(gw.addr, request).await;
        let (head, body) = raw.rsplit_once("\r\n\r\n").expect("a response");
        assert!(head.contains("HTTP/1.1 200 OK"), "{raw}");
        let echoed = Echoed(serde_json::from_str(body).expect("echo JSON"));
        assert!(echoed.header_all("expect").is_empty(), "{body}");
    }
    assert_eq!(up.count(), 2);
}

// === HTTP/2 (h2c, prior knowledge) written frame by frame ===

mod h2 {
    //! Just enough HTTP/2 framing to misbehave: the preface, SETTINGS,
    //! HEADERS with a literal HPACK block, RST_STREAM and CONTINUATION.

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = Vec::with_capacity(9 + payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A literal header field without indexing, with a new name (RFC 7541 6.2.2).
    pub fn literal(name: &str, value: &str) -> Vec<u8> {
        assert!(name.len() < 127 && value.len() < 127);
        let mut out = vec![0x00, name.len() as u8];
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
        out
    }

    /// `GET path` on `authority`, over http: a complete HPACK block.
    pub fn request_block(authority: &str, path: &str) -> Vec<u8> {
        // :method GET (static 2), :scheme http (static 6).
        let mut out = vec![0x82, 0x86];
        // :path and :authority: literal with an indexed name (static 4 and 1).
        out.push(0x04);
        out.push(path.len() as u8);
        out.extend_from_slice(path.as_bytes());
        out.push(0x01);
        out.push(authority.len() as u8);
        out.extend_from_slice(authority.as_bytes());
        out.extend(literal("accept", "application/json"));
        out
    }

    /// Frame types the server sent, read until EOF or `deadline` (a GOAWAY
    /// alone does not count: the connection must actually close).
    pub async fn read_frames_until_eof(
        stream: &mut tokio::net::tcp::OwnedReadHalf,
        deadline: std::time::Duration,
    ) -> (usize, bool) {
        use tokio::io::AsyncReadExt;
        let end = tokio::time::Instant::now() + deadline;
        let mut chunk = [0u8; 65536];
        let mut total = 0;
        loop {
            match tokio::time::timeout_at(end, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
                Ok(Ok(n)) => total += n,
                Err(_) => return (total, false),
            }
        }
    }

    /// Frame types the server sent, read until EOF, GOAWAY, or `deadline`.
    pub async fn read_frames(
        stream: &mut tokio::net::tcp::OwnedReadHalf,
        deadline: std::time::Duration,
    ) -> (Vec<u8>, bool) {
        use tokio::io::AsyncReadExt;
        let end = tokio::time::Instant::now() + deadline;
        let mut buf = Vec::new();
        let mut kinds = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            while buf.len() >= 9 {
                let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                if buf.len() < 9 + len {
                    break;
                }
                kinds.push(buf[3]);
                buf.drain(..9 + len);
                if kinds.last() == Some(&GOAWAY) {
                    return (kinds, true);
                }
            }
            match tokio::time::timeout_at(end, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (kinds, true),
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => return (kinds, false),
            }
        }
    }
}

/// A gateway whose `/static/` is public (so a request that got through would
/// reach the upstream) and everything else protected.
async fn h2_setup() -> (EchoUpstream, TestGateway) {
    let up = EchoUpstream::start().await;
    let toml = config(
        "",
        &route("app", "app.test", "/", &up.url(), "public = [\"/static/\"]"),
    );
    let gw = TestGateway::start(&toml).await;
    (up, gw)
}

/// The gateway still answers a well-behaved client promptly.
async fn assert_still_serving(gw: &TestGateway) {
    let started = std::time::Instant::now();
    let resp = gw
        .client()
        .get(gw.url("app.test", "/static/alive"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .expect("the gateway still answers");
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn http2_rapid_reset_is_cut_off_and_the_gateway_keeps_serving() {
    // CVE-2023-44487: open streams and cancel them at once, as fast as possible.
    use tokio::io::AsyncWriteExt;
    let (up, gw) = h2_setup().await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move { h2::read_frames(&mut rd, DEADLINE).await });
    let mut out = h2::PREFACE.to_vec();
    out.extend(h2::frame(h2::SETTINGS, 0, 0, &[]));
    wr.write_all(&out).await.unwrap();
    const STREAMS: u32 = 20_000;
    let mut sent = 0;
    for batch in 0..(STREAMS / 100) {
        let mut out = Vec::new();
        for i in 0..100 {
            let id = 1 + 2 * (batch * 100 + i);
            let path = if i % 2 == 0 { "/static/x" } else { "/secret" };
            out.extend(h2::frame(
                h2::HEADERS,
                h2::END_HEADERS | h2::END_STREAM,
                id,
                &h2::request_block("app.test", path),
            ));
            out.extend(h2::frame(h2::RST_STREAM, 0, id, &8u32.to_be_bytes()));
        }
        if wr.write_all(&out).await.is_err() {
            break;
        }
        sent += 100;
        if reader.is_finished() {
            break;
        }
    }
    let (kinds, closed) = reader.await.unwrap();
    eprintln!(
        "rapid reset: {sent} streams sent, GOAWAY {}, {} upstream requests",
        kinds.contains(&h2::GOAWAY),
        up.count()
    );
    assert!(
        closed,
        "the server neither sent GOAWAY nor closed after {sent} reset streams"
    );
    assert!(sent < STREAMS || kinds.contains(&h2::GOAWAY), "{kinds:?}");
    // The protected half never reached the app; the public half is bounded
    // by what was accepted before the cut.
    assert!(
        up.count() < sent as usize / 2 + 1,
        "{} upstream requests for {sent} streams",
        up.count()
    );
    assert_still_serving(&gw).await;
}

#[tokio::test]
async fn http2_continuation_flood_is_cut_off_before_it_grows_without_bound() {
    // CVE-2024-27316 and friends: a HEADERS frame that never ends, followed by
    // CONTINUATION frames forever.
    use tokio::io::AsyncWriteExt;
    let (up, gw) = h2_setup().await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move { h2::read_frames(&mut rd, DEADLINE).await });
    let mut out = h2::PREFACE.to_vec();
    out.extend(h2::frame(h2::SETTINGS, 0, 0, &[]));
    out.extend(h2::frame(
        h2::HEADERS,
        h2::END_STREAM,
        1,
        &h2::request_block("app.test", "/static/x"),
    ));
    wr.write_all(&out).await.unwrap();
    // 16 KiB CONTINUATION frames full of distinct literal headers.
    let mut sent: usize = 0;
    const LIMIT: usize = 64 * 1024 * 1024;
    let mut n = 0u64;
    while sent < LIMIT && !reader.is_finished() {
        let mut block = Vec::with_capacity(16384);
        while block.len() < 16_000 {
            n += 1;
            block.extend(h2::literal(
                &format!("x-flood-{n}"),
                "aaaaaaaaaaaaaaaaaaaaaaaa",
            ));
        }
        let f = h2::frame(h2::CONTINUATION, 0, 1, &block);
        if wr.write_all(&f).await.is_err() {
            break;
        }
        sent += f.len();
    }
    let (kinds, closed) = reader.await.unwrap();
    eprintln!(
        "CONTINUATION flood: cut after {sent} bytes, GOAWAY {}",
        kinds.contains(&h2::GOAWAY)
    );
    assert!(
        closed,
        "the server read {sent} bytes of CONTINUATION without closing ({kinds:?})"
    );
    assert!(sent < LIMIT, "the whole {LIMIT}-byte flood was accepted");
    up.assert_received_nothing().await;
    assert_still_serving(&gw).await;
}

#[tokio::test]
async fn a_stalled_http2_client_is_disconnected() {
    // Slowloris over h2c: the preface and half a header block, then nothing.
    use tokio::io::AsyncWriteExt;
    let up = EchoUpstream::start().await;
    let toml = config(
        "idle_timeout = \"1s\"\nheader_read_timeout = \"1s\"",
        &route("app", "app.test", "/", &up.url(), "public = [\"/static/\"]"),
    );
    let gw = TestGateway::start(&toml).await;
    for stall_mid_headers in [false, true] {
        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let mut out = h2::PREFACE.to_vec();
        out.extend(h2::frame(h2::SETTINGS, 0, 0, &[]));
        if stall_mid_headers {
            out.extend(h2::frame(
                h2::HEADERS,
                h2::END_STREAM,
                1,
                &h2::request_block("app.test", "/static/x"),
            ));
        }
        wr.write_all(&out).await.unwrap();
        let started = std::time::Instant::now();
        let (_, closed) = h2::read_frames_until_eof(&mut rd, DEADLINE).await;
        assert!(
            closed,
            "stalled (mid headers: {stall_mid_headers}) connection still open after {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(8));
    }
    up.assert_received_nothing().await;
}

#[tokio::test]
async fn an_http2_client_sending_a_frame_one_byte_at_a_time_is_disconnected() {
    // Slowloris that keeps both clocks of the stalled test above running:
    // a HEADERS frame (or a frame of a type h2 ignores) declared 16000 bytes
    // long, sent one byte every 200 ms. Bytes keep arriving (never idle),
    // no request ever starts; with header_read_timeout = 1s it must be cut
    // as an HTTP/1.1 head is. Before review 14 (R1) it stayed open for as
    // long as the client kept sending (hours, at one byte per idle_timeout).
    use tokio::io::AsyncWriteExt;
    let up = EchoUpstream::start().await;
    let toml = config(
        "idle_timeout = \"3s\"\nheader_read_timeout = \"1s\"",
        &route("app", "app.test", "/", &up.url(), "public = [\"/static/\"]"),
    );
    let gw = TestGateway::start(&toml).await;
    for kind in [h2::HEADERS, 0xfa] {
        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let mut out = h2::PREFACE.to_vec();
        out.extend(h2::frame(h2::SETTINGS, 0, 0, &[]));
        // The frame header alone: 16000 payload bytes announced.
        let header = h2::frame(kind, h2::END_STREAM | h2::END_HEADERS, 1, &[]);
        out.extend_from_slice(&16000u32.to_be_bytes()[1..]);
        out.extend_from_slice(&header[3..]);
        wr.write_all(&out).await.unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..60 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if wr.write_all(&[0x40]).await.is_err() {
                    return;
                }
            }
        });
        let started = std::time::Instant::now();
        let (_, closed) = h2::read_frames_until_eof(&mut rd, DEADLINE).await;
        trickle.abort();
        assert!(
            closed && started.elapsed() < std::time::Duration::from_secs(6),
            "a frame of type {kind:#x} sent byte by byte kept the connection open for {:?}",
            started.elapsed()
        );
    }
    up.assert_received_nothing().await;
    assert_still_serving(&gw).await;
}

/// An upstream that, like a "CL.0" back-end, answers `POST /early` from the
/// head alone (401) without reading its body and keeps the connection open:
/// the unread body is parsed as the start of the next request on that
/// connection. Every other request is read whole and answered
/// `path=<path>`. Records the path of every request it parsed.
async fn early_answering_upstream() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let parsed: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = parsed.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            sock.read(&mut chunk),
                        )
                        .await
                        {
                            Ok(Ok(n)) if n > 0 => {
                                buf.extend_from_slice(&chunk[..n]);
                                continue;
                            }
                            _ => return,
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                    log.lock().unwrap().push(path.clone());
                    let answer = if path == "/early" {
                        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_string()
                    } else {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        while buf.len() < length {
                            match sock.read(&mut chunk).await {
                                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                _ => return,
                            }
                        }
                        buf.drain(..length);
                        let body = format!("path={path}");
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, parsed)
}

#[tokio::test]
async fn a_body_an_upstream_left_unread_never_becomes_the_start_of_another_users_request() {
    // Two public routes to one upstream address share its connections; one
    // proxy thread, so every request draws from the same idle list.
    let (up, parsed) = early_answering_upstream().await;
    let upstream = format!("http://{up}");
    for client in ["", "upstream_client = \"hyper\""] {
        let gw = two_public_routes(&upstream, client).await;
        // The attacker's body: a request line and a header left open, so the
        // next request on the connection would become its value.
        let body = "GET /attacker HTTP/1.1\r\nX-Swallow: ";
        let mut attacker = KeepAliveConn::connect(gw.addr).await;
        let request = format!(
            "POST /early HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, _) = attacker
            .exchange(request.as_bytes())
            .await
            .expect("an answer");
        assert_eq!(status, 401, "{client}");
        // Another user, on another route to the same upstream (with a body:
        // the own pool keeps connections of requests with and without one
        // apart).
        let mut victim = KeepAliveConn::connect(gw.addr).await;
        let (status, answer) = victim
            .exchange(b"POST /victim HTTP/1.1\r\nHost: other.test\r\nCookie: app_session=victim-secret\r\nContent-Length: 3\r\n\r\nv=1")
            .await
            .expect("an answer");
        assert_eq!(
            (status, String::from_utf8_lossy(&answer).to_string()),
            (200, "path=/victim".to_string()),
            "{client}: the victim got another request's answer"
        );
        let seen = parsed.lock().unwrap().clone();
        assert!(
            !seen.iter().any(|p| p == "/attacker"),
            "{client}: the upstream ran the attacker's request with the victim's headers: {seen:?}"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_client_s_400_not_the_upstream_s_502() {
    let (_up, gw) = setup("").await;
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\nhello\n0\n\n",
        "10000000000000001\r\nx\r\n0\r\n\r\n",
    ] {
        let request = format!(
            "POST /x HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nAccept: application/json\r\nConnection: close\r\n\r\n{body}"
        );
        let raw = raw_exchange(gw.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&raw), Some(400), "{body:?}: {raw}");
    }
}
