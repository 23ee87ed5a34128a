//! Microsoft Graph for Entra group overage (SPEC 5.4): when an ID token has too many groups to
//! list, Entra leaves `groups` out and says so (`_claim_names.groups` or
//! `hasgroups`). realmgate then asks Microsoft Graph for the user's
//! transitive group ids with the user's own access token:
//! `GET {graph_endpoint}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id`,
//! following `@odata.nextLink` through every page. When Graph refuses the
//! user's token (403: nobody consented to `GroupMember.Read.All` for it),
//! the connection's own app-only token (client credentials, the
//! `GroupMember.Read.All` application permission) reads
//! `/v1.0/users/{oid}/transitiveMemberOf/…` instead (SPEC 5.10).
//!
//! The access token is a bearer credential, so a `nextLink` is followed only
//! when it stays on `graph_endpoint` (same scheme, host, port and path
//! prefix): a response that points elsewhere (a compromised or spoofed Graph,
//! a misconfigured proxy) must not make realmgate send the token there.
//! Paging is bounded ([`MAX_PAGES`]) so a looping `nextLink` cannot keep a
//! login busy forever.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::Value;
use url::Url;

use crate::http_client::HttpClient;
use crate::metrics::Metrics;

/// At most this many pages are read (Graph's default page size is 100, so
/// 10 000 groups); more is treated as a failure, not silently truncated.
pub(crate) const MAX_PAGES: usize = 100;

/// Longest group id accepted (Graph ids are 36-character GUIDs).
const MAX_GROUP_ID_LEN: usize = 128;

/// Why the groups could not be read. The text names the problem, never the token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GraphError {
    #[error("the connection has no Graph endpoint (not an Entra connection)")]
    NotEntra,
    #[error("the token endpoint returned no access token to call Graph with")]
    NoAccessToken,
    #[error("Graph refused the user's token (HTTP 403), and no app-only token could be had: {0}")]
    NoAppToken(String),
    #[error("Graph request failed: {0}")]
    Unreachable(String),
    #[error("Graph answered HTTP {0}")]
    Status(u16),
    #[error("Graph answered something that is not a group list: {0}")]
    Malformed(&'static str),
    #[error("Graph's @odata.nextLink points outside graph_endpoint ({0}); not followed")]
    ForeignLink(String),
    #[error("more than 100 pages of groups (MAX_PAGES); giving up")]
    TooManyPages,
}

/// Whose groups are read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Member<'a> {
    /// The access token's user (`/me`), with the user's own token.
    Me,
    /// The user with this object id (`/users/{oid}`), with an app-only token.
    User(&'a str),
}

/// Every transitive group id of `who`, across all pages.
pub(crate) async fn transitive_groups(
    http: &HttpClient,
    metrics: &Metrics,
    connection: &str,
    graph_endpoint: &Url,
    access_token: &str,
    who: Member<'_>,
) -> Result<Vec<String>, GraphError> {
    let base = graph_endpoint.as_str().trim_end_matches('/');
    let path = match who {
        Member::Me => "me".to_string(),
        // An `oid` is a GUID (from a verified token); anything else could
        // change the path and is refused.
        Member::User(oid) if crate::oidc::metadata::is_guid(oid) => format!("users/{oid}"),
        Member::User(_) => return Err(GraphError::Malformed("the user's oid is not a GUID")),
    };
    let mut next = Some(format!(
        "{base}/v1.0/{path}/transitiveMemberOf/microsoft.graph.group?$select=id"
    ));
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        if pages == MAX_PAGES {
            return Err(GraphError::TooManyPages);
        }
        pages += 1;
        let started = Instant::now();
        let result = fetch_page(http, &url, access_token).await;
        metrics.record_idp_call(connection, "graph", started.elapsed(), result.is_ok());
        let page = result?;
        for id in page.ids {
            if seen.insert(id.clone()) {
                groups.push(id);
            }
        }
        if let Some(link) = page.next_link {
            next = Some(same_service(graph_endpoint, &link)?);
        }
    }
    Ok(groups)
}

struct Page {
    ids: Vec<String>,
    next_link: Option<String>,
}

async fn fetch_page(http: &HttpClient, url: &str, access_token: &str) -> Result<Page, GraphError> {
    let response = http
        .get_with_bearer(url, access_token)
        .await
        .map_err(|e| GraphError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(GraphError::Status(response.status().as_u16()));
    }
    parse_page(response.body())
}

/// `{"value": [{"id": "…"}, …], "@odata.nextLink": "…"}`.
fn parse_page(body: &[u8]) -> Result<Page, GraphError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| GraphError::Malformed("not JSON"))?;
    let values = doc
        .get("value")
        .and_then(Value::as_array)
        .ok_or(GraphError::Malformed("no value array"))?;
    let mut ids = Vec::with_capacity(values.len());
    for v in values {
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or(GraphError::Malformed("an entry has no id"))?;
        // Ids end up in headers and policies: visible ASCII, no separators.
        if id.is_empty()
            || id.len() > MAX_GROUP_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b';')
        {
            return Err(GraphError::Malformed("an id is not a plain identifier"));
        }
        ids.push(id.to_string());
    }
    let next_link = match doc.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(GraphError::Malformed("@odata.nextLink is not a string")),
    };
    Ok(Page { ids, next_link })
}

/// `link` if it is on `graph_endpoint`'s origin and under its path, else an error.
fn same_service(graph_endpoint: &Url, link: &str) -> Result<String, GraphError> {
    let shown = || {
        // Only the origin is shown: the query may hold opaque paging state.
        Url::parse(link)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| "an unparseable URL".to_string())
    };
    let url = Url::parse(link).map_err(|_| GraphError::ForeignLink(shown()))?;
    if url.origin() != graph_endpoint.origin()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(GraphError::ForeignLink(shown()));
    }
    let prefix = format!("{}/", graph_endpoint.path().trim_end_matches('/'));
    if !url.path().starts_with(&prefix) {
        return Err(GraphError::ForeignLink(shown()));
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn next_link_on_the_same_service_is_followed() {
        let g = graph("https://graph.microsoft.com");
        let link = "https://graph.microsoft.com/v1.0/me/transitiveMemberOf/microsoft.graph.group?$skiptoken=X";
        assert_eq!(same_service(&g, link).unwrap(), link);
        let g = graph("http://127.0.0.1:9/graph");
        assert!(same_service(&g, "http://127.0.0.1:9/graph/v1.0/me?x=1").is_ok());
    }

    #[test]
    fn next_link_elsewhere_is_refused() {
        let g = graph("https://graph.microsoft.com");
        for link in [
            "https://evil.example/v1.0/me",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com:8443/v1.0/me",
            "https://graph.microsoft.com.evil.example/v1.0/me",
            "https://user:pw@graph.microsoft.com/v1.0/me",
            "//evil.example/v1.0/me",
            "/v1.0/me",
            "not a url",
        ] {
            assert!(
                matches!(same_service(&g, link), Err(GraphError::ForeignLink(_))),
                "{link} must be refused"
            );
        }
        let g = graph("http://127.0.0.1:9/graph");
        assert!(same_service(&g, "http://127.0.0.1:9/other/v1.0/me").is_err());
        assert!(same_service(&g, "http://127.0.0.1:9/graphx/v1.0/me").is_err());
    }

    #[test]
    fn pages_are_parsed_strictly() {
        let p = parse_page(br#"{"value":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"https://x/y"}"#)
            .unwrap();
        assert_eq!(p.ids, ["a", "b"]);
        assert_eq!(p.next_link.as_deref(), Some("https://x/y"));
        let last = parse_page(br#"{"value":[]}"#).unwrap();
        assert!(last.ids.is_empty() && last.next_link.is_none());
        for bad in [
            &b"<html>"[..],
            br#"{"error":{}}"#,
            br#"{"value":[{"displayName":"x"}]}"#,
            br#"{"value":[{"id":"a, b"}]}"#,
            br#"{"value":[{"id":"a\nb"}]}"#,
            br#"{"value":[{"id":""}]}"#,
            br#"{"value":[],"@odata.nextLink":5}"#,
        ] {
            assert!(parse_page(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
