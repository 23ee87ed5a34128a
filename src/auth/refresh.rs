//! Token refresh (SPEC 5.2): with `session.refresh_tokens = true` and a
//! refresh token in the session, the tokens are refreshed when less than
//! [`REFRESH_MARGIN_SECS`] remain before the earlier of the access and ID
//! token expiry, on the request that notices it (`auth::gate`), or at once
//! with `GET /.auth/refresh`.
//!
//! - Single-flight: one refresh per session at a time in this process. The
//!   lock is per session (keyed by the SHA-256 of the id, never the id
//!   itself); a request that waited re-reads the session and uses the
//!   refresh another request just did instead of refreshing again.
//!   Across replicas (Redis store), the request that holds the in-process
//!   lock then takes the store's short lock (`SET NX PX`, see
//!   [`SessionStore::try_lock_refresh`](crate::session::store::SessionStore::try_lock_refresh)): providers rotate refresh tokens,
//!   so a second replica refreshing with the same token would be refused
//!   and end the session. Its holder renews it while the refresh runs
//!   (a slow provider plus Graph's pages can outlast its ttl); it expires
//!   by itself when the holder dies. A replica that finds the lock taken re-reads the
//!   session from the store (never a cache) until the other replica's
//!   refresh lands, for at most [`LOCK_WAIT`]; the memory store grants the
//!   lock at once.
//! - A refusal by the provider (`invalid_grant`…) or a refreshed ID token
//!   that fails verification ends the session, and so does one that names
//!   another identity: a changed issuer, `sub`, or on Entra `oid` or `tid`
//!   (`same_identity`; the identity key never changes under a session).
//!   An unreachable provider ends it only once the tokens have expired;
//!   until then the session keeps working and a request at least
//!   [`RETRY_AFTER_UNAVAILABLE_SECS`] later retries.
//! - Profile and groups are re-read from the new ID token (Graph again on
//!   overage; if Graph fails, the previous groups are kept and the failure
//!   is logged and counted), and, with `extended_profile`, from userinfo.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ctx::Ctx;
use super::state::AuthState;
use crate::config::ConnectionSettings;
use crate::oidc::{OidcError, Provider, RefreshedTokens, VerifiedIdToken};
use crate::respond::json;
use crate::respond::{Body, GatewayError};
use crate::session::model::Session;
use crate::session::store::SessionId;

/// Refresh when fewer seconds than this remain before the tokens expire.
pub(crate) const REFRESH_MARGIN_SECS: u64 = 60;

/// After the provider was unreachable, a session's refresh is not retried
/// for this long (while its tokens are still valid), so an outage does not
/// make every request wait for a failing token call.
const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 30;

/// How long one replica holds a session's refresh lock without renewing
/// it: it expires by itself this long after its holder dies. The holder
/// renews it every [`LOCK_RENEW`] while the refresh runs (the token call,
/// Graph's pages and userinfo, each bounded, may together outlast it).
const LOCK_TTL: Duration = Duration::from_secs(15);

/// How often the holder renews the refresh lock.
const LOCK_RENEW: Duration = Duration::from_secs(5);

/// How long a request waits for another replica's refresh of its session.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Between looks at the session while another replica refreshes it.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// True when `session` should be refreshed now.
fn due(state: &AuthState, session: &Session, now: u64) -> bool {
    state.settings.session.refresh_tokens
        && session.refresh_token.is_some()
        && session
            .tokens_expire_at
            .is_some_and(|exp| exp < now.saturating_add(REFRESH_MARGIN_SECS))
}

/// The session to use for this request: `session` itself, or a refreshed
/// copy when its tokens are about to expire. `NotSignedIn` when a refresh
/// failed and the session was ended.
pub(crate) async fn if_due(
    state: &AuthState,
    id: &SessionId,
    session: Arc<Session>,
) -> Result<Arc<Session>, GatewayError> {
    if !due(state, &session, super::now()) {
        return Ok(session);
    }
    // Boxed: the refresh future (token request, Graph, store) is large, and
    // every request's future would otherwise carry its size (see handler.rs).
    Box::pin(refresh(state, id, &session, false)).await
}

/// Refreshes under the session's lock. Unless `force`, a refresh another
/// request finished while this one waited is used instead.
async fn refresh(
    state: &AuthState,
    id: &SessionId,
    seen: &Session,
    force: bool,
) -> Result<Arc<Session>, GatewayError> {
    let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
    let lock = state
        .shared
        .refresh_flights
        .get_with(key, async { Arc::new(tokio::sync::Mutex::new(None)) })
        .await;
    let mut last_unavailable = lock.lock().await;
    let token = lock_token();
    let store = &state.shared.sessions;
    let waiting_since = Instant::now();
    loop {
        match store.try_lock_refresh(id, &token, LOCK_TTL).await {
            Ok(true) => break,
            Ok(false) => {
                // Another replica is refreshing this session: use its result.
                let current = load_fresh(state, id).await?;
                let now = super::now();
                if current.refresh_token != seen.refresh_token || !due(state, &current, now) {
                    return Ok(current);
                }
                if waiting_since.elapsed() >= LOCK_WAIT {
                    tracing::warn!(user.id = %current.user_id, "another replica's token refresh of this session did not finish in time");
                    return if current.tokens_expire_at.is_some_and(|exp| exp > now) {
                        Ok(current)
                    } else {
                        Err(GatewayError::ProviderUnavailable)
                    };
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "session store failed while taking the refresh lock");
                // The refreshed session could not be saved either. Keep
                // serving while the current tokens are valid.
                return if seen.tokens_expire_at.is_some_and(|exp| exp > super::now()) {
                    Ok(Arc::new(seen.clone()))
                } else {
                    Err(GatewayError::StoreUnavailable)
                };
            }
        }
    }
    let work = refresh_locked(state, id, seen, force, &mut last_unavailable);
    let result = renewing_lock(store.as_ref(), id, &token, work).await;
    if let Err(e) = store.unlock_refresh(id, &token).await {
        // It expires by itself within LOCK_TTL.
        tracing::warn!(error = %e, "could not release a token refresh lock");
    }
    result
}

/// Runs `work` while renewing the store's refresh lock `token` holds every
/// [`LOCK_RENEW`], so a refresh that outlasts [`LOCK_TTL`] keeps it; a
/// holder that dies stops renewing and the lock expires by itself.
async fn renewing_lock<T>(
    store: &dyn crate::session::store::SessionStore,
    id: &SessionId,
    token: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + LOCK_RENEW, LOCK_RENEW);
    loop {
        tokio::select! {
            // The work first: once it is done, no renewal is sent.
            biased;
            result = &mut work => return result,
            _ = renew.tick() => match store.extend_refresh_lock(id, token, LOCK_TTL).await {
                Ok(true) => {}
                // Not fatal: the refresh goes on; another replica may
                // refresh too, as before the lock existed.
                Ok(false) => tracing::warn!("a token refresh outlasted its lock, which another replica may have taken"),
                Err(e) => tracing::warn!(error = %e, "could not renew a token refresh lock"),
            },
        }
    }
}

/// A random token that marks this attempt's hold of the store lock.
fn lock_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session as the store has it now (never from a replica's cache).
async fn load_fresh(state: &AuthState, id: &SessionId) -> Result<Arc<Session>, GatewayError> {
    state
        .shared
        .sessions
        .get_fresh(id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "session store failed");
            GatewayError::StoreUnavailable
        })?
        .ok_or(GatewayError::NotSignedIn)
}

/// The refresh itself, under both locks.
async fn refresh_locked(
    state: &AuthState,
    id: &SessionId,
    seen: &Session,
    force: bool,
    last_unavailable: &mut Option<u64>,
) -> Result<Arc<Session>, GatewayError> {
    let current = load_fresh(state, id).await?;
    let now = super::now();
    if !force && (current.refresh_token != seen.refresh_token || !due(state, &current, now)) {
        return Ok(current);
    }
    let still_valid = current.tokens_expire_at.is_some_and(|exp| exp > now);
    if !force
        && still_valid
        && last_unavailable.is_some_and(|t| now < t.saturating_add(RETRY_AFTER_UNAVAILABLE_SECS))
    {
        return Ok(current);
    }
    let Some(conn) = state.connection(&current.connection).cloned() else {
        return Err(GatewayError::NotSignedIn);
    };
    let (Some(provider), Some(refresh_token)) = (
        state.shared.providers.get(&conn.name),
        current.refresh_token.as_deref(),
    ) else {
        return Err(GatewayError::NotSignedIn);
    };
    let outcome = match provider.refresh_tokens(refresh_token).await {
        Ok(tokens) => {
            let verified = match tokens.id_token.as_deref() {
                Some(raw) => provider
                    .verify_refreshed_id_token(raw, &current.subject)
                    .await
                    .map(Some),
                None => Ok(None),
            };
            verified.map(|v| (tokens, v))
        }
        Err(e) => Err(e),
    };
    // Hole 9 of issue 17: a refreshed ID token must name the same identity
    // as the session (issuer, sub, and on Entra oid and tid). Anything else
    // ends the session, as a refusal does; the values are not logged.
    let outcome = outcome.and_then(|(tokens, verified)| match &verified {
        Some(v) if !same_identity(&conn, &current, v) => Err(OidcError::InvalidToken(
            "the refreshed ID token names another identity (issuer, sub, oid or tid changed)"
                .into(),
        )),
        _ => Ok((tokens, verified)),
    });
    let (tokens, verified) = match outcome {
        Ok(ok) => ok,
        Err(OidcError::Unavailable(why)) if still_valid => {
            *last_unavailable = Some(now);
            tracing::warn!(connection = %conn.name, user.id = %current.user_id, error = %why, "token refresh failed (provider unavailable); the tokens are still valid, retrying on a later request");
            return Ok(current);
        }
        Err(e) => {
            tracing::info!(connection = %conn.name, user.id = %current.user_id, error = %e, "token refresh failed; the session ends");
            state
                .shared
                .metrics
                .record_login(&conn.name, "refresh_failed");
            if let Err(e) = state.shared.sessions.delete(id).await {
                tracing::error!(error = %e, "session store failed while ending a session");
                return Err(GatewayError::StoreUnavailable);
            }
            return Err(GatewayError::NotSignedIn);
        }
    };
    let updated = updated_session(
        state,
        &conn,
        &provider,
        &current,
        tokens,
        verified.as_ref(),
        now,
    )
    .await;
    state
        .shared
        .sessions
        .put(id, updated.clone())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "session store failed while saving refreshed tokens");
            GatewayError::StoreUnavailable
        })?;
    tracing::debug!(connection = %conn.name, user.id = %updated.user_id, "tokens refreshed");
    Ok(Arc::new(updated))
}

/// True when `token` names the identity `session` was made for: the same
/// issuer and `sub`, and the same user id (`oid` on Entra) and `tid`. The
/// user id is the key of headers, policies and revocation, so it may never
/// change under a session; profile and groups may.
fn same_identity(conn: &ConnectionSettings, session: &Session, token: &VerifiedIdToken) -> bool {
    token.iss() == session.issuer
        && token.sub() == session.subject
        && crate::session::model::user_id_for(conn, token.sub(), token.oid()).as_deref()
            == Some(session.user_id.as_str())
        && crate::session::model::tenant_id_for(conn, token.tid()) == session.tenant_id.as_deref()
}

/// The session with the new tokens and, from a new ID token, the profile
/// and groups re-read. The user id, subject and connection never change.
async fn updated_session(
    state: &AuthState,
    conn: &ConnectionSettings,
    provider: &Provider,
    current: &Session,
    tokens: RefreshedTokens,
    verified: Option<&VerifiedIdToken>,
    now: u64,
) -> Session {
    let mut s = current.clone();
    if let Some(token) = verified {
        s.email = token.email().map(str::to_string);
        s.email_trust = crate::connection::oidc::email_trust_of(conn, token);
        let settings = &state.settings;
        s.disown_foreign_email(|domain| settings.domain_owner(domain));
        s.name = token.name().map(str::to_string);
        s.preferred_username = token.preferred_username().map(str::to_string);
        s.roles = crate::connection::roles_claim(token.claims())
            .into_iter()
            .map(Into::into)
            .collect();
        s.claims = if conn.extended_profile {
            Some(
                provider
                    .profile_claims(token, tokens.access_token.as_deref())
                    .await,
            )
        } else {
            None
        };
        let env = crate::connection::oidc::Env {
            http: state.shared.providers.http_client(),
            metrics: &state.shared.metrics,
            provider: Some(provider),
        };
        match crate::connection::oidc::groups_of(&env, conn, token, tokens.access_token.as_deref())
            .await
        {
            Ok(groups) => s.groups = groups.into_iter().map(Into::into).collect(),
            Err(e) => tracing::warn!(
                connection = %conn.name,
                user.id = %s.user_id,
                error = %e,
                "group overage: groups could not be re-read from Graph at refresh; keeping the previous ones"
            ),
        }
    }
    // Kept only when a feature needs it (as at sign-in).
    if let Some(raw) = tokens.id_token {
        if super::callback::keeps_id_token(&state.settings, conn) {
            s.id_token = Some(raw);
        }
    }
    // Kept only for routes that pass it upstream (as at sign-in).
    if tokens.access_token.is_some() && state.settings.routes.iter().any(|r| r.pass_access_token) {
        s.access_token = tokens.access_token;
    }
    if tokens.refresh_token.is_some() {
        s.refresh_token = tokens.refresh_token;
    }
    s.tokens_expire_at = tokens
        .expires_in
        .map(|d| now.saturating_add(d.as_secs()))
        .into_iter()
        .chain(verified.and_then(VerifiedIdToken::exp))
        .min();
    s
}

/// `GET /.auth/refresh`: refresh now. 200 JSON with the new expiry; 401
/// JSON when not signed in or when the refresh failed (the session ended).
pub(crate) async fn endpoint(ctx: &Ctx<'_>, parts: &Parts) -> Result<Response<Body>, GatewayError> {
    let not_signed_in = || {
        json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "not_signed_in", "message": "No session, or it ended because its tokens could not be refreshed. Sign in at /.auth/login."}),
        )
    };
    let Some(id) = ctx.state.cookies.read_for(&parts.headers, ctx.https) else {
        return Ok(not_signed_in());
    };
    let Some(session) = super::state::load_session(ctx.state, &id).await? else {
        return Ok(not_signed_in());
    };
    if ctx.state.connection(&session.connection).is_none() {
        return Ok(not_signed_in());
    }
    if !ctx.state.settings.session.refresh_tokens || session.refresh_token.is_none() {
        let why = if ctx.state.settings.session.refresh_tokens {
            "the provider issued no refresh token (add the offline_access scope)"
        } else {
            "session.refresh_tokens is false"
        };
        return Ok(json(
            StatusCode::OK,
            &json!({"refreshed": false, "reason": why, "tokens_expire_at": session.tokens_expire_at, "expires_at": session.expires_at}),
        ));
    }
    match refresh(ctx.state, &id, &session, true).await {
        Ok(s) => Ok(json(
            StatusCode::OK,
            &json!({"refreshed": true, "tokens_expire_at": s.tokens_expire_at, "expires_at": s.expires_at}),
        )),
        Err(GatewayError::NotSignedIn) => {
            let mut resp = not_signed_in();
            resp.headers_mut()
                .append(http::header::SET_COOKIE, ctx.state.cookies.clear(ctx.https));
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::future::BoxFuture;

    use super::{renewing_lock, LOCK_RENEW, LOCK_TTL};
    use crate::session::model::Session;
    use crate::session::store::{SessionId, SessionStore, StoreError};

    /// Counts the lock renewals; nothing else is called.
    #[derive(Default)]
    struct Renewals(AtomicU32);

    impl SessionStore for Renewals {
        fn get<'a>(
            &'a self,
            _: &'a SessionId,
        ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
            unreachable!("not read")
        }
        fn put<'a>(
            &'a self,
            _: &'a SessionId,
            _: Session,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            unreachable!("not written")
        }
        fn delete<'a>(&'a self, _: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>> {
            unreachable!("not deleted")
        }
        fn revoke_user<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<u64, StoreError>> {
            unreachable!("not revoked")
        }
        fn revoke_sid<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<u64, StoreError>> {
            unreachable!("not revoked")
        }
        fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async { Ok(()) })
        }
        fn approximate_len(&self) -> u64 {
            0
        }
        fn extend_refresh_lock<'a>(
            &'a self,
            _: &'a SessionId,
            token: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<bool, StoreError>> {
            assert_eq!((token, ttl), ("t", LOCK_TTL));
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_outlasts_the_lock_keeps_renewing_it_and_a_quick_one_never_does() {
        let store = Renewals::default();
        let id = SessionId::generate();
        // A refresh of 40 s (a slow provider, then Graph's pages): renewed
        // every LOCK_RENEW, so the lock never lapses under it.
        let slow = renewing_lock(&store, &id, "t", async {
            tokio::time::sleep(Duration::from_secs(40)).await;
            7
        })
        .await;
        assert_eq!(slow, 7);
        let renewals = store.0.load(Ordering::SeqCst);
        assert_eq!(
            renewals,
            40 / LOCK_RENEW.as_secs() as u32 - 1,
            "every {LOCK_RENEW:?}, the last one cut short"
        );
        assert!(
            LOCK_RENEW * 2 < LOCK_TTL,
            "a renewal comes well before the lock lapses"
        );
        // A refresh within LOCK_RENEW costs no renewal.
        let quick = renewing_lock(&store, &id, "t", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        quick.await;
        assert_eq!(store.0.load(Ordering::SeqCst), renewals);
    }
}
