//! The upstream exchange for requests without a body (GET, HEAD and most
//! others): the request head written in one call, the response head parsed
//! with `httparse` (hyper's own parser) straight from the connection's read
//! buffer, the body decoded while it streams. No connection task, channels
//! or per-request buffers: the request's task does all of it, and the
//! response's header values and small bodies are slices of the bytes read.
//!
//! This file is the I/O half (the socket, the read buffer, the response
//! body handed to the client); the wire format, with no I/O at all, is
//! [`codec`]. Any error fails the exchange and drops the connection, so a
//! confused upstream can never shift the next response on it.
//!
//! Requests with a body keep hyper's client (the upstream may answer before
//! it has read the body, which needs both directions at once); which
//! exchange serves a request is decided in one place,
//! [`crate::proxy::exchange`].

mod codec;

use std::io;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{Method, Response};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::Pool;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use codec::fuzz;
use codec::{decode, encode_head, is_interim, next_head, Framing, Head, Step};

/// Read granularity.
const READ_SIZE: usize = 8 * 1024;

/// Why a raw exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("upstream connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("the upstream closed the connection before its response")]
    Closed,
    #[error("invalid response from the upstream: {0}")]
    Protocol(&'static str),
}

/// One upstream connection and its read buffer.
pub(super) struct RawConn {
    stream: TcpStream,
    /// Bytes read and not yet handed out. Empty between exchanges.
    buf: BytesMut,
    /// The request head being written (kept for its capacity).
    out: Vec<u8>,
}

impl RawConn {
    pub(super) fn new(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            buf: BytesMut::new(),
            out: Vec::new(),
        }
    }

    /// Open and quiet right now: nothing left over from the last exchange,
    /// and nothing (no close, no stray bytes) arrived since. Costs no system
    /// call unless the event loop has seen the socket become readable.
    pub(super) fn reusable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: either the upstream closed (EOF) or it sent bytes
            // nobody asked for; both end the connection's use. A spurious
            // readiness reads WouldBlock and keeps it.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Send a request head (the request has no body) and read the response
    /// head. `Err((error, unanswered))`: `unanswered` is true when the
    /// request could not be written or the upstream closed before answering
    /// with a single byte (a GET or HEAD may then be tried again elsewhere).
    pub(super) async fn exchange(
        &mut self,
        parts: &http::request::Parts,
        extra: &[u8],
    ) -> Result<Head, (RawError, bool)> {
        self.out.clear();
        encode_head(parts, extra, &mut self.out);
        if let Err(e) = self.stream.write_all(&self.out).await {
            return Err((e.into(), true));
        }
        let head_only = parts.method == Method::HEAD;
        let mut interim = false;
        loop {
            let head = match self.read_head(head_only).await {
                Ok(head) => head,
                Err(RawError::Closed) if !interim => return Err((RawError::Closed, true)),
                Err(e) => return Err((e, false)),
            };
            // 1xx other than 101: interim (100 Continue, 103 Early Hints); the
            // final response follows on the same connection.
            if is_interim(head.response.status()) {
                interim = true;
                continue;
            }
            let mut head = head;
            if codec::asks_to_close(&parts.headers) {
                // The request said `Connection: close` (`proxy::forward`
                // sends it with connection-bound credentials): whatever the
                // upstream answers, the connection serves nobody after it.
                head.reusable = false;
            }
            return Ok(head);
        }
    }

    /// Read until a whole response head is buffered, then parse it.
    async fn read_head(&mut self, head_only: bool) -> Result<Head, RawError> {
        loop {
            if let Some(parsed) = next_head(&mut self.buf, head_only)? {
                return Ok(parsed);
            }
            let had = self.buf.len();
            let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 {
                return Err(if had == 0 {
                    RawError::Closed
                } else {
                    RawError::Protocol("connection closed inside the response head")
                });
            }
        }
    }

    /// Read what the socket has into the buffer; `Ok(0)` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }
}

/// A response body read from a [`RawConn`]; the connection goes back to the
/// pool once the body is complete (when the upstream keeps it alive). A body
/// dropped before its end drops the connection with it, which closes it
/// (the rest of the response is still on the wire).
pub(super) struct RawBody {
    conn: Option<RawConn>,
    framing: Framing,
    /// The body is complete (and the connection released or dropped).
    done: bool,
    reuse: bool,
    pool: Weak<Pool>,
}

impl RawBody {
    /// The response for the caller, with its body reading from `conn`.
    pub(super) fn response(conn: RawConn, head: Head, pool: Weak<Pool>) -> Response<RawBody> {
        let reuse = head.reuse();
        let Head {
            response, framing, ..
        } = head;
        let mut body = RawBody {
            conn: Some(conn),
            framing,
            done: false,
            reuse,
            pool,
        };
        if framing == Framing::Length(0) {
            body.finish();
        }
        response.map(|()| body)
    }

    /// The body is complete: hand the connection back (or close it).
    fn finish(&mut self) {
        self.done = true;
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.reuse {
            if let Some(pool) = self.pool.upgrade() {
                pool.put_back(conn);
            }
        }
    }

    fn fail(
        &mut self,
        e: RawError,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::respond::BoxError>>> {
        self.done = true;
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl http_body::Body for RawBody {
    type Data = Bytes;
    type Error = crate::respond::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match decode(&mut this.framing, &mut conn.buf) {
                Ok(Step::Data(data, end)) => {
                    if end {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => return this.fail(e),
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(e.into()),
                Poll::Ready(Ok(0)) => {
                    if this.framing == Framing::UntilClose {
                        this.reuse = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    return this.fail(RawError::Protocol("connection closed inside the body"));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            _ if self.done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod differential;
