//! Shared helpers for the integration tests: the one test [`World`] (mock IdP,
//! echo upstream, gateway) and its builder (`world`), the config fixtures every
//! gateway starts from (`fixtures`), the demo IdP's hostile modes (`hostile_idp`),
//! an echo upstream that reflects what it received, a gateway started on port 0
//! from a TOML string, HTTP clients, raw-socket helpers and bounded waiting.
#![allow(dead_code)] // each test module uses a different subset

mod fixtures;
mod hostile_idp;
mod world;

pub use fixtures::{
    config, echo_route, entra, nginx_conf_with, route, unreachable_oidc, Config, Table,
};
pub use hostile_idp::{GraphFault, Hostile, HostileIdp, Outage, UserinfoFault};
pub use world::{World, WorldBuilder};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// Every wait in the tests is bounded by this unless a test says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The session secret of every test config.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

// === Waiting ===

/// Polls `condition` every 10 ms until it holds or `deadline` passes; returns whether it held.
pub async fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === Ports for processes the tests start ===
//
// No test picks a "free" port by binding 127.0.0.1:0, dropping the socket and handing
// the number to something else to bind later: between the drop and the bind, any
// other socket on the machine may take it (another test's bind to port 0, a
// connection's source port, a process restarting), and the test fails with "Address
// already in use", or worse talks to somebody else's server. Instead:
//
// - in-process servers bind port 0 themselves and keep the listener;
// - a child process gets a [`ReservedPort`]: a socket bound (not listening) with
//   SO_REUSEADDR that the test keeps for the child's whole life. Linux lets a
//   SO_REUSEADDR listener (nginx, Caddy, HAProxy, redis-server and realmgate all set
//   it) bind a port whose other sockets do not listen, while neither another bind to
//   port 0 nor a connection's source port can land on it. So the child binds it, and
//   binds it again after a restart, and nobody else gets it in between;
// - "nothing listens here" is a `ReservedPort` nobody listens on: connections are
//   refused, and the port cannot be given to anybody else during the test;
// - a program outside this test binary may still bind the port explicitly (another
//   checkout's suite still picking ports): [`with_fresh_port`] then retries the start
//   on a new reservation, a bounded number of times, and readiness is "this child
//   listens on the port" ([`listens_on`]), never "something answers there".

/// How many ports [`with_fresh_port`] tries before it gives up.
pub const PORT_ATTEMPTS: usize = 5;

/// A loopback port held for a process this test starts, or for nothing to listen on.
/// Dropping it releases the port.
pub struct ReservedPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl ReservedPort {
    /// Reserves a port on 127.0.0.1 chosen by the kernel.
    pub fn new() -> ReservedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("local address");
        ReservedPort {
            _socket: socket,
            addr,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Whether process `pid` itself has a socket listening on 127.0.0.1:`port` (or on
/// 0.0.0.0:`port`), from /proc/net/tcp and /proc/PID/fd. Someone else listening
/// there does not count.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // "sl local_address rem_address st ... inode": addresses as hex IP:PORT, the IP in
    // the kernel's byte order; st 0A is LISTEN.
    let wanted = |local: &str| {
        let Some((ip, p)) = local.split_once(':') else {
            return false;
        };
        let loopback_or_any = matches!(ip, "0100007F" | "7F000001" | "00000000");
        loopback_or_any && u16::from_str_radix(p, 16) == Ok(port)
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            (wanted(local) && *state == "0A").then(|| format!("socket:[{inode}]"))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}

/// Why a child did not come up listening.
#[derive(Debug)]
pub enum NotListening {
    /// It exited first (typically "Address already in use").
    Exited(std::process::ExitStatus),
    /// Still running, not listening, when the time was up.
    TimedOut,
}

/// Waits (bounded by `limit`) until `child` itself listens on 127.0.0.1:`port`.
/// Blocking: for the processes a test starts before it sends them traffic.
pub fn wait_listening(
    child: &mut std::process::Child,
    port: u16,
    limit: Duration,
) -> Result<(), NotListening> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(NotListening::Exited(status));
        }
        if listens_on(child.id(), port) {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(NotListening::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts something on a port of its own: `attempt` gets a fresh [`ReservedPort`]
/// each time and returns what it started, or why it failed (its logs); up to
/// [`PORT_ATTEMPTS`] attempts, each failure reported on stderr.
pub fn with_fresh_port<T>(
    what: &str,
    mut attempt: impl FnMut(ReservedPort) -> Result<T, String>,
) -> T {
    let mut failures = Vec::new();
    for n in 1..=PORT_ATTEMPTS {
        let port = ReservedPort::new();
        let addr = port.addr();
        match attempt(port) {
            Ok(started) => return started,
            Err(why) => {
                eprintln!("{what} on {addr}, attempt {n} of {PORT_ATTEMPTS}, failed:\n{why}");
                failures.push(format!("--- attempt {n} on {addr}\n{why}"));
            }
        }
    }
    panic!(
        "{what} did not start on a port of its own in {PORT_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    )
}

// === Echo upstream ===

type EchoBody = BoxBody<Bytes, std::io::Error>;

/// A hyper server on 127.0.0.1:0 that answers with JSON describing the
/// request it got: `method`, `authority` (HTTP/2's `:authority`), `uri`
/// (path+query), `headers` (every value of
/// every header, lowercased names, in order), `body_len`, `body_sha256`.
///
/// Other endpoints: `/slow?ms=N` (answer after N ms), `/stream?bytes=N`
/// (stream N bytes of `b'x'`), `/ws` (WebSocket echo), `/status/{n}`
/// (answer status n), `/close` (drop the connection without answering),
/// `/count` (echo without hashing the body), `/hop-response` (answers with
/// hop-by-hop headers).
pub struct EchoUpstream {
    pub addr: SocketAddr,
    /// Requests received (counted as soon as their head arrives).
    pub requests: Arc<AtomicUsize>,
    /// Request body bytes received so far, over all requests.
    pub body_bytes: Arc<AtomicU64>,
    /// `/stream` response bytes handed to hyper so far, over all requests.
    pub streamed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl EchoUpstream {
    pub async fn start() -> EchoUpstream {
        EchoUpstream::serve(None).await
    }

    /// The same upstream over TLS (HTTP/2 or HTTP/1.1 by ALPN) with a fresh
    /// self-signed certificate for `localhost`; `ca_file` holds it as PEM for
    /// the route's `upstream_ca`.
    pub async fn start_tls() -> (EchoUpstream, TlsFiles) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca_file, cert.cert.pem()).expect("write CA");
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let up = EchoUpstream::serve(Some(acceptor)).await;
        (up, TlsFiles { _dir: dir, ca_file })
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let streamed = Arc::new(AtomicU64::new(0));
        let (r, b, st) = (requests.clone(), body_bytes.clone(), streamed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, b, st) = (r.clone(), b.clone(), st.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        r.fetch_add(1, Ordering::SeqCst);
                        echo(req, b.clone(), st.clone())
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => {
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => {
                                builder
                                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                                    .await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        EchoUpstream {
            addr,
            requests,
            body_bytes,
            streamed,
            task,
        }
    }

    /// `https://localhost:PORT` (for upstreams from `start_tls`).
    pub fn tls_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Asserts the upstream received no request at all (after giving an
    /// in-flight one a moment to arrive: the gateway answered already, so any
    /// forwarded request would have been sent before).
    pub async fn assert_received_nothing(&self) {
        let got_one = wait_until(Duration::from_millis(200), || self.count() > 0).await;
        assert!(!got_one, "upstream received {} request(s)", self.count());
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Files of a TLS echo upstream; removed on drop.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    pub ca_file: std::path::PathBuf,
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok())?
    })
}

fn full_body(b: impl Into<Bytes>) -> EchoBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

async fn echo(
    mut req: Request<Incoming>,
    body_bytes: Arc<AtomicU64>,
    streamed: Arc<AtomicU64>,
) -> Result<Response<EchoBody>, std::io::Error> {
    let path = req.uri().path().to_string();
    if path == "/close" {
        // An error from the service makes hyper drop the connection unanswered.
        return Err(std::io::Error::other("closing without an answer"));
    }
    if path == "/ws" {
        return Ok(websocket_echo(&mut req));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = Response::new(full_body(format!("status {}", status.as_u16())));
        *resp.status_mut() = status;
        return Ok(resp);
    }
    if path == "/set-cookies" {
        // An app setting realmgate's own cookies beside its own.
        return Ok(Response::builder()
            .header("set-cookie", "realmgate=planted; Path=/")
            .header("set-cookie", "__Host-realmgate=planted; Path=/; Secure")
            .header("set-cookie", "realmgate_state=x; Max-Age=0")
            .header("set-cookie", "app=kept; Path=/")
            .body(full_body("cookies"))
            .expect("static response"));
    }
    if path == "/hop-response" {
        // Hop-by-hop headers an upstream might send; none may reach the client.
        return Ok(Response::builder()
            .header("connection", "x-internal-hop")
            .header("x-internal-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic")
            .header("x-app", "ok")
            .body(full_body("hop"))
            .expect("static response"));
    }
    if path == "/slow" {
        let ms = query_param(&req, "ms").unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/stream" {
        let total = query_param(&req, "bytes").unwrap_or(0);
        return Ok(Response::new(stream_body(total, 64 * 1024, Some(streamed))));
    }
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    // HTTP/2's `:authority` (HTTP/1.1 origin-form requests have none).
    let authority = req.uri().authority().map(|a| a.to_string());
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |pq| pq.to_string());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // `/count` only counts body bytes (hashing gigabytes in a debug build is slow).
    let hash = path != "/count";
    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut trailers: Vec<(String, String)> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(std::io::Error::other)?;
        if let Some(t) = frame.trailers_ref() {
            trailers.extend(t.iter().map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            }));
        }
        if let Some(data) = frame.data_ref() {
            len += data.len() as u64;
            body_bytes.fetch_add(data.len() as u64, Ordering::SeqCst);
            if hash {
                hasher.update(data);
            }
        }
    }
    let json = serde_json::json!({
        "method": method,
        "version": version,
        "authority": authority,
        "uri": uri,
        "headers": headers,
        "body_len": len,
        "body_sha256": hex(&hasher.finalize()),
        "trailers": trailers,
    });
    let mut resp = Response::new(full_body(json.to_string()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `total` bytes of `b'x'`, generated lazily in chunks; `counter` (if any)
/// counts the bytes handed out.
pub fn stream_body<E: Send + Sync + 'static>(
    total: u64,
    chunk: usize,
    counter: Option<Arc<AtomicU64>>,
) -> BoxBody<Bytes, E> {
    let block = Bytes::from(vec![b'x'; chunk]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let block = block.clone();
        let counter = counter.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(block.len() as u64) as usize;
            if let Some(c) = counter {
                c.fetch_add(n as u64, Ordering::SeqCst);
            }
            Some((Ok::<_, E>(Frame::data(block.slice(..n))), sent + n as u64))
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<EchoBody> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut resp = Response::new(full_body("not a websocket request"));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full_body(Bytes::new()))
        .expect("static response")
}

/// What the echo upstream reported.
#[derive(Debug)]
pub struct Echoed(pub serde_json::Value);

impl Echoed {
    pub async fn from(resp: reqwest::Response) -> Echoed {
        let text = resp.text().await.expect("echo body");
        Echoed(
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not echo JSON ({e}): {text}")),
        )
    }

    /// Every value of header `name` (lowercase), in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pair| pair[0] == name)
            .filter_map(|pair| pair[1].as_str().map(str::to_string))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let all = self.header_all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
        all.into_iter().next()
    }

    pub fn uri(&self) -> &str {
        self.0["uri"].as_str().unwrap_or_default()
    }
}

// === Gateway ===

/// A running gateway.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub settings: Arc<realmgate::config::Settings>,
    /// The long-lived state (session store...), when served by [`serve_handler_for_tests`].
    pub shared: Option<realmgate::handler::Shared>,
    running: Option<realmgate::server::Running>,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Load `toml` with `config::load_str` and serve it on 127.0.0.1:0 with
    /// `server::start`; while `server::start` is still the skeleton's
    /// `todo!()`, with [`serve_handler_for_tests`] instead.
    pub async fn start(toml: &str) -> TestGateway {
        let mut settings =
            realmgate::config::load_str(toml).unwrap_or_else(|e| panic!("test config: {e}"));
        // The in-process gateways of every test share one stdout, the audit
        // trail's default sink: off unless the test configures one.
        if !toml.lines().any(|l| l.trim_start().starts_with("audit")) {
            settings.log.audit = realmgate::audit::AuditSink::Off;
        }
        let attempt = tokio::spawn(realmgate::server::start(settings.clone(), None)).await;
        match attempt {
            Ok(Ok(running)) => TestGateway {
                addr: running.addr,
                settings: Arc::new(settings),
                shared: None,
                running: Some(running),
                task: None,
            },
            Ok(Err(e)) => panic!("server::start failed: {e:#}"),
            Err(join) => {
                let payload = join.into_panic();
                if is_todo(&payload) {
                    serve_handler_for_tests(settings).await
                } else {
                    std::panic::resume_unwind(payload)
                }
            }
        }
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }

    /// Where the admin listener is bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.running
            .as_ref()
            .expect("served by server::start, which binds the admin listener")
            .admin_addr
    }

    /// A client that reaches every route host at this gateway and never follows redirects.
    pub fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .no_proxy();
        for route in &self.settings.routes {
            for host in &route.hosts {
                b = b.resolve(host, self.addr);
            }
        }
        b = b.resolve("unknown.test", self.addr);
        b.build().expect("reqwest client")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn is_todo(payload: &Box<dyn std::any::Any + Send>) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    text.contains("not yet implemented")
}

/// A minimal accept loop around `realmgate::handler::handle` (HTTP/1.1 and
/// h2c, upgrades on, header buffer sized like the server's), for testing the
/// pipeline without `server::start`.
pub async fn serve_handler_for_tests(settings: realmgate::config::Settings) -> TestGateway {
    let settings = Arc::new(settings);
    let shared = realmgate::handler::Shared::new(&settings).expect("shared state");
    let gw: realmgate::handler::GatewayRef = Arc::new(Arc::new(
        realmgate::handler::Gateway::new(settings.clone(), &shared).expect("gateway"),
    ));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind gateway");
    let addr = listener.local_addr().unwrap();
    let max_buf = settings.server.max_header_bytes.max(8192);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let gw = gw.clone();
            tokio::spawn(async move {
                let conn = realmgate::handler::ConnInfo::new(peer, addr, false);
                let svc = service_fn(move |req| {
                    let (gw, conn) = (gw.clone(), conn.clone());
                    async move { Ok::<_, Infallible>(realmgate::handler::handle(gw, req, conn).await) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http1().max_buf_size(max_buf);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestGateway {
        addr,
        settings,
        shared: Some(shared),
        running: None,
        task: Some(task),
    }
}

/// True when the WebSocket `ws` is closed by the other side (a close frame,
/// an error or the end of the stream) within `within`; messages before it
/// are skipped.
pub async fn websocket_closes<S>(ws: &mut S, within: Duration) -> bool
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt as _;
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends `text` on the WebSocket `ws` (to an echo upstream) and asserts
/// that it comes back within [`DEADLINE`]: the tunnel is still open.
pub async fn websocket_echoes(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    text: &str,
) {
    use futures_util::{SinkExt as _, StreamExt as _};
    ws.send(tokio_tungstenite::tungstenite::Message::text(text))
        .await
        .expect("send on the tunnel");
    let echoed = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("message");
    assert_eq!(echoed.into_text().unwrap().as_str(), text);
}

// === Raw sockets ===

/// Writes `request` on a fresh connection and reads until the server closes
/// or 5 s pass; returns what was read (lossy UTF-8).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may close before reading everything; that is an answer too.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in `raw`, if any.
pub fn raw_status(raw: &str) -> Option<u16> {
    let line = raw.lines().next()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

// === Memory ===

/// This process's resident set size in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One client connection kept open across requests, to show that an answer
/// (a refusal, say) left the connection usable for the next request.
pub struct KeepAliveConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAliveConn {
    pub async fn connect(addr: SocketAddr) -> KeepAliveConn {
        KeepAliveConn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// Writes `request` and reads exactly one response (Content-Length or
    /// chunked framing): its status and body. None when the server closed
    /// the connection (or sent nothing for 5 s) before a whole response.
    pub async fn exchange(&mut self, request: &[u8]) -> Option<(u16, Vec<u8>)> {
        self.stream.write_all(request).await.ok()?;
        let end = Instant::now() + Duration::from_secs(5);
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill(end).await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = raw_status(&head)?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        self.buf.drain(..head_end);
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill(end).await?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                while self.buf.len() < line_end + 2 + size + 2 {
                    self.fill(end).await?;
                }
                body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            let len: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
            while self.buf.len() < len {
                self.fill(end).await?;
            }
            body = self.buf.drain(..len).collect();
        }
        Some((status, body))
    }

    async fn fill(&mut self, end: Instant) -> Option<()> {
        let mut chunk = [0u8; 8192];
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
            _ => None,
        }
    }
}

/// A TLS client certificate verifier that accepts any server certificate
/// (the gateway's is self-signed in the tests, which compare it themselves).
#[derive(Debug)]
pub struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>);

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

// === The port helpers' own tests ===

/// What the other tests rely on: a reserved port refuses connections, is not given
/// to a socket without SO_REUSEADDR (as a connection's source port is not), and can
/// be bound by a SO_REUSEADDR listener again and again (a process and its restarts).
#[tokio::test]
async fn a_reserved_port_refuses_connections_and_admits_only_reuseaddr_listeners() {
    let reserved = ReservedPort::new();
    let err = TcpStream::connect(reserved.addr()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    let plain = tokio::net::TcpSocket::new_v4().unwrap();
    let err = plain.bind(reserved.addr()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    for _ in 0..2 {
        // tokio's (and nginx's, redis's, realmgate's) listeners set SO_REUSEADDR.
        let listener = TcpListener::bind(reserved.addr()).await.unwrap();
        let client = TcpStream::connect(reserved.addr()).await.unwrap();
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // While one listens, a second listener is refused.
        assert!(TcpListener::bind(reserved.addr()).await.is_err());
    }
    // Nothing listens any more: refused again, and still reserved.
    let err = TcpStream::connect(reserved.addr()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let plain = tokio::net::TcpSocket::new_v4().unwrap();
    assert!(plain.bind(reserved.addr()).is_err());
}

/// Readiness is "this process listens there", never "somebody answers there".
#[test]
fn listens_on_tells_the_listening_process_from_any_other() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(listens_on(std::process::id(), port));
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("run sleep");
    assert!(
        !listens_on(other.id(), port),
        "another process does not count"
    );
    assert_eq!(
        wait_listening(&mut other, port, Duration::from_millis(200))
            .err()
            .map(|e| format!("{e:?}")),
        Some("TimedOut".to_string())
    );
    let _ = other.kill();
    let _ = other.wait();
    drop(listener);
    assert!(!listens_on(std::process::id(), port), "closed");
    // Bound but not listening (a reservation) is not listening.
    let reserved = ReservedPort::new();
    assert!(!listens_on(std::process::id(), reserved.port()));
}
