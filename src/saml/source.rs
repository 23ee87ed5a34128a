//! IdP metadata from `idp_metadata_url` / `metadata_url`: fetched with the
//! gateway's strict HTTP client (https, no redirects, 1 MiB, 10 s), cached,
//! refreshed after [`REFRESH_AFTER`], and the last good copy kept when a
//! refresh fails (SPEC §6: an unreachable provider stops new sign-ins with a
//! 503 only when there is no good copy, and never touches sessions).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::Protocol;
use super::metadata::{parse_idp_metadata, IdpMetadata};
use crate::http_client::HttpClient;

/// How long a fetched copy is used before the next request refreshes it.
pub const REFRESH_AFTER: Duration = Duration::from_secs(3600);

/// After a failed refresh, how long before trying again (a down IdP is not
/// hammered by every sign-in).
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

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
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The metadata to use now: the cached copy while fresh; else a fetch,
    /// falling back to the last good copy when it fails. Err only when no
    /// good copy was ever fetched.
    pub async fn get(&self, client: &HttpClient) -> Result<Arc<IdpMetadata>, SourceError> {
        let now = Instant::now();
        let stale = {
            let st = self.lock();
            match (&st.good, &st.last_failure) {
                (Some((md, at)), _) if now.duration_since(*at) < self.refresh_after => {
                    return Ok(md.clone())
                }
                // A recent failure: do not retry on every request.
                (good, Some((err, at))) if now.duration_since(*at) < self.retry_after => {
                    return good
                        .as_ref()
                        .map(|(m, _)| m.clone())
                        .ok_or_else(|| err.clone());
                }
                (good, _) => good.as_ref().map(|(m, _)| m.clone()),
            }
        };
        match fetch(client, &self.url, self.protocol).await {
            Ok(md) => {
                let md = Arc::new(md);
                let mut st = self.lock();
                st.good = Some((md.clone(), Instant::now()));
                st.last_failure = None;
                Ok(md)
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, kept_previous = stale.is_some(), "IdP metadata refresh failed");
                self.lock().last_failure = Some((e.clone(), Instant::now()));
                stale.ok_or(e)
            }
        }
    }
}
