//! Group display names from Microsoft Graph (`group_names_from_graph = true`,
//! SPEC 5.10): the names of a user's groups that `group_names` does not map
//! are read at sign-in with the connection's app-only token
//! (`POST {graph_endpoint}/v1.0/directoryObjects/getByIds`, up to 1000 ids
//! a request) and kept in a bounded process-wide cache for an hour; group
//! headers show them instead of the ids ([`cached`]).
//!
//! Names are for display only: policies never match them (a group owner can
//! rename a group). A name is not used (the id is shown) when it could be
//! read as something else: a comma, semicolon or control character (the
//! header is a comma-joined list), GUID-shaped (another group's id), or equal
//! to a name or id of the connection's `group_names`.
//!
//! The cache is per process: a replica shows a name once it has read it (at
//! a sign-in through it); until then it shows the id.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::graph_scope;
use crate::config::{ConnectionKind, ConnectionSettings};
use crate::connection::oidc::Env;
use crate::http_client;
use crate::oidc::metadata::is_guid;

/// Names kept (connection, group id) -> name.
const MAX_NAMES: u64 = 50_000;
/// How long a name is kept before it is read again.
const NAME_TTL: Duration = Duration::from_secs(3600);
/// Graph's `getByIds` takes at most this many ids a request.
const IDS_PER_REQUEST: usize = 1000;
/// At most this many requests per sign-in (10 000 groups).
const MAX_REQUESTS: usize = 10;
/// Longest name used.
const MAX_NAME_CHARS: usize = 256;

/// `None`: Graph gave no usable name (asked again after [`NAME_TTL`]).
type Cache = moka::sync::Cache<(String, String), Option<Arc<str>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| {
        moka::sync::Cache::builder()
            .max_capacity(MAX_NAMES)
            .time_to_live(NAME_TTL)
            .build()
    })
}

/// The Graph name of group `id` of `conn`, if read and usable under the
/// configuration now in force: a reload may have mapped that name since
/// it was read (to this connection's group or another's), and a name kept
/// for an hour must not then read as that group.
pub fn cached(conn: &ConnectionSettings, id: &str) -> Option<Arc<str>> {
    cache()
        .get(&(conn.name.clone(), id.to_string()))
        .flatten()
        .filter(|name| usable(conn, name))
}

/// Whether Graph was asked about group `id` of `connection` lately.
fn asked(connection: &str, id: &str) -> bool {
    cache().contains_key(&(connection.to_string(), id.to_string()))
}

/// For `/.auth/me` on connections with `group_names_from_graph`: each of
/// `groups` with a name (`group_names`' first, else Graph's) -> that name.
pub fn names_of(
    conn: &ConnectionSettings,
    groups: &[crate::session::model::Shared],
) -> serde_json::Map<String, Value> {
    groups
        .iter()
        .filter_map(|id| {
            let name = match conn.group_names.get(&**id) {
                Some(n) => n.clone(),
                None => cached(conn, id)?.to_string(),
            };
            Some((id.to_string(), Value::String(name)))
        })
        .collect()
}

/// Reads the names of `groups` that neither `group_names` nor the cache
/// has. Failures are logged (and counted as `graph` calls); they never fail
/// a sign-in: the ids are shown instead.
pub(crate) async fn warm(env: &Env<'_>, conn: &ConnectionSettings, groups: &[String]) {
    if !conn.group_names_from_graph {
        return;
    }
    let ConnectionKind::Entra(entra) = &conn.kind else {
        return;
    };
    let mut seen = HashSet::new();
    let missing: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .filter(|id| is_guid(id) && !conn.group_names.contains_key(*id))
        .filter(|id| !asked(&conn.name, id))
        .filter(|id| seen.insert(*id))
        .take(IDS_PER_REQUEST * MAX_REQUESTS)
        .collect();
    if missing.is_empty() {
        return;
    }
    let Some(provider) = env.provider.filter(|_| conn.credential.is_some()) else {
        tracing::warn!(connection = %conn.name, "group_names_from_graph needs a client credential for an app-only Graph token; group ids are shown");
        return;
    };
    let token = match provider
        .client_credentials_token(&graph_scope(&entra.graph_endpoint))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(connection = %conn.name, error = %e, "group names: no app-only Graph token; group ids are shown");
            return;
        }
    };
    let url = format!(
        "{}/v1.0/directoryObjects/getByIds?$select=id,displayName",
        entra.graph_endpoint.as_str().trim_end_matches('/')
    );
    for chunk in missing.chunks(IDS_PER_REQUEST) {
        let started = Instant::now();
        let result = get_by_ids(env, &url, token.expose_str(), chunk).await;
        env.metrics
            .record_idp_call(&conn.name, "graph", started.elapsed(), result.is_ok());
        match result {
            Ok(found) => {
                // Only ids asked for: an answer cannot name other groups. An
                // id without a usable name is remembered too, so it is not
                // asked about at every sign-in.
                for id in chunk {
                    let name = found
                        .iter()
                        .find(|(f, _)| f == id)
                        .map(|(_, n)| n.as_str())
                        .filter(|n| usable(conn, n))
                        .map(Arc::from);
                    cache().insert((conn.name.clone(), (*id).to_string()), name);
                }
            }
            Err(e) => {
                tracing::warn!(connection = %conn.name, error = %e, "group names could not be read from Graph; group ids are shown");
                return;
            }
        }
    }
}

/// `POST …/directoryObjects/getByIds` for groups: (id, displayName) pairs.
async fn get_by_ids(
    env: &Env<'_>,
    url: &str,
    token: &str,
    ids: &[&str],
) -> Result<Vec<(String, String)>, String> {
    let body = json!({ "ids": ids, "types": ["group"] }).to_string();
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, http_client::user_agent())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(body.into_bytes())
        .map_err(|e| e.to_string())?;
    let response = env.http.execute(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "Graph answered HTTP {} (does the app have the GroupMember.Read.All application permission?)",
            response.status().as_u16()
        ));
    }
    parse(response.body())
}

/// `{"value": [{"id": …, "displayName": …}, …]}`; entries without both are skipped.
fn parse(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_string())?;
    let values = doc
        .get("value")
        .and_then(Value::as_array)
        .ok_or("no value array")?;
    Ok(values
        .iter()
        .filter_map(|v| {
            let id = v.get("id")?.as_str()?;
            let name = v.get("displayName")?.as_str()?;
            Some((id.to_string(), name.to_string()))
        })
        .collect())
}

/// A name that reads as one group name and nothing else (module docs).
pub(crate) fn usable(conn: &ConnectionSettings, name: &str) -> bool {
    let trimmed = name.trim();
    !trimmed.is_empty()
        && trimmed == name
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(|c| c.is_control() || c == ',' || c == ';')
        && !is_guid(name)
        // A group any tenant user may create and name must not read as one
        // this connection (or another) maps, as lenient comparers read it.
        && !conn.reads_as_a_mapped_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnectionSettings {
        let s = crate::config::load_str(
            r#"
[session]
secret = "0123456789abcdef0123456789abcdef"
[[connection]]
name = "contoso"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"
client_secret = "s"
group_names = { "6f1d3b8e-0000-4000-8000-00000000a001" = "HR Admins" }
group_names_from_graph = true
[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
"#,
        )
        .expect("config");
        ConnectionSettings::clone(&s.connections[0])
    }

    #[test]
    fn only_names_that_read_as_one_name_are_used() {
        let c = conn();
        assert!(c.group_names_from_graph);
        assert!(usable(&c, "Engineering"));
        assert!(usable(&c, "Ventes & Marketing (EU)"));
        for bad in [
            "",
            " Engineering",
            "Engineering,HR Admins",
            "Ops;Admins",
            "Ops\r\nX-Injected: 1",
            "Ops\u{85}",
            "hr admins",
            "HR Admins",
            "6f1d3b8e-0000-4000-8000-00000000a001",
            "00000000-0000-4000-8000-000000000001",
        ] {
            assert!(!usable(&c, bad), "{bad:?}");
        }
        assert!(!usable(&c, &"x".repeat(MAX_NAME_CHARS + 1)));
    }

    /// Review 12: a group any tenant user may create and join, named by
    /// them, must not read as this connection's own mapped group to an app
    /// that compares names leniently (Java's `equalsIgnoreCase` and
    /// Python's `casefold` take `ſ` for `s`; NFKC-normalizing apps take
    /// full-width letters and NBSP for ASCII). Other connections' names were
    /// already compared as `fold` reads them; this connection's own only
    /// ASCII-case-insensitively.
    #[test]
    fn a_graph_name_that_reads_leniently_as_an_own_mapped_name_is_not_used() {
        let c = conn();
        for bad in [
            "\u{ff28}\u{ff32} Admins",
            "HR Admin\u{17f}",
            "HR\u{a0}Admins",
            "HR Ad\u{ad}mins",
            "HR Adm\u{131}ns",
            "H\u{301}R Admins",
            // Review 12 (C12): accents, and a dotted capital I.
            "HR Ádmins",
            "HR A\u{301}dmins",
            "HR ADMİNS",
        ] {
            assert!(!usable(&c, bad), "{bad:?}");
        }
        assert!(usable(&c, "HR Admins Europe"));
    }

    /// A name kept from before a reload is judged again by the
    /// configuration in force: mapped since (here or by another connection),
    /// it is no longer shown, in headers or `/.auth/me`.
    #[test]
    fn a_kept_name_that_a_reload_maps_is_no_longer_shown() {
        let load = |extra: &str| {
            let s = crate::config::load_str(&format!(
                r#"
[session]
secret = "0123456789abcdef0123456789abcdef"
[[connection]]
name = "reloaded"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"
client_secret = "s"
group_names_from_graph = true
{extra}
[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
"#
            ))
            .expect("config");
            ConnectionSettings::clone(&s.connections[0])
        };
        let id = "6f1d3b8e-0000-4000-8000-00000000b001";
        let before = load("");
        cache().insert(("reloaded".into(), id.into()), Some(Arc::from("Payroll")));
        assert_eq!(cached(&before, id).as_deref(), Some("Payroll"));
        let groups = [crate::session::model::Shared::from(id)];
        assert_eq!(names_of(&before, &groups)[id], "Payroll");
        // The reload maps "Payroll" to another of this connection's groups.
        let after = load(r#"group_names = { "6f1d3b8e-0000-4000-8000-00000000b002" = "payroll" }"#);
        assert_eq!(cached(&after, id), None);
        assert!(names_of(&after, &groups).get(id).is_none());
    }

    #[test]
    fn graph_answers_are_parsed_leniently_but_only_id_and_name_pairs_count() {
        let found = parse(
            br#"{"value":[{"id":"a","displayName":"A"},{"id":"b"},{"displayName":"C"},{"id":"d","displayName":5}]}"#,
        )
        .unwrap();
        assert_eq!(found, [("a".to_string(), "A".to_string())]);
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"error":{}}"#).is_err());
    }
}
