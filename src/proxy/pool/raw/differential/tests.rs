use super::*;

/// Control byte: method index, close after the bytes, read size.
fn control(method: u8, eof: bool, piece: u8) -> u8 {
    method | (u8::from(eof) << 2) | (piece << 3)
}

fn both(method: &Method, stream: &[u8], piece: usize, eof: bool) -> (Outcome, Outcome) {
    (
        own(method, stream, piece, eof),
        hyper(method, stream, piece, eof),
    )
}

#[test]
fn ordinary_responses_agree_in_every_read_size() {
    /// Method, response stream, status, body, reused when the stream stays open.
    type Case<'a> = (&'a Method, &'a [u8], u16, &'a [u8], bool);
    let cases: &[Case<'_>] = &[
        (&Method::GET, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello", true),
        (
            &Method::GET,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\n, w\r\n0\r\nT: v\r\n\r\n",
            200,
            b"hello, w",
            true,
        ),
        (&Method::HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, b"", true),
        (&Method::GET, b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", true),
        (&Method::GET, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 304, b"", true),
        (
            &Method::GET,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            201,
            b"ok",
            true,
        ),
        (&Method::GET, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", false),
        (&Method::GET, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", false),
        (
            &Method::GET,
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            200,
            b"ok",
            true,
        ),
    ];
    for &(method, stream, status, body, reuse) in cases {
        for piece in [1, 2, 7, stream.len()] {
            let (a, b) = both(method, stream, piece, false);
            let want = Outcome::Complete {
                status,
                body: body.to_vec(),
                reuse,
            };
            assert_eq!(
                a,
                want,
                "own, reads of {piece}: {:?}",
                String::from_utf8_lossy(stream)
            );
            assert_eq!(
                b,
                want,
                "hyper, reads of {piece}: {:?}",
                String::from_utf8_lossy(stream)
            );
            // After a close, neither reuses.
            let (a, b) = both(method, stream, piece, true);
            assert!(matches!(a, Outcome::Complete { reuse: false, .. }), "{a:?}");
            assert!(matches!(b, Outcome::Complete { reuse: false, .. }), "{b:?}");
        }
    }
}

#[test]
fn a_body_until_close_ends_only_at_the_close() {
    let stream = b"HTTP/1.1 200 OK\r\n\r\nall of it";
    let (a, b) = both(&Method::GET, stream, 4, true);
    assert_eq!(a, b);
    assert_eq!(
        a,
        Outcome::Complete {
            status: 200,
            body: b"all of it".to_vec(),
            reuse: false
        }
    );
    let (a, b) = both(&Method::GET, stream, 4, false);
    assert!(
        matches!(
            a,
            Outcome::Incomplete {
                status: Some(200),
                ..
            }
        ),
        "{a:?}"
    );
    assert!(
        matches!(
            b,
            Outcome::Incomplete {
                status: Some(200),
                ..
            }
        ),
        "{b:?}"
    );
    compare(&a, &b).unwrap();
}

#[test]
fn bytes_after_the_message_end_reuse_on_both_sides() {
    let stream = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n";
    let (a, b) = both(&Method::GET, stream, 64, false);
    assert!(matches!(a, Outcome::Complete { reuse: false, .. }), "{a:?}");
    assert!(matches!(b, Outcome::Complete { reuse: false, .. }), "{b:?}");
}

#[test]
fn the_comparison_allows_only_documented_strictness() {
    let complete = |body: &[u8], reuse| Outcome::Complete {
        status: 200,
        body: body.to_vec(),
        reuse,
    };
    let refused = |reason: &str, body: &[u8]| Outcome::Rejected {
        reason: reason.into(),
        body: body.to_vec(),
    };
    assert!(compare(&complete(b"a", false), &complete(b"a", true)).is_ok());
    assert!(compare(&complete(b"a", true), &complete(b"a", false)).is_err());
    assert!(compare(&complete(b"a", false), &complete(b"b", false)).is_err());
    assert!(compare(&complete(b"a", false), &refused("x", b"")).is_err());
    assert!(compare(
        &refused("Content-Length too large", b""),
        &complete(b"a", false)
    )
    .is_ok());
    assert!(compare(
        &refused("chunk data not followed by CRLF", b""),
        &complete(b"a", false)
    )
    .is_err());
    assert!(compare(
        &refused("Content-Length too large", b"b"),
        &complete(b"a", false)
    )
    .is_err());
    assert!(compare(&refused("x", b"ab"), &refused("y", b"a")).is_ok());
    assert!(compare(&refused("x", b"ab"), &refused("y", b"b")).is_err());
}

#[test]
fn the_seed_corpus_agrees() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/upstream_differential");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz(&data);
        n += 1;
    }
    assert!(n > 0);
    // Every method, both endings, several read sizes, over a chunked response.
    let stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    for method in 0..4 {
        for eof in [false, true] {
            for piece in [0, 1, 3, 31] {
                let mut data = vec![control(method, eof, piece)];
                data.extend_from_slice(stream);
                fuzz(&data);
            }
        }
    }
}
