//! Logging setup (tracing-subscriber, text or JSON).
//!
//! Nothing here formats request data: events carry only fields their callers
//! chose, and callers never pass tokens, cookie values, secrets or emails
//! (SPEC 6). The filter is `RUST_LOG` when set, else the configured level.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber. `level` is an EnvFilter directive; `RUST_LOG` wins when set.
///
/// Calling it again (tests, `demo` after `run`) keeps the first subscriber.
/// An unparseable directive falls back to `info` and says so on stderr.
pub fn init(format: LogFormat, level: &str) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => parse_filter(&v, "RUST_LOG"),
        _ => parse_filter(level, "the log level"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
    let _ = result;
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
