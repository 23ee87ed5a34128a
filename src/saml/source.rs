//! IdP metadata from `idp_metadata_url` / `metadata_url`: fetched with the
//! gateway's strict HTTP client (https, no redirects, 1 MiB, 10 s), cached,
//! and the last good copy kept when a refresh fails (SPEC §6: an unreachable
//! provider stops new sign-ins with a 503 only when there is no good copy,
//! and never touches sessions).
//!
//! Refreshing: [`spawn_refresh`] fetches the document when the connection is
//! set up (startup, config reload) and then every [`REFRESH_AFTER`] (with a
//! little jitter, so replicas do not fetch in step) in the background; a
//! failure is logged, counted (`realmgate_idp_requests_total{kind=
//! "saml_metadata", outcome="error"}`) and retried after [`RETRY_AFTER`],
//! and the good copy keeps serving. A new copy is used by the next sign-in
//! (an IdP's certificate rollover publishes both certificates for days
//! before switching: both are pinned meanwhile). An IdP that signs with a
//! key it published after our last fetch is followed at once:
//! [`MetadataCache::refetch_for_unknown_key`] (at most one fetch per
//! [`UNKNOWN_KEY_REFETCH_EVERY`], shared by concurrent sign-ins) gives the
//! sign-in a newer copy to check its response against once more. Without a background task
//! (no runtime), [`MetadataCache::get`] refreshes a copy older than
//! [`REFRESH_AFTER`] itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::config::Protocol;
use super::metadata::{parse_idp_metadata, IdpMetadata};
use crate::http_client::HttpClient;

/// How often the metadata is fetched again (AD FS publishes its next
/// signing certificate days before using it; Entra weeks before).
pub const REFRESH_AFTER: Duration = Duration::from_secs(3600);

/// After a failed refresh, how long before trying again (a down IdP is not
/// hammered by every sign-in).
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// After a signature that no pinned certificate verifies, at most one
/// metadata refetch per connection in this time (a flood of forged
/// responses cannot make us hammer the IdP).
pub const UNKNOWN_KEY_REFETCH_EVERY: Duration = Duration::from_secs(60);

/// Why metadata is not available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The IdP could not be reached or answered an error status: 503.
    #[error("the IdP metadata cannot be fetched: {0}")]
    Unavailable(String),
    /// The IdP answered, with something unusable: 503 too, but the message
    /// says what to fix at the IdP or in the configuration.
    #[error("the IdP metadata is not usable: {0}")]
    Invalid(String),
}

/// Parses metadata of either protocol into what sign-in needs (for WS-Fed
/// the passive endpoint takes the SSO URL's place).
pub fn parse_for(protocol: Protocol, raw: &[u8]) -> Result<IdpMetadata, String> {
    match protocol {
        Protocol::Saml => parse_idp_metadata(raw),
        Protocol::WsFed => {
            super::wsfed::parse_wsfed_metadata(raw).map(|(entity_id, sso_url, trust)| IdpMetadata {
                entity_id,
                sso_url,
                slo_url: None,
                trust,
            })
        }
    }
}

/// One GET of the metadata URL.
pub async fn fetch(
    client: &HttpClient,
    url: &str,
    protocol: Protocol,
) -> Result<IdpMetadata, SourceError> {
    let request = http::Request::get(url)
        .header(
            http::header::ACCEPT,
            "application/samlmetadata+xml, application/xml, text/xml",
        )
        .header(http::header::USER_AGENT, crate::http_client::user_agent())
        .body(Vec::new())
        .map_err(|e| SourceError::Invalid(format!("bad metadata URL: {e}")))?;
    let response = client
        .execute(request)
        .await
        .map_err(|e| SourceError::Unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(SourceError::Unavailable(format!(
            "the IdP answered HTTP {}",
            response.status().as_u16()
        )));
    }
    parse_for(protocol, response.body()).map_err(SourceError::Invalid)
}

struct State {
    good: Option<(Arc<IdpMetadata>, Instant)>,
    last_failure: Option<(SourceError, Instant)>,
}

/// The cached metadata of one connection.
pub struct MetadataCache {
    url: String,
    protocol: Protocol,
    refresh_after: Duration,
    retry_after: Duration,
    state: Mutex<State>,
    /// A background task refreshes this cache ([`spawn_refresh`]): a
    /// request never fetches while a good copy exists.
    background: AtomicBool,
    /// When the last refetch for an unknown signing key was started. An
    /// async lock: concurrent sign-ins wait for the one refetch under way
    /// (bounded by the HTTP client's timeout) and use its result.
    unknown_key_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl MetadataCache {
    pub fn new(url: &str, protocol: Protocol) -> MetadataCache {
        MetadataCache::with_timings(url, protocol, REFRESH_AFTER, RETRY_AFTER)
    }

    /// With other refresh and retry intervals (tests use zero).
    pub fn with_timings(
        url: &str,
        protocol: Protocol,
        refresh_after: Duration,
        retry_after: Duration,
    ) -> MetadataCache {
        MetadataCache {
            url: url.to_string(),
            protocol,
            refresh_after,
            retry_after,
            state: Mutex::new(State {
                good: None,
                last_failure: None,
            }),
            background: AtomicBool::new(false),
            unknown_key_refetch: tokio::sync::Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The metadata to use now: the cached copy while fresh (always, while
    /// a background task refreshes it); else a fetch, falling back to the
    /// last good copy when it fails. Err only when no good copy was ever
    /// fetched.
    pub async fn get(&self, client: &HttpClient) -> Result<Arc<IdpMetadata>, SourceError> {
        let now = Instant::now();
        let background = self.background.load(Ordering::Relaxed);
        {
            let st = self.lock();
            match (&st.good, &st.last_failure) {
                (Some((md, at)), _)
                    if background || now.duration_since(*at) < self.refresh_after =>
                {
                    return Ok(md.clone())
                }
                // A recent failure: do not retry on every request.
                (good, Some((err, at))) if now.duration_since(*at) < self.retry_after => {
                    return good
                        .as_ref()
                        .map(|(m, _)| m.clone())
                        .ok_or_else(|| err.clone());
                }
                _ => {}
            }
        }
        self.refresh(client).await
    }

    /// Fetches the document now: a usable one replaces the copy (and is
    /// answered); on failure the failure is remembered and the last good
    /// copy answered, if any.
    pub async fn refresh(&self, client: &HttpClient) -> Result<Arc<IdpMetadata>, SourceError> {
        match fetch(client, &self.url, self.protocol).await {
            Ok(md) => {
                let md = Arc::new(md);
                let mut st = self.lock();
                st.good = Some((md.clone(), Instant::now()));
                st.last_failure = None;
                Ok(md)
            }
            Err(e) => {
                let mut st = self.lock();
                let stale = st.good.as_ref().map(|(m, _)| m.clone());
                tracing::warn!(url = %self.url, error = %e, kept_previous = stale.is_some(), "IdP metadata refresh failed");
                st.last_failure = Some((e.clone(), Instant::now()));
                stale.ok_or(e)
            }
        }
    }

    /// A response failed because no pinned certificate of `used` verified
    /// its signature (maybe the IdP rolled over after our last fetch).
    /// Returns newer metadata to verify with once more, or None. Newer
    /// means: a copy that replaced `used` since (another sign-in's refetch,
    /// or the background refresh; no fetch then), else a fetch, at most one
    /// per [`UNKNOWN_KEY_REFETCH_EVERY`]. The boolean says whether this
    /// call fetched (for the metrics). Never answers `used` itself: what
    /// failed on it stays refused.
    pub async fn refetch_for_unknown_key(
        &self,
        client: &HttpClient,
        used: &Arc<IdpMetadata>,
    ) -> (Option<Arc<IdpMetadata>>, Option<bool>) {
        let mut last = self.unknown_key_refetch.lock().await;
        let newer = |md: Arc<IdpMetadata>| (!Arc::ptr_eq(&md, used)).then_some(md);
        if let Some(current) = self.lock().good.as_ref().map(|(m, _)| m.clone()) {
            if let Some(md) = newer(current) {
                return (Some(md), None);
            }
        }
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < UNKNOWN_KEY_REFETCH_EVERY) {
            return (None, None);
        }
        *last = Some(now);
        tracing::info!(url = %self.url, "a SAML signature matches no pinned IdP certificate: fetching the IdP metadata again");
        let fetched = self.refresh(client).await;
        let ok = fetched.is_ok() && !self.failing();
        (fetched.ok().and_then(newer), Some(ok))
    }

    /// True when the last fetch failed (and was not followed by a good one).
    pub fn failing(&self) -> bool {
        self.lock().last_failure.is_some()
    }
}

/// Starts the background refresh of `cache` (see the module doc): one fetch
/// now, then every `refresh_after` (every `retry_after` after a failure).
/// The task ends when the cache is dropped; the caller aborts it sooner
/// with the handle. None outside a tokio runtime (then requests refresh).
pub fn spawn_refresh(
    cache: &Arc<MetadataCache>,
    http: HttpClient,
    metrics: Arc<crate::metrics::Metrics>,
    connection: String,
) -> Option<tokio::task::AbortHandle> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    cache.background.store(true, Ordering::Relaxed);
    let weak: Weak<MetadataCache> = Arc::downgrade(cache);
    let task = handle.spawn(async move {
        let mut delay = Duration::ZERO;
        loop {
            tokio::time::sleep(delay).await;
            let Some(cache) = weak.upgrade() else {
                return;
            };
            let started = Instant::now();
            let fetched = cache.refresh(&http).await;
            let ok = fetched.is_ok() && !cache.failing();
            metrics.record_idp_call(&connection, "saml_metadata", started.elapsed(), ok);
            if let (true, Ok(md)) = (ok, &fetched) {
                // Their expiry is a metric, like a JWKS's `x5c`.
                let certs = md.trust.certs_der().iter();
                let certs = certs.filter_map(|der| crate::metrics::CertInfo::of_der(der));
                metrics.set_idp_certificates(&connection, certs.collect());
            }
            delay = if ok {
                jittered(cache.refresh_after)
            } else {
                cache.retry_after
            };
        }
    });
    Some(task.abort_handle())
}

/// `d` plus up to a tenth more, at random.
fn jittered(d: Duration) -> Duration {
    let tenth = d.as_millis() / 10;
    let extra = u64::try_from(tenth).unwrap_or(0);
    if extra == 0 {
        return d;
    }
    d.saturating_add(Duration::from_millis(rand::Rng::gen_range(
        &mut rand::thread_rng(),
        0..extra,
    )))
}

#[cfg(test)]
mod tests;
