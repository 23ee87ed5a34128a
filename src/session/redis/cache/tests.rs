use super::*;
use crate::session::redis::tests::session;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A subscribed cache holding a fresh session for a new id.
fn cached() -> (Local, SessionId, Hash, Arc<Session>) {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    local.set_subscribed(true);
    let id = SessionId::generate();
    let h = session_hash(&id);
    let s = Arc::new(session(now() + 3600));
    local.insert(h, s.clone(), Box::default(), local.epoch(&h), Proof::NONE);
    (local, id, h, s)
}

fn memoized(local: &Local, id: &SessionId) -> bool {
    memo::get(local, id).is_some()
}

#[test]
fn a_cache_hit_is_memoized_and_an_eviction_ends_the_memo_at_once() {
    let (local, id, h, s) = cached();
    assert!(!memoized(&local, &id));
    assert!(Arc::ptr_eq(&local.get_id(&id, now()).ok().unwrap(), &s));
    assert!(memoized(&local, &id));
    assert!(Arc::ptr_eq(&local.get_id(&id, now()).ok().unwrap(), &s));
    local.evict(&h);
    assert!(!memoized(&local, &id));
    assert_eq!(
        local.get_id(&id, now()).err().map(|m| m.hash),
        Some(Some(h))
    );
}

#[test]
fn clearing_the_cache_ends_every_memo() {
    let (local, id, _, _) = cached();
    assert!(local.get_id(&id, now()).is_ok());
    assert!(memoized(&local, &id));
    local.clear();
    assert!(!memoized(&local, &id));
    assert!(local.get_id(&id, now()).is_err());
}

/// A copy read from the cache while an eviction ran (after its first
/// epoch bump, before the removal) is not served by the memo once the
/// eviction returned.
#[test]
fn a_copy_read_during_an_eviction_is_not_memoized_past_it() {
    let (local, id, h, _) = cached();
    // The eviction's first bump...
    local.stripe(&h).fetch_add(1, Ordering::AcqRel);
    // ...a reader notes the epochs and still finds the old copy...
    let seen = local.epoch(&h);
    let Lookup::Fresh(e) = local.lookup(&h, now()) else {
        panic!("not removed yet")
    };
    memo::put(&local, &id, stripe_of(&h), seen, &e);
    assert!(memoized(&local, &id));
    // ...then the removal and the second bump.
    local.cache.as_ref().unwrap().invalidate(&h);
    local.stripe(&h).fetch_add(1, Ordering::AcqRel);
    assert!(!memoized(&local, &id));
}

#[test]
fn a_memo_never_outlives_its_cache_entry_or_the_session() {
    let (local, id, h, s) = cached();
    // A cache entry whose TTL has passed.
    let old = Entry {
        session: s.clone(),
        record: Box::default(),
        fresh_until: AtomicU64::new(0),
        tag: AtomicU64::new(0),
        redis_until: AtomicU64::new(u64::MAX),
        reread_at: AtomicU64::new(u64::MAX),
    };
    memo::put(&local, &id, stripe_of(&h), local.epoch(&h), &old);
    assert!(!memoized(&local, &id));
    // A session at its absolute end.
    let ended = Entry {
        session: Arc::new(session(now())),
        record: Box::default(),
        fresh_until: AtomicU64::new(local.deadline()),
        tag: AtomicU64::new(0),
        redis_until: AtomicU64::new(u64::MAX),
        reread_at: AtomicU64::new(u64::MAX),
    };
    memo::put(&local, &id, stripe_of(&h), local.epoch(&h), &ended);
    assert!(!memoized(&local, &id));
    // Once the cache lets go of the session, the memo cannot answer.
    assert!(local.get_id(&id, now()).is_ok());
    let cache = local.cache.as_ref().unwrap();
    cache.invalidate(&h);
    drop((s, old));
    // moka lets go of a removed value at its maintenance, which may stop
    // short of the end on a busy machine: run it until the value is gone,
    // for at most 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        cache.run_pending_tasks();
        if !memoized(&local, &id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the memo outlived its cache entry"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn memos_are_per_cache() {
    let (a, id, h, s) = cached();
    let b = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    b.set_subscribed(true);
    assert!(a.get_id(&id, now()).is_ok());
    assert_eq!(b.get_id(&id, now()).err().map(|m| m.hash), Some(Some(h)));
    b.insert(h, s, Box::default(), b.epoch(&h), Proof::NONE);
    assert!(b.get_id(&id, now()).is_ok());
    // B used this thread's memo last: A reads its cache again, still right.
    assert!(a.get_id(&id, now()).is_ok());
    a.evict(&h);
    assert!(a.get_id(&id, now()).is_err());
}

#[test]
fn a_miss_is_handed_to_the_next_get_of_the_same_id_only() {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    local.set_subscribed(true);
    let (id, other) = (SessionId::generate(), SessionId::generate());
    assert_eq!(
        local.get_id(&id, now()).err().map(|m| m.hash),
        Some(Some(session_hash(&id)))
    );
    assert!(local.take_miss(&other).is_none());
    assert_eq!(
        local.get_id(&id, now()).err().map(|m| m.hash),
        Some(Some(session_hash(&id)))
    );
    assert_eq!(local.take_miss(&id).map(|m| m.0), Some(session_hash(&id)));
    assert!(local.take_miss(&id).is_none(), "taken once");
}

#[test]
fn no_cache_no_memo() {
    let local = Local::new(Duration::ZERO, Duration::ZERO, 100);
    local.set_subscribed(true);
    let id = SessionId::generate();
    let h = session_hash(&id);
    local.insert(
        h,
        Arc::new(session(now() + 3600)),
        Box::default(),
        local.epoch(&h),
        Proof::NONE,
    );
    assert_eq!(local.get_id(&id, now()).err().map(|m| m.hash), Some(None));
}

/// A sweep sent at `sent` that read `value` in `h`'s slot (0 elsewhere).
fn sweep(h: &Hash, value: u64, sent: u64) -> Sweep {
    let mut bytes = vec![0u8; crate::session::redis::generations::LEN];
    let at = crate::session::redis::generations::offset(h);
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    Sweep::parse(sent, &bytes).unwrap()
}

/// A subscribed cache (TTL 60 s) holding, past its TTL, a copy whose
/// `GETEX` noted generation 7 and set Redis's idle time until
/// `redis_until`.
fn aged(redis_until: u64) -> (Local, SessionId, Hash, Arc<Session>) {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(600), 100);
    aged_in(local, redis_until)
}

/// [`aged`] in `local`.
fn aged_in(local: Local, redis_until: u64) -> (Local, SessionId, Hash, Arc<Session>) {
    local.set_subscribed(true);
    let id = SessionId::generate();
    let h = session_hash(&id);
    let s = Arc::new(session(now() + 3600));
    let proof = Proof {
        tag: 7,
        redis_until,
    };
    local.insert(h, s.clone(), Box::default(), local.epoch(&h), proof);
    assert!(local.age(&h));
    (local, id, h, s)
}

fn stale(local: &Local, id: &SessionId) -> bool {
    matches!(
        local.get_id_unnoted(id, now()),
        Err(Miss { stale: Some(_), .. })
    )
}

#[test]
fn a_sweep_that_read_the_same_generation_confirms_a_copy_past_its_ttl() {
    let (local, id, h, s) = aged(u64::MAX);
    assert!(stale(&local, &id), "no sweep yet");
    local.set_sweep(Some(sweep(&h, 7, local.clock())));
    let got = local
        .get_id(&id, now())
        .ok()
        .expect("confirmed by the sweep");
    assert!(Arc::ptr_eq(&got, &s));
    // Fresh for a TTL from the sweep: served again without another sweep.
    local.set_sweep(None);
    assert!(local.get_id_unnoted(&id, now()).is_ok());
}

#[test]
fn a_changed_or_unknown_generation_confirms_nothing() {
    let (local, id, h, _) = aged(u64::MAX);
    local.set_sweep(Some(sweep(&h, 8, local.clock())));
    assert!(stale(&local, &id), "the slot changed");
    local.set_sweep(Some(sweep(&h, 0, local.clock())));
    assert!(stale(&local, &id), "zero is no value");
    // A copy read before any sweep carries no tag: never confirmed, even by
    // a slot that reads zero.
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(600), 100);
    local.set_subscribed(true);
    let id = SessionId::generate();
    let h = session_hash(&id);
    let s = Arc::new(session(now() + 3600));
    local.insert(h, s, Box::default(), local.epoch(&h), Proof::NONE);
    assert!(local.age(&h));
    local.set_sweep(Some(sweep(&h, 0, local.clock())));
    assert!(stale(&local, &id));
}

#[test]
fn a_sweep_confirms_for_one_ttl_from_when_it_was_sent_never_past_redis_ttl() {
    // A TTL of 300 ms: a sweep sent longer ago proves nothing about now.
    let local = Local::new(Duration::from_millis(300), Duration::from_secs(600), 100);
    let (local, id, h, _) = aged_in(local, u64::MAX);
    local.set_sweep(Some(sweep(&h, 7, local.clock())));
    assert!(local.get_id_unnoted(&id, now()).is_ok(), "just sent");
    std::thread::sleep(Duration::from_millis(350));
    assert!(stale(&local, &id), "a sweep older than a TTL");
    // Redis's idle time for the record (set by its GETEX) has run out:
    // Redis may have dropped it without any generation changing.
    let (local, id, h, _) = aged(0);
    local.set_sweep(Some(sweep(&h, 7, local.clock())));
    assert!(stale(&local, &id), "past the record's idle time in Redis");
}

#[test]
fn without_the_subscription_no_sweep_confirms_anything() {
    let (local, id, h, _) = aged(u64::MAX);
    local.set_sweep(Some(sweep(&h, 7, local.clock())));
    local.set_subscribed(false);
    assert!(stale(&local, &id));
    local.set_subscribed(true);
    assert!(local.get_id_unnoted(&id, now()).is_ok());
}

#[test]
fn sweeps_stop_confirming_a_copy_at_its_reread_time() {
    // Re-read every 200 ms (an idle timeout of 1.6 s): a GETEX is due half
    // to all of it after the last one; entries stay unread up to 2 s.
    let mut local = Local::new(Duration::from_millis(20), Duration::from_secs(2), 100);
    local.set_reread(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (local, id, h, _) = aged_in(local, u64::MAX);
    // Read every 10 ms (so the entry never idles out), each time after a
    // fresh sweep that read the unchanged generation.
    let due = loop {
        local.set_sweep(Some(sweep(&h, 7, local.clock())));
        if stale(&local, &id) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still confirmed by sweeps after 2 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(due >= Duration::from_millis(100), "re-read after {due:?}");
    // The GETEX that re-reads it (same record) makes it confirmable again
    // for another interval.
    let stale_entry = match local.get_id_unnoted(&id, now()) {
        Err(Miss {
            stale: Some(st), ..
        }) => st,
        _ => panic!("stale"),
    };
    let proof = local.proof(&h, Duration::from_secs(3600));
    local.confirm(&h, &stale_entry, local.epoch(&h), proof);
    assert!(local.age(&h));
    local.set_sweep(Some(sweep(&h, proof.tag, local.clock())));
    assert!(
        local.get_id_unnoted(&id, now()).is_ok(),
        "confirmed by sweeps again after its re-read"
    );
    // Not "never" (the entry is read all along, so it would stay).
    assert!(due < Duration::from_millis(1500), "re-read after {due:?}");
}
