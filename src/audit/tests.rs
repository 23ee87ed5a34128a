use super::*;

fn client() -> IpAddr {
    "192.0.2.7".parse().unwrap()
}

#[test]
fn every_line_has_time_schema_and_event_then_its_fields() {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let l = line(
        &Event::SignIn {
            route: "hr",
            connection: "contoso",
            user_id: "u-1",
            client: client(),
        },
        at,
    );
    assert_eq!(
        l,
        r#"{"time":"2027-01-15T08:00:00Z","schema":1,"event":"sign_in","client_address":"192.0.2.7","connection":"contoso","route":"hr","user_id":"u-1"}"#
    );
    let l: Value = serde_json::from_str(&line(
        &Event::SessionsRevoked {
            by: "sid",
            user_id: None,
            connection: Some("partner"),
            ended: 2,
            client: client(),
        },
        at,
    ))
    .unwrap();
    assert_eq!(l["event"], "sessions_revoked");
    assert_eq!(l["ended"], 2);
    assert!(l.get("user_id").is_none(), "absent, not null: {l}");
    assert_eq!(l["connection"], "partner", "the scope of the revocation");
    // A provider's `sub` is in the user id: C1 controls, DEL, line
    // separators and bidirectional overrides are escaped (review 10), and
    // the line still reads back as the same text.
    let hostile = "partner:x\u{9b}31m\u{202e}\u{7f}y\u{2028}z";
    let text = line(
        &Event::SignIn {
            route: "hr",
            connection: "partner",
            user_id: hostile,
            client: client(),
        },
        at,
    );
    assert!(
        text.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
        "{text:?}"
    );
    let l: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(l["user_id"], hostile);
}

/// An `admin_refused` line is written before any token is checked: its
/// path and method, which the caller chooses, are cut (review 14: a 64 KiB
/// path made a 64 KiB audit line).
#[test]
fn a_refused_admin_request_cannot_write_a_long_line() {
    let path = format!("/x{}", "\u{e9}".repeat(40_000));
    let method = "M".repeat(10_000);
    let text = line(
        &Event::AdminRefused {
            method: &method,
            path: &path,
            reason: "unauthorized",
            client: client(),
        },
        std::time::UNIX_EPOCH,
    );
    assert!(text.len() < 1024, "{} bytes", text.len());
    let l: Value = serde_json::from_str(&text).unwrap();
    let logged = l["path"].as_str().unwrap();
    assert!(
        logged.starts_with("/x\u{e9}") && logged.ends_with("..."),
        "{logged}"
    );
    assert!(l["method"].as_str().unwrap().len() <= 35);
    // Short values are written as they are.
    let l: Value = serde_json::from_str(&line(
        &Event::AdminRefused {
            method: "GET",
            path: "/metrics",
            reason: "unauthorized",
            client: client(),
        },
        std::time::UNIX_EPOCH,
    ))
    .unwrap();
    assert_eq!(
        (l["method"].as_str(), l["path"].as_str()),
        (Some("GET"), Some("/metrics"))
    );
}

/// The names are the documented schema: docs/operations.md lists each
/// event with its fields, so a change here must change the table too.
#[test]
fn the_documented_table_lists_every_event_and_field() {
    let doc = include_str!("../../docs/operations.md");
    let ip = client();
    let events = [
        Event::SignIn {
            route: "r",
            connection: "c",
            user_id: "u",
            client: ip,
        },
        Event::SignInFailed {
            route: "r",
            connection: "c",
            reason: "x",
            client: ip,
        },
        Event::SignOut {
            route: "r",
            connection: "c",
            user_id: "u",
            client: ip,
        },
        Event::BackchannelLogout {
            connection: "c",
            by: "sid",
            ended: 1,
        },
        Event::FrontchannelLogout {
            connection: "c",
            ended: 1,
        },
        Event::SessionsRevoked {
            by: "user_id",
            user_id: Some("u"),
            connection: None,
            ended: 1,
            client: ip,
        },
        Event::SessionsListed {
            user_id: Some("u"),
            connection: Some("c"),
            count: 1,
            client: ip,
        },
        Event::AdminRefused {
            method: "GET",
            path: "/metrics",
            reason: "x",
            client: ip,
        },
    ];
    for e in &events {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", e.name())))
            .unwrap_or_else(|| panic!("docs/operations.md has no row for {}", e.name()));
        for field in e.fields().keys() {
            assert!(
                row.contains(&format!("`{field}`")),
                "{} lacks `{field}`: {row}",
                e.name()
            );
        }
    }
}

#[test]
fn a_file_sink_appends_lines_and_off_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, "earlier\n").unwrap();
    let audit = Audit::open(&AuditSink::File(path.clone()));
    let e = Event::FrontchannelLogout {
        connection: "c",
        ended: 0,
    };
    audit.record(e.clone());
    audit.record(e.clone());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "earlier");
    assert!(lines[2].contains(r#""event":"frontchannel_logout""#));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fresh = dir.path().join("new.log");
        Audit::open(&AuditSink::File(fresh.clone())).record(e.clone());
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "not readable by others: {mode:o}");
    }
    let memory = Audit::in_memory();
    memory.record(e);
    assert_eq!(memory.lines().len(), 1);
    assert!(Audit::open(&AuditSink::Off).lines().is_empty());
}
