use super::*;

fn route(upstream: &str, preserve_host: bool) -> Arc<RouteSettings> {
    let toml = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "c"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "y"
[[route]]
name = "r"
hosts = ["app.example.com"]
upstream = "{upstream}"
preserve_host = {preserve_host}
"#
    );
    crate::config::load_str(&toml).expect("valid").routes[0].clone()
}

#[test]
fn upstream_uri_joins_base_path_and_keeps_query() {
    let cases = [
        (
            "http://10.0.0.1:8080",
            "/a/b?x=1&y",
            "http://10.0.0.1:8080/a/b?x=1&y",
        ),
        ("http://10.0.0.1:8080/", "/", "http://10.0.0.1:8080/"),
        (
            "https://app.internal/base/",
            "/a?q",
            "https://app.internal/base/a?q",
        ),
        (
            "https://app.internal/base",
            "/a",
            "https://app.internal/base/a",
        ),
        ("http://[::1]:9000", "/x", "http://[::1]:9000/x"),
        ("http://10.0.0.1", "/%2e%2e/x", "http://10.0.0.1/%2e%2e/x"),
    ];
    for (up, incoming, want) in cases {
        let r = route(up, true);
        let got = upstream_uri(&r, &incoming.parse().unwrap()).unwrap();
        assert_eq!(got.to_string(), want, "{up} + {incoming}");
    }
    // An absolute-form request target must not redirect the request elsewhere.
    let r = route("http://10.0.0.1:8080", true);
    let got = upstream_uri(&r, &"http://evil.example/steal?x".parse().unwrap()).unwrap();
    assert_eq!(got.to_string(), "http://10.0.0.1:8080/steal?x");
}

#[test]
fn upstream_host_is_the_upstream_authority() {
    assert_eq!(
        upstream_host(&route("http://10.0.0.1:8080/b", false)).unwrap(),
        "10.0.0.1:8080"
    );
    assert_eq!(
        upstream_host(&route("https://app.internal", false)).unwrap(),
        "app.internal"
    );
}

#[test]
fn routes_share_clients_by_upstream_ca_and_connect_timeout() {
    let a = route("http://10.0.0.1:1", true);
    let mut b = (*route("http://10.0.0.1:1/b", false)).clone();
    b.name = "b".into();
    let mut c = b.clone();
    c.name = "c".into();
    c.connect_timeout = Duration::from_secs(1);
    // Clients connect to their upstream whatever the request URI names
    // (`clients::ToUpstream`): another upstream needs clients of its own.
    let mut d = (*route("http://10.0.0.2:2", false)).clone();
    d.name = "d".into();
    let u = Upstreams::new(&[a, Arc::new(b), Arc::new(c), Arc::new(d)], 1).unwrap();
    assert!(Arc::ptr_eq(
        &u.by_route["r"].clients,
        &u.by_route["b"].clients
    ));
    assert!(!Arc::ptr_eq(
        &u.by_route["r"].clients,
        &u.by_route["c"].clients
    ));
    assert!(!Arc::ptr_eq(
        &u.by_route["r"].clients,
        &u.by_route["d"].clients
    ));
}

#[test]
fn an_upstream_ca_without_certificates_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let err = clients::load_ca(&path).unwrap_err();
    assert!(
        format!("{err:#}").contains("no usable CA certificate"),
        "{err:#}"
    );
    let cert = rcgen::generate_simple_self_signed(vec!["app.internal".into()]).unwrap();
    std::fs::write(&path, cert.cert.pem()).unwrap();
    assert_eq!(clients::load_ca(&path).unwrap().len(), 1);
}

#[test]
fn only_an_asked_for_protocol_is_tunnelled() {
    let v = |s: &'static str| HeaderValue::from_static(s);
    assert!(offered(&v("websocket"), &v("WebSocket")));
    assert!(offered(&v("foo, websocket"), &v("websocket")));
    assert!(!offered(&v("websocket"), &v("h2c")));
    assert!(!offered(&v("websocket"), &v("")));
    assert!(!offered(&v("websocket"), &v("websocket, h2c")));
}

/// A route `r` to `upstream` with `extra` TOML lines.
fn route_with(upstream: &str, extra: &str) -> Result<Arc<RouteSettings>, String> {
    let toml = format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "c"
type = "oidc"
issuer = "http://127.0.0.1:9/"
client_id = "x"
client_secret = "y"
[[route]]
name = "r"
hosts = ["app.example.com"]
upstream = "{upstream}"
{extra}
"#
    );
    crate::config::load_str(&toml)
        .map(|s| s.routes[0].clone())
        .map_err(|e| format!("{e:#}"))
}

#[test]
fn upstream_client_hyper_takes_the_route_out_of_the_own_pool() {
    use crate::config::UpstreamClient;
    let auto = route_with("http://10.0.0.1:8080", "").unwrap();
    assert_eq!(auto.upstream_client, UpstreamClient::Auto);
    let explicit = route_with("http://10.0.0.1:8080", r#"upstream_client = "auto""#).unwrap();
    assert_eq!(explicit.upstream_client, UpstreamClient::Auto);
    let mut forced =
        (*route_with("http://10.0.0.2:8080", r#"upstream_client = "hyper""#).unwrap()).clone();
    assert_eq!(forced.upstream_client, UpstreamClient::Hyper);
    forced.name = "forced".into();
    let tls = route_with("https://app.internal", r#"upstream_client = "hyper""#).unwrap();
    let mut tls = (*tls).clone();
    tls.name = "tls".into();

    let u = Upstreams::new(&[auto, Arc::new(forced), Arc::new(tls)], 1).unwrap();
    assert!(u.by_route["r"].plain.is_some());
    assert!(u.by_route["forced"].plain.is_none());
    assert!(u.by_route["tls"].plain.is_none());
}

#[test]
fn an_unknown_upstream_client_is_refused_naming_the_key() {
    let err = route_with("http://10.0.0.1:8080", r#"upstream_client = "own""#).unwrap_err();
    assert!(err.contains("upstream_client"), "{err}");
    assert!(err.contains("\"hyper\""), "{err}");
}

#[test]
fn connection_bound_credentials_are_recognised_in_any_spelling() {
    let with = |values: &[&str]| {
        let mut headers = http::HeaderMap::new();
        for v in values {
            headers.append(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        binds_connection(&headers)
    };
    for bound in [
        "NTLM TlRMTVNTUAABAAAA",
        "ntlm TlRMTVNTUAADAAAA",
        "Negotiate YIIG",
        "NEGOTIATE\tYIIG",
        " Negotiate YIIG",
        "Kerberos YIIG",
        "NTLM",
    ] {
        assert!(with(&[bound]), "{bound:?}");
        assert!(
            with(&["Basic dXNlcjpwYXNz", bound]),
            "second field {bound:?}"
        );
    }
    for not in [
        "Bearer x",
        "Basic dXNlcjpwYXNz",
        "Digest username=\"a\"",
        "NTLMx y",
        "Negotiated y",
    ] {
        assert!(!with(&[not]), "{not:?}");
    }
    assert!(!with(&[]));
}

#[test]
fn the_preserved_host_is_the_uri_authority_in_the_routers_form() {
    // hyper-util pools upstream connections by the URI's authority: it must
    // be one of the configured hosts, never the port, case or dot a client
    // chose (each would be a pool of its own).
    let uri: Uri = "https://10.0.0.1:8443/a?b".parse().unwrap();
    for (host, want) in [
        ("app.example.com", "app.example.com"),
        ("APP.example.com.:1234", "app.example.com"),
        ("app.example.com:65535", "app.example.com"),
        ("[::1]:8443", "[::1]"),
    ] {
        let got = with_host_authority(uri.clone(), &HeaderValue::from_static(host));
        assert_eq!(got.authority().unwrap().as_str(), want, "{host}");
        assert_eq!(got.scheme_str(), Some("https"));
        assert_eq!(got.path_and_query().unwrap().as_str(), "/a?b");
    }
    // Nothing the router would accept: the upstream's authority stays.
    let got = with_host_authority(uri.clone(), &HeaderValue::from_static("a b"));
    assert_eq!(got, uri);
}
