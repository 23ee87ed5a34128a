use super::*;
use crate::config::{load_str, Settings};
use crate::session::model::{strs, Session, SessionTerms};

fn settings() -> Settings {
    load_str(
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

[[connection]]
name = "trusted"
type = "oidc"
issuer = "https://idp.trusted.example"
client_id = "t"
trusted_email = true

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
connections = ["contoso", "partner", "trusted"]
"#,
    )
    .expect("valid config")
}

fn conn<'a>(s: &'a Settings, name: &str) -> &'a ConnectionSettings {
    s.connection(name).expect("connection")
}

#[test]
fn user_ids_are_user_id_for_s_and_never_chosen_by_a_kind() {
    let s = settings();
    // Entra: `oid`, required.
    let id = VerifiedIdentity::builder(conn(&s, "contoso"), "sub-1", Some("oid-1"), "iss")
        .expect("oid present")
        .build();
    assert_eq!(id.user_id(), "oid-1");
    assert!(VerifiedIdentity::builder(conn(&s, "contoso"), "sub-1", None, "iss").is_none());
    assert!(VerifiedIdentity::builder(conn(&s, "contoso"), "sub-1", Some(""), "iss").is_none());
    // Every other kind: `<connection>:<sub>`; an `oid` claim means nothing there.
    let id = VerifiedIdentity::builder(conn(&s, "partner"), "sub-1", Some("oid-1"), "iss")
        .expect("sub present")
        .build();
    assert_eq!(id.user_id(), "partner:sub-1");
    assert!(VerifiedIdentity::builder(conn(&s, "partner"), "", Some("oid-1"), "iss").is_none());
    // An id no header can carry is no id (review 13): C0, DEL, C1.
    for bad in ["a\nb", "a\rb", "a\0b", "a\u{7f}b", "a\u{85}b", "\tx"] {
        assert!(
            VerifiedIdentity::builder(conn(&s, "partner"), bad, None, "iss").is_none(),
            "{bad:?}"
        );
        assert!(
            VerifiedIdentity::builder(conn(&s, "contoso"), "sub-1", Some(bad), "iss").is_none(),
            "{bad:?}"
        );
    }
}

/// A tenant id is Entra's: another kind's `tid` claim (any text its
/// provider chose, contoso's tenant id included) gives the user no tenant,
/// as its `oid` gives no bare user id (review 11).
#[test]
fn only_entra_connections_give_a_tenant() {
    let s = settings();
    let tid = "11111111-1111-1111-1111-111111111111";
    let id = VerifiedIdentity::builder(conn(&s, "contoso"), "sub-1", Some("oid-1"), "iss")
        .expect("oid present")
        .tenant_id(Some(tid))
        .build();
    assert_eq!(id.tenant_id.as_deref(), Some(tid));
    let id = VerifiedIdentity::builder(conn(&s, "partner"), "sub-1", Some("oid-1"), "iss")
        .expect("sub present")
        .tenant_id(Some(tid))
        .build();
    assert_eq!(id.tenant_id, None);
}

#[test]
fn email_trust_follows_spec_5_6_and_xms_edov_only_on_entra() {
    let s = settings();
    let (entra, partner, trusted) = (
        conn(&s, "contoso"),
        conn(&s, "partner"),
        conn(&s, "trusted"),
    );
    assert_eq!(
        email_trust(partner, false, Some(true), false),
        EmailTrust::Unverified
    );
    assert_eq!(
        email_trust(partner, true, Some(true), false),
        EmailTrust::ProviderVerified
    );
    assert_eq!(
        email_trust(
            entra,
            true,
            None,
            entra::vouches_for_email(entra, Some(true))
        ),
        EmailTrust::EntraDomainVerified
    );
    // Another provider's `xms_edov` vouches for nothing.
    assert!(!entra::vouches_for_email(partner, Some(true)));
    assert_eq!(
        email_trust(
            partner,
            true,
            Some(false),
            entra::vouches_for_email(partner, Some(true))
        ),
        EmailTrust::Unverified
    );
    assert_eq!(
        email_trust(trusted, true, None, false),
        EmailTrust::TrustedConnection
    );
}

#[test]
fn group_overage_is_signalled_by_claim_names_or_hasgroups() {
    let claims = |v: serde_json::Value| v.as_object().cloned().expect("object");
    assert!(entra::signals_group_overage(&claims(
        serde_json::json!({"_claim_names": {"groups": "src1"}})
    )));
    assert!(entra::signals_group_overage(&claims(
        serde_json::json!({"hasgroups": true})
    )));
    assert!(entra::signals_group_overage(&claims(
        serde_json::json!({"hasgroups": "true"})
    )));
    assert!(!entra::signals_group_overage(&claims(
        serde_json::json!({"hasgroups": false})
    )));
    assert!(!entra::signals_group_overage(&claims(
        serde_json::json!({"_claim_names": {"roles": "src1"}, "groups": ["a"]})
    )));
}

#[test]
fn a_session_keeps_only_the_tokens_a_feature_needs() {
    let s = settings();
    let identity = || {
        VerifiedIdentity::builder(conn(&s, "partner"), "sub-1", None, "https://idp")
            .expect("sub")
            .tokens(IdpTokens {
                id_token: Some("id".into()),
                access_token: Some("at".into()),
                refresh_token: Some("rt".into()),
                expire_at: Some(50),
            })
            .build()
    };
    let terms = |access, refresh| SessionTerms {
        created_at: 10,
        expires_at: 100,
        keep_access_token: access,
        keep_refresh_token: refresh,
    };
    let lean = Session::new(identity(), terms(false, false));
    assert_eq!(lean.id_token.as_deref(), Some("id"));
    assert!(lean.access_token.is_none() && lean.refresh_token.is_none());
    assert_eq!(lean.tokens_expire_at, Some(50));
    assert_eq!((lean.created_at, lean.expires_at), (10, 100));
    assert!(lean.is_current());
    assert_eq!(lean.user_id, "partner:sub-1");
    assert_eq!(lean.connection, "partner");
    let full = Session::new(identity(), terms(true, true));
    assert_eq!(full.access_token.as_deref(), Some("at"));
    assert_eq!(full.refresh_token.as_deref(), Some("rt"));
}

#[test]
fn debug_output_never_shows_tokens_or_emails() {
    let s = settings();
    let identity = VerifiedIdentity::builder(conn(&s, "partner"), "sub-1", None, "https://idp")
        .expect("sub")
        .email(Some("alice@partner.example"), EmailTrust::ProviderVerified)
        .tokens(IdpTokens {
            id_token: Some("secret-id-token".into()),
            access_token: Some("secret-access-token".into()),
            refresh_token: None,
            expire_at: None,
        })
        .build();
    let shown = format!("{identity:?}");
    assert!(shown.contains("partner:sub-1"), "{shown}");
    for hidden in ["secret-id-token", "secret-access-token", "alice@"] {
        assert!(!shown.contains(hidden), "{shown}");
    }
    let pending = Pending {
        state: "s3cret-state".into(),
        nonce: "n0nce".into(),
        pkce_verifier: "v3rifier".into(),
    };
    let shown = format!("{pending:?}");
    assert!(!shown.contains("s3cret") && !shown.contains("n0nce") && !shown.contains("v3rifier"));
}

#[test]
fn refusals_map_to_4xx_for_what_was_sent_and_503_for_what_is_down() {
    use Refusal::*;
    for r in [
        NoState,
        UnknownState,
        ReplayedState,
        ConnectionMismatch,
        IssuerMismatch,
        NoCode,
    ] {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{r:?}");
    }
    for r in [
        ProviderError,
        CodeExchange,
        IdToken,
        MissingUserId,
        InvalidCredentials,
    ] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{r:?}");
    }
    for r in [
        ProviderUnavailable,
        StoreUnavailable,
        GroupsUnavailable,
        DirectoryUnavailable,
        DirectoryError,
    ] {
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    }
    // What the directory says of the account (LDAP): 403; too many failures: 429.
    assert_eq!(AccountState.status(), StatusCode::FORBIDDEN);
    assert_eq!(RateLimited.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn described_identities_follow_the_sign_in_rules() {
    let s = settings();
    let claims = serde_json::json!({
        "sub": "s", "oid": "o", "tid": "t", "email": "a@contoso.com", "xms_edov": true,
        "groups": ["g1", "g2"]
    });
    let claims = claims.as_object().expect("object");
    let entra = described_identity(conn(&s, "contoso"), claims).expect("oid");
    let session = Session::new(
        entra,
        SessionTerms {
            created_at: 0,
            expires_at: u64::MAX,
            keep_access_token: false,
            keep_refresh_token: false,
        },
    );
    assert_eq!(session.user_id, "o");
    assert_eq!(session.email_trust, EmailTrust::EntraDomainVerified);
    assert_eq!(strs(&session.groups), ["g1", "g2"]);
    let partner = described_identity(conn(&s, "partner"), claims).expect("sub");
    assert_eq!(partner.user_id(), "partner:s");
    let by_email = described_by_email(conn(&s, "partner"), "bob@partner.example");
    assert_eq!(
        by_email.user_id(),
        "(user signing in as bob@partner.example)"
    );
}
