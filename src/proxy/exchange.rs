//! Which exchange serves a request: decided here, in one function
//! ([`Exchange::choose`]), and named in the access log (`exchange=`).
//!
//! | exchange | serves | code |
//! | --- | --- | --- |
//! | `raw-h1` | a request without a body to a plain `http://` upstream | realmgate's own HTTP/1.1 codec on a pooled connection (`pool::raw`) |
//! | `hyper-h1` | a request with a body to a plain `http://` upstream | hyper's HTTP/1.1 connection, driven by realmgate's pool from the request's task |
//! | `hyper-client` | every request to an `https://` upstream (HTTP/1.1 or HTTP/2, as ALPN decides), and every request of a route with `upstream_client = "hyper"` | hyper-util's pooled client |
//! | `upgrade` | an Upgrade request (WebSocket) | hyper's HTTP/1.1 client on a connection of its own, then a tunnel |

/// How a request goes to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// realmgate's own HTTP/1.1 codec (`pool::raw`).
    RawH1,
    /// hyper's HTTP/1.1 connection, driven by realmgate's pool.
    HyperH1,
    /// hyper-util's pooled client (TLS upstreams, `upstream_client = "hyper"`).
    HyperClient,
    /// An Upgrade request, tunnelled after a 101.
    Upgrade,
}

impl Exchange {
    /// The exchange for one request. `own_pool`: the route's upstream is
    /// plain `http://` and its `upstream_client` is `"auto"` (it has a
    /// `pool::PlainRoute`); `upgrade`: the client asked for an Upgrade
    /// realmgate tunnels; `body`: the request has a body (not known to be
    /// empty).
    ///
    /// The own codec serves only what it was built for: no body (an
    /// upstream may answer before it has read a body, which needs both
    /// directions at once) and no upgrade.
    pub fn choose(own_pool: bool, upgrade: bool, body: bool) -> Exchange {
        match (upgrade, own_pool, body) {
            (true, _, _) => Exchange::Upgrade,
            (false, false, _) => Exchange::HyperClient,
            (false, true, true) => Exchange::HyperH1,
            (false, true, false) => Exchange::RawH1,
        }
    }

    /// The access log's `exchange` value.
    pub const fn name(self) -> &'static str {
        match self {
            Exchange::RawH1 => "raw-h1",
            Exchange::HyperH1 => "hyper-h1",
            Exchange::HyperClient => "hyper-client",
            Exchange::Upgrade => "upgrade",
        }
    }
}

#[cfg(test)]
mod tests;
