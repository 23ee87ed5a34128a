//! Integration tests, built as one binary. Helpers live in `util`.

mod hostile_http;
mod proxying;
mod util;
