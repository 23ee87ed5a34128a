//! W3C Trace Context (`traceparent`, `tracestate`): every request forwarded
//! upstream carries a `traceparent`, and the access log records it.
//!
//! A client's `traceparent` is propagated unchanged when it is exactly one
//! well-formed version-00 header (55 bytes: `00-<32 hex>-<16 hex>-<2 hex>`,
//! lowercase, neither id all zeros). Anything else (absent, repeated,
//! malformed, upper case, another version) starts a new trace: a random
//! trace id and parent id, flags `01` (sampled, what an OpenTelemetry SDK's
//! default parent-based sampler would have decided at the root), and the
//! client's `tracestate` is removed with it (it described the trace that
//! was not believed). So an upstream never sees a `traceparent` realmgate
//! did not check, and the value is always 55 visible ASCII bytes: safe in
//! a header and in a log line.
//!
//! Any client may choose its trace id (as with every proxy that propagates
//! trace context): it is used only to correlate logs and traces, never to
//! decide anything.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Length of a version-00 `traceparent`.
pub const LEN: usize = 55;

/// The trace context decided for one request.
#[derive(Debug, Clone)]
pub struct TraceParent {
    /// Always a valid version-00 `traceparent` of [`LEN`] bytes.
    pub value: HeaderValue,
    /// True when it is the client's, false when realmgate started it.
    pub propagated: bool,
}

impl TraceParent {
    /// The client's `traceparent` when it is exactly one valid header,
    /// else a new trace.
    pub fn of(headers: &HeaderMap) -> TraceParent {
        let mut all = headers.get_all(TRACEPARENT).iter();
        match (all.next(), all.next()) {
            (Some(v), None) if is_valid(v.as_bytes()) => TraceParent {
                value: v.clone(),
                propagated: true,
            },
            _ => TraceParent {
                value: new_traceparent(),
                propagated: false,
            },
        }
    }

    /// Sets the `traceparent` for the upstream; a started trace drops the
    /// client's `tracestate` too.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.propagated {
            headers.remove(TRACESTATE);
        }
        headers.insert(TRACEPARENT, self.value.clone());
    }
}

/// A well-formed version-00 `traceparent` (W3C Trace Context, level 1):
/// lowercase hex fields, trace id and parent id not all zeros.
pub fn is_valid(v: &[u8]) -> bool {
    if v.len() != LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return false;
    }
    let hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let zero = |s: &[u8]| s.iter().all(|b| *b == b'0');
    let (version, trace_id, parent_id, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    version == b"00"
        && hex(trace_id)
        && hex(parent_id)
        && hex(flags)
        && !zero(trace_id)
        && !zero(parent_id)
}

/// Trace contexts rendered per batch: one buffer per this many requests.
const PER_BATCH: usize = 32;

thread_local! {
    /// This thread's rendered `traceparent`s not handed out yet.
    static RENDERED: std::cell::RefCell<bytes::Bytes> =
        const { std::cell::RefCell::new(bytes::Bytes::new()) };
}

/// A new trace: 128 random bits of trace id, 64 of parent id (each drawn
/// from the thread's CSPRNG), sampled.
pub fn new_traceparent() -> HeaderValue {
    let v = RENDERED
        .try_with(|r| {
            let mut r = r.borrow_mut();
            if r.len() < LEN {
                *r = render(PER_BATCH);
            }
            r.split_to(LEN)
        })
        .unwrap_or_else(|_| render(1));
    HeaderValue::from_maybe_shared(v).expect("hex digits and dashes are a valid header value")
}

/// `n` new `traceparent`s back to back.
fn render(n: usize) -> bytes::Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(n * LEN);
    let push_hex = |out: &mut Vec<u8>, x: u128, digits: usize| {
        out.extend((0..digits).map(|i| HEX[((x >> (4 * (digits - 1 - i))) & 0xf) as usize]));
    };
    for _ in 0..n {
        // Zero ids are invalid: redraw (probability 2^-128, 2^-64).
        let trace = loop {
            let t = rand::random::<u128>();
            if t != 0 {
                break t;
            }
        };
        let parent = loop {
            let p = rand::random::<u64>();
            if p != 0 {
                break p;
            }
        };
        out.extend_from_slice(b"00-");
        push_hex(&mut out, trace, 32);
        out.push(b'-');
        push_hex(&mut out, u128::from(parent), 16);
        out.extend_from_slice(b"-01");
    }
    out.into()
}

#[cfg(test)]
mod tests;
