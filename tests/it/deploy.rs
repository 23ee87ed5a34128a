//! `deploy/`: every file is checked with the tool that reads it, where that tool runs
//! offline on this machine: the systemd unit with `systemd-analyze verify` and its
//! offline security review, the Kubernetes manifests parsed as YAML with their
//! load-bearing fields checked, HAProxy with `haproxy -c`, nginx with `nginx -t`, and
//! every realmgate configuration (the `*.toml` files and the ConfigMap's TOML) with
//! `realmgate check`, its `*_file` secrets and certificates written to a temp dir.
//! Docker cannot build here (no engine), so the Dockerfile gets a structural test, and
//! its HEALTHCHECK command runs for real against a running gateway.
//!
//! Tools come from Debian (`apt-get install systemd haproxy nginx`, installed by
//! scripts/test.sh); a missing one fails the test with that hint.
//!
//! The process helpers here ([`Realmgate`], [`which`], [`require`]) are shared with
//! `replicas`. Processes get their ports as `util` says (no pick-then-bind).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value as Yaml;

use crate::util::{wait_listening, with_fresh_port, NotListening, ReservedPort, DEADLINE, SECRET};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_realmgate");

// === Shared helpers ===

/// The repository's `deploy/` folder.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(rel: &str) -> String {
    let p = deploy().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// `program` on PATH (or in /usr/sbin, /sbin, where Debian puts daemons).
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `program`, or a panic that says how to install it.
pub(crate) fn require(program: &str, package: &str) -> PathBuf {
    which(program).unwrap_or_else(|| {
        panic!("{program} is not installed; this test needs it: apt-get install {package} (scripts/test.sh installs it)")
    })
}

fn output_text(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `realmgate run` process started from a config file; killed (by PID) on drop.
/// Its log (JSON lines on stderr) is collected for failure messages.
pub(crate) struct Realmgate {
    child: Child,
    /// Proxy and admin addresses, from the "realmgate listening" line.
    #[allow(dead_code)] // used by `replicas`
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Realmgate {
    /// Starts `realmgate run --config config` and waits (bounded) until it reports its
    /// listeners. A port the config names (a restart on its reserved ports) may still
    /// be held a moment by a program outside this test binary: while realmgate exits
    /// with "Address already in use", it is started again, for at most [`DEADLINE`].
    pub fn start(config: &Path) -> Realmgate {
        let end = Instant::now() + DEADLINE;
        loop {
            match Self::launch(config) {
                Ok(started) => return started,
                Err(Failed::Exited(log)) if log.contains("Address already in use") => {
                    assert!(
                        Instant::now() < end,
                        "realmgate could not bind its ports within {DEADLINE:?}; last log:\n{log}"
                    );
                    eprintln!("realmgate: a port is in use, starting again; log:\n{log}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(Failed::Exited(log)) => panic!("{log}"),
                Err(Failed::Silent(log)) => panic!("{log}"),
            }
        }
    }

    /// One start: the process, or why not (with its log).
    fn launch(config: &Path) -> Result<Realmgate, Failed> {
        let mut child = Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "run",
                "--config",
            ])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("REALMGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn realmgate");
        let stderr = child.stderr.take().expect("piped stderr");
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
        match rx.recv_timeout(DEADLINE) {
            Ok((addr, admin)) => Ok(Realmgate {
                child,
                addr,
                admin,
                log,
            }),
            Err(_) => {
                // stderr closed early means the process is exiting: give it a moment.
                let mut exited = None;
                let end = Instant::now() + Duration::from_secs(1);
                while exited.is_none() && Instant::now() < end {
                    exited = child.try_wait().ok().flatten();
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = child.kill();
                let _ = child.wait();
                // The reader thread may still be appending the last lines.
                std::thread::sleep(Duration::from_millis(50));
                let log = log.lock().unwrap().clone();
                Err(match exited {
                    Some(status) => Failed::Exited(format!(
                        "realmgate exited ({status}) before listening; log:\n{log}"
                    )),
                    None => Failed::Silent(format!(
                        "realmgate did not report its listeners within {DEADLINE:?}; log:\n{log}"
                    )),
                })
            }
        }
    }

    #[allow(dead_code)] // used by `replicas`
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends `sig` (e.g. "-TERM") to this process only.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {}", self.child.id());
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "realmgate (pid {}) did not exit within {limit:?}; log:\n{}",
            self.child.id(),
            self.log()
        );
    }
}

/// Why [`Realmgate::launch`] failed, with the log.
enum Failed {
    /// The process exited before it reported its listeners.
    Exited(String),
    /// It did not report them in time (and was killed).
    Silent(String),
}

impl Drop for Realmgate {
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

// === realmgate check on deploy/ configs ===

/// Every absolute path a realmgate config names for a file to read: `*_file` keys
/// (strings or lists) and `[server.tls]` `cert`/`key`.
fn named_files(value: &toml::Value, key: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                named_files(v, k, out);
            }
        }
        toml::Value::Array(items) => {
            for v in items {
                named_files(v, key, out);
            }
        }
        toml::Value::String(s) if key.ends_with("_file") || key == "cert" || key == "key" => {
            assert!(
                s.starts_with('/'),
                "{key} = {s:?}: deploy examples use absolute paths"
            );
            out.insert(s.clone());
        }
        _ => {}
    }
}

/// What a test writes into a named file: a certificate, a Redis URL or a secret.
fn fake_file_contents(path: &str, cert: &rcgen::CertifiedKey) -> String {
    if path.ends_with(".crt") || path.ends_with("cert.pem") {
        cert.cert.pem()
    } else if path.ends_with(".key") || path.ends_with("key.pem") {
        cert.key_pair.serialize_pem()
    } else if path.contains("redis_url") {
        "redis://:test-password@127.0.0.1:6379/0\n".into()
    } else {
        // Long enough for the session secret (>= 32 bytes); fine for client secrets.
        format!("{SECRET}\n")
    }
}

/// Runs `realmgate check` on `toml` with every file it names replaced by a file under
/// a temp dir (`overrides` gives the contents of some of them, by the original path).
fn check_config(toml_text: &str, overrides: &BTreeMap<String, String>) -> Output {
    let parsed: toml::Value =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("not TOML ({e}):\n{toml_text}"));
    let mut files = BTreeSet::new();
    named_files(&parsed, "", &mut files);
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["hr.contoso.com".into()]).unwrap();
    let mut text = toml_text.to_string();
    for original in &files {
        let local = dir.path().join(original.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        let contents = overrides
            .get(original)
            .cloned()
            .unwrap_or_else(|| fake_file_contents(original, &cert));
        std::fs::write(&local, contents).unwrap();
        text = text.replace(
            &format!("\"{original}\""),
            &format!("\"{}\"", local.display()),
        );
    }
    let config = dir.path().join("realmgate.toml");
    std::fs::write(&config, &text).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config"]).arg(&config);
    for (k, _) in std::env::vars() {
        if k.starts_with("REALMGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run realmgate check")
}

fn assert_check_passes(what: &str, toml_text: &str) {
    let out = check_config(toml_text, &BTreeMap::new());
    assert!(
        out.status.success(),
        "realmgate check refuses {what}:\n{}",
        output_text(&out)
    );
}

/// Every `*.toml` under deploy/, with its path relative to deploy/.
fn deploy_tomls() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&deploy(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(deploy()).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_realmgate_config_in_deploy_passes_realmgate_check() {
    let tomls = deploy_tomls();
    let names: Vec<&str> = tomls.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "systemd/realmgate.toml",
        "lb/realmgate-behind-nginx.toml",
        "lb/realmgate-behind-haproxy.toml",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for (name, text) in &tomls {
        assert_check_passes(name, text);
    }
    let cm = configmap_toml();
    assert_check_passes("the ConfigMap's realmgate.toml", &cm);
}

// === systemd ===

/// `[section] key=value` lines of a unit file, comments dropped, in order.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn unit_values<'a>(entries: &'a [(String, String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

fn duration_secs(s: &str) -> u64 {
    humantime::parse_duration(s)
        .unwrap_or_else(|e| panic!("{s:?} is not a duration: {e}"))
        .as_secs()
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify_and_its_security_review() {
    let analyze = require("systemd-analyze", "systemd");
    let unit = read("systemd/realmgate.service");
    // verify checks that every Exec*= program exists: point them at the built binary.
    assert!(unit.contains("ExecStart=/usr/local/bin/realmgate run"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("realmgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/realmgate", BIN)).unwrap();

    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze verify");
    // verify exits 0 on unknown keys and only warns: any output is a finding.
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify:\n{}",
        output_text(&out)
    );

    // Overall exposure 2.0 or less ("OK" starts at 5.0, unsandboxed services score ~9.6).
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze security");
    assert!(
        out.status.success(),
        "systemd-analyze security: exposure above 2.0:\n{}",
        output_text(&out)
    );
}

#[test]
fn systemd_unit_is_sandboxed_reloads_with_sighup_and_passes_secrets_as_credentials() {
    let unit = read("systemd/realmgate.service");
    let entries = unit_entries(&unit);
    let one = |key: &str| -> String {
        let v = unit_values(&entries, key);
        assert_eq!(v.len(), 1, "{key}= should be set once: {v:?}");
        v[0].to_string()
    };
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(
        one("CapabilityBoundingSet"),
        "",
        "no capabilities by default"
    );
    assert_eq!(one("AmbientCapabilities"), "");
    // The low-port option is there, commented, for operators who need it.
    assert!(unit.contains("# AmbientCapabilities=CAP_NET_BIND_SERVICE"));
    assert!(unit.contains("# CapabilityBoundingSet=CAP_NET_BIND_SERVICE"));
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(one("ExecStartPre").contains("realmgate check --config /etc/realmgate/realmgate.toml"));

    // Stopping waits longer than realmgate's own drain.
    let config = read("systemd/realmgate.toml");
    let parsed: toml::Value = toml::from_str(&config).unwrap();
    let grace = duration_secs(parsed["server"]["shutdown_grace"].as_str().unwrap());
    assert!(duration_secs(&one("TimeoutStopSec")) > grace);

    // Each credential is read by the config, and each secret file the config names is a
    // credential: /run/credentials/realmgate.service/<name>.
    let creds: BTreeSet<String> = unit_values(&entries, "LoadCredential")
        .iter()
        .map(|v| v.split_once(':').expect("name:path").0.to_string())
        .collect();
    let mut files = BTreeSet::new();
    named_files(&parsed, "", &mut files);
    let named: BTreeSet<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix("/run/credentials/realmgate.service/")
                .unwrap_or_else(|| panic!("{f} is not a credential path"))
                .to_string()
        })
        .collect();
    assert_eq!(
        creds, named,
        "LoadCredential= names vs the config's *_file paths"
    );
    assert!(named.contains("session_secret"));
}

// === Kubernetes ===
//
// deploy/kubernetes is a kustomize tree: base/, components/ (redis, monitoring),
// overlays/ (evaluation, production) and examples/ (Ingresses, applied by hand).
// Neither kubectl nor kustomize is packaged by Debian, so the test command builds the
// kustomizations with [`kustomize`] below: the subset of kustomize the tree uses
// (resources, components, strategic-merge patches of maps, configMapGenerator with a
// content-hash suffix, namespace), checked against `kubectl kustomize` by hand.

fn k8s() -> PathBuf {
    deploy().join("kubernetes")
}

/// The YAML documents of a file (null documents dropped).
fn yaml_docs(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = <Yaml as serde::Deserialize>::deserialize(doc)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        if !value.is_null() {
            out.push(value);
        }
    }
    out
}

/// Every YAML file under deploy/kubernetes, relative to it, with its documents.
fn manifest_files() -> Vec<(String, Vec<Yaml>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&k8s(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(k8s()).unwrap().display().to_string();
            (rel, yaml_docs(&p))
        })
        .collect()
}

/// `patch` merged into `target`: maps key by key, anything else replaced.
fn merge(target: &mut Yaml, patch: &Yaml) {
    match (target, patch) {
        (Yaml::Mapping(t), Yaml::Mapping(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The objects the kustomization in `dir` builds (see the section comment).
fn kustomize(dir: &Path) -> Vec<Yaml> {
    let mut out = Vec::new();
    kustomize_into(dir, &mut out);
    out
}

fn kustomize_into(dir: &Path, out: &mut Vec<Yaml>) {
    let k = &yaml_docs(&dir.join("kustomization.yaml"))[0];
    let list = |key: &str| -> Vec<String> {
        k[key]
            .as_sequence()
            .map(|l| l.iter().map(|v| s(v, key).to_string()).collect())
            .unwrap_or_default()
    };
    for r in list("resources") {
        let p = dir.join(&r);
        if p.is_dir() {
            kustomize_into(&p, out);
        } else {
            out.extend(yaml_docs(&p));
        }
    }
    for c in list("components") {
        let p = dir.join(&c);
        assert_eq!(
            yaml_docs(&p.join("kustomization.yaml"))[0]["kind"].as_str(),
            Some("Component"),
            "{c} is a Component"
        );
        kustomize_into(&p, out);
    }
    if let Some(gens) = k["configMapGenerator"].as_sequence() {
        assert!(
            k["generatorOptions"]["disableNameSuffixHash"].as_bool() != Some(true),
            "generatorOptions.disableNameSuffixHash: config changes would not roll the pods"
        );
        for g in gens {
            assert!(
                g["options"]["disableNameSuffixHash"].as_bool() != Some(true),
                "disableNameSuffixHash: config changes would not roll the pods"
            );
            let name = s(&g["name"], "configMapGenerator name");
            let mut data = serde_yaml_ng::Mapping::new();
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            for f in g["files"].as_sequence().expect("configMapGenerator files") {
                let f = s(f, "file");
                let text = std::fs::read_to_string(dir.join(f)).unwrap();
                sha2::Digest::update(&mut hasher, f.as_bytes());
                sha2::Digest::update(&mut hasher, text.as_bytes());
                data.insert(Yaml::from(f), Yaml::from(text));
            }
            let hash = crate::util::hex(&sha2::Digest::finalize(hasher)[..5]);
            let hashed = format!("{name}-{hash}");
            let cm: Yaml = serde_yaml_ng::from_str(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {hashed}\n"
            ))
            .unwrap();
            let mut cm = cm;
            cm["data"] = Yaml::Mapping(data);
            // References by the generator's name get the hashed one (Deployment volumes).
            for o in out.iter_mut() {
                if let Some(volumes) = o["spec"]["template"]["spec"]["volumes"].as_sequence_mut() {
                    for v in volumes {
                        if v["configMap"]["name"].as_str() == Some(name) {
                            v["configMap"]["name"] = Yaml::from(hashed.clone());
                        }
                    }
                }
            }
            out.push(cm);
        }
    }
    for p in k["patches"].as_sequence().into_iter().flatten() {
        let patch = &yaml_docs(&dir.join(s(&p["path"], "patch path")))[0];
        let (kind, name) = (&patch["kind"], &patch["metadata"]["name"]);
        let target = out
            .iter_mut()
            .find(|o| &o["kind"] == kind && &o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("patch target {kind:?} {name:?} not found"));
        merge(target, patch);
    }
    if let Some(ns) = k["namespace"].as_str() {
        for o in out.iter_mut() {
            if o["kind"].as_str() != Some("Namespace") {
                o["metadata"]["namespace"] = Yaml::from(ns);
            }
        }
    }
}

/// The one object of `kind` (and `name`, when given).
fn object<'a>(all: &'a [Yaml], kind: &str, name: Option<&str>) -> &'a Yaml {
    let found: Vec<&Yaml> = all
        .iter()
        .filter(|v| v["kind"].as_str() == Some(kind))
        .filter(|v| name.is_none_or(|n| v["metadata"]["name"].as_str() == Some(n)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name:?}, found {}",
        found.len()
    );
    found[0]
}

fn s<'a>(v: &'a Yaml, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, is {v:?}"))
}

fn n(v: &Yaml, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what} should be an integer, is {v:?}"))
}

/// The base's realmgate.toml (what the generated ConfigMap holds).
fn configmap_toml() -> String {
    std::fs::read_to_string(k8s().join("base/realmgate.toml")).unwrap()
}

/// A probe's port: an integer, or a named port of `container`.
fn port_number(container: &Yaml, port: &Yaml) -> i64 {
    if let Some(p) = port.as_i64() {
        return p;
    }
    let name = s(port, "probe port");
    container["ports"]
        .as_sequence()
        .expect("container ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .map(|p| n(&p["containerPort"], "containerPort"))
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

#[test]
fn every_kubernetes_manifest_is_yaml_with_kind_and_name_and_used_by_one_kustomization() {
    let files = manifest_files();
    let mut used = BTreeSet::new();
    let mut objects = 0;
    for (file, docs) in &files {
        for v in docs {
            s(&v["apiVersion"], &format!("{file}: apiVersion"));
            let kind = s(&v["kind"], &format!("{file}: kind"));
            if kind == "Kustomization" || kind == "Component" {
                let dir = Path::new(file).parent().unwrap();
                for key in ["resources", "components"] {
                    for r in v[key].as_sequence().into_iter().flatten() {
                        let r = s(r, key);
                        if r.ends_with(".yaml") {
                            used.insert(dir.join(r).display().to_string());
                        }
                    }
                }
                for p in v["patches"].as_sequence().into_iter().flatten() {
                    used.insert(dir.join(s(&p["path"], "patch path")).display().to_string());
                }
            } else {
                s(&v["metadata"]["name"], &format!("{file}: metadata.name"));
                objects += 1;
            }
        }
    }
    assert!(objects >= 15, "{objects} objects");
    // Every manifest is used by a kustomization, except the examples applied by hand.
    let manifests: BTreeSet<String> = files
        .iter()
        .map(|(f, _)| f.clone())
        .filter(|f| !f.ends_with("kustomization.yaml") && !f.starts_with("examples/"))
        .collect();
    assert_eq!(
        used, manifests,
        "kustomizations' files vs the files present"
    );
    // The overlays build; the base has no Redis and no static ConfigMap.
    let base = kustomize(&k8s().join("base"));
    assert!(!base
        .iter()
        .any(|o| o["metadata"]["name"].as_str() == Some("realmgate-redis")));
    for overlay in ["evaluation", "production"] {
        let all = kustomize(&k8s().join("overlays").join(overlay));
        assert!(all.len() > base.len(), "{overlay} adds to the base");
        object(&all, "Deployment", Some("realmgate"));
    }
    // `kubectl apply -k deploy/kubernetes/` still gives what it gave before the
    // overlays: the evaluation setup.
    assert_eq!(
        kustomize(&k8s()),
        kustomize(&k8s().join("overlays/evaluation"))
    );
}

#[test]
fn kubernetes_config_changes_roll_the_pods_through_a_hash_suffixed_configmap() {
    let k = &yaml_docs(&k8s().join("base/kustomization.yaml"))[0];
    let generated = &k["configMapGenerator"][0];
    assert_eq!(generated["name"].as_str(), Some("realmgate-config"));
    let statics: Vec<String> = manifest_files()
        .into_iter()
        .filter(|(_, docs)| docs.iter().any(|d| d["kind"].as_str() == Some("ConfigMap")))
        .map(|(f, _)| f)
        .collect();
    assert!(
        statics.is_empty(),
        "a static ConfigMap does not roll pods: {statics:?}"
    );

    let template = |dir: &Path| {
        let all = kustomize(dir);
        let d = object(&all, "Deployment", Some("realmgate"));
        let volume = d["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find_map(|v| v["configMap"]["name"].as_str())
            .expect("a ConfigMap volume")
            .to_string();
        object(&all, "ConfigMap", Some(&volume));
        assert!(volume.starts_with("realmgate-config-"), "{volume}");
        (volume, d["spec"]["template"].clone())
    };
    let (name, before) = template(&k8s().join("base"));
    // The same tree with one changed line of realmgate.toml.
    let copy = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(k8s().join("base")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
    }
    let toml_path = copy.path().join("realmgate.toml");
    let changed = std::fs::read_to_string(&toml_path)
        .unwrap()
        .replace("shutdown_grace = \"30s\"", "shutdown_grace = \"20s\"");
    std::fs::write(&toml_path, changed).unwrap();
    let (new_name, after) = template(copy.path());
    assert_ne!(name, new_name);
    assert_ne!(before, after, "the pod template changes, so the pods roll");
}

#[test]
fn kubernetes_deployment_has_replicas_probes_on_the_admin_port_and_a_drain_longer_than_shutdown_grace(
) {
    let all = kustomize(&k8s().join("base"));
    let deployment = object(&all, "Deployment", Some("realmgate"));
    let spec = &deployment["spec"];
    assert!(n(&spec["replicas"], "replicas") >= 2);
    assert_eq!(
        n(
            &spec["strategy"]["rollingUpdate"]["maxUnavailable"],
            "maxUnavailable"
        ),
        0,
        "a rolling update never drops below the wanted replicas"
    );
    let labels = &spec["selector"]["matchLabels"];
    let pod = &spec["template"];
    assert_eq!(
        &pod["metadata"]["labels"], labels,
        "selector matches the pod labels"
    );
    let pod_spec = &pod["spec"];
    assert_eq!(
        pod_spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let containers = pod_spec["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );

    // Probes: readiness on /readyz and liveness on /healthz, both on the admin port the
    // ConfigMap's config listens on.
    let toml_text = configmap_toml();
    let config: toml::Value = toml::from_str(&toml_text).unwrap();
    let admin: SocketAddr = config["admin"]["listen"].as_str().unwrap().parse().unwrap();
    assert!(admin.ip().is_unspecified(), "probes reach the pod IP");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            port_number(c, &get["port"]),
            i64::from(admin.port()),
            "{probe} on the admin port"
        );
    }

    // preStop sleeps, then SIGTERM drains for shutdown_grace; the grace period covers both.
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_sequence()
        .expect("preStop exec command");
    assert_eq!(s(&pre_stop[0], "preStop"), "sleep");
    let sleep: u64 = s(&pre_stop[1], "preStop seconds").parse().unwrap();
    let grace = duration_secs(config["server"]["shutdown_grace"].as_str().unwrap());
    let termination = n(
        &pod_spec["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    assert!(
        termination as u64 > sleep + grace,
        "terminationGracePeriodSeconds {termination} must exceed preStop {sleep} + shutdown_grace {grace}"
    );
    assert!(
        c["resources"]["requests"]["cpu"].as_str().is_some(),
        "the HPA needs a CPU request"
    );
}

#[test]
fn kubernetes_secret_is_mounted_as_the_files_the_configmap_names() {
    let all = kustomize(&k8s().join("base"));
    let deployment = object(&all, "Deployment", Some("realmgate"));
    let secret = object(&all, "Secret", Some("realmgate-secrets"));
    let pod_spec = &deployment["spec"]["template"]["spec"];
    let c = &pod_spec["containers"][0];

    // The volumes: the ConfigMap at the config path, the Secret somewhere read-only.
    let volumes = pod_spec["volumes"].as_sequence().expect("volumes");
    let secret_volume = volumes
        .iter()
        .find(|v| v["secret"]["secretName"].as_str() == Some("realmgate-secrets"))
        .expect("a volume of the Secret");
    let config_volume = volumes
        .iter()
        .find(|v| {
            v["configMap"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("realmgate-config-"))
        })
        .expect("a volume of the ConfigMap");
    let mount_of = |volume: &Yaml| -> String {
        let name = s(&volume["name"], "volume name");
        let m = c["volumeMounts"]
            .as_sequence()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("volume {name} is not mounted"));
        assert_eq!(
            m["readOnly"].as_bool(),
            Some(true),
            "{name} mounted read-only"
        );
        s(&m["mountPath"], "mountPath").to_string()
    };
    let secret_dir = mount_of(secret_volume);
    let config_dir = mount_of(config_volume);
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| s(a, "arg"))
        .collect();
    assert_eq!(
        args,
        ["run", "--config", &format!("{config_dir}/realmgate.toml")],
        "realmgate reads the ConfigMap's file"
    );

    // Every *_file path in the TOML is a key of the Secret, under the mount.
    let toml_text = configmap_toml();
    let config: toml::Value = toml::from_str(&toml_text).unwrap();
    let mut files = BTreeSet::new();
    named_files(&config, "", &mut files);
    assert!(!files.is_empty());
    let data = secret["stringData"]
        .as_mapping()
        .expect("Secret stringData");
    let mut overrides = BTreeMap::new();
    for f in &files {
        let key = f
            .strip_prefix(&format!("{secret_dir}/"))
            .unwrap_or_else(|| panic!("{f} is not under the Secret mount {secret_dir}"));
        let value = data
            .get(key)
            .unwrap_or_else(|| panic!("the Secret has no key {key} (named by {f})"));
        overrides.insert(f.clone(), s(value, key).to_string());
        if let Some(items) = secret_volume["secret"]["items"].as_sequence() {
            assert!(
                items
                    .iter()
                    .any(|i| i["key"].as_str() == Some(key) && i["path"].as_str() == Some(key)),
                "the Secret volume's items leave out {key}"
            );
        }
    }
    // The Secret's placeholders are refused, so an unedited Secret cannot go live...
    let out = check_config(&toml_text, &overrides);
    assert_eq!(out.status.code(), Some(64), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("session.secret")
            || String::from_utf8_lossy(&out.stdout).contains("session.secret"),
        "the refusal names the session secret:\n{}",
        output_text(&out)
    );
    // ...and real values pass (every_realmgate_config_in_deploy_passes_realmgate_check).
    assert_check_passes("the ConfigMap's realmgate.toml", &toml_text);
    assert_eq!(
        config["session"]["store"].as_str(),
        Some("redis"),
        "replicas share sessions"
    );
}

#[test]
fn kubernetes_pdb_hpa_service_and_redis_select_the_right_pods() {
    let all = kustomize(&k8s().join("base"));
    let deployment = object(&all, "Deployment", Some("realmgate"));
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];

    let pdb = object(&all, "PodDisruptionBudget", Some("realmgate"));
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    let max_unavailable = pdb["spec"]["maxUnavailable"].as_i64();
    let min_available = pdb["spec"]["minAvailable"].as_i64();
    assert!(
        max_unavailable == Some(1) || min_available.is_some_and(|m| m >= 1),
        "the PDB keeps a replica serving"
    );

    let hpa = object(&all, "HorizontalPodAutoscaler", Some("realmgate"));
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"].as_str(), Some("realmgate"));
    let min = n(&hpa["spec"]["minReplicas"], "minReplicas");
    assert!(min >= 2);
    assert!(n(&hpa["spec"]["maxReplicas"], "maxReplicas") > min);

    let service = object(&all, "Service", Some("realmgate"));
    assert_eq!(&service["spec"]["selector"], labels);
    let ports = service["spec"]["ports"].as_sequence().unwrap();
    assert!(
        ports
            .iter()
            .all(|p| p["targetPort"].as_str() == Some("http")),
        "only the proxy port is on the Service (the admin port has no authentication)"
    );

    // With the evaluation overlay, the Redis the config points at exists as a Service on
    // the URL's host and port, with the password the URL carries.
    let all = kustomize(&k8s().join("overlays/evaluation"));
    let redis = object(&all, "Service", Some("realmgate-redis"));
    let secret = object(&all, "Secret", Some("realmgate-secrets"));
    let url = url::Url::parse(s(&secret["stringData"]["redis_url"], "redis_url")).unwrap();
    assert_eq!(url.host_str(), Some("realmgate-redis"));
    let port = redis["spec"]["ports"][0]["port"].as_i64();
    assert_eq!(port, url.port().map(i64::from));
    assert_eq!(
        url.password(),
        secret["stringData"]["redis_password"].as_str(),
        "the URL carries the password Redis requires"
    );
}

#[test]
fn kubernetes_servicemonitor_scrapes_the_admin_port_with_the_admin_token_and_carries_the_alert_rules(
) {
    let all = kustomize(&k8s().join("overlays/production"));
    let deployment = object(&all, "Deployment", Some("realmgate"));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let monitor = object(&all, "ServiceMonitor", Some("realmgate"));
    let service = object(&all, "Service", Some("realmgate-admin"));
    // The ServiceMonitor selects the admin Service, which selects the pods.
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(&service["metadata"]["labels"][k], v, "label {k:?}");
    }
    assert_eq!(
        &service["spec"]["selector"],
        &deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"));
    // job="realmgate", as the alert rules and the dashboard query.
    let job_label = s(&monitor["spec"]["jobLabel"], "jobLabel");
    assert_eq!(
        service["metadata"]["labels"][job_label].as_str(),
        Some("realmgate")
    );
    let rules = std::fs::read_to_string(deploy().join("monitoring/realmgate-alerts.yaml")).unwrap();
    assert!(rules.contains("up{job=\"realmgate\"}"));

    // Its endpoint: the admin Service port, the container's admin port, the config's
    // admin listener, /metrics with the token of the Secret realmgate reads.
    let endpoint = &monitor["spec"]["endpoints"][0];
    let port = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the endpoint's port is on the admin Service");
    let config: toml::Value = toml::from_str(&configmap_toml()).unwrap();
    let admin: SocketAddr = config["admin"]["listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        port_number(container, &port["targetPort"]),
        i64::from(admin.port())
    );
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    let credentials = &endpoint["authorization"]["credentials"];
    assert_eq!(endpoint["authorization"]["type"].as_str(), Some("Bearer"));
    assert_eq!(credentials["name"].as_str(), Some("realmgate-secrets"));
    let key = s(&credentials["key"], "credentials key");
    let secret = object(&all, "Secret", Some("realmgate-secrets"));
    assert!(
        secret["stringData"][key].is_string(),
        "the Secret has {key}"
    );
    assert_eq!(
        config["admin"]["token_file"].as_str(),
        Some(format!("/run/secrets/realmgate/{key}").as_str()),
        "realmgate checks the token the ServiceMonitor sends"
    );
    // The NetworkPolicy admits the monitoring namespace to that port.
    let policy = object(&all, "NetworkPolicy", Some("realmgate"));
    assert!(policy["spec"]["ingress"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(
            |r| r["ports"][0]["port"].as_i64() == Some(i64::from(admin.port()))
                && r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    .as_str()
                    == Some("monitoring")
        ));

    // The PrometheusRule holds deploy/monitoring's rules, unchanged.
    let rule = object(&all, "PrometheusRule", Some("realmgate"));
    let standalone: Yaml = serde_yaml_ng::from_str(&rules).unwrap();
    assert_eq!(rule["spec"]["groups"], standalone["groups"]);
}

#[test]
fn kubernetes_ingress_examples_reach_realmgate_and_forward_auth_uses_verify_and_the_sign_in_page() {
    let base = kustomize(&k8s().join("base"));
    let service = object(&base, "Service", Some("realmgate"));
    let port_names: Vec<&str> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| s(&p["name"], "port name"))
        .collect();
    let config: toml::Value = toml::from_str(&configmap_toml()).unwrap();
    let route_hosts: Vec<&str> = config["route"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap())
        })
        .collect();
    let to_realmgate = |ingress: &Yaml| {
        for rule in ingress["spec"]["rules"].as_sequence().unwrap() {
            let host = s(&rule["host"], "host");
            assert!(
                route_hosts.contains(&host),
                "{host} is a route host of realmgate.toml"
            );
            for path in rule["http"]["paths"].as_sequence().unwrap() {
                let backend = &path["backend"]["service"];
                assert_eq!(backend["name"].as_str(), Some("realmgate"));
                assert!(port_names.contains(&s(&backend["port"]["name"], "backend port")));
            }
        }
        assert_eq!(ingress["metadata"]["namespace"].as_str(), Some("realmgate"));
    };

    let direct = yaml_docs(&k8s().join("examples/ingress-direct.yaml"));
    to_realmgate(object(&direct, "Ingress", Some("realmgate")));

    let forward = yaml_docs(&k8s().join("examples/ingress-nginx-forward-auth.yaml"));
    let app = object(&forward, "Ingress", Some("hr-app"));
    let a = &app["metadata"]["annotations"];
    let auth_url = s(&a["nginx.ingress.kubernetes.io/auth-url"], "auth-url");
    assert_eq!(auth_url, "https://$host/.auth/verify");
    let signin = s(&a["nginx.ingress.kubernetes.io/auth-signin"], "auth-signin");
    assert_eq!(signin, "https://$host/.auth/login?rd=$escaped_request_uri");
    // The headers copied to the app are those of the auth_request profile.
    for h in s(
        &a["nginx.ingress.kubernetes.io/auth-response-headers"],
        "auth-response-headers",
    )
    .split(',')
    {
        assert!(h.trim().starts_with("X-Auth-Request-"), "{h}");
    }
    // realmgate's /.auth/ endpoints on the same host, so verify and the sign-in page see
    // the app host's cookie.
    let auth = object(&forward, "Ingress", Some("realmgate-hr-auth"));
    to_realmgate(auth);
    let app_host = app["spec"]["rules"][0]["host"].clone();
    assert_eq!(auth["spec"]["rules"][0]["host"], app_host);
    assert_eq!(
        auth["spec"]["rules"][0]["http"]["paths"][0]["path"].as_str(),
        Some("/.auth/")
    );
}

// === Load balancers ===

/// A fresh self-signed certificate for hr.contoso.com in `dir`: (cert, key) paths.
fn write_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["hr.contoso.com".into()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

#[test]
fn nginx_example_passes_nginx_t() {
    let nginx = require("nginx", "nginx");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = write_cert(d);
    let site = read("lb/nginx.conf")
        .replace(
            "/etc/nginx/tls/hr.contoso.com.crt",
            &cert.display().to_string(),
        )
        .replace(
            "/etc/nginx/tls/hr.contoso.com.key",
            &key.display().to_string(),
        );
    std::fs::write(d.join("realmgate.conf"), site).unwrap();
    // The example is a conf.d file: include it in the http block, as Debian's nginx.conf does.
    let main = format!(
        "error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n    access_log off;\n    include {d}/realmgate.conf;\n}}\n",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), main).unwrap();
    let out = Command::new(nginx)
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .output()
        .expect("run nginx -t");
    assert!(
        out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("[warn]"),
        "nginx -t:\n{}",
        output_text(&out)
    );

    // The replicas' config trusts what nginx sends.
    let config: toml::Value = toml::from_str(&read("lb/realmgate-behind-nginx.toml")).unwrap();
    assert!(!config["server"]["trusted_proxies"]
        .as_array()
        .unwrap()
        .is_empty());
    let site = read("lb/nginx.conf");
    for directive in [
        "proxy_next_upstream error timeout;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "max_fails=1",
    ] {
        assert!(site.contains(directive), "nginx.conf lacks {directive}");
    }
}

#[test]
fn haproxy_example_passes_haproxy_c_and_speaks_proxy_protocol_v2_to_realmgate() {
    let haproxy = require("haproxy", "haproxy");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, read("lb/haproxy.cfg")).unwrap();
    let out = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("run haproxy -c");
    let text = output_text(&out);
    assert!(
        out.status.success() && !text.contains("[WARNING]") && !text.contains("[ALERT]"),
        "haproxy -c:\n{text}"
    );

    // HAProxy sends PROXY v2 to the port realmgate listens on with proxy_protocol = true,
    // and checks /readyz on the admin port.
    let cfg = read("lb/haproxy.cfg");
    let config: toml::Value = toml::from_str(&read("lb/realmgate-behind-haproxy.toml")).unwrap();
    assert_eq!(config["server"]["proxy_protocol"].as_bool(), Some(true));
    // realmgate believes PROXY headers only from trusted_proxies (SPEC 6.1):
    // the address HAProxy connects from must be there.
    let trusted: Vec<&str> = config["server"]["trusted_proxies"]
        .as_array()
        .expect("trusted_proxies, required with proxy_protocol")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let source = cfg
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("source "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a `source` address in haproxy.cfg");
    assert!(trusted.contains(&source), "{source} not in {trusted:?}");
    let listen: SocketAddr = config["server"]["listen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let admin: SocketAddr = config["admin"]["listen"].as_str().unwrap().parse().unwrap();
    assert!(cfg.contains("send-proxy-v2"));
    assert!(cfg.contains(&format!("check port {}", admin.port())));
    assert!(cfg.contains("uri /readyz"));
    let servers: Vec<&str> = cfg
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server "))
        .collect();
    assert!(servers.len() >= 2, "{servers:?}");
    for line in servers {
        assert!(
            line.ends_with(&format!(":{}", listen.port())),
            "{line}: not realmgate's port {}",
            listen.port()
        );
    }
}

// === Dockerfile ===

/// Dockerfile instructions as (INSTRUCTION, arguments), continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (ins, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((ins.to_ascii_uppercase(), args.trim().to_string()));
        current.clear();
    }
    out
}

/// The final stage's instructions (after its FROM).
fn final_stage(ins: &[(String, String)]) -> &[(String, String)] {
    let last_from = ins.iter().rposition(|(i, _)| i == "FROM").expect("a FROM");
    &ins[last_from..]
}

#[test]
fn dockerfile_builds_in_a_stage_and_runs_distroless_non_root_stripped_with_a_healthcheck_command() {
    let text = read("Dockerfile");
    let ins = dockerfile_instructions(&text);
    let froms: Vec<&str> = ins
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let build_stage = froms[0].to_ascii_lowercase();
    assert!(
        build_stage.starts_with("rust:") && build_stage.ends_with(" as build"),
        "{build_stage}"
    );
    let runtime = final_stage(&ins);
    // No shell and no package manager in the runtime: distroless (or scratch), and so
    // no RUN in its stage (there is nothing to run it with).
    let base = runtime[0].1.to_ascii_lowercase();
    assert!(
        base.starts_with("gcr.io/distroless/") || base.starts_with("scratch"),
        "a distroless or scratch runtime: {base}"
    );
    assert!(
        !runtime.iter().any(|(i, _)| i == "RUN"),
        "RUN in a runtime without a shell"
    );
    assert!(runtime
        .iter()
        .any(|(i, a)| i == "COPY" && a.starts_with("--from=build ")));
    let build = ins
        .iter()
        .find(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked"))
        .expect("the build uses Cargo.lock");
    assert!(
        build.1.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"),
        "a stripped binary: {}",
        build.1
    );

    let users: Vec<&str> = runtime
        .iter()
        .filter(|(i, _)| i == "USER")
        .map(|(_, a)| a.as_str())
        .collect();
    let user = users.last().expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user}: numeric and not root (Kubernetes runAsNonRoot checks the number)"
    );
    // USER comes before ENTRYPOINT/CMD so the process runs as that user.
    let user_at = runtime.iter().rposition(|(i, _)| i == "USER").unwrap();
    let entry_at = runtime
        .iter()
        .position(|(i, _)| i == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert!(user_at < entry_at);
    let entry: Vec<String> = serde_json::from_str(&runtime[entry_at].1).expect("exec form");
    assert_eq!(entry, ["/usr/local/bin/realmgate"]);

    // The admin port the image configures is exposed; the health check is realmgate's
    // own command (exec form: no shell).
    let admin_env = runtime
        .iter()
        .find(|(i, a)| i == "ENV" && a.starts_with("REALMGATE_ADMIN__LISTEN="))
        .map(|(_, a)| a.trim_start_matches("REALMGATE_ADMIN__LISTEN=").to_string())
        .expect("ENV REALMGATE_ADMIN__LISTEN");
    let admin: SocketAddr = admin_env.parse().unwrap();
    let expose = runtime.iter().find(|(i, _)| i == "EXPOSE").expect("EXPOSE");
    assert!(expose
        .1
        .split_whitespace()
        .any(|p| p == admin.port().to_string()));
    assert_eq!(
        healthcheck_argv(&text),
        ["/usr/local/bin/realmgate", "healthcheck"]
    );

    // The size budget the Dockerfile states is the one the check script enforces.
    let script = read("check-image-size.sh");
    let budget: u64 = script
        .lines()
        .find_map(|l| l.strip_prefix("BUDGET_BYTES="))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("BUDGET_BYTES=<n> in check-image-size.sh");
    let mib = budget / (1024 * 1024);
    assert_eq!(budget, mib * 1024 * 1024);
    assert!(
        text.contains(&format!("at most {mib} MiB uncompressed")),
        "deploy/Dockerfile states the budget of check-image-size.sh ({mib} MiB)"
    );

    // The build context filter lets in what `cargo build` needs.
    let ignore = read("Dockerfile.dockerignore");
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == needed),
            "dockerignore: {needed}"
        );
    }
}

/// The argv of the Dockerfile's `HEALTHCHECK ... CMD [exec form]`.
fn healthcheck_argv(dockerfile: &str) -> Vec<String> {
    let ins = dockerfile_instructions(dockerfile);
    let (_, args) = final_stage(&ins)
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .expect("a HEALTHCHECK in the runtime stage");
    let json = &args[args.find("CMD [").expect("HEALTHCHECK ... CMD [exec form]") + 4..];
    serde_json::from_str(json).expect("CMD is a JSON array")
}

/// The check script measures an image through the engine's `image inspect`: run
/// with a stand-in engine that reports a size, it passes within the budget, fails
/// over it and says so, and says what is missing without an image.
#[test]
fn image_size_check_script_enforces_the_budget() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for `docker image inspect --format {{.Size}} IMAGE`.
    let engine = dir.path().join("engine");
    std::fs::write(
        &engine,
        "#!/bin/sh\n[ \"$1 $2 $5\" = \"image inspect realmgate\" ] || exit 1\necho \"$SIZE\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&engine, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |size: &str, image: &str| {
        Command::new("sh")
            .arg(deploy().join("check-image-size.sh"))
            .arg(image)
            .env("CONTAINER_ENGINE", &engine)
            .env("SIZE", size)
            .output()
            .unwrap()
    };
    let ok = run("24000000", "realmgate");
    assert!(ok.status.success(), "{}", output_text(&ok));
    let over = run("52428800", "realmgate");
    assert_eq!(over.status.code(), Some(1), "{}", output_text(&over));
    assert!(output_text(&over).contains("over the budget of 41943040 bytes"));
    let none = run("1", "other");
    assert_eq!(none.status.code(), Some(2), "{}", output_text(&none));
    assert!(output_text(&none).contains("build it first"));
}

#[test]
fn dockerfile_healthcheck_command_passes_against_a_ready_gateway_and_fails_draining_and_stopped() {
    let argv = healthcheck_argv(&read("Dockerfile"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("realmgate.toml");
    let route = crate::util::route(
        "app",
        "app.test",
        "/",
        "http://127.0.0.1:9",
        "public = [\"/\"]",
    );
    // Both ports are reserved for the whole test: once the gateway stopped, nothing
    // else can listen there and make the failing check pass. A long shutdown_delay
    // holds the gateway in its draining state until a second SIGTERM.
    let (admin, proxy) = (ReservedPort::new(), ReservedPort::new());
    let toml = crate::util::Config::new()
        .listen(proxy.addr())
        .admin_listen(admin.addr())
        .server("shutdown_delay = \"60s\"")
        .table(crate::util::unreachable_oidc())
        .table(route)
        .render();
    std::fs::write(&config, toml).unwrap();
    let mut gateway = Realmgate::start(&config);
    assert_eq!(gateway.admin, admin.addr());
    // The image's command with this build's binary, configured as the image is: by
    // REALMGATE_CONFIG (the admin address given the same way as the image's ENV).
    let check = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(&argv[1..])
            .args(extra)
            .env("REALMGATE_CONFIG", &config)
            .env("REALMGATE_ADMIN__LISTEN", admin.addr().to_string())
            .output()
            .expect("run realmgate healthcheck");
        (out.status.code(), output_text(&out))
    };
    let (code, out) = check(&[]);
    assert_eq!(code, Some(0), "{out}\nlog:\n{}", gateway.log());
    assert!(out.contains("ready: GET http://127.0.0.1:"), "{out}");
    let (code, out) = check(&["--traffic"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("/.auth/health"), "{out}");

    gateway.signal("-TERM");
    let end = Instant::now() + DEADLINE;
    let (code, out) = loop {
        let (code, out) = check(&[]);
        if code != Some(0) || Instant::now() > end {
            break (code, out);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("503"), "{out}");
    let (code, out) = check(&["--traffic"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not ready: shutting down"), "{out}");

    gateway.signal("-TERM");
    assert_eq!(gateway.wait_exit(DEADLINE), Some(0));
    let (code, out) = check(&[]);
    assert_eq!(code, Some(1), "passes with nothing listening: {out}");
    assert!(out.contains("cannot connect"), "{out}");
}

/// `haproxy -db -f FILE` (foreground); killed by PID on drop.
struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// Its `bind` address, reserved for it.
    addr: SocketAddr,
    _port: ReservedPort,
}

impl Haproxy {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The `show stat` row of `server` from the stats socket, as (column, value) pairs.
    async fn server_stat(&self, server: &str) -> Option<BTreeMap<String, String>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::UnixStream::connect(self.dir.path().join("admin.sock"))
            .await
            .ok()?;
        sock.write_all(b"show stat\n").await.ok()?;
        let mut out = String::new();
        sock.read_to_string(&mut out).await.ok()?;
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|row| row.get(1) == Some(&server))
            .map(|row| {
                header
                    .iter()
                    .zip(row)
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_example_brings_the_client_address_over_proxy_protocol_v2_and_checks_readyz() {
    let program = require("haproxy", "haproxy");
    let upstream = crate::util::EchoUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // realmgate with proxy_protocol = true as in realmgate-behind-haproxy.toml, on loopback,
    // without TLS and with the memory store: the PROXY header and the health checks are
    // what this test is about (TLS passes through HAProxy's tcp mode untouched).
    let config = dir.path().join("realmgate.toml");
    let route = crate::util::route("app", "app.test", "/", &upstream.url(), "public = [\"/\"]");
    std::fs::write(
        &config,
        crate::util::config(
            "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]",
            &route,
        ),
    )
    .unwrap();
    let gateway = Realmgate::start(&config);

    // deploy/lb/haproxy.cfg with this machine's addresses, one server, and a stats
    // socket, on a loopback port of its own.
    let template = read("lb/haproxy.cfg");
    let mut haproxy = with_fresh_port("haproxy", |port| {
        let dir = tempfile::tempdir().unwrap();
        let listen = port.port();
        let mut cfg = String::new();
        for line in template.lines() {
            if line.trim_start().starts_with("server ") {
                continue;
            }
            let line = line
                .replace("log /dev/log local0", "log stderr format raw local0")
                // maxconn 20000 needs 40,000 file descriptors; a test runner may have fewer.
                .replace("maxconn 20000", "maxconn 1000")
                .replace("bind :443", &format!("bind 127.0.0.1:{listen}"))
                // HAProxy's address, realmgate's trusted_proxies here.
                .replace("source 10.0.0.2", "source 127.0.0.1")
                .replace(
                    "check port 9090",
                    &format!("check port {}", gateway.admin.port()),
                );
            cfg.push_str(&line);
            cfg.push('\n');
            if line.trim() == "global" {
                cfg.push_str(&format!(
                    "    stats socket {}/admin.sock mode 600 level admin\n",
                    dir.path().display()
                ));
            }
        }
        cfg.push_str(&format!("    server realmgate1 {}\n", gateway.addr));
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, &cfg).unwrap();
        let child = Command::new(&program)
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start haproxy");
        let mut haproxy = Haproxy {
            child,
            dir,
            addr: port.addr(),
            _port: port,
        };
        match wait_listening(&mut haproxy.child, listen, DEADLINE) {
            Ok(()) => Ok(haproxy),
            Err(NotListening::Exited(status)) => {
                Err(format!("haproxy exited ({status}):\n{}", haproxy.stderr()))
            }
            Err(NotListening::TimedOut) => panic!(
                "haproxy did not listen on 127.0.0.1:{listen} within {DEADLINE:?}:\n{}",
                haproxy.stderr()
            ),
        }
    });
    let listen = haproxy.addr.port();

    // HAProxy's active check of GET /readyz on the admin port (no PROXY header there)
    // passes: layer 7 OK, status 200. The first check comes within `inter` (2 s) of the
    // start; a loaded test machine gets three times the usual deadline.
    let end = Instant::now() + 3 * DEADLINE;
    loop {
        if let Ok(Some(status)) = haproxy.child.try_wait() {
            panic!("haproxy exited ({status}):\n{}", haproxy.stderr());
        }
        let stat = haproxy.server_stat("realmgate1").await;
        if let Some(stat) = &stat {
            if stat.get("check_status").map(String::as_str) == Some("L7OK") {
                assert_eq!(stat["check_code"], "200");
                assert_eq!(stat["status"], "UP");
                break;
            }
        }
        assert!(
            Instant::now() < end,
            "no passing /readyz check: {stat:?} (stats socket present: {})\n{}",
            haproxy.dir.path().join("admin.sock").exists(),
            haproxy.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A client on 127.0.0.2: realmgate's TCP peer is HAProxy (127.0.0.1), but the PROXY
    // v2 header names the client, and that is what the app gets.
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .resolve("app.test", format!("127.0.0.1:{listen}").parse().unwrap())
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://app.test:{listen}/hello"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET through haproxy: {e}\n{}", haproxy.stderr()));
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "{}", gateway.log());
    let echoed = crate::util::Echoed::from(resp).await;
    assert_eq!(
        echoed.header("x-forwarded-for").as_deref(),
        Some("127.0.0.2"),
        "{:?}",
        echoed.0
    );
    assert_eq!(echoed.uri(), "/hello");
}
