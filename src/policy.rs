//! Authorization: `[route.allow]` turns an authenticated user into a
//! [`Permit`] or a [`Denied`]. A `Permit` can only be made here, and header
//! injection and forwarding demand one, so no code path can forward a
//! protected request without passing this check.
//!
//! The decision is a list of [`Clause`]s evaluated in order; `authorize` and
//! `realmgate explain` share them, so what `explain` prints is what the
//! gateway does.

pub mod explain;

use std::fmt;
use std::sync::Arc;

use crate::config::{ConnectionSettings, RouteSettings};
use crate::session::model::Session;

/// Proof that `user` may reach `route`. Private fields: only this module builds it.
#[derive(Debug, Clone)]
pub struct Permit {
    user: Arc<Session>,
    route: String,
}

impl Permit {
    /// The signed-in user this permit was issued for.
    pub fn user(&self) -> &Session {
        &self.user
    }

    /// The shared handle of the user, for work that outlives the request.
    pub fn user_arc(&self) -> &Arc<Session> {
        &self.user
    }

    /// The name of the route the permit is valid for.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// For unit tests of code that consumes permits (header injection).
    #[doc(hidden)]
    pub fn for_tests(user: Session, route: &str) -> Self {
        Permit {
            user: Arc::new(user),
            route: route.to_string(),
        }
    }
}

/// Why a signed-in user may not reach a route. Texts are shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The session was made through a connection this route does not allow.
    Connection,
    /// None of the user's groups is in `allow.groups`.
    Groups,
    /// The user has no verified email, and the route checks emails.
    EmailUnverified,
    /// The verified email's domain is not in `allow.email_domains`.
    EmailDomain,
    /// The verified email is not in `allow.users`.
    User,
    /// The user's tenant is not in `allow.tenants`.
    Tenant,
}

impl DenyReason {
    /// A fixed, user-facing sentence.
    pub fn text(self) -> &'static str {
        match self {
            DenyReason::Connection => "This application does not accept sign-ins from your organization's account. Sign out and sign in with another account.",
            DenyReason::Groups => "Your account is not in a group that may use this application.",
            DenyReason::EmailUnverified => "This application needs a verified email address, and your identity provider did not confirm yours.",
            DenyReason::EmailDomain => "Your email domain may not use this application.",
            DenyReason::User => "Your account is not on the list of users of this application.",
            DenyReason::Tenant => "Your organization (tenant) may not use this application.",
        }
    }

    /// A stable label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            DenyReason::Connection => "connection",
            DenyReason::Groups => "groups",
            DenyReason::EmailUnverified => "email_unverified",
            DenyReason::EmailDomain => "email_domain",
            DenyReason::User => "user",
            DenyReason::Tenant => "tenant",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A signed-in user who may not reach the route.
#[derive(Debug, Clone)]
pub struct Denied {
    pub reason: DenyReason,
    pub user: Arc<Session>,
}

/// One evaluated rule of the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// e.g. `connections`, `allow.groups`.
    pub rule: &'static str,
    /// What the rule asked for and what the user has.
    pub detail: String,
    /// `None` when the rule passed.
    pub failed: Option<DenyReason>,
}

/// Evaluates every rule of `route` for `user`, in order, without stopping at
/// the first failure (for `explain`). `connection` is the user's connection
/// (for group names), when it still exists.
pub fn evaluate(
    route: &RouteSettings,
    connection: Option<&ConnectionSettings>,
    user: &Session,
) -> Vec<Clause> {
    let mut out = Vec::new();
    let conn_ok = route.connections.contains(&user.connection);
    out.push(Clause {
        rule: "connections",
        detail: format!(
            "signed in through {:?}; route accepts [{}]",
            user.connection,
            route.connections.join(", ")
        ),
        failed: (!conn_ok).then_some(DenyReason::Connection),
    });
    let allow = &route.allow;
    if !allow.groups.is_empty() {
        // A group matches by id, or by the name group_names gives that id.
        let matched = user.groups.iter().find(|id| {
            allow.groups.iter().any(|g| {
                g == *id
                    || connection
                        .and_then(|c| c.group_names.get(*id))
                        .is_some_and(|name| name == g)
            })
        });
        out.push(Clause {
            rule: "allow.groups",
            detail: match matched {
                Some(g) => format!("member of {g:?}, one of [{}]", allow.groups.join(", ")),
                None => format!(
                    "none of the user's {} group(s) is one of [{}]",
                    user.groups.len(),
                    allow.groups.join(", ")
                ),
            },
            failed: matched.is_none().then_some(DenyReason::Groups),
        });
    }
    if !allow.email_domains.is_empty() || !allow.users.is_empty() {
        // Only a verified email counts (SPEC 5.6): an unverified one could be
        // anyone's ("nOAuth").
        let email = user.verified_email().map(str::to_lowercase);
        if !allow.email_domains.is_empty() {
            let domain = email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .and_then(|(_, d)| crate::config::normalize_domain(d));
            let ok = domain
                .as_ref()
                .is_some_and(|d| allow.email_domains.contains(d));
            out.push(Clause {
                rule: "allow.email_domains",
                detail: match &domain {
                    Some(d) => format!(
                        "verified email domain {d:?}; allowed [{}]",
                        allow.email_domains.join(", ")
                    ),
                    None => "no verified email".to_string(),
                },
                failed: match (&domain, ok) {
                    (None, _) => Some(DenyReason::EmailUnverified),
                    (Some(_), false) => Some(DenyReason::EmailDomain),
                    _ => None,
                },
            });
        }
        if !allow.users.is_empty() {
            let normalized = email.as_deref().and_then(|e| {
                let (local, d) = e.rsplit_once('@')?;
                Some(format!("{local}@{}", crate::config::normalize_domain(d)?))
            });
            let ok = normalized.as_ref().is_some_and(|e| allow.users.contains(e));
            out.push(Clause {
                rule: "allow.users",
                detail: match (&normalized, ok) {
                    (None, _) => "no verified email".to_string(),
                    (Some(_), true) => "the verified email is listed".to_string(),
                    (Some(_), false) => format!(
                        "the verified email is not among {} listed user(s)",
                        allow.users.len()
                    ),
                },
                failed: match (&normalized, ok) {
                    (None, _) => Some(DenyReason::EmailUnverified),
                    (Some(_), false) => Some(DenyReason::User),
                    _ => None,
                },
            });
        }
    }
    if !allow.tenants.is_empty() {
        let tid = user.tenant_id.as_deref().map(str::to_ascii_lowercase);
        let ok = tid.as_ref().is_some_and(|t| allow.tenants.contains(t));
        out.push(Clause {
            rule: "allow.tenants",
            detail: format!(
                "tenant {}; allowed [{}]",
                tid.as_deref().unwrap_or("(none)"),
                allow.tenants.join(", ")
            ),
            failed: (!ok).then_some(DenyReason::Tenant),
        });
    }
    out
}

/// Decides whether `user` may reach `route`.
pub fn authorize(
    route: &RouteSettings,
    connection: Option<&ConnectionSettings>,
    user: Arc<Session>,
) -> Result<Permit, Denied> {
    match evaluate(route, connection, &user)
        .into_iter()
        .find_map(|c| c.failed)
    {
        None => Ok(Permit {
            user,
            route: route.name.clone(),
        }),
        Some(reason) => Err(Denied { reason, user }),
    }
}

#[cfg(test)]
mod tests;
