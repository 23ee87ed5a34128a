//! Bench builds only (cargo feature `bench-sessions`, never in a release
//! build of the product): fills the configured session store with many
//! realistic signed-in sessions at start, and writes their real cookie
//! values to a file, so `bench/sessions.sh` can replay a population of users
//! instead of one hot cookie (issue 23).
//!
//! ```text
//! RG_BENCH_SESSIONS=100000 RG_BENCH_COOKIES=/tmp/cookies.txt \
//!   target/release/realmgate run --config bench.toml
//! ```
//!
//! The records are written through the store's own `put` (the same packing,
//! indexes and Redis encoding as a sign-in), and the cookies are made by
//! [`SessionCookies::value`] under the configured secret: the request path
//! that reads them is the product's, unchanged. Each line of the file is
//! `<cookie name>=<value>` (plain HTTP: no `__Host-` prefix). The variables
//! are not `REALMGATE_…`: those are configuration (`config::load`).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};

use super::cookie::SessionCookies;
use super::model::{EmailTrust, Session, SESSION_VERSION};
use super::store::{SessionId, SessionStore};
use crate::config::Settings;

/// Distinct group ids in the made-up organisation.
const GROUP_POOL: usize = 5_000;
/// Group ids per user (Entra puts up to 200 in a token; 20 is typical).
const GROUPS_PER_USER: usize = 20;
/// Writes in flight at once (the Redis store's round trips overlap).
const IN_FLIGHT: usize = 64;

/// Seeds the store when `RG_BENCH_SESSIONS` is set. Errors are
/// printed and end the process: a bench that silently measured zero
/// sessions would be worse than none.
pub async fn seed_from_env(settings: &Settings, store: &dyn SessionStore) {
    let Ok(count) = std::env::var("RG_BENCH_SESSIONS") else {
        return;
    };
    let Ok(count) = count.replace('_', "").parse::<usize>() else {
        eprintln!("RG_BENCH_SESSIONS must be a number");
        std::process::exit(2);
    };
    let Ok(path) = std::env::var("RG_BENCH_COOKIES") else {
        eprintln!("RG_BENCH_COOKIES must name the file for the cookie values");
        std::process::exit(2);
    };
    let Some(conn) = settings.connections.first() else {
        eprintln!("RG_BENCH_SESSIONS needs one [[connection]] for the sessions");
        std::process::exit(2);
    };
    let tokens = std::env::var("RG_BENCH_TOKENS").unwrap_or_default();
    let cookies = SessionCookies::new(&settings.session);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let tenant = guid(&mut rng);
    let pool: Vec<String> = (0..GROUP_POOL).map(|_| guid(&mut rng)).collect();
    let lifetime = settings.session.lifetime.as_secs();
    let mut made = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = sample(&mut rng, i, &tenant, &pool, &conn.name, now, lifetime);
        if tokens.contains("refresh") {
            s.refresh_token = Some(token(&mut rng, 1500));
        }
        made.push((SessionId::generate(), s));
    }
    let mut lines = Vec::with_capacity(count * 100);
    for (id, _) in &made {
        let _ = writeln!(lines, "{}={}", cookies.name_for(false), cookies.value(id));
    }
    let failed = stream::iter(made)
        .map(|(id, s)| async move { store.put(&id, s).await.is_err() })
        .buffer_unordered(IN_FLIGHT)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    if failed > 0 {
        eprintln!("bench: {failed} of {count} sessions could not be stored");
        std::process::exit(1);
    }
    if let Err(e) = std::fs::write(&path, lines) {
        eprintln!("bench: cannot write {path}: {e}");
        std::process::exit(1);
    }
    eprintln!("bench: {count} sessions stored, cookies in {path}");
}

/// A realistic Entra session: `oid`, `tid`, `sub`, `sid`, email, display
/// name, UPN and 20 group ids (as `examples/session_memory.rs`).
fn sample(
    rng: &mut Rng,
    i: usize,
    tenant: &str,
    pool: &[String],
    connection: &str,
    now: u64,
    lifetime: u64,
) -> Session {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    let email = format!("{first}.{last}{i}@contoso.example").to_lowercase();
    Session {
        derived: Default::default(),
        version: SESSION_VERSION,
        user_id: guid(rng),
        subject: token(rng, 43),
        tenant_id: Some(tenant.to_string()),
        connection: connection.to_string(),
        issuer: format!("https://login.microsoftonline.com/{tenant}/v2.0"),
        sid: Some(guid(rng)),
        email: Some(email.clone()),
        email_trust: EmailTrust::EntraDomainVerified,
        name: Some(format!("{first} {last}")),
        preferred_username: Some(email),
        groups: (0..GROUPS_PER_USER)
            .map(|_| pool[rng.below(pool.len())].as_str().into())
            .collect(),
        roles: Vec::new(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        tokens_expire_at: None,
        saml_name_id: None,
        client_addr: Some(std::net::IpAddr::from([10, 0, 0, 1])),
        created_at: now,
        expires_at: now + lifetime,
    }
}

/// xorshift64*: made-up data, not security (the session ids are
/// `SessionId::generate`'s).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn guid(rng: &mut Rng) -> String {
    let a = rng.next();
    let b = rng.next();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn token(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| ALPHABET[rng.below(64)] as char).collect()
}

const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
    "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoe",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Muller",
    "Garcia",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Andersson",
    "Tanaka",
    "Dubois",
    "Silva",
    "Novak",
    "Jensen",
    "Popescu",
    "Ivanova",
    "Cohen",
    "Kim",
];
