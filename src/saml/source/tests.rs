//! The background metadata refresh, against a metadata server on loopback
//! whose answer the test switches: a new document is picked up by the next
//! `get` without any request fetching it, a failing refresh keeps the good
//! copy (and is counted), and a rollover document pins both certificates.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const IDP: &str = "https://idp.example.test/";

fn cert() -> Vec<u8> {
    let kp = rcgen::KeyPair::generate().expect("keypair");
    rcgen::CertificateParams::new(vec!["idp.example.test".into()])
        .expect("params")
        .self_signed(&kp)
        .expect("cert")
        .der()
        .to_vec()
}

fn metadata(certs: &[&[u8]], sso: &str) -> String {
    use base64::Engine as _;
    let kds: String = certs
        .iter()
        .map(|c| {
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        })
        .collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{kds}<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

type Body = Arc<Mutex<Option<String>>>;

/// Serves `body` (None: 503) on 127.0.0.1, counting requests.
async fn server(body: Body, hits: Arc<std::sync::atomic::AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/metadata", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
            let current = body.lock().expect("lock").clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while read < buf.len() {
                    match sock.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let response = match current {
                    Some(b) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                        b.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                };
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    url
}

/// Polls `probe` until it holds, for at most 20 s.
async fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cached(cache: &MetadataCache) -> Option<Arc<IdpMetadata>> {
    cache.lock().good.as_ref().map(|(m, _)| m.clone())
}

#[tokio::test]
async fn the_background_refresh_follows_the_idp_and_keeps_the_copy_when_it_fails() {
    let (a, b) = (cert(), cert());
    let body: Body = Arc::new(Mutex::new(Some(metadata(
        &[&a],
        "https://idp.example.test/sso1",
    ))));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = server(body.clone(), hits.clone()).await;
    let http = HttpClient::new().expect("client");
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let cache = Arc::new(MetadataCache::with_timings(
        &url,
        Protocol::Saml,
        Duration::from_millis(50),
        Duration::from_millis(50),
    ));
    let task =
        spawn_refresh(&cache, http.clone(), metrics.clone(), "fab".into()).expect("in a runtime");

    // Fetched at start, without any request asking.
    eventually("the first fetch", || cached(&cache).is_some()).await;
    assert_eq!(
        cache.get(&http).await.expect("copy").sso_url,
        "https://idp.example.test/sso1"
    );

    // Rollover: the IdP publishes both certificates; both are pinned, and
    // the next sign-in uses the new copy.
    *body.lock().expect("lock") = Some(metadata(&[&a, &b], "https://idp.example.test/sso2"));
    eventually("the rollover document", || {
        cached(&cache).is_some_and(|m| m.sso_url.ends_with("sso2"))
    })
    .await;
    let md = cache.get(&http).await.expect("copy");
    assert_eq!(format!("{:?}", md.trust), "IdpTrust(2 certificate(s))");
    // Both certificates' expiry is a metric (one series each).
    let idp_series = |m: &crate::metrics::Metrics| {
        m.render(crate::metrics::Format::Prometheus)
            .lines()
            .filter(|l| l.starts_with("realmgate_certificate_not_after_seconds{"))
            .filter(|l| l.contains("kind=\"idp_signing\"") && l.contains("name=\"fab\""))
            .count()
    };
    eventually("two idp_signing series", || idp_series(&metrics) == 2).await;

    // The IdP goes down: the good copy keeps serving, the failure counted.
    *body.lock().expect("lock") = None;
    eventually("a failed refresh", || cache.failing()).await;
    let md = cache.get(&http).await.expect("the last good copy");
    assert!(md.sso_url.ends_with("sso2"));
    let exposition = metrics.render(crate::metrics::Format::Prometheus);
    assert!(
        exposition.contains("saml_metadata") && exposition.contains("error"),
        "{exposition}"
    );

    // Back up, with the old certificate retired.
    *body.lock().expect("lock") = Some(metadata(&[&b], "https://idp.example.test/sso3"));
    eventually("recovery", || {
        cached(&cache).is_some_and(|m| m.sso_url.ends_with("sso3")) && !cache.failing()
    })
    .await;
    let md = cache.get(&http).await.expect("copy");
    assert_eq!(format!("{:?}", md.trust), "IdpTrust(1 certificate(s))");
    eventually("the retired certificate's series gone", || {
        idp_series(&metrics) == 1
    })
    .await;

    // Requests never fetched: every hit was the background task's (its
    // cadence is what the server saw; `get` served the copy each time).
    task.abort();
    let before = hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        cache.get(&http).await.expect("copy");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "get fetched while refreshed in the background"
    );
}

#[tokio::test]
async fn without_a_good_copy_the_failure_is_the_answer_and_the_task_ends_with_the_cache() {
    let body: Body = Arc::new(Mutex::new(None));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = server(body, hits.clone()).await;
    let http = HttpClient::new().expect("client");
    let cache = Arc::new(MetadataCache::with_timings(
        &url,
        Protocol::Saml,
        Duration::from_millis(20),
        Duration::from_millis(20),
    ));
    let task = spawn_refresh(
        &cache,
        http.clone(),
        Arc::new(crate::metrics::Metrics::new()),
        "down".into(),
    )
    .expect("in a runtime");
    eventually("a failed fetch", || cache.failing()).await;
    assert!(matches!(
        cache.get(&http).await,
        Err(SourceError::Unavailable(_))
    ));
    // Dropping the cache ends the task at its next round.
    drop(cache);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !task.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the refresh task outlived its cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a signature no pinned certificate verifies: one fetch, whose
/// newer copy is answered; a sign-in that started on the old copy gets the
/// newer one without fetching; once the newer copy fails too, nothing
/// more is fetched within the minute; the copy that failed is never
/// answered.
#[tokio::test]
async fn an_unknown_key_refetches_once_a_minute_and_never_answers_the_copy_that_failed() {
    let (a, b) = (cert(), cert());
    let body: Body = Arc::new(Mutex::new(Some(metadata(
        &[&a],
        "https://idp.example.test/sso",
    ))));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = server(body.clone(), hits.clone()).await;
    let http = HttpClient::new().expect("client");
    let cache = MetadataCache::new(&url, Protocol::Saml);
    let old = cache.get(&http).await.expect("first copy");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The IdP publishes its next certificate after our fetch.
    *body.lock().expect("lock") = Some(metadata(&[&a, &b], "https://idp.example.test/sso"));
    let (newer, fetched) = cache.refetch_for_unknown_key(&http, &old).await;
    let newer = newer.expect("a newer copy");
    assert_eq!(fetched, Some(true));
    assert_eq!(format!("{:?}", newer.trust), "IdpTrust(2 certificate(s))");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // A sign-in that failed on the old copy meanwhile: the newer copy, no fetch.
    let (again, fetched) = cache.refetch_for_unknown_key(&http, &old).await;
    assert!(Arc::ptr_eq(&again.expect("newer"), &newer));
    assert_eq!(fetched, None);
    // A failure on the newer copy within the minute: nothing, no fetch.
    for _ in 0..5 {
        assert_eq!(cache.refetch_for_unknown_key(&http, &newer).await.1, None);
        assert!(cache
            .refetch_for_unknown_key(&http, &newer)
            .await
            .0
            .is_none());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(Arc::ptr_eq(&cache.get(&http).await.expect("copy"), &newer));
}

/// Concurrent failures share one refetch; an IdP that is down yields no
/// newer copy, keeps the good one, and is counted as a failed fetch.
#[tokio::test]
async fn concurrent_unknown_keys_share_one_refetch_and_a_down_idp_answers_none() {
    let a = cert();
    let body: Body = Arc::new(Mutex::new(Some(metadata(
        &[&a],
        "https://idp.example.test/sso",
    ))));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = server(body.clone(), hits.clone()).await;
    let http = HttpClient::new().expect("client");
    let cache = MetadataCache::new(&url, Protocol::Saml);
    let old = cache.get(&http).await.expect("first copy");
    let answers =
        futures_util::future::join_all((0..16).map(|_| cache.refetch_for_unknown_key(&http, &old)))
            .await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "one refetch for 16 failures"
    );
    assert_eq!(answers.iter().filter(|(_, f)| f.is_some()).count(), 1);
    let first = answers[0].0.clone().expect("newer");
    assert!(answers
        .iter()
        .all(|(md, _)| md.as_ref().is_some_and(|m| Arc::ptr_eq(m, &first))));

    let cache = MetadataCache::new(&url, Protocol::Saml);
    let old = cache.get(&http).await.expect("copy");
    *body.lock().expect("lock") = None;
    let (newer, fetched) = cache.refetch_for_unknown_key(&http, &old).await;
    assert!(newer.is_none());
    assert_eq!(fetched, Some(false));
    assert!(Arc::ptr_eq(&cache.get(&http).await.expect("kept"), &old));
}
