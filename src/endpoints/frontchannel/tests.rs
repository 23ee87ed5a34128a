use super::*;
use crate::config::load_str;

#[test]
fn frame_ancestors_names_the_providers_origins_instead_of_none() {
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
issuer = "https://idp.partner.example:8443/realms/x"
client_id = "p"

[[route]]
name = "hr"
hosts = ["hr.contoso.com"]
upstream = "http://127.0.0.1:1"
"#,
    )
    .expect("valid config");
    let c: &ConnectionSettings = s.connection("contoso").unwrap();
    let p: &ConnectionSettings = s.connection("partner").unwrap();
    let one = csp(&[c]);
    assert!(
        one.contains("frame-ancestors https://login.microsoftonline.com;"),
        "{one}"
    );
    let both = csp(&[c, p]);
    assert!(
        both.contains(
            "frame-ancestors https://login.microsoftonline.com https://idp.partner.example:8443;"
        ),
        "{both}"
    );
    // Nothing matched: the page stays unframeable.
    assert!(csp(&[]).contains("frame-ancestors 'none'"));
    // Everything else of the page CSP is kept.
    assert!(both.starts_with("default-src 'none'"));
    assert_eq!(path_for("contoso"), "/.auth/logout/frontchannel/contoso");
}
