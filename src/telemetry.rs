//! Logging setup (tracing-subscriber, text or JSON).
//!
//! Lines are written by a writer thread of their own (tracing-appender's
//! non-blocking writer, lossless: when it falls behind, callers wait rather
//! than lose lines), through a buffer it flushes whenever it has drained
//! what was queued, so a busy proxy thread neither makes a write system
//! call per line nor waits on a slow pipe or disk. Colour escapes only when
//! stderr is a terminal: a file or a log collector gets plain text.
//!
//! Nothing here formats request data: events carry only fields their callers
//! chose, and callers never pass tokens, cookie values, secrets or emails
//! (SPEC 6). The filter is `RUST_LOG` when set, else the configured level.
//! The access log (`access_log`) renders its own lines and hands them to
//! the same writer thread in per-thread batches; the filter decides whether
//! it is on (target `access` at INFO).

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the writer thread alive; [`flush`] drops it.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Writes queued before callers wait for the writer thread: a line, or an
/// access log batch of up to `access_log::BATCH_BYTES` (+ one line), so at
/// most about 80 MiB wait for a writer that is stuck.
const QUEUED_LINES: usize = 8 * 1024;

/// Install the global subscriber. `level` is an EnvFilter directive; `RUST_LOG` wins when set.
///
/// Calling it again (tests, `demo` after `run`) keeps the first subscriber.
/// An unparseable directive falls back to `info` and says so on stderr.
pub fn init(format: LogFormat, level: &str) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => parse_filter(&v, "RUST_LOG"),
        _ => parse_filter(level, "the log level"),
    };
    let mut writer_slot = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if writer_slot.is_some() {
        return; // already installed
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("realmgate-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let access_writer = writer.clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let result = match format {
        // JSON escapes CR and LF itself; text lines need `OneLine`.
        LogFormat::Text => builder.with_writer(OneLine(writer)).try_init(),
        LogFormat::Json => builder
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Err only when a subscriber is already installed: keep that one.
    if result.is_ok() {
        crate::access_log::install(format, access_writer);
        *writer_slot = Some(guard);
    }
}

/// Writes out every queued line and stops the writer thread; later lines
/// are lost. Called once as the process exits.
pub fn flush() {
    crate::access_log::flush_thread();
    let guard = WRITER.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(guard);
}

/// The text format's writer: one event, one line. tracing-subscriber
/// escapes ESC and C1 controls in what events carry, but writes CR and LF as
/// they are, and some values come from the other side of a request (an
/// IdP's or a library's error text quoting what it was sent): a newline in
/// one would start a line that reads like an event of its own. Every CR and
/// LF of an event but its final LF is written as `\r` / `\n`. The
/// formatter hands each event over in one `write_all` (a whole line), so
/// the escaping sees the line whole.
#[derive(Clone)]
struct OneLine<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        OneLineWriter(self.0.make_writer_for(meta))
    }
}

struct OneLineWriter<W>(W);

impl<W: std::io::Write> std::io::Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // All of `buf` or an error: a partial write would split a line
        // between two escapings.
        self.0.write_all(&one_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `line` with every CR and LF escaped but a final LF.
fn one_line(line: &[u8]) -> Cow<'_, [u8]> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
        return Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len().saturating_add(16));
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    if body.len() != line.len() {
        out.push(b'\n');
    }
    Cow::Owned(out)
}

fn parse_filter(directive: &str, what: &str) -> EnvFilter {
    match EnvFilter::try_new(directive) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "realmgate: {what} {directive:?} is not a valid filter ({e}); using \"info\". \
                 Expected e.g. \"info\" or \"info,realmgate=debug\"."
            );
            EnvFilter::new("info")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event, one line: tracing-subscriber escapes ESC and C1 controls
    /// in field values but writes CR and LF as they are, so a value that
    /// carries a newline (an IdP's error text, a library's message quoting
    /// what it was sent) would start a forged line of its own.
    #[test]
    fn a_text_log_event_is_one_line_whatever_its_fields_hold() {
        let forged = "2026-12-06T16:00:00Z  INFO realmgate: sign-in of admin";
        let line = format!("WARN sign-in failed detail=status a\n{forged}\r\n{forged}\n");
        let mut out = Vec::new();
        {
            use std::io::Write;
            let mut w = OneLineWriter(&mut out);
            w.write_all(line.as_bytes()).unwrap();
        }
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            format!("WARN sign-in failed detail=status a\\n{forged}\\r\\n{forged}\n")
        );
        assert_eq!(out.lines().count(), 1);
        // A line without them is written as it is.
        assert_eq!(one_line(b"plain\n").as_ref(), b"plain\n");
        assert_eq!(one_line(b"no newline").as_ref(), b"no newline");
    }

    /// The same through the text formatter: each event reaches the writer
    /// in one write, so the escaping sees the whole line.
    #[test]
    fn the_text_formatter_writes_an_event_with_a_newline_as_one_line() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(OneLine(move || sink.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let detail = "saml status: x\n2026-12-06T16:00:00Z  INFO forged\r";
            tracing::warn!(detail = %detail, "sign-in failed\nsecond");
            tracing::info!("next");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains(r"sign-in failed\nsecond") && lines[0].contains(r"x\n2026"),
            "{text}"
        );
        assert!(lines[1].contains("next"), "{text}");
    }

    #[test]
    fn bad_filters_fall_back_to_info_instead_of_failing() {
        assert_eq!(
            parse_filter("warn,realmgate=debug", "x").to_string(),
            "realmgate=debug,warn"
        );
        assert_eq!(parse_filter("realmgate=loud[", "x").to_string(), "info");
    }
}
