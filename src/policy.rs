//! Authorization: `[route.allow]` turns an authenticated user into a
//! [`Permit`] or a [`Denied`]. A `Permit` can only be made here, from an
//! `AuthenticatedUser` (which only `phase::authenticate` makes), and header
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

use std::collections::HashMap;

use crate::config::{AllowSettings, ConnectionSettings, MatchBy, RouteSettings, ScopedValue};
use crate::phase::authenticate::user::AuthenticatedUser;
use crate::session::model::Session;

/// Proof that `user` may reach the route it was issued for (by
/// [`authorize`], for one request). Private field: only this module builds it.
/// It holds no handle on the route: the route's shared count would change
/// on every request, from every proxy thread.
///
/// Nothing outside the policy makes one (`for_tests` exists only in the
/// crate's own unit tests):
///
/// ```compile_fail
/// fn forge(s: realmgate::session::model::Session) -> realmgate::policy::Permit {
///     realmgate::policy::Permit::for_tests(s)
/// }
/// ```
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
    #[cfg(test)]
    pub(crate) fn for_tests(user: Session) -> Self {
        Permit {
            user: Arc::new(user),
        }
    }

    /// For unit tests: a permit for a session as a store handed it out.
    #[cfg(test)]
    pub(crate) fn for_tests_shared(user: Arc<Session>) -> Self {
        Permit { user }
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
    /// The verified email's domain is a home realm domain of another
    /// connection than the one that signed the user in (SPEC 6.1).
    EmailOwner,
    /// The user's tenant is not in `allow.tenants`.
    Tenant,
    /// None of the user's app roles is in `allow.roles`.
    Roles,
    /// A claim named in `allow.claims` has none of the allowed values.
    Claims,
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
            DenyReason::EmailOwner => "Your email address belongs to an organization whose own sign-in must confirm it, and you signed in with another account. Sign out and sign in with your organization's account.",
            DenyReason::Tenant => "Your organization (tenant) may not use this application.",
            DenyReason::Roles => "Your account has no application role that may use this application. Ask your administrator to assign you one.",
            DenyReason::Claims => "Your account's profile does not allow you to use this application.",
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
            DenyReason::EmailOwner => "email_owner",
            DenyReason::Tenant => "tenant",
            DenyReason::Roles => "roles",
            DenyReason::Claims => "claims",
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
        /// The connection that owns the domain, when it is not the user's.
        owner: Option<&'a str>,
        allowed: &'a [String],
    },
    Users {
        email: bool,
        /// The connection that owns the email's domain, when not the user's.
        owner: Option<&'a str>,
        listed: bool,
        count: usize,
    },
    Tenants {
        tenant: Option<String>,
        allowed: &'a [String],
    },
    Roles {
        matched: Option<&'a str>,
        count: usize,
        allowed: &'a [String],
    },
    Claim {
        name: &'a str,
        matched: Option<&'a str>,
        /// The user has the claim at all (kept with `extended_profile`).
        present: bool,
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
                owner: Some(o),
                ..
            }
            => write!(
                f,
                "the verified email's domain {d:?} is a home realm domain of connection {o:?}, which did not sign the user in, so the email does not count"
            ),
            Detail::EmailDomains {
                domain: Some(d),
                allowed,
                ..
            } => write!(
                f,
                "verified email domain {d:?}; allowed [{}]",
                allowed.join(", ")
            ),
            Detail::EmailDomains { domain: None, .. } => f.write_str("no verified email"),
            Detail::Users {
                email: false,
                count,
                ..
            } => write!(
                f,
                "no verified email, and the user id is not among {count} listed user(s)"
            ),
            Detail::Users { listed: true, .. } => f.write_str("the user id or verified email is listed"),
            Detail::Users {
                owner: Some(o),
                count,
                ..
            } => write!(
                f,
                "the user id is not among {count} listed user(s), and the verified email does not count: its domain is a home realm domain of connection {o:?}, which did not sign the user in"
            ),
            Detail::Users { count, .. } => {
                write!(f, "neither the user id nor the verified email is among {count} listed user(s)")
            }
            Detail::Roles {
                matched: Some(r),
                allowed,
                ..
            } => write!(f, "has app role {r:?}, one of [{}]", allowed.join(", ")),
            Detail::Roles {
                matched: None,
                count,
                allowed,
            } => write!(
                f,
                "none of the user's {count} app role(s) is one of [{}]",
                allowed.join(", ")
            ),
            Detail::Claim {
                name,
                matched: Some(v),
                allowed,
                ..
            } => write!(f, "claim {name:?} is {v:?}, one of [{}]", allowed.join(", ")),
            Detail::Claim {
                name,
                present: false,
                ..
            } => write!(
                f,
                "the session keeps no claim {name:?} (claims are kept with extended_profile)"
            ),
            Detail::Claim { name, allowed, .. } => write!(
                f,
                "claim {name:?} has none of the values [{}]",
                allowed.join(", ")
            ),
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
    check_allow(&route.allow, connection, user, visit)
}

/// The `[route.allow]` rules of [`check`]: each list that is given, in order.
fn check_allow<'a, B>(
    allow: &'a AllowSettings,
    connection: Option<&'a ConnectionSettings>,
    user: &'a Session,
    mut visit: impl FnMut(Check<'a>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    if !allow.groups.is_empty() {
        // Scoped as SPEC 6.1 says (`entry_matches`): a group name mapped by
        // one connection never matches another connection's raw group.
        let names = connection.map(|c| &c.group_names);
        let matched = user.groups.iter().find(|id| {
            allow
                .group_rules
                .iter()
                .any(|r| entry_matches(r, &user.connection, id, names))
        });
        visit(Check {
            rule: "allow.groups",
            failed: matched.is_none().then_some(DenyReason::Groups),
            detail: Detail::Groups {
                matched: matched.map(|m| &**m),
                count: user.groups.len(),
                allowed: &allow.groups,
            },
        })?;
    }
    if !allow.roles.is_empty() {
        // Scoped like groups (SPEC 6.1), compared as sent: exact, case-sensitive.
        let matched = user.roles.iter().find(|role| {
            allow
                .role_rules
                .iter()
                .any(|r| entry_matches(r, &user.connection, role, None))
        });
        visit(Check {
            rule: "allow.roles",
            failed: matched.is_none().then_some(DenyReason::Roles),
            detail: Detail::Roles {
                matched: matched.map(|m| &**m),
                count: user.roles.len(),
                allowed: &allow.roles,
            },
        })?;
    }
    for rule in &allow.claims {
        let value = user.claims.as_ref().and_then(|c| c.get(&rule.name));
        let matched = value.and_then(|v| {
            claim_strings(v).find(|val| {
                rule.rules
                    .iter()
                    .any(|r| entry_matches(r, &user.connection, val, None))
            })
        });
        visit(Check {
            rule: "allow.claims",
            failed: matched.is_none().then_some(DenyReason::Claims),
            detail: Detail::Claim {
                name: &rule.name,
                matched,
                present: value.is_some(),
                allowed: &rule.values,
            },
        })?;
    }
    if !allow.email_domains.is_empty() || !allow.users.is_empty() || !allow.user_ids.is_empty() {
        // Only a verified email counts (SPEC 5.6): an unverified one could be
        // anyone's ("nOAuth"); and only a plain addr-spec (`crate::email`),
        // compared lowercased with its host in A-label form.
        let email = user.verified_email().and_then(crate::email::parse);
        // An email of a domain some connection owns (its home realm
        // domains) counts only when that connection signed the user in.
        let owner = email
            .as_ref()
            .and_then(|e| allow.domain_owners.get(e.domain()))
            .filter(|o| **o != user.connection)
            .map(String::as_str);
        let email = email.map(|e| (e, owner));
        if !allow.email_domains.is_empty() {
            let failed = match &email {
                None => Some(DenyReason::EmailUnverified),
                Some((_, Some(_))) => Some(DenyReason::EmailOwner),
                Some((e, None)) if !allow.email_domains.iter().any(|d| d == e.domain()) => {
                    Some(DenyReason::EmailDomain)
                }
                Some(_) => None,
            };
            visit(Check {
                rule: "allow.email_domains",
                failed,
                detail: Detail::EmailDomains {
                    domain: email.as_ref().map(|(e, _)| e.domain().to_string()),
                    owner,
                    allowed: &allow.email_domains,
                },
            })?;
        }
        if !allow.users.is_empty() || !allow.user_ids.is_empty() {
            let by_id = allow
                .user_ids
                .iter()
                .any(|r| entry_matches(r, &user.connection, &user.user_id, None));
            let by_email = email
                .as_ref()
                .is_some_and(|(e, o)| o.is_none() && allow.users.iter().any(|u| u == e.as_str()));
            let listed = by_id || by_email;
            let failed = match (&email, listed) {
                (_, true) => None,
                // Only emails are listed: say what is missing.
                (None, false) if allow.user_ids.is_empty() => Some(DenyReason::EmailUnverified),
                (Some((_, Some(_))), false) if allow.user_ids.is_empty() => {
                    Some(DenyReason::EmailOwner)
                }
                _ => Some(DenyReason::User),
            };
            visit(Check {
                rule: "allow.users",
                failed,
                detail: Detail::Users {
                    email: email.is_some(),
                    owner,
                    listed,
                    count: allow.users.len() + allow.user_ids.len(),
                },
            })?;
        }
    }
    if !allow.tenants.is_empty() {
        // Only an Entra connection's user has a tenant (`tenant_id_for`);
        // judged again here for sessions made before that rule. (A user of
        // a connection no longer configured fails `connections` above.)
        let tenant = match connection {
            Some(c) => user.tenant(c),
            None => user.tenant_id.as_deref(),
        }
        .map(str::to_ascii_lowercase);
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

/// The string values of a claim: the string itself, or the strings of an
/// array (other JSON values match nothing: `allow.claims` compares text,
/// exactly).
fn claim_strings(v: &serde_json::Value) -> impl Iterator<Item = &str> {
    let (one, many) = match v {
        serde_json::Value::String(s) => (Some(s.as_str()), None),
        serde_json::Value::Array(a) => (None, Some(a.iter().filter_map(serde_json::Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// Whether the policy entry `rule` matches `value`, a value (group id, and
/// later role or claim value) of a user of connection `connection`, whose
/// `group_names` are `names` (SPEC 6.1). The one place that scopes policy
/// values to connections: an entry limited to some connections never
/// matches another's users; an entry that may match by name compares the
/// name the user's own connection gives `value`.
pub fn entry_matches(
    rule: &ScopedValue,
    connection: &str,
    value: &str,
    names: Option<&HashMap<String, String>>,
) -> bool {
    if rule
        .connections
        .as_ref()
        .is_some_and(|cs| !cs.iter().any(|c| c == connection))
    {
        return false;
    }
    let by_value = || value == rule.value;
    let by_name = || {
        names
            .and_then(|n| n.get(value))
            .is_some_and(|name| *name == rule.value)
    };
    match rule.by {
        MatchBy::Value => by_value(),
        MatchBy::Name => by_name(),
        MatchBy::ValueOrName => by_value() || by_name(),
    }
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

/// Decides whether an authenticated `user` may reach `route`: the first rule
/// that fails denies. Nothing is formatted (this runs on every protected
/// request). The only way to a [`Permit`]: it takes the proof of
/// authentication, so no code can permit a user nobody authenticated.
pub fn authorize(
    route: &RouteSettings,
    connection: Option<&ConnectionSettings>,
    user: AuthenticatedUser,
) -> Result<Permit, Denied> {
    let user = user.into_user();
    match decide(route, connection, &user) {
        Ok(()) => Ok(Permit { user }),
        Err(reason) => Err(Denied { reason, user }),
    }
}

/// Whether `user` meets `allow` alone, the route's connections aside:
/// lists a request adds to the route's policy (`/oauth2/auth`'s query,
/// `endpoints::oauth2`), judged after [`authorize`] judged the route.
pub fn decide_allow(
    allow: &AllowSettings,
    connection: Option<&ConnectionSettings>,
    user: &Session,
) -> Result<(), DenyReason> {
    first_failure(check_allow(allow, connection, user, stop_at_failure))
}

/// The decision of [`authorize`] for any session (`realmgate explain`
/// judges one built from claims on the command line), without a permit.
pub fn decide(
    route: &RouteSettings,
    connection: Option<&ConnectionSettings>,
    user: &Session,
) -> Result<(), DenyReason> {
    first_failure(check(route, connection, user, stop_at_failure))
}

/// The visitor of a decision: the first failed rule ends the walk.
fn stop_at_failure(c: Check<'_>) -> ControlFlow<DenyReason> {
    match c.failed {
        Some(reason) => ControlFlow::Break(reason),
        None => ControlFlow::Continue(()),
    }
}

fn first_failure(walk: ControlFlow<DenyReason>) -> Result<(), DenyReason> {
    match walk {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(reason) => Err(reason),
    }
}

#[cfg(test)]
mod tests;
