//! The one place where errors become responses (fixed texts, HTML or JSON by
//! `Accept`); details go to logs only.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// The body type of every response realmgate sends (generated or proxied).
pub type Body = BoxBody<Bytes, hyper::Error>;
