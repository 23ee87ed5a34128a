//! Listeners and lifecycle: accept (PROXY protocol, TLS, HTTP/1.1 + h2),
//! hand requests to `handler::handle`, graceful drain on SIGTERM/SIGINT,
//! config + certificate reload on SIGHUP. Also starts the admin listener.
//!
//! The current config generation is an `Arc<Gateway>` behind a `std` RwLock,
//! numbered by `generation_number`. A reload swaps it under the write lock,
//! so requests already running finish on the generation they started with.
//! A connection takes the generation once and again only when the number
//! changed (`conn::ConnGateway`): the lock and the `Arc`'s count are written
//! by every proxy thread, and on a machine with many cores such writes per
//! request move one cache line from core to core.

mod conn;
mod health;
mod proxy_protocol;
pub(crate) mod tls;
mod watchdog;
mod workers;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::gateway::{BuildError, Gateway, Shared};

pub use health::HEALTH_PATH;
pub use proxy_protocol::{read_header as read_proxy_header, Prefixed, ProxyHeaderError};
pub use tls::TlsError;
pub use workers::WorkerError;

/// Why [`start`] or [`run`] could not bring the gateway up. Each message
/// carries its cause, so `{}` alone tells the whole story.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the shared state: {0}")]
    Shared(BuildError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `key`: `server.listen` or `admin.listen`.
    #[error(
        "{key}: cannot bind {addr}; expected a free address (is another process using the port?): {error}"
    )]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot read the address a listener is bound to: {0}")]
    LocalAddr(std::io::Error),
    #[error("cannot build the configuration: {0}")]
    Build(BuildError),
    #[error(transparent)]
    Workers(#[from] WorkerError),
    #[error("cannot listen for {signal}: {error}")]
    Signal {
        signal: &'static str,
        error: std::io::Error,
    },
}

/// Why a reload ([`Running::replace_settings`]) was refused; the old
/// generation keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// `running`: what the running listener keeps ("TLS" or "plain HTTP").
    #[error(
        "server.tls: turning TLS on or off needs a restart; the running listener keeps {running}"
    )]
    TlsToggle { running: &'static str },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot build the new configuration: {0}")]
    Build(BuildError),
}

/// A started gateway (proxy + admin listeners). Used by `run`, `demo` and the tests.
pub struct Running {
    /// Where the proxy listener is bound (the real port when the config said 0).
    pub addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
    admin: JoinHandle<()>,
    workers: workers::Workers,
}

/// What the listeners, the connections and the admin endpoints share.
pub(crate) struct Inner {
    generation: RwLock<Arc<Gateway>>,
    /// Incremented after every swap of `generation`.
    generation_number: AtomicU64,
    shared: Shared,
    /// The TLS server config when `[server.tls]` was set at start (swapped on reload).
    tls: Option<RwLock<Arc<rustls::ServerConfig>>>,
    config_path: Option<PathBuf>,
    /// Settings that need a restart to change (listen addresses, TLS on/off).
    started_with: StartedWith,
    ready: AtomicBool,
    /// Set first thing on SIGTERM (before `shutdown_delay`): tells the
    /// health answer "shutting down" from "starting".
    shutting_down: AtomicBool,
    /// `true` once shutdown began: accept loops stop, connections drain.
    stop: watch::Sender<bool>,
    connections: ConnCount,
    /// Reloads run one at a time.
    reload_lock: tokio::sync::Mutex<()>,
    /// Replaces `handler::handle` in the server's own unit tests.
    test_handler: Option<conn::TestHandler>,
    /// Shared by the connections (see `conn::Builders`).
    builders: conn::Builders,
}

struct StartedWith {
    listen: SocketAddr,
    admin: SocketAddr,
    tls: bool,
    workers: usize,
}

/// Open proxy connections, so a drain knows when the last one ended.
#[derive(Default)]
pub(crate) struct ConnCount {
    open: AtomicUsize,
    zero: Notify,
}

impl ConnCount {
    fn opened(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }
    fn closed(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.notify_waiters();
        }
    }
    async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Inner {
    /// The number of the generation [`Inner::current`] returns; read it
    /// first; a later `current()` is then at least that generation.
    pub(crate) fn generation_number(&self) -> u64 {
        self.generation_number.load(Ordering::Acquire)
    }

    /// The config generation new requests use.
    pub(crate) fn current(&self) -> Arc<Gateway> {
        self.generation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Ready: config loaded, listeners bound, not shutting down.
    /// (The session store check is the admin listener's.)
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What `GET /.auth/health` on the traffic port reports.
    pub(crate) fn health_state(&self) -> health::State {
        if self.is_ready() {
            health::State::Ready
        } else if self.shutting_down.load(Ordering::Acquire) {
            health::State::ShuttingDown
        } else {
            health::State::Starting
        }
    }

    fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls
            .as_ref()
            .map(|t| t.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Builds everything of a new generation first, then swaps; on error nothing changes.
    fn install(&self, mut settings: Settings) -> Result<(), ReloadError> {
        let tls = match (&self.tls, &settings.server.tls) {
            (Some(_), Some(t)) => Some(tls::load(t)?),
            (None, Some(_)) | (Some(_), None) => {
                return Err(ReloadError::TlsToggle {
                    running: if self.started_with.tls {
                        "TLS"
                    } else {
                        "plain HTTP"
                    },
                });
            }
            (None, None) => None,
        };
        if settings.server.listen != self.started_with.listen
            && !(settings.server.listen.port() == 0 && self.started_with.listen.port() == 0)
        {
            tracing::warn!(
                configured = %settings.server.listen,
                running = %self.started_with.listen,
                "server.listen changed: the new address takes effect after a restart"
            );
        }
        if settings.admin.listen != self.started_with.admin
            && !(settings.admin.listen.port() == 0 && self.started_with.admin.port() == 0)
        {
            tracing::warn!(
                configured = %settings.admin.listen,
                running = %self.started_with.admin,
                "admin.listen changed: the new address takes effect after a restart"
            );
        }
        if settings.server.workers != self.started_with.workers {
            tracing::warn!(
                configured = settings.server.workers,
                running = self.started_with.workers,
                "server.workers changed: the new number of proxy threads takes effect after a restart"
            );
            // The upstream pools are sized for the running threads.
            settings.server.workers = self.started_with.workers;
        }
        let settings = Arc::new(settings);
        let gateway = Gateway::new(settings.clone(), &self.shared).map_err(ReloadError::Build)?;
        if let (Some(slot), Some(cfg)) = (&self.tls, tls) {
            *slot.write().unwrap_or_else(|e| e.into_inner()) = cfg;
        }
        *self.generation.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(gateway);
        // After the swap: whoever sees the new number gets the new generation.
        self.generation_number.fetch_add(1, Ordering::Release);
        self.shared.metrics.config_loaded(&settings, true);
        Ok(())
    }
}

impl Running {
    /// Reload: re-read the config file (if started with one) and TLS certificates;
    /// on any error log it and keep the old generation. Returns whether the new one was taken.
    pub async fn reload(&self) -> bool {
        let taken = self.reload_once().await;
        if !taken {
            self.inner.shared.metrics.config_reload_failed();
        }
        taken
    }

    async fn reload_once(&self) -> bool {
        let _one_at_a_time = self.inner.reload_lock.lock().await;
        let settings = match &self.inner.config_path {
            Some(path) => {
                let path = path.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || crate::config::load(Some(&path))).await;
                match loaded {
                    Ok(Ok(s)) => s,
                    Ok(Err(errors)) => {
                        for p in &errors.problems {
                            tracing::error!(
                                key = %p.key,
                                problem = %p.problem,
                                expected = %p.expected,
                                "reload: configuration problem"
                            );
                        }
                        tracing::error!(
                            problems = errors.problems.len(),
                            "reload refused: the old configuration keeps serving"
                        );
                        return false;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload failed; the old configuration keeps serving");
                        return false;
                    }
                }
            }
            // Without a file, only the certificates can change.
            None => (*self.inner.current().settings).clone(),
        };
        match self.replace_settings(settings) {
            Ok(()) => {
                tracing::info!("configuration reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused: the old configuration keeps serving");
                false
            }
        }
    }

    /// Swap in already-validated settings (tests; SIGHUP without a file).
    pub fn replace_settings(&self, settings: Settings) -> Result<(), ReloadError> {
        self.inner.install(settings)
    }

    /// Readiness 503 (admin `/readyz` and `/.auth/health`), keep accepting
    /// for `shutdown_delay`, then stop accepting and drain in-flight
    /// requests up to `shutdown_grace`.
    pub async fn shutdown(self) {
        let server = self.inner.current().settings.server.clone();
        let grace = server.shutdown_grace;
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.ready.store(false, Ordering::Release);
        if !server.shutdown_delay.is_zero() {
            // Load balancers see the 503 on their next health checks and
            // stop sending; whatever they still send meanwhile is served.
            tracing::info!(delay = ?server.shutdown_delay, "not ready; still accepting for shutdown_delay before draining");
            tokio::time::sleep(server.shutdown_delay).await;
        }
        // Stops the accept loop (its listener is dropped, so new connections
        // are refused) and asks every connection to finish its in-flight
        // requests and close (HTTP/1.1: after the current response; h2: GOAWAY).
        self.inner.stop.send_replace(true);
        let _ = self.accept.await;
        let open = self.inner.connections.open.load(Ordering::Acquire);
        tracing::info!(connections = open, grace = ?grace, "draining");
        match tokio::time::timeout(grace, self.inner.connections.wait_zero()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => tracing::warn!(
                connections = self.inner.connections.open.load(Ordering::Acquire),
                "shutdown_grace elapsed; closing the remaining connections"
            ),
        }
        self.workers.stop().await;
        self.admin.abort();
        let _ = self.admin.await;
    }

    /// Whether the readiness latch is up.
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// The settings new requests see.
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.current().settings.clone()
    }
}

/// Bind the listeners and start serving in the background.
/// `config_path` is what SIGHUP / `reload` re-reads.
pub async fn start(
    settings: Settings,
    config_path: Option<PathBuf>,
) -> Result<Running, StartError> {
    start_inner(settings, config_path, None).await
}

async fn start_inner(
    settings: Settings,
    config_path: Option<PathBuf>,
    test_handler: Option<conn::TestHandler>,
) -> Result<Running, StartError> {
    let shared = Shared::new(&settings).map_err(StartError::Shared)?;
    // Bench builds only (cargo feature `bench-sessions`): many sessions at start.
    #[cfg(feature = "bench-sessions")]
    crate::session::bench_seed::seed_from_env(&settings, &*shared.auth.sessions).await;
    let tls = match &settings.server.tls {
        Some(t) => Some(RwLock::new(tls::load(t)?)),
        None => None,
    };
    let bind = |key, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Bind { key, addr, error })
    };
    let listener = bind("server.listen", settings.server.listen).await?;
    let admin_listener = bind("admin.listen", settings.admin.listen).await?;
    let addr = listener.local_addr().map_err(StartError::LocalAddr)?;
    let admin_addr = admin_listener.local_addr().map_err(StartError::LocalAddr)?;
    let started_with = StartedWith {
        listen: settings.server.listen,
        admin: settings.admin.listen,
        tls: tls.is_some(),
        workers: settings.server.workers,
    };
    let worker_count = settings.server.workers;
    let gateway = Gateway::new(Arc::new(settings), &shared).map_err(StartError::Build)?;
    shared.metrics.config_loaded(&gateway.settings, false);
    let (stop, _) = watch::channel(false);
    let inner = Arc::new(Inner {
        generation: RwLock::new(Arc::new(gateway)),
        generation_number: AtomicU64::new(0),
        shared,
        tls,
        config_path,
        started_with,
        ready: AtomicBool::new(false),
        shutting_down: AtomicBool::new(false),
        stop,
        connections: ConnCount::default(),
        reload_lock: tokio::sync::Mutex::new(()),
        test_handler,
        builders: conn::Builders::default(),
    });
    let (workers, dispatch) = workers::Workers::start(worker_count, &inner)?;
    let admin = tokio::spawn(crate::admin::serve(admin_listener, inner.clone()));
    let accept = tokio::spawn(workers::accept_loop(listener, inner.clone(), dispatch));
    inner.ready.store(true, Ordering::Release);
    tracing::info!(
        listen = %addr,
        admin = %admin_addr,
        tls = inner.tls.is_some(),
        workers = worker_count,
        "realmgate listening"
    );
    Ok(Running {
        addr,
        admin_addr,
        inner,
        accept,
        admin,
        workers,
    })
}

/// `realmgate run`: start, then SIGHUP reloads and SIGTERM/SIGINT drains and returns.
pub async fn run(settings: Settings, config_path: Option<PathBuf>) -> Result<(), StartError> {
    // Handlers first: a signal that arrives while the listeners are being
    // bound is then handled, instead of SIGINT's default action killing us.
    let mut signals = Signals::new()?;
    let running = start(settings, config_path).await?;
    while let Event::Reload = signals.next().await {
        tracing::info!("SIGHUP: reloading configuration and certificates");
        running.reload().await;
    }
    tracing::info!("shutting down");
    // A second SIGTERM/SIGINT during the drain means "now" (as with Ctrl-C twice).
    tokio::select! {
        () = running.shutdown() => {}
        () = signals.shutdown() => {
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
        }
    }
    Ok(())
}

enum Event {
    Reload,
    Shutdown,
}

/// The process signals `run` reacts to, registered once.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Result<Signals, StartError> {
        use tokio::signal::unix::SignalKind;
        let listen = |kind, signal| {
            tokio::signal::unix::signal(kind).map_err(|error| StartError::Signal { signal, error })
        };
        Ok(Signals {
            term: listen(SignalKind::terminate(), "SIGTERM")?,
            int: listen(SignalKind::interrupt(), "SIGINT")?,
            hup: listen(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> Result<Signals, StartError> {
        Ok(Signals {})
    }

    async fn next(&mut self) -> Event {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM received"); Event::Shutdown }
                _ = self.int.recv() => { tracing::info!("SIGINT received"); Event::Shutdown }
                _ = self.hup.recv() => Event::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Event::Shutdown
        }
    }

    /// The next SIGTERM or SIGINT (SIGHUP is ignored from here on).
    async fn shutdown(&mut self) {
        loop {
            if let Event::Shutdown = self.next().await {
                return;
            }
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                tracing::error!("cannot listen for SIGTERM/SIGINT; falling back to Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
