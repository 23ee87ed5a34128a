//! deploy/monitoring: the Prometheus alert rules pass `promtool check rules` and
//! their own unit tests (`promtool test rules`), and every metric the rules and the
//! Grafana dashboard query is one a running realmgate exports (scraped from a
//! `realmgate run` started here, with TLS and an admin token as in production).
//!
//! promtool comes from Debian's `prometheus` package (installed by scripts/test.sh,
//! which leaves its service disabled).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::deploy::{require, Realmgate};
use crate::util::{route, Config};

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

fn run_promtool(args: &[&str]) {
    let promtool = require("promtool", "prometheus");
    let out = Command::new(promtool)
        .args(args)
        .current_dir(monitoring())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    run_promtool(&["check", "rules", "realmgate-alerts.yaml"]);
    run_promtool(&["test", "rules", "realmgate-alerts.test.yaml"]);
}

// === Which metric names a PromQL expression reads ===

/// Words of PromQL that are not metric names: operators, modifiers, and the
/// aggregations (which may take their `by (...)` before their parentheses).
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "sum", "min", "max", "avg", "count",
    "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
];

/// Keywords followed by a parenthesised label list.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` reads: identifiers that are not functions (followed by
/// `(`), keywords, label names (inside `{}` or a `by (...)` list), string contents,
/// ranges or Grafana variables (`$x`).
pub(crate) fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, open: char, close: char| -> usize {
        // From an opening bracket to just past its match (strings inside skipped).
        let mut depth = 0;
        let mut j = from;
        while j < chars.len() {
            match chars[j] {
                '"' | '\'' | '`' => {
                    let q = chars[j];
                    j += 1;
                    while j < chars.len() && chars[j] != q {
                        if chars[j] == '\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        chars.len()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                let q = c;
                i += 1;
                while i < chars.len() && chars[i] != q {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' => i = skip_to(i, '{', '}'),
            '[' => i = skip_to(i, '[', ']'),
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (1e3, 0x1f, 1.5 included).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let called = chars.get(next) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) && called {
                    i = skip_to(next, '(', ')');
                } else if !called && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Grafana's `label_values(selector, label)`: the selector's metric.
fn label_values_names(query: &str) -> BTreeSet<String> {
    let Some(inner) = query.trim().strip_prefix("label_values(") else {
        return metric_names(query);
    };
    let inner = inner.strip_suffix(')').unwrap_or(inner);
    // The last top-level comma separates the label (a selector's commas are in `{}`).
    let mut depth = 0;
    let mut cut = None;
    for (i, c) in inner.char_indices() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => cut = Some(i),
            _ => {}
        }
    }
    metric_names(&inner[..cut.unwrap_or(inner.len())])
}

#[test]
fn promql_metric_names_skip_functions_labels_strings_and_variables() {
    let got = metric_names(
        r#"sum by (job, route) (rate(realmgate_requests_total{status=~"5..", x="a{b}"}[$__rate_interval]))
             / on (job) group_left (version) realmgate_build_info > 14 * 86400 and process_open_fds{job="$job"} offset 5m"#,
    );
    let want: BTreeSet<String> = [
        "realmgate_requests_total",
        "realmgate_build_info",
        "process_open_fds",
    ]
    .map(String::from)
    .into();
    assert_eq!(got, want);
    assert_eq!(
        label_values_names(r#"label_values(realmgate_build_info{job="$job", a="b"}, instance)"#),
        ["realmgate_build_info".to_string()].into()
    );
}

// === What a running realmgate exports ===

/// Sample names of an OpenMetrics/Prometheus text scrape: every sample line's name,
/// and the names each `# TYPE` line implies (so families without a series yet count).
/// A counter is typed by its sample name in the Prometheus text (`x_total`), by its
/// family name in OpenMetrics (`x`).
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" if name.ends_with("_total") => &[""],
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                "stateset" | "gauge" | "unknown" | "untyped" | "gaugehistogram" => &[""],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// `promtool check metrics` (Prometheus's text parser, then its linter) reads
/// `scrape` without a problem.
fn promtool_reads_metrics(scrape: &str) {
    let promtool = require("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GET `path` on the admin listener with a bearer token (blocking, bounded).
fn admin_get(admin: SocketAddr, path: &str, token: &str) -> String {
    let mut s = TcpStream::connect(admin).expect("connect to the admin listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Every `expr` of the rule groups.
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(monitoring().join("realmgate-alerts.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            out.push(rule["expr"].as_str().expect("expr").to_string());
        }
    }
    out
}

/// Every query of the dashboard: panel targets, annotations, template variables.
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                        // Template variables' queries (the data source variable's
                        // "prometheus" is no query).
                        ("query" | "definition", serde_json::Value::String(s))
                            if s.contains('(') =>
                        {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, out);
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(monitoring().join("realmgate-dashboard.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(doc["panels"].as_array().is_some_and(|p| p.len() > 10));
    let mut out = Vec::new();
    walk(&doc, &mut out);
    out
}

/// One HTTP/1.1 GET over TLS (any certificate accepted): the raw answer.
async fn tls_get(addr: SocketAddr, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(crate::util::AcceptAny(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(host.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn every_metric_the_dashboard_and_the_alert_rules_query_is_exported_by_a_running_gateway() {
    // The upstream and the TLS client run on their own runtime; the gateway is
    // the real binary.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(crate::util::EchoUpstream::start());
    let dir = tempfile::tempdir().unwrap();
    // A TLS chain whose expiry must show up as a certificate gauge.
    let mut params = rcgen::CertificateParams::new(vec!["app.test".into()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2031, 5, 6);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let token = "monitoring-test-token-0123456789abcdef";
    let token_path = dir.path().join("admin_token");
    std::fs::write(&token_path, token).unwrap();
    // An OpenID connection whose provider cannot be reached: its discovery
    // call fails, which fills the IdP call families.
    let config = Config::new()
        .table(format!(
            "[server.tls]\ncert = {:?}\nkey = {:?}\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ))
        .admin(&format!(
            "token_file = {:?}",
            token_path.display().to_string()
        ))
        .table(
            "[[connection]]\nname = \"partner\"\ntype = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"realmgate\"\nclient_secret = \"monitoring-test-client-secret\"\nhome_realm_domains = [\"partner.example\"]\n",
        )
        .table(route("app", "app.test", "/", &up.url(), ""))
        .table(route("open", "open.test", "/", &up.url(), "public = [\"/\"]"))
        .render();
    let config_path = dir.path().join("realmgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let gw = Realmgate::start(&config_path);
    // A proxied request: the request and upstream latency families get series.
    let res = rt.block_on(tls_get(gw.addr, "open.test", "/hello"));
    assert!(res.starts_with("HTTP/1.1 200"), "{res}\nlog:\n{}", gw.log());

    let scrape_names = || {
        let scrape = admin_get(gw.admin, "/metrics", token);
        assert!(
            scrape.starts_with("HTTP/1.1 200"),
            "{scrape}\nlog:\n{}",
            gw.log()
        );
        let body = scrape
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (exported_names(&body), body)
    };
    // The discovery attempt runs in the background: wait for it (bounded).
    let end = std::time::Instant::now() + crate::util::DEADLINE;
    let (exported, scrape) = loop {
        let (names, body) = scrape_names();
        if names.contains("realmgate_idp_requests_total") || std::time::Instant::now() > end {
            break (names, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The default answer is the Prometheus text 0.0.4, as Prometheus's own
    // parser reads it.
    promtool_reads_metrics(&scrape);
    let expiry = "realmgate_certificate_not_after_seconds{kind=\"tls_server\",name=\"server\",subject=\"CN=rcgen self signed cert\"";
    let line = scrape
        .lines()
        .find(|l| l.starts_with(expiry))
        .unwrap_or_else(|| panic!("no TLS certificate expiry in:\n{scrape}"));
    assert!(line.ends_with(" 1935792000"), "{line}");
    assert!(
        scrape.contains("realmgate_logins_total{connection=\"partner\",outcome=\"success\"} 0"),
        "{scrape}"
    );

    let mut queried = BTreeSet::new();
    for expr in rule_exprs() {
        queried.extend(metric_names(&expr));
    }
    for q in dashboard_queries() {
        queried.extend(label_values_names(&q));
    }
    // `up` is Prometheus's own, for every scrape target.
    let missing: Vec<&String> = queried
        .iter()
        .filter(|n| n.as_str() != "up" && !exported.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
    // Not vacuous: the families of issue 22 are among what is queried.
    for name in [
        "realmgate_build_info",
        "realmgate_certificate_not_after_seconds",
        "realmgate_config_last_reload_successful",
        "realmgate_config_reloads_total",
        "realmgate_logins_total",
        "realmgate_sessions",
        "realmgate_requests_total",
        "realmgate_upstream_latency_seconds_bucket",
        "realmgate_idp_requests_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(queried.contains(name), "{name} is not queried: {queried:?}");
    }
}
