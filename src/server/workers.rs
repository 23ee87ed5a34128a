//! Proxy threads: one OS thread per worker, each running its own
//! single-threaded tokio runtime (event loop, timers) and serving the client
//! connections handed to it, like nginx's worker processes.
//!
//! Why not one multi-threaded runtime: its workers share one epoll instance
//! and a run queue, so a connection's readiness is noticed by one thread and
//! its task often runs on another, which costs a futex wake-up and a context
//! switch per hop. Measured on the benchmark machine (docs/benchmarks.md),
//! the same requests cost about a fifth less CPU when each connection stays
//! on one thread with its own event loop and its own upstream connections.
//!
//! The accept loop (on the caller's runtime) hands each accepted socket to
//! the worker with the fewest open connections, so long-lived keep-alive
//! connections spread evenly. A worker's upstream connections stay with it
//! (`proxy::pool::use_shard`). Everything else (config generation, session
//! store, metrics) is shared as before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::Inner;

/// A socket accepted by the accept loop, on its way to a worker.
pub(super) struct Handoff {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    /// The worker's open-connection count, already counting this one.
    pub load: Arc<AtomicUsize>,
}

/// Accepts until shutdown starts; then the listener is dropped, so new
/// connections are refused while the open ones drain. Each connection is
/// served by one of the proxy workers.
pub(super) async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, mut workers: Dispatch) {
    let mut stop = inner.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => workers.send(stream, peer),
            Err(e) => {
                // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
}

/// The accept loop's side: where to send each new connection.
pub(super) struct Dispatch {
    workers: Vec<(mpsc::UnboundedSender<Handoff>, Arc<AtomicUsize>)>,
    next: usize,
}

impl Dispatch {
    /// Hands `stream` to the worker with the fewest open connections (ties
    /// go round-robin). Dropped, with the connection closed, when the
    /// worker is gone (only during shutdown).
    pub fn send(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand the connection to a worker; closing it");
                return;
            }
        };
        let n = self.workers.len();
        let start = self.next;
        self.next = (self.next + 1) % n;
        let (tx, load) = (0..n)
            .map(|i| &self.workers[(start + i) % n])
            .min_by_key(|(_, load)| load.load(Ordering::Relaxed))
            .expect("at least one worker");
        load.fetch_add(1, Ordering::Relaxed);
        let load = load.clone();
        if let Err(mpsc::error::SendError(lost)) = tx.send(Handoff { stream, peer, load }) {
            lost.load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Why the proxy worker threads could not start (the system refused a
/// thread or an event loop: see the cause; fewer `server.workers` may help).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start a proxy worker's event loop: {0}")]
    EventLoop(std::io::Error),
    #[error("cannot start a proxy worker thread: {0}")]
    Thread(std::io::Error),
}

/// The running worker threads. Dropping this (or [`Workers::stop`]) ends
/// them: each closes the connections it still holds and exits.
pub(super) struct Workers {
    exit: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` worker threads serving connections for `inner`.
    pub fn start(count: usize, inner: &Arc<Inner>) -> Result<(Workers, Dispatch), WorkerError> {
        let (exit, _) = watch::channel(false);
        let mut threads = Vec::with_capacity(count);
        let mut senders = Vec::with_capacity(count);
        for index in 1..=count {
            let (tx, rx) = mpsc::unbounded_channel();
            let load = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Idle: hand this thread's access log lines to the writer.
                .on_thread_park(crate::access_log::flush_thread)
                .build()
                .map_err(WorkerError::EventLoop)?;
            let (inner, exit) = (inner.clone(), exit.subscribe());
            // Workers log where their starter logs (the global subscriber in
            // the binary; a test's own subscriber in tests that capture logs).
            let logs = tracing::dispatcher::get_default(Clone::clone);
            let thread = std::thread::Builder::new()
                .name(format!("realmgate-w{index}"))
                .spawn(move || {
                    let _logs = tracing::dispatcher::set_default(&logs);
                    crate::proxy::pool::use_shard(index);
                    runtime.block_on(run(rx, inner, exit));
                    // Cancels the connections still open (past shutdown_grace);
                    // bounded so a stuck blocking task cannot hold the exit.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                    crate::access_log::flush_thread();
                })
                .map_err(WorkerError::Thread)?;
            threads.push(thread);
            senders.push((tx, load));
        }
        let dispatch = Dispatch {
            workers: senders,
            next: 0,
        };
        Ok((Workers { exit, threads }, dispatch))
    }

    /// Ends every worker (their remaining connections are closed) and waits
    /// for the threads to finish.
    pub async fn stop(mut self) {
        self.exit.send_replace(true);
        let threads = std::mem::take(&mut self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        // Each thread gives its runtime at most 1 s to shut down.
        let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Without `stop` (a gateway dropped by a test): let the threads end
        // on their own, without waiting for them.
        self.exit.send_replace(true);
    }
}

/// One worker: serves every connection it is handed until told to exit.
async fn run(
    mut incoming: mpsc::UnboundedReceiver<Handoff>,
    inner: Arc<Inner>,
    mut exit: watch::Receiver<bool>,
) {
    let mut accepting = true;
    // Holds the thread's watchdog: it ends with this function.
    let watchdog = super::watchdog::Watchdog::start(inner.stop.subscribe());
    loop {
        tokio::select! {
            biased;
            _ = exit.wait_for(|e| *e) => return,
            // `None`: the accept loop ended (shutdown); the open
            // connections drain until `exit`.
            handoff = incoming.recv(), if accepting => match handoff {
                Some(h) => start_connection(h, &inner, &watchdog),
                None => accepting = false,
            },
        }
    }
}

fn start_connection(h: Handoff, inner: &Arc<Inner>, watchdog: &super::watchdog::Watchdog) {
    let Handoff { stream, peer, load } = h;
    // Decrements the worker's load when the connection ends, however it ends.
    let guard = LoadGuard(load);
    match tokio::net::TcpStream::from_std(stream) {
        Ok(stream) => {
            let (inner, watchdog) = (inner.clone(), watchdog.clone());
            tokio::spawn(async move {
                super::conn::serve(inner, stream, peer, watchdog).await;
                drop(guard);
            });
        }
        Err(e) => tracing::warn!(error = %e, "a proxy worker cannot take a connection"),
    }
}

struct LoadGuard(Arc<AtomicUsize>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
