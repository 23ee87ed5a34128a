use super::*;
use crate::config::{load_str, Settings};
use crate::session::model::EmailTrust;

fn settings(allow: &str) -> Settings {
    load_str(&format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef"

[[connection]]
name = "contoso"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"
group_names = {{ "aaaaaaaa-0000-0000-0000-000000000001" = "HR Admins" }}

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
connections = ["contoso"]
[route.allow]
{allow}
"#
    ))
    .expect("valid config")
}

fn user(email: &str, trust: EmailTrust, groups: &[&str]) -> Session {
    Session {
        version: crate::session::model::SESSION_VERSION,
        user_id: "oid-1".into(),
        subject: "sub-1".into(),
        tenant_id: Some("11111111-1111-1111-1111-111111111111".into()),
        connection: "contoso".into(),
        issuer: "https://login.example/t/v2.0".into(),
        sid: None,
        email: Some(email.into()),
        email_trust: trust,
        name: Some("Alice".into()),
        preferred_username: Some(email.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        tokens_expire_at: None,
        created_at: 0,
        expires_at: u64::MAX,
    }
}

fn decide(s: &Settings, u: Session) -> Result<Permit, DenyReason> {
    authorize(
        &s.routes[0],
        s.connection(&u.connection).map(|c| &**c),
        Arc::new(u),
    )
    .map_err(|d| d.reason)
}

#[test]
fn empty_allow_admits_any_user_of_an_allowed_connection() {
    let s = settings("");
    let p = decide(&s, user("a@contoso.com", EmailTrust::Unverified, &[])).expect("permit");
    assert_eq!(p.user().user_id, "oid-1");
}

#[test]
fn a_session_from_a_connection_the_route_does_not_allow_is_refused() {
    let s = settings("");
    let mut u = user("a@partner.example", EmailTrust::ProviderVerified, &[]);
    u.connection = "partner".into();
    assert_eq!(decide(&s, u).unwrap_err(), DenyReason::Connection);
}

#[test]
fn groups_match_by_id_or_by_mapped_name() {
    let by_name = settings(r#"groups = ["HR Admins"]"#);
    assert!(decide(
        &by_name,
        user(
            "a@contoso.com",
            EmailTrust::Unverified,
            &["aaaaaaaa-0000-0000-0000-000000000001"]
        )
    )
    .is_ok());
    assert_eq!(
        decide(
            &by_name,
            user("a@contoso.com", EmailTrust::Unverified, &["other"])
        )
        .unwrap_err(),
        DenyReason::Groups
    );
    // A group literally named like the mapped name but with another id does not match.
    assert_eq!(
        decide(
            &by_name,
            user("a@contoso.com", EmailTrust::Unverified, &["hr admins"])
        )
        .unwrap_err(),
        DenyReason::Groups
    );
    let by_id = settings(r#"groups = ["aaaaaaaa-0000-0000-0000-000000000001"]"#);
    assert!(decide(
        &by_id,
        user(
            "a@contoso.com",
            EmailTrust::Unverified,
            &["aaaaaaaa-0000-0000-0000-000000000001"]
        )
    )
    .is_ok());
}

#[test]
fn email_rules_need_a_verified_email() {
    let s = settings(r#"email_domains = ["contoso.com"]"#);
    assert!(decide(
        &s,
        user("Bob@CONTOSO.com", EmailTrust::EntraDomainVerified, &[])
    )
    .is_ok());
    assert_eq!(
        decide(&s, user("bob@contoso.com", EmailTrust::Unverified, &[])).unwrap_err(),
        DenyReason::EmailUnverified
    );
    assert_eq!(
        decide(&s, user("bob@evil.com", EmailTrust::ProviderVerified, &[])).unwrap_err(),
        DenyReason::EmailDomain
    );
    // Subdomains are not the domain.
    assert_eq!(
        decide(
            &s,
            user("bob@x.contoso.com", EmailTrust::ProviderVerified, &[])
        )
        .unwrap_err(),
        DenyReason::EmailDomain
    );
    let users = settings(r#"users = ["alice@contoso.com"]"#);
    assert!(decide(
        &users,
        user("ALICE@contoso.com", EmailTrust::TrustedConnection, &[])
    )
    .is_ok());
    assert_eq!(
        decide(
            &users,
            user("alice@contoso.com", EmailTrust::Unverified, &[])
        )
        .unwrap_err(),
        DenyReason::EmailUnverified
    );
    assert_eq!(
        decide(
            &users,
            user("mallory@contoso.com", EmailTrust::ProviderVerified, &[])
        )
        .unwrap_err(),
        DenyReason::User
    );
}

#[test]
fn all_given_lists_must_match() {
    let s = settings(
        r#"groups = ["HR Admins"]
email_domains = ["contoso.com"]
tenants = ["11111111-1111-1111-1111-111111111111"]"#,
    );
    let good = user(
        "a@contoso.com",
        EmailTrust::ProviderVerified,
        &["aaaaaaaa-0000-0000-0000-000000000001"],
    );
    assert!(decide(&s, good.clone()).is_ok());
    let mut other_tenant = good.clone();
    other_tenant.tenant_id = Some("22222222-2222-2222-2222-222222222222".into());
    assert_eq!(decide(&s, other_tenant).unwrap_err(), DenyReason::Tenant);
    let no_group = user("a@contoso.com", EmailTrust::ProviderVerified, &[]);
    assert_eq!(decide(&s, no_group).unwrap_err(), DenyReason::Groups);
    // explain sees every clause, even after a failure.
    let clauses = evaluate(
        &s.routes[0],
        None,
        &user("a@evil.com", EmailTrust::Unverified, &[]),
    );
    assert_eq!(clauses.len(), 4);
    assert_eq!(clauses.iter().filter(|c| c.failed.is_some()).count(), 2);
}

/// `authorize` stops at the first failing rule without formatting anything,
/// `evaluate` runs them all for `explain`: the two must always agree on the
/// decision and its reason.
mod agreement {
    use proptest::prelude::*;

    use super::*;

    const ALLOWS: [&str; 6] = [
        "",
        r#"groups = ["HR Admins", "g-2"]"#,
        r#"email_domains = ["contoso.com"]"#,
        r#"users = ["alice@contoso.com", "bob@b\u00fccher.example"]"#,
        r#"tenants = ["11111111-1111-1111-1111-111111111111"]"#,
        r#"groups = ["g-2"]
email_domains = ["contoso.com", "xn--bcher-kva.example"]
users = ["alice@contoso.com"]
tenants = ["11111111-1111-1111-1111-111111111111"]"#,
    ];

    fn a_user() -> impl Strategy<Value = Session> {
        (
            prop::sample::select(vec![
                "alice@contoso.com",
                "ALICE@Contoso.COM",
                "bob@b\u{fc}cher.example",
                "mallory@evil.example",
                "no-at-sign",
                "",
            ]),
            prop::sample::select(vec![
                EmailTrust::Unverified,
                EmailTrust::ProviderVerified,
                EmailTrust::EntraDomainVerified,
            ]),
            prop::collection::vec(
                prop::sample::select(vec![
                    "aaaaaaaa-0000-0000-0000-000000000001",
                    "g-2",
                    "HR Admins",
                    "other",
                ]),
                0..3,
            ),
            prop::sample::select(vec!["contoso", "partner"]),
            prop::option::of(prop::sample::select(vec![
                "11111111-1111-1111-1111-111111111111",
                "11111111-1111-1111-1111-11111111111A",
                "22222222-2222-2222-2222-222222222222",
            ])),
        )
            .prop_map(|(email, trust, groups, connection, tenant)| {
                let mut u = user(email, trust, &groups);
                u.connection = connection.into();
                u.tenant_id = tenant.map(String::from);
                u
            })
    }

    proptest! {
        #[test]
        fn authorize_and_evaluate_agree(allow in 0..ALLOWS.len(), u in a_user()) {
            let s = settings(ALLOWS[allow]);
            let route = &s.routes[0];
            let connection = s.connection(&u.connection).map(|c| &**c);
            let first_failure = evaluate(route, connection, &u)
                .into_iter()
                .find_map(|c| c.failed);
            let decided = authorize(route, connection, Arc::new(u)).err().map(|d| d.reason);
            prop_assert_eq!(decided, first_failure);
        }
    }
}
