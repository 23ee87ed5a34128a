use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::config::{load_str, Settings};
use crate::session::model::EmailTrust;

const G_HR: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const G_POLICY: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const G_OTHER: &str = "aaaaaaaa-0000-0000-0000-000000000003";

/// A P-256 key file for `server.assertion_key` (routes with `jwt_assertion`).
fn assertion_key_path() -> &'static str {
    use std::io::Write as _;
    static KEY: std::sync::OnceLock<tempfile::TempPath> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(crate::auth::assertion::generate_p256_pem().as_bytes())
            .expect("write key");
        f.into_temp_path()
    })
    .to_str()
    .expect("UTF-8 temp path")
}

fn settings(route_extra: &str, conn_extra: &str) -> Settings {
    let key = assertion_key_path();
    load_str(&format!(
        r#"
[server]
assertion_key = "{key}"

[session]
secret = "0123456789abcdef0123456789abcdef"

[[connection]]
name = "contoso"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"
group_names = {{ "{G_HR}" = "HR Admins" }}
{conn_extra}

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
{route_extra}
"#
    ))
    .expect("valid config")
}

fn user() -> Session {
    Session {
        derived: Default::default(),
        version: crate::session::model::SESSION_VERSION,
        user_id: "0b5e7f8a-1111-2222-3333-444455556666".into(),
        subject: "sub-AbC".into(),
        tenant_id: Some("11111111-1111-1111-1111-111111111111".into()),
        connection: "contoso".into(),
        issuer: "https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/v2.0".into(),
        sid: Some("sid-1".into()),
        email: Some("alice@contoso.com".into()),
        email_trust: EmailTrust::EntraDomainVerified,
        name: Some("Alice Müller".into()),
        preferred_username: Some("alice@contoso.com".into()),
        groups: vec![G_HR.into(), G_POLICY.into(), G_OTHER.into()],
        roles: Vec::new(),
        claims: Some(
            json!({"employeeid": "E-42", "roles": ["Reader", "Writer"], "level": 7, "manager": true})
                .as_object()
                .unwrap()
                .clone(),
        ),
        id_token: Some("id.token.sig".into()),
        access_token: Some("access.token.sig".into()),
        refresh_token: Some("refresh".into()),
        saml_name_id: None,
        tokens_expire_at: Some(2_000_000_000),
        client_addr: None,
        created_at: 1_700_000_000,
        expires_at: 1_700_028_800,
    }
}

fn policy_groups() -> HashSet<String> {
    [G_POLICY.to_string()].into_iter().collect()
}

/// Injects for `user` on the first route; answers the headers as a sorted map.
fn run_with(s: &Settings, user: Session, assertion: Option<&str>) -> BTreeMap<String, String> {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("text/html"));
    let conn = s.connection(&user.connection).unwrap().clone();
    let permit = Permit::for_tests(user);
    inject(
        &mut h,
        &permit,
        &s.routes[0],
        &conn,
        &policy_groups(),
        &Signed::same(assertion),
    );
    h.remove("accept");
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8(v.as_bytes().to_vec()).unwrap(),
            )
        })
        .collect()
}

fn run(route_extra: &str) -> BTreeMap<String, String> {
    run_with(&settings(route_extra, ""), user(), Some("a.jwt.assertion"))
}

fn names(m: &BTreeMap<String, String>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn forwarded_profile_sends_exactly_its_headers() {
    let m = run("headers = \"forwarded\"");
    assert_eq!(
        names(&m),
        [
            "x-forwarded-email",
            "x-forwarded-groups",
            "x-forwarded-name",
            "x-forwarded-preferred-username",
            "x-forwarded-tenant",
            "x-forwarded-user",
        ]
    );
    assert_eq!(
        m["x-forwarded-user"],
        "0b5e7f8a-1111-2222-3333-444455556666"
    );
    assert_eq!(m["x-forwarded-email"], "alice@contoso.com");
    assert_eq!(
        m["x-forwarded-groups"],
        format!("HR Admins,{G_POLICY},{G_OTHER}")
    );
    assert_eq!(m["x-forwarded-name"], "Alice Müller");
    assert_eq!(
        m["x-forwarded-tenant"],
        "11111111-1111-1111-1111-111111111111"
    );
}

#[test]
fn the_default_profile_is_forwarded() {
    assert!(run("").contains_key("x-forwarded-user"));
}

#[test]
fn auth_request_profile_sends_exactly_its_headers() {
    let m = run("headers = \"auth_request\"");
    assert_eq!(
        names(&m),
        [
            "x-auth-request-email",
            "x-auth-request-groups",
            "x-auth-request-preferred-username",
            "x-auth-request-user",
        ]
    );
}

#[test]
fn remote_profile_sends_exactly_its_headers() {
    let m = run("headers = \"remote\"");
    assert_eq!(
        names(&m),
        [
            "remote-email",
            "remote-groups",
            "remote-name",
            "remote-user"
        ]
    );
    assert_eq!(m["remote-user"], "0b5e7f8a-1111-2222-3333-444455556666");
}

#[test]
fn pomerium_profile_sends_exactly_its_headers() {
    let m = run("headers = \"pomerium\"");
    assert_eq!(
        names(&m),
        [
            "x-pomerium-claim-email",
            "x-pomerium-claim-groups",
            "x-pomerium-claim-name",
            "x-pomerium-jwt-assertion",
        ]
    );
    assert_eq!(m["x-pomerium-jwt-assertion"], "a.jwt.assertion");
    let without = run_with(&settings("headers = \"pomerium\"", ""), user(), None);
    assert!(!without.contains_key("x-pomerium-jwt-assertion"));
}

#[test]
fn oidc_claim_profile_sends_exactly_its_headers() {
    let m = run("headers = \"oidc_claim\"");
    assert_eq!(
        names(&m),
        [
            "oidc_claim_email",
            "oidc_claim_groups",
            "oidc_claim_name",
            "oidc_claim_oid",
            "oidc_claim_preferred_username",
            "oidc_claim_sub",
            "oidc_claim_tid",
        ]
    );
    assert_eq!(m["oidc_claim_sub"], "sub-AbC");
    assert_eq!(m["oidc_claim_oid"], "0b5e7f8a-1111-2222-3333-444455556666");
}

#[test]
fn oidc_claim_has_no_oid_for_other_providers() {
    let s = settings("headers = \"oidc_claim\"\nconnections = [\"partner\"]", "");
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = format!("partner:{}", u.subject);
    let m = run_with(&s, u, None);
    assert!(!m.contains_key("oidc_claim_oid"));
    // The user id, never a bare `sub` another connection could also issue.
    assert_eq!(m["oidc_claim_sub"], "partner:sub-AbC");
}

#[test]
fn other_providers_users_are_namespaced_in_every_user_header() {
    // Issue 17 hole 6: a partner whose `sub` is a contoso user's oid.
    let oid = "0b5e7f8a-1111-2222-3333-444455556666";
    for (profile, header) in [
        ("forwarded", "x-forwarded-user"),
        ("auth_request", "x-auth-request-user"),
        ("easyauth", "x-ms-client-principal-id"),
        ("remote", "remote-user"),
        ("oidc_claim", "oidc_claim_sub"),
    ] {
        let s = settings(
            &format!("headers = \"{profile}\"\nconnections = [\"partner\"]"),
            "",
        );
        let mut u = user();
        u.connection = "partner".into();
        u.subject = oid.into();
        u.user_id = format!("partner:{oid}");
        let m = run_with(&s, u, None);
        assert_eq!(m[header], format!("partner:{oid}"), "{profile}");
        if profile == "easyauth" {
            let raw = STANDARD.decode(&m["x-ms-client-principal"]).unwrap();
            let text = String::from_utf8(raw).unwrap();
            assert!(text.contains(&format!("\"partner:{oid}\"")), "{text}");
            assert!(!text.contains(&format!("\"{oid}\"")), "{text}");
        }
    }
}

#[test]
fn none_profile_sends_nothing() {
    assert!(run("headers = \"none\"").is_empty());
}

#[test]
fn easyauth_profile_sends_exactly_its_headers() {
    let m = run("headers = \"easyauth\"");
    assert_eq!(
        names(&m),
        [
            "x-ms-client-principal",
            "x-ms-client-principal-id",
            "x-ms-client-principal-idp",
            "x-ms-client-principal-name",
        ]
    );
    assert_eq!(
        m["x-ms-client-principal-id"],
        "0b5e7f8a-1111-2222-3333-444455556666"
    );
    assert_eq!(m["x-ms-client-principal-idp"], "aad");
    assert_eq!(m["x-ms-client-principal-name"], "alice@contoso.com");
}

#[test]
fn easy_auth_principal_decodes_to_the_app_service_shape() {
    let m = run("headers = \"easyauth\"");
    let raw = STANDARD.decode(&m["x-ms-client-principal"]).unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["auth_typ"], "aad");
    assert_eq!(
        v["name_typ"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
    );
    assert_eq!(
        v["role_typ"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    );
    let claims: Vec<(String, String)> = v["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["typ"].as_str().unwrap().into(),
                c["val"].as_str().unwrap().into(),
            )
        })
        .collect();
    let has = |t: &str, val: &str| claims.iter().any(|(a, b)| a == t && b == val);
    assert!(has(
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "0b5e7f8a-1111-2222-3333-444455556666"
    ));
    assert!(has(
        "http://schemas.microsoft.com/identity/claims/tenantid",
        "11111111-1111-1111-1111-111111111111"
    ));
    assert!(has(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
        "sub-AbC"
    ));
    assert!(has(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "alice@contoso.com"
    ));
    assert!(has("name", "Alice Müller"));
    assert!(has("preferred_username", "alice@contoso.com"));
    // Easy Auth carries group ids, one claim per group.
    assert!(has("groups", G_HR) && has("groups", G_POLICY) && has("groups", G_OTHER));
    assert!(has("roles", "Reader") && has("roles", "Writer"));
    assert!(v["claims"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c.as_object().unwrap().len() == 2));
}

#[test]
fn easyauth_idp_is_the_connection_name_for_other_providers() {
    let s = settings("headers = \"easyauth\"\nconnections = [\"partner\"]", "");
    let mut u = user();
    u.connection = "partner".into();
    let m = run_with(&s, u, None);
    assert_eq!(m["x-ms-client-principal-idp"], "partner");
    let v: Value =
        serde_json::from_slice(&STANDARD.decode(&m["x-ms-client-principal"]).unwrap()).unwrap();
    assert_eq!(v["auth_typ"], "partner");
}

#[test]
fn tokens_are_passed_only_when_the_route_says_so() {
    for profile in [
        "forwarded",
        "remote",
        "pomerium",
        "none",
        "auth_request",
        "oidc_claim",
        "easyauth",
    ] {
        let m = run(&format!("headers = \"{profile}\""));
        assert!(!m.values().any(|v| v.contains("token.sig")), "{profile}");
    }
    let m = run("headers = \"easyauth\"\npass_id_token = true\npass_access_token = true");
    assert_eq!(m["x-ms-token-aad-id-token"], "id.token.sig");
    assert_eq!(m["x-ms-token-aad-access-token"], "access.token.sig");
    // Another provider's tokens go under its own name, never `AAD`'s
    // (apps read those, unverified, as Entra's).
    let s = settings(
        "connections = [\"contoso\", \"partner\"]\nheaders = \"easyauth\"\npass_id_token = true\npass_access_token = true",
        "",
    );
    let mut u = user();
    u.connection = "partner".into();
    let m = run_with(&s, u, None);
    assert!(!m.keys().any(|k| k.starts_with("x-ms-token-aad")), "{m:?}");
    assert_eq!(m["x-ms-token-partner-id-token"], "id.token.sig");
    assert_eq!(m["x-ms-token-partner-access-token"], "access.token.sig");
    let m = run("headers = \"forwarded\"\npass_access_token = true");
    assert_eq!(m["x-forwarded-access-token"], "access.token.sig");
    assert!(!m.contains_key("x-forwarded-id-token"));
    let m = run("headers = \"oidc_claim\"\npass_id_token = true");
    assert_eq!(m["oidc_id_token"], "id.token.sig");
    let m = run("headers = \"none\"\npass_id_token = true");
    assert_eq!(names(&m), ["x-forwarded-id-token"]);
}

#[test]
fn every_injected_header_is_stripped_from_requests() {
    // Whatever any profile (with tokens and assertion) injects, strip removes.
    for profile in [
        "forwarded",
        "remote",
        "pomerium",
        "none",
        "auth_request",
        "oidc_claim",
        "easyauth",
    ] {
        let m = run(&format!(
            "headers = \"{profile}\"\npass_id_token = true\npass_access_token = true\njwt_assertion = true"
        ));
        assert!(!m.is_empty());
        for name in m.keys() {
            assert!(
                is_identity_header(name, &[]),
                "{profile}: {name} is injected but not stripped"
            );
        }
    }
}

#[test]
fn jwt_assertion_adds_the_realmgate_assertion() {
    let m = run("jwt_assertion = true");
    assert_eq!(m["x-realmgate-assertion"], "a.jwt.assertion");
    assert!(!run("").contains_key("x-realmgate-assertion"));
}

#[test]
fn an_unverified_email_is_never_sent() {
    let mut u = user();
    u.email_trust = EmailTrust::Unverified;
    u.preferred_username = None;
    for profile in [
        "forwarded",
        "remote",
        "pomerium",
        "auth_request",
        "oidc_claim",
        "easyauth",
    ] {
        let s = settings(
            &format!("headers = \"{profile}\"\nheaders_extra = {{ \"X-Mail\" = \"email\" }}"),
            "",
        );
        let m = run_with(&s, u.clone(), None);
        for (k, v) in &m {
            if k == "x-ms-client-principal" {
                let raw = String::from_utf8(STANDARD.decode(v).unwrap()).unwrap();
                assert!(
                    !raw.contains("alice@contoso.com"),
                    "{profile}: principal has the email"
                );
            } else {
                assert!(
                    !v.contains("alice@contoso.com"),
                    "{profile}: {k} has the email"
                );
            }
        }
    }
}

#[test]
fn a_verified_email_that_is_not_one_plain_addr_spec_is_never_sent() {
    // Issue 17 hole 3: what is judged is what is forwarded; the policy
    // ignores these, so no app may see them as the user's email either.
    for email in [
        "mallory@evil.example@contoso.com",
        "mallory@contoso.com.",
        "\"mallory@contoso.com \"",
        "<mallory@contoso.com>",
        "mallory@contoso.com,ceo@contoso.com",
        "mallory@contoso\u{3002}com",
    ] {
        let mut u = user();
        u.email = Some(email.into());
        u.preferred_username = None;
        for profile in [
            "forwarded",
            "remote",
            "pomerium",
            "auth_request",
            "oidc_claim",
            "easyauth",
        ] {
            let s = settings(
                &format!("headers = \"{profile}\"\nheaders_extra = {{ \"X-Mail\" = \"email\" }}"),
                "",
            );
            let m = run_with(&s, u.clone(), None);
            for (k, v) in &m {
                let text = if k == "x-ms-client-principal" {
                    String::from_utf8(STANDARD.decode(v).unwrap()).unwrap()
                } else {
                    v.clone()
                };
                assert!(!text.contains("mallory"), "{profile}: {k} = {text}");
            }
        }
    }
}

#[test]
fn known_groups_keeps_only_mapped_or_policy_groups() {
    let s = settings("", "groups_in_headers = \"known\"");
    let m = run_with(&s, user(), None);
    assert_eq!(m["x-forwarded-groups"], format!("HR Admins,{G_POLICY}"));
    let s = settings("headers = \"easyauth\"", "groups_in_headers = \"known\"");
    let m = run_with(&s, user(), None);
    let raw = String::from_utf8(STANDARD.decode(&m["x-ms-client-principal"]).unwrap()).unwrap();
    assert!(raw.contains(G_HR) && raw.contains(G_POLICY) && !raw.contains(G_OTHER));
}

#[test]
fn no_groups_means_no_group_header() {
    let mut u = user();
    u.groups.clear();
    let m = run_with(&settings("", ""), u, None);
    assert!(!m.contains_key("x-forwarded-groups"));
}

#[test]
fn values_with_control_characters_are_dropped() {
    for bad in [
        "Alice\r\nX-Forwarded-User: admin",
        "Al\nice",
        "A\0",
        "A\u{7f}",
        "A\tB",
        "A\u{85}",
    ] {
        let mut u = user();
        u.name = Some(bad.into());
        let m = run_with(&settings("", ""), u, None);
        assert!(!m.contains_key("x-forwarded-name"), "{bad:?}");
        assert_eq!(
            m["x-forwarded-user"],
            "0b5e7f8a-1111-2222-3333-444455556666"
        );
    }
    let mut u = user();
    u.name = Some("Mallory\r\nX-Injected: 1".into());
    let m = run_with(&settings("headers = \"easyauth\"", ""), u, None);
    assert!(!m.contains_key("x-ms-client-principal"));
    assert!(!m.keys().any(|k| k.contains("injected")));
}

#[test]
fn group_names_with_commas_or_controls_are_left_out() {
    let mut u = user();
    u.groups = vec![
        "Sales".into(),
        "Sales,Admins".into(),
        "Ops\r\n".into(),
        "Dev".into(),
    ];
    let m = run_with(&settings("", ""), u, None);
    assert_eq!(m["x-forwarded-groups"], "Sales,Dev");
}

#[test]
fn headers_extra_reads_session_fields_and_claims() {
    let m = run(r#"headers = "none"
headers_extra = { "X-Employee-Id" = "claims.employeeid", "X-Roles" = "claims.roles", "X-Level" = "claims.level", "X-Mgr" = "claims.manager", "X-Uid" = "user_id", "X-Mail" = "email", "X-Tid" = "tenant_id", "X-Gr" = "groups", "X-Missing" = "claims.nope", "X-Un" = "preferred_username", "X-Nm" = "name" }"#);
    assert_eq!(m["x-employee-id"], "E-42");
    assert_eq!(m["x-roles"], "Reader,Writer");
    assert_eq!(m["x-level"], "7");
    assert_eq!(m["x-mgr"], "true");
    assert_eq!(m["x-uid"], "0b5e7f8a-1111-2222-3333-444455556666");
    assert_eq!(m["x-mail"], "alice@contoso.com");
    assert_eq!(m["x-tid"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(m["x-gr"], format!("HR Admins,{G_POLICY},{G_OTHER}"));
    assert_eq!(m["x-un"], "alice@contoso.com");
    assert_eq!(m["x-nm"], "Alice Müller");
    assert!(!m.contains_key("x-missing"));
}

#[test]
fn injection_replaces_client_sent_values() {
    let s = settings("", "");
    let mut h = HeaderMap::new();
    h.append("x-forwarded-user", HeaderValue::from_static("admin"));
    h.append("x-forwarded-user", HeaderValue::from_static("root"));
    h.append("x-forwarded-name", HeaderValue::from_static("spoofed"));
    let mut u = user();
    u.name = None;
    let permit = Permit::for_tests(u);
    let conn = s.connection("contoso").unwrap().clone();
    inject(
        &mut h,
        &permit,
        &s.routes[0],
        &conn,
        &policy_groups(),
        &Signed::default(),
    );
    let users: Vec<_> = h.get_all("x-forwarded-user").iter().collect();
    assert_eq!(
        users,
        [HeaderValue::from_static(
            "0b5e7f8a-1111-2222-3333-444455556666"
        )]
    );
    assert!(h.get("x-forwarded-name").is_none());
}

// === inject_cached ===

/// The headers of `h` as a sorted map.
fn map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8(v.as_bytes().to_vec()).unwrap(),
            )
        })
        .collect()
}

/// Every route's `headers_extra` names (what the gateway strips besides the profiles').
fn extra_names(s: &Settings) -> Vec<HeaderName> {
    s.routes
        .iter()
        .flat_map(|r| r.headers_extra.iter().map(|(n, _)| n.clone()))
        .collect()
}

/// A request carrying spoofed identity headers, stripped as the gateway does.
fn stripped_request(s: &Settings) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("text/html"));
    h.insert("x-forwarded-user", HeaderValue::from_static("spoofed"));
    h.insert("x-forwarded-email", HeaderValue::from_static("spoofed"));
    h.insert("x-uid", HeaderValue::from_static("spoofed"));
    strip(&mut h, &extra_names(s));
    h
}

/// The header fields of a wire block (`name: value\r\n` lines).
fn wire_fields(wire: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(wire).unwrap();
    assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
    text.split_terminator("\r\n")
        .map(|line| {
            let (n, v) = line.split_once(": ").expect("name: value");
            (n.to_string(), v.to_string())
        })
        .collect()
}

/// What the upstream receives through `inject_cached`, both ways the
/// forwarder sends it: applied to the header map (hyper's client), and as
/// the map's own fields followed by the wire block (the raw exchange). The
/// two must agree, and the wire must never name a header twice.
fn cached(s: &Settings, permit: &Permit, assertion: Option<&str>) -> BTreeMap<String, String> {
    cached_on(s, permit, 0, assertion).0
}

/// [`cached`] on route `route`, with the rendering it used.
fn cached_on(
    s: &Settings,
    permit: &Permit,
    route: usize,
    assertion: Option<&str>,
) -> (BTreeMap<String, String>, Injected) {
    let mut h = stripped_request(s);
    let conn = s.connection(&permit.user().connection).unwrap().clone();
    let injected = inject_cached(
        &mut h,
        permit,
        &s.routes[route],
        &conn,
        &policy_groups(),
        &Signed::same(assertion),
    );
    let mut applied = h.clone();
    injected.apply(&mut applied);
    let mut on_wire: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8(v.as_bytes().to_vec()).unwrap(),
            )
        })
        .collect();
    let extra = extra_names(s);
    for (name, _) in wire_fields(injected.wire()) {
        // The wire block adds lines: only names `strip` removed may be in it.
        assert!(is_identity_header(&name, &extra), "{name} is not stripped");
    }
    on_wire.extend(wire_fields(injected.wire()));
    let mut seen = HashSet::new();
    for (name, _) in &on_wire {
        assert!(
            seen.insert(name.clone()),
            "{name} twice on the wire: {on_wire:?}"
        );
    }
    let on_wire: BTreeMap<String, String> = on_wire.into_iter().collect();
    let applied = map(&applied);
    assert_eq!(applied, on_wire, "applied and wire forms differ");
    let fields: BTreeMap<String, String> = injected
        .fields()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8(v.as_bytes().to_vec()).unwrap(),
            )
        })
        .collect();
    assert!(fields.iter().all(|(k, v)| applied.get(k) == Some(v)));
    (applied, injected)
}

#[test]
fn cached_injection_writes_what_injection_writes_for_every_profile() {
    for profile in [
        "forwarded",
        "auth_request",
        "easyauth",
        "remote",
        "pomerium",
        "oidc_claim",
        "none",
    ] {
        let s = settings(
            &format!(
                "headers = \"{profile}\"\npass_id_token = true\npass_access_token = true\njwt_assertion = true\nheaders_extra = {{ \"X-Uid\" = \"user_id\", \"X-Gr\" = \"groups\" }}"
            ),
            "",
        );
        // Held by a store too, as the copies that keep renderings are.
        let kept = Arc::new(user());
        let permit = Permit::for_tests_shared(kept.clone());
        for (round, assertion) in ["first.jwt", "second.jwt", "third.jwt"].iter().enumerate() {
            let mut want = stripped_request(&s);
            let conn = s.connection("contoso").unwrap().clone();
            inject(
                &mut want,
                &permit,
                &s.routes[0],
                &conn,
                &policy_groups(),
                &Signed::same(Some(assertion)),
            );
            // Round 0 renders, the others reuse; the assertion is this request's.
            assert_eq!(
                cached(&s, &permit, Some(assertion)),
                map(&want),
                "{profile}, round {round}"
            );
            assert!(kept.derived.get::<Held>().is_some(), "{profile}: reused");
        }
    }
}

#[test]
fn cached_injection_never_gives_one_user_anothers_headers() {
    let s = settings("", "");
    // Each held by a store too, as the copies that keep renderings are.
    let alice_kept = Arc::new(user());
    let alice = Permit::for_tests_shared(alice_kept.clone());
    let mut other = user();
    other.user_id = "bob-oid".into();
    other.email = Some("bob@contoso.com".into());
    other.groups = vec![];
    let bob_kept = Arc::new(other);
    let bob = Permit::for_tests_shared(bob_kept.clone());
    for _ in 0..3 {
        let a = cached(&s, &alice, None);
        let b = cached(&s, &bob, None);
        assert_eq!(
            a["x-forwarded-user"],
            "0b5e7f8a-1111-2222-3333-444455556666"
        );
        assert_eq!(a["x-forwarded-email"], "alice@contoso.com");
        assert_eq!(b["x-forwarded-user"], "bob-oid");
        assert_eq!(b["x-forwarded-email"], "bob@contoso.com");
        assert!(!b.contains_key("x-forwarded-groups"));
    }
    // A refreshed session is a new object: its new values are sent, not the old ones.
    let mut refreshed = user();
    refreshed.email = Some("alice.new@contoso.com".into());
    let refreshed_kept = Arc::new(refreshed);
    let refreshed = Permit::for_tests_shared(refreshed_kept.clone());
    assert_eq!(
        cached(&s, &refreshed, None)["x-forwarded-email"],
        "alice.new@contoso.com"
    );
    // A session dropped and another created (possibly at the same address):
    // the entry's Weak reference keeps the old address taken.
    for n in 0..50 {
        numbered_user_gets_own_headers(&s, n);
    }
    // A reload (new routes and connections) renders again, while the old
    // settings live and after they are gone; and again on a later reload
    // back to the first profile. Alice's own rendering was made for the
    // first settings and never answers for the others.
    assert!(alice_kept.derived.get::<Held>().is_some());
    let reloaded = settings("headers = \"remote\"", "");
    for _ in 0..2 {
        let m = cached(&reloaded, &alice, None);
        assert_eq!(m["remote-user"], "0b5e7f8a-1111-2222-3333-444455556666");
        assert!(!m.contains_key("x-forwarded-user") || m["x-forwarded-user"] == "spoofed");
    }
    drop(s);
    let m = cached(&reloaded, &alice, None);
    assert_eq!(m["remote-user"], "0b5e7f8a-1111-2222-3333-444455556666");
    assert!(!m.contains_key("x-forwarded-email"));
    let again = settings("", "");
    let m = cached(&again, &alice, None);
    assert_eq!(m["x-forwarded-email"], "alice@contoso.com");
    assert!(!m.contains_key("remote-user"));
    drop((bob_kept, refreshed_kept));
}

/// User `user-<n>` as a new session object; asserts its cached headers name
/// it (not an earlier user's rendering) and hands the permit back.
fn numbered_user_gets_own_headers(s: &Settings, n: usize) -> Permit {
    let mut u = user();
    u.user_id = format!("user-{n}");
    // Held by a store while it is asked, as the copies that keep renderings are.
    let kept = Arc::new(u);
    let permit = Permit::for_tests_shared(kept.clone());
    assert_eq!(
        cached(s, &permit, None)["x-forwarded-user"],
        format!("user-{n}")
    );
    drop(kept);
    permit
}

/// A rendering answers only for the very session object the store hands
/// out: a refresh (a put of the same id) makes a new one, and a signed-out
/// or revoked session is never handed out again, so no request can get
/// the headers of a session that ended or changed.
#[tokio::test]
async fn cached_renderings_follow_refresh_sign_out_and_revocation() {
    use crate::session::memory::MemoryStore;
    use crate::session::store::{SessionId, SessionStore};
    let s = settings("", "");
    let store = MemoryStore::new(100, std::time::Duration::from_secs(3600));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut u = user();
    u.created_at = now;
    u.expires_at = now + 3600;
    let id = SessionId::generate();
    store.put(&id, u.clone()).await.unwrap();
    let first = store.get(&id).await.unwrap().unwrap();
    let before = cached(&s, &Permit::for_tests_shared(first.clone()), None);
    assert_eq!(before["x-forwarded-email"], "alice@contoso.com");
    // Refresh: new values, new object, new rendering.
    u.email = Some("alice.new@contoso.com".into());
    u.groups = vec![];
    store.put(&id, u.clone()).await.unwrap();
    let second = store.get(&id).await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    let after = cached(&s, &Permit::for_tests_shared(second), None);
    assert_eq!(after["x-forwarded-email"], "alice.new@contoso.com");
    assert!(!after.contains_key("x-forwarded-groups"));
    // Sign-out: the store hands out nothing for the id.
    store.delete(&id).await.unwrap();
    assert!(store.get(&id).await.unwrap().is_none());
    // Revocation: likewise, for another id of the user.
    let other = SessionId::generate();
    store.put(&other, u.clone()).await.unwrap();
    let third = store.get(&other).await.unwrap().unwrap();
    assert_eq!(
        cached(&s, &Permit::for_tests_shared(third), None)["x-forwarded-email"],
        "alice.new@contoso.com"
    );
    assert_eq!(store.revoke_user("contoso", &u.user_id).await.unwrap(), 1);
    assert!(store.get(&other).await.unwrap().is_none());
}

/// A second route, `app`, with the `remote` profile (route 1).
const SECOND_ROUTE: &str = r#"
[[route]]
name = "app"
hosts = ["app.contoso.com"]
upstream = "http://127.0.0.1:2"
headers = "remote"
"#;

/// Many users on one thread, each kept by a store (as the hot copies and
/// the Redis cache keep theirs) and forwarded on two routes: every request
/// gets its own user's headers for its route, the first route's rendering
/// stays with the session and the second's in this thread's bounded table.
#[test]
fn cached_renderings_stay_bounded_and_per_user_with_many_users() {
    let s = settings(SECOND_ROUTE, "");
    let mut live = Vec::new();
    for n in 0..RENDERED_SLOTS * 3 {
        let mut u = user();
        u.user_id = format!("user-{n}");
        let kept = Arc::new(u);
        let permit = Permit::for_tests_shared(kept.clone());
        let (first, rendering) = cached_on(&s, &permit, 0, None);
        assert_eq!(first["x-forwarded-user"], format!("user-{n}"));
        assert_eq!(
            cached_on(&s, &permit, 1, None).0["remote-user"],
            format!("user-{n}")
        );
        // The session holds its first route's rendering, not the second's.
        assert!(Arc::ptr_eq(&held_of(&permit).0, &rendering.0));
        // Half stay alive and are asked again below.
        if n % 2 == 0 {
            live.push((n, kept, permit));
        }
        assert!(rendered_len() <= RENDERED_SLOTS);
    }
    assert!(rendered_len() > 0, "the second routes' renderings");
    for (n, _kept, permit) in &live {
        assert_eq!(
            cached_on(&s, permit, 1, None).0["remote-user"],
            format!("user-{n}")
        );
        assert_eq!(
            cached(&s, permit, None)["x-forwarded-user"],
            format!("user-{n}")
        );
    }
}

/// A session a store keeps carries its first route's rendering: the same
/// rendering answers on any thread, only for that route (and connection),
/// and another route renders its own profile.
#[test]
fn a_kept_session_carries_its_first_routes_rendering_to_every_thread() {
    let s = Arc::new(settings(SECOND_ROUTE, ""));
    let kept = Arc::new(user());
    let permit = Permit::for_tests_shared(kept.clone());
    let (first, held) = cached_on(&s, &permit, 0, None);
    assert_eq!(first["x-forwarded-user"], kept.user_id);
    assert!(Arc::ptr_eq(&held_of(&permit).0, &held.0), "the one it made");
    let (other, other_rendering) = {
        let (s, permit) = (s.clone(), permit.clone());
        std::thread::spawn(move || {
            let (h, i) = cached_on(&s, &permit, 0, None);
            let (o, oi) = cached_on(&s, &permit, 1, None);
            assert!(
                Arc::ptr_eq(&i.0, &{ held_of(&permit) }.0),
                "the session's own"
            );
            (h, (o, oi))
        })
        .join()
        .unwrap()
    };
    assert_eq!(other, first);
    assert_eq!(other_rendering.0["remote-user"], kept.user_id);
    assert!(!other_rendering.0.contains_key("x-forwarded-user"));
    assert!(!Arc::ptr_eq(&other_rendering.1 .0, &held.0));
    // A copy of the session (a refresh, another store's copy) renders again.
    let copy = Arc::new((*kept).clone());
    assert!(copy.derived.get::<Held>().is_none());
}

fn held_of(permit: &Permit) -> Injected {
    permit
        .user()
        .derived
        .get::<Held>()
        .expect("held")
        .injected
        .clone()
}

/// A session only this request holds (the memory store unpacks one not
/// read lately for a single request) is rendered and kept nowhere: no later
/// request can present that copy.
#[test]
fn a_copy_only_this_request_holds_is_kept_nowhere() {
    let s = settings(SECOND_ROUTE, "");
    let before = rendered_len();
    let permit = Permit::for_tests(user());
    assert_eq!(
        cached_on(&s, &permit, 1, None).0["remote-user"],
        permit.user().user_id
    );
    assert!(permit.user().derived.get::<Held>().is_none());
    assert_eq!(rendered_len(), before);
}

// === strip ===

fn spoofed(names: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for n in names {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_static("spoof"),
        );
    }
    h
}

#[test]
fn strip_removes_every_profiles_headers_in_every_spelling() {
    let names = [
        "X-Forwarded-User",
        "x-forwarded-user",
        "X_FORWARDED_USER",
        "x_forwarded_user",
        "X-Forwarded_User",
        "X-Forwarded-Email",
        "X-Forwarded-Preferred-Username",
        "x_forwarded_preferred_username",
        "X-Forwarded-Groups",
        "X-Forwarded-Name",
        "X-Forwarded-Tenant",
        "X-Forwarded-Access-Token",
        "X-Forwarded-Id-Token",
        "X-Auth-Request-User",
        "X-Auth-Request-Email",
        "X-Auth-Request-Preferred-Username",
        "X-Auth-Request-Groups",
        "X-Auth-Request-Access-Token",
        "x_auth_request_user",
        "X-MS-CLIENT-PRINCIPAL",
        "X-MS-CLIENT-PRINCIPAL-NAME",
        "X-MS-CLIENT-PRINCIPAL-ID",
        "X-MS-CLIENT-PRINCIPAL-IDP",
        "x_ms_client_principal_name",
        "X-MS-TOKEN-AAD-ID-TOKEN",
        "X-MS-TOKEN-AAD-ACCESS-TOKEN",
        "X-MS-TOKEN-AAD-REFRESH-TOKEN",
        "X-MS-TOKEN-GOOGLE-ACCESS-TOKEN",
        "Remote-User",
        "REMOTE_USER",
        "remote_user",
        "Remote-Email",
        "Remote-Name",
        "Remote-Groups",
        "X-Pomerium-Jwt-Assertion",
        "X-Pomerium-Claim-Email",
        "X-Pomerium-Claim-Groups",
        "X-Pomerium-Claim-Name",
        "x_pomerium_claim_sub",
        "OIDC_CLAIM_sub",
        "oidc_claim_email",
        "OIDC-CLAIM-groups",
        "OIDC_CLAIM_anything_else",
        "OIDC_access_token",
        "OIDC_id_token",
        "X-Realmgate-Assertion",
        "x_realmgate_assertion",
        // What apps are commonly told to trust from a proxy in front.
        "X-Remote-User",
        "x_remote_user",
        "X-Remote-Email",
        "X-Remote-Groups",
        "X-WEBAUTH-USER",
        "x_webauth_email",
        "X-WebAuth-FullName",
        "X-Remote-Group",
        "x_remote_group",
        "X-Remote-Extra-Scopes",
    ];
    let mut h = spoofed(&names);
    h.insert("accept", HeaderValue::from_static("*/*"));
    strip(&mut h, &[]);
    let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, ["accept"]);
}

#[test]
fn strip_removes_headers_extra_names_in_every_spelling() {
    let extra = [HeaderName::from_static("x-employee-id")];
    let mut h = spoofed(&[
        "X-Employee-Id",
        "x_employee_id",
        "X_EMPLOYEE-ID",
        "x-employee-idx",
    ]);
    strip(&mut h, &extra);
    let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, ["x-employee-idx"]);
}

#[test]
fn strip_keeps_unrelated_headers_and_forwarding_headers() {
    let keep = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-request-id",
        "authorization",
        "cookie",
        "remote-addr-x",
        "x-forwarded-username",
        "x-ms-request-id",
        "user-agent",
        "x-user",
    ];
    let mut h = spoofed(&keep);
    let before = h.clone();
    strip(&mut h, &[]);
    assert_eq!(h, before);
}

/// lighttpd names the CGI/FastCGI/SCGI variable of a header by mapping every
/// byte that is not a letter or digit to `_`: `X.Forwarded.User` and
/// `Remote+User` reach a PHP app behind it as `HTTP_X_FORWARDED_USER` and
/// `HTTP_REMOTE_USER`, the variables the injected headers become.
#[test]
fn strip_removes_names_with_any_separator() {
    let extra = [HeaderName::from_static("x-employee-id")];
    let mut h = spoofed(&[
        "X.Forwarded.User",
        "x+forwarded+email",
        "X~Auth~Request~User",
        "x.ms.client.principal.name",
        "Remote.User",
        "remote!user",
        "OIDC.CLAIM.sub",
        "x*realmgate*assertion",
        "x|pomerium|claim|email",
        "X.Employee.Id",
        "x-employee.id",
        "x.forwarded.username",
    ]);
    strip(&mut h, &extra);
    let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, ["x.forwarded.username"]);
}

#[test]
fn strip_removes_every_duplicate() {
    let mut h = spoofed(&["x-forwarded-user", "x-forwarded-user", "x_forwarded_user"]);
    strip(&mut h, &[]);
    assert!(h.is_empty());
}

proptest::proptest! {
    /// The byte-level check agrees with Unicode's definition on any text,
    /// including C1 controls and the lookalike bytes around them.
    #[test]
    fn control_check_matches_char_is_control(
        text in "(\\PC|[\\x00-\\x1f\\x7f\\u{80}-\\u{a0}\\u{100}\\u{2028}]){0,40}"
    ) {
        proptest::prop_assert_eq!(has_control(&text), text.chars().any(char::is_control));
    }
}

#[test]
fn control_check_on_the_edges() {
    for (text, control) in [
        ("plain", false),
        ("tab\there", true),
        ("nul\0", true),
        ("del\u{7f}", true),
        ("c1\u{80}", true),
        ("c1\u{9f}", true),
        ("nbsp\u{a0}", false),
        ("\u{c2}\u{a9} and é", false),
        ("ĀĂ", false),
        ("line\u{2028}separator", false),
    ] {
        assert_eq!(has_control(text), control, "{text:?}");
        assert_eq!(has_control(text), text.chars().any(char::is_control));
    }
}

#[test]
fn a_headers_extra_name_of_the_profile_replaces_the_profile_value_once() {
    // As with `insert`: the later write wins, and the wire names it once.
    let s = settings(
        r#"headers_extra = { "X-Forwarded-Email" = "user_id", "X-Uid" = "user_id" }"#,
        "",
    );
    let m = cached(&s, &Permit::for_tests(user()), None);
    assert_eq!(
        m["x-forwarded-email"],
        "0b5e7f8a-1111-2222-3333-444455556666"
    );
    assert_eq!(m["x-uid"], "0b5e7f8a-1111-2222-3333-444455556666");
}

#[test]
fn headers_extra_never_doubles_the_assertion() {
    // The route's assertion is written per request; a `headers_extra` entry
    // of the same name is left out (it never reached the app).
    let s = settings(
        r#"jwt_assertion = true
headers_extra = { "X-Realmgate-Assertion" = "user_id", "X-Uid" = "user_id" }"#,
        "",
    );
    let permit = Permit::for_tests(user());
    assert_eq!(
        cached(&s, &permit, Some("a.jwt"))["x-realmgate-assertion"],
        "a.jwt"
    );
    // No key configured: no assertion, and not the claim either.
    assert!(!cached(&s, &permit, None).contains_key("x-realmgate-assertion"));
}

fn with_roles(roles: &[&str]) -> Session {
    let mut u = user();
    u.roles = roles.iter().map(|r| r.to_string().into()).collect();
    u.claims = None;
    u
}

#[test]
fn app_roles_go_to_forwarded_roles_and_oidc_claim_roles_without_extended_profile() {
    let u = with_roles(&["HR.Admin", "Reader", "bad,role", "ctl\u{7}"]);
    let m = run_with(&settings("headers = \"forwarded\"", ""), u.clone(), None);
    assert_eq!(m["x-forwarded-roles"], "HR.Admin,Reader", "{m:?}");
    let m = run_with(&settings("headers = \"oidc_claim\"", ""), u, None);
    assert_eq!(m["oidc_claim_roles"], "HR.Admin,Reader");
    // No roles: no header at all.
    let m = run_with(
        &settings("headers = \"forwarded\"", ""),
        with_roles(&[]),
        None,
    );
    assert!(!m.contains_key("x-forwarded-roles"));
}

#[test]
fn the_principal_carries_the_sessions_roles_once() {
    let mut u = with_roles(&["HR.Admin"]);
    // Claims also holding roles (extended_profile): not sent twice.
    u.claims = Some(json!({"roles": ["HR.Admin"]}).as_object().unwrap().clone());
    let m = run_with(&settings("headers = \"easyauth\"", ""), u, None);
    let v: Value =
        serde_json::from_slice(&STANDARD.decode(&m["x-ms-client-principal"]).unwrap()).unwrap();
    let roles: Vec<&str> = v["claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["typ"] == "roles")
        .map(|c| c["val"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["HR.Admin"]);
}

#[test]
fn a_client_sent_roles_header_is_stripped() {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-roles", HeaderValue::from_static("Owner"));
    h.insert("x_forwarded_roles", HeaderValue::from_static("Owner"));
    strip(&mut h, &[]);
    assert!(h.is_empty(), "{h:?}");
}

/// `list_item` (no value built) refuses exactly what a comma, surrounding
/// whitespace (servers trim a value's ends: review 9) or `safe_value`
/// refuses, for every character up to U+0800 around ASCII text (every
/// one-byte and two-byte UTF-8 sequence, C1 controls included).
#[test]
fn list_items_are_checked_like_safe_values() {
    for c in (0u32..0x800).filter_map(char::from_u32) {
        for text in [format!("{c}"), format!("grp{c}x"), format!("{c}{c}")] {
            let expected =
                !text.contains(',') && text.trim() == text && safe_value(&text).is_some();
            assert_eq!(list_item(&text), expected, "{:?}", text);
        }
    }
}

/// A partner's raw group value that reads as a name contoso's
/// `group_names` gives (`HR Admins`, in any case) would look like contoso's
/// HR Admins group to the app: it is left out of the partner user's
/// headers; the partner's other groups, and contoso's own mapped name, are
/// shown (review 9).
#[test]
fn a_partner_group_named_like_another_connection_s_group_is_left_out() {
    let s = settings("connections = [\"contoso\", \"partner\"]", "");
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.groups = vec![
        "HR Admins".into(),
        "hr admins".into(),
        "HR Admins ".into(),
        "\u{ff28}\u{ff32} Admins".into(),
        "Partners".into(),
    ];
    let m = run_with(&s, u, None);
    assert_eq!(m["x-forwarded-groups"], "Partners");
    let m = run_with(&s, user(), None);
    assert!(m["x-forwarded-groups"].contains("HR Admins"), "{m:?}");
}

/// Review 12: an unmapped raw group value that reads as a name the user's
/// *own* connection maps (`group_names`) looked, in the group headers, like
/// that mapped group, which the policy would not accept it as (a bare
/// `allow.groups` entry that is a mapped name matches through the mapping
/// only). A directory where users may create groups (an LDAP OU with
/// delegated rights, a partner IdP) gave any user a group `HR Admins`
/// beside the real one the operator mapped from its id.
#[test]
fn a_raw_group_named_like_a_name_its_own_connection_maps_is_left_out() {
    let s = load_str(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef"

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"
group_names = { "grp-hr-1" = "HR Admins" }

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
headers = "forwarded"
"#,
    )
    .expect("valid config");
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.groups = vec![
        "HR Admins".into(),
        "hr admins".into(),
        "\u{ff28}\u{ff32} Admins".into(),
        "HR Admin\u{17f}".into(),
        "Partners".into(),
    ];
    let m = run_with(&s, u.clone(), None);
    assert_eq!(m["x-forwarded-groups"], "Partners");
    // A real member of the mapped group keeps its name.
    u.groups = vec!["grp-hr-1".into(), "Partners".into()];
    let m = run_with(&s, u, None);
    assert_eq!(m["x-forwarded-groups"], "HR Admins,Partners");
}

/// A partner's raw group value equal to a group id contoso's `group_names`
/// maps (in any case) is byte for byte contoso's group in Easy Auth's
/// principal (one `groups` claim per id, what App Service apps authorize
/// on) and in every group header of an app keyed on Entra object ids: it
/// is left out of the partner user's headers. Another Entra connection's
/// user keeps it (Entra issues the ids, unique across tenants, as `oid`).
#[test]
fn a_partner_group_equal_to_another_connection_s_mapped_group_id_is_left_out() {
    let principal_groups = |m: &BTreeMap<String, String>| -> Vec<String> {
        let v: Value =
            serde_json::from_slice(&STANDARD.decode(&m["x-ms-client-principal"]).unwrap()).unwrap();
        v["claims"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["typ"] == "groups")
            .map(|c| c["val"].as_str().unwrap().to_string())
            .collect()
    };
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.groups = vec![
        G_HR.into(),
        G_HR.to_ascii_uppercase().into(),
        format!(" {G_HR}").into(),
        "Partners".into(),
    ];
    let s = settings("connections = [\"contoso\", \"partner\"]", "");
    let m = run_with(&s, u.clone(), None);
    assert_eq!(m["x-forwarded-groups"], "Partners");
    let s = settings(
        "connections = [\"contoso\", \"partner\"]\nheaders = \"easyauth\"",
        "",
    );
    assert_eq!(principal_groups(&run_with(&s, u, None)), ["Partners"]);
    // contoso's own user keeps the id.
    assert!(principal_groups(&run_with(&s, user(), None)).contains(&G_HR.to_string()));
    // So does a user of another Entra connection (a second app of the tenant).
    let s = settings(
        "connections = [\"contoso\", \"contoso2\"]\nheaders = \"easyauth\"",
        "[[connection]]\nname = \"contoso2\"\ntype = \"entra\"\ntenant = \"11111111-1111-1111-1111-111111111111\"\nclient_id = \"c2\"",
    );
    let mut u = user();
    u.connection = "contoso2".into();
    assert!(principal_groups(&run_with(&s, u, None)).contains(&G_HR.to_string()));
}

/// A tenant id is Entra's: a partner session carrying contoso's tenant id
/// (its provider's `tid` claim, kept by a build before review 11) shows no
/// tenant in any header; contoso's user keeps it.
#[test]
fn a_partner_session_s_tenant_id_is_never_sent() {
    let tid = "11111111-1111-1111-1111-111111111111";
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.issuer = "https://idp.partner.example".into();
    u.tenant_id = Some(tid.into());
    let extra = "headers_extra = { X-Tid = \"tid\" }";
    for profile in ["forwarded", "oidc_claim", "easyauth"] {
        let s = settings(
            &format!("connections = [\"contoso\", \"partner\"]\nheaders = \"{profile}\"\n{extra}"),
            "",
        );
        let m = run_with(&s, u.clone(), None);
        assert!(!m.values().any(|v| v.contains(tid)), "{profile}: {m:?}");
        if let Some(p) = m.get("x-ms-client-principal") {
            let p = String::from_utf8(STANDARD.decode(p).unwrap()).unwrap();
            assert!(!p.contains(tid), "{p}");
        }
        let m = run_with(&s, user(), None);
        assert_eq!(m["x-tid"], tid, "{profile}");
    }
}

/// `headers_extra = { X = "roles" }` leaves out a role with a comma, as the
/// role headers do: `Reader,HR.Admin` is not two roles (review 9).
#[test]
fn a_role_with_a_comma_is_left_out_of_headers_extra() {
    let s = settings(r#"headers_extra = { "X-App-Roles" = "roles" }"#, "");
    let mut u = user();
    u.roles = vec!["Reader,HR.Admin".into(), "Writer".into()];
    let m = run_with(&s, u, None);
    assert_eq!(m["x-app-roles"], "Writer");
}

/// An email of a domain contoso owns is not the partner's to vouch for, in
/// headers, whenever the session was made (before a reload, by an older
/// build): judged as it renders (review 9).
#[test]
fn an_email_of_a_domain_another_connection_owns_is_not_sent() {
    let s = settings(
        "connections = [\"contoso\", \"partner\"]\nheaders = \"forwarded\"",
        "home_realm_domains = [\"contoso.com\"]",
    );
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.email_trust = EmailTrust::ProviderVerified;
    for email in ["alice@contoso.com", "Alice@CONTOSO.com"] {
        u.email = Some(email.into());
        let m = run_with(&s, u.clone(), None);
        assert!(!m.contains_key("x-forwarded-email"), "{email}: {m:?}");
    }
    u.email = Some("carol@partner.example".into());
    let m = run_with(&s, u, None);
    assert_eq!(m["x-forwarded-email"], "carol@partner.example");
    // The owner's own user keeps it.
    let m = run_with(&s, user(), None);
    assert_eq!(m["x-forwarded-email"], "alice@contoso.com");
}

#[test]
fn a_partner_username_naming_a_domain_another_connection_owns_is_not_sent() {
    // Easy Auth's `X-MS-CLIENT-PRINCIPAL-NAME`, and the principal's
    // `name_typ` claim, are ASP.NET's `User.Identity.Name`: a partner's
    // provider must not mint contoso's, as a username or a display name.
    let s = settings(
        "connections = [\"contoso\", \"partner\"]\nheaders = \"easyauth\"\nheaders_extra = { X-User-Name = \"preferred_username\", X-Display = \"name\" }",
        "home_realm_domains = [\"contoso.com\"]",
    );
    let principal = |m: &BTreeMap<String, String>| -> Value {
        serde_json::from_slice(&STANDARD.decode(&m["x-ms-client-principal"]).unwrap()).unwrap()
    };
    let claim = |p: &Value, typ: &str| -> Vec<String> {
        p["claims"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["typ"] == typ)
            .map(|c| c["val"].as_str().unwrap().to_string())
            .collect()
    };
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.email = Some("carol@partner.example".into());
    u.email_trust = EmailTrust::ProviderVerified;
    u.name = Some("Carol".into());
    for name in [
        "alice@contoso.com",
        "ALICE@contoso.com.",
        "alice＠ｃｏｎｔｏｓｏ.com",
        "contoso.com\\alice",
        "CONTOSO\\alice",
        // RFC 5322 comments and spaces (Python's parseaddr, .NET's
        // MailAddress), and what ASCII email regexes extract.
        "alice@(x)contoso.com",
        "alice@contoso .com",
        "alice@contoso.comé",
        "alice@contoso.com²",
        "alice@contoso.com．evil",
    ] {
        u.preferred_username = Some(name.into());
        let m = run_with(&s, u.clone(), None);
        // The principal's name falls back to the partner's own email.
        assert_eq!(
            m["x-ms-client-principal-name"], "carol@partner.example",
            "{name}"
        );
        assert!(!m.contains_key("x-user-name"), "{name}: {m:?}");
        let p = principal(&m);
        assert!(claim(&p, "preferred_username").is_empty(), "{name}: {p}");
        let name_typ = p["name_typ"].as_str().unwrap();
        assert_eq!(claim(&p, name_typ), ["carol@partner.example"], "{name}");
        // The same as a display name.
        let mut v = u.clone();
        v.preferred_username = None;
        v.name = Some(name.into());
        let m = run_with(&s, v, None);
        assert!(!m.contains_key("x-display"), "{name}: {m:?}");
        assert!(claim(&principal(&m), "name").is_empty(), "{name}");
    }
    // No email either: the user id, never the refused name.
    let mut v = u.clone();
    v.preferred_username = Some("alice@contoso.com".into());
    v.email = None;
    let m = run_with(&s, v, None);
    assert_eq!(m["x-ms-client-principal-name"], "partner:sub-AbC");
    u.preferred_username = Some("carol@partner.example".into());
    let m = run_with(&s, u, None);
    assert_eq!(m["x-user-name"], "carol@partner.example");
    assert_eq!(m["x-display"], "Carol");
    // The owner's own user keeps both.
    let m = run_with(&s, user(), None);
    assert_eq!(m["x-ms-client-principal-name"], "alice@contoso.com");
    assert_eq!(m["x-user-name"], "alice@contoso.com");
    assert_eq!(m["x-display"], "Alice Müller");
}

/// Review 12: a username that names no domain says whose account it is
/// only within one directory. Beside an LDAP directory that sends its
/// `sAMAccountName` (`alice`), a partner's user who chose the username
/// `alice` read as the directory's Alice in `X-MS-CLIENT-PRINCIPAL-NAME`
/// (ASP.NET's `User.Identity.Name`), the username headers and
/// `OIDC_CLAIM_preferred_username` (mod_auth_openidc's usual REMOTE_USER
/// claim). Bare (and down-level) usernames belong to one connection: the
/// LDAP directory when there is exactly one, else the only connection
/// other than Entra's; the others' are not shown. A plain address still is.
#[test]
fn a_username_naming_no_domain_is_not_sent_beside_another_directory() {
    let config = |ldap: bool, more: &str| {
        let corp = if ldap {
            r#"
[[connection]]
name = "corp"
type = "ldap"
url = ["ldaps://dc1.corp.test"]
bind_dn = "CN=svc,DC=corp,DC=test"
bind_password = "x"
user_base = "DC=corp,DC=test"
user_filter = "(&(objectClass=user)(userPrincipalName={login}))"
attributes = { user_id = "objectGUID", email = "mail", username = "sAMAccountName" }
home_realm_domains = ["corp.test"]
"#
        } else {
            ""
        };
        load_str(&format!(
            r#"
[session]
secret = "0123456789abcdef0123456789abcdef"

[[connection]]
name = "contoso"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"
home_realm_domains = ["contoso.com"]

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"
{corp}
{more}
[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
headers = "easyauth"
headers_extra = {{ X-User-Name = "preferred_username" }}
"#
        ))
        .expect("valid config")
    };
    let with_ldap = config(true, "");
    let mut u = user();
    u.connection = "partner".into();
    u.user_id = "partner:sub-AbC".into();
    u.email = None;
    u.email_trust = EmailTrust::Unverified;
    for name in ["alice", "ALICE", "Alice ", "CORPNET\\alice", "corp\\alice"] {
        u.preferred_username = Some(name.into());
        let m = run_with(&with_ldap, u.clone(), None);
        assert_eq!(
            m["x-ms-client-principal-name"], "partner:sub-AbC",
            "{name:?}: {m:?}"
        );
        assert!(!m.contains_key("x-user-name"), "{name:?}: {m:?}");
    }
    // The directory owns its bare names: its `alice` is sent.
    let mut d = user();
    d.connection = "corp".into();
    d.user_id = "corp:01020304-0506-0708-090a-0b0c0d0e0f10".into();
    d.email = None;
    d.email_trust = EmailTrust::Unverified;
    d.preferred_username = Some("alice".into());
    let m = run_with(&with_ldap, d.clone(), None);
    assert_eq!(m["x-ms-client-principal-name"], "alice");
    assert_eq!(m["x-user-name"], "alice");
    // Two directories: nobody owns bare names.
    let two = config(
        true,
        r#"
[[connection]]
name = "corp2"
type = "ldap"
url = ["ldaps://dc1.corp2.test"]
bind_dn = "CN=svc,DC=corp2,DC=test"
bind_password = "x"
user_base = "DC=corp2,DC=test"
user_filter = "(&(objectClass=user)(userPrincipalName={login}))"
attributes = { user_id = "objectGUID", email = "mail", username = "sAMAccountName" }
home_realm_domains = ["corp2.test"]
"#,
    );
    let m = run_with(&two, d, None);
    assert_eq!(
        m["x-ms-client-principal-name"],
        "corp:01020304-0506-0708-090a-0b0c0d0e0f10"
    );
    // Two partners and no directory: nobody either.
    let partners = config(
        false,
        r#"
[[connection]]
name = "partner2"
type = "oidc"
issuer = "https://idp.partner2.example"
client_id = "p2"
"#,
    );
    u.preferred_username = Some("alice".into());
    let m = run_with(&partners, u.clone(), None);
    assert_eq!(m["x-ms-client-principal-name"], "partner:sub-AbC");
    // A plain address names its domain: still sent.
    u.preferred_username = Some("carol@partner.example".into());
    let m = run_with(&with_ldap, u.clone(), None);
    assert_eq!(m["x-user-name"], "carol@partner.example");
    // Entra's UPN too.
    let m = run_with(&with_ldap, user(), None);
    assert_eq!(m["x-ms-client-principal-name"], "alice@contoso.com");
    // With one connection other than Entra's, its bare usernames are its own.
    u.preferred_username = Some("alice".into());
    let m = run_with(&config(false, ""), u, None);
    assert_eq!(m["x-ms-client-principal-name"], "alice");
    assert_eq!(m["x-user-name"], "alice");
}
