//! The HTTP/1.1 codec of the own upstream exchange ([`super`]), without any
//! I/O: the request head's encoding, the response head's parsing and
//! framing (RFC 9112 6.3), and the body decoder. Everything here works on
//! byte buffers the caller filled, so the fuzz targets and the differential
//! test against hyper ([`super::differential`]) run exactly the code the
//! gateway runs, without a socket.
//!
//! Response framing follows RFC 9112 6.3, strictly: a response to HEAD, a
//! 1xx, 204 or 304 has no body; `Transfer-Encoding` with `chunked` last is
//! decoded; other transfer codings and responses without a length run until
//! the upstream closes (a `Content-Length` beside a `Transfer-Encoding` is
//! ignored and removed, and the connection not reused); `Content-Length`
//! values must all be the same number. Anything else (an unparsable or
//! oversized head, an invalid chunk) is an error, and the caller closes the
//! connection, so a confused upstream can never shift the next response on
//! the connection.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Response, StatusCode, Version};

use super::RawError;

/// Largest response head accepted (hyper's default limit is about 400 KiB;
/// real heads are below 8 KiB).
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
pub(super) const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (size, extensions) and longest trailer section.
pub(super) const MAX_CHUNK_LINE: usize = 4096;
pub(super) const MAX_TRAILERS: usize = 8 * 1024;
/// Most chunk-extension bytes in one body (realmgate drops extensions; real
/// upstreams send none). hyper allows 16 KiB.
pub(super) const MAX_CHUNK_EXTENSIONS: usize = 4096;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Where the chunked decoder is, and how many chunk-extension bytes
    /// the body had so far.
    Chunked(Chunk, usize),
    /// Until the upstream closes the connection.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes remain.
    Data(u64),
    /// After a chunk's data: expecting its CRLF.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line (bytes and
    /// fields seen so far).
    Trailers { bytes: usize, fields: usize },
}

/// Writes the request line and header fields, then `extra` (whole header
/// lines: the identity headers, `headers::identity::Injected::wire`). Every
/// piece is already valid for the wire: `http` types cannot hold CR, LF or
/// other controls.
pub(super) fn encode_head(parts: &http::request::Parts, extra: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(extra);
    // Like hyper: methods whose requests normally have a body say "none"
    // explicitly, so the upstream does not answer 411.
    let wants_length = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    if wants_length && !parts.headers.contains_key(CONTENT_LENGTH) {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// 1xx other than 101: interim (100 Continue, 103 Early Hints); the final
/// response follows on the same connection.
pub(super) fn is_interim(status: StatusCode) -> bool {
    status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
}

/// The next response head off the front of `buf`: None while incomplete,
/// an error when invalid or when `MAX_HEAD` bytes are not a whole head.
pub(super) fn next_head(buf: &mut BytesMut, head_only: bool) -> Result<Option<Head>, RawError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if let Some(parsed) = parse_head(buf, head_only)? {
        return Ok(Some(parsed));
    }
    if buf.len() >= MAX_HEAD {
        return Err(RawError::Protocol("response head too large"));
    }
    Ok(None)
}

/// A parsed response head and how its body is delimited.
pub(in crate::proxy::pool) struct Head {
    pub(super) response: Response<()>,
    pub(super) framing: Framing,
    /// False when the head makes the connection unfit for another exchange
    /// whatever the upstream says (Transfer-Encoding beside Content-Length).
    pub(super) reusable: bool,
}

impl Head {
    /// Whether the connection may carry another exchange once this
    /// response's body is complete (and nothing else arrived).
    pub(super) fn reuse(&self) -> bool {
        self.reusable
            && keeps_alive(&self.response)
            && self.framing != Framing::UntilClose
            && self.response.status() != StatusCode::SWITCHING_PROTOCOLS
    }
}

/// Parses one response head off the front of `buf` (None: incomplete).
///
/// One parse over the buffer records where each field's name and value
/// are; the head is then split off and frozen, and every header value is a
/// slice of it (no copies). The parser's field array is left uninitialized
/// (httparse fills what it uses); the positions array is small enough to
/// zero.
pub(super) fn parse_head(buf: &mut BytesMut, head_only: bool) -> Result<Option<Head>, RawError> {
    let config = httparse::ParserConfig::default();
    let parse_error = |e| match e {
        httparse::Error::TooManyHeaders => RawError::Protocol("too many header fields"),
        _ => RawError::Protocol("malformed response head"),
    };
    // Per field: name start, name end, value start, value end in the head.
    let mut spans = [[0u32; 4]; MAX_HEADERS];
    let (len, count, code, version) = {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(parse_error(e)),
        };
        // Where `part` lies in the first `len` bytes of `buf`. httparse
        // hands out slices of its input; anything else (an empty value may
        // point anywhere) is taken as empty, and a non-empty one as an error.
        let base = buf.as_ptr() as usize;
        let at = |part: &[u8]| -> Result<[u32; 2], RawError> {
            if part.is_empty() {
                return Ok([0, 0]);
            }
            let bad = || RawError::Protocol("malformed response head");
            let start = (part.as_ptr() as usize)
                .checked_sub(base)
                .filter(|start| start + part.len() <= len)
                .ok_or_else(bad)?;
            let end = u32::try_from(start + part.len()).map_err(|_| bad())?;
            Ok([end - part.len() as u32, end])
        };
        for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
            let [ns, ne] = at(field.name.as_bytes())?;
            let [vs, ve] = at(field.value)?;
            *span = [ns, ne, vs, ve];
        }
        (len, parsed.headers.len(), parsed.code, parsed.version)
    };
    let head = buf.split_to(len).freeze();
    let status = code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(RawError::Protocol("invalid status code"))?;
    let version = match version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(count);
    for &[ns, ne, vs, ve] in &spans[..count] {
        let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
            .map_err(|_| RawError::Protocol("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
            .map_err(|_| RawError::Protocol("invalid header value"))?;
        headers.append(name, value);
    }

    let framing = framing_of(&headers, status, version, head_only)?;
    let mut reusable = true;
    let framed_by_te = matches!(framing, Framing::Chunked(..) | Framing::UntilClose)
        && headers.contains_key(TRANSFER_ENCODING);
    if framed_by_te && headers.contains_key(CONTENT_LENGTH) {
        // RFC 9112 6.3: Transfer-Encoding wins; the length is a mistake or a
        // smuggling attempt. Not passed on (the client side would frame the
        // body by it), and the connection not reused.
        headers.remove(CONTENT_LENGTH);
        reusable = false;
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(Head {
        response,
        framing,
        reusable,
    }))
}

/// RFC 9112 6.3.
pub(super) fn framing_of(
    headers: &HeaderMap,
    status: StatusCode,
    version: Version,
    head_only: bool,
) -> Result<Framing, RawError> {
    if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    if let Some(te) = headers.get_all(TRANSFER_ENCODING).iter().next_back() {
        // RFC 9112 6.1: HTTP/1.0 has no transfer codings; such a message's
        // framing is faulty (hyper refuses it too).
        if version == Version::HTTP_10 {
            return Err(RawError::Protocol(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        // The last coding of the last field line decides. An empty last
        // element (`chunked,`) or one that is not visible ASCII is refused:
        // readers disagree on it (hyper reads it as "not chunked").
        let last = te
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(RawError::Protocol("invalid Transfer-Encoding"))?;
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked(Chunk::Size, 0)
        } else {
            Framing::UntilClose
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err(RawError::Protocol("invalid Content-Length"));
            }
            // 19 digits hold any length up to 10^19 - 1 without overflow.
            let n = (item.len() <= 19)
                .then(|| std::str::from_utf8(item).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or(RawError::Protocol("Content-Length too large"))?;
            if length.is_some_and(|l| l != n) {
                return Err(RawError::Protocol("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// True when the upstream lets the connection carry another exchange.
pub(super) fn keeps_alive(response: &Response<()>) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in response.headers().get_all(CONNECTION) {
        // A value that is not visible ASCII cannot be read reliably: close.
        if value.to_str().is_err() {
            return false;
        }
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (response.version() == Version::HTTP_11 || keep_alive)
}

/// True when a request's `Connection` header holds `close`.
pub(super) fn asks_to_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// What the decoder made of the buffered bytes.
#[derive(Debug)]
pub(super) enum Step {
    /// Body bytes; `true` when they are the last.
    Data(Bytes, bool),
    /// The body ended (no more bytes).
    End,
    /// More bytes must be read first.
    NeedMore,
}

/// Takes the next piece of body out of `buf` according to `framing`.
pub(super) fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Step, RawError> {
    loop {
        match framing {
            Framing::Length(0) => return Ok(Step::End),
            Framing::Length(n) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = (*n).min(buf.len() as u64);
                *n -= take;
                let data = buf.split_to(take as usize).freeze();
                return Ok(Step::Data(data, *n == 0));
            }
            Framing::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                return Ok(Step::Data(buf.split().freeze(), false));
            }
            Framing::Chunked(chunk, extensions) => match *chunk {
                Chunk::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Step::NeedMore);
                    };
                    let (size, ext) = chunk_size(&line)?;
                    *extensions += ext;
                    if *extensions > MAX_CHUNK_EXTENSIONS {
                        return Err(RawError::Protocol("chunk extensions too long"));
                    }
                    *chunk = if size == 0 {
                        Chunk::Trailers {
                            bytes: 0,
                            fields: 0,
                        }
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(n) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = n.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    *chunk = if n == take {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(n - take)
                    };
                    return Ok(Step::Data(data, false));
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(RawError::Protocol("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *chunk = Chunk::Size;
                }
                Chunk::Trailers { bytes, fields } => {
                    // `bytes` never exceeds the limit by more than one line
                    // end: each line is bounded by what is left.
                    let room = MAX_TRAILERS.saturating_sub(bytes);
                    let Some(line) = take_line(buf, room)? else {
                        return Ok(Step::NeedMore);
                    };
                    if line.is_empty() {
                        // Trailer fields are not passed on (HTTP/1.1 clients
                        // rarely accept them); the body is complete.
                        *framing = Framing::Length(0);
                        return Ok(Step::End);
                    }
                    // Not passed on, but still a field line each, as any
                    // other reader of this body would require.
                    if fields >= MAX_HEADERS {
                        return Err(RawError::Protocol("too many trailer fields"));
                    }
                    if !is_field_line(&line) {
                        return Err(RawError::Protocol("invalid trailer field"));
                    }
                    *chunk = Chunk::Trailers {
                        bytes: bytes + line.len() + 2,
                        fields: fields + 1,
                    };
                }
            },
        }
    }
}

/// Takes one CRLF-terminated line (without the CRLF) off `buf`; None when
/// it is not complete yet. A bare LF, or a line longer than `max`, is an error.
pub(super) fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, RawError> {
    let Some(lf) = buf.iter().take(max + 2).position(|&b| b == b'\n') else {
        if buf.len() > max + 1 {
            return Err(RawError::Protocol("chunk line or trailers too long"));
        }
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(RawError::Protocol("bare LF in chunked body"));
    }
    let line = buf.split_to(lf + 1).freeze();
    Ok(Some(line.slice(..lf - 1)))
}

/// The size in a chunk-size line and the length of its extensions: hex
/// digits (any number, the value must fit in 64 bits), then optional
/// spaces or tabs (RFC 9112 BWS; no other whitespace, a CR least of all)
/// and `;extensions` (ignored; no control characters but HTAB).
pub(super) fn chunk_size(line: &[u8]) -> Result<(u64, usize), RawError> {
    let bad = || RawError::Protocol("invalid chunk size");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let rest = &line[digits..];
    let blank = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let ext = match rest[blank..].split_first() {
        None => 0,
        Some((b';', ext)) => {
            if ext.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
                return Err(RawError::Protocol("invalid chunk extension"));
            }
            ext.len()
        }
        Some(_) => return Err(bad()),
    };
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| bad())?;
    let size = u64::from_str_radix(text, 16).map_err(|_| bad())?;
    Ok((size, ext))
}

/// One trailer field line (without its CRLF) as httparse reads a header
/// field: a token, a colon, a value of visible ASCII, SP, HTAB or obs-text.
pub(super) fn is_field_line(line: &[u8]) -> bool {
    let mut text = Vec::with_capacity(line.len() + 4);
    text.extend_from_slice(line);
    text.extend_from_slice(b"\r\n\r\n");
    let mut one = [httparse::EMPTY_HEADER; 1];
    match httparse::parse_headers(&text, &mut one) {
        Ok(httparse::Status::Complete((n, [field]))) => {
            n == text.len()
                && HeaderName::from_bytes(field.name.as_bytes()).is_ok()
                && HeaderValue::from_bytes(field.value).is_ok()
        }
        _ => false,
    }
}

/// Fuzzing entry (`realmgate::fuzzing::upstream_response`, built with the
/// `fuzzing` feature and in tests): `data` after its
/// first byte is a response stream, read in pieces of the size that byte
/// gives (its low bit: the request was HEAD). Never panics or loops; the
/// body never holds more than the announced length or than what was read.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let head_only = control & 1 == 1;
    let mut pieces = stream.chunks(usize::from(control >> 1).max(1));
    let mut buf = BytesMut::new();
    let head = loop {
        match parse_head(&mut buf, head_only) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(_) => return,
        }
        match pieces.next() {
            Some(piece) => buf.extend_from_slice(piece),
            None => return,
        }
    };
    if matches!(head.framing, Framing::Chunked(..)) {
        assert!(!head.response.headers().contains_key(CONTENT_LENGTH));
    }
    let mut available = buf.len();
    let mut framing = head.framing;
    let mut body = 0usize;
    loop {
        match decode(&mut framing, &mut buf) {
            Ok(Step::Data(data, _)) => {
                assert!(!data.is_empty(), "empty data frame");
                body += data.len();
            }
            Ok(Step::End) | Err(_) => break,
            Ok(Step::NeedMore) => match pieces.next() {
                Some(piece) => {
                    available += piece.len();
                    buf.extend_from_slice(piece);
                }
                None => break,
            },
        }
        assert!(body <= available);
        if let Framing::Length(n) = head.framing {
            assert!(body as u64 <= n);
        }
    }
}
