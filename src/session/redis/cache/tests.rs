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
    local.insert(h, s.clone(), Box::default(), local.epoch(&h));
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
    };
    memo::put(&local, &id, stripe_of(&h), local.epoch(&h), &old);
    assert!(!memoized(&local, &id));
    // A session at its absolute end.
    let ended = Entry {
        session: Arc::new(session(now())),
        record: Box::default(),
        fresh_until: AtomicU64::new(local.deadline()),
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
    b.insert(h, s, Box::default(), b.epoch(&h));
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
    );
    assert_eq!(local.get_id(&id, now()).err().map(|m| m.hash), Some(None));
}

/// `local.get_id(id)` on a new thread: no memo of this thread answers.
fn elsewhere(local: &Local, id: &SessionId) -> Option<Arc<Session>> {
    std::thread::scope(|t| t.spawn(|| local.get_id(id, now()).ok()).join().unwrap())
}

/// Waits (at most 5 s) until moka has let go of the values it removed:
/// it frees them at its maintenance, which may stop short of the end on a
/// busy machine.
fn until_released(local: &Local, released: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !released() {
        assert!(Instant::now() < deadline, "moka kept a removed value 5 s");
        local.cache.as_ref().unwrap().run_pending_tasks();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The front table (module docs): a fresh cache read puts the entry in
/// it, and reads on every other thread are answered from it — shown by
/// taking the entry out of moka without an eviction (as moka's own bound
/// would) while the entry is still held: only the front can answer then.
/// Once the entry is dropped, nothing does.
#[test]
fn the_front_table_answers_other_threads_while_the_entry_lives() {
    let (local, id, h, s) = cached();
    assert_eq!(local.front.len(), 0);
    assert!(local.get_id(&id, now()).is_ok());
    assert_eq!(local.front.len(), 1);
    let cache = local.cache.as_ref().unwrap();
    let held = cache.get(&h).unwrap();
    cache.invalidate(&h);
    cache.run_pending_tasks();
    let got = elsewhere(&local, &id).expect("answered by the front table");
    assert!(Arc::ptr_eq(&got, &s));
    let gone = Arc::downgrade(&held);
    drop((held, got));
    until_released(&local, || gone.strong_count() == 0);
    assert!(elsewhere(&local, &id).is_none(), "entry gone: no answer");
}

/// An eviction, clearing, the lost subscription, the end of freshness and
/// the absolute end each stop the front table's answers at once, on every
/// thread; a kept copy confirmed in place answers again.
#[test]
fn the_front_table_never_outlives_an_eviction_or_the_ttl() {
    let (local, id, h, _) = cached();
    assert!(local.get_id(&id, now()).is_ok());
    assert!(elsewhere(&local, &id).is_some());
    local.evict(&h);
    assert!(elsewhere(&local, &id).is_none(), "evicted");

    let (local, id, _, _) = cached();
    assert!(local.get_id(&id, now()).is_ok());
    local.clear();
    assert!(elsewhere(&local, &id).is_none(), "cleared");

    let (local, id, _, _) = cached();
    assert!(local.get_id(&id, now()).is_ok());
    local.set_subscribed(false);
    assert!(elsewhere(&local, &id).is_none(), "subscription lost");

    // Its TTL passes (no eviction, no epoch change): the front answers
    // nothing, the cache hands back the kept copy to revalidate.
    let (local, id, h, s) = cached();
    assert!(local.get_id(&id, now()).is_ok());
    let Lookup::Fresh(e) = local.lookup(&h, now()) else {
        panic!("fresh")
    };
    e.fresh_until.store(0, Ordering::Release);
    let seen = local.epoch(&h);
    let miss = std::thread::scope(|t| {
        t.spawn(|| local.get_id_unnoted(&id, now()).err())
            .join()
            .unwrap()
    })
    .expect("not served past its TTL");
    let kept = miss.stale.expect("the kept copy, from the cache");
    assert!(kept.reuse(&e.record).is_some_and(|k| Arc::ptr_eq(&k, &s)));
    // Redis answered the same record: fresh again in place.
    local.confirm(&h, &kept, seen);
    assert!(elsewhere(&local, &id).is_some_and(|g| Arc::ptr_eq(&g, &s)));

    // The absolute end: a session ending within the second.
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100);
    local.set_subscribed(true);
    let id = SessionId::generate();
    let h = session_hash(&id);
    let end = now() + 1;
    local.insert(h, Arc::new(session(end)), Box::default(), local.epoch(&h));
    assert!(local.get_id(&id, end - 1).is_ok());
    assert!(local.front.get(&local, &id, end - 1).is_some());
    assert!(local.front.get(&local, &id, end).is_none(), "at its end");
}

/// A live entry the cache no longer holds (moka frees removed values late;
/// a request may hold one) is never made fresh again: a confirmation needs
/// the cache to hold that very entry, so the front table cannot bring back
/// a copy whose record a read found gone.
#[test]
fn a_copy_the_cache_dropped_is_not_confirmed_back_into_the_front_table() {
    let (local, id, h, _) = cached();
    assert!(local.get_id(&id, now()).is_ok());
    let Lookup::Fresh(e) = local.lookup(&h, now()) else {
        panic!("fresh")
    };
    e.fresh_until.store(0, Ordering::Release);
    let seen = local.epoch(&h);
    let cache = local.cache.as_ref().unwrap();
    cache.invalidate(&h);
    cache.run_pending_tasks();
    local.confirm(&h, &Stale(e.clone()), seen);
    assert_eq!(e.fresh_until.load(Ordering::Acquire), 0, "not marked");
    assert!(elsewhere(&local, &id).is_none());
}

/// A slot made from a cache read that began before an eviction (the read
/// noted the epochs first, then the eviction ran) never answers.
#[test]
fn a_front_slot_racing_an_eviction_never_answers() {
    let (local, id, h, _) = cached();
    let seen = local.epoch(&h);
    let Lookup::Fresh(e) = local.lookup(&h, now()) else {
        panic!("fresh")
    };
    local.evict(&h);
    local.front.put(&id, &h, seen, &e);
    assert!(local.front.get(&local, &id, now()).is_none());
    assert!(elsewhere(&local, &id).is_none());
}

/// Ids sharing a slot (the same first ten bytes, in a table of many slots)
/// replace each other there; each read gets its own session, never the
/// other's.
#[test]
fn ids_sharing_a_front_slot_each_get_their_own() {
    let local = Local::new(Duration::from_secs(60), Duration::from_secs(60), 100_000);
    local.set_subscribed(true);
    let mut a = [7u8; 32];
    let mut b = [7u8; 32];
    a[31] = 1;
    b[31] = 2;
    let (a, b) = (SessionId::from_bytes(a), SessionId::from_bytes(b));
    let mut sessions = Vec::new();
    for (id, who) in [(&a, "alice"), (&b, "bob")] {
        let h = session_hash(id);
        let mut s = session(now() + 3600);
        s.user_id = who.into();
        let s = Arc::new(s);
        local.insert(h, s.clone(), Box::default(), local.epoch(&h));
        sessions.push(s);
    }
    for _ in 0..3 {
        for (id, s) in [(&a, &sessions[0]), (&b, &sessions[1])] {
            let got = elsewhere(&local, id).expect("cached");
            assert!(Arc::ptr_eq(&got, s), "{} got {}", s.user_id, got.user_id);
        }
    }
    assert_eq!(local.front.len(), 1, "one slot, taken by the last read");
}
