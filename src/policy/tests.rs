use super::*;
use crate::config::{load_str, Settings};
use crate::session::model::EmailTrust;
use serde_json::json;

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
        derived: Default::default(),
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
        groups: groups.iter().map(|g| g.to_string().into()).collect(),
        roles: Vec::new(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        saml_name_id: None,
        tokens_expire_at: None,
        client_addr: None,
        created_at: 0,
        expires_at: u64::MAX,
    }
}

fn decide(s: &Settings, u: Session) -> Result<Permit, DenyReason> {
    authorize(
        &s.routes[0],
        s.connection(&u.connection).map(|c| &**c),
        AuthenticatedUser::for_tests(u),
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
            let decided = authorize(route, connection, AuthenticatedUser::for_tests(u)).err().map(|d| d.reason);
            prop_assert_eq!(decided, first_failure);
        }
    }
}

// === Issue 17: identities scoped to their connection (SPEC 6.1) ===

const HR_ID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const CONTOSO_OID: &str = "0bd3c4a2-0000-4000-8000-000000000001";

/// Two connections, both allowed on the route: contoso (Entra, owns
/// contoso.com, maps a group id to "HR Admins") and partner (OIDC, owns
/// partner.example).
fn two(allow: &str) -> Settings {
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
group_names = {{ "{HR_ID}" = "HR Admins" }}

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"
home_realm_domains = ["partner.example"]
trusted_email = true

[[connection]]
name = "other"
type = "oidc"
issuer = "https://idp.other.example"
client_id = "o"

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
[route.allow]
{allow}
"#
    ))
    .expect("valid config")
}

fn contoso(email: &str, groups: &[&str]) -> Session {
    let mut u = user(email, EmailTrust::EntraDomainVerified, groups);
    u.user_id = CONTOSO_OID.into();
    u
}

fn partner(sub: &str, email: &str, groups: &[&str]) -> Session {
    let mut u = user(email, EmailTrust::ProviderVerified, groups);
    u.connection = "partner".into();
    u.subject = sub.into();
    u.user_id = format!("partner:{sub}");
    u.tenant_id = None;
    u
}

#[test]
fn a_bare_group_name_from_group_names_matches_only_that_connections_users() {
    let s = two(r#"groups = ["HR Admins"]"#);
    assert!(decide(&s, contoso("a@contoso.com", &[HR_ID])).is_ok());
    // The partner's raw group claim that reads like the mapped name.
    for g in ["HR Admins", HR_ID] {
        assert_eq!(
            decide(&s, partner("x", "x@partner.example", &[g])).unwrap_err(),
            DenyReason::Groups,
            "{g:?}"
        );
    }
    // A contoso raw group literally called "HR Admins" is not the mapped id either.
    assert_eq!(
        decide(&s, contoso("a@contoso.com", &["HR Admins"])).unwrap_err(),
        DenyReason::Groups
    );
}

#[test]
fn a_bare_group_id_matches_every_allowed_connection_and_a_prefixed_one_only_its_own() {
    let s = two(r#"groups = ["staff"]"#);
    assert!(decide(&s, partner("x", "x@partner.example", &["staff"])).is_ok());
    assert!(decide(&s, contoso("a@contoso.com", &["staff"])).is_ok());

    let s = two(r#"groups = ["partner:staff"]"#);
    assert!(decide(&s, partner("x", "x@partner.example", &["staff"])).is_ok());
    assert_eq!(
        decide(&s, contoso("a@contoso.com", &["staff"])).unwrap_err(),
        DenyReason::Groups
    );
    // The prefix is not part of the value: a raw "partner:staff" group of
    // another connection does not match.
    assert_eq!(
        decide(&s, contoso("a@contoso.com", &["partner:staff"])).unwrap_err(),
        DenyReason::Groups
    );

    // `<connection>:<name>` matches by that connection's mapped name or id.
    let s = two(r#"groups = ["contoso:HR Admins"]"#);
    assert!(decide(&s, contoso("a@contoso.com", &[HR_ID])).is_ok());
    assert_eq!(
        decide(&s, partner("x", "x@partner.example", &["HR Admins"])).unwrap_err(),
        DenyReason::Groups
    );
    let s = two(&format!(r#"groups = ["contoso:{HR_ID}"]"#));
    assert!(decide(&s, contoso("a@contoso.com", &[HR_ID])).is_ok());
    assert_eq!(
        decide(&s, partner("x", "x@partner.example", &[HR_ID])).unwrap_err(),
        DenyReason::Groups
    );
    // An unknown prefix is just part of a bare value.
    let s = two(r#"groups = ["nobody:staff"]"#);
    assert!(decide(&s, partner("x", "x@partner.example", &["nobody:staff"])).is_ok());
    assert_eq!(
        decide(&s, partner("x", "x@partner.example", &["staff"])).unwrap_err(),
        DenyReason::Groups
    );
}

#[test]
fn entry_matches_is_the_one_scoping_rule() {
    let names: HashMap<String, String> = [("id-1".to_string(), "Admins".to_string())].into();
    let scoped = ScopedValue {
        connections: Some(vec!["contoso".into()]),
        value: "Admins".into(),
        by: MatchBy::ValueOrName,
    };
    assert!(entry_matches(&scoped, "contoso", "id-1", Some(&names)));
    assert!(entry_matches(&scoped, "contoso", "Admins", None));
    let name_only = ScopedValue {
        by: MatchBy::Name,
        ..scoped.clone()
    };
    assert!(entry_matches(&name_only, "contoso", "id-1", Some(&names)));
    assert!(!entry_matches(
        &name_only,
        "contoso",
        "Admins",
        Some(&names)
    ));
    assert!(!entry_matches(&scoped, "partner", "Admins", None));
    assert!(!entry_matches(&scoped, "partner", "id-1", Some(&names)));
    let bare = ScopedValue {
        connections: None,
        value: "Admins".into(),
        by: MatchBy::Value,
    };
    assert!(entry_matches(&bare, "partner", "Admins", None));
    assert!(!entry_matches(&bare, "contoso", "id-1", Some(&names)));
}

#[test]
fn an_owned_email_domain_counts_only_from_its_owner() {
    let s = two(r#"email_domains = ["contoso.com"]"#);
    assert!(decide(&s, contoso("ceo@contoso.com", &[])).is_ok());
    for e in ["ceo@contoso.com", "CEO@Contoso.COM"] {
        assert_eq!(
            decide(&s, partner("x", e, &[])).unwrap_err(),
            DenyReason::EmailOwner,
            "{e:?}"
        );
    }
    // Unclaimed domains count from any connection that verifies them.
    let s = two(r#"email_domains = ["fabrikam.example"]"#);
    assert!(decide(&s, partner("x", "a@fabrikam.example", &[])).is_ok());
    assert!(decide(&s, contoso("a@fabrikam.example", &[])).is_ok());
    // The partner's own domain from contoso does not count either.
    let s = two(r#"email_domains = ["partner.example"]"#);
    assert_eq!(
        decide(&s, contoso("a@partner.example", &[])).unwrap_err(),
        DenyReason::EmailOwner
    );
    assert!(decide(&s, partner("x", "a@partner.example", &[])).is_ok());
}

#[test]
fn an_owned_email_in_allow_users_counts_only_from_its_owner() {
    let s = two(r#"users = ["ceo@contoso.com"]"#);
    assert!(decide(&s, contoso("ceo@contoso.com", &[])).is_ok());
    assert_eq!(
        decide(&s, partner("x", "ceo@contoso.com", &[])).unwrap_err(),
        DenyReason::EmailOwner
    );
    let s = two(r#"users = ["ceo@contoso.com", "partner:y"]"#);
    assert_eq!(
        decide(&s, partner("x", "ceo@contoso.com", &[])).unwrap_err(),
        DenyReason::User
    );
}

#[test]
fn emails_that_are_not_one_plain_addr_spec_do_not_count() {
    let s = two(r#"email_domains = ["contoso.com"]"#);
    for e in [
        "mallory@evil.example@contoso.com",
        "mallory@contoso.com.",
        "\"mallory@contoso.com \"",
        "mallory@contoso.com ",
        "<mallory@contoso.com>",
        "mallory@contoso.com,x@contoso.com",
        "mallory@contoso\u{3002}com",
        "mallory@contoso.com\r\n",
    ] {
        assert_eq!(
            decide(&s, contoso(e, &[])).unwrap_err(),
            DenyReason::EmailUnverified,
            "{e:?}"
        );
    }
    let s = two(r#"users = ["mallory@contoso.com"]"#);
    for e in ["mallory@evil.example@contoso.com", "mallory@contoso.com."] {
        assert_eq!(
            decide(&s, contoso(e, &[])).unwrap_err(),
            DenyReason::EmailUnverified,
            "{e:?}"
        );
    }
    // IDNA and case forms of a plain address compare equal.
    let s = two(r#"email_domains = ["bücher.example"]"#);
    assert!(decide(&s, partner("x", "Anna@BÜCHER.example", &[])).is_ok());
    assert!(decide(&s, partner("x", "anna@xn--bcher-kva.example", &[])).is_ok());
}

#[test]
fn allow_users_takes_user_ids_scoped_to_their_connection() {
    // `partner:<sub>` is that partner user, never a contoso user whose oid
    // is the same string.
    let s = two(&format!(r#"users = ["partner:{CONTOSO_OID}"]"#));
    assert!(decide(&s, partner(CONTOSO_OID, "p@partner.example", &[])).is_ok());
    assert_eq!(
        decide(&s, contoso("a@contoso.com", &[])).unwrap_err(),
        DenyReason::User
    );
    // A bare oid is the Entra user (user ids of other kinds carry a prefix).
    let s = two(&format!(r#"users = ["{CONTOSO_OID}"]"#));
    assert!(decide(&s, contoso("a@contoso.com", &[])).is_ok());
    assert_eq!(
        decide(&s, partner(CONTOSO_OID, "p@partner.example", &[])).unwrap_err(),
        DenyReason::User
    );
    // `contoso:<oid>`: that Entra connection's user only.
    let s = two(&format!(
        r#"users = ["contoso:{}"]"#,
        CONTOSO_OID.to_uppercase()
    ));
    assert!(decide(&s, contoso("a@contoso.com", &[])).is_ok());
    // Another connection's user id with the same sub does not match.
    let s = two(r#"users = ["other:x"]"#);
    assert_eq!(
        decide(&s, partner("x", "p@partner.example", &[])).unwrap_err(),
        DenyReason::User
    );
}

#[test]
fn explain_says_why_an_owned_email_does_not_count() {
    let s = two(r#"email_domains = ["contoso.com"]"#);
    let clauses = evaluate(
        &s.routes[0],
        s.connection("partner").map(|c| &**c),
        &partner("x", "ceo@contoso.com", &[]),
    );
    let c = clauses
        .iter()
        .find(|c| c.rule == "allow.email_domains")
        .unwrap();
    assert_eq!(c.failed, Some(DenyReason::EmailOwner));
    assert!(c.detail.contains("\"contoso\""), "{}", c.detail);
}

/// `two`'s connections with claims kept (`extended_profile`) on contoso
/// and partner.
fn with_claims(allow: &str) -> Settings {
    load_str(&format!(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef"

[[connection]]
name = "contoso"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"
extended_profile = true
group_names = {{ "{HR_ID}" = "HR Admins" }}

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"
extended_profile = true

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
[route.allow]
{allow}
"#
    ))
    .expect("valid config")
}

fn with_roles(mut u: Session, roles: &[&str]) -> Session {
    u.roles = roles.iter().map(|r| r.to_string().into()).collect();
    u
}

#[test]
fn allow_roles_matches_app_roles_exactly_and_case_sensitively() {
    let s = two(r#"roles = ["HR.Admin"]"#);
    let ok = with_roles(contoso("a@contoso.com", &[]), &["Reader", "HR.Admin"]);
    assert!(decide(&s, ok).is_ok());
    for roles in [&[][..], &["hr.admin"], &["HR.Admin "], &["HR"]] {
        let u = with_roles(contoso("a@contoso.com", &[]), roles);
        assert_eq!(decide(&s, u).unwrap_err(), DenyReason::Roles, "{roles:?}");
    }
    // A bare role matches users of every connection the route allows.
    let p = with_roles(partner("x", "x@partner.example", &[]), &["HR.Admin"]);
    assert!(decide(&s, p).is_ok());
}

#[test]
fn a_prefixed_role_matches_only_that_connections_users() {
    let s = two(r#"roles = ["contoso:HR.Admin"]"#);
    let c = with_roles(contoso("a@contoso.com", &[]), &["HR.Admin"]);
    assert!(decide(&s, c).is_ok());
    let p = with_roles(partner("x", "x@partner.example", &[]), &["HR.Admin"]);
    assert_eq!(decide(&s, p).unwrap_err(), DenyReason::Roles);
    // Nor does a partner role that spells the prefix.
    let p = with_roles(
        partner("x", "x@partner.example", &[]),
        &["contoso:HR.Admin"],
    );
    assert_eq!(decide(&s, p).unwrap_err(), DenyReason::Roles);
}

#[test]
fn a_bare_role_that_is_a_group_name_matches_only_the_naming_connection() {
    // SPEC 6.1: "HR Admins" is a name in contoso's group_names.
    let s = two(r#"roles = ["HR Admins"]"#);
    let c = with_roles(contoso("a@contoso.com", &[]), &["HR Admins"]);
    assert!(decide(&s, c).is_ok());
    let p = with_roles(partner("x", "x@partner.example", &[]), &["HR Admins"]);
    assert_eq!(decide(&s, p).unwrap_err(), DenyReason::Roles);
}

#[test]
fn allow_claims_match_kept_claims_exactly() {
    let s = with_claims(r#"claims = { department = ["HR"], level = ["7"] }"#);
    let mut u = contoso("a@contoso.com", &[]);
    u.claims = Some(
        json!({"department": "HR", "level": ["3", "7"]})
            .as_object()
            .unwrap()
            .clone(),
    );
    assert!(decide(&s, u.clone()).is_ok());
    // Case-sensitive; a number is not the string "7"; a missing claim fails.
    for claims in [
        json!({"department": "hr", "level": "7"}),
        json!({"department": "HR", "level": 7}),
        json!({"department": "HR"}),
    ] {
        u.claims = Some(claims.as_object().unwrap().clone());
        assert_eq!(
            decide(&s, u.clone()).unwrap_err(),
            DenyReason::Claims,
            "{claims}"
        );
    }
    u.claims = None;
    assert_eq!(decide(&s, u).unwrap_err(), DenyReason::Claims);
}

#[test]
fn explain_shows_roles_and_claims_rules() {
    let s = with_claims(
        r#"roles = ["HR.Admin"]
claims = { department = ["HR"] }"#,
    );
    let u = with_roles(contoso("a@contoso.com", &[]), &["Reader"]);
    let clauses = evaluate(&s.routes[0], s.connection("contoso").map(|c| &**c), &u);
    let roles = clauses.iter().find(|c| c.rule == "allow.roles").unwrap();
    assert_eq!(roles.failed, Some(DenyReason::Roles));
    assert!(roles.detail.contains("1 app role(s)"), "{}", roles.detail);
    let claims = clauses.iter().find(|c| c.rule == "allow.claims").unwrap();
    assert!(
        claims.detail.contains("keeps no claim \"department\""),
        "{}",
        claims.detail
    );
}

/// A tenant id is Entra's (`session::model::tenant_id_for`): a session of
/// another kind of connection that carries contoso's tenant id (from a
/// `tid` claim its provider chose, written before that rule) is in no
/// tenant for `allow.tenants` (review 11).
#[test]
fn a_tenant_counts_only_from_an_entra_connection() {
    let s = load_str(
        r#"
[session]
secret = "0123456789abcdef0123456789abcdef"

[[connection]]
name = "contoso"
type = "entra"
tenant = "11111111-1111-1111-1111-111111111111"
client_id = "c"

[[connection]]
name = "partner"
type = "oidc"
issuer = "https://idp.partner.example"
client_id = "p"

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
connections = ["contoso", "partner"]
[route.allow]
tenants = ["11111111-1111-1111-1111-111111111111"]
"#,
    )
    .expect("valid config");
    assert!(decide(&s, user("a@contoso.com", EmailTrust::Unverified, &[])).is_ok());
    let mut partner = user("a@contoso.com", EmailTrust::Unverified, &[]);
    partner.connection = "partner".into();
    partner.user_id = "partner:sub-1".into();
    assert_eq!(decide(&s, partner).unwrap_err(), DenyReason::Tenant);
}
