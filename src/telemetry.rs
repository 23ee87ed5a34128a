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

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
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
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
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

    #[test]
    fn bad_filters_fall_back_to_info_instead_of_failing() {
        assert_eq!(
            parse_filter("warn,realmgate=debug", "x").to_string(),
            "realmgate=debug,warn"
        );
        assert_eq!(parse_filter("realmgate=loud[", "x").to_string(), "info");
    }
}
