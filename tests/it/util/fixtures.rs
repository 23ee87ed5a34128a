//! Shared config fixtures: the TOML every test gateway starts from, and the
//! tables tests put in it, written once.
//!
//! [`Config`] is the preamble (`[server]` and `[admin]` on 127.0.0.1:0, the
//! test session secret) plus any lines a test adds to those tables, then the
//! `[[connection]]`/`[[route]]`/other tables in the order given. [`entra`] and
//! [`echo_route`] are the two tables nearly every test has; their text may name
//! `{idp}` (the demo IdP's base URL) and `{upstream}` (the echo upstream's URL),
//! which [`crate::util::World`] fills in when it starts (or [`Config::render_for`]).

use std::fmt;

use realmgate::demo::idp;

use crate::util::SECRET;

/// A gateway config: the preamble and the tables after it.
#[derive(Debug, Clone)]
pub struct Config {
    listen: String,
    admin_listen: String,
    secret: String,
    server: String,
    admin: String,
    session: String,
    tables: String,
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

impl Config {
    /// Proxy and admin listeners on 127.0.0.1:0, the test session secret, no tables.
    pub fn new() -> Config {
        Config {
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            secret: SECRET.into(),
            server: String::new(),
            admin: String::new(),
            session: String::new(),
            tables: String::new(),
        }
    }

    /// `server.listen` (a reserved port, for a child process).
    pub fn listen(mut self, addr: impl fmt::Display) -> Config {
        self.listen = addr.to_string();
        self
    }

    /// `admin.listen`.
    pub fn admin_listen(mut self, addr: impl fmt::Display) -> Config {
        self.admin_listen = addr.to_string();
        self
    }

    /// `session.secret` (default [`SECRET`]).
    pub fn secret(mut self, secret: &str) -> Config {
        self.secret = secret.to_string();
        self
    }

    /// Lines added to `[server]`.
    pub fn server(mut self, lines: &str) -> Config {
        push_lines(&mut self.server, lines);
        self
    }

    /// Lines added to `[admin]`.
    pub fn admin(mut self, lines: &str) -> Config {
        push_lines(&mut self.admin, lines);
        self
    }

    /// Lines added to `[session]`.
    pub fn session(mut self, lines: &str) -> Config {
        push_lines(&mut self.session, lines);
        self
    }

    /// A table (or several) after the preamble: `[[connection]]`, `[[route]]`, `[ui]`...
    pub fn table(mut self, toml: impl fmt::Display) -> Config {
        self.tables.push('\n');
        self.tables.push_str(&toml.to_string());
        self
    }

    /// The TOML text, `{idp}` and `{upstream}` left as they are.
    pub fn render(&self) -> String {
        format!(
            r#"
[server]
listen = "{listen}"
{server}
[admin]
listen = "{admin_listen}"
{admin}
[session]
secret = "{secret}"
{session}{tables}
"#,
            listen = self.listen,
            admin_listen = self.admin_listen,
            secret = self.secret,
            server = self.server,
            admin = self.admin,
            session = self.session,
            tables = self.tables,
        )
    }

    /// The TOML text with `{idp}` (and `{idp_port}`) and `{upstream}` filled in.
    pub fn render_for(&self, idp_base: &str, upstream: &str) -> String {
        fill(&self.render(), idp_base, upstream)
    }
}

/// `text` with `{idp}`, `{idp_port}` and `{upstream}` filled in.
pub fn fill(text: &str, idp_base: &str, upstream: &str) -> String {
    let port = idp_base.rsplit(':').next().unwrap_or_default();
    text.replace("{idp}", idp_base)
        .replace("{idp_port}", port)
        .replace("{upstream}", upstream)
}

fn push_lines(to: &mut String, lines: &str) {
    if !lines.is_empty() {
        to.push_str(lines);
        to.push('\n');
    }
}

/// One TOML table (with any sub-tables), built a line at a time.
#[derive(Debug, Clone)]
pub struct Table(String);

impl Table {
    /// Appends `lines` (keys of this table, then any `[route.allow]`-like sub-table).
    pub fn with(mut self, lines: impl AsRef<str>) -> Table {
        push_lines(&mut self.0, lines.as_ref());
        self
    }

    /// `home_realm_domains = ["{domain}"]`.
    pub fn home_realm(self, domain: &str) -> Table {
        self.with(format!(r#"home_realm_domains = ["{domain}"]"#))
    }

    /// `public = [...]`.
    pub fn public(self, prefixes: &[&str]) -> Table {
        let list: Vec<String> = prefixes.iter().map(|p| format!("\"{p}\"")).collect();
        self.with(format!("public = [{}]", list.join(", ")))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Entra connection at the demo IdP (`authority_host = "{idp}"`) with the
/// demo app registration; add `home_realm_domains` with [`Table::home_realm`].
pub fn entra(name: &str, tenant: &str) -> Table {
    Table(format!(
        r#"
[[connection]]
name = "{name}"
type = "entra"
tenant = "{tenant}"
authority_host = "{{idp}}"
client_id = "{client}"
client_secret = "{secret}"
"#,
        client = idp::DEMO_CLIENT_ID,
        secret = idp::DEMO_CLIENT_SECRET,
    ))
}

/// The OIDC connection of gateways that never sign anybody in: its issuer is a
/// closed local port (nothing leaves the machine).
pub fn unreachable_oidc() -> Table {
    Table(
        r#"
[[connection]]
name = "local"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "realmgate-tests"
client_secret = "not-a-real-secret"
"#
        .to_string(),
    )
}

/// A route for `host` (every path) to the echo upstream (`{upstream}`).
pub fn echo_route(name: &str, host: &str) -> Table {
    Table(format!(
        r#"
[[route]]
name = "{name}"
hosts = ["{host}"]
upstream = "{{upstream}}"
"#
    ))
}

/// A test config: listeners on 127.0.0.1:0, one OIDC connection whose
/// issuer is a closed local port (nothing leaves the machine), then `routes`
/// (TOML `[[route]]` tables) and any other tables the test adds.
pub fn config(server_extra: &str, routes: &str) -> String {
    Config::new()
        .server(server_extra)
        .table(unreachable_oidc())
        .table(routes)
        .render()
}

/// One route table.
pub fn route(name: &str, host: &str, prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[[route]]
name = "{name}"
hosts = ["{host}"]
path_prefix = "{prefix}"
upstream = "{upstream}"
{extra}
"#
    )
}

/// An nginx.conf for a test's nginx: in the foreground, one worker, its pid,
/// error log and temp files in `dir`, access log off; `http` is the rest of the
/// `http {}` block (upstreams, servers).
pub fn nginx_conf_with(
    dir: &std::path::Path,
    error_level: &str,
    worker_connections: u32,
    http: &str,
) -> String {
    let d = dir.display();
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log {error_level};
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http}}}
"#
    )
}
