//! The stored format across an upgrade (issue 23: absent fields are left
//! out of the record, without a new `SESSION_VERSION`).

use serde::Deserialize;
use serde_json::json;

use super::*;

fn lean() -> Session {
    Session {
        derived: Default::default(),
        version: SESSION_VERSION,
        user_id: "0b1c".into(),
        subject: "sub".into(),
        tenant_id: None,
        connection: "contoso".into(),
        issuer: "https://login.microsoftonline.com/t/v2.0".into(),
        sid: None,
        email: None,
        email_trust: EmailTrust::Unverified,
        name: None,
        preferred_username: None,
        groups: vec!["g1".into()],
        roles: Vec::new(),
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        tokens_expire_at: None,
        saml_name_id: None,
        client_addr: None,
        created_at: 1,
        expires_at: 2,
    }
}

#[test]
fn absent_fields_are_left_out_of_the_record() {
    let record = serde_json::to_value(lean()).expect("encodes");
    let keys: Vec<&str> = record
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    for absent in [
        "tenant_id",
        "sid",
        "email",
        "name",
        "preferred_username",
        "roles",
        "claims",
        "id_token",
        "access_token",
        "refresh_token",
        "tokens_expire_at",
    ] {
        assert!(!keys.contains(&absent), "{absent} in {record}");
    }
}

/// A record an earlier build wrote (every field, `null` for the absent
/// ones, the ID token of an Entra session) is read as it was written.
#[test]
fn records_written_before_the_upgrade_are_read_as_they_were() {
    let old = json!({
        "version": 2, "user_id": "0b1c", "subject": "sub", "tenant_id": null,
        "connection": "contoso", "issuer": "https://login.microsoftonline.com/t/v2.0",
        "sid": null, "email": null, "email_trust": "unverified", "name": null,
        "preferred_username": null, "groups": ["g1"], "claims": null,
        "id_token": "h.p.s", "access_token": null, "refresh_token": null,
        "tokens_expire_at": null, "created_at": 1, "expires_at": 2
    });
    let read: Session = serde_json::from_value(old).expect("an earlier record reads");
    let mut expected = lean();
    expected.id_token = Some("h.p.s".into());
    assert_eq!(read, expected);
    assert!(read.is_current());
}

/// The struct as earlier builds declare it (no `default` on the optional
/// fields but `roles`): serde reads a missing `Option` as `None`, so a
/// replica not yet upgraded reads the new, shorter record too.
#[derive(Deserialize, Debug, PartialEq)]
#[allow(dead_code)]
struct EarlierBuild {
    #[serde(default)]
    version: u32,
    user_id: String,
    subject: String,
    tenant_id: Option<String>,
    connection: String,
    issuer: String,
    sid: Option<String>,
    email: Option<String>,
    email_trust: EmailTrust,
    name: Option<String>,
    preferred_username: Option<String>,
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    claims: Option<serde_json::Map<String, serde_json::Value>>,
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    tokens_expire_at: Option<u64>,
    created_at: u64,
    expires_at: u64,
}

#[test]
fn the_new_record_is_read_by_a_replica_not_yet_upgraded() {
    let record = serde_json::to_vec(&lean()).expect("encodes");
    let read: EarlierBuild = serde_json::from_slice(&record).expect("an earlier build reads it");
    assert_eq!(read.version, SESSION_VERSION);
    assert_eq!(
        (read.sid, read.id_token, read.tokens_expire_at),
        (None, None, None)
    );
    assert_eq!(read.groups, ["g1"]);
}

/// Groups and roles are shared strings in memory and plain string arrays
/// in JSON, escapes included, both ways; anything but an array of strings
/// is refused, never read as fewer groups.
#[test]
fn groups_and_roles_are_string_arrays_in_json() {
    let mut s = lean();
    s.groups = vec!["a\"b".into(), "".into(), "Zoë\u{1}".into()];
    s.roles = vec!["Task.Write".into()];
    let record = serde_json::to_value(&s).expect("encodes");
    assert_eq!(record["groups"], json!(["a\"b", "", "Zoë\u{1}"]));
    assert_eq!(record["roles"], json!(["Task.Write"]));
    let text = serde_json::to_string(&s).expect("encodes");
    let read: Session = serde_json::from_str(&text).expect("reads");
    assert_eq!(read, s);
    let mut bad = record.clone();
    bad["groups"] = json!(["g1", 2]);
    assert!(serde_json::from_value::<Session>(bad).is_err());
    let mut bad = record;
    bad["roles"] = json!("Task.Write");
    assert!(serde_json::from_value::<Session>(bad).is_err());
}
