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
//! Some Graph-compatible services (mocks, older proxies) serve only
//! `…/transitiveMemberOf` and answer 404 to the `microsoft.graph.group` type
//! cast. A 404 to the cast's first page is therefore retried once as
//! `…/transitiveMemberOf?$select=id`, which lists every kind of directory
//! object: only the entries whose `@odata.type` is `#microsoft.graph.group`,
//! or that have none, are kept (directory roles and administrative units are
//! not groups). Paging and its bound are the same; any other error, and a
//! 404 to a later page or to the plain list, stays an error.
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
    let members = format!("{base}/v1.0/{path}/transitiveMemberOf");
    let mut listing = Listing::Groups;
    let mut next = Some(format!("{members}/microsoft.graph.group?$select=id"));
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        if pages == MAX_PAGES {
            return Err(GraphError::TooManyPages);
        }
        pages += 1;
        let started = Instant::now();
        let result = fetch_page(http, &url, access_token, listing).await;
        metrics.record_idp_call(connection, "graph", started.elapsed(), result.is_ok());
        let page = match result {
            // No type cast on this service: the plain list, from its first
            // page (nothing was read yet), with its own page count.
            Err(GraphError::Status(404)) if pages == 1 && listing == Listing::Groups => {
                tracing::debug!(
                    connection,
                    "Graph answered 404 to the microsoft.graph.group type cast; reading transitiveMemberOf and keeping its groups"
                );
                listing = Listing::DirectoryObjects;
                pages = 0;
                next = Some(format!("{members}?$select=id"));
                continue;
            }
            other => other?,
        };
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

/// What the entries of a page are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// `…/transitiveMemberOf/microsoft.graph.group`: groups only.
    Groups,
    /// `…/transitiveMemberOf`: every kind of directory object; the groups
    /// are kept.
    DirectoryObjects,
}

/// The `@odata.type` of a group.
const GROUP_TYPE: &str = "#microsoft.graph.group";

struct Page {
    ids: Vec<String>,
    next_link: Option<String>,
}

async fn fetch_page(
    http: &HttpClient,
    url: &str,
    access_token: &str,
    listing: Listing,
) -> Result<Page, GraphError> {
    let response = http
        .get_with_bearer(url, access_token)
        .await
        .map_err(|e| GraphError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(GraphError::Status(response.status().as_u16()));
    }
    parse_page(response.body(), listing)
}

/// `{"value": [{"id": "…"}, …], "@odata.nextLink": "…"}`. Of a list of
/// [`Listing::DirectoryObjects`], the entries whose `@odata.type` is another
/// type than a group are left out before anything else is read of them; an
/// entry without `@odata.type` counts as a group.
fn parse_page(body: &[u8], listing: Listing) -> Result<Page, GraphError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| GraphError::Malformed("not JSON"))?;
    let values = doc
        .get("value")
        .and_then(Value::as_array)
        .ok_or(GraphError::Malformed("no value array"))?;
    let mut ids = Vec::with_capacity(values.len());
    for v in values {
        if listing == Listing::DirectoryObjects {
            match v.get("@odata.type") {
                None => {}
                Some(Value::String(t)) if t == GROUP_TYPE => {}
                Some(Value::String(_)) => continue,
                Some(_) => return Err(GraphError::Malformed("an @odata.type is not a string")),
            }
        }
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
        for listing in [Listing::Groups, Listing::DirectoryObjects] {
            let p = parse_page(
                br#"{"value":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"https://x/y"}"#,
                listing,
            )
            .unwrap();
            assert_eq!(p.ids, ["a", "b"]);
            assert_eq!(p.next_link.as_deref(), Some("https://x/y"));
            let last = parse_page(br#"{"value":[]}"#, listing).unwrap();
            assert!(last.ids.is_empty() && last.next_link.is_none());
            for bad in [
                &b"<html>"[..],
                br#"{"error":{}}"#,
                br#"{"value":[{"displayName":"x"}]}"#,
                br#"{"value":[{"id":"a, b"}]}"#,
                br#"{"value":[{"id":"a\nb"}]}"#,
                br#"{"value":[{"id":""}]}"#,
                br#"{"value":[],"@odata.nextLink":5}"#,
                br#"{"value":[5]}"#,
                br##"{"value":[{"@odata.type":"#microsoft.graph.group","id":"a b"}]}"##,
            ] {
                assert!(
                    parse_page(bad, listing).is_err(),
                    "{listing:?}: {}",
                    String::from_utf8_lossy(bad)
                );
            }
        }
    }

    /// The plain `transitiveMemberOf` list: groups kept (typed or not),
    /// directory roles and administrative units left out, even with ids that
    /// would not do as group ids.
    #[test]
    fn directory_objects_are_filtered_to_groups() {
        let page = br##"{"value":[
            {"@odata.type":"#microsoft.graph.directoryRole","id":"role, with a comma"},
            {"@odata.type":"#microsoft.graph.group","id":"g1"},
            {"@odata.type":"#microsoft.graph.administrativeUnit","id":"au1"},
            {"id":"g2"},
            {"@odata.type":"#microsoft.graph.group","id":"g3","displayName":"x"}
        ],"@odata.nextLink":"https://x/next"}"##;
        let p = parse_page(page, Listing::DirectoryObjects).unwrap();
        assert_eq!(p.ids, ["g1", "g2", "g3"]);
        assert_eq!(p.next_link.as_deref(), Some("https://x/next"));
        // The type cast's list is groups only: nothing is left out there, so
        // the role's id is refused as it always was.
        assert!(parse_page(page, Listing::Groups).is_err());
        // Type names are case-sensitive; an @odata.type that is no string is
        // not a type.
        let p = parse_page(
            br##"{"value":[{"@odata.type":"#Microsoft.Graph.Group","id":"g"}]}"##,
            Listing::DirectoryObjects,
        )
        .unwrap();
        assert!(p.ids.is_empty());
        assert!(parse_page(
            br#"{"value":[{"@odata.type":7,"id":"g"}]}"#,
            Listing::DirectoryObjects
        )
        .is_err());
    }
}
