//! Memory cost of the memory session store (SPEC 7: one million sessions in 1 GiB).
//!
//! ```text
//! cargo run --release --example session_memory -- [COUNT] [TOKENS]
//! ```
//!
//! Inserts COUNT (default 1,000,000) realistic Entra sessions — `oid`, `tid`,
//! `sub`, `sid`, email, display name, UPN and 20 group ids drawn from an
//! organisation of 5,000 groups — and prints the process's resident memory
//! (`VmRSS` from `/proc/self/status`) before and after, and the size of the
//! record the Redis store would write for such a session. TOKENS says which
//! tokens each session keeps: `none` (identity only: what an Entra sign-in
//! keeps with `refresh_tokens` off and no `pass_id_token` route), `refresh`
//! (a 1.5 KB Entra refresh token), or a comma list of `id` (a 1.8 KB ID
//! token, kept for `pass_id_token` and generic providers' logout),
//! `refresh` and `access` (1.8 KB, `pass_access_token`); `all` is all
//! three. Tokens are shaped as Entra issues them: base64url of random
//! bytes, a JWT's three segments, a refresh token's `0.` prefix. Linux only.

use std::time::{Duration, Instant};

use realmgate::session::memory::MemoryStore;
use realmgate::session::model::{EmailTrust, Session};
use realmgate::session::store::{SessionId, SessionStore};

const GROUP_POOL: usize = 5_000;
const GROUPS_PER_USER: usize = 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|a| a.replace('_', "").parse().expect("COUNT must be a number"))
        .unwrap_or(1_000_000);
    let tokens = args.next().unwrap_or_else(|| "none".to_string());
    let tokens = if tokens == "all" {
        "id,access,refresh".to_string()
    } else {
        tokens
    };
    if !tokens
        .split(',')
        .all(|t| matches!(t, "none" | "id" | "access" | "refresh"))
    {
        eprintln!("tokens must be none, all, or a comma list of id, access, refresh");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(count, &tokens));
}

async fn run(count: usize, tokens: &str) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let tenant = guid(&mut rng);
    let issuer = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    let pool: Vec<String> = (0..GROUP_POOL).map(|_| guid(&mut rng)).collect();
    let keeps = |t: &str| tokens.split(',').any(|k| k == t);
    let mut record_bytes = 0usize;
    let mut json_record_bytes = 0usize;

    let store = MemoryStore::new(count as u64 + 1, Duration::from_secs(3600));
    let before = rss_kib();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let started = Instant::now();
    let mut probe = Vec::new();
    for i in 0..count {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        let email = format!("{first}.{last}{i}@contoso.com").to_lowercase();
        let s = Session {
            derived: Default::default(),
            version: realmgate::session::model::SESSION_VERSION,
            user_id: guid(&mut rng),
            subject: token(&mut rng, 43),
            tenant_id: Some(tenant.clone()),
            connection: "contoso".into(),
            issuer: issuer.clone(),
            sid: Some(guid(&mut rng)),
            email: Some(email.clone()),
            email_trust: EmailTrust::EntraDomainVerified,
            name: Some(format!("{first} {last}")),
            preferred_username: Some(email),
            groups: (0..GROUPS_PER_USER)
                .map(|_| pool[rng.below(GROUP_POOL)].as_str().into())
                .collect(),
            roles: Vec::new(),
            claims: None,
            // Every session its own tokens (random bytes do not compress).
            id_token: keeps("id").then(|| jwt(&mut rng, 1800)),
            access_token: keeps("access").then(|| jwt(&mut rng, 1800)),
            refresh_token: keeps("refresh").then(|| format!("0.{}", b64(&mut rng, 1498))),
            saml_name_id: None,
            tokens_expire_at: Some(now + 3600),
            client_addr: None,
            created_at: now,
            expires_at: now + 8 * 3600,
        };
        if i < 10_000 {
            // The Redis store's record: the same encoding (`RedisStore::put`).
            record_bytes += realmgate::session::redis::encode(&s)
                .expect("encodes")
                .len();
            json_record_bytes += realmgate::session::redis::encode_json(&s)
                .expect("encodes")
                .len();
        }
        let id = SessionId::generate();
        store.put(&id, s).await.expect("memory store put");
        if i % (count / 1000).max(1) == 0 {
            probe.push(id);
        }
    }
    store.run_pending_tasks();
    let insert_time = started.elapsed();
    let after = rss_kib();

    // The first pass unpacks every probed session; later passes find them
    // among the store's hot (already unpacked) sessions.
    let found = std::cell::Cell::new(0);
    let pass = || async {
        let started = Instant::now();
        for id in &probe {
            if store.get(id).await.expect("memory store get").is_some() {
                found.set(found.get() + 1);
            }
        }
        started.elapsed()
    };
    let per_cold = pass().await / (probe.len() as u32).max(1);
    let rounds = 100;
    let mut hot_time = Duration::ZERO;
    for _ in 0..rounds {
        hot_time += pass().await;
    }
    let found = found.get();
    let per_hot = hot_time / (rounds * probe.len() as u32).max(1);

    let delta = after.saturating_sub(before);
    println!("sessions:        {}", store.approximate_len());
    println!("tokens kept:     {tokens}");
    println!("insert time:     {insert_time:.2?}");
    println!("VmRSS before:    {} MiB", before / 1024);
    println!("VmRSS after:     {} MiB", after / 1024);
    println!(
        "store cost:      {} MiB ({} bytes per session)",
        delta / 1024,
        delta * 1024 / count.max(1) as u64
    );
    println!(
        "redis record:    {} bytes per session (mean of the first {})",
        record_bytes / count.clamp(1, 10_000),
        count.min(10_000)
    );
    println!(
        "  (JSON record:  {} bytes, as builds before the compact record wrote it)",
        json_record_bytes / count.clamp(1, 10_000)
    );
    println!("get (unpack):    {per_cold:.2?} per call");
    println!("get (hot):       {per_hot:.2?} per call ({found} hits in all)");
    // SPEC 7: 1 GiB for a million sessions without refresh tokens, 2 GiB
    // with them (`refresh_tokens` on).
    let gib = if keeps_refresh(tokens) { 2 } else { 1 };
    println!(
        "{gib} GiB budget:    {}",
        if after <= gib * 1024 * 1024 {
            "met (total process RSS)"
        } else {
            "EXCEEDED"
        }
    );
}

fn keeps_refresh(tokens: &str) -> bool {
    tokens.split(',').any(|t| t == "refresh")
}

/// Resident set size in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// xorshift64*: deterministic test data, not security.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
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

/// About `len` characters of base64url of random bytes (canonical, as a
/// provider's encoder writes it).
fn b64(rng: &mut Rng, len: usize) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..len * 3 / 4).map(|_| rng.next() as u8).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT of about `len` characters: header, claims, RS256 signature.
fn jwt(rng: &mut Rng, len: usize) -> String {
    let sig = b64(rng, 342);
    format!(
        "{}.{}.{sig}",
        b64(rng, 100),
        b64(rng, len.saturating_sub(444))
    )
}

fn token(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| ALPHABET[rng.below(64)] as char).collect()
}

const FIRST: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
    "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Müller",
    "García",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Andersson",
    "Tanaka",
    "O'Brien",
    "Dubois",
    "Silva",
    "Novak",
    "Jensen",
    "Popescu",
    "Ivanova",
    "Cohen",
    "Kim",
];
