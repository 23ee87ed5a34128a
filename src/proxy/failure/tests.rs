use std::io;
use std::time::Duration;

use super::*;

fn io_err(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, "test")
}

fn is_504(e: UpstreamError<'_>) -> bool {
    match status(e) {
        GatewayError::UpstreamTimeout => true,
        GatewayError::UpstreamUnavailable => false,
        other => panic!("not an upstream answer: {other:?}"),
    }
}

#[test]
fn pool_failures_are_504_only_when_time_ran_out() {
    let cases: Vec<(PoolError, bool)> = vec![
        (PoolError::ConnectTimeout(Duration::from_secs(5)), true),
        (PoolError::Connect(io_err(io::ErrorKind::TimedOut)), true),
        (
            PoolError::Connect(io_err(io::ErrorKind::ConnectionRefused)),
            false,
        ),
        (
            PoolError::Raw(RawError::Io(io_err(io::ErrorKind::TimedOut))),
            true,
        ),
        (
            PoolError::Raw(RawError::Io(io_err(io::ErrorKind::ConnectionReset))),
            false,
        ),
        (PoolError::Raw(RawError::Closed), false),
        (
            PoolError::Raw(RawError::Protocol("invalid chunk size")),
            false,
        ),
    ];
    for (err, timed_out) in &cases {
        assert_eq!(is_504(UpstreamError::Pool(err)), *timed_out, "{err}");
    }
}

#[test]
fn gateway_decisions_map_to_504_and_502() {
    assert!(is_504(UpstreamError::NoAnswerInTime(Duration::from_secs(
        60
    ))));
    assert!(!is_504(UpstreamError::UnaskedSwitch));
    assert!(!is_504(UpstreamError::UnofferedProtocol));
}

#[test]
fn a_timeout_deep_in_the_source_chain_is_found() {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);
    assert!(chain_timed_out(&Outer(io_err(io::ErrorKind::TimedOut))));
    assert!(!chain_timed_out(&Outer(io_err(io::ErrorKind::BrokenPipe))));
    assert_eq!(
        chain(&Outer(io_err(io::ErrorKind::TimedOut))),
        "outer: test"
    );
}

#[tokio::test]
async fn hyper_client_failures_are_classified_like_the_pools() {
    // A bound socket that never listens: connections are refused, and the
    // port cannot go to anybody else meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    let err = client.get(uri).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(matches!(
        classify("r", Exchange::HyperClient, UpstreamError::Client(&err)),
        GatewayError::UpstreamUnavailable
    ));
}
