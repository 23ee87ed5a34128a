//! Two realmgate gateways (in process, real listeners) sharing sessions
//! through a real `redis-server`, signed in through the demo IdP: a login on
//! one works on the other, logout on one ends the session on the other
//! within a second even though it was cached there, one refresh across
//! replicas, and Redis going down and coming back (`/readyz`, fail closed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use realmgate::demo::idp::{self, Idp, IdpConfig};
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::StatusCode;

use crate::redis_util::RedisServer;
use crate::util::{echo_route, entra, Config, EchoUpstream, DEADLINE};

const HOST: &str = "app.test";
const BOB: &str = "bob@contoso.example";

struct Replicas {
    idp: Idp,
    redis: RedisServer,
    _upstream: EchoUpstream,
    a: realmgate::server::Running,
    b: realmgate::server::Running,
}

async fn replicas() -> Replicas {
    let idp = idp::start(IdpConfig::demo_default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("mock IdP starts");
    let upstream = EchoUpstream::start().await;
    let redis = RedisServer::start().await;
    // A long local cache: only an invalidation can end a cached session
    // within a second.
    let toml = Config::new()
        .session(&format!(
            r#"store = "redis"
redis_url = "{}"
redis_cache_ttl = "30s""#,
            redis.url()
        ))
        .table(entra("contoso", "contoso.example").with(
            r#"graph_endpoint = "{idp}/graph"
scopes = ["openid", "profile", "email", "offline_access"]"#,
        ))
        .table(echo_route("app", HOST))
        .render_for(&idp.base_url(), &upstream.url());
    let settings = realmgate::config::load_str(&toml).expect("config");
    let a = realmgate::server::start(settings.clone(), None)
        .await
        .expect("gateway a");
    let b = realmgate::server::start(settings, None)
        .await
        .expect("gateway b");
    Replicas {
        idp,
        redis,
        _upstream: upstream,
        a,
        b,
    }
}

/// A browser talking to the gateway at `addr`, sharing `jar` (one user,
/// two replicas behind a load balancer without stickiness).
fn browser(jar: &Arc<reqwest::cookie::Jar>, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .timeout(Duration::from_secs(30))
        .resolve(HOST, addr)
        .no_proxy()
        .build()
        .unwrap()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{HOST}:{}{path}", addr.port())
}

async fn sign_in(r: &Replicas, via: &reqwest::Client, addr: SocketAddr) {
    let start = via
        .get(url(addr, "/.auth/login/contoso?rd=/page"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::FOUND, "login starts");
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_string();
    let back = r
        .idp
        .complete_login(&authorize, BOB)
        .expect("IdP issues a code");
    let done = via
        .get(&back.url)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::FOUND, "signed in");
}

async fn page(client: &reqwest::Client, addr: SocketAddr) -> StatusCode {
    client
        .get(url(addr, "/page"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap()
        .status()
}

async fn readyz(admin: SocketAddr) -> StatusCode {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_on_one_replica_works_on_the_other_and_logout_ends_it_on_both_within_a_second() {
    let r = replicas().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let (on_a, on_b) = (browser(&jar, r.a.addr), browser(&jar, r.b.addr));
    sign_in(&r, &on_a, r.a.addr).await;
    assert_eq!(page(&on_a, r.a.addr).await, StatusCode::OK);
    // b has it cached after this.
    assert_eq!(page(&on_b, r.b.addr).await, StatusCode::OK);
    assert_eq!(page(&on_b, r.b.addr).await, StatusCode::OK);

    // Keep a copy of the cookie: the logout clears it in the jar.
    let cookie = reqwest::cookie::CookieStore::cookies(&*jar, &url(r.b.addr, "/").parse().unwrap())
        .expect("session cookie");
    let logout = on_a
        .get(url(r.a.addr, "/.auth/logout"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_redirection() || logout.status().is_success());
    let stale = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(HOST, r.b.addr)
        .no_proxy()
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        let status = stale
            .get(url(r.b.addr, "/page"))
            .header(ACCEPT, "application/json")
            .header(reqwest::header::COOKIE, cookie.clone())
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica b still served the session {:?} after logout on a",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_on_two_replicas_near_expiry_cause_one_refresh() {
    let r = replicas().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let (on_a, on_b) = (browser(&jar, r.a.addr), browser(&jar, r.b.addr));
    // Access token valid for 30 s: within the refresh margin at once.
    r.idp.set_access_token_lifetime(30);
    sign_in(&r, &on_a, r.a.addr).await;
    r.idp.set_access_token_lifetime(3600);
    let before = r.idp.token_calls();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (client, addr) = if i % 2 == 0 {
            (on_a.clone(), r.a.addr)
        } else {
            (on_b.clone(), r.b.addr)
        };
        tasks.push(tokio::spawn(async move { page(&client, addr).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        r.idp.token_calls() - before,
        1,
        "40 concurrent requests over two replicas: exactly one refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_readyz_503_cached_sessions_served_others_fail_closed_then_recovers() {
    let mut r = replicas().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let (on_a, on_b) = (browser(&jar, r.a.addr), browser(&jar, r.b.addr));
    sign_in(&r, &on_a, r.a.addr).await;
    // Cached on b only (a evicted its copy when it wrote the session).
    assert_eq!(page(&on_b, r.b.addr).await, StatusCode::OK);
    assert_eq!(readyz(r.a.admin_addr).await, StatusCode::OK);

    r.redis.kill();
    assert_eq!(
        readyz(r.a.admin_addr).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "readyz reports the store"
    );
    assert_eq!(
        page(&on_b, r.b.addr).await,
        StatusCode::OK,
        "cached: served"
    );
    assert_eq!(
        page(&on_a, r.a.addr).await,
        StatusCode::UNAUTHORIZED,
        "not cached: fails closed"
    );
    // A new login cannot be saved: a clear 503 from the callback.
    let other = browser(&Arc::new(reqwest::cookie::Jar::default()), r.a.addr);
    let start = other
        .get(url(r.a.addr, "/.auth/login/contoso?rd=/page"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_string();
    let back = r.idp.complete_login(&authorize, BOB).expect("code");
    let done = other
        .get(&back.url)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = done.text().await.unwrap();
    assert!(body.contains("could not be saved"), "{body}");

    r.redis.restart().await;
    let started = Instant::now();
    while readyz(r.a.admin_addr).await != StatusCode::OK {
        assert!(started.elapsed() < DEADLINE, "readyz never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Data is gone (no persistence in the test server): sign in again works.
    sign_in(&r, &on_a, r.a.addr).await;
    assert_eq!(page(&on_b, r.b.addr).await, StatusCode::OK);
    r.a.shutdown().await;
    r.b.shutdown().await;
}

/// Posts `token` to the back-channel logout endpoint of `addr`.
async fn backchannel_logout(addr: SocketAddr, token: &str) -> (StatusCode, serde_json::Value) {
    let resp = reqwest::Client::builder()
        .resolve(HOST, addr)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(url(addr, "/.auth/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backchannel_logout_the_store_failed_half_way_is_taken_when_retried_then_never_again() {
    let r = replicas().await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let (on_a, on_b) = (browser(&jar, r.a.addr), browser(&jar, r.b.addr));
    sign_in(&r, &on_a, r.a.addr).await;
    assert_eq!(page(&on_b, r.b.addr).await, StatusCode::OK);
    let token = r
        .idp
        .mint_logout_token(BOB, idp::DEMO_CLIENT_ID, None)
        .unwrap();
    // The store fails half-way: the token's jti can be marked, but the
    // user's sessions cannot be listed to end them (SMEMBERS refused).
    assert!(r
        .redis
        .command("ACL SETUSER default -smembers")
        .await
        .contains("OK"));
    let (status, body) = backchannel_logout(r.a.addr, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(page(&on_b, r.b.addr).await, StatusCode::OK, "nothing ended");
    assert!(r
        .redis
        .command("ACL SETUSER default +smembers")
        .await
        .contains("OK"));
    // The provider retries the same token at the same replica: taken (this
    // replica's memory of the jti and the shared mark let it through),
    // where before it was refused as a replay and the sessions lived on.
    let (status, body) = backchannel_logout(r.a.addr, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 1, "{body}");
    let started = Instant::now();
    while page(&on_b, r.b.addr).await != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica b still served the session after the logout"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Once done, a replay is refused on every replica.
    for addr in [r.a.addr, r.b.addr] {
        let (status, body) = backchannel_logout(addr, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{addr}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("replayed")),
            "{body}"
        );
    }
    r.a.shutdown().await;
    r.b.shutdown().await;
}
