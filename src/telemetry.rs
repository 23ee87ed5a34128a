//! Logging setup (tracing-subscriber, text or JSON) and the access log line.
//!
//! OWNER: engine-ops helper.

use crate::config::LogFormat;

/// Install the global subscriber. `level` is an EnvFilter directive; `RUST_LOG` wins when set.
pub fn init(format: LogFormat, level: &str) {
    let _ = (format, level);
    todo!("engine-ops")
}
