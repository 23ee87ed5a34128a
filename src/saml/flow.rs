//! The SAML sign-in as steps the HTTP layer calls: [`begin`] (the redirect
//! to the IdP and the pending request to bind to the browser), [`finish`]
//! (the ACS: decode, validate, replay, map) and [`session_for`] (the one
//! place a SAML identity becomes a [`Session`]; the connection seam takes
//! it over at merge).

use super::attributes::{AttributeMap, Identity, IdentityError};
use super::binding::{self, BindingError, SpSigner};
use super::metadata::IdpMetadata;
use super::replay::ReplayCache;
use super::response::{validate_response, Assertion, Expect, Requested, SamlError, SignedPart};
use crate::session::model::{EmailTrust, Session, SESSION_VERSION};
use crate::session::state::PendingLogin;

/// Clock difference tolerated with the IdP.
pub const SKEW_SECS: u64 = 120;

/// One SAML connection, ready to serve: what the HTTP layer needs.
#[derive(Debug)]
pub struct SamlConnection {
    pub name: String,
    /// The SP entity id (audience).
    pub sp_entity_id: String,
    /// The ACS URL (recipient, destination).
    pub acs_url: String,
    pub idp: IdpMetadata,
    pub signer: Option<SpSigner>,
    pub attributes: AttributeMap,
    pub allow_idp_initiated: bool,
    pub require_signed: SignedPart,
    pub trusted_email: bool,
}

/// The redirect to the IdP and the pending login to add to the browser's
/// state cookie. `state` (sent as `RelayState`, naming the pending login
/// in the callback) is random; `nonce` is the AuthnRequest ID, which the
/// response must answer as `InResponseTo`. This is the shape of the
/// connection seam's `Pending { state, nonce }`.
pub fn begin(
    conn: &SamlConnection,
    target: &str,
    now: u64,
) -> Result<(String, PendingLogin), String> {
    let id = binding::new_request_id();
    let state = binding::new_request_id();
    let xml = binding::authn_request(
        &id,
        now,
        &conn.idp.sso_url,
        &conn.acs_url,
        &conn.sp_entity_id,
    );
    // RelayState carries the state only (never the target: that stays in
    // the cookie, so nobody can send the user elsewhere through it).
    let url = binding::redirect_url(
        &conn.idp.sso_url,
        "SAMLRequest",
        &xml,
        Some(&state),
        conn.signer.as_ref(),
    )?;
    let pending = PendingLogin {
        state,
        nonce: id,
        pkce_verifier: String::new(),
        connection: conn.name.clone(),
        redirect_uri: conn.acs_url.clone(),
        target: target.to_string(),
        created_at: now,
    };
    Ok((url, pending))
}

/// Why the ACS refused a sign-in. All are 4xx: the IdP's or the user's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Binding(#[from] BindingError),
    #[error(transparent)]
    Response(#[from] SamlError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl FlowError {
    pub fn label(&self) -> &'static str {
        match self {
            FlowError::Binding(_) => "binding",
            FlowError::Response(e) => e.label(),
            FlowError::Identity(_) => "user_id",
        }
    }
}

/// The cross-replica half of the replay check: the assertion ID claimed in
/// the session store (Redis: `SET NX PX`) until the assertion expires.
/// Ok(true) the first time; Ok(false) a replay (refuse with
/// [`SamlError::Replay`]); Err when the store cannot answer (503, fail
/// closed). A store that is not shared answers through [`finish`]'s
/// in-process cache alone.
pub async fn claim(
    store: &dyn crate::session::store::SessionStore,
    connection: &str,
    assertion: &Assertion,
    now: u64,
) -> Result<bool, crate::session::store::StoreError> {
    let ttl = std::time::Duration::from_secs(assertion.valid_until.saturating_sub(now).max(1));
    Ok(store
        .claim_once(connection, &assertion.id, ttl)
        .await?
        .unwrap_or(true))
}

/// The ACS: `saml_response` is the `SAMLResponse` form field; `pending`
/// the browser's pending logins of this connection (from its state cookie;
/// with the connection seam, the one named by `RelayState`:
/// `std::slice::from_ref(req.pending)`). The response must answer one of
/// their AuthnRequests (`InResponseTo` = a pending login's `nonce`). Returns the
/// identity, the assertion and the pending login answered (None when
/// IdP-initiated: the target is then `/`). `replay` is this process's
/// cache; with a shared session store call [`claim`] instead of relying on
/// it alone (it is still consulted first, and cheaply).
pub fn finish<'p>(
    conn: &SamlConnection,
    saml_response: &str,
    pending: &'p [PendingLogin],
    replay: &ReplayCache,
    now: u64,
) -> Result<(Identity, Assertion, Option<&'p PendingLogin>), FlowError> {
    let raw = binding::decode_post(saml_response)?;
    // Only this connection's pending requests count (a request to another
    // IdP is no answer here).
    let ids: Vec<String> = pending
        .iter()
        .filter(|p| p.connection == conn.name)
        .map(|p| p.nonce.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let expect = Expect {
        idp_entity_id: &conn.idp.entity_id,
        sp_entity_id: &conn.sp_entity_id,
        acs_url: &conn.acs_url,
        requested: Requested {
            ids: &ids,
            allow_idp_initiated: conn.allow_idp_initiated,
        },
        recipient_required: true,
        signed: conn.require_signed,
        now,
        skew: SKEW_SECS,
    };
    let assertion = validate_response(&raw, &conn.idp.trust, &expect)?;
    let identity = conn.attributes.identity(&assertion)?;
    if !replay.first_use(&assertion.id, assertion.valid_until, now) {
        return Err(SamlError::Replay.into());
    }
    let answered = assertion.in_response_to.as_deref().and_then(|irt| {
        pending
            .iter()
            .find(|p| p.connection == conn.name && p.nonce == irt)
    });
    Ok((identity, assertion, answered))
}

/// The session for a validated SAML identity (SPEC 6.1: user id
/// `<connection>:<subject>`; the email counts as verified only with
/// `trusted_email`; the session ends no later than the IdP's
/// `SessionNotOnOrAfter`). `sid` is the `SessionIndex`, so the IdP's
/// LogoutRequest ends the matching sessions.
pub fn session_for(
    conn: &SamlConnection,
    identity: &Identity,
    assertion: &Assertion,
    now: u64,
    lifetime_secs: u64,
) -> Session {
    let end = now.saturating_add(lifetime_secs);
    Session {
        derived: Default::default(),
        version: SESSION_VERSION,
        user_id: format!("{}:{}", conn.name, identity.subject),
        subject: identity.subject.clone(),
        tenant_id: None,
        connection: conn.name.clone(),
        issuer: assertion.issuer.clone(),
        sid: identity.session_index.clone(),
        email: identity.email.clone(),
        email_trust: if identity.email.is_some() && conn.trusted_email {
            EmailTrust::TrustedConnection
        } else {
            EmailTrust::Unverified
        },
        name: identity.name.clone(),
        preferred_username: identity.username.clone(),
        groups: identity.groups.iter().map(|g| g.as_str().into()).collect(),
        roles: Vec::new(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        saml_name_id: None,
        tokens_expire_at: None,
        client_addr: None,
        created_at: now,
        expires_at: assertion
            .session_not_on_or_after
            .map_or(end, |s| s.min(end)),
    }
}
