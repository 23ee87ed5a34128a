//! Several replicas sharing sessions through Redis, as deployed: a real `redis-server`,
//! three `realmgate run` processes with `store = "redis"` and the in-process mock Entra
//! as identity provider, behind a real nginx doing round robin with no stickiness, all
//! on 127.0.0.1 (Debian packages `redis-server` and `nginx`, installed by
//! scripts/test.sh; a missing one fails the test with that hint). Redis comes from
//! `redis_util`.
//!
//! What it proves (SPEC 5.2, issue 6): one sign-in is good on every replica; a logout,
//! an admin revocation or a back-channel logout through one replica is refused by all
//! within one second, even where the session was cached; a rolling restart under a
//! steady load loses no request and no session. nginx reports which replica answered
//! in `X-Replica` (its `$upstream_addr`), so the test never guesses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use realmgate::demo::idp::{self, Idp, IdpConfig};
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::deploy::{require, Realmgate};
use crate::redis_util::RedisServer;
use crate::util::{
    echo_route, entra, wait_listening, with_fresh_port, Config, EchoUpstream, Echoed, NotListening,
    ReservedPort, DEADLINE,
};

const APP: &str = "app.test";
const HTML: &str = "text/html,application/xhtml+xml";
const ALICE: &str = "alice@contoso.example";
/// SPEC 5.2: invalidation reaches every replica within one second.
const INVALIDATION: Duration = Duration::from_secs(1);
const REPLICAS: usize = 3;

// === nginx ===

/// nginx round-robin over the replicas, with the settings docs/operations.md and
/// deploy/lb/nginx.conf recommend; killed by PID on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _port: ReservedPort,
}

impl Nginx {
    /// On a loopback port of its own, ready once nginx itself listens there.
    fn start(replicas: &[SocketAddr]) -> Nginx {
        let program = require("nginx", "nginx");
        with_fresh_port("nginx", |port| {
            let dir = tempfile::tempdir().unwrap();
            let addr = port.addr();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir.path(), addr, replicas)).unwrap();
            let child = Command::new(&program)
                .args(["-e", "stderr", "-p"])
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
                .spawn()
                .expect("start nginx");
            let mut nginx = Nginx {
                child,
                addr,
                dir,
                _port: port,
            };
            match wait_listening(&mut nginx.child, addr.port(), DEADLINE) {
                Ok(()) => Ok(nginx),
                Err(NotListening::Exited(status)) => {
                    Err(format!("nginx exited ({status}):\n{}", nginx.logs()))
                }
                Err(NotListening::TimedOut) => panic!(
                    "nginx did not listen on {addr} within {DEADLINE:?}:\n{}",
                    nginx.logs()
                ),
            }
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{APP}:{}{path}", self.addr.port())
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for f in ["stderr.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(f)) {
                out.push_str(&format!("--- nginx {f}\n{text}\n"));
            }
        }
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_conf(dir: &Path, listen: SocketAddr, replicas: &[SocketAddr]) -> String {
    let servers: String = replicas
        .iter()
        .map(|r| format!("        server {r} max_fails=1 fail_timeout=5s;\n"))
        .collect();
    crate::util::nginx_conf_with(
        dir,
        "warn",
        512,
        &format!(
            r#"

    upstream realmgate {{
{servers}        keepalive 32;
        keepalive_timeout 50s;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://realmgate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            # Which replica answered (all of them, comma-separated, after a retry).
            add_header X-Replica $upstream_addr always;
        }}
    }}
"#
        ),
    )
}

// === The cluster ===

/// The replicas and what they need (not a `util::World`: three `realmgate run`, Redis, nginx).
struct Cluster {
    idp: Idp,
    upstream: EchoUpstream,
    /// Runs until the world is dropped.
    _redis: RedisServer,
    replicas: Vec<Realmgate>,
    /// Each replica's config file, on its reserved ports.
    configs: Vec<PathBuf>,
    /// Each replica's proxy and admin ports, held for the world's life so that a
    /// restarted replica finds them free (nginx knows the proxy port).
    _ports: Vec<(ReservedPort, ReservedPort)>,
    nginx: Nginx,
    _dir: tempfile::TempDir,
}

fn replica_config(
    listen: &str,
    admin: &str,
    redis: &str,
    prefix: &str,
    idp: &Idp,
    up: &str,
) -> String {
    Config::new()
        .listen(listen)
        .admin_listen(admin)
        .server(
            r#"trusted_proxies = ["127.0.0.1/32"]
shutdown_grace = "10s""#,
        )
        .session(&format!(
            r#"store = "redis"
redis_url = "{redis}"
redis_key_prefix = "{prefix}""#
        ))
        .table(entra("contoso", "contoso.example").home_realm("contoso.example"))
        .table(echo_route("app", APP).with(r#"headers = "forwarded""#))
        .render_for(&idp.base_url(), up)
}

impl Cluster {
    async fn start() -> Cluster {
        let idp = idp::start(IdpConfig::demo_default(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("mock IdP starts");
        let upstream = EchoUpstream::start().await;
        let redis = RedisServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        // A key prefix of its own, so nothing else in this Redis can interfere.
        let prefix = format!("realmgate-replicas-{}:", std::process::id());
        let mut replicas = Vec::new();
        let mut configs = Vec::new();
        let mut ports = Vec::new();
        for i in 0..REPLICAS {
            let path = dir.path().join(format!("replica{i}.toml"));
            // Reserved ports, not port 0: restarts reuse the ports nginx knows, and
            // nobody else can take them while a replica is down.
            let (proxy, admin) = (ReservedPort::new(), ReservedPort::new());
            let config = replica_config(
                &proxy.addr().to_string(),
                &admin.addr().to_string(),
                &redis.url(),
                &prefix,
                &idp,
                &upstream.url(),
            );
            std::fs::write(&path, config).unwrap();
            let r = Realmgate::start(&path);
            assert_eq!((r.addr, r.admin), (proxy.addr(), admin.addr()));
            replicas.push(r);
            configs.push(path);
            ports.push((proxy, admin));
        }
        for r in &replicas {
            wait_ready(r).await;
        }
        let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
        let nginx = Nginx::start(&addrs);
        Cluster {
            idp,
            upstream,
            _redis: redis,
            replicas,
            configs,
            _ports: ports,
            nginx,
            _dir: dir,
        }
    }

    /// Everything the processes logged, for failure messages.
    fn logs(&self) -> String {
        let mut out = self.nginx.logs();
        for (i, r) in self.replicas.iter().enumerate() {
            out.push_str(&format!("--- replica {i} (pid {})\n{}\n", r.pid(), r.log()));
        }
        out
    }

    /// A client that reaches app.test at nginx (or at `addr`) and follows no redirects.
    fn client_at(&self, addr: SocketAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .resolve(APP, addr)
            .no_proxy()
            .build()
            .unwrap()
    }

    fn client(&self) -> reqwest::Client {
        self.client_at(self.nginx.addr)
    }

    /// Signs ALICE in through nginx (the login's requests land on whichever replicas
    /// round robin picks); returns the session's `Cookie` header value.
    async fn sign_in(&self) -> String {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar)
            .timeout(Duration::from_secs(30))
            .resolve(APP, self.nginx.addr)
            .no_proxy()
            .build()
            .unwrap();
        let resp = browser
            .post(self.nginx.url("/.auth/login"))
            .header(ACCEPT, HTML)
            .form(&[("email", ALICE), ("post_login_redirect_uri", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FOUND, "{}", self.logs());
        let back = self
            .idp
            .complete_login(&header(&resp, LOCATION.as_str()), ALICE)
            .expect("IdP issues a code");
        let resp = browser
            .get(&back.url)
            .header(ACCEPT, HTML)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "the callback (on any replica) signs in:\n{}",
            self.logs()
        );
        resp.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("realmgate="))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_string()
    }

    /// Restarts replica `i` on its reserved ports and waits until it is ready.
    async fn restart(&mut self, i: usize) {
        let r = Realmgate::start(&self.configs[i]);
        assert_eq!(
            (r.addr, r.admin),
            (self.replicas[i].addr, self.replicas[i].admin)
        );
        wait_ready(&r).await;
        self.replicas[i] = r;
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Waits (bounded) until the replica's `/readyz` answers 200.
async fn wait_ready(r: &Realmgate) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/readyz", r.admin);
    let end = Instant::now() + DEADLINE;
    loop {
        if let Ok(resp) = client.get(&url).send().await {
            if resp.status() == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < end,
            "replica (pid {}) not ready within {DEADLINE:?}; log:\n{}",
            r.pid(),
            r.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GET / with the session cookie at `addr` (nginx or one replica, as JSON so that a
/// refused session is a 401, not a redirect); the status and `X-Replica`.
async fn get_app(client: &reqwest::Client, url: &str, cookie: &str) -> (StatusCode, String) {
    let resp = client
        .get(url)
        .header(COOKIE, cookie)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (resp.status(), header(&resp, "x-replica"))
}

/// Asserts every replica, asked directly, serves the session (which also puts it into
/// each replica's local cache).
async fn assert_served_by_every_replica(w: &Cluster, cookie: &str) {
    for (i, r) in w.replicas.iter().enumerate() {
        let url = format!("http://{APP}:{}/", r.addr.port());
        let resp = w
            .client_at(r.addr)
            .get(&url)
            .header(COOKIE, cookie)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "replica {i}:\n{}", w.logs());
        let echoed = Echoed::from(resp).await;
        assert!(
            echoed.header("x-forwarded-user").is_some(),
            "replica {i} sends the identity"
        );
    }
}

/// Polls every replica directly until each refuses `cookie` (401). Fails if a request
/// sent more than [`INVALIDATION`] after `since` was still served: that is what the
/// one-second bound means, however slow the answers are on a loaded machine.
async fn assert_refused_everywhere_within_a_second(
    w: &Cluster,
    cookie: &str,
    since: Instant,
    what: &str,
) {
    let mut pending: BTreeSet<usize> = (0..w.replicas.len()).collect();
    let clients: Vec<reqwest::Client> = w.replicas.iter().map(|r| w.client_at(r.addr)).collect();
    let mut last_accepted: Option<Duration> = None;
    let end = Instant::now() + DEADLINE;
    while !pending.is_empty() {
        for i in pending.clone() {
            let url = format!("http://{APP}:{}/", w.replicas[i].addr.port());
            let sent = since.elapsed();
            let (status, _) = get_app(&clients[i], &url, cookie).await;
            match status {
                StatusCode::UNAUTHORIZED => {
                    pending.remove(&i);
                }
                StatusCode::OK => {
                    last_accepted = last_accepted.max(Some(sent));
                    assert!(
                        sent <= INVALIDATION,
                        "after {what}, replica {i} still served the session to a request sent {sent:?} later:\n{}",
                        w.logs()
                    );
                }
                other => panic!("replica {i} after {what}: {other}\n{}", w.logs()),
            }
        }
        assert!(
            Instant::now() < end,
            "polling did not finish:\n{}",
            w.logs()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    match last_accepted {
        None => eprintln!("{what}: every request after it was refused, on all replicas"),
        Some(t) => eprintln!("{what}: last served request was sent {t:?} after it"),
    }
}

// === Tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sign_in_is_served_by_every_replica_behind_round_robin_nginx() {
    let w = Cluster::start().await;
    let cookie = w.sign_in().await;
    let client = w.client();
    let mut served_by: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..(REPLICAS * 4) {
        let resp = client
            .get(w.nginx.url("/"))
            .header(COOKIE, &cookie)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{}", w.logs());
        let replica = header(&resp, "x-replica");
        let echoed = Echoed::from(resp).await;
        assert!(echoed.header("x-forwarded-user").is_some());
        *served_by.entry(replica).or_default() += 1;
    }
    let expected: BTreeSet<String> = w.replicas.iter().map(|r| r.addr.to_string()).collect();
    let seen: BTreeSet<String> = served_by.keys().cloned().collect();
    assert_eq!(
        seen, expected,
        "every replica served the session: {served_by:?}"
    );
    // The app got every one of them (and the sign-in made none).
    assert_eq!(w.upstream.count(), REPLICAS * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_through_one_replica_is_refused_by_every_replica_within_a_second() {
    let w = Cluster::start().await;
    let cookie = w.sign_in().await;
    assert_served_by_every_replica(&w, &cookie).await;
    let resp = w
        .client()
        .get(w.nginx.url("/.auth/logout"))
        .header(COOKIE, &cookie)
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    let done = Instant::now();
    assert!(resp.status().is_redirection(), "logout: {}", resp.status());
    assert_refused_everywhere_within_a_second(&w, &cookie, done, "a logout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_revocation_on_one_replica_is_refused_by_every_replica_within_a_second() {
    let w = Cluster::start().await;
    let cookie = w.sign_in().await;
    let me: serde_json::Value = w
        .client()
        .get(w.nginx.url("/.auth/me"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = me["user_id"].as_str().expect("user_id").to_string();
    assert_served_by_every_replica(&w, &cookie).await;
    // The access lines of the signed-in requests name the user (by id).
    let named = format!("\"user\":\"{user_id}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    let access_line_names_user = |log: String| {
        log.lines()
            .any(|l| l.contains("\"target\":\"access\"") && l.contains(&named))
    };
    while !w.replicas.iter().any(|r| access_line_names_user(r.log())) {
        assert!(
            Instant::now() < deadline,
            "no access line names the user {user_id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("http://{}/sessions/revoke", w.replicas[1].admin))
        .json(&serde_json::json!({ "user_id": user_id }))
        .send()
        .await
        .unwrap();
    let done = Instant::now();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], 1, "{body}");
    assert_refused_everywhere_within_a_second(&w, &cookie, done, "an admin revocation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backchannel_logout_through_nginx_is_refused_by_every_replica_within_a_second() {
    let w = Cluster::start().await;
    let cookie = w.sign_in().await;
    assert_served_by_every_replica(&w, &cookie).await;
    // Without `sid`: every session of the user ends.
    let token = w
        .idp
        .mint_logout_token(ALICE, idp::DEMO_CLIENT_ID, None)
        .unwrap();
    let resp = w
        .client()
        .post(w.nginx.url("/.auth/backchannel-logout"))
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .unwrap();
    let done = Instant::now();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 1, "{body}");
    assert_refused_everywhere_within_a_second(&w, &cookie, done, "a back-channel logout").await;
    // Each logout token once, on every replica (review 12): a captured
    // token replayed at each replica in turn ends nothing more (without
    // the shared claim, the replicas that had not seen it accepted it).
    for r in &w.replicas {
        let resp = w
            .client_at(r.addr)
            .post(format!(
                "http://{APP}:{}/.auth/backchannel-logout",
                r.addr.port()
            ))
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "replica {}: {body}",
            r.addr
        );
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("replayed")),
            "{body}"
        );
    }
}

/// Results of the background load.
#[derive(Default)]
struct Load {
    ok: AtomicUsize,
    /// Every request that did not come back 200 with the user's identity: (what, replica).
    lost: Mutex<Vec<String>>,
    by_replica: Mutex<BTreeMap<String, usize>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_load_loses_no_request_and_no_session() {
    let mut w = Cluster::start().await;
    let cookie = w.sign_in().await;
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    // A steady load: 4 clients in a loop, each request a signed-in GET through nginx.
    // Bounded: they stop when told, or after 120 s whatever happens.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, url, cookie) = (w.client(), w.nginx.url("/"), cookie.clone());
        let (load, stop) = (load.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                let result = client
                    .get(&url)
                    .header(COOKIE, &cookie)
                    .header(ACCEPT, "application/json")
                    .send()
                    .await;
                match result {
                    Ok(resp) => {
                        let status = resp.status();
                        let replica = header(&resp, "x-replica");
                        let body = resp.text().await.unwrap_or_default();
                        let identified = body.contains("x-forwarded-user");
                        if status == StatusCode::OK && identified {
                            load.ok.fetch_add(1, Ordering::SeqCst);
                            *load.by_replica.lock().unwrap().entry(replica).or_default() += 1;
                        } else {
                            load.lost
                                .lock()
                                .unwrap()
                                .push(format!("{status} via {replica}: {body:.200}"));
                        }
                    }
                    Err(e) => load.lost.lock().unwrap().push(format!("transport: {e}")),
                }
            }
        }));
    }
    let wait_ok = |n: usize| {
        let load = load.clone();
        async move {
            let end = Instant::now() + DEADLINE;
            while load.ok.load(Ordering::SeqCst) < n && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_ok(50).await;
    for i in 0..REPLICAS {
        let before = load.ok.load(Ordering::SeqCst);
        w.replicas[i].signal("-TERM");
        let code = w.replicas[i].wait_exit(DEADLINE);
        assert_eq!(
            code,
            Some(0),
            "replica {i} drains and exits 0:\n{}",
            w.replicas[i].log()
        );
        // Served by the other two while this one is down.
        wait_ok(before + 50).await;
        w.restart(i).await;
        // Give nginx time to use the restarted replica again before stopping the next.
        let addr = w.replicas[i].addr.to_string();
        let end = Instant::now() + Duration::from_secs(15);
        let baseline = load
            .by_replica
            .lock()
            .unwrap()
            .get(&addr)
            .copied()
            .unwrap_or(0);
        while load
            .by_replica
            .lock()
            .unwrap()
            .get(&addr)
            .copied()
            .unwrap_or(0)
            < baseline + 10
        {
            assert!(
                Instant::now() < end,
                "nginx never sent traffic to restarted replica {i}:\n{}",
                w.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let total_before_stop = load.ok.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let lost = load.lost.lock().unwrap().clone();
    assert!(
        lost.is_empty(),
        "{} of {} requests lost during the rolling restart: {:?}\n{}",
        lost.len(),
        total_before_stop + lost.len(),
        &lost[..lost.len().min(10)],
        w.logs()
    );
    // Every replica served the load, and the session outlived every restart: it is
    // still good on each replica, asked directly.
    let by_replica = load.by_replica.lock().unwrap().clone();
    for r in &w.replicas {
        assert!(
            by_replica.contains_key(&r.addr.to_string()),
            "{by_replica:?}"
        );
    }
    assert_served_by_every_replica(&w, &cookie).await;
    // nginx's `$upstream_addr` lists every replica it tried: "a, b" is a retry.
    let retried: usize = by_replica
        .iter()
        .filter(|(k, _)| k.contains(','))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "rolling restart: {} requests, none lost, {retried} retried by nginx on another replica; by replica: {by_replica:?}",
        load.ok.load(Ordering::SeqCst)
    );
}
