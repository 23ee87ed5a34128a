//! One cached provider document (discovery or JWKS) and its single-flight
//! fetch: concurrent fetches of the document wait for the one in flight and
//! share its outcome, so a burst of logins (or of tokens with an unknown
//! `kid`) makes one request to the provider, not one each.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A cached document of type `T` and the lock its fetches take turns on.
pub(super) struct Flight<T> {
    /// The last document fetched successfully (or configured by hand).
    cached: RwLock<Option<Arc<T>>>,
    /// Number of finished fetches, successful or not.
    done: AtomicU64,
    /// Held while fetching; holds the last fetch's error (`None` after a success).
    lock: tokio::sync::Mutex<Option<String>>,
}

impl<T> Flight<T> {
    pub(super) fn new(initial: Option<Arc<T>>) -> Flight<T> {
        Flight {
            cached: RwLock::new(initial),
            done: AtomicU64::new(0),
            lock: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn cached(&self) -> Option<Arc<T>> {
        self.cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many fetches have finished: pass it to [`Flight::fetch`] as `seen`
    /// to mean "unless one finished since".
    pub(super) fn finished(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// Waits for any fetch in flight, then fetches with `download`, unless
    /// `already_done(finished fetches, cached document)` says a fetch that
    /// finished meanwhile did the work: then the cached document is answered
    /// (a copy that serves is better than an error), else that fetch's error.
    /// With neither, it fetches.
    pub(super) async fn fetch<F, Fut>(
        &self,
        already_done: impl FnOnce(u64, Option<&T>) -> bool,
        download: F,
    ) -> Result<Arc<T>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let mut last_error = self.lock.lock().await;
        let cached = self.cached();
        if already_done(self.finished(), cached.as_deref()) {
            match (cached, last_error.as_ref()) {
                (Some(doc), _) => return Ok(doc),
                (None, Some(e)) => return Err(e.clone()),
                (None, None) => {}
            }
        }
        let result = download().await;
        self.done.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(doc) => {
                let doc = Arc::new(doc);
                *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(doc.clone());
                *last_error = None;
                Ok(doc)
            }
            Err(e) => {
                *last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Waits until no fetch is in flight.
    pub(super) async fn settled(&self) {
        drop(self.lock.lock().await);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn concurrent_fetches_share_one_download() {
        let flight = Arc::new(Flight::<u32>::new(None));
        let downloads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flight, downloads) = (flight.clone(), downloads.clone());
            let seen = flight.finished();
            tasks.push(tokio::spawn(async move {
                flight
                    .fetch(
                        |done, _| done != seen,
                        || async {
                            downloads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok(7)
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(*t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(downloads.load(Ordering::SeqCst), 1);
        assert_eq!(flight.finished(), 1);
    }

    #[tokio::test]
    async fn a_failure_is_shared_then_the_next_fetch_tries_again() {
        let flight = Flight::<u32>::new(None);
        let seen = flight.finished();
        let first = flight
            .fetch(|d, _| d != seen, || async { Err("down".to_string()) })
            .await;
        assert_eq!(first.unwrap_err(), "down");
        // A waiter that saw the count before that failure gets the failure.
        let waiter = flight.fetch(|d, _| d != seen, || async { Ok(1) }).await;
        assert_eq!(waiter.unwrap_err(), "down");
        // A new fetch downloads again, and a success clears the error.
        let seen = flight.finished();
        let again = flight.fetch(|d, _| d != seen, || async { Ok(2) }).await;
        assert_eq!(*again.unwrap(), 2);
        let waiter = flight.fetch(|_, _| true, || async { Ok(3) }).await;
        assert_eq!(*waiter.unwrap(), 2, "the cached document, no download");
    }
}
