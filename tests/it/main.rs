//! Integration tests, built as one binary. Helpers live in `util`.

mod hostile_http;
mod id_token;
mod proxying;
mod server;
mod util;
