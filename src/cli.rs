//! Command line: `run`, `check`, `test-connection`, `explain`, `demo`.

use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
