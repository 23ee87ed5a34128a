//! Identity headers (SPEC 5.8): strip every identity header of every profile
//! from incoming requests; inject the route profile's headers from a Permit.
//!
//! Apps behind realmgate trust these headers blindly, so:
//!
//! - [`strip`] runs on every request, public paths and `/.auth/*` included, and
//!   removes the headers of *every* profile (not only the route's), every
//!   `headers_extra` name of every route, and whole families by prefix
//!   (`X-MS-CLIENT-PRINCIPAL*`, `X-MS-TOKEN-*`, `X-Pomerium-*`, `OIDC_*`,
//!   `X-Auth-Request-*`, `X-Realmgate-*`). Names are compared after ASCII
//!   lowercasing and mapping every byte that is not a letter or digit to
//!   `-`, because CGI-style stacks (PHP, WSGI, nginx with
//!   `underscores_in_headers`) read `X_Forwarded_User` as `X-Forwarded-User`,
//!   and lighttpd's CGI/FastCGI/SCGI environment reads `X.Forwarded.User`
//!   (or `+`, `~`, `!`, ...) the same way.
//! - [`inject`] only runs with a [`Permit`] and uses `HeaderMap::insert`, so a
//!   client-sent duplicate cannot survive next to the injected value. The
//!   handler injects after hop-by-hop removal, so a client's
//!   `Connection: X-Forwarded-User` cannot remove an injected header.
//! - A value with a control character (CR, LF, NUL, DEL, C1) or that is not a
//!   valid header value is dropped, and a warning names the header and the user
//!   id, never the value. A group name containing `,` is dropped from
//!   comma-joined lists: it would read as two groups.
//! - The email is sent only when it is verified (SPEC 5.6).
//!
//! | profile | headers |
//! | --- | --- |
//! | `forwarded` | `X-Forwarded-User`, `-Email`, `-Preferred-Username`, `-Groups`, `-Name`, `-Tenant` |
//! | `auth_request` | `X-Auth-Request-User`, `-Email`, `-Preferred-Username`, `-Groups` |
//! | `easyauth` | `X-MS-CLIENT-PRINCIPAL-NAME` (preferred_username unless it names another connection's domain, else verified email), `-ID` (user id), `-IDP` (`aad` for Entra, else the connection name), `X-MS-CLIENT-PRINCIPAL` (base64 JSON; `groups` claims carry ids, as Easy Auth does) |
//! | `remote` | `Remote-User`, `Remote-Email`, `Remote-Name`, `Remote-Groups` |
//! | `pomerium` | `X-Pomerium-Jwt-Assertion`, `X-Pomerium-Claim-Email`, `-Groups`, `-Name` |
//! | `oidc_claim` | `OIDC_CLAIM_sub`, `_oid` (Entra), `_tid`, `_email`, `_name`, `_preferred_username`, `_groups` |
//!
//! Tokens (`pass_id_token`, `pass_access_token`): `X-MS-TOKEN-AAD-ID-TOKEN` /
//! `-ACCESS-TOKEN` (easyauth), `OIDC_id_token` / `OIDC_access_token`
//! (oidc_claim), `X-Auth-Request-Id-Token` / `-Access-Token` (auth_request),
//! `X-Forwarded-Id-Token` / `X-Forwarded-Access-Token` (all others, `none`
//! included: the route asked for them explicitly). `jwt_assertion = true` adds
//! `X-Realmgate-Assertion`.
//!
//! Group headers carry names where `group_names` maps the id (or, with
//! `group_names_from_graph`, Graph named it), ids otherwise;
//! with `groups_in_headers = "known"` only groups named in `group_names` or in
//! some route's `allow.groups` are sent.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, OnceLock, Weak};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::config::{ConnectionSettings, GroupsInHeaders, HeaderProfile, RouteSettings};
use crate::policy::Permit;
use crate::session::model::{Session, Shared};

/// Exact identity header names (normalized: lowercase, `-`).
const EXACT: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-name",
    "x-forwarded-tenant",
    "x-forwarded-roles",
    "x-forwarded-access-token",
    "x-forwarded-id-token",
    "remote-user",
    "remote-email",
    "remote-name",
    "remote-groups",
    // Not written by any profile: the names apps are commonly set up to
    // trust from an authenticating proxy (Apache's `X-Remote-User`), so a
    // client's copy never reaches an app that realmgate fronts.
    "x-remote-user",
    "x-remote-email",
    "x-remote-name",
    "x-remote-groups",
    // Kubernetes' request-header authentication defaults (with the
    // `x-remote-extra-` family below).
    "x-remote-group",
];

/// Identity header families, removed by prefix (normalized).
const PREFIXES: &[&str] = &[
    "x-auth-request-",
    "x-ms-client-principal",
    "x-ms-token-",
    "x-pomerium-",
    "oidc-",
    "x-realmgate-",
    // Grafana's and Gitea's auth-proxy defaults (`X-WEBAUTH-USER`,
    // `-EMAIL`, `-FULLNAME`): not written by any profile (see above).
    "x-webauth-",
    "x-remote-extra-",
];

/// Easy Auth's claim type URIs (what App Service puts in `X-MS-CLIENT-PRINCIPAL`).
const TYP_NAME_IDENTIFIER: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
/// What `name_typ` names, as App Service has it: .NET's
/// `ClaimsIdentity.Name` (`User.Identity.Name`) is this claim's value, the
/// principal's name (see [`Vouched::principal_name`]).
const TYP_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const TYP_EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
const TYP_OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const TYP_TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
const TYP_ROLE: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// Remove every identity header of every profile, and every name in `extra`
/// (all routes' `headers_extra`), case-insensitively and with `_` for `-`.
pub fn strip(headers: &mut HeaderMap, extra: &[HeaderName]) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name.as_str(), extra))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
}

/// True when `name` is an identity header of some profile or in `extra`.
pub fn is_identity_header(name: &str, extra: &[HeaderName]) -> bool {
    EXACT.iter().any(|e| normalized_eq(name, e))
        || PREFIXES.iter().any(|p| normalized_starts_with(name, p))
        || extra.iter().any(|e| normalized_eq(name, e.as_str()))
}

/// A name byte as the stacks behind realmgate may read it: lowercase, and
/// every byte that is not a letter or digit as `-`. CGI-style stacks name
/// `X_Forwarded_User` `HTTP_X_FORWARDED_USER`, and lighttpd (CGI, FastCGI,
/// SCGI) does so for every other separator too (`X.Forwarded.User`,
/// `X+Forwarded~User`).
fn norm(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'-'
    }
}

/// `a` and `b` are the same name, ASCII case-insensitively and with any
/// separator (`_`, `.`, `+`, ...) as `-` ([`norm`]).
pub(super) fn normalized_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// `name` starts with `prefix`, compared as [`normalized_eq`] does.
pub(super) fn normalized_starts_with(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(x, y)| norm(x) == norm(y))
}

/// Add the route profile's headers (and `headers_extra`, tokens when the route
/// passes them, the `signed` assertions for pomerium/jwt_assertion) for the permitted user.
/// `policy_groups`: every group named in some `allow.groups` (for `groups_in_headers = "known"`).
/// Claim values with control characters are dropped and logged (never the value).
pub fn inject(
    headers: &mut HeaderMap,
    permit: &Permit,
    route: &RouteSettings,
    connection: &ConnectionSettings,
    policy_groups: &HashSet<String>,
    signed: &Signed,
) {
    let rendered = render(permit.user(), route, connection, policy_groups);
    apply(headers, rendered.writes());
    apply_assertion(headers, route, permit.user(), signed);
}

/// A request's signed assertions (`phase::inject::signed_assertions`), each
/// in its header's own form (`auth::assertion::Form`).
/// No `Debug`: the tokens are credentials the app trusts.
#[derive(Default)]
pub struct Signed {
    /// `X-Realmgate-Assertion` (`jwt_assertion = true`).
    pub realmgate: Option<String>,
    /// `X-Pomerium-Jwt-Assertion` (the `pomerium` profile).
    pub pomerium: Option<String>,
}

impl Signed {
    /// The same token in both headers (tests of where headers go).
    #[cfg(test)]
    pub(crate) fn same(token: Option<&str>) -> Signed {
        Signed {
            realmgate: token.map(str::to_string),
            pomerium: token.map(str::to_string),
        }
    }
}

/// The header writes for one user on one route: a name and its value, or
/// None to remove the name (an absent or unsafe value).
type Writes = Vec<(HeaderName, Option<HeaderValue>)>;

/// Slots of each thread's table of renderings ([`inject_cached`]: a
/// session's renderings beyond the one it holds itself): a power of two.
/// With many users, most requests bring a session this thread has not
/// rendered lately; each then replaces one slot, so no request pays for a
/// sweep of the whole table, and at most this many renderings (and dead
/// session allocations, see [`Slot`]) stay per thread.
const RENDERED_SLOTS: usize = 512;

/// A permitted user's identity headers for one route, rendered once and
/// shared by the user's requests on this thread (see [`inject_cached`]).
///
/// The forwarder either writes [`Injected::wire`] straight into the
/// upstream request head (realmgate's own HTTP/1.1 exchange) or
/// [`Injected::apply`]s it to the header map (hyper's client paths). Both
/// are only correct for a header map that went through [`strip`]: the wire
/// form adds lines, it cannot replace a client-sent copy. Every name it can
/// hold is one `strip` removes (a test walks every profile), and each name
/// appears once (a later write of a name replaces an earlier one).
#[derive(Clone)]
#[must_use = "identity headers reach the upstream only through the forwarder"]
pub struct Injected(Arc<Rendered>);

struct Rendered {
    /// Each name once, in the order first written, with where its value
    /// is in `wire`; `None` removes the name.
    fields: Vec<(HeaderName, Option<Range<usize>>)>,
    /// `name: value\r\n` for every field with a value.
    wire: Bytes,
    /// The fields as header values (slices of `wire`: no copy), made on
    /// the first `apply`; the raw HTTP/1.1 exchange only sends `wire`.
    writes: OnceLock<Writes>,
}

impl Rendered {
    fn new(out: Out<'_>) -> Rendered {
        // Last write of a name wins, as with `HeaderMap::insert`.
        let mut merged: Vec<(HeaderName, Option<Range<usize>>)> =
            Vec::with_capacity(out.fields.len());
        for (name, value) in out.fields {
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => merged.push((name, value)),
            }
        }
        let text = out.text.as_bytes();
        let mut wire = Vec::with_capacity(
            merged
                .iter()
                .filter_map(|(n, v)| v.as_ref().map(|v| n.as_str().len() + v.len() + 4))
                .sum(),
        );
        for (name, value) in &mut merged {
            if let Some(range) = value.take() {
                // Only values `Out::set_name` took: no CR, LF or other
                // control character, so each line is one header field.
                wire.extend_from_slice(name.as_str().as_bytes());
                wire.extend_from_slice(b": ");
                let start = wire.len();
                wire.extend_from_slice(text.get(range).unwrap_or_default());
                *value = Some(start..wire.len());
                wire.extend_from_slice(b"\r\n");
            }
        }
        Rendered {
            fields: merged,
            wire: Bytes::from(wire),
            writes: OnceLock::new(),
        }
    }

    /// The fields as header writes.
    fn writes(&self) -> &Writes {
        self.writes.get_or_init(|| {
            self.fields
                .iter()
                .map(|(name, value)| {
                    // Never an error: `Out::set_name` took only values
                    // `HeaderValue` accepts (see `list_item`; the test
                    // `list_items_are_checked_like_safe_values`).
                    let value = value
                        .clone()
                        .and_then(|r| HeaderValue::from_maybe_shared(self.wire.slice(r)).ok());
                    (name.clone(), value)
                })
                .collect()
        })
    }
}

impl Injected {
    /// Writes the headers into `headers` (`insert`, or `remove` for an
    /// absent value), for the forwarding paths that send a header map.
    pub fn apply(&self, headers: &mut HeaderMap) {
        apply(headers, self.0.writes());
    }

    /// The header fields as they go on the wire, each ending in CRLF.
    pub fn wire(&self) -> &[u8] {
        &self.0.wire
    }

    /// The header fields (tests).
    #[cfg(test)]
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0
            .writes()
            .iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
    }
}

/// One rendering, for the objects at these addresses (session, route,
/// connection).
///
/// Each slot holds `Weak` references to the three objects: a `Weak` keeps
/// the allocation, so no other session, route or connection can ever get
/// the same address while the slot holds it, and an address match is an
/// identity match. The objects are immutable (a refreshed session is a new
/// `Arc`; a reload makes new routes and connections), so a match always has
/// the values [`render`] would produce now. A signed-out or revoked session
/// is never handed out by the store again, so its rendering cannot be
/// reached either; it goes when its slot is taken.
struct Slot {
    session: Weak<Session>,
    /// The route, connection and rendering, as a session holds its own.
    held: Held,
}

impl Slot {
    fn is_for(
        &self,
        s: *const Session,
        r: *const RouteSettings,
        c: *const ConnectionSettings,
    ) -> bool {
        std::ptr::eq(self.session.as_ptr(), s) && self.held.is_for(r, c)
    }
}

/// The slot of (session, route, connection): their addresses mixed, so a
/// user's routes and different users spread over the table.
fn slot_of(s: *const Session, r: *const RouteSettings, c: *const ConnectionSettings) -> usize {
    let mixed = (s as usize as u64)
        ^ (r as usize as u64).rotate_left(21)
        ^ (c as usize as u64).rotate_left(42);
    let h = mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The top bits of a multiplicative hash; RENDERED_SLOTS is 2^9.
    (h >> (64 - RENDERED_SLOTS.trailing_zeros())) as usize % RENDERED_SLOTS
}

thread_local! {
    static RENDERED: RefCell<Box<[Option<Slot>]>> =
        RefCell::new((0..RENDERED_SLOTS).map(|_| None).collect());
}

/// Renderings this thread holds (tests).
#[cfg(test)]
fn rendered_len() -> usize {
    RENDERED.with(|t| t.borrow().iter().flatten().count())
}

/// The route profile's identity headers for the permitted user, reusing a
/// rendering of the same session object on the same route (and connection)
/// instead of formatting and checking every value again: a signed-in
/// user's requests repeat the same headers. The session's first route's
/// rendering is kept in the session itself (`Session::derived`: for as long
/// as a store keeps that copy, on every thread); others in this thread's
/// table. The per-request assertion (pomerium, `jwt_assertion`) is never
/// reused: it is written into `headers` here. A value dropped for control
/// characters is logged when it is rendered (once per copy or thread, not
/// per request).
///
/// `headers` must have been through [`strip`]; the result goes to the
/// forwarder (`proxy::Outbound::identity`).
pub fn inject_cached(
    headers: &mut HeaderMap,
    permit: &Permit,
    route: &Arc<RouteSettings>,
    connection: &Arc<ConnectionSettings>,
    policy_groups: &HashSet<String>,
    signed: &Signed,
) -> Injected {
    let session = permit.user_arc();
    let (r, c) = (Arc::as_ptr(route), Arc::as_ptr(connection));
    // The session's own rendering (its first route), kept with the copy a
    // store holds: the same session on the same route and connection
    // renders the same, on any thread.
    let own = session
        .derived
        .get::<Held>()
        .filter(|held| held.is_for(r, c))
        .map(|held| held.injected.clone());
    let injected = match own {
        Some(injected) => injected,
        None => rendered_on_this_thread(session, route, connection, policy_groups),
    };
    apply_assertion(headers, route, session, signed);
    injected
}

/// A session's rendering for one route and connection, kept in the
/// session itself (`Session::derived`). `Weak`, as in [`Slot`]: an address
/// match is an identity match. As for [`Slot`], the route's address stands
/// for the whole configuration it came with (`policy_groups` included):
/// every reload builds new routes and connections. Set once: after a
/// reload it never matches again and the session's renderings for the new
/// routes live in the threads' tables, until the store replaces its copy.
struct Held {
    route: Weak<RouteSettings>,
    connection: Weak<ConnectionSettings>,
    injected: Injected,
}

impl Held {
    fn is_for(&self, r: *const RouteSettings, c: *const ConnectionSettings) -> bool {
        std::ptr::eq(self.route.as_ptr(), r) && std::ptr::eq(self.connection.as_ptr(), c)
    }
}

/// This thread's rendering of (session, route, connection), or a new one,
/// kept in the session when it has no rendering yet, else in this thread's
/// table. A copy that only this request holds (the memory store unpacks a
/// session not read lately for one request) is kept nowhere: no later
/// request can present the same copy.
fn rendered_on_this_thread(
    session: &Arc<Session>,
    route: &Arc<RouteSettings>,
    connection: &Arc<ConnectionSettings>,
    policy_groups: &HashSet<String>,
) -> Injected {
    let (s, r, c) = (
        Arc::as_ptr(session),
        Arc::as_ptr(route),
        Arc::as_ptr(connection),
    );
    if Arc::strong_count(session) == 1 {
        // Almost always a copy made for this request alone (the memory
        // store's unpack), in no table; and about to be dropped either way.
        return Injected(Arc::new(render(session, route, connection, policy_groups)));
    }
    let index = slot_of(s, r, c);
    let found = RENDERED.with(|table| {
        table.borrow()[index]
            .as_ref()
            .filter(|slot| slot.is_for(s, r, c))
            .map(|slot| slot.held.injected.clone())
    });
    if let Some(injected) = found {
        return injected;
    }
    let injected = Injected(Arc::new(render(session, route, connection, policy_groups)));
    let held = Held {
        route: Arc::downgrade(route),
        connection: Arc::downgrade(connection),
        injected: injected.clone(),
    };
    // The session's own slot if free, else this thread's table.
    let Some(held) = session.derived.set(held) else {
        return injected;
    };
    let old = RENDERED.with(|table| {
        table.borrow_mut()[index].replace(Slot {
            session: Arc::downgrade(session),
            held,
        })
    });
    // Outside the borrow: dropping frees what the slot held.
    drop(old);
    injected
}

/// Performs `writes`: `insert` (a client-sent copy cannot survive next to
/// it) or `remove`.
fn apply(headers: &mut HeaderMap, writes: &Writes) {
    // One growth of the map for all of them, not one per doubling.
    headers.reserve(writes.len());
    for (name, value) in writes {
        match value {
            Some(v) => {
                headers.insert(name.clone(), v.clone());
            }
            None => {
                headers.remove(name);
            }
        }
    }
}

/// The signed assertion header(s) of this request (pomerium, jwt_assertion).
fn apply_assertion(
    headers: &mut HeaderMap,
    route: &RouteSettings,
    user: &Session,
    signed: &Signed,
) {
    if route.headers != HeaderProfile::Pomerium && !route.jwt_assertion {
        return;
    }
    let mut out = Out::new(user);
    if route.headers == HeaderProfile::Pomerium {
        out.set("x-pomerium-jwt-assertion", signed.pomerium.as_deref());
    }
    if route.jwt_assertion {
        out.set("x-realmgate-assertion", signed.realmgate.as_deref());
    }
    apply(headers, Rendered::new(out).writes());
}

/// The profile's headers, tokens and `headers_extra` for `user` on `route`
/// (everything but the assertion).
fn render(
    user: &Session,
    route: &RouteSettings,
    connection: &ConnectionSettings,
    policy_groups: &HashSet<String>,
) -> Rendered {
    let mut out = Out::new(user);
    out.fields.reserve(8);
    let groups = header_groups(user, connection, policy_groups);
    let joined = out.join_groups(&groups);
    // The values' buffer sized once for the usual headers (growing it by
    // doubling cost a reallocation per step: issue 23).
    out.text
        .reserve(joined.as_ref().map_or(0, String::len) + 512);
    let roles = out.join_roles(&user.roles);
    let vouched = Vouched::of(user, connection);
    let Vouched {
        email,
        username,
        name,
        ..
    } = vouched;
    match route.headers {
        HeaderProfile::Forwarded => {
            out.set("x-forwarded-user", Some(&user.user_id));
            out.set("x-forwarded-email", email);
            out.set("x-forwarded-preferred-username", username);
            out.set("x-forwarded-groups", joined.as_deref());
            out.set("x-forwarded-name", name);
            out.set("x-forwarded-tenant", vouched.tenant);
            out.set("x-forwarded-roles", roles.as_deref());
        }
        HeaderProfile::AuthRequest => {
            out.set("x-auth-request-user", Some(&user.user_id));
            out.set("x-auth-request-email", email);
            out.set("x-auth-request-preferred-username", username);
            out.set("x-auth-request-groups", joined.as_deref());
        }
        HeaderProfile::EasyAuth => {
            let idp = easy_auth_idp(connection);
            out.set("x-ms-client-principal-name", Some(vouched.principal_name()));
            out.set("x-ms-client-principal-id", Some(&user.user_id));
            out.set("x-ms-client-principal-idp", Some(idp));
            let principal = easy_auth_principal(user, connection, &vouched, &groups, idp);
            out.set("x-ms-client-principal", principal.as_deref());
        }
        HeaderProfile::Remote => {
            out.set("remote-user", Some(&user.user_id));
            out.set("remote-email", email);
            out.set("remote-name", name);
            out.set("remote-groups", joined.as_deref());
        }
        HeaderProfile::Pomerium => {
            // The assertion itself is per request: `apply_assertion`.
            out.set("x-pomerium-claim-email", email);
            out.set("x-pomerium-claim-groups", joined.as_deref());
            out.set("x-pomerium-claim-name", name);
        }
        HeaderProfile::OidcClaim => {
            out.set("oidc_claim_sub", Some(app_subject(user, connection)));
            if connection.is_entra() {
                out.set("oidc_claim_oid", Some(&user.user_id));
            }
            out.set("oidc_claim_tid", vouched.tenant);
            out.set("oidc_claim_email", email);
            out.set("oidc_claim_name", name);
            out.set("oidc_claim_preferred_username", username);
            out.set("oidc_claim_groups", joined.as_deref());
            out.set("oidc_claim_roles", roles.as_deref());
        }
        HeaderProfile::None => {}
    }
    let (id_token_header, access_token_header) = match route.headers {
        HeaderProfile::EasyAuth => ("x-ms-token-aad-id-token", "x-ms-token-aad-access-token"),
        HeaderProfile::OidcClaim => ("oidc_id_token", "oidc_access_token"),
        HeaderProfile::AuthRequest => ("x-auth-request-id-token", "x-auth-request-access-token"),
        HeaderProfile::Forwarded
        | HeaderProfile::Remote
        | HeaderProfile::Pomerium
        | HeaderProfile::None => ("x-forwarded-id-token", "x-forwarded-access-token"),
    };
    // App Service names its token headers after the provider
    // (`X-MS-TOKEN-AAD-*`, `X-MS-TOKEN-GOOGLE-*`): another provider's tokens
    // under the `AAD` names would be read, unverified, as Entra's (review
    // 10: Microsoft.Identity.Web's App Service handler takes the ID
    // token's `preferred_username` as `User.Identity.Name`).
    let easy_auth_other = route.headers == HeaderProfile::EasyAuth && !connection.is_entra();
    let token_header = |aad: &'static str, kind: &str| -> Option<HeaderName> {
        if easy_auth_other {
            let idp = easy_auth_idp(connection).to_ascii_lowercase();
            HeaderName::from_bytes(format!("x-ms-token-{idp}-{kind}").as_bytes()).ok()
        } else {
            Some(HeaderName::from_static(aad))
        }
    };
    if route.pass_id_token {
        if let Some(h) = token_header(id_token_header, "id-token") {
            out.set_name(h, user.id_token.as_deref());
        }
    }
    if route.pass_access_token {
        if let Some(h) = token_header(access_token_header, "access-token") {
            out.set_name(h, user.access_token.as_deref());
        }
    }
    for (header, source) in &route.headers_extra {
        if written_per_request(route, header) {
            continue;
        }
        let value = extra_value(user, source, joined.as_deref(), &vouched);
        out.set_name(header.clone(), value.as_deref());
    }
    Rendered::new(out)
}

/// True for a name realmgate writes on each request of `route` after the
/// identity headers (the request id, the route's signed assertion): a
/// `headers_extra` entry of that name never reached the app, and rendering
/// it would now send the name twice.
fn written_per_request(route: &RouteSettings, name: &HeaderName) -> bool {
    let name = name.as_str();
    name == super::names::X_REQUEST_ID.as_str()
        || (route.headers == HeaderProfile::Pomerium && name == "x-pomerium-jwt-assertion")
        || (route.jwt_assertion && name == "x-realmgate-assertion")
}

/// Where injected headers go, and whose they are (for warnings).
struct Out<'a> {
    /// Each write: a name and where its value is in `text`, or None to
    /// remove the name.
    fields: Vec<(HeaderName, Option<Range<usize>>)>,
    /// The values, back to back (one allocation, not one per header).
    text: String,
    user: &'a Session,
}

impl<'a> Out<'a> {
    fn new(user: &'a Session) -> Out<'a> {
        Out {
            fields: Vec::new(),
            text: String::new(),
            user,
        }
    }

    fn set(&mut self, name: &'static str, value: Option<&str>) {
        self.set_name(HeaderName::from_static(name), value);
    }

    /// Sets `name` to `value`, replacing anything there; removes it when the
    /// value is absent or unsafe.
    fn set_name(&mut self, name: HeaderName, value: Option<&str>) {
        let value = value.and_then(|value| {
            // What `safe_value` takes, without building the value (see
            // `list_item`).
            let safe = !has_control(value);
            if !safe {
                tracing::warn!(
                    header = %name,
                    user.id = ?self.user.user_id,
                    "identity value has control characters or is not a valid header value; header dropped"
                );
            }
            safe.then(|| {
                let start = self.text.len();
                self.text.push_str(value);
                start..self.text.len()
            })
        });
        self.fields.push((name, value));
    }

    /// Comma-joined app roles, leaving out (and reporting) roles that
    /// would break the list or the header.
    fn join_roles(&self, roles: &[Shared]) -> Option<String> {
        let mut out = String::with_capacity(roles.iter().map(|r| r.len() + 1).sum());
        for r in roles {
            if !list_item(r) {
                tracing::warn!(
                    user.id = ?self.user.user_id,
                    "an app role has a comma or control characters; left out of role headers"
                );
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(r);
        }
        (!out.is_empty()).then_some(out)
    }

    /// Comma-joined groups, leaving out (and reporting) names that would
    /// break the list or the header.
    fn join_groups(&self, groups: &[Group<'_>]) -> Option<String> {
        // Sized once: a user's 20-odd group ids are some 750 bytes, and
        // growing by doubling cost a reallocation per step on every request
        // of a session not seen recently (issue 23).
        let mut out = String::with_capacity(groups.iter().map(|g| g.shown.len() + 1).sum());
        for g in groups {
            if !list_item(&g.shown) {
                tracing::warn!(
                    user.id = ?self.user.user_id,
                    "a group name has a comma or control characters; left out of group headers"
                );
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&g.shown);
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A header value from text: no control characters at all (CR, LF, NUL, tab,
/// DEL, C1), UTF-8 bytes kept as they are: what `Out::set_name` takes
/// (it checks `has_control` alone, which the tests prove the same).
#[cfg(test)]
fn safe_value(value: &str) -> Option<HeaderValue> {
    if has_control(value) {
        return None;
    }
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// True when `item` may go into a comma-joined list header: no comma and
/// [`safe_value`] would take it. `HeaderValue::from_bytes` refuses only
/// bytes below 0x20 other than tab, and 0x7F, all of which [`has_control`]
/// refuses already, so no value needs to be built (and freed) to know
/// (`list_items_are_checked_like_safe_values` walks the bytes).
fn list_item(item: &str) -> bool {
    // Surrounding whitespace too: servers trim a header value's ends, so
    // `HR Admins ` last in a list arrives as `HR Admins`.
    !item.contains(',') && !has_control(item) && item.trim() == item
}

/// `value.chars().any(char::is_control)` without decoding UTF-8 (this runs
/// for every identity header of every request). The control characters are
/// U+0000-U+001F and U+007F (one byte each) and U+0080-U+009F, which UTF-8
/// writes as 0xC2 followed by 0x80-0x9F; no other sequence decodes to one.
fn has_control(value: &str) -> bool {
    let bytes = value.as_bytes();
    // Almost every value is printable ASCII: one pass without an early
    // exit (so the compiler can vectorize it) answers for those.
    if bytes
        .iter()
        .fold(true, |printable, &b| printable & (0x20..0x7f).contains(&b))
    {
        return false;
    }
    bytes.iter().enumerate().any(|(i, &b)| {
        b < 0x20 || b == 0x7f || (b == 0xc2 && matches!(bytes.get(i + 1), Some(0x80..=0x9f)))
    })
}

/// One group as headers show it.
struct Group<'a> {
    id: &'a str,
    /// The mapped name (`group_names`, else Graph's), or the id.
    shown: Cow<'a, str>,
}

/// True when `value`, a group of a `connection` user that `connection`
/// does not map, reads (as lenient comparers read it) as a name or id
/// another connection maps in `group_names`: shown anywhere, it would look
/// like that connection's group (SPEC 6.1). The group headers, the signed
/// assertion and `/.auth/me` (every shape) leave such values out.
pub(crate) fn borrowed_group(connection: &ConnectionSettings, value: &str) -> bool {
    !connection.group_names.contains_key(value) && connection.reads_as_a_mapped_name(value)
}

fn header_groups<'a>(
    user: &'a Session,
    connection: &'a ConnectionSettings,
    policy_groups: &HashSet<String>,
) -> Vec<Group<'a>> {
    // Sized once: collecting a filter grows the vector step by step, a
    // reallocation per doubling for a user's 20-odd groups (issue 23).
    let mut out = Vec::with_capacity(user.groups.len());
    out.extend(user.groups.iter().filter_map(|id| {
        let name = connection.group_names.get(&**id).map(String::as_str);
        // Looked up only where it decides something (one hash per group
        // per request otherwise).
        if connection.groups_in_headers == GroupsInHeaders::Known
            && name.is_none()
            && !policy_groups.contains(&**id)
        {
            return None;
        }
        // A name read from Graph (`group_names_from_graph`) is shown, never judged.
        let shown = match name {
            Some(n) => Cow::Borrowed(n),
            None if connection.group_names_from_graph => {
                crate::connection::entra::group_names::cached(connection, id)
                    .map_or(Cow::Borrowed(&**id), |n| Cow::Owned(n.to_string()))
            }
            None => Cow::Borrowed(&**id),
        };
        // An unmapped value that reads as another connection's mapped name
        // (a partner IdP sending `HR Admins`, `hr admins `, `ＨＲ Admins`),
        // or as one this connection maps (a group a directory user created
        // and named `HR Admins`), would look like that group to the app:
        // left out (SPEC 6.1: a name in some connection's `group_names`
        // belongs to that connection, through the mapping). Compared as
        // lenient comparers read it.
        if name.is_none() && connection.reads_as_a_mapped_name(&shown) {
            return None;
        }
        Some(Group { id, shown })
    }));
    out
}

/// The `headers_extra` sources [`extra_value`] knows, besides
/// `claims.<name>`: `check` warns about any other (its header is never sent).
pub(crate) const EXTRA_SOURCES: &[&str] = &[
    "user_id",
    "sub",
    "subject",
    "email",
    "name",
    "preferred_username",
    "tenant_id",
    "tid",
    "connection",
    "groups",
    "roles",
];

/// The value for a `headers_extra` source: `user_id`, `sub`, `email` (verified
/// only), `name`, `preferred_username`, `tenant_id`, `connection`, `groups`,
/// or `claims.<name>` (needs `extended_profile`; strings as they are, numbers
/// and booleans printed, arrays of those comma-joined).
fn extra_value(
    user: &Session,
    source: &str,
    groups: Option<&str>,
    vouched: &Vouched<'_>,
) -> Option<String> {
    let s = |v: Option<&str>| v.map(str::to_string);
    match source {
        "user_id" => Some(user.user_id.clone()),
        "sub" | "subject" => Some(user.subject.clone()),
        "email" => s(vouched.email),
        "name" => s(vouched.name),
        "preferred_username" => s(vouched.username),
        "tenant_id" | "tid" => s(vouched.tenant),
        "connection" => Some(user.connection.clone()),
        "groups" => s(groups),
        // As in the role headers: a role with a comma would read as two.
        "roles" => {
            let kept: Vec<&str> = user
                .roles
                .iter()
                .map(|r| &**r)
                .filter(|r| list_item(r))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        }
        other => {
            let claim = other.strip_prefix("claims.")?;
            claim_text(user.claims.as_ref()?.get(claim)?)
        }
    }
}

fn claim_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::Array(_) | Value::Object(_) | Value::Null => None,
                    scalar => claim_text(scalar),
                })
                .filter(|p| !p.contains(','))
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

#[derive(Serialize)]
struct Principal<'a> {
    auth_typ: &'a str,
    claims: Vec<Claim<'a>>,
    name_typ: &'static str,
    role_typ: &'static str,
}

/// One claim of Easy Auth's shape.
#[derive(Serialize)]
pub(crate) struct Claim<'a> {
    pub typ: &'a str,
    pub val: &'a str,
}

/// The subject apps get where they expect a `sub` (`OIDC_CLAIM_sub`, Easy
/// Auth's `nameidentifier`): Entra's own `sub` (Microsoft-issued, pairwise
/// per app; `oid` goes beside it), and for every other kind the user id
/// `<connection>:<sub>` (SPEC 6.1), so that a provider choosing its `sub`
/// can never pose as another connection's user to an app keyed on it.
fn app_subject<'a>(user: &'a Session, connection: &ConnectionSettings) -> &'a str {
    if connection.is_entra() {
        &user.subject
    } else {
        &user.user_id
    }
}

/// Easy Auth's provider name: `aad` for Entra, else the connection's name
/// (which `check` refuses to be `aad` for any other kind).
pub(crate) fn easy_auth_idp(connection: &ConnectionSettings) -> &str {
    if connection.is_entra() {
        "aad"
    } else {
        connection.name.as_str()
    }
}

/// The claims of Easy Auth's principal (`X-MS-CLIENT-PRINCIPAL`, and the
/// `user_claims` of `/.auth/me` on `easyauth` routes), in Easy Auth's
/// types: `iss`, `nameidentifier`, `objectidentifier` (Entra), `tenantid`,
/// `name`, `preferred_username`, `emailaddress` (verified only), one
/// `groups` per group id, one `roles` per app role.
pub(crate) fn principal_claims<'a>(
    user: &'a Session,
    connection: &ConnectionSettings,
    vouched: &Vouched<'a>,
    group_ids: impl Iterator<Item = &'a str>,
) -> Vec<Claim<'a>> {
    let mut claims = vec![Claim {
        typ: "iss",
        val: &user.issuer,
    }];
    claims.push(Claim {
        typ: TYP_NAME_IDENTIFIER,
        val: app_subject(user, connection),
    });
    if connection.is_entra() {
        claims.push(Claim {
            typ: TYP_OBJECT_ID,
            val: &user.user_id,
        });
    }
    if let Some(tid) = vouched.tenant {
        claims.push(Claim {
            typ: TYP_TENANT_ID,
            val: tid,
        });
    }
    claims.push(Claim {
        typ: TYP_NAME,
        val: vouched.principal_name(),
    });
    if let Some(name) = vouched.name {
        claims.push(Claim {
            typ: "name",
            val: name,
        });
    }
    if let Some(u) = vouched.username {
        claims.push(Claim {
            typ: "preferred_username",
            val: u,
        });
    }
    if let Some(e) = vouched.email {
        claims.push(Claim {
            typ: TYP_EMAIL,
            val: e,
        });
    }
    for id in group_ids {
        claims.push(Claim {
            typ: "groups",
            val: id,
        });
    }
    // App roles as Easy Auth sends them: one `roles` claim per role, from
    // the session's roles (kept with or without `extended_profile`); a
    // session written before they were kept has them in its claims only.
    let kept = user
        .claims
        .as_ref()
        .filter(|_| user.roles.is_empty())
        .and_then(|c| c.get("roles"))
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str());
    for role in user.roles.iter().map(|r| &**r).chain(kept) {
        claims.push(Claim {
            typ: "roles",
            val: role,
        });
    }
    claims
}

/// What a session vouches for under its connection's settings
/// ([`Session::vouched_email`], `vouched_username`, `vouched_name`),
/// judged once for everything one rendering writes.
#[derive(Clone, Copy)]
pub(crate) struct Vouched<'a> {
    pub email: Option<&'a str>,
    pub username: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Entra's tenant only (`Session::tenant`).
    pub tenant: Option<&'a str>,
    user_id: &'a str,
}

impl<'a> Vouched<'a> {
    pub fn of(user: &'a Session, connection: &ConnectionSettings) -> Vouched<'a> {
        Vouched {
            email: user.vouched_email(connection),
            username: user.vouched_username(connection),
            name: user.vouched_name(connection),
            tenant: user.tenant(connection),
            user_id: &user.user_id,
        }
    }

    /// The principal's name, as App Service gives it
    /// (`X-MS-CLIENT-PRINCIPAL-NAME`, the principal's `name_typ` claim,
    /// `/.auth/me`'s `user_id`): the username, else the email, else the
    /// user id; only what the session vouches for, since .NET apps read
    /// it as `User.Identity.Name`.
    pub fn principal_name(&self) -> &'a str {
        self.username.or(self.email).unwrap_or(self.user_id)
    }
}

/// `X-MS-CLIENT-PRINCIPAL`: standard base64 of the JSON App Service sends.
/// `None` when a claim value is unsafe (the whole principal is then dropped:
/// a partial principal could mislead the app).
fn easy_auth_principal(
    user: &Session,
    connection: &ConnectionSettings,
    vouched: &Vouched<'_>,
    groups: &[Group<'_>],
    idp: &str,
) -> Option<String> {
    let claims = principal_claims(user, connection, vouched, groups.iter().map(|g| g.id));
    if claims.iter().any(|c| c.val.chars().any(char::is_control)) {
        tracing::warn!(
            user.id = ?user.user_id,
            "a claim has control characters; X-MS-CLIENT-PRINCIPAL dropped"
        );
        return None;
    }
    let json = serde_json::to_vec(&Principal {
        auth_typ: idp,
        claims,
        name_typ: TYP_NAME,
        role_typ: TYP_ROLE,
    })
    .ok()?;
    Some(STANDARD.encode(json))
}

#[cfg(test)]
mod tests;
