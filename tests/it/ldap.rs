//! `type = "ldap"` connections end to end (SPEC 9): the password form, the
//! session it makes, and what bad input gets.
//!
//! Hermetic tier: an in-process fake directory over TLS (`fake`), for the
//! hostile cases and AD's sub-codes. Real tier: Debian's slapd (`slapd`).

mod fake;
mod samba;
mod slapd;

use std::time::Duration;

use fake::{FakeGroup, FakeLdap, FakeUser, BASE, SVC_DN, SVC_PW};
use ldap3_proto::proto::LdapFilter;

use crate::util::{route, EchoUpstream, TestGateway, SECRET};

const HOST: &str = "app.test";

fn alice() -> FakeUser {
    FakeUser {
        dn: format!("cn=Alice Example,ou=people,{BASE}"),
        upn: "alice@corp.test".into(),
        password: "correct horse".into(),
        guid: [
            0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x08, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
            0x0f, 0x10,
        ],
        mail: "alice@corp.test".into(),
        name: "Alice Example".into(),
        sam: "alice".into(),
        ad_code: None,
        bind_delay: None,
        password_expiry: None,
    }
}

fn with_code(name: &str, code: &'static str) -> FakeUser {
    FakeUser {
        dn: format!("cn={name},ou=people,{BASE}"),
        upn: format!("{name}@corp.test"),
        password: "pw".into(),
        guid: [7; 16],
        mail: format!("{name}@corp.test"),
        name: name.into(),
        sam: name.into(),
        ad_code: Some(code),
        bind_delay: None,
        password_expiry: None,
    }
}

fn groups() -> Vec<FakeGroup> {
    vec![
        FakeGroup {
            dn: format!("cn=HR,ou=groups,{BASE}"),
            cn: "HR".into(),
            members: vec![format!("cn=Alice Example,ou=people,{BASE}")],
        },
        FakeGroup {
            dn: format!("cn=Staff,ou=groups,{BASE}"),
            cn: "Staff".into(),
            members: vec![format!("cn=HR,ou=groups,{BASE}")],
        },
    ]
}

/// A gateway with one LDAP connection (`corp`) at `url`, and `extra` keys on it.
fn gateway_config(url: &str, ca_file: &std::path::Path, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[session]
secret = "{SECRET}"

[[connection]]
name = "corp"
display_name = "Corp directory"
type = "ldap"
url = ["{url}"]
ca_file = "{ca}"
bind_dn = "{SVC_DN}"
bind_password = "{SVC_PW}"
user_base = "{BASE}"
user_filter = "(&(objectClass=user)(userPrincipalName={{login}}))"
attributes = {{ user_id = "objectGUID", email = "mail", name = "displayName", username = "sAMAccountName" }}
home_realm_domains = ["corp.test"]
trusted_email = true
timeout = "2s"
{extra}

{route}
"#,
        ca = ca_file.display(),
        route = route("app", HOST, "/", upstream, ""),
    )
}

/// A browser: cookies kept, redirects not followed, every host to the gateway.
fn browser(gw: &TestGateway) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .resolve(HOST, gw.addr)
        .build()
        .unwrap()
}

/// The CSRF token in a rendered form.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("form has a csrf field")
        + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

/// One wrong guess for alice per entry of `gateways`, each from a browser
/// with a form of its own (a form token serves one attempt), all sent at
/// once; every answer is a refusal (401, or 429 beyond the limit).
async fn guess_at_once(gateways: &[&TestGateway]) -> Vec<u16> {
    let mut forms = Vec::new();
    for gw in gateways {
        let b = browser(gw);
        let token = csrf(&open_form(gw, &b, "").await);
        forms.push((*gw, b, token));
    }
    let attempts = forms
        .iter()
        .enumerate()
        .map(|(i, (gw, b, token))| async move {
            post(gw, b, token, "alice@corp.test", &format!("guess-{i}"))
                .await
                .status()
                .as_u16()
        });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    statuses
}

/// `/.auth/me` of browser `b`.
async fn me(gw: &TestGateway, b: &reqwest::Client) -> serde_json::Value {
    b.get(gw.url(HOST, "/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn open_form(gw: &TestGateway, b: &reqwest::Client, query: &str) -> String {
    let r = b
        .get(gw.url(HOST, &format!("/.auth/login/corp{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn post(
    gw: &TestGateway,
    b: &reqwest::Client,
    csrf: &str,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    b.post(gw.url(HOST, "/.auth/login/corp"))
        .form(&[("csrf", csrf), ("username", user), ("password", pw)])
        .send()
        .await
        .unwrap()
}

struct World {
    ldap: FakeLdap,
    gw: TestGateway,
    _up: EchoUpstream,
}

async fn world(users: Vec<FakeUser>, extra: &str) -> World {
    let ldap = FakeLdap::start(users, groups()).await;
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&gateway_config(
        &ldap.url(),
        &ldap.ca_file,
        &up.url(),
        extra,
    ))
    .await;
    World { ldap, gw, _up: up }
}

#[tokio::test]
async fn home_realm_discovery_leads_to_the_form_and_a_session_with_the_guid_as_user_id() {
    let w = world(
        vec![alice()],
        "groups = \"memberof_chain\"\ngroup_base = \"ou=groups,dc=corp,dc=test\"",
    )
    .await;
    let b = browser(&w.gw);
    // The email box routes corp.test to the form, the email pre-filled.
    let r = b
        .post(w.gw.url(HOST, "/.auth/login"))
        .form(&[
            ("email", "alice@corp.test"),
            ("post_login_redirect_uri", "/reports?q=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/.auth/login/corp?"), "{loc}");
    let form = b.get(w.gw.url(HOST, &loc)).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("value=\"alice@corp.test\""),
        "username pre-filled"
    );
    assert!(html.contains("type=\"password\""));
    assert!(
        html.contains("<label for=\"password\">"),
        "labelled for screen readers"
    );
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    assert_eq!(r.headers()["location"], "/reports?q=1");
    let me = me(&w.gw, &b).await;
    assert_eq!(me["user_id"], "corp:01020304-0506-0708-090a-0b0c0d0e0f10");
    assert_eq!(me["connection"], "corp");
    assert_eq!(me["email"], "alice@corp.test");
    assert_eq!(me["preferred_username"], "alice");
    let mut g: Vec<String> = serde_json::from_value(me["groups"].clone()).unwrap();
    g.sort();
    assert_eq!(
        g,
        vec!["HR", "Staff"],
        "nested groups through the in-chain rule"
    );
    // Proxied with identity headers.
    let r = b.get(w.gw.url(HOST, "/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let echoed = crate::util::Echoed::from(r).await;
    assert_eq!(
        echoed.header("x-forwarded-user").as_deref(),
        Some("corp:01020304-0506-0708-090a-0b0c0d0e0f10")
    );
    // The password was sent to the directory once, in the user's bind.
    assert_eq!(w.ldap.user_binds(), 1);
}

#[tokio::test]
async fn memberof_groups_are_named_from_the_dn() {
    let w = world(vec![alice()], "groups = \"memberof\"").await;
    let b = browser(&w.gw);
    let html = open_form(&w.gw, &b, "").await;
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302);
    let me = me(&w.gw, &b).await;
    assert_eq!(me["groups"], serde_json::json!(["HR"]));
}

/// `cn` is unique only within one container: with a `group_base`, the
/// `memberof` mode names only groups under it, so a namesake made in another
/// OU (or one whose name differs by an escaped space) is not the group a
/// policy names (review 9).
#[tokio::test]
async fn memberof_groups_outside_group_base_are_not_named() {
    let mut groups = groups();
    for (dn, cn) in [
        (format!("cn=Admins,ou=lab,{BASE}"), "Admins"),
        (format!("cn=\\ HR,ou=groups,{BASE}"), " HR"),
    ] {
        groups.push(FakeGroup {
            dn,
            cn: cn.into(),
            members: vec![format!("cn=Alice Example,ou=people,{BASE}")],
        });
    }
    for (extra, expected) in [
        ("groups = \"memberof\"", vec![" HR", "Admins", "HR"]),
        (
            "groups = \"memberof\"\ngroup_base = \"OU=Groups, DC=corp, DC=test\"",
            vec![" HR", "HR"],
        ),
    ] {
        let ldap = FakeLdap::start(vec![alice()], groups.clone()).await;
        let up = EchoUpstream::start().await;
        let gw = TestGateway::start(&gateway_config(
            &ldap.url(),
            &ldap.ca_file,
            &up.url(),
            extra,
        ))
        .await;
        let b = browser(&gw);
        let html = open_form(&gw, &b, "").await;
        let r = post(&gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
        assert_eq!(r.status(), 302);
        let me = me(&gw, &b).await;
        assert_eq!(me["groups"], serde_json::json!(expected), "{extra}");
    }
}

#[tokio::test]
async fn a_filter_injection_is_one_literal_value() {
    let w = world(vec![alice()], "").await;
    let b = browser(&w.gw);
    for login in [
        "*",
        "*)(objectClass=*",
        "alice@corp.test)(|(userPrincipalName=*",
        "\\2a",
        "al*",
    ] {
        let html = open_form(&w.gw, &b, "").await;
        let r = post(&w.gw, &b, &csrf(&html), login, "correct horse").await;
        assert_eq!(r.status(), 401, "{login:?}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("The user name or password is incorrect"),
            "{login:?}"
        );
    }
    assert_eq!(w.ldap.user_binds(), 0, "no user entry was ever found");
    let seen = w.ldap.seen.lock().unwrap();
    for f in &seen.filters {
        let LdapFilter::And(parts) = f else {
            panic!("user filter shape changed: {f:?}")
        };
        assert!(
            matches!(&parts[1], LdapFilter::Equality(a, _) if a == "userPrincipalName"),
            "{f:?}"
        );
        assert_eq!(parts.len(), 2, "{f:?}");
    }
}

#[tokio::test]
async fn an_empty_password_never_reaches_a_bind() {
    let w = world(vec![alice()], "").await;
    let b = browser(&w.gw);
    let html = open_form(&w.gw, &b, "").await;
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "").await;
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("set-cookie")
        .is_none_or(|c| !c.to_str().unwrap().starts_with("realmgate=")));
    assert_eq!(w.ldap.user_binds(), 0);
    assert!(w
        .ldap
        .seen
        .lock()
        .unwrap()
        .binds
        .iter()
        .all(|(_, with_pw)| *with_pw));
}

#[tokio::test]
async fn unknown_user_and_wrong_password_read_the_same_and_ad_states_are_said_plainly() {
    let users = vec![
        alice(),
        with_code("locked", "775"),
        with_code("expired", "532"),
        with_code("mustchange", "773"),
        with_code("disabled", "533"),
        with_code("hours", "530"),
    ];
    let w = world(
        users,
        "password_change_url = \"https://passwords.corp.test/\"\nmax_failed_logins = 100",
    )
    .await;
    let b = browser(&w.gw);
    let answer = |user: &'static str, pw: &'static str| {
        let (gw, b) = (&w.gw, &b);
        async move {
            let html = open_form(gw, b, "").await;
            let r = post(gw, b, &csrf(&html), user, pw).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s1, wrong) = answer("alice@corp.test", "nope").await;
    let (s2, unknown) = answer("nobody@corp.test", "nope").await;
    assert_eq!((s1, s2), (401, 401));
    let msg = |h: &str| {
        h.split("role=\"alert\"")
            .nth(1)
            .map(|m| m.split("</div>").next().unwrap().to_string())
    };
    assert_eq!(msg(&wrong), msg(&unknown));
    let (s, locked) = answer("locked@corp.test", "pw").await;
    assert_eq!(s, 403);
    assert!(locked.contains("Your account is locked"));
    let (_, expired) = answer("expired@corp.test", "pw").await;
    assert!(expired.contains("Your password has expired"));
    assert!(expired.contains("Change your password"), "{expired}");
    assert!(expired.contains("passwords.corp.test"), "{expired}");
    let (_, must) = answer("mustchange@corp.test", "pw").await;
    assert!(must.contains("You must change your password"));
    let (_, disabled) = answer("disabled@corp.test", "pw").await;
    assert!(disabled.contains("Your account is disabled"));
    assert!(!disabled.contains("passwords.corp.test"));
    let (_, hours) = answer("hours@corp.test", "pw").await;
    assert!(hours.contains("at this time of day"));
}

#[tokio::test]
async fn an_unreachable_directory_is_a_503_page() {
    // A port held for nothing to listen on.
    let closed = crate::util::ReservedPort::new();
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let url = format!("ldaps://127.0.0.1:{}", closed.port());
    let gw = TestGateway::start(&gateway_config(&url, &ldap.ca_file, &up.url(), "")).await;
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("cannot be reached"));
}

#[tokio::test]
async fn the_second_url_is_tried_when_the_first_does_not_answer() {
    let closed = crate::util::ReservedPort::new();
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let urls = format!("ldaps://127.0.0.1:{}\", \"{}", closed.port(), ldap.url());
    let gw = TestGateway::start(&gateway_config(&urls, &ldap.ca_file, &up.url(), "")).await;
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn failures_are_limited_per_login_even_with_the_right_password_afterwards() {
    let w = world(
        vec![alice()],
        "max_failed_logins = 3\nfailure_window = \"10m\"",
    )
    .await;
    let b = browser(&w.gw);
    for _ in 0..3 {
        let html = open_form(&w.gw, &b, "").await;
        assert_eq!(
            post(&w.gw, &b, &csrf(&html), "Alice@corp.test", "wrong")
                .await
                .status(),
            401
        );
    }
    let binds = w.ldap.user_binds();
    let html = open_form(&w.gw, &b, "").await;
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
    assert_eq!(w.ldap.user_binds(), binds, "the directory was not asked");
}

/// The limit holds for attempts sent at once: checking the count and
/// counting the failure after the bind must not let a burst of concurrent
/// guesses all pass the check before the first failure is counted (each
/// such guess would reach the directory and count towards its lockout).
#[tokio::test]
async fn concurrent_guesses_reach_the_directory_at_most_max_failed_logins_times() {
    let w = world(
        vec![alice()],
        "max_failed_logins = 2\nfailure_window = \"10m\"",
    )
    .await;
    // A form token serves one attempt, so the burst comes from 24 browsers,
    // each with a form of its own: every post passes the token check and only
    // the failure limit (attempts under way included) stands between the
    // guesses and the directory.
    let statuses = guess_at_once(&[&w.gw; 24]).await;
    assert!(
        w.ldap.user_binds() <= 2,
        "{} guesses reached the directory with max_failed_logins = 2 ({statuses:?})",
        w.ldap.user_binds()
    );
}

#[tokio::test]
async fn a_post_without_this_browsers_token_is_refused_before_any_bind() {
    let w = world(vec![alice()], "").await;
    let b = browser(&w.gw);
    let _ = open_form(&w.gw, &b, "").await;
    // A token from another browser's form.
    let other = browser(&w.gw);
    let theirs = csrf(&open_form(&w.gw, &other, "").await);
    let r = post(&w.gw, &b, &theirs, "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 400);
    // No token, no cookie.
    let stranger = browser(&w.gw);
    let r = post(&w.gw, &stranger, "", "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 400);
    assert_eq!(w.ldap.user_binds(), 0);
}

#[tokio::test]
async fn check_refuses_plain_ldap_and_names_the_keys() {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[session]
secret = "{SECRET}"
[[connection]]
name = "corp"
type = "ldap"
url = "ldap://dc1.corp.test"
user_filter = "(uid=x)"
attributes = {{ user_id = "mail" }}
groups = "search"
{route}
"#,
        route = route("app", HOST, "/", "http://127.0.0.1:9", ""),
    );
    let err = realmgate::config::load_str(&toml).unwrap_err().to_string();
    for key in [
        "connection[0].url",
        "connection[0].bind_dn",
        "connection[0].user_base",
        "connection[0].user_filter",
        "connection[0].attributes.user_id",
        "connection[0].group_base",
    ] {
        assert!(err.contains(key), "{key} not named in: {err}");
    }
}

/// `attributes.user_id` is an allow-list of ids the directory assigns once
/// (SPEC 6.1, review 9): a name users or admins can set is refused.
#[test]
fn only_immutable_directory_ids_can_be_the_user_id() {
    let config = |attr: &str| {
        format!(
            r#"
[session]
secret = "{SECRET}"
[[connection]]
name = "corp"
type = "ldap"
url = "ldaps://dc1.corp.test"
bind_dn = "cn=svc,dc=corp,dc=test"
bind_password = "x"
user_base = "dc=corp,dc=test"
user_filter = "(uid={{login}})"
attributes = {{ user_id = "{attr}" }}
groups = "none"
{route}
"#,
            route = route("app", HOST, "/", "http://127.0.0.1:9", ""),
        )
    };
    for attr in [
        "cn",
        "displayName",
        "employeeNumber",
        "mail",
        "uid",
        "sAMAccountName",
        "userPrincipalName",
    ] {
        let err = realmgate::config::load_str(&config(attr))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connection[0].attributes.user_id"),
            "{attr}: {err}"
        );
    }
    for attr in [
        "objectGUID",
        "objectguid",
        "entryUUID",
        "nsUniqueId",
        "ipaUniqueID",
    ] {
        realmgate::config::load_str(&config(attr)).unwrap_or_else(|e| panic!("{attr}: {e}"));
    }
}

/// Browser tier: Chromium types the email on the sign-in page, lands on the
/// password form with the user name pre-filled, types the password, presses
/// Enter, and reaches the app with the directory's identity.
#[tokio::test]
async fn a_real_browser_signs_in_through_the_password_form() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian chromium is missing: apt-get install chromium (scripts/test.sh does it)"
    );
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let app = realmgate::demo::app::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let toml = gateway_config(
        &ldap.url(),
        &ldap.ca_file,
        &app.url(),
        "groups = \"memberof_chain\"\ngroup_base = \"ou=groups,dc=corp,dc=test\"",
    )
    .replace(&format!("hosts = [\"{HOST}\"]"), "hosts = [\"127.0.0.1\"]")
    .replace("[[route]]", "[ui]\ntitle = \"Contoso apps\"\n\n[[route]]");
    let gateway = TestGateway::start(&toml).await;
    let url = format!("http://127.0.0.1:{}/reports?quarter=3", gateway.addr.port());
    let shots = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--url",
        &url,
        "--email",
        "alice@corp.test",
        "--password",
        "correct horse",
        "--expect-header",
        "X-Forwarded-User=corp:01020304-0506-0708-090a-0b0c0d0e0f10",
        "--expect-header",
        "X-Forwarded-Groups~Staff",
        "--expect-absent",
        "Cookie",
        "--screenshots",
        shots.path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, stdout, stderr) =
        crate::node::run_script("browser-login.mjs", &args, Duration::from_secs(120)).await;
    assert!(ok, "browser sign-in failed:\n{stderr}\n{stdout}");
    assert_eq!(stdout.trim(), format!("OK {url}"));
    assert!(
        shots.path().join("02-password.png").exists(),
        "the password form was shown"
    );
    assert_eq!(ldap.user_binds(), 1);
    gateway.stop().await;
}

/// With Redis sessions the failure counters are shared: failures at one
/// replica block the login at another, and the counter key holds no login
/// in clear.
#[tokio::test]
async fn the_failure_limit_holds_across_replicas_with_redis() {
    let redis = crate::redis_util::RedisServer::start().await;
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = gateway_config(&ldap.url(), &ldap.ca_file, &up.url(), "max_failed_logins = 2").replace(
        &format!("secret = \"{SECRET}\""),
        &format!("secret = \"{SECRET}\"\nstore = \"redis\"\nredis_url = \"{}\"\nredis_key_prefix = \"ldaptest:\"", redis.url()),
    );
    let a = TestGateway::start(&toml).await;
    let b = TestGateway::start(&toml).await;
    for gw in [&a, &b] {
        let br = browser(gw);
        let html = open_form(gw, &br, "").await;
        assert_eq!(
            post(gw, &br, &csrf(&html), "alice@corp.test", "wrong")
                .await
                .status(),
            401
        );
    }
    // Blocked at a, after one failure at each replica.
    let br = browser(&a);
    let html = open_form(&a, &br, "").await;
    assert_eq!(
        post(&a, &br, &csrf(&html), "alice@corp.test", "correct horse")
            .await
            .status(),
        429
    );
    let keys = redis.command("KEYS ldaptest:f:*").await;
    assert!(keys.contains("ldap:corp:login:"), "{keys}");
    assert!(!keys.to_ascii_lowercase().contains("alice"), "{keys}");
    a.stop().await;
    b.stop().await;
}

/// Attempts under way are counted in Redis too (review 9): a burst of
/// concurrent guesses spread over two replicas, all sent before any of
/// them fails, reaches the directory at most `max_failed_logins` times in
/// all (counted per process, it reached it up to twice that).
#[tokio::test]
async fn concurrent_guesses_across_replicas_reach_the_directory_at_most_max_times() {
    let redis = crate::redis_util::RedisServer::start().await;
    let mut slow = alice();
    slow.bind_delay = Some(Duration::from_millis(400));
    let ldap = FakeLdap::start(vec![slow], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = gateway_config(&ldap.url(), &ldap.ca_file, &up.url(), "max_failed_logins = 2\nfailure_window = \"10m\"").replace(
        &format!("secret = \"{SECRET}\""),
        &format!("secret = \"{SECRET}\"\nstore = \"redis\"\nredis_url = \"{}\"\nredis_key_prefix = \"burst:\"", redis.url()),
    );
    let a = TestGateway::start(&toml).await;
    let b = TestGateway::start(&toml).await;
    let gateways: Vec<&TestGateway> = [&a, &b].into_iter().cycle().take(16).collect();
    let statuses = guess_at_once(&gateways).await;
    assert!(
        ldap.user_binds() <= 2,
        "{} guesses reached the directory with max_failed_logins = 2 over two replicas ({statuses:?})",
        ldap.user_binds()
    );
    // Every reservation was given back: nothing is left under way.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let keys = redis.command("KEYS burst:u:*").await;
        if !keys.contains("burst:u:") || std::time::Instant::now() > deadline {
            assert!(!keys.contains("burst:u:"), "left under way: {keys}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// AD direct bind (`bind_as = "{login}"`): no search account; realmgate
/// binds with the UPN as typed, then reads the user's entry as the user.
#[tokio::test]
async fn direct_bind_with_the_upn_signs_in_without_a_search_account() {
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = direct_bind_config(&ldap, &up, "groups = \"memberof_chain\"");
    let gw = TestGateway::start(&toml).await;
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    assert_eq!(
        post(&gw, &b, &csrf(&html), "alice@corp.test", "wrong")
            .await
            .status(),
        401
    );
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302);
    let me = me(&gw, &b).await;
    assert_eq!(me["user_id"], "corp:01020304-0506-0708-090a-0b0c0d0e0f10");
    let seen = ldap.seen.lock().unwrap();
    assert!(
        seen.binds.iter().all(|(dn, _)| dn == "alice@corp.test"),
        "{:?}",
        seen.binds
    );
}

/// AD direct bind with `bind_as = "{login}"`: the directory also takes a
/// DN as the bind name, and one DN has endless spellings (spaces after the
/// commas, escaped characters), each of which would be its own login for
/// the failure limit. A typed login that is a DN never reaches a bind, so
/// the limit per login cannot be walked around that way (nor the
/// directory's lockout reached through it).
#[tokio::test]
async fn direct_bind_never_binds_with_a_typed_dn() {
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = direct_bind_config(&ldap, &up, "max_failed_logins = 10");
    let gw = TestGateway::start(&toml).await;
    let spellings = [
        format!("cn=Alice Example,ou=people,{BASE}"),
        format!("cn=Alice Example, ou=people,{BASE}"),
        format!("cn=Alice Example,  ou=people,{BASE}"),
        format!("cn=Alice\\20Example,ou=people,{BASE}"),
    ];
    for login in &spellings {
        let b = browser(&gw);
        let html = open_form(&gw, &b, "").await;
        let r = post(&gw, &b, &csrf(&html), login, "wrong").await;
        assert_eq!(r.status(), 401, "{login}");
    }
    let binds = ldap.seen.lock().unwrap().binds.clone();
    assert!(binds.is_empty(), "a typed DN reached a bind: {binds:?}");
    // The UPN still signs in.
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302);
}

/// AD direct bind with a `user_filter` that also finds users by `mail`:
/// the name AD binds and the entry the filter finds can be two accounts.
/// Mallory's sAMAccountName is `boss`, so AD binds `boss@corp.test` as
/// her (its implicit UPN) with her own password; the filter, filled with
/// the same `boss@corp.test`, finds the CEO, whose mail that is. The
/// entry read must be the account that bound (RFC 4532 "Who am I?"), else
/// the sign-in is refused like a wrong password.
#[tokio::test]
async fn a_direct_bind_signs_in_only_the_account_that_bound() {
    let user = |sam: &str, upn: &str, mail: &str, pw: &str, guid: u8| FakeUser {
        dn: format!("cn={sam},ou=people,{BASE}"),
        upn: upn.into(),
        password: pw.into(),
        guid: [guid; 16],
        mail: mail.into(),
        name: sam.into(),
        sam: sam.into(),
        ad_code: None,
        bind_delay: None,
        password_expiry: None,
    };
    let mallory = user(
        "boss",
        "mallory@corp.test",
        "mallory@corp.test",
        "mallory pw",
        0x11,
    );
    let ceo = user("ceo", "ceo@corp.test", "boss@corp.test", "ceo secret", 0x22);
    // Types the implicit UPN that is also her mail: still herself.
    let jdoe = user(
        "jdoe",
        "john.doe@corp.test",
        "jdoe@corp.test",
        "jdoe pw",
        0x33,
    );
    let ldap = FakeLdap::start(vec![mallory, ceo, jdoe], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = direct_bind_config(&ldap, &up, "max_failed_logins = 50").replace(
        "user_filter = \"(&(objectClass=user)(userPrincipalName={login}))\"",
        "user_filter = \"(|(userPrincipalName={login})(mail={login}))\"",
    );
    assert!(toml.contains("(mail={login})"));
    let gw = TestGateway::start(&toml).await;
    let id = |g: u8| {
        format!(
            "corp:{}",
            realmgate::ldap::directory::guid_string(&[g; 16]).unwrap()
        )
    };

    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "boss@corp.test", "mallory pw").await;
    let status = r.status();
    if status == 302 {
        panic!(
            "signed in as {} with mallory's password",
            me(&gw, &b).await["user_id"]
        );
    }
    assert_eq!(status, 401);
    assert_eq!(
        b.get(gw.url(HOST, "/.auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    for (login, pw, guid) in [
        ("mallory@corp.test", "mallory pw", 0x11),
        ("ceo@corp.test", "ceo secret", 0x22),
        ("jdoe@corp.test", "jdoe pw", 0x33),
        ("john.doe@corp.test", "jdoe pw", 0x33),
    ] {
        let b = browser(&gw);
        let html = open_form(&gw, &b, "").await;
        let r = post(&gw, &b, &csrf(&html), login, pw).await;
        assert_eq!(r.status(), 302, "{login}");
        assert_eq!(me(&gw, &b).await["user_id"], id(guid), "{login}");
    }
    gw.stop().await;

    // A DN template binds `cn=boss,…` (mallory); a filter on `mail` finds
    // the CEO's entry.
    let toml = toml
        .replace(
            "bind_as = \"{login}\"",
            &format!("bind_as = \"cn={{login}},ou=people,{BASE}\""),
        )
        .replace(
            "(|(userPrincipalName={login})(mail={login}))",
            "(mail={login}@corp.test)",
        );
    let gw = TestGateway::start(&toml).await;
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "boss", "mallory pw").await;
    assert_eq!(
        r.status(),
        401,
        "a DN template read another account's entry"
    );
    // jdoe's own cn and mail agree: signed in.
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "jdoe", "jdoe pw").await;
    assert_eq!(r.status(), 302);
    assert_eq!(me(&gw, &b).await["user_id"], id(0x33));
}

/// `gateway_config` with 127.0.0.1 as a trusted proxy, so each attempt can
/// come from an address of its own (`X-Forwarded-For`): the per-address
/// budget then never stands in for the per-login one.
/// A gateway config for AD direct bind (`bind_as = "{login}"`): the search
/// account's lines removed, `extra` lines added to the connection.
fn direct_bind_config(ldap: &FakeLdap, up: &EchoUpstream, extra: &str) -> String {
    gateway_config(
        &ldap.url(),
        &ldap.ca_file,
        &up.url(),
        &format!("bind_as = \"{{login}}\"\n{extra}"),
    )
    .replace(&format!("bind_dn = \"{SVC_DN}\"\n"), "")
    .replace(&format!("bind_password = \"{SVC_PW}\"\n"), "")
}

fn behind_proxy(toml: String) -> String {
    toml.replacen(
        "listen = \"127.0.0.1:0\"\n\n[admin]",
        "listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n[admin]",
        1,
    )
}

async fn post_from(
    gw: &TestGateway,
    from: &str,
    user: &str,
    pw: &str,
) -> (u16, String, reqwest::Client) {
    let b = browser(gw);
    let html = open_form(gw, &b, "").await;
    let r = b
        .post(gw.url(HOST, "/.auth/login/corp"))
        .header("x-forwarded-for", from)
        .form(&[
            ("csrf", csrf(&html).as_str()),
            ("username", user),
            ("password", pw),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default(), b)
}

/// Re-spelling one account does not multiply its failure budget: AD takes
/// `CORP\alice`, `alice@corp.test`, `ALICE`, and compares names ignoring
/// width (`ａｌｉｃｅ`); each spelling from an address of its own.
#[tokio::test]
async fn login_spellings_of_one_account_share_one_failure_budget() {
    // Search-then-bind: the filter takes the UPN or the sAMAccountName.
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = behind_proxy(gateway_config(
        &ldap.url(),
        &ldap.ca_file,
        &up.url(),
        "max_failed_logins = 3\nfailure_window = \"10m\"",
    ))
    .replace(
        "(&(objectClass=user)(userPrincipalName={login}))",
        "(&(objectClass=user)(|(userPrincipalName={login})(sAMAccountName={login})))",
    );
    let gw = TestGateway::start(&toml).await;
    for (i, spelling) in ["CORP\\alice", "ＡＬＩＣＥ@corp.test", "Alice"]
        .iter()
        .enumerate()
    {
        let (s, body, _) = post_from(&gw, &format!("10.1.0.{i}"), spelling, "wrong").await;
        assert_eq!(s, 401, "{spelling}: {body}");
    }
    let binds = ldap.user_binds();
    let (s, _, _) = post_from(&gw, "10.1.0.9", "alice@corp.test", "correct horse").await;
    assert_eq!(s, 429, "a fourth spelling is the same login");
    assert_eq!(ldap.user_binds(), binds, "the directory was not asked");
    gw.stop().await;

    // The entry the login resolves to is a key of its own: a spelling with
    // nothing in common with the others (the sAMAccountName `asmith` of
    // the UPN alice@corp.test) still spends the same budget.
    let mut a = alice();
    a.sam = "asmith".into();
    let ldap = FakeLdap::start(vec![a], groups()).await;
    let toml = behind_proxy(gateway_config(
        &ldap.url(),
        &ldap.ca_file,
        &up.url(),
        "max_failed_logins = 2\nfailure_window = \"10m\"",
    ))
    .replace(
        "(&(objectClass=user)(userPrincipalName={login}))",
        "(&(objectClass=user)(|(userPrincipalName={login})(sAMAccountName={login})))",
    );
    let gw = TestGateway::start(&toml).await;
    for (i, spelling) in ["alice@corp.test", "asmith"].iter().enumerate() {
        let (s, _, _) = post_from(&gw, &format!("10.2.0.{i}"), spelling, "wrong").await;
        assert_eq!(s, 401, "{spelling}");
    }
    let (s, _, _) = post_from(&gw, "10.2.0.9", "asmith", "correct horse").await;
    assert_eq!(s, 429, "the entry's budget is spent");
    gw.stop().await;

    // Direct bind: the entry is unknown before the bind; the canonical
    // login still joins DOMAIN\user, the UPN and case differences.
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let toml = behind_proxy(direct_bind_config(
        &ldap,
        &up,
        "max_failed_logins = 2\nfailure_window = \"10m\"",
    ));
    let gw = TestGateway::start(&toml).await;
    for (i, spelling) in ["CORP\\Alice", "alice@CORP.TEST"].iter().enumerate() {
        let (s, _, _) = post_from(&gw, &format!("10.3.0.{i}"), spelling, "wrong").await;
        assert_eq!(s, 401, "{spelling}");
    }
    let (s, _, _) = post_from(&gw, "10.3.0.9", "alice@corp.test", "correct horse").await;
    assert_eq!(s, 429);
    gw.stop().await;
}

/// A browser that disconnects while its bind is under way drops the
/// request; the attempt still runs to its end and its failure is counted
/// (else closing the tab mid-bind would be a free guess).
#[tokio::test]
async fn a_sign_in_cancelled_mid_bind_is_still_counted() {
    let mut slow = alice();
    slow.bind_delay = Some(Duration::from_millis(1500));
    let w = world(
        vec![slow],
        "max_failed_logins = 2\nfailure_window = \"10m\"",
    )
    .await;
    // The first guess: the browser goes away while the directory thinks.
    let b = browser(&w.gw);
    let token = csrf(&open_form(&w.gw, &b, "").await);
    let guess = {
        let (b, url) = (b.clone(), w.gw.url(HOST, "/.auth/login/corp"));
        tokio::spawn(async move {
            b.post(url)
                .form(&[
                    ("csrf", token.as_str()),
                    ("username", "alice@corp.test"),
                    ("password", "guess-1"),
                ])
                .send()
                .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.ldap.seen.lock().unwrap().binds_started == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bind never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    guess.abort();
    assert!(guess.await.unwrap_err().is_cancelled());
    // The second guess, then the right password: two failures are counted,
    // so the limit refuses it without asking the directory.
    let html = open_form(&w.gw, &b, "").await;
    assert_eq!(
        post(&w.gw, &b, &csrf(&html), "alice@corp.test", "guess-2")
            .await
            .status(),
        401
    );
    let binds = w.ldap.user_binds();
    let html = open_form(&w.gw, &b, "").await;
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 429, "the cancelled guess was not counted");
    assert_eq!(w.ldap.user_binds(), binds);
}

/// A FILETIME (100 ns since 1601) `days` from now.
fn filetime_in(days: u64) -> u64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + days * 86400;
    (unix + 11_644_473_600) * 10_000_000
}

/// AD's `msDS-UserPasswordExpiryTimeComputed`: within 14 days, a notice
/// page after sign-in (the session already made) with the
/// `password_change_url` link and a Continue link to the target; later,
/// or never, straight to the target.
#[tokio::test]
async fn a_password_that_expires_soon_gets_a_notice_with_continue() {
    let mut soon = alice();
    soon.password_expiry = Some(filetime_in(3) + 600 * 10_000_000);
    let mut later = with_code("later", "none");
    later.ad_code = None;
    later.password = "pw".into();
    later.guid = [9; 16];
    later.password_expiry = Some(filetime_in(30));
    let mut never = with_code("never", "none");
    never.ad_code = None;
    never.password = "pw".into();
    never.guid = [8; 16];
    never.password_expiry = Some(0x7FFF_FFFF_FFFF_FFFF);
    let w = world(
        vec![soon, later, never],
        "password_change_url = \"https://passwords.corp.test/change?a=1&b=2\"",
    )
    .await;
    let b = browser(&w.gw);
    let html = open_form(&w.gw, &b, "?login_hint=alice@corp.test").await;
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("HttpOnly")));
    // The templates escape `/` as `&#x2f;`.
    let page = r.text().await.unwrap().replace("&#x2f;", "/");
    assert!(page.contains("Your password expires in 4 days"), "{page}");
    assert!(
        page.contains("href=\"https://passwords.corp.test/change?a=1&amp;b=2\""),
        "{page}"
    );
    assert!(page.contains("href=\"/\">Continue</a>"), "{page}");
    assert!(!page.contains("<script"), "works without JavaScript");
    // Signed in already: Continue leads to the app.
    let r = b.get(w.gw.url(HOST, "/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for user in ["later@corp.test", "never@corp.test"] {
        let b = browser(&w.gw);
        let html = open_form(&w.gw, &b, "").await;
        let r = post(&w.gw, &b, &csrf(&html), user, "pw").await;
        assert_eq!(r.status(), 302, "{user}");
    }
}

/// AD direct bind with a down-level name: `CORP\\alice` is read by its
/// sAMAccountName in this domain; a trusted domain's `OTHER\\alice`, which
/// AD would let bind, is refused rather than read as this domain's alice.
#[tokio::test]
async fn direct_bind_with_a_down_level_name_reads_only_this_domains_account() {
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = direct_bind_config(&ldap, &up, "");
    let gw = TestGateway::start(&toml).await;
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "corp\\ALICE", "correct horse").await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let me = me(&gw, &b).await;
    assert_eq!(me["user_id"], "corp:01020304-0506-0708-090a-0b0c0d0e0f10");
    let b = browser(&gw);
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "OTHER\\alice", "correct horse").await;
    // What the user typed, not an outage (SPEC 9: a 4xx, never the 503 of
    // an unreachable directory), and an account this connection does not
    // know: the unknown user's answer, which says nothing of the password.
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("The user name or password is incorrect"),
        "{page}"
    );
    let r = b.get(gw.url(HOST, "/.auth/me")).send().await.unwrap();
    assert_ne!(r.status(), 200, "no session for another domain's account");
}

/// With a direct bind the typed login is the only key of the failure
/// limit, and Active Directory takes `àlice`, `a\u{301}lice` (any number of
/// marks) and `alice` for one account: marked spellings share one budget.
#[tokio::test]
async fn direct_bind_spellings_with_marks_share_one_failure_budget() {
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = behind_proxy(direct_bind_config(
        &ldap,
        &up,
        "max_failed_logins = 3\nfailure_window = \"10m\"",
    ));
    let gw = TestGateway::start(&toml).await;
    for (i, spelling) in [
        "\u{e0}lice@corp.test",
        "a\u{301}\u{301}lice@corp.test",
        "CORP\\\u{c5}LICE",
    ]
    .iter()
    .enumerate()
    {
        let (s, body, _) = post_from(&gw, &format!("10.2.0.{i}"), spelling, "wrong").await;
        assert_eq!(s, 401, "{spelling}: {body}");
    }
    let binds = ldap.user_binds();
    let (s, _, _) = post_from(&gw, "10.2.0.9", "alice@corp.test", "correct horse").await;
    assert_eq!(s, 429, "a fourth spelling is the same login");
    assert_eq!(ldap.user_binds(), binds, "the directory was not asked");
    gw.stop().await;
}

/// Active Directory binds one account under many names (display name,
/// canonical name, SID, objectGUID, SPN, ...); the failure limit folds only
/// a UPN and `DOMAIN\account` into one login. Any other name never reaches
/// a bind, so each spelling cannot bring a budget of failed binds of its own.
#[tokio::test]
async fn direct_bind_sends_only_a_upn_or_a_down_level_name_to_the_directory() {
    let ldap = FakeLdap::start(vec![alice()], groups()).await;
    let up = EchoUpstream::start().await;
    let toml = direct_bind_config(&ldap, &up, "max_failed_logins = 100");
    let gw = TestGateway::start(&toml).await;
    let b = browser(&gw);
    for login in [
        "Alice Example",
        "corp.test/Users/Alice Example",
        "S-1-5-21-1004336348-1177238915-682003330-1105",
        "{01020304-0506-0708-090a-0b0c0d0e0f10}",
        "HTTP/alice-pc.corp.test",
        "alice",
    ] {
        let html = open_form(&gw, &b, "").await;
        let r = post(&gw, &b, &csrf(&html), login, "correct horse").await;
        assert_eq!(r.status(), 401, "{login}");
        assert!(
            r.text().await.unwrap().contains("incorrect"),
            "the same answer as a wrong password: {login}"
        );
    }
    assert_eq!(ldap.user_binds(), 0, "no other name form reached a bind");
    let html = open_form(&gw, &b, "").await;
    let r = post(&gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302, "the UPN still signs in");
}

/// Review 12: Samba's AD DC (as Windows' NUL-terminated password APIs do)
/// reads a password up to its first NUL: `<right password>\0anything`
/// signed in, though it is not the account's password; and a server that
/// cuts at NUL before its empty-password check would take `\0` for an
/// unauthenticated bind (RFC 4513 5.1.2), which succeeds as anonymous. No
/// browser can type a NUL: such a password never reaches a bind.
#[tokio::test]
async fn a_password_with_a_nul_never_reaches_a_bind() {
    let w = world(vec![alice()], "max_failed_logins = 100").await;
    let b = browser(&w.gw);
    for pw in ["\0", "\0x", "correct horse\0", "correct horse\0junk"] {
        let html = open_form(&w.gw, &b, "").await;
        let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", pw).await;
        assert_eq!(r.status(), 401, "{pw:?}");
    }
    assert_eq!(w.ldap.user_binds(), 0);
    // The right password still signs in.
    let html = open_form(&w.gw, &b, "").await;
    let r = post(&w.gw, &b, &csrf(&html), "alice@corp.test", "correct horse").await;
    assert_eq!(r.status(), 302);
}
