//! A development identity provider that behaves like Entra ID v2 for the demo and
//! the tests: per-tenant discovery at `/{tenant}/v2.0/.well-known/openid-configuration`
//! (tenant by domain or id; `common`/`organizations` with the `{tenantid}` issuer template),
//! JWKS with key rotation, `/authorize` (a user picker page, no password), `/token`
//! (PKCE S256 checked, each code once), `/logout`, and hostile modes for tests.
//!
//! OWNER: oidc helper. Contract signatures below must stay.

use std::net::SocketAddr;

/// Group id of "HR Admins" in the demo tenant contoso.example.
pub const DEMO_HR_GROUP: &str = "6f1d3b8e-0000-4000-8000-00000000a001";

/// A user the IdP can sign in.
#[derive(Debug, Clone)]
pub struct IdpUser {
    pub email: String,
    // oidc helper: oid, tenant, name, groups, ...
}

impl IdpUser {
    /// One line for the demo banner (name, tenant, groups).
    pub fn description(&self) -> String {
        todo!("oidc")
    }
}

/// Tenants and users the IdP knows.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    // oidc helper
}

impl IdpConfig {
    /// Two tenants (contoso.example, fabrikam.example) with a few users and groups.
    pub fn demo_default() -> IdpConfig {
        todo!("oidc")
    }
    pub fn users(&self) -> Vec<IdpUser> {
        todo!("oidc")
    }
}

/// A running IdP; stops when dropped.
pub struct Idp {
    // oidc helper
}

impl Idp {
    /// `http://127.0.0.1:PORT` — use as a connection's `authority_host`.
    pub fn base_url(&self) -> String {
        todo!("oidc")
    }
}

pub async fn start(config: IdpConfig, addr: SocketAddr) -> anyhow::Result<Idp> {
    let _ = (config, addr);
    todo!("oidc")
}
