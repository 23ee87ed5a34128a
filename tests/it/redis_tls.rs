//! `rediss://`: the Redis store over TLS (rustls, the system's roots) to a
//! real `redis-server` with TLS on, through the `realmgate` binary. A
//! server whose certificate the gateway does not trust is refused.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_util::RedisServer;
use crate::util::{route, Config};

const BIN: &str = env!("CARGO_BIN_EXE_realmgate");
const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        // Another CA that signed nothing: "the roots do not include the server's".
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        std::fs::write(
            dir.path().join("other-ca.pem"),
            other.self_signed(&other_key).unwrap().pem(),
        )
        .unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// `realmgate run` with the Redis store at `url`, trusting `ca_file`
/// (SSL_CERT_FILE, read by rustls-native-certs); killed on drop.
struct Gateway {
    child: Child,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn spawn(url: &str, ca_file: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("realmgate.toml");
        std::fs::write(
            &config,
            Config::new()
                .secret(SECRET)
                .session(&format!("store = \"redis\"\nredis_url = \"{url}\""))
                .table(route(
                    "app",
                    "app.test",
                    "/",
                    "http://127.0.0.1:9",
                    "public = [\"/\"]",
                ))
                .render(),
        )
        .unwrap();
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
            .env("SSL_CERT_FILE", ca_file)
            .env_remove("SSL_CERT_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn realmgate");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("\"admin\":\"") {
                    let rest = &line[at + 9..];
                    if let (Some(end), Some(tx)) = (rest.find('"'), tx.take()) {
                        let _ = tx.send(rest[..end].to_string());
                    }
                }
            }
        });
        let admin = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("realmgate logs its admin address")
            .parse()
            .expect("admin address");
        Gateway {
            child,
            admin,
            _dir: dir,
        }
    }

    async fn readyz(&self) -> u16 {
        crate::redis_util::http_status(self.admin, "/readyz").await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_connects_with_a_trusted_certificate_and_refuses_an_untrusted_one() {
    let pki = Pki::new();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let redis = RedisServer::start_tls(&[
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ])
    .await;
    let tls_port = redis.tls_port();
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let trusted = Gateway::spawn(&url, &ca);
    let untrusted = Gateway::spawn(&url, &pki.path("other-ca.pem"));
    let started = Instant::now();
    while trusted.readyz().await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "readyz never 200 over rediss://"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The untrusted one had as long, and keeps failing: its pings never pass.
    for _ in 0..5 {
        assert_eq!(
            untrusted.readyz().await,
            503,
            "an untrusted Redis certificate was accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
