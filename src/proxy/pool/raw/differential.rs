//! Differential fuzzing of the own upstream response reader against hyper's
//! HTTP/1 client (`realmgate::fuzzing::upstream_differential`).
//!
//! The same response bytes, cut into the same reads, go to both: to the
//! own reader through the functions `RawConn::exchange` and `RawBody` use
//! (`next_head`, `decode`, `Head::reuse`), and to hyper's
//! `client::conn::http1` over an in-memory connection. Both run to the end
//! of the message or until they wait for bytes that will never come; each
//! outcome is an [`Outcome`], and [`compare`] fails on a disagreement about
//! what matters for framing: accepted or refused, status, body bytes, where
//! the message ends, whether the connection may carry another request.
//!
//! The own reader may be stricter than hyper (refuse what hyper accepts),
//! but only for the reasons in [`STRICTER`], each a deliberate rule; it may
//! never accept what hyper refuses, never end a message elsewhere, never
//! deliver other body bytes, and never reuse a connection hyper would not.
//!
//! hyper is driven without a runtime or timers: every future is polled by
//! hand with a waker that only records that it was woken. The in-memory
//! connection never wakes anyone once its bytes are used up, so a round of
//! polls in which nothing woke means both sides wait for input that will
//! not come: deterministic, and no timeout decides anything.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, StatusCode};
use http_body::Body as _;
use http_body_util::Empty;

use super::codec::{decode, is_interim, next_head, Framing, Step, MAX_HEADERS};
use super::RawError;

/// Own refusals of responses hyper accepts, each on purpose (the exact
/// texts of `RawError::Protocol`):
/// - a response head over 64 KiB (hyper: about 400 KiB);
/// - a `Content-Length` of 20 digits or more (hyper: up to 2^64 - 1);
/// - a chunk-size line over 4 KiB, trailers over 8 KiB (hyper: 16 KiB), or
///   chunk extensions over 4 KiB in one body (hyper: 16 KiB);
/// - control characters in a chunk extension (hyper: all but CR and LF);
/// - a bare LF ending a trailer line (hyper reads the trailer section with
///   httparse, which takes LF alone as a line end; a bare LF is a classic
///   smuggling ingredient);
/// - `Transfer-Encoding` whose last element is empty or not visible ASCII
///   (hyper reads that as "not chunked"; refused rather than guessed).
pub(crate) const STRICTER: &[&str] = &[
    "response head too large",
    "Content-Length too large",
    "chunk line or trailers too long",
    "chunk extensions too long",
    "invalid chunk extension",
    "bare LF in chunked body",
    "invalid Transfer-Encoding",
];

/// What one side made of a response stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Refused (an invalid head or body, or the stream ended inside it);
    /// `body` is what was delivered before.
    Rejected { reason: String, body: Vec<u8> },
    /// Still waiting for bytes (the stream stays open).
    Incomplete { status: Option<u16>, body: Vec<u8> },
    /// A whole response; `reuse`: the connection may carry another request.
    Complete {
        status: u16,
        body: Vec<u8>,
        reuse: bool,
    },
}

/// Fuzzing entry. `data[0]`: bits 0-1 the request method (GET, HEAD,
/// DELETE, OPTIONS), bit 2 set when the upstream closes after the bytes
/// (else it keeps the connection open), bits 3-7 the size of each read
/// (0: all at once). The rest is the response stream.
pub(crate) fn fuzz(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let method = [Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS]
        [usize::from(control & 3)]
    .clone();
    let eof = control & 4 != 0;
    let piece = match usize::from(control >> 3) {
        0 => stream.len().max(1),
        n => n,
    };
    let own = own(&method, stream, piece, eof);
    let theirs = hyper(&method, stream, piece, eof);
    if let Err(why) = compare(&own, &theirs) {
        panic!(
            "own reader and hyper disagree: {why}\nmethod {method}, eof {eof}, reads of {piece}\nown:   {own:?}\nhyper: {theirs:?}\nstream: {:?}",
            String::from_utf8_lossy(stream)
        );
    }
}

/// Checks `own` against `hyper` (see the module docs).
pub(crate) fn compare(own: &Outcome, hyper: &Outcome) -> Result<(), String> {
    use Outcome::{Complete, Incomplete, Rejected};
    // Whatever happened, the body bytes the own reader delivered are the
    // ones hyper delivered, or the start of them.
    let body_of = |o: &Outcome| match o {
        Rejected { body, .. } | Incomplete { body, .. } | Complete { body, .. } => body.clone(),
    };
    let (own_body, hyper_body) = (body_of(own), body_of(hyper));
    let prefix = |a: &[u8], b: &[u8]| a.len() <= b.len() && a == &b[..a.len()];
    match (own, hyper) {
        (
            Complete {
                status: s1,
                reuse: r1,
                ..
            },
            Complete {
                status: s2,
                reuse: r2,
                ..
            },
        ) => {
            if s1 != s2 {
                return Err(format!("status {s1} != {s2}"));
            }
            if own_body != hyper_body {
                return Err("different bodies".into());
            }
            // Not reusing is always safe; reusing where hyper would not is not.
            if *r1 && !*r2 {
                return Err("own reuses a connection hyper would not".into());
            }
            Ok(())
        }
        (
            Complete {
                status: 101, reuse, ..
            },
            _,
        ) => {
            // 101 ends HTTP on the connection (hyper treats it as an
            // upgrade); nothing more is framed. It must not be reused.
            if *reuse {
                return Err("a 101 connection reused".into());
            }
            Ok(())
        }
        (Complete { .. }, Rejected { .. }) => Err("own accepts what hyper refuses".into()),
        (Complete { .. }, Incomplete { .. }) => {
            Err("own ends the message where hyper waits for more".into())
        }
        (Incomplete { .. }, Complete { .. }) => {
            Err("own waits for more where hyper ended the message".into())
        }
        (Rejected { reason, .. }, Complete { .. }) => {
            if !STRICTER.contains(&reason.as_str()) {
                return Err(format!(
                    "own refuses ({reason}) what hyper accepts, and that is not a documented strictness"
                ));
            }
            if !prefix(&own_body, &hyper_body) {
                return Err("own delivered body bytes hyper did not".into());
            }
            Ok(())
        }
        (Incomplete { status: s1, .. }, Incomplete { status: s2, .. }) => {
            if let (Some(a), Some(b)) = (s1, s2) {
                if a != b {
                    return Err(format!("status {a} != {b}"));
                }
            }
            if !(prefix(&own_body, &hyper_body) || prefix(&hyper_body, &own_body)) {
                return Err("different bodies".into());
            }
            Ok(())
        }
        // Refused, or waiting where the other refused: nothing was accepted.
        (Rejected { .. } | Incomplete { .. }, Rejected { .. } | Incomplete { .. }) => {
            if !(prefix(&own_body, &hyper_body) || prefix(&hyper_body, &own_body)) {
                return Err("different bodies".into());
            }
            Ok(())
        }
    }
}

fn rejected(e: &RawError, body: Vec<u8>) -> Outcome {
    let reason = match e {
        RawError::Protocol(why) => (*why).to_string(),
        other => other.to_string(),
    };
    Outcome::Rejected { reason, body }
}

/// The own reader over `stream`, read `piece` bytes at a time, as
/// `RawConn::exchange` and `RawBody` do it.
pub(crate) fn own(method: &Method, stream: &[u8], piece: usize, eof: bool) -> Outcome {
    let head_only = *method == Method::HEAD;
    let mut pieces = stream.chunks(piece.max(1));
    let mut buf = BytesMut::new();
    // The head: `exchange` skips interim (1xx) responses.
    let head = loop {
        match next_head(&mut buf, head_only) {
            Ok(Some(head)) if is_interim(head.response.status()) => continue,
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(e) => return rejected(&e, Vec::new()),
        }
        match pieces.next() {
            Some(p) => buf.extend_from_slice(p),
            None if eof => return rejected(&RawError::Closed, Vec::new()),
            None => {
                return Outcome::Incomplete {
                    status: None,
                    body: Vec::new(),
                }
            }
        }
    };
    let status = head.response.status().as_u16();
    let mut reuse = head.reuse();
    let mut framing = head.framing;
    let mut body = Vec::new();
    // The body: `RawBody::poll_frame`.
    loop {
        match decode(&mut framing, &mut buf) {
            Ok(Step::Data(data, end)) => {
                body.extend_from_slice(&data);
                if end {
                    break;
                }
            }
            Ok(Step::End) => break,
            Ok(Step::NeedMore) => match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None if eof && framing == Framing::UntilClose => {
                    reuse = false;
                    break;
                }
                None if eof => {
                    return rejected(
                        &RawError::Protocol("connection closed inside the body"),
                        body,
                    )
                }
                None => {
                    return Outcome::Incomplete {
                        status: Some(status),
                        body,
                    }
                }
            },
            Err(e) => return rejected(&e, body),
        }
    }
    // Back in the pool, `RawConn::reusable` keeps the connection only when
    // nothing is left over and nothing (no bytes, no close) arrived since.
    let quiet = buf.is_empty() && pieces.next().is_none() && !eof;
    Outcome::Complete {
        status,
        body,
        reuse: reuse && quiet,
    }
}

/// Records that a future asked to be polled again.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The upstream's side of an in-memory connection: accepts the request,
/// then serves `data` in reads of at most `piece` bytes, then EOF (`eof`)
/// or nothing ever again.
struct Wire {
    data: Vec<u8>,
    at: usize,
    piece: usize,
    eof: bool,
    request: Vec<u8>,
    /// The request head is complete: the upstream answers only then.
    asked: bool,
    reader: Option<Waker>,
}

impl hyper::rt::Read for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.asked {
            self.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let left = self.data.len() - self.at;
        if left == 0 {
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            // Never woken again: the bytes are all there is.
            return Poll::Pending;
        }
        let n = left.min(self.piece).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.request.extend_from_slice(buf);
        if !self.asked && self.request.windows(4).any(|w| w == b"\r\n\r\n") {
            self.asked = true;
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Poll rounds after which hyper is taken to loop forever (each round
/// without progress ends the run; progress is bounded by the input size).
const MAX_ROUNDS: usize = 1_000_000;

/// hyper's HTTP/1 client over `stream`, read `piece` bytes at a time.
pub(crate) fn hyper(method: &Method, stream: &[u8], piece: usize, eof: bool) -> Outcome {
    let woken = Arc::new(Woken(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let wire = Wire {
        data: stream.to_vec(),
        at: 0,
        piece: piece.max(1),
        eof,
        request: Vec::new(),
        asked: false,
        reader: None,
    };
    // The own reader's header-count limit, so a different limit is not
    // reported as a framing disagreement.
    let mut builder = hyper::client::conn::http1::Builder::new();
    builder.max_headers(MAX_HEADERS);
    let mut handshake = std::pin::pin!(builder.handshake::<_, Empty<Bytes>>(wire));
    let (mut sender, conn) = match handshake.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(pair)) => pair,
        Poll::Ready(Err(e)) => panic!("hyper handshake failed: {e}"),
        Poll::Pending => panic!("hyper handshake does no I/O, yet waited"),
    };
    let mut conn = std::pin::pin!(conn);
    let mut conn_done = false;
    let request = Request::builder()
        .method(method.clone())
        .uri("/")
        .header(http::header::HOST, "upstream.test")
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let mut response = std::pin::pin!(sender.send_request(request));
    let mut rounds = 0usize;
    let mut round = |woken: &Woken| {
        rounds += 1;
        assert!(rounds < MAX_ROUNDS, "hyper never settles");
        woken.0.store(false, Ordering::SeqCst);
    };

    let head = loop {
        round(&woken);
        if !conn_done {
            conn_done = conn.as_mut().poll(&mut cx).is_ready();
        }
        match response.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => break r,
            Poll::Ready(Err(e)) => {
                return Outcome::Rejected {
                    reason: e.to_string(),
                    body: Vec::new(),
                }
            }
            Poll::Pending => {}
        }
        if !woken.0.load(Ordering::SeqCst) {
            return Outcome::Incomplete {
                status: None,
                body: Vec::new(),
            };
        }
    };
    let status = head.status();
    let mut incoming = head.into_body();
    let mut body = Vec::new();
    loop {
        round(&woken);
        if !conn_done {
            conn_done = conn.as_mut().poll(&mut cx).is_ready();
        }
        match Pin::new(&mut incoming).poll_frame(&mut cx) {
            Poll::Ready(None) => break,
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
                continue;
            }
            Poll::Ready(Some(Err(e))) => {
                return Outcome::Rejected {
                    reason: e.to_string(),
                    body,
                }
            }
            Poll::Pending => {}
        }
        if !woken.0.load(Ordering::SeqCst) {
            return Outcome::Incomplete {
                status: Some(status.as_u16()),
                body,
            };
        }
    }
    // Let the connection settle after the message, then ask whether it
    // would take another request.
    loop {
        round(&woken);
        if conn_done {
            break;
        }
        conn_done = conn.as_mut().poll(&mut cx).is_ready();
        if !woken.0.load(Ordering::SeqCst) {
            break;
        }
    }
    let reuse = !conn_done
        && !sender.is_closed()
        && sender.is_ready()
        && status != StatusCode::SWITCHING_PROTOCOLS;
    Outcome::Complete {
        status: status.as_u16(),
        body,
        reuse,
    }
}

#[cfg(test)]
mod tests;
