//! The memory store: moka with `lifetime` (absolute) and `idle_timeout` as expiry.
//!
//! OWNER: sess helper.
