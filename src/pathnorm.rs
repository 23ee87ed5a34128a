//! The request target's path in one canonical form (SPEC 6.1: what is
//! judged is what is forwarded).
//!
//! The danger is a path that the gateway judges as one thing (public, or
//! under a laxer route) while the upstream resolves it to another:
//! `/static/../admin`, `/static/%2e%2e/admin`, `/static/..;/admin` (Tomcat),
//! `/static\..\admin` (IIS), `/admin//../static/x` (RFC 3986 keeps the empty
//! segment, servers that merge `//` first do not). Upstreams disagree on
//! whether `%2F`/`%5C` separate segments, whether `;params` are stripped,
//! whether `\` is a separator, whether `//` is merged before `..` is
//! resolved, and whether the path is decoded once or twice. So
//! [`CanonicalTarget::parse`] computes, once per request, the one form that
//! every such reading resolves the same way, or refuses the path:
//!
//! - **As sent** when no reading changes it: no `.`/`..` segment (raw or
//!   `%2e`-encoded), which covers plain paths, `%2F`/`%5C`/`;` inside a
//!   segment, empty segments, any other percent-encoding.
//! - **Canonical** (RFC 3986 5.2.4 `remove_dot_segments`, empty segments
//!   kept, `..` above the root stays at the root) when the only thing
//!   upstreams could resolve is plain dot segments (`/a/./b`, `/a/../b`,
//!   `/a/%2e%2e/b`, `/a//../b`): the canonical form has no dot segment left,
//!   so every reading agrees on it. Other percent-encodings stay as sent.
//! - **Refused** ([`PathError`], 400) when readings disagree and no form can
//!   satisfy all of them: dot segments (in any reading) together with an
//!   encoded slash or backslash, a `;` or a Unicode look-alike of `.`/`/`;
//!   a dot segment that a decoded `%3F`/`%23` ends (`..%3F`: servers that
//!   decode, then parse again, cut the path there);
//!   any raw backslash; double encoding (`%252e`, `%25%32%65`); an invalid escape;
//!   text that does not decode to UTF-8 without control characters.
//!
//! Decisions (router, `public`, `/.auth/`) compare [`CanonicalTarget::judged`],
//! the canonical path percent-decoded once. Where a path still reads in
//! several ways (encoded separators, `;`, `//`, look-alikes), `public` is
//! refused and the router asks every reading ([`CanonicalTarget::readings`]).
//!
//! Plain paths (nearly all requests) are recognised by one scan
//! ([`is_plain`]) and borrowed: no allocation.

use std::borrow::Cow;

/// Why a request path is refused (400). The texts say what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not `/...` (and not `*`).
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// Decodes to invalid UTF-8 or to a control character (NUL, CR, LF, ...).
    BadText,
    /// A raw `\` (IIS and some Windows stacks read it as `/`).
    Backslash,
    /// An escape that decodes to another escape (`%252e`, `%25%32%65`):
    /// decoded twice it is another character.
    DoubleEncoding,
    /// Dot segments together with encoded slashes, `;` or look-alikes:
    /// upstreams resolve such a path to different places.
    Ambiguous,
}

impl PathError {
    /// The message for the 400 page.
    pub fn message(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "The request path must start with '/'.",
            PathError::BadEscape => "The request path has an invalid percent-encoding: '%' must be followed by two hex digits (send a literal '%' as %25).",
            PathError::BadText => "The request path decodes to a control character (such as NUL, CR or LF) or to bytes that are not UTF-8. Send the path as percent-encoded UTF-8 without control characters.",
            PathError::Backslash => "The request path contains a backslash, which some servers read as '/'. Use '/' between segments (or %5C for a backslash inside a segment).",
            PathError::DoubleEncoding => "The request path is percent-encoded twice (such as %252e, an encoded '%' before hex digits), which servers that decode twice read differently. Encode the path once.",
            PathError::Ambiguous => "The request path mixes dot segments ('.', '..', %2e) with encoded slashes (%2F, %5C), ';' parameters, encoded '?' or '#' (%3F, %23) or look-alike characters, which servers resolve to different paths. Send the resolved path.",
        }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PathError {}

/// Some segment holds `%XX`: the judged form is the decoded one.
const ESCAPED: u8 = 1;
/// `%2F` or `%5C` inside a segment: servers that decode first split there.
const ENCODED_SEPARATOR: u8 = 2;
/// `;` (raw or `%3B`): Tomcat and others strip `;params` from segments.
const PARAMS: u8 = 4;
/// An empty segment before the last one (`//`): some servers merge them.
const EMPTY: u8 = 8;
/// A Unicode look-alike of `.`, `/`, `\`, `;`, `%`, `?` or `#` (NFKC or Windows best fit).
const LOOKALIKE: u8 = 16;
/// `%3F` or `%23`: a server that decodes the path and then parses it again
/// (Apache mod_rewrite, a second proxy) ends the path there. The cut path
/// is a prefix of the judged one, so `public` holds unless it ends in a
/// dot segment (refused in `scan`); the router asks that reading.
const CUT: u8 = 32;

/// Flags under which the path has more than one reading of its segments.
const SPLITS_DIFFERENTLY: u8 = ENCODED_SEPARATOR | PARAMS | LOOKALIKE;

/// The request path as realmgate judges and forwards it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalTarget<'a> {
    /// What is forwarded (without the query, which passes untouched).
    path: Cow<'a, str>,
    /// `path` percent-decoded once, when it holds escapes.
    decoded: Option<String>,
    flags: u8,
    /// `path` differs from the path as sent.
    rewritten: bool,
}

impl<'a> CanonicalTarget<'a> {
    /// The canonical form of the path `raw` (without query), or why it is refused.
    /// `*` (the asterisk-form of `OPTIONS *`) is forwarded as `/`.
    pub fn parse(raw: &'a str) -> Result<CanonicalTarget<'a>, PathError> {
        if is_plain(raw) {
            return Ok(CanonicalTarget {
                path: Cow::Borrowed(raw),
                decoded: None,
                flags: 0,
                rewritten: false,
            });
        }
        if raw == "*" {
            return Ok(CanonicalTarget {
                path: Cow::Borrowed("/"),
                decoded: None,
                flags: 0,
                rewritten: true,
            });
        }
        let first = scan(raw)?;
        if !first.has_dots {
            return Ok(CanonicalTarget {
                decoded: (first.flags & ESCAPED != 0).then(|| decode_lossy(raw)),
                path: Cow::Borrowed(raw),
                flags: first.flags,
                rewritten: false,
            });
        }
        let resolved = remove_dot_segments(raw);
        // The result has no dot segment left; its flags are its own (an
        // empty segment may have gone with a `..`).
        let again = scan(&resolved)?;
        debug_assert!(!again.has_dots, "{raw:?} -> {resolved:?}");
        if again.has_dots {
            return Err(PathError::Ambiguous);
        }
        Ok(CanonicalTarget {
            decoded: (again.flags & ESCAPED != 0).then(|| decode_lossy(&resolved)),
            path: Cow::Owned(resolved),
            flags: again.flags,
            rewritten: true,
        })
    }

    /// The path to forward: the canonical form (escapes as sent).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path every decision compares: [`Self::path`] percent-decoded once.
    pub fn judged(&self) -> &str {
        self.decoded.as_deref().unwrap_or(&self.path)
    }

    /// True when the path to forward differs from the path as sent.
    pub fn rewritten(&self) -> bool {
        self.rewritten
    }

    /// True when the canonical path starts with one of `prefixes` (a prefix
    /// ending in `/` matches below it; otherwise the exact path or `prefix/...`)
    /// in every reading an upstream may make of it. A path whose segments
    /// read differently (`%2F`, `%5C`, `;`) is public only when every one of
    /// those readings ([`Self::readings`]) is under the same prefix, so
    /// `/static/a%2Fb` is (no reading leaves `/static/`: paths that mix such
    /// encodings with dot segments are refused before this), and
    /// `/static;x/a` is not. A Unicode look-alike is never public: no reading
    /// models an NFKC-normalizing app.
    pub fn is_public(&self, prefixes: &[String]) -> bool {
        if prefixes.is_empty() || self.flags & LOOKALIKE != 0 {
            return false;
        }
        // Judged (decoded) and as forwarded (an upstream that does not
        // decode): both under the prefix. A `//` after the prefix keeps
        // the path under it when merged too; a `//` before it fails here.
        // And what a PHP front controller, a format suffix or Next.js reads
        // (`router::framework_readings`), review 12: below a public `/_next`,
        // `/_next/data/<id>/admin.json` is the data of the page `/admin`.
        let framework_under = |path: &str, p: &String| {
            crate::router::framework_readings(path, p.trim_end_matches('/').len())
                .iter()
                .flatten()
                .all(|r| prefix_matches(r, p))
        };
        let under = |p: &String| {
            prefix_matches(self.judged(), p)
                && (self.decoded.is_none() || prefix_matches(&self.path, p))
                && framework_under(self.judged(), p)
        };
        if self.flags == 0 {
            return prefixes.iter().any(under);
        }
        // Each reading's framework readings too, as the router reads them
        // (review 12, C12): `/_next//data/<id>/admin.json` merged,
        // `/_next/data;x/<id>/admin.json` without `;x`.
        let splits = self.flags & SPLITS_DIFFERENTLY != 0;
        let readings = self.readings();
        prefixes.iter().any(|p| {
            under(p)
                && readings
                    .iter()
                    .all(|r| (!splits || prefix_matches(r, p)) && framework_under(r, p))
        })
    }

    /// True when some upstream may read the segments differently from
    /// [`Self::judged`], so a router must check [`Self::readings`].
    pub fn has_other_readings(&self) -> bool {
        self.flags != 0
    }

    /// True when the path holds a Unicode look-alike of a separator or dot,
    /// which an NFKC-normalizing app reads as one (no reading models that).
    pub fn has_lookalike(&self) -> bool {
        self.flags & LOOKALIKE != 0
    }

    /// Every other way an upstream may read the path, for the router (empty
    /// for plain paths): any combination of `\` read as `/`, `;params`
    /// stripped and `//` merged, applied to the path as forwarded, or to it
    /// decoded, or decoded after them; and of each that starts with `//`,
    /// what a URL parser takes for its path (`//x/admin` -> `/admin`).
    pub fn readings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.flags == 0 {
            return out;
        }
        for order in 0..3 {
            for bits in 0u8..8 {
                let mut r = match order {
                    1 => self.judged().to_string(),
                    _ => self.path.to_string(),
                };
                if bits & 1 != 0 {
                    r = r.replace('\\', "/");
                }
                if bits & 2 != 0 {
                    r = strip_params(&r);
                }
                if bits & 4 != 0 {
                    r = merge_slashes(&r);
                }
                if order == 2 {
                    r = decode_lossy(&r);
                }
                // Decoded readings, cut where a decoded `?`/`#` ends them.
                if order != 0 && self.flags & CUT != 0 {
                    let cut = r.split(['?', '#']).next().unwrap_or("").to_string();
                    self.push_reading(&mut out, cut);
                }
                self.push_reading(&mut out, r);
            }
        }
        out
    }
}

impl CanonicalTarget<'_> {
    /// Adds `reading` to `out` (unless it is the judged path or already
    /// there), and its network-path reading when it starts with `//`.
    ///
    /// A target starting with `//` is a network-path reference to URL
    /// parsers, which take its first segment for a host: WHATWG `new
    /// URL(req.url, base)` (Node), PHP's `parse_url($_SERVER['REQUEST_URI'],
    /// PHP_URL_PATH)`, Python's `urlsplit` and Java's `URI` all read
    /// `//x/admin/users` as the path `/admin/users` (WHATWG also past any
    /// further leading slashes). Beside a strict `/admin` route, such a
    /// request was judged under `/` and served from `/admin` (review 11).
    fn push_reading(&self, out: &mut Vec<String>, reading: String) {
        if let Some(path) = network_path_reading(&reading) {
            // Also with `//` merged: `//x//admin` is `/admin` to a server
            // that merges slashes in what the URL parser left.
            for path in [merge_slashes(&path), path] {
                if path != self.judged() && !out.contains(&path) {
                    out.push(path);
                }
            }
        }
        if reading != self.judged() && !out.contains(&reading) {
            out.push(reading);
        }
    }
}

/// The path a URL parser finds in `path` when it starts with `//`: what
/// follows the first non-empty segment (the "host"), or `/`.
fn network_path_reading(path: &str) -> Option<String> {
    if !path.starts_with("//") {
        return None;
    }
    let rest = path.trim_start_matches('/');
    Some(match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".to_string(),
    })
}

/// The canonical form of `path` (what would be forwarded, see
/// [`CanonicalTarget::parse`]); `None` when it is refused. Idempotent.
pub fn normalize(path: &str) -> Option<String> {
    CanonicalTarget::parse(path)
        .ok()
        .map(|t| t.path().to_string())
}

/// True when `path` (raw or canonical) is not refused and its canonical
/// form is under one of `prefixes` in every reading ([`CanonicalTarget::is_public`]).
pub fn is_public(path: &str, prefixes: &[String]) -> bool {
    CanonicalTarget::parse(path).is_ok_and(|t| t.is_public(prefixes))
}

/// True when `path` is its own canonical form and has one reading only: it
/// starts with `/`, holds only visible ASCII other than `%`, `\\`, `;`, `?`
/// and `#`, and has no empty (`//`), `.` or `..` segment. (A final empty
/// segment, i.e. a trailing `/`, is allowed. A request's path never holds a
/// raw `?` or `#`, but a caller's string may, and the full scan reads those
/// like their decoded forms.) Anything else takes the full route.
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() && !matches!(b, b'%' | b'\\' | b';' | b'?' | b'#'))
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

/// What [`scan`] found in a path it accepts.
struct Scan {
    flags: u8,
    /// Some segment is `.` or `..` once decoded (`%2e` forms included).
    has_dots: bool,
}

/// Checks `raw` and records how upstreams could read it; refuses what no
/// canonical form can settle (see the module docs).
fn scan(raw: &str) -> Result<Scan, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.contains('\\') {
        return Err(PathError::Backslash);
    }
    check_escapes(raw.as_bytes())?;
    let mut flags = 0;
    let (mut has_dots, mut hidden_dots) = (false, false);
    let mut segments = raw[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment.is_empty() && !last {
            flags |= EMPTY;
        }
        let decoded = if segment.contains('%') {
            flags |= ESCAPED;
            let bytes = percent_decode_once(segment.as_bytes()).ok_or(PathError::BadEscape)?;
            Cow::Owned(String::from_utf8(bytes).map_err(|_| PathError::BadText)?)
        } else {
            Cow::Borrowed(segment)
        };
        if decoded.chars().any(char::is_control) {
            return Err(PathError::BadText);
        }
        if has_escape(&decoded) {
            return Err(PathError::DoubleEncoding);
        }
        if decoded.contains(['/', '\\']) {
            flags |= ENCODED_SEPARATOR;
        }
        if decoded.contains(';') {
            flags |= PARAMS;
        }
        if decoded.contains(['?', '#']) {
            flags |= CUT;
            // `..%3F` read as `..` once the path is cut there.
            if decoded
                .split(['/', '\\'])
                .any(|part| is_dot(part.split(['?', '#', ';']).next().unwrap_or("")))
            {
                return Err(PathError::Ambiguous);
            }
        }
        if decoded.chars().any(is_separator_lookalike) {
            flags |= LOOKALIKE;
        }
        has_dots |= is_dot(&decoded);
        // A dot segment in some other reading: split at decoded `/` or `\`,
        // `;params` stripped (Tomcat reads `..;x` as `..`).
        hidden_dots |= decoded
            .split(['/', '\\'])
            .any(|part| is_dot(part) || is_dot(part.split(';').next().unwrap_or("")));
    }
    if hidden_dots && flags & SPLITS_DIFFERENTLY != 0 {
        return Err(PathError::Ambiguous);
    }
    Ok(Scan { flags, has_dots })
}

fn is_dot(segment: &str) -> bool {
    segment == "." || segment == ".."
}

/// Every `%` starts `%XX` with hex digits.
fn check_escapes(bytes: &[u8]) -> Result<(), PathError> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
            return Err(PathError::BadEscape);
        };
        if hex(*hi).is_none() || hex(*lo).is_none() {
            return Err(PathError::BadEscape);
        }
        i += 3;
    }
    Ok(())
}

/// True when `decoded` (a path decoded once) still holds a `%XX` escape: a
/// server that decodes twice reads another character there (`%252e`,
/// `%25%32%65` -> `.`).
fn has_escape(decoded: &str) -> bool {
    decoded
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
}

/// RFC 3986 5.2.4 over the segments of `path` (which starts with `/`), a
/// segment counting as `.`/`..` once decoded (`%2e`, `%2E%2e`, `.%2e`).
/// Empty segments are kept and a `..` removes one, empty or not; `..` at
/// the root stays at the root; a path ending in a dot segment keeps a
/// trailing `/`. Other segments are kept byte for byte.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut ends_in_dot = false;
    for segment in path.get(1..).unwrap_or("").split('/') {
        let decoded = if segment.contains('%') {
            decode_lossy(segment)
        } else {
            segment.to_string()
        };
        ends_in_dot = is_dot(&decoded);
        match decoded.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    let mut resolved = String::with_capacity(path.len());
    resolved.push('/');
    resolved.push_str(&out.join("/"));
    if ends_in_dot && !resolved.ends_with('/') {
        resolved.push('/');
    }
    resolved
}

/// `path` with `;...` removed from every segment.
fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` with runs of `/` merged into one.
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// Characters whose compatibility decomposition (or best-fit mapping) is a
/// dot, slash, backslash, semicolon or percent sign.
/// A character some server may read as `.`, `/`, `\`, `;`, `%`, `?` or
/// `#`: one whose Unicode compatibility form (NFKC, which apps that
/// normalize apply) holds one of them (`︰` is `..`, `？` is `?`, `℀` is
/// `a/c`), or a Windows "best fit" mapping of one (listed).
fn is_separator_lookalike(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    if listed_lookalike(c) {
        return true;
    }
    let mut buf = [0u8; 4];
    let nfkc =
        icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(c.encode_utf8(&mut buf));
    nfkc.contains(['.', '/', '\\', ';', '%', '?', '#'])
}

/// The look-alikes known before NFKC was asked (kept: two are Windows best
/// fit mappings NFKC does not make).
fn listed_lookalike(c: char) -> bool {
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

/// `prefix` covers `path`: a prefix ending in `/` matches below it, another
/// one the exact path or `prefix/...`. Prefixes that are not plain (relative,
/// with `//` or `;`) match nothing.
fn prefix_matches(path: &str, prefix: &str) -> bool {
    if !prefix.starts_with('/') || prefix.contains("//") || prefix.contains(';') {
        return false;
    }
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `text` percent-decoded once (callers have checked the escapes and UTF-8).
fn decode_lossy(text: &str) -> String {
    match percent_decode_once(text.as_bytes()) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => text.to_string(),
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
