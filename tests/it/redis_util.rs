//! A real `redis-server` (Debian package `redis-server`) for tests: started
//! on a free 127.0.0.1 port with no persistence, killed by PID when the
//! guard drops. Reusable by any test module (`RedisServer::start`).
#![allow(dead_code)] // each test module uses a different subset

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `redis-server`; killed (SIGKILL) and reaped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Extra `redis-server` arguments (cluster mode).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it
    /// answers `PING`. Panics with what to install when it is missing.
    pub async fn start() -> RedisServer {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start) with extra `redis-server` arguments.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        // Another test may take the port between our probe and redis's
        // bind: try a few.
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            if server.launch().await {
                return server;
            }
        }
        panic!("redis-server did not start on a free port after 5 attempts");
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

    /// Starts it again on the same port (after [`kill`](Self::kill)); the
    /// data is gone (no persistence), as after a real crash without AOF.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.launch().await {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Spawns the process; true once it answers PING (false if it exited,
    /// e.g. the port was taken).
    async fn launch(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
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
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
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
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if let Ok(reply) = command(self.port, "PING").await {
                if reply.starts_with("+PONG") {
                    self.child = Some(child);
                    return true;
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
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

/// A Redis Cluster of `n` masters (no replicas) on free loopback ports,
/// created with `redis-cli --cluster create`; every node is killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start(n: usize) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
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
