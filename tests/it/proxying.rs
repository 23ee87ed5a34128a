//! Proxying through a real gateway to a real (echo) upstream: routing,
//! header hygiene, streaming, WebSocket, upstream failures, and the auth gate
//! keeping unauthenticated requests away from the app.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// One public route on `app.test` in front of `up`.
async fn public_gateway(up: &EchoUpstream, route_extra: &str, server_extra: &str) -> TestGateway {
    let extra = format!("public = [\"/\"]\n{route_extra}");
    let toml = config(
        server_extra,
        &route("app", "app.test", "/", &up.url(), &extra),
    );
    TestGateway::start(&toml).await
}

#[tokio::test]
async fn requests_are_routed_by_host_then_longest_prefix() {
    let (a, b, c) = (
        EchoUpstream::start().await,
        EchoUpstream::start().await,
        EchoUpstream::start().await,
    );
    let public = "public = [\"/\"]";
    let routes = [
        route("root", "app.test", "/", &a.url(), public),
        route("api", "app.test", "/api", &b.url(), public),
        route("other", "other.test", "/", &c.url(), public),
    ]
    .concat();
    let gw = TestGateway::start(&config("", &routes)).await;
    let client = gw.client();
    let get = |host: &'static str, path: &'static str| {
        let client = client.clone();
        let url = gw.url(host, path);
        async move { client.get(url).send().await.expect("request").status() }
    };
    assert_eq!(get("app.test", "/x").await, 200);
    assert_eq!((a.count(), b.count(), c.count()), (1, 0, 0));
    assert_eq!(get("app.test", "/api/users").await, 200);
    assert_eq!(get("app.test", "/api").await, 200);
    assert_eq!((a.count(), b.count(), c.count()), (1, 2, 0));
    assert_eq!(get("app.test", "/apix").await, 200);
    assert_eq!((a.count(), b.count(), c.count()), (2, 2, 0));
    assert_eq!(get("other.test", "/api").await, 200);
    assert_eq!((a.count(), b.count(), c.count()), (2, 2, 1));
    // Host matching ignores case and a trailing dot.
    let resp = client
        .get(gw.url("app.test", "/y"))
        .header("host", format!("APP.TEST.:{}", gw.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(a.count(), 3);
}

#[tokio::test]
async fn unknown_host_gets_a_short_421_and_the_upstream_nothing() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let client = gw.client();
    let resp = client
        .get(gw.url("unknown.test", "/x"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 421);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    assert!(page.len() < 8192, "short page: {} bytes", page.len());
    assert!(
        !page.contains("unknown.test"),
        "the host is not echoed: {page}"
    );

    let json = client
        .get(gw.url("unknown.test", "/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 421);
    let v: serde_json::Value = json.json().await.unwrap();
    assert_eq!(v["error"], "unknown_host");
    up.assert_received_nothing().await;
}

#[tokio::test]
async fn hop_by_hop_and_connection_named_headers_are_removed() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let request = "GET /hop HTTP/1.1\r\n\
        Host: app.test\r\n\
        Connection: close, X-Secret-Hop, x-other-hop\r\n\
        X-Secret-Hop: 1\r\n\
        X-OTHER-HOP: 2\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Connection: keep-alive\r\n\
        Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
        TE: gzip\r\n\
        Upgrade: h2c\r\n\
        X-Kept: yes\r\n\r\n";
    let raw = raw_exchange(gw.addr, request.as_bytes()).await;
    assert_eq!(raw_status(&raw), Some(200), "{raw}");
    let body = raw.split_once("\r\n\r\n").expect("a body").1;
    let echoed = Echoed(serde_json::from_str(body).expect("echo JSON"));
    for gone in [
        "x-secret-hop",
        "x-other-hop",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(echoed.header_all(gone).is_empty(), "{gone} was forwarded");
    }
    assert_eq!(echoed.header("x-kept").as_deref(), Some("yes"));
    // The gateway's own connection to the upstream may say keep-alive, never the client's tokens.
    for v in echoed.header_all("connection") {
        assert!(!v.to_ascii_lowercase().contains("x-secret-hop"), "{v}");
    }
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let up = EchoUpstream::start().await;
    // 127.0.0.1 is not trusted here.
    let gw = public_gateway(&up, "", "trusted_proxies = [\"10.0.0.0/8\"]").await;
    let resp = gw
        .client()
        .get(gw.url("app.test", "/fwd"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("x-request-id", "attacker-chosen")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .header("x-real-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    let response_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let e = Echoed::from(resp).await;
    assert_eq!(e.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        e.header("x-forwarded-host"),
        Some(format!("app.test:{}", gw.addr.port()))
    );
    let id = e.header("x-request-id").expect("a request id");
    assert_ne!(id, "attacker-chosen");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(response_id, id, "the client sees the same request id");
    assert!(e.header("forwarded").is_none());
    assert!(e.header("x-real-ip").is_none());
}

/// A trusted proxy's X-Forwarded-Host reaches the app, and many apps take
/// their host from it: one naming a host this gateway serves with another
/// route is refused (review 9), one naming the same route or a host the
/// gateway does not serve passes as before.
#[tokio::test]
async fn a_trusted_forwarded_host_naming_another_route_is_refused() {
    let (a, b) = (EchoUpstream::start().await, EchoUpstream::start().await);
    let public = "public = [\"/\"]";
    let routes = [
        // Two hosts for one route: `hosts = ["a.test", "alias-a.test"]`.
        route("a", "a.test\", \"alias-a.test", "/", &a.url(), public),
        route("b", "b.test", "/", &b.url(), public),
        route("a-admin", "a.test", "/admin", &b.url(), public),
    ]
    .concat();
    let gw = TestGateway::start(&config("trusted_proxies = [\"127.0.0.1/32\"]", &routes)).await;
    let get = |xfh: &'static str, path: &'static str| {
        let client = gw.client();
        let url = gw.url("a.test", path);
        async move {
            client
                .get(url)
                .header("accept", "application/json")
                .header("x-forwarded-host", xfh)
                .send()
                .await
                .expect("request")
        }
    };
    for (xfh, path) in [
        ("b.test", "/x"),
        ("B.TEST:443", "/x"),
        ("b.test.", "/x"),
        // a.test's /admin has a route of its own; alias-a.test has not.
        ("alias-a.test", "/admin/x"),
    ] {
        let resp = get(xfh, path).await;
        assert_eq!(resp.status(), 400, "{xfh} {path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("X-Forwarded-Host"),
            "{body}"
        );
    }
    // Read as leniently as apps read it (any port digits), and the other
    // host headers a trusted proxy's request keeps.
    for (name, value) in [
        ("x-forwarded-host", "b.test:99999"),
        ("x-forwarded-host", "b.test:0000443"),
        ("x-forwarded-host", "b.test.."),
        ("x-forwarded-host", "b.test:x"),
        ("x-forwarded-host", "b.test:443/"),
        ("forwarded", "xhost=b.test"),
        ("forwarded", "for=\"host=b.test\""),
        ("forwarded", "Host = \"b\\.test\""),
        ("forwarded", "for=198.51.100.7;host=b.test;proto=https"),
        ("forwarded", "for=198.51.100.7, host=\"b.test:443\""),
        ("x-original-host", "b.test"),
        ("x-host", "B.test"),
        ("disguised-host", "b.test"),
    ] {
        let resp = gw
            .client()
            .get(gw.url("a.test", "/x"))
            .header("accept", "application/json")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}: {value}");
    }
    assert_eq!((a.count(), b.count()), (0, 0), "none reached an app");
    for xfh in ["a.test:8443", "alias-a.test", "apps.contoso.com"] {
        let e = Echoed::from(get(xfh, "/x").await).await;
        assert_eq!(e.header("x-forwarded-host").as_deref(), Some(xfh));
    }
    assert_eq!(a.count(), 3);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "trusted_proxies = [\"127.0.0.1/32\"]").await;
    let e = Echoed::from(
        gw.client()
            .get(gw.url("app.test", "/fwd"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "apps.contoso.com")
            .header("x-request-id", "lb-req-42")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        e.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(e.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        e.header("x-forwarded-host").as_deref(),
        Some("apps.contoso.com")
    );
    assert_eq!(e.header("x-request-id").as_deref(), Some("lb-req-42"));
}

#[tokio::test]
async fn host_is_preserved_or_set_to_the_upstream_and_path_and_query_are_kept() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let e = Echoed::from(
        gw.client()
            .get(gw.url("app.test", "/a/b?x=1&y=%20z"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        e.header("host"),
        Some(format!("app.test:{}", gw.addr.port()))
    );
    assert_eq!(e.uri(), "/a/b?x=1&y=%20z");

    let gw2 = public_gateway(&up, "preserve_host = false", "").await;
    let e = Echoed::from(
        gw2.client()
            .get(gw2.url("app.test", "/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e.header("host"), Some(up.addr.to_string()));
}

#[tokio::test]
async fn bodies_arrive_intact_and_h2c_clients_are_routed_by_authority() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let want = {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(&body))
    };
    let e = Echoed::from(
        gw.client()
            .post(gw.url("app.test", "/upload"))
            .body(body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e.0["method"], "POST");
    assert_eq!(e.0["body_len"], body.len() as u64);
    assert_eq!(e.0["body_sha256"], want.as_str());

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve("app.test", gw.addr)
        .build()
        .unwrap();
    let resp = h2
        .put(gw.url("app.test", "/h2"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let e = Echoed::from(resp).await;
    assert_eq!(e.0["body_sha256"], want.as_str());
    assert_eq!(e.uri(), "/h2");
}

/// Bytes for the streaming tests: 3 GiB by default (REALMGATE_STREAM_TEST_BYTES overrides).
fn stream_test_bytes() -> u64 {
    std::env::var("REALMGATE_STREAM_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3 << 30)
}

/// Samples RSS every 50 ms until dropped; `peak` holds the maximum.
struct RssSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { peak, task }
    }
    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const MAX_GROWTH: u64 = 200 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_gigabyte_upload_streams_at_flat_memory() {
    let total = stream_test_bytes();
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "request_timeout = \"600s\"", "").await;
    let before = rss_bytes();
    let sampler = RssSampler::start();

    // After 8 MiB the client waits until the upstream has seen body bytes: a
    // gateway that buffered the body would never forward any, and this fails.
    let gate = 8u64 << 20;
    let streamed_early = Arc::new(AtomicBool::new(false));
    let (flag, seen) = (streamed_early.clone(), up.body_bytes.clone());
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let (chunk, flag, seen) = (chunk.clone(), flag.clone(), seen.clone());
        async move {
            if sent >= total {
                return None;
            }
            if sent >= gate && !flag.load(Ordering::SeqCst) {
                let ok = wait_until(DEADLINE, || seen.load(Ordering::SeqCst) > 0).await;
                flag.store(ok, Ordering::SeqCst);
                if !ok {
                    return Some((Err(std::io::Error::other("upstream saw nothing")), total));
                }
            }
            let n = (total - sent).min(chunk.len() as u64) as usize;
            Some((Ok::<_, std::io::Error>(chunk.slice(..n)), sent + n as u64))
        }
    });
    let resp = gw
        .client()
        .post(gw.url("app.test", "/count"))
        .timeout(Duration::from_secs(600))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("upload");
    assert!(
        streamed_early.load(Ordering::SeqCst),
        "the upstream received body bytes before the client had sent them all"
    );
    let e = Echoed::from(resp).await;
    assert_eq!(e.0["body_len"], total);
    let growth = sampler.peak().saturating_sub(before);
    assert!(
        growth < MAX_GROWTH,
        "RSS grew by {} MiB while streaming {} MiB",
        growth >> 20,
        total >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_gigabyte_download_streams_at_flat_memory() {
    let total = stream_test_bytes();
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "request_timeout = \"600s\"", "").await;
    let before = rss_bytes();
    let sampler = RssSampler::start();
    let resp = gw
        .client()
        .get(gw.url("app.test", &format!("/stream?bytes={total}")))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut got = 0u64;
    let mut first = true;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("body chunk");
        if first {
            first = false;
            let produced = up.streamed.load(Ordering::SeqCst);
            assert!(
                produced < total,
                "the client got its first bytes only after the upstream produced everything"
            );
        }
        got += chunk.len() as u64;
    }
    assert_eq!(got, total);
    let growth = sampler.peak().saturating_sub(before);
    assert!(
        growth < MAX_GROWTH,
        "RSS grew by {} MiB while streaming {} MiB",
        growth >> 20,
        total >> 20
    );
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("ws://app.test:{}/ws", gw.addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, resp) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")
            .expect("handshake");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "über", &"x".repeat(100_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), &[0u8, 1, 2, 255]);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn upstream_down_is_502_html_or_json_by_accept() {
    // Port 1 on loopback: connection refused.
    let toml = config(
        "",
        &route(
            "down",
            "app.test",
            "/",
            "http://127.0.0.1:1",
            "public = [\"/\"]",
        ),
    );
    let gw = TestGateway::start(&toml).await;
    let client = gw.client();
    let html = client
        .get(gw.url("app.test", "/"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 502);
    assert!(html.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(html.headers().contains_key("content-security-policy"));
    assert_eq!(html.headers()["cache-control"], "no-store");
    let page = html.text().await.unwrap();
    assert!(page.contains("cannot be reached"), "{page}");
    assert!(
        !page.contains("127.0.0.1"),
        "no internals on the page: {page}"
    );

    let json = client
        .post(gw.url("app.test", "/api"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 502);
    let v: serde_json::Value = json.json().await.unwrap();
    assert_eq!(v["error"], "upstream_unavailable");
}

#[tokio::test]
async fn slow_upstream_is_504_after_request_timeout() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "request_timeout = \"300ms\"", "").await;
    let started = std::time::Instant::now();
    let resp = gw
        .client()
        .get(gw.url("app.test", "/slow?ms=5000"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "upstream_timeout");
    // A fast request on the same route still works.
    let ok = gw
        .client()
        .get(gw.url("app.test", "/slow?ms=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// A request timeout beyond the clock's range (no deadline can be computed)
/// means "no timeout", not a panic or an instant 504.
#[tokio::test]
async fn a_request_timeout_past_the_clock_range_never_fires() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "request_timeout = \"500000000y\"", "").await;
    let resp = gw
        .client()
        .get(gw.url("app.test", "/slow?ms=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_post_the_upstream_drops_is_not_retried() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let resp = gw
        .client()
        .post(gw.url("app.test", "/close"))
        .body("payment=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    // Give a (wrong) retry every chance to arrive before counting.
    let retried = wait_until(Duration::from_millis(500), || up.count() > 1).await;
    assert!(
        !retried,
        "the POST reached the upstream {} times",
        up.count()
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn protected_paths_without_session_never_reach_the_upstream() {
    let up = EchoUpstream::start().await;
    let toml = config(
        "",
        &route("app", "app.test", "/", &up.url(), "public = [\"/static/\"]"),
    );
    let gw = TestGateway::start(&toml).await;
    let client = gw.client();

    let api = client
        .get(gw.url("app.test", "/secret?a=1"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["www-authenticate"], "Bearer");
    assert_eq!(api.headers()["cache-control"], "no-store");
    let v: serde_json::Value = api.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized");

    let browser = client
        .get(gw.url("app.test", "/secret?a=1"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 302);
    assert_eq!(
        browser.headers()["location"],
        "/.auth/login?post_login_redirect_uri=%2Fsecret%3Fa%3D1"
    );

    let post = client
        .post(gw.url("app.test", "/secret"))
        .header("accept", BROWSER_ACCEPT)
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);

    let xhr = client
        .get(gw.url("app.test", "/secret"))
        .header("accept", BROWSER_ACCEPT)
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(xhr.status(), 401);

    // A WebSocket upgrade to a protected path is refused before any tunnel exists.
    let ws = client
        .get(gw.url("app.test", "/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), 401);

    up.assert_received_nothing().await;

    // The public prefix is forwarded.
    let public = client
        .get(gw.url("app.test", "/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn auth_paths_are_answered_by_the_gateway_itself() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    // Even on a fully public route, /.auth/ belongs to realmgate.
    let resp = gw
        .client()
        .get(gw.url("app.test", "/.auth/no-such-endpoint"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    up.assert_received_nothing().await;
}

#[tokio::test]
async fn https_upstream_with_upstream_ca_speaks_http2_and_tunnels_websockets_over_http11() {
    let (up, files) = EchoUpstream::start_tls().await;
    let extra = format!(
        "public = [\"/\"]\nupstream_ca = {:?}",
        files.ca_file.display().to_string()
    );
    let gw = TestGateway::start(&config(
        "",
        &route("tls", "app.test", "/", &up.tls_url(), &extra),
    ))
    .await;
    let e = Echoed::from(
        gw.client()
            .get(gw.url("app.test", "/over-tls"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        e.0["version"], "HTTP/2.0",
        "negotiated with ALPN: {:?}",
        e.0
    );
    assert_eq!(e.uri(), "/over-tls");

    // The upgrade goes through hyper-util's HTTP/1.1 client, whose connector
    // dials the upstream whatever authority the request URI names (with
    // preserve_host, the client's host, here in another letter case).
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("ws://APP.test:{}/ws", gw.addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, _) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")
            .expect("handshake");
    ws.send(Message::text("over tls")).await.unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "over tls");
}

/// A client's trailer section is not forwarded: identity headers are
/// stripped from the head, and an HTTP/2 upstream would get trailers as a
/// second HEADERS frame (review 9). The body arrives whole; HTTP/1.1 and
/// HTTP/2 upstreams alike see no trailer.
#[tokio::test]
async fn request_trailers_never_reach_the_upstream() {
    let plain = EchoUpstream::start().await;
    let (tls, files) = EchoUpstream::start_tls().await;
    let extra = format!(
        "public = [\"/\"]\nupstream_ca = {:?}",
        files.ca_file.display().to_string()
    );
    let gw = TestGateway::start(&config(
        "",
        &format!(
            "{}{}",
            route("h2", "h2.test", "/", &tls.tls_url(), &extra),
            route("h1", "h1.test", "/", &plain.url(), "public = [\"/\"]")
        ),
    ))
    .await;
    for (host, version) in [("h2.test", "HTTP/2.0"), ("h1.test", "HTTP/1.1")] {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: X-Forwarded-User\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Forwarded-User: victim-oid\r\nX-MS-CLIENT-PRINCIPAL-NAME: victim@contoso.com\r\nX-App-Checksum: 1\r\n\r\n"
        );
        let raw = raw_exchange(gw.addr, request.as_bytes()).await;
        assert_eq!(raw_status(&raw), Some(200), "{host}: {raw:.400}");
        let body = raw.split_once("\r\n\r\n").expect("head and body").1;
        let body = if body.starts_with('{') {
            body.to_string()
        } else {
            // A chunked answer: the JSON is in the first chunk.
            body.lines().nth(1).unwrap_or_default().to_string()
        };
        let e: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host}: {e}: {raw:.600}"));
        assert_eq!(e["version"], version, "{host}");
        assert_eq!(e["body_len"], 5, "{host}: the body arrives whole");
        assert_eq!(
            e["trailers"],
            serde_json::json!([]),
            "{host}: no trailer forwarded: {e}"
        );
        let headers = e["headers"].to_string().to_ascii_lowercase();
        assert!(!headers.contains("victim"), "{host}: {headers}");
    }
}

#[tokio::test]
async fn https_upstream_with_an_untrusted_certificate_is_502() {
    // The route trusts another CA than the one that signed the upstream's certificate.
    let (up, _files) = EchoUpstream::start_tls().await;
    let (_other, other_files) = EchoUpstream::start_tls().await;
    let extra = format!(
        "public = [\"/\"]\nupstream_ca = {:?}",
        other_files.ca_file.display().to_string()
    );
    let gw = TestGateway::start(&config(
        "",
        &route("tls", "app.test", "/", &up.tls_url(), &extra),
    ))
    .await;
    let resp = gw
        .client()
        .get(gw.url("app.test", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn hop_by_hop_headers_of_the_upstream_response_are_removed() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let resp = gw
        .client()
        .get(gw.url("app.test", "/hop-response"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-app"], "ok");
    for gone in ["x-internal-hop", "keep-alive", "proxy-authenticate"] {
        assert!(h.get(gone).is_none(), "{gone} reached the client");
    }
    for v in h.get_all("connection") {
        assert!(!v.to_str().unwrap().contains("x-internal-hop"));
    }
}

/// An app's `Set-Cookie` for realmgate's own cookies never reaches the
/// browser: an app on one route could plant a session of its choosing for
/// the whole host, or clear the user's (review 13, H1). Its own cookies pass.
#[tokio::test]
async fn an_app_cannot_set_realmgate_s_cookies() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    let resp = gw
        .client()
        .get(gw.url("app.test", "/set-cookies"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, ["app=kept; Path=/"]);
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The access lines: without `telemetry::init` the gateway hands each
    /// (JSON) line to the current subscriber as the message of an `access` event.
    fn access_lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .map(|v| {
                let line = v["fields"]["message"].as_str().unwrap_or_default();
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
            })
            .collect()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// current_thread: the gateway's tasks run on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn one_access_log_line_per_request_without_secrets() {
    let (captured, _guard) = capture_json_logs();

    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    // tracing caches per call site whether anyone listens; a test running in
    // parallel may register the access-log call site while this subscriber is
    // being installed. One request registers it here, then the cache is rebuilt.
    let warmup = gw
        .client()
        .get(gw.url("app.test", "/warmup"))
        .send()
        .await
        .unwrap();
    assert_eq!(warmup.status(), 200);
    tracing::callsite::rebuild_interest_cache();

    let resp = gw
        .client()
        .get(gw.url("app.test", "/reports/q1?token=SECRET-QUERY"))
        .header("user-agent", "access-log-test/1")
        .header("cookie", "realmgate=COOKIE-VALUE")
        .header("authorization", "Bearer TOKEN-VALUE")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let unknown = gw
        .client()
        .get(gw.url("unknown.test", "/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 421);
    let unknown_id = unknown.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    let measured = || {
        captured
            .access_lines()
            .into_iter()
            .filter(|l| l["path"] != "/warmup")
            .collect::<Vec<_>>()
    };
    let complete = wait_until(DEADLINE, || measured().len() >= 2).await;
    assert!(
        complete,
        "access lines: {:?}\nall output:\n{}",
        measured(),
        captured.text()
    );
    let lines = measured();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let f = &lines[0];
    assert_eq!(f["method"], "GET");
    assert_eq!(f["host"], "app.test");
    assert_eq!(f["path"], "/reports/q1");
    assert_eq!(f["status"], 200);
    assert_eq!(f["request_id"], id.as_str());
    assert!(f["upstream_ms"].as_f64().is_some(), "{f}");
    assert!(
        f["duration_ms"].as_f64().unwrap() >= f["upstream_ms"].as_f64().unwrap(),
        "{f}"
    );
    assert!(f["bytes"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(f["client"], "127.0.0.1");
    assert_eq!(f["route"], "app");
    assert_eq!(f["user_agent"], "access-log-test/1");
    assert_eq!(f["traceparent"].as_str().unwrap().len(), 55, "{f}");
    assert_eq!(lines[1]["status"], 421);
    // Answers the gateway gives itself carry a request id too.
    assert_eq!(lines[1]["request_id"], unknown_id.as_str());
    assert_eq!(unknown_id.len(), 32);
    let all = captured.text();
    for secret in ["SECRET-QUERY", "COOKIE-VALUE", "TOKEN-VALUE"] {
        assert!(!all.contains(secret), "{secret} was logged: {all}");
    }
}

/// W3C trace context: a valid `traceparent` reaches the app unchanged, with
/// its `tracestate`; an invalid one, or none, is replaced by a new trace and
/// the `tracestate` dropped (never passed through); the access line names
/// the `traceparent` the app got.
// current_thread: the gateway's tasks run on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn traceparent_is_propagated_when_valid_and_replaced_otherwise() {
    let (captured, _guard) = capture_json_logs();
    let up = EchoUpstream::start().await;
    let gw = public_gateway(&up, "", "").await;
    // See one_access_log_line_per_request_without_secrets.
    let warmup = gw
        .client()
        .get(gw.url("app.test", "/warmup"))
        .send()
        .await
        .unwrap();
    assert_eq!(warmup.status(), 200);
    tracing::callsite::rebuild_interest_cache();

    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cases = [
        (Some(good), true),
        (
            Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"),
            false,
        ),
        (
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            false,
        ),
        (
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, x"),
            false,
        ),
        (Some("garbage"), false),
        (None, false),
    ];
    let mut sent_upstream = Vec::new();
    for (i, (traceparent, kept)) in cases.iter().enumerate() {
        let mut req = gw
            .client()
            .get(gw.url("app.test", &format!("/t{i}")))
            .header("tracestate", "congo=t61rcWkgMzE");
        if let Some(t) = traceparent {
            req = req.header("traceparent", *t);
        }
        let e = Echoed::from(req.send().await.unwrap()).await;
        let got = e.header_all("traceparent");
        assert_eq!(got.len(), 1, "case {i}: {got:?}");
        let got = got[0].clone();
        assert_eq!(got.len(), 55, "case {i}: {got}");
        if *kept {
            assert_eq!(got, good);
            assert_eq!(e.header("tracestate").as_deref(), Some("congo=t61rcWkgMzE"));
        } else {
            assert_ne!(Some(got.as_str()), *traceparent, "case {i}");
            assert!(
                got.starts_with("00-") && got.ends_with("-01"),
                "case {i}: {got}"
            );
            assert!(
                got.bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "case {i}: {got}"
            );
            assert_eq!(e.header("tracestate"), None, "case {i}");
        }
        sent_upstream.push(got);
    }
    let logged = || {
        captured
            .access_lines()
            .into_iter()
            .filter(|l| l["path"] != "/warmup")
            .map(|l| {
                (
                    l["path"].as_str().unwrap_or("").to_string(),
                    l["traceparent"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let complete = wait_until(DEADLINE, || logged().len() >= cases.len()).await;
    assert!(complete, "access lines: {:?}", logged());
    let want: Vec<(String, String)> = sent_upstream
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("/t{i}"), t))
        .collect();
    assert_eq!(logged(), want);
}

#[tokio::test]
async fn public_paths_are_forwarded_without_spoofed_identity_or_realmgate_cookies() {
    let up = EchoUpstream::start().await;
    let gw = public_gateway(
        &up,
        "headers_extra = { \"X-Employee-Id\" = \"claims.employeeid\" }",
        "",
    )
    .await;
    let spoofed = [
        ("x-forwarded-user", "admin"),
        ("x-forwarded-email", "ceo@contoso.com"),
        ("x-forwarded-groups", "HR Admins"),
        ("X-MS-CLIENT-PRINCIPAL-NAME", "admin"),
        ("x-ms-client-principal", "e30="),
        ("x-auth-request-user", "admin"),
        ("remote-user", "admin"),
        ("x-pomerium-jwt-assertion", "forged"),
        ("oidc_claim_sub", "admin"),
        ("x_forwarded_user", "admin"),
        ("x-realmgate-assertion", "forged"),
        ("x-employee-id", "42"),
    ];
    let mut req = gw
        .client()
        .get(gw.url("app.test", "/anything"))
        .header("cookie", "realmgate=forged-session; theme=dark")
        .header("x-app-header", "kept");
    for (k, v) in spoofed {
        req = req.header(k, v);
    }
    let e = Echoed::from(req.send().await.unwrap()).await;
    for (k, _) in spoofed {
        assert!(
            e.header_all(&k.to_ascii_lowercase()).is_empty(),
            "{k} reached the upstream: {:?}",
            e.0["headers"]
        );
    }
    assert_eq!(e.header("x-app-header").as_deref(), Some("kept"));
    let cookies = e.header_all("cookie").join("; ");
    assert!(!cookies.contains("forged-session"), "{cookies}");
    assert!(cookies.contains("theme=dark"), "{cookies}");
}

/// A signed-in user, as the callback would store it.
fn signed_in_user() -> realmgate::session::model::Session {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    realmgate::session::model::Session {
        derived: Default::default(),
        version: realmgate::session::model::SESSION_VERSION,
        user_id: "user-oid-1".into(),
        subject: "sub-1".into(),
        tenant_id: None,
        connection: "local".into(),
        issuer: "http://127.0.0.1:9/".into(),
        sid: Some("sid-1".into()),
        email: None,
        email_trust: realmgate::session::model::EmailTrust::Unverified,
        name: Some("Test User".into()),
        preferred_username: Some("tester".into()),
        groups: vec![],
        roles: Vec::new(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        saml_name_id: None,
        tokens_expire_at: None,
        client_addr: None,
        created_at: now,
        expires_at: now + 3600,
    }
}

#[tokio::test]
async fn signed_in_requests_to_an_https_upstream_carry_the_identity_once() {
    // TLS upstreams go through hyper's client, which sends the header map:
    // the identity headers must be in it, once, with and without a body.
    let (up, files) = EchoUpstream::start_tls().await;
    let extra = format!("upstream_ca = {:?}", files.ca_file.display().to_string());
    let settings = realmgate::config::load_str(&config(
        "",
        &route("tls", "app.test", "/", &up.tls_url(), &extra),
    ))
    .expect("config");
    let cookies = realmgate::session::cookie::SessionCookies::new(&settings.session);
    let gw = serve_handler_for_tests(settings).await;
    let store = gw.shared.as_ref().expect("shared").auth.sessions.clone();
    let id = realmgate::session::store::SessionId::generate();
    store.put(&id, signed_in_user()).await.expect("store");
    let cookie = format!("{}={}", cookies.name_for(false), cookies.value(&id));
    for with_body in [false, true] {
        let mut req = if with_body {
            gw.client().post(gw.url("app.test", "/who")).body("payload")
        } else {
            gw.client().get(gw.url("app.test", "/who"))
        };
        req = req
            .header("cookie", &cookie)
            .header("x-forwarded-user", "spoofed");
        let e = Echoed::from(req.send().await.unwrap()).await;
        assert_eq!(e.0["version"], "HTTP/2.0", "{:?}", e.0);
        assert_eq!(
            e.header_all("x-forwarded-user"),
            ["user-oid-1"],
            "body: {with_body}"
        );
        assert_eq!(e.header_all("x-forwarded-name"), ["Test User"]);
    }
}

#[tokio::test]
async fn an_http2_upstream_gets_the_preserved_host_as_its_authority() {
    // An HTTPS upstream that speaks HTTP/2 reads the host from `:authority`:
    // Kestrel replaces `Host` with it, Go's net/http takes `r.Host` from it.
    // With `preserve_host` (the default) it must name the client's host, as
    // `Host` does; without, both are the upstream's own. `:authority` is the
    // host as the router reads it (lowercase, no port): upstream connections
    // are pooled by it, so it must not be whatever port a client typed.
    let (up, files) = EchoUpstream::start_tls().await;
    let upstream_host = format!("localhost:{}", up.addr.port());
    for (preserve, with_body) in [(true, false), (true, true), (false, false)] {
        let extra = format!(
            "public = [\"/\"]\npreserve_host = {preserve}\nupstream_ca = {:?}",
            files.ca_file.display().to_string()
        );
        let gw = TestGateway::start(&config(
            "",
            &route("tls", "app.test", "/", &up.tls_url(), &extra),
        ))
        .await;
        let client_host = format!("app.test:{}", gw.addr.port());
        let mut req = if with_body {
            gw.client().post(gw.url("APP.test", "/who")).body("payload")
        } else {
            gw.client().get(gw.url("app.test", "/who"))
        };
        req = req.header("accept", "application/json");
        let e = Echoed::from(req.send().await.unwrap()).await;
        assert_eq!(e.0["version"], "HTTP/2.0", "{:?}", e.0);
        let (authority, host) = if preserve {
            ("app.test", client_host)
        } else {
            (upstream_host.as_str(), upstream_host.clone())
        };
        assert_eq!(
            e.0["authority"], authority,
            "preserve_host = {preserve}: {:?}",
            e.0
        );
        let sent = e.header("host").unwrap_or_default().to_ascii_lowercase();
        assert_eq!(sent, host, "preserve_host = {preserve}");
    }
}

#[tokio::test]
async fn a_signed_in_websocket_tunnel_closes_when_the_session_is_signed_out() {
    use realmgate::session::store::SessionId;
    let up = EchoUpstream::start().await;
    let settings =
        realmgate::config::load_str(&config("", &route("app", "app.test", "/", &up.url(), "")))
            .expect("config");
    let cookies = realmgate::session::cookie::SessionCookies::new(&settings.session);
    // The handler-only server: the test needs the session store's handle.
    let gw = serve_handler_for_tests(settings).await;
    let store = gw
        .shared
        .as_ref()
        .expect("shared state")
        .auth
        .sessions
        .clone();
    let id = SessionId::generate();
    store
        .put(&id, signed_in_user())
        .await
        .expect("store the session");
    let cookie = format!("{}={}", cookies.name_for(false), cookies.value(&id));

    // A plain request is forwarded with the user's identity.
    let e = Echoed::from(
        gw.client()
            .get(gw.url("app.test", "/who"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e.header("x-forwarded-user").as_deref(), Some("user-oid-1"));

    // The tunnel works while the session exists...
    let mut ws = open_websocket(gw.addr, &cookie).await;
    ws.send(Message::text("before logout")).await.unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "before logout");

    // ...and ends soon after the session is deleted (logout, revocation).
    store.delete(&id).await.expect("delete the session");
    assert!(
        crate::util::websocket_closes(&mut ws, DEADLINE).await,
        "the tunnel outlived its session"
    );
}

/// A WebSocket to app.test's `/ws` through the gateway at `addr`, with
/// `cookie` (none when empty); the handshake must answer 101.
async fn open_websocket(
    addr: std::net::SocketAddr,
    cookie: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("ws://app.test:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    if !cookie.is_empty() {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
    }
    let (ws, resp) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")
            .expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// A handler-only gateway on `toml` (the test builds its reloads'
/// generations with `Gateway::new`, as a SIGHUP does), its shared state,
/// and the cookie of a signed-in user's session in its store.
async fn signed_in_handler(
    toml: &str,
) -> (crate::util::TestGateway, realmgate::handler::Shared, String) {
    use realmgate::session::store::SessionId;
    let settings = realmgate::config::load_str(toml).expect("config");
    let cookies = realmgate::session::cookie::SessionCookies::new(&settings.session);
    let gw = serve_handler_for_tests(settings).await;
    let shared = gw.shared.clone().expect("shared state");
    let id = SessionId::generate();
    shared
        .auth
        .sessions
        .put(&id, signed_in_user())
        .await
        .expect("store the session");
    let cookie = format!("{}={}", cookies.name_for(false), cookies.value(&id));
    (gw, shared, cookie)
}

/// Review 10: a reload that takes a user's access away (a group rule, the
/// connection, the route) ends their open tunnels within the liveness
/// check's period; a reload that changes nothing for them keeps them.
#[tokio::test]
async fn a_reload_that_takes_access_away_closes_the_users_open_tunnels() {
    let up = EchoUpstream::start().await;
    let text = |extra: &str, more: &str| {
        config(
            "",
            &format!("{}{more}", route("app", "app.test", "/", &up.url(), extra)),
        )
    };
    let (gw, shared, cookie) = signed_in_handler(&text("", "")).await;
    // A new generation as a reload builds it (`Gateway::new`), from `toml`.
    let reload = |toml: String| {
        let settings = std::sync::Arc::new(realmgate::config::load_str(&toml).expect("config"));
        realmgate::handler::Gateway::new(settings, &shared).expect("generation")
    };
    let mut ws = open_websocket(gw.addr, &cookie).await;

    // An unrelated change (another route) keeps the tunnel past a check.
    let _unrelated = reload(text("", &route("other", "other.test", "/", &up.url(), "")));
    tokio::time::sleep(realmgate::proxy::CHECK_EVERY * 2).await;
    crate::util::websocket_echoes(&mut ws, "still here").await;

    // A group rule the user does not meet: the tunnel ends, as a new
    // request would be refused.
    let _denied = reload(text("[route.allow]\ngroups = [\"admins\"]", ""));
    assert!(
        crate::util::websocket_closes(&mut ws, DEADLINE).await,
        "the tunnel outlived the reload that denied it"
    );
}

/// Review 11: a tunnel is routed again after a reload, not found by its
/// route's name: a reload that gives its host to another route (here, the
/// old route's name moves to another host and a locked route takes
/// app.test) judges it by the route a new request would reach.
#[tokio::test]
async fn a_reload_that_gives_the_tunnels_host_to_another_route_judges_it_by_that_route() {
    let up = EchoUpstream::start().await;
    let (gw, shared, cookie) =
        signed_in_handler(&config("", &route("app", "app.test", "/", &up.url(), ""))).await;
    let mut ws = open_websocket(gw.addr, &cookie).await;

    let moved = config(
        "",
        &format!(
            "{}{}",
            route("app", "other.test", "/", &up.url(), ""),
            route(
                "locked",
                "app.test",
                "/",
                &up.url(),
                "[route.allow]\ngroups = [\"admins\"]"
            )
        ),
    );
    let settings = std::sync::Arc::new(realmgate::config::load_str(&moved).expect("config"));
    let _moved = realmgate::handler::Gateway::new(settings, &shared).expect("generation");
    assert!(
        crate::util::websocket_closes(&mut ws, DEADLINE).await,
        "the tunnel was judged by its old route's name"
    );
}

/// Review 11 (helper C): a tunnel nobody was judged for (a public path)
/// is routed again after a reload too: one that locks its host ends it; one
/// that keeps the path public keeps it.
#[tokio::test]
async fn a_reload_that_locks_a_public_tunnels_path_closes_it() {
    let up = EchoUpstream::start().await;
    let public =
        |name: &str, extra: &str| config("", &route(name, "app.test", "/", &up.url(), extra));
    let (gw, shared, _) = signed_in_handler(&public("app", "public = [\"/ws\"]")).await;
    let reload = |toml: String| {
        let settings = std::sync::Arc::new(realmgate::config::load_str(&toml).expect("config"));
        realmgate::handler::Gateway::new(settings, &shared).expect("generation")
    };
    // No cookie: an anonymous tunnel.
    let mut ws = open_websocket(gw.addr, "").await;
    let _still_public = reload(public("renamed", "public = [\"/ws\"]"));
    tokio::time::sleep(realmgate::proxy::CHECK_EVERY * 2).await;
    crate::util::websocket_echoes(&mut ws, "still here").await;
    let _locked = reload(public("locked", "[route.allow]\ngroups = [\"admins\"]"));
    assert!(
        crate::util::websocket_closes(&mut ws, DEADLINE).await,
        "the public tunnel stayed open under the locked route"
    );
}

#[tokio::test]
async fn an_upstream_that_does_not_accept_connections_in_time_is_504() {
    // A listener that never accepts, its backlog filled: Linux drops further
    // SYNs, so connecting hangs until the gateway's connect_timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break, // the backlog is full
        }
    }
    let upstream = format!("http://{addr}");
    let toml = config(
        "",
        &route(
            "stuck",
            "app.test",
            "/",
            &upstream,
            "public = [\"/\"]\nconnect_timeout = \"300ms\"\nrequest_timeout = \"30s\"",
        ),
    );
    let gw = TestGateway::start(&toml).await;
    let started = std::time::Instant::now();
    let resp = gw
        .client()
        .get(gw.url("app.test", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "upstream_timeout");
    drop((fillers, listener));
}

/// JSON log lines at INFO of this thread's subscriber, captured until the
/// guard drops.
fn capture_json_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_target(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// `upstream_client = "hyper"` makes hyper-util's client serve every request
/// of its route (GET, POST, WebSocket), while a default route's GET goes
/// through the own codec and its POST through hyper's HTTP/1.1 connection;
/// the access log names the exchange, on a failure too. Both paths proxy
/// the same way.
// current_thread: the gateway's tasks run on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn upstream_client_hyper_serves_its_route_and_the_access_log_names_the_exchange() {
    let (captured, _guard) = capture_json_logs();

    // A bound socket that never listens: connections to it are refused, and
    // the port cannot go to anybody else meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());

    let up = EchoUpstream::start().await;
    let routes = [
        route("auto", "auto.test", "/", &up.url(), "public = [\"/\"]"),
        route(
            "forced",
            "hyper.test",
            "/",
            &up.url(),
            "public = [\"/\"]\nupstream_client = \"hyper\"",
        ),
        route("down", "down.test", "/", &down, "public = [\"/\"]"),
    ]
    .concat();
    let gw = TestGateway::start(&config("", &routes)).await;
    // See one_access_log_line_per_request_without_secrets: register the
    // access-log call site, then rebuild tracing's interest cache.
    let warmup = gw
        .client()
        .get(gw.url("auto.test", "/warmup"))
        .send()
        .await
        .unwrap();
    assert_eq!(warmup.status(), 200);
    tracing::callsite::rebuild_interest_cache();

    for host in ["auto.test", "hyper.test"] {
        let e = Echoed::from(
            gw.client()
                .get(gw.url(host, &format!("/get/{host}?q=1")))
                .header("x-app", "kept")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(e.0["method"], "GET", "{host}");
        assert_eq!(e.uri(), format!("/get/{host}?q=1"), "{host}");
        assert_eq!(e.header("x-app").as_deref(), Some("kept"), "{host}");
        let sent_host = e.header("host").unwrap_or_default();
        assert!(sent_host.starts_with(host), "{host}: Host {sent_host}");

        let body = vec![b'x'; 100_000];
        let e = Echoed::from(
            gw.client()
                .post(gw.url(host, &format!("/post/{host}")))
                .body(body.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(e.0["method"], "POST", "{host}");
        assert_eq!(e.0["body_len"], body.len() as u64, "{host}");

        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let request = format!("ws://{host}:{}/ws", gw.addr.port())
            .into_client_request()
            .unwrap();
        let (mut ws, resp) =
            tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream))
                .await
                .expect("handshake in time")
                .expect("handshake");
        assert_eq!(resp.status(), 101, "{host}");
        ws.send(Message::text("ping")).await.unwrap();
        let echoed = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(echoed.into_text().unwrap().as_str(), "ping", "{host}");
        ws.close(None).await.unwrap();
    }
    let refused = gw
        .client()
        .get(gw.url("down.test", "/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);

    let want = [
        ("auto.test", "/get/auto.test", "raw-h1"),
        ("auto.test", "/post/auto.test", "hyper-h1"),
        ("auto.test", "/ws", "upgrade"),
        ("hyper.test", "/get/hyper.test", "hyper-client"),
        ("hyper.test", "/post/hyper.test", "hyper-client"),
        ("hyper.test", "/ws", "upgrade"),
        ("down.test", "/down", "raw-h1"),
    ];
    let exchanges = || {
        captured
            .access_lines()
            .into_iter()
            .filter(|l| l["path"] != "/warmup")
            .map(|l| {
                let f = &l;
                let text = |k: &str| f[k].as_str().unwrap_or("(none)").to_string();
                (text("host"), text("path"), text("exchange"))
            })
            .collect::<Vec<_>>()
    };
    let complete = wait_until(DEADLINE, || exchanges().len() >= want.len()).await;
    assert!(complete, "access lines: {:?}", exchanges());
    let got = exchanges();
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(h, p, e)| (h.to_string(), p.to_string(), e.to_string()))
        .collect();
    assert_eq!(got, want);
}
