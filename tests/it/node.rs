//! Helpers of the real-world tiers: the node tools in `tests/node/` (their
//! command lines are documented at the top of each script). A missing tool is
//! a test failure that says what to install, never a skip.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a node tool may take to print `READY`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `tests/node`, after checking that node, the npm packages and chromium are there.
pub fn tools_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        node_ok,
        "node is not installed: run scripts/test.sh (it installs Node.js and the test tools)"
    );
    assert!(
        dir.join("node_modules/oidc-provider").is_dir()
            && dir.join("node_modules/playwright-core").is_dir(),
        "the node test tools are not installed: run scripts/test.sh, or `npm ci` in {}",
        dir.display()
    );
    dir
}

/// Debian's chromium, which the browser scripts drive.
pub fn require_chromium() {
    let path = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "{path} not found: run scripts/test.sh (it installs Debian's chromium) or set CHROMIUM_PATH"
    );
}

/// A running `tests/node/provider.mjs` (npm oidc-provider); killed when dropped.
pub struct Provider {
    child: Child,
    issuer: String,
    stderr: Arc<Mutex<String>>,
}

impl Provider {
    /// Starts the provider on `host` (a 127.x.y.z address; a different one from the
    /// gateway's keeps the browser's cookies of the two apart) with `clients` (JSON:
    /// one oidc-provider client object or an array) and, if given, `users` (JSON array).
    pub fn start(
        host: &str,
        clients: &serde_json::Value,
        users: Option<&serde_json::Value>,
    ) -> Provider {
        let dir = tools_dir();
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("provider.mjs"))
            .args(["--host", host, "--port", "0", "--stdin-lifeline"])
            .env("OIDC_CLIENTS", clients.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(users) = users {
            cmd.env("OIDC_USERS", users.to_string());
        }
        let mut child = cmd.spawn().expect("spawn node tests/node/provider.mjs");
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("piped stderr"), stderr.clone());
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("READY ") {
                    let _ = tx.send(issuer.trim().to_owned());
                }
            }
        });
        let mut provider = Provider {
            child,
            issuer: String::new(),
            stderr,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(issuer) => provider.issuer = issuer,
            Err(_) => panic!(
                "provider.mjs did not print READY within {READY_TIMEOUT:?}; stderr:\n{}",
                provider.stderr()
            ),
        }
        provider
    }

    /// `http://127.x.y.z:PORT`, the issuer (discovery at `/.well-known/openid-configuration`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// What the provider logged so far (its errors), for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The outcome of one node tool run.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the tool's own explanation unless it succeeded.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `node tests/node/<script> args…` to completion. Every script bounds its
/// own run time (see `--total-timeout-ms`, `--timeout-ms`), so this returns.
pub async fn run_script(script: &str, args: &[String]) -> Run {
    let dir = tools_dir();
    require_chromium();
    let script = dir.join(script);
    let args = args.to_vec();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("node")
            .arg(&script)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn node {}: {e}", script.display()));
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("node tool thread")
}

/// `tests/node/browser-login.mjs` with `args` (e.g. `--url`, `--email`,
/// `--expect-header NAME=VALUE`, `--screenshots DIR`).
#[allow(dead_code)] // used by the sign-in suites
pub async fn browser_login(args: &[String]) -> Run {
    run_script("browser-login.mjs", args).await
}

/// `tests/node/screenshot.mjs URL OUT [args…]`.
pub async fn screenshot(url: &str, out: &Path, args: &[&str]) -> Run {
    let mut all = vec![url.to_owned(), out.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_script("screenshot.mjs", &all).await
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = into.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
}
