//! Keep-alive connections to plain `http://` upstreams, driven from the
//! request's own task.
//!
//! hyper-util's legacy client runs every upstream connection in a task of its
//! own: a request crosses to it over a channel, the response comes back over
//! another, and the body over a third, which costs several task wake-ups per
//! request. Here the request's task polls the upstream connection itself
//! (while waiting for the response head, then while the response body
//! streams), so a proxied request is served by one task end to end.
//!
//! - One [`Pool`] per upstream address and connect timeout. Idle connections
//!   wait in a `Mutex<Vec<_>>` (most recently used first out); at most
//!   [`MAX_IDLE`] are kept, each at most [`IDLE_TIMEOUT`].
//! - One such list per proxy thread (a shard, see [`use_shard`]): a
//!   connection is registered with the event loop of the thread that opened
//!   it, so it is only reused there. Taken from another thread it would still
//!   work, but every readiness event would cross threads.
//! - A connection goes back to the pool only after its response body was read
//!   to the end, and only when it is still open and ready for the next
//!   request. A body dropped early closes the connection (HTTP/1 cannot abort
//!   one response otherwise).
//! - Before an idle connection is reused it is polled once, so an upstream
//!   that closed it in the meantime is noticed without sending anything.
//! - Retries: only GET and HEAD, only once, only on a fresh connection, and
//!   only when hyper hands the request back unsent. Anything else that fails
//!   on a pooled connection is a 502: a POST reaches the app at most once.
//! - Upgrade requests (WebSocket) get a fresh connection of their own, run in
//!   a spawned task with upgrades enabled, and never return to the pool.
//! - Requests without a body (most of them) skip hyper's client (the choice
//!   is made in one place, `crate::proxy::exchange`): [`raw`] writes the head and reads the response on the connection directly,
//!   with connections of their own in the same shards. A GET or HEAD whose
//!   pooled connection turns out closed before any response byte is tried
//!   once more on a new connection; nothing else is resent.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::{RouteSettings, UpstreamClient};
#[cfg(test)]
use crate::headers::identity::Injected;
use crate::respond::{Body, GatewayError};

/// Longest time a connection waits in the pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most idle connections kept per upstream.
pub const MAX_IDLE: usize = 256;
/// How often closed and expired idle connections are dropped when the pool is quiet.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

mod raw;

pub use raw::RawError;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use raw::differential::fuzz as fuzz_differential;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use raw::fuzz as fuzz_response;

/// Boxed once per connection: the state machine with its buffers is large,
/// and a `Conn` is moved with (and sized into) every request's future.
type Driver = Pin<Box<http1::Connection<TokioIo<TcpStream>, Body>>>;

/// Where to connect: an address, or a name resolved at every new connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Target {
    /// The target of an `http://` URL (None for anything else).
    pub fn of(url: &url::Url) -> Option<Target> {
        if url.scheme() != "http" {
            return None;
        }
        let port = url.port_or_known_default()?;
        Some(match url.host()? {
            url::Host::Ipv4(ip) => Target::Addr(SocketAddr::new(ip.into(), port)),
            url::Host::Ipv6(ip) => Target::Addr(SocketAddr::new(ip.into(), port)),
            url::Host::Domain(name) => Target::Name(name.to_string(), port),
        })
    }
}

/// What forwarding to a plain `http://` route needs, computed once per
/// config generation instead of per request.
pub struct PlainRoute {
    pub pool: Arc<Pool>,
    /// The upstream's authority, as the `Host` header.
    pub host: HeaderValue,
    /// The upstream's base path without its trailing `/` (empty for none).
    base: String,
}

impl PlainRoute {
    /// The routes with an `http://` upstream whose `upstream_client` is
    /// `"auto"` (a route set to `"hyper"` has none: hyper-util's client
    /// serves it like a TLS upstream); routes with the same upstream address
    /// and connect timeout share a pool.
    pub fn for_routes(
        routes: &[Arc<RouteSettings>],
        workers: usize,
    ) -> HashMap<String, PlainRoute> {
        let mut pools: HashMap<(Target, Duration), Arc<Pool>> = HashMap::new();
        let mut out = HashMap::new();
        for route in routes {
            if route.upstream_client != UpstreamClient::Auto {
                continue;
            }
            let Some(target) = Target::of(&route.upstream) else {
                continue;
            };
            let Ok(host) = super::upstream_host(route) else {
                continue;
            };
            let pool = pools
                .entry((target.clone(), route.connect_timeout))
                .or_insert_with(|| Pool::new(target, route.connect_timeout, workers))
                .clone();
            let base = route.upstream.path().trim_end_matches('/').to_string();
            out.insert(route.name.clone(), PlainRoute { pool, host, base });
        }
        out
    }

    /// The request target to send upstream (origin-form): the base path
    /// joined with the request's path, and the request's query. The same as
    /// the path and query of [`super::upstream_uri`].
    pub fn origin_form(&self, incoming: &Uri) -> Result<Uri, GatewayError> {
        let path = incoming.path();
        if self.base.is_empty() && path.starts_with('/') {
            // An absolute-form target without a path (`http://host?x`) has
            // `?x` for its path and query, though `path()` reads `/`: that
            // would go out as `GET ?x` (review 12). Only a path-and-query
            // that starts with its `/` is taken as is.
            if let Some(pq) = incoming
                .path_and_query()
                .filter(|pq| pq.as_str().starts_with('/'))
            {
                return Ok(Uri::from(pq.clone()));
            }
        }
        let path = if path.starts_with('/') { path } else { "/" };
        let base = &self.base;
        let pq = match incoming.query() {
            Some(q) => format!("{base}{path}?{q}"),
            None => format!("{base}{path}"),
        };
        let pq: PathAndQuery = pq
            .parse()
            .map_err(|_| GatewayError::BadRequest("The request target is not a valid path."))?;
        Ok(Uri::from(pq))
    }
}

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connecting to the upstream timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("cannot connect to the upstream: {0}")]
    Connect(std::io::Error),
    #[error("upstream connection failed: {0}")]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Raw(#[from] raw::RawError),
}

thread_local! {
    /// The shard of the proxy thread running here (0 for any other thread).
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes this thread use idle-connection shard `index` of every pool (the
/// server's proxy thread `index`, counted from 1; shard 0 serves the other threads).
pub fn use_shard(index: usize) {
    SHARD.with(|s| s.set(index));
}

/// Idle HTTP/1.1 connections to one upstream.
pub struct Pool {
    target: Target,
    connect_timeout: Duration,
    /// One list per proxy thread (see [`use_shard`]).
    idle: Box<[Shard]>,
    /// Set once the background sweep runs (it starts with the first idle connection).
    sweeping: std::sync::atomic::AtomicBool,
}

/// One thread's idle lists (connections for hyper's client, and for
/// requests without a body), aligned to a cache line pair of its own so
/// threads taking and returning connections never write each other's lines.
#[repr(align(128))]
struct Shard(Mutex<Lists>);

#[derive(Default)]
struct Lists {
    hyper: Vec<Idle<Conn>>,
    raw: Vec<Idle<raw::RawConn>>,
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// A kind of pooled connection: hyper's, or the raw exchange's.
trait Pooled: Sized {
    /// Open and ready for the next request right now.
    fn reusable(&mut self) -> bool;
    /// Where idle connections of this kind wait.
    fn list(lists: &mut Lists) -> &mut Vec<Idle<Self>>;
}

impl Pooled for Conn {
    fn reusable(&mut self) -> bool {
        Conn::reusable(self)
    }
    fn list(lists: &mut Lists) -> &mut Vec<Idle<Self>> {
        &mut lists.hyper
    }
}

impl Pooled for raw::RawConn {
    fn reusable(&mut self) -> bool {
        raw::RawConn::reusable(self)
    }
    fn list(lists: &mut Lists) -> &mut Vec<Idle<Self>> {
        &mut lists.raw
    }
}

impl<C: Pooled> Idle<C> {
    /// Not idle for too long, and still open and ready.
    fn fresh(&mut self) -> bool {
        self.since.elapsed() < IDLE_TIMEOUT && self.conn.reusable()
    }
}

/// Drops the expired and closed connections of one list.
fn keep_fresh<C: Pooled>(idle: &mut Vec<Idle<C>>) {
    idle.retain_mut(Idle::fresh);
}

/// One upstream connection: the handle to send on and the connection state
/// machine, polled by whichever task is using it.
struct Conn {
    sender: http1::SendRequest<Body>,
    /// `None` once the connection has finished (closed or failed).
    ///
    /// In a `Mutex` only to make `Conn` `Sync` (response bodies must be); it
    /// is reached through `get_mut`, never locked.
    driver: Mutex<Option<Driver>>,
}

impl Conn {
    /// Drive the connection; true while it is open.
    fn poll_driver(&mut self, cx: &mut Context<'_>) -> bool {
        let slot = match self.driver.get_mut() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(driver) = slot.as_mut() else {
            return false;
        };
        match driver.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                // Dropping the state machine resolves anything still waiting on it.
                *slot = None;
                false
            }
        }
    }

    /// Open and ready for a request right now (polls without registering interest).
    fn reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_driver(&mut cx) && self.sender.is_ready()
    }

    /// Send `req` and drive the connection until the response head arrives.
    async fn exchange(
        &mut self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<Body>>> {
        let mut response = std::pin::pin!(self.sender.try_send_request(req));
        let driver = &mut self.driver;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = response.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            let slot = match driver.get_mut() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(d) = slot.as_mut() {
                if let Poll::Ready(result) = d.as_mut().poll(cx) {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "upstream connection ended with an error");
                    }
                    *slot = None;
                }
            }
            response.as_mut().poll(cx)
        })
        .await
    }
}

impl Pool {
    /// A pool for `workers` proxy threads (plus shard 0 for any other thread).
    pub fn new(target: Target, connect_timeout: Duration, workers: usize) -> Arc<Pool> {
        Arc::new(Pool {
            target,
            connect_timeout,
            idle: (0..=workers)
                .map(|_| Shard(Mutex::new(Lists::default())))
                .collect(),
            sweeping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Send `req` (origin-form URI, Host set) with the `identity` headers
    /// (none of which `req` has) by the exchange [`crate::proxy::Exchange`]
    /// chooses for it, as `Upstreams::forward` does (tests).
    #[cfg(test)]
    pub async fn send<B>(
        self: &Arc<Pool>,
        mut req: Request<B>,
        identity: Option<&Injected>,
    ) -> Result<Response<Body>, PoolError>
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<crate::respond::BoxError>,
    {
        use crate::proxy::Exchange;
        match Exchange::choose(true, false, !req.body().is_end_stream()) {
            Exchange::RawH1 => {
                let extra = identity.map_or(&[][..], Injected::wire);
                self.send_raw(req.into_parts().0, extra).await
            }
            Exchange::HyperH1 | Exchange::HyperClient | Exchange::Upgrade => {
                if let Some(identity) = identity {
                    identity.apply(req.headers_mut());
                }
                Box::pin(self.send_with_body(super::boxed(req))).await
            }
        }
    }

    /// Send a request with a body (exchange `hyper-h1`: hyper's HTTP/1.1
    /// connection, driven from this task) and return the response; its body
    /// hands the connection back to the pool once read to the end. The
    /// identity headers are already in `req`.
    pub async fn send_with_body(
        self: &Arc<Pool>,
        req: Request<Body>,
    ) -> Result<Response<Body>, PoolError> {
        let may_retry = matches!(*req.method(), Method::GET | Method::HEAD);
        // Connecting is boxed: it happens once per connection, and its
        // future would otherwise enlarge every request's.
        let (mut conn, pooled) = match self.take_idle() {
            Some(conn) => (conn, true),
            None => (Box::pin(self.connect()).await?, false),
        };
        let err = match conn.exchange(req).await {
            Ok(response) => return Ok(self.wrap(conn, response)),
            Err(err) => err,
        };
        let mut err = err;
        match err.take_message() {
            // Never sent: a GET or HEAD gets one more try on a new connection.
            Some(req) if pooled && may_retry => {
                tracing::debug!(error = %err.error(), "pooled upstream connection was closed; retrying on a new one");
                let mut conn = Box::pin(self.connect()).await?;
                match conn.exchange(req).await {
                    Ok(response) => Ok(self.wrap(conn, response)),
                    Err(e) => Err(PoolError::Http(e.into_error())),
                }
            }
            _ => Err(PoolError::Http(err.into_error())),
        }
    }

    /// Send a request without a body (exchange `raw-h1`, the own codec,
    /// [`raw`]); `extra` are header fields written after `parts`' own
    /// (CRLF-terminated lines: the identity headers, which `parts` has none
    /// of).
    pub async fn send_raw(
        self: &Arc<Pool>,
        parts: http::request::Parts,
        extra: &[u8],
    ) -> Result<Response<Body>, PoolError> {
        let may_retry = matches!(parts.method, Method::GET | Method::HEAD);
        let (mut conn, pooled) = match self.take_idle() {
            Some(conn) => (conn, true),
            None => (Box::pin(self.connect_raw()).await?, false),
        };
        let head = match conn.exchange(&parts, extra).await {
            Ok(head) => head,
            // The pooled connection was closed under us before any answer.
            Err((e, true)) if pooled && may_retry => {
                tracing::debug!(error = %e, "pooled upstream connection was closed; retrying on a new one");
                conn = Box::pin(self.connect_raw()).await?;
                conn.exchange(&parts, extra).await.map_err(|(e, _)| e)?
            }
            Err((e, _)) => return Err(e.into()),
        };
        Ok(raw::RawBody::response(conn, head, Arc::downgrade(self)).map(BodyExt::boxed))
    }

    /// Send an Upgrade request on a fresh connection, run with upgrades enabled
    /// in a task of its own and never pooled.
    pub async fn send_upgrade(&self, req: Request<Body>) -> Result<Response<Body>, PoolError> {
        let stream = self.connect_tcp().await?;
        let (mut sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = driver.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended with an error");
            }
        });
        let response = sender.send_request(req).await?;
        Ok(response.map(|b| b.map_err(Into::into).boxed()))
    }

    fn wrap(self: &Arc<Pool>, conn: Conn, response: Response<Incoming>) -> Response<Body> {
        let keep = keeps_after_a_body(response.status());
        response.map(|body| {
            PooledBody {
                body,
                conn: Some(conn),
                pool: Arc::downgrade(self),
                keep,
            }
            .map_err(Into::into)
            .boxed()
        })
    }

    /// The most recently used idle connection of kind `C` that is still
    /// open and ready.
    fn take_idle<C: Pooled>(&self) -> Option<C> {
        let mut lists = self.lock(self.shard());
        let idle = C::list(&mut lists);
        while let Some(mut entry) = idle.pop() {
            if entry.fresh() {
                return Some(entry.conn);
            }
            // Closed by the upstream, or expired: dropping it closes it.
        }
        None
    }

    /// Hand a connection whose last response is complete back to the pool.
    fn put_back<C: Pooled>(self: &Arc<Pool>, mut conn: C) {
        if !conn.reusable() {
            return;
        }
        {
            let mut lists = self.lock(self.shard());
            let idle = C::list(&mut lists);
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        self.start_sweeping();
    }

    /// This thread's shard.
    fn shard(&self) -> usize {
        SHARD.with(|s| s.get()) % self.idle.len()
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Lists> {
        // The pool holds no invariant a panic could break: keep using it.
        match self.idle[shard].0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Drop closed and expired idle connections every [`SWEEP_EVERY`], so a
    /// quiet pool does not keep sockets open; ends with the pool.
    fn start_sweeping(self: &Arc<Pool>) {
        use std::sync::atomic::Ordering;
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::downgrade(self);
        runtime.spawn(sweep(pool));
    }

    /// Open a new connection for requests without a body.
    async fn connect_raw(&self) -> Result<raw::RawConn, PoolError> {
        Ok(raw::RawConn::new(self.connect_tcp().await?))
    }

    /// Open a new connection (the caller drives it).
    async fn connect(&self) -> Result<Conn, PoolError> {
        let stream = self.connect_tcp().await?;
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Conn {
            sender,
            driver: Mutex::new(Some(Box::pin(driver))),
        })
    }

    async fn connect_tcp(&self) -> Result<TcpStream, PoolError> {
        let connect = async {
            match &self.target {
                Target::Addr(addr) => TcpStream::connect(addr).await,
                Target::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await,
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| PoolError::ConnectTimeout(self.connect_timeout))?
            .map_err(PoolError::Connect)?;
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        Ok(stream)
    }

    /// Idle connections right now (tests).
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        (0..self.idle.len())
            .map(|s| {
                let lists = self.lock(s);
                lists.hyper.len() + lists.raw.len()
            })
            .sum()
    }
}

async fn sweep(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        for shard in 0..pool.idle.len() {
            let mut lists = pool.lock(shard);
            keep_fresh(&mut lists.hyper);
            keep_fresh(&mut lists.raw);
        }
    }
}

/// True when a connection that carried a request with a body may serve
/// another request after an answer of `status`. An upstream that answers
/// early (a 401 or 413 from the head, a redirect) may leave the body unread
/// though it keeps the connection open (RFC 9112 9.3 says read it or
/// close): those bytes would be read as the start of the next request sent
/// on the connection, another user's (the "CL.0" desync), which then runs
/// as a request the first client wrote, with the next user's cookies and
/// identity headers. Only a success is taken to mean the body was read;
/// after anything else the connection is closed (one new connection after
/// an error or a redirect that answered a body).
pub(crate) fn keeps_after_a_body(status: http::StatusCode) -> bool {
    status.is_success()
}

/// A response body that drives its upstream connection while it streams and
/// returns the connection to the pool once it is read to the end.
struct PooledBody {
    body: Incoming,
    /// `None` after the connection went back to the pool or was dropped.
    conn: Option<Conn>,
    pool: Weak<Pool>,
    /// Whether the connection may serve another request afterwards
    /// ([`keeps_after_a_body`]).
    keep: bool,
}

impl PooledBody {
    fn release(&mut self) {
        let conn = self.conn.take();
        if let (Some(conn), Some(pool), true) = (conn, self.pool.upgrade(), self.keep) {
            pool.put_back(conn);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        // The body first (so it asks for data), then the connection (which
        // reads and hands data over), then the body again.
        let mut polled = Pin::new(&mut this.body).poll_frame(cx);
        if polled.is_pending() {
            if let Some(conn) = this.conn.as_mut() {
                conn.poll_driver(cx);
            }
            polled = Pin::new(&mut this.body).poll_frame(cx);
        }
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A broken body means a broken connection.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Read to the end (e.g. an empty body nobody polled): reusable.
        // Otherwise the rest of the response is still on the wire and the
        // connection is dropped, which closes it.
        if self.conn.is_some() && self.body.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests;
