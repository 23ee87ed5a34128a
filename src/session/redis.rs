//! The Redis store: sessions shared by every replica, with a small local
//! cache in front (SPEC 5.2).
//!
//! - **Where things live**: see `keys` (session, tombstone, refresh lock,
//!   per-user and per-`sid` index sets; ids hashed, hash tags for Cluster).
//! - **Encoding**: a compact binary record (`record`: GUIDs as 16 bytes,
//!   base64url as its bytes, varint lengths), about a third of the serde
//!   JSON that earlier builds wrote; JSON records are still read (the first
//!   byte tells), so sessions survive a rolling upgrade in that direction.
//!   A record that does not decode in full is treated as signed out. The
//!   memory store's packed form cannot go to Redis as it is: it points
//!   into a per-process string interner.
//! - **Expiry**: a key lives `min(idle timeout, time to the absolute end)`;
//!   every read from Redis extends it (`GETEX`), never past the absolute
//!   end. Reads answered by the local cache do not reach Redis, so the idle
//!   timeout can end a session early: up to one cache TTL (capped at an
//!   eighth of the idle timeout), or, on a single server where sweeps keep
//!   confirming the copy, up to an eighth of the idle timeout and at most
//!   five minutes (`generations`).
//! - **Local cache**: a hit costs no Redis command. Entries are served for
//!   the cache TTL (default 5 s) after Redis last showed them current: by
//!   answering them (`GETEX`), or, on a single server, by a sweep of the
//!   change generations once a second (`generations`). Delete, revocation
//!   and every write publish the session hashes on `<prefix>invalidate`;
//!   each replica's subscriber evicts them (`subscriber`, `cache`). Past its
//!   TTL an entry is kept while it is read, with its record: when Redis
//!   answers the same bytes the decoded copy is reused instead of decoding
//!   again (`cache`, "Kept copies").
//! - **Connections**: one per proxy thread plus a shared one (`conn`).
//! - **Redis down**: cached sessions keep working until their entry
//!   expires; every other call fails with [`StoreError`] within the
//!   command timeout, which the gateway turns into a fail-closed answer;
//!   `ping` fails, so `/readyz` reports it. The connection comes back by
//!   itself.
//! - **Revocation and refresh across replicas**: see `put`, `revoke` and
//!   `try_lock_refresh`.

mod cache;
mod conn;
mod generations;
mod keys;
mod record;
mod subscriber;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use redis::AsyncCommands;

use self::cache::{Local, Stale};
use self::conn::Conn;
use self::keys::{hex, parse_hex, session_hash, Hash, Keys, Scripts};
use super::model::{Session, SESSION_VERSION};
use super::store::{ListBy, Listing, SessionId, SessionInfo, SessionStore, StoreError};

/// How long an ended id stays refused by `put` (longer than any token
/// refresh round trip to a provider), as in the memory store.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

/// How many cache TTLs an entry is kept for revalidation (`cache`).
const KEEP_TTLS: u32 = 12;
/// Longest time a copy is confirmed by sweeps alone before a `GETEX`
/// reads it again (see `generations`).
const MAX_REREAD: Duration = Duration::from_secs(300);

/// What the Redis store needs to know.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// One URL (`redis://` or `rediss://`), or the seed nodes of a cluster.
    pub urls: Vec<String>,
    /// Redis Cluster (a list of nodes was configured).
    pub cluster: bool,
    /// Put before every key and the channel name.
    pub key_prefix: String,
    /// The session idle timeout.
    pub idle_timeout: Duration,
    /// How long a replica may answer from its local cache (zero: no cache).
    pub cache_ttl: Duration,
    /// Sessions in the local cache at most.
    pub cache_capacity: u64,
    /// Bound on every call to Redis, connecting included.
    pub command_timeout: Duration,
}

impl RedisOptions {
    /// Options with the defaults: 5 s local cache of up to 100,000
    /// sessions, 1 s command timeout.
    pub fn new(urls: Vec<String>, cluster: bool, key_prefix: &str, idle_timeout: Duration) -> Self {
        RedisOptions {
            urls,
            cluster,
            key_prefix: key_prefix.to_string(),
            idle_timeout,
            cache_ttl: Duration::from_secs(5),
            cache_capacity: 100_000,
            command_timeout: Duration::from_secs(1),
        }
    }
}

/// Sessions in Redis, shared by replicas.
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
    scripts: Scripts,
    local: Arc<Local>,
    idle_timeout: Duration,
    timeout: Duration,
    subscriber: tokio::task::JoinHandle<()>,
    /// Reads the change generations (`generations`); `None` on a Cluster
    /// or without a local cache.
    sweeper: Option<tokio::task::JoinHandle<()>>,
    /// The change generations' key, written with every session change;
    /// `None` on a Cluster. Written even by a replica without a local
    /// cache: other replicas' caches rely on it.
    generations: Option<String>,
}

// === impl RedisStore ===

impl RedisStore {
    /// A store that connects lazily (Redis may be down at start) and starts
    /// its invalidation subscriber. Must be called inside a Tokio runtime.
    pub fn new(opts: RedisOptions) -> Result<RedisStore, StoreError> {
        let first = opts
            .urls
            .first()
            .ok_or_else(|| StoreError("session.redis_url is empty".into()))?;
        let conn = if opts.cluster {
            Conn::cluster(&opts.urls, opts.command_timeout)?
        } else {
            Conn::single(first, opts.command_timeout)?
        };
        let sources = if opts.cluster {
            opts.urls.clone()
        } else {
            vec![first.clone()]
        }
        .iter()
        .map(|u| redis::Client::open(u.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            StoreError(format!(
                "session.redis_url cannot be used ({:?}); check scheme, host and port",
                e.kind()
            ))
        })?;
        let cache_ttl = opts.cache_ttl.min(opts.idle_timeout / 8);
        // Kept copies (see `cache`): a dozen TTLs, never past the idle timeout.
        let keep = cache_ttl.saturating_mul(KEEP_TTLS).min(opts.idle_timeout);
        let mut local = Local::new(cache_ttl, keep, opts.cache_capacity);
        // A copy that sweeps keep confirming is read with `GETEX` again
        // within an eighth of the idle timeout (as a TTL is capped) and
        // within `MAX_REREAD`: an active session's idle time in Redis ends
        // at most that early, and a change sweeps cannot see reaches it.
        local.set_reread((opts.idle_timeout / 8).min(MAX_REREAD));
        let local = Arc::new(local);
        let keys = Keys::new(&opts.key_prefix);
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError("the Redis session store must be opened inside the Tokio runtime".into())
        })?;
        let subscriber = runtime.spawn(subscriber::run(
            sources,
            keys.channel(),
            local.clone(),
            opts.command_timeout,
        ));
        let generations = (!opts.cluster).then(|| keys.generations());
        // A connection of its own: a sweep never waits behind requests'
        // commands, nor they behind it.
        let sweeper = if opts.cluster || !local.is_enabled() {
            None
        } else {
            let conn = Conn::single(first, opts.command_timeout)?;
            Some(runtime.spawn(generations::run(
                conn,
                Keys::new(&opts.key_prefix),
                local.clone(),
                opts.command_timeout,
            )))
        };
        Ok(RedisStore {
            conn,
            keys,
            scripts: Scripts::new(),
            local,
            idle_timeout: opts.idle_timeout,
            timeout: opts.command_timeout,
            subscriber,
            sweeper,
            generations,
        })
    }

    /// True while the invalidation subscription is up (tests wait for it).
    pub fn is_subscribed(&self) -> bool {
        self.local.is_subscribed()
    }

    /// Invalidation messages this replica has handled, its own included
    /// (tests wait for a message to land: they arrive in the order sent).
    pub fn invalidations_handled(&self) -> u64 {
        self.local.messages_handled()
    }

    /// Reads from Redis (extending the idle timeout) and caches the result.
    /// `stale`: a kept copy of this session past its TTL (`cache`), served
    /// again without decoding when Redis answers the very same record.
    async fn fetch(
        &self,
        h: &Hash,
        stale: Option<Stale>,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let seen = self.local.epoch(h);
        // Noted before the GETEX is sent (see `generations`).
        let proof = self.local.proof(h, self.idle_timeout);
        let key = self.keys.session(h);
        let idle_ms = millis(self.idle_timeout);
        let raw: Option<Vec<u8>> = match self
            .conn
            .run(self.timeout, "GETEX", |mut c| {
                let key = &key;
                async move {
                    redis::cmd("GETEX")
                        .arg(key)
                        .arg("PX")
                        .arg(idle_ms)
                        .query_async(&mut c)
                        .await
                }
            })
            .await
        {
            Ok(raw) => raw,
            // Redis unreachable: a copy within its TTL answers, as it would
            // have without asking (it is asked only because the invalidation
            // subscription is down: `cache`, "Without the invalidation
            // subscription").
            Err(e) => match stale {
                Some(st) if self.local.still_fresh(&st) => return Ok(Some(st.session())),
                _ => return Err(e),
            },
        };
        let Some(raw) = raw else {
            if stale.is_some() {
                self.local.forget(h);
            }
            return Ok(None);
        };
        // The same bytes decode to the same session: the kept copy (which
        // was current when decoded; `SESSION_VERSION` is fixed per build).
        let reused = stale.as_ref().and_then(|st| st.reuse(&raw));
        let confirmed = reused.is_some();
        let session = match reused {
            Some(s) => s,
            None => match self.decode(h, &raw).await {
                Some(s) => Arc::new(s),
                None => {
                    if stale.is_some() {
                        self.local.forget(h);
                    }
                    return Ok(None);
                }
            },
        };
        let now = unix_now();
        if session.expires_at <= now {
            return Ok(None);
        }
        if session.expires_at.saturating_sub(now).saturating_mul(1000) < idle_ms {
            // The idle extension must not outlast the absolute end.
            let at_ms = session.expires_at.saturating_mul(1000);
            let pexpire = self
                .conn
                .run(self.timeout, "PEXPIREAT", |mut c| {
                    let key = &key;
                    async move { c.pexpire_at::<_, i64>(key, at_ms as i64).await }
                })
                .await;
            if let Err(e) = pexpire {
                // The session is still checked against `expires_at` on every read.
                tracing::debug!(error = %e, "could not cap a session's Redis TTL at its end");
            }
        }
        match stale {
            Some(st) if confirmed => self.local.confirm(h, &st, seen, proof),
            _ => self
                .local
                .insert(*h, session.clone(), raw.into_boxed_slice(), seen, proof),
        }
        Ok(Some(session))
    }

    /// A record read from Redis as a current session, or `None` (signed
    /// out here) when it does not decode or was written by another version.
    async fn decode(&self, h: &Hash, raw: &[u8]) -> Option<Session> {
        let session = match record::decode(raw) {
            Ok(s) => s,
            Err(e) => {
                // Left in Redis: a newer replica may be able to read it.
                tracing::error!(error = %e, "a session in Redis cannot be read (damaged, or written by a newer version?); treating it as signed out");
                return None;
            }
        };
        if !session.is_current() {
            // Written before an upgrade that changed what a session means
            // (`SESSION_VERSION`: user ids of issue 17). Absent: the user
            // signs in again once. An older record is ended, so it and its
            // index entries cannot come back; a newer one (a replica already
            // upgraded, during a rolling upgrade) is left for the replicas
            // that can read it.
            let older = session.version < SESSION_VERSION;
            tracing::info!(
                version = session.version,
                "a session written by another version was found; treating it as signed out here"
            );
            if older {
                if let Err(e) = self.end(h).await {
                    tracing::debug!(error = %e, "could not end an old-format session");
                }
            }
            return None;
        }
        Some(session)
    }

    /// Ends one session (tombstone + delete); true when it existed.
    async fn end(&self, h: &Hash) -> Result<bool, StoreError> {
        let (key, tomb) = (&self.keys.session(h), &self.keys.tombstone(h));
        let script = &self.scripts.end;
        let n: i64 = self
            .with_generations(|generations| {
                self.conn
                    .run(self.timeout, "delete", move |mut c| async move {
                        let mut call = script.key(key);
                        call.key(tomb).arg(millis(TOMBSTONE_TTL));
                        generations::name_slot(&mut call, generations, h);
                        generations::unless_cross_slot(call.invoke_async(&mut c).await)
                    })
            })
            .await?;
        self.local.evict(h);
        Ok(n == 1)
    }

    /// Runs a session write (`put` or `end` script) naming the generations
    /// key while the server takes it (`write` answers `None` when the
    /// server refused the script for spanning hash slots: nothing was
    /// changed), else without it.
    async fn with_generations<'s, T, F, Fut>(&'s self, write: F) -> Result<T, StoreError>
    where
        F: Fn(Option<&'s str>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, StoreError>>,
    {
        if let Some(g) = self.generations.as_deref() {
            if self.local.generations_usable() {
                if let Some(done) = write(Some(g)).await? {
                    return Ok(done);
                }
                self.local.generations_unusable();
            }
        }
        write(None).await?.ok_or_else(|| {
            StoreError("redis: a session write was refused for spanning hash slots".into())
        })
    }

    /// Tells every replica to drop these sessions from its local cache. A
    /// failure is logged, not returned: the change itself is in Redis, and
    /// other replicas' copies expire within the cache TTL anyway.
    async fn publish(&self, hashes: &[Hash]) {
        if hashes.is_empty() {
            return;
        }
        let channel = &self.keys.channel();
        let payload = &hashes.iter().map(hex).collect::<Vec<_>>().join(" ");
        let sent = self
            .conn
            .run(self.timeout, "PUBLISH", |mut c| async move {
                c.publish::<_, _, i64>(channel, payload).await
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not announce a session change to other replicas; their cached copies end within the cache TTL");
        }
    }

    async fn add_to_index(&self, index: String, h: &Hash, ttl_ms: u64) -> Result<(), StoreError> {
        let script = &self.scripts.index;
        let (index, member) = (&index, &hex(h));
        let _size: i64 = self
            .conn
            .run(self.timeout, "index", |mut c| async move {
                script
                    .key(index)
                    .arg(member)
                    .arg(ttl_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn put_now(&self, id: &SessionId, session: Session) -> Result<(), StoreError> {
        let h = session_hash(id);
        let now = unix_now();
        if session.expires_at <= now {
            self.end(&h).await?;
            self.publish(&[h]).await;
            return Ok(());
        }
        let left_ms = session.expires_at.saturating_sub(now).saturating_mul(1000);
        let ttl_ms = left_ms.min(millis(self.idle_timeout)).max(1);
        let value = encode(&session)?;
        // Indexes first: a revocation running now then either sees this
        // session in the index (and tombstones it, so the write below is
        // refused or deleted) or ran completely before it.
        self.add_to_index(
            self.keys.user_index(&session.connection, &session.user_id),
            &h,
            left_ms,
        )
        .await?;
        if let Some(sid) = &session.sid {
            self.add_to_index(self.keys.sid_index(&session.connection, sid), &h, left_ms)
                .await?;
        }
        let (key, tomb, value) = (&self.keys.session(&h), &self.keys.tombstone(&h), &value);
        let script = &self.scripts.put;
        let h_ref = &h;
        let stored: i64 = self
            .with_generations(|generations| {
                self.conn.run(self.timeout, "SET", move |mut c| async move {
                    let mut call = script.key(key);
                    call.key(tomb).arg(value).arg(ttl_ms);
                    generations::name_slot(&mut call, generations, h_ref);
                    generations::unless_cross_slot(call.invoke_async(&mut c).await)
                })
            })
            .await?;
        if stored == 0 {
            tracing::debug!("session was ended while being updated; not stored again");
        }
        // Other replicas may hold the previous version (a token refresh).
        self.local.evict(&h);
        self.publish(&[h]).await;
        Ok(())
    }

    async fn revoke(&self, index: String) -> Result<u64, StoreError> {
        let index = &index;
        let members: Vec<String> = {
            self.conn
                .run(self.timeout, "SMEMBERS", |mut c| async move {
                    c.smembers(index).await
                })
                .await?
        };
        let mut ended = 0;
        let mut hashes = Vec::with_capacity(members.len());
        for m in &members {
            let Some(h) = parse_hex(m) else { continue };
            if self.end(&h).await? {
                ended += 1;
            }
            hashes.push(h);
        }
        // Only the members seen: a session indexed meanwhile stays indexed.
        if !members.is_empty() {
            let members = &members;
            self.conn
                .run(self.timeout, "SREM", |mut c| async move {
                    c.srem::<_, _, i64>(index, members).await
                })
                .await?;
        }
        self.publish(&hashes).await;
        Ok(ended)
    }
}

/// Session keys a listing by connection reads at most (`SCAN`): beyond
/// that it answers what it found, marked incomplete.
const MAX_LISTING_SCAN: usize = 10_000;

impl RedisStore {
    /// The admin listing: by user from the user's index set; by connection
    /// with a bounded `SCAN` of the session keys (one server; a cluster
    /// would need a scan of every node, so it lists by user only). Reads
    /// with `GET` and `PTTL`, never `GETEX`: listing does not extend a
    /// session's idle time.
    async fn list_now(&self, by: ListBy<'_>, limit: usize) -> Result<Listing, StoreError> {
        let (connection, user) = match by {
            ListBy::User {
                connection,
                user_id,
            } => (connection, Some(user_id)),
            ListBy::Connection(c) => (c, None),
        };
        let mut listing = Listing {
            sessions: Vec::new(),
            complete: true,
        };
        if let Some(user_id) = user {
            let index = &self.keys.user_index(connection, user_id);
            let members: Vec<String> = self
                .conn
                .run(self.timeout, "SMEMBERS", |mut c| async move {
                    c.smembers(index).await
                })
                .await?;
            for h in members.iter().filter_map(|m| parse_hex(m)) {
                if !self
                    .list_one(&h, connection, user, limit, &mut listing)
                    .await?
                {
                    break;
                }
            }
        } else {
            if matches!(self.conn, Conn::Cluster(_)) {
                return Err(StoreError(
                    "listing the sessions of a connection is not available with Redis Cluster; list by user_id".into(),
                ));
            }
            let pattern = &format!("{}{{*}}:s", glob_escape(self.keys.prefix()));
            let mut cursor: u64 = 0;
            let mut scanned = 0usize;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .conn
                    .run(self.timeout, "SCAN", |mut c| async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                scanned = scanned.saturating_add(keys.len());
                let mut more = true;
                for key in &keys {
                    let Some(h) = self.keys.hash_of_session_key(key) else {
                        continue;
                    };
                    more = self
                        .list_one(&h, connection, None, limit, &mut listing)
                        .await?;
                    if !more {
                        break;
                    }
                }
                if !more {
                    break;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
                if scanned >= MAX_LISTING_SCAN {
                    listing.complete = false;
                    break;
                }
            }
        }
        listing.sessions.sort_by_key(|s| s.created_at);
        Ok(listing)
    }

    /// Adds session `h` to `listing` when it is a live session of
    /// `connection` (and of `user`). False once the listing holds `limit`
    /// sessions and another one matched (the listing is then incomplete).
    async fn list_one(
        &self,
        h: &Hash,
        connection: &str,
        user: Option<&str>,
        limit: usize,
        listing: &mut Listing,
    ) -> Result<bool, StoreError> {
        let key = &self.keys.session(h);
        let (raw, pttl): (Option<Vec<u8>>, i64) = self
            .conn
            .run(self.timeout, "GET", |mut c| async move {
                redis::pipe().get(key).pttl(key).query_async(&mut c).await
            })
            .await?;
        let Some(session) = raw.and_then(|r| record::decode(&r).ok()) else {
            return Ok(true);
        };
        let now_ms = unix_now().saturating_mul(1000);
        let end_ms = session.expires_at.saturating_mul(1000);
        if !session.is_current()
            || end_ms <= now_ms
            || session.connection != connection
            || user.is_some_and(|u| session.user_id != u)
        {
            return Ok(true);
        }
        if listing.sessions.len() >= limit {
            listing.complete = false;
            return Ok(false);
        }
        // Every read from Redis set the key's TTL to the idle timeout, so
        // the time since the last one is what the TTL has lost, unless the
        // TTL was capped at the absolute end (then it is not known).
        let idle_ms = millis(self.idle_timeout);
        let last_seen = u64::try_from(pttl)
            .ok()
            .filter(|&left| {
                left < idle_ms && end_ms.saturating_sub(now_ms) > left.saturating_add(1000)
            })
            .map(|left| now_ms.saturating_sub(idle_ms - left) / 1000);
        listing.sessions.push(SessionInfo {
            handle: hex(h),
            connection: session.connection.clone(),
            user_id: session.user_id.clone(),
            created_at: session.created_at,
            last_seen,
            expires_at: session.expires_at,
            client_address: session.client_addr,
        });
        Ok(true)
    }
}

/// `s` with Redis glob characters escaped, for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.subscriber.abort();
        if let Some(sweeper) = &self.sweeper {
            sweeper.abort();
        }
    }
}

impl SessionStore for RedisStore {
    fn get<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move {
            if let Some((h, stale)) = self.local.take_miss(id) {
                // `get_ready` just missed it on this thread: straight to Redis.
                return self.fetch(&h, stale).await;
            }
            match self.local.get_id_unnoted(id, unix_now()) {
                Ok(s) => Ok(Some(s)),
                Err(miss) => {
                    let h = miss.hash.unwrap_or_else(|| session_hash(id));
                    self.fetch(&h, miss.stale).await
                }
            }
        })
    }

    fn get_ready(&self, id: &SessionId) -> Option<Result<Option<Arc<Session>>, StoreError>> {
        let s = self.local.get_id(id, unix_now()).ok()?;
        Some(Ok(Some(s)))
    }

    fn get_fresh<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
        Box::pin(async move { self.fetch(&session_hash(id), None).await })
    }

    fn put<'a>(
        &'a self,
        id: &'a SessionId,
        session: Session,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_now(id, session))
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let h = session_hash(id);
            // Evict here first: even if Redis is unreachable, this replica
            // stops serving the session at once.
            self.local.evict(&h);
            self.end(&h).await?;
            self.publish(&[h]).await;
            Ok(())
        })
    }

    fn revoke_user<'a>(
        &'a self,
        connection: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.revoke(self.keys.user_index(connection, user_id)))
    }

    fn revoke_sid<'a>(
        &'a self,
        connection: &'a str,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.revoke(self.keys.sid_index(connection, sid)))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.conn
                .run(self.timeout, "PING", |mut c| async move {
                    redis::cmd("PING").query_async::<String>(&mut c).await
                })
                .await
                .map(|_| ())
        })
    }

    fn list<'a>(
        &'a self,
        by: ListBy<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Listing, StoreError>> {
        Box::pin(self.list_now(by, limit))
    }

    fn approximate_len(&self) -> u64 {
        self.local.len()
    }

    /// `SET NX PX`: one replica refreshes a session at a time. The lock
    /// expires by itself if its holder dies.
    fn try_lock_refresh<'a>(
        &'a self,
        id: &'a SessionId,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.lock(&session_hash(id));
            let ttl_ms = millis(ttl).max(1);
            let set: Option<String> = self
                .conn
                .run(self.timeout, "SET NX", |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(set.is_some())
        })
    }

    fn claim_once<'a>(
        &'a self,
        connection: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.once(connection, value);
            let ttl_ms = millis(ttl).max(1);
            let set: Option<String> = self
                .conn
                .run(self.timeout, "SET NX", |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(Some(set.is_some()))
        })
    }

    fn begin_once<'a>(
        &'a self,
        connection: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.once(connection, value);
            let script = &self.scripts.begin_once;
            let ttl_ms = millis(ttl).max(1);
            let go: i64 = self
                .conn
                .run(self.timeout, "begin once", |mut c| async move {
                    script.key(key).arg(ttl_ms).invoke_async(&mut c).await
                })
                .await?;
            Ok(Some(go == 1))
        })
    }

    fn finish_once<'a>(
        &'a self,
        connection: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = &self.keys.once(connection, value);
            let ttl_ms = millis(ttl).max(1);
            self.conn
                .run(self.timeout, "SET", |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg("done")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
        })
    }

    /// `INCR` and `PEXPIRE` (on the first failure, or on every one with
    /// `restart`) in one script: the same window on every replica.
    fn count_failure<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        restart: bool,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.failures(key);
            let script = &self.scripts.count_failure;
            let ttl_ms = millis(window).max(1);
            let restart = u8::from(restart);
            let n: u64 = self
                .conn
                .run(self.timeout, "count failure", |mut c| async move {
                    script
                        .key(key)
                        .arg(ttl_ms)
                        .arg(restart)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(Some(n))
        })
    }

    fn reserve_attempt<'a>(
        &'a self,
        keys: &'a [String],
        max: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async move {
            // Each key in one step (its two counters share a slot); a key
            // that refuses gives back the ones reserved before it.
            let ttl_ms = millis(ttl).max(1);
            for (i, key) in keys.iter().enumerate() {
                let (failures, under_way) = (&self.keys.failures(key), &self.keys.under_way(key));
                let script = &self.scripts.reserve_attempt;
                let ok: Result<i64, StoreError> = self
                    .conn
                    .run(self.timeout, "reserve attempt", |mut c| async move {
                        script
                            .key(failures)
                            .key(under_way)
                            .arg(max)
                            .arg(ttl_ms)
                            .invoke_async(&mut c)
                            .await
                    })
                    .await;
                if !matches!(ok, Ok(1)) {
                    // Give back what this attempt reserved before (best
                    // effort: a reservation not given back expires).
                    if let Err(e) = self.release_attempt(&keys[..i]).await {
                        tracing::warn!(error = %e, "a sign-in attempt under way could not be released; it expires by itself");
                    }
                    return ok.map(|_| Some(false));
                }
            }
            Ok(Some(true))
        })
    }

    fn release_attempt<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for key in keys {
                let under_way = &self.keys.under_way(key);
                let script = &self.scripts.release_attempt;
                let _: i64 = self
                    .conn
                    .run(self.timeout, "release attempt", |mut c| async move {
                        script.key(under_way).invoke_async(&mut c).await
                    })
                    .await?;
            }
            Ok(())
        })
    }

    fn failures<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.failures(key);
            let n: Option<u64> = self
                .conn
                .run(self.timeout, "GET failures", |mut c| async move {
                    redis::cmd("GET").arg(key).query_async(&mut c).await
                })
                .await?;
            Ok(Some(n.unwrap_or(0)))
        })
    }

    fn clear_failures<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.failures(key);
            let _: u64 = self
                .conn
                .run(self.timeout, "DEL failures", |mut c| async move {
                    redis::cmd("DEL").arg(key).query_async(&mut c).await
                })
                .await?;
            Ok(true)
        })
    }

    fn extend_refresh_lock<'a>(
        &'a self,
        id: &'a SessionId,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = &self.keys.lock(&session_hash(id));
            let script = &self.scripts.extend_lock;
            let ttl_ms = millis(ttl).max(1);
            let held: i64 = self
                .conn
                .run(self.timeout, "extend lock", |mut c| async move {
                    script
                        .key(key)
                        .arg(token)
                        .arg(ttl_ms)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(held == 1)
        })
    }

    fn unlock_refresh<'a>(
        &'a self,
        id: &'a SessionId,
        token: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = &self.keys.lock(&session_hash(id));
            let script = &self.scripts.unlock;
            self.conn
                .run(self.timeout, "unlock", |mut c| async move {
                    script.key(key).arg(token).invoke_async::<i64>(&mut c).await
                })
                .await
                .map(|_| ())
        })
    }
}

/// The record the Redis store writes for `session` (compact, see
/// `record`); public for `examples/session_memory.rs`, which reports its
/// size. Never fails (kept a `Result` for the example's sake).
pub fn encode(session: &Session) -> Result<Vec<u8>, StoreError> {
    Ok(record::encode(session))
}

/// The serde JSON record earlier builds wrote (still read), for comparison.
pub fn encode_json(session: &Session) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(session).map_err(|e| StoreError(format!("cannot encode a session: {e}")))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
