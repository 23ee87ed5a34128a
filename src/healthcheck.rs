//! `realmgate healthcheck`: the probe for container health checks (Docker
//! `HEALTHCHECK`, Compose `healthcheck`), so the image needs no shell, curl
//! or wget. It loads the configuration like `run` (file, then `REALMGATE_*`
//! variables), asks this instance and exits 0 when it answers 200, else 1
//! with the reason on stderr.
//!
//! By default it asks the admin listener's `/readyz` (SPEC 2): 200 when the
//! configuration is loaded, the listeners are bound and the session store
//! answers; 503 while shutting down. With `--traffic` it asks
//! `GET /.auth/health` on the proxy listener instead (what a load balancer
//! probing the traffic port sees; plain HTTP only). An unspecified listen
//! address (`0.0.0.0`, `::`) is asked on the loopback address of its family.
//! Blocking, bounded by [`TIMEOUT`] per step; nothing is sent but the request
//! line and `Host`.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::Settings;

/// Connect, write and read timeout of the probe, each.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Which endpoint the probe asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The admin listener's `/readyz`.
    Admin,
    /// The proxy listener's `/.auth/health`.
    Traffic,
}

/// The address and path to ask, or why this configuration cannot be probed.
pub fn target(settings: &Settings, probe: Probe) -> Result<(SocketAddr, &'static str), String> {
    let (key, listen, path) = match probe {
        Probe::Admin => ("admin.listen", settings.admin.listen, "/readyz"),
        Probe::Traffic => {
            if settings.server.tls.is_some() {
                return Err("server.tls is set, so the proxy listener speaks TLS; probe the admin listener instead (realmgate healthcheck without --traffic)".into());
            }
            (
                "server.listen",
                settings.server.listen,
                crate::server::HEALTH_PATH,
            )
        }
    };
    if listen.port() == 0 {
        return Err(format!(
            "{key} has port 0 (any free port), so there is no known port to probe; configure a fixed port"
        ));
    }
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok((SocketAddr::new(ip, listen.port()), path))
}

/// `GET path` at `addr`: Ok with the status line when it is 200, else why not.
pub fn probe(addr: SocketAddr, path: &str) -> Result<String, String> {
    let url = format!("http://{addr}{path}");
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("GET {url}: cannot connect ({e}); is realmgate running?"))?;
    let io = |e: std::io::Error| format!("GET {url}: {e}");
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // The admin Host check accepts an IP address (SPEC 6.1).
    let host = match addr.ip() {
        IpAddr::V4(_) => addr.ip().to_string(),
        IpAddr::V6(_) => format!("[{}]", addr.ip()),
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: realmgate-healthcheck\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    // The status line and the start of the body are enough.
    let mut head = [0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if got > 0 && is_timeout(&e) => break,
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&head[..got]);
    let status_line = text.lines().next().unwrap_or_default().trim().to_string();
    let status = status_line.split_ascii_whitespace().nth(1);
    if status == Some("200") {
        return Ok(format!("GET {url}: {status_line}"));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or_default();
    Err(if status_line.is_empty() {
        format!("GET {url}: no answer")
    } else {
        format!("GET {url}: {status_line} {body}")
            .trim_end()
            .to_string()
    })
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_asked_on_loopback_and_port_0_is_refused() {
        let mut s = crate::config::load_str(
            "[server]\nlisten = \"0.0.0.0:8080\"\n[admin]\nlisten = \"[::]:9090\"\n[session]\nsecret = \"0123456789abcdef0123456789abcdef0123\"\n[[route]]\nname = \"app\"\nhosts = [\"app.test\"]\nupstream = \"http://127.0.0.1:9\"\npublic = [\"/\"]\n",
        )
        .unwrap();
        assert_eq!(
            target(&s, Probe::Admin).unwrap(),
            ("[::1]:9090".parse().unwrap(), "/readyz")
        );
        assert_eq!(
            target(&s, Probe::Traffic).unwrap(),
            ("127.0.0.1:8080".parse().unwrap(), "/.auth/health")
        );
        s.admin.listen = "127.0.0.1:0".parse().unwrap();
        assert!(target(&s, Probe::Admin)
            .unwrap_err()
            .contains("admin.listen has port 0"));
    }

    #[test]
    fn a_closed_port_is_a_clear_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = probe(addr, "/readyz").unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
