//! The session store contract, run unchanged against the memory store and
//! the Redis store (a real `redis-server`), then what only Redis has:
//! invalidation between replicas, Redis going down and coming back, the
//! cross-replica refresh lock, and "a cached session costs no Redis command".

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use realmgate::session::memory::MemoryStore;
use realmgate::session::model::{EmailTrust, Session};
use realmgate::session::redis::{RedisOptions, RedisStore};
use realmgate::session::store::{handle_of, ListBy, SessionId, SessionStore};
use serde_json::json;

use crate::redis_util::{RedisCluster, RedisServer};
use crate::util::{wait_until, DEADLINE};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn session(user: &str, sid: Option<&str>) -> Session {
    let now = now();
    Session {
        derived: Default::default(),
        version: realmgate::session::model::SESSION_VERSION,
        user_id: user.into(),
        subject: format!("sub-{user}"),
        tenant_id: Some("11111111-1111-1111-1111-111111111111".into()),
        connection: "contoso".into(),
        issuer: "https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/v2.0"
            .into(),
        sid: sid.map(String::from),
        email: Some(format!("{user}@contoso.com")),
        email_trust: EmailTrust::EntraDomainVerified,
        name: Some("Zoë".into()),
        preferred_username: None,
        groups: vec!["g1".into(), "g2".into(), "".into()],
        roles: Vec::new(),
        claims: Some(
            json!({"employeeid": "E-1", "roles": ["a"]})
                .as_object()
                .unwrap()
                .clone(),
        ),
        id_token: Some("h.p.s".into()),
        access_token: None,
        refresh_token: Some("rt".into()),
        saml_name_id: None,
        tokens_expire_at: Some(now + 3600),
        client_addr: None,
        created_at: now,
        expires_at: now + 3600,
    }
}

// === The contract ===

/// Makes a fresh, empty store with this idle timeout.
type Make<'a> = &'a (dyn Fn(Duration) -> Arc<dyn SessionStore> + Sync);

/// Every case of the contract, in order, against stores from `make`.
async fn contract(make: Make<'_>) {
    round_trip(make).await;
    unknown_ids(make).await;
    delete_and_late_update(make).await;
    replace_keeps_revocation(make).await;
    revoke_user_only_that_user(make).await;
    revoke_sid(make).await;
    revocation_stays_within_its_connection(make).await;
    records_of_another_version_are_absent(make).await;
    absolute_end(make).await;
    absolute_end_wins_over_activity(make).await;
    idle_end_and_extension(make).await;
    ping_and_lock(make).await;
    concurrent_use(make).await;
    listing(make).await;
}

fn hour(make: Make<'_>) -> Arc<dyn SessionStore> {
    make(Duration::from_secs(3600))
}

async fn round_trip(make: Make<'_>) {
    let s = hour(make);
    let id = SessionId::generate();
    let original = session("alice", Some("sid-1"));
    s.put(&id, original.clone()).await.unwrap();
    let got = s.get(&id).await.unwrap().expect("stored session");
    assert_eq!(*got, original, "field for field");
    let fresh = s.get_fresh(&id).await.unwrap().expect("stored session");
    assert_eq!(*fresh, original);
    // A second read (possibly cached) is the same.
    assert_eq!(*s.get(&id).await.unwrap().unwrap(), original);
}

async fn unknown_ids(make: Make<'_>) {
    let s = hour(make);
    assert!(s.get(&SessionId::generate()).await.unwrap().is_none());
    assert_eq!(s.revoke_user("contoso", "nobody").await.unwrap(), 0);
    assert_eq!(s.revoke_sid("contoso", "no-sid").await.unwrap(), 0);
    s.delete(&SessionId::generate()).await.unwrap();
}

async fn delete_and_late_update(make: Make<'_>) {
    let s = hour(make);
    let id = SessionId::generate();
    s.put(&id, session("alice", None)).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_some());
    s.delete(&id).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_none());
    // A token refresh that read the session before the logout finishes now.
    s.put(&id, session("alice", None)).await.unwrap();
    assert!(
        s.get(&id).await.unwrap().is_none(),
        "a late update revived an ended session"
    );
}

async fn replace_keeps_revocation(make: Make<'_>) {
    let s = hour(make);
    let id = SessionId::generate();
    s.put(&id, session("alice", Some("x"))).await.unwrap();
    let mut refreshed = session("alice", Some("x"));
    refreshed.refresh_token = Some("rt-2".into());
    s.put(&id, refreshed).await.unwrap();
    let got = s.get(&id).await.unwrap().unwrap();
    assert_eq!(
        got.refresh_token.as_deref(),
        Some("rt-2"),
        "the update is read back"
    );
    assert_eq!(s.revoke_user("contoso", "alice").await.unwrap(), 1);
    assert!(s.get(&id).await.unwrap().is_none());
}

async fn revoke_user_only_that_user(make: Make<'_>) {
    let s = hour(make);
    let a1 = SessionId::generate();
    let a2 = SessionId::generate();
    let b = SessionId::generate();
    s.put(&a1, session("alice", None)).await.unwrap();
    s.put(&a2, session("alice", Some("s2"))).await.unwrap();
    s.put(&b, session("bob", None)).await.unwrap();
    // Cached reads before the revocation must not survive it.
    assert!(s.get(&a1).await.unwrap().is_some());
    assert!(s.get(&a2).await.unwrap().is_some());
    assert_eq!(s.revoke_user("contoso", "alice").await.unwrap(), 2);
    assert!(s.get(&a1).await.unwrap().is_none());
    assert!(s.get(&a2).await.unwrap().is_none());
    assert!(s.get(&b).await.unwrap().is_some(), "bob is untouched");
    assert_eq!(
        s.revoke_user("contoso", "alice").await.unwrap(),
        0,
        "nothing left"
    );
    // A session of alice after the revocation is a new login and works.
    let a3 = SessionId::generate();
    s.put(&a3, session("alice", None)).await.unwrap();
    assert!(s.get(&a3).await.unwrap().is_some());
}

async fn revoke_sid(make: Make<'_>) {
    let s = hour(make);
    let x1 = SessionId::generate();
    let x2 = SessionId::generate();
    let y = SessionId::generate();
    s.put(&x1, session("alice", Some("sid-x"))).await.unwrap();
    s.put(&x2, session("bob", Some("sid-x"))).await.unwrap();
    s.put(&y, session("alice", Some("sid-y"))).await.unwrap();
    assert!(s.get(&x1).await.unwrap().is_some());
    assert_eq!(s.revoke_sid("contoso", "sid-x").await.unwrap(), 2);
    assert!(s.get(&x1).await.unwrap().is_none());
    assert!(s.get(&x2).await.unwrap().is_none());
    assert!(s.get(&y).await.unwrap().is_some());
}

/// Issue 17 hole 5: the same user id string and the same provider `sid`
/// in two connections; revoking in one never ends the other's sessions.
async fn revocation_stays_within_its_connection(make: Make<'_>) {
    let s = hour(make);
    let (c1, c2, p1, p2) = (
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
    );
    let partner = |mut x: Session| {
        x.connection = "partner".into();
        x
    };
    s.put(&c1, session("same-id", Some("sid-shared")))
        .await
        .unwrap();
    s.put(&c2, session("other", Some("sid-shared")))
        .await
        .unwrap();
    s.put(&p1, partner(session("same-id", Some("sid-shared"))))
        .await
        .unwrap();
    s.put(&p2, partner(session("same-id", None))).await.unwrap();
    for id in [&c1, &c2, &p1, &p2] {
        assert!(s.get(id).await.unwrap().is_some());
    }
    assert_eq!(s.revoke_sid("partner", "sid-shared").await.unwrap(), 1);
    assert!(s.get(&p1).await.unwrap().is_none());
    assert!(
        s.get(&c1).await.unwrap().is_some(),
        "contoso's sid survives"
    );
    assert!(
        s.get(&c2).await.unwrap().is_some(),
        "contoso's sid survives"
    );
    assert_eq!(s.revoke_user("partner", "same-id").await.unwrap(), 1);
    assert!(s.get(&p2).await.unwrap().is_none());
    assert!(
        s.get(&c1).await.unwrap().is_some(),
        "contoso's user survives"
    );
    // Unknown connection: nothing, not everything.
    assert_eq!(s.revoke_user("nobody", "same-id").await.unwrap(), 0);
    assert_eq!(s.revoke_sid("nobody", "sid-shared").await.unwrap(), 0);
    assert_eq!(s.revoke_sid("contoso", "sid-shared").await.unwrap(), 2);
    assert!(s.get(&c1).await.unwrap().is_none());
    assert!(s.get(&c2).await.unwrap().is_none());
}

/// A record without the current `SESSION_VERSION` (written before the
/// user-id change of issue 17) reads as absent: never served, never an error.
async fn records_of_another_version_are_absent(make: Make<'_>) {
    let s = hour(make);
    for version in [0, 1, realmgate::session::model::SESSION_VERSION + 1] {
        let id = SessionId::generate();
        let mut old = session("legacy-sub", Some("sid-old"));
        old.version = version;
        s.put(&id, old).await.unwrap();
        assert!(s.get(&id).await.unwrap().is_none(), "version {version}");
        assert!(
            s.get_fresh(&id).await.unwrap().is_none(),
            "version {version}"
        );
    }
}

async fn absolute_end(make: Make<'_>) {
    let s = hour(make);
    let id = SessionId::generate();
    let mut old = session("alice", None);
    old.expires_at = now().saturating_sub(1);
    s.put(&id, old).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_none());
}

async fn absolute_end_wins_over_activity(make: Make<'_>) {
    let s = hour(make);
    let id = SessionId::generate();
    let mut short = session("alice", Some("x"));
    short.expires_at = now() + 1;
    s.put(&id, short).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get(&id).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "session outlived its absolute end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn idle_end_and_extension(make: Make<'_>) {
    let s = make(Duration::from_millis(800));
    let id = SessionId::generate();
    s.put(&id, session("alice", None)).await.unwrap();
    // Busy for twice the idle timeout: it stays.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            s.get(&id).await.unwrap().is_some(),
            "use extends the idle timeout"
        );
    }
    // Left alone longer than the idle timeout: it goes. (Waiting cannot
    // poll `get`, which extends.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.get(&id).await.unwrap().is_none(), "idle session ended");
}

async fn ping_and_lock(make: Make<'_>) {
    let s = hour(make);
    s.ping().await.unwrap();
    let id = SessionId::generate();
    assert!(s
        .try_lock_refresh(&id, "token-1", Duration::from_secs(5))
        .await
        .unwrap());
    s.unlock_refresh(&id, "token-1").await.unwrap();
    assert!(s
        .try_lock_refresh(&id, "token-2", Duration::from_secs(5))
        .await
        .unwrap());
    s.unlock_refresh(&id, "token-2").await.unwrap();
}

async fn concurrent_use(make: Make<'_>) {
    let s = hour(make);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let id = SessionId::generate();
                let user = format!("u{}", (t * 25 + i) % 10);
                s.put(&id, session(&user, Some("shared"))).await.unwrap();
                assert!(s.get(&id).await.unwrap().is_some());
                if i % 5 == 0 {
                    s.delete(&id).await.unwrap();
                    assert!(s.get(&id).await.unwrap().is_none());
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(DEADLINE * 3, t)
            .await
            .expect("no deadlock")
            .unwrap();
    }
    // 200 sessions, 40 deleted; every other one ends with the sid.
    assert_eq!(s.revoke_sid("contoso", "shared").await.unwrap(), 160);
}

/// The admin listing (`GET /sessions`, issue 22 item 8): by user within a
/// connection, by connection, bounded, without ids or tokens.
async fn listing(make: Make<'_>) {
    let s = hour(make);
    let mut ids = Vec::new();
    for (user, connection, addr) in [
        ("alice", "contoso", "192.0.2.1"),
        ("alice", "contoso", "2001:db8::2"),
        ("bob", "contoso", "192.0.2.3"),
        ("alice", "partner", "192.0.2.4"),
    ] {
        let mut session = session(user, Some("sid-l"));
        session.connection = connection.into();
        session.client_addr = Some(addr.parse().unwrap());
        // Ends after the idle timeout: the Redis TTL then tells last use.
        session.expires_at = now() + 7200;
        let id = SessionId::generate();
        s.put(&id, session).await.unwrap();
        ids.push(id);
    }
    let alice = ListBy::User {
        connection: "contoso",
        user_id: "alice",
    };
    let found = s.list(alice, 10).await.unwrap();
    assert!(found.complete);
    let mut handles: Vec<&str> = found.sessions.iter().map(|i| i.handle.as_str()).collect();
    handles.sort();
    let mut expected = vec![handle_of(&ids[0]), handle_of(&ids[1])];
    expected.sort();
    assert_eq!(handles, expected);
    let mut addrs: Vec<String> = found
        .sessions
        .iter()
        .map(|i| i.client_address.unwrap().to_string())
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["192.0.2.1", "2001:db8::2"]);
    for info in &found.sessions {
        assert_eq!(
            (info.user_id.as_str(), info.connection.as_str()),
            ("alice", "contoso")
        );
        assert!(info.created_at <= now() && info.expires_at > now() + 3600);
        let seen = info.last_seen.expect("last use is known");
        assert!(seen + 2 >= info.created_at && seen <= now() + 1, "{info:?}");
    }
    // Nothing that signs anyone in, nor the provider's sid or the email.
    let shown = serde_json::to_string(&found.sessions).unwrap();
    for secret in ["h.p.s", "\"rt\"", "sid-l", "@contoso.com"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    for id in &ids {
        let raw: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&raw));
    }
    // Bounded, and says so.
    let one = s.list(alice, 1).await.unwrap();
    assert_eq!((one.sessions.len(), one.complete), (1, false));
    // Another connection's alice is another user (SPEC 6.1).
    let partner = ListBy::User {
        connection: "partner",
        user_id: "alice",
    };
    assert_eq!(s.list(partner, 10).await.unwrap().sessions.len(), 1);
    match s.list(ListBy::Connection("contoso"), 10).await {
        Ok(all) => {
            assert_eq!(all.sessions.len(), 3);
            assert!(all.complete);
            let two = s.list(ListBy::Connection("contoso"), 2).await.unwrap();
            assert_eq!((two.sessions.len(), two.complete), (2, false));
        }
        // A Redis Cluster lists by user only, and says so.
        Err(e) => assert!(e.to_string().contains("Redis Cluster"), "{e}"),
    }
    // An ended session is not listed.
    s.delete(&ids[0]).await.unwrap();
    let left = s.list(alice, 10).await.unwrap();
    assert_eq!(left.sessions.len(), 1);
    assert_eq!(left.sessions[0].handle, handle_of(&ids[1]));
    assert!(s
        .list(ListBy::Connection("nobody"), 10)
        .await
        .map_or(true, |l| l.sessions.is_empty()));
}

// === Running the contract ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_store_keeps_the_contract() {
    let make =
        |idle: Duration| -> Arc<dyn SessionStore> { Arc::new(MemoryStore::new(10_000, idle)) };
    contract(&make).await;
}

/// A store on `redis` with its own key prefix (so stores of one test never
/// see each other), unless `prefix` is given (replicas of one deployment).
fn redis_store(redis: &RedisServer, prefix: &str, idle: Duration) -> RedisStore {
    let mut opts = RedisOptions::new(vec![redis.url()], false, prefix, idle);
    opts.command_timeout = Duration::from_secs(2);
    RedisStore::new(opts).expect("redis store")
}

fn fresh_prefix() -> String {
    format!(
        "t{}:",
        SessionId::generate().as_bytes()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Waits until the store's invalidation subscription is up (until then it
/// caches nothing, which would make "served from cache" checks vacuous).
async fn subscribed(store: &RedisStore) {
    assert!(
        wait_until(DEADLINE, || store.is_subscribed()).await,
        "the invalidation subscription never came up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_store_keeps_the_contract() {
    let redis = RedisServer::start().await;
    let make = |idle: Duration| -> Arc<dyn SessionStore> {
        Arc::new(redis_store(&redis, &fresh_prefix(), idle))
    };
    contract(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_store_with_its_cache_off_keeps_the_contract() {
    let redis = RedisServer::start().await;
    let make = |idle: Duration| -> Arc<dyn SessionStore> {
        let mut opts = RedisOptions::new(vec![redis.url()], false, &fresh_prefix(), idle);
        opts.cache_ttl = Duration::ZERO;
        Arc::new(RedisStore::new(opts).expect("redis store"))
    };
    contract(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_redis_store_on_a_redis_cluster_keeps_the_contract() {
    let cluster = RedisCluster::start(3).await;
    let urls = cluster.urls();
    let make = |idle: Duration| -> Arc<dyn SessionStore> {
        let mut opts = RedisOptions::new(urls.clone(), true, &fresh_prefix(), idle);
        opts.command_timeout = Duration::from_secs(2);
        Arc::new(RedisStore::new(opts).expect("redis cluster store"))
    };
    contract(&make).await;
    // Invalidation works on a cluster too (PUBLISH reaches every node).
    let prefix = fresh_prefix();
    let store = |ttl: Duration| {
        let mut opts = RedisOptions::new(urls.clone(), true, &prefix, Duration::from_secs(3600));
        opts.cache_ttl = ttl;
        RedisStore::new(opts).expect("redis cluster store")
    };
    let (a, b) = (
        store(Duration::from_secs(60)),
        store(Duration::from_secs(60)),
    );
    subscribed(&a).await;
    subscribed(&b).await;
    let id = SessionId::generate();
    a.put(&id, session("alice", Some("s"))).await.unwrap();
    assert!(b.get(&id).await.unwrap().is_some());
    assert_eq!(a.revoke_sid("contoso", "s").await.unwrap(), 1);
    let took = until_gone(&b, &id).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

// === Redis only: replicas ===

/// Two replicas (same prefix), the second with a long cache TTL so only an
/// invalidation can explain it dropping a session quickly.
struct Replicas {
    redis: RedisServer,
    prefix: String,
    a: RedisStore,
    b: RedisStore,
}

async fn replicas() -> Replicas {
    let redis = RedisServer::start().await;
    let prefix = fresh_prefix();
    let long_cache = |redis: &RedisServer| {
        let mut opts =
            RedisOptions::new(vec![redis.url()], false, &prefix, Duration::from_secs(3600));
        opts.cache_ttl = Duration::from_secs(60);
        RedisStore::new(opts).expect("redis store")
    };
    let a = long_cache(&redis);
    let b = long_cache(&redis);
    subscribed(&a).await;
    subscribed(&b).await;
    Replicas {
        redis,
        prefix,
        a,
        b,
    }
}

/// Commands Redis executed, without the ones that are not ours to count
/// (the subscribers' health pings, our own INFO).
async fn session_commands(redis: &RedisServer) -> BTreeMap<String, u64> {
    let mut calls = redis.command_calls().await;
    calls.remove("ping");
    calls.remove("info");
    calls
}

/// Waits until `store` has handled every invalidation message sent so far
/// (its own writes' and the other replica's): it gets a marker after them,
/// and messages arrive in the order sent.
async fn settled(r: &Replicas, store: &RedisStore) {
    let handled = store.invalidations_handled();
    let marker = "0".repeat(64); // a hash no session has
    r.redis
        .command(&format!("PUBLISH {}invalidate {marker}", r.prefix))
        .await;
    assert!(
        wait_until(DEADLINE, || store.invalidations_handled() > handled).await,
        "the invalidation marker never arrived"
    );
}

/// `store` answers `id` from its local cache: repeated reads cost Redis nothing.
async fn assert_cached(r: &Replicas, store: &RedisStore, id: &SessionId) {
    let redis = &r.redis;
    // A message still on its way (the put's own) would evict the copy in
    // the middle of the count below, as it should.
    settled(r, store).await;
    // The first read fetches and caches; a read racing with an unrelated
    // invalidation may skip caching (fail safe), so warm up until one read
    // costs nothing.
    let started = Instant::now();
    loop {
        assert!(store.get(id).await.unwrap().is_some());
        let before = session_commands(redis).await;
        assert!(store.get(id).await.unwrap().is_some());
        if before == session_commands(redis).await {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the session never got cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = session_commands(redis).await;
    for _ in 0..50 {
        assert!(store.get(id).await.unwrap().is_some());
    }
    assert_eq!(
        before,
        session_commands(redis).await,
        "a cached read sent a Redis command"
    );
}

/// Polls `b.get(id)` until it answers None; returns how long that took.
async fn until_gone(store: &RedisStore, id: &SessionId) -> Duration {
    let started = Instant::now();
    loop {
        if store.get(id).await.unwrap().is_none() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the session never ended on this replica"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn within<F: Future<Output = ()>>(what: &str, f: F) {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_session_costs_no_redis_command() {
    let r = replicas().await;
    let id = SessionId::generate();
    r.a.put(&id, session("alice", None)).await.unwrap();
    within("cached reads", assert_cached(&r, &r.b, &id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_on_one_replica_ends_the_cached_session_on_another_within_a_second() {
    let r = replicas().await;
    let id = SessionId::generate();
    r.a.put(&id, session("alice", None)).await.unwrap();
    assert_cached(&r, &r.b, &id).await;
    r.a.delete(&id).await.unwrap();
    let took = until_gone(&r.b, &id).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_by_user_and_by_sid_reaches_every_replica_within_a_second() {
    let r = replicas().await;
    let by_user = SessionId::generate();
    let by_sid = SessionId::generate();
    r.a.put(&by_user, session("alice", None)).await.unwrap();
    r.a.put(&by_sid, session("bob", Some("sid-b")))
        .await
        .unwrap();
    assert_cached(&r, &r.b, &by_user).await;
    assert_cached(&r, &r.b, &by_sid).await;

    assert_eq!(r.a.revoke_user("contoso", "alice").await.unwrap(), 1);
    let took = until_gone(&r.b, &by_user).await;
    assert!(took < Duration::from_secs(1), "revoke_user took {took:?}");

    // Revoked from b, read on a.
    assert_cached(&r, &r.a, &by_sid).await;
    assert_eq!(r.b.revoke_sid("contoso", "sid-b").await.unwrap(), 1);
    let took = until_gone(&r.a, &by_sid).await;
    assert!(took < Duration::from_secs(1), "revoke_sid took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_on_one_replica_replaces_the_cached_copy_on_another() {
    let r = replicas().await;
    let id = SessionId::generate();
    r.a.put(&id, session("alice", None)).await.unwrap();
    assert_cached(&r, &r.b, &id).await;
    let mut refreshed = session("alice", None);
    refreshed.refresh_token = Some("rt-2".into());
    r.a.put(&id, refreshed).await.unwrap();
    let started = Instant::now();
    loop {
        let got = r.b.get(&id).await.unwrap().expect("still signed in");
        if got.refresh_token.as_deref() == Some("rt-2") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "old tokens served after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // `get_fresh` never answers from the cache.
    assert_eq!(
        r.b.get_fresh(&id)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .as_deref(),
        Some("rt-2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_refresh_lock_admits_one_replica_at_a_time_and_expires() {
    let r = replicas().await;
    let id = SessionId::generate();
    let ttl = Duration::from_millis(500);
    assert!(r.a.try_lock_refresh(&id, "a", ttl).await.unwrap());
    assert!(
        !r.b.try_lock_refresh(&id, "b", ttl).await.unwrap(),
        "held by a"
    );
    // b cannot release a's lock.
    r.b.unlock_refresh(&id, "b").await.unwrap();
    assert!(!r.b.try_lock_refresh(&id, "b", ttl).await.unwrap());
    r.a.unlock_refresh(&id, "a").await.unwrap();
    assert!(
        r.b.try_lock_refresh(&id, "b", ttl).await.unwrap(),
        "released"
    );
    // A holder that dies: the lock expires by itself.
    let started = Instant::now();
    while !r.a.try_lock_refresh(&id, "a2", ttl).await.unwrap() {
        assert!(started.elapsed() < DEADLINE, "the lock never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "expired too early"
    );
    // Its holder renews it (a refresh that outlasts the ttl): held past
    // several ttls; another replica can neither renew nor take it.
    let id = SessionId::generate();
    assert!(r.a.try_lock_refresh(&id, "a", ttl).await.unwrap());
    for _ in 0..4 {
        tokio::time::sleep(ttl / 2).await;
        assert!(r.a.extend_refresh_lock(&id, "a", ttl).await.unwrap());
        assert!(!r.b.extend_refresh_lock(&id, "b", ttl).await.unwrap());
        assert!(
            !r.b.try_lock_refresh(&id, "b", ttl).await.unwrap(),
            "renewed"
        );
    }
    // Once it lapsed, its old holder cannot renew it.
    tokio::time::sleep(ttl * 2).await;
    assert!(!r.a.extend_refresh_lock(&id, "a", ttl).await.unwrap());
    assert!(r.b.try_lock_refresh(&id, "b", ttl).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saml_assertion_id_is_claimed_once_across_replicas() {
    let r = replicas().await;
    let ttl = Duration::from_secs(60);
    assert_eq!(
        r.a.claim_once("fabrikam", "_assert1", ttl).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        r.b.claim_once("fabrikam", "_assert1", ttl).await.unwrap(),
        Some(false),
        "replayed at another replica"
    );
    assert_eq!(
        r.a.claim_once("fabrikam", "_assert1", ttl).await.unwrap(),
        Some(false)
    );
    // IDs are per connection.
    assert_eq!(
        r.b.claim_once("northwind", "_assert1", ttl).await.unwrap(),
        Some(true)
    );
}

// === Redis only: outage ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_cached_sessions_still_served_others_fail_closed_then_service_resumes() {
    let mut r = replicas().await;
    let cached = SessionId::generate();
    let uncached = SessionId::generate();
    r.a.put(&cached, session("alice", None)).await.unwrap();
    r.a.put(&uncached, session("bob", None)).await.unwrap();
    assert_cached(&r, &r.b, &cached).await;

    r.redis.kill();
    // Hot session: still served from the cache, without Redis.
    assert!(r.b.get(&cached).await.unwrap().is_some());
    // Everything else fails, quickly and with an error (never "signed out"
    // by accident, never a hang).
    let started = Instant::now();
    assert!(
        r.b.get(&uncached).await.is_err(),
        "uncached read must fail closed"
    );
    assert!(r.b.ping().await.is_err(), "ping must report the outage");
    assert!(
        r.b.put(&SessionId::generate(), session("carol", None))
            .await
            .is_err(),
        "a new login must fail"
    );
    assert!(r.b.revoke_user("contoso", "alice").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "calls are bounded: {:?}",
        started.elapsed()
    );
    assert!(
        wait_until(DEADLINE, || !r.b.is_subscribed()).await,
        "subscriber noticed"
    );
    assert!(
        r.b.get(&cached).await.unwrap().is_some(),
        "cache still serves"
    );

    r.redis.restart().await;
    // Back by itself: ping, reads and writes work again (the data is gone:
    // no persistence in this test server), and the subscriber resubscribes.
    let started = Instant::now();
    while r.b.ping().await.is_err() {
        assert!(started.elapsed() < DEADLINE, "ping never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    subscribed(&r.b).await;
    subscribed(&r.a).await;
    // The resubscription cleared the cache: it may have missed invalidations.
    assert!(
        r.b.get(&cached).await.unwrap().is_none(),
        "cache cleared on resubscribe"
    );
    let id = SessionId::generate();
    r.a.put(&id, session("dave", None)).await.unwrap();
    assert!(r.b.get(&id).await.unwrap().is_some());
    r.a.delete(&id).await.unwrap();
    let took = until_gone(&r.b, &id).await;
    assert!(
        took < Duration::from_secs(1),
        "invalidation after restart took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_opened_while_redis_is_down_starts_working_when_it_comes_up() {
    let mut redis = RedisServer::start().await;
    redis.kill();
    let store = redis_store(&redis, &fresh_prefix(), Duration::from_secs(3600));
    assert!(store.ping().await.is_err());
    redis.restart().await;
    let started = Instant::now();
    while store.ping().await.is_err() {
        assert!(started.elapsed() < DEADLINE, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = SessionId::generate();
    store.put(&id, session("alice", None)).await.unwrap();
    assert!(store.get(&id).await.unwrap().is_some());
}

/// Stores a session in Redis, replaces its record with what `rewrite`
/// makes of it (as another build, or damage, would have left it), reads it
/// from another replica and answers what that replica saw and what Redis
/// holds afterwards.
async fn read_a_rewritten_record(
    rewrite: impl FnOnce(&[u8]) -> Vec<u8>,
) -> (bool, Option<Vec<u8>>, Vec<u8>) {
    use redis::AsyncCommands;
    let redis = RedisServer::start().await;
    let prefix = fresh_prefix();
    let store = redis_store(&redis, &prefix, Duration::from_secs(600));
    let id = SessionId::generate();
    store
        .put(&id, session("248289761001", Some("sid-1")))
        .await
        .unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = c.keys(format!("{prefix}*:s")).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let raw: Vec<u8> = c.get(&keys[0]).await.unwrap();
    let written = rewrite(&raw);
    let _: () = c.set_ex(&keys[0], &written, 600).await.unwrap();
    // A replica without the cached copy reads the record.
    let other = redis_store(&redis, &prefix, Duration::from_secs(600));
    let seen =
        other.get(&id).await.unwrap().is_some() || other.get_fresh(&id).await.unwrap().is_some();
    let left: Option<Vec<u8>> = c.get(&keys[0]).await.unwrap();
    (seen, left, written)
}

/// The serde JSON record earlier builds wrote for the same session,
/// changed by `edit`, read back as in [`read_a_rewritten_record`].
async fn read_a_record_of_another_build(
    edit: impl FnOnce(&mut serde_json::Value),
) -> (bool, Option<Vec<u8>>, Vec<u8>) {
    read_a_rewritten_record(|raw| {
        // This build writes the compact record (issue 23).
        assert_eq!(raw.first(), Some(&0xC1), "{raw:?}");
        let mut v = serde_json::to_value(session("248289761001", Some("sid-1"))).unwrap();
        edit(&mut v);
        v.to_string().into_bytes()
    })
    .await
}

/// The JSON record of a build before the compact one (same session
/// version) is still read: a rolling upgrade keeps those users signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_record_of_an_earlier_build_in_redis_is_still_read() {
    let (seen, left, written) = read_a_record_of_another_build(|_| {}).await;
    assert!(seen);
    assert_eq!(left, Some(written));
}

/// A compact record cut short or with a format byte of no known version
/// reads as signed out (never a session with part of its groups), and
/// is left in Redis (a newer replica may read it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_unknown_record_in_redis_reads_as_signed_out() {
    let (seen, left, written) = read_a_rewritten_record(|raw| raw[..raw.len() - 3].to_vec()).await;
    assert!(!seen);
    assert_eq!(left, Some(written));
    let (seen, _, _) = read_a_rewritten_record(|raw| {
        let mut r = raw.to_vec();
        r[0] = 0xC2;
        r
    })
    .await;
    assert!(!seen);
}

/// A session Redis holds from before the upgrade (JSON without `version`,
/// as the previous build wrote it) is signed out, not an error, and is
/// ended so it cannot come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_upgrade_session_in_redis_reads_as_signed_out() {
    let (seen, left, _) = read_a_record_of_another_build(|v| {
        assert!(v.as_object_mut().unwrap().remove("version").is_some());
    })
    .await;
    assert!(!seen);
    assert!(left.is_none(), "the old record was ended");
}

/// A rolling upgrade to a later session format: a replica still on this
/// build reads the newer record as absent, but must not end it, or every
/// user who signed in on an upgraded replica would be signed out there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_a_newer_format_in_redis_is_left_alone() {
    let (seen, left, written) = read_a_record_of_another_build(|v| {
        v["version"] = serde_json::json!(realmgate::session::model::SESSION_VERSION + 1);
    })
    .await;
    assert!(!seen);
    assert_eq!(left, Some(written), "the newer record was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_hold_no_session_id_and_expire() {
    let redis = RedisServer::start().await;
    let prefix = fresh_prefix();
    let store = redis_store(&redis, &prefix, Duration::from_secs(600));
    let id = SessionId::generate();
    store
        .put(&id, session("alice", Some("sid-1")))
        .await
        .unwrap();
    let keys = redis.command(&format!("KEYS {prefix}*")).await;
    let id_hex: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!keys.contains(&id_hex), "a session id is in a key: {keys}");
    assert!(!keys.contains("alice") && !keys.contains("sid-1"), "{keys}");
    // Session: idle timeout; indexes: the absolute end (1 h). The change
    // generations (random values, no session data) never expire, so
    // `volatile-*` eviction never takes them (docs/operations.md).
    let generations = format!("{prefix}gen");
    for line in keys.lines().filter(|l| l.starts_with(&prefix)) {
        let ttl: i64 = redis
            .command(&format!("TTL {line}"))
            .await
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap();
        if line == generations {
            assert_eq!(ttl, -1, "{line}");
            continue;
        }
        assert!(ttl > 0 && ttl <= 3600, "{line} has TTL {ttl}");
    }
}
