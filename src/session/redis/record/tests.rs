use proptest::prelude::*;

use super::*;
use crate::session::model::SESSION_VERSION;

fn entra() -> Session {
    Session {
        derived: Default::default(),
        version: SESSION_VERSION,
        user_id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
        subject: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ".into(),
        tenant_id: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
        connection: "contoso".into(),
        issuer: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
            .into(),
        sid: Some("00a1b2c3-d4e5-f607-1829-3a4b5c6d7e8f".into()),
        email: Some("alice.smith@contoso.example".into()),
        email_trust: EmailTrust::EntraDomainVerified,
        name: Some("Alice Smith".into()),
        preferred_username: Some("alice.smith@contoso.example".into()),
        groups: (0..20)
            .map(|i| format!("{i:08x}-86f1-41af-91ab-2d7cd011db47").into())
            .collect(),
        roles: vec!["Reader".into(), "Task.Write".into()],
        saml_name_id: None,
        claims: None,
        id_token: Some(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU".into(),
        ),
        access_token: None,
        refresh_token: Some("0.AXEAv4j5cvGGr0GRqy180BHbR-example-refresh_token".into()),
        tokens_expire_at: Some(1_800_003_600),
        created_at: 1_800_000_000,
        expires_at: 1_800_028_800,
        client_addr: Some(std::net::IpAddr::from([10, 0, 0, 1])),
    }
}

/// Every optional part present, strings no shortcut applies to, a
/// non-Entra user id.
fn odd() -> Session {
    let mut claims = serde_json::Map::new();
    claims.insert("department".into(), serde_json::json!("Ops"));
    claims.insert(
        "nested".into(),
        serde_json::json!({"a": [1, 2.5, null, true]}),
    );
    Session {
        derived: Default::default(),
        version: SESSION_VERSION,
        user_id: "okta:00u1abcd".into(),
        subject: "00u1abcd".into(),
        tenant_id: Some("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0".into()),
        connection: "okta".into(),
        issuer: "https://okta.example".into(),
        sid: Some(String::new()),
        email: Some("bob@example.org".into()),
        email_trust: EmailTrust::TrustedConnection,
        name: Some("Zoë Ünïcødé 🦀".into()),
        preferred_username: Some("bob".into()),
        groups: vec![
            "".into(),
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
            "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}".into(),
            "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaR".into(), // not canonical
            "AAAAAAAAAAAAAAAA+/==".into(),
        ],
        roles: vec!["admin".into()],
        saml_name_id: Some(Box::new(SamlNameId {
            value: "bob@example.org".into(),
            format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into()),
            name_qualifier: None,
            sp_name_qualifier: Some("https://sp.example".into()),
        })),
        claims: Some(claims),
        id_token: Some(String::new()),
        access_token: Some("a..b.".into()),
        refresh_token: Some("not base64 at all, with spaces.and.dots".into()),
        tokens_expire_at: Some(u64::MAX),
        created_at: 0,
        expires_at: u64::MAX,
        client_addr: Some("2001:db8::1".parse().unwrap()),
    }
}

fn minimal() -> Session {
    Session {
        derived: Default::default(),
        version: 0,
        user_id: String::new(),
        subject: String::new(),
        tenant_id: None,
        connection: String::new(),
        issuer: String::new(),
        sid: None,
        email: None,
        email_trust: EmailTrust::Unverified,
        name: None,
        preferred_username: None,
        groups: vec![],
        roles: vec![],
        saml_name_id: None,
        claims: None,
        id_token: None,
        access_token: None,
        refresh_token: None,
        tokens_expire_at: None,
        created_at: 0,
        expires_at: 0,
        client_addr: None,
    }
}

#[test]
fn compact_records_round_trip_exactly() {
    for s in [entra(), odd(), minimal()] {
        let raw = encode(&s);
        assert_eq!(raw[0], COMPACT_V1);
        assert_eq!(decode(&raw), Ok(s));
    }
    // A username that is not the email, with no email at all.
    let mut s = entra();
    s.email = None;
    assert_eq!(decode(&encode(&s)), Ok(s));
    // A user id that merely looks like `<connection>:<sub>` of another split.
    let mut s = odd();
    s.user_id = "okta:00u1abcdX".into();
    assert_eq!(decode(&encode(&s)), Ok(s));
}

#[test]
fn json_records_of_earlier_builds_are_still_read() {
    for s in [entra(), odd(), minimal()] {
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(json[0], b'{');
        assert_eq!(decode(&json), Ok(s));
    }
    assert!(matches!(decode(b"{\"user_id\":"), Err(Unreadable::Json(_))));
}

#[test]
fn an_entra_record_is_less_than_half_its_json() {
    let s = entra();
    let (compact, json) = (encode(&s).len(), serde_json::to_vec(&s).unwrap().len());
    assert!(compact * 2 < json, "compact {compact} bytes, JSON {json}");
}

#[test]
fn unknown_formats_and_empty_records_are_not_sessions() {
    let mut raw = encode(&entra());
    assert_eq!(decode(&[]), Err(Unreadable::Empty));
    for first in [0x00, 0xC0, 0xC2, b' ', b'[', 0xFF] {
        raw[0] = first;
        assert_eq!(decode(&raw), Err(Unreadable::UnknownFormat(first)));
    }
}

/// A record cut anywhere is refused: never a session with fewer groups,
/// roles or tokens than were written.
#[test]
fn every_truncation_is_refused() {
    for s in [entra(), odd(), minimal()] {
        let raw = encode(&s);
        for len in 1..raw.len() {
            assert_eq!(
                decode(&raw[..len]),
                Err(Unreadable::Damaged),
                "cut at {len}"
            );
        }
    }
}

#[test]
fn trailing_bytes_unknown_flags_and_bad_values_are_refused() {
    let raw = encode(&entra());
    let mut longer = raw.clone();
    longer.push(0);
    assert_eq!(decode(&longer), Err(Unreadable::Damaged));

    // Header: tag, version, trust, flags (two bytes here), ...
    let header = |version: &[u8], trust: u8, flags: &[u8]| {
        let mut r = vec![COMPACT_V1];
        r.extend_from_slice(version);
        r.push(trust);
        r.extend_from_slice(flags);
        r.extend_from_slice(&[0, 0]); // created, expires
        r.extend_from_slice(&[0, 0, 0, 0]); // user id, subject, connection, issuer
        r.extend_from_slice(&[0, 0]); // no groups, no roles
        r
    };
    assert!(decode(&header(&[2], 0, &[0])).is_ok());
    assert_eq!(decode(&header(&[2], 4, &[0])), Err(Unreadable::Damaged));
    assert_eq!(
        decode(&header(&[2], 0, &[0x80, 0x80, 0x01])),
        Err(Unreadable::Damaged)
    ); // bit 14
       // A version past u32, a non-minimal varint, an overlong varint.
    assert_eq!(
        decode(&header(&[0x80, 0x80, 0x80, 0x80, 0x10], 0, &[0])),
        Err(Unreadable::Damaged)
    );
    assert_eq!(
        decode(&header(&[0x82, 0x00], 0, &[0])),
        Err(Unreadable::Damaged)
    );
    assert_eq!(
        decode(&header(&[0xff; 11], 0, &[0])),
        Err(Unreadable::Damaged)
    );
    // Both username flags at once.
    let both = (FLAG_USERNAME | FLAG_USERNAME_IS_EMAIL | FLAG_EMAIL) as u8;
    assert_eq!(decode(&header(&[2], 0, &[both])), Err(Unreadable::Damaged));
}

fn varint(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    put_varint(&mut v, n);
    v
}

#[test]
fn oversized_lengths_and_counts_are_refused_without_allocating_them() {
    let start = |rest: &[&[u8]]| {
        let mut r = vec![COMPACT_V1, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        for part in rest {
            r.extend_from_slice(part);
        }
        r
    };
    // A group count far past the record.
    for n in [1, 3, u64::from(u32::MAX), u64::MAX] {
        assert_eq!(
            decode(&start(&[&varint(n), &[0]])),
            Err(Unreadable::Damaged),
            "{n}"
        );
    }
    // A string length past the end, text and base64 kinds.
    for head in [5 << 2, !3, (1 << 40) << 2 | KIND_BASE64] {
        assert_eq!(
            decode(&start(&[&[1], &varint(head), b"abc", &[0]])),
            Err(Unreadable::Damaged)
        );
    }
    // A GUID of the wrong length, kind 3, text that is not UTF-8.
    assert_eq!(
        decode(&start(&[
            &[1],
            &varint(15 << 2 | KIND_GUID),
            &[0; 15],
            &[0]
        ])),
        Err(Unreadable::Damaged)
    );
    assert_eq!(
        decode(&start(&[&[1], &varint(1 << 2 | 3), &[0], &[0]])),
        Err(Unreadable::Damaged)
    );
    assert_eq!(
        decode(&start(&[&[1], &varint(2 << 2), &[0xff, 0xfe], &[0]])),
        Err(Unreadable::Damaged)
    );
    // The good form of the same record decodes.
    assert!(decode(&start(&[
        &[1],
        &varint(16 << 2 | KIND_GUID),
        &[7; 16],
        &[0]
    ]))
    .is_ok());
}

/// No input panics (every byte of real records changed in turn, and
/// pseudo-random records after a valid header).
#[test]
fn damaged_records_never_panic() {
    for s in [entra(), odd()] {
        let raw = encode(&s);
        for i in 1..raw.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut r = raw.clone();
                r[i] ^= flip;
                let _ = decode(&r);
            }
        }
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        let mut r = vec![COMPACT_V1];
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        for k in 0..len {
            r.push((x.rotate_left(k as u32 * 5) & 0xff) as u8);
        }
        let _ = decode(&r);
    }
}

/// Text that may or may not take a shortcut: GUID-like in either case,
/// base64url-like, dotted, anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-fA-F]{12}",
        "[A-Za-z0-9_-]{0,60}",
        "[A-Za-z0-9_.=+/:-]{0,60}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn any_session_comes_back_exactly(
        user_id in text(),
        subject in text(),
        connection in "[a-z:]{0,8}",
        opt in proptest::collection::vec(proptest::option::of(text()), 9),
        groups in proptest::collection::vec(text(), 0..30),
        roles in proptest::collection::vec(text(), 0..3),
        times in proptest::collection::vec(any::<u64>(), 3),
        trust in 0u8..4,
        v6 in any::<bool>(),
    ) {
        let mut s = minimal();
        s.version = times[0] as u32;
        s.user_id = user_id;
        s.subject = subject;
        s.connection = connection;
        s.issuer = opt[0].clone().unwrap_or_default();
        s.tenant_id = opt[1].clone();
        s.sid = opt[2].clone();
        s.email = opt[3].clone();
        s.name = opt[4].clone();
        s.preferred_username = opt[5].clone().or_else(|| s.email.clone());
        s.id_token = opt[6].clone();
        s.access_token = opt[7].clone();
        s.refresh_token = opt[8].clone();
        s.groups = groups.into_iter().map(Into::into).collect();
        s.roles = roles.into_iter().map(Into::into).collect();
        s.email_trust = trust_of(trust).unwrap();
        s.created_at = times[1];
        s.expires_at = times[2];
        s.tokens_expire_at = times[0].checked_sub(7);
        s.client_addr = Some(if v6 { "::ffff:1.2.3.4".parse().unwrap() } else { "1.2.3.4".parse().unwrap() });
        prop_assert_eq!(decode(&encode(&s)), Ok(s));
    }

    #[test]
    fn any_bytes_decode_or_are_refused_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut r = vec![COMPACT_V1];
        r.extend_from_slice(&raw);
        if let Ok(s) = decode(&r) {
            // Whatever decodes is a session that encodes back to a record
            // that decodes to the same session.
            prop_assert_eq!(decode(&encode(&s)), Ok(s));
        }
    }
}
