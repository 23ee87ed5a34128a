//! Authorization: `[route.allow]` turns an authenticated user into a
//! [`Permit`] or a [`Denied`]. A `Permit` can only be made here, and header
//! injection and forwarding demand one, so no code path can forward a
//! protected request without passing this check.
//!
//! The decision is a list of rules evaluated in order (`check`); `authorize`
//! and `realmgate explain` walk the same rules, so what `explain` prints is
//! what the gateway does. `authorize` stops at the first failure and formats
//! nothing; `evaluate` turns every rule into a printable [`Clause`].

pub mod explain;

use std::convert::Infallible;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::config::{ConnectionSettings, RouteSettings};
use crate::session::model::Session;

/// Proof that `user` may reach the route it was issued for (by
/// [`authorize`], for one request). Private field: only this module builds it.
/// It holds no handle on the route: the route's shared count would change
/// on every request, from every proxy thread.
#[derive(Debug, Clone)]
pub struct Permit {
    user: Arc<Session>,
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

    /// For unit tests of code that consumes permits (header injection).
    #[doc(hidden)]
    pub fn for_tests(user: Session) -> Self {
        Permit {
            user: Arc::new(user),
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

/// What one rule found, kept as borrowed facts: the gateway only needs
/// `failed`; `explain` formats the rest (`Display`).
struct Check<'a> {
    rule: &'static str,
    failed: Option<DenyReason>,
    detail: Detail<'a>,
}

enum Detail<'a> {
    Connections {
        user: &'a str,
        accepted: &'a [String],
    },
    Groups {
        matched: Option<&'a str>,
        count: usize,
        allowed: &'a [String],
    },
    EmailDomains {
        domain: Option<String>,
        allowed: &'a [String],
    },
    Users {
        email: bool,
        listed: bool,
        count: usize,
    },
    Tenants {
        tenant: Option<String>,
        allowed: &'a [String],
    },
}

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Connections { user, accepted } => write!(
                f,
                "signed in through {user:?}; route accepts [{}]",
                accepted.join(", ")
            ),
            Detail::Groups {
                matched: Some(g),
                allowed,
                ..
            } => write!(f, "member of {g:?}, one of [{}]", allowed.join(", ")),
            Detail::Groups {
                matched: None,
                count,
                allowed,
            } => write!(
                f,
                "none of the user's {count} group(s) is one of [{}]",
                allowed.join(", ")
            ),
            Detail::EmailDomains {
                domain: Some(d),
                allowed,
            } => write!(
                f,
                "verified email domain {d:?}; allowed [{}]",
                allowed.join(", ")
            ),
            Detail::EmailDomains { domain: None, .. } | Detail::Users { email: false, .. } => {
                f.write_str("no verified email")
            }
            Detail::Users { listed: true, .. } => f.write_str("the verified email is listed"),
            Detail::Users { count, .. } => {
                write!(f, "the verified email is not among {count} listed user(s)")
            }
            Detail::Tenants { tenant, allowed } => write!(
                f,
                "tenant {}; allowed [{}]",
                tenant.as_deref().unwrap_or("(none)"),
                allowed.join(", ")
            ),
        }
    }
}

/// Runs every rule of `route` for `user`, in order, handing each result to
/// `visit` until it breaks (with what it breaks with). `authorize` and
/// `evaluate` both walk this, so what `explain` prints is what the gateway
/// decides.
fn check<'a, B>(
    route: &'a RouteSettings,
    connection: Option<&'a ConnectionSettings>,
    user: &'a Session,
    mut visit: impl FnMut(Check<'a>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let conn_ok = route.connections.contains(&user.connection);
    visit(Check {
        rule: "connections",
        failed: (!conn_ok).then_some(DenyReason::Connection),
        detail: Detail::Connections {
            user: &user.connection,
            accepted: &route.connections,
        },
    })?;
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
        visit(Check {
            rule: "allow.groups",
            failed: matched.is_none().then_some(DenyReason::Groups),
            detail: Detail::Groups {
                matched: matched.map(String::as_str),
                count: user.groups.len(),
                allowed: &allow.groups,
            },
        })?;
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
            let failed = match &domain {
                None => Some(DenyReason::EmailUnverified),
                Some(d) if !allow.email_domains.contains(d) => Some(DenyReason::EmailDomain),
                Some(_) => None,
            };
            visit(Check {
                rule: "allow.email_domains",
                failed,
                detail: Detail::EmailDomains {
                    domain,
                    allowed: &allow.email_domains,
                },
            })?;
        }
        if !allow.users.is_empty() {
            let normalized = email.as_deref().and_then(|e| {
                let (local, d) = e.rsplit_once('@')?;
                Some(format!("{local}@{}", crate::config::normalize_domain(d)?))
            });
            let listed = normalized.as_ref().is_some_and(|e| allow.users.contains(e));
            visit(Check {
                rule: "allow.users",
                failed: match (&normalized, listed) {
                    (None, _) => Some(DenyReason::EmailUnverified),
                    (Some(_), false) => Some(DenyReason::User),
                    (Some(_), true) => None,
                },
                detail: Detail::Users {
                    email: normalized.is_some(),
                    listed,
                    count: allow.users.len(),
                },
            })?;
        }
    }
    if !allow.tenants.is_empty() {
        let tenant = user.tenant_id.as_deref().map(str::to_ascii_lowercase);
        let ok = tenant.as_ref().is_some_and(|t| allow.tenants.contains(t));
        visit(Check {
            rule: "allow.tenants",
            failed: (!ok).then_some(DenyReason::Tenant),
            detail: Detail::Tenants {
                tenant,
                allowed: &allow.tenants,
            },
        })?;
    }
    ControlFlow::Continue(())
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
    let ControlFlow::Continue(()) = check::<Infallible>(route, connection, user, |c| {
        out.push(Clause {
            rule: c.rule,
            detail: c.detail.to_string(),
            failed: c.failed,
        });
        ControlFlow::Continue(())
    });
    out
}

/// Decides whether `user` may reach `route`: the first rule that fails
/// denies. Nothing is formatted (this runs on every protected request).
pub fn authorize(
    route: &RouteSettings,
    connection: Option<&ConnectionSettings>,
    user: Arc<Session>,
) -> Result<Permit, Denied> {
    let first_failure = check(route, connection, &user, |c| match c.failed {
        Some(reason) => ControlFlow::Break(reason),
        None => ControlFlow::Continue(()),
    });
    match first_failure {
        ControlFlow::Continue(()) => Ok(Permit { user }),
        ControlFlow::Break(reason) => Err(Denied { reason, user }),
    }
}

#[cfg(test)]
mod tests;
