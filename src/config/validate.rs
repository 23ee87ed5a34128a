//! Raw config -> [`Settings`], applying defaults and collecting every problem
//! with its key path. The only side effect is reading `*_file` secrets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use url::Url;

use super::load::Loaded;
use super::raw::*;
use super::*;
use crate::audit::AuditSink;
use crate::connection::credential::{CertificateCredential, ClientCredential};

/// Minimum session secret length (SPEC 3).
pub const MIN_SECRET_BYTES: usize = 32;

/// Minimum `[admin] token` length: as long as a session secret, so a token
/// made with `openssl rand -hex 16` (128 bits) or longer passes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// Most proxy threads `server.workers` may ask for.
const MAX_WORKERS: usize = 256;

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";

/// Collects problems while converting.
struct Ctx<'a> {
    problems: &'a mut Vec<ConfigProblem>,
    /// Relative `*_file` paths resolve against the config file's folder.
    base_dir: Option<&'a Path>,
}

impl Ctx<'_> {
    fn bad(
        &mut self,
        key: impl Into<String>,
        problem: impl Into<String>,
        expected: impl Into<String>,
    ) {
        self.problems
            .push(ConfigProblem::new(key, problem, expected));
    }

    fn duration(&mut self, key: &str, raw: Option<&str>, default: &str) -> Duration {
        let text = raw.unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.bad(
                    key,
                    format!("{text:?} is not a duration ({e})"),
                    "a duration such as \"90s\", \"15m\", \"8h\" or \"1h30m\"",
                );
                humantime::parse_duration(default).unwrap_or_default()
            }
        }
    }

    fn addr(&mut self, key: &str, raw: Option<&str>, default: &str) -> SocketAddr {
        let text = raw.unwrap_or(default);
        match text.parse() {
            Ok(a) => a,
            Err(_) => {
                self.bad(
                    key,
                    format!("{text:?} is not a socket address"),
                    "IP:port such as \"0.0.0.0:8080\" or \"[::1]:9090\"",
                );
                default
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
            }
        }
    }

    fn url(&mut self, key: &str, text: &str, schemes: &[&str]) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => Some(u),
            Ok(u) => {
                self.bad(
                    key,
                    format!("{text:?} has scheme {:?} or no host", u.scheme()),
                    format!("an absolute {} URL", schemes.join(" or ")),
                );
                None
            }
            Err(e) => {
                self.bad(
                    key,
                    format!("{text:?} is not a URL ({e})"),
                    "an absolute URL",
                );
                None
            }
        }
    }

    /// A secret given inline or as `<key>_file` (trailing newline trimmed).
    fn secret(&mut self, key: &str, inline: Option<&str>, file: Option<&Path>) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.bad(
                    key,
                    format!("is set both inline and as {key}_file"),
                    "one of the two",
                );
                None
            }
            (Some(s), None) => Some(Secret::new(s.as_bytes().to_vec())),
            (None, Some(path)) => self.read_secret_file(&format!("{key}_file"), path),
            (None, None) => None,
        }
    }

    fn read_secret_file(&mut self, key: &str, path: &Path) -> Option<Secret> {
        let full = self.resolve(path);
        match read_bounded(&full) {
            Ok(mut bytes) => {
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Some(Secret::new(bytes))
            }
            Err(e) => {
                self.bad(
                    key,
                    format!("cannot read {}: {e}", full.display()),
                    "a readable file holding the secret",
                );
                None
            }
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        match self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// True for the placeholder secrets printed in `config.toml.example` and the
/// docs (`change-me…`, `replace-me…`): a copied example must not run with a
/// secret everyone can read.
pub(super) fn is_placeholder_secret(secret: &[u8]) -> bool {
    let lower = secret.to_ascii_lowercase();
    lower.starts_with(b"change-me") || lower.starts_with(b"replace-me")
}

/// Largest secret file read: a secret is a line, a URL or a PEM key, never more.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file: a regular file (a symlink to one is fine, as
/// Kubernetes mounts them) of at most [`MAX_SECRET_FILE_BYTES`]. `/dev/zero`,
/// a FIFO or a huge file would otherwise hang or exhaust memory at startup.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "it is not a regular file (a device, FIFO or folder)",
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {} KiB",
            MAX_SECRET_FILE_BYTES / 1024
        )));
    }
    Ok(bytes)
}

/// Validates everything `load` produced.
pub fn validate(
    loaded: Loaded,
    base_dir: Option<&Path>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Settings> {
    let mut cx = Ctx { problems, base_dir };
    let server = server(&mut cx, loaded.server);
    let admin = admin(&mut cx, loaded.admin);
    // `run` binds both: one address cannot serve both (review 13, H3).
    // Port 0 (any free port, tests) never collides.
    if admin.listen == server.listen && server.listen.port() != 0 {
        cx.bad(
            "admin.listen",
            format!("{} is also server.listen", admin.listen),
            "another address or port than the proxy listener's, such as \"127.0.0.1:9090\"",
        );
    }
    let session = session(&mut cx, loaded.session);
    let log = log(&mut cx, loaded.log);
    let ui = ui(&mut cx, loaded.ui);
    // Where each connection name first stands in the file, for key paths of
    // problems found after `connections` has dropped the raw entries.
    let mut connection_at: HashMap<String, usize> = HashMap::new();
    for (i, raw) in loaded.connections.iter().enumerate() {
        if let Some(name) = raw.as_ref().and_then(|r| r.name.clone()) {
            connection_at.entry(name).or_insert(i);
        }
    }
    let connections = connections(&mut cx, loaded.connections);
    let routes = routes(&mut cx, loaded.routes, &connections);
    entity_ids(&mut cx, &server, &connections, &routes, &connection_at);
    if cx.problems.is_empty() {
        Some(Settings {
            server,
            admin,
            session,
            log,
            ui,
            connections,
            routes,
        })
    } else {
        None
    }
}

/// SPEC 9: "`sp_entity_id` must be set when the routes that allow a SAML
/// connection span several hosts and no `public_origin` is set." The default
/// entity id is `<origin>/.auth/saml/<name>` (`SamlSettings::entity_id`), so
/// each host would be another identifier at the IdP and another audience
/// the responses must name. WS-Fed derives its `wtrealm` (the audience) the
/// same way when neither `realm` nor `sp_entity_id` is set, so the rule
/// holds for it too, asking for `realm` (docs/decisions.md). A route without
/// `connections` allows every connection (its settings list them all).
fn entity_ids(
    cx: &mut Ctx<'_>,
    server: &ServerSettings,
    connections: &[Arc<ConnectionSettings>],
    routes: &[Arc<RouteSettings>],
    connection_at: &HashMap<String, usize>,
) {
    if server.public_origin.is_some() {
        return;
    }
    for conn in connections {
        let saml = match &conn.kind {
            ConnectionKind::Saml(s) if s.sp_entity_id.is_none() => true,
            ConnectionKind::WsFed(s) if s.realm.is_none() && s.sp_entity_id.is_none() => false,
            _ => continue,
        };
        let hosts: std::collections::BTreeSet<&str> = routes
            .iter()
            .filter(|r| r.connections.contains(&conn.name))
            .flat_map(|r| r.hosts.iter().map(String::as_str))
            .collect();
        if hosts.len() < 2 {
            continue;
        }
        let Some(i) = connection_at.get(&conn.name) else {
            continue;
        };
        let name = &conn.name;
        let first = hosts.iter().next().copied().unwrap_or_default();
        let list = hosts.into_iter().collect::<Vec<_>>().join(", ");
        let (key, what, expected) = if saml {
            (
                "sp_entity_id",
                "SAML",
                format!("sp_entity_id = the one identifier registered at the IdP, such as \"https://{first}/.auth/saml/{name}\" (or server.public_origin, when every route is reached through one origin)"),
            )
        } else {
            (
                "realm",
                "WS-Fed",
                format!("realm = the one wtrealm registered at the IdP, such as \"urn:realmgate:{name}\" (or server.public_origin, when every route is reached through one origin)"),
            )
        };
        cx.bad(
            format!("connection[{i}].{key}"),
            format!(
                "is required: the routes that allow {what} connection {name:?} span several hosts ({list}) and server.public_origin is not set, so the default <origin>/.auth/saml/{name} would be another entity id on each host"
            ),
            expected,
        );
    }
}

/// An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it
/// covers (`10.0.0.0/8`): peers are compared in canonical form (a mapped
/// address as IPv4, `peer::ip_is_trusted`), so the range
/// must be too. Other ranges are kept as written.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// `[admin]`: the listener, the optional bearer token and the host names
/// that may reach `/metrics` and `/sessions/*` without one (SPEC 6.1).
fn admin(cx: &mut Ctx<'_>, raw: RawAdmin) -> AdminSettings {
    let listen = cx.addr("admin.listen", raw.listen.as_deref(), "127.0.0.1:9090");
    let token = cx
        .secret("admin.token", raw.token.as_deref(), raw.token_file.as_deref())
        .filter(|t| {
            let key = if raw.token_file.is_some() {
                "admin.token_file"
            } else {
                "admin.token"
            };
            // It travels in an `Authorization` header: visible ASCII only, so
            // what the operator's scraper sends is byte for byte what is stored.
            if !t.expose().iter().all(|b| (0x21..=0x7e).contains(b)) {
                cx.bad(
                    key,
                    "holds a space, a control character or non-ASCII",
                    "visible ASCII only, e.g. the output of `openssl rand -hex 32`",
                );
                return false;
            }
            if t.expose().len() < MIN_ADMIN_TOKEN_BYTES {
                cx.bad(
                    key,
                    format!("is shorter than {MIN_ADMIN_TOKEN_BYTES} characters"),
                    format!(
                        "at least {MIN_ADMIN_TOKEN_BYTES} random characters, e.g. the output of `openssl rand -hex 32`"
                    ),
                );
                return false;
            }
            true
        });
    let mut hosts = Vec::new();
    for (i, h) in raw.hosts.unwrap_or_default().iter().enumerate() {
        // A bare name only: the admin listener compares it with the request's
        // Host without its port, lowercased and in its A-label form.
        let plain = |n: &String| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        };
        match normalize_domain(h).filter(plain) {
            Some(n) if !hosts.contains(&n) => hosts.push(n),
            Some(_) => {}
            None => cx.bad(
                format!("admin.hosts[{i}]"),
                format!("{h:?} is not a host name"),
                "a bare host name without scheme, port or wildcard, such as \"metrics.internal\" (IP addresses and localhost are always allowed)",
            ),
        }
    }
    AdminSettings {
        listen,
        token,
        hosts,
    }
}

fn server(cx: &mut Ctx<'_>, raw: RawServer) -> ServerSettings {
    let listen = cx.addr("server.listen", raw.listen.as_deref(), "0.0.0.0:8080");
    let public_origin = raw.public_origin.as_deref().and_then(|o| {
        let u = cx.url("server.public_origin", o, &["http", "https"])?;
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            cx.bad(
                "server.public_origin",
                format!("{o:?} has a path, query or fragment"),
                "an origin only, such as \"https://apps.contoso.com\"",
            );
            return None;
        }
        Some(u)
    });
    let mut trusted_proxies = Vec::new();
    for (i, p) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        // A bare address means a single host.
        let parsed = p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(canonical_net(net.trunc())),
            Err(_) => cx.bad(
                format!("server.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address or CIDR range"),
                "an address such as \"10.1.2.3\" or a range such as \"10.0.0.0/8\"",
            ),
        }
    }
    let max_header_bytes = raw.max_header_bytes.unwrap_or(65536);
    if !(4096..=1 << 20).contains(&max_header_bytes) {
        cx.bad(
            "server.max_header_bytes",
            format!("{max_header_bytes} is out of range"),
            "a number of bytes from 4096 to 1048576",
        );
    }
    let workers = match raw.workers.unwrap_or(0) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n if n <= MAX_WORKERS as u64 => n as usize,
        n => {
            cx.bad(
                "server.workers",
                format!("{n} is out of range"),
                "0 (one proxy thread per CPU core) or a number of threads from 1 to 256",
            );
            1
        }
    };
    let tls = raw.tls.and_then(|t| match (t.cert, t.key) {
        (Some(cert), Some(key)) => {
            let cert = cx.resolve(&cert);
            let key = cx.resolve(&key);
            let mut files = true;
            for (k, p) in [("server.tls.cert", &cert), ("server.tls.key", &key)] {
                if !p.is_file() {
                    files = false;
                    cx.bad(
                        k,
                        format!("{} does not exist or is not a file", p.display()),
                        "the path of a PEM file",
                    );
                }
            }
            let tls = TlsSettings { cert, key };
            // What `run` builds from them: a certificate and key that are
            // no pair, or unreadable PEM, are this check's problem, not a
            // failed start (review 13, H3). The message names the key.
            if files {
                if let Err(e) = crate::server::tls::load(&tls) {
                    cx.bad(
                        "server.tls",
                        e.to_string(),
                        "a PEM certificate chain (leaf first) and the private key of its leaf",
                    );
                }
            }
            Some(tls)
        }
        _ => {
            cx.bad(
                "server.tls",
                "needs both cert and key",
                "cert = \"<PEM chain>\" and key = \"<PEM key>\"",
            );
            None
        }
    });
    let assertion_key = raw.assertion_key.and_then(|path| {
        let full = cx.resolve(&path);
        match super::assertion_key::AssertionKey::load(&full) {
            Ok(key) => Some(Arc::new(key)),
            Err(e) => {
                cx.bad(
                    "server.assertion_key",
                    e,
                    "a readable PEM private key: P-256 EC (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`) or RSA of at least 2048 bits",
                );
                None
            }
        }
    });
    let proxy_protocol = raw.proxy_protocol.unwrap_or(false);
    // A PROXY header is believed only from a peer in trusted_proxies (SPEC
    // 6.1): with none, the listener could serve nobody.
    if proxy_protocol && trusted_proxies.is_empty() {
        cx.bad(
            "server.proxy_protocol",
            "is true but server.trusted_proxies is empty: a PROXY header is accepted only from a peer in trusted_proxies, so every connection would be closed",
            "list the load balancers' addresses in server.trusted_proxies (such as [\"10.0.0.5\", \"10.0.0.6\"]), or set proxy_protocol = false",
        );
    }
    ServerSettings {
        listen,
        public_origin,
        trusted_proxies,
        proxy_protocol,
        shutdown_grace: cx.duration(
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            "30s",
        ),
        shutdown_delay: cx.duration("server.shutdown_delay", raw.shutdown_delay.as_deref(), "0s"),
        max_header_bytes: max_header_bytes as usize,
        header_read_timeout: cx.duration(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            "10s",
        ),
        idle_timeout: cx.duration("server.idle_timeout", raw.idle_timeout.as_deref(), "60s"),
        workers,
        tls,
        assertion_key,
    }
}

fn session(cx: &mut Ctx<'_>, raw: RawSession) -> SessionSettings {
    let mut secrets = Vec::new();
    let given: Vec<&str> = [
        ("secret", raw.secret.is_some()),
        ("secret_file", raw.secret_file.is_some()),
        ("secrets", raw.secrets.is_some()),
        ("secrets_file", raw.secrets_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if given.len() > 1 {
        // One problem, not a second one from `secret` below as well.
        cx.bad(
            "session.secret",
            format!("is given as {}", given.join(" and ")),
            "exactly one of secret, secret_file, secrets, secrets_file (a REALMGATE_SESSION__* environment variable counts as given)",
        );
    } else if let Some(s) = cx.secret(
        "session.secret",
        raw.secret.as_deref(),
        raw.secret_file.as_deref(),
    ) {
        secrets.push(("session.secret".to_string(), s));
    }
    for (i, s) in raw.secrets.unwrap_or_default().into_iter().enumerate() {
        secrets.push((format!("session.secrets[{i}]"), Secret::new(s.into_bytes())));
    }
    for (i, p) in raw.secrets_file.unwrap_or_default().iter().enumerate() {
        let key = format!("session.secrets_file[{i}]");
        if let Some(s) = cx.read_secret_file(&key, p) {
            secrets.push((key, s));
        }
    }
    if secrets.is_empty() && given.is_empty() {
        cx.bad(
            "session.secret",
            "is missing",
            format!(
                "at least {MIN_SECRET_BYTES} random bytes, e.g. the output of `openssl rand -base64 48`, as secret, secret_file, or secrets = [new, old]"
            ),
        );
    }
    for (key, s) in &secrets {
        if is_placeholder_secret(s.expose()) {
            cx.bad(
                key.clone(),
                "is the placeholder of the example configuration",
                "a random secret of your own: `openssl rand -base64 48`",
            );
        } else if s.expose().len() < MIN_SECRET_BYTES {
            cx.bad(
                key.clone(),
                format!("is {} bytes long", s.expose().len()),
                format!("at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`)"),
            );
        }
    }
    let cookie_name = raw.cookie_name.unwrap_or_else(|| "realmgate".into());
    if cookie_name.is_empty()
        || cookie_name.len() > 64
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        cx.bad(
            "session.cookie_name",
            format!("{cookie_name:?} is not a valid cookie name"),
            "1 to 64 letters, digits, '-' or '_' (the __Host- prefix is added automatically)",
        );
    }
    // Browsers refuse a `__Host-` cookie with a Domain and a `__Secure-`
    // or `__Host-` one without Secure (plain HTTP), in any letter case:
    // sign-in would never stick (review 13, H3). realmgate adds `__Host-`
    // itself where a browser takes it.
    let lower = cookie_name.to_ascii_lowercase();
    if lower.starts_with("__host-") || lower.starts_with("__secure-") {
        cx.bad(
            "session.cookie_name",
            format!("{cookie_name:?} starts with a cookie prefix"),
            "a name without __Host- or __Secure-: realmgate adds __Host- itself on HTTPS without cookie_domain",
        );
    }
    let cookie_domain = raw.cookie_domain.map(|d| d.to_ascii_lowercase());
    if let Some(d) = &cookie_domain {
        let bare = d.trim_start_matches('.');
        if bare.is_empty()
            || !bare.contains('.')
            || !bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            cx.bad(
                "session.cookie_domain",
                format!("{d:?} is not a domain realmgate can set cookies for"),
                "a parent domain of the route hosts, such as \".contoso.com\"",
            );
        }
    }
    let lifetime = cx.duration("session.lifetime", raw.lifetime.as_deref(), "8h");
    let idle_timeout = cx.duration("session.idle_timeout", raw.idle_timeout.as_deref(), "1h");
    if idle_timeout > lifetime {
        cx.bad(
            "session.idle_timeout",
            "is longer than session.lifetime",
            "an idle timeout no longer than the absolute lifetime",
        );
    }
    if lifetime.is_zero() || idle_timeout.is_zero() {
        cx.bad("session.lifetime", "is zero", "a positive duration");
    }
    let store = match raw.store.as_deref().unwrap_or("memory") {
        "memory" => {
            if raw.redis_url.is_some()
                || raw.redis_url_file.is_some()
                || raw.redis_cache_ttl.is_some()
                || raw.redis_key_prefix.is_some()
            {
                cx.bad(
                    "session.redis_url",
                    "(or redis_url_file, redis_key_prefix, redis_cache_ttl) is set but session.store is \"memory\"",
                    "store = \"redis\" to use Redis, or none of the redis_* keys",
                );
            }
            let max_entries = raw.memory_max_entries.unwrap_or(1_000_000);
            if max_entries == 0 {
                cx.bad(
                    "session.memory_max_entries",
                    "is 0",
                    "a positive number of sessions",
                );
            }
            StoreSettings::Memory { max_entries }
        }
        "redis" => redis_store(
            cx,
            RedisKeys {
                url: raw.redis_url,
                url_file: raw.redis_url_file,
                key_prefix: raw.redis_key_prefix,
                cache_ttl: raw.redis_cache_ttl,
            },
        ),
        other => {
            cx.bad(
                "session.store",
                format!("{other:?} is not a session store"),
                "\"memory\" or \"redis\"",
            );
            StoreSettings::Memory { max_entries: 1 }
        }
    };
    SessionSettings {
        secrets: secrets.into_iter().map(|(_, s)| s).collect(),
        cookie_name,
        cookie_domain,
        lifetime,
        idle_timeout,
        store,
        refresh_tokens: raw.refresh_tokens.unwrap_or(true),
    }
}

fn log(cx: &mut Ctx<'_>, raw: RawLog) -> LogSettings {
    let format = match raw.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            cx.bad(
                "log.format",
                format!("{other:?} is not a log format"),
                "\"text\" or \"json\"",
            );
            LogFormat::Text
        }
    };
    let level = raw.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        cx.bad(
            "log.level",
            format!("{level:?} is not a log filter"),
            "a level (error, warn, info, debug, trace) or directives such as \"info,realmgate=debug\"",
        );
    }
    let audit = match raw.audit.as_deref().unwrap_or("stdout") {
        "stdout" => AuditSink::Stdout,
        "stderr" => AuditSink::Stderr,
        "off" => AuditSink::Off,
        path => {
            let p = std::path::Path::new(path);
            if !p.is_absolute() {
                cx.bad(
                    "log.audit",
                    format!("{path:?} is neither a sink name nor an absolute path"),
                    "\"stdout\", \"stderr\", \"off\", or an absolute file path such as \"/var/log/realmgate/audit.log\"",
                );
            } else if p.is_dir() || !p.parent().is_some_and(|d| d.is_dir()) {
                cx.bad(
                    "log.audit",
                    format!("{path:?} is a directory or its directory does not exist"),
                    "a file path in an existing directory (the file is created if absent and appended to)",
                );
            }
            AuditSink::File(p.to_path_buf())
        }
    };
    LogSettings {
        format,
        level,
        audit,
    }
}

fn ui(cx: &mut Ctx<'_>, raw: RawUi) -> UiSettings {
    let accent_color = raw.accent_color.unwrap_or_else(|| "#0f6cbd".into());
    let hex = accent_color.strip_prefix('#').unwrap_or("");
    if !(hex.len() == 3 || hex.len() == 6) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        cx.bad(
            "ui.accent_color",
            format!("{accent_color:?} is not a hex colour"),
            "\"#rgb\" or \"#rrggbb\", such as \"#0f6cbd\"",
        );
    }
    let logo_url = raw.logo_url.filter(|u| {
        let ok = u.starts_with('/') && !u.starts_with("//")
            || Url::parse(u).is_ok_and(|p| p.scheme() == "https" || p.scheme() == "data");
        if !ok {
            cx.bad(
                "ui.logo_url",
                format!("{u:?} is not an https URL, a data: URL or an absolute path"),
                "for example \"https://cdn.contoso.com/logo.svg\" or \"/static/logo.png\"",
            );
        }
        ok
    });
    let title = raw.title.unwrap_or_else(|| "Sign in".into());
    if title.chars().any(char::is_control) || title.len() > 200 {
        cx.bad(
            "ui.title",
            "has control characters or is too long",
            "up to 200 printable characters",
        );
    }
    UiSettings {
        title,
        logo_url,
        accent_color,
    }
}

/// `contoso`, `partner-2`, `hr_app`: safe in URLs, logs and metric labels.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Easy Auth's provider name for Entra ID (`headers::identity::easy_auth_idp`).
const EASY_AUTH_ENTRA: &str = "aad";

const NAME_EXPECTED: &str = "1 to 64 lowercase letters, digits, '-' or '_'";

/// Lowercase and IDNA (punycode) form of a domain or host name.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() || d.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let ascii = idna::domain_to_ascii(d).ok()?;
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        return None;
    }
    Some(ascii)
}

/// [`normalize_domain`], then only what an email's host can be (letters,
/// digits, inner hyphens per label): IDNA lets `*` and `_` through, and a
/// wildcard such as `*.contoso.com` would match no email, ever, silently.
fn normalize_email_domain(domain: &str) -> Option<String> {
    normalize_domain(domain).filter(|d| crate::email::is_dns_name(d))
}

const EMAIL_DOMAIN_EXPECTED: &str =
    "a domain such as \"contoso.com\" (no wildcard: list each subdomain that users' addresses have)";

fn connections(cx: &mut Ctx<'_>, raws: Vec<Option<RawConnection>>) -> Vec<Arc<ConnectionSettings>> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut domains: HashMap<String, String> = HashMap::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let Some(raw) = raw else { continue };
        let at = |k: &str| format!("connection[{i}].{k}");
        let name = raw.name.clone().unwrap_or_default();
        if !valid_name(&name) {
            cx.bad(
                at("name"),
                format!("{name:?} is not a valid connection name"),
                NAME_EXPECTED,
            );
        } else if let Some(first) = names.insert(name.clone(), i) {
            cx.bad(
                at("name"),
                format!("{name:?} is already the name of connection[{first}]"),
                "a unique name",
            );
        }
        let entra_only = [
            ("tenant", raw.tenant.is_some()),
            ("allowed_tenants", raw.allowed_tenants.is_some()),
            ("authority_host", raw.authority_host.is_some()),
            ("graph_endpoint", raw.graph_endpoint.is_some()),
            (
                "group_names_from_graph",
                raw.group_names_from_graph == Some(true),
            ),
        ];
        let oidc_only = [
            ("issuer", raw.issuer.is_some()),
            (
                "authorization_endpoint",
                raw.authorization_endpoint.is_some(),
            ),
            ("token_endpoint", raw.token_endpoint.is_some()),
            ("jwks_uri", raw.jwks_uri.is_some()),
            ("userinfo_endpoint", raw.userinfo_endpoint.is_some()),
            ("end_session_endpoint", raw.end_session_endpoint.is_some()),
        ];
        let kind = match raw.kind.as_deref() {
            Some("entra") => {
                for (k, set) in oidc_only {
                    if set {
                        cx.bad(at(k), "is only for type = \"oidc\"", "no such key on an Entra connection (it uses tenant and authority_host)");
                    }
                }
                entra(cx, &at, &raw).map(ConnectionKind::Entra)
            }
            Some("oidc") => {
                for (k, set) in entra_only {
                    if set {
                        cx.bad(
                            at(k),
                            "is only for type = \"entra\"",
                            "no such key on an OIDC connection",
                        );
                    }
                }
                oidc(cx, &at, &raw).map(ConnectionKind::Oidc)
            }
            Some(t @ ("saml" | "wsfed")) => match crate::saml::config::from_raw(t, &raw) {
                Ok(settings) if t == "saml" => Some(ConnectionKind::Saml(Arc::new(settings))),
                Ok(settings) => Some(ConnectionKind::WsFed(Arc::new(settings))),
                Err(problems) => {
                    for p in problems {
                        cx.bad(at(p.key), p.problem, p.expected);
                    }
                    None
                }
            },
            Some("ldap") => {
                ldap::refuse_other_keys(cx, &at, &raw);
                ldap::connection(cx, &at, &raw).map(|l| ConnectionKind::Ldap(Box::new(l)))
            }
            Some(other) => {
                cx.bad(
                    at("type"),
                    format!("{other:?} is not a connection type"),
                    "\"entra\", \"oidc\", \"ldap\", \"saml\" or \"wsfed\"",
                );
                None
            }
            None => {
                cx.bad(
                    at("type"),
                    "is missing",
                    "\"entra\", \"oidc\", \"ldap\", \"saml\" or \"wsfed\"",
                );
                None
            }
        };
        let is_ldap = raw.kind.as_deref() == Some("ldap");
        // SAML and WS-Fed keys (`attributes` among them) are checked by
        // `saml::config::from_raw`; those kinds have no client id or scopes.
        let is_saml = matches!(raw.kind.as_deref(), Some("saml" | "wsfed"));
        if !is_ldap && !is_saml {
            ldap::refuse_ldap_keys(cx, &at, &raw);
        }
        // Not OpenID Connect: no client id, no scopes.
        let no_client = is_ldap || is_saml;
        let client_id = raw.client_id.clone().unwrap_or_default();
        if client_id.trim().is_empty() && !no_client {
            cx.bad(
                at("client_id"),
                "is missing",
                "the application (client) id registered at the provider",
            );
        }
        let client_secret = cx.secret(
            &at("client_secret"),
            raw.client_secret.as_deref(),
            raw.client_secret_file.as_deref(),
        );
        if client_secret
            .as_ref()
            .is_some_and(|s| is_placeholder_secret(s.expose()))
        {
            cx.bad(
                at("client_secret"),
                "is the placeholder of the example configuration",
                "the client secret the provider issued for this application (or client_secret_file)",
            );
        }
        let credential = client_credential(cx, &at, &raw, client_secret);
        let mut home_realm_domains = Vec::new();
        for (j, d) in raw
            .home_realm_domains
            .clone()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let key = at(&format!("home_realm_domains[{j}]"));
            match normalize_email_domain(d) {
                Some(n) => {
                    if let Some(owner) = domains.get(&n) {
                        cx.bad(
                            key,
                            format!("{d:?} is already a home realm domain of connection {owner:?}"),
                            "each domain in at most one connection",
                        );
                    } else {
                        domains.insert(n.clone(), name.clone());
                        home_realm_domains.push(n);
                    }
                }
                None => cx.bad(
                    key,
                    format!("{d:?} is not a domain an email address can have"),
                    EMAIL_DOMAIN_EXPECTED,
                ),
            }
        }
        let groups_in_headers = match raw.groups_in_headers.as_deref().unwrap_or("all") {
            "all" => GroupsInHeaders::All,
            "known" => GroupsInHeaders::Known,
            other => {
                cx.bad(
                    at("groups_in_headers"),
                    format!("{other:?} is not a choice"),
                    "\"all\" or \"known\"",
                );
                GroupsInHeaders::All
            }
        };
        let is_entra = matches!(kind, Some(ConnectionKind::Entra(_)));
        // Easy Auth calls Entra ID `aad` (`X-MS-CLIENT-PRINCIPAL-IDP`,
        // `X-MS-TOKEN-AAD-*`, which Microsoft.Identity.Web reads as Entra's
        // without verifying): another kind must not take that name
        // (`headers::identity::easy_auth_idp`; review 11).
        if name == EASY_AUTH_ENTRA && kind.is_some() && !is_entra {
            cx.bad(
                at("name"),
                format!("{name:?} is what Easy Auth calls Entra ID, and this connection is not type = \"entra\": apps would take its users and tokens for Entra's"),
                "another name, or type = \"entra\" if it is Entra ID",
            );
        }
        let scopes = raw.scopes.clone().unwrap_or_else(|| {
            let mut s = vec!["openid", "profile", "email"];
            if is_entra {
                s.push("offline_access");
            }
            s.into_iter().map(String::from).collect()
        });
        if !no_client && !scopes.iter().any(|s| s == "openid") {
            cx.bad(
                at("scopes"),
                "does not include \"openid\"",
                "a list that includes \"openid\"",
            );
        }
        let upstream_params: Vec<(String, String)> = raw
            .upstream_params
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (k, v) in &upstream_params {
            // The operator may choose how the provider returns the code (the
            // callback serves both); nothing else about the protocol.
            if k == "response_mode" && !matches!(v.as_str(), "query" | "form_post") {
                cx.bad(
                    at("upstream_params.response_mode"),
                    format!("{v:?} is not a response mode the callback serves"),
                    "\"query\" (the default) or \"form_post\"",
                );
            } else if k != "response_mode" && PROTOCOL_PARAMS.contains(&k.as_str()) {
                cx.bad(
                    at(&format!("upstream_params.{k}")),
                    "would override a parameter realmgate sets itself",
                    format!("a parameter other than {}", PROTOCOL_PARAMS.join(", ")),
                );
            }
        }
        let forward_params = raw.forward_params.clone().unwrap_or_default();
        for p in &forward_params {
            if PROTOCOL_PARAMS.contains(&p.as_str()) {
                cx.bad(
                    at("forward_params"),
                    format!("{p:?} would let a link override a protocol parameter"),
                    format!("parameters other than {}", PROTOCOL_PARAMS.join(", ")),
                );
            }
        }
        let Some(kind) = kind else { continue };
        out.push(ConnectionSettings {
            display_name: raw.display_name.clone().unwrap_or_else(|| name.clone()),
            name,
            kind,
            client_id,
            credential,
            scopes,
            home_realm_domains,
            always_show_button: raw.always_show_button.unwrap_or(false),
            groups: ldap::groups_switch(cx, &at, &raw),
            group_names: raw
                .group_names
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            group_names_from_graph: raw.group_names_from_graph.unwrap_or(false),
            groups_in_headers,
            extended_profile: raw.extended_profile.unwrap_or(false),
            trusted_email: raw.trusted_email.unwrap_or(false),
            upstream_params,
            forward_params,
            names_of_other_connections: Default::default(),
            own_names_folded: Default::default(),
            domains_of_other_connections: Default::default(),
            bare_usernames_are_ambiguous: false,
        });
    }
    let names: Vec<(String, String)> = out
        .iter()
        .flat_map(|c| {
            c.group_names
                .values()
                .map(|n| (c.name.clone(), crate::fold::fold(n.trim())))
        })
        .collect();
    let domains: Vec<(String, String)> = out
        .iter()
        .flat_map(|c| {
            c.home_realm_domains
                .iter()
                .map(|d| (c.name.clone(), d.clone()))
        })
        .collect();
    // (owner, value) pairs: the values of every connection but `name`.
    let others = |pairs: &[(String, String)], name: &str| {
        pairs
            .iter()
            .filter(|(owner, _)| owner != name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    // The group ids other connections map in `group_names`: a raw value of
    // this connection equal to one is, byte for byte, that connection's
    // group to an app keyed on ids (Easy Auth's principal always carries
    // ids). Between Entra connections an id is Microsoft's (unique across
    // tenants, as `oid` is), so one Entra connection's id is not kept from
    // another's users.
    let ids: Vec<(String, bool, String)> = out
        .iter()
        .flat_map(|c| {
            c.group_names
                .keys()
                .map(|id| (c.name.clone(), c.is_entra(), crate::fold::fold(id.trim())))
        })
        .collect();
    // Connections that may issue a username naming no domain: every kind
    // but Entra, whose `preferred_username` is the UPN. Such names belong to
    // one of them: the directory when exactly one LDAP connection is
    // configured (its `sAMAccountName`s are what apps moved off Windows
    // authentication know), else the only such connection if there is one;
    // otherwise to none (review 12).
    let bare_issuers: Vec<(&str, bool)> = out
        .iter()
        .filter(|c| !c.is_entra())
        .map(|c| (c.name.as_str(), c.is_ldap()))
        .collect();
    let directories: Vec<&str> = bare_issuers
        .iter()
        .filter(|(_, ldap)| *ldap)
        .map(|(name, _)| *name)
        .collect();
    let bare_owner: Option<String> = match (directories.as_slice(), bare_issuers.as_slice()) {
        ([directory], _) => Some(directory.to_string()),
        ([], [(only, _)]) => Some(only.to_string()),
        _ => None,
    };
    let bare_issuers: Vec<String> = bare_issuers.iter().map(|(n, _)| n.to_string()).collect();
    for c in &mut out {
        c.bare_usernames_are_ambiguous = bare_owner.as_deref() != Some(c.name.as_str())
            && bare_issuers.iter().any(|n| *n != c.name);
        c.own_names_folded = c
            .group_names
            .iter()
            .flat_map(|(id, name)| [crate::fold::fold(id.trim()), crate::fold::fold(name.trim())])
            .collect();
        c.names_of_other_connections = others(&names, &c.name);
        let entra = c.is_entra();
        c.names_of_other_connections.extend(
            ids.iter()
                .filter(|(owner, owner_entra, _)| *owner != c.name && !(entra && *owner_entra))
                .map(|(_, _, id)| id.clone()),
        );
        c.domains_of_other_connections = others(&domains, &c.name);
    }
    out.into_iter().map(Arc::new).collect()
}

/// Authorization request parameters realmgate owns; config may not override
/// them (`response_mode` only in `forward_params`: `upstream_params` may set
/// it to `query` or `form_post`).
const PROTOCOL_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
];

mod ldap;

/// The connection's client credential (SPEC 5.10): a secret, a certificate
/// with its key, or a federated token file; at most one kind.
fn client_credential(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: &RawConnection,
    client_secret: Option<Secret>,
) -> Option<ClientCredential> {
    let kinds: Vec<&str> = [
        (
            "client_secret",
            raw.client_secret.is_some() || raw.client_secret_file.is_some(),
        ),
        (
            "client_certificate_file",
            raw.client_certificate_file.is_some() || raw.client_key_file.is_some(),
        ),
        ("client_assertion_file", raw.client_assertion_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if kinds.len() > 1 {
        cx.bad(
            at(kinds[1]),
            format!("is set together with {}", kinds[0]),
            "one client credential per connection: client_secret(_file), \
             client_certificate_file + client_key_file, or client_assertion_file",
        );
        return None;
    }
    if let Some(secret) = client_secret {
        return Some(ClientCredential::Secret(secret));
    }
    match (&raw.client_certificate_file, &raw.client_key_file) {
        (Some(cert), Some(key)) => {
            let (cert, key) = (cx.resolve(cert), cx.resolve(key));
            return match CertificateCredential::load(&cert, &key) {
                Ok(c) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    if c.not_after() <= now {
                        cx.bad(
                            at("client_certificate_file"),
                            format!("{}: the certificate has expired", cert.display()),
                            "a certificate that is still valid, uploaded to the app registration",
                        );
                        None
                    } else {
                        Some(ClientCredential::Certificate(Arc::new(c)))
                    }
                }
                Err(e) => {
                    cx.bad(
                        at("client_certificate_file"),
                        format!("{} with client_key_file {}: {e}", cert.display(), key.display()),
                        "a PEM certificate and the PEM private key it was issued for (RSA >= 2048 bits or P-256)",
                    );
                    None
                }
            };
        }
        (Some(_), None) => {
            cx.bad(
                at("client_key_file"),
                "is missing (client_certificate_file is set)",
                "the PEM private key of the certificate",
            );
            return None;
        }
        (None, Some(_)) => {
            cx.bad(
                at("client_certificate_file"),
                "is missing (client_key_file is set)",
                "the PEM certificate uploaded to the app registration",
            );
            return None;
        }
        (None, None) => {}
    }
    let path = raw.client_assertion_file.as_ref()?;
    let full = cx.resolve(path);
    // Read once now so a wrong path is a `check` error; it is read again
    // for every use (the platform rotates it).
    match read_bounded(&full) {
        Ok(bytes) if crate::connection::credential::assertion_of(&bytes).is_some() => {}
        Ok(_) => cx.bad(
            at("client_assertion_file"),
            format!("{} does not hold a JWT", full.display()),
            "the federated token file the platform mounts (AKS workload identity: $AZURE_FEDERATED_TOKEN_FILE)",
        ),
        Err(e) => cx.bad(
            at("client_assertion_file"),
            format!("cannot read {}: {e}", full.display()),
            "the federated token file the platform mounts (AKS workload identity: $AZURE_FEDERATED_TOKEN_FILE)",
        ),
    }
    Some(ClientCredential::AssertionFile(full))
}

fn entra(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: &RawConnection,
) -> Option<EntraSettings> {
    let tenant = raw.tenant.clone().unwrap_or_default();
    let tenant_ok = !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !tenant_ok {
        cx.bad(
            at("tenant"),
            if tenant.is_empty() { "is missing".to_string() } else { format!("{tenant:?} is not a tenant") },
            "a tenant domain (contoso.onmicrosoft.com), a tenant id (GUID), \"common\" or \"organizations\"",
        );
    }
    let authority_host = cx.url(
        &at("authority_host"),
        raw.authority_host.as_deref().unwrap_or(DEFAULT_AUTHORITY),
        &["https", "http"],
    )?;
    let graph_endpoint = cx.url(
        &at("graph_endpoint"),
        raw.graph_endpoint.as_deref().unwrap_or(DEFAULT_GRAPH),
        &["https", "http"],
    )?;
    let multi = matches!(
        tenant.to_ascii_lowercase().as_str(),
        "common" | "organizations" | "consumers"
    );
    let allowed_tenants = match (&raw.allowed_tenants, multi) {
        (None, true) => {
            cx.bad(
                at("allowed_tenants"),
                format!("is required with tenant = {tenant:?} (any Entra tenant could sign in)"),
                "the tenant ids (GUIDs) allowed to sign in, or [\"*\"] if you really mean any tenant",
            );
            TenantAllowList::Any
        }
        (None, false) => TenantAllowList::Pinned,
        (Some(list), _) if list.iter().any(|t| t == "*") => {
            if list.len() > 1 {
                cx.bad(
                    at("allowed_tenants"),
                    "mixes \"*\" with tenant ids",
                    "either [\"*\"] or a list of tenant ids",
                );
            }
            TenantAllowList::Any
        }
        (Some(list), _) => {
            let mut ids = Vec::new();
            for (j, t) in list.iter().enumerate() {
                if is_guid(t) {
                    ids.push(t.to_ascii_lowercase());
                } else {
                    cx.bad(
                        at(&format!("allowed_tenants[{j}]")),
                        format!("{t:?} is not a tenant id"),
                        "a tenant id (GUID), as tokens carry it in the tid claim",
                    );
                }
            }
            if ids.is_empty() && list.is_empty() {
                cx.bad(
                    at("allowed_tenants"),
                    "is empty",
                    "at least one tenant id, or [\"*\"]",
                );
            }
            TenantAllowList::List(ids)
        }
    };
    Some(EntraSettings {
        tenant,
        allowed_tenants,
        authority_host,
        graph_endpoint,
    })
}

fn oidc(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: &RawConnection,
) -> Option<OidcSettings> {
    let Some(issuer_text) = raw.issuer.as_deref() else {
        cx.bad(at("issuer"), "is missing", "the provider's issuer URL (discovery is at issuer + /.well-known/openid-configuration)");
        return None;
    };
    let issuer = cx.url(&at("issuer"), issuer_text, &["https", "http"])?;
    let manual = [
        raw.authorization_endpoint.as_deref(),
        raw.token_endpoint.as_deref(),
        raw.jwks_uri.as_deref(),
    ];
    let endpoints = if manual.iter().all(Option::is_none) {
        if raw.userinfo_endpoint.is_some() || raw.end_session_endpoint.is_some() {
            cx.bad(
                at("userinfo_endpoint"),
                "is set without the other manual endpoints",
                "either discovery (issuer only) or all of authorization_endpoint, token_endpoint, jwks_uri",
            );
        }
        None
    } else if manual.iter().all(Option::is_some) {
        let mut u = |k: &str, v: &str| cx.url(&at(k), v, &["https", "http"]);
        let authorization_endpoint = u("authorization_endpoint", manual[0].unwrap_or_default());
        let token_endpoint = u("token_endpoint", manual[1].unwrap_or_default());
        let jwks_uri = u("jwks_uri", manual[2].unwrap_or_default());
        let userinfo_endpoint = raw
            .userinfo_endpoint
            .as_deref()
            .and_then(|v| u("userinfo_endpoint", v));
        let end_session_endpoint = raw
            .end_session_endpoint
            .as_deref()
            .and_then(|v| u("end_session_endpoint", v));
        Some(ManualEndpoints {
            authorization_endpoint: authorization_endpoint?,
            token_endpoint: token_endpoint?,
            jwks_uri: jwks_uri?,
            userinfo_endpoint,
            end_session_endpoint,
        })
    } else {
        cx.bad(
            at("authorization_endpoint"),
            "only some of authorization_endpoint, token_endpoint, jwks_uri are set",
            "all three (no discovery) or none (discovery from issuer)",
        );
        None
    };
    Some(OidcSettings { issuer, endpoints })
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn routes(
    cx: &mut Ctx<'_>,
    raws: Vec<Option<RawRoute>>,
    connections: &[Arc<ConnectionSettings>],
) -> Vec<Arc<RouteSettings>> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut claimed: HashMap<(String, String), usize> = HashMap::new();
    // The same, with prefixes in the router's loose form (`/Admin`, `/admin.`).
    let mut claimed_loosely: HashMap<(String, String), (usize, String)> = HashMap::new();
    let known_connections: HashSet<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    if raws.is_empty() {
        cx.bad(
            "route",
            "has no entries",
            "at least one [[route]] with hosts and upstream",
        );
    }
    for (i, raw) in raws.into_iter().enumerate() {
        let Some(raw) = raw else { continue };
        let at = |k: &str| format!("route[{i}].{k}");
        let name = raw.name.clone().unwrap_or_default();
        if !valid_name(&name) {
            cx.bad(
                at("name"),
                format!("{name:?} is not a valid route name"),
                NAME_EXPECTED,
            );
        } else if let Some(first) = names.insert(name.clone(), i) {
            cx.bad(
                at("name"),
                format!("{name:?} is already the name of route[{first}]"),
                "a unique name",
            );
        }
        let mut hosts = Vec::new();
        let raw_hosts = raw.hosts.clone().unwrap_or_default();
        if raw_hosts.is_empty() {
            cx.bad(
                at("hosts"),
                "is missing or empty",
                "the host names this route serves, such as [\"hr.contoso.com\"]",
            );
        }
        for (j, h) in raw_hosts.iter().enumerate() {
            // Port is ignored for matching; accept "host" or "host:port" as written.
            let host_only = strip_port(h);
            // Only what the router can match: IDNA lets `https://h`, `*.h`
            // and `h/` through, which no request's Host ever equals (and
            // `check` printed callback URLs built from them; review 13).
            let routable = |n: &String| {
                crate::router::normalize_host(n).is_some_and(|r| r.as_ref() == n.as_str())
            };
            match normalize_domain(host_only)
                .filter(routable)
                .or_else(|| ip_host(host_only))
            {
                Some(n) => hosts.push(n),
                None => cx.bad(
                    at(&format!("hosts[{j}]")),
                    format!("{h:?} is not a host name"),
                    "a host name such as \"hr.contoso.com\" (optionally with :port; no scheme, path or wildcard: list each host)",
                ),
            }
        }
        let path_prefix = raw.path_prefix.clone().unwrap_or_else(|| "/".into());
        if !path_prefix.starts_with('/')
            || path_prefix.contains("//")
            || path_prefix.split('/').any(|s| s == "." || s == "..")
            || path_prefix
                .bytes()
                .any(|b| b.is_ascii_control() || b == b'?' || b == b'#' || b == b'%' || b == b'\\')
        {
            cx.bad(
                at("path_prefix"),
                format!("{path_prefix:?} is not a plain path"),
                "a path starting with '/', such as \"/\" or \"/payroll\"",
            );
        }
        if path_prefix == "/.auth" || path_prefix.starts_with("/.auth/") {
            cx.bad(
                at("path_prefix"),
                "is inside /.auth/, which realmgate reserves",
                "a path outside /.auth/",
            );
        }
        let path_prefix = if path_prefix.len() > 1 {
            path_prefix.trim_end_matches('/').to_string()
        } else {
            path_prefix
        };
        for h in &hosts {
            if let Some(first) = claimed.insert((h.clone(), path_prefix.clone()), i) {
                cx.bad(
                    at("path_prefix"),
                    format!("host {h:?} with path prefix {path_prefix:?} is already claimed by route[{first}]"),
                    "a unique host and path prefix per route",
                );
            } else if let Some((first, other)) = claimed_loosely.insert(
                (h.clone(), crate::router::loose_folded(&path_prefix)),
                (i, path_prefix.clone()),
            ) {
                // Apps that match paths case-insensitively (or drop trailing
                // dots) cannot tell the two apart; the router would refuse
                // every path under them as ambiguous.
                cx.bad(
                    at("path_prefix"),
                    format!("host {h:?} with path prefix {path_prefix:?} differs from route[{first}]'s {other:?} only in case, trailing dots or spaces, which many apps do not tell apart"),
                    "one route for both, or prefixes that differ in more than case",
                );
            }
        }
        let upstream = raw.upstream.as_deref().and_then(|u| {
            let url = cx.url(&at("upstream"), u, &["http", "https"])?;
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                cx.bad(
                    at("upstream"),
                    format!("{u:?} has a query, fragment or user info"),
                    "scheme://host:port with an optional base path",
                );
                return None;
            }
            Some(url)
        });
        if raw.upstream.is_none() {
            cx.bad(
                at("upstream"),
                "is missing",
                "the app's URL, such as \"http://10.1.2.3:8080\"",
            );
        }
        let upstream_ca = raw.upstream_ca.as_ref().map(|p| {
            let full = cx.resolve(p);
            if !full.is_file() {
                cx.bad(
                    at("upstream_ca"),
                    format!("{} does not exist", full.display()),
                    "a PEM file of CA certificates",
                );
            } else if let Err(e) = crate::proxy::clients::load_ca(&full) {
                cx.bad(
                    at("upstream_ca"),
                    format!("{}: {e}", full.display()),
                    "a PEM file of CA certificates (-----BEGIN CERTIFICATE----- blocks)",
                );
            }
            full
        });
        let route_connections = match &raw.connections {
            None => connections.iter().map(|c| c.name.clone()).collect(),
            Some(list) => {
                for (j, c) in list.iter().enumerate() {
                    if !known_connections.contains(c.as_str()) {
                        cx.bad(
                            at(&format!("connections[{j}]")),
                            format!("{c:?} is not the name of any [[connection]]"),
                            format!(
                                "one of: {}",
                                connections
                                    .iter()
                                    .map(|c| c.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
                list.clone()
            }
        };
        let mut public = Vec::new();
        for (j, p) in raw
            .public
            .clone()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if !p.starts_with('/')
                || p.bytes()
                    .any(|b| b.is_ascii_control() || b == b'%' || b == b'\\' || b == b'?')
                || p.split('/').any(|s| s == ".." || s == ".")
            {
                cx.bad(
                    at(&format!("public[{j}]")),
                    format!("{p:?} is not a plain path prefix"),
                    "a path such as \"/static/\" or \"/favicon.ico\"",
                );
            } else {
                public.push(p);
            }
        }
        let headers = match raw.headers.as_deref().unwrap_or("forwarded") {
            "forwarded" => HeaderProfile::Forwarded,
            "auth_request" => HeaderProfile::AuthRequest,
            "easyauth" => HeaderProfile::EasyAuth,
            "remote" => HeaderProfile::Remote,
            "pomerium" => HeaderProfile::Pomerium,
            "oidc_claim" => HeaderProfile::OidcClaim,
            "none" => HeaderProfile::None,
            other => {
                cx.bad(
                    at("headers"),
                    format!("{other:?} is not a header profile"),
                    "one of: forwarded, auth_request, easyauth, remote, pomerium, oidc_claim, none",
                );
                HeaderProfile::None
            }
        };
        let upstream_client = match raw.upstream_client.as_deref().unwrap_or("auto") {
            "auto" => UpstreamClient::Auto,
            "hyper" => UpstreamClient::Hyper,
            other => {
                cx.bad(
                    at("upstream_client"),
                    format!("{other:?} is not an upstream client"),
                    "\"auto\" (the default) or \"hyper\" (hyper's client for every request of this route)",
                );
                UpstreamClient::Auto
            }
        };
        let headers_extra = headers_extra(cx, &at, raw.headers_extra.clone().unwrap_or_default());
        let allow = allow(cx, &at, raw.allow.unwrap_or_default(), connections);
        let auth = route_auth(cx, &at, raw.auth.as_deref(), &allow);
        claims_kept(cx, &at, &allow, &route_connections, connections);
        let oauth2_proxy_endpoints = raw.oauth2_proxy_endpoints.unwrap_or(false);
        if oauth2_proxy_endpoints {
            oauth2_aliases(cx, &at, &path_prefix, &route_connections, connections);
        }
        let connect_timeout =
            cx.duration(&at("connect_timeout"), raw.connect_timeout.as_deref(), "5s");
        let request_timeout = cx.duration(
            &at("request_timeout"),
            raw.request_timeout.as_deref(),
            "60s",
        );
        let Some(upstream) = upstream else { continue };
        out.push(Arc::new(RouteSettings {
            name,
            hosts,
            path_prefix,
            upstream,
            upstream_ca,
            connections: route_connections,
            public,
            headers,
            headers_extra,
            pass_access_token: raw.pass_access_token.unwrap_or(false),
            pass_id_token: raw.pass_id_token.unwrap_or(false),
            jwt_assertion: raw.jwt_assertion.unwrap_or(false),
            api_audiences: raw.api_audiences.clone().unwrap_or_default(),
            preserve_host: raw.preserve_host.unwrap_or(true),
            upstream_client,
            connect_timeout,
            request_timeout,
            auth,
            oauth2_proxy_endpoints,
            allow,
        }));
    }
    out
}

fn headers_extra(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: BTreeMap<String, String>,
) -> Vec<(HeaderName, String)> {
    let mut out = Vec::new();
    for (name, path) in raw {
        let key = at(&format!("headers_extra.{name}"));
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => {
                let lower = h.as_str();
                if matches!(
                    lower,
                    "host"
                        | "cookie"
                        | "authorization"
                        | "connection"
                        | "content-length"
                        | "transfer-encoding"
                        | "upgrade"
                        | "te"
                        | "trailer"
                        | "keep-alive"
                        | "proxy-connection"
                ) || lower.starts_with("x-forwarded-for")
                    || lower == "x-forwarded-proto"
                    || lower == "x-forwarded-host"
                    || lower == "x-request-id"
                    // realmgate writes the trace context (propagated or
                    // started) and relays or strips these two by the trusted
                    // proxies: a claim under one of these names would go
                    // upstream beside realmgate's own value, not instead.
                    || matches!(lower, "traceparent" | "tracestate" | "forwarded" | "x-real-ip")
                    // Every spelling (`x_forwarded_for`, `X.Original.URL`)
                    // of a header apps take a target, method, host, scheme
                    // or client address from (review 9); a profile's own
                    // identity header (`X-Forwarded-Email`, in the
                    // `X-Forwarded-*` family) may be replaced as before.
                    || (crate::headers::spoofable::classify(lower).is_some()
                        && !crate::headers::identity::is_identity_header(lower, &[])
                        && !crate::headers::spoofable::is_identity_statement(lower))
                {
                    cx.bad(
                        key,
                        format!("{name:?} is a header realmgate or HTTP itself controls"),
                        "a custom header name such as \"X-Employee-Id\"",
                    );
                    continue;
                }
                if crate::headers::identity::is_identity_header(lower, &[])
                    && !identity_spelling(lower)
                {
                    // `X_Forwarded_Email` beside realmgate's own
                    // `X-Forwarded-Email`: a CGI-style app reads both as
                    // `HTTP_X_FORWARDED_EMAIL`, one of them picked by its
                    // server.
                    cx.bad(
                        key,
                        format!("{name:?} is another spelling of an identity header realmgate sends"),
                        "the spelling realmgate sends: '-' between words (\"X-Forwarded-Email\"), '_' in OIDC_CLAIM_ names",
                    );
                    continue;
                }
                if path.is_empty() || path.chars().any(|c| c.is_control()) {
                    cx.bad(
                        key,
                        "has an empty or invalid claim path",
                        "a claim path such as \"claims.employeeid\" or \"email\"",
                    );
                    continue;
                }
                out.push((h, path));
            }
            Err(_) => cx.bad(
                key,
                format!("{name:?} is not a valid header name"),
                "letters, digits and '-'",
            ),
        }
    }
    out
}

/// True when an identity header's name (lowercase) is spelled as the
/// profiles write theirs: words joined by `-`, or by `_` in the `oidc_`
/// family (`oidc_claim_email`, as mod_auth_openidc sends them).
fn identity_spelling(lower: &str) -> bool {
    let oidc = lower.len() > 4
        && lower.starts_with("oidc")
        && !lower.as_bytes()[4].is_ascii_alphanumeric();
    let joiner = if oidc { b'_' } else { b'-' };
    lower
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == joiner)
}

/// `[route.allow]` lists that arrive with a request: oauth2-proxy's
/// `/oauth2/auth?allowed_groups=…&allowed_emails=…&allowed_email_domains=…`
/// (`endpoints::oauth2`), read exactly as the same keys of the file are
/// (SPEC 6.1 scoping of group names, plain emails, IDNA domains). `Err`:
/// the first entry that cannot be read, which the caller refuses rather
/// than dropping (a dropped restriction would let everyone through).
pub fn allow_lists(
    groups: Vec<String>,
    users: Vec<String>,
    email_domains: Vec<String>,
    connections: &[Arc<ConnectionSettings>],
) -> Result<AllowSettings, ConfigProblem> {
    let mut problems = Vec::new();
    let mut cx = Ctx {
        problems: &mut problems,
        base_dir: None,
    };
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let raw = RawAllow {
        groups: some(groups),
        users: some(users),
        email_domains: some(email_domains),
        ..RawAllow::default()
    };
    let allow = allow(&mut cx, &|key: &str| key.to_string(), raw, connections);
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(allow),
    }
}

fn allow(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: RawAllow,
    connections: &[Arc<ConnectionSettings>],
) -> AllowSettings {
    let mut email_domains = Vec::new();
    for (j, d) in raw.email_domains.unwrap_or_default().iter().enumerate() {
        match normalize_email_domain(d) {
            Some(n) => email_domains.push(n),
            None => cx.bad(
                at(&format!("allow.email_domains[{j}]")),
                format!("{d:?} is not a domain an email address can have"),
                EMAIL_DOMAIN_EXPECTED,
            ),
        }
    }
    let mut users = Vec::new();
    let mut user_ids = Vec::new();
    for (j, u) in raw.users.unwrap_or_default().iter().enumerate() {
        match user_entry(u, connections) {
            Some(UserEntry::Email(e)) => users.push(e),
            Some(UserEntry::Id(id)) => user_ids.push(id),
            None => cx.bad(
                at(&format!("allow.users[{j}]")),
                format!("{u:?} is neither a plain email address nor a user id"),
                "an email such as \"alice@contoso.com\" (one '@', no quotes, spaces or trailing dot), an Entra object id (GUID), or \"<connection>:<user id>\" such as \"partner:248289761001\"",
            ),
        }
    }
    let mut tenants = Vec::new();
    for (j, t) in raw.tenants.unwrap_or_default().iter().enumerate() {
        if is_guid(t) {
            tenants.push(t.to_ascii_lowercase());
        } else {
            cx.bad(
                at(&format!("allow.tenants[{j}]")),
                format!("{t:?} is not a tenant id"),
                "a tenant id (GUID)",
            );
        }
    }
    let roles = raw.roles.unwrap_or_default();
    let role_rules = roles.iter().map(|r| value_entry(r, connections)).collect();
    let mut claims = Vec::new();
    for (name, values) in raw.claims.unwrap_or_default() {
        if name.is_empty() || name.chars().any(char::is_control) || values.is_empty() {
            cx.bad(
                at(&format!("allow.claims.{name}")),
                "needs a claim name and at least one value",
                "claims = { department = [\"HR\"] }",
            );
            continue;
        }
        let rules = values.iter().map(|v| value_entry(v, connections)).collect();
        claims.push(ClaimRule {
            name,
            values,
            rules,
        });
    }
    let groups = raw.groups.unwrap_or_default();
    let group_rules = groups.iter().map(|g| group_entry(g, connections)).collect();
    let domain_owners = if email_domains.is_empty() && users.is_empty() {
        HashMap::new()
    } else {
        connections
            .iter()
            .flat_map(|c| {
                c.home_realm_domains
                    .iter()
                    .map(|d| (d.clone(), c.name.clone()))
            })
            .collect()
    };
    AllowSettings {
        groups,
        group_rules,
        email_domains,
        users,
        user_ids,
        tenants,
        roles,
        role_rules,
        claims,
        domain_owners,
    }
}

/// `auth = "required" | "optional"` (SPEC 5.10). An optional route lets
/// anonymous users through, so a policy there would only ever judge the
/// users who happen to be signed in: refused.
fn route_auth(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    raw: Option<&str>,
    allow: &AllowSettings,
) -> RouteAuth {
    match raw.unwrap_or("required") {
        "required" => RouteAuth::Required,
        "optional" => {
            if !allow.is_empty() {
                cx.bad(
                    at("allow"),
                    "is set on a route with auth = \"optional\", where anonymous users pass anyway",
                    "remove [route.allow], or make the protected paths a route of their own with auth = \"required\"",
                );
            }
            RouteAuth::Optional
        }
        other => {
            cx.bad(
                at("auth"),
                format!("{other:?} is not a sign-in requirement"),
                "\"required\" (the default) or \"optional\" (anonymous users forwarded without identity headers)",
            );
            RouteAuth::Required
        }
    }
}

/// `oauth2_proxy_endpoints = true` (issue 22): the aliases live at the
/// host's `/oauth2/`, so the route must be the one that path selects; and
/// `/oauth2/callback` is one redirect URI for the route's OpenID Connect
/// sign-ins, which must then be a single connection's: with two, a code
/// issued by one provider could be redeemed at the other (mix-up, RFC 9700
/// 4.4), which per-connection callbacks prevent.
fn oauth2_aliases(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    path_prefix: &str,
    route_connections: &[String],
    connections: &[Arc<ConnectionSettings>],
) {
    if path_prefix != "/" {
        cx.bad(
            at("oauth2_proxy_endpoints"),
            format!("is set on a route with path_prefix {path_prefix:?}, which /oauth2/ does not reach"),
            "set it on the route of this host with path_prefix = \"/\" (oauth2-proxy's endpoints are at the host's /oauth2/)",
        );
    }
    let oidc: Vec<&str> = connections
        .iter()
        .filter(|c| route_connections.contains(&c.name))
        .filter(|c| matches!(c.kind, ConnectionKind::Entra(_) | ConnectionKind::Oidc(_)))
        .map(|c| c.name.as_str())
        .collect();
    if oidc.len() > 1 {
        cx.bad(
            at("oauth2_proxy_endpoints"),
            format!(
                "/oauth2/callback would be the redirect URI of {} OpenID Connect connections ({}), so a code one provider issued could be sent to another (mix-up attack)",
                oidc.len(),
                oidc.join(", ")
            ),
            "limit the route to one OpenID Connect connection (connections = [\"...\"]), as oauth2-proxy has one provider; the others keep /.auth/login/<name>/callback on routes without this option",
        );
    }
}

/// `allow.claims` matches claims kept with `extended_profile` (SPEC 5.10):
/// a route where no allowed connection keeps them would refuse everyone.
fn claims_kept(
    cx: &mut Ctx<'_>,
    at: &dyn Fn(&str) -> String,
    allow: &AllowSettings,
    route_connections: &[String],
    connections: &[Arc<ConnectionSettings>],
) {
    if allow.claims.is_empty() {
        return;
    }
    let keeps = connections
        .iter()
        .any(|c| c.extended_profile && route_connections.contains(&c.name));
    if !keeps {
        cx.bad(
            at("allow.claims"),
            "matches claims kept with extended_profile, and no connection this route allows keeps them",
            "extended_profile = true on a connection of this route, or remove allow.claims",
        );
    }
}

/// An `allow.roles` or `allow.claims` value scoped as SPEC 6.1 says:
/// `<connection>:<value>` matches that connection's users only; a bare
/// entry that is a name in some connections' `group_names` matches only
/// their users; any other bare entry, users of every connection the route
/// allows. Compared as the provider sent the value (roles and claim values
/// are not group ids: no name mapping).
fn value_entry(entry: &str, connections: &[Arc<ConnectionSettings>]) -> ScopedValue {
    if let Some((conn, rest)) = connection_prefix(entry, connections) {
        return ScopedValue {
            connections: Some(vec![conn.name.clone()]),
            value: rest.to_string(),
            by: MatchBy::Value,
        };
    }
    let naming: Vec<String> = connections
        .iter()
        .filter(|c| c.group_names.values().any(|n| n == entry))
        .map(|c| c.name.clone())
        .collect();
    ScopedValue {
        connections: (!naming.is_empty()).then_some(naming),
        value: entry.to_string(),
        by: MatchBy::Value,
    }
}

/// `<connection>:<rest>` when `entry` starts with the name of a configured
/// connection and a colon (connection names cannot contain `:`).
fn connection_prefix<'a>(
    entry: &'a str,
    connections: &'a [Arc<ConnectionSettings>],
) -> Option<(&'a ConnectionSettings, &'a str)> {
    let (name, rest) = entry.split_once(':')?;
    let conn = connections.iter().find(|c| c.name == name)?;
    (!rest.is_empty()).then_some((&**conn, rest))
}

/// An `allow.groups` entry scoped as SPEC 6.1 says: `<connection>:<value>`
/// matches that connection's group id or mapped name only; a bare entry
/// that is a name in some connections' `group_names` matches only their
/// users, through that mapping only; any other bare entry matches a group id of any
/// connection the route allows.
fn group_entry(entry: &str, connections: &[Arc<ConnectionSettings>]) -> ScopedValue {
    if let Some((conn, rest)) = connection_prefix(entry, connections) {
        return ScopedValue {
            connections: Some(vec![conn.name.clone()]),
            value: rest.to_string(),
            by: MatchBy::ValueOrName,
        };
    }
    let naming: Vec<String> = connections
        .iter()
        .filter(|c| c.group_names.values().any(|n| n == entry))
        .map(|c| c.name.clone())
        .collect();
    if naming.is_empty() {
        ScopedValue {
            connections: None,
            value: entry.to_string(),
            by: MatchBy::Value,
        }
    } else {
        ScopedValue {
            connections: Some(naming),
            value: entry.to_string(),
            by: MatchBy::Name,
        }
    }
}

enum UserEntry {
    /// A plain email, normalized.
    Email(String),
    Id(ScopedValue),
}

/// An `allow.users` entry: `<connection>:<id>` (that connection's user: on
/// Entra its `oid`, elsewhere its `sub`), a bare Entra object id (the user
/// id of Entra users, whichever Entra connection), or a plain email.
fn user_entry(entry: &str, connections: &[Arc<ConnectionSettings>]) -> Option<UserEntry> {
    if let Some((conn, rest)) = connection_prefix(entry, connections) {
        let value = if conn.is_entra() {
            if !is_guid(rest) {
                return None;
            }
            rest.to_ascii_lowercase()
        } else {
            entry.to_string()
        };
        return Some(UserEntry::Id(ScopedValue {
            connections: Some(vec![conn.name.clone()]),
            value,
            by: MatchBy::Value,
        }));
    }
    if is_guid(entry) {
        return Some(UserEntry::Id(ScopedValue {
            connections: None,
            value: entry.to_ascii_lowercase(),
            by: MatchBy::Value,
        }));
    }
    crate::email::parse(entry).map(|e| UserEntry::Email(e.as_str().to_string()))
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h
            .split(']')
            .next()
            .map(|s| s.trim_start_matches('['))
            .unwrap_or(h);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => h,
    }
}

fn ip_host(h: &str) -> Option<String> {
    h.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// Longest allowed `redis_cache_ttl`: the cache is what may serve a revoked
/// session when an invalidation is lost, so it stays short.
const MAX_REDIS_CACHE_TTL: Duration = Duration::from_secs(60);

/// `store = "redis"`: one `redis://`/`rediss://` URL, or a list of cluster
/// nodes (same scheme for all); `redis_url_file` holds the same (one URL
/// per line; several lines mean a cluster). URLs are never echoed: they may
/// hold a password.
/// The `redis_*` keys of `[session]`.
struct RedisKeys {
    url: Option<OneOrMany>,
    url_file: Option<PathBuf>,
    key_prefix: Option<String>,
    cache_ttl: Option<String>,
}

fn redis_store(cx: &mut Ctx<'_>, raw: RedisKeys) -> StoreSettings {
    let (mut urls, mut cluster) = match raw.url {
        Some(OneOrMany::One(u)) => (vec![u], false),
        Some(OneOrMany::Many(v)) => (v, true),
        None => (Vec::new(), false),
    };
    if let Some(p) = &raw.url_file {
        if !urls.is_empty() {
            cx.bad(
                "session.redis_url_file",
                "is set together with session.redis_url",
                "one of redis_url or redis_url_file",
            );
        } else if let Some(s) = cx.read_secret_file("session.redis_url_file", p) {
            urls = s
                .expose_str()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            cluster = urls.len() > 1;
        }
    }
    if urls.is_empty() {
        cx.bad(
            "session.redis_url",
            "is missing or empty while session.store is \"redis\"",
            "a URL such as \"redis://127.0.0.1:6379/0\" or \"rediss://…\", or a list of cluster nodes",
        );
    }
    let mut schemes = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        let key = if cluster {
            format!("session.redis_url[{i}]")
        } else {
            "session.redis_url".to_string()
        };
        match Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss") => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    cx.bad(key, "has no host", "redis://HOST:PORT/DB, e.g. \"redis://127.0.0.1:6379/0\"");
                    continue;
                }
                let db = parsed.path().trim_start_matches('/');
                if !db.is_empty() && db.parse::<u32>().is_err() {
                    cx.bad(key, "has a database that is not a number", "a database number such as /0 at the end, or none");
                } else if cluster && !db.is_empty() && db != "0" {
                    cx.bad(key, "names a database other than 0 for Redis Cluster", "no database (a cluster has only database 0)");
                }
                schemes.push(parsed.scheme().to_string());
            }
            Ok(parsed) if cluster && matches!(parsed.scheme(), "redis+unix" | "unix") => {
                cx.bad(key, "is a Unix socket in a cluster node list", "redis:// or rediss:// URLs of the cluster nodes");
            }
            Ok(parsed) if matches!(parsed.scheme(), "redis+unix" | "unix") => {
                schemes.push(parsed.scheme().to_string());
            }
            _ => cx.bad(
                key,
                "is not a redis:// or rediss:// URL",
                "a URL such as \"redis://127.0.0.1:6379/0\" or \"rediss://:PASSWORD@redis.internal:6380/0\"",
            ),
        }
    }
    schemes.sort();
    schemes.dedup();
    if cluster && schemes.len() > 1 {
        cx.bad(
            "session.redis_url",
            "mixes redis:// and rediss:// nodes",
            "the same scheme for every cluster node (rediss:// for TLS)",
        );
    }
    let key_prefix = raw.key_prefix.unwrap_or_else(|| "realmgate:".into());
    if key_prefix.contains(['{', '}']) || key_prefix.chars().any(|c| c.is_control() || c == ' ') {
        cx.bad(
            "session.redis_key_prefix",
            "contains braces, spaces or control characters",
            "letters, digits and separators such as \"realmgate:\" or \"prod:rg:\" (braces would break Redis Cluster hash tags)",
        );
    }
    let cache_ttl = cx.duration("session.redis_cache_ttl", raw.cache_ttl.as_deref(), "5s");
    if cache_ttl > MAX_REDIS_CACHE_TTL {
        cx.bad(
            "session.redis_cache_ttl",
            "is longer than 60s",
            "a few seconds (default 5s): a revoked session may be served that long if an invalidation is lost; \"0s\" disables the cache",
        );
    }
    StoreSettings::Redis {
        urls,
        cluster,
        key_prefix,
        cache_ttl,
    }
}
