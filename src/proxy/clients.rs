//! Building the pooled upstream clients and their TLS configuration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::RouteSettings;
use crate::respond::Body;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub type UpstreamClient = Client<ToUpstream, Body>;

/// What makes two routes need different clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// `None`: the system's root certificates.
    pub upstream_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl ClientKey {
    pub fn of(route: &RouteSettings) -> ClientKey {
        ClientKey {
            upstream_ca: route.upstream_ca.clone(),
            connect_timeout: route.connect_timeout,
        }
    }
}

/// The route's upstream as `scheme://host[:port]`: what its clients connect
/// to ([`ToUpstream`]), whatever authority a request URI names.
pub fn upstream_origin(route: &RouteSettings) -> String {
    let up = &route.upstream;
    let host = up.host_str().unwrap_or_default();
    match up.port() {
        Some(port) => format!("{}://{host}:{port}", up.scheme()),
        None => format!("{}://{host}", up.scheme()),
    }
}

/// The connector of one upstream's clients: it connects to the upstream
/// (TLS names and verifies the upstream's host), whatever authority the
/// request URI carries. The URI's authority is what an HTTP/2 upstream gets
/// as `:authority`, which it reads as the request's host (Kestrel replaces
/// `Host` with it, Go's net/http takes `r.Host` from it): with
/// `preserve_host` the proxy puts the client's Host there (review 14, R1),
/// and hyper-util's pool then keys connections by that host too.
#[derive(Clone)]
pub struct ToUpstream {
    inner: HttpsConnector<HttpConnector>,
    target: Uri,
}

impl tower_service::Service<Uri> for ToUpstream {
    type Response = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Response;
    type Error = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Error;
    type Future = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _requested: Uri) -> Self::Future {
        self.inner.call(self.target.clone())
    }
}

/// Why the upstream clients for a group of routes could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `routes`: the routes sharing this `upstream_ca`, as `"a", "b"`.
    #[error("route {routes}: upstream_ca {}: {error}", .path.display())]
    Ca {
        routes: String,
        path: PathBuf,
        error: CaError,
    },
    #[error(
        "route {routes:?}: no system CA certificates found for the https upstream; install the ca-certificates package or set upstream_ca"
    )]
    NoSystemRoots { routes: Vec<String> },
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
    #[error("route {routes}: the upstream {upstream:?} is not a URL to connect to")]
    Upstream { routes: String, upstream: String },
}

/// What is wrong with an `upstream_ca` file (the route and path are
/// [`ClientError::Ca`]'s).
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot be read: {0}")]
    Read(rustls_pki_types::pem::Error),
    #[error("is not valid PEM: {0}")]
    Pem(rustls_pki_types::pem::Error),
    #[error("contains no usable CA certificate ({ignored} unparsable)")]
    NoUsable { ignored: usize },
}

pub struct Clients {
    /// HTTP/1.1, or HTTP/2 when a TLS upstream offers it with ALPN.
    pub any: UpstreamClient,
    /// HTTP/1.1 only: Upgrade requests (WebSocket) need it.
    pub h1: UpstreamClient,
}

impl Clients {
    /// `routes`: every route with this key (for error messages).
    /// One pair of clients per upstream of `routes` (keyed by
    /// [`upstream_origin`]), sharing one TLS configuration.
    pub fn build(
        key: &ClientKey,
        routes: &[&RouteSettings],
    ) -> Result<HashMap<String, Arc<Clients>>, ClientError> {
        let names = || {
            routes
                .iter()
                .map(|r| format!("{:?}", r.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let roots = match &key.upstream_ca {
            Some(path) => load_ca(path).map_err(|error| ClientError::Ca {
                routes: names(),
                path: path.clone(),
                error,
            })?,
            None => {
                let roots = native_roots();
                let https: Vec<String> = routes
                    .iter()
                    .filter(|r| r.upstream.scheme() == "https")
                    .map(|r| r.name.clone())
                    .collect();
                if roots.is_empty() && !https.is_empty() {
                    return Err(ClientError::NoSystemRoots { routes: https });
                }
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Versions)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut built = HashMap::new();
        for route in routes {
            let origin = upstream_origin(route);
            if built.contains_key(&origin) {
                continue;
            }
            let target: Uri = origin.parse().map_err(|_| ClientError::Upstream {
                routes: names(),
                upstream: origin.clone(),
            })?;
            let any = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_all_versions()
                .wrap_connector(http_connector(key));
            let h1 = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http_connector(key));
            let to = |inner| ToUpstream {
                inner,
                target: target.clone(),
            };
            let clients = Clients {
                any: client(to(any)),
                h1: client(to(h1)),
            };
            built.insert(origin, Arc::new(clients));
        }
        Ok(built)
    }
}

fn http_connector(key: &ClientKey) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(key.connect_timeout));
    http
}

fn client(connector: ToUpstream) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // Never resend: a request the pool could not deliver fails with 502.
        .retry_canceled_requests(false)
        // The proxy sets Host itself (preserve_host or the upstream's authority).
        .set_host(false)
        .build(connector)
}

/// The CA certificates in a PEM file; they replace the system roots for this route.
pub fn load_ca(path: &std::path::Path) -> Result<RootCertStore, CaError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(CaError::Read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(CaError::Pem)?;
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(CaError::NoUsable { ignored });
    }
    Ok(roots)
}

/// The system roots (possibly none: only `https` upstreams need them).
fn native_roots() -> RootCertStore {
    let result = rustls_native_certs::load_native_certs();
    for e in &result.errors {
        tracing::warn!(error = %e, "some system CA certificates could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(result.certs);
    roots
}
