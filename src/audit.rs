//! The audit trail (issue 22 item 9): sign-ins (and refused sign-ins with
//! their reason), sign-outs, back- and front-channel logouts, revocations
//! and admin actions, one JSON object per line, for a SIEM.
//!
//! It is separate from the logs: not a `tracing` event (so neither
//! `RUST_LOG` nor `[log] level` can drop it, and `[log] format` cannot
//! change its shape), written to its own sink, `[log] audit`: `"stdout"`
//! (the default; logs go to stderr), `"stderr"`, `"off"`, or an absolute
//! file path (appended to; reopened at every reload, so after a rotation
//! SIGHUP moves writing to the new file).
//!
//! # Schema (version [`SCHEMA`])
//!
//! Every line has `time` (RFC 3339, UTC, seconds), `schema` (the number
//! below, raised only when a field changes meaning or goes away) and
//! `event`; the other fields depend on the event (docs/operations.md has
//! the table; [`Event`] is its source). A field without a value is left
//! out. Never a token, cookie, session id, secret, password or email (SPEC
//! 6): users appear as their user id (SPEC 6.1), sessions by the listing's
//! handle.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};

/// The schema version written in every line.
pub const SCHEMA: u32 = 1;

/// Where audit events go (`[log] audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    Off,
    Stdout,
    Stderr,
    /// Appended to; created if absent (mode 0600 on Unix).
    File(PathBuf),
}

/// One audit event. The variant is the event name; its fields are the
/// line's fields (see [`Event::name`] and [`Event::fields`]).
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A sign-in completed: a session was made.
    SignIn {
        route: &'a str,
        connection: &'a str,
        user_id: &'a str,
        client: IpAddr,
    },
    /// A sign-in was refused; `reason` is the metrics' outcome label
    /// (`invalid_credentials`, `id_token`, `unknown_state`, ...).
    SignInFailed {
        route: &'a str,
        connection: &'a str,
        reason: &'a str,
        client: IpAddr,
    },
    /// The user signed out at `/.auth/logout`.
    SignOut {
        route: &'a str,
        connection: &'a str,
        user_id: &'a str,
        client: IpAddr,
    },
    /// An OpenID Connect back-channel logout ended `ended` sessions;
    /// `by` is `sid` or `sub`.
    BackchannelLogout {
        connection: &'a str,
        by: &'a str,
        ended: u64,
    },
    /// A front-channel logout (or an IdP's sign-out through the browser:
    /// WS-Fed) ended `ended` sessions.
    FrontchannelLogout { connection: &'a str, ended: u64 },
    /// Admin `POST /sessions/revoke` ended `ended` sessions; `by` is
    /// `user_id` or `sid` (the value itself is not written: a revocation
    /// is often about an incident, and a `sid` is as good as a logout token).
    SessionsRevoked {
        by: &'a str,
        user_id: Option<&'a str>,
        /// The one connection it was limited to; None: every connection.
        connection: Option<&'a str>,
        ended: u64,
        client: IpAddr,
    },
    /// Admin `GET /sessions` answered `count` sessions.
    SessionsListed {
        user_id: Option<&'a str>,
        connection: Option<&'a str>,
        count: usize,
        client: IpAddr,
    },
    /// The admin guard refused a request (`reason`: its error code).
    AdminRefused {
        method: &'a str,
        path: &'a str,
        reason: &'a str,
        client: IpAddr,
    },
}

impl Event<'_> {
    /// The `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SignIn { .. } => "sign_in",
            Event::SignInFailed { .. } => "sign_in_failed",
            Event::SignOut { .. } => "sign_out",
            Event::BackchannelLogout { .. } => "backchannel_logout",
            Event::FrontchannelLogout { .. } => "frontchannel_logout",
            Event::SessionsRevoked { .. } => "sessions_revoked",
            Event::SessionsListed { .. } => "sessions_listed",
            Event::AdminRefused { .. } => "admin_refused",
        }
    }

    /// The event's own fields.
    pub fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        match self {
            Event::SignIn {
                route,
                connection,
                user_id,
                client,
            }
            | Event::SignOut {
                route,
                connection,
                user_id,
                client,
            } => {
                put("route", (*route).into());
                put("connection", (*connection).into());
                put("user_id", (*user_id).into());
                put("client_address", client.to_string().into());
            }
            Event::SignInFailed {
                route,
                connection,
                reason,
                client,
            } => {
                put("route", (*route).into());
                put("connection", (*connection).into());
                put("reason", (*reason).into());
                put("client_address", client.to_string().into());
            }
            Event::BackchannelLogout {
                connection,
                by,
                ended,
            } => {
                put("connection", (*connection).into());
                put("by", (*by).into());
                put("ended", (*ended).into());
            }
            Event::FrontchannelLogout { connection, ended } => {
                put("connection", (*connection).into());
                put("ended", (*ended).into());
            }
            Event::SessionsRevoked {
                by,
                user_id,
                connection,
                ended,
                client,
            } => {
                put("by", (*by).into());
                if let Some(u) = user_id {
                    put("user_id", (*u).into());
                }
                if let Some(c) = connection {
                    put("connection", (*c).into());
                }
                put("ended", (*ended).into());
                put("client_address", client.to_string().into());
            }
            Event::SessionsListed {
                user_id,
                connection,
                count,
                client,
            } => {
                if let Some(u) = user_id {
                    put("user_id", (*u).into());
                }
                if let Some(c) = connection {
                    put("connection", (*c).into());
                }
                put("count", (*count).into());
                put("client_address", client.to_string().into());
            }
            Event::AdminRefused {
                method,
                path,
                reason,
                client,
            } => {
                // Whoever reaches the listener chooses these, before any
                // token is checked: cut as the access log cuts them, so a
                // refused request cannot write a 64 KiB line (hyper takes
                // URIs up to that) that log shippers split or drop.
                put("method", clipped(method, MAX_METHOD).into());
                put("path", clipped(path, crate::access_log::MAX_PATH).into());
                put("reason", (*reason).into());
                put("client_address", client.to_string().into());
            }
        }
        m
    }
}

/// Longest method of an `admin_refused` event (an extension method can be
/// any token).
const MAX_METHOD: usize = 32;

/// `s` cut to at most `max` bytes as the access log cuts its fields (on a
/// character boundary), with `...` when it was cut.
fn clipped(s: &str, max: usize) -> String {
    let (kept, was_cut) = crate::access_log::cut(s.as_bytes(), max);
    let kept = String::from_utf8_lossy(kept);
    if was_cut {
        format!("{kept}...")
    } else {
        kept.into_owned()
    }
}

/// The audit writer of one configuration generation.
pub struct Audit {
    out: Out,
}

enum Out {
    Off,
    Stdout,
    Stderr,
    File(Mutex<std::fs::File>),
    /// Lines kept in memory (tests).
    Memory(Mutex<Vec<String>>),
}

impl Audit {
    /// Opens `sink`. A file that cannot be opened is reported and its events
    /// go to stderr instead, so none is lost (`check` has already verified
    /// that the path is absolute and its directory exists).
    pub fn open(sink: &AuditSink) -> Audit {
        let out = match sink {
            AuditSink::Off => Out::Off,
            AuditSink::Stdout => Out::Stdout,
            AuditSink::Stderr => Out::Stderr,
            AuditSink::File(path) => match open_append(path) {
                Ok(f) => Out::File(Mutex::new(f)),
                Err(e) => {
                    tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "[log] audit: the file cannot be opened for appending; audit events go to stderr until a reload can open it"
                    );
                    Out::Stderr
                }
            },
        };
        Audit { out }
    }

    /// An audit trail that keeps its lines in memory (tests).
    pub fn in_memory() -> Audit {
        Audit {
            out: Out::Memory(Mutex::new(Vec::new())),
        }
    }

    /// The lines kept by [`Audit::in_memory`] (empty for other sinks).
    pub fn lines(&self) -> Vec<String> {
        match &self.out {
            Out::Memory(m) => m.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => Vec::new(),
        }
    }

    /// Writes `event` as one line. A failed write is logged, never fatal.
    pub fn record(&self, event: Event<'_>) {
        if matches!(self.out, Out::Off) {
            return;
        }
        let line = line(&event, std::time::SystemTime::now());
        let written = match &self.out {
            Out::Off => Ok(()),
            Out::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Out::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
            Out::File(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                // One write call per line: appends from replicas sharing a
                // file do not interleave within a line.
                f.write_all(format!("{line}\n").as_bytes())
            }
            Out::Memory(m) => {
                m.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                Ok(())
            }
        };
        if let Err(e) = written {
            tracing::error!(event = event.name(), error = %e, "audit event could not be written");
        }
    }
}

/// The JSON line of `event` at `now`: `time`, `schema` and `event` first
/// (for people reading the file), then the event's fields by name.
fn line(event: &Event<'_>, now: std::time::SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(now).to_string();
    let out = format!(
        "{{\"time\":{},\"schema\":{SCHEMA},\"event\":{}",
        Value::from(time),
        Value::from(event.name())
    );
    // Strings through the access log's escaping: serde_json leaves C1
    // controls, DEL, U+2028 and bidirectional overrides raw, and a user id
    // is `<connection>:<sub>` with the provider's `sub` (review 10).
    let mut bytes = out.into_bytes();
    for (k, v) in event.fields() {
        bytes.push(b',');
        crate::access_log::json_str(&mut bytes, k.as_bytes());
        bytes.push(b':');
        match &v {
            Value::String(s) => crate::access_log::json_str(&mut bytes, s.as_bytes()),
            other => bytes.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    bytes.push(b'}');
    // `json_str` writes valid UTF-8 (invalid input bytes become `\xNN`).
    String::from_utf8_lossy(&bytes).into_owned()
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests;
