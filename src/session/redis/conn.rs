//! The connection to Redis: multiplexed connections (`ConnectionManager`,
//! reconnects by itself) to a single server, or a `ClusterConnection`
//! (routes by slot, follows MOVED/ASK, reconnects) to a Redis Cluster. All
//! are created lazily, so the gateway starts while Redis is down and begins
//! to use it when it comes up.
//!
//! A single server gets one connection per proxy thread (each proxy thread
//! runs its own single-threaded runtime, `server::workers`) and one shared
//! by everything else (admin API, the multi-threaded runtime). A
//! connection's driver task runs on the runtime that first used it, so a
//! command from a proxy thread is written, answered and handed back on that
//! thread: no cross-thread channel hop and wake-up per command (two per
//! local-cache miss with one shared connection), and no queue behind other
//! threads' commands.
//!
//! Every call is bounded: the client has a connect timeout and [`Conn::run`]
//! wraps the whole call (including waiting for a reconnect and for the
//! answer) in the command timeout; a cluster client also has its own
//! response timeout. Commands wait for a slot in the client's bounded
//! pipeline buffer at most that long, so nothing queues without bound.

use std::cell::RefCell;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

use crate::per_thread::Owned;
use crate::session::store::StoreError;

/// Commands in flight on the one multiplexed connection before callers wait.
const PIPELINE_BUFFER: usize = 1024;

pub(super) enum Conn {
    Single(Box<Single>),
    Cluster(Box<Cluster>),
}

/// A single server: the shared connection, and what a proxy thread needs
/// to open its own.
pub(super) struct Single {
    shared: ConnectionManager,
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// This connection's entry in the per-thread ones.
    number: u64,
}

thread_local! {
    /// This proxy thread's own connection (see the module docs).
    static THREAD_CONN: RefCell<Owned<Option<ConnectionManager>>> =
        RefCell::new(Owned::default());
}

pub(super) struct Cluster {
    client: ClusterClient,
    /// Empty until the first successful connect; a failed attempt leaves
    /// it empty so the next command tries again.
    conn: OnceCell<ClusterConnection>,
    timeout: Duration,
}

// === impl Conn ===

impl Conn {
    /// A lazy connection to `url` (a single server).
    pub(super) fn single(url: &str, timeout: Duration) -> Result<Conn, StoreError> {
        let client = redis::Client::open(url).map_err(|e| redacted("redis_url", &e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            // No per-command response timer of the client's own: `run`
            // bounds every call (waiting for the answer included) with the
            // command timeout, and one timer per command is enough (a miss
            // paid two; a timed-out answer never triggered a reconnect).
            .set_response_timeout(None)
            // Reconnect attempts are driven by commands (each failed command
            // starts one); a short backoff inside one attempt keeps a command
            // from waiting on a long retry series.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250))
            .set_pipeline_buffer_size(PIPELINE_BUFFER);
        let shared = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| redacted("redis_url", &e))?;
        Ok(Conn::Single(Box::new(Single {
            shared,
            client,
            config,
            number: crate::per_thread::owner_number(),
        })))
    }

    /// A lazy connection to a Redis Cluster, seeded with `urls`.
    pub(super) fn cluster(urls: &[String], timeout: Duration) -> Result<Conn, StoreError> {
        let client = ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .build()
            .map_err(|e| redacted("redis_url", &e))?;
        Ok(Conn::Cluster(Box::new(Cluster {
            client,
            conn: OnceCell::new(),
            timeout,
        })))
    }

    /// A handle for one command or script; connects a cluster on first use.
    async fn handle(&self) -> RedisResult<Handle> {
        match self {
            Conn::Single(s) => Ok(Handle::Single(s.for_this_thread())),
            Conn::Cluster(cluster) => {
                let Cluster {
                    client,
                    conn,
                    timeout,
                } = &**cluster;
                let c = conn
                    .get_or_try_init(|| async {
                        match tokio::time::timeout(*timeout, client.get_async_connection()).await {
                            Ok(r) => r,
                            Err(_) => Err(redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "timed out connecting to the cluster",
                            ))),
                        }
                    })
                    .await?;
                Ok(Handle::Cluster(c.clone()))
            }
        }
    }

    /// Runs `f` with a connection handle, bounded by `timeout` overall.
    ///
    /// A connection found broken (Redis restarted, network cut) is replaced
    /// by the client after the failing call; that call is tried once more
    /// on the new connection, so the first request after Redis comes back
    /// does not fail. Every call is safe to repeat: plain reads, `SET`s of
    /// the same value, scripts that end in the same state, `PUBLISH` of an
    /// idempotent eviction, and `SET NX` (a repeat finds our own lock and
    /// reports it taken; it expires within seconds).
    pub(super) async fn run<T, F, Fut>(
        &self,
        timeout: Duration,
        what: &str,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(Handle) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let call = async {
            let h = self.handle().await?;
            match f(h).await {
                Err(e) if e.is_unrecoverable_error() || e.is_connection_dropped() => {
                    tracing::debug!(error = %describe(&e), "redis connection broken; retrying once on a new one");
                    let h = self.handle().await?;
                    f(h).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError(format!("redis {what}: {}", describe(&e)))),
            Err(_) => Err(StoreError(format!(
                "redis {what}: no answer within {} ms (is Redis up and reachable?)",
                timeout.as_millis()
            ))),
        }
    }
}

// === impl Single ===

impl Single {
    /// This proxy thread's own connection (opened on first use), or the
    /// shared one outside a proxy thread (a multi-threaded runtime, where a
    /// task may move between threads) or if one cannot be made.
    fn for_this_thread(&self) -> ConnectionManager {
        let on_own_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if !on_own_thread {
            return self.shared.clone();
        }
        THREAD_CONN
            .try_with(|c| {
                let mut c = c.borrow_mut();
                let slot = c.for_owner(self.number);
                if slot.is_none() {
                    *slot = ConnectionManager::new_lazy_with_config(
                        self.client.clone(),
                        self.config.clone(),
                    )
                    .ok();
                }
                slot.clone()
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| self.shared.clone())
    }
}

/// A cheap clone of the connection, usable with any `redis` API.
pub(super) enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// An error text without the URL (it may hold a password).
fn redacted(key: &str, e: &redis::RedisError) -> StoreError {
    StoreError(format!(
        "session.{key} cannot be used ({:?}): check the scheme (redis:// or rediss://), host, port and database number",
        e.kind()
    ))
}

/// What went wrong, for logs: the error kind and Redis's message, never
/// the connection details.
pub(super) fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connection_refusal() {
        "connection refused (is Redis running?)".into()
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost or not established".into()
    } else {
        match e.detail() {
            Some(d) => format!("{:?}: {d}", e.kind()),
            None => format!("{:?}", e.kind()),
        }
    }
}
