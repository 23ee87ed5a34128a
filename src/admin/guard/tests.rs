use super::*;

const TOKEN: &str = "0123456789abcdef0123456789abcdef-admin";

fn settings(token: Option<&str>, hosts: &[&str]) -> AdminSettings {
    AdminSettings {
        listen: "127.0.0.1:9090".parse().unwrap(),
        token: token.map(|t| Secret::new(t.as_bytes().to_vec())),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

/// `check` for `method path` with `headers` (name, value) pairs.
fn run(
    admin: &AdminSettings,
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
) -> Result<(), Refusal> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    check(admin, &method, &target.parse().unwrap(), &map)
}

const HOST: (&str, &[u8]) = ("host", b"127.0.0.1:9090");
const JSON: (&str, &[u8]) = ("content-type", b"application/json");

#[test]
fn only_the_probes_are_open() {
    assert!(is_open("/healthz") && is_open("/readyz"));
    for path in [
        "/metrics",
        "/sessions/revoke",
        "/sessions",
        "/",
        "/healthz/",
        "//metrics",
        "/Metrics",
    ] {
        assert!(!is_open(path), "{path}");
    }
}

#[test]
fn with_a_token_only_the_exact_bearer_token_passes() {
    let admin = settings(Some(TOKEN), &[]);
    let ok = |value: &str| {
        run(
            &admin,
            "GET",
            "/metrics",
            &[HOST, ("authorization", value.as_bytes())],
        )
    };
    assert_eq!(ok(&format!("Bearer {TOKEN}")), Ok(()));
    // The scheme is case-insensitive; 1*SP before the token; trailing OWS.
    assert_eq!(ok(&format!("bearer {TOKEN}")), Ok(()));
    assert_eq!(ok(&format!("BEARER {TOKEN}")), Ok(()));
    assert_eq!(ok(&format!("Bearer    {TOKEN}")), Ok(()));
    assert_eq!(ok(&format!("Bearer {TOKEN}  ")), Ok(()));
    for wrong in [
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Bearer {TOKEN}x"),
        format!("Bearer x{TOKEN}"),
        format!("Bearer {}", TOKEN.to_uppercase()),
        format!("Bearer {TOKEN} {TOKEN}"),
        format!("Bearer \"{TOKEN}\""),
        "Bearer x".to_string(),
    ] {
        assert_eq!(ok(&wrong), Err(Refusal::WrongToken), "{wrong}");
    }
    for missing in [
        "".to_string(),
        "Bearer".to_string(),
        TOKEN.to_string(),
        format!("Basic {TOKEN}"),
        format!("Token {TOKEN}"),
        format!("Bearer\t{TOKEN}"),
        format!("Bearer:{TOKEN}"),
        format!("BearerX {TOKEN}"),
    ] {
        assert_eq!(ok(&missing), Err(Refusal::MissingToken), "{missing:?}");
    }
    assert_eq!(
        run(&admin, "GET", "/metrics", &[HOST]),
        Err(Refusal::MissingToken)
    );
    // Two Authorization headers, even both right, are refused.
    let right = format!("Bearer {TOKEN}");
    assert_eq!(
        run(
            &admin,
            "GET",
            "/metrics",
            &[
                HOST,
                ("authorization", right.as_bytes()),
                ("authorization", right.as_bytes())
            ]
        ),
        Err(Refusal::MissingToken)
    );
    // Non-UTF-8 bytes are just a wrong token.
    assert_eq!(
        run(
            &admin,
            "GET",
            "/metrics",
            &[HOST, ("authorization", b"Bearer \xff\xfe")]
        ),
        Err(Refusal::WrongToken)
    );
}

#[test]
fn with_a_token_any_host_is_served() {
    let admin = settings(Some(TOKEN), &[]);
    let auth = format!("Bearer {TOKEN}");
    for host in [
        &b"evil.example"[..],
        b"realmgate.default.svc:9090",
        b"127.0.0.1",
    ] {
        assert_eq!(
            run(
                &admin,
                "GET",
                "/metrics",
                &[("host", host), ("authorization", auth.as_bytes())]
            ),
            Ok(()),
            "{host:?}"
        );
    }
}

#[test]
fn without_a_token_only_ip_localhost_and_listed_hosts_are_served() {
    let admin = settings(None, &["metrics.internal"]);
    for host in [
        &b"127.0.0.1"[..],
        b"127.0.0.1:9090",
        b"10.1.2.3:9090",
        b"[::1]:9090",
        b"[::1]",
        b"[2001:db8::1]:9090",
        b"localhost",
        b"LOCALHOST:9090",
        b"localhost.:9090",
        b"metrics.internal",
        b"Metrics.Internal:9090",
    ] {
        assert_eq!(
            run(&admin, "GET", "/metrics", &[("host", host)]),
            Ok(()),
            "{host:?}"
        );
    }
    for host in [
        &b"evil.example"[..],
        b"evil.example:9090",
        b"localhost.evil.example",
        b"127.0.0.1.evil.example",
        b"127.0.0.1.nip.io:9090",
        b"metrics.internal.evil.example",
        b"evilmetrics.internal",
        b"sub.localhost",
        b"2130706433",
        b"0x7f.1",
        b"",
        b"127.0.0.1:99999",
        b"user@127.0.0.1",
        b"127.0.0.1 evil.example",
        b"\xff",
    ] {
        assert_eq!(
            run(&admin, "GET", "/metrics", &[("host", host)]),
            Err(Refusal::Host),
            "{host:?}"
        );
    }
    // No Host at all, two Host headers, or a target authority that
    // disagrees with Host.
    assert_eq!(run(&admin, "GET", "/metrics", &[]), Err(Refusal::Host));
    assert_eq!(
        run(
            &admin,
            "GET",
            "/metrics",
            &[HOST, ("host", b"evil.example")]
        ),
        Err(Refusal::Host)
    );
    assert_eq!(
        run(&admin, "GET", "http://evil.example/metrics", &[HOST]),
        Err(Refusal::Host)
    );
    assert_eq!(
        run(&admin, "GET", "http://127.0.0.1:9090/metrics", &[HOST]),
        Ok(())
    );
    // The same rule for every guarded path and method.
    assert_eq!(
        run(
            &admin,
            "POST",
            "/sessions/revoke",
            &[("host", b"evil.example"), JSON]
        ),
        Err(Refusal::Host)
    );
}

#[test]
fn state_changing_requests_need_json() {
    for admin in [settings(None, &[]), settings(Some(TOKEN), &[])] {
        let auth = format!("Bearer {TOKEN}");
        let auth = ("authorization", auth.as_bytes());
        let post = |ct: Option<&[u8]>| {
            let mut h = vec![HOST, auth];
            if let Some(ct) = ct {
                h.push(("content-type", ct));
            }
            run(&admin, "POST", "/sessions/revoke", &h)
        };
        assert_eq!(post(Some(b"application/json")), Ok(()));
        assert_eq!(post(Some(b"Application/JSON; charset=utf-8")), Ok(()));
        for ct in [
            &b"text/plain"[..],
            b"text/plain; charset=application/json",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=x",
            b"application/jsonx",
            b"application/json-patch+json",
            b"",
        ] {
            assert_eq!(post(Some(ct)), Err(Refusal::NotJson), "{ct:?}");
        }
        assert_eq!(post(None), Err(Refusal::NotJson));
        // Any method other than GET/HEAD counts as changing state.
        for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(
                run(
                    &admin,
                    method,
                    "/sessions/revoke",
                    &[HOST, auth, ("content-type", b"text/plain")]
                ),
                Err(Refusal::NotJson),
                "{method}"
            );
        }
        // Two Content-Type headers are refused.
        assert_eq!(
            run(
                &admin,
                "POST",
                "/sessions/revoke",
                &[HOST, auth, JSON, ("content-type", b"text/plain")]
            ),
            Err(Refusal::NotJson)
        );
        // GET needs no content type.
        assert_eq!(run(&admin, "GET", "/metrics", &[HOST, auth]), Ok(()));
    }
}

#[test]
fn state_changing_requests_from_another_site_are_refused() {
    let admin = settings(None, &["metrics.internal"]);
    let post = |extra: &[(&str, &[u8])]| {
        let mut h = vec![HOST, JSON];
        h.extend_from_slice(extra);
        run(&admin, "POST", "/sessions/revoke", &h)
    };
    // A program sends neither header; the admin's own origin is fine.
    assert_eq!(post(&[]), Ok(()));
    assert_eq!(post(&[("origin", b"http://127.0.0.1:9090")]), Ok(()));
    assert_eq!(post(&[("sec-fetch-site", b"same-origin")]), Ok(()));
    assert_eq!(post(&[("sec-fetch-site", b"none")]), Ok(()));
    for origin in [
        &b"https://evil.example"[..],
        b"null",
        b"http://127.0.0.1",
        b"http://127.0.0.1:9091",
        b"https://127.0.0.1:9090",
        b"http://localhost:9090",
        b"http://127.0.0.1:9090.evil.example",
        b"http://127.0.0.1:9090/",
        b"",
        b"\xff",
    ] {
        assert_eq!(
            post(&[("origin", origin)]),
            Err(Refusal::CrossSite),
            "{origin:?}"
        );
    }
    for site in [
        &b"cross-site"[..],
        b"same-site",
        b"SAME-ORIGIN",
        b"whatever",
    ] {
        assert_eq!(
            post(&[("sec-fetch-site", site)]),
            Err(Refusal::CrossSite),
            "{site:?}"
        );
        // Even with a matching Origin: the browser's word on the site wins.
        assert_eq!(
            post(&[
                ("sec-fetch-site", site),
                ("origin", b"http://127.0.0.1:9090")
            ]),
            Err(Refusal::CrossSite)
        );
    }
    assert_eq!(
        post(&[
            ("origin", b"http://127.0.0.1:9090"),
            ("origin", b"http://127.0.0.1:9090")
        ]),
        Err(Refusal::CrossSite)
    );
    // Cross-site comes before the content type: a form from evil.example is
    // refused as cross-site whatever it declares.
    assert_eq!(
        run(
            &admin,
            "POST",
            "/sessions/revoke",
            &[
                HOST,
                ("origin", b"https://evil.example"),
                ("content-type", b"text/plain")
            ]
        ),
        Err(Refusal::CrossSite)
    );
    // GET is not judged by Origin (it changes nothing; CORS keeps the
    // answer from the other site, and rebinding is the Host check's job).
    assert_eq!(
        run(
            &admin,
            "GET",
            "/metrics",
            &[HOST, ("origin", b"https://evil.example")]
        ),
        Ok(())
    );
    // With a token the same rules hold.
    let admin = settings(Some(TOKEN), &[]);
    let auth = format!("Bearer {TOKEN}");
    assert_eq!(
        run(
            &admin,
            "POST",
            "/sessions/revoke",
            &[
                HOST,
                JSON,
                ("authorization", auth.as_bytes()),
                ("origin", b"null")
            ]
        ),
        Err(Refusal::CrossSite)
    );
}

#[test]
fn refusals_say_what_to_do_and_challenge_only_on_401() {
    for r in [
        Refusal::MissingToken,
        Refusal::WrongToken,
        Refusal::Host,
        Refusal::CrossSite,
        Refusal::NotJson,
    ] {
        assert!(!r.message().is_empty() && !r.code().is_empty());
        assert_eq!(
            r.www_authenticate().is_some(),
            r.status() == StatusCode::UNAUTHORIZED,
            "{r:?}"
        );
    }
    assert_eq!(Refusal::Host.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        Refusal::NotJson.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(Refusal::CrossSite.status(), StatusCode::FORBIDDEN);
    assert!(Refusal::MissingToken
        .message()
        .contains("[admin] token_file"));
    assert!(Refusal::Host.message().contains("[admin] hosts"));
}
