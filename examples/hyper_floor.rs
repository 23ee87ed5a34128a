//! The least a hyper-based reverse proxy can do, as a reference point for
//! `bench/run.sh` (target `hyper_floor`): no routing, no authentication, no
//! header rewriting, no timeouts, no metrics; one proxy thread per core with
//! its own single-threaded runtime (as realmgate's `server.workers`), each
//! client connection forwarding over one upstream HTTP/1.1 connection of its
//! own, driven in the same task.
//!
//! It is not a product and must not be used as one: it exists to show how
//! much of realmgate's cost per request is the HTTP library's and how much is
//! realmgate's own.
//!
//!   cargo run --release --example hyper_floor -- 127.0.0.1:8080 127.0.0.1:8081 [threads]

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Driver = Pin<Box<client::Connection<TokioIo<TcpStream>, Incoming>>>;

struct Upstream {
    sender: client::SendRequest<Incoming>,
    driver: Driver,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hyper_floor LISTEN UPSTREAM [THREADS]";
    let listen: SocketAddr = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let upstream: SocketAddr = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let threads: usize = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism()?.get(),
    };
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let listener = listener.try_clone().expect("listener clone");
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, accept(listener, upstream));
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

async fn accept(listener: std::net::TcpListener, upstream: SocketAddr) {
    let listener = TcpListener::from_std(listener).expect("listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let slot: Rc<RefCell<Option<Upstream>>> = Rc::new(RefCell::new(None));
            let service = service_fn(move |req: Request<Incoming>| {
                let slot = slot.clone();
                async move { forward(&slot, upstream, req).await }
            });
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    slot: &RefCell<Option<Upstream>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> anyhow::Result<
    Response<http_body_util::combinators::UnsyncBoxBody<hyper::body::Bytes, hyper::Error>>,
> {
    let pooled = slot.borrow_mut().take();
    let mut up = match pooled {
        Some(up) => up,
        None => {
            let stream = TcpStream::connect(upstream).await?;
            stream.set_nodelay(true)?;
            let (sender, driver) = client::handshake(TokioIo::new(stream)).await?;
            Upstream {
                sender,
                driver: Box::pin(driver),
            }
        }
    };
    let mut response = std::pin::pin!(up.sender.send_request(req));
    let driver = &mut up.driver;
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = response.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        let _ = driver.as_mut().poll(cx);
        response.as_mut().poll(cx)
    })
    .await?;
    // Small responses only: read the body while driving the connection, then
    // hand the connection back for the next request.
    let (parts, mut body) = response.into_parts();
    let mut chunks = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| {
            let polled = Pin::new(&mut body).poll_frame(cx);
            if polled.is_pending() {
                let _ = up.driver.as_mut().poll(cx);
                return Pin::new(&mut body).poll_frame(cx);
            }
            polled
        })
        .await;
        match frame {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    chunks.push(data);
                }
            }
            None => break,
        }
    }
    *slot.borrow_mut() = Some(up);
    let body = http_body_util::Full::new(hyper::body::Bytes::from(chunks.concat()))
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(Response::from_parts(parts, body))
}
