//! The real binary as operators run it: signals (drain on SIGTERM, reload on
//! SIGHUP), TLS certificate reload, PROXY protocol, slow clients, limits,
//! admin endpoints, `realmgate check`.
//!
//! Each test spawns `realmgate run` with a temp config on port 0 (the ports
//! are read from its JSON "listening" log line) and a tiny upstream in the
//! test that answers with what it received.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::util::{route, AcceptAny, Config};

const BIN: &str = env!("CARGO_BIN_EXE_realmgate");
const SECRET: &str = "0123456789abcdef0123456789abcdef0123";
const WAIT: Duration = Duration::from_secs(20);

// --- a tiny upstream ---

/// Answers `<tag> xff=<X-Forwarded-For> path=<path>`; `/slow` first waits
/// for `release` (and bumps `slow_started`).
struct Upstream {
    addr: SocketAddr,
    release: Arc<Notify>,
    slow_started: Arc<Mutex<u32>>,
}

async fn upstream(tag: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let slow_started = Arc::new(Mutex::new(0));
    let (rel, started) = (release.clone(), slow_started.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (rel, started) = (rel.clone(), started.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let (rel, started) = (rel.clone(), started.clone());
                    async move {
                        if req.uri().path() == "/slow" {
                            *started.lock().unwrap() += 1;
                            rel.notified().await;
                        }
                        let xff = req
                            .headers()
                            .get("x-forwarded-for")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string();
                        let text = format!("{tag} xff={xff} path={}", req.uri().path());
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        release,
        slow_started,
    }
}

// --- the gateway process ---

fn config(upstream: SocketAddr, extra_server: &str) -> String {
    Config::new()
        .secret(SECRET)
        .server("header_read_timeout = \"1s\"\nshutdown_grace = \"10s\"")
        .server(extra_server)
        .table(route(
            "app",
            "app.test",
            "/",
            &format!("http://{upstream}"),
            "public = [\"/\"]",
        ))
        .render()
}

/// A running `realmgate run`; killed on drop if a test fails midway.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Gateway {
    fn spawn(config_text: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("realmgate.toml");
        std::fs::write(&config, config_text).unwrap();
        Self::spawn_with(dir, config)
    }

    fn spawn_with(dir: tempfile::TempDir, config: PathBuf) -> Gateway {
        let mut child = Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "run",
                "--config",
            ])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn realmgate");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addrs) = listening(&line) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addrs);
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let (addr, admin) = match rx.recv_timeout(WAIT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "realmgate did not report its listeners; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Gateway {
            child,
            addr,
            admin,
            log,
            _dir: dir,
            config,
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("realmgate did not exit; log:\n{}", self.log());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `(proxy, admin)` from the JSON "realmgate listening" line.
fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != "realmgate listening" {
        return None;
    }
    Some((
        v.get("listen")?.as_str()?.parse().ok()?,
        v.get("admin")?.as_str()?.parse().ok()?,
    ))
}

// --- HTTP helpers (raw, so every byte is under the test's control) ---

async fn send(addr: SocketAddr, request: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    if s.write_all(request).await.is_err() {
        return String::new();
    }
    read_to_close(&mut s).await
}

async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").into_bytes()
}

async fn admin_get(admin: SocketAddr, path: &str) -> String {
    send(
        admin,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not reached within {WAIT:?}: {what}");
}

// --- tests ---

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0() {
    let up = upstream("up").await;
    let mut gw = Gateway::spawn(&config(up.addr, ""));
    let (addr, admin) = (gw.addr, gw.admin);
    assert!(admin_get(admin, "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));

    let slow = tokio::spawn(async move { send(addr, &get("/slow")).await });
    let started = up.slow_started.clone();
    eventually("slow request reached the upstream", || {
        let n = *started.lock().unwrap();
        async move { n == 1 }
    })
    .await;

    gw.signal("-TERM");
    eventually("readiness turns 503", || async {
        admin_get(admin, "/readyz")
            .await
            .starts_with("HTTP/1.1 503")
    })
    .await;
    eventually("new connections are refused", || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "exited before the in-flight request finished"
    );

    up.release.notify_one();
    let res = slow.await.unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("up xff=127.0.0.1 path=/slow"), "{res}");
    assert_eq!(gw.wait_exit(), Some(0), "log:\n{}", gw.log());
}

#[tokio::test]
async fn sigint_on_an_idle_gateway_exits_0() {
    let up = upstream("up").await;
    let mut gw = Gateway::spawn(&config(up.addr, ""));
    gw.signal("-INT");
    assert_eq!(gw.wait_exit(), Some(0));
}

#[tokio::test]
async fn sighup_applies_a_changed_route_and_keeps_the_old_one_on_a_broken_config() {
    let a = upstream("A").await;
    let b = upstream("B").await;
    let gw = Gateway::spawn(&config(a.addr, ""));
    let addr = gw.addr;
    assert!(send(addr, &get("/")).await.contains("A xff="));

    std::fs::write(&gw.config, config(b.addr, "")).unwrap();
    gw.signal("-HUP");
    eventually("the new upstream serves", || async {
        send(addr, &get("/")).await.contains("B xff=")
    })
    .await;

    // Broken: two problems. Both are logged; B keeps serving.
    let broken = config(a.addr, "")
        .replace("1s", "soon")
        .replace(SECRET, "short");
    std::fs::write(&gw.config, broken).unwrap();
    gw.signal("-HUP");
    eventually("the reload refusal is logged", || {
        let log = gw.log();
        async move { log.contains("reload refused") }
    })
    .await;
    let log = gw.log();
    assert!(log.contains("server.header_read_timeout"), "{log}");
    assert!(log.contains("session.secret"), "{log}");
    assert!(!log.contains("short\""), "a secret value reached the log");
    assert!(send(addr, &get("/")).await.contains("B xff="));
    assert!(admin_get(gw.admin, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn tls_certificate_replaced_on_sighup_is_served_after() {
    let up = upstream("up").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    write_cert(&cert, &key);
    let tls = format!(
        "[server.tls]\ncert = {:?}\nkey = {:?}",
        path(&cert),
        path(&key)
    );
    let config_path = dir.path().join("realmgate.toml");
    std::fs::write(&config_path, config(up.addr, &tls)).unwrap();
    let gw = Gateway::spawn_with(dir, config_path);

    let (alpn, first, res) = tls_get(gw.addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert!(res.is_empty());
    let (alpn, _, res) = tls_get(gw.addr, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(res.contains("up xff=127.0.0.1 path=/"), "{res}");

    write_cert(&cert, &key);
    gw.signal("-HUP");
    let addr = gw.addr;
    eventually("the new certificate is served", || {
        let first = first.clone();
        async move { tls_get(addr, &[b"http/1.1"]).await.1 != first }
    })
    .await;
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_client_address_reaches_the_upstream() {
    let up = upstream("up").await;
    let gw = Gateway::spawn(&config(
        up.addr,
        "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]",
    ));
    let v1 = [
        &b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\n"[..],
        &get("/"),
    ]
    .concat();
    let res = send(gw.addr, &v1).await;
    assert!(res.ends_with("xff=203.0.113.7 path=/"), "{res}");

    let v2 = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (
            "198.51.100.9:40000".parse::<SocketAddr>().unwrap(),
            "10.0.0.1:8080".parse::<SocketAddr>().unwrap(),
        ),
    )
    .build()
    .unwrap();
    let res = send(gw.addr, &[&v2[..], &get("/")].concat()).await;
    assert!(res.ends_with("xff=198.51.100.9 path=/"), "{res}");

    // A request without the header is not served (the connection is closed).
    assert_eq!(send(gw.addr, &get("/")).await, "");
}

#[tokio::test]
async fn slow_request_heads_are_cut_and_oversized_ones_get_431() {
    let up = upstream("up").await;
    let gw = Gateway::spawn(&config(up.addr, "max_header_bytes = 16384"));
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n")
        .await
        .unwrap();
    let mut cut = false;
    // One byte every 200 ms; header_read_timeout is 1 s.
    while started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        // Any answer (close, reset or an error status) ends the wait.
        if tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf))
            .await
            .is_ok()
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "slow client still connected");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let big = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let res = send(gw.addr, big.as_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
}

#[tokio::test]
async fn admin_endpoints_and_metrics_after_a_request() {
    let up = upstream("up").await;
    let gw = Gateway::spawn(&config(up.addr, ""));
    assert!(gw.admin.ip().is_loopback());
    assert!(admin_get(gw.admin, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(admin_get(gw.admin, "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(send(gw.addr, &get("/hello"))
        .await
        .starts_with("HTTP/1.1 200"));
    let metrics = admin_get(gw.admin, "/metrics").await;
    for needle in [
        "realmgate_requests_total{route=\"app\",status=\"200\"} 1",
        "realmgate_upstream_latency_seconds_count{route=\"app\"} 1",
        "realmgate_open_connections",
        "realmgate_session_lookups_total",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
    let body = r#"{"user_id":"nobody"}"#;
    let revoke = send(
        gw.admin,
        format!(
            "POST /sessions/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(revoke.starts_with("HTTP/1.1 200"), "{revoke}");
    assert!(revoke.ends_with("{\"revoked\":0}"), "{revoke}");
}

#[test]
fn check_refuses_the_unedited_example_config_with_its_placeholder_secrets() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&example)
        .env_remove("REALMGATE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    for key in [
        "session.secret",
        "connection[0].client_secret",
        "connection[1].client_secret",
    ] {
        assert!(
            stderr.contains(&format!(
                "  - {key}: is the placeholder of the example configuration"
            )),
            "{key} missing:\n{stderr}"
        );
    }
    assert!(stderr.contains("openssl rand -base64 48"), "{stderr}");
}

#[test]
fn check_prints_callback_urls_for_the_example_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
    // The example with its placeholders replaced, as a user would.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&example)
        .env_remove("REALMGATE_CONFIG")
        .env(
            "REALMGATE_SESSION__SECRET",
            "k4Jd8s0Qm2ZxV7bN1cT9eR5uY3wA6pLq",
        )
        .env(
            "REALMGATE_CONNECTION__CONTOSO__CLIENT_SECRET",
            "a-real-secret",
        )
        .env(
            "REALMGATE_CONNECTION__PARTNER__CLIENT_SECRET",
            "another-real-secret",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Configuration is valid."), "{stdout}");
    assert!(
        stdout.contains("https://hr.contoso.com/.auth/login/contoso/callback"),
        "{stdout}"
    );
}

#[test]
fn check_lists_every_problem_of_a_broken_config_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"nope\"\nshutdown_grace = \"soon\"\n[session]\nsecret = \"short\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.starts_with("Invalid configuration"), "{stderr}");
    for key in [
        "server.listen",
        "server.shutdown_grace",
        "session.secret",
        "route",
    ] {
        assert!(
            stderr.contains(&format!("  - {key}: ")),
            "{key} missing:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("short\""),
        "secret value echoed:\n{stderr}"
    );

    // `run` refuses the same file the same way, before binding anything.
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    // A missing file says how to point at one.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

// --- TLS helpers ---

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn write_cert(cert: &Path, key: &Path) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    // Key first, then certificate: a reload never sees a new cert with an old key
    // for long, and the gateway refuses a mismatched pair anyway.
    std::fs::write(key, c.key_pair.serialize_pem()).unwrap();
    std::fs::write(cert, c.cert.pem()).unwrap();
}

/// Handshake offering `alpn`; with http/1.1 also `GET /`.
/// Returns (negotiated ALPN, served leaf certificate, response text).
async fn tls_get(addr: SocketAddr, alpn: &[&[u8]]) -> (Option<Vec<u8>>, Vec<u8>, String) {
    let mut tls = tls_connect(addr, alpn).await;
    let (_, conn) = tls.get_ref();
    let negotiated = conn.alpn_protocol().map(|p| p.to_vec());
    let leaf = conn.peer_certificates().unwrap()[0].to_vec();
    let mut text = String::new();
    if negotiated.as_deref() == Some(b"http/1.1") {
        tls.write_all(&get("/")).await.unwrap();
        text = read_to_close(&mut tls).await;
    }
    (negotiated, leaf, text)
}

/// A TLS connection to `addr` (any certificate) offering `alpn`.
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

#[tokio::test]
async fn a_tls_http1_head_whose_first_record_is_a_p_is_still_cut_when_slow() {
    // "P" alone in the first TLS record is a prefix of HTTP/2's "PRI ": the
    // connection was taken for HTTP/2, which had no head timeout, and an
    // HTTP/1 head sent one byte at a time then stayed open indefinitely.
    let up = upstream("up").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    write_cert(&cert, &key);
    let tls = format!(
        "idle_timeout = \"3s\"\n[server.tls]\ncert = {:?}\nkey = {:?}",
        path(&cert),
        path(&key)
    );
    let config_path = dir.path().join("realmgate.toml");
    std::fs::write(&config_path, config(up.addr, &tls)).unwrap();
    let gw = Gateway::spawn_with(dir, config_path);

    let mut s = tls_connect(gw.addr, &[b"http/1.1"]).await;
    s.write_all(b"P").await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"OST / HTTP/1.1\r\nHost: app.test\r\n")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    // One byte every 200 ms; header_read_timeout is 1 s.
    while started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(b"X").await.is_err() || s.flush().await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            assert!(!matches!(r, Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 2")));
            cut = true;
            break;
        }
    }
    assert!(
        cut && started.elapsed() < Duration::from_secs(5),
        "a slow head after a lone P kept the connection for {:?}",
        started.elapsed()
    );
}

#[test]
fn schema_command_prints_a_json_schema_of_every_table() {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    for table in [
        "server",
        "admin",
        "session",
        "log",
        "ui",
        "connection",
        "route",
    ] {
        assert!(schema["properties"][table].is_object(), "{table}");
    }
    // The file the example points editors at is what the binary prints.
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(schema, committed);
}

/// The binary's access lines (JSON here) reach the output while the gateway
/// runs, not only at exit: a proxy thread with nothing else to do hands its
/// batch to the writer thread. The line is one JSON object whose values
/// escape what the client sent (a tab, a byte that is not UTF-8, a quote).
#[tokio::test]
async fn access_lines_of_a_quiet_gateway_are_written_without_waiting_for_exit() {
    let up = upstream("up").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("realmgate.toml");
    std::fs::write(&file, config(up.addr, "")).unwrap();
    /// Stops the gateway however the test ends.
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Stop(
        Command::new(BIN)
            .args([
                "--log-level",
                "info",
                "--log-format",
                "json",
                "run",
                "--config",
            ])
            .arg(&file)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        loop {
            let mut line = Vec::new();
            match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let next_json = || -> Option<serde_json::Value> {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        Some(serde_json::from_slice(&line).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {}",
                String::from_utf8_lossy(&line)
            )
        }))
    };
    let addr = loop {
        let Some(v) = next_json() else {
            panic!("no listening line");
        };
        if let Some(a) = v["listen"]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok())
        {
            break a;
        }
    };
    let mut request =
        b"GET /quiet HTTP/1.1\r\nHost: app.test\r\nUser-Agent: ua\t\xff\"x\r\n".to_vec();
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    let res = send(addr, &request).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    // Still running: the line must come without the exit's flush.
    let access = loop {
        match next_json() {
            Some(v) if v["target"] == "access" => break v,
            Some(_) => continue,
            None => panic!("no access line while the gateway runs"),
        }
    };
    assert!(child.0.try_wait().unwrap().is_none(), "the gateway exited");
    drop(child);
    assert_eq!(access["path"], "/quiet", "{access}");
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["user_agent"], "ua\t\\xff\"x", "{access}");
    assert_eq!(access["client"], "127.0.0.1", "{access}");
    assert!(access["bytes"].as_u64().unwrap() > 0, "{access}");
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");
    assert_eq!(
        access["traceparent"].as_str().unwrap().len(),
        55,
        "{access}"
    );
}

/// The default text log written to a pipe (as to a file or a collector):
/// no colour escapes, one access line per request, and every line queued
/// for the log writer thread is out before the process exits.
#[tokio::test]
async fn text_logs_to_a_pipe_have_no_colour_escapes_and_are_flushed_at_exit() {
    let up = upstream("up").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("realmgate.toml");
    std::fs::write(&file, config(up.addr, "")).unwrap();
    let mut child = Command::new(BIN)
        .args(["--log-level", "info", "run", "--config"])
        .arg(&file)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // `... realmgate listening listen=127.0.0.1:PORT admin=...`
            if let Some(rest) = line.split("listen=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("");
                if let (Ok(addr), Some(tx)) = (addr.parse::<SocketAddr>(), tx.take()) {
                    let _ = tx.send(addr);
                }
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let addr = match rx.recv_timeout(WAIT) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("no listening line: {}", reader.join().unwrap());
        }
    };
    for i in 0..3 {
        let res = send(
            addr,
            format!("GET /n{i} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "realmgate did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = reader.join().unwrap();
    assert!(
        !log.contains('\u{1b}'),
        "colour escapes in a piped log:\n{log}"
    );
    for i in 0..3 {
        assert!(
            log.lines()
                .any(|l| l.contains("access") && l.contains(&format!("/n{i}"))),
            "no access line for /n{i}:\n{log}"
        );
    }
}

// --- GET /.auth/health on the traffic port (issue 22 item 3) ---

fn health_request(host: Option<&str>) -> Vec<u8> {
    match host {
        Some(h) => {
            format!("GET /.auth/health HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n")
        }
        None => "GET /.auth/health HTTP/1.0\r\n\r\n".to_string(),
    }
    .into_bytes()
}

#[tokio::test]
async fn health_on_the_traffic_port_answers_an_ip_host_an_unknown_host_and_no_host() {
    let up = upstream("up").await;
    let gw = Gateway::spawn(&config(up.addr, ""));
    let ip_host = gw.addr.to_string();
    for host in [
        Some(ip_host.as_str()),
        Some("unknown.example"),
        Some("app.test"),
        None,
    ] {
        let res = send(gw.addr, &health_request(host)).await;
        assert!(
            res.starts_with("HTTP/1.1 200") || res.starts_with("HTTP/1.0 200"),
            "{host:?}: {res}"
        );
        assert!(res.ends_with("ok\n"), "{host:?}: {res}");
        assert!(
            res.to_ascii_lowercase().contains("cache-control: no-store"),
            "{res}"
        );
    }
    // Only the health path is answered before routing: the rest of an IP
    // Host's requests still get the unknown-host answer, and nothing of the
    // probes reached the upstream.
    let other = send(
        gw.addr,
        format!("GET /.auth/me HTTP/1.1\r\nHost: {ip_host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 421"), "{other}");
    assert_eq!(*up.slow_started.lock().unwrap(), 0);
    let post = send(
        gw.addr,
        b"POST /.auth/health HTTP/1.1\r\nHost: 10.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

/// SIGTERM with `shutdown_delay`: the health answer turns 503 at once, on new
/// connections and on a keep-alive one opened before, while the listener
/// still accepts and proxies (what a balancer still sends is served); a
/// second SIGTERM ends the wait.
#[tokio::test]
async fn health_is_503_from_sigterm_while_shutdown_delay_still_serves_requests() {
    let up = upstream("up").await;
    let mut gw = Gateway::spawn(&config(up.addr, "shutdown_delay = \"60s\""));
    let addr = gw.addr;
    let mut kept = crate::util::KeepAliveConn::connect(addr).await;
    let probe = b"GET /.auth/health HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n";
    assert_eq!(kept.exchange(probe).await.map(|r| r.0), Some(200));

    gw.signal("-TERM");
    eventually("health turns 503 on a new connection", || async move {
        send(addr, &health_request(Some("10.1.2.3")))
            .await
            .starts_with("HTTP/1.1 503")
    })
    .await;
    let (status, body) = kept.exchange(probe).await.expect("kept connection answers");
    assert_eq!(status, 503);
    assert_eq!(body, b"not ready: shutting down\n");
    assert!(admin_get(gw.admin, "/readyz")
        .await
        .starts_with("HTTP/1.1 503"));
    // Still accepting and proxying during the delay.
    let res = send(addr, &get("/late")).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("up xff=127.0.0.1 path=/late"), "{res}");
    assert!(gw.child.try_wait().unwrap().is_none());

    gw.signal("-TERM");
    assert_eq!(gw.wait_exit(), Some(0), "log:\n{}", gw.log());
}

/// Issue 22 item 9: the `[admin]` token (a `*_file` secret) and the audit
/// sink change on SIGHUP like the rest: the old token stops working and the
/// new one works without a restart; the audit file is reopened, so a
/// rotated file is replaced by a new one; admin refusals are audited.
#[tokio::test]
async fn sighup_reloads_the_admin_token_and_reopens_the_audit_file() {
    let up = upstream("up").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin_token");
    let audit = dir.path().join("audit.log");
    let old = "old-token-0123456789abcdef0123456789";
    let new = "new-token-0123456789abcdef0123456789";
    std::fs::write(&token_file, format!("{old}\n")).unwrap();
    let text = format!(
        "{}\n[log]\naudit = \"{}\"\n",
        Config::new()
            .secret(SECRET)
            .admin(&format!("token_file = \"{}\"", path(&token_file)))
            .table(route(
                "app",
                "app.test",
                "/",
                &format!("http://{}", up.addr),
                "public = [\"/\"]"
            ))
            .render(),
        path(&audit)
    );
    let config = dir.path().join("realmgate.toml");
    std::fs::write(&config, text).unwrap();
    let gw = Gateway::spawn_with(dir, config);
    let admin = gw.admin;
    let metrics = |token: &'static str| async move {
        send(
            admin,
            format!(
                "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
    };
    assert!(metrics(old).await.starts_with("HTTP/1.1 200"));
    assert!(metrics(new).await.starts_with("HTTP/1.1 401"));

    // Rotate the audit file away, change the token, reload.
    let rotated = audit.with_extension("log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    std::fs::write(&token_file, format!("{new}\n")).unwrap();
    gw.signal("-HUP");
    // Waits for the log line, not by trying the new token: every refused
    // try would be one more audit event.
    eventually("the reload is done", || {
        let log = gw.log();
        async move { log.contains("configuration reloaded") }
    })
    .await;
    assert!(
        metrics(new).await.starts_with("HTTP/1.1 200"),
        "the new token is refused"
    );
    assert!(
        metrics(old).await.starts_with("HTTP/1.1 401"),
        "the old token still works"
    );

    // The refusal before the reload went to the rotated file, the one after
    // to the new file; neither holds a token.
    let before = std::fs::read_to_string(&rotated).unwrap();
    let after = std::fs::read_to_string(&audit).unwrap();
    for (text, n) in [(&before, 1), (&after, 1)] {
        let refusals: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .filter(|v: &serde_json::Value| v["event"] == "admin_refused")
            .collect();
        assert_eq!(refusals.len(), n, "{text}");
        assert_eq!(refusals[0]["reason"], "invalid_token");
        assert_eq!(refusals[0]["path"], "/metrics");
        assert_eq!(refusals[0]["client_address"], "127.0.0.1");
        assert_eq!(refusals[0]["schema"], 1);
        assert!(
            !text.contains("token-0123"),
            "a token in the audit trail: {text}"
        );
    }
    assert!(!gw.log().contains("token-0123"), "a token in the log");
}
