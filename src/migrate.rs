//! `realmgate migrate --from oauth2-proxy|mod_auth_openidc|easyauth FILE`:
//! reads a peer's configuration and prints an equivalent realmgate TOML,
//! then every setting that does not map and why (issue 22).
//!
//! Each peer has a reader (`oauth2_proxy`, `mod_auth_openidc`, `easyauth`)
//! that fills one [`Plan`]: the keys of `[server]`, `[session]`, one
//! `[[connection]]`, one `[[route]]` and its `[route.allow]`, each with where
//! it came from, plus [`Note`]s for what does not map. [`Plan::render`]
//! writes the TOML.
//!
//! Decisions (docs/migrating.md):
//! - The notes are TOML comments at the end of the output, not stderr, so
//!   `realmgate migrate ... > realmgate.toml` keeps them beside the keys
//!   they concern and the file stays valid TOML; stderr only says how many
//!   there are.
//! - A secret value is never copied. Every secret becomes a `<key>_file`
//!   path under [`SECRETS_DIR`], and the notes say which peer setting's
//!   value to put there (or which `REALMGATE_*` variable to set instead).
//!   The session secret is always new: a peer's cookie secret has another
//!   format and purpose, and its cookies do not carry over anyway.
//! - A peer's file that cannot be read as that peer's format is an error
//!   naming the line (or JSON position), never a half-empty TOML.

pub mod easyauth;
pub mod mod_auth_openidc;
pub mod oauth2_proxy;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

/// Where migrated `_file` secrets point (a Kubernetes secret or systemd
/// credential mount; the notes say what goes in each file).
pub const SECRETS_DIR: &str = "/run/secrets/realmgate";

/// The peers `migrate` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Oauth2Proxy,
    ModAuthOpenidc,
    EasyAuth,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Oauth2Proxy => "oauth2-proxy",
            Peer::ModAuthOpenidc => "mod_auth_openidc",
            Peer::EasyAuth => "easyauth",
        }
    }
}

/// Why a peer's file cannot be migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A value in the generated TOML.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    List(Vec<String>),
    /// An inline table of strings (`group_names`, `headers_extra`).
    Map(Vec<(String, String)>),
}

impl Value {
    fn toml(&self) -> String {
        match self {
            Value::Str(s) => quote(s),
            Value::Bool(b) => b.to_string(),
            Value::List(v) => {
                let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Map(m) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                    .collect();
                format!("{{ {} }}", items.join(", "))
            }
        }
    }
}

/// A TOML basic string (toml's own escaping).
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A key of the generated TOML and the peer setting it came from.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// Such as `client_id (line 3)`; empty for realmgate's own choices.
    pub from: String,
}

/// A peer setting that does not map (or maps with a change worth reading).
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The peer setting and where it is: `cookie_refresh (line 9)`.
    pub setting: String,
    /// What happens to it and why.
    pub why: String,
}

/// Everything one migration produces.
#[derive(Debug, Default)]
pub struct Plan {
    pub server: Vec<Entry>,
    pub session: Vec<Entry>,
    pub connection: Vec<Entry>,
    pub route: Vec<Entry>,
    pub allow: Vec<Entry>,
    /// What to put in each `_file` the TOML names.
    pub secrets: Vec<Secret>,
    pub notes: Vec<Note>,
}

/// A secret file the output names and what to write into it.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The TOML key path (`connection.contoso.client_secret_file`).
    pub key: String,
    pub path: String,
    /// The environment variable that can hold the value instead.
    pub env: String,
    /// What the file must hold: `the value of client_secret (line 4)`.
    pub what: String,
}

fn set(table: &mut Vec<Entry>, key: &str, value: Value, from: impl Into<String>) {
    let from = from.into();
    match table.iter_mut().find(|e| e.key == key) {
        Some(e) => {
            e.value = value;
            e.from = from;
        }
        None => table.push(Entry {
            key: key.to_string(),
            value,
            from,
        }),
    }
}

impl Plan {
    pub fn server(&mut self, key: &str, value: Value, from: impl Into<String>) {
        set(&mut self.server, key, value, from);
    }
    pub fn session(&mut self, key: &str, value: Value, from: impl Into<String>) {
        set(&mut self.session, key, value, from);
    }
    pub fn connection(&mut self, key: &str, value: Value, from: impl Into<String>) {
        set(&mut self.connection, key, value, from);
    }
    pub fn route(&mut self, key: &str, value: Value, from: impl Into<String>) {
        set(&mut self.route, key, value, from);
    }
    pub fn allow(&mut self, key: &str, value: Value, from: impl Into<String>) {
        set(&mut self.allow, key, value, from);
    }
    pub fn note(&mut self, setting: impl Into<String>, why: impl Into<String>) {
        self.notes.push(Note {
            setting: setting.into(),
            why: why.into(),
        });
    }

    fn connection_name(&self) -> String {
        self.connection
            .iter()
            .find(|e| e.key == "name")
            .and_then(|e| match &e.value {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "idp".into())
    }

    /// The connection's client secret as a file (never the value), with
    /// `what` saying which peer setting holds it.
    pub fn client_secret(&mut self, what: impl Into<String>, from: impl Into<String>) {
        let name = self.connection_name();
        let path = format!("{SECRETS_DIR}/{name}_client_secret");
        self.connection("client_secret_file", Value::Str(path.clone()), from);
        self.secrets.push(Secret {
            key: format!("connection.{name}.client_secret_file"),
            path,
            env: format!(
                "REALMGATE_CONNECTION__{}__CLIENT_SECRET",
                name.to_ascii_uppercase().replace('-', "_")
            ),
            what: what.into(),
        });
    }

    /// The session secret: always a new one (see the module docs).
    fn session_secret(&mut self) {
        if self.session.iter().any(|e| e.key == "secret_file") {
            return;
        }
        let path = format!("{SECRETS_DIR}/session_secret");
        self.session("secret_file", Value::Str(path.clone()), "");
        self.secrets.insert(
            0,
            Secret {
                key: "session.secret_file".into(),
                path,
                env: "REALMGATE_SESSION__SECRET".into(),
                what: "a new random secret: openssl rand -base64 48".into(),
            },
        );
    }

    /// The TOML: tables in realmgate's order, each key with its origin,
    /// then the secrets to supply and the notes, as comments.
    pub fn render(mut self, peer: Peer, source: &str) -> String {
        self.session_secret();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# realmgate configuration migrated from {} ({source}) by `realmgate migrate`.\n\
             # Read the notes at the end, supply the secrets they list, then run\n\
             # `realmgate check --config <this file>`. docs/migrating.md explains each mapping.",
            peer.name()
        );
        let table = |out: &mut String, header: &str, entries: &[Entry]| {
            if entries.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{header}");
            for e in entries {
                let line = format!("{} = {}", e.key, e.value.toml());
                if e.from.is_empty() {
                    let _ = writeln!(out, "{line}");
                } else {
                    let _ = writeln!(out, "{line:<40} # from {}", e.from.replace('\n', " "));
                }
            }
        };
        // Names and the keys that say what a table is first, as people write them.
        for t in [&mut self.connection, &mut self.route] {
            let rank = |k: &str| {
                ["name", "type", "hosts", "path_prefix", "upstream"]
                    .iter()
                    .position(|f| *f == k)
                    .unwrap_or(usize::MAX)
            };
            t.sort_by_key(|e| rank(&e.key));
        }
        table(&mut out, "[server]", &self.server);
        table(&mut out, "[session]", &self.session);
        table(&mut out, "[[connection]]", &self.connection);
        table(&mut out, "[[route]]", &self.route);
        table(&mut out, "[route.allow]", &self.allow);
        let _ = writeln!(
            out,
            "\n# Secrets to supply (no secret value was copied from {}):",
            peer.name()
        );
        for s in &self.secrets {
            let _ = writeln!(
                out,
                "#   {} = {:?}: write {} there (or set {} instead).",
                s.key, s.path, s.what, s.env
            );
        }
        if self.notes.is_empty() {
            let _ = writeln!(out, "\n# Every setting mapped.");
        } else {
            let _ = writeln!(
                out,
                "\n# Settings that do not map, or map with a change ({}):",
                self.notes.len()
            );
            for n in &self.notes {
                let text = format!("{}: {}", n.setting, n.why).replace('\n', " ");
                let _ = writeln!(out, "#   - {text}");
            }
        }
        out
    }
}

/// Reads `text` (the file `source`) as `peer`'s configuration.
pub fn migrate(peer: Peer, text: &str) -> Result<Plan, MigrateError> {
    let plan = match peer {
        Peer::Oauth2Proxy => oauth2_proxy::read(text)?,
        Peer::ModAuthOpenidc => mod_auth_openidc::read(text)?,
        Peer::EasyAuth => easyauth::read(text)?,
    };
    if !plan.connection.iter().any(|e| e.key == "type") {
        return Err(MigrateError::Invalid(format!(
            "no identity provider found: this does not look like a {} configuration (expected {})",
            peer.name(),
            match peer {
                Peer::Oauth2Proxy => "provider / oidc_issuer_url and client_id",
                Peer::ModAuthOpenidc => "OIDCProviderMetadataURL (or OIDCProviderIssuer) and OIDCClientID",
                Peer::EasyAuth =>
                    "identityProviders.azureActiveDirectory or customOpenIdConnectProviders, enabled",
            }
        )));
    }
    Ok(plan)
}

/// Reads the file and renders the TOML; the count of notes for stderr.
pub fn run(peer: Peer, path: &std::path::Path) -> Result<(String, usize), MigrateError> {
    let bytes = std::fs::read(path).map_err(|source| MigrateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        MigrateError::Line {
            line,
            message: "the file is not UTF-8 text".into(),
        }
    })?;
    let plan = migrate(peer, &text)?;
    let notes = plan.notes.len();
    Ok((plan.render(peer, &path.display().to_string()), notes))
}

// === helpers the readers share ===

/// A connection or route name from free text: lowercase letters, digits,
/// `-`, at most 40 characters, never empty.
pub fn name_from(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

/// An issuer URL from a discovery document URL.
pub fn issuer_of(metadata_url: &str) -> String {
    metadata_url
        .trim()
        .trim_end_matches('/')
        .trim_end_matches("/.well-known/openid-configuration")
        .to_string()
}

/// An Entra tenant from an issuer at `login.microsoftonline.com/{tenant}/v2.0`
/// or `sts.windows.net/{tenant}/`; `None` for other issuers.
pub fn entra_tenant(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if host != "login.microsoftonline.com" && host != "sts.windows.net" {
        return None;
    }
    let tenant = url.path_segments()?.find(|s| !s.is_empty())?.to_string();
    (!tenant.is_empty()).then_some(tenant)
}

/// The connection keys for an issuer: `type = "entra"` with its tenant
/// for Microsoft's, else `type = "oidc"` with the issuer.
pub fn provider(plan: &mut Plan, issuer: &str, from: &str) {
    match entra_tenant(issuer) {
        Some(tenant) => {
            plan.connection("type", Value::Str("entra".into()), from);
            plan.connection("tenant", Value::Str(tenant.clone()), from);
            if matches!(tenant.as_str(), "common" | "organizations") {
                plan.note(
                    from,
                    "a multi-tenant Entra authority: realmgate requires allowed_tenants (the tenant ids \
                     that may sign in); add it to the [[connection]] or `check` refuses the file",
                );
            }
        }
        None => {
            plan.connection("type", Value::Str("oidc".into()), from);
            plan.connection("issuer", Value::Str(issuer.to_string()), from);
        }
    }
}

/// A duration in seconds as realmgate writes it (`28800` -> `"8h"`).
pub fn seconds(n: u64) -> String {
    if n > 0 && n.is_multiple_of(3600) {
        format!("{}h", n / 3600)
    } else if n > 0 && n.is_multiple_of(60) {
        format!("{}m", n / 60)
    } else {
        format!("{n}s")
    }
}

/// The host of a URL, lowercased, when it has one.
pub fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url.trim())
        .ok()?
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
}
