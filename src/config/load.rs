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
    /// Keys whose absence loading already explains (a value of the wrong
    /// type it reported and left out, or the known key an unknown one is
    /// probably a misspelling of): validation's "is missing" for them would
    /// only repeat the problem under another name.
    pub explained: Vec<String>,
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
    let mut explained = Vec::new();
    for key in top.keys() {
        if !raw::TOP_LEVEL_KEYS.contains(&key.as_str()) {
            let (problem, expected, suggestion) = unknown_key(key, raw::TOP_LEVEL_KEYS);
            explained.extend(suggestion);
            problems.push(ConfigProblem::new(key, problem, expected));
        }
    }

    let mut x = Explained(&mut explained);
    let server = section(&figment, "server", problems, &mut x);
    let admin = section(&figment, "admin", problems, &mut x);
    let session = section(&figment, "session", problems, &mut x);
    let log = section(&figment, "log", problems, &mut x);
    let ui = section(&figment, "ui", problems, &mut x);
    let connections = array(&figment, &arrays, "connection", problems, &mut x);
    let routes = array(&figment, &arrays, "route", problems, &mut x);
    let loaded = Loaded {
        server,
        admin,
        session,
        log,
        ui,
        connections,
        routes,
        explained,
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
        let metadata = self.figment.get_metadata(value.tag())?;
        // A table carries the tag of the layer that made it: the file's
        // when the file has it (the variable then set only a key inside),
        // a variable's when only that variable made it
        // (`REALMGATE_SESION__SECRET`: `sesion` is the variable's mistake).
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

/// Keys whose absence a reported problem already explains (see
/// [`Loaded::explained`]).
struct Explained<'a>(&'a mut Vec<String>);

/// Extracts one table; a missing table is all defaults.
fn section<T: DeserializeOwned + Default>(
    figment: &Figment,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
    explained: &mut Explained<'_>,
) -> T {
    match figment.find_value(key) {
        Ok(value) => read_table(value, key, problems, explained).unwrap_or_default(),
        Err(_) => T::default(),
    }
}

/// Extracts an array of tables, entry by entry, so each entry's problems are
/// reported with its index.
fn array<T: DeserializeOwned>(
    figment: &Figment,
    arrays: &BTreeMap<&'static str, Shape>,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
    explained: &mut Explained<'_>,
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
            let prefix = format!("{key}[{i}]");
            match figment.find_value(&format!("{key}.{i}")) {
                Ok(v) => read_table(v, &prefix, problems, explained),
                Err(e) => {
                    push_figment_errors(e, &prefix, problems);
                    None
                }
            }
        })
        .collect()
}

/// Most passes [`read_table`] makes over one table: more problems than this
/// in one table are not worth listing one by one.
const MAX_PASSES: usize = 64;

/// Deserializes one table, reporting every unknown key and every value of
/// the wrong type in it, not only the first one serde stops at: each such
/// key is reported, left out, and the rest read again (at most
/// [`MAX_PASSES`] times). So one typo hides neither the other problems of
/// its table nor the table's other values: `[session]` with a misspelled
/// key still has its `secret`, and validation does not call it missing.
fn read_table<T: DeserializeOwned>(
    mut value: Value,
    prefix: &str,
    problems: &mut Vec<ConfigProblem>,
    explained: &mut Explained<'_>,
) -> Option<T> {
    let mut left_out: Vec<Vec<String>> = Vec::new();
    for _ in 0..MAX_PASSES {
        let errors = match value.deserialize::<T>() {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let mut progress = false;
        for (segments, problem) in figment_problems(errors, prefix) {
            if problem.problem.problem == "is missing" && left_out.contains(&segments) {
                // Left out because its value was reported: said already.
                return None;
            }
            if let Some(suggestion) = problem.suggestion.clone() {
                explained.0.push(suggestion);
            }
            let removable = problem.removable;
            let key = problem.problem.key.clone();
            problems.push(problem.problem);
            if removable && remove_at(&mut value, &segments) {
                explained.0.push(key);
                left_out.push(segments);
                progress = true;
            }
        }
        if !progress {
            return None;
        }
    }
    problems.push(ConfigProblem::new(
        prefix,
        format!("has more than {MAX_PASSES} problems; the rest are not listed"),
        "fix the problems above and run check again",
    ));
    None
}

/// Removes the value at `segments` (the deepest key of it that exists
/// inside tables: a bad element of a list removes the list). False when
/// nothing was removed.
fn remove_at(value: &mut Value, segments: &[String]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return false;
    };
    let Value::Dict(_, dict) = value else {
        return false;
    };
    if !dict.contains_key(first) {
        return false;
    }
    let descends = !rest.is_empty()
        && matches!(dict.get(first), Some(Value::Dict(..)))
        && dict
            .get_mut(first)
            .is_some_and(|inner| remove_at(inner, rest));
    descends || dict.remove(first).is_some()
}

/// The problem with unknown key `key`, given the `known` keys of its
/// table: "did you mean …?" when one is close (edit distance), and the
/// list to expect. Also answers the suggestion.
fn unknown_key(key: &str, known: &[impl AsRef<str>]) -> (String, String, Option<String>) {
    let list = known
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    let suggestion = did_you_mean(key, known);
    let problem = match &suggestion {
        Some(s) => format!("is not a known key (did you mean `{s}`?)"),
        None => "is not a known key".to_string(),
    };
    (problem, format!("one of: {list}"), suggestion)
}

/// The known key closest to `key`, if it is close: an edit distance of at
/// most a third of its length (at least 1), or `key` with a `_file`
/// suffix or separator spelt differently.
fn did_you_mean(key: &str, known: &[impl AsRef<str>]) -> Option<String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let key_n = norm(key);
    known
        .iter()
        .map(AsRef::as_ref)
        .map(|k| (strsim::damerau_levenshtein(&key_n, &norm(k)), k))
        .filter(|(d, k)| *d <= (k.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

fn push_figment_errors(e: figment::Error, prefix: &str, problems: &mut Vec<ConfigProblem>) {
    problems.extend(
        figment_problems(e, prefix)
            .into_iter()
            .map(|(_, p)| p.problem),
    );
}

/// One problem figment reported, with what [`read_table`] needs to go on.
struct Found {
    problem: ConfigProblem,
    /// The value at its path can be left out and the table read again
    /// (an unknown key, a value of the wrong type).
    removable: bool,
    /// The known key an unknown one probably misspells (full key path).
    suggestion: Option<String>,
}

/// figment's errors as problems under `prefix`, each with its key path
/// relative to the table.
fn figment_problems(e: figment::Error, prefix: &str) -> Vec<(Vec<String>, Found)> {
    use figment::error::Kind;
    let mut found = Vec::new();
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
        for s in &segments {
            key.push('.');
            key.push_str(s);
        }
        let table_key = key.clone();
        let mut relative: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        let mut suggestion = None;
        let (problem, expected, removable) = match &err.kind {
            Kind::UnknownField(field, expected) => {
                key.push('.');
                key.push_str(field);
                relative.push(field.to_string());
                let (problem, expected, s) = unknown_key(field, expected);
                suggestion = s.map(|s| format!("{table_key}.{s}"));
                (problem, expected, true)
            }
            // The kind of value only, never the value: the key may be a
            // secret (`secrets = "..."` where a list belongs), and problems
            // reach `check`'s output and the log of a refused reload.
            Kind::InvalidType(actual, expected) => (
                format!("has the wrong type ({})", actual_kind(actual)),
                expected.to_string(),
                !relative.is_empty(),
            ),
            Kind::InvalidValue(actual, expected) => (
                format!("has an invalid value ({})", actual_kind(actual)),
                expected.to_string(),
                !relative.is_empty(),
            ),
            Kind::MissingField(field) => {
                key.push('.');
                key.push_str(field);
                relative.push(field.to_string());
                ("is missing".to_string(), "a value".to_string(), false)
            }
            other => (other.to_string(), "a valid value".to_string(), false),
        };
        found.push((
            relative,
            Found {
                problem: ConfigProblem::new(key, problem, expected),
                removable,
                suggestion,
            },
        ));
    }
    found
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
