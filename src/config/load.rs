//! Loading: two layers merged with figment, then extracted table by table so
//! that a type error in one table does not hide the problems of the others.
//!
//! 1. [`ConfigFile`]: the TOML text, parsed with `toml` (for its error
//!    positions). The arrays of tables `[[connection]]` and `[[route]]` are
//!    laid out by index (`connection.0`, `connection.1`, ...), so that a layer
//!    above can change one key of one entry: figment replaces arrays whole.
//! 2. [`EnvVar`]: one provider per `REALMGATE_` environment variable, merged
//!    over the file. `REALMGATE_SESSION__SECRET` sets `session.secret` (`__`
//!    between levels, names case-insensitive). Arrays of tables are addressed
//!    by the entry's `name`: `REALMGATE_CONNECTION__CONTOSO__CLIENT_ID` sets
//!    `client_id` of the `[[connection]]` named `contoso` (`_` in the variable
//!    also matches `-` in the name). A value is read as a TOML value (`true`,
//!    `30`, `["a", "b"]`) unless the key already holds a string below it or
//!    the text is not valid TOML, in which case it is a string.
//!
//! figment tags every value with the layer it came from. [`Sources::label`]
//! uses the tags: a problem with a value an environment variable set is
//! reported under that variable's name, not as a file key the operator would
//! look for in vain.
//!
//! `<key>_file` keys are ordinary keys here (the file or the environment may
//! set them); the files are read in `validate`, straight into a zeroized
//! [`Secret`](super::Secret), so secret file contents never enter figment's
//! value tree, and with the size and file-type checks there.

use std::collections::BTreeMap;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::de::DeserializeOwned;

use super::raw::{self, RawConnection, RawRoute};
use super::ConfigProblem;

/// Environment variables realmgate reads itself, not config keys.
const RESERVED_ENV: &[&str] = &["CONFIG"];

/// The arrays of tables, whose entries the environment addresses by name.
const ARRAYS: &[&str] = &["connection", "route"];

/// figment metadata name of the file layer.
const FILE_LAYER: &str = "configuration file";

/// figment metadata name of an environment variable layer; its source is
/// `Source::Custom(<variable name>)`.
const ENV_LAYER: &str = "environment variable";

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
/// read is returned so validation can report its own problems too, with
/// where each value came from.
pub fn load(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<(Loaded, Sources)> {
    let file = match ConfigFile::parse(text) {
        Ok(f) => f,
        Err(p) => {
            problems.push(p);
            return None;
        }
    };
    let arrays = file.arrays.clone();
    let mut figment = Figment::from(file);

    for (name, value) in env {
        let Some(rest) = name.strip_prefix("REALMGATE_") else {
            continue;
        };
        if RESERVED_ENV.contains(&rest) || rest.is_empty() {
            continue;
        }
        match EnvVar::new(&figment, &arrays, &name, rest, &value) {
            Ok(var) => figment = figment.merge(var),
            Err(p) => problems.push(p),
        }
    }

    // Neither layer can fail, so the merged tree is always there.
    let top: Dict = figment.extract().unwrap_or_default();
    for key in top.keys() {
        if !raw::TOP_LEVEL_KEYS.contains(&key.as_str()) {
            problems.push(ConfigProblem::new(
                key,
                "is not a known key",
                format!("one of: {}", raw::TOP_LEVEL_KEYS.join(", ")),
            ));
        }
    }

    let loaded = Loaded {
        server: section(&figment, "server", problems),
        admin: section(&figment, "admin", problems),
        session: section(&figment, "session", problems),
        log: section(&figment, "log", problems),
        ui: section(&figment, "ui", problems),
        connections: array(&figment, &arrays, "connection", problems),
        routes: array(&figment, &arrays, "route", problems),
    };
    Some((loaded, Sources { figment }))
}

/// What the file has under an array-of-tables key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `[[key]]` entries (or `key = [...]`), this many, laid out by index.
    Entries(usize),
    /// Something else (`key = 5`, `[key]`): reported, never read as entries.
    NotAnArray,
}

/// The configuration file as a figment provider.
struct ConfigFile {
    dict: Dict,
    /// The shape of each of [`ARRAYS`] present in the file.
    arrays: BTreeMap<&'static str, Shape>,
}

impl ConfigFile {
    /// Parses the TOML text; a syntax error names its line and column.
    fn parse(text: &str) -> Result<ConfigFile, ConfigProblem> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigProblem::new(
                "(file)",
                format!("is not valid TOML: {}", e.message()),
                format!(
                    "valid TOML{}",
                    e.span()
                        .map(|s| format!(" (error at {})", line_col(text, s.start)))
                        .unwrap_or_default()
                ),
            )
        })?;
        // A TOML table always serializes to a dictionary.
        let mut dict = Value::serialize(&table)
            .ok()
            .and_then(|v| v.into_dict())
            .unwrap_or_default();
        let mut arrays = BTreeMap::new();
        for &key in ARRAYS {
            let Some(value) = dict.remove(key) else {
                continue;
            };
            let (shape, value) = match value {
                Value::Array(tag, items) => {
                    let n = items.len();
                    let by_index = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (i.to_string(), v))
                        .collect();
                    (Shape::Entries(n), Value::Dict(tag, by_index))
                }
                other => (Shape::NotAnArray, other),
            };
            arrays.insert(key, shape);
            dict.insert(key.to_string(), value);
        }
        Ok(ConfigFile { dict, arrays })
    }
}

impl Provider for ConfigFile {
    fn metadata(&self) -> Metadata {
        Metadata::named(FILE_LAYER)
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// One `REALMGATE_…` variable as a figment provider: one value at one path.
struct EnvVar {
    var: String,
    /// figment key path, entries by index (`connection`, `0`, `client_id`).
    path: Vec<String>,
    value: Value,
}

impl EnvVar {
    /// Reads variable `var` (`rest` is its name after `REALMGATE_`) against
    /// the layers so far (`below`).
    fn new(
        below: &Figment,
        arrays: &BTreeMap<&'static str, Shape>,
        var: &str,
        rest: &str,
        value: &str,
    ) -> Result<EnvVar, ConfigProblem> {
        let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(ConfigProblem::new(
                var,
                "has an empty path segment",
                "REALMGATE_<TABLE>__<KEY>, levels separated by exactly two underscores",
            ));
        }
        if segments.iter().any(|s| s.contains('.')) {
            return Err(ConfigProblem::new(
                var,
                "has a '.' in its name",
                "REALMGATE_<TABLE>__<KEY>, levels separated by exactly two underscores",
            ));
        }
        let path: Vec<String> = match ARRAYS.iter().find(|a| **a == segments[0]) {
            Some(&array) => {
                if segments.len() < 3 {
                    return Err(ConfigProblem::new(
                        var,
                        "does not name an entry and a key",
                        format!("REALMGATE_{}__<NAME>__<KEY>", array.to_uppercase()),
                    ));
                }
                let index = named_entry(below, arrays, array, &segments[1]).ok_or_else(|| {
                    ConfigProblem::new(
                        var,
                        format!("names no [[{array}]] called {:?}", segments[1]),
                        format!("the name of an existing [[{array}]]"),
                    )
                })?;
                [array.to_string(), index.to_string()]
                    .into_iter()
                    .chain(segments[2..].iter().cloned())
                    .collect()
            }
            None => segments,
        };
        // Every level above the key must be a table (or not exist yet).
        for depth in 1..path.len() {
            if let Ok(v) = below.find_value(&path[..depth].join(".")) {
                if v.as_dict().is_none() {
                    return Err(ConfigProblem::new(
                        var,
                        format!(
                            "cannot set a key inside {:?}, which is not a table",
                            path[depth - 1]
                        ),
                        "a table path",
                    ));
                }
            }
        }
        let value = match below.find_value(&path.join(".")) {
            Ok(Value::String(..)) => Value::from(value.to_string()),
            _ => parse_env_value(value),
        };
        Ok(EnvVar {
            var: var.to_string(),
            path,
            value,
        })
    }
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::from(ENV_LAYER, Source::Custom(self.var.clone()))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut value = self.value.clone();
        let Some((first, inner)) = self.path.split_first() else {
            return Ok(Map::new());
        };
        for key in inner.iter().rev() {
            value = Value::from(Dict::from([(key.clone(), value)]));
        }
        Ok(Profile::Default.collect(Dict::from([(first.clone(), value)])))
    }
}

/// The index of the `[[array]]` entry whose `name` matches `wanted`
/// (case-insensitive, `_` matching `-`, since environment variable names
/// cannot hold `-`).
fn named_entry(
    figment: &Figment,
    arrays: &BTreeMap<&'static str, Shape>,
    array: &str,
    wanted: &str,
) -> Option<usize> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let wanted = norm(wanted);
    let Some(Shape::Entries(n)) = arrays.get(array) else {
        return None;
    };
    (0..*n).find(|i| {
        figment
            .find_value(&format!("{array}.{i}.name"))
            .ok()
            .and_then(|v| v.into_string())
            .is_some_and(|name| norm(&name) == wanted)
    })
}

/// Where the values of a loaded configuration came from (figment's tags).
pub struct Sources {
    figment: Figment,
}

impl Sources {
    /// Reports each problem whose value an environment variable set under
    /// that variable: `REALMGATE_SERVER__WORKERS: has the wrong type (string
    /// "many") (the variable sets server.workers); expected u64`. Problems
    /// with file values, with tables or with keys no layer set are left as
    /// they are.
    pub fn label(&self, problems: &mut [ConfigProblem]) {
        for p in problems {
            if let Some(var) = self.env_var_of(&p.key) {
                p.problem = format!("{} (the variable sets {})", p.problem, p.key);
                p.key = var;
            }
        }
    }

    /// The environment variable that set the value at problem key `key`
    /// (`connection[1].scopes[0]`), if one did.
    fn env_var_of(&self, key: &str) -> Option<String> {
        let value = self.figment.find_value(&figment_path(key)?).ok()?;
        if value.as_dict().is_some() {
            return None;
        }
        let metadata = self.figment.get_metadata(value.tag())?;
        match &metadata.source {
            Some(Source::Custom(var)) if metadata.name == ENV_LAYER => Some(var.clone()),
            _ => None,
        }
    }
}

/// The figment path of a problem key: `connection[1].scopes[0]` is
/// `connection.1.scopes` (a value inside an array is the array's).
fn figment_path(key: &str) -> Option<String> {
    let mut path: Vec<&str> = Vec::new();
    for (depth, segment) in key.split('.').enumerate() {
        let Some((name, index)) = segment.split_once('[') else {
            path.push(segment);
            continue;
        };
        let index = index.strip_suffix(']')?;
        path.push(name);
        if depth == 0 && ARRAYS.contains(&name) {
            path.push(index);
        } else {
            break;
        }
    }
    (!path.iter().any(|s| s.is_empty())).then(|| path.join("."))
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
    arrays: &BTreeMap<&'static str, Shape>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Option<T>> {
    let n = match arrays.get(key) {
        None => return Vec::new(),
        Some(Shape::Entries(n)) => *n,
        Some(Shape::NotAnArray) => {
            problems.push(ConfigProblem::new(
                key,
                "is not an array of tables",
                format!("[[{key}]] tables"),
            ));
            return Vec::new();
        }
    };
    (0..n)
        .map(|i| {
            let entry = match figment.find_value(&format!("{key}.{i}")) {
                Ok(v) => v.deserialize::<T>(),
                Err(e) => Err(e),
            };
            match entry {
                Ok(t) => Some(t),
                Err(e) => {
                    push_figment_errors(e, &format!("{key}[{i}]"), problems);
                    None
                }
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
            // The kind of value only, never the value: the key may be a
            // secret (`secrets = "..."` where a list belongs), and problems
            // reach `check`'s output and the log of a refused reload.
            Kind::InvalidType(actual, expected) => (
                format!("has the wrong type ({})", actual_kind(actual)),
                expected.to_string(),
            ),
            Kind::InvalidValue(actual, expected) => (
                format!("has an invalid value ({})", actual_kind(actual)),
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

/// What kind of value figment found, without the value itself.
fn actual_kind(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// A variable's text as a TOML value, or as a string when it is not one.
fn parse_env_value(raw: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| Value::serialize(v).ok())
        .unwrap_or_else(|| Value::from(raw.to_string()))
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
