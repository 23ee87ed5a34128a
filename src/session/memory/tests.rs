use serde_json::json;

use super::*;
use crate::session::model::strs;

fn session(user: &str, sid: Option<&str>) -> Session {
    let now = unix_now();
    Session {
        derived: Default::default(),
        version: crate::session::model::SESSION_VERSION,
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

fn store() -> MemoryStore {
    MemoryStore::new(1000, Duration::from_secs(3600))
}

#[tokio::test]
async fn a_session_round_trips_field_for_field() {
    let s = store();
    let id = SessionId::generate();
    let mut full = session("alice", Some("sid-1"));
    full.preferred_username = Some(String::new());
    full.access_token = Some("at".repeat(1000));
    s.put(&id, full.clone()).await.unwrap();
    assert_eq!(*s.get(&id).await.unwrap().unwrap(), full);
    let sparse = Session {
        derived: Default::default(),
        version: crate::session::model::SESSION_VERSION,
        tenant_id: None,
        sid: None,
        email: None,
        name: None,
        groups: vec![],
        roles: Vec::new(),
        claims: None,
        id_token: None,
        refresh_token: None,
        saml_name_id: None,
        tokens_expire_at: None,
        client_addr: None,
        email_trust: EmailTrust::Unverified,
        ..session("bob", None)
    };
    let id2 = SessionId::generate();
    s.put(&id2, sparse.clone()).await.unwrap();
    assert_eq!(*s.get(&id2).await.unwrap().unwrap(), sparse);
}

#[tokio::test]
async fn unknown_ids_are_none() {
    assert!(store().get(&SessionId::generate()).await.unwrap().is_none());
}

#[tokio::test]
async fn delete_ends_the_session_and_a_late_update_does_not_revive_it() {
    let s = store();
    let id = SessionId::generate();
    s.put(&id, session("alice", None)).await.unwrap();
    s.delete(&id).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_none());
    // A token refresh that started before the logout finishes afterwards.
    s.put(&id, session("alice", None)).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn replacing_a_session_keeps_one_index_entry_and_revocation_working() {
    let s = store();
    let id = SessionId::generate();
    s.put(&id, session("alice", Some("sid-1"))).await.unwrap();
    let mut refreshed = session("alice", Some("sid-1"));
    refreshed.access_token = Some("new".into());
    s.put(&id, refreshed.clone()).await.unwrap();
    s.run_pending_tasks();
    assert_eq!(s.index_len(), 2, "one user entry and one sid entry");
    assert_eq!(*s.get(&id).await.unwrap().unwrap(), refreshed);
    assert_eq!(s.revoke_user("contoso", "alice").await.unwrap(), 1);
    assert!(s.get(&id).await.unwrap().is_none());
}

/// A hot (already unpacked) session is reused only while the store still
/// holds the entry it came from: an update, a logout, a revocation or the
/// absolute end is seen at once.
#[tokio::test]
async fn hot_sessions_never_outlive_the_stored_entry() {
    let s = store();
    let id = SessionId::generate();
    s.put(&id, session("alice", Some("sid-1"))).await.unwrap();
    let first = s.get(&id).await.unwrap().unwrap();
    let again = s.get(&id).await.unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second get reuses the unpacked session"
    );

    let mut refreshed = session("alice", Some("sid-1"));
    refreshed.groups = vec!["g3".into()];
    s.put(&id, refreshed.clone()).await.unwrap();
    let after_update = s.get(&id).await.unwrap().unwrap();
    assert_eq!(*after_update, refreshed);
    assert!(Arc::ptr_eq(
        &after_update,
        &s.get(&id).await.unwrap().unwrap()
    ));

    assert_eq!(s.revoke_sid("contoso", "sid-1").await.unwrap(), 1);
    assert!(s.get(&id).await.unwrap().is_none());

    let id2 = SessionId::generate();
    s.put(&id2, session("bob", None)).await.unwrap();
    assert!(s.get(&id2).await.unwrap().is_some());
    s.delete(&id2).await.unwrap();
    assert!(s.get(&id2).await.unwrap().is_none());

    // Ends by its absolute time even while hot.
    let id3 = SessionId::generate();
    let mut short = session("carol", None);
    short.expires_at = unix_now() + 1;
    s.put(&id3, short).await.unwrap();
    assert!(s.get(&id3).await.unwrap().is_some());
    wait_until("the session did not end at expires_at", || {
        s.get_now(&id3).is_none()
    })
    .await;
}

/// Waits until `done` holds: bounded (5 s, polling every 50 ms), failing
/// with `what` when it never does.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Admission to the hot copies: a session's first read keeps its copy (a
/// user who just signed in), a lone read of a session last read in an
/// earlier second does not (neither in the store nor in the thread's memo),
/// and a read in the same second as the one before it does.
#[tokio::test]
async fn only_sessions_that_come_back_keep_an_unpacked_copy() {
    let s = store();
    let id = SessionId::generate();
    s.put(&id, session("alice", None)).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_some());
    assert_eq!(
        s.hot.len(),
        1,
        "the first read after sign-in keeps its copy"
    );
    assert_eq!(memo::len(s.number), 1);

    let other = SessionId::generate();
    s.put(&other, session("bob", None)).await.unwrap();
    let packed = s.cache.get(&other).expect("stored");
    // Bounded: two reads straddle a second boundary at most once or twice.
    let mut admitted = false;
    for _ in 0..5 {
        // Read before, long ago.
        packed.read.store(true, Ordering::Relaxed);
        packed
            .last_seen
            .store(secs(unix_now() - 60), Ordering::Relaxed);
        memo::forget(s.number, &other);
        s.hot.remove(&other);
        let lone = s.get(&other).await.unwrap().unwrap();
        assert_eq!(lone.user_id, "bob");
        assert!(
            s.hot.get(&other, &packed).is_none(),
            "a lone read keeps no copy"
        );
        assert!(memo::get(s.number, &other).is_none(), "nor a memo entry");
        drop(lone);
        let again = s.get(&other).await.unwrap().unwrap();
        if let Some(kept) = s.hot.get(&other, &packed) {
            assert!(Arc::ptr_eq(&kept, &again));
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a read within the same second keeps its copy");
    assert_eq!(s.get(&other).await.unwrap().unwrap().user_id, "bob");
}

/// An ended session's unpacked copy is dropped at once, and a copy of an
/// entry that ended while it was being unpacked is never kept.
#[tokio::test]
async fn hot_copies_of_ended_sessions_are_dropped_or_never_kept() {
    let s = store();
    let id = SessionId::generate();
    s.put(&id, session("alice", Some("sid-1"))).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_some());
    assert_eq!(s.hot.len(), 1);
    s.delete(&id).await.unwrap();
    assert_eq!(s.hot.len(), 0, "the logout dropped the copy");

    // An entry that ends between its unpacking and the insert.
    let id = SessionId::generate();
    s.put(&id, session("bob", None)).await.unwrap();
    let packed = s.cache.get(&id).expect("stored");
    let copy = Arc::new(packed.unpack().expect("unpacks"));
    s.end(&id);
    assert!(packed.ended.load(Ordering::Acquire));
    s.hot.insert(&id, packed.clone(), copy);
    assert_eq!(s.hot.len(), 0, "an ended entry's copy is not kept");
    assert!(s.hot.get(&id, &packed).is_none());
    assert!(s.get(&id).await.unwrap().is_none());
}

/// Tokens come back exactly as stored, in their compact form or not.
#[tokio::test]
async fn tokens_come_back_exactly() {
    let s = store();
    let id = SessionId::generate();
    let mut with_tokens = session("alice", None);
    with_tokens.id_token = Some("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln".into());
    with_tokens.access_token = Some("not base64 at all: ü".into());
    with_tokens.refresh_token = Some("0.AXEAc2VjcmV0LXJlZnJlc2g".into());
    s.put(&id, with_tokens.clone()).await.unwrap();
    assert_eq!(*s.get(&id).await.unwrap().unwrap(), with_tokens);
    let mut none = session("bob", None);
    (none.id_token, none.refresh_token) = (None, None);
    let id2 = SessionId::generate();
    s.put(&id2, none.clone()).await.unwrap();
    assert_eq!(*s.get(&id2).await.unwrap().unwrap(), none);
}

#[tokio::test]
async fn revoke_user_ends_every_session_of_that_user_only() {
    let s = store();
    let a1 = SessionId::generate();
    let a2 = SessionId::generate();
    let b = SessionId::generate();
    s.put(&a1, session("alice", Some("s1"))).await.unwrap();
    s.put(&a2, session("alice", Some("s2"))).await.unwrap();
    s.put(&b, session("bob", Some("s3"))).await.unwrap();
    assert_eq!(s.revoke_user("contoso", "alice").await.unwrap(), 2);
    assert!(s.get(&a1).await.unwrap().is_none());
    assert!(s.get(&a2).await.unwrap().is_none());
    assert!(s.get(&b).await.unwrap().is_some());
    assert_eq!(s.revoke_user("contoso", "alice").await.unwrap(), 0);
    assert_eq!(s.revoke_user("contoso", "nobody").await.unwrap(), 0);
    // Revoked sessions cannot be written back by an in-flight refresh.
    s.put(&a1, session("alice", Some("s1"))).await.unwrap();
    assert!(s.get(&a1).await.unwrap().is_none());
}

#[tokio::test]
async fn revoke_sid_ends_the_sessions_with_that_provider_session() {
    let s = store();
    let a = SessionId::generate();
    let b = SessionId::generate();
    let c = SessionId::generate();
    s.put(&a, session("alice", Some("shared"))).await.unwrap();
    s.put(&b, session("alice", Some("other"))).await.unwrap();
    s.put(&c, session("carol", Some("shared"))).await.unwrap();
    assert_eq!(s.revoke_sid("contoso", "shared").await.unwrap(), 2);
    assert!(s.get(&a).await.unwrap().is_none());
    assert!(s.get(&c).await.unwrap().is_none());
    assert!(s.get(&b).await.unwrap().is_some());
    assert_eq!(s.revoke_sid("contoso", "").await.unwrap(), 0);
}

#[tokio::test]
async fn indexes_are_pruned_when_sessions_go() {
    let s = store();
    let mut ids = Vec::new();
    for i in 0..50 {
        let id = SessionId::generate();
        s.put(
            &id,
            session(&format!("u{}", i % 10), Some(&format!("sid{i}"))),
        )
        .await
        .unwrap();
        ids.push(id);
    }
    s.run_pending_tasks();
    assert_eq!(s.index_len(), 10 + 50);
    for id in &ids[..25] {
        s.delete(id).await.unwrap();
    }
    s.run_pending_tasks();
    assert_eq!(s.index_len(), 10 + 25);
    for u in 0..10 {
        s.revoke_user("contoso", &format!("u{u}")).await.unwrap();
    }
    s.run_pending_tasks();
    assert_eq!(s.index_len(), 0);
    assert_eq!(s.approximate_len(), 0);
}

#[tokio::test]
async fn a_session_past_its_absolute_end_is_gone() {
    let s = store();
    let id = SessionId::generate();
    let mut old = session("alice", None);
    old.expires_at = unix_now().saturating_sub(1);
    s.put(&id, old).await.unwrap();
    assert!(s.get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn the_absolute_end_wins_over_activity() {
    let s = store();
    let id = SessionId::generate();
    let mut short = session("alice", Some("x"));
    short.expires_at = unix_now() + 1;
    let end = UNIX_EPOCH + Duration::from_secs(short.expires_at);
    s.put(&id, short).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get(&id).await.unwrap().is_some() {
        assert!(
            SystemTime::now() < end + Duration::from_millis(500),
            "session outlived its absolute end (reads answered by the thread's memo included)"
        );
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The indexes are pruned when the cache drops the entry: at once when a
    // read finds it past its end, or at the cache's maintenance when its
    // own expiry saw it first (timer-wheel granularity).
    while s.index_len() != 0 {
        assert!(Instant::now() < deadline, "expiry never pruned the indexes");
        s.run_pending_tasks();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_sessions_end_and_use_extends_them() {
    let s = MemoryStore::new(1000, Duration::from_millis(400));
    let id = SessionId::generate();
    s.put(&id, session("alice", None)).await.unwrap();
    // Keep it busy for longer than the idle timeout: it stays.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(s.get(&id).await.unwrap().is_some());
    }
    // Leave it alone: it goes. (Waiting cannot poll `get`, which extends.)
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(s.get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn at_capacity_the_newest_session_is_admitted() {
    let s = MemoryStore::new(10, Duration::from_secs(3600));
    let mut last = None;
    for i in 0..40 {
        let id = SessionId::generate();
        s.put(&id, session(&format!("u{i}"), None)).await.unwrap();
        last = Some(id);
    }
    s.run_pending_tasks();
    assert!(s.approximate_len() <= 10, "{}", s.approximate_len());
    assert!(
        s.get(&last.unwrap()).await.unwrap().is_some(),
        "a fresh login is never refused"
    );
    s.run_pending_tasks();
    assert!(s.index_len() <= 10);
}

#[tokio::test]
async fn ping_answers() {
    store().ping().await.unwrap();
}

#[test]
fn the_interner_counts_references_and_reuses_freed_ids() {
    let mut i = Interner::default();
    let a = i.acquire("group");
    let b = i.acquire("group");
    assert_eq!(a, b);
    assert_eq!(i.get(a), Some("group"));
    i.release(a);
    assert_eq!(i.get(a), Some("group"), "still referenced once");
    i.release(b);
    assert_eq!(i.get(a), None);
    assert_eq!(i.len(), 0);
    let c = i.acquire("other");
    assert_eq!(c, a, "freed ids are reused");
    assert_eq!(i.get(c), Some("other"));
    // Releasing more than acquired never frees a live string twice.
    i.release(c);
    i.release(c);
    assert_eq!(i.len(), 0);
}

#[tokio::test]
async fn interned_strings_are_released_when_sessions_end() {
    let s = store();
    let a = SessionId::generate();
    let b = SessionId::generate();
    s.put(&a, session("alice", None)).await.unwrap();
    let mut other = session("bob", None);
    other.groups = vec!["g1".into(), "only-bob".into()];
    s.put(&b, other).await.unwrap();
    // connection, issuer, tenant, g1, g2, "", only-bob
    assert_eq!(s.interned_len(), 7);
    s.delete(&b).await.unwrap();
    s.run_pending_tasks();
    assert_eq!(s.interned_len(), 6);
    // Alice's session still reads back whole.
    assert_eq!(
        strs(&s.get(&a).await.unwrap().unwrap().groups),
        ["g1", "g2", ""]
    );
    s.delete(&a).await.unwrap();
    s.run_pending_tasks();
    assert_eq!(s.interned_len(), 0);
}

/// Groups and roles of a read session are the interned strings themselves
/// (shared, not copied): they must stay what they were after every entry
/// holding them ended and the interner reused their ids for other text.
#[tokio::test]
async fn a_read_sessions_groups_survive_the_interner_releasing_them() {
    let s = store();
    let a = SessionId::generate();
    let b = SessionId::generate();
    let mut alice = session("alice", None);
    alice.roles = vec!["Reader".into()];
    s.put(&a, alice.clone()).await.unwrap();
    let mut bob = session("bob", None);
    bob.groups = vec!["g1".into(), "only-bob".into()];
    s.put(&b, bob).await.unwrap();
    let held = s.get(&a).await.unwrap().unwrap();
    s.delete(&a).await.unwrap();
    s.delete(&b).await.unwrap();
    s.run_pending_tasks();
    assert_eq!(s.interned_len(), 0, "every string released");
    // New sessions take the freed ids with other text.
    let c = SessionId::generate();
    let mut carol = session("carol", None);
    carol.groups = vec!["x1".into(), "x2".into(), "x3".into(), "x4".into()];
    carol.roles = vec!["Writer".into()];
    s.put(&c, carol.clone()).await.unwrap();
    assert_eq!(strs(&held.groups), ["g1", "g2", ""]);
    assert_eq!(strs(&held.roles), ["Reader"]);
    assert_eq!(*held, alice);
    assert_eq!(*s.get(&c).await.unwrap().unwrap(), carol);
    assert!(s.get(&a).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_use_neither_deadlocks_nor_leaks() {
    // Small capacity and a short idle timeout, so evictions and expiries run
    // the listener while other tasks put, get, delete and revoke.
    let s = Arc::new(MemoryStore::new(64, Duration::from_millis(50)));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..1500u64 {
                let user = format!("u{}", (t * 7 + i) % 13);
                match i % 6 {
                    0 | 1 => {
                        let id = SessionId::generate();
                        let mut sess = session(&user, Some(&format!("sid{}", i % 5)));
                        sess.groups = vec![format!("g{}", i % 17).into(), format!("g{}", t).into()];
                        s.put(&id, sess).await.unwrap();
                        ids.push(id);
                    }
                    2 | 3 => {
                        if let Some(id) = ids.get((i as usize * 31) % ids.len().max(1)) {
                            if let Some(got) = s.get(id).await.unwrap() {
                                assert_eq!(
                                    got.groups.len(),
                                    2,
                                    "a session never reads back partial"
                                );
                            }
                        }
                    }
                    4 => {
                        if let Some(id) = ids.pop() {
                            s.delete(&id).await.unwrap();
                        }
                    }
                    _ => {
                        s.revoke_user("contoso", &user).await.unwrap();
                        s.revoke_sid("contoso", &format!("sid{}", i % 5))
                            .await
                            .unwrap();
                    }
                }
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let all = futures_util::future::join_all(tasks);
    let results = tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("no deadlock: every task finished");
    for r in results {
        r.expect("no task panicked");
    }
    // Everything left ends by revocation; then nothing may remain anywhere.
    for u in 0..13 {
        s.revoke_user("contoso", &format!("u{u}")).await.unwrap();
    }
    // moka applies removals in batches, and its timer wheel may lag an
    // expiry by a tick: under load one maintenance run may leave some for
    // a later one (seen in full parallel `cargo test` runs). Bounded wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        s.run_pending_tasks();
        if s.approximate_len() == 0 && s.interned_len() == 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.approximate_len(), 0);
    assert_eq!(s.index_len(), 0, "indexes pruned");
    assert_eq!(
        s.interned_len(),
        0,
        "every interned string released exactly once"
    );
}

/// The per-thread memo answers repeated reads, and a delete, a revocation
/// or a refresh is seen by the very next read, on this thread and on others.
#[tokio::test]
async fn the_thread_memo_never_outlives_an_ended_or_replaced_entry() {
    let s = Arc::new(store());
    let id = SessionId::generate();
    s.put(&id, session("alice", Some("sid-1"))).await.unwrap();
    let first = s.get(&id).await.unwrap().unwrap();
    assert_eq!(memo::len(s.number), 1);
    assert!(Arc::ptr_eq(&first, &s.get(&id).await.unwrap().unwrap()));

    // A refresh replaces the entry: the next read has the new groups.
    let mut refreshed = session("alice", Some("sid-1"));
    refreshed.groups = vec!["g9".into()];
    s.put(&id, refreshed).await.unwrap();
    assert_eq!(strs(&s.get(&id).await.unwrap().unwrap().groups), ["g9"]);

    // Revoked by sid, by user, and deleted on another thread.
    assert_eq!(s.revoke_sid("contoso", "sid-1").await.unwrap(), 1);
    assert!(s.get(&id).await.unwrap().is_none());
    let by_user = SessionId::generate();
    s.put(&by_user, session("bob", None)).await.unwrap();
    assert!(s.get(&by_user).await.unwrap().is_some());
    assert_eq!(s.revoke_user("contoso", "bob").await.unwrap(), 1);
    assert!(s.get(&by_user).await.unwrap().is_none());

    let elsewhere = SessionId::generate();
    s.put(&elsewhere, session("carol", None)).await.unwrap();
    assert!(s.get_now(&elsewhere).is_some());
    let (other, gone) = (s.clone(), elsewhere.clone());
    std::thread::spawn(move || assert!(other.end(&gone)))
        .join()
        .unwrap();
    assert!(s.get_now(&elsewhere).is_none(), "deleted on another thread");
}

/// Another store on the same thread never answers from this one's memo, and
/// a thread's memo stays bounded.
#[tokio::test]
async fn the_thread_memo_is_per_store_and_bounded() {
    let a = store();
    let b = store();
    let id = SessionId::generate();
    a.put(&id, session("alice", None)).await.unwrap();
    b.put(&id, session("bob", None)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(a.get(&id).await.unwrap().unwrap().user_id, "alice");
        assert_eq!(b.get(&id).await.unwrap().unwrap().user_id, "bob");
    }
    let s = store();
    for i in 0..(memo::CAPACITY * 2) {
        let id = SessionId::generate();
        s.put(&id, session(&format!("u{i}"), None)).await.unwrap();
        assert!(s.get(&id).await.unwrap().is_some());
        assert!(memo::len(s.number) <= memo::CAPACITY);
    }
}

/// Two sessions whose ids share a memo slot: each read answers its own
/// session (a slot answers only for the id it holds, compared in full),
/// and the later one takes the slot.
#[tokio::test]
async fn sessions_sharing_a_memo_slot_each_get_their_own() {
    let s = store();
    let first = SessionId::generate();
    let slot = |id: &SessionId| {
        u64::from_le_bytes(id.as_bytes()[..8].try_into().unwrap()) % memo::CAPACITY as u64
    };
    // Bounded: a collision among 512 slots comes within a few dozen ids.
    let second = (0..100_000)
        .map(|_| SessionId::generate())
        .find(|id| slot(id) == slot(&first))
        .expect("a colliding id");
    s.put(&first, session("alice", None)).await.unwrap();
    s.put(&second, session("bob", None)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(s.get(&first).await.unwrap().unwrap().user_id, "alice");
        assert_eq!(s.get(&second).await.unwrap().unwrap().user_id, "bob");
    }
    assert_eq!(memo::len(s.number), 1);
    s.delete(&second).await.unwrap();
    assert!(s.get(&second).await.unwrap().is_none());
    assert_eq!(s.get(&first).await.unwrap().unwrap().user_id, "alice");
}

/// A read moves the idle deadline only by `slack` or more; a deadline that
/// came closer (the absolute lifetime) is taken at once. Together with
/// `idle_sessions_end_and_use_extends_them`: idle expiry still works.
#[test]
fn reads_move_the_idle_deadline_only_by_the_slack_or_more() {
    let idle = Duration::from_secs(8);
    let expiry = SessionExpiry {
        idle_timeout: idle,
        slack: memo::freshness(idle),
    };
    assert_eq!(expiry.slack, Duration::from_secs(1));
    let id = SessionId::generate();
    let interner = Arc::new(RwLock::new(Interner::default()));
    let packed = Arc::new(Packed::pack(id.clone(), &session("alice", None), &interner));
    let now = Instant::now();
    let read = |current: Option<Duration>| {
        expiry
            .expire_after_read(&id, &packed, now, current, now)
            .unwrap()
    };
    // Read 0.3 s after the deadline was set: it stays where it was.
    let recent = idle - Duration::from_millis(300);
    assert_eq!(read(Some(recent)), recent);
    // Read 1.5 s after: it moves to a full idle timeout from now.
    assert_eq!(read(Some(idle - Duration::from_millis(1500))), idle);
    // No deadline known, or a later one than the session's own: its own.
    assert_eq!(read(None), idle);
    assert_eq!(read(Some(idle * 2)), idle);
    // The absolute end comes first: taken at once, whatever was scheduled.
    let mut short = session("bob", None);
    short.expires_at = unix_now() + 3;
    let short = Arc::new(Packed::pack(id.clone(), &short, &interner));
    let got = expiry
        .expire_after_read(&id, &short, now, Some(idle), now)
        .unwrap();
    assert!(got <= Duration::from_secs(3), "{got:?}");
}

/// Text, group and role ids and tokens share one allocation (issue 23
/// item 4): each part comes back exactly, whichever are empty, with
/// multi-byte text beside the ids; and times are kept to the second.
#[tokio::test]
async fn text_ids_and_tokens_share_one_allocation_and_come_back_exactly() {
    let s = store();
    let cases = [
        (vec!["g1", "g2"], vec!["Admin", "g1"], true),
        (vec![], vec!["Reader"], true),
        (vec!["ü-group"], vec![], false),
        (vec![], vec![], false),
    ];
    for (groups, roles, tokens) in cases {
        let mut x = session("zoë", Some("sid-ü"));
        x.groups = groups.iter().map(|g| g.to_string().into()).collect();
        x.roles = roles.iter().map(|r| r.to_string().into()).collect();
        if !tokens {
            (x.id_token, x.access_token, x.refresh_token) = (None, None, None);
        }
        let id = SessionId::generate();
        s.put(&id, x.clone()).await.unwrap();
        assert_eq!(*s.get(&id).await.unwrap().unwrap(), x);
    }
}

// === review (issue 23): counts and times at their limits ===

/// A reference count that wrapped would free a string still held by
/// sessions, and the next string interned would take its id: those
/// sessions would then carry another group (a privilege they never had).
/// Duplicates in a provider's `groups` claim are not removed, so one
/// sign-in can add many references to one string.
#[test]
fn an_interned_reference_count_never_wraps_into_a_reused_id() {
    let mut i = Interner::default();
    let id = i.acquire("readers");
    // As if some four billion references were held already.
    i.slots[id as usize].1 = u32::MAX - 1;
    assert_eq!(i.acquire("readers"), id);
    assert_eq!(i.acquire("readers"), id, "one reference past u32::MAX");
    for _ in 0..3 {
        i.release(id);
    }
    assert_eq!(i.get(id), Some("readers"), "still referenced");
    let other = i.acquire("admins");
    assert_ne!(other, id, "a live string's id is never handed to another");
    assert_eq!(i.get(id), Some("readers"));
}

/// `tokens_expire_at` is kept in 32 bits with `u32::MAX` meaning "absent":
/// no time may turn into that marker (a session whose tokens never expire
/// is never refreshed).
#[tokio::test]
async fn no_time_turns_into_the_absent_marker() {
    let s = store();
    let id = SessionId::generate();
    let mut v = session("alice", None);
    v.tokens_expire_at = Some(u64::from(u32::MAX));
    s.put(&id, v).await.unwrap();
    let got = s.get(&id).await.unwrap().unwrap();
    let kept = got
        .tokens_expire_at
        .expect("a token expiry stays an expiry");
    assert!(
        kept <= u64::from(u32::MAX),
        "an earlier end, never a later one"
    );
}

/// Text of any shape: empty, multi-byte, control bytes, JSON-looking,
/// GUID- and base64url-looking (a field boundary in `Packed` comes from
/// lengths, never from the bytes of a value).
fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just(String::new()),
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[A-Za-z0-9_.=,:\"{}-]{0,40}",
        any::<String>(),
    ]
}

proptest::proptest! {
    /// Whatever a provider puts in a session's text (names, emails, group
    /// ids with duplicates, roles equal to groups), `Packed` gives back
    /// exactly that session, and another session packed into the same
    /// interner and dropped meanwhile changes nothing of it.
    #[test]
    fn any_session_packs_and_unpacks_exactly(
        user_id in any_text(),
        subject in any_text(),
        opt in proptest::collection::vec(proptest::option::of(any_text()), 8),
        groups in proptest::collection::vec(any_text(), 0..12),
        roles in proptest::collection::vec(any_text(), 0..4),
        other_groups in proptest::collection::vec(any_text(), 0..12),
        times in proptest::collection::vec(0u64..u64::from(u32::MAX - 1), 3),
    ) {
        let interner = Arc::new(RwLock::new(Interner::default()));
        let mut s = session("x", None);
        s.user_id = user_id;
        s.subject = subject;
        s.issuer = opt[0].clone().unwrap_or_default();
        s.tenant_id = opt[1].clone();
        s.sid = opt[2].clone();
        s.email = opt[3].clone();
        s.name = opt[4].clone();
        s.preferred_username = opt[5].clone();
        s.id_token = opt[6].clone();
        s.refresh_token = opt[7].clone();
        // Duplicates, and roles that are also groups, share interned ids.
        let shared = |v: &[String]| v.iter().map(|x| Arc::<str>::from(x.as_str())).collect::<Vec<_>>();
        let mut g = shared(&groups);
        g.extend(shared(&groups).into_iter().take(2));
        s.groups = g;
        s.roles = shared(&roles);
        s.roles.extend(shared(&groups).into_iter().take(1));
        s.created_at = times[0];
        s.expires_at = times[1];
        s.tokens_expire_at = Some(times[2]);
        let mut other = session("y", Some("sid"));
        other.groups = shared(&other_groups);
        other.groups.extend(s.groups.iter().skip(1).cloned());
        let p = Packed::pack(SessionId::generate(), &s, &interner);
        let q = Packed::pack(SessionId::generate(), &other, &interner);
        proptest::prop_assert_eq!(p.unpack(), Some(s.clone()));
        drop(q);
        proptest::prop_assert_eq!(p.unpack(), Some(s.clone()));
        // A string interned after the other session ended takes a freed id,
        // never one this session still refers to.
        let r = Packed::pack(SessionId::generate(), &session("z", None), &interner);
        proptest::prop_assert_eq!(p.unpack(), Some(s));
        drop(r);
        drop(p);
        proptest::prop_assert_eq!(read(&interner).len(), 0);
    }
}

/// `revoke` looks the connection's interned id up, then the index under
/// it. If the connection's last session ends in between, its id is freed
/// and may be taken by another connection's name at once: a revocation for
/// one connection must still never end another's sessions (SPEC 6.1).
#[tokio::test]
async fn a_revocation_never_follows_a_reused_connection_id_to_another_connection() {
    let s = store();
    let mut contoso = session("u", Some("sid-1"));
    contoso.groups = Vec::new();
    contoso.tenant_id = None;
    let gone = SessionId::generate();
    s.put(&gone, contoso).await.unwrap();
    // The id revoke("contoso", ...) would look up first.
    let stale = read(&s.interner).id_of("contoso").unwrap();
    // Contoso's last session ends; fabrikam's user "u" signs in and its
    // connection name takes the freed id.
    s.delete(&gone).await.unwrap();
    s.run_pending_tasks();
    let mut fabrikam = session("u", Some("sid-1"));
    fabrikam.connection = "fabrikam".into();
    fabrikam.issuer = "https://fabrikam.example".into();
    fabrikam.tenant_id = None;
    fabrikam.groups = vec!["x".into()];
    let kept = SessionId::generate();
    s.put(&kept, fabrikam).await.unwrap();
    assert_eq!(
        read(&s.interner).id_of("fabrikam"),
        Some(stale),
        "the scenario: fabrikam's name took contoso's freed id"
    );
    assert_eq!(s.revoke_among(Which::User, stale, "contoso", "u"), 0);
    assert_eq!(s.revoke_among(Which::Sid, stale, "contoso", "sid-1"), 0);
    assert_eq!(
        s.get(&kept).await.unwrap().unwrap().connection,
        "fabrikam",
        "fabrikam's session survives contoso's revocation"
    );
    let listed = s.list_now(
        ListBy::User {
            connection: "fabrikam",
            user_id: "u",
        },
        10,
    );
    assert_eq!(listed.sessions.len(), 1);
}

/// A read that neither the thread's memo nor the hot copies answer: the
/// front index or the cache.
fn cold_get(s: &MemoryStore, id: &SessionId) -> Option<Arc<Session>> {
    memo::forget(s.number, id);
    s.hot.remove(id);
    s.get_now(id)
}

/// The front index answers between the cache's confirmations, and a
/// delete, a revocation, a replacement or the absolute end is seen by the
/// very next read through it; an unconfirmed entry goes to the cache again.
#[tokio::test]
async fn the_front_index_answers_between_confirmations_and_sees_every_end() {
    let s = store();
    assert_eq!(s.front_slack, 60);
    let id = SessionId::generate();
    s.put(&id, session("alice", Some("sid-1"))).await.unwrap();
    assert_eq!(s.front.len(), 1);
    let packed = s.front.get(&id).expect("indexed by the put");
    assert_eq!(cold_get(&s, &id).unwrap().user_id, "alice");

    // Confirmed long ago: the read goes to the cache, which confirms it again.
    packed.confirmed.store(0, Ordering::Relaxed);
    assert!(!packed.answers_unconfirmed(unix_now(), s.ticks(), s.front_slack));
    assert_eq!(cold_get(&s, &id).unwrap().user_id, "alice");
    assert!(packed.answers_unconfirmed(unix_now(), s.ticks(), s.front_slack));
    assert!(!packed.answers_unconfirmed(unix_now(), s.ticks() + 60, s.front_slack));

    // Replaced (a refresh): the next read has the new groups.
    let mut refreshed = session("alice", Some("sid-1"));
    refreshed.groups = vec!["g7".into()];
    s.put(&id, refreshed).await.unwrap();
    assert!(packed.ended.load(Ordering::Acquire));
    assert_eq!(strs(&cold_get(&s, &id).unwrap().groups), ["g7"]);

    // Revoked by sid and by user, deleted.
    assert_eq!(s.revoke_sid("contoso", "sid-1").await.unwrap(), 1);
    assert!(cold_get(&s, &id).is_none());
    let bob = SessionId::generate();
    s.put(&bob, session("bob", None)).await.unwrap();
    assert!(cold_get(&s, &bob).is_some());
    assert_eq!(s.revoke_user("contoso", "bob").await.unwrap(), 1);
    assert!(cold_get(&s, &bob).is_none());
    let carol = SessionId::generate();
    s.put(&carol, session("carol", None)).await.unwrap();
    assert!(cold_get(&s, &carol).is_some());
    s.delete(&carol).await.unwrap();
    assert!(cold_get(&s, &carol).is_none());

    // The absolute end, with the entry confirmed just now.
    let dave = SessionId::generate();
    let mut short = session("dave", None);
    short.expires_at = unix_now() + 1;
    s.put(&dave, short).await.unwrap();
    assert!(cold_get(&s, &dave).is_some());
    wait_until("the session outlived expires_at", || {
        cold_get(&s, &dave).is_none()
    })
    .await;

    // Expired entries go at moka's maintenance (its timer wheel may lag
    // the exact deadline by a tick, about a second).
    wait_until("ended entries stayed in the front index", || {
        s.run_pending_tasks();
        s.front.len() == 0
    })
    .await;
}

/// Ids that share the front index's key (their first 8 bytes) each get
/// their own session: an entry answers only for the id it holds.
#[tokio::test]
async fn ids_sharing_a_front_key_each_get_their_own() {
    let s = store();
    let mut a = [7u8; 32];
    let mut b = [7u8; 32];
    a[31] = 1;
    b[31] = 2;
    let (a, b) = (SessionId::from_bytes(a), SessionId::from_bytes(b));
    s.put(&a, session("alice", None)).await.unwrap();
    s.put(&b, session("bob", None)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(cold_get(&s, &a).unwrap().user_id, "alice");
        assert_eq!(cold_get(&s, &b).unwrap().user_id, "bob");
    }
    assert_eq!(s.front.len(), 1, "one key");
    s.delete(&b).await.unwrap();
    assert!(cold_get(&s, &b).is_none());
    assert_eq!(cold_get(&s, &a).unwrap().user_id, "alice");
    s.delete(&a).await.unwrap();
    assert!(cold_get(&s, &a).is_none());
    s.run_pending_tasks();
    assert_eq!(s.front.len(), 0);
}

/// Evicted sessions leave the front index with the cache, and short idle
/// timeouts never answer from it.
#[tokio::test]
async fn the_front_index_follows_eviction_and_short_idle_timeouts_skip_it() {
    let s = MemoryStore::new(10, Duration::from_secs(3600));
    let ids: Vec<SessionId> = (0..50).map(|_| SessionId::generate()).collect();
    for (i, id) in ids.iter().enumerate() {
        s.put(id, session(&format!("u{i}"), None)).await.unwrap();
        s.run_pending_tasks();
    }
    s.run_pending_tasks();
    let live = ids.iter().filter(|id| s.cache.contains_key(*id)).count();
    assert!(live <= 10);
    assert_eq!(s.front.len(), live, "one front entry per stored session");
    for id in &ids {
        assert_eq!(cold_get(&s, id).is_some(), s.cache.contains_key(id));
    }

    assert_eq!(front_slack(Duration::from_secs(3600)), 60);
    assert_eq!(front_slack(Duration::from_secs(80)), 10);
    assert_eq!(front_slack(Duration::from_secs(7)), 0);
    let short = MemoryStore::new(10, Duration::from_secs(7));
    let id = SessionId::generate();
    short.put(&id, session("erin", None)).await.unwrap();
    assert!(cold_get(&short, &id).is_some());
    assert_eq!(short.front.len(), 0, "off below 8 seconds of idle time");
}

/// The client address comes back as stored (16 bytes in `Packed`): none,
/// IPv4, IPv6; an IPv4-mapped IPv6 address (never stored: `peer` makes
/// addresses canonical) comes back as its IPv4 address.
#[tokio::test]
async fn client_addresses_come_back_as_stored() {
    let s = store();
    for (stored, back) in [
        (None, None),
        (Some("192.0.2.1"), Some("192.0.2.1")),
        (Some("2001:db8::2"), Some("2001:db8::2")),
        (Some("::1"), Some("::1")),
        (Some("::ffff:192.0.2.7"), Some("192.0.2.7")),
    ] {
        let id = SessionId::generate();
        let mut sess = session("alice", None);
        sess.client_addr = stored.map(|a| a.parse().unwrap());
        s.put(&id, sess).await.unwrap();
        let got = s.get(&id).await.unwrap().unwrap();
        assert_eq!(
            got.client_addr,
            back.map(|a| a.parse().unwrap()),
            "{stored:?}"
        );
        let listed = s.list_now(
            ListBy::User {
                connection: "contoso",
                user_id: "alice",
            },
            100,
        );
        assert!(listed
            .sessions
            .iter()
            .any(|i| i.client_address == back.map(|a| a.parse().unwrap())));
    }
}
