//! Path normalization for `public` prefix matching: percent-decoding of
//! unreserved characters and slashes, dot-segments, duplicate slashes, `;`
//! parameters, backslashes. Deny on doubt.
//!
//! OWNER: sess helper.

/// The normalized path, or None when it cannot be normalized safely
/// (e.g. escapes above the root, invalid percent-encoding, NUL): such a path is never public.
pub fn normalize(path: &str) -> Option<String> {
    let _ = path;
    todo!("sess")
}

/// True when the normalized `path` starts with one of `prefixes`
/// (a prefix ending in `/` matches below it; otherwise an exact path or `prefix/...`).
pub fn is_public(path: &str, prefixes: &[String]) -> bool {
    let _ = (path, prefixes);
    todo!("sess")
}
