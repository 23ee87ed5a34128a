//! Helpers for the tiers that use real third-party parts from npm (see
//! `tests/node/`): the `oidc-provider` server and the playwright-core driven
//! Debian chromium. `scripts/test.sh` installs them; a missing part fails the
//! test with what to run, it is never skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// Panics with the fix when the npm packages are not installed.
pub fn require_node_modules() {
    let dir = node_dir();
    for package in ["oidc-provider", "playwright-core", "samlp"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "npm package {package} is missing: run `npm ci` in {} (scripts/test.sh does it)",
            dir.display()
        );
    }
}

/// `tests/node/provider.mjs` running on 127.0.0.1; killed on drop.
pub struct OidcProvider {
    pub issuer: String,
    _child: Child,
}

impl OidcProvider {
    /// `clients` is the `OIDC_CLIENTS` JSON of the script's contract.
    pub async fn start(clients: serde_json::Value) -> OidcProvider {
        require_node_modules();
        let mut child = Command::new("node")
            .arg(node_dir().join("provider.mjs"))
            .args(["--host", "127.0.0.1", "--port", "0", "--stdin-lifeline"])
            .env("OIDC_CLIENTS", clients.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (install Node.js 20+)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("oidc-provider prints READY within 30 s")
            .expect("read provider stdout")
            .expect("oidc-provider exited before READY");
        let issuer = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected provider output: {line}"))
            .trim()
            .to_string();
        OidcProvider {
            issuer,
            _child: child,
        }
    }
}

/// Runs `tests/node/<script>` with `args`; returns (success, stdout, stderr).
/// Bounded by `limit`.
pub async fn run_script(script: &str, args: &[String], limit: Duration) -> (bool, String, String) {
    require_node_modules();
    let child = Command::new("node")
        .arg(node_dir().join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .expect("wait for node");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
