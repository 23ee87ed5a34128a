//! The HTTP client realmgate uses to talk to identity providers (discovery,
//! JWKS, token, userinfo, Graph): hyper-util's pooled legacy client over
//! hyper-rustls with the system's root certificates.
//!
//! Deliberately small and strict, because everything it fetches decides who
//! may sign in:
//! - connect timeout 5 s, whole exchange (headers and body) 10 s;
//! - redirects are never followed (a 3xx is returned as is and callers treat it
//!   as an error), so a provider cannot bounce realmgate to another host;
//! - response bodies are capped at 1 MiB (a JWKS or discovery document is a few KiB);
//! - plain `http://` is refused except for loopback hosts (`localhost`,
//!   `127.0.0.0/8`, `::1`), which the demo identity provider and the tests use.
//!   Anything else must be HTTPS: tokens and keys fetched over plain HTTP could
//!   be replaced by anyone on the path.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Time to establish a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the whole exchange: connect, send, response headers and body.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body accepted.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a request to an identity provider failed. Texts name the host only, never a query string.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("refusing plain http to {0}: identity provider URLs must be https (http only for localhost)")]
    InsecureUrl(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("cannot reach {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host} did not answer within {secs}s")]
    Timeout { host: String, secs: u64 },
    #[error("response from {0} is larger than 1 MiB")]
    TooLarge(String),
}

/// Why [`HttpClient::new`] could not build the client.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
}

/// A cheap-to-clone client shared by every provider.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// Builds the client with the system's root certificates. When none can be
    /// loaded, HTTPS requests fail with a certificate error (logged once here).
    pub fn new() -> Result<HttpClient, SetupError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        http.set_nodelay(true);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no system root certificates: https identity providers will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(SetupError::Versions)?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let https = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(HttpClient { inner })
    }

    /// Sends `request` and reads the whole response (bounded in time and size).
    /// Any status is returned as is; redirects are not followed.
    pub async fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let host = check_url(request.uri())?;
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| HttpError::Connect {
                    host: host.clone(),
                    reason: describe_client_error(&e),
                })?;
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        HttpError::TooLarge(host.clone())
                    } else {
                        HttpError::Connect {
                            host: host.clone(),
                            reason: format!("reading the response failed: {e}"),
                        }
                    }
                })?;
            Ok(http::Response::from_parts(
                parts,
                collected.to_bytes().to_vec(),
            ))
        };
        match tokio::time::timeout(TOTAL_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                host,
                secs: TOTAL_TIMEOUT.as_secs(),
            }),
        }
    }

    /// GET `url` with `Accept: application/json`.
    pub async fn get(&self, url: &str) -> Result<http::Response<Vec<u8>>, HttpError> {
        self.get_json(url, None).await
    }

    /// GET `url` with `Accept: application/json` and the user's access token
    /// (`Authorization: Bearer`), as Graph and userinfo want it.
    pub async fn get_with_bearer(
        &self,
        url: &str,
        access_token: &str,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        self.get_json(url, Some(access_token)).await
    }

    async fn get_json(
        &self,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let mut request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, user_agent());
        if let Some(token) = access_token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Vec::new())
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
        self.execute(request).await
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

/// `realmgate/<version>`.
pub fn user_agent() -> &'static str {
    concat!("realmgate/", env!("CARGO_PKG_VERSION"))
}

/// The host of `uri` when realmgate may send a request there: https anywhere,
/// http only to a loopback host.
pub fn check_url(uri: &http::Uri) -> Result<String, HttpError> {
    let host = uri
        .host()
        .ok_or_else(|| HttpError::InvalidRequest("URL without host".into()))?
        .to_string();
    match uri.scheme_str() {
        Some("https") => Ok(host),
        Some("http") if is_loopback_host(&host) => Ok(host),
        Some("http") => Err(HttpError::InsecureUrl(host)),
        _ => Err(HttpError::InvalidRequest(format!(
            "unsupported URL scheme for {host}"
        ))),
    }
}

/// `localhost`, `127.0.0.0/8` or `::1` (brackets allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error as _;
    // The innermost cause says what happened (connection refused, certificate…).
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_only_for_loopback() {
        let ok = |u: &str| check_url(&u.parse().unwrap());
        assert!(ok("https://login.microsoftonline.com/x").is_ok());
        assert!(ok("http://127.0.0.1:8080/x").is_ok());
        assert!(ok("http://127.9.9.9/x").is_ok());
        assert!(ok("http://localhost/x").is_ok());
        assert!(ok("http://[::1]:9/x").is_ok());
        assert!(matches!(
            ok("http://idp.example.com/x"),
            Err(HttpError::InsecureUrl(_))
        ));
        assert!(matches!(
            ok("http://10.0.0.1/x"),
            Err(HttpError::InsecureUrl(_))
        ));
        // A loopback-looking subdomain is not loopback.
        assert!(matches!(
            ok("http://localhost.evil.example/x"),
            Err(HttpError::InsecureUrl(_))
        ));
        assert!(ok("ftp://localhost/x").is_err());
    }

    #[tokio::test]
    async fn refused_connection_is_reported_with_the_host() {
        // A bound socket that never listens: connections are refused, and, unlike a
        // listener bound and dropped, the port cannot go to anybody else meanwhile.
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = closed.local_addr().unwrap().port();
        let client = HttpClient::new().unwrap();
        let err = client
            .get(&format!("http://127.0.0.1:{port}/x"))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    }
}
