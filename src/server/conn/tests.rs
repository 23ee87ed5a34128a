//! `Tracked`'s writes: small vectored writes joined into one plain write,
//! with writev's meaning for partial writes; larger ones passed through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::noop_waker_ref;
use tokio::io::AsyncWrite;

use super::{H2Frames, Start, Tracked, COALESCE_MAX};
use crate::server::watchdog::{Watched, H2_BODY, H2_HEAD, H2_NOTHING};

/// One call the transport saw.
#[derive(Debug, PartialEq)]
enum Call {
    Write(Vec<u8>),
    Writev(Vec<Vec<u8>>),
}

/// A transport that records its calls and takes at most `take` bytes each.
struct Recorder {
    calls: Vec<Call>,
    take: usize,
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.take);
        self.calls.push(Call::Write(buf[..n].to_vec()));
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = bufs.iter().map(|b| b.len()).sum::<usize>().min(self.take);
        self.calls
            .push(Call::Writev(bufs.iter().map(|b| b.to_vec()).collect()));
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn tracked(take: usize) -> Tracked<Recorder> {
    Tracked {
        inner: Recorder {
            calls: Vec::new(),
            take,
        },
        watched: Arc::new(Watched::new()),
        start: Start::default(),
        frames: None,
    }
}

fn writev(t: &mut Tracked<Recorder>, parts: &[&[u8]]) -> usize {
    let bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut cx = Context::from_waker(noop_waker_ref());
    match Pin::new(t).poll_write_vectored(&mut cx, &bufs) {
        Poll::Ready(Ok(n)) => n,
        other => panic!("the recorder is always ready, got {other:?}"),
    }
}

#[test]
fn a_small_head_and_body_go_out_in_one_plain_write_in_order() {
    let mut t = tracked(usize::MAX);
    let n = writev(&mut t, &[b"HTTP/1.1 200 OK\r\n\r\n", b"", b"hello"]);
    assert_eq!(n, 24);
    assert_eq!(
        t.inner.calls,
        vec![Call::Write(b"HTTP/1.1 200 OK\r\n\r\nhello".to_vec())]
    );
}

#[test]
fn a_partial_write_counts_bytes_of_the_slices_in_order_like_writev() {
    // The transport takes 7 bytes: they are the first 7 of the slices
    // joined, so the caller advances its slices by 7 as after a writev.
    let mut t = tracked(7);
    assert_eq!(writev(&mut t, &[b"abcd", b"efgh", b"ij"]), 7);
    assert_eq!(t.inner.calls, vec![Call::Write(b"abcdefg".to_vec())]);
    // The next call (what is left) is joined again, from a clean buffer.
    assert_eq!(writev(&mut t, &[b"h", b"ij"]), 3);
    assert_eq!(t.inner.calls[1], Call::Write(b"hij".to_vec()));
}

#[test]
fn exactly_the_limit_is_joined_one_byte_more_is_passed_through() {
    let head = vec![b'h'; 100];
    let body = vec![b'b'; COALESCE_MAX - 100];
    let mut t = tracked(usize::MAX);
    assert_eq!(writev(&mut t, &[&head, &body]), COALESCE_MAX);
    assert_eq!(
        t.inner.calls,
        vec![Call::Write([head.clone(), body].concat())]
    );

    let body = vec![b'b'; COALESCE_MAX - 99];
    let mut t = tracked(usize::MAX);
    assert_eq!(writev(&mut t, &[&head, &body]), COALESCE_MAX + 1);
    assert_eq!(t.inner.calls, vec![Call::Writev(vec![head, body])]);
}

#[test]
fn a_single_slice_is_passed_through_without_a_copy() {
    let mut t = tracked(usize::MAX);
    assert_eq!(writev(&mut t, &[b"one slice"]), 9);
    assert_eq!(
        t.inner.calls,
        vec![Call::Writev(vec![b"one slice".to_vec()])]
    );
}

#[test]
fn a_large_body_leaves_the_join_buffer_small() {
    // A download's big chunks never pass through the per-thread buffer, so
    // it does not grow past COALESCE_MAX.
    let mut t = tracked(usize::MAX);
    let big = vec![0u8; 1 << 20];
    writev(&mut t, &[b"head", &big]);
    writev(&mut t, &[b"a", b"b"]);
    let cap = super::COALESCE.with(|b| b.borrow().capacity());
    assert!(cap <= COALESCE_MAX, "join buffer grew to {cap}");
}

/// An HTTP/2 frame: 9-byte header, then `len` payload bytes of zeros.
fn frame(kind: u8, flags: u8, stream: u32, len: usize) -> Vec<u8> {
    let mut f = (len as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.resize(9 + len, 0);
    f
}

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn http2_frames_left_unfinished_are_told_apart_however_the_bytes_are_cut() {
    let settings = frame(0x4, 0, 0, 6);
    let headers_open = frame(0x1, 0x1, 1, 20); // END_STREAM, no END_HEADERS
    let continuation_end = frame(0x9, 0x4, 1, 5);
    let data = frame(0x0, 0x1, 1, 100);
    let mut all = PREFACE.to_vec();
    all.extend(&settings);
    let after_settings = all.len();
    all.extend(&headers_open);
    let after_headers = all.len();
    all.extend(&continuation_end);
    let after_block = all.len();
    all.extend(&data);
    // Whatever the reads, the state after each byte is what the frames say.
    for chunk in [1, 2, 7, 9, 10, 64, all.len()] {
        let mut f = H2Frames::new();
        let mut fed = 0;
        for piece in all.chunks(chunk) {
            let (_, waiting) = f.feed(piece);
            fed += piece.len();
            let whole = [PREFACE.len(), after_settings, after_block, all.len()];
            let want = if whole.contains(&fed) {
                H2_NOTHING
            } else if fed >= after_block + 9 {
                H2_BODY
            } else {
                // The preface, frame headers (the DATA frame's too), the
                // HEADERS payload, the open block before its CONTINUATION.
                H2_HEAD
            };
            assert_eq!(waiting, want, "chunk {chunk}, after {fed} bytes");
        }
        assert_eq!(fed, all.len());
    }
    // Between a HEADERS frame without END_HEADERS and its CONTINUATION the
    // head is unfinished, though every frame so far is whole.
    let mut f = H2Frames::new();
    let mut open = PREFACE.to_vec();
    open.extend(&headers_open);
    assert_eq!(f.feed(&open), (true, H2_HEAD));
    assert_eq!(f.feed(&continuation_end), (true, H2_NOTHING));
    assert!(after_headers > after_settings);
}

#[test]
fn a_frame_sent_one_byte_at_a_time_completes_nothing_until_its_last_byte() {
    let mut f = H2Frames::new();
    let mut start = PREFACE.to_vec();
    start.extend(frame(0x4, 0, 0, 0));
    assert_eq!(f.feed(&start), (true, H2_NOTHING));
    // A HEADERS frame declared 16000 bytes long.
    let big = frame(0x1, 0x5, 1, 16000);
    assert_eq!(f.feed(&big[..9]), (false, H2_HEAD));
    for b in &big[9..big.len() - 1] {
        assert_eq!(f.feed(std::slice::from_ref(b)), (false, H2_HEAD));
    }
    assert_eq!(f.feed(&big[big.len() - 1..]), (true, H2_NOTHING));
    // Frames of an unknown type are ignored by h2, but unfinished they hold
    // the connection as well.
    let unknown = frame(0xfa, 0, 0, 100);
    assert_eq!(f.feed(&unknown[..50]), (false, H2_HEAD));
}

#[test]
fn only_a_whole_h2_preface_start_makes_a_connection_http2() {
    // A TLS client can put "P" alone in its first record: the connection is
    // not HTTP/2 until "PRI " is there (else HTTP/1 would escape the head
    // timeout), and HTTP/1 once the bytes differ.
    let mut s = Start::default();
    assert!(!s.push(b"P") && !s.decided);
    assert!(!s.push(b"R") && !s.decided);
    assert!(!s.push(b"OPFIND / HTTP/1.1\r\n"));
    assert!(s.decided, "PROPFIND is HTTP/1");
    let mut s = Start::default();
    assert!(!s.push(b"PR"));
    assert!(s.push(b"I * HTTP/2.0\r\n"), "the preface, cut anywhere");
    let mut s = Start::default();
    assert!(!s.push(b"GET / HTTP/1.1\r\n") && s.decided);
    let mut s = Start::default();
    assert!(s.push(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
}
