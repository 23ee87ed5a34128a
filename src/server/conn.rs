//! The accept loop and one client connection: PROXY header, TLS handshake,
//! HTTP/1.1 or h2 (hyper-util's auto builder), limits and timeouts, idle
//! close and graceful drain.
//!
//! A connection's timeouts (`header_read_timeout`, `idle_timeout`) and the
//! drain signal come from its proxy thread's [`Watchdog`]: the connection
//! reports activity with atomic stores and obeys the watchdog's order when
//! woken, with no timer of its own. The drain works like hyper-util's
//! `GracefulShutdown` (signal every connection, wait for the count to reach
//! zero, bounded by `shutdown_grace` in `Running::shutdown`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
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
use tokio::net::TcpStream;

use super::proxy_protocol::{self, Prefixed, Sniffed};
use super::watchdog::{self, Watchdog, Watched};
use super::Inner;
use crate::config::ServerSettings;
use crate::gateway::GatewayRef;
use crate::metrics::ProxyRejection;
use crate::peer::ConnInfo;
use crate::respond::Body;

/// A stand-in for `handler::handle` (the server's unit tests).
#[cfg(test)]
pub(crate) type TestHandler = Arc<
    dyn Fn(
            Arc<crate::gateway::Gateway>,
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

pub(super) async fn serve(
    inner: Arc<Inner>,
    stream: TcpStream,
    peer: SocketAddr,
    watchdog: Watchdog,
) {
    let _guard = ConnGuard::new(inner.clone());
    // Copied, not the whole settings: this future lives as long as the
    // connection, idle ones included (SPEC 7: 10,000 idle connections).
    let limits = Limits::of(&inner.current().settings.server);
    // Boxed: what happens before the first request (PROXY header, protocol
    // sniffing, TLS handshake) and its timers are freed before the
    // connection settles into its keep-alive life, instead of sizing it.
    let Some(start) = Box::pin(start(&inner, stream, peer, limits)).await else {
        return;
    };
    match start {
        Started::Http1(io, info) => {
            serve_http(inner, io, info, limits, &watchdog, Proto::Http1).await;
        }
        Started::Plain(io, info) => {
            serve_http(inner, io, info, limits, &watchdog, Proto::Auto).await;
        }
        Started::Tls(tls, info) => {
            let proto = tls_proto(tls.get_ref().1.alpn_protocol());
            // The TLS stream (rustls's connection, 1.2 KB) stays in its own
            // box and hyper holds the pointer: moved into hyper's connection
            // it would size every connection's task, and boxing the whole
            // connection future instead kept several copies of it (a future
            // keeps a slot for each place a value was moved through), 7.4 KB
            // per idle TLS connection where this costs the 1.2.
            serve_http(inner, tls, info, limits, &watchdog, proto).await;
        }
    }
}

type PlainIo = Prefixed<TcpStream>;

/// A connection ready for HTTP.
enum Started {
    /// Plain HTTP/1 (sniffed): served by hyper's HTTP/1 connection alone.
    Http1(PlainIo, ConnInfo),
    /// Plain HTTP/2 with prior knowledge (sniffed).
    Plain(PlainIo, ConnInfo),
    /// TLS: HTTP/1.1 or HTTP/2 as the client chooses; served boxed.
    Tls(Box<tokio_rustls::server::TlsStream<PlainIo>>, ConnInfo),
}

/// Which hyper connection serves the requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// HTTP/1 only (the first bytes said so).
    Http1,
    /// hyper-util's auto-detection (HTTP/1.1 or HTTP/2).
    Auto,
}

/// Which hyper connection serves a TLS connection, by the protocol ALPN
/// agreed: `http/1.1` is HTTP/1 (RFC 7301: the client may speak nothing
/// else), served by hyper's HTTP/1 connection alone as plain HTTP/1 is;
/// `h2` and no ALPN at all keep hyper-util's detection (a client without
/// ALPN may still open with the HTTP/2 preface, as before).
fn tls_proto(alpn: Option<&[u8]>) -> Proto {
    match alpn {
        Some(b"http/1.1") => Proto::Http1,
        _ => Proto::Auto,
    }
}

/// PROXY header, first bytes or TLS handshake, each within
/// `header_read_timeout`; None when the connection is to be closed.
async fn start(
    inner: &Arc<Inner>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
) -> Option<Started> {
    let local = stream.local_addr().ok()?;
    // Small responses go out at once (no Nagle delay behind a delayed ACK).
    let _ = stream.set_nodelay(true);
    let header_timeout = limits.header_read_timeout;

    let (io, peer, client_unknown) = if limits.proxy_protocol {
        // Only a load balancer in trusted_proxies may declare a client
        // address (SPEC 6.1). Every connection on this listener needs a
        // PROXY header, so any other peer is closed before a byte of it is
        // read: whatever it sends, it can be neither believed nor served.
        let metrics = &inner.shared.metrics;
        let trusted = {
            let gw = inner.current();
            crate::peer::ip_is_trusted(&gw.settings.server.trusted_proxies, peer.ip())
        };
        if !trusted {
            metrics.record_proxy_protocol_rejected(ProxyRejection::UntrustedPeer);
            tracing::debug!(client.ip = %peer.ip().to_canonical(), "connection from a peer not in trusted_proxies on a proxy_protocol listener; closing");
            return None;
        }
        let read = proxy_protocol::read_header(stream);
        match tokio::time::timeout(header_timeout, read).await {
            // A header without a client address (v1 UNKNOWN, v2 LOCAL, v2
            // UNSPEC/AF_UNIX): the balancer's health check, or a relayed
            // client it cannot name (HAProxy sends LOCAL for one that came
            // over a Unix socket). The TCP peer stays the client address,
            // but whoever wrote the HTTP headers is unknown: never trusted.
            Ok(Ok((io, source))) => (io, source.unwrap_or(peer), source.is_none()),
            Ok(Err(e)) => {
                metrics.record_proxy_protocol_rejected(ProxyRejection::InvalidHeader);
                tracing::debug!(client.ip = %peer.ip(), error = %e, "PROXY header refused; closing");
                return None;
            }
            Err(_) => {
                metrics.record_proxy_protocol_rejected(ProxyRejection::InvalidHeader);
                tracing::debug!(client.ip = %peer.ip(), "no PROXY header within header_read_timeout; closing");
                return None;
            }
        }
    } else {
        (Prefixed::new(stream, Bytes::new()), peer, false)
    };
    let info = |tls| {
        let mut info = ConnInfo::new(peer, local, tls);
        info.client_unknown = client_unknown;
        info
    };

    match inner.tls_config() {
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(header_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => Some(Started::Tls(Box::new(tls), info(true))),
                Ok(Err(e)) => {
                    tracing::debug!(client.ip = %peer.ip(), error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(client.ip = %peer.ip(), "TLS handshake timed out");
                    None
                }
            }
        }
        None => {
            // A client that connects and sends nothing is cut like a slow
            // one; the first bytes choose HTTP/1 or HTTP/2.
            let sniffed = tokio::time::timeout(header_timeout, io.sniff()).await;
            let info = info(false);
            match sniffed {
                Ok(Ok(Sniffed::Http1)) => Some(Started::Http1(io, info)),
                Ok(Ok(Sniffed::Http2)) => Some(Started::Plain(io, info)),
                _ => None,
            }
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
pub(super) struct Builders(std::sync::RwLock<Option<(Limits, Built)>>);

#[derive(Clone)]
struct Built {
    auto: Arc<auto::Builder<TokioExecutor>>,
    http1: Arc<hyper::server::conn::http1::Builder>,
}

impl Builders {
    fn built(&self, limits: Limits) -> Built {
        if let Some((cached, b)) = &*self.0.read().unwrap_or_else(|e| e.into_inner()) {
            if *cached == limits {
                return b.clone();
            }
        }
        let built = Built {
            auto: Arc::new(builder(limits)),
            http1: Arc::new(http1_builder(limits)),
        };
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some((limits, built.clone()));
        built
    }

    fn get(&self, limits: Limits) -> Arc<auto::Builder<TokioExecutor>> {
        self.built(limits).auto
    }

    fn http1(&self, limits: Limits) -> Arc<hyper::server::conn::http1::Builder> {
        self.built(limits).http1
    }
}

/// hyper's HTTP/1 builder, configured as [`builder`]'s HTTP/1 side.
fn http1_builder(server: Limits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(None)
        .max_buf_size(server.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
}

/// The hyper-util builder for one connection with the configured limits.
fn builder(server: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // HTTP/1.1: a request head larger than the read buffer is answered 431 by
    // hyper itself (tests/it/server.rs pins that). hyper's minimum buffer is
    // 8 KiB, so smaller limits act as 8 KiB on HTTP/1.1.
    // No hyper header timer (one per request): the thread's watchdog
    // enforces header_read_timeout.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(server.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// One request being handled (until its response head is produced).
struct InFlight(Arc<Watched>);

impl InFlight {
    fn new(w: &Arc<Watched>) -> Self {
        w.request_started();
        InFlight(w.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_answered();
    }
}

async fn serve_http<I>(
    inner: Arc<Inner>,
    io: I,
    info: ConnInfo,
    server: Limits,
    watchdog: &Watchdog,
    proto: Proto,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watched = Arc::new(Watched::new());
    let io = TokioIo::new(Tracked {
        inner: io,
        watched: watched.clone(),
        start: Start::default(),
        frames: None,
    });
    let peer_ip = info.peer.ip();
    let service = {
        let inner = inner.clone();
        let watched = watched.clone();
        let generation = ConnGateway::new(&inner);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let gw = generation.current(&inner);
            let guard = InFlight::new(&watched);
            let fut = dispatch(&inner, gw, req, info.clone());
            async move {
                let res = fut.await;
                drop(guard);
                Ok::<_, Infallible>(res)
            }
        })
    };
    watchdog.watch(
        &watched,
        watchdog::Limits {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
        },
    );
    // Drain after a shutdown that began before the watchdog could tell us.
    let draining = *inner.stop.borrow();
    match proto {
        Proto::Http1 => {
            let conn = inner
                .builders
                .http1(server)
                .serve_connection(io, service)
                .with_upgrades();
            drive(conn, &watched, draining, peer_ip, |c| c.graceful_shutdown()).await;
        }
        // Boxed: hyper-util's connection (HTTP/1.1 or HTTP/2) is more than
        // twice the size of hyper's HTTP/1 one, and only HTTP/2 and TLS
        // connections need it. It is not `Unpin`: pinned in the box.
        Proto::Auto => {
            Box::pin(async move {
                let builder = inner.builders.get(server);
                let conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, service));
                drive(conn, &watched, draining, peer_ip, |c| {
                    c.get_mut().as_mut().graceful_shutdown()
                })
                .await;
            })
            .await;
        }
    }
}

/// Serves `conn` until it ends or the watchdog closes it; `draining`: close
/// gracefully from the start.
///
/// A plain struct, not an `async fn`: an `async fn` keeps its argument and
/// the pinned local it is moved into as two slots, and hyper's connection
/// (with its buffers' handles and the IO) would be held twice by every idle
/// connection's task.
fn drive<C, G>(
    mut conn: C,
    watched: &Watched,
    draining: bool,
    peer_ip: std::net::IpAddr,
    mut graceful_shutdown: G,
) -> Drive<'_, C, G>
where
    C: Unpin,
    G: FnMut(Pin<&mut C>),
{
    if draining {
        graceful_shutdown(Pin::new(&mut conn));
    }
    Drive {
        conn,
        watched,
        graceful: draining,
        registered: None,
        peer_ip,
        graceful_shutdown,
    }
}

/// [`drive`]'s future.
struct Drive<'w, C, G> {
    conn: C,
    watched: &'w Watched,
    /// `graceful_shutdown` was called.
    graceful: bool,
    /// The waker the watchdog holds, and the order it was registered at.
    registered: Option<(std::task::Waker, u8)>,
    peer_ip: std::net::IpAddr,
    graceful_shutdown: G,
}

impl<C, E, G> std::future::Future for Drive<'_, C, G>
where
    C: std::future::Future<Output = Result<(), E>> + Unpin,
    E: std::fmt::Display,
    G: FnMut(Pin<&mut C>) + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.watched.order(cx.waker(), &mut this.registered) {
            watchdog::CLOSE_NOW => {
                tracing::debug!(client.ip = %this.peer_ip, "connection closed by its timeout");
                return Poll::Ready(());
            }
            watchdog::CLOSE_GRACEFULLY if !this.graceful => {
                this.graceful = true;
                (this.graceful_shutdown)(Pin::new(&mut this.conn));
            }
            _ => {}
        }
        match Pin::new(&mut this.conn).poll(cx) {
            Poll::Ready(Err(e)) => {
                tracing::debug!(client.ip = %this.peer_ip, error = %e, "connection ended with an error");
                Poll::Ready(())
            }
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The config generation a connection's requests use, re-taken only when a
/// reload changed it. Each request clones the connection's own handle
/// ([`GatewayRef`]), a count no other thread touches; the shared lock and
/// count are touched once per connection and reload.
struct ConnGateway(std::cell::RefCell<(u64, GatewayRef)>);

impl ConnGateway {
    fn new(inner: &Inner) -> ConnGateway {
        let number = inner.generation_number();
        ConnGateway(std::cell::RefCell::new((number, Arc::new(inner.current()))))
    }

    fn current(&self, inner: &Inner) -> GatewayRef {
        let mut held = self.0.borrow_mut();
        // The number first: a generation taken after reading it is at
        // least that new, so a reload in between is seen at the next request.
        let number = inner.generation_number();
        if held.0 != number {
            *held = (number, Arc::new(inner.current()));
        }
        held.1.clone()
    }
}

/// `GET /.auth/health`'s answer (before routing, any Host: `health`), else
/// `handler::handle`'s future boxed in place, or the test stand-in.
#[allow(clippy::type_complexity)]
fn dispatch(
    inner: &Inner,
    gw: GatewayRef,
    req: Request<Incoming>,
    info: ConnInfo,
) -> Either<
    Either<Pin<Box<impl std::future::Future<Output = Response<Body>>>>, TestFuture>,
    std::future::Ready<Response<Body>>,
> {
    // Ambiguous framing goes on to the handler's refusal (400), as on every
    // other path: the health answer never reads a body a proxy in front might
    // frame differently.
    if req.uri().path() == super::health::HEALTH_PATH
        && crate::handler::check_framing(req.headers(), gw.settings.server.max_header_bytes).is_ok()
    {
        if let Some(res) = super::health::answer(&req, inner.health_state()) {
            return Either::Right(std::future::ready(res));
        }
    }
    #[cfg(test)]
    if let Some(h) = &inner.test_handler {
        return Either::Left(Either::Right(h(Arc::clone(&*gw), req, info)));
    }
    #[cfg(not(test))]
    if let Some(never) = &inner.test_handler {
        match *never {}
    }
    Either::Left(Either::Left(boxed_in_place(|| {
        crate::handler::handle(gw, req, info)
    })))
}

/// Boxes the future `make` returns, built straight in its heap slot.
///
/// A request's future is a few KiB (routing, sign-in, the upstream
/// exchange), and hyper moves the future it is given a few times per
/// request. Boxed, only a pointer moves. `Box::pin(make())` would build the
/// whole future on the stack and copy all of it into the box; allocating
/// first lets the compiler write it in place (measured: the copies were
/// about 2 % of the CPU per request).
fn boxed_in_place<F>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    let slot = Box::<F>::new_uninit();
    Box::into_pin(Box::write(slot, make()))
}

/// The most bytes [`Tracked`] joins into one write.
const COALESCE_MAX: usize = 4096;

thread_local! {
    /// [`Tracked`]'s join buffer, one per proxy thread.
    static COALESCE: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(COALESCE_MAX));
}

/// Tells the watchdog whenever bytes move.
struct Tracked<I> {
    inner: I,
    watched: Arc<Watched>,
    /// The first bytes read, until they say whether this is HTTP/2.
    start: Start,
    /// HTTP/2: where the client's bytes stand, frame by frame.
    frames: Option<Box<H2Frames>>,
}

/// A connection's first bytes, kept until they tell HTTP/2's preface
/// ("PRI ") from HTTP/1.
#[derive(Default)]
struct Start {
    bytes: [u8; 4],
    seen: usize,
    decided: bool,
}

impl Start {
    /// Takes the next bytes read; true once they make "PRI ", the moment
    /// the connection is known to be HTTP/2.
    fn push(&mut self, got: &[u8]) -> bool {
        let take = (self.bytes.len() - self.seen).min(got.len());
        self.bytes[self.seen..self.seen + take].copy_from_slice(&got[..take]);
        self.seen += take;
        let start = &self.bytes[..self.seen];
        if !proxy_protocol::looks_like_h2(start) {
            self.decided = true;
            return false;
        }
        self.decided = self.seen == self.bytes.len();
        self.decided
    }
}

/// Follows an HTTP/2 client's bytes frame by frame (RFC 9113 3.4, 4.1) to
/// tell the watchdog what the client leaves unfinished: hyper's HTTP/2
/// connection has no timer of its own for a request head, and a client
/// that sends a frame one byte at a time keeps both of the watchdog's other
/// clocks (idle, in-flight) from ever running out. Only lengths, types and
/// flags are read; hyper (h2) checks everything else.
#[derive(Default)]
pub(super) struct H2Frames {
    /// Bytes of the connection preface still to come.
    preface: usize,
    /// The frame header being read, and how much of it arrived.
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to come.
    payload: u32,
    /// The current frame's type.
    kind: u8,
    /// A HEADERS frame without END_HEADERS was read: its CONTINUATION
    /// frames are still to come.
    block_open: bool,
}

impl H2Frames {
    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const CONTINUATION: u8 = 0x9;
    const END_HEADERS: u8 = 0x4;

    pub(super) fn new() -> H2Frames {
        H2Frames {
            preface: super::proxy_protocol::H2_PREFACE_LEN,
            ..H2Frames::default()
        }
    }

    /// Reads `bytes`; answers whether a frame ended in them, and what is
    /// left unfinished (`watchdog::H2_*`).
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> (bool, u8) {
        let mut completed = false;
        while !bytes.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(bytes.len());
                self.preface -= n;
                bytes = &bytes[n..];
                completed |= self.preface == 0;
            } else if self.payload > 0 {
                let n = (self.payload as usize).min(bytes.len());
                self.payload -= n as u32;
                bytes = &bytes[n..];
                completed |= self.payload == 0;
            } else {
                let n = (9 - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 9 {
                    self.have = 0;
                    let h = self.header;
                    self.payload = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                    self.kind = h[3];
                    let flags = h[4];
                    match self.kind {
                        Self::HEADERS => self.block_open = flags & Self::END_HEADERS == 0,
                        Self::CONTINUATION if flags & Self::END_HEADERS != 0 => {
                            self.block_open = false;
                        }
                        _ => {}
                    }
                    completed |= self.payload == 0;
                }
            }
        }
        let waiting = if self.preface > 0 || self.have > 0 || self.block_open {
            watchdog::H2_HEAD
        } else if self.payload == 0 {
            watchdog::H2_NOTHING
        } else if self.kind == Self::DATA {
            watchdog::H2_BODY
        } else {
            watchdog::H2_HEAD
        };
        (completed, waiting)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = &buf.filled()[before..];
        if !got.is_empty() {
            if !self.start.decided {
                // The same test as the sniffing of plain connections; here it
                // also covers TLS, whose first decrypted bytes it sees. Only
                // the whole "PRI " decides: a TLS client can send "P" alone
                // in its first record, and an HTTP/1 connection taken for
                // HTTP/2 would escape the head timeout.
                let earlier = self.start.seen;
                if self.start.push(got) {
                    self.watched.set_h2();
                    let mut frames = H2Frames::new();
                    frames.feed(&self.start.bytes[..earlier]);
                    self.frames = Some(Box::new(frames));
                }
            }
            let got = &buf.filled()[before..];
            if let Some(frames) = self.frames.as_mut() {
                let (completed, waiting) = frames.feed(got);
                self.watched.h2_frames(completed, waiting);
            }
            self.watched.bytes_read();
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
            self.watched.bytes_written();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper hands a response's head and body as separate slices. When
        // they are small, one plain write of a copy costs the kernel less
        // than a writev of several (docs/benchmarks.md); a partial write
        // means the same as writev's. Larger ones go out as they are.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.len() > 1 && total <= COALESCE_MAX {
            let joined = COALESCE.try_with(|joined| {
                let mut joined = joined.borrow_mut();
                joined.clear();
                for b in bufs {
                    joined.extend_from_slice(b);
                }
                self.as_mut().poll_write(cx, &joined)
            });
            // Only a thread being torn down has no buffer: write as given.
            if let Ok(res) = joined {
                return res;
            }
        }
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watched.bytes_written();
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

#[cfg(test)]
mod tests;
