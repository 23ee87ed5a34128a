use super::*;
use crate::connection::credential::ClientCredential;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

fn minimal() -> String {
    format!(
        r#"
[session]
secret = "{SECRET}"

[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000001"
client_secret = "s3cret"
home_realm_domains = ["Contoso.COM", "bücher.example"]

[[route]]
name = "hr"
hosts = ["hr.contoso.com:8443"]
upstream = "http://127.0.0.1:9000"
"#
    )
}

fn problems(text: &str) -> Vec<ConfigProblem> {
    load_str(text)
        .expect_err("config should be invalid")
        .problems
}

fn has(problems: &[ConfigProblem], key: &str) -> bool {
    problems.iter().any(|p| p.key == key)
}

#[test]
fn minimal_config_loads_with_defaults() {
    let s = load_str(&minimal()).expect("valid");
    assert_eq!(s.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(s.admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(s.session.lifetime, std::time::Duration::from_secs(8 * 3600));
    assert_eq!(s.session.cookie_name, "realmgate");
    let c = &s.connections[0];
    assert_eq!(
        c.home_realm_domains,
        vec!["contoso.com", "xn--bcher-kva.example"]
    );
    assert_eq!(
        c.issuer_url().as_str(),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    );
    assert_eq!(s.routes[0].hosts, vec!["hr.contoso.com"]);
    assert_eq!(s.routes[0].connections, vec!["contoso"]);
    assert_eq!(s.routes[0].headers, HeaderProfile::Forwarded);
}

#[test]
fn unknown_keys_are_errors_in_every_table() {
    for (table, key) in [
        ("server", "server.listne"),
        ("admin", "admin.lisen"),
        ("session", "session.secert"),
        ("log", "log.formt"),
        ("ui", "ui.colour"),
    ] {
        let field = key.rsplit('.').next().unwrap();
        let text = format!("{}\n[{table}]\n{field} = \"x\"\n", minimal());
        // A second [session] table is a TOML error; patch session via a fresh document instead.
        let text = if table == "session" {
            minimal().replace("[session]\n", &format!("[session]\n{field} = \"x\"\n"))
        } else {
            text
        };
        let p = problems(&text);
        assert!(has(&p, key), "{key}: {p:?}");
    }
    let p = problems(&minimal().replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"s3cret\"\nclient_secert = \"x\"",
    ));
    assert!(has(&p, "connection[0].client_secert"), "{p:?}");
    let p = problems(&format!("{}\nallow = {{ grops = [\"a\"] }}\n", minimal()));
    assert!(has(&p, "route[0].allow.grops"), "{p:?}");
    let p = problems(&format!("{}\n[extra]\na = 1\n", minimal()));
    assert!(has(&p, "extra"), "{p:?}");
}

/// First hour 4: a typo in a table is reported once, with the key it
/// probably misspells; it hides neither the table's other problems nor its
/// other values (no "session.secret: is missing" beside a typo).
#[test]
fn a_typo_hides_nothing_and_suggests_the_key_it_misspells() {
    let text = minimal().replace(
        "[session]\n",
        "[session]\nlifetme = \"8h\"\nidle_timout = \"1h\"\nstore = 5\n",
    );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["session.idle_timout", "session.lifetme", "session.store"],
        "{p:?}"
    );
    let lifetme = p.iter().find(|p| p.key == "session.lifetme").unwrap();
    assert!(
        lifetme.problem.contains("did you mean `lifetime`?"),
        "{lifetme}"
    );
    assert!(lifetme.expected.starts_with("one of: secret,"), "{lifetme}");
    assert!(p[2].problem.contains("wrong type"), "{p:?}");

    // A misspelt secret: the typo is the problem, not a missing secret.
    let p = problems(&minimal().replace("\nsecret = ", "\nsecrte = "));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "session.secrte");
    assert!(p[0].problem.contains("did you mean `secret`?"), "{p:?}");
    // A secret of the wrong type: said once, not also "is missing".
    let p = problems(&minimal().replace(&format!("secret = \"{SECRET}\""), "secret = 5"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].problem.contains("wrong type"), "{p:?}");

    // In an entry of an array and in a nested table, every typo is listed,
    // and the entry's other problems too.
    let text = minimal()
        .replace(
            "client_secret = \"s3cret\"",
            "client_secert = \"s3cret\"\ngroup = true",
        )
        .replace(
            "upstream = ",
            "upstrem = \"x\"\nallow = { grops = [\"a\"], user = [] }\nupstream = ",
        );
    let p = problems(&text);
    for key in [
        "connection[0].client_secert",
        "connection[0].group",
        "route[0].upstrem",
        "route[0].allow.grops",
        "route[0].allow.user",
    ] {
        assert!(has(&p, key), "{key}: {p:?}");
    }
    let grops = p.iter().find(|p| p.key == "route[0].allow.grops").unwrap();
    assert!(grops.problem.contains("`groups`"), "{grops}");
    // Nothing close: no suggestion.
    let p = problems(&minimal().replace("[session]\n", "[session]\nzzzzzz = 1\n"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].problem, "is not a known key", "{p:?}");
    // A misspelt table.
    let p = problems(&format!(
        "{}\n[sever]\nlisten = \"127.0.0.1:1\"\n",
        minimal()
    ));
    assert!(p[0].problem.contains("did you mean `server`?"), "{p:?}");
}

/// First hour 4: a variable that misspells a table is the variable's
/// mistake, reported under its name (not as a file key `sesion`).
#[test]
fn a_variable_that_misspells_a_table_is_reported_as_the_variable() {
    let e = load_with(
        &minimal(),
        env(&[
            ("REALMGATE_SESION__SECRET", "x"),
            ("REALMGATE_SERVER__LISTN", "1"),
        ]),
        None,
    )
    .expect_err("unknown keys");
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["REALMGATE_SESION__SECRET", "REALMGATE_SERVER__LISTN"],
        "{e}"
    );
    assert!(
        e.problems[0].problem.contains("did you mean `session`?")
            && e.problems[0]
                .problem
                .ends_with("(the variable sets sesion)"),
        "{e}"
    );
    assert!(
        e.problems[1].problem.contains("did you mean `listen`?"),
        "{e}"
    );
}

#[test]
fn every_spec_check_is_reported_at_once_with_its_key() {
    let text = r#"
[server]
listen = "nonsense"
shutdown_grace = "soon"

[session]
secret = "short"
store = "redis"

[[connection]]
name = "a"
type = "entra"
tenant = "common"
client_id = "x"
home_realm_domains = ["contoso.com"]

[[connection]]
name = "a"
type = "oidc"
issuer = "https://idp.example"
client_id = "y"
home_realm_domains = ["CONTOSO.com"]

[[route]]
name = "one"
hosts = ["app.example"]
upstream = "http://127.0.0.1:1"
connections = ["missing"]

[[route]]
name = "two"
hosts = ["APP.example"]
upstream = "http://127.0.0.1:2"
"#;
    let p = problems(text);
    for key in [
        "server.listen",
        "server.shutdown_grace",
        "session.secret",
        "session.redis_url",
        "connection[0].allowed_tenants",
        "connection[1].name",
        "connection[1].home_realm_domains[0]",
        "route[0].connections[0]",
        "route[1].path_prefix",
    ] {
        assert!(has(&p, key), "missing problem for {key}: {p:#?}");
    }
    // Secrets are never echoed.
    assert!(p.iter().all(|x| !x.problem.contains("short")));
}

#[test]
fn multi_tenant_accepts_star_only_when_written() {
    let base = minimal().replace(
        "tenant = \"contoso.onmicrosoft.com\"",
        "tenant = \"organizations\"",
    );
    assert!(has(&problems(&base), "connection[0].allowed_tenants"));
    let star = base.replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"s3cret\"\nallowed_tenants = [\"*\"]",
    );
    let s = load_str(&star).expect("valid");
    match &s.connections[0].kind {
        ConnectionKind::Entra(e) => assert_eq!(e.allowed_tenants, TenantAllowList::Any),
        other => panic!("{other:?}"),
    }
    let bad = base.replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"s3cret\"\nallowed_tenants = [\"contoso\"]",
    );
    assert!(has(&problems(&bad), "connection[0].allowed_tenants[0]"));
}

#[test]
fn environment_overrides_tables_and_named_entries() {
    let env = vec![
        (
            "REALMGATE_SERVER__LISTEN".to_string(),
            "127.0.0.1:1234".to_string(),
        ),
        ("REALMGATE_SESSION__LIFETIME".to_string(), "2h".to_string()),
        (
            "REALMGATE_SERVER__PROXY_PROTOCOL".to_string(),
            "true".to_string(),
        ),
        (
            "REALMGATE_CONNECTION__CONTOSO__CLIENT_ID".to_string(),
            "from-env".to_string(),
        ),
        (
            "REALMGATE_ROUTE__HR__HEADERS".to_string(),
            "remote".to_string(),
        ),
        ("UNRELATED".to_string(), "x".to_string()),
    ];
    // proxy_protocol needs trusted_proxies (SPEC 6.1).
    let with_proxies = format!("[server]\ntrusted_proxies = [\"10.0.0.5\"]\n{}", minimal());
    let s = load_with(&with_proxies, env, None).expect("valid");
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:1234");
    assert!(s.server.proxy_protocol);
    assert_eq!(s.session.lifetime, std::time::Duration::from_secs(7200));
    assert_eq!(s.connections[0].client_id, "from-env");
    assert_eq!(s.routes[0].headers, HeaderProfile::Remote);

    let env = vec![(
        "REALMGATE_CONNECTION__NOPE__CLIENT_ID".to_string(),
        "x".to_string(),
    )];
    let e = load_with(&minimal(), env, None).expect_err("unknown entry");
    assert!(
        has(&e.problems, "REALMGATE_CONNECTION__NOPE__CLIENT_ID"),
        "{e}"
    );
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A mistake in a value an environment variable set is reported under the
/// variable, as it was spelled, with the key it sets: the operator would look
/// for a file key in vain.
#[test]
fn an_environment_mistake_is_reported_as_the_variable() {
    let cases = [
        // A type error (figment extraction).
        ("REALMGATE_SERVER__WORKERS", "many", "server.workers"),
        // A validation error.
        ("REALMGATE_session__LIFETIME", "soon", "session.lifetime"),
        // An unknown key.
        ("REALMGATE_SESSION__SECRETT", "x", "session.secrett"),
        // Inside a named entry, inside an array.
        (
            "REALMGATE_ROUTE__HR__HOSTS",
            "[\"not a host!\"]",
            "route[0].hosts[0]",
        ),
        (
            "REALMGATE_CONNECTION__CONTOSO__ALWAYS_SHOW_BUTTON",
            "\"yes\"",
            "connection[0].always_show_button",
        ),
    ];
    for (var, value, key) in cases {
        let e = load_with(&minimal(), env(&[(var, value)]), None).expect_err(var);
        let p = e
            .problems
            .iter()
            .find(|p| p.key == var)
            .unwrap_or_else(|| panic!("{var}: {e}"));
        assert!(
            p.problem.ends_with(&format!(" (the variable sets {key})")),
            "{p}"
        );
        assert!(!has(&e.problems, key), "{var}: also as the file key: {e}");
    }

    // The same mistakes in the file are reported as file keys, even when the
    // environment sets other keys of the same table.
    let text = format!(
        "[server]\nworkers = \"many\"\n{}",
        minimal().replace("[session]\n", "[session]\nlifetime = \"soon\"\n")
    );
    let vars = env(&[
        ("REALMGATE_SESSION__COOKIE_NAME", "gate"),
        ("REALMGATE_SERVER__LISTEN", "127.0.0.1:1234"),
    ]);
    let e = load_with(&text, vars, None).expect_err("file mistakes");
    assert!(has(&e.problems, "session.lifetime"), "{e}");
    assert!(has(&e.problems, "server.workers"), "{e}");
    assert!(
        !e.problems.iter().any(|p| p.key.starts_with("REALMGATE_")),
        "{e}"
    );

    // A variable that overrides a bad file value takes its place.
    let vars = env(&[("REALMGATE_SESSION__LIFETIME", "5h")]);
    let text = minimal().replace("[session]\n", "[session]\nlifetime = \"soon\"\n");
    let s = load_with(&text, vars, None).expect("the variable wins");
    assert_eq!(s.session.lifetime, std::time::Duration::from_secs(5 * 3600));
}

/// Variables that cannot name a key are refused under their own name: a path
/// through a value that is not a table, an empty level, a `.` in a level
/// (figment paths use `.`), an entry without a key.
#[test]
fn environment_variables_that_name_no_key_are_refused() {
    for var in [
        "REALMGATE_SESSION__LIFETIME__X",
        "REALMGATE_SESSION____LIFETIME",
        "REALMGATE_SESSION.LIFETIME",
        "REALMGATE_SESSION__LIFE.TIME",
        "REALMGATE_CONNECTION__CONTOSO",
        "REALMGATE_ROUTE__NOPE__UPSTREAM",
    ] {
        let text = minimal().replace("[session]\n", "[session]\nlifetime = \"2h\"\n");
        let e = load_with(&text, env(&[(var, "1")]), None).expect_err(var);
        assert!(has(&e.problems, var), "{var}: {e}");
    }
    // `connection` that is not an array of tables has no named entries.
    let text = format!(
        "connection = 5\n{}",
        minimal().replace("[[connection]]", "[[x]]")
    );
    let e = load_with(&text, env(&[("REALMGATE_CONNECTION__A__B", "1")]), None)
        .expect_err("not an array");
    assert!(has(&e.problems, "REALMGATE_CONNECTION__A__B"), "{e}");
    assert!(has(&e.problems, "connection"), "{e}");
}

#[test]
fn secrets_can_come_from_files_with_trailing_newline_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("session"), format!("{SECRET}\n")).expect("write");
    std::fs::write(dir.path().join("client"), "abc\r\n").expect("write");
    let text = minimal()
        .replace(
            &format!("secret = \"{SECRET}\""),
            "secret_file = \"session\"",
        )
        .replace(
            "client_secret = \"s3cret\"",
            "client_secret_file = \"client\"",
        );
    let s = load_with(&text, std::iter::empty(), Some(dir.path())).expect("valid");
    assert_eq!(s.session.secrets[0].expose(), SECRET.as_bytes());
    assert_eq!(
        match &s.connections[0].credential {
            Some(ClientCredential::Secret(c)) => Some(c.expose_str()),
            _ => None,
        },
        Some("abc")
    );

    let missing = text.replace("secret_file = \"session\"", "secret_file = \"nope\"");
    let e = load_with(&missing, std::iter::empty(), Some(dir.path())).expect_err("missing file");
    assert!(has(&e.problems, "session.secret_file"), "{e}");
    let both = minimal().replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"a\"\nclient_secret_file = \"client\"",
    );
    assert!(has(&problems(&both), "connection[0].client_secret"));
}

#[test]
fn email_domains_are_domains_an_email_can_have_not_wildcards() {
    // IDNA alone lets `*` and `_` through: such a domain matches no email
    // address ever, so the operator's rule would silently refuse everyone.
    for bad in [
        "*.contoso.com",
        "con_toso.com",
        "-contoso.com",
        ".contoso.com..",
    ] {
        let hrd = minimal().replace("\"Contoso.COM\"", &format!("{bad:?}"));
        let p = problems(&hrd);
        let e = p
            .iter()
            .find(|p| p.key == "connection[0].home_realm_domains[0]")
            .unwrap_or_else(|| panic!("{bad}: {p:?}"));
        assert!(e.expected.contains("no wildcard"), "{e}");
        let allow = format!("{}[route.allow]\nemail_domains = [{bad:?}]\n", minimal());
        assert!(
            has(&problems(&allow), "route[0].allow.email_domains[0]"),
            "{bad}"
        );
    }
    // Unicode, case and a trailing dot are still read as the domain.
    let s = load_str(&format!(
        "{}[route.allow]\nemail_domains = [\"Bücher.Example.\"]\n",
        minimal()
    ))
    .expect("valid");
    assert_eq!(s.routes[0].allow.email_domains, ["xn--bcher-kva.example"]);
}

#[test]
fn a_session_secret_given_two_ways_is_one_problem_naming_both() {
    // The file's inline secret and a secret file from the environment (as
    // a Kubernetes manifest would add): refused once, naming both.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("session"), SECRET).expect("write");
    let e = load_with(
        &minimal(),
        env(&[("REALMGATE_SESSION__SECRET_FILE", "session")]),
        Some(dir.path()),
    )
    .expect_err("two ways");
    let about: Vec<_> = e
        .problems
        .iter()
        .filter(|p| p.key.starts_with("session.secret"))
        .collect();
    assert_eq!(about.len(), 1, "{e}");
    assert!(
        about[0].to_string().contains("secret and secret_file"),
        "{e}"
    );
    assert!(about[0].to_string().contains("REALMGATE_SESSION__"), "{e}");
}

#[test]
fn secret_files_that_never_end_or_are_huge_are_refused_not_read() {
    // `/dev/zero` would be read forever; a folder or a huge file is a mistake.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("huge"), vec![b'a'; 65 * 1024]).expect("write");
    std::fs::write(dir.path().join("exact"), vec![b'a'; 64 * 1024]).expect("write");
    for (path, ok) in [
        ("/dev/zero", false),
        ("huge", false),
        (".", false),
        ("exact", true),
    ] {
        let text = minimal().replace(
            &format!("secret = \"{SECRET}\""),
            &format!("secret_file = \"{path}\""),
        );
        let r = load_with(&text, std::iter::empty(), Some(dir.path()));
        assert_eq!(
            r.is_ok(),
            ok,
            "{path}: {:?}",
            r.err().map(|e| e.to_string())
        );
        if let Err(e) = r {
            assert!(has(&e.problems, "session.secret_file"), "{e}");
        }
    }
}

#[test]
fn secret_of_exactly_32_bytes_is_accepted_and_31_is_not() {
    let ok = minimal().replace(SECRET, &"x".repeat(32));
    assert!(load_str(&ok).is_ok());
    let short = minimal().replace(SECRET, &"x".repeat(31));
    assert!(has(&problems(&short), "session.secret"));
}

#[test]
fn invalid_toml_reports_the_position() {
    let e = load_str("[server\nlisten = 1").expect_err("invalid");
    assert_eq!(e.problems[0].key, "(file)");
    assert!(e.problems[0].expected.contains("line 1"), "{}", e);
}

#[test]
fn callback_urls_cover_every_route_host_allowing_the_connection() {
    let text = minimal().replace(
        "hosts = [\"hr.contoso.com:8443\"]",
        "hosts = [\"hr.contoso.com\", \"localhost\"]",
    );
    let s = load_str(&text).expect("valid");
    let urls = callback_urls(&s);
    assert_eq!(
        urls,
        vec![
            (
                "contoso".to_string(),
                "https://hr.contoso.com/.auth/login/contoso/callback".to_string()
            ),
            (
                "contoso".to_string(),
                "http://localhost:8080/.auth/login/contoso/callback".to_string()
            ),
        ]
    );
    let summary = summary(&s);
    assert!(summary.contains("https://hr.contoso.com/.auth/login/contoso/callback"));
    assert!(!summary.contains("s3cret"));
}

/// Every key the structs accept appears in config.toml.example, and the
/// example itself is a valid configuration.
#[test]
fn example_documents_every_key_and_is_valid() {
    let example = include_str!("../../config.toml.example");
    let mut problems = Vec::new();
    let loaded = load::load(example, std::iter::empty(), &mut problems);
    assert!(loaded.is_some() && problems.is_empty(), "{problems:#?}");
    // Uncomment every commented-out `# key = value` line: the documented
    // alternatives must parse too (they may conflict with each other, so only
    // the key names are checked against the structs below).
    let documented: std::collections::HashSet<String> = example
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            // Table headers document their key too: [server.tls] -> tls.
            if let Some(h) = l.strip_prefix('[').and_then(|h| h.split(']').next()) {
                return h
                    .trim_matches(['[', ']'])
                    .rsplit('.')
                    .next()
                    .map(str::to_string);
            }
            let (k, _) = l.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            .then(|| k.to_string())
        })
        .collect();
    let keys = raw::all_keys();
    assert!(keys.len() > 60, "field names could not be read: {keys:?}");
    for key in keys {
        assert!(
            documented.contains(key),
            "config.toml.example does not document `{key}`"
        );
    }
}

fn with_session(extra: &str) -> String {
    minimal().replace(
        &format!("secret = \"{SECRET}\"\n"),
        &format!("secret = \"{SECRET}\"\n{extra}\n"),
    )
}

#[test]
fn redis_store_one_url_is_a_server_and_a_list_is_a_cluster() {
    let s = load_str(&with_session(
        "store = \"redis\"\nredis_url = \"rediss://:pw@redis.internal:6380/2\"",
    ))
    .expect("valid");
    match &s.session.store {
        StoreSettings::Redis {
            urls,
            cluster,
            key_prefix,
            cache_ttl,
        } => {
            assert_eq!(urls.len(), 1);
            assert!(!cluster);
            assert_eq!(key_prefix, "realmgate:");
            assert_eq!(*cache_ttl, std::time::Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    let s = load_str(&with_session(
        "store = \"redis\"\nredis_url = [\"redis://10.0.0.1:6379\", \"redis://10.0.0.2:6379\"]\nredis_key_prefix = \"prod:rg:\"\nredis_cache_ttl = \"0s\"",
    ))
    .expect("valid");
    match &s.session.store {
        StoreSettings::Redis {
            urls,
            cluster,
            key_prefix,
            cache_ttl,
        } => {
            assert_eq!(urls.len(), 2);
            assert!(cluster);
            assert_eq!(key_prefix, "prod:rg:");
            assert!(cache_ttl.is_zero());
        }
        other => panic!("{other:?}"),
    }
    let summary = super::summary::summary(&s);
    assert!(
        summary.contains("Redis Cluster (2 seed nodes)"),
        "{summary}"
    );
    assert!(!summary.contains("10.0.0.1"), "{summary}");
}

#[test]
fn redis_settings_are_checked_and_urls_never_echoed() {
    let p = problems(&with_session(
        "store = \"redis\"\nredis_url = [\"redis://:hunter2@a:6379\", \"rediss://b:6379\", \"http://c\", \"redis://d:6379/3\"]\nredis_key_prefix = \"a{b}\"\nredis_cache_ttl = \"2m\"",
    ));
    for key in [
        "session.redis_url",
        "session.redis_url[2]",
        "session.redis_url[3]",
        "session.redis_key_prefix",
        "session.redis_cache_ttl",
    ] {
        assert!(has(&p, key), "missing problem for {key}: {p:#?}");
    }
    assert!(
        p.iter().all(|x| !format!("{x:?}").contains("hunter2")),
        "{p:#?}"
    );
    let p = problems(&with_session("store = \"redis\""));
    assert!(has(&p, "session.redis_url"), "{p:#?}");
    let p = problems(&with_session("store = \"redis\"\nredis_url = \"redis://\""));
    assert!(has(&p, "session.redis_url"), "{p:#?}");
    let p = problems(&with_session("redis_cache_ttl = \"1s\""));
    assert!(
        has(&p, "session.redis_url"),
        "memory store with redis keys: {p:#?}"
    );
}

#[tokio::test]
async fn the_redis_store_opens_without_redis_running() {
    let s = load_str(&with_session(
        "store = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"",
    ))
    .expect("valid");
    let store = crate::session::open_store(&s.session).expect("lazy: opens while Redis is down");
    assert!(store.ping().await.is_err());
}

#[test]
fn jwt_assertion_works_without_a_key_and_a_given_key_must_be_readable() {
    let with_assertion = minimal().replace(
        "upstream = \"http://127.0.0.1:9000\"",
        "upstream = \"http://127.0.0.1:9000\"\njwt_assertion = true",
    );
    // SPEC 3 names no key setting: each process makes one, and `check`
    // warns that replicas need a shared one.
    let s = load_str(&with_assertion).expect("valid without a key");
    let w = super::summary::warnings(&s).join("\n");
    assert!(
        w.contains("no [server] assertion_key") && w.contains("hr"),
        "{w}"
    );

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("key.pem");
    std::fs::write(&good, crate::auth::assertion::generate_p256_pem()).unwrap();
    let ok = format!(
        "[server]\nassertion_key = {:?}\n{with_assertion}",
        good.to_str().unwrap()
    );
    let s = load_str(&ok).expect("a P-256 key signs");
    assert!(s.server.assertion_key.is_some());

    let missing = format!(
        "[server]\nassertion_key = {:?}\n{with_assertion}",
        dir.path().join("nope.pem").to_str().unwrap()
    );
    let p = problems(&missing);
    assert!(has(&p, "server.assertion_key"), "{p:?}");
    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let wrong = format!(
        "[server]\nassertion_key = {:?}\n{with_assertion}",
        cert.to_str().unwrap()
    );
    let p = problems(&wrong);
    let text = p.iter().map(|p| p.to_string()).collect::<String>();
    assert!(text.contains("not a private key"), "{text}");
}

#[test]
fn workers_default_to_the_cores_and_are_bounded() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(load_str(&minimal()).unwrap().server.workers, cores);
    let with = |n: &str| format!("[server]\nworkers = {n}\n{}", minimal());
    assert_eq!(load_str(&with("0")).unwrap().server.workers, cores);
    assert_eq!(load_str(&with("3")).unwrap().server.workers, 3);
    assert_eq!(load_str(&with("256")).unwrap().server.workers, 256);
    let p = problems(&with("257"));
    assert!(has(&p, "server.workers"), "{p:?}");
    assert!(p[0].expected.contains("1 to 256"), "{p:?}");
    // A negative number is not a count.
    assert!(load_str(&with("-1")).is_err());
}

#[test]
fn headers_extra_cannot_name_a_header_realmgate_or_http_controls() {
    for name in [
        "Host",
        "Cookie",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Request-Id",
        "Transfer-Encoding",
        "traceparent",
        "TraceState",
        "Forwarded",
        "X-Real-IP",
        // Other spellings and the routing/client-address headers apps
        // read (review 9).
        "x_forwarded_for",
        "X-Original-URL",
        "X_Forwarded_Prefix",
        "True-Client-IP",
        "X-Original-Host",
    ] {
        let text = minimal().replace(
            "upstream = \"http://127.0.0.1:9000\"",
            &format!(
                "upstream = \"http://127.0.0.1:9000\"\nheaders_extra = {{ \"{name}\" = \"email\" }}"
            ),
        );
        let p = problems(&text);
        let key = format!("route[0].headers_extra.{name}");
        assert!(has(&p, &key), "{name}: {p:?}");
        let text = p.iter().map(|p| p.to_string()).collect::<String>();
        assert!(text.contains("controls"), "{text}");
    }
    let ok = minimal().replace(
        "upstream = \"http://127.0.0.1:9000\"",
        "upstream = \"http://127.0.0.1:9000\"\nheaders_extra = { \"X-Employee-Id\" = \"claims.employeeid\" }",
    );
    load_str(&ok).expect("a custom header name is accepted");
    // An app moved from behind AWS ALB or Google IAP may read its identity
    // header: realmgate may write it (clients' copies are removed).
    let ok = minimal().replace(
        "upstream = \"http://127.0.0.1:9000\"",
        "upstream = \"http://127.0.0.1:9000\"\nheaders_extra = { \"X-Amzn-Oidc-Identity\" = \"user_id\", \"X-Goog-Authenticated-User-Email\" = \"email\" }",
    );
    load_str(&ok).expect("another layer's identity header name is accepted");
    // A profile's identity header in another spelling would reach CGI-style
    // apps beside realmgate's own (`HTTP_X_FORWARDED_EMAIL` twice).
    for name in [
        "X_Forwarded_Email",
        "x.forwarded.user",
        "Remote_User",
        "OIDC-CLAIM-email",
        "X-Auth-Request_User",
    ] {
        let text = minimal().replace(
            "upstream = \"http://127.0.0.1:9000\"",
            &format!(
                "upstream = \"http://127.0.0.1:9000\"\nheaders_extra = {{ \"{name}\" = \"email\" }}"
            ),
        );
        let p = problems(&text);
        assert!(
            has(&p, &format!("route[0].headers_extra.{name}")),
            "{name}: {p:?}"
        );
        let text = p.iter().map(|p| p.to_string()).collect::<String>();
        assert!(text.contains("another spelling"), "{text}");
    }
    for name in [
        "X-Forwarded-Email",
        "OIDC_CLAIM_email",
        "X-MS-CLIENT-PRINCIPAL-NAME",
    ] {
        let ok = minimal().replace(
            "upstream = \"http://127.0.0.1:9000\"",
            &format!(
                "upstream = \"http://127.0.0.1:9000\"\nheaders_extra = {{ \"{name}\" = \"email\" }}"
            ),
        );
        load_str(&ok).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn proxy_protocol_without_trusted_proxies_is_refused_naming_the_key() {
    let text = format!("[server]\nproxy_protocol = true\n{}", minimal());
    let found = problems(&text);
    let p = found
        .iter()
        .find(|p| p.key == "server.proxy_protocol")
        .unwrap_or_else(|| panic!("no server.proxy_protocol problem in {found:?}"));
    let shown = p.to_string();
    assert!(shown.contains("trusted_proxies"), "{shown}");
    // An explicitly empty list is the same mistake.
    let empty = format!(
        "[server]\nproxy_protocol = true\ntrusted_proxies = []\n{}",
        minimal()
    );
    assert!(has(&problems(&empty), "server.proxy_protocol"));
    // With a load balancer listed it loads; without PROXY protocol an empty list is fine.
    let ok = format!(
        "[server]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.5\"]\n{}",
        minimal()
    );
    assert!(load_str(&ok).expect("valid").server.proxy_protocol);
    let off = format!("[server]\nproxy_protocol = false\n{}", minimal());
    assert!(load_str(&off).is_ok());
}

#[test]
fn ipv4_mapped_trusted_proxies_become_their_ipv4_ranges() {
    let text = format!(
        "[server]\ntrusted_proxies = [\"::ffff:10.0.0.0/104\", \"::ffff:192.0.2.7\", \"2001:db8::/32\", \"::/0\", \"10.1.2.3\"]\n{}",
        minimal()
    );
    let s = load_str(&text).expect("valid");
    let shown: Vec<String> = s
        .server
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "10.0.0.0/8",
            "192.0.2.7/32",
            "2001:db8::/32",
            "::/0",
            "10.1.2.3/32"
        ]
    );
}

const ADMIN_TOKEN: &str = "aaaabbbbccccddddeeeeffff0000111122223333";

fn with_admin(admin: &str) -> String {
    format!("[admin]\n{admin}\n{}", minimal())
}

#[test]
fn admin_token_comes_inline_from_a_file_or_the_environment() {
    let s = load_str(&with_admin(&format!("token = \"{ADMIN_TOKEN}\""))).expect("valid");
    assert_eq!(
        s.admin.token.as_ref().map(Secret::expose),
        Some(ADMIN_TOKEN.as_bytes())
    );
    // Absent by default: no token, no extra host.
    let d = load_str(&minimal()).expect("valid");
    assert!(d.admin.token.is_none() && d.admin.hosts.is_empty());

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("admin"), format!("{ADMIN_TOKEN}\n")).expect("write");
    let s = load_with(
        &with_admin("token_file = \"admin\""),
        std::iter::empty(),
        Some(dir.path()),
    )
    .expect("valid");
    assert_eq!(
        s.admin.token.as_ref().map(Secret::expose),
        Some(ADMIN_TOKEN.as_bytes()),
        "trailing newline trimmed"
    );
    let env = vec![(
        "REALMGATE_ADMIN__TOKEN".to_string(),
        ADMIN_TOKEN.to_string(),
    )];
    let s = load_with(&minimal(), env, None).expect("valid");
    assert!(s.admin.token.is_some());
    // The token never shows in Debug output.
    assert!(!format!("{:?}", s.admin).contains(ADMIN_TOKEN));

    let e = load_with(
        &with_admin("token_file = \"absent\""),
        std::iter::empty(),
        Some(dir.path()),
    )
    .expect_err("missing file");
    assert!(has(&e.problems, "admin.token_file"), "{e}");
    let both = with_admin(&format!(
        "token = \"{ADMIN_TOKEN}\"\ntoken_file = \"admin\""
    ));
    assert!(has(&problems(&both), "admin.token"));
}

#[test]
fn admin_tokens_that_are_short_or_not_visible_ascii_are_refused_without_echo() {
    let short = &ADMIN_TOKEN[..31];
    for bad in [
        short.to_string(),
        format!("{ADMIN_TOKEN} x"),
        format!("{ADMIN_TOKEN}\\t"),
        format!("{ADMIN_TOKEN}é"),
        String::new(),
    ] {
        let text = with_admin(&format!("token = \"{bad}\""));
        let e = load_str(&text).expect_err("bad token");
        assert!(has(&e.problems, "admin.token"), "{bad:?}: {e}");
        if !bad.is_empty() {
            assert!(!e.to_string().contains(&bad), "token echoed: {e}");
        }
    }
    // Exactly the minimum is accepted.
    let ok = &ADMIN_TOKEN[..MIN_ADMIN_TOKEN_BYTES];
    assert!(load_str(&with_admin(&format!("token = \"{ok}\""))).is_ok());
    // A short token in a file names the file key.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("admin"), short).expect("write");
    let e = load_with(
        &with_admin("token_file = \"admin\""),
        std::iter::empty(),
        Some(dir.path()),
    )
    .expect_err("short");
    assert!(has(&e.problems, "admin.token_file"), "{e}");
}

#[test]
fn admin_hosts_are_bare_names_normalized_and_checked() {
    let s = load_str(&with_admin(
        "hosts = [\"Metrics.Internal\", \"metrics.internal.\", \"bücher.example\", \"prom_1.svc\"]",
    ))
    .expect("valid");
    assert_eq!(
        s.admin.hosts,
        vec!["metrics.internal", "xn--bcher-kva.example", "prom_1.svc"]
    );
    for bad in [
        "metrics.internal:9090",
        "http://metrics.internal",
        "*.internal",
        "a b",
        "",
        "metrics/internal",
        "user@metrics",
    ] {
        let e = load_str(&with_admin(&format!("hosts = [{bad:?}]"))).expect_err(bad);
        assert!(has(&e.problems, "admin.hosts[0]"), "{bad:?}: {e}");
    }
}

/// `minimal()` plus an OIDC connection `partner` and `[route.allow]` lines.
fn with_partner(allow: &str) -> String {
    format!(
        r#"{}
[route.allow]
{allow}

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"
client_secret = "x"
home_realm_domains = ["partner.example"]
group_names = {{ "g-1" = "Staff" }}
"#,
        minimal()
    )
}

#[test]
fn check_warns_about_a_bare_group_id_a_partner_could_send() {
    let guid = "0b5e7f8a-1111-2222-3333-444455556666";
    let s = load_str(&with_partner(&format!(
        r#"groups = ["{guid}", "contoso:aaaaaaaa-1111-2222-3333-444455556666", "Staff"]"#
    )))
    .expect("valid");
    let about: Vec<String> = super::warnings(&s)
        .into_iter()
        .filter(|w| w.contains("allow.groups"))
        .collect();
    assert_eq!(about.len(), 1, "{about:?}");
    assert!(
        about[0].contains(guid) && about[0].contains("partner"),
        "{about:?}"
    );
    // Only Entra connections on the route: nobody else can send the id.
    let entra_only = load_str(&format!(
        "{}[route.allow]\ngroups = [\"{guid}\"]\n",
        minimal()
    ))
    .expect("valid");
    assert!(!super::warnings(&entra_only)
        .iter()
        .any(|w| w.contains("allow.groups")));
}

#[test]
fn only_an_entra_connection_may_be_named_aad() {
    let aad = |kind: &str| {
        format!(
            "{}\n[[connection]]\nname = \"aad\"\n{kind}\nclient_id = \"p\"\nclient_secret = \"x\"\n",
            minimal()
        )
    };
    let p = problems(&aad(
        "type = \"oidc\"\nissuer = \"https://idp.partner.example\"",
    ));
    let e = p.iter().find(|p| p.key == "connection[1].name");
    assert!(e.is_some_and(|e| e.problem.contains("Easy Auth")), "{p:?}");
    load_str(&aad(
        "type = \"entra\"\ntenant = \"fabrikam.onmicrosoft.com\"",
    ))
    .expect("an Entra connection may be called aad");
}

#[test]
fn allow_users_takes_plain_emails_entra_oids_and_connection_scoped_ids() {
    let s = load_str(&with_partner(
        r#"users = ["Alice@Contoso.COM", "anna@bücher.example", "0B5E7F8A-1111-2222-3333-444455556666", "partner:248289761001", "contoso:0b5e7f8a-1111-2222-3333-444455556666"]"#,
    ))
    .expect("valid");
    let a = &s.routes[0].allow;
    assert_eq!(a.users, ["alice@contoso.com", "anna@xn--bcher-kva.example"]);
    let ids: Vec<(Option<Vec<String>>, &str)> = a
        .user_ids
        .iter()
        .map(|u| (u.connections.clone(), u.value.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (None, "0b5e7f8a-1111-2222-3333-444455556666"),
            (Some(vec!["partner".into()]), "partner:248289761001"),
            (
                Some(vec!["contoso".into()]),
                "0b5e7f8a-1111-2222-3333-444455556666"
            ),
        ]
    );
    // Every connection's home realm domains, with their owner.
    assert_eq!(a.domain_owners["contoso.com"], "contoso");
    assert_eq!(a.domain_owners["partner.example"], "partner");
    assert!(summary(&s).contains("2 listed email(s) and 3 listed user id(s)"));
}

#[test]
fn allow_users_refuses_what_is_not_a_plain_email_or_a_user_id() {
    for bad in [
        "mallory@evil.example@contoso.com",
        "mallory@contoso.com.",
        "\"mallory@contoso.com \"",
        "<a@contoso.com>",
        "a@contoso.com,b@x.example",
        "a@[1.2.3.4]",
        "alice",
        "contoso:not-a-guid",
        "partner:",
        "",
    ] {
        let p = problems(&with_partner(&format!("users = [{bad:?}]")));
        assert!(has(&p, "route[0].allow.users[0]"), "{bad:?}: {p:?}");
    }
}

#[test]
fn check_warns_about_an_exposed_admin_listener_without_a_token() {
    let exposed = load_str(&with_admin("listen = \"0.0.0.0:9090\"")).expect("valid");
    let out = summary(&exposed);
    let line = out
        .lines()
        .find(|l| l.starts_with("Warning:"))
        .unwrap_or_else(|| panic!("no warning:\n{out}"));
    assert!(
        line.contains("[admin] listen") && line.contains("[admin] token_file"),
        "{line}"
    );
    assert!(out.starts_with("Configuration is valid."), "{out}");
    for quiet in [
        minimal(),
        with_admin("listen = \"[::1]:9090\""),
        with_admin(&format!(
            "listen = \"0.0.0.0:9090\"\ntoken = \"{ADMIN_TOKEN}\""
        )),
    ] {
        let s = load_str(&quiet).expect("valid");
        assert!(warnings(&s).is_empty(), "{quiet}");
        let out = summary(&s);
        assert!(!out.contains("Warning:"), "{out}");
        assert!(!out.contains(ADMIN_TOKEN), "{out}");
    }
    // A public IPv6 listener counts as exposed too.
    let s = load_str(&with_admin("listen = \"[::]:9090\"")).expect("valid");
    assert_eq!(warnings(&s).len(), 1);
}

#[test]
fn check_warns_about_headers_extra_sources_that_never_send_anything() {
    let with_extra = |extra: &str| {
        minimal().replace(
            "upstream = \"http://127.0.0.1:9000\"",
            &format!("upstream = \"http://127.0.0.1:9000\"\nheaders_extra = {{ {extra} }}"),
        )
    };
    // A typo of a source, and a claim no connection of the route keeps.
    let s = load_str(&with_extra(r#""X-Employee" = "employeeid""#)).expect("valid");
    let w = warnings(&s).join("\n");
    assert!(w.contains("\"employeeid\" is not a source"), "{w}");
    let s = load_str(&with_extra(r#""X-Employee" = "claims.employeeid""#)).expect("valid");
    let w = warnings(&s).join("\n");
    assert!(w.contains("extended_profile = true"), "{w}");
    // Known sources, and a claim the connection keeps: quiet.
    for extra in [
        r#""X-A" = "user_id", "X-B" = "tid", "X-C" = "roles", "X-D" = "preferred_username""#,
        r#""X-E" = "claims.employeeid""#,
    ] {
        // `extended_profile` goes into the connection's table.
        let text = with_extra(extra).replace("[[route]]", "extended_profile = true\n[[route]]");
        let s = load_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(warnings(&s).is_empty(), "{extra}: {:?}", warnings(&s));
    }
}

#[test]
fn allow_groups_are_scoped_by_group_names_and_prefixes() {
    use crate::config::MatchBy;
    let s = load_str(&with_partner(
        r#"groups = ["Staff", "raw-id", "contoso:HR", "nobody:x"]"#,
    ))
    .expect("valid");
    let g = &s.routes[0].allow.group_rules;
    assert_eq!(g[0].connections, Some(vec!["partner".to_string()]));
    assert_eq!((g[0].value.as_str(), g[0].by), ("Staff", MatchBy::Name));
    assert_eq!(g[1].connections, None);
    assert_eq!(g[1].by, MatchBy::Value);
    assert_eq!(g[2].connections, Some(vec!["contoso".to_string()]));
    assert_eq!((g[2].value.as_str(), g[2].by), ("HR", MatchBy::ValueOrName));
    assert_eq!(
        (g[3].connections.as_ref(), g[3].value.as_str()),
        (None, "nobody:x")
    );
}

#[test]
fn check_prints_per_route_the_connections_that_can_sign_in() {
    let s = load_str(&with_partner("")).expect("valid");
    assert!(
        summary(&s).contains("sign-in via: contoso, partner"),
        "{}",
        summary(&s)
    );
    let limited = with_partner("").replace(
        "upstream = \"http://127.0.0.1:9000\"",
        "upstream = \"http://127.0.0.1:9000\"\nconnections = [\"partner\"]",
    );
    let s = load_str(&limited).expect("valid");
    assert!(
        summary(&s).contains("sign-in via: partner\n"),
        "{}",
        summary(&s)
    );
}

#[test]
fn check_warns_about_an_rsa_assertion_key_and_not_about_p256() {
    use rsa::pkcs8::EncodePrivateKey as _;
    let dir = tempfile::tempdir().unwrap();
    let with_key = |pem: &str| {
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem).unwrap();
        format!(
            "[server]\nassertion_key = {:?}\n{}",
            path.to_str().unwrap(),
            minimal()
        )
    };
    let p256 = load_str(&with_key(&crate::auth::assertion::generate_p256_pem())).expect("valid");
    assert!(warnings(&p256).is_empty(), "{:?}", warnings(&p256));

    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let s = load_str(&with_key(&pem)).expect("an RSA key is still accepted");
    let w = warnings(&s);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("assertion_key") && w[0].contains("P-256"),
        "{w:?}"
    );
    assert!(summary(&s).contains("Warning: [server] assertion_key is an RSA key"));
}

#[test]
fn placeholder_secrets_of_the_example_are_refused_in_any_case_and_any_form() {
    for (from, to) in [
        (
            SECRET.to_string(),
            "change-me-to-at-least-32-random-bytes!!".to_string(),
        ),
        (
            SECRET.to_string(),
            "CHANGE-ME-but-it-is-long-enough-32b".to_string(),
        ),
        ("s3cret".to_string(), "replace-me".to_string()),
        ("s3cret".to_string(), "Replace-Me-Too".to_string()),
    ] {
        let text = minimal().replacen(&from, &to, 1);
        let p = problems(&text);
        let key = if from == SECRET {
            "session.secret"
        } else {
            "connection[0].client_secret"
        };
        let hit = p.iter().find(|p| p.key == key).expect(&to);
        assert!(hit.to_string().contains("placeholder"), "{to}: {hit}");
        // The value itself is never echoed.
        assert!(!hit.to_string().contains(&to), "{hit}");
    }
    // A secret that merely contains the words is a secret.
    let text = minimal().replacen("s3cret", "my-replace-me-secret", 1);
    load_str(&text).expect("valid");
}

#[test]
fn check_warns_about_a_zero_client_id_and_an_entra_connection_without_credential() {
    let text = minimal()
        .replacen(
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000000",
            1,
        )
        .replacen("client_secret = \"s3cret\"\n", "", 1);
    let s = load_str(&text).expect("valid: warnings only");
    let w = super::summary::warnings(&s).join("\n");
    assert!(
        w.contains("client_id \"00000000-0000-0000-0000-000000000000\" is the placeholder"),
        "{w}"
    );
    assert!(w.contains("has no client credential"), "{w}");
    let s = load_str(&minimal()).expect("valid");
    assert!(super::summary::warnings(&s).is_empty());
}

/// Review 12: a single-tenant connection takes its own tenant only, so
/// `allowed_tenants` there is named as doing nothing (or, without its own
/// tenant, as admitting nobody).
#[test]
fn allowed_tenants_on_a_single_tenant_connection_is_named() {
    let other = "22222222-2222-2222-2222-222222222222";
    let with = |tenant: &str, list: &str| {
        let text = minimal()
            .replace(
                "tenant = \"contoso.onmicrosoft.com\"",
                &format!("tenant = \"{tenant}\""),
            )
            .replace(
                "client_secret = \"s3cret\"",
                &format!("client_secret = \"s3cret\"\nallowed_tenants = {list}"),
            );
        super::summary::warnings(&load_str(&text).expect("valid")).join("\n")
    };
    let w = with("contoso.onmicrosoft.com", &format!("[\"{other}\"]"));
    assert!(
        w.contains("does not open the single-tenant connection"),
        "{w}"
    );
    let w = with("contoso.onmicrosoft.com", "[\"*\"]");
    assert!(
        w.contains("does not open the single-tenant connection"),
        "{w}"
    );
    let own = "11111111-1111-1111-1111-111111111111";
    let w = with(own, &format!("[\"{other}\"]"));
    assert!(w.contains("nobody can sign in"), "{w}");
    let w = with("organizations", &format!("[\"{other}\"]"));
    assert!(!w.contains("allowed_tenants"), "{w}");
}

/// `minimal()` with the client secret replaced by `credential` lines.
fn with_credential(credential: &str) -> String {
    minimal().replace("client_secret = \"s3cret\"", credential)
}

#[test]
fn a_certificate_credential_is_loaded_checked_and_named_by_check() {
    use crate::connection::credential::tests::certificate;
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let (cert, key) = certificate(true, 365);
    write("cert.pem", &cert);
    write("key.pem", &key);
    let text =
        with_credential("client_certificate_file = \"cert.pem\"\nclient_key_file = \"key.pem\"");
    let s = load_with(&text, std::iter::empty(), Some(dir.path())).expect("valid");
    let Some(ClientCredential::Certificate(c)) = &s.connections[0].credential else {
        panic!("a certificate credential");
    };
    let out = summary(&s);
    assert!(
        out.contains(&format!(
            "client credential: certificate (private_key_jwt), x5t#S256 {}",
            c.thumbprint()
        )),
        "{out}"
    );
    assert!(!out.contains("expires in"), "{out}");
    assert!(!out.contains("no client credential"), "{out}");

    // Expiring within 30 days: a warning naming the connection and what to do.
    let (soon, soon_key) = certificate(true, 12);
    write("soon.pem", &soon);
    write("soon-key.pem", &soon_key);
    let text = with_credential(
        "client_certificate_file = \"soon.pem\"\nclient_key_file = \"soon-key.pem\"",
    );
    let s = load_with(&text, std::iter::empty(), Some(dir.path())).expect("valid");
    let w = super::summary::warnings(&s);
    assert!(
        w.iter().any(
            |w| w.contains("connection \"contoso\": the client certificate expires in 1")
                && w.contains("upload a new certificate")
        ),
        "{w:?}"
    );

    // Expired: an error. A key that is not the certificate's: an error.
    let (old, old_key) = certificate(true, -1);
    write("old.pem", &old);
    write("old-key.pem", &old_key);
    for (c, k, why) in [
        ("old.pem", "old-key.pem", "has expired"),
        (
            "cert.pem",
            "old-key.pem",
            "does not belong to the certificate",
        ),
        ("cert.pem", "missing.pem", "cannot read"),
    ] {
        let text = with_credential(&format!(
            "client_certificate_file = \"{c}\"\nclient_key_file = \"{k}\""
        ));
        let e = load_with(&text, std::iter::empty(), Some(dir.path())).expect_err(why);
        let p = e
            .problems
            .iter()
            .find(|p| p.key == "connection[0].client_certificate_file")
            .unwrap_or_else(|| panic!("{why}: {e}"));
        assert!(e.to_string().contains(why), "{why}: {e}");
        let _ = p;
    }
    // Half a pair.
    let only_cert = with_credential("client_certificate_file = \"cert.pem\"");
    let e = load_with(&only_cert, std::iter::empty(), Some(dir.path())).expect_err("half");
    assert!(has(&e.problems, "connection[0].client_key_file"), "{e}");
}

#[test]
fn one_credential_kind_per_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "a.b.c\n").unwrap();
    let text = minimal().replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"s3cret\"\nclient_assertion_file = \"token\"",
    );
    let e = load_with(&text, std::iter::empty(), Some(dir.path())).expect_err("two kinds");
    assert!(
        has(&e.problems, "connection[0].client_assertion_file"),
        "{e}"
    );
    assert!(
        e.to_string().contains("is set together with client_secret"),
        "{e}"
    );
    let text = with_credential(
        "client_assertion_file = \"token\"\nclient_certificate_file = \"c\"\nclient_key_file = \"k\"",
    );
    let e = load_with(&text, std::iter::empty(), Some(dir.path())).expect_err("two kinds");
    assert!(
        has(&e.problems, "connection[0].client_assertion_file"),
        "{e}"
    );
}

#[test]
fn an_assertion_file_must_hold_a_jwt_and_is_named_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "eyJh.eyJz.c2ln\n").unwrap();
    std::fs::write(dir.path().join("junk"), "not a token").unwrap();
    let text = with_credential("client_assertion_file = \"token\"");
    let s = load_with(&text, std::iter::empty(), Some(dir.path())).expect("valid");
    assert_eq!(
        s.connections[0].credential,
        Some(ClientCredential::AssertionFile(dir.path().join("token")))
    );
    assert!(summary(&s).contains("client credential: federated token file (workload identity)"));
    for (file, why) in [("junk", "does not hold a JWT"), ("absent", "cannot read")] {
        let text = with_credential(&format!("client_assertion_file = \"{file}\""));
        let e = load_with(&text, std::iter::empty(), Some(dir.path())).expect_err(why);
        assert!(
            has(&e.problems, "connection[0].client_assertion_file"),
            "{e}"
        );
        assert!(e.to_string().contains(why), "{e}");
    }
    // A secret is named too, and no credential at all on Entra is a warning.
    let s = load_str(&minimal()).expect("valid");
    assert!(summary(&s).contains("client credential: client secret"));
    let s = load_str(&with_credential("")).expect("valid");
    assert!(summary(&s).contains("client credential: none (public client)"));
    assert!(super::summary::warnings(&s)
        .iter()
        .any(|w| w.contains("has no client credential") && w.contains("client_certificate_file")));
}

/// A secret given with the wrong type (a string where a list is expected, a
/// number where a string is) is reported by its key and type only: the value
/// never appears in the problem (it reaches `check`'s output and the log of a
/// refused reload; SPEC 6: no secret in logs).
#[test]
fn a_secret_of_the_wrong_type_is_never_echoed() {
    const LEAK: &str = "Hunter2SecretValueThatMustNotLeak";
    let file = minimal()
        .replace(
            &format!("secret = \"{SECRET}\""),
            &format!("secrets = \"{LEAK}\""),
        )
        .replace(
            "client_secret = \"s3cret\"",
            "client_secret = 4242424242424242",
        );
    let e = load_with(&file, Vec::new(), None).expect_err("wrong types");
    assert!(has(&e.problems, "session.secrets"), "{e}");
    assert!(has(&e.problems, "connection[0].client_secret"), "{e}");
    let all = format!("{e} {:?}", e.problems);
    assert!(!all.contains(LEAK), "{all}");
    assert!(!all.contains("4242424242424242"), "{all}");

    let vars = env(&[
        ("REALMGATE_SESSION__SECRETS", LEAK),
        (
            "REALMGATE_CONNECTION__CONTOSO__CLIENT_SECRET",
            "[\"Hunter2InAList\"]",
        ),
    ]);
    let e = load_with(&minimal(), vars, None).expect_err("wrong types");
    assert!(
        e.problems
            .iter()
            .any(|p| p.key == "REALMGATE_SESSION__SECRETS"),
        "{e}"
    );
    let all = format!("{e} {:?}", e.problems);
    assert!(!all.contains(LEAK), "{all}");
    assert!(!all.contains("Hunter2InAList"), "{all}");
}

#[test]
fn route_auth_is_required_by_default_and_may_be_optional() {
    let s = load_str(&minimal()).expect("valid");
    assert_eq!(s.routes[0].auth, RouteAuth::Required);
    let s = load_str(&format!("{}auth = \"optional\"\n", minimal())).expect("valid");
    assert_eq!(s.routes[0].auth, RouteAuth::Optional);
    let p = problems(&format!("{}auth = \"maybe\"\n", minimal()));
    assert!(has(&p, "route[0].auth"), "{p:?}");
}

#[test]
fn an_optional_route_with_an_allow_table_is_refused() {
    for allow in [
        "groups = [\"g\"]",
        "roles = [\"HR.Admin\"]",
        "email_domains = [\"contoso.com\"]",
    ] {
        let text = format!("{}auth = \"optional\"\n[route.allow]\n{allow}\n", minimal());
        let p = problems(&text);
        let e = p.iter().find(|p| p.key == "route[0].allow");
        assert!(e.is_some_and(|e| e.problem.contains("optional")), "{p:?}");
    }
}

#[test]
fn allow_claims_needs_a_connection_that_keeps_claims() {
    let text = format!(
        "{}[route.allow]\nclaims = {{ department = [\"HR\"] }}\n",
        minimal()
    );
    let p = problems(&text);
    let e = p.iter().find(|p| p.key == "route[0].allow.claims");
    assert!(
        e.is_some_and(|e| e.expected.contains("extended_profile")),
        "{p:?}"
    );
    let kept = text.replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"s3cret\"\nextended_profile = true",
    );
    let s = load_str(&kept).expect("valid");
    assert_eq!(s.routes[0].allow.claims[0].name, "department");
    assert_eq!(s.routes[0].allow.claims[0].values, ["HR"]);
    // `check` says what the route asks for, not an empty "allow:".
    assert!(
        summary(&s).contains("allow: claim department any of [HR]\n"),
        "{}",
        summary(&s)
    );
    let roles = load_str(&format!(
        "{}[route.allow]\nroles = [\"HR.Admin\"]\n",
        minimal()
    ))
    .expect("valid");
    assert!(summary(&roles).contains("allow: roles any of [HR.Admin]\n"));
    // An empty value list is a mistake, not "any value".
    let p = problems(&kept.replace("[\"HR\"]", "[]"));
    assert!(has(&p, "route[0].allow.claims.department"), "{p:?}");
}

#[test]
fn check_prints_the_front_channel_logout_url_of_each_openid_connection() {
    let s = load_str(&minimal()).expect("valid");
    let text = summary(&s);
    assert!(
        text.contains(
            "front-channel logout URL to register: https://hr.contoso.com/.auth/logout/frontchannel/contoso"
        ),
        "{text}"
    );
}

/// `check` for LDAP connections: the directory, the bind mode and the
/// sign-in form on every host of every route that allows the connection;
/// nothing of OpenID Connect (no discovery, client credential or redirect
/// URI: the password form is realmgate's own).
#[test]
fn summary_of_ldap_connections_shows_directory_bind_and_sign_in_forms() {
    let text = minimal()
        .replace(
            "hosts = [\"hr.contoso.com:8443\"]",
            "hosts = [\"hr.contoso.com:8443\", \"localhost\"]\nconnections = [\"contoso\", \"corp-ad\"]",
        )
        .replace(
            "[[route]]",
            r#"[[connection]]
name = "corp-ad"
display_name = "Contoso (on premises)"
type = "ldap"
url = ["ldaps://dc1.corp.contoso.com", "ldaps://dc2.corp.contoso.com"]
bind_dn = "CN=realmgate,OU=Service,DC=corp,DC=contoso,DC=com"
bind_password = "not-shown"
user_base = "DC=corp,DC=contoso,DC=com"
user_filter = "(&(objectClass=user)(userPrincipalName={login}))"
attributes = { user_id = "objectGUID" }
groups = "none"
home_realm_domains = ["corp.contoso.com"]

[[connection]]
name = "lab"
type = "ldap"
url = "ldap://ldap.lab.test"
start_tls = true
bind_as = "{login}"
attributes = { user_id = "entryUUID" }
groups = "none"

[[route]]"#,
        );
    let s = load_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let out = summary(&s);
    // A connection's lines: its own, and the more indented ones below it.
    let section = |name: &str| {
        let mut lines = out
            .lines()
            .skip_while(|l| !l.starts_with(&format!("  {name} (")));
        let head = lines
            .next()
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"));
        let body: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
        format!("{head}\n{}", body.join("\n"))
    };
    let corp = section("corp-ad");
    for line in [
        "    directory: ldaps://dc1.corp.contoso.com, ldaps://dc2.corp.contoso.com (tried in order)",
        "    bind: search-then-bind (search account CN=realmgate,OU=Service,DC=corp,DC=contoso,DC=com)",
        "    sign-in form:",
        "      https://hr.contoso.com/.auth/login/corp-ad",
        "      http://localhost:8080/.auth/login/corp-ad",
        "    redirect URI to register: none anywhere (realmgate serves the password form itself)",
    ] {
        assert!(corp.lines().any(|l| l == line), "no {line:?} in:\n{corp}");
    }
    let lab = section("lab");
    for line in [
        "    directory: ldap://ldap.lab.test (StartTLS)",
        "    bind: direct bind as {login}",
        "    sign-in form: (none: no route allows this connection)",
        "    redirect URI to register: none anywhere (realmgate serves the password form itself)",
    ] {
        assert!(lab.lines().any(|l| l == line), "no {line:?} in:\n{lab}");
    }
    for ldap in [&corp, &lab] {
        for oidc in [
            "discovery",
            "openid-configuration",
            "client credential",
            "public client",
            "redirect URI(s) to register",
            "front-channel",
            "/callback",
        ] {
            assert!(!ldap.contains(oidc), "{oidc:?} in:\n{ldap}");
        }
    }
    assert!(!out.contains("not-shown"), "{out}");
    // The Entra connection next to them keeps its OpenID lines, and LDAP
    // connections have no callback URL to register.
    let contoso = section("contoso");
    assert!(contoso.contains("openid-configuration"), "{contoso}");
    assert!(
        callback_urls(&s).iter().all(|(c, _)| c == "contoso"),
        "{:?}",
        callback_urls(&s)
    );
}

#[test]
fn oauth2_proxy_endpoints_need_the_root_route_and_one_openid_connection() {
    let on = minimal().replace(
        "upstream = \"http://127.0.0.1:9000\"",
        "upstream = \"http://127.0.0.1:9000\"\noauth2_proxy_endpoints = true",
    );
    let s = load_str(&on).expect("one connection at the host's root");
    assert!(s.routes[0].oauth2_proxy_endpoints);
    // The redirect URI `check` prints is oauth2-proxy's.
    let urls = callback_urls(&s);
    assert_eq!(urls[0].1, "https://hr.contoso.com/oauth2/callback");
    let p = problems(&on.replace(
        "oauth2_proxy_endpoints",
        "path_prefix = \"/app\"\noauth2_proxy_endpoints",
    ));
    assert!(has(&p, "route[0].oauth2_proxy_endpoints"), "{p:?}");
    let second = on.replace(
        "[[route]]",
        "[[connection]]\nname = \"partner\"\ntype = \"oidc\"\nissuer = \"https://idp.partner.example\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\n[[route]]",
    );
    let p = problems(&second);
    assert!(has(&p, "route[0].oauth2_proxy_endpoints"), "{p:?}");
    let text = p.iter().map(|p| p.to_string()).collect::<String>();
    assert!(text.contains("mix-up"), "{text}");
    // Limited to one of them, the route is fine.
    let one = second.replace(
        "oauth2_proxy_endpoints = true",
        "oauth2_proxy_endpoints = true\nconnections = [\"partner\"]",
    );
    load_str(&one).expect("one OpenID connection on the route");
}

#[test]
fn prefixes_of_one_host_that_differ_only_in_case_or_trailing_dots_are_refused() {
    for (first, second) in [
        ("/admin", "/Admin"),
        ("/admin", "/admin."),
        ("/Api/v1", "/api/V1 "),
    ] {
        let text = format!(
            "{}path_prefix = \"{first}\"\n\n[[route]]\nname = \"other\"\nhosts = [\"hr.contoso.com\"]\npath_prefix = \"{second}\"\nupstream = \"http://127.0.0.1:9001\"\n",
            minimal()
        );
        let p = problems(&text);
        assert!(
            has(&p, "route[1].path_prefix"),
            "{first} / {second}: {p:#?}"
        );
        assert!(
            p.iter().any(|x| x.problem.contains("only in case")),
            "{p:#?}"
        );
    }
    // Different hosts, or prefixes that differ in more than case: fine.
    let text = format!(
        "{}path_prefix = \"/admin\"\n\n[[route]]\nname = \"other\"\nhosts = [\"hr.contoso.com\"]\npath_prefix = \"/admins\"\nupstream = \"http://127.0.0.1:9001\"\n",
        minimal()
    );
    load_str(&text).expect("distinct prefixes");
}

/// `minimal()` with a SAML connection `fabrikam` (index 1) and a WS-Fed
/// connection `northwind` (index 2), each with `extra` lines, and routes
/// `hosts` (one route per entry, `connections` as given, else all).
fn realms(saml_extra: &str, wsfed_extra: &str, routes: &[(&str, Option<&str>)]) -> String {
    let mut text = minimal().replace(
        "[[route]]\nname = \"hr\"\nhosts = [\"hr.contoso.com:8443\"]\nupstream = \"http://127.0.0.1:9000\"\n",
        "",
    );
    text.push_str(&format!(
        "\n[[connection]]\nname = \"fabrikam\"\ntype = \"saml\"\nidp_metadata_file = \"/etc/fabrikam.xml\"\n{saml_extra}\n\n[[connection]]\nname = \"northwind\"\ntype = \"wsfed\"\nmetadata_file = \"/etc/northwind.xml\"\n{wsfed_extra}\n"
    ));
    for (i, (hosts, connections)) in routes.iter().enumerate() {
        text.push_str(&format!(
            "\n[[route]]\nname = \"r{i}\"\nhosts = {hosts}\nupstream = \"http://127.0.0.1:9000\"\n"
        ));
        if let Some(c) = connections {
            text.push_str(&format!("connections = {c}\n"));
        }
    }
    text
}

#[test]
fn a_saml_or_wsfed_connection_on_several_hosts_needs_one_entity_id_or_public_origin() {
    // One route with two hosts, no `connections` (every connection).
    let p = problems(&realms("", "", &[(r#"["a.test", "B.test:8443"]"#, None)]));
    let saml = p
        .iter()
        .find(|p| p.key == "connection[1].sp_entity_id")
        .unwrap_or_else(|| panic!("{p:#?}"));
    assert!(
        saml.problem.contains("\"fabrikam\"") && saml.problem.contains("a.test, b.test"),
        "{saml:?}"
    );
    assert!(saml.expected.contains("server.public_origin"), "{saml:?}");
    let wsfed = p
        .iter()
        .find(|p| p.key == "connection[2].realm")
        .unwrap_or_else(|| panic!("{p:#?}"));
    assert!(wsfed.problem.contains("\"northwind\""), "{wsfed:?}");
    assert_eq!(p.len(), 2, "{p:#?}");

    // Two routes of one host each, both allowing the connections by name.
    let both = r#"["fabrikam", "northwind"]"#;
    let p = problems(&realms(
        "",
        "",
        &[(r#"["a.test"]"#, Some(both)), (r#"["b.test"]"#, Some(both))],
    ));
    assert!(has(&p, "connection[1].sp_entity_id"), "{p:#?}");
    assert!(has(&p, "connection[2].realm"), "{p:#?}");

    // Set explicitly (WS-Fed: realm, or sp_entity_id, which it falls back to).
    let routes = [(r#"["a.test", "b.test"]"#, None)];
    load_str(&realms(
        "sp_entity_id = \"https://apps.test/.auth/saml/fabrikam\"",
        "realm = \"urn:realmgate:apps\"",
        &routes,
    ))
    .expect("entity ids set");
    load_str(&realms(
        "sp_entity_id = \"urn:fabrikam\"",
        "sp_entity_id = \"urn:northwind\"",
        &routes,
    ))
    .expect("wsfed with sp_entity_id");
    // One external origin.
    let text = realms("", "", &routes).replace(
        "[session]",
        "[server]\npublic_origin = \"https://apps.test\"\n\n[session]",
    );
    load_str(&text).expect("public_origin");
    // One host, or each connection on another single host: nothing to choose.
    load_str(&realms("", "", &[(r#"["a.test:8443"]"#, None)])).expect("one host");
    load_str(&realms(
        "",
        "",
        &[
            (r#"["a.test"]"#, Some(r#"["fabrikam"]"#)),
            (r#"["b.test"]"#, Some(r#"["northwind"]"#)),
            (r#"["c.test"]"#, Some(r#"["contoso"]"#)),
        ],
    ))
    .expect("one host per connection");
}

#[test]
fn check_warns_about_plain_http_to_a_provider_on_another_host() {
    let oidc = |issuer: &str, extra: &str| {
        minimal().replace(
            "[[route]]",
            &format!(
                "[[connection]]\nname = \"partner\"\ntype = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"rp\"\nclient_secret = \"s\"\n{extra}\n[[route]]"
            ),
        )
    };
    for (text, key) in [
        (oidc("http://idp.example.com", ""), "issuer"),
        (
            oidc(
                "https://idp.example.com",
                "authorization_endpoint = \"https://idp.example.com/a\"\ntoken_endpoint = \"https://idp.example.com/t\"\njwks_uri = \"http://keys.example.com/jwks\"",
            ),
            "jwks_uri",
        ),
        (
            minimal().replace(
                "home_realm_domains",
                "authority_host = \"http://login.example.com\"\nhome_realm_domains",
            ),
            "authority_host",
        ),
    ] {
        let s = load_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let w = warnings(&s).join("\n");
        assert!(w.contains(&format!("{key} = \"http://")) && w.contains("Use https://"), "{key}: {w}");
    }
    // https, and http to this machine (development, tests): quiet.
    for issuer in [
        "https://idp.example.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        let s = load_str(&oidc(issuer, "")).expect("valid");
        assert!(warnings(&s).is_empty(), "{issuer}: {:?}", warnings(&s));
    }
}

#[test]
fn route_hosts_that_no_request_can_name_are_refused() {
    for bad in [
        "https://hr.test",
        "*.contoso.com",
        "hr.test/",
        "hr.test/app",
        "hr test",
    ] {
        let text = minimal().replace("\"hr.contoso.com:8443\"", &format!("{bad:?}"));
        let p = problems(&text);
        assert!(has(&p, "route[0].hosts[0]"), "{bad}: {p:?}");
    }
    for good in [
        "hr.test",
        "HR.Test:8443",
        "bücher.example",
        "127.0.0.1:8080",
        "[::1]",
        "hr.test.",
    ] {
        let text = minimal().replace("\"hr.contoso.com:8443\"", &format!("{good:?}"));
        load_str(&text).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

/// What `run` refuses at start, `check` refuses first (review 13, H3).
#[test]
fn check_refuses_what_run_cannot_start_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(path("cert.pem"), one.cert.pem()).unwrap();
    std::fs::write(path("key.pem"), one.key_pair.serialize_pem()).unwrap();
    std::fs::write(path("other.pem"), other.key_pair.serialize_pem()).unwrap();
    std::fs::write(path("garbage.pem"), "<xml/>\n").unwrap();
    let with_tls = |key: &str| {
        minimal().replace(
            "[[connection]]",
            &format!(
                "[server.tls]\ncert = {:?}\nkey = {:?}\n\n[[connection]]",
                path("cert.pem"),
                path(key)
            ),
        )
    };
    load_str(&with_tls("key.pem")).expect("a pair");
    assert!(has(&problems(&with_tls("other.pem")), "server.tls"));
    let ca = minimal().replace(
        "upstream = \"http://127.0.0.1:9000\"",
        &format!(
            "upstream = \"https://127.0.0.1:9000\"\nupstream_ca = {:?}",
            path("garbage.pem")
        ),
    );
    assert!(has(&problems(&ca), "route[0].upstream_ca"));
    let same = minimal().replace(
        "[[connection]]",
        "[server]\nlisten = \"127.0.0.1:9090\"\n\n[[connection]]",
    );
    assert!(has(&problems(&same), "admin.listen"));
}

#[test]
fn check_warns_about_saml_files_that_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let dtd = dir.path().join("dtd.xml");
    std::fs::write(
        &dtd,
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>",
    )
    .unwrap();
    for file in ["/nonexistent/fabrikam.xml", dtd.to_str().unwrap()] {
        let text = minimal().replace(
            "[[route]]",
            &format!(
                "[[connection]]\nname = \"fabrikam\"\ntype = \"saml\"\nidp_metadata_file = {file:?}\nhome_realm_domains = [\"fabrikam.com\"]\n\n[[route]]"
            ),
        );
        let s = load_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let w = warnings(&s).join("\n");
        assert!(
            w.contains("\"fabrikam\"") && w.contains("503"),
            "{file}: {w}"
        );
    }
}

#[test]
fn cookie_prefixes_are_refused_and_a_cookie_domain_not_covering_a_host_is_named() {
    for name in ["__Host-x", "__host-x", "__Secure-x", "__SECURE-x"] {
        let text = minimal().replace(
            "[[connection]]",
            &format!("cookie_name = {name:?}\n\n[[connection]]"),
        );
        assert!(has(&problems(&text), "session.cookie_name"), "{name}");
    }
    let with_domain = |domain: &str| {
        minimal().replace(
            "[[connection]]",
            &format!("cookie_domain = {domain:?}\n\n[[connection]]"),
        )
    };
    let s = load_str(&with_domain(".app.test")).expect("valid");
    let w = warnings(&s).join("\n");
    assert!(w.contains("not within session.cookie_domain"), "{w}");
    let s = load_str(&with_domain(".contoso.com")).expect("valid");
    assert!(warnings(&s).is_empty(), "{:?}", warnings(&s));
}
