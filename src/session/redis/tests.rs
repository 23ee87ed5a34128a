use super::cache::{Local, Proof};
use super::generations;
use super::keys::{hex, parse_hex, session_hash, Keys};
use super::*;

/// A minimal session ending at `expires_at` (also the cache's tests').
pub(super) fn session(expires_at: u64) -> Session {
    Session {
        derived: Default::default(),
        version: crate::session::model::SESSION_VERSION,
        user_id: "u".into(),
        subject: "s".into(),
        tenant_id: None,
        connection: "c".into(),
        issuer: "https://issuer.example".into(),
        sid: None,
        email: None,
        email_trust: crate::session::model::EmailTrust::Unverified,
        name: None,
        preferred_username: None,
        groups: vec![],
        roles: Vec::new(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        saml_name_id: None,
        tokens_expire_at: None,
        client_addr: None,
        created_at: 0,
        expires_at,
    }
}

#[test]
fn keys_never_hold_the_session_id_and_share_one_cluster_slot() {
    let id = SessionId::from_bytes([0xab; 32]);
    let h = session_hash(&id);
    let k = Keys::new("rg:");
    let (s, t, l) = (k.session(&h), k.tombstone(&h), k.lock(&h));
    assert!(!s.contains(&"ab".repeat(32)), "{s}");
    // The same hash tag in all three: one slot, so two-key scripts work on a cluster.
    let tag = |key: &str| key[key.find('{').unwrap()..=key.find('}').unwrap()].to_string();
    assert_eq!(tag(&s), tag(&t));
    assert_eq!(tag(&s), tag(&l));
    assert!(s.starts_with("rg:{") && s.ends_with("}:s"), "{s}");
    assert_ne!(k.user_index("c", "alice"), k.user_index("c", "bob"));
    assert!(!k.user_index("c", "alice").contains("alice"));
    assert!(!k.sid_index("c", "sid-1").contains("sid-1"));
    // Index keys are per connection (issue 17 hole 5), unambiguously.
    assert_ne!(k.user_index("c", "alice"), k.user_index("d", "alice"));
    assert_ne!(k.sid_index("c", "sid-1"), k.sid_index("d", "sid-1"));
    assert_ne!(k.user_index("c", "d:x"), k.user_index("c:d", "x"));
    assert_ne!(k.user_index("c", "alice"), k.sid_index("c", "alice"));
    assert_eq!(k.channel(), "rg:invalidate");
}

#[test]
fn hashes_round_trip_through_hex_and_garbage_is_refused() {
    let h = session_hash(&SessionId::generate());
    assert_eq!(parse_hex(&hex(&h)), Some(h));
    assert_eq!(parse_hex("zz"), None);
    assert_eq!(parse_hex(&"g".repeat(64)), None);
    assert_eq!(parse_hex(&"é".repeat(32)), None);
}

#[test]
fn the_cache_refuses_an_insert_that_raced_with_an_eviction() {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    local.set_subscribed(true);
    let h = [1u8; 32];
    let far = unix_now() + 3600;
    // A read started (epoch noted), then an invalidation arrived.
    let seen = local.epoch(&h);
    local.evict(&h);
    local.insert(h, Arc::new(session(far)), Box::default(), seen, Proof::NONE);
    assert!(local.get(&h, unix_now()).is_none());
    // An eviction of another session (another stripe) does not stop it.
    let seen = local.epoch(&h);
    local.evict(&[2u8; 32]);
    local.insert(h, Arc::new(session(far)), Box::default(), seen, Proof::NONE);
    assert!(local.get(&h, unix_now()).is_some());
    local.evict(&h);
    // Without a race it is cached.
    let seen = local.epoch(&h);
    local.insert(h, Arc::new(session(far)), Box::default(), seen, Proof::NONE);
    assert!(local.get(&h, unix_now()).is_some());
}

#[test]
fn nothing_is_cached_while_invalidations_are_not_received() {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    let h = [2u8; 32];
    let far = unix_now() + 3600;
    local.insert(
        h,
        Arc::new(session(far)),
        Box::default(),
        local.epoch(&h),
        Proof::NONE,
    );
    assert!(local.get(&h, unix_now()).is_none(), "not subscribed yet");
    local.set_subscribed(true);
    local.insert(
        h,
        Arc::new(session(far)),
        Box::default(),
        local.epoch(&h),
        Proof::NONE,
    );
    assert!(local.get(&h, unix_now()).is_some());
    // Losing the subscription: no copy answers by itself (every read asks
    // Redis; a copy within its TTL answers only when Redis cannot: see
    // `a_redis_outage_keeps_copies_within_their_ttl`)...
    local.set_subscribed(false);
    assert!(local.get(&h, unix_now()).is_none());
    // ...and coming back clears the cache, since messages may have been missed.
    local.clear();
    assert!(local.get(&h, unix_now()).is_none());
}

#[test]
fn a_cached_session_past_its_absolute_end_is_not_served() {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    local.set_subscribed(true);
    let h = [3u8; 32];
    local.insert(
        h,
        Arc::new(session(unix_now() + 1)),
        Box::default(),
        local.epoch(&h),
        Proof::NONE,
    );
    assert!(local.get(&h, unix_now() + 2).is_none());
}

#[tokio::test]
async fn an_unreachable_redis_fails_within_the_command_timeout() {
    // Port 1 on loopback: connection refused at once, or a timeout.
    let mut opts = RedisOptions::new(
        vec!["redis://127.0.0.1:1/0".into()],
        false,
        "t:",
        Duration::from_secs(60),
    );
    opts.command_timeout = Duration::from_millis(300);
    let store = RedisStore::new(opts).unwrap();
    let started = std::time::Instant::now();
    let id = SessionId::generate();
    // Not in the local cache: only `get` (which asks Redis) can answer.
    assert!(store.get_ready(&id).is_none());
    assert!(store.get(&id).await.is_err());
    assert!(store.ping().await.is_err());
    assert!(store.put(&id, session(unix_now() + 60)).await.is_err());
    assert!(store.delete(&id).await.is_err());
    assert!(store.revoke_user("c", "u").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// `get_ready` answers exactly what the local cache holds, and nothing once
/// an invalidation evicted it.
#[tokio::test]
async fn get_ready_answers_from_the_local_cache_only() {
    let store = RedisStore::new(RedisOptions::new(
        vec!["redis://127.0.0.1:1/0".into()],
        false,
        "t:",
        Duration::from_secs(60),
    ))
    .unwrap();
    let id = SessionId::generate();
    let h = session_hash(&id);
    let stored = session(unix_now() + 60);
    store.local.set_subscribed(true);
    store.local.insert(
        h,
        Arc::new(stored.clone()),
        Box::default(),
        store.local.epoch(&h),
        Proof::NONE,
    );
    let got = store.get_ready(&id).expect("a cache hit").unwrap().unwrap();
    assert_eq!(*got, stored);
    store.local.evict(&h);
    assert!(store.get_ready(&id).is_none());
}

#[tokio::test]
async fn a_bad_url_is_reported_without_echoing_it() {
    let opts = RedisOptions::new(
        vec!["redis://user:hunter2@[::1".into()],
        false,
        "t:",
        Duration::from_secs(60),
    );
    let err = RedisStore::new(opts).err().expect("refused").to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("session.redis_url"), "{err}");
}

/// A real `redis-server` (Debian package `redis-server`) on a Unix socket in
/// a temporary directory (no TCP port at all), without persistence; killed
/// by PID and reaped on drop.
struct Server {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// One server that holds every hash slot of a cluster, used as a single
    /// server: it refuses scripts over keys of several slots (`CROSSSLOT`),
    /// as a sharded managed database behind one address does.
    async fn start_sharded() -> Server {
        let server = Server::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .await;
        let mut c = server.connection().await;
        redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query_async::<()>(&mut c)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut c)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the one-node cluster was not ok within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let sock = dir.path().join("redis.sock");
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .args(extra)
            .arg("--unixsocket")
            .arg(&sock)
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for these tests (apt-get install redis-server)",
            );
        let url = format!("unix://{}", sock.display());
        let server = Server {
            child,
            url,
            _dir: dir,
        };
        let client = server.client();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return server;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connection of the test's own (as an operator's `redis-cli`).
    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).expect("a unix socket URL")
    }

    /// A store on this server (cache TTL 60 s) whose invalidation
    /// subscription is up.
    async fn store(&self) -> RedisStore {
        let mut opts = RedisOptions::new(
            vec![self.url.clone()],
            false,
            "t:",
            Duration::from_secs(3600),
        );
        opts.cache_ttl = Duration::from_secs(60);
        let store = RedisStore::new(opts).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !store.is_subscribed() {
            assert!(
                std::time::Instant::now() < deadline,
                "no invalidation subscription within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store
    }

    /// Writes (or, with `None`, deletes) a session's record directly, as
    /// another replica's change would, without any invalidation message.
    async fn set_record(&self, store: &RedisStore, id: &SessionId, record: Option<Vec<u8>>) {
        let key = store.keys.session(&session_hash(id));
        let mut c = self.connection().await;
        match record {
            Some(r) => redis::cmd("SET")
                .arg(&key)
                .arg(r)
                .query_async::<()>(&mut c)
                .await
                .unwrap(),
            None => redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut c)
                .await
                .unwrap(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stored session read once: in the local cache, fresh.
async fn stored(store: &RedisStore) -> (SessionId, Arc<Session>) {
    let id = SessionId::generate();
    let h = session_hash(&id);
    let before = store.local.stripe_count(&h);
    store.put(&id, session(unix_now() + 3600)).await.unwrap();
    // The put evicts here, then its own invalidation message comes back to
    // this store's subscriber and evicts again (two counts each): wait for
    // both, so that the message cannot evict what the reads below cache
    // (a loaded machine delivered it after this helper had returned).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.local.stripe_count(&h) < before + 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the put's own invalidation did not arrive within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    loop {
        let first = store.get(&id).await.unwrap().expect("stored");
        if store.get_ready(&id).is_some() {
            return (id, first);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not in the local cache after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// On a single-threaded runtime, as on a proxy thread: the store uses a
/// connection of this thread's own.
#[tokio::test]
async fn a_kept_copy_is_served_again_when_redis_answers_the_same_record() {
    let server = Server::start().await;
    let store = server.store().await;
    let (id, first) = stored(&store).await;
    let h = session_hash(&id);
    assert!(store.local.make_stale(&h));
    assert!(store.get_ready(&id).is_none(), "stale: not served unread");
    // The record's Redis TTL shows the GETEX: shorten it, read, see it back.
    let key = store.keys.session(&h);
    let mut c = server.connection().await;
    redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(100_000)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let again = store.get(&id).await.unwrap().expect("same record");
    assert!(
        Arc::ptr_eq(&first, &again),
        "the decoded copy, not a new one"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 100_000, "Redis was read (GETEX): {pttl}");
    // Fresh again: answered from the cache without Redis.
    let ready = store.get_ready(&id).expect("fresh again").unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &ready));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_record_replaces_the_kept_copy() {
    let server = Server::start().await;
    let store = server.store().await;
    let (id, first) = stored(&store).await;
    let mut changed = (*first).clone();
    changed.email = Some("new@example.com".into());
    server
        .set_record(&store, &id, Some(encode(&changed).unwrap()))
        .await;
    assert!(store.local.make_stale(&session_hash(&id)));
    let got = store.get(&id).await.unwrap().expect("still signed in");
    assert!(!Arc::ptr_eq(&first, &got));
    assert_eq!(*got, changed);
    let ready = store.get_ready(&id).expect("cached").unwrap().unwrap();
    assert_eq!(*ready, changed);
    // A record that no longer decodes signs out, as without a kept copy.
    server
        .set_record(&store, &id, Some(b"\xffgarbage".to_vec()))
        .await;
    assert!(store.local.make_stale(&session_hash(&id)));
    assert!(store.get(&id).await.unwrap().is_none());
    assert!(store.get_ready(&id).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_signs_the_kept_copy_out() {
    let server = Server::start().await;
    let store = server.store().await;
    let (id, _) = stored(&store).await;
    let h = session_hash(&id);
    server.set_record(&store, &id, None).await;
    assert!(store.local.make_stale(&h));
    assert!(store.get(&id).await.unwrap().is_none());
    assert!(!store.local.make_stale(&h), "the kept copy is dropped");
    assert!(store.get(&id).await.unwrap().is_none());
}

/// A revocation on replica B ends the session on replica A within one
/// second, whether A holds it fresh (the invalidation message) or kept
/// past its TTL (the record is gone). Single-threaded: the two stores take
/// turns with this thread's own connection.
#[tokio::test]
async fn a_revocation_on_another_replica_ends_cached_and_kept_copies() {
    let server = Server::start().await;
    let a = server.store().await;
    let b = server.store().await;
    let (fresh, _) = stored(&a).await;
    let (kept, _) = stored(&a).await;
    assert!(a.local.make_stale(&session_hash(&kept)));
    let started = std::time::Instant::now();
    assert_eq!(b.revoke_user("c", "u").await.unwrap(), 2);
    assert!(a.get(&kept).await.unwrap().is_none());
    loop {
        if a.get(&fresh).await.unwrap().is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica A still served a revoked session after one second"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(a.get(&kept).await.unwrap().is_none());
}

/// SPEC 5.2 (invalidation reaches every replica within one second): with
/// the invalidation subscription down, a change another replica made (whose
/// message this one cannot receive) is seen at the next read, not after the
/// cache TTL (60 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_subscription_every_read_asks_redis() {
    let server = Server::start().await;
    let store = server.store().await;
    let (id, first) = stored(&store).await;
    store.local.set_subscribed(false);
    assert!(store.get_ready(&id).is_none(), "no copy answers by itself");
    let mut changed = (*first).clone();
    changed.email = Some("new@example.com".into());
    server
        .set_record(&store, &id, Some(encode(&changed).unwrap()))
        .await;
    assert_eq!(*store.get(&id).await.unwrap().expect("signed in"), changed);
    server.set_record(&store, &id, None).await;
    assert!(
        store.get(&id).await.unwrap().is_none(),
        "signed out at the next read"
    );
}

/// A Redis outage: a copy within its TTL keeps answering (users are not all
/// signed out at once); a session this replica never read is an error, not
/// a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_copies_within_their_ttl() {
    let server = Server::start().await;
    let store = server.store().await;
    let (id, first) = stored(&store).await;
    drop(server);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.is_subscribed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lost subscription was not noticed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = store
        .get(&id)
        .await
        .expect("answered from the copy within its TTL")
        .expect("signed in");
    assert!(Arc::ptr_eq(&first, &got));
    assert!(store.get(&SessionId::generate()).await.is_err());
}

/// `GETEX` commands this server has run so far.
async fn getex_calls(server: &Server) -> u64 {
    let mut c = server.connection().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_getex:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Waits (at most 5 s) for a sweep of the change generations sent after
/// `after` (the store's clock) to land.
async fn sweep_after(store: &RedisStore, after: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.local.sweep_sent().is_none_or(|sent| sent <= after) {
        assert!(
            std::time::Instant::now() < deadline,
            "no sweep of the generations within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The slot value of `id` in the generations key.
async fn generation(server: &Server, store: &RedisStore, id: &SessionId) -> u64 {
    let mut c = server.connection().await;
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(store.keys.generations())
        .query_async(&mut c)
        .await
        .unwrap();
    let at = generations::offset(&session_hash(id));
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// A kept copy past its TTL is served without reading the session when a
/// sweep finds its slot's generation unchanged since its `GETEX`; a change
/// in the slot (any session's: here written as another replica's script
/// would, without an invalidation message) costs one `GETEX` first.
#[tokio::test]
async fn a_sweep_confirms_a_kept_copy_without_reading_the_session() {
    let server = Server::start().await;
    let store = server.store().await;
    sweep_after(&store, 0).await;
    let (id, first) = stored(&store).await;
    let h = session_hash(&id);
    // Read once more after a sweep that saw the put's generation (the
    // first read may have noted the one before it): tagged with the
    // current generation now.
    assert!(store.local.age(&h));
    sweep_after(&store, store.local.clock()).await;
    let again = store.get(&id).await.unwrap().expect("signed in");
    assert!(Arc::ptr_eq(&first, &again));
    assert!(store.local.age(&h));
    sweep_after(&store, store.local.clock()).await;
    let before = getex_calls(&server).await;
    let ready = store.get_ready(&id).expect("confirmed").unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &ready));
    assert_eq!(getex_calls(&server).await, before, "no GETEX");
    // Another change in the slot: the next sweep confirms nothing.
    let mut c = server.connection().await;
    redis::cmd("SETRANGE")
        .arg(store.keys.generations())
        .arg(generations::offset(&h))
        .arg(&generations::fresh_value()[..])
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert!(store.local.age(&h));
    sweep_after(&store, store.local.clock()).await;
    assert!(
        store.get_ready(&id).is_none(),
        "the slot changed: not confirmed"
    );
    let read = store.get(&id).await.unwrap().expect("signed in");
    assert!(Arc::ptr_eq(&first, &read), "same record: same copy");
    assert_eq!(getex_calls(&server).await, before + 1, "read with GETEX");
}

/// Every change through realmgate moves its slot's generation, on any
/// replica: an update, a sign-out, a revocation.
#[tokio::test]
async fn every_change_of_a_session_moves_its_generation() {
    let server = Server::start().await;
    let a = server.store().await;
    let b = server.store().await;
    sweep_after(&a, 0).await;
    let (id, first) = stored(&a).await;
    let g0 = generation(&server, &a, &id).await;
    assert_ne!(g0, 0);
    let mut changed = (*first).clone();
    changed.email = Some("new@example.com".into());
    b.put(&id, changed).await.unwrap();
    let g1 = generation(&server, &a, &id).await;
    assert_ne!(g1, g0, "an update on another replica");
    b.delete(&id).await.unwrap();
    let g2 = generation(&server, &a, &id).await;
    assert_ne!(g2, g1, "a sign-out");
    let (id, _) = stored(&a).await;
    let g3 = generation(&server, &a, &id).await;
    assert_eq!(b.revoke_user("c", "u").await.unwrap(), 1);
    assert_ne!(generation(&server, &a, &id).await, g3, "a revocation");
}

/// A sharded database behind one address refuses scripts that name the
/// generations key with a session's: sign-in, reads and sign-out still
/// work (the writes are made again without it), and no sweep confirms
/// anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_server_behind_one_address_works_without_generations() {
    let server = Server::start_sharded().await;
    let store = server.store().await;
    let id = SessionId::generate();
    store.put(&id, session(unix_now() + 3600)).await.unwrap();
    assert!(store.get(&id).await.unwrap().is_some());
    assert!(!store.local.generations_usable());
    assert!(store.local.sweep_sent().is_none());
    store.delete(&id).await.unwrap();
    assert!(store.get(&id).await.unwrap().is_none());
    // A second store on the same server finds out from its sweeper's
    // question alone, before any write.
    let other = server.store().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while other.local.generations_usable() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper did not find the server sharded within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An active session's idle time in Redis is extended by a `GETEX` within
/// an eighth of the idle timeout (at most five minutes) even while sweeps
/// confirm its copy.
#[tokio::test]
async fn sweeps_leave_a_reread_within_an_eighth_of_the_idle_timeout() {
    let server = Server::start().await;
    let url = vec![server.url.clone()];
    let mut opts = RedisOptions::new(url.clone(), false, "t:", Duration::from_secs(64));
    opts.cache_ttl = Duration::from_secs(5);
    let store = RedisStore::new(opts).unwrap();
    assert_eq!(store.local.reread(), Duration::from_secs(8));
    let store = RedisStore::new(RedisOptions::new(
        url,
        false,
        "t:",
        Duration::from_secs(3600),
    ))
    .unwrap();
    assert_eq!(
        store.local.reread(),
        Duration::from_secs(300),
        "at most five minutes"
    );
}

/// The sweeper gives every slot without a value (zero, as a `SETRANGE`
/// before the first sweep pads) a random one, and leaves the others.
#[tokio::test]
async fn the_sweeper_fills_slots_without_a_value() {
    let server = Server::start().await;
    let store = server.store().await;
    sweep_after(&store, 0).await;
    let id = SessionId::generate();
    let h = session_hash(&id);
    let other = SessionId::generate();
    let g_other = generation(&server, &store, &other).await;
    let mut c = server.connection().await;
    redis::cmd("SETRANGE")
        .arg(store.keys.generations())
        .arg(generations::offset(&h))
        .arg(&[0u8; 8][..])
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(generation(&server, &store, &id).await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while generation(&server, &store, &id).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the empty slot was not filled within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if generations::slot(&h) != generations::slot(&session_hash(&other)) {
        assert_eq!(generation(&server, &store, &other).await, g_other);
    }
}
