use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const LIMIT: Duration = Duration::from_secs(5);

/// How a test upstream answers each request on a connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `200`, keep-alive, body "hello".
    KeepAlive,
    /// `200` with `Connection: close`, then close.
    Close,
    /// `200` without `Connection: close`, then close anyway when told (an
    /// idle timeout).
    CloseWhenIdle,
    /// Answer the first request, then read the second one and close
    /// without answering (a connection that dies under a request).
    DieOnSecond,
}

struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Closes a `CloseWhenIdle` connection.
    close_idle: Arc<tokio::sync::Notify>,
}

async fn upstream(behaviour: Behaviour) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let close_idle = Arc::new(tokio::sync::Notify::new());
    let (c, r, n) = (connections.clone(), requests.clone(), close_idle.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (r, n) = (r.clone(), n.clone());
            tokio::spawn(async move {
                let mut served = 0;
                loop {
                    if !read_head(&mut sock).await {
                        return;
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    served += 1;
                    let close = match behaviour {
                        Behaviour::KeepAlive => false,
                        Behaviour::Close => true,
                        Behaviour::CloseWhenIdle => false,
                        Behaviour::DieOnSecond if served >= 2 => return,
                        Behaviour::DieOnSecond => false,
                    };
                    let head = if close { "Connection: close\r\n" } else { "" };
                    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n{head}\r\nhello");
                    if sock.write_all(answer.as_bytes()).await.is_err() || close {
                        return;
                    }
                    if matches!(behaviour, Behaviour::CloseWhenIdle) {
                        n.notified().await;
                        return;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        connections,
        requests,
        close_idle,
    }
}

/// Reads one request head and its body (`Content-Length` only); false at EOF.
async fn read_head(sock: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match sock.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    sock.read_exact(&mut body).await.is_ok()
}

/// A request with a body: it goes through hyper's client.
fn with_body(method: Method) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri("/x")
        .header("host", "upstream")
        .header("content-length", "4")
        .body(crate::respond::full("data"))
        .unwrap()
}

#[tokio::test]
async fn requests_with_and_without_a_body_reuse_connections_of_their_kind() {
    let up = upstream(Behaviour::KeepAlive).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    for _ in 0..2 {
        let response = pool.send(with_body(Method::POST), None).await.unwrap();
        assert_eq!(body_text(response).await, "hello");
        let response = pool.send(request(Method::GET), None).await.unwrap();
        assert_eq!(body_text(response).await, "hello");
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 4);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    let lists = pool.lock(0);
    assert_eq!((lists.hyper.len(), lists.raw.len()), (1, 1));
}

#[tokio::test]
async fn a_post_with_a_body_on_a_connection_that_dies_is_not_resent() {
    let up = upstream(Behaviour::DieOnSecond).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let response = pool.send(with_body(Method::POST), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    let err = pool.send(with_body(Method::POST), None).await.unwrap_err();
    assert!(matches!(err, PoolError::Http(_)), "{err}");
    eventually(|| up.requests.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(up.requests.load(Ordering::SeqCst), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_get_whose_pooled_connection_died_is_tried_once_more() {
    let up = upstream(Behaviour::DieOnSecond).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let response = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    // The pooled connection reads the GET and closes without a byte: the
    // GET goes again on a new connection and succeeds.
    let response = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(up.requests.load(Ordering::SeqCst), 3);
}

fn request(method: Method) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri("/x")
        .header("host", "upstream")
        .body(crate::respond::empty())
        .unwrap()
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Polls `cond` until it holds (bounded).
async fn eventually(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_connection_is_reused_after_its_body_was_read() {
    let up = upstream(Behaviour::KeepAlive).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    for _ in 0..3 {
        let response = pool.send(request(Method::GET), None).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(body_text(response).await, "hello");
        assert_eq!(pool.idle_count(), 1);
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    assert_eq!(up.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_request_that_says_close_leaves_no_connection_to_reuse() {
    // The upstream keeps the connection open whatever the request said;
    // `proxy::forward` sends `Connection: close` with NTLM or Negotiate
    // credentials, and such a connection must serve nobody after them.
    let up = upstream(Behaviour::KeepAlive).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let closing = |mut req: Request<Body>| {
        req.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        req
    };
    for req in [
        closing(request(Method::GET)),
        closing(with_body(Method::POST)),
    ] {
        let response = pool.send(req, None).await.unwrap();
        assert_eq!(body_text(response).await, "hello");
        assert_eq!(pool.idle_count(), 0);
    }
    let response = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
}

/// Each proxy thread (shard) reuses only the connections it opened, which
/// are registered with its own event loop.
#[tokio::test]
async fn each_proxy_thread_reuses_only_its_own_connections() {
    let up = upstream(Behaviour::KeepAlive).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 2);
    let get = || async { body_text(pool.send(request(Method::GET), None).await.unwrap()).await };
    use_shard(1);
    assert_eq!(get().await, "hello");
    assert_eq!(get().await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    use_shard(2);
    assert_eq!(get().await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(pool.idle_count(), 2);
    use_shard(1);
    assert_eq!(get().await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    // A shard number beyond the pool's (a reload that changed nothing of
    // the running threads cannot cause this, but it must not panic).
    use_shard(7);
    assert_eq!(get().await, "hello");
    use_shard(0);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_the_connection() {
    let up = upstream(Behaviour::KeepAlive).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let response = pool.send(request(Method::GET), None).await.unwrap();
    drop(response);
    assert_eq!(pool.idle_count(), 0);
    let response = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_not_reused() {
    let up = upstream(Behaviour::Close).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    for n in 1..=2 {
        let response = pool.send(request(Method::POST), None).await.unwrap();
        assert_eq!(body_text(response).await, "hello");
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(up.connections.load(Ordering::SeqCst), n);
    }
}

#[tokio::test]
async fn concurrent_requests_get_their_own_connections() {
    let up = upstream(Behaviour::KeepAlive).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let a = pool.send(request(Method::GET), None).await.unwrap();
    let b = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(a).await, "hello");
    assert_eq!(body_text(b).await, "hello");
    assert_eq!(pool.idle_count(), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_on_a_connection_that_dies_is_not_resent() {
    let up = upstream(Behaviour::DieOnSecond).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let response = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(pool.idle_count(), 1);

    let err = pool.send(request(Method::POST), None).await.unwrap_err();
    assert!(matches!(err, PoolError::Raw(_)), "{err}");
    assert!(matches!(
        crate::proxy::failure::status(crate::proxy::failure::UpstreamError::Pool(&err)),
        GatewayError::UpstreamUnavailable
    ));
    // The POST reached the upstream exactly once, on the pooled connection.
    eventually(|| up.requests.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(up.requests.load(Ordering::SeqCst), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_502() {
    // A bound socket that never listens: connections are refused, and, unlike a
    // listener bound and dropped, the port cannot go to anybody else meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap();
    let pool = Pool::new(Target::Addr(addr), LIMIT, 1);
    let err = pool.send(request(Method::GET), None).await.unwrap_err();
    assert!(matches!(err, PoolError::Connect(_)), "{err}");
    assert!(matches!(
        crate::proxy::failure::status(crate::proxy::failure::UpstreamError::Pool(&err)),
        GatewayError::UpstreamUnavailable
    ));
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_noticed_before_use() {
    let up = upstream(Behaviour::CloseWhenIdle).await;
    let pool = Pool::new(Target::Addr(up.addr), LIMIT, 1);
    let response = pool.send(request(Method::GET), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(pool.idle_count(), 1);
    up.close_idle.notify_one();
    // Wait until the upstream's close has arrived on the idle connection.
    eventually(|| pool.lock(0).raw.iter_mut().all(|e| !e.conn.reusable())).await;
    // A POST then goes on a new connection: nothing was sent on the dead one.
    let response = pool.send(request(Method::POST), None).await.unwrap();
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(up.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn targets_of_upstream_urls() {
    let t = |u: &str| Target::of(&url::Url::parse(u).unwrap());
    assert_eq!(
        t("http://127.0.0.1:8080/x"),
        Some(Target::Addr("127.0.0.1:8080".parse().unwrap()))
    );
    assert_eq!(
        t("http://[::1]/"),
        Some(Target::Addr("[::1]:80".parse().unwrap()))
    );
    assert_eq!(
        t("http://app.internal:81"),
        Some(Target::Name("app.internal".into(), 81))
    );
    assert_eq!(t("https://app.internal"), None);
}

fn route(upstream: &str) -> Arc<RouteSettings> {
    let toml = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "c"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "y"
[[route]]
name = "r"
hosts = ["app.example.com"]
upstream = "{upstream}"
"#
    );
    crate::config::load_str(&toml).expect("valid").routes[0].clone()
}

#[test]
fn origin_form_is_the_path_and_query_of_the_upstream_uri() {
    let upstreams = [
        "http://10.0.0.1:8080",
        "http://10.0.0.1:8080/",
        "http://app.internal/base/",
        "http://app.internal/base",
        "http://[::1]:9000",
    ];
    let incoming = [
        "/a/b?x=1&y",
        "/",
        "/a?q",
        "/%2e%2e/x",
        "http://evil.example/steal?x",
        "*",
        "/?",
        // Review 12: went out as `?x` (not a request target).
        "http://app.example.com?x",
        "http://app.example.com",
    ];
    for up in upstreams {
        let r = route(up);
        let plain = PlainRoute::for_routes(std::slice::from_ref(&r), 1);
        let plain = &plain["r"];
        for inc in incoming {
            let uri: Uri = inc.parse().unwrap();
            let want = super::super::upstream_uri(&r, &uri).unwrap();
            let got = plain.origin_form(&uri).unwrap();
            assert_eq!(got.path_and_query(), want.path_and_query(), "{up} + {inc}");
            assert_eq!(got.scheme(), None);
            assert_eq!(got.authority(), None);
        }
        assert_eq!(plain.host, super::super::upstream_host(&r).unwrap());
    }
}

#[test]
fn https_upstreams_are_not_pooled_here() {
    let r = route("https://app.internal");
    assert!(PlainRoute::for_routes(&[r], 1).is_empty());
}
