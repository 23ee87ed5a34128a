//! `realmgate schema`: a JSON Schema of the TOML file, for editors (taplo /
//! Even Better TOML complete and check keys with it; `config.toml.example`
//! names it on its `#:schema` line).
//!
//! The shape comes from the serde structs of [`super::raw`] through
//! `schemars`, so the schema accepts exactly the keys the loader accepts
//! (every table denies unknown keys). Descriptions come from the comments of
//! `config.toml.example`, the one place each key is documented, so the two
//! cannot say different things. Values the loader checks further (durations,
//! URLs, enumerations) are strings here; `realmgate check` has the last word.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::{json, Value};

use super::raw::{RawAdmin, RawConnection, RawLog, RawRoute, RawServer, RawSession, RawUi};

/// The whole file: the top-level tables and arrays of tables.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, title = "realmgate configuration")]
#[allow(dead_code)] // only its schema is used
struct File {
    server: Option<RawServer>,
    admin: Option<RawAdmin>,
    session: Option<RawSession>,
    log: Option<RawLog>,
    ui: Option<RawUi>,
    connection: Option<Vec<RawConnection>>,
    route: Option<Vec<RawRoute>>,
}

/// The example file, whose comments document every key.
const EXAMPLE: &str = include_str!("../../config.toml.example");

/// The JSON Schema (draft 2020-12) of the configuration file.
pub fn schema() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(File)).expect("a schema is plain JSON");
    let docs = example_docs();
    describe(&mut schema, &docs);
    schema["$id"] = json!("https://realmgate.dev/schema/config.json");
    schema["description"] = json!(
        "realmgate's TOML configuration (one file; REALMGATE_* environment variables and *_file secrets override it). Validate with `realmgate check`."
    );
    schema
}

/// Which definition of the schema a table of the example belongs to.
fn definition_of(table: &str) -> Option<&'static str> {
    Some(match table {
        "server" => "RawServer",
        "server.tls" => "RawTls",
        "admin" => "RawAdmin",
        "session" => "RawSession",
        "log" => "RawLog",
        "ui" => "RawUi",
        "connection" => "RawConnection",
        "route" => "RawRoute",
        "route.allow" => "RawAllow",
        _ => return None,
    })
}

/// `(definition, key) -> comment` from lines such as `key = value  # text`
/// or `# key = value  # text` in the example, under their table header.
/// The first comment of a key wins; continuation lines (`#   more text`
/// right under it) are appended.
fn example_docs() -> BTreeMap<(&'static str, String), String> {
    let mut docs = BTreeMap::new();
    let mut table: Option<&'static str> = None;
    let mut last: Option<(&'static str, String)> = None;
    for line in EXAMPLE.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            table = definition_of(h.trim());
            last = None;
            continue;
        }
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = definition_of(h.trim());
            last = None;
            continue;
        }
        let Some(def) = table else { continue };
        let body = t.strip_prefix('#').map(str::trim_start).unwrap_or(t);
        let key_part = body.split('=').next().unwrap_or("").trim();
        let is_key = body.contains('=')
            && !key_part.is_empty()
            && key_part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if is_key {
            // The comment after the value: the last " # " outside quotes
            // is good enough for the example's own lines.
            let comment = body
                .rfind(" # ")
                .map(|i| body[i + 3..].trim().to_string())
                .unwrap_or_default();
            let entry = (def, key_part.to_string());
            if !docs.contains_key(&entry) && !comment.is_empty() {
                docs.insert(entry.clone(), comment);
                last = Some(entry);
            } else {
                last = None;
            }
        } else if let (Some(entry), Some(more)) = (&last, continuation(line)) {
            if let Some(d) = docs.get_mut(entry) {
                d.push(' ');
                d.push_str(more);
            }
        } else {
            last = None;
        }
    }
    docs
}

/// The text of a comment line that continues the comment of the line above:
/// indented (`<spaces># more`) or a comment under the value column
/// (`#<spaces># more`).
fn continuation(line: &str) -> Option<&str> {
    let indented = line.starts_with(' ');
    let t = line.trim_start().strip_prefix('#')?;
    let (under_value, t) = match t.trim_start().strip_prefix('#') {
        Some(rest) if t.starts_with("  ") => (true, rest),
        _ => (false, t),
    };
    let t = t.trim();
    (!t.is_empty() && (indented || under_value)).then_some(t)
}

/// Adds the example's comments as `description`s to the definitions.
fn describe(schema: &mut Value, docs: &BTreeMap<(&'static str, String), String>) {
    let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) else {
        return;
    };
    for ((def, key), text) in docs {
        if let Some(prop) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(key.as_str()))
        {
            prop["description"] = json!(text);
        }
    }
}

#[cfg(test)]
mod tests;
