//! The Entra ID kind: OpenID Connect ([`super::oidc`]) with Microsoft's
//! quirks, all of them here (SPEC 5.4, 5.6, 5.9, 5.10):
//!
//! - **User id**: `oid` (with `tid`), never `email` or `preferred_username`
//!   (`session::model::user_id_for`; every Entra token must carry `oid`).
//! - **Email trust**: `xms_edov = true` (the tenant verified the email's
//!   domain) counts as verified ([`vouches_for_email`]).
//! - **Group overage**: too many groups for the token (`_claim_names.groups`
//!   or `hasgroups`, [`signals_group_overage`]): the groups are read from
//!   Microsoft Graph with the user's access token, or the connection's
//!   app-only token when Graph refuses the user's ([`graph`]); group
//!   display names from Graph with `group_names_from_graph` ([`group_names`]).
//! - **Issuer and tenants**: the `{tenantid}` template of multi-tenant
//!   discovery, the pinned tenant of a single-tenant one, `allowed_tenants`
//!   ([`issuer`]); bearer tokens' v1.0 format ([`access_token`]). The token
//!   verifier in `crate::oidc` calls these for Entra connections.
//!

pub mod access_token;
pub(crate) mod graph;
pub mod group_names;
pub mod issuer;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use super::oidc::{Dialect, Env};
use crate::config::{ConnectionKind, ConnectionSettings};
use crate::oidc::VerifiedIdToken;
use graph::GraphError;

/// Entra's dialect of OpenID Connect.
pub(crate) struct Entra;

impl Dialect for Entra {
    fn vouches_for_email(&self, conn: &ConnectionSettings, token: &VerifiedIdToken) -> bool {
        vouches_for_email(conn, token.xms_edov())
    }

    fn overage_groups<'a>(
        &'a self,
        env: &'a Env<'a>,
        conn: &'a ConnectionSettings,
        token: &'a VerifiedIdToken,
        access_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, GraphError>> {
        Box::pin(async move {
            let ConnectionKind::Entra(entra) = &conn.kind else {
                return Err(GraphError::NotEntra);
            };
            let graph = &entra.graph_endpoint;
            let read = |token: &'a str, who| {
                graph::transitive_groups(env.http, env.metrics, &conn.name, graph, token, who)
            };
            let user_token_refused = match access_token {
                Some(t) => match read(t, graph::Member::Me).await {
                    Err(GraphError::Status(403)) => true,
                    other => return other,
                },
                None => false,
            };
            // The user's token cannot read groups (no consent to
            // GroupMember.Read.All), or there is none: the connection's own
            // app-only token reads this user's groups, if it has a credential.
            let (Some(provider), Some(oid)) = (env.provider, token.oid()) else {
                return Err(if user_token_refused {
                    GraphError::Status(403)
                } else {
                    GraphError::NoAccessToken
                });
            };
            if conn.credential.is_none() {
                return Err(if user_token_refused {
                    GraphError::Status(403)
                } else {
                    GraphError::NoAccessToken
                });
            }
            let app = provider
                .client_credentials_token(&graph_scope(graph))
                .await
                .map_err(|e| GraphError::NoAppToken(e.to_string()))?;
            tracing::debug!(connection = %conn.name, "Graph: reading groups with the app-only token");
            graph::transitive_groups(
                env.http,
                env.metrics,
                &conn.name,
                graph,
                app.expose_str(),
                graph::Member::User(oid),
            )
            .await
        })
    }
}

/// The client-credentials scope of Graph at `graph_endpoint`: its origin
/// with `/.default` (`https://graph.microsoft.com/.default` on the public
/// cloud, the national clouds' own Graph elsewhere).
pub(crate) fn graph_scope(graph_endpoint: &url::Url) -> String {
    format!("{}/.default", graph_endpoint.origin().ascii_serialization())
}

/// Entra's `xms_edov = true` vouches for the email (its domain is verified by
/// the tenant), on Entra connections only: another provider could send the
/// claim with any meaning.
pub(crate) fn vouches_for_email(conn: &ConnectionSettings, xms_edov: Option<bool>) -> bool {
    conn.is_entra() && xms_edov == Some(true)
}

/// The token's groups are incomplete: `_claim_names.groups` or `hasgroups`
/// is present (SPEC 5.4).
pub(crate) fn signals_group_overage(claims: &Map<String, Value>) -> bool {
    let claim_names = claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("groups"));
    let hasgroups = match claims.get("hasgroups") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    claim_names || hasgroups
}
