//! Entra's issuer and tenant rules (SPEC 5.4, 5.10), used by the token
//! verifier in `crate::oidc` for every Entra token (ID, access, logout):
//!
//! - Multi-tenant (`common`/`organizations`) discovery names the issuer as a
//!   template with [`TENANT_PLACEHOLDER`]; a token's `iss` must be that
//!   template filled with the token's own `tid`, which must be a GUID so it
//!   cannot smuggle text into the comparison ([`matches_template_with_tid`]).
//! - A single-tenant connection's discovery issuer is
//!   `{host}/{tenant id}/v2.0`, and that tenant is pinned ([`discovery_rule`]).
//! - `allowed_tenants` decides which `tid` may sign in ([`check_tenant`]).
//! - Bearer access tokens may also come in the v1.0 format with its own
//!   issuer ([`super::access_token`]).

use url::Url;

use crate::config::{EntraSettings, TenantAllowList};
use crate::oidc::metadata::IssuerRule;

/// The tenant id's place in a multi-tenant issuer.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with hex digits.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether `iss` is `template` with `{tenantid}` replaced by some tenant id
/// (used only to pick which connection verifies a bearer token and for the
/// RFC 9207 `iss` of an authorization response, where no `tid` is at hand).
pub fn template_matches(template: &str, iss: &str) -> bool {
    let Some((prefix, suffix)) = template.split_once(TENANT_PLACEHOLDER) else {
        return false;
    };
    iss.len() >= prefix.len() + suffix.len()
        && iss.starts_with(prefix)
        && iss.ends_with(suffix)
        && is_guid(&iss[prefix.len()..iss.len() - suffix.len()])
}

/// Whether a token's `iss` is `template` filled with the token's own `tid`.
/// Every tenant's tokens are signed by the same keys, so this is what keeps
/// one tenant's token from passing as another's.
pub fn matches_template_with_tid(
    template: &str,
    iss: &str,
    tid: Option<&str>,
) -> Result<bool, String> {
    let tid = tid.ok_or("tid missing")?;
    if !is_guid(tid) {
        return Err("tid is not a tenant id".into());
    }
    Ok(iss == template.replace(TENANT_PLACEHOLDER, tid))
}

/// The tenant allow-list. A user of any Entra tenant can obtain a validly
/// signed token for a multi-tenant app; only the listed tenants may sign in.
/// A single-tenant connection accepts its own (`pinned`) tenant only.
pub fn check_tenant(
    rule: &TenantAllowList,
    pinned: Option<&str>,
    tid: Option<&str>,
) -> Result<(), String> {
    let tid = tid.ok_or("tid missing")?.to_ascii_lowercase();
    // A single-tenant connection (its discovery pinned a tenant) takes that
    // tenant only, whatever `allowed_tenants` lists: its ID tokens and v2.0
    // access tokens carry that tenant's exact issuer, but the v1.0 issuer is
    // a template filled with the token's own `tid`, so the list alone would
    // let another listed tenant's v1.0 tokens in (review 12).
    if pinned.is_some_and(|p| !p.eq_ignore_ascii_case(&tid)) {
        return Err("tenant not allowed".into());
    }
    match rule {
        TenantAllowList::Any => Ok(()),
        TenantAllowList::List(ids) => {
            if ids.contains(&tid) {
                Ok(())
            } else {
                Err("tenant not allowed".into())
            }
        }
        TenantAllowList::Pinned => match pinned {
            Some(p) if p.eq_ignore_ascii_case(&tid) => Ok(()),
            Some(_) => Err("tenant not allowed".into()),
            // A multi-tenant connection always has a list (config validation);
            // without a pinned tenant there is nothing to accept.
            None => Err("tenant not allowed".into()),
        },
    }
}

/// The issuer rule of an Entra discovery document's `issuer`, and the
/// pinned tenant of a single-tenant connection. `Err` says what is wrong.
pub fn discovery_rule(
    e: &EntraSettings,
    issuer: &str,
) -> Result<(IssuerRule, Option<String>), String> {
    if e.is_multi_tenant() {
        if !issuer.contains(TENANT_PLACEHOLDER) {
            return Err(format!(
                "issuer mismatch: tenant {:?} is multi-tenant but the discovery issuer {issuer:?} has no {TENANT_PLACEHOLDER} placeholder",
                e.tenant
            ));
        }
        return Ok((IssuerRule::TenantTemplate(issuer.to_string()), None));
    }
    // Single tenant: the issuer is `{host}/{tenant id}/v2.0`.
    let tid = Url::parse(issuer).ok().and_then(|u| {
        let segs: Vec<String> = u.path_segments()?.map(str::to_string).collect();
        match segs.as_slice() {
            [tid, v] if v == "v2.0" && is_guid(tid) => Some(tid.to_ascii_lowercase()),
            _ => None,
        }
    });
    let Some(tid) = tid else {
        return Err(format!(
            "issuer mismatch: the discovery issuer {issuer:?} is not an Entra v2.0 issuer (https://<host>/<tenant id>/v2.0)"
        ));
    };
    if is_guid(&e.tenant) && !e.tenant.eq_ignore_ascii_case(&tid) {
        return Err(format!(
            "wrong tenant: the connection is configured for tenant {:?} but the discovery issuer belongs to tenant {tid}",
            e.tenant
        ));
    }
    Ok((IssuerRule::Exact(issuer.to_string()), Some(tid)))
}
