//! Admin listener: `/healthz`, `/readyz` (readiness latch), `/metrics`
//! (Prometheus text 0.0.4, or OpenMetrics when `Accept` prefers it),
//! `GET /sessions` (who is signed in), `POST /sessions/revoke`.
//!
//! It binds to loopback by default (`admin.listen = "127.0.0.1:9090"`). Every
//! path except `/healthz` and `/readyz` goes through [`guard`] first: the
//! `[admin]` bearer token when one is set, else a Host check against DNS
//! rebinding, and for state-changing requests a JSON content type and no
//! cross-site `Origin` (SPEC 6.1). It keeps answering while the proxy
//! listener drains, so `/readyz` can say 503 to the load balancer.
//!
//! The one import loop left among the top-level modules is this one with
//! `server`, and it earns its place: the server starts this listener
//! (`admin::serve`), and the listener reads the server's live state
//! (`server::Inner`: the current config generation swapped by SIGHUP, the
//! readiness latch, the stop signal, the shared metrics and store). Moving
//! `Inner` out would only give the loop another name; both sides are one
//! process's control plane, never on the request path.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use std::net::IpAddr;

use crate::audit::{Audit, Event};
use crate::gateway::Shared;
use crate::metrics::Format;
use crate::server::Inner;
use crate::session::store::{revoke_in_each, ListBy, Listing, Revoke, SessionStore};

mod guard;

/// Largest accepted `POST /sessions/revoke` body.
const MAX_REVOKE_BODY: usize = 4096;
/// How long `/readyz` waits for the session store.
const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The session store the sign-in state uses (shared by every generation).
fn session_store(shared: &Shared) -> Option<Arc<dyn SessionStore>> {
    Some(shared.auth.sessions.clone())
}

/// Serves the admin endpoints until the task is aborted (which also ends
/// every admin connection: they live in this task's `JoinSet`).
pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    if inner.current().settings.admin.exposed_without_token() {
        tracing::warn!(
            listen = ?listener.local_addr().ok(),
            "[admin] listen is not a loopback address and no [admin] token_file is set: anyone who can reach it can read /metrics and end sessions; set [admin] token_file"
        );
    }
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let inner = inner.clone();
        // Admin requests are audited with the TCP peer's address (the
        // admin listener trusts no proxy headers).
        let client = peer.ip().to_canonical();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(&inner, req, client).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type AdminBody = Full<Bytes>;

async fn handle(inner: &Inner, req: Request<Incoming>, client: IpAddr) -> Response<AdminBody> {
    // The current generation: a token or audit sink changed by SIGHUP
    // applies to the next request.
    let generation = inner.current();
    let audit = &generation.auth.audit;
    if !guard::is_open(req.uri().path()) {
        if let Err(refusal) = guard::check(
            &generation.settings.admin,
            req.method(),
            req.uri(),
            req.headers(),
        ) {
            audit.record(Event::AdminRefused {
                method: req.method().as_str(),
                path: req.uri().path(),
                reason: refusal.code(),
                client,
            });
            return refused(refusal);
        }
    }
    let store = session_store(inner.shared());
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/readyz") => readyz(inner.is_ready(), store).await,
        // HEAD answers the same head as GET; hyper leaves the body out.
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let metrics = &inner.shared().metrics;
            if let Some(store) = &store {
                metrics.set_session_count(store.approximate_len());
            }
            let format = Format::from_accept(
                req.headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let mut res = Response::new(Full::new(Bytes::from(metrics.render(format))));
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(format.content_type()),
            );
            headers.insert(header::VARY, header::HeaderValue::from_static("accept"));
            res
        }
        (&Method::POST, "/sessions/revoke") => {
            let body = match Limited::new(req.into_body(), MAX_REVOKE_BODY)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "the body could not be read or is larger than 4096 bytes",
                    )
                }
            };
            let connections: Vec<String> = inner
                .current()
                .settings
                .connections
                .iter()
                .map(|c| c.name.clone())
                .collect();
            revoke(store, &connections, &body, audit, client).await
        }
        (&Method::GET, "/sessions") => {
            let connections: Vec<String> = inner
                .current()
                .settings
                .connections
                .iter()
                .map(|c| c.name.clone())
                .collect();
            list(store, &connections, req.uri().query().unwrap_or(""), audit, client).await
        }
        (_, path @ ("/healthz" | "/readyz" | "/metrics" | "/sessions" | "/sessions/revoke")) => {
            let allow = match path {
                "/sessions" => "GET",
                "/sessions/revoke" => "POST",
                _ => "GET, HEAD",
            };
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            res.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            res
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; admin endpoints: /healthz, /readyz, /metrics, GET /sessions, POST /sessions/revoke\n",
        ),
    }
}

async fn readyz(ready: bool, store: Option<Arc<dyn SessionStore>>) -> Response<AdminBody> {
    if !ready {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        );
    }
    if let Some(store) = store {
        match tokio::time::timeout(STORE_PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readyz: session store does not answer");
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: session store does not answer\n",
                );
            }
            Err(_) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: session store ping timed out\n",
                )
            }
        }
    }
    text(StatusCode::OK, "ready\n")
}

/// What `POST /sessions/revoke` accepts: exactly one of `user_id` and
/// `sid`, and optionally the `connection` they belong to (SPEC 6.1: a
/// provider's `sid` means something within its connection only). Without
/// it, every connection's sessions with that value end (the safe side for
/// an incident).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    user_id: Option<String>,
    sid: Option<String>,
    connection: Option<String>,
}

/// Ends the named sessions in each of `connections` (`revoke_in_each`).
async fn revoke(
    store: Option<Arc<dyn SessionStore>>,
    connections: &[String],
    body: &[u8],
    audit: &Audit,
    client: IpAddr,
) -> Response<AdminBody> {
    let request: RevokeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "expected a JSON object {\"user_id\": \"...\"} or {\"sid\": \"...\"}",
            )
        }
    };
    let Some(store) = store else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no session store is available in this build",
        );
    };
    let what = match (&request.user_id, &request.sid) {
        (Some(user), None) if !user.is_empty() => Revoke::UserId(user),
        (None, Some(sid)) if !sid.is_empty() => Revoke::Sid(sid),
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "give exactly one non-empty key: \"user_id\" or \"sid\" (and optionally \"connection\")",
            )
        }
    };
    let within = match request.connection.as_deref() {
        None => connections,
        Some(c) => match connections.iter().position(|known| known == c) {
            Some(i) => &connections[i..=i],
            None => {
                return json_error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no connection is named {c:?}; connections: {}; nothing was revoked",
                        connections.join(", ")
                    ),
                )
            }
        },
    };
    let kind = match what {
        Revoke::UserId(_) => "user_id",
        Revoke::Sid(_) => "sid",
    };
    let result = revoke_in_each(&*store, within, what).await;
    match result {
        Ok(n) => {
            // The id itself is not logged: revocation is often about an incident.
            tracing::info!(by = kind, revoked = n, "sessions revoked");
            // The user id is the audit trail's business (who lost access);
            // a sid is not written (as good as a logout token).
            audit.record(Event::SessionsRevoked {
                by: kind,
                user_id: request.user_id.as_deref(),
                connection: request.connection.as_deref(),
                ended: n,
                client,
            });
            json(StatusCode::OK, &serde_json::json!({ "revoked": n }))
        }
        Err(e) => {
            tracing::error!(error = %e, "session revocation failed");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session store did not answer; nothing was revoked, retry",
            )
        }
    }
}

/// Sessions `GET /sessions` lists when no `limit` is given.
const DEFAULT_LIST_LIMIT: usize = 100;
/// The largest `limit` accepted.
const MAX_LIST_LIMIT: usize = 1000;

/// `GET /sessions?user_id=…[&connection=…][&limit=…]` or
/// `?connection=…[&limit=…]`: who is signed in (issue 22 item 8). Each
/// session shows its connection, user id, times and client address, and a
/// handle that names it without being it; never the id, a cookie or a
/// token. At most `limit` sessions; `complete: false` and a message say
/// when more match.
async fn list(
    store: Option<Arc<dyn SessionStore>>,
    connections: &[String],
    query: &str,
    audit: &Audit,
    client: IpAddr,
) -> Response<AdminBody> {
    let pairs = crate::auth::form_pairs(query.as_bytes());
    let mut user_id = None;
    let mut connection = None;
    let mut limit = None;
    for (k, v) in &pairs {
        let slot = match k.as_str() {
            "user_id" => &mut user_id,
            "connection" => &mut connection,
            "limit" => &mut limit,
            _ => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown parameter {k:?}; give user_id, connection and/or limit"),
                )
            }
        };
        if slot.replace(v.as_str()).is_some() || v.is_empty() {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("give {k} once, not empty"),
            );
        }
    }
    let limit = match limit.map(str::parse::<usize>) {
        None => DEFAULT_LIST_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT}"),
            )
        }
    };
    if let Some(c) = connection {
        if !connections.iter().any(|known| known == c) {
            return json_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no connection is named {c:?}; connections: {}",
                    connections.join(", ")
                ),
            );
        }
    }
    let Some(store) = store else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no session store is available in this build",
        );
    };
    // A user id without a connection: every connection's users of that id
    // (as revocation does; ids never collide across connections).
    let queries: Vec<ListBy<'_>> = match (user_id, connection) {
        (Some(user_id), Some(connection)) => vec![ListBy::User {
            connection,
            user_id,
        }],
        (Some(user_id), None) => connections
            .iter()
            .map(|c| ListBy::User {
                connection: c,
                user_id,
            })
            .collect(),
        (None, Some(c)) => vec![ListBy::Connection(c)],
        (None, None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "give user_id (and optionally connection) or connection: GET /sessions?user_id=… or /sessions?connection=…",
            )
        }
    };
    let mut all = Listing {
        sessions: Vec::new(),
        complete: true,
    };
    for by in queries {
        let left = limit.saturating_sub(all.sessions.len());
        if left == 0 {
            // Whether more match is unknown; say so rather than look.
            all.complete = false;
            break;
        }
        match store.list(by, left).await {
            Ok(found) => {
                all.complete &= found.complete;
                all.sessions.extend(found.sessions);
            }
            Err(e) => {
                tracing::error!(error = %e, "session listing failed");
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("the sessions could not be listed: {e}"),
                );
            }
        }
    }
    audit.record(Event::SessionsListed {
        user_id,
        connection,
        count: all.sessions.len(),
        client,
    });
    let mut body = serde_json::json!({
        "sessions": all.sessions,
        "count": all.sessions.len(),
        "complete": all.complete,
    });
    if !all.complete {
        body["message"] = serde_json::Value::from(format!(
            "more sessions may match than the {} shown; raise limit (at most {MAX_LIST_LIMIT}) or list by user_id",
            all.sessions.len()
        ));
    }
    let mut res = json(StatusCode::OK, &body);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn text(status: StatusCode, body: &'static str) -> Response<AdminBody> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<AdminBody> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The JSON answer to a request [`guard`] refused.
fn refused(refusal: guard::Refusal) -> Response<AdminBody> {
    if refusal == guard::Refusal::CrossSite {
        tracing::warn!("admin request from another site refused");
    } else {
        tracing::debug!(reason = refusal.code(), "admin request refused");
    }
    // Built by `respond`, like every error answer (nosniff, no-store).
    let mut res = crate::respond::json_error_bytes(
        refusal.status(),
        &serde_json::json!({ "error": refusal.code(), "message": refusal.message() }),
    )
    .map(Full::new);
    if let Some(challenge) = refusal.www_authenticate() {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    res
}

/// An admin API error: `{"error": <what was wrong and what to do>}`, built
/// by `respond` like every error answer (nosniff, no-store).
fn json_error(status: StatusCode, message: &str) -> Response<AdminBody> {
    crate::respond::json_error_bytes(status, &serde_json::json!({ "error": message }))
        .map(Full::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use crate::session::model::Session;
    use crate::session::store::{SessionId, StoreError};

    /// Records revocations; `fail` makes every call error.
    #[derive(Default)]
    struct FakeStore {
        calls: Mutex<Vec<String>>,
        fail: AtomicBool,
    }

    impl SessionStore for FakeStore {
        fn get<'a>(
            &'a self,
            _: &'a SessionId,
        ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>> {
            Box::pin(async { Ok(None) })
        }
        fn put<'a>(
            &'a self,
            _: &'a SessionId,
            _: Session,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async { Ok(()) })
        }
        fn delete<'a>(&'a self, _: &'a SessionId) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async { Ok(()) })
        }
        fn revoke_user<'a>(
            &'a self,
            connection: &'a str,
            user_id: &'a str,
        ) -> BoxFuture<'a, Result<u64, StoreError>> {
            Box::pin(async move {
                if self.fail.load(Ordering::Relaxed) {
                    return Err(StoreError("down".into()));
                }
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("{connection}/user:{user_id}"));
                Ok(3)
            })
        }
        fn revoke_sid<'a>(
            &'a self,
            connection: &'a str,
            sid: &'a str,
        ) -> BoxFuture<'a, Result<u64, StoreError>> {
            Box::pin(async move {
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("{connection}/sid:{sid}"));
                Ok(1)
            })
        }
        fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async move {
                if self.fail.load(Ordering::Relaxed) {
                    Err(StoreError("down".into()))
                } else {
                    Ok(())
                }
            })
        }
        fn approximate_len(&self) -> u64 {
            0
        }
    }

    fn ip() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn conns() -> Vec<String> {
        vec!["contoso".to_string(), "partner".to_string()]
    }

    #[tokio::test]
    async fn every_refusal_is_json_with_the_error_headers() {
        use guard::Refusal;
        for refusal in [
            Refusal::MissingToken,
            Refusal::WrongToken,
            Refusal::Host,
            Refusal::CrossSite,
            Refusal::NotJson,
        ] {
            let res = refused(refusal);
            let h = res.headers().clone();
            assert_eq!(h[header::CACHE_CONTROL], "no-store", "{refusal:?}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{refusal:?}");
            assert_eq!(h[header::CONTENT_TYPE], "application/json; charset=utf-8");
            assert_eq!(
                h.contains_key(header::WWW_AUTHENTICATE),
                refusal.status() == StatusCode::UNAUTHORIZED
            );
            let (status, body) = body_of(res).await;
            assert_eq!(status, refusal.status());
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"], refusal.code());
        }
    }

    async fn body_of(res: Response<AdminBody>) -> (StatusCode, String) {
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn revoke_by_user_or_sid_answers_the_count() {
        let store = Arc::new(FakeStore::default());
        let dyn_store: Arc<dyn SessionStore> = store.clone();
        let (s, b) = body_of(
            revoke(
                Some(dyn_store.clone()),
                &conns(),
                br#"{"user_id":"u-1"}"#,
                &Audit::in_memory(),
                ip(),
            )
            .await,
        )
        .await;
        // Once per connection, each scoped to its connection (SPEC 6.1).
        assert_eq!((s, b.as_str()), (StatusCode::OK, r#"{"revoked":6}"#));
        let audit = Audit::in_memory();
        let (s, b) =
            body_of(revoke(Some(dyn_store), &conns(), br#"{"sid":"abc"}"#, &audit, ip()).await)
                .await;
        let lines = audit.lines();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains(
                r#""event":"sessions_revoked","by":"sid","client_address":"127.0.0.1","ended":2}"#
            ),
            "{}",
            lines[0]
        );
        assert!(
            !lines[0].contains("abc"),
            "a sid is never written: {}",
            lines[0]
        );
        assert_eq!((s, b.as_str()), (StatusCode::OK, r#"{"revoked":2}"#));
        assert_eq!(
            *store.calls.lock().unwrap(),
            vec![
                "contoso/user:u-1",
                "partner/user:u-1",
                "contoso/sid:abc",
                "partner/sid:abc"
            ]
        );
    }

    #[tokio::test]
    async fn revoke_within_one_connection_touches_only_that_connection() {
        let store = Arc::new(FakeStore::default());
        let dyn_store: Arc<dyn SessionStore> = store.clone();
        let post = |body: &'static [u8]| {
            let store = dyn_store.clone();
            async move {
                body_of(revoke(Some(store), &conns(), body, &Audit::in_memory(), ip()).await).await
            }
        };
        let (s, b) = post(br#"{"sid":"abc","connection":"partner"}"#).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, r#"{"revoked":1}"#));
        let (s, _) = post(br#"{"user_id":"u-1","connection":"contoso"}"#).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            *store.calls.lock().unwrap(),
            vec!["partner/sid:abc", "contoso/user:u-1"]
        );
        // An unknown connection (or another spelling of one) revokes nothing.
        for body in [
            &br#"{"sid":"abc","connection":"nobody"}"#[..],
            br#"{"sid":"abc","connection":"Partner"}"#,
            br#"{"sid":"abc","connection":""}"#,
        ] {
            let (s, b) = post(body).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
            assert!(b.contains("contoso, partner"), "{b}");
        }
        assert_eq!(store.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn revoke_rejects_bad_bodies_without_touching_the_store() {
        let store = Arc::new(FakeStore::default());
        for body in [
            &br#"{"user_id":"a","sid":"b"}"#[..],
            br#"{}"#,
            br#"{"user_id":""}"#,
            br#"{"email":"x@y"}"#,
            br#"{"user_id":5}"#,
            br#"{"connection":"contoso"}"#,
            br#"{"sid":"abc","connection":5}"#,
            b"not json",
            b"",
        ] {
            let dyn_store: Arc<dyn SessionStore> = store.clone();
            let (s, b) =
                body_of(revoke(Some(dyn_store), &conns(), body, &Audit::in_memory(), ip()).await)
                    .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?} -> {b}");
            assert!(b.contains("\"error\""));
        }
        assert!(store.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn revoke_fails_closed_when_the_store_is_down_or_absent() {
        let store = Arc::new(FakeStore::default());
        store.fail.store(true, Ordering::Relaxed);
        let dyn_store: Arc<dyn SessionStore> = store.clone();
        let (s, _) = body_of(
            revoke(
                Some(dyn_store),
                &conns(),
                br#"{"user_id":"u"}"#,
                &Audit::in_memory(),
                ip(),
            )
            .await,
        )
        .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        let (s, _) = body_of(
            revoke(
                None,
                &conns(),
                br#"{"user_id":"u"}"#,
                &Audit::in_memory(),
                ip(),
            )
            .await,
        )
        .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    }

    /// `GET /sessions` (issue 22 item 8) against the memory store: by user
    /// in every connection or one, by connection, bounded with a message,
    /// never the id or a token, and every bad query said plainly.
    #[tokio::test]
    async fn sessions_are_listed_by_user_or_connection_without_secrets() {
        use crate::session::memory::MemoryStore;
        let memory = Arc::new(MemoryStore::new(100, Duration::from_secs(3600)));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut ids = Vec::new();
        for (user, connection) in [("u-1", "contoso"), ("u-1", "partner"), ("u-2", "contoso")] {
            let session = Session {
                derived: Default::default(),
                version: crate::session::model::SESSION_VERSION,
                user_id: user.into(),
                subject: "s".into(),
                tenant_id: None,
                connection: connection.into(),
                issuer: "https://idp.example".into(),
                sid: Some("SID-SECRET".into()),
                email: Some("someone@contoso.com".into()),
                email_trust: crate::session::model::EmailTrust::Unverified,
                name: None,
                preferred_username: None,
                groups: vec![],
                roles: Vec::new(),
                claims: None,
                saml_name_id: None,
                id_token: Some("SECRET-ID-TOKEN".into()),
                access_token: None,
                refresh_token: Some("SECRET-REFRESH".into()),
                tokens_expire_at: None,
                client_addr: Some("203.0.113.9".parse().unwrap()),
                created_at: now,
                expires_at: now + 60,
            };
            let id = SessionId::generate();
            memory.put(&id, session).await.unwrap();
            ids.push(id);
        }
        let store = || -> Option<Arc<dyn SessionStore>> { Some(memory.clone()) };
        let audit = Audit::in_memory();
        let audit = &audit;
        let get = |q: &'static str| async move {
            body_of(list(store(), &conns(), q, audit, ip()).await).await
        };

        let (status, body) = get("user_id=u-1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["count"], 2, "{body}");
        assert_eq!(v["complete"], true);
        assert!(v.get("message").is_none());
        let first = &v["sessions"][0];
        for key in [
            "handle",
            "connection",
            "user_id",
            "created_at",
            "last_seen",
            "expires_at",
            "client_address",
        ] {
            assert!(first.get(key).is_some(), "{key} in {body}");
        }
        assert_eq!(first["client_address"], "203.0.113.9");
        for secret in ["SECRET", "someone@", "SID-"] {
            assert!(!body.contains(secret), "{secret}: {body}");
        }
        for id in &ids {
            let raw: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert!(!body.contains(&raw), "the session id itself: {body}");
        }
        let (_, body) = get("user_id=u-1&connection=partner").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["count"], 1, "{body}");
        assert_eq!(
            v["sessions"][0]["handle"],
            crate::session::store::handle_of(&ids[1])
        );
        let (_, body) = get("connection=contoso").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["count"], 2, "{body}");
        // Bounded, and the answer says so and what to do.
        let res = list(store(), &conns(), "connection=contoso&limit=1", audit, ip()).await;
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let (_, body) = body_of(res).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["count"].as_u64(), v["complete"].as_bool()),
            (Some(1), Some(false))
        );
        assert!(
            v["message"].as_str().unwrap().contains("raise limit"),
            "{body}"
        );

        for (query, status) in [
            ("", StatusCode::BAD_REQUEST),
            ("user=u-1", StatusCode::BAD_REQUEST),
            ("user_id=", StatusCode::BAD_REQUEST),
            ("user_id=a&user_id=b", StatusCode::BAD_REQUEST),
            ("connection=contoso&limit=0", StatusCode::BAD_REQUEST),
            ("connection=contoso&limit=1001", StatusCode::BAD_REQUEST),
            ("connection=contoso&limit=x", StatusCode::BAD_REQUEST),
            ("connection=nobody", StatusCode::NOT_FOUND),
        ] {
            let (s, b) = get(query).await;
            assert_eq!(s, status, "{query}: {b}");
            assert!(b.contains("\"error\""), "{query}: {b}");
        }
        let (s, _) = body_of(list(None, &conns(), "user_id=u", audit, ip()).await).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        // Each answered listing is an audit event, without the sessions.
        let lines = audit.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].contains(r#""event":"sessions_listed""#)
                && lines[0].contains(r#""user_id":"u-1""#)
                && lines[0].contains(r#""count":2"#),
            "{}",
            lines[0]
        );
        assert!(
            !lines.concat().contains("203.0.113.9"),
            "the listed addresses are not copied"
        );
    }

    #[tokio::test]
    async fn readyz_follows_the_latch_and_the_store() {
        let store = Arc::new(FakeStore::default());
        let dyn_store: Arc<dyn SessionStore> = store.clone();
        assert_eq!(
            readyz(true, Some(dyn_store.clone())).await.status(),
            StatusCode::OK
        );
        assert_eq!(readyz(true, None).await.status(), StatusCode::OK);
        assert_eq!(
            readyz(false, Some(dyn_store.clone())).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        store.fail.store(true, Ordering::Relaxed);
        assert_eq!(
            readyz(true, Some(dyn_store)).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
