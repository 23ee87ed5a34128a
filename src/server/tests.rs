//! The listener and lifecycle, with a stand-in for `handler::handle` that
//! answers with what the server told it (client address, TLS, route names).
//! End-to-end tests through the real pipeline live in `tests/it/server.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::*;
use crate::config::Settings;
use crate::respond::Body;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

fn settings(extra_server: &str, route: &str) -> Settings {
    settings_on("127.0.0.1:0", extra_server, route)
}

fn settings_on(listen: &str, extra_server: &str, route: &str) -> Settings {
    let text = format!(
        r#"
[server]
listen = "{listen}"
header_read_timeout = "1s"
{extra_server}

[admin]
listen = "127.0.0.1:0"

[session]
secret = "{SECRET}"

[[route]]
name = "{route}"
hosts = ["app.test"]
upstream = "http://127.0.0.1:9"
"#
    );
    crate::config::load_str(&text).expect("test config is valid")
}

fn body(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// Answers `peer=<addr> tls=<bool> route=<first route name> path=<path>`;
/// `/slow` waits until `release` is notified.
fn echo(release: Arc<Notify>) -> conn::TestHandler {
    Arc::new(move |gw, req, info| {
        let release = release.clone();
        Box::pin(async move {
            if req.uri().path() == "/slow" {
                release.notified().await;
            }
            let text = format!(
                "peer={} tls={} route={} path={} version={:?} thread={}",
                info.peer,
                info.tls,
                gw.settings.routes[0].name,
                req.uri().path(),
                req.version(),
                std::thread::current().name().unwrap_or("-"),
            );
            Response::new(body(text))
        })
    })
}

async fn start_echo(settings: Settings) -> (Running, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let running = start_inner(settings, None, Some(echo(release.clone())))
        .await
        .expect("server starts");
    (running, release)
}

/// Sends `request` on a fresh connection and reads until the server closes
/// or `deadline` passes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_until_close(&mut s).await
}

async fn read_until_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn serves_http1_on_the_real_port_with_the_tcp_peer() {
    let (running, _) = start_echo(settings("", "r1")).await;
    assert_ne!(running.addr.port(), 0);
    let res = exchange(running.addr, GET).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("peer=127.0.0.1:"), "{res}");
    assert!(res.contains("tls=false route=r1 path=/x"), "{res}");
    running.shutdown().await;
}

#[tokio::test]
async fn serves_h2c_with_prior_knowledge() {
    let (running, _) = start_echo(settings("", "r1")).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = client
        .get(format!("http://{}/h2", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("path=/h2 version=HTTP/2.0"));
    running.shutdown().await;
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_set_the_client_address() {
    let (running, _) = start_echo(settings(
        "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]",
        "r1",
    ))
    .await;
    let v1 = [&b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\n"[..], GET].concat();
    let res = exchange(running.addr, &v1).await;
    assert!(res.contains("peer=203.0.113.7:51000"), "{res}");

    let header = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (
            "[2001:db8::7]:4000".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:8080".parse::<SocketAddr>().unwrap(),
        ),
    )
    .build()
    .unwrap();
    let res = exchange(running.addr, &[&header[..], GET].concat()).await;
    assert!(res.contains("peer=[2001:db8::7]:4000"), "{res}");

    // Without a header, or with a forged/garbled one: closed, nothing served.
    for bad in [
        GET.to_vec(),
        [&b"PROXY TCP4 1.2.3.999 10.0.0.1 1 2\r\n"[..], GET].concat(),
    ] {
        let res = exchange(running.addr, &bad).await;
        assert_eq!(res, "", "served without a valid PROXY header");
    }
    // The server counts a refusal after the refused stream is dropped, so
    // the client can see the close first: wait for the count (at most 5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rejected(&running, "invalid_header") < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rejected(&running, "invalid_header"), 2);
    assert_eq!(rejected(&running, "untrusted_peer"), 0);
    running.shutdown().await;
}

/// `realmgate_proxy_protocol_rejected_total{reason}` as rendered.
fn rejected(running: &Running, reason: &str) -> u64 {
    let text = running
        .inner
        .shared
        .metrics
        .render(crate::metrics::Format::Prometheus);
    let prefix = format!("realmgate_proxy_protocol_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
}

/// Connects to `addr` (the listener's port on `ip`), sends `request` (a
/// write that fails because the server already closed is fine) and reads
/// until the server closes, within 10 s.
async fn exchange_from(ip: &str, port: u16, request: &[u8]) -> String {
    let addr = SocketAddr::new(ip.parse().unwrap(), port);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    read_until_close(&mut s).await
}

/// PROXY headers, v1 and v2, IPv4, IPv6 and IPv4-mapped, each declaring a
/// client inside trusted_proxies (the forgery of issue 17).
fn forged_headers() -> Vec<Vec<u8>> {
    let v2 = |src: &str, dst: &str| {
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                src.parse::<SocketAddr>().unwrap(),
                dst.parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap()
    };
    vec![
        b"PROXY TCP4 10.1.2.3 10.0.0.1 51000 8080\r\n".to_vec(),
        b"PROXY TCP6 ::ffff:10.1.2.3 ::1 51000 8080\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::7 ::1 51000 8080\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2("10.1.2.3:51000", "10.0.0.1:8080"),
        v2("[::ffff:10.1.2.3]:51000", "[::1]:8080"),
        v2("[2001:db8::7]:51000", "[::1]:8080"),
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap(),
    ]
}

/// SPEC 6.1: a PROXY header is believed only from a TCP peer in
/// trusted_proxies; any other peer is closed before anything is served,
/// whatever it sends (v1, v2, LOCAL, or plain HTTP), and counted.
/// The peer is tried as IPv4, IPv6 and IPv4-mapped (a dual-stack listener
/// sees 127.0.0.1 as ::ffff:127.0.0.1).
#[tokio::test]
async fn proxy_header_from_an_untrusted_peer_closes_the_connection() {
    let (running, _) = start_echo(settings_on(
        "[::]:0",
        "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]",
        "r1",
    ))
    .await;
    let port = running.addr.port();
    let mut sent = 0;
    for peer in ["127.0.0.1", "::1"] {
        let mut attempts = forged_headers();
        attempts.push(Vec::new());
        for header in attempts {
            let res = exchange_from(peer, port, &[&header[..], GET].concat()).await;
            assert_eq!(res, "", "{peer} served after {header:?}");
            sent += 1;
        }
    }
    assert_eq!(rejected(&running, "untrusted_peer"), sent);
    assert_eq!(rejected(&running, "invalid_header"), 0);
    running.shutdown().await;
}

/// A trusted peer is recognised however the socket reports it: a
/// dual-stack listener sees the IPv4 peer 127.0.0.1 as ::ffff:127.0.0.1,
/// which matches "127.0.0.1" and "::ffff:127.0.0.1" alike; ::1 matches "::1".
#[tokio::test]
async fn trusted_peers_match_in_canonical_form_on_a_dual_stack_listener() {
    for (trusted, peer) in [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.0/104", "127.0.0.1"),
        ("::1", "::1"),
    ] {
        let (running, _) = start_echo(settings_on(
            "[::]:0",
            &format!("proxy_protocol = true\ntrusted_proxies = [{trusted:?}]"),
            "r1",
        ))
        .await;
        let port = running.addr.port();
        let v1 = [&b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\n"[..], GET].concat();
        let res = exchange_from(peer, port, &v1).await;
        assert!(
            res.contains("peer=203.0.113.7:51000"),
            "{trusted} / {peer}: {res}"
        );
        // The load balancer's own health check (LOCAL): the peer stays the client.
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        let res = exchange_from(peer, port, &[&local[..], GET].concat()).await;
        assert!(res.starts_with("HTTP/1.1 200"), "{trusted} / {peer}: {res}");
        assert_eq!(
            rejected(&running, "untrusted_peer"),
            0,
            "{trusted} / {peer}"
        );
        running.shutdown().await;
    }
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let (running, _) = start_echo(settings("max_header_bytes = 16384", "r1")).await;
    let big = "a".repeat(20_000);
    let req = format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\n\r\n");
    let res = exchange(running.addr, req.as_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
    // Just under the limit is served.
    let ok = "a".repeat(12_000);
    let req =
        format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Ok: {ok}\r\nConnection: close\r\n\r\n");
    let res = exchange(running.addr, req.as_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    running.shutdown().await;
}

#[tokio::test]
async fn slow_request_head_is_cut_after_header_read_timeout() {
    let (running, _) = start_echo(settings("", "r1")).await;
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // One header byte every 200 ms: never completes within 1 s.
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "slow client was never cut");
    assert!(
        elapsed < Duration::from_secs(4),
        "cut only after {elapsed:?}"
    );

    // A connection that sends nothing at all is cut as well.
    let mut silent = TcpStream::connect(running.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("silent connection was not closed");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(4));
    running.shutdown().await;
}

#[tokio::test]
async fn replace_settings_takes_effect_for_new_requests() {
    let (running, _) = start_echo(settings("", "first")).await;
    assert!(exchange(running.addr, GET).await.contains("route=first"));
    running.replace_settings(settings("", "second")).unwrap();
    assert!(exchange(running.addr, GET).await.contains("route=second"));
    // Turning TLS on needs a restart: refused, old generation kept.
    let dir = tempfile::tempdir().unwrap();
    let (tls, _) = tls_config(dir.path(), "");
    let e = running
        .replace_settings(settings(&tls, "third"))
        .unwrap_err();
    assert!(e.to_string().contains("restart"), "{e}");
    assert!(exchange(running.addr, GET).await.contains("route=second"));
    running.shutdown().await;
}

/// A connection holds its generation between requests (`ConnGateway`), but
/// the request after a reload, on the same keep-alive connection, already
/// uses the new one.
#[tokio::test]
async fn a_kept_alive_connection_uses_the_new_generation_after_a_reload() {
    let (running, _) = start_echo(settings("", "first")).await;
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let keep_alive = b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut answers = Vec::new();
    for round in 0..3 {
        if round == 2 {
            running.replace_settings(settings("", "second")).unwrap();
        }
        s.write_all(keep_alive).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(answers[0].contains("route=first"), "{}", answers[0]);
    assert!(answers[1].contains("route=first"), "{}", answers[1]);
    assert!(answers[2].contains("route=second"), "{}", answers[2]);
    running.shutdown().await;
}

#[tokio::test]
async fn drain_finishes_in_flight_requests_and_refuses_new_connections() {
    let (running, release) = start_echo(settings("", "r1")).await;
    let addr = running.addr;
    let admin = running.admin_addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    // Wait until the request is inside the handler.
    wait_for(|| async {
        let m = http_get(admin, "/metrics").await;
        m.contains("realmgate_open_connections 1")
    })
    .await;
    let shutdown = tokio::spawn(running.shutdown());
    // Readiness drops and the listener closes while the request is in flight.
    wait_for(|| async { http_get(admin, "/readyz").await.starts_with("HTTP/1.1 503") }).await;
    wait_for(|| async { TcpStream::connect(addr).await.is_err() }).await;
    assert!(!shutdown.is_finished());
    release.notify_one();
    let res = read_until_close(&mut slow).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("path=/slow"));
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("drain ends once the last request is done")
        .unwrap();
}

#[tokio::test]
async fn drain_gives_up_after_shutdown_grace() {
    let (running, _release) = start_echo(settings("shutdown_grace = \"300ms\"", "r1")).await;
    let mut slow = TcpStream::connect(running.addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let admin = running.admin_addr;
    wait_for(|| async {
        http_get(admin, "/metrics")
            .await
            .contains("realmgate_open_connections 1")
    })
    .await;
    let started = Instant::now();
    running.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The request that outlived the grace is cut: its connection is closed.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection is closed after shutdown: {read:?}"
    );
}

/// Connections are spread over the proxy threads (the least busy one gets
/// the next connection) and served there, each thread with its own loop.
#[tokio::test]
async fn connections_are_spread_over_the_worker_threads() {
    let (running, _) = start_echo(settings("workers = 3", "r1")).await;
    let mut open = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(running.addr).await.unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered in time")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let thread = text.rsplit("thread=").next().unwrap().trim().to_string();
        threads.push(thread);
        // Kept open, so every worker's load counts it.
        open.push(s);
    }
    threads.sort();
    assert_eq!(
        threads,
        [
            "realmgate-w1",
            "realmgate-w1",
            "realmgate-w2",
            "realmgate-w2",
            "realmgate-w3",
            "realmgate-w3"
        ]
    );
    // A connection that ends frees its place: the next one goes there.
    let closed = open.remove(0);
    drop(closed);
    let admin = running.admin_addr;
    wait_for(|| async {
        http_get(admin, "/metrics")
            .await
            .contains("realmgate_open_connections 5")
    })
    .await;
    let res = exchange(running.addr, GET).await;
    assert!(res.contains("thread=realmgate-w1"), "{res}");
    running.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints() {
    let (running, _) = start_echo(settings("", "r1")).await;
    let admin = running.admin_addr;
    assert!(admin.ip().is_loopback());
    assert!(http_get(admin, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(http_get(admin, "/readyz").await.starts_with("HTTP/1.1 200"));
    let metrics = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains("realmgate_open_connections 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("realmgate_session_lookups_total{result=\"miss\"} 0"),
        "{metrics}"
    );
    assert!(http_get(admin, "/nope").await.starts_with("HTTP/1.1 404"));
    let res = exchange(
        admin,
        b"POST /sessions/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 6\r\nConnection: close\r\n\r\nnotjs!",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    running.shutdown().await;
}

/// `/metrics` on the admin listener: `method` with `accept` (none when
/// empty); the head and the body of the answer.
async fn scrape(admin: SocketAddr, method: &str, accept: &str) -> (String, String) {
    let accept = if accept.is_empty() {
        String::new()
    } else {
        format!("Accept: {accept}\r\n")
    };
    let req = format!(
        "{method} /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    );
    let raw = exchange(admin, req.as_bytes()).await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

/// SPEC 3: `/metrics` is Prometheus text. The text format 0.0.4 unless the
/// scraper lists OpenMetrics at least as high as plain text (as Prometheus
/// does); HEAD answers the same without the body.
#[tokio::test]
async fn metrics_are_prometheus_text_unless_openmetrics_is_preferred() {
    const TEXT: &str = "content-type: text/plain; version=0.0.4; charset=utf-8";
    const OPENMETRICS: &str =
        "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8";
    let (running, _) = start_echo(settings("", "r1")).await;
    let admin = running.admin_addr;
    // Every kind of family with a series.
    let metrics = &running.inner.shared.metrics;
    metrics.record_request("r1", 200, Some(Duration::from_millis(3)));
    metrics.record_idp_call("c", "token", Duration::from_millis(20), true);

    let (head, body) = scrape(admin, "GET", "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(TEXT), "{head}");
    assert!(head.contains("vary: accept"), "{head}");
    crate::metrics::text_grammar::check(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    for line in [
        "# TYPE realmgate_requests_total counter",
        "# TYPE realmgate_build_info gauge",
        "# TYPE realmgate_open_connections gauge",
        "# TYPE realmgate_upstream_latency_seconds histogram",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    assert!(!body.contains("# EOF"), "{body}");

    for (accept, openmetrics) in [
        // Prometheus 2 and 3 by default, and one that asks for 0.0.4 only.
        ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", true),
        ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2", true),
        ("text/plain;version=0.0.4;q=1,*/*;q=0.1", false),
        ("Application/OpenMetrics-Text", true),
        // Equal q: OpenMetrics.
        ("text/plain;q=0.5, application/openmetrics-text;q=0.5", true),
        ("text/plain, application/openmetrics-text;q=0.9", false),
        ("text/*;q=0.9, application/openmetrics-text;q=0.8", false),
        ("*/*", false),
        ("application/*", false),
        ("application/json", false),
        ("application/openmetrics-text;q=0", false),
        // Not a q-value: that entry counts for nothing.
        ("application/openmetrics-text;q=high, text/plain;q=0.1", false),
    ] {
        let (head, body) = scrape(admin, "GET", accept).await;
        assert!(head.starts_with("http/1.1 200"), "{accept}: {head}");
        if openmetrics {
            assert!(head.contains(OPENMETRICS), "{accept}: {head}");
            assert!(body.ends_with("# EOF\n"), "{accept}: {body}");
            assert!(
                body.lines().any(|l| l == "# TYPE realmgate_requests counter"),
                "{accept}: {body}"
            );
        } else {
            assert!(head.contains(TEXT), "{accept}: {head}");
            crate::metrics::text_grammar::check(&body)
                .unwrap_or_else(|e| panic!("{accept}: {e}\n{body}"));
        }
    }

    for (accept, content_type) in [("", TEXT), ("application/openmetrics-text", OPENMETRICS)] {
        let (head, body) = scrape(admin, "HEAD", accept).await;
        assert!(head.starts_with("http/1.1 200"), "HEAD {accept}: {head}");
        assert!(head.contains(content_type), "HEAD {accept}: {head}");
        assert_eq!(body, "", "HEAD {accept}: no body");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn tls_with_alpn_h2_and_http11_and_certificate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, key) = tls_config(dir.path(), "");
    let (running, _) = start_echo(settings(&tls, "r1")).await;

    let (alpn, res, served) = tls_get(running.addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert!(res.is_empty()); // h2 answered nothing to an HTTP/1.1 request line; fine
    let first = served;
    let (alpn, res, _) = tls_get(running.addr, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(res.contains("tls=true"), "{res}");

    // A new certificate in the same files is served after reload.
    write_cert(dir.path(), "localhost");
    running.replace_settings(settings(&tls, "r1")).unwrap();
    let (_, _, second) = tls_get(running.addr, &[b"http/1.1"]).await;
    assert_ne!(first, second, "old certificate still served after reload");

    // A broken key keeps the old certificate. (Loading the configuration
    // already refuses it, as `check` does: settings read before it broke.)
    let read_before = settings(&tls, "r1");
    std::fs::write(&key, "garbage").unwrap();
    assert!(running.replace_settings(read_before).is_err());
    let (_, res, third) = tls_get(running.addr, &[b"http/1.1"]).await;
    assert_eq!(second, third);
    assert!(res.contains("tls=true"));
    running.shutdown().await;
}

/// A TLS connection that agreed `http/1.1` by ALPN is served by hyper's
/// HTTP/1 connection alone (src/server/conn.rs `tls_proto`): the limits of
/// HTTP/1 still hold there (431 on an oversized head, `header_read_timeout`
/// for a slow or silent client after the handshake), and a connection that
/// agreed `h2` is still served HTTP/2.
#[tokio::test]
async fn tls_connections_by_alpn_keep_http1_limits_and_serve_h2() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, _) = tls_config(dir.path(), "max_header_bytes = 16384\n");
    let (running, _) = start_echo(settings(&tls, "r1")).await;
    let addr = running.addr;

    // Oversized head: 431; just under the limit: served.
    let big = "a".repeat(20_000);
    let mut s = tls_connect(addr, &[b"http/1.1"]).await;
    let req = format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let res = tls_read_until_close(&mut s).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
    let ok = "a".repeat(12_000);
    let mut s = tls_connect(addr, &[b"http/1.1"]).await;
    let req =
        format!("GET /ok HTTP/1.1\r\nHost: app.test\r\nX-Ok: {ok}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let res = tls_read_until_close(&mut s).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        res.contains("tls=true route=r1 path=/ok version=HTTP/1.1"),
        "{res}"
    );

    // A head that trickles in is cut after header_read_timeout (1 s).
    let mut s = tls_connect(addr, &[b"http/1.1"]).await;
    let started = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    s.flush().await.unwrap();
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() || s.flush().await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "slow TLS client was never cut");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut only after {:?}",
        started.elapsed()
    );

    // A client silent after its handshake is cut as well.
    let mut silent = tls_connect(addr, &[b"http/1.1"]).await;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("silent TLS connection was not closed");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(4));

    // ALPN h2: served HTTP/2.
    let s = tls_connect(addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://app.test/h2")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("h2 answer within 10 s")
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("tls=true route=r1 path=/h2 version=HTTP/2.0"),
        "{text}"
    );
    running.shutdown().await;
}

/// What an idle connection keeps in its task (SPEC 7: 10,000 idle
/// connections): hyper's connection once, and the TLS stream only by
/// pointer (rustls's connection, over a kilobyte, in its own box), so a TLS
/// connection costs its task plus that box and no second copy of hyper's
/// connection.
#[tokio::test]
async fn a_connection_task_holds_the_tls_stream_by_pointer() {
    let (running, _) = start_echo(settings("", "r1")).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, peer) = listener.accept().await.unwrap();
    let watchdog = watchdog::Watchdog::start(running.inner.stop.subscribe());
    let task = conn::serve(running.inner.clone(), stream, peer, watchdog);
    let size = std::mem::size_of_val(&task);
    let tls_stream = std::mem::size_of::<rustls::ServerConnection>();
    // 1,656 bytes on 2026-12-06 (debug build); with the TLS stream inside
    // hyper's connection it would be this plus the stream (1,168).
    assert!(
        size < 2048,
        "connection task {size} bytes (rustls connection {tls_stream})"
    );
    drop(task);
    running.shutdown().await;
}

// --- helpers ---

/// `extra` (top-level `[server]` lines), then a `[server.tls]` table with a
/// fresh self-signed certificate for localhost written into `dir`; and the
/// key's path (tests break it).
fn tls_config(dir: &std::path::Path, extra: &str) -> (String, std::path::PathBuf) {
    let (cert, key) = write_cert(dir, "localhost");
    let tls = format!(
        "{extra}[server.tls]\ncert = {:?}\nkey = {:?}",
        cert.display().to_string(),
        key.display().to_string()
    );
    (tls, key)
}

fn write_cert(dir: &std::path::Path, host: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

/// Accepts any certificate: the test compares the served certificate itself.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection offering `alpn`, accepting any certificate.
async fn tls_connect(
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

async fn tls_read_until_close(s: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// TLS handshake with the given ALPN offer; for http/1.1 also a GET.
/// Returns (negotiated ALPN, response text, served leaf certificate).
async fn tls_get(addr: SocketAddr, alpn: &[&[u8]]) -> (Option<Vec<u8>>, String, Vec<u8>) {
    let mut tls = tls_connect(addr, alpn).await;
    let (_, conn) = tls.get_ref();
    let negotiated = conn.alpn_protocol().map(|p| p.to_vec());
    let leaf = conn.peer_certificates().unwrap()[0].to_vec();
    let mut text = String::new();
    if negotiated.as_deref() == Some(b"http/1.1") {
        tls.write_all(GET).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        text = String::from_utf8_lossy(&out).into_owned();
    }
    (negotiated, text, leaf)
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    read_until_close(&mut s).await
}

async fn wait_for<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached within 10 s");
}

/// A listen address another socket holds: the typed error names the key,
/// the address and what to do, and carries the system's reason in its one
/// line of text (what `realmgate run` prints and a reload logs).
#[tokio::test]
async fn a_taken_listen_address_is_named_with_the_systems_reason() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().to_string();
    let err = match start_inner(settings_on(&taken, "", "r"), None, None).await {
        Ok(_) => panic!("{taken} is held by this test: binding it must fail"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            StartError::Bind {
                key: "server.listen",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    let prefix = format!(
        "server.listen: cannot bind {taken}; expected a free address (is another process using the port?): "
    );
    let reason = text.strip_prefix(&prefix).unwrap_or_default();
    assert!(!reason.trim().is_empty(), "{text}");
    drop(held);
}
