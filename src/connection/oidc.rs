//! The OpenID Connect kind (authorization code flow with PKCE), generic or
//! in a provider's [`Dialect`] (Entra, [`super::entra`]). The protocol
//! itself (discovery, JWKS, authorization request, code exchange, ID token
//! verification) is `crate::oidc`'s [`Provider`]; this module turns its
//! verified ID token into a [`VerifiedIdentity`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::entra::graph::GraphError;
use super::{
    email_trust, Begin, BeginRequest, CompleteRequest, IdpTokens, Pending, Refusal, SignIn,
    SignInError, VerifiedIdentity,
};
use crate::auth::form::form_get;
use crate::config::{ConnectionKind, ConnectionSettings, RouteSettings};
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use crate::oidc::{OidcError, Provider, TokenSet, VerifiedAccessToken, VerifiedIdToken};

/// Shared clients a kind calls through.
pub struct Env<'a> {
    pub http: &'a HttpClient,
    pub metrics: &'a Arc<Metrics>,
    /// The connection's client, for app-only tokens (Entra's Graph fallback).
    pub provider: Option<&'a Provider>,
}

/// What differs between OpenID Connect providers after the token is verified.
pub(crate) trait Dialect: Send + Sync {
    /// The provider vouches for the email beyond `email_verified`.
    fn vouches_for_email(&self, conn: &ConnectionSettings, token: &VerifiedIdToken) -> bool;

    /// The groups of the token's user when the token signals overage (SPEC 5.4).
    fn overage_groups<'a>(
        &'a self,
        env: &'a Env<'a>,
        conn: &'a ConnectionSettings,
        token: &'a VerifiedIdToken,
        access_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, GraphError>>;
}

/// Any OpenID Connect provider.
pub(crate) struct Generic;

impl Dialect for Generic {
    fn vouches_for_email(&self, _: &ConnectionSettings, _: &VerifiedIdToken) -> bool {
        false
    }

    fn overage_groups<'a>(
        &'a self,
        _: &'a Env<'a>,
        _: &'a ConnectionSettings,
        _: &'a VerifiedIdToken,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, GraphError>> {
        Box::pin(async { Err(GraphError::NotEntra) })
    }
}

/// The dialect of `conn`.
pub(crate) fn dialect(conn: &ConnectionSettings) -> &'static dyn Dialect {
    match conn.kind {
        ConnectionKind::Entra(_) => &super::entra::Entra,
        // Not OpenID Connect: nothing asks an LDAP connection for a dialect.
        ConnectionKind::Oidc(_)
        | ConnectionKind::Ldap(_)
        | ConnectionKind::Saml(_)
        | ConnectionKind::WsFed(_) => &Generic,
    }
}

/// One OpenID Connect connection's sign-in.
pub(crate) struct OidcSignIn<'a> {
    conn: &'a ConnectionSettings,
    provider: Arc<Provider>,
    env: Env<'a>,
}

impl<'a> OidcSignIn<'a> {
    pub(crate) fn new(
        conn: &'a ConnectionSettings,
        provider: Arc<Provider>,
        env: Env<'a>,
    ) -> OidcSignIn<'a> {
        OidcSignIn {
            conn,
            provider,
            env,
        }
    }
}

impl SignIn for OidcSignIn<'_> {
    fn begin<'a>(&'a self, req: BeginRequest<'a>) -> BoxFuture<'a, Result<Begin, SignInError>> {
        Box::pin(async move {
            let request = self
                .provider
                .authorization_request(req.redirect_uri, req.extra)
                .await
                .map_err(|e| SignInError::new(Refusal::ProviderUnavailable, e.to_string()))?;
            Ok(Begin::Redirect {
                url: request.url,
                pending: Pending {
                    state: request.state,
                    nonce: request.nonce,
                    pkce_verifier: request.pkce_verifier,
                },
            })
        })
    }

    fn provider_error(&self, params: &[(String, String)]) -> Option<SignInError> {
        let err = form_get(params, "error")?;
        // Only a safe token of the error code is logged.
        let code: String = err
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        Some(SignInError::new(Refusal::ProviderError, code))
    }

    fn complete<'a>(
        &'a self,
        req: CompleteRequest<'a>,
    ) -> BoxFuture<'a, Result<VerifiedIdentity, SignInError>> {
        Box::pin(self.complete_code_flow(req))
    }
}

impl OidcSignIn<'_> {
    async fn complete_code_flow(
        &self,
        req: CompleteRequest<'_>,
    ) -> Result<VerifiedIdentity, SignInError> {
        let provider = &self.provider;
        let env = Env {
            http: self.env.http,
            metrics: self.env.metrics,
            provider: Some(provider),
        };
        // RFC 9207: the authorization response's issuer, when sent (or
        // required). Sent twice it is no answer (`form_get` would read it as
        // absent, which skips the check for providers that do not announce it).
        if req.params.iter().filter(|(k, _)| k == "iss").count() > 1 {
            return Err(SignInError::new(
                Refusal::IssuerMismatch,
                "the authorization response has several iss parameters",
            ));
        }
        provider
            .check_authorization_response_iss(form_get(req.params, "iss"))
            .map_err(|e| SignInError::new(Refusal::IssuerMismatch, e.to_string()))?;
        let Some(code) = form_get(req.params, "code") else {
            return Err(SignInError::new(Refusal::NoCode, "no code parameter"));
        };
        let pending = req.pending;
        let tokens = provider
            .exchange_code(code, &pending.pkce_verifier, &pending.redirect_uri)
            .await
            .map_err(|e| refusal(&e, Refusal::CodeExchange))?;
        let verified = provider
            .verify_id_token(&tokens.id_token, &pending.nonce)
            .await
            .map_err(|e| refusal(&e, Refusal::IdToken))?;
        let builder =
            VerifiedIdentity::builder(self.conn, verified.sub(), verified.oid(), verified.iss())
                .ok_or_else(|| {
                    SignInError::new(
                        Refusal::MissingUserId,
                        "no usable oid/sub claim (missing, empty, or with control characters)",
                    )
                })?;
        let groups = groups_or_fail(
            &env,
            self.conn,
            &verified,
            tokens.access_token.as_deref(),
            req.groups_required,
        )
        .await?;
        // Display names of groups `group_names` does not map (SPEC 5.10);
        // never fails the sign-in.
        super::entra::group_names::warm(&env, self.conn, &groups).await;
        // The ID token's extra claims and userinfo's (SPEC 5.5); a userinfo
        // failure is logged and counted, never a failed login.
        let claims = if self.conn.extended_profile {
            Some(
                provider
                    .profile_claims(&verified, tokens.access_token.as_deref())
                    .await,
            )
        } else {
            None
        };
        let expire_at = tokens
            .expires_in
            .map(|d| req.now.saturating_add(d.as_secs()))
            .into_iter()
            .chain(verified.exp())
            .min();
        let TokenSet {
            id_token,
            access_token,
            refresh_token,
            ..
        } = tokens;
        Ok(builder
            .tenant_id(verified.tid())
            .sid(verified.sid())
            .email(verified.email(), email_trust_of(self.conn, &verified))
            .name(verified.name())
            .preferred_username(verified.preferred_username().map(str::to_string))
            .groups(groups)
            .roles(crate::connection::roles_claim(verified.claims()))
            .claims(claims)
            .tokens(IdpTokens {
                id_token: Some(id_token),
                access_token,
                refresh_token,
                expire_at,
            })
            .build())
    }
}

/// An unreachable provider is not the user's fault: it gets its own page.
fn refusal(e: &OidcError, otherwise: Refusal) -> SignInError {
    let reason = match e {
        OidcError::Unavailable(_) => Refusal::ProviderUnavailable,
        _ => otherwise,
    };
    SignInError::new(reason, e.to_string())
}

/// Why the email of a verified token is believed (SPEC 5.6).
pub(crate) fn email_trust_of(
    conn: &ConnectionSettings,
    token: &VerifiedIdToken,
) -> crate::session::model::EmailTrust {
    email_trust(
        conn,
        token.email().is_some(),
        token.email_verified(),
        dialect(conn).vouches_for_email(conn, token),
    )
}

/// The groups of a verified token (SPEC 5.4): none without `groups = true`,
/// the claim, or on overage what the dialect can find (Entra: Graph).
pub(crate) async fn groups_of(
    env: &Env<'_>,
    conn: &ConnectionSettings,
    token: &VerifiedIdToken,
    access_token: Option<&str>,
) -> Result<Vec<String>, GraphError> {
    if !conn.groups {
        return Ok(Vec::new());
    }
    if !token.has_group_overage() {
        return Ok(token.groups());
    }
    dialect(conn)
        .overage_groups(env, conn, token, access_token)
        .await
}

/// The groups at sign-in. When they cannot be read, the sign-in fails if
/// some route's policy needs groups (a user without them would only be
/// refused later, confusingly); otherwise the session has no groups, and
/// the failure is logged and counted (`record_idp_call(.., "graph", .., false)`).
async fn groups_or_fail(
    env: &Env<'_>,
    conn: &ConnectionSettings,
    token: &VerifiedIdToken,
    access_token: Option<&str>,
    groups_required: bool,
) -> Result<Vec<String>, SignInError> {
    match groups_of(env, conn, token, access_token).await {
        Ok(groups) => Ok(groups),
        Err(e) if groups_required => Err(SignInError::new(
            Refusal::GroupsUnavailable,
            format!("group overage: {e}"),
        )),
        Err(e) => {
            tracing::warn!(
                connection = %conn.name,
                error = %e,
                "group overage: the groups could not be read from Graph; the session has no groups"
            );
            Ok(Vec::new())
        }
    }
}

/// The request-scoped identity of a verified bearer access token (SPEC
/// 5.9), with the same user id and email rules as a sign-in. `None` when the
/// id's claim is missing (`verify_access_token` demands it on Entra).
pub(crate) fn bearer_identity(
    conn: &ConnectionSettings,
    token: &VerifiedAccessToken,
    raw: &str,
    route: &RouteSettings,
    now: u64,
) -> Option<VerifiedIdentity> {
    let t = token.identity();
    let claim = |k: &str| {
        t.claims()
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // Group overage cannot be resolved here: Graph would need a token for
    // Graph, and this one is for the API. The caller then has no groups, and
    // a group policy refuses it (fail closed).
    let groups = if !conn.groups {
        Vec::new()
    } else if t.has_group_overage() {
        tracing::warn!(
            connection = %conn.name,
            route.name = %route.name,
            "bearer token signals group overage; its groups are unknown (Graph is not called for API tokens)"
        );
        Vec::new()
    } else {
        t.groups()
    };
    let exp = t.exp().unwrap_or(now);
    Some(
        VerifiedIdentity::builder(conn, t.sub(), t.oid(), t.iss())?
            .tenant_id(t.tid())
            .email(t.email(), email_trust_of(conn, t))
            .name(t.name())
            // v1.0 tokens name the account in `upn` (or `unique_name`).
            .preferred_username(
                t.preferred_username()
                    .map(str::to_string)
                    .or_else(|| claim("upn"))
                    .or_else(|| claim("unique_name")),
            )
            .groups(groups)
            .roles(crate::connection::roles_claim(t.claims()))
            .claims(conn.extended_profile.then(|| t.extra_claims()))
            .tokens(IdpTokens {
                id_token: None,
                // The app already has this token (the client sends it along in
                // Authorization); `pass_access_token` gets it in the usual header too.
                access_token: Some(raw.to_string()),
                refresh_token: None,
                expire_at: Some(exp),
            })
            .build(),
    )
}
