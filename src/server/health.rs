//! `GET /.auth/health` on the traffic port, for load balancers that
//! health-check the port they send traffic to (cloud load balancers, target
//! groups, ingress controllers without a second port).
//!
//! Answered before routing, for any Host (an IP address, an unknown name, or
//! none), so a balancer probing `http://10.0.3.7:8080/.auth/health` gets an
//! answer instead of the unknown-host 421. Readiness semantics: 200 while
//! this instance takes traffic; 503 before it is ready and from SIGTERM on
//! (during `shutdown_delay`, while the listener still accepts, and during
//! the drain on connections still open), so a balancer stops sending before
//! the listener closes and a restart loses no request.
//!
//! It tells nothing but that state: no version, no configuration, no
//! session store detail (the admin `/readyz` also pings the store; a shared
//! Redis outage must not take every instance out of a balancer at once,
//! which would turn a degraded sign-in into a total outage). It is not
//! counted in the request metrics nor written to the access log: a
//! balancer's probe every few seconds per instance would drown both.

use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Method, Request, Response, StatusCode};

use crate::respond::{full, Body};

/// The path, matched exactly on the request target's path (its query, if
/// any, is ignored).
pub const HEALTH_PATH: &str = "/.auth/health";

/// Where this instance is in its life, as the health answer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Starting,
    Ready,
    ShuttingDown,
}

/// The answer to `req` when it asks for the health path, else `None` (the
/// request goes on to routing).
pub(crate) fn answer<B>(req: &Request<B>, state: State) -> Option<Response<Body>> {
    if req.uri().path() != HEALTH_PATH {
        return None;
    }
    let (status, text) = match (req.method(), state) {
        (&Method::GET | &Method::HEAD, State::Ready) => (StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, State::Starting) => {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n")
        }
        (&Method::GET | &Method::HEAD, State::ShuttingDown) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; use GET or HEAD\n",
        ),
    };
    let mut res = Response::new(full(text));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, target: &str, host: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(target)
            .header("host", host)
            .body(())
            .unwrap()
    }

    #[test]
    fn any_host_gets_the_state_and_other_paths_go_on() {
        for host in ["10.0.0.7:8080", "unknown.example", "[::1]", ""] {
            let r = answer(&req(Method::GET, "/.auth/health", host), State::Ready).unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{host}");
            assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
            let r = answer(
                &req(Method::HEAD, "/.auth/health?x=1", host),
                State::Starting,
            );
            assert_eq!(r.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
            let r = answer(
                &req(Method::GET, "/.auth/health", host),
                State::ShuttingDown,
            );
            assert_eq!(r.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        // Absolute-form targets name the same path.
        let r = answer(
            &req(Method::GET, "http://any.example/.auth/health", "x"),
            State::Ready,
        );
        assert_eq!(r.unwrap().status(), StatusCode::OK);
        for other in [
            "/",
            "/.auth/health/",
            "/.auth/healthz",
            "/x/.auth/health",
            "/.auth/me",
        ] {
            assert!(
                answer(&req(Method::GET, other, "h"), State::Ready).is_none(),
                "{other}"
            );
        }
        let r = answer(&req(Method::POST, "/.auth/health", "h"), State::Ready).unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
