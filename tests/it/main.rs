//! Integration tests, built as one binary. Helpers live in `util`.

mod util;
mod node;
mod node_tools;
