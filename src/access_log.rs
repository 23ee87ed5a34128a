//! The access log: one line per request (target `access`, on when the log
//! filter lets `access` at INFO through), text or JSON as `[log] format`.
//!
//! Built by hand, not through tracing's field machinery: the line is
//! rendered into one buffer when the response head is ready ([`start`]),
//! carried by the response body ([`Logged`]), and finished when the body is
//! done (sent, or abandoned by the client): the bytes sent and the total
//! duration are the line's last fields. Each proxy thread appends finished
//! lines to a batch of its own and hands the batch to the log writer
//! thread (`telemetry`) when it holds [`BATCH_BYTES`], when its oldest line
//! is a second old, or when the thread goes idle (the worker runtimes call
//! [`flush_thread`] before they park) — so a busy thread neither writes nor
//! wakes the writer per request, and a quiet one never sits on a line.
//! Before `telemetry::init` (tests, the library embedded) lines go to the
//! current tracing subscriber instead, as JSON in the event's message.
//!
//! Every value is escaped for its format: in JSON, quotes, backslashes,
//! control characters (C0, DEL and C1) as `\uXXXX`, bytes that are not
//! UTF-8 as the text `\xNN`; in text, every free-form value is quoted and
//! every byte outside printable ASCII (CR and LF included), `"` and `\`
//! escaped. A request can neither end a line, nor forge a field, nor send
//! a terminal escape to whoever reads the log. Never logged: the query
//! string (it may hold tokens), cookies, tokens, secrets, emails (SPEC 6).

use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::config::LogFormat;
use crate::respond::{Body, BoxError};

/// A thread's batch goes to the writer thread once it holds this much.
pub const BATCH_BYTES: usize = 8 * 1024;
/// ... or once its oldest line waited this long.
const BATCH_AGE: Duration = Duration::from_secs(1);
/// Longest path and user agent logged (bytes of the original; longer ones
/// are cut and end with `...`).
pub(crate) const MAX_PATH: usize = 512;
const MAX_USER_AGENT: usize = 256;

/// Where finished lines go once `telemetry::init` ran.
struct Sink {
    format: LogFormat,
    writer: tracing_appender::non_blocking::NonBlocking,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Called once by `telemetry::init`: lines go to `writer` (the log writer
/// thread's queue) in `format`.
pub(crate) fn install(format: LogFormat, writer: tracing_appender::non_blocking::NonBlocking) {
    let _ = SINK.set(Sink { format, writer });
}

/// The format lines are rendered in: the installed one, JSON before `init`.
pub fn format() -> LogFormat {
    SINK.get().map_or(LogFormat::Json, |s| s.format)
}

/// What a line says, known when the response head is ready.
pub struct Fields<'a> {
    pub method: &'a str,
    /// Empty when no route served the host (an unknown host is not logged).
    pub host: &'a str,
    /// The path as received, without the query.
    pub path: &'a [u8],
    pub status: u16,
    pub upstream: Option<Duration>,
    /// The client behind trusted proxies (`peer::client_address`).
    pub client: IpAddr,
    /// The TCP peer (or the PROXY protocol's client), rendered.
    pub peer: &'a [u8],
    pub user: Option<&'a str>,
    pub route: Option<&'a str>,
    pub exchange: Option<&'static str>,
    pub request_id: &'a [u8],
    pub traceparent: &'a [u8],
    pub user_agent: Option<&'a [u8]>,
}

/// Renders everything but the bytes sent and the duration (see [`finish`]).
pub fn start(format: LogFormat, f: &Fields<'_>, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(320 + f.path.len().min(MAX_PATH));
    match format {
        LogFormat::Json => {
            out.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(&mut out, now);
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\",\"method\":");
            json_str(&mut out, f.method.as_bytes());
            if !f.host.is_empty() {
                out.extend_from_slice(b",\"host\":");
                json_str(&mut out, f.host.as_bytes());
            }
            out.extend_from_slice(b",\"path\":");
            json_str(&mut out, cut(f.path, MAX_PATH).0);
            if cut(f.path, MAX_PATH).1 {
                out.truncate(out.len() - 1);
                out.extend_from_slice(b"...\"");
            }
            out.extend_from_slice(b",\"status\":");
            push_u64(&mut out, u64::from(f.status));
            if let Some(d) = f.upstream {
                out.extend_from_slice(b",\"upstream_ms\":");
                push_ms(&mut out, d);
            }
            out.extend_from_slice(b",\"client\":\"");
            push_ip(&mut out, f.client);
            out.extend_from_slice(b"\",\"peer\":");
            json_str(&mut out, f.peer);
            if let Some(u) = f.user {
                out.extend_from_slice(b",\"user\":");
                json_str(&mut out, u.as_bytes());
            }
            if let Some(r) = f.route {
                out.extend_from_slice(b",\"route\":");
                json_str(&mut out, r.as_bytes());
            }
            if let Some(e) = f.exchange {
                out.extend_from_slice(b",\"exchange\":");
                json_str(&mut out, e.as_bytes());
            }
            out.extend_from_slice(b",\"request_id\":");
            json_str(&mut out, f.request_id);
            out.extend_from_slice(b",\"traceparent\":");
            json_str(&mut out, f.traceparent);
            if let Some(ua) = f.user_agent {
                let (ua, long) = cut(ua, MAX_USER_AGENT);
                out.extend_from_slice(b",\"user_agent\":");
                json_str(&mut out, ua);
                if long {
                    out.truncate(out.len() - 1);
                    out.extend_from_slice(b"...\"");
                }
            }
        }
        LogFormat::Text => {
            timestamp(&mut out, now);
            out.extend_from_slice(b"  INFO access: method=");
            text_str(&mut out, f.method.as_bytes());
            if !f.host.is_empty() {
                out.extend_from_slice(b" host=");
                text_str(&mut out, f.host.as_bytes());
            }
            out.extend_from_slice(b" path=");
            let (path, long) = cut(f.path, MAX_PATH);
            text_str(&mut out, path);
            if long {
                out.truncate(out.len() - 1);
                out.extend_from_slice(b"...\"");
            }
            out.extend_from_slice(b" status=");
            push_u64(&mut out, u64::from(f.status));
            if let Some(d) = f.upstream {
                out.extend_from_slice(b" upstream_ms=");
                push_ms(&mut out, d);
            }
            out.extend_from_slice(b" client=");
            push_ip(&mut out, f.client);
            out.extend_from_slice(b" peer=");
            text_str(&mut out, f.peer);
            if let Some(u) = f.user {
                out.extend_from_slice(b" user=");
                text_str(&mut out, u.as_bytes());
            }
            if let Some(r) = f.route {
                out.extend_from_slice(b" route=");
                text_str(&mut out, r.as_bytes());
            }
            if let Some(e) = f.exchange {
                out.extend_from_slice(b" exchange=");
                text_str(&mut out, e.as_bytes());
            }
            out.extend_from_slice(b" request_id=");
            text_str(&mut out, f.request_id);
            out.extend_from_slice(b" traceparent=");
            text_str(&mut out, f.traceparent);
            if let Some(ua) = f.user_agent {
                let (ua, long) = cut(ua, MAX_USER_AGENT);
                out.extend_from_slice(b" user_agent=");
                text_str(&mut out, ua);
                if long {
                    out.truncate(out.len() - 1);
                    out.extend_from_slice(b"...\"");
                }
            }
        }
    }
    out
}

/// Appends the body bytes sent and the total duration, and ends the line.
pub fn finish(format: LogFormat, line: &mut Vec<u8>, bytes: u64, total: Duration) {
    match format {
        LogFormat::Json => {
            line.extend_from_slice(b",\"bytes\":");
            push_u64(line, bytes);
            line.extend_from_slice(b",\"duration_ms\":");
            push_ms(line, total);
            line.extend_from_slice(b"}\n");
        }
        LogFormat::Text => {
            line.extend_from_slice(b" bytes=");
            push_u64(line, bytes);
            line.extend_from_slice(b" duration_ms=");
            push_ms(line, total);
            line.push(b'\n');
        }
    }
}

/// A response body that finishes and emits its access line when it is
/// dropped: after its last frame was sent, or when the client went away.
pub struct Logged {
    inner: Body,
    line: Vec<u8>,
    format: LogFormat,
    bytes: u64,
    started: Instant,
}

impl Logged {
    /// `line` from [`start`]; `started` when the request arrived.
    pub fn wrap(inner: Body, line: Vec<u8>, format: LogFormat, started: Instant) -> Body {
        http_body_util::BodyExt::boxed(Logged {
            inner,
            line,
            format,
            bytes: 0,
            started,
        })
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes = self.bytes.saturating_add(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut line = std::mem::take(&mut self.line);
        finish(
            self.format,
            &mut line,
            self.bytes,
            now.saturating_duration_since(self.started),
        );
        emit(&line, now);
    }
}

/// One thread's lines not yet handed to the writer thread.
struct Batch {
    buf: Vec<u8>,
    /// When the oldest line in `buf` was added.
    since: Option<Instant>,
    writer: Option<tracing_appender::non_blocking::NonBlocking>,
}

impl Batch {
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(sink) = SINK.get() {
            let writer = self.writer.get_or_insert_with(|| sink.writer.clone());
            // Lossless: waits when the writer thread is behind. An error
            // means the writer thread is gone (exit): nothing to write to.
            let _ = writer.write_all(&self.buf);
        }
        self.buf.clear();
        self.since = None;
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static BATCH: RefCell<Batch> = const {
        RefCell::new(Batch { buf: Vec::new(), since: None, writer: None })
    };
}

/// Hands a finished line (ending in a newline) to this thread's batch.
fn emit(line: &[u8], now: Instant) {
    if SINK.get().is_none() {
        let text = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line));
        tracing::info!(target: "access", "{text}");
        return;
    }
    let queued = BATCH.try_with(|b| {
        let Ok(mut b) = b.try_borrow_mut() else {
            return false;
        };
        if b.buf.capacity() == 0 {
            b.buf.reserve(BATCH_BYTES + 1024);
        }
        b.buf.extend_from_slice(line);
        let since = *b.since.get_or_insert(now);
        if b.buf.len() >= BATCH_BYTES || now.saturating_duration_since(since) >= BATCH_AGE {
            b.flush();
        }
        true
    });
    if queued != Ok(true) {
        // The thread is exiting (or re-entered): write this line alone.
        if let Some(sink) = SINK.get() {
            let _ = sink.writer.clone().write_all(line);
        }
    }
}

/// Hands this thread's batch to the writer thread. The proxy runtimes call
/// it before they park (nothing else to do), and their threads at exit.
pub fn flush_thread() {
    let _ = BATCH.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            b.flush();
        }
    });
}

/// `s` cut to at most `max` bytes (on a UTF-8 boundary when it is UTF-8),
/// and whether it was cut.
pub(crate) fn cut(s: &[u8], max: usize) -> (&[u8], bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    // Do not split a UTF-8 sequence: back up over continuation bytes.
    while end > 0 && end > max - 3 && (s[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    (&s[..end], true)
}

/// `"…"`: a JSON string of `s`. Quotes, backslashes and control characters
/// (C0, DEL, C1) escaped; U+2028/2029 too (they end lines in JavaScript),
/// and the bidirectional controls (U+200E/200F, U+202A-202E, U+2066-2069:
/// a viewer would show the rest of the line reordered); bytes that are not
/// UTF-8 become the text `\xNN`.
pub fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// How one character is written: as given, or as `\uXXXX`.
    enum Esc {
        Lit(&'static [u8]),
        U(u32),
    }
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        let bytes = chunk.valid().as_bytes();
        let (mut i, mut plain) = (0, 0);
        while i < bytes.len() {
            let next = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
            let special = match bytes[i] {
                b'"' => Some((1, Esc::Lit(b"\\\""))),
                b'\\' => Some((1, Esc::Lit(b"\\\\"))),
                b'\n' => Some((1, Esc::Lit(b"\\n"))),
                b'\r' => Some((1, Esc::Lit(b"\\r"))),
                b'\t' => Some((1, Esc::Lit(b"\\t"))),
                b @ (0..=0x1f | 0x7f) => Some((1, Esc::U(u32::from(b)))),
                // C1 controls, U+0080-U+009F: 0xc2 0x80-0x9f.
                0xc2 if (0x80..=0x9f).contains(&next(1)) => Some((2, Esc::U(u32::from(next(1))))),
                // U+200E/200F, U+2028/2029, U+202A-202E: 0xe2 0x80 0x8e-0xae.
                0xe2 if next(1) == 0x80 && matches!(next(2), 0x8e | 0x8f | 0xa8..=0xae) => {
                    Some((3, Esc::U(0x2000 + u32::from(next(2) - 0x80))))
                }
                // U+2066-2069: 0xe2 0x81 0xa6-0xa9.
                0xe2 if next(1) == 0x81 && matches!(next(2), 0xa6..=0xa9) => {
                    Some((3, Esc::U(0x2040 + u32::from(next(2) - 0x80))))
                }
                _ => None,
            };
            let Some((len, esc)) = special else {
                i += 1;
                continue;
            };
            out.extend_from_slice(&bytes[plain..i]);
            match esc {
                Esc::Lit(text) => out.extend_from_slice(text),
                Esc::U(code) => {
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[((code >> shift) & 0xf) as usize]);
                    }
                }
            }
            i += len;
            plain = i;
        }
        out.extend_from_slice(&bytes[plain..]);
        for &b in chunk.invalid() {
            out.extend_from_slice(b"\\\\x");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
    out.push(b'"');
}

/// `"…"` for the text format: printable ASCII as it is but `"` and `\`
/// escaped; every other byte (controls, CR, LF, DEL, non-ASCII) as `\xNN`.
pub fn text_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut plain = 0;
    for (i, &b) in s.iter().enumerate() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&s[plain..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => {
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        plain = i + 1;
    }
    out.extend_from_slice(&s[plain..]);
    out.push(b'"');
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Milliseconds with three decimals (microsecond resolution).
fn push_ms(out: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
    push_u64(out, micros / 1000);
    out.push(b'.');
    let frac = micros % 1000;
    out.push(b'0' + (frac / 100) as u8);
    out.push(b'0' + (frac / 10 % 10) as u8);
    out.push(b'0' + (frac % 10) as u8);
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    let _ = write!(out, "{ip}");
}

thread_local! {
    /// The second last rendered, and its `YYYY-MM-DDTHH:MM:SS` (19 bytes).
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 UTC with microseconds, as tracing's own lines:
/// `2026-12-06T13:12:22.123456Z`. The date and time of day are rendered
/// once per second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let mut prefix = [0u8; 19];
    let cached = SECOND
        .try_with(|s| {
            let mut s = s.borrow_mut();
            if s.0 != secs {
                let text = humantime::format_rfc3339_seconds(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
                )
                .to_string();
                if text.len() >= 19 {
                    s.1.copy_from_slice(&text.as_bytes()[..19]);
                    s.0 = secs;
                }
            }
            prefix = s.1;
            s.0 == secs
        })
        .unwrap_or(false);
    if cached {
        out.extend_from_slice(&prefix);
    } else {
        let text = humantime::format_rfc3339_seconds(now).to_string();
        out.extend_from_slice(text.trim_end_matches('Z').as_bytes());
    }
    out.push(b'.');
    let micros = since.subsec_micros();
    let mut digits = [0u8; 6];
    let mut m = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

#[cfg(test)]
mod tests;
