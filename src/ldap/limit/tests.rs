use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

#[test]
fn keys_hold_no_login_in_clear_and_fold_case() {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let a = keys("corp", "Alice@Corp.Contoso.com ", ip);
    let b = keys("corp", "alice@corp.contoso.com", ip);
    assert_eq!(a, b);
    assert!(!a[0].contains("alice"));
    assert_eq!(a[1], "ldap:corp:addr:10.1.2.3");
}

#[test]
fn ipv6_clients_count_by_their_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
    assert_eq!(keys("c", "x", a)[1], keys("c", "x", b)[1]);
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    assert_eq!(keys("c", "x", mapped)[1], "ldap:c:addr:10.0.0.1");
    let _ = Ipv6Addr::LOCALHOST;
}

#[tokio::test]
async fn the_memory_counter_blocks_after_max_failures() {
    let store: Arc<dyn SessionStore> = Arc::new(crate::session::memory::MemoryStore::new(
        100,
        Duration::from_secs(600),
    ));
    let f = Failures::default();
    let k = keys("c", "bob", IpAddr::V4(Ipv4Addr::LOCALHOST));
    let w = Duration::from_secs(60);
    for _ in 0..2 {
        assert!(!f.blocked(&store, &k, 3, w).await.unwrap());
        f.record(&store, &k, w).await.unwrap();
    }
    assert!(!f.blocked(&store, &k, 3, w).await.unwrap());
    f.record(&store, &k, w).await.unwrap();
    assert!(f.blocked(&store, &k, 3, w).await.unwrap());
    // Another login from another address is not affected.
    let other = keys("c", "carol", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
    assert!(!f.blocked(&store, &other, 3, w).await.unwrap());
    // The same login from another address is.
    let moved = keys("c", "bob", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
    assert!(f.blocked(&store, &moved, 3, w).await.unwrap());
}

/// A login's window restarts at every failure (review 9): failures spread
/// over more than one window, each within a window of the one before,
/// still add up, as AD's own counter does; a quiet window clears them. A
/// client address's window does not restart.
#[tokio::test]
async fn the_window_restarts_at_every_failure() {
    let store: Arc<dyn SessionStore> = Arc::new(crate::session::memory::MemoryStore::new(
        100,
        Duration::from_secs(600),
    ));
    let f = Failures::default();
    let k = keys("c", "bob", IpAddr::V4(Ipv4Addr::LOCALHOST));
    let w = Duration::from_millis(400);
    for _ in 0..3 {
        assert!(!f.blocked(&store, &k, 3, w).await.unwrap());
        f.record(&store, &k, w).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // 750 ms after the first failure, 250 after the last: still three.
    assert!(f.blocked(&store, &k, 3, w).await.unwrap());
    // The address's own window is fixed from its first failure (a NAT's
    // occasional typos must not add up for ever): it never held three.
    assert!(!f.blocked(&store, &k[1..], 3, w).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !f.blocked(&store, &k, 3, w).await.unwrap(),
        "a window without failures clears them"
    );
}

/// Attempts under way count against the limit until they finish: with
/// `max = 2`, two held attempts block a third before any failure is
/// recorded; one finishing without a failure (a success) frees its place,
/// one finishing with a recorded failure keeps it.
#[tokio::test]
async fn attempts_under_way_count_against_the_limit() {
    let store: Arc<dyn SessionStore> = Arc::new(crate::session::memory::MemoryStore::new(
        100,
        Duration::from_secs(600),
    ));
    let f = Failures::default();
    let k = keys("c", "bob", IpAddr::V4(Ipv4Addr::LOCALHOST));
    let w = Duration::from_secs(60);
    let first = f.begin(&store, &k, 2, w).await.unwrap().expect("first");
    let second = f.begin(&store, &k, 2, w).await.unwrap().expect("second");
    assert!(f.begin(&store, &k, 2, w).await.unwrap().is_none());
    drop(first);
    let third = f
        .begin(&store, &k, 2, w)
        .await
        .unwrap()
        .expect("a place freed");
    f.record(&store, &k, w).await.unwrap();
    drop(second);
    assert!(f.begin(&store, &k, 2, w).await.unwrap().is_none());
    drop(third);
    let fourth = f.begin(&store, &k, 2, w).await.unwrap();
    assert!(fourth.is_some());
    drop(fourth);
    assert!(f.in_flight.lock().unwrap().is_empty(), "no key left behind");
}

#[tokio::test]
async fn a_reset_clears_the_login_s_count_and_not_the_address_s() {
    let store: Arc<dyn SessionStore> = Arc::new(crate::session::memory::MemoryStore::new(
        100,
        Duration::from_secs(600),
    ));
    let f = Failures::default();
    let w = Duration::from_secs(60);
    let k = keys("c", "bob", IpAddr::V4(Ipv4Addr::LOCALHOST));
    for _ in 0..2 {
        f.record(&store, &k, w).await.unwrap();
    }
    // What a successful sign-in resets: the login's key only.
    f.reset(&store, std::slice::from_ref(&k[0])).await.unwrap();
    let login_only = [k[0].clone()];
    let addr_only = [k[1].clone()];
    f.record(&store, &k, w).await.unwrap();
    assert!(!f.blocked(&store, &login_only, 2, w).await.unwrap());
    assert!(f.blocked(&store, &addr_only, 3, w).await.unwrap());
}

/// Active Directory compares account names ignoring accents and other
/// marks, however many are stacked (Samba bug 14847: "björn", "bjorn" and
/// "b̨́̄̐j᪲ǫ̈́Ⓡn̨̈́" are one account; KB 938447: "Müller" is "Muller",
/// "Meißner" is "Meissner"). With a direct bind the typed login's key is
/// the only one, so each marked spelling used to be a login of its own: an
/// endless supply of failure budgets for one account.
#[test]
fn marked_spellings_of_one_account_have_one_canonical_login() {
    for spelling in [
        "bjorn",
        "björn",
        "BJÖRN@corp.example",
        "CORP\\bjǫrṅ",
        "b\u{328}\u{301}\u{304}\u{310}j\u{1ab2}\u{1eb}\u{308}\u{301}\u{24c7}n\u{328}\u{308}\u{301}",
        // Invisible code points AD's comparison gives no weight.
        "bj\u{200b}orn",
        "b\u{ad}jorn\u{feff}",
    ] {
        assert_eq!(canonical_login(spelling), "bjorn", "{spelling:?}");
    }
    assert_eq!(canonical_login("Meißner"), canonical_login("meissner"));
    // No number of stacked marks makes a new login.
    for n in 1..64 {
        let stacked = format!("a{}lice", "\u{301}".repeat(n));
        assert_eq!(canonical_login(&stacked), "alice", "{n} marks");
    }
    assert_ne!(canonical_login("bjørn"), canonical_login("bjorn2"));
}

#[test]
fn spellings_of_one_account_have_one_canonical_login() {
    for spelling in [
        "alice",
        "ALICE",
        " Alice ",
        "CORP\\alice",
        "corp\\ALICE",
        "alice@corp.example",
        "Alice@CORP.EXAMPLE",
        "CORP\\alice@corp.example",
        // Full-width forms, which AD compares as the ASCII ones.
        "ａｌｉｃｅ",
        "ＡＬＩＣＥ@corp.example",
        "ＣＯＲＰ＼ａｌｉｃｅ",
    ] {
        assert_eq!(canonical_login(spelling), "alice", "{spelling:?}");
    }
    assert_ne!(canonical_login("alice2"), "alice");
    // An empty account part is kept as typed, not "".
    assert_eq!(canonical_login("@corp.example"), "@corp.example");
    let k = |login| keys("c", login, "10.0.0.1".parse().unwrap())[0].clone();
    assert_eq!(k("CORP\\Alice"), k("alice@corp.example"));
    assert_ne!(k("alice"), k("bob"));
}

#[test]
fn entry_keys_ignore_dn_case_and_differ_from_login_keys() {
    assert_eq!(
        entry_key("c", "CN=Alice,CN=Users,DC=corp,DC=example"),
        entry_key("c", "cn=alice,cn=users,dc=corp,dc=example")
    );
    assert_ne!(entry_key("c", "cn=a"), entry_key("d", "cn=a"));
    assert!(entry_key("c", "cn=a").starts_with("ldap:c:entry:"));
    assert!(!entry_key("c", "cn=alice").contains("alice"));
}
