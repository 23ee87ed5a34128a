use super::cache::Local;
use super::keys::{hex, parse_hex, session_hash, Keys};
use super::*;

/// A minimal session ending at `expires_at` (also the cache's tests').
pub(super) fn session(expires_at: u64) -> Session {
    Session {
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
    local.insert(h, Arc::new(session(far)), Box::default(), seen);
    assert!(local.get(&h, unix_now()).is_none());
    // An eviction of another session (another stripe) does not stop it.
    let seen = local.epoch(&h);
    local.evict(&[2u8; 32]);
    local.insert(h, Arc::new(session(far)), Box::default(), seen);
    assert!(local.get(&h, unix_now()).is_some());
    local.evict(&h);
    // Without a race it is cached.
    let seen = local.epoch(&h);
    local.insert(h, Arc::new(session(far)), Box::default(), seen);
    assert!(local.get(&h, unix_now()).is_some());
}

#[test]
fn nothing_is_cached_while_invalidations_are_not_received() {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    let h = [2u8; 32];
    let far = unix_now() + 3600;
    local.insert(h, Arc::new(session(far)), Box::default(), local.epoch(&h));
    assert!(local.get(&h, unix_now()).is_none(), "not subscribed yet");
    local.set_subscribed(true);
    local.insert(h, Arc::new(session(far)), Box::default(), local.epoch(&h));
    assert!(local.get(&h, unix_now()).is_some());
    // Losing the subscription keeps what is cached (bounded by the TTL)...
    local.set_subscribed(false);
    assert!(local.get(&h, unix_now()).is_some());
    // ...and coming back clears it, since messages may have been missed.
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
