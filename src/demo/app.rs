//! The demo app: an HTML page that shows the request headers it received
//! (identity headers highlighted), and `/headers.json` with the same as JSON.
//!
//! It stands in for the legacy app behind realmgate in `realmgate demo` and in
//! the browser tests: every path except `/headers.json` answers with the page,
//! so a user lands on whatever URL they first asked for. Header names and
//! values are attacker-controlled from the app's point of view, so the page is
//! rendered by minijinja with HTML auto-escaping and the JSON by serde.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use minijinja::{context, AutoEscape, Environment};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

const PAGE: &str = include_str!("../ui/templates/demo_app.html");

/// The demo app's own CSP: the page has inline styles and nothing else.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Prefixes (lowercase) of the headers realmgate's profiles inject (SPEC 5.8),
/// plus its own assertion header.
const IDENTITY_PREFIXES: [&str; 8] = [
    "x-forwarded-",
    "x-ms-",
    "remote-",
    "x-auth-request-",
    "x-pomerium-",
    "oidc_claim_",
    "oidc-claim-",
    "x-realmgate-",
];

/// Headers about the connection rather than the user; shown apart even
/// though some share the `X-Forwarded-` prefix.
const FORWARDING: [&str; 11] = [
    "forwarded",
    "via",
    "x-real-ip",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-method",
];

/// Headers that name the user, best first, for the "Signed in as" line.
const WHO: [&str; 7] = [
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-ms-client-principal-name",
    "x-auth-request-email",
    "remote-email",
    "remote-user",
    "x-forwarded-user",
];

/// A running demo app; stops when dropped.
pub struct App {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl App {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the app listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every
        // connection task with it.
        self.task.abort();
    }
}

pub async fn start(addr: SocketAddr) -> anyhow::Result<App> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("demo app: cannot listen on {addr}"))?;
    let addr = listener
        .local_addr()
        .context("demo app: no local address")?;
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("demo_app.html", PAGE)
        .context("demo app: page template does not compile")?;
    let env = Arc::new(env);
    let task = tokio::spawn(serve(listener, env));
    Ok(App { addr, task })
}

async fn serve(listener: TcpListener, env: Arc<Environment<'static>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let env = env.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let response = respond(&req, &env);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        if let Err(error) = builder.serve_connection(TokioIo::new(stream), service).await {
                            tracing::debug!(%error, "demo app connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(%error, "demo app: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn respond(req: &Request<Incoming>, env: &Environment<'static>) -> Response<Full<Bytes>> {
    let headers = req.headers();
    if req.uri().path() == "/headers.json" {
        let body = serde_json::to_vec_pretty(&headers_json(headers)).unwrap_or_default();
        return response(StatusCode::OK, "application/json", body);
    }
    if req.uri().path() == "/favicon.ico" {
        return response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"not found\n".to_vec(),
        );
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match render_page(env, req.method().as_str(), &target, headers) {
        Ok(html) => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html.into_bytes(),
        ),
        Err(error) => {
            tracing::error!(%error, "demo app: page rendering failed");
            response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                b"the demo page could not be rendered\n".to_vec(),
            )
        }
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// One row of the page.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    value: String,
    /// `X-MS-CLIENT-PRINCIPAL` decoded from base64 JSON, pretty-printed.
    decoded: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    Forwarding,
    Other,
}

/// `name` is lowercase, as hyper delivers it.
fn kind(name: &str) -> Kind {
    if FORWARDING.contains(&name) {
        Kind::Forwarding
    } else if IDENTITY_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Kind::Identity
    } else {
        Kind::Other
    }
}

fn text(value: &header::HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn render_page(
    env: &Environment<'static>,
    method: &str,
    target: &str,
    headers: &HeaderMap,
) -> Result<String, minijinja::Error> {
    let mut rows: Vec<(Kind, Row)> = headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str();
            let value = text(value);
            let decoded = (name == "x-ms-client-principal")
                .then(|| decode_principal(&value))
                .flatten();
            (
                kind(name),
                Row {
                    name: name.to_owned(),
                    value,
                    decoded,
                },
            )
        })
        .collect();
    // Stable: repeated headers keep the order they arrived in.
    rows.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let (mut identity, mut forwarding, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, row) in rows {
        match kind {
            Kind::Identity => identity.push(row),
            Kind::Forwarding => forwarding.push(row),
            Kind::Other => other.push(row),
        }
    }
    let who = WHO
        .iter()
        .find_map(|name| headers.get(*name).map(text))
        .filter(|w| !w.is_empty());
    env.get_template("demo_app.html")?.render(context! {
        who, method, path => target, identity, forwarding, other,
    })
}

/// Easy Auth's principal: base64 of a JSON document.
fn decode_principal(value: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    serde_json::to_string_pretty(&json).ok()
}

/// Lowercase name -> value, or an array of values when the header repeats.
fn headers_json(headers: &HeaderMap) -> BTreeMap<String, serde_json::Value> {
    headers
        .keys()
        .map(|name| {
            let mut values: Vec<serde_json::Value> = headers
                .get_all(name)
                .iter()
                .map(|v| serde_json::Value::String(text(v)))
                .collect();
            let value = if values.len() == 1 {
                values.remove(0)
            } else {
                serde_json::Value::Array(values)
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests;
