use super::*;
use crate::config::{load_str, Settings};

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
home_realm_domains = ["contoso.com", "Contoso.CO.UK"]

[[connection]]
name = "books"
type = "oidc"
issuer = "https://idp.books.example"
client_id = "b"
home_realm_domains = ["bücher.example"]

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
"#,
    )
    .expect("valid config")
}

fn pick(s: &Settings, email: &str) -> Option<String> {
    connection_for(email, s.connections.iter().map(|c| &**c)).map(|c| c.name.clone())
}

#[test]
fn domain_is_lowercased() {
    assert_eq!(
        domain_of("Alice@CONTOSO.Com").as_deref(),
        Some("contoso.com")
    );
}

#[test]
fn trailing_dot_is_dropped() {
    assert_eq!(domain_of("a@contoso.com.").as_deref(), Some("contoso.com"));
}

#[test]
fn unicode_domains_become_punycode() {
    assert_eq!(
        domain_of("hans@bücher.example").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(
        domain_of("hans@BÜCHER.example").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(
        domain_of("hans@xn--bcher-kva.example").as_deref(),
        Some("xn--bcher-kva.example")
    );
}

#[test]
fn the_domain_follows_the_last_at_sign() {
    assert_eq!(
        domain_of("\"a@b\"@contoso.com").as_deref(),
        Some("contoso.com")
    );
    assert_eq!(
        domain_of("a@evil.com@contoso.com").as_deref(),
        Some("contoso.com")
    );
}

#[test]
fn non_emails_have_no_domain() {
    for bad in [
        "",
        "contoso.com",
        "@contoso.com",
        "alice@",
        "alice@.",
        "alice@contoso..com",
        "alice@.contoso.com",
        "alice@con toso.com",
        "alice@contoso.com\n",
        "alice@contoso.com\r\nX: y",
        "alice@contoso.com/evil",
        "alice@[127.0.0.1]",
        "ali\u{0}ce@contoso.com",
    ] {
        assert_eq!(domain_of(bad), None, "{bad:?}");
    }
}

#[test]
fn overlong_input_is_not_an_email() {
    let long = format!("{}@contoso.com", "a".repeat(400));
    assert_eq!(domain_of(&long), None);
}

#[test]
fn home_realm_domains_pick_the_connection() {
    let s = settings();
    assert_eq!(pick(&s, "alice@contoso.com").as_deref(), Some("contoso"));
    assert_eq!(pick(&s, "ALICE@CONTOSO.CO.UK").as_deref(), Some("contoso"));
    assert_eq!(pick(&s, "alice@contoso.com.").as_deref(), Some("contoso"));
    assert_eq!(pick(&s, "hans@bücher.example").as_deref(), Some("books"));
    assert_eq!(
        pick(&s, "hans@xn--bcher-kva.example").as_deref(),
        Some("books")
    );
}

#[test]
fn subdomains_and_lookalikes_do_not_match() {
    let s = settings();
    for email in [
        "a@eu.contoso.com",
        "a@contoso.com.evil.example",
        "a@evilcontoso.com",
        "a@contoso.co",
        "a@contoso",
        "contoso.com",
        "a@b@",
    ] {
        assert_eq!(pick(&s, email), None, "{email}");
    }
}

#[test]
fn only_allowed_connections_are_considered() {
    let s = settings();
    let only_books = s
        .connections
        .iter()
        .filter(|c| c.name == "books")
        .map(|c| &**c);
    assert!(connection_for("alice@contoso.com", only_books).is_none());
}
