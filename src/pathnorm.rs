//! Path normalization for `public` prefix matching: percent-decoding of
//! unreserved characters and slashes, dot-segments, duplicate slashes, `;`
//! parameters, backslashes. Deny on doubt.
//!
//! The danger is a path that *looks* public to the gateway but resolves to a
//! protected resource at the upstream: `/public/..%2Fadmin`, `/public/..;/admin`
//! (Tomcat), `/public\..\admin` (IIS), `/public/%2e%2e/admin`. So the gateway
//! resolves at least as aggressively as any upstream would:
//!
//! 1. percent-decode once, `%2F` and `%5C` included (a literal `%` left over
//!    after that, i.e. double encoding like `%252e`, means "deny");
//! 2. reject NUL and every other control character, and invalid UTF-8;
//! 3. treat `\` as `/`;
//! 4. drop `;parameters` from every segment (`..;x` is `..`);
//! 5. drop empty and `.` segments, resolve `..` (above the root: deny).
//!
//! A path that cannot be normalized is never public; the request then needs a
//! session, which is the fail-closed direction. The upstream still receives
//! the path exactly as the client sent it.
//!
//! Upstreams disagree on three things: whether `%2F`/`%5C` separate segments,
//! whether `;params` are stripped, whether `\` is a separator. Whichever
//! reading the gateway picks, an upstream with the other reading can resolve
//! the same bytes elsewhere (`/public/a%2Fb/../../admin` is `/public/admin`
//! when `%2F` separates, `/admin` when it does not). So [`is_public`] refuses
//! every path that contains one of them: such paths simply need a session.

/// The normalized path, or None when it cannot be normalized safely
/// (e.g. escapes above the root, invalid percent-encoding, NUL): such a path is never public.
///
/// The result starts with `/`, contains no `%`, `\`, `//`, `/./` or `/../`,
/// keeps a trailing `/`, and `normalize(normalize(p)) == normalize(p)`.
pub fn normalize(path: &str) -> Option<String> {
    normalized(path).map(std::borrow::Cow::into_owned)
}

/// [`normalize`], without a copy when `path` is already normalized (most
/// paths: [`is_plain`]).
pub fn normalized(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    if is_plain(path) {
        return Some(std::borrow::Cow::Borrowed(path));
    }
    normalize_slow(path).map(std::borrow::Cow::Owned)
}

/// True when `path` is its own normalization: it starts with `/`, holds only
/// visible ASCII other than `%`, `\\` and `;`, and has no empty (`//`), `.`
/// or `..` segment. (A final empty segment, i.e. a trailing `/`, is kept by
/// normalization, so it is allowed.) Anything else takes the full route.
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() && !matches!(b, b'%' | b'\\' | b';'))
    {
        return false;
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" if !last => return false,
            "." | ".." => return false,
            _ => {}
        }
    }
    true
}

fn normalize_slow(path: &str) -> Option<String> {
    if !path.starts_with('/') && !path.starts_with('\\') {
        return None;
    }
    let decoded = decode(path)?.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for raw in decoded.split('/').skip(1) {
        let segment = raw.split(';').next().unwrap_or("");
        // A trailing slash stays meaningful (`/static/` vs `/static`); a path
        // ending in `.` or `..` names a directory too.
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// True when the normalized `path` starts with one of `prefixes`
/// (a prefix ending in `/` matches below it; otherwise an exact path or `prefix/...`).
///
/// `path` may be raw (as received) or already normalized: it is normalized
/// here either way (normalization is idempotent). A path that cannot be
/// normalized is not public.
pub fn is_public(path: &str, prefixes: &[String]) -> bool {
    if prefixes.is_empty() {
        return false;
    }
    if is_ambiguous(path) {
        return false;
    }
    let Some(normalized) = normalized(path) else {
        return false;
    };
    prefixes.iter().any(|p| prefix_matches(&normalized, p))
}

/// True when upstreams could disagree about the segments of `path`: it holds
/// an encoded slash or backslash, a backslash, or a `;` (raw or encoded), or
/// (raw or encoded) a character that Unicode compatibility normalization or
/// Windows "best fit" conversion turns into one of `.` `/` `\\` `;` `%`.
fn is_ambiguous(path: &str) -> bool {
    let bytes = path.as_bytes();
    let encoded_separator = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f') | (b'5', b'c') | (b'3', b'b')
            )
    });
    if encoded_separator || bytes.iter().any(|&b| b == b';' || b == b'\\') {
        return true;
    }
    // Non-ASCII can only matter here; plain ASCII paths skip the decoding.
    if path.is_ascii() && !path.contains('%') {
        return false;
    }
    // An app that NFKC-normalizes (or a Windows stack that "best fits") reads
    // `/public/\u{ff0e}\u{ff0e}/admin` as `/public/../admin`.
    let decoded = percent_decode_once(bytes).unwrap_or_default();
    String::from_utf8_lossy(&decoded)
        .chars()
        .chain(path.chars())
        .any(is_separator_lookalike)
}

/// Characters whose compatibility decomposition (or best-fit mapping) is a
/// dot, slash, backslash, semicolon or percent sign.
fn is_separator_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2024}' // ONE DOT LEADER -> .
            | '\u{2025}' // TWO DOT LEADER -> ..
            | '\u{2026}' // HORIZONTAL ELLIPSIS -> ...
            | '\u{fe52}' // SMALL FULL STOP -> .
            | '\u{ff0e}' // FULLWIDTH FULL STOP -> .
            | '\u{ff0f}' // FULLWIDTH SOLIDUS -> /
            | '\u{2215}' // DIVISION SLASH (best fit) -> /
            | '\u{2044}' // FRACTION SLASH (best fit) -> /
            | '\u{ff3c}' // FULLWIDTH REVERSE SOLIDUS -> \
            | '\u{fe68}' // SMALL REVERSE SOLIDUS -> \
            | '\u{037e}' // GREEK QUESTION MARK -> ; (canonical)
            | '\u{fe54}' // SMALL SEMICOLON -> ;
            | '\u{ff1b}' // FULLWIDTH SEMICOLON -> ;
            | '\u{ff05}' // FULLWIDTH PERCENT SIGN -> %
            | '\u{fe6a}' // SMALL PERCENT SIGN -> %
    )
}

/// Percent-decodes once into UTF-8 text without control characters and without
/// a `%` left over (double encoding).
fn decode(path: &str) -> Option<String> {
    let decoded = String::from_utf8(percent_decode_once(path.as_bytes())?).ok()?;
    if decoded.chars().any(|c| c.is_control() || c == '%') {
        return None;
    }
    Some(decoded)
}

fn prefix_matches(normalized: &str, prefix: &str) -> bool {
    if prefix.is_empty() || !prefix.starts_with('/') {
        return false;
    }
    if prefix.ends_with('/') {
        return normalized.starts_with(prefix);
    }
    match normalized.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Decodes every `%XX` once. A `%` not followed by two hex digits is invalid.
fn percent_decode_once(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hi = hex(*input.get(i + 1)?)?;
            let lo = hex(*input.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
