//! The README's first command, `realmgate demo`, as a user runs it: a real
//! process, then a real browser (Debian chromium) signs in as a demo user,
//! sees the identity headers on the demo app, and signs out again.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::node::run_script;

#[tokio::test]
async fn realmgate_demo_lets_a_browser_sign_in_as_a_demo_user() {
    // Port 0: the demo binds a free port and prints the URL to open.
    let mut demo = Command::new(env!("CARGO_BIN_EXE_realmgate"))
        .args(["demo", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn realmgate demo");
    let mut lines = BufReader::new(demo.stdout.take().expect("piped stdout")).lines();
    let mut banner = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Press Ctrl-C") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        ready,
        Ok(true),
        "realmgate demo did not start; it printed:\n{banner}"
    );
    let open = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("Open:"))
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|| panic!("the banner names the URL to open:\n{banner}"));
    assert!(
        open.starts_with("http://localhost:") && open.ends_with('/'),
        "the URL to open: {open}"
    );
    assert!(
        banner.contains("alice@contoso.example"),
        "the banner lists the demo users:\n{banner}"
    );
    // Keep draining stdout so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let shots = tempfile::tempdir().expect("temp dir");
    let args: Vec<String> = [
        "--url",
        &format!("{open}reports?quarter=3"),
        "--email",
        "alice@contoso.example",
        "--expect-header",
        "X-Forwarded-Email=alice@contoso.example",
        "--expect-header",
        "X-Forwarded-Groups~HR Admins",
        "--expect-header",
        "X-Forwarded-User",
        "--expect-text",
        "Signed in as alice@contoso.example",
        "--then-logout",
        "--screenshots",
        &shots.path().display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (ok, stdout, stderr) =
        run_script("browser-login.mjs", &args, Duration::from_secs(120)).await;
    assert!(
        ok,
        "signing in to `realmgate demo` failed:\n{stdout}{stderr}"
    );
    demo.kill().await.expect("stop realmgate demo");
}
