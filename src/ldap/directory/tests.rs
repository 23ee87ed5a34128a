use super::*;

#[test]
fn object_guid_is_formatted_with_little_endian_first_fields() {
    // The GUID {01020304-0506-0708-090a-0b0c0d0e0f10} as AD stores it.
    let raw = [
        0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x08, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x10,
    ];
    assert_eq!(
        guid_string(&raw).as_deref(),
        Some("01020304-0506-0708-090a-0b0c0d0e0f10")
    );
    assert_eq!(guid_string(&raw[..15]), None);
    assert_eq!(guid_string(&[0; 17]), None);
}

fn entry(attrs: &[(&str, &str)], bin: &[(&str, &[u8])]) -> SearchEntry {
    SearchEntry {
        dn: "uid=a,dc=x".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
        bin_attrs: bin
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_vec()]))
            .collect(),
    }
}

#[test]
fn user_id_reads_object_guid_from_binary_or_text_values() {
    let raw: [u8; 16] = *b"ABCDEFGHIJKLMNOP"; // valid UTF-8: ldap3 files it under attrs
    let text = entry(&[("objectGUID", "ABCDEFGHIJKLMNOP")], &[]);
    let bin = entry(&[], &[("objectguid", &raw)]);
    let want = guid_string(&raw);
    assert!(want.is_some());
    assert_eq!(user_id(&text, "objectGUID"), want);
    assert_eq!(user_id(&bin, "objectGUID"), want);
    // A GUID that is not 16 bytes is no id.
    let short = entry(&[("objectGUID", "short")], &[]);
    assert_eq!(user_id(&short, "objectGUID"), None);
}

#[test]
fn entry_uuid_is_lowercased_and_missing_ids_are_none() {
    let e = entry(
        &[("entryUUID", "6F1D2C3B-0000-4000-8000-00000000ABCD")],
        &[],
    );
    assert_eq!(
        user_id(&e, "entryuuid").as_deref(),
        Some("6f1d2c3b-0000-4000-8000-00000000abcd")
    );
    assert_eq!(user_id(&e, "objectGUID"), None);
    let ctl = entry(&[("entryUUID", "a\nb")], &[]);
    assert_eq!(user_id(&ctl, "entryUUID"), None);
}

#[test]
fn ad_sub_codes_are_mapped_and_wrong_password_and_unknown_user_look_alike() {
    let msg = |c: &str| {
        format!("80090308: LdapErr: DSID-0C09030B, comment: AcceptSecurityContext error, data {c}, v893")
    };
    assert_eq!(ad_state(&msg("52e")), None);
    assert_eq!(ad_state(&msg("525")), None);
    assert_eq!(ad_state(&msg("530")), Some(AccountState::LogonHours));
    assert_eq!(ad_state(&msg("531")), Some(AccountState::Workstation));
    assert_eq!(ad_state(&msg("532")), Some(AccountState::PasswordExpired));
    assert_eq!(ad_state(&msg("533")), Some(AccountState::Disabled));
    assert_eq!(ad_state(&msg("701")), Some(AccountState::AccountExpired));
    assert_eq!(
        ad_state(&msg("773")),
        Some(AccountState::MustChangePassword)
    );
    assert_eq!(ad_state(&msg("775")), Some(AccountState::Locked));
    assert_eq!(ad_state("invalid credentials"), None);
    assert_eq!(ad_state(""), None);
}

#[test]
fn the_first_rdn_value_is_unescaped() {
    assert_eq!(
        rdn_value("CN=HR Admins\\, Berlin,OU=Groups,DC=corp", "cn").as_deref(),
        Some("HR Admins, Berlin")
    );
    assert_eq!(
        rdn_value("cn=caf\\c3\\a9,dc=x", "CN").as_deref(),
        Some("café")
    );
    assert_eq!(rdn_value("ou=People,dc=x", "cn"), None);
    assert_eq!(rdn_value("cn=a+uid=b,dc=x", "cn"), None);
    assert_eq!(rdn_value("cn=,dc=x", "cn"), None);
    assert_eq!(rdn_value("garbage", "cn"), None);
    assert_eq!(rdn_value("cn=trailing\\", "cn"), None);
}

#[test]
fn password_debug_is_redacted() {
    let p = Password::new("hunter2".into());
    assert!(!format!("{p:?}").contains("hunter2"));
}

#[test]
fn ppolicy_response_errors_are_read() {
    // SEQUENCE { error [1] accountLocked(1) }
    assert_eq!(
        ppolicy_error(&[0x30, 0x03, 0x81, 0x01, 0x01]),
        Some(AccountState::Locked)
    );
    assert_eq!(
        ppolicy_error(&[0x30, 0x03, 0x81, 0x01, 0x00]),
        Some(AccountState::PasswordExpired)
    );
    assert_eq!(
        ppolicy_error(&[0x30, 0x03, 0x81, 0x01, 0x02]),
        Some(AccountState::MustChangePassword)
    );
    // With a warning first: [0] { timeBeforeExpiration [0] 100 }, then error 1.
    assert_eq!(
        ppolicy_error(&[0x30, 0x08, 0xa0, 0x03, 0x80, 0x01, 0x64, 0x81, 0x01, 0x01]),
        Some(AccountState::Locked)
    );
    // Warning only, empty, truncated, garbage.
    assert_eq!(
        ppolicy_error(&[0x30, 0x05, 0xa0, 0x03, 0x80, 0x01, 0x64]),
        None
    );
    assert_eq!(ppolicy_error(&[0x30, 0x00]), None);
    assert_eq!(ppolicy_error(&[0x30, 0x05, 0x81, 0x01]), None);
    assert_eq!(ppolicy_error(&[0x04, 0x01, 0x00]), None);
    assert_eq!(ppolicy_error(&[]), None);
    assert_eq!(ppolicy_error(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
}

#[test]
fn ppolicy_time_before_expiration_is_read_from_the_warning() {
    // SEQUENCE { warning [0] { timeBeforeExpiration [0] 432000 } }
    let v = [0x30, 0x07, 0xa0, 0x05, 0x80, 0x03, 0x06, 0x97, 0x80];
    assert_eq!(ppolicy_time_before_expiration(&v), Some(432_000));
    // A leading zero byte keeps the integer non-negative: 0x80 = 128.
    let v = [0x30, 0x06, 0xa0, 0x04, 0x80, 0x02, 0x00, 0x80];
    assert_eq!(ppolicy_time_before_expiration(&v), Some(128));
    // graceAuthNsRemaining [1], an error only, negative, too long,
    // truncated: no expiry time.
    let grace = [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02];
    assert_eq!(ppolicy_time_before_expiration(&grace), None);
    let error = [0x30, 0x03, 0x81, 0x01, 0x00];
    assert_eq!(ppolicy_time_before_expiration(&error), None);
    let negative = [0x30, 0x05, 0xa0, 0x03, 0x80, 0x01, 0xff];
    assert_eq!(ppolicy_time_before_expiration(&negative), None);
    let long = [
        0x30, 0x0a, 0xa0, 0x08, 0x80, 0x06, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
    ];
    assert_eq!(ppolicy_time_before_expiration(&long), None);
    assert_eq!(ppolicy_time_before_expiration(&v[..5]), None);
    assert_eq!(ppolicy_time_before_expiration(&[]), None);
    // The warning does not hide an error after it (and vice versa).
    let both = [
        0x30, 0x0a, 0xa0, 0x05, 0x80, 0x03, 0x06, 0x97, 0x80, 0x81, 0x01, 0x02,
    ];
    assert_eq!(ppolicy_time_before_expiration(&both), Some(432_000));
    assert_eq!(ppolicy_error(&both), Some(AccountState::MustChangePassword));
}

#[test]
fn ad_password_expiry_is_a_filetime_with_never_and_zero() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let ft = |unix: u64| ((unix + 11_644_473_600) * 10_000_000).to_string();
    assert_eq!(
        ad_expires_in(&ft(1_800_000_000 + 5 * 86400), now),
        Some(Duration::from_secs(5 * 86400))
    );
    // Already past: no time left (the bind says 532 in that case anyway).
    assert_eq!(ad_expires_in(&ft(1_700_000_000), now), Some(Duration::ZERO));
    assert_eq!(ad_expires_in("9223372036854775807", now), None);
    assert_eq!(ad_expires_in("0", now), None);
    assert_eq!(ad_expires_in("-1", now), None);
    assert_eq!(ad_expires_in("soon", now), None);
    // Before 1970: nothing.
    assert_eq!(ad_expires_in("1", now), None);
}

#[test]
fn down_level_logon_names_are_split_only_when_the_template_is_not_a_dn() {
    assert_eq!(nt4_name("{login}", "CORP\\alice"), Some(("CORP", "alice")));
    assert_eq!(
        nt4_name("CORP\\{login}", "CORP\\alice"),
        Some(("CORP", "alice"))
    );
    assert_eq!(nt4_name("{login}", "alice@corp.example"), None);
    assert_eq!(nt4_name("cn={login},dc=x", "CORP\\alice"), None);
    assert_eq!(nt4_name("{login}", "\\alice"), None);
    assert_eq!(nt4_name("{login}", "CORP\\"), None);
    assert_eq!(nt4_name("{login}", "A\\B\\c"), None);
}

/// A direct bind binds only the two name forms the failure limit folds into
/// one login (`limit::canonical_login`): a UPN and `DOMAIN\account`. Active
/// Directory accepts more forms for one account (its display name, canonical
/// name, SID, objectGUID, a servicePrincipalName), each of which would
/// otherwise be a login of its own with its own budget of failed binds, so
/// that a guesser (or someone locking the account at the directory) gets
/// `max_failed_logins` once per spelling.
#[test]
fn direct_bind_names_are_a_upn_or_a_down_level_name_only() {
    for (template, login, name) in [
        ("{login}", "alice@corp.example", "alice@corp.example"),
        ("{login}", "CORP\\alice", "CORP\\alice"),
        ("CORP\\{login}", "alice", "CORP\\alice"),
        ("{login}@corp.example", "alice", "alice@corp.example"),
        // A DN template: the login is one escaped RDN value, one form.
        ("cn={login},dc=x", "Alice Example", "cn=Alice Example,dc=x"),
        ("cn={login},dc=x", "a,dc=y", "cn=a\\,dc\\=y,dc=x"),
    ] {
        assert_eq!(
            direct_bind_name(template, login).as_deref(),
            Some(name),
            "{template} {login}"
        );
    }
    for login in [
        // The display name, the canonical name, a SID, the objectGUID, an
        // SPN, a bare account name, a typed DN.
        "Alice Example",
        "corp.example/Users/Alice Example",
        "corp.example/Users/alice@x",
        "S-1-5-21-1004336348-1177238915-682003330-1105",
        "{01020304-0506-0708-090a-0b0c0d0e0f10}",
        "HTTP/alice-pc.corp.example",
        "alice",
        "cn=Alice Example,dc=corp,dc=example",
    ] {
        assert_eq!(direct_bind_name("{login}", login), None, "{login}");
    }
}

/// Only unescaped spaces around a value are insignificant: a group named
/// `\ HR Admins` (escaped leading space) is not `HR Admins` (review 9).
#[test]
fn escaped_spaces_around_an_rdn_value_are_kept() {
    assert_eq!(
        rdn_value("CN= HR Admins ,OU=x", "cn").as_deref(),
        Some("HR Admins")
    );
    assert_eq!(
        rdn_value("CN=\\ HR Admins,OU=x", "cn").as_deref(),
        Some(" HR Admins")
    );
    assert_eq!(
        rdn_value("CN=HR Admins\\ ,OU=x", "cn").as_deref(),
        Some("HR Admins ")
    );
    assert_eq!(
        rdn_value("CN=HR Admins\\20,OU=x", "cn").as_deref(),
        Some("HR Admins ")
    );
    assert_eq!(rdn_value("CN=\\ ,OU=x", "cn").as_deref(), Some(" "));
    assert_eq!(rdn_value("CN=  ,OU=x", "cn"), None);
}

#[test]
fn a_dn_is_under_a_base_by_whole_rdns() {
    let base = "OU=Groups,DC=corp,DC=test";
    assert!(dn_is_under("CN=HR Admins,OU=Groups,DC=corp,DC=test", base));
    assert!(dn_is_under(
        "cn=HR Admins, ou=groups, dc=CORP, dc=test",
        base
    ));
    assert!(dn_is_under("CN=a,OU=Sub,OU=Groups,DC=corp,DC=test", base));
    assert!(dn_is_under(base, base));
    assert!(!dn_is_under("CN=HR Admins,OU=Lab,DC=corp,DC=test", base));
    assert!(!dn_is_under(
        "CN=HR Admins,OU=xGroups,DC=corp,DC=test",
        base
    ));
    // An escaped comma does not end an RDN: this entry is under the
    // domain's root, not under OU=Groups.
    assert!(!dn_is_under("CN=evil\\,OU=Groups,DC=corp,DC=test", base));
    assert!(!dn_is_under("CN=evil\\2C,OU=Lab,DC=corp,DC=test", base));
    assert!(!dn_is_under("DC=corp,DC=test", base));
    assert!(!dn_is_under("CN=x,OU=Groups,DC=corp,DC=test", ""));
}
