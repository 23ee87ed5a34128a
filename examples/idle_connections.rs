//! Memory cost of idle keep-alive client connections (SPEC 7: 10,000 of them
//! in under 200 MiB). Run by `bench/idle.sh`, which raises the open-files
//! limit first:
//!
//! ```text
//! cargo build --release --bin realmgate --example idle_connections
//! ulimit -n 65536; target/release/examples/idle_connections [COUNT] [REALMGATE_BINARY]
//! ```
//!
//! Starts the realmgate binary (default: the release build next to this
//! example) with one public route to a small in-process upstream, sends one
//! request on a first connection, and reads the gateway's `VmRSS`. Then it
//! opens COUNT (default 10,000) more connections, sends one request on each
//! and leaves them open and idle, as browsers and load balancers do between
//! requests. It reads `VmRSS` again, checks that a sample of the connections
//! still answers, and prints the difference per connection. Linux only.
//!
//! With `IDLE_TLS=1` the gateway terminates TLS (a self-signed ECDSA P-256
//! certificate made at start) and every connection completes a TLS 1.3
//! handshake (ALPN http/1.1) before its request: rustls keeps buffers and
//! state per connection, so this is the figure with TLS on.
//!
//! `IDLE_HOLD=SECONDS` holds the idle connections that long after measuring
//! (and prints the gateway's pid), for a heap profiler to look at them.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A client connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = Box<dyn Io>;

/// How the client connects: plain TCP, or TLS trusting the one certificate.
#[derive(Clone)]
enum Client {
    Plain,
    Tls(tokio_rustls::TlsConnector),
}

const TARGET_MIB: u64 = 200;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-bench\r\n\r\n";
const BODY: &str = "hello from the upstream, a small response body\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|a| a.replace('_', "").parse().expect("COUNT must be a number"))
        .unwrap_or(10_000);
    let binary = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            // target/release/examples/idle_connections -> target/release/realmgate
            exe.parent()
                .and_then(|p| p.parent())
                .expect("examples folder")
                .join("realmgate")
        });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ok = rt.block_on(run(count, &binary));
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run(count: usize, binary: &std::path::Path) -> bool {
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr().await;
    let admin = free_addr().await;
    let config = dir.path().join("realmgate.toml");
    let (client, tls_section) = if std::env::var("IDLE_TLS").is_ok_and(|v| v == "1") {
        tls_setup(dir.path())
    } else {
        (Client::Plain, String::new())
    };
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "{listen}"
# Idle connections must outlive the measurement.
header_read_timeout = "300s"
idle_timeout = "300s"
{tls_section}
[admin]
listen = "{admin}"
[log]
level = "warn"
[session]
secret = "bench-only-secret-bench-only-secret-0123"
[[route]]
name = "bench"
hosts = ["127.0.0.1"]
upstream = "http://{upstream}"
public = ["/"]
"#
        ),
    )
    .expect("write config");
    let mut gateway = Gateway(
        Command::new(binary)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display())),
    );
    let pid = gateway.0.id();

    // The first connection warms everything up (upstream pool, buffers).
    // Generous: under a heap profiler (IDLE_HOLD) the gateway starts slowly.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut first = loop {
        match open(listen, &client).await {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => {
                eprintln!("realmgate did not answer on {listen} within 120 s: {e}");
                return false;
            }
        }
    };
    for _ in 0..100 {
        exchange(&mut first).await.expect("warm-up request");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let started = Instant::now();
    let mut idle = Vec::with_capacity(count);
    while idle.len() < count {
        let batch = (count - idle.len()).min(100);
        let opened =
            futures_util::future::join_all((0..batch).map(|_| open(listen, &client))).await;
        for o in opened {
            match o {
                Ok(s) => idle.push(s),
                Err(e) => {
                    eprintln!(
                        "opening connection {} failed: {e}\n(raise the open-files limit: `ulimit -n 65536`, as bench/idle.sh does)",
                        idle.len() + 1
                    );
                    return false;
                }
            }
        }
    }
    let open_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);

    // The connections are really open and usable: a sample answers again.
    let step = (count / 100).max(1);
    let mut answered = 0;
    for s in idle.iter_mut().step_by(step) {
        if exchange(s).await.is_ok() {
            answered += 1;
        }
    }
    let sampled = idle.iter().step_by(step).count();

    let delta = after.saturating_sub(before);
    let mib = delta / 1024;
    let kind = match client {
        Client::Plain => "",
        Client::Tls(_) => " TLS",
    };
    println!("connections:      {count} idle keep-alive{kind}, one request each");
    println!("opened in:        {open_time:.2?}");
    println!("VmRSS before:     {} MiB", before / 1024);
    println!("VmRSS after:      {} MiB", after / 1024);
    println!(
        "cost:             {mib} MiB ({} bytes per connection)",
        delta * 1024 / count.max(1) as u64
    );
    println!("still answering:  {answered} of {sampled} sampled");
    let scaled = delta * 10_000 / count.max(1) as u64 / 1024;
    let met = scaled < TARGET_MIB && answered == sampled;
    println!(
        "target:           10,000 under {TARGET_MIB} MiB: {} ({scaled} MiB per 10,000)",
        if met { "met" } else { "NOT MET" }
    );
    // IDLE_HOLD=SECONDS keeps the connections open that long before closing
    // them, for a heap profiler attached to the gateway (e.g. valgrind's
    // massif, snapshot taken with `vgdb --pid PID detailed_snapshot FILE`).
    if let Some(hold) = std::env::var("IDLE_HOLD")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        println!("holding:          {hold} s (gateway pid {pid})");
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    drop(idle);
    gateway.stop();
    met
}

/// Kills the gateway when dropped (also on panic).
struct Gateway(Child);

impl Gateway {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn open(addr: SocketAddr, client: &Client) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    let mut s: Conn = match client {
        Client::Plain => Box::new(tcp),
        Client::Tls(connector) => {
            let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
            Box::new(connector.connect(name, tcp).await?)
        }
    };
    exchange(&mut s).await?;
    Ok(s)
}

/// A self-signed certificate for 127.0.0.1 written into `dir`, the
/// `[server.tls]` section naming it, and a client trusting only it.
fn tls_setup(dir: &std::path::Path) -> (Client, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, made.cert.pem()).expect("write certificate");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(made.cert.der().clone())
        .expect("trust the certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let section = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
        cert.display(),
        key.display()
    );
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    (Client::Tls(connector), section)
}

/// One request and its whole response (Content-Length framing, as the upstream sends).
async fn exchange(s: &mut Conn) -> std::io::Result<()> {
    s.write_all(REQUEST).await?;
    // TLS: what rustls encrypted may still be buffered until flushed.
    s.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let read = async {
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    return Err(std::io::Error::other(format!("unexpected answer: {head}")));
                }
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return Ok(());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))?
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A keep-alive upstream that answers every request with a small body.
async fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}",
                    BODY.len()
                );
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = find(&buf, b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("free port");
    l.local_addr().expect("address")
}

/// The process's resident set (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
