//! Prometheus metrics (prometheus-client), rendered by the admin listener:
//! in the Prometheus text format 0.0.4, or in OpenMetrics when the scraper
//! asks for it ([`Format`]); both from the one registry, by the crate's own
//! encoders.
//!
//! One [`Metrics`] lives for the whole process (it is part of
//! `handler::Shared`), so counters survive config reloads. The hot path
//! (`record_request`, the connection gauge, session lookups) does not
//! allocate once a label combination has been seen: route names are interned
//! into `Arc<str>`s, so building a label set is a reference-count increment.
//! Each thread also keeps the handles of the (route, status) pairs it
//! recorded last (`Handle`, in a `per_thread::Owned`), so a request's counter and histogram are found
//! without the families' locks and label hashing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::per_thread::{owner_number, Owned};

mod certs;
mod process;
#[cfg(test)]
pub(crate) mod text_grammar;

pub use certs::CertInfo;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    connection: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdpLabels {
    connection: String,
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdpLatencyLabels {
    connection: String,
    kind: String,
}

/// Why a `proxy_protocol` listener closed a connection (the `reason` label
/// of `realmgate_proxy_protocol_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyRejection {
    /// The TCP peer is not in `trusted_proxies`: nothing it sends is read.
    UntrustedPeer,
    /// A trusted peer sent no valid PROXY header within `header_read_timeout`.
    InvalidHeader,
}

impl ProxyRejection {
    const ALL: [ProxyRejection; 2] = [ProxyRejection::UntrustedPeer, ProxyRejection::InvalidHeader];

    fn label(self) -> &'static str {
        match self {
            ProxyRejection::UntrustedPeer => "untrusted_peer",
            ProxyRejection::InvalidHeader => "invalid_header",
        }
    }
}

/// Upstream latency buckets: 1 ms .. ~33 s, doubling.
#[derive(Clone)]
struct UpstreamBuckets;

impl MetricConstructor<Histogram> for UpstreamBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 16))
    }
}

/// IdP latency buckets: 5 ms .. ~20 s, doubling.
#[derive(Clone)]
struct IdpBuckets;

impl MetricConstructor<Histogram> for IdpBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.005, 2.0, 12))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `realmgate_build_info`'s labels: the version, the git revision when the
/// build was given one (`REALMGATE_REVISION` at compile time, as
/// deploy/Dockerfile passes it), the CPU architecture, the OS and the profile.
fn build_labels() -> Vec<(&'static str, &'static str)> {
    vec![
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("REALMGATE_REVISION").unwrap_or("unknown"),
        ),
        ("arch", std::env::consts::ARCH),
        ("os", std::env::consts::OS),
        (
            "profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        ),
    ]
}

/// Every metric realmgate exports. Cheap to call from the hot path.
pub struct Metrics {
    registry: Registry,
    /// Interned route names, so the label set of a request costs no allocation.
    routes: RwLock<HashMap<Box<str>, Arc<str>>>,
    requests: Family<RouteStatus, Counter>,
    upstream_latency: Family<RouteLabel, Histogram, UpstreamBuckets>,
    open_connections: Gauge,
    logins: Family<LoginLabels, Counter>,
    session_hits: Counter,
    session_misses: Counter,
    /// `realmgate_sessions{store}`: the store's kind is fixed at start.
    sessions: Family<[(&'static str, &'static str); 1], Gauge>,
    session_store: std::sync::OnceLock<&'static str>,
    idp_requests: Family<IdpLabels, Counter>,
    idp_latency: Family<IdpLatencyLabels, Histogram, IdpBuckets>,
    /// Connections closed on a `proxy_protocol` listener, by reason.
    proxy_protocol_rejected: Family<Vec<(&'static str, &'static str)>, Counter>,
    config_reload_success: Counter,
    config_reload_failure: Counter,
    config_last_reload_successful: Gauge,
    config_last_reload_success: Gauge,
    certificates: Arc<certs::Certificates>,
    /// This instance in the per-thread handle caches.
    number: u64,
}

/// (route, status) pairs whose handles a thread keeps at most.
const HANDLES: usize = 32;

/// A thread's handle of a recently recorded (route, status) pair: clones of
/// the families' metrics, which share their values.
struct Handle {
    route: Arc<str>,
    status: u16,
    requests: Counter,
    latency: Option<Histogram>,
}

thread_local! {
    static RECENT: RefCell<Owned<Vec<Handle>>> = RefCell::new(Owned::default());
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        // The standard process_* names stay unprefixed (every Prometheus
        // client library exports them so); everything else is realmgate_*.
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector::new()));
        let registry = root.sub_registry_with_prefix("realmgate");
        registry.register(
            "build",
            "realmgate's version and build: always 1, the labels say which",
            Info::new(build_labels()),
        );
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "requests",
            "Finished requests by route and response status",
            requests.clone(),
        );
        let upstream_latency = Family::new_with_constructor(UpstreamBuckets);
        registry.register(
            "upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response headers",
            upstream_latency.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Open client connections on the proxy listener",
            open_connections.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by connection and outcome",
            logins.clone(),
        );
        let session_lookups = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "session_lookups",
            "Session store lookups by result (hit or miss)",
            session_lookups.clone(),
        );
        // Both label sets exist from the start, so dashboards see zeros.
        let session_hits = session_lookups
            .get_or_create(&vec![("result", "hit")])
            .clone();
        let session_misses = session_lookups
            .get_or_create(&vec![("result", "miss")])
            .clone();
        let sessions = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        registry.register(
            "sessions",
            "Approximate number of sessions by store, as of this scrape: store=memory counts every session of this instance; store=redis_local_cache counts the sessions this replica holds in its local cache (the shared total lives in Redis)",
            sessions.clone(),
        );
        let idp_requests = Family::<IdpLabels, Counter>::default();
        registry.register(
            "idp_requests",
            "Calls to identity providers by connection, kind (discovery, jwks, token, userinfo, graph) and outcome",
            idp_requests.clone(),
        );
        let idp_latency = Family::new_with_constructor(IdpBuckets);
        registry.register(
            "idp_latency_seconds",
            "Latency of calls to identity providers",
            idp_latency.clone(),
        );
        let proxy_protocol_rejected =
            Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "proxy_protocol_rejected",
            "Connections closed on a proxy_protocol listener: from a peer not in trusted_proxies (untrusted_peer), or without a valid PROXY header in time (invalid_header)",
            proxy_protocol_rejected.clone(),
        );
        for reason in ProxyRejection::ALL {
            let _ = proxy_protocol_rejected.get_or_create(&vec![("reason", reason.label())]);
        }
        let config_reloads = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP) by result: success, or failure (the old configuration kept serving)",
            config_reloads.clone(),
        );
        let config_reload_success = config_reloads
            .get_or_create(&[("result", "success")])
            .clone();
        let config_reload_failure = config_reloads
            .get_or_create(&[("result", "failure")])
            .clone();
        let config_last_reload_successful = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "1 when the last configuration load (start or SIGHUP) succeeded, 0 when the last reload failed",
            config_last_reload_successful.clone(),
        );
        let config_last_reload_success = Gauge::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration in use was loaded (start or the last successful reload), Unix seconds",
            config_last_reload_success.clone(),
        );
        let certificates = Arc::new(certs::Certificates::default());
        registry.register_collector(Box::new(certificates.clone()));
        Metrics {
            routes: RwLock::new(HashMap::new()),
            requests,
            upstream_latency,
            open_connections,
            logins,
            session_hits,
            session_misses,
            sessions,
            session_store: std::sync::OnceLock::new(),
            idp_requests,
            idp_latency,
            proxy_protocol_rejected,
            config_reload_success,
            config_reload_failure,
            config_last_reload_successful,
            config_last_reload_success,
            certificates,
            number: owner_number(),
            registry: root,
        }
    }

    /// The interned `Arc<str>` for a route name (allocates once per name).
    fn route(&self, name: &str) -> Arc<str> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return r.clone();
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes
            .entry(name.into())
            .or_insert_with(|| Arc::from(name))
            .clone()
    }

    /// One finished request: route name ("" when unrouted), status, upstream latency if forwarded.
    pub fn record_request(&self, route: &str, status: u16, upstream_latency: Option<Duration>) {
        let recorded = RECENT.try_with(|recent| {
            let mut recent = recent.borrow_mut();
            let recent = recent.for_owner(self.number);
            let found = recent
                .iter()
                .position(|e| e.status == status && *e.route == *route);
            let i = found.unwrap_or_else(|| {
                if recent.len() >= HANDLES {
                    recent.clear();
                }
                let route = self.route(route);
                let requests = self
                    .requests
                    .get_or_create(&RouteStatus {
                        route: route.clone(),
                        status,
                    })
                    .clone();
                recent.push(Handle {
                    route,
                    status,
                    requests,
                    latency: None,
                });
                recent.len() - 1
            });
            let e = &mut recent[i];
            e.requests.inc();
            if let Some(l) = upstream_latency {
                // Created on first use: a route never forwarded (or the
                // unrouted "") has no latency series.
                let route = &e.route;
                e.latency
                    .get_or_insert_with(|| self.latency(route))
                    .observe(l.as_secs_f64());
            }
        });
        if recorded.is_err() {
            // Thread-local storage is gone (a thread shutting down).
            let route = self.route(route);
            if let Some(l) = upstream_latency {
                self.latency(&route).observe(l.as_secs_f64());
            }
            self.requests
                .get_or_create(&RouteStatus { route, status })
                .inc();
        }
    }

    /// The upstream latency histogram of an interned route name.
    fn latency(&self, route: &Arc<str>) -> Histogram {
        self.upstream_latency
            .get_or_create(&RouteLabel {
                route: route.clone(),
            })
            .clone()
    }

    /// Open client connections gauge.
    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    /// A login attempt by connection and outcome ("success", "invalid_token", "provider_unavailable", ...).
    pub fn record_login(&self, connection: &str, outcome: &str) {
        self.logins
            .get_or_create(&LoginLabels {
                connection: connection.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A connection closed on a `proxy_protocol` listener before any request.
    pub fn record_proxy_protocol_rejected(&self, reason: ProxyRejection) {
        self.proxy_protocol_rejected
            .get_or_create(&vec![("reason", reason.label())])
            .inc();
    }

    /// Session store lookups.
    pub fn record_session_lookup(&self, hit: bool) {
        if hit {
            self.session_hits.inc();
        } else {
            self.session_misses.inc();
        }
    }

    /// The session store's size, set by the admin listener before each scrape.
    pub fn set_session_count(&self, n: u64) {
        let store = self.session_store.get().copied().unwrap_or("memory");
        self.sessions
            .get_or_create(&[("store", store)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The `store` label of `realmgate_sessions` (set once, at start).
    pub fn set_session_store(&self, store: &crate::config::StoreSettings) {
        let _ = self.session_store.set(match store {
            crate::config::StoreSettings::Memory { .. } => "memory",
            crate::config::StoreSettings::Redis { .. } => "redis_local_cache",
        });
    }

    /// A configuration is in use: at start and after each successful
    /// reload. Its certificates replace the previous configuration's, and
    /// every connection's sign-in counter exists from zero.
    pub fn config_loaded(&self, settings: &crate::config::Settings, reload: bool) {
        if reload {
            self.config_reload_success.inc();
        }
        self.config_last_reload_successful.set(1);
        self.config_last_reload_success.set(unix_now());
        self.certificates.set_config(settings);
        for c in &settings.connections {
            let _ = self.logins.get_or_create(&LoginLabels {
                connection: c.name.clone(),
                outcome: "success".to_string(),
            });
        }
    }

    /// A reload was refused; the old configuration keeps serving.
    pub fn config_reload_failed(&self) {
        self.config_reload_failure.inc();
        self.config_last_reload_successful.set(0);
    }

    /// The signing certificates an identity provider publishes now (JWKS
    /// `x5c`, SAML metadata), replacing what it published before.
    pub fn set_idp_certificates(&self, connection: &str, certs: Vec<CertInfo>) {
        self.certificates.set_idp(connection, certs);
    }

    /// The `x5c` certificates of a JWKS document (see [`set_idp_certificates`](Self::set_idp_certificates)).
    pub fn jwks_certificates(body: &[u8]) -> Vec<CertInfo> {
        certs::of_jwks(body)
    }

    /// A call to an identity provider (discovery, jwks, token, userinfo, graph) and whether it failed.
    pub fn record_idp_call(&self, connection: &str, kind: &str, latency: Duration, ok: bool) {
        self.idp_requests
            .get_or_create(&IdpLabels {
                connection: connection.to_string(),
                kind: kind.to_string(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        self.idp_latency
            .get_or_create(&IdpLatencyLabels {
                connection: connection.to_string(),
                kind: kind.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    /// Every metric in `format` (what `/metrics` answers).
    pub fn render(&self, format: Format) -> String {
        encode(&self.registry, format)
    }
}

/// The text formats of a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text exposition format 0.0.4: the default, read by
    /// every scraper (SPEC 3, "Prometheus text").
    Prometheus,
    /// OpenMetrics 1.0.0 text, for a scraper that asks for it.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format a request's `Accept` header values ask for: OpenMetrics
    /// when `application/openmetrics-text` is listed with a q-value above 0
    /// and at least that of `text/plain` (as Prometheus asks, OpenMetrics
    /// first), else the Prometheus text. `text/plain`'s q-value is that of
    /// its most specific match (`text/plain`, `text/*`, `*/*`; 0 when none
    /// matches); wildcards never select OpenMetrics, and an entry whose q is
    /// not a valid q-value counts for nothing. Media type parameters other
    /// than q (`version`, `escaping`) are not looked at: the OpenMetrics
    /// answer is version 1.0.0, the text answer 0.0.4, which is what every
    /// Prometheus reads.
    pub fn from_accept<'a>(values: impl IntoIterator<Item = &'a str>) -> Format {
        // q-values in thousandths; the text/plain match as (specificity, q).
        let mut openmetrics: Option<u16> = None;
        let mut text: Option<(u8, u16)> = None;
        for range in values.into_iter().flat_map(|v| v.split(',')) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let Some((kind, sub)) = media.split_once('/') else {
                continue;
            };
            let mut q = Some(1000);
            for param in parts {
                if let Some((name, value)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = qvalue(value.trim());
                    }
                }
            }
            let Some(q) = q else { continue };
            let (kind, sub) = (kind.trim(), sub.trim());
            if kind.eq_ignore_ascii_case("application")
                && sub.eq_ignore_ascii_case("openmetrics-text")
            {
                openmetrics = Some(openmetrics.map_or(q, |o| o.max(q)));
                continue;
            }
            let specificity = match (kind, sub) {
                ("*", "*") => 1,
                (k, "*") if k.eq_ignore_ascii_case("text") => 2,
                (k, s) if k.eq_ignore_ascii_case("text") && s.eq_ignore_ascii_case("plain") => 3,
                _ => continue,
            };
            text = match text {
                Some((s, old)) if s > specificity => Some((s, old)),
                Some((s, old)) if s == specificity => Some((s, old.max(q))),
                _ => Some((specificity, q)),
            };
        }
        let text_q = text.map_or(0, |(_, q)| q);
        match openmetrics {
            Some(q) if q > 0 && q >= text_q => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`, …) in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// `registry` in `format`. Writing into a String cannot fail; an encoder
/// error would be a bug in a label encoder, and an empty scrape is better
/// than a panic.
fn encode(registry: &Registry, format: Format) -> String {
    let mut out = String::with_capacity(4096);
    let written = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
    };
    if written.is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_every_family_and_counts_requests() {
        let m = Metrics::new();
        m.record_request("hr", 200, Some(Duration::from_millis(3)));
        m.record_request("hr", 200, None);
        m.record_request("", 404, None);
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.record_login("contoso", "success");
        m.record_session_lookup(true);
        m.record_session_lookup(false);
        m.record_session_lookup(false);
        m.record_idp_call("contoso", "token", Duration::from_millis(20), false);
        m.set_session_count(7);
        let text = m.render(Format::Prometheus);
        for needle in [
            "realmgate_requests_total{route=\"hr\",status=\"200\"} 2",
            "realmgate_requests_total{route=\"\",status=\"404\"} 1",
            "realmgate_upstream_latency_seconds_count{route=\"hr\"} 1",
            "realmgate_open_connections 1",
            "realmgate_logins_total{connection=\"contoso\",outcome=\"success\"} 1",
            "realmgate_session_lookups_total{result=\"hit\"} 1",
            "realmgate_session_lookups_total{result=\"miss\"} 2",
            "realmgate_sessions{store=\"memory\"} 7",
            "realmgate_idp_requests_total{connection=\"contoso\",kind=\"token\",outcome=\"error\"} 1",
            "realmgate_idp_latency_seconds_count{connection=\"contoso\",kind=\"token\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn proxy_protocol_rejections_are_counted_by_reason_from_zero() {
        let m = Metrics::new();
        let text = m.render(Format::Prometheus);
        for reason in ["untrusted_peer", "invalid_header"] {
            let zero = format!("realmgate_proxy_protocol_rejected_total{{reason=\"{reason}\"}} 0");
            assert!(text.contains(&zero), "missing {zero:?} in:\n{text}");
        }
        m.record_proxy_protocol_rejected(ProxyRejection::UntrustedPeer);
        m.record_proxy_protocol_rejected(ProxyRejection::UntrustedPeer);
        m.record_proxy_protocol_rejected(ProxyRejection::InvalidHeader);
        let text = m.render(Format::Prometheus);
        assert!(
            text.contains("realmgate_proxy_protocol_rejected_total{reason=\"untrusted_peer\"} 2")
        );
        assert!(
            text.contains("realmgate_proxy_protocol_rejected_total{reason=\"invalid_header\"} 1")
        );
    }

    /// The per-thread handles: every request counted once, on any thread,
    /// for the right instance, past the cache's capacity; no latency series
    /// for a route that was never forwarded.
    #[test]
    fn per_thread_handles_count_every_request_of_the_right_instance() {
        let a = Arc::new(Metrics::new());
        let b = Metrics::new();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for i in 0..(HANDLES as u16 * 3) {
                        a.record_request("hr", 200 + i % 50, Some(Duration::from_millis(1)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        a.record_request("hr", 200, None);
        b.record_request("hr", 200, None);
        a.record_request("", 404, None);
        let text = a.render(Format::Prometheus);
        // 96 requests per thread over 50 statuses: 200..=245 twice, the rest once.
        assert!(
            text.contains("realmgate_requests_total{route=\"hr\",status=\"200\"} 9"),
            "{text}"
        );
        assert!(
            text.contains("realmgate_requests_total{route=\"hr\",status=\"249\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("realmgate_upstream_latency_seconds_count{route=\"hr\"} 384"),
            "{text}"
        );
        assert!(
            !text.contains("realmgate_upstream_latency_seconds_count{route=\"\"}"),
            "{text}"
        );
        assert!(b
            .render(Format::Prometheus)
            .contains("realmgate_requests_total{route=\"hr\",status=\"200\"} 1"));
    }

    #[test]
    fn process_build_and_reload_metrics_are_exported() {
        let m = Metrics::new();
        let text = m.render(Format::Prometheus);
        for needle in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "realmgate_build_info{version=\"",
            "realmgate_config_reloads_total{result=\"success\"} 0",
            "realmgate_config_reloads_total{result=\"failure\"} 0",
            "# TYPE realmgate_certificate_not_after_seconds gauge",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        // Unprefixed only for the standard process names.
        assert!(!text.contains("realmgate_process_"), "{text}");
        m.config_reload_failed();
        let text = m.render(Format::Prometheus);
        assert!(text.contains("realmgate_config_reloads_total{result=\"failure\"} 1"));
        assert!(text.contains("realmgate_config_last_reload_successful 0"));
    }

    #[test]
    fn idp_certificates_of_a_jwks_are_gauges_replaced_at_each_fetch() {
        use base64::Engine as _;
        let make = |cn: &str, day: u8| {
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.not_after = rcgen::date_time_ymd(2030, 1, day);
            let key = rcgen::KeyPair::generate().unwrap();
            p.self_signed(&key).unwrap().der().to_vec()
        };
        let (a, b) = (make("idp-a", 1), make("idp-b", 2));
        let jwks = |ders: &[&[u8]]| {
            let keys: Vec<_> = ders
                .iter()
                .map(|d| {
                    serde_json::json!({"kty": "RSA", "x5c": [base64::engine::general_purpose::STANDARD.encode(d)]})
                })
                .collect();
            serde_json::json!({ "keys": keys }).to_string()
        };
        let m = Metrics::new();
        m.set_idp_certificates(
            "contoso",
            Metrics::jwks_certificates(jwks(&[&a, &b, &a]).as_bytes()),
        );
        let text = m.render(Format::Prometheus);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("realmgate_certificate_not_after_seconds{"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("kind=\"idp_signing\",name=\"contoso\",subject=\"CN=idp-a\""),
            "{text}"
        );
        assert!(lines[0].ends_with(" 1893456000"), "{text}");
        assert!(lines[1].ends_with(" 1893542400"), "{text}");
        m.set_idp_certificates(
            "contoso",
            Metrics::jwks_certificates(jwks(&[&b]).as_bytes()),
        );
        assert!(!m.render(Format::Prometheus).contains("CN=idp-a"));
    }

    #[test]
    fn route_names_are_interned_once() {
        let m = Metrics::new();
        let a = m.route("hr");
        let b = m.route("hr");
        assert!(Arc::ptr_eq(&a, &b));
    }

    // === The two text formats ===

    /// Metrics with a series in every family realmgate registers: counters,
    /// gauges, histograms, the build info, and the collectors' counter and
    /// gauges (process, certificates).
    fn every_family() -> Metrics {
        let m = Metrics::new();
        m.record_request("hr", 200, Some(Duration::from_millis(3)));
        m.record_request("", 404, None);
        m.connection_opened();
        m.record_login("contoso", "success");
        m.record_session_lookup(true);
        m.set_session_count(7);
        m.record_idp_call("contoso", "token", Duration::from_millis(20), true);
        m.record_proxy_protocol_rejected(ProxyRejection::InvalidHeader);
        m.config_reload_failed();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "idp \"quoted\" \\ name");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = p.self_signed(&key).unwrap().der().to_vec();
        m.set_idp_certificates("contoso", vec![CertInfo::of_der(&der).unwrap()]);
        m
    }

    /// The `# TYPE` lines of an exposition: (family, type).
    fn types(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn prometheus_text_names_each_family_as_its_samples_do() {
        let text = every_family().render(Format::Prometheus);
        super::text_grammar::check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let types = types(&text);
        for (family, kind) in [
            ("realmgate_requests_total", "counter"),
            ("realmgate_logins_total", "counter"),
            ("realmgate_session_lookups_total", "counter"),
            ("realmgate_idp_requests_total", "counter"),
            ("realmgate_proxy_protocol_rejected_total", "counter"),
            ("realmgate_config_reloads_total", "counter"),
            ("process_cpu_seconds_total", "counter"),
            ("realmgate_upstream_latency_seconds", "histogram"),
            ("realmgate_idp_latency_seconds", "histogram"),
            ("realmgate_open_connections", "gauge"),
            ("realmgate_sessions", "gauge"),
            ("realmgate_config_last_reload_successful", "gauge"),
            ("realmgate_certificate_not_after_seconds", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            // OpenMetrics' info type: a gauge named as its sample.
            ("realmgate_build_info", "gauge"),
        ] {
            assert!(
                types.iter().any(|(f, k)| f == family && k == kind),
                "no `# TYPE {family} {kind}` in:\n{text}"
            );
        }
        assert!(text.contains("realmgate_build_info{version=\""), "{text}");
        // Every type the 0.0.4 format has; nothing of OpenMetrics.
        assert!(types
            .iter()
            .all(|(_, k)| matches!(k.as_str(), "counter" | "gauge" | "histogram")));
        for absent in ["# EOF", "# UNIT", "_created", " # {"] {
            assert!(!text.contains(absent), "{absent:?} in:\n{text}");
        }
        // HELP names the family as TYPE does.
        assert!(text.contains("# HELP realmgate_requests_total "), "{text}");
        assert!(text.contains("# HELP realmgate_build_info "), "{text}");
        // The subject label keeps no backslash or quote (`certs::info`: the
        // RFC 4514 form `CN=idp \"quoted\" \\ name` has escapes of its own).
        assert!(
            text.contains(r#"subject="CN=idp 'quoted'  name""#),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_is_the_same_registry_in_its_own_format() {
        let m = every_family();
        let om = m.render(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
        let types = types(&om);
        for (family, kind) in [
            ("realmgate_requests", "counter"),
            ("realmgate_build", "info"),
            ("realmgate_upstream_latency_seconds", "histogram"),
            ("realmgate_open_connections", "gauge"),
        ] {
            assert!(
                types.iter().any(|(f, k)| f == family && k == kind),
                "no `# TYPE {family} {kind}` in:\n{om}"
            );
        }
        // The same samples (process_* values move between two scrapes; the
        // formats put a bucket's `le` at different places).
        let samples = |text: &str| {
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("realmgate_"))
                .map(|l| {
                    let Some(start) = l.find("le=\"") else {
                        return l.to_string();
                    };
                    let end = start + l[start + 4..].find('"').unwrap() + 5;
                    let rest = format!("{}{}", &l[..start], &l[end..])
                        .replace("{,", "{")
                        .replace(",}", "}");
                    format!("{rest} {}", &l[start..end])
                })
                .collect();
            lines.sort();
            lines
        };
        let prometheus = samples(&m.render(Format::Prometheus));
        assert!(prometheus.len() > 20, "{prometheus:?}");
        assert_eq!(samples(&om), prometheus);
    }

    /// A family of OpenMetrics' `unknown` type (realmgate registers none
    /// today) is `untyped` in the text format.
    #[test]
    fn unknown_is_untyped_in_the_prometheus_text() {
        use prometheus_client::collector::Collector;
        use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;

        #[derive(Debug)]
        struct Untyped;
        impl Collector for Untyped {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                ConstGauge::new(3).encode(encoder.encode_descriptor(
                    "legacy",
                    "A value of no known type",
                    None,
                    MetricType::Unknown,
                )?)
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Untyped));
        let text = encode(&registry, Format::Prometheus);
        assert_eq!(
            text,
            "# HELP legacy A value of no known type\n# TYPE legacy untyped\nlegacy 3\n"
        );
        super::text_grammar::check(&text).unwrap();
        assert!(encode(&registry, Format::OpenMetrics).contains("# TYPE legacy unknown\n"));
    }

    #[test]
    fn accept_selects_openmetrics_only_when_listed_at_least_as_high_as_text() {
        let f = |accept: &str| Format::from_accept([accept]);
        assert_eq!(Format::from_accept([]), Format::Prometheus);
        for accept in [
            "application/openmetrics-text",
            "application/openmetrics-text; version=1.0.0",
            "APPLICATION/OPENMETRICS-TEXT;Q=0.1",
            "text/plain;q=0.5,application/openmetrics-text;q=0.5",
            "text/plain;q=0.5,application/openmetrics-text;q=0.1,application/openmetrics-text;q=0.9",
            "text/plain;q=0,application/openmetrics-text;q=0.001",
            "text/*;q=0.2,text/plain;q=0.1,application/openmetrics-text;q=0.15",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            " application/openmetrics-text ; q=1.000 , text/plain ; q=1",
        ] {
            assert_eq!(f(accept), Format::OpenMetrics, "{accept}");
        }
        for accept in [
            "",
            "*/*",
            "application/*",
            "text/plain",
            "text/plain;version=0.0.4",
            "application/json",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text;q=0.000",
            "text/plain,application/openmetrics-text;q=0.999",
            "*/*,application/openmetrics-text;q=0.5",
            "text/*;q=0.6,application/openmetrics-text;q=0.5",
            "application/openmetrics-text;q=1.5",
            "application/openmetrics-text;q=0.5000",
            "application/openmetrics-text;q=.5",
            "application/openmetrics-text;q=",
            "application/openmetrics-text;q=nan",
            "application/openmetrics-text-x",
            "openmetrics-text",
        ] {
            assert_eq!(f(accept), Format::Prometheus, "{accept:?}");
        }
        // Several header lines are one list.
        assert_eq!(
            Format::from_accept(["text/plain;q=0.3", "application/openmetrics-text;q=0.5"]),
            Format::OpenMetrics
        );
    }
}
