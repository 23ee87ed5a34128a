use proptest::prelude::*;

use super::*;

#[test]
fn filter_metacharacters_are_escaped() {
    assert_eq!(filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
    assert_eq!(filter_value("a\\b"), "a\\5cb");
    assert_eq!(filter_value("a\0b"), "a\\00b");
    assert_eq!(
        filter_value("alice@corp.contoso.com"),
        "alice@corp.contoso.com"
    );
}

#[test]
fn non_ascii_is_escaped_as_utf8_bytes() {
    assert_eq!(filter_value("é"), "\\c3\\a9");
    assert_eq!(filter_value("\n\t"), "\\0a\\09");
}

#[test]
fn an_injection_stays_inside_the_template_value() {
    let f = fill(
        "(&(objectClass=user)(userPrincipalName={login}))",
        "{login}",
        "x)(|(objectClass=*",
        filter_value,
    );
    assert_eq!(
        f,
        "(&(objectClass=user)(userPrincipalName=x\\29\\28|\\28objectClass=\\2a))"
    );
}

#[test]
fn a_login_that_names_the_placeholder_is_not_substituted_twice() {
    let f = fill("(uid={login})", "{login}", "{login}", filter_value);
    assert_eq!(f, "(uid={login})");
}

#[test]
fn dn_specials_are_escaped() {
    assert_eq!(dn_value("Smith, John"), "Smith\\, John");
    assert_eq!(dn_value("a+b=c"), "a\\+b\\=c");
    assert_eq!(dn_value("#x"), "\\#x");
    assert_eq!(dn_value(" x "), "\\ x\\ ");
    assert_eq!(dn_value("a#b"), "a#b");
    assert_eq!(dn_value("<\";>\\"), "\\<\\\"\\;\\>\\\\");
    assert_eq!(dn_value("\0é"), "\\00\\c3\\a9");
    assert_eq!(dn_value(""), "");
    assert_eq!(dn_value(" "), "\\ ");
}

/// Undoes `filter_value` (a `\xx` is a byte, anything else itself).
fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever is typed, the escaped value holds no filter metacharacter
    /// other than the `\` of an escape, only printable ASCII, and decodes
    /// back to exactly what was typed.
    #[test]
    fn filter_escaping_is_total_and_reversible(s in any::<String>()) {
        let e = filter_value(&s);
        prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        prop_assert!(!e.contains(['*', '(', ')', '\0']));
        prop_assert_eq!(unescape(&e), Some(s.into_bytes()));
    }

    /// Differential: the value a server decodes from ours is the one it
    /// decodes from ldap3's own escaper (which escapes only the five
    /// required characters).
    #[test]
    fn filter_escaping_means_what_ldap3_escaping_means(s in any::<String>()) {
        prop_assert_eq!(unescape(&filter_value(&s)), unescape(&ldap3::ldap_escape(s.as_str())));
    }

    #[test]
    fn filter_escaping_of_hostile_ascii(s in "[*()\\\\\\x00a-z=&|!~<> ]{0,40}") {
        let e = filter_value(&s);
        prop_assert!(!e.contains(['*', '(', ')', '\0']));
        prop_assert_eq!(unescape(&e), Some(s.into_bytes()));
    }

    /// No escaped DN value can end its RDN or start another: every special
    /// character is preceded by a backslash that is itself not escaped.
    #[test]
    fn dn_escaping_leaves_no_bare_special(s in any::<String>()) {
        let e = dn_value(&s);
        prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        let b = e.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' {
                prop_assert!(i + 1 < b.len());
                i += if b[i + 1].is_ascii_hexdigit() && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) && !matches!(b[i + 1], b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=' | b'#' | b' ') { 3 } else { 2 };
            } else {
                prop_assert!(!matches!(b[i], b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'='), "bare {:?} in {:?}", b[i] as char, e);
                i += 1;
            }
        }
        prop_assert!(!e.starts_with('#') && !e.starts_with(' '));
        prop_assert!(!e.ends_with(' ') || e.ends_with("\\ "));
    }
}
