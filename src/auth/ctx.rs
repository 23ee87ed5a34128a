//! The per-request context every `/.auth/*` endpoint gets: the state, the
//! route, the origin the browser used and whether it came over HTTPS.

use std::sync::Arc;

use http::request::Parts;

use crate::auth::state::AuthState;
use crate::config::{ConnectionSettings, RouteSettings};

/// Per-request context of an `/.auth/` endpoint.
pub(crate) struct Ctx<'a> {
    pub(crate) state: &'a AuthState,
    pub(crate) route: &'a Arc<RouteSettings>,
    /// `https://hr.contoso.com` as the browser sees this gateway.
    pub(crate) origin: String,
    pub(crate) https: bool,
    /// The client's address: the peer (or the PROXY header's client), or
    /// behind trusted proxies the right-most untrusted `X-Forwarded-For`
    /// entry (`peer::client_address`; per-address failure limits).
    pub(crate) client: std::net::IpAddr,
    /// `X-Auth-Request-Redirect` (ingress-nginx, oauth2-proxy's nginx
    /// recipe) when a trusted proxy sent exactly one, read before the
    /// identity headers (`X-Auth-Request-*`) are stripped; `None` from
    /// anyone else (SPEC 6.1). Only ever a login target, validated as one.
    pub(crate) forwarded_redirect: Option<String>,
}

impl Ctx<'_> {
    /// The connection kinds' shared state (`crate::connection`).
    pub(crate) fn kinds(&self) -> crate::connection::Kinds<'_> {
        crate::connection::Kinds {
            providers: &self.state.shared.providers,
            metrics: &self.state.shared.metrics,
            saml: &self.state.shared.saml,
            sessions: &self.state.shared.sessions,
            ldap: crate::ldap::signin::Shared {
                directories: &self.state.directories,
                failures: &self.state.shared.ldap_failures,
                store: &self.state.shared.sessions,
            },
        }
    }

    /// The connections this route lets sign in, in config order.
    pub(crate) fn allowed_connections(&self) -> Vec<&Arc<ConnectionSettings>> {
        self.state
            .settings
            .connections
            .iter()
            .filter(|c| self.route.connections.contains(&c.name))
            .collect()
    }

    /// The redirect URI of a sign-in at `connection` begun on this route:
    /// `/.auth/login/{name}/callback`, or oauth2-proxy's `/oauth2/callback`
    /// for OpenID Connect connections on a route with
    /// `oauth2_proxy_endpoints` (so the URI registered for oauth2-proxy
    /// keeps working; the pending login keeps the one sent).
    pub(crate) fn redirect_uri(&self, connection: &ConnectionSettings) -> String {
        if self.route.oauth2_proxy_endpoints && connection.is_oidc() {
            return format!("{}{}", self.origin, crate::config::OAUTH2_PROXY_CALLBACK);
        }
        format!("{}{}", self.origin, connection.callback_path())
    }

    /// A validated login/logout target (SPEC 4); anything unsafe becomes `/`.
    pub(crate) fn safe_target(&self, parts: &Parts, raw: Option<&str>) -> String {
        match raw {
            Some(raw) => {
                let scheme = if self.https {
                    crate::redirect::Scheme::Https
                } else {
                    crate::redirect::Scheme::Http
                };
                crate::redirect::safe_target(
                    raw,
                    &crate::peer::host_of(parts),
                    scheme,
                    &self.state.route_hosts,
                )
            }
            None => "/".to_string(),
        }
    }
}
