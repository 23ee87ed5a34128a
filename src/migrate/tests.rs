use super::*;

const CFG: &str = include_str!("../../tests/migrate/oauth2-proxy.cfg");
const ARGS: &str = include_str!("../../tests/migrate/oauth2-proxy.args");
const ENV: &str = include_str!("../../tests/migrate/oauth2-proxy.env");
const APACHE: &str = include_str!("../../tests/migrate/mod_auth_openidc.conf");
const EASYAUTH: &str = include_str!("../../tests/migrate/easyauth.json");

fn out(peer: Peer, text: &str) -> (String, toml::Table) {
    let text = migrate(peer, text).unwrap().render(peer, "sample");
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, table)
}

fn get<'a>(t: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut v: &toml::Value = t
        .get(path.split('.').next().unwrap())
        .unwrap_or_else(|| panic!("{path}"));
    for part in path.split('.').skip(1) {
        v = match v {
            toml::Value::Array(a) => &a[0],
            other => other,
        };
        v = v.get(part).unwrap_or_else(|| panic!("{path}"));
    }
    v
}

fn s<'a>(t: &'a toml::Table, path: &str) -> &'a str {
    get(t, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

#[test]
fn no_secret_value_of_any_sample_reaches_the_output() {
    for (peer, text, secrets) in [
        (
            Peer::Oauth2Proxy,
            CFG,
            &[
                "Qx8~secret-value",
                "b2F1dGgyLXByb3h5",
                "redis-password-not-to-copy",
            ][..],
        ),
        (Peer::Oauth2Proxy, ARGS, &["plain-text-secret-in-args"][..]),
        (Peer::Oauth2Proxy, ENV, &["c2VjcmV0LWNvb2tpZS12YWx1ZS"][..]),
        (
            Peer::ModAuthOpenidc,
            APACHE,
            &[
                "apache-secret-never-copied",
                "crypto-passphrase-never-copied",
            ][..],
        ),
    ] {
        let (text, _) = out(peer, text);
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} copied:\n{text}");
        }
    }
}

fn list(t: &toml::Table, path: &str) -> Vec<String> {
    get(t, path)
        .as_array()
        .unwrap_or_else(|| panic!("{path} is not a list"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn has_note(text: &str, setting: &str, words: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("#   - ") && l.contains(setting) && l.contains(words))
}

#[test]
fn oauth2_proxy_config_file_maps_provider_route_policy_and_session() {
    let (text, t) = out(Peer::Oauth2Proxy, CFG);
    assert_eq!(s(&t, "connection.type"), "entra");
    assert_eq!(
        s(&t, "connection.tenant"),
        "3f2a7c1e-9d4b-4e8a-b6c5-2d1f0e9a8b7c"
    );
    assert_eq!(
        s(&t, "connection.client_id"),
        "6a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"
    );
    assert_eq!(
        s(&t, "connection.client_secret_file"),
        "/run/secrets/realmgate/entra_client_secret"
    );
    assert_eq!(
        list(&t, "connection.scopes"),
        ["openid", "email", "profile", "offline_access"]
    );
    assert_eq!(list(&t, "route.hosts"), ["hr.contoso.com"]);
    assert_eq!(s(&t, "route.upstream"), "http://10.1.2.3:8080/");
    assert_eq!(
        get(&t, "route.oauth2_proxy_endpoints").as_bool(),
        Some(true)
    );
    // Literal prefixes become public; a real regex is a note.
    assert_eq!(list(&t, "route.public"), ["/static/", "/healthz"]);
    assert!(
        has_note(&text, "skip_auth_routes (line 19)", "regular expression"),
        "{text}"
    );
    // `^/healthz$` was that one path: the note says the prefix opens more.
    assert!(
        has_note(
            &text,
            "skip_auth_routes (line 19)",
            "every path below it public"
        ),
        "{text}"
    );
    assert_eq!(list(&t, "route.allow.email_domains"), ["contoso.com"]);
    assert_eq!(
        list(&t, "route.allow.groups"),
        ["6f1d0000-0000-0000-0000-00000000abcd"]
    );
    assert_eq!(s(&t, "session.lifetime"), "12h");
    assert_eq!(s(&t, "session.cookie_domain"), ".contoso.com");
    assert_eq!(s(&t, "session.store"), "redis");
    // The Redis URL holds a password: a secret file, never the URL.
    assert_eq!(
        s(&t, "session.redis_url_file"),
        "/run/secrets/realmgate/redis_url"
    );
    assert_eq!(
        s(&t, "session.secret_file"),
        "/run/secrets/realmgate/session_secret"
    );
    assert_eq!(s(&t, "server.listen"), "0.0.0.0:4180");
    for (setting, words) in [
        ("cookie_secret (line 22)", "not carried over"),
        ("cookie_refresh (line 25)", "refreshes"),
        ("reverse_proxy (line 4)", "trusted_proxies"),
        ("set_xauthrequest (line 29)", "user id"),
    ] {
        assert!(has_note(&text, setting, words), "{setting}:\n{text}");
    }
    assert!(
        text.contains("write the value of client_secret (line 9)"),
        "{text}"
    );
}

#[test]
fn oauth2_proxy_flags_accumulate_singular_repeatable_options() {
    let (text, t) = out(Peer::Oauth2Proxy, ARGS);
    assert_eq!(s(&t, "connection.type"), "oidc");
    assert_eq!(
        s(&t, "connection.issuer"),
        "https://idp.partner.example/realms/staff"
    );
    assert_eq!(s(&t, "connection.client_id"), "hr-portal");
    assert_eq!(
        list(&t, "route.allow.groups"),
        ["portal-users", "portal-admins"]
    );
    assert_eq!(list(&t, "route.allow.email_domains"), ["partner.example"]);
    assert_eq!(list(&t, "route.public"), ["/assets/"]);
    assert_eq!(s(&t, "route.upstream"), "http://portal-backend:3000");
    assert_eq!(s(&t, "server.listen"), "0.0.0.0:4180");
    assert!(
        has_note(&text, "whitelist_domains (line 14)", "route host"),
        "{text}"
    );
}

#[test]
fn oauth2_proxy_variables_split_plural_lists_and_keep_secret_file_paths() {
    let (text, t) = out(Peer::Oauth2Proxy, ENV);
    assert_eq!(s(&t, "connection.client_id"), "wiki");
    // A path to a secret is not a secret: kept as it was.
    assert_eq!(
        s(&t, "connection.client_secret_file"),
        "/var/run/secrets/oauth2/client-secret"
    );
    assert_eq!(s(&t, "route.upstream"), "http://wiki:8080");
    assert!(
        has_note(&text, "upstreams (line 7)", "http://wiki-files:8081/files/"),
        "{text}"
    );
    // "*" is any user: no email_domains.
    assert!(
        t.get("route").unwrap().as_array().unwrap()[0]
            .get("allow")
            .is_none(),
        "{text}"
    );
    assert_eq!(get(&t, "connection.trusted_email").as_bool(), Some(true));
    assert!(
        has_note(&text, "insecure_oidc_allow_unverified_email", "verified"),
        "{text}"
    );
}

#[test]
fn mod_auth_openidc_maps_directives_locations_and_requires() {
    let (text, t) = out(Peer::ModAuthOpenidc, APACHE);
    assert_eq!(s(&t, "connection.type"), "entra");
    assert_eq!(
        s(&t, "connection.client_id"),
        "0b9c8d7e-6f5a-4b3c-2d1e-0f9a8b7c6d5e"
    );
    assert_eq!(
        list(&t, "connection.scopes"),
        ["openid", "email", "profile"]
    );
    assert_eq!(s(&t, "connection.upstream_params.prompt"), "select_account");
    assert_eq!(
        list(&t, "route.hosts"),
        ["intranet.contoso.com", "intranet"]
    );
    assert_eq!(s(&t, "route.upstream"), "http://10.0.0.7:8080/");
    assert_eq!(s(&t, "route.headers"), "oidc_claim");
    assert_eq!(list(&t, "route.public"), ["/public"]);
    assert_eq!(
        list(&t, "route.allow.groups"),
        [
            "6f1d0000-0000-0000-0000-00000000abcd",
            "7a2e0000-0000-0000-0000-00000000ef01"
        ]
    );
    assert_eq!(s(&t, "session.idle_timeout"), "30m");
    assert_eq!(s(&t, "session.lifetime"), "8h");
    for (setting, words) in [
        (
            "OIDCRedirectURI (line 15)",
            "/.auth/login/<connection>/callback",
        ),
        ("OIDCCryptoPassphrase (line 16)", "not carried over"),
        ("OIDCRemoteUserClaim (line 18)", "SPEC 6.1"),
    ] {
        assert!(has_note(&text, setting, words), "{setting}:\n{text}");
    }
}

#[test]
fn easyauth_maps_entra_validation_and_global_settings() {
    let (text, t) = out(Peer::EasyAuth, EASYAUTH);
    assert_eq!(s(&t, "connection.type"), "entra");
    assert_eq!(
        s(&t, "connection.tenant"),
        "3f2a7c1e-9d4b-4e8a-b6c5-2d1f0e9a8b7c"
    );
    assert_eq!(
        s(&t, "connection.upstream_params.domain_hint"),
        "contoso.com"
    );
    assert_eq!(list(&t, "route.hosts"), ["contoso-hr.azurewebsites.net"]);
    assert_eq!(s(&t, "route.headers"), "easyauth");
    assert_eq!(list(&t, "route.public"), ["/health", "/static/"]);
    assert_eq!(
        list(&t, "route.api_audiences"),
        ["api://9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b"]
    );
    assert_eq!(
        list(&t, "route.allow.groups"),
        ["6f1d0000-0000-0000-0000-00000000abcd"]
    );
    assert_eq!(s(&t, "session.lifetime"), "8h");
    assert!(
        text.contains("MICROSOFT_PROVIDER_AUTHENTICATION_SECRET"),
        "{text}"
    );
    assert!(
        has_note(&text, "identityProviders.gitHub", "not mapped"),
        "{text}"
    );
    assert!(
        has_note(&text, "login.tokenStore", "session store"),
        "{text}"
    );
    // Disabled providers are not mentioned.
    assert!(!text.contains("facebook"), "{text}");
}

#[test]
fn anonymous_easyauth_is_an_optional_route() {
    let doc = r#"{"globalValidation": {"unauthenticatedClientAction": "AllowAnonymous"},
        "identityProviders": {"azureActiveDirectory": {"registration": {
        "openIdIssuer": "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0", "clientId": "c"}}}}"#;
    let (_, t) = out(Peer::EasyAuth, doc);
    assert_eq!(s(&t, "route.auth"), "optional");
    assert_eq!(s(&t, "connection.tenant"), "contoso.onmicrosoft.com");
}

fn line_error(peer: Peer, text: &str) -> (usize, String) {
    match migrate(peer, text) {
        Err(MigrateError::Line { line, message }) => (line, message),
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn garbage_is_an_error_naming_its_line() {
    let (line, msg) = line_error(Peer::Oauth2Proxy, "client_id = \"a\"\nthis is { not toml\n");
    assert_eq!(line, 2, "{msg}");
    let (line, msg) = line_error(
        Peer::Oauth2Proxy,
        "--client-id=a\n--provider=oidc\n%%% what\n",
    );
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("expected an oauth2-proxy flag"), "{msg}");
    let (line, _) = line_error(
        Peer::Oauth2Proxy,
        "OAUTH2_PROXY_CLIENT_ID=a\nOAUTH2_PROXY_NOVALUE\n",
    );
    assert_eq!(line, 2);
    let (line, msg) = line_error(
        Peer::ModAuthOpenidc,
        "OIDCClientID x\n<Location />\nRequire valid-user\n",
    );
    assert_eq!(line, 2, "{msg}");
    assert!(msg.contains("never closed"), "{msg}");
    let (line, msg) = line_error(Peer::ModAuthOpenidc, "OIDCClientID x\n\n  ]]] \n");
    assert_eq!(line, 3, "{msg}");
    let (line, msg) = line_error(Peer::ModAuthOpenidc, "client_id = \"x\"\n");
    assert_eq!(line, 1);
    assert!(msg.contains("oauth2-proxy"), "{msg}");
    let (line, _) = line_error(Peer::ModAuthOpenidc, "\nServerName a\ngarbage {{{\n");
    assert_eq!(line, 2);
    let (line, msg) = line_error(
        Peer::EasyAuth,
        "{\n  \"properties\": {\n    \"login\": [,]\n}",
    );
    assert_eq!(line, 3, "{msg}");
    let (line, _) = line_error(Peer::EasyAuth, "[1, 2]");
    assert_eq!(line, 1);
    // A secret in a refused line is not echoed whole.
    let (_, msg) = line_error(
        Peer::Oauth2Proxy,
        &format!("--client-id=a\n{}\n", "s".repeat(200)),
    );
    assert!(msg.len() < 300, "{msg}");
}

#[test]
fn a_peer_file_without_a_provider_is_refused() {
    for (peer, text) in [
        (Peer::Oauth2Proxy, "http_address = \":4180\"\n"),
        (
            Peer::EasyAuth,
            "{\"properties\": {\"globalValidation\": {}}}",
        ),
    ] {
        let e = migrate(peer, text).unwrap_err();
        assert!(e.to_string().contains("no identity provider"), "{e}");
    }
    let e = migrate(
        Peer::Oauth2Proxy,
        "provider = \"github\"\nclient_id = \"x\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("line 1") && e.to_string().contains("OpenID Connect"),
        "{e}"
    );
}

#[test]
fn skip_auth_patterns_become_prefixes_only_when_literal() {
    use super::oauth2_proxy::literal_prefix as p;
    assert_eq!(p("^/static/").as_deref(), Some("/static/"));
    assert_eq!(p("GET=^/healthz$").as_deref(), Some("/healthz"));
    assert_eq!(p("^/files/.*").as_deref(), Some("/files/"));
    assert_eq!(p("^/a\\.txt$").as_deref(), Some("/a.txt"));
    for regex in ["^/a.txt", "/static/", "^/api/v[0-9]+/", "^/(a|b)/", "^/x?"] {
        assert_eq!(p(regex), None, "{regex}");
    }
}

#[test]
fn migrated_names_and_durations() {
    assert_eq!(name_from("Contoso HR!", "x"), "contoso-hr");
    assert_eq!(name_from("---", "x"), "x");
    assert_eq!(seconds(1800), "30m");
    assert_eq!(seconds(90), "90s");
    assert_eq!(
        entra_tenant("https://sts.windows.net/abc/").as_deref(),
        Some("abc")
    );
    assert_eq!(entra_tenant("https://idp.example/abc"), None);
}
