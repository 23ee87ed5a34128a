//! The `SessionStore` trait and the session id.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::model::Session;

/// A random session id: 256 bits from the OS CSPRNG. Never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// 256 fresh bits from the operating system's CSPRNG (`getrandom` via
    /// `rand::rngs::OsRng`). A failing OS RNG is unrecoverable for a security
    /// gateway, so it panics rather than hand out a guessable id.
    pub fn generate() -> SessionId {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionId(bytes)
    }
    pub fn from_bytes(bytes: [u8; 32]) -> SessionId {
        SessionId(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Never the id: a session id is a bearer credential (whoever has it is
/// signed in), so `{:?}` and `{}` both print a fixed placeholder.
impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted session id]")
    }
}

/// Why the store could not answer (fail closed on it).
#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct StoreError(pub String);

/// Where sessions live. `get` returns None for unknown or expired ids and
/// extends the idle timeout.
/// Object-safe (used as `Arc<dyn SessionStore>`), so methods return boxed futures.
pub trait SessionStore: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>>;
    /// `get` answered at once when that needs no I/O (the memory store
    /// always; a cache in front of a remote store on a hit); None when only
    /// `get` can answer. Spares the boxed future on every signed-in request.
    fn get_ready(&self, _id: &SessionId) -> Option<Result<Option<Arc<Session>>, StoreError>> {
        None
    }
    /// Insert or replace. The entry ends at `session.expires_at` at the latest.
    fn put<'a>(
        &'a self,
        id: &'a SessionId,
        session: Session,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>>;
    /// End every session of this user id made through `connection`;
    /// answers how many ended. Sessions of other connections are never
    /// touched (SPEC 6.1: revocation acts only within the connection that
    /// issued the identity); the stores index by (connection, user id).
    fn revoke_user<'a>(
        &'a self,
        connection: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// End every session of `connection` with this provider `sid`; answers
    /// how many ended. A `sid` is the provider's, so it is only ever
    /// looked up within one connection.
    fn revoke_sid<'a>(
        &'a self,
        connection: &'a str,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// Readiness: Ok when the store answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Approximate number of sessions (metrics). The Redis store answers
    /// with the sessions in this replica's local cache (counting the keys in
    /// a shared Redis would cost a scan).
    fn approximate_len(&self) -> u64;

    /// Like `get`, but never answered from a local cache: for the token
    /// refresh, which must see another replica's refresh at once.
    fn get_fresh<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        self.get(id)
    }

    /// Takes the cross-replica refresh lock of `id` for at most `ttl`,
    /// marked with `token` (random per attempt). True when taken. A store
    /// used by one process only needs no lock beyond the in-process
    /// single-flight, so the default always grants it.
    fn try_lock_refresh<'a>(
        &'a self,
        _id: &'a SessionId,
        _token: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(true) })
    }

    /// Marks `value` of `connection` (a SAML assertion ID) used for `ttl`
    /// across replicas: Some(true) the first time, Some(false) for a
    /// replay. None when the store is not shared (one process: the
    /// caller's in-process cache decides).
    fn claim_once<'a>(
        &'a self,
        _connection: &'a str,
        _value: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Starts an action that must happen once across replicas though it
    /// may fail half-way (a back-channel logout keyed by its token's
    /// `jti`): marks `value` of `connection` begun for `ttl`. Some(true):
    /// go ahead (the first time, or an earlier attempt never reached
    /// [`SessionStore::finish_once`]); Some(false): it was finished before
    /// (a replay). None when the store is not shared (the caller's
    /// in-process memory decides).
    fn begin_once<'a>(
        &'a self,
        _connection: &'a str,
        _value: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Marks the action [`SessionStore::begin_once`] began as finished for
    /// `ttl`: from now on it is a replay on every replica.
    fn finish_once<'a>(
        &'a self,
        _connection: &'a str,
        _value: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Counts one failed password sign-in under `key` (`ldap::limit`) in a
    /// window of `window`, from the key's first failure, or, with
    /// `restart`, from its last one; answers the count. None: this store
    /// is not shared between replicas, and the caller counts in its own
    /// process.
    fn count_failure<'a>(
        &'a self,
        _key: &'a str,
        _window: Duration,
        _restart: bool,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Reserves one sign-in attempt under way under each of `keys` when
    /// none has reached `max` failures and attempts under way together;
    /// answers whether it did, in one step for every replica (a
    /// reservation lives `ttl` at most). None: not shared, as for
    /// `count_failure` (the caller counts attempts under way itself).
    fn reserve_attempt<'a>(
        &'a self,
        _keys: &'a [String],
        _max: u32,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Ends an attempt [`SessionStore::reserve_attempt`] reserved (after
    /// its failure, if any, was counted).
    fn release_attempt<'a>(&'a self, _keys: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// The failures counted under `key` in its current window (None: as
    /// for `count_failure`).
    fn failures<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Forgets the failures counted under `key` (a successful sign-in).
    /// `false`: this store does not share counters (as for `count_failure`).
    fn clear_failures<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(false) })
    }

    /// The sessions `by` names, at most `limit` of them, for the admin
    /// listing (issue 22 item 8). Never extends a session's idle time.
    fn list<'a>(
        &'a self,
        _by: ListBy<'a>,
        _limit: usize,
    ) -> BoxFuture<'a, Result<Listing, StoreError>> {
        Box::pin(async { Err(StoreError("this session store cannot list sessions".into())) })
    }

    /// Keeps the refresh lock for `ttl` more while it still holds `token`:
    /// its holder renews it while the refresh runs (a slow provider plus
    /// Graph paging can outlast one `ttl`). False when it no longer holds
    /// `token` (it expired, and maybe another replica took it).
    fn extend_refresh_lock<'a>(
        &'a self,
        _id: &'a SessionId,
        _token: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(true) })
    }

    /// Releases the lock if it still holds `token` (it may have expired and
    /// been taken by another replica since).
    fn unlock_refresh<'a>(
        &'a self,
        _id: &'a SessionId,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What the admin listing (`GET /sessions`) asks for.
#[derive(Debug, Clone, Copy)]
pub enum ListBy<'a> {
    /// The sessions of one user id made through one connection.
    User {
        connection: &'a str,
        user_id: &'a str,
    },
    /// The sessions of one connection.
    Connection(&'a str),
}

/// One session as the admin listing shows it: never its id, a token, or
/// anything that would sign someone in. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// Names the session without being it: the hex SHA-256 of its id (the
    /// same hash the Redis store keys it by). A hash of 256 random bits
    /// cannot be turned back into the cookie.
    pub handle: String,
    pub connection: String,
    pub user_id: String,
    pub created_at: u64,
    /// When it was last used, as far as the store knows (memory: to the
    /// second; Redis: to the local cache TTL, unknown once the idle extension
    /// is capped by the absolute end). None when unknown.
    pub last_seen: Option<u64>,
    pub expires_at: u64,
    /// The client address that signed in; None for sessions made before
    /// it was kept, or by a sign-in without a client (tests).
    pub client_address: Option<std::net::IpAddr>,
}

/// What `list` found. `complete` is false when more sessions may match
/// than were returned (the limit, or a bounded scan).
#[derive(Debug, Default)]
pub struct Listing {
    pub sessions: Vec<SessionInfo>,
    pub complete: bool,
}

/// The listing handle of a session id (see [`SessionInfo::handle`]).
pub fn handle_of(id: &SessionId) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an operator's revocation (admin `POST /sessions/revoke`) names.
#[derive(Debug, Clone, Copy)]
pub enum Revoke<'a> {
    UserId(&'a str),
    Sid(&'a str),
}

/// Ends the matching sessions of each of `connections` in turn (the
/// operator names no connection). A user id names one connection's users
/// only (ids never collide across connections: `user_id_for`), except an
/// Entra `oid`, which is the same user through every Entra connection;
/// a `sid` is looked up in each connection's own index.
pub async fn revoke_in_each(
    store: &dyn SessionStore,
    connections: &[String],
    what: Revoke<'_>,
) -> Result<u64, StoreError> {
    let mut ended = 0u64;
    for c in connections {
        let n = match what {
            Revoke::UserId(u) => store.revoke_user(c, u).await?,
            Revoke::Sid(s) => store.revoke_sid(c, s).await?,
        };
        ended = ended.saturating_add(n);
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ_and_are_not_all_zero() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_ne!(a.as_bytes(), &[0u8; 32]);
    }

    #[test]
    fn debug_never_shows_the_id() {
        let id = SessionId::from_bytes([0xab; 32]);
        let shown = format!("{id:?}");
        assert_eq!(shown, "SessionId([redacted])");
        assert!(!shown.contains("ab"));
    }

    #[test]
    fn display_never_shows_the_id_either() {
        let id = SessionId::from_bytes([0xab; 32]);
        let shown = format!("{id}");
        assert_eq!(shown, "[redacted session id]");
        assert!(!shown.contains("ab") && !shown.contains("171"));
        // Nor when it travels inside another value's Debug.
        assert!(!format!("{:?}", Some(&id)).contains("ab"));
    }

    #[test]
    fn session_debug_never_shows_the_provider_tokens() {
        let session = Session {
            derived: Default::default(),
            version: crate::session::model::SESSION_VERSION,
            user_id: "u1".into(),
            subject: "s".into(),
            tenant_id: None,
            connection: "c".into(),
            issuer: "https://idp.example".into(),
            sid: None,
            email: None,
            email_trust: crate::session::model::EmailTrust::Unverified,
            name: None,
            preferred_username: None,
            groups: vec![],
            roles: Vec::new(),
            claims: None,
            id_token: Some("SECRET-ID-TOKEN".into()),
            access_token: Some("SECRET-ACCESS-TOKEN".into()),
            refresh_token: Some("SECRET-REFRESH-TOKEN".into()),
            saml_name_id: None,
            tokens_expire_at: None,
            client_addr: None,
            created_at: 0,
            expires_at: 1,
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("refresh_token: Some(\"[redacted]\")"),
            "{shown}"
        );
        assert!(shown.contains("user_id: \"u1\""), "{shown}");
        // An error that holds the session (a policy denial) neither.
        let denied = crate::respond::GatewayError::Denied(Box::new(crate::policy::Denied {
            reason: crate::policy::DenyReason::Groups,
            user: std::sync::Arc::new(session),
        }));
        assert!(!format!("{denied:?}").contains("SECRET"));
    }
}
