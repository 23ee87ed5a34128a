//! PROXY protocol v1 (text) and v2 (binary) from load balancers.
//!
//! When `server.proxy_protocol = true`, every connection must start with a
//! PROXY header; its source address becomes the client address
//! (`ConnInfo.peer`). A connection without a valid header is closed: accepting
//! it would let anyone who reaches the port claim any client address.
//! Bytes that arrive after the header (the start of the TLS handshake or the
//! HTTP request) are kept and replayed by [`Prefixed`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A v2 header is 16 bytes plus a 16-bit length; v1 is at most 107 bytes.
const MAX_HEADER: usize = 16 + u16::MAX as usize;

/// Why a connection's PROXY header was refused (logged at debug; the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("connection closed before a complete PROXY header")]
    Eof,
    #[error("malformed PROXY header ({0})")]
    Malformed(String),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Reads one PROXY header from `stream`. Returns the stream (with any bytes
/// read past the header kept for replay) and the client address the header
/// names: `None` for `LOCAL`/`UNKNOWN` headers and v2 `PROXY` with an
/// unspecified or AF_UNIX address (health checks of the load balancer, or a
/// relayed client it cannot name), where the TCP peer stays the client
/// address but is not trusted (`ConnInfo::client_unknown`).
pub async fn read_header<S>(
    mut stream: S,
) -> Result<(Prefixed<S>, Option<SocketAddr>), ProxyHeaderError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if buf.len() >= MAX_HEADER {
            return Err(ProxyHeaderError::Malformed("header too long".into()));
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(ProxyHeaderError::Eof);
        }
        match parse(&buf) {
            Parsed::Incomplete => continue,
            Parsed::Invalid(why) => return Err(ProxyHeaderError::Malformed(why)),
            Parsed::Complete { len, source } => {
                let rest = buf.split_off(len).freeze();
                return Ok((Prefixed::new(stream, rest), source));
            }
        }
    }
}

enum Parsed {
    Incomplete,
    Invalid(String),
    Complete {
        len: usize,
        source: Option<SocketAddr>,
    },
}

fn parse(buf: &[u8]) -> Parsed {
    // Both versions start with fixed bytes: refuse early anything else, so a
    // plain HTTP request is not buffered up to a full header size.
    const V1: &[u8] = b"PROXY ";
    const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    let n = buf.len().min(V2.len());
    let m = buf.len().min(V1.len());
    if buf[..n] != V2[..n] && buf[..m] != V1[..m] {
        return Parsed::Invalid("no PROXY protocol signature".into());
    }
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(h)) => Parsed::Complete {
            len: h.header.len(),
            source: match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            },
        },
        HeaderResult::V2(Ok(h)) => Parsed::Complete {
            len: h.len(),
            source: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
            },
        },
        HeaderResult::V1(Err(e)) => Parsed::Invalid(format!("v1: {e}")),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(format!("v2: {e}")),
    }
}

/// A stream that first yields `prefix`, then reads from the inner stream.
/// Writes go straight through. Without a prefix it adds one branch per read.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(inner: S, prefix: Bytes) -> Self {
        Prefixed { prefix, inner }
    }
}

/// What a plain (not TLS) connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Http1,
    /// The HTTP/2 connection preface (h2c with prior knowledge).
    Http2,
    /// Closed before a byte arrived.
    Closed,
}

/// The first bytes of the HTTP/2 preface (RFC 9113 3.4) that no HTTP/1
/// method starts with.
const H2_START: &[u8; 4] = b"PRI ";

/// The length of the HTTP/2 client connection preface (RFC 9113 3.4),
/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
pub const H2_PREFACE_LEN: usize = 24;

/// True when `start`, a connection's first bytes, agrees with the HTTP/2
/// preface as far as it goes (a start shorter than "PRI " may still become one).
pub fn looks_like_h2(start: &[u8]) -> bool {
    let n = start.len().min(H2_START.len());
    start[..n] == H2_START[..n]
}

impl Prefixed<tokio::net::TcpStream> {
    /// Waits (the caller bounds the wait) until the first bytes tell an
    /// HTTP/2 preface from HTTP/1, without consuming them. Usually the first
    /// packet decides; a client whose first packet is a prefix of "PRI " is
    /// looked at again every 10 ms.
    pub async fn sniff(&self) -> io::Result<Sniffed> {
        let mut start = [0u8; H2_START.len()];
        loop {
            let have = self.prefix.len().min(start.len());
            start[..have].copy_from_slice(&self.prefix[..have]);
            let mut n = have;
            if have < start.len() {
                let peeked = self.inner.peek(&mut start[have..]).await?;
                if peeked == 0 && have == 0 {
                    return Ok(Sniffed::Closed);
                }
                n += peeked;
            }
            if !looks_like_h2(&start[..n]) {
                return Ok(Sniffed::Http1);
            }
            if n == start.len() {
                return Ok(Sniffed::Http2);
            }
            // `peek` answers at once while any byte is buffered: wait for more.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_all(input: &[u8]) -> Result<(Option<SocketAddr>, Vec<u8>), ProxyHeaderError> {
        let (mut client, server) = tokio::io::duplex(1 << 17);
        let input = input.to_vec();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // Byte-sized writes prove partial headers are reassembled.
            for b in input {
                if client.write_all(&[b]).await.is_err() {
                    return;
                }
            }
        });
        let (mut stream, source) = read_header(server).await?;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        Ok((source, rest))
    }

    #[tokio::test]
    async fn v1_tcp4_header_gives_the_client_address_and_keeps_the_request() {
        let (source, rest) =
            read_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\nGET / HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
        assert_eq!(source, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn v1_tcp6_and_unknown() {
        let (source, _) = read_all(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n")
            .await
            .unwrap();
        assert_eq!(source, Some("[2001:db8::1]:4000".parse().unwrap()));
        let (source, rest) = read_all(b"PROXY UNKNOWN\r\nX").await.unwrap();
        assert_eq!(source, None);
        assert_eq!(rest, b"X");
    }

    #[tokio::test]
    async fn v2_proxy_and_local_headers() {
        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "198.51.100.9:40000".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:8080".parse::<SocketAddr>().unwrap(),
            ),
        )
        .write_tlv(v2::Type::Authority, b"hr.contoso.com")
        .unwrap()
        .build()
        .unwrap();
        let mut input = header.clone();
        input.extend_from_slice(b"GET /");
        let (source, rest) = read_all(&input).await.unwrap();
        assert_eq!(source, Some("198.51.100.9:40000".parse().unwrap()));
        assert_eq!(rest, b"GET /");

        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        let (source, _) = read_all(&local).await.unwrap();
        assert_eq!(source, None);
    }

    #[tokio::test]
    async fn hostile_or_missing_headers_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.1.1.1 10.0.0.1 99999 2\r\n",
            b"PROXY TCP5 1.1.1.1 10.0.0.1 1 2\r\n",
            b"PROXY \xff\xfe\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c",
            b"PROXY TCP4 1.1.1.1 10.0.0.1 1 2",
        ] {
            assert!(read_all(bad).await.is_err(), "accepted {bad:?}");
        }
        // A v1 line without its CRLF that goes on forever is cut at 107 bytes.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(
            read_all(&long).await,
            Err(ProxyHeaderError::Malformed(_))
        ));
    }
}
