use std::io::Write as _;

use super::explain;
use crate::config::load_str;

const CONFIG: &str = r#"
[session]
secret = "explain-tests-secret-0123456789abcdef"

[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
client_id = "c"
client_secret = "s"
home_realm_domains = ["contoso.example"]
group_names = { "g-hr" = "HR Admins" }

[[route]]
name = "hr"
hosts = ["hr.contoso.example"]
upstream = "http://127.0.0.1:9"
public = ["/static/"]

[route.allow]
groups = ["HR Admins"]
"#;

fn claims(json: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(json.as_bytes()).unwrap();
    f
}

#[test]
fn a_member_of_the_group_is_allowed_step_by_step() {
    let settings = load_str(CONFIG).unwrap();
    let f = claims(r#"{"oid":"u1","tid":"t1","email":"a@contoso.example","groups":["g-hr"]}"#);
    let (out, allowed) = explain(
        &settings,
        "https://hr.contoso.example/pay",
        Some(f.path()),
        None,
    )
    .unwrap();
    assert!(allowed, "{out}");
    assert!(out.contains("route \"hr\""), "{out}");
    assert!(out.contains("ALLOW"), "{out}");
}

#[test]
fn a_user_outside_the_group_is_denied_and_told_why() {
    let settings = load_str(CONFIG).unwrap();
    let f = claims(r#"{"oid":"u2","tid":"t1","groups":["g-other"]}"#);
    let (out, allowed) = explain(
        &settings,
        "https://hr.contoso.example/pay",
        Some(f.path()),
        None,
    )
    .unwrap();
    assert!(!allowed, "{out}");
    assert!(out.contains("DENY"), "{out}");
    assert!(out.contains("groups"), "the failing clause is named: {out}");
}

#[test]
fn encoded_dot_segments_do_not_make_a_protected_path_public() {
    let settings = load_str(CONFIG).unwrap();
    let f = claims(r#"{"oid":"u2","tid":"t1","groups":[]}"#);
    let (out, allowed) = explain(
        &settings,
        "https://hr.contoso.example/static/..%2Fpay",
        Some(f.path()),
        None,
    )
    .unwrap();
    assert!(!allowed, "{out}");
    assert!(!out.contains("Public path"), "{out}");
}

#[test]
fn unknown_hosts_and_bad_urls_are_explained() {
    let settings = load_str(CONFIG).unwrap();
    let (out, allowed) = explain(
        &settings,
        "https://other.example/",
        None,
        Some("a@contoso.example"),
    )
    .unwrap();
    assert!(!allowed);
    assert!(out.contains("no route"), "{out}");
    assert!(explain(&settings, "not a url", None, Some("a@contoso.example")).is_err());
}

/// First hour 7: `--user` against a groups policy does not say "0
/// group(s)" as if the user had none: groups are unknown without
/// `--claims`, and the denial says how to decide it.
#[test]
fn a_user_by_email_has_unknown_groups_and_is_told_to_give_claims() {
    let settings = load_str(CONFIG).unwrap();
    let (out, allowed) = explain(
        &settings,
        "https://hr.contoso.example/pay",
        None,
        Some("a@contoso.example"),
    )
    .unwrap();
    assert!(!allowed, "{out}");
    assert!(!out.contains("0 group(s)"), "{out}");
    assert!(out.contains("groups and app roles unknown"), "{out}");
    assert!(
        out.contains("--user cannot know") && out.contains("--claims FILE"),
        "{out}"
    );
    // With claims, the count is known and no such hint is given.
    let f = claims(r#"{"oid":"u2","tid":"t1","groups":["g-other"]}"#);
    let (out, _) = explain(
        &settings,
        "https://hr.contoso.example/pay",
        Some(f.path()),
        None,
    )
    .unwrap();
    assert!(
        out.contains("1 group(s)") && !out.contains("cannot know"),
        "{out}"
    );
}
