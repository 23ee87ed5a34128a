//! `Tracked`'s writes: small vectored writes joined into one plain write,
//! with writev's meaning for partial writes; larger ones passed through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::noop_waker_ref;
use tokio::io::AsyncWrite;

use super::{Tracked, COALESCE_MAX};
use crate::server::watchdog::Watched;

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
        first_read: true,
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
