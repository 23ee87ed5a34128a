//! Load client of `bench/ldap.sh` (see docs/benchmarks.md "LDAP sign-in").
//!
//! ```text
//! ldap_bench bind   <ldaps-url> <ca.pem> <dn> <password> <seconds> <concurrency>
//! ldap_bench signin <gateway-addr> <host> <connection> <login> <password> <seconds> <concurrency>
//! ```
//!
//! `bind`: what a direct client does per sign-in: a new TLS connection,
//! one simple bind, unbind (ldap3 over rustls, as realmgate).
//! `signin`: a browser's sign-in through realmgate: `GET
//! /.auth/login/{connection}` (the form and its token), then `POST` of the
//! form, which must answer 302 with a session cookie. Each sign-in uses a
//! fresh cookie jar. Prints operations, rate, p50/p90/p99 latency (of the
//! bind; of the POST alone and of GET+POST for sign-ins). Every loop ends at
//! the deadline; failures are counted and printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

fn usage() -> ! {
    eprintln!("usage: ldap_bench bind <url> <ca.pem> <dn> <password> <seconds> <concurrency>\n       ldap_bench signin <addr> <host> <connection> <login> <password> <seconds> <concurrency>");
    std::process::exit(2)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn report(name: &str, mut lat: Vec<Duration>, failures: usize, elapsed: Duration) {
    lat.sort();
    println!(
        "{name}: ok={} failed={failures} rate={:.1}/s p50={:.2}ms p90={:.2}ms p99={:.2}ms",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("bind") if args.len() == 8 => bind(&args[2..]).await,
        Some("signin") if args.len() == 9 => signin(&args[2..]).await,
        _ => usage(),
    }
}

/// A connection as realmgate makes it: TCP_NODELAY on (ldap3 leaves Nagle's
/// algorithm on, which costs a ~40 ms delayed-ACK stall per bind); with
/// `NAGLE=1` in the environment, ldap3's own connect (to show the stall).
async fn connect(
    settings: LdapConnSettings,
    url: &str,
) -> Result<(ldap3::LdapConnAsync, ldap3::Ldap), ldap3::LdapError> {
    if std::env::var_os("NAGLE").is_some_and(|v| v == "1") {
        return LdapConnAsync::with_settings(settings, url).await;
    }
    let u = url::Url::parse(url).map_err(ldap3::LdapError::from)?;
    let host = u.host_str().unwrap_or("localhost").to_string();
    let tcp = tokio::net::TcpStream::connect((host.as_str(), u.port().unwrap_or(636))).await?;
    tcp.set_nodelay(true)?;
    let settings = settings.set_std_stream(ldap3::StdStream::Tcp(tcp.into_std()?));
    LdapConnAsync::with_settings(settings, url).await
}

async fn bind(a: &[String]) {
    let (url, ca, dn, pw) = (a[0].clone(), &a[1], a[2].clone(), a[3].clone());
    let secs: u64 = a[4].parse().unwrap_or_else(|_| usage());
    let conc: usize = a[5].parse().unwrap_or_else(|_| usage());
    let certs: Vec<_> = CertificateDer::pem_file_iter(ca)
        .expect("CA file")
        .collect::<Result<_, _>>()
        .expect("CA PEM");
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (url, dn, pw, tls) = (url.clone(), dn.clone(), pw.clone(), tls.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let settings = LdapConnSettings::new()
                    .set_conn_timeout(Duration::from_secs(5))
                    .set_config(tls.clone());
                let ok = match connect(settings, &url).await {
                    Ok((conn, mut ldap)) => {
                        tokio::spawn(async move {
                            let _ = conn.drive().await;
                        });
                        let r = ldap
                            .simple_bind(&dn, &pw)
                            .await
                            .map(|r| r.rc == 0)
                            .unwrap_or(false);
                        let _ = ldap.unbind().await;
                        r
                    }
                    Err(_) => false,
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            (lat, failed)
        }));
    }
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.expect("task");
        lat.extend(l);
        failed += f;
    }
    report("direct bind", lat, failed, start.elapsed());
}

async fn signin(a: &[String]) {
    let addr: std::net::SocketAddr = a[0].parse().unwrap_or_else(|_| usage());
    let (host, conn, login, pw) = (a[1].clone(), a[2].clone(), a[3].clone(), a[4].clone());
    let secs: u64 = a[5].parse().unwrap_or_else(|_| usage());
    let conc: usize = a[6].parse().unwrap_or_else(|_| usage());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (host, conn, login, pw) = (host.clone(), conn.clone(), login.clone(), pw.clone());
        tasks.push(tokio::spawn(async move {
            let (mut post_lat, mut whole_lat, mut failed) = (Vec::new(), Vec::new(), 0usize);
            let base = format!("http://{host}:{}", addr.port());
            while Instant::now() < deadline {
                let client = reqwest::Client::builder()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .resolve(&host, addr)
                    .build()
                    .expect("client");
                let t = Instant::now();
                let form = match client
                    .get(format!("{base}/.auth/login/{conn}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
                    _ => {
                        failed += 1;
                        continue;
                    }
                };
                let marker = "name=\"csrf\" value=\"";
                let Some(token) = form.find(marker).and_then(|i| {
                    let rest = &form[i + marker.len()..];
                    rest.find('"').map(|j| rest[..j].to_string())
                }) else {
                    failed += 1;
                    continue;
                };
                let p = Instant::now();
                let ok = client
                    .post(format!("{base}/.auth/login/{conn}"))
                    .form(&[
                        ("csrf", token.as_str()),
                        ("username", login.as_str()),
                        ("password", pw.as_str()),
                    ])
                    .send()
                    .await
                    .map(|r| r.status() == 302)
                    .unwrap_or(false);
                if ok {
                    post_lat.push(p.elapsed());
                    whole_lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            (post_lat, whole_lat, failed)
        }));
    }
    let (mut post, mut whole, mut failed) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (p, w, f) = t.await.expect("task");
        post.extend(p);
        whole.extend(w);
        failed += f;
    }
    let elapsed = start.elapsed();
    report("sign-in POST", post, failed, elapsed);
    report("sign-in GET+POST", whole, failed, elapsed);
}
