//! A real `redis-server` (Debian package `redis-server`) for tests: started
//! on loopback ports reserved for it (`util::ReservedPort`) with no persistence,
//! killed by PID when the guard drops. Reusable by any test module
//! (`RedisServer::start`).
#![allow(dead_code)] // each test module uses a different subset

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{wait_listening, with_fresh_port, NotListening, ReservedPort};

/// A running `redis-server`; killed (SIGKILL) and reaped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Extra `redis-server` arguments (cluster mode, TLS files).
    extra: Vec<String>,
    /// `port`, then one more port per flag of `flags` (`--tls-port`, `--cluster-port`),
    /// held while the server lives, restarts included.
    ports: Vec<ReservedPort>,
    flags: Vec<&'static str>,
}

impl RedisServer {
    /// Starts `redis-server` on a loopback port of its own and waits until it
    /// answers `PING`. Panics with what to install when it is missing.
    pub async fn start() -> RedisServer {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start) with extra `redis-server` arguments.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_on(extra, &[]).await
    }

    /// [`start_with`](Self::start_with) plus a TLS port of its own ([`tls_port`](Self::tls_port));
    /// `extra` names the certificate files.
    pub async fn start_tls(extra: &[&str]) -> RedisServer {
        Self::start_on(extra, &["--tls-port"]).await
    }

    /// The port given to `--tls-port` by [`start_tls`](Self::start_tls).
    pub fn tls_port(&self) -> u16 {
        self.flag_port("--tls-port")
    }

    fn flag_port(&self, flag: &str) -> u16 {
        let i = self
            .flags
            .iter()
            .position(|f| *f == flag)
            .expect("flag given at start");
        self.ports[i + 1].port()
    }

    /// Starts it with `extra` arguments and, for each of `flags`, that flag with a
    /// port of its own. If it exits at start (a port was taken by a program outside
    /// this test binary), it starts again on new ports, a bounded number of times.
    async fn start_on(extra: &[&str], flags: &[&'static str]) -> RedisServer {
        let server = with_fresh_port("redis-server", |port| {
            let mut ports = vec![port];
            ports.extend(flags.iter().map(|_| ReservedPort::new()));
            let mut server = RedisServer {
                port: ports[0].port(),
                child: None,
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                ports,
                flags: flags.to_vec(),
            };
            server.launch().map(|()| server)
        });
        // Listening; answering follows at once (nothing to load), but wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match command(server.port, "PING").await {
                Ok(reply) if reply.starts_with("+PONG") => return server,
                reply => assert!(
                    Instant::now() < deadline,
                    "redis-server on port {} does not answer PING: {reply:?}\n{}",
                    server.port,
                    server.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, by PID) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports (after [`kill`](Self::kill)); the
    /// data is gone (no persistence), as after a real crash without AOF.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(why) = self.launch() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}: {why}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What redis-server logged (stdout).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Runs one command (inline protocol, space-separated arguments without
    /// spaces inside) and returns the raw reply.
    pub async fn command(&self, line: &str) -> String {
        command(self.port, line)
            .await
            .unwrap_or_else(|e| panic!("redis command {line:?}: {e}"))
    }

    /// Calls per command from `INFO commandstats` (`cmdstat_get` -> n).
    pub async fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let info = self.command("INFO commandstats").await;
        let mut calls = std::collections::BTreeMap::new();
        for line in info.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let Some(name) = name.strip_prefix("cmdstat_") else {
                continue;
            };
            let n = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            calls.insert(name.to_string(), n);
        }
        calls
    }

    /// Spawns the process and waits (bounded) until it listens on all its ports;
    /// on failure, why (it exited: a port was taken), with its log.
    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
        ])
        .arg(self.dir.path())
        .args(&self.extra);
        for (flag, port) in self.flags.iter().zip(&self.ports[1..]) {
            cmd.arg(flag).arg(port.port().to_string());
        }
        let log = std::fs::File::create(self.dir.path().join("redis.log"))
            .expect("redis-server log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server not found: install the Debian package redis-server (scripts/test.sh installs it)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in self.ports.iter().map(ReservedPort::port) {
            let left = deadline.saturating_duration_since(Instant::now());
            match wait_listening(&mut child, port, left) {
                Ok(()) => {}
                Err(NotListening::Exited(status)) => {
                    return Err(format!("redis-server exited ({status}):\n{}", self.log()))
                }
                Err(NotListening::TimedOut) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "redis-server did not listen on port {port} in time:\n{}",
                        self.log()
                    ));
                }
            }
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One inline command on a fresh connection; reads the whole reply (simple,
/// error, integer, bulk or multi-bulk of bulks), bounded by 5 s.
pub async fn command(port: u16, line: &str) -> std::io::Result<String> {
    let io = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("{line}\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if reply_complete(&buf) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "redis reply timed out"))?
}

/// True when `buf` holds one complete RESP2 reply.
fn reply_complete(buf: &[u8]) -> bool {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..end], at + end + 2))
    }
    fn one(buf: &[u8], at: usize) -> Option<usize> {
        let (l, next) = line(buf, at)?;
        let (kind, body) = l.split_first()?;
        let n: i64 = std::str::from_utf8(body).ok()?.parse().unwrap_or(0);
        match kind {
            b'+' | b'-' | b':' => Some(next),
            b'$' if n < 0 => Some(next),
            b'$' => {
                let end = next + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
            b'*' => {
                let mut at = next;
                for _ in 0..n.max(0) {
                    at = one(buf, at)?;
                }
                Some(at)
            }
            _ => Some(next),
        }
    }
    one(buf, 0).is_some()
}

/// A Redis Cluster of `n` masters (no replicas) on loopback ports of their own
/// (client and cluster bus ports both reserved),
/// created with `redis-cli --cluster create`; every node is killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start(n: usize) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(
                RedisServer::start_on(
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                    &["--cluster-port"],
                )
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("redis-cli --cluster create timed out")
        .expect("redis-cli runs (Debian package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node
                .command("CLUSTER INFO")
                .await
                .contains("cluster_state:ok")
            {
                assert!(Instant::now() < deadline, "cluster never reached state ok");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        RedisCluster { nodes }
    }

    /// The seed list for `redis_url`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }
}

/// The status of `GET path` on `addr` (admin endpoints), bounded by 10 s.
pub async fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
