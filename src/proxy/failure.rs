//! Every upstream failure, from every exchange, becomes the client's answer
//! here, in one place: [`classify`] logs it (route, exchange, kind, the
//! error's whole chain) and [`status`] maps it, 504 for anything that ran
//! out of time, 502 for the rest. The detail goes to the log, never to the
//! client (the pages of `respond` say only "did not answer" / "in time").

use std::time::Duration;

use super::exchange::Exchange;
use super::pool::{PoolError, RawError};
use crate::respond::GatewayError;

/// Why forwarding a request failed.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamError<'e> {
    /// realmgate's pool (`raw-h1`, `hyper-h1`, `upgrade` on a plain upstream).
    Pool(&'e PoolError),
    /// hyper-util's client (`hyper-client`, `upgrade` on a TLS upstream).
    Client(&'e hyper_util::client::legacy::Error),
    /// No response head within the route's `request_timeout`.
    NoAnswerInTime(Duration),
    /// A 101 to a request that asked for no upgrade.
    UnaskedSwitch,
    /// A 101 to a protocol the client did not offer: tunnelling it would
    /// open a raw pipe past the gateway.
    UnofferedProtocol,
    /// A switch to WebSocket whose `Sec-WebSocket-Accept` does not answer
    /// the client's `Sec-WebSocket-Key` (or no key was sent).
    UnansweredKey,
}

/// The client's answer to `e`, logged once with its route and exchange.
pub fn classify(route: &str, exchange: Exchange, e: UpstreamError<'_>) -> GatewayError {
    if client_body_failed(e) {
        // Not the upstream's fault: a 400, not counted as its failure.
        tracing::info!(route.name = %route, exchange = exchange.name(), "the client's request body could not be read (malformed chunked encoding, or the client stopped sending it)");
        return GatewayError::BadRequest(
            "The request body could not be read: its chunked encoding is malformed, or it ended early.",
        );
    }
    let answer = status(e);
    let timed_out = matches!(answer, GatewayError::UpstreamTimeout);
    let exchange = exchange.name();
    match e {
        UpstreamError::Pool(err) => tracing::warn!(
            route.name = %route,
            exchange,
            connect = matches!(err, PoolError::ConnectTimeout(_) | PoolError::Connect(_)),
            timed_out,
            error = %chain(err),
            "upstream request failed"
        ),
        UpstreamError::Client(err) => tracing::warn!(
            route.name = %route,
            exchange,
            connect = err.is_connect(),
            timed_out,
            error = %chain(err),
            "upstream request failed"
        ),
        UpstreamError::NoAnswerInTime(timeout) => tracing::warn!(
            route.name = %route,
            exchange,
            ?timeout,
            "upstream did not answer in time"
        ),
        UpstreamError::UnaskedSwitch => tracing::warn!(
            route.name = %route,
            exchange,
            "upstream switched protocols without being asked"
        ),
        UpstreamError::UnofferedProtocol => tracing::warn!(
            route.name = %route,
            exchange,
            "upstream switched to a protocol the client did not ask for"
        ),
        UpstreamError::UnansweredKey => tracing::warn!(
            route.name = %route,
            exchange,
            "upstream switched to WebSocket without answering the client's key (Sec-WebSocket-Accept): no tunnel"
        ),
    }
    answer
}

/// 504 when the upstream ran out of time (connecting, answering, or a
/// socket that timed out), 502 for everything else: refused, reset,
/// closed, garbled, or a 101 realmgate will not tunnel.
pub fn status(e: UpstreamError<'_>) -> GatewayError {
    let timed_out = match e {
        UpstreamError::Pool(err) => match err {
            PoolError::ConnectTimeout(_) => true,
            PoolError::Connect(io) | PoolError::Raw(RawError::Io(io)) => is_timeout(io),
            PoolError::Raw(RawError::Closed | RawError::Protocol(_)) => false,
            PoolError::Http(err) => chain_timed_out(err),
        },
        UpstreamError::Client(err) => chain_timed_out(err),
        UpstreamError::NoAnswerInTime(_) => true,
        UpstreamError::UnaskedSwitch
        | UpstreamError::UnofferedProtocol
        | UpstreamError::UnansweredKey => false,
    };
    if timed_out {
        GatewayError::UpstreamTimeout
    } else {
        GatewayError::UpstreamUnavailable
    }
}

/// True when forwarding failed because the client's own request body
/// failed while it was sent on (a chunk size that is not hex, a bare LF
/// chunk line, the client gone mid-body): hyper's client reports the body
/// it was given as "user's Body stream" (`is_user`), whose source is the
/// error hyper's server met reading the client.
fn client_body_failed(e: UpstreamError<'_>) -> bool {
    let top: &(dyn std::error::Error + 'static) = match e {
        UpstreamError::Pool(PoolError::Http(err)) => err,
        UpstreamError::Client(err) => err,
        _ => return false,
    };
    sources(top).any(|s| {
        s.downcast_ref::<hyper::Error>().is_some_and(|h| {
            h.is_user()
                && sources(s)
                    .skip(1)
                    .any(|inner| inner.downcast_ref::<hyper::Error>().is_some())
        })
    })
}

fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
}

/// An I/O timeout anywhere in `e`'s source chain.
fn chain_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    sources(e).any(|s| s.downcast_ref::<std::io::Error>().is_some_and(is_timeout))
}

/// `e` and its sources, joined with `": "`, for the log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    sources(e)
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

#[cfg(test)]
mod tests;
