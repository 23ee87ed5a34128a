//! Integration tests, built as one binary. Helpers live in `util`.

mod server;
mod util;
mod id_token;
