//! The accept loop and one client connection: PROXY header, TLS handshake,
//! HTTP/1.1 or h2 (hyper-util's auto builder), limits and timeouts, idle
//! close and graceful drain.
//!
//! Connections are driven by our own `select!` instead of hyper-util's
//! `GracefulShutdown`: that type takes ownership of the connection future,
//! and the idle timer here must call `graceful_shutdown` on it as well. The
//! drain logic is the same (signal every connection, wait for the count to
//! reach zero, bounded by `shutdown_grace` in `Running::shutdown`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::proxy_protocol::{self, Prefixed};
use super::workers::Dispatch;
use super::Inner;
use crate::config::ServerSettings;
use crate::handler::{ConnInfo, Gateway};
use crate::respond::Body;

/// A stand-in for `handler::handle` (the server's unit tests).
#[cfg(test)]
pub(crate) type TestHandler = Arc<
    dyn Fn(
            Arc<Gateway>,
            Request<Incoming>,
            ConnInfo,
        ) -> futures_util::future::BoxFuture<'static, Response<Body>>
        + Send
        + Sync,
>;
#[cfg(test)]
type TestFuture = futures_util::future::BoxFuture<'static, Response<Body>>;

/// Outside tests there is no stand-in (the type has no values).
#[cfg(not(test))]
pub(crate) type TestHandler = Infallible;
#[cfg(not(test))]
type TestFuture = std::future::Pending<Response<Body>>;

/// Accepts until shutdown starts; then the listener is dropped, so new
/// connections are refused while the open ones drain. Each connection is
/// served by one of the proxy workers.
pub(super) async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, mut workers: Dispatch) {
    let mut stop = inner.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => workers.send(stream, peer),
            Err(e) => {
                // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
}

/// Counts the connection for the drain and the open-connections gauge for as
/// long as it lives (also when its task panics or is dropped).
struct ConnGuard(Arc<Inner>);

impl ConnGuard {
    fn new(inner: Arc<Inner>) -> Self {
        inner.connections.opened();
        inner.shared.metrics.connection_opened();
        ConnGuard(inner)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.shared.metrics.connection_closed();
        self.0.connections.closed();
    }
}

pub(super) async fn serve(inner: Arc<Inner>, stream: TcpStream, peer: SocketAddr) {
    let _guard = ConnGuard::new(inner.clone());
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    // Small responses go out at once (no Nagle delay behind a delayed ACK).
    let _ = stream.set_nodelay(true);
    // Copied, not the whole settings: this future lives as long as the
    // connection, idle ones included (SPEC 7: 10,000 idle connections).
    let limits = Limits::of(&inner.current().settings.server);
    let header_timeout = limits.header_read_timeout;

    let (io, peer) = if limits.proxy_protocol {
        // Boxed, like the TLS handshake below: what only some connections
        // need does not enlarge every connection's task.
        let read = Box::pin(proxy_protocol::read_header(stream));
        match tokio::time::timeout(header_timeout, read).await {
            Ok(Ok((io, source))) => (io, source.unwrap_or(peer)),
            Ok(Err(e)) => {
                tracing::debug!(client.ip = %peer.ip(), error = %e, "PROXY header refused; closing");
                return;
            }
            Err(_) => {
                tracing::debug!(client.ip = %peer.ip(), "no PROXY header within header_read_timeout; closing");
                return;
            }
        }
    } else {
        // A client that connects and sends nothing is cut like a slow one.
        // (hyper's header timer starts only once the protocol is detected.)
        // (`readable()` may report ready before any byte arrived; peek waits for one.)
        let mut first = [0u8; 1];
        match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        (Prefixed::new(stream, Bytes::new()), peer)
    };

    match inner.tls_config() {
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let handshake = Box::pin(acceptor.accept(io));
            match tokio::time::timeout(header_timeout, handshake).await {
                Ok(Ok(tls)) => {
                    let info = ConnInfo::new(peer, local, true);
                    Box::pin(serve_http(inner, tls, info, limits)).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(client.ip = %peer.ip(), error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    tracing::debug!(client.ip = %peer.ip(), "TLS handshake timed out");
                }
            }
        }
        None => {
            let info = ConnInfo::new(peer, local, false);
            serve_http(inner, io, info, limits).await
        }
    }
}

/// What a connection needs of the server settings.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Limits {
    proxy_protocol: bool,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
}

impl Limits {
    fn of(server: &ServerSettings) -> Limits {
        Limits {
            proxy_protocol: server.proxy_protocol,
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_header_bytes: server.max_header_bytes,
        }
    }
}

/// The connection builder for the current limits, shared by every
/// connection (each connection borrows it for its whole life, so a copy per
/// connection would cost its 240 bytes for as long); rebuilt when a reload
/// changes the limits.
#[derive(Default)]
pub(super) struct Builders(std::sync::RwLock<Option<(Limits, Arc<auto::Builder<TokioExecutor>>)>>);

impl Builders {
    fn get(&self, limits: Limits) -> Arc<auto::Builder<TokioExecutor>> {
        if let Some((cached, b)) = &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            if *cached == limits {
                return b.clone();
            }
        }
        let built = Arc::new(builder(limits));
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some((limits, built.clone()));
        built
    }
}

/// The hyper-util builder for one connection with the configured limits.
fn builder(server: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // HTTP/1.1: a request head larger than the read buffer is answered 431 by
    // hyper itself (tests/it/server.rs pins that). hyper's minimum buffer is
    // 8 KiB, so smaller limits act as 8 KiB on HTTP/1.1.
    // The header timer also runs while a keep-alive connection waits for its
    // next request, so idle HTTP/1.1 connections close after
    // min(header_read_timeout, idle_timeout).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout.min(server.idle_timeout))
        .max_buf_size(server.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Activity on one connection, for the idle close.
#[derive(Default)]
struct Activity {
    /// Set by every read or write that moved bytes; cleared by the idle timer.
    active: AtomicBool,
    /// Requests whose response head is not yet produced.
    in_flight: AtomicUsize,
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.active.store(true, Ordering::Relaxed);
    }
}

async fn serve_http<I>(inner: Arc<Inner>, io: I, info: ConnInfo, server: Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Tracked {
        inner: io,
        activity: activity.clone(),
    });
    let peer_ip = info.peer.ip();
    let service = {
        let inner = inner.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let gw = inner.current();
            let guard = InFlight::new(&activity);
            let fut = dispatch(&inner, gw, req, info.clone());
            async move {
                let res = fut.await;
                drop(guard);
                Ok::<_, Infallible>(res)
            }
        })
    };
    let builder = inner.builders.get(server);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);

    let mut stop = inner.stop.subscribe();
    let mut draining = false;
    if *stop.borrow_and_update() {
        conn.as_mut().graceful_shutdown();
        draining = true;
    }
    // Closed when neither bytes nor requests moved for a whole tick, i.e.
    // after idle_timeout .. 1.5 x idle_timeout of silence.
    let tick = (server.idle_timeout / 2).max(Duration::from_millis(100));
    let mut idle = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet_ticks = 0u32;
    // An idle close is graceful first (HTTP/2 GOAWAY, then a PING the client
    // must answer); a client that never answers would keep the connection
    // forever, so it is dropped after one more idle_timeout.
    let forced_close = tokio::time::sleep(Duration::MAX);
    tokio::pin!(forced_close);
    let mut closing_idle = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(client.ip = %peer_ip, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut forced_close, if closing_idle => {
                tracing::debug!(client.ip = %peer_ip, "idle_timeout: the client did not close; dropping the connection");
                return;
            }
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = idle.tick(), if !draining => {
                let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
                if activity.active.swap(false, Ordering::Relaxed) || busy {
                    quiet_ticks = 0;
                } else {
                    quiet_ticks += 1;
                    if quiet_ticks >= 2 {
                        tracing::debug!(client.ip = %peer_ip, "idle_timeout: closing connection");
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                        closing_idle = true;
                        forced_close
                            .as_mut()
                            .reset(tokio::time::Instant::now() + server.idle_timeout);
                    }
                }
            }
        }
    }
}

/// `handler::handle`, or the test stand-in; no boxing on the real path.
fn dispatch(
    inner: &Inner,
    gw: Arc<Gateway>,
    req: Request<Incoming>,
    info: ConnInfo,
) -> Either<impl std::future::Future<Output = Response<Body>>, TestFuture> {
    #[cfg(test)]
    if let Some(h) = &inner.test_handler {
        return Either::Right(h(gw, req, info));
    }
    #[cfg(not(test))]
    if let Some(never) = &inner.test_handler {
        match *never {}
    }
    Either::Left(crate::handler::handle(gw, req, info))
}

/// Marks the connection active whenever bytes move.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() != before {
            self.activity.active.store(true, Ordering::Relaxed);
        }
        res
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.active.store(true, Ordering::Relaxed);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.active.store(true, Ordering::Relaxed);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
