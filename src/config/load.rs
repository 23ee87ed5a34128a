//! Loading: the TOML text, then `REALMGATE_` environment overrides, merged with
//! figment and extracted table by table so that a type error in one table does
//! not hide the problems of the others.
//!
//! Environment variables: `REALMGATE_SESSION__SECRET` sets `session.secret`
//! (`__` between levels, names case-insensitive). Arrays of tables are
//! addressed by the entry's `name`: `REALMGATE_CONNECTION__CONTOSO__CLIENT_ID`
//! sets `client_id` of the `[[connection]]` named `contoso` (`_` in the
//! variable also matches `-` in the name). A value is read as a TOML value
//! (`true`, `30`, `["a", "b"]`) unless the key already holds a string in the
//! file or the text is not valid TOML, in which case it is a string.

use figment::providers::Serialized;
use figment::Figment;
use serde::de::DeserializeOwned;

use super::raw::{self, RawConnection, RawRoute};
use super::ConfigProblem;

/// Environment variables realmgate reads itself, not config keys.
const RESERVED_ENV: &[&str] = &["CONFIG"];

/// Everything the file and the environment say, before validation.
pub struct Loaded {
    pub server: raw::RawServer,
    pub admin: raw::RawAdmin,
    pub session: raw::RawSession,
    pub log: raw::RawLog,
    pub ui: raw::RawUi,
    /// `None` for an entry that could not be read (its problems are reported).
    pub connections: Vec<Option<RawConnection>>,
    pub routes: Vec<Option<RawRoute>>,
}

/// Parses `text`, applies `env` (all variables; only `REALMGATE_*` are used) and
/// extracts every table. Problems are appended to `problems`; what could be
/// read is returned so validation can report its own problems too.
pub fn load(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Loaded> {
    let mut table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            problems.push(ConfigProblem::new(
                "(file)",
                format!("is not valid TOML: {}", e.message()),
                format!(
                    "valid TOML{}",
                    e.span()
                        .map(|s| format!(" (error at {})", line_col(text, s.start)))
                        .unwrap_or_default()
                ),
            ));
            return None;
        }
    };

    for (name, value) in env {
        let Some(rest) = name.strip_prefix("REALMGATE_") else {
            continue;
        };
        if RESERVED_ENV.contains(&rest) || rest.is_empty() {
            continue;
        }
        if let Err(p) = apply_env(&mut table, &name, rest, &value) {
            problems.push(p);
        }
    }

    for key in table.keys() {
        if !raw::TOP_LEVEL_KEYS.contains(&key.as_str()) {
            problems.push(ConfigProblem::new(
                key,
                "is not a known key",
                format!("one of: {}", raw::TOP_LEVEL_KEYS.join(", ")),
            ));
        }
    }

    let figment = Figment::from(Serialized::defaults(&table));
    Some(Loaded {
        server: section(&figment, "server", problems),
        admin: section(&figment, "admin", problems),
        session: section(&figment, "session", problems),
        log: section(&figment, "log", problems),
        ui: section(&figment, "ui", problems),
        connections: array(&figment, "connection", problems),
        routes: array(&figment, "route", problems),
    })
}

/// Extracts one table; a missing table is all defaults.
fn section<T: DeserializeOwned + Default>(
    figment: &Figment,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    if !figment.contains(key) {
        return T::default();
    }
    match figment.extract_inner::<T>(key) {
        Ok(v) => v,
        Err(e) => {
            push_figment_errors(e, key, problems);
            T::default()
        }
    }
}

/// Extracts an array of tables, entry by entry, so each entry's problems are
/// reported with its index.
fn array<T: DeserializeOwned>(
    figment: &Figment,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Option<T>> {
    if !figment.contains(key) {
        return Vec::new();
    }
    let values = match figment.extract_inner::<Vec<figment::value::Value>>(key) {
        Ok(v) => v,
        Err(_) => {
            problems.push(ConfigProblem::new(
                key,
                "is not an array of tables",
                format!("[[{key}]] tables"),
            ));
            return Vec::new();
        }
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v.deserialize::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                push_figment_errors(e, &format!("{key}[{i}]"), problems);
                None
            }
        })
        .collect()
}

fn push_figment_errors(e: figment::Error, prefix: &str, problems: &mut Vec<ConfigProblem>) {
    use figment::error::Kind;
    for err in e {
        // figment records the path innermost-first; extract_inner adds the
        // table's own key, which `prefix` already names.
        let field: Option<&str> = match &err.kind {
            Kind::UnknownField(f, _) => Some(f),
            Kind::MissingField(f) => Some(f),
            _ => None,
        };
        let mut segments: Vec<&str> = err.path.iter().map(String::as_str).collect();
        // Some figment paths are innermost-first: put them outermost-first.
        if segments.len() > 1
            && (field.is_some() && segments.first().copied() == field
                || segments.last().copied() == Some(prefix))
        {
            segments.reverse();
        }
        let prefix_segments: Vec<&str> = prefix.split('.').collect();
        if segments.starts_with(&prefix_segments) {
            segments.drain(..prefix_segments.len());
        }
        if field.is_some() && segments.last().copied() == field {
            segments.pop();
        }
        let mut key = prefix.to_string();
        for s in segments {
            key.push('.');
            key.push_str(s);
        }
        let (problem, expected) = match &err.kind {
            Kind::UnknownField(field, expected) => {
                key.push('.');
                key.push_str(field);
                (
                    "is not a known key".to_string(),
                    format!("one of: {}", expected.join(", ")),
                )
            }
            Kind::InvalidType(actual, expected) => (
                format!("has the wrong type ({actual})"),
                expected.to_string(),
            ),
            Kind::MissingField(field) => {
                key.push('.');
                key.push_str(field);
                ("is missing".to_string(), "a value".to_string())
            }
            other => (other.to_string(), "a valid value".to_string()),
        };
        problems.push(ConfigProblem::new(key, problem, expected));
    }
}

/// Applies one `REALMGATE_…` variable to the table.
fn apply_env(
    table: &mut toml::Table,
    var: &str,
    rest: &str,
    value: &str,
) -> Result<(), ConfigProblem> {
    let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ConfigProblem::new(
            var,
            "has an empty path segment",
            "REALMGATE_<TABLE>__<KEY>, levels separated by exactly two underscores",
        ));
    }
    let (target, path): (&mut toml::Table, &[String]) =
        if segments[0] == "connection" || segments[0] == "route" {
            if segments.len() < 3 {
                return Err(ConfigProblem::new(
                    var,
                    "does not name an entry and a key",
                    format!("REALMGATE_{}__<NAME>__<KEY>", segments[0].to_uppercase()),
                ));
            }
            let entry = find_named_entry(table, &segments[0], &segments[1]).ok_or_else(|| {
                ConfigProblem::new(
                    var,
                    format!("names no [[{}]] called {:?}", segments[0], segments[1]),
                    format!("the name of an existing [[{}]]", segments[0]),
                )
            })?;
            (entry, &segments[2..])
        } else {
            (table, &segments[..])
        };
    set_path(target, path, value).map_err(|why| ConfigProblem::new(var, why, "a table path"))
}

/// The `[[array]]` entry whose `name` matches `wanted` (case-insensitive,
/// `_` matching `-`, since environment variable names cannot hold `-`).
fn find_named_entry<'t>(
    table: &'t mut toml::Table,
    array: &str,
    wanted: &str,
) -> Option<&'t mut toml::Table> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let wanted = norm(wanted);
    table
        .get_mut(array)?
        .as_array_mut()?
        .iter_mut()
        .filter_map(|v| v.as_table_mut())
        .find(|t| t.get("name").and_then(|n| n.as_str()).map(norm) == Some(wanted.clone()))
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("is empty")?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("cannot set a key inside {p:?}, which is not a table"))?;
    }
    let value = match cur.get(last) {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
        _ => parse_env_value(raw),
    };
    cur.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    format!("line {line}, column {col}")
}
