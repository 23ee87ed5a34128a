use super::*;

fn norm(e: &str) -> Option<String> {
    parse(e).map(|p| p.as_str().to_string())
}

#[test]
fn plain_addresses_are_normalized_for_comparison() {
    assert_eq!(
        norm("alice@contoso.com").as_deref(),
        Some("alice@contoso.com")
    );
    assert_eq!(
        norm("Alice@CONTOSO.Com").as_deref(),
        Some("alice@contoso.com")
    );
    assert_eq!(
        norm("first.last+tag@sub.contoso.co.uk").as_deref(),
        Some("first.last+tag@sub.contoso.co.uk")
    );
    assert_eq!(
        norm("o'brien@x-y.example").as_deref(),
        Some("o'brien@x-y.example")
    );
    let p = parse("Bob@Contoso.com").unwrap();
    assert_eq!(p.domain(), "contoso.com");
    assert!(is_plain("Bob@Contoso.com"));
}

#[test]
fn internationalized_hosts_compare_in_a_label_form() {
    assert_eq!(
        norm("anna@bücher.example").as_deref(),
        Some("anna@xn--bcher-kva.example")
    );
    assert_eq!(
        norm("anna@BÜCHER.example").as_deref(),
        Some("anna@xn--bcher-kva.example")
    );
    assert_eq!(
        norm("anna@xn--bcher-kva.example").as_deref(),
        Some("anna@xn--bcher-kva.example")
    );
    assert!(is_plain("anna@bücher.example"));
    assert!(is_plain("anna@xn--bcher-kva.example"));
}

#[test]
fn the_three_bypasses_of_issue_17_are_not_plain() {
    for e in [
        "mallory@evil.example@contoso.com",
        "mallory@contoso.com.",
        "\"mallory@contoso.com \"",
    ] {
        assert_eq!(parse(e), None, "{e:?}");
        assert!(!is_plain(e), "{e:?}");
    }
}

#[test]
fn hostile_forms_are_not_plain() {
    let long_label = format!("a@{}.com", "x".repeat(64));
    let long_local = format!("{}@contoso.com", "x".repeat(65));
    let long_host = format!("a@{}com", "abcdefghi.".repeat(26));
    let cases: Vec<&str> = vec![
        "a@b@c",
        "<a@contoso.com>",
        "Alice <a@contoso.com>",
        "a@contoso.com,b@x.example",
        "a@contoso.com;b@x.example",
        "a@contoso.com b@x.example",
        "a@[1.2.3.4]",
        "a@[IPv6:::1]",
        "a@1.2.3.4",
        "a@contoso..com",
        "a@.contoso.com",
        "a@-contoso.com",
        "a@contoso-.com",
        "a@contoso.com-",
        "@contoso.com",
        "a@",
        "@",
        "",
        "a",
        "a@contoso.com\0",
        "a\0@contoso.com",
        "a@contoso.com\r\n",
        "a@contoso.com\n",
        "a@contoso\r.com",
        "a\t@contoso.com",
        "a@contoso.com\t",
        " a@contoso.com",
        "a@contoso.com ",
        "a @contoso.com",
        "a@contoso .com",
        "\"a\"@contoso.com",
        "\"a b\"@contoso.com",
        "a\\@b@contoso.com",
        "a.@contoso.com",
        ".a@contoso.com",
        "a..b@contoso.com",
        "a(comment)@contoso.com",
        "a@contoso.com(comment)",
        "a@contoso_x.com",
        "a@contoso.com/",
        "a@contoso.com:443",
        "a@contoso.com%00",
        // Unicode dots and other UTS #46 mappings of "contoso.com".
        "a@contoso\u{3002}com",
        "a@contoso\u{FF0E}com",
        "a@contoso\u{FF61}com",
        "a@\u{FF43}ontoso.com",
        "a@contoso.com\u{3002}",
        // Unicode look-alikes of `@` and spaces.
        "a\u{FF20}contoso.com",
        "a@contoso.com\u{00A0}",
        "a\u{200B}@contoso.com",
        "a@contoso\u{200B}.com",
        "a@contoso.com\u{2028}",
        // Non-ASCII local part (RFC 6531) is not a plain addr-spec here.
        "jörg@contoso.com",
        // Undecodable A-label.
        "a@xn--zz.example",
        "a@XN--ZZ.example",
        &long_label,
        &long_local,
        &long_host,
    ];
    for e in cases {
        assert_eq!(parse(e), None, "{e:?} parsed");
        assert!(!is_plain(e), "{e:?} is_plain");
    }
}

#[test]
fn is_plain_agrees_with_parse() {
    for e in [
        "alice@contoso.com",
        "A@B.C",
        "a@b",
        "a@b.1",
        "a@1b.com",
        "x@xn--bcher-kva.example",
        "a@b@c",
        "a@xn--zz.example",
        // Mixed case of the A-label prefix: the same answer as `parse`.
        "x@Xn--bcher-kva.example",
        "x@xN--bcher-kva.example",
        "a@Xn--zz.example",
        "a@sub.XN--ZZ.example",
        "a@contoso.com.",
        "a!#$%&'*+-/=?^_`{|}~@x.example",
    ] {
        assert_eq!(is_plain(e), parse(e).is_some(), "{e:?}");
    }
}

#[test]
fn a_username_names_a_domain_wherever_a_lenient_reader_finds_it() {
    let owned: std::collections::HashSet<String> = ["contoso.com", "xn--bcher-kva.example"]
        .into_iter()
        .map(String::from)
        .collect();
    for name in [
        "alice@contoso.com",
        "ALICE@CONTOSO.COM",
        "alice@contoso.com.",
        "alice@ contoso.com",
        "alice@contoso.com>",
        "alice@contoso.com; x",
        "mallory@evil.example@contoso.com",
        "alice@contoso.com@evil.example",
        "contoso.com\\alice",
        "CONTOSO.COM\\alice",
        // Full-width `＠` and letters, the ideographic full stop.
        "alice＠ｃｏｎｔｏｓｏ.com",
        "alice@contoso。com",
        "alice@contoso．com",
        "x@bücher.example",
        "x@BÜCHER.example",
        "x@bu\u{308}cher.example",
        "alice@con\u{ad}toso.com",
        "alice@con\u{200b}toso.com",
        // What ASCII email regexes extract, and the NetBIOS down-level form.
        "alice@contoso.comé",
        "alice@contoso.com²",
        "alice@contoso.comа",
        "alice@contoso.com．evil",
        "alice@contoso.com。evil",
        "CONTOSO\\ceo",
        "Contoso\\ceo",
    ] {
        assert!(names_any_domain(name, &owned), "{name:?}");
    }
    for name in [
        "alice",
        "alice@partner.example",
        "alice@contoso.community",
        "alice@mail.contoso.com.evil",
        "alice_contoso.com#EXT#@partner.onmicrosoft.com",
        "PARTNER\\alice",
        "CONTOSOX\\alice",
        "alice@",
        "@",
        "",
    ] {
        assert!(!names_any_domain(name, &owned), "{name:?}");
    }
    assert!(!names_any_domain("alice@contoso.com", &Default::default()));
}
