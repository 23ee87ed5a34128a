use proptest::prelude::*;

use super::*;

fn round_trip(tokens: [Option<&str>; TOKENS]) -> [Option<String>; TOKENS] {
    let packed = pack_tokens(tokens);
    unpack_tokens(packed.as_deref()).expect("what pack_tokens made unpacks")
}

#[test]
fn no_token_costs_no_allocation() {
    assert!(pack_tokens([None, None, None]).is_none());
    assert_eq!(unpack_tokens(None), Some([None, None, None]));
}

#[test]
fn jwts_and_entra_refresh_tokens_come_back_exactly_and_a_quarter_smaller() {
    let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFsaWNlIn0.c2lnbmF0dXJlLWJ5dGVzLXNpZ25hdHVyZS1ieXRlcw";
    let refresh = format!("0.AXEA{}", "Zm9vYmFyYmF6cXV4".repeat(90));
    let back = round_trip([Some(jwt), None, Some(&refresh)]);
    assert_eq!(back[0].as_deref(), Some(jwt));
    assert_eq!(back[1], None);
    assert_eq!(back[2].as_deref(), Some(refresh.as_str()));
    let packed = pack_tokens([None, None, Some(&refresh)]).expect("one token");
    assert!(
        packed.len() * 100 <= refresh.len() * 76,
        "{} bytes for {} characters",
        packed.len(),
        refresh.len()
    );
}

#[test]
fn text_that_is_not_canonical_base64_is_kept_as_it_is() {
    // Padding, non-zero trailing bits, another alphabet, empty segments,
    // a length no base64 has, non-ASCII.
    for t in [
        "YQ==",
        "YR",
        "a+b/",
        "a..b",
        ".",
        "",
        "abcde",
        "x.y.z",
        "ünïcödé.QUJD",
        "0",
    ] {
        assert_eq!(
            round_trip([Some(t), Some(t), Some(t)])[1].as_deref(),
            Some(t)
        );
    }
}

#[test]
fn bytes_it_did_not_make_are_refused_not_misread() {
    let good = pack_tokens([Some("QUJD.ZGVm"), None, None]).expect("packed");
    for cut in 0..good.len() {
        assert_eq!(unpack_tokens(Some(&good[..cut])), None, "cut at {cut}");
    }
    let mut extra = good.to_vec();
    extra.push(0);
    assert_eq!(unpack_tokens(Some(&extra)), None);
    assert_eq!(unpack_tokens(Some(&[2, 0, 0])), None);
    // A raw segment that is not UTF-8.
    assert_eq!(unpack_tokens(Some(&[1, 1, 2, 0xff, 0, 0])), None);
    // A varint longer than 64 bits.
    assert_eq!(
        unpack_tokens(Some(&[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])),
        None
    );
}

proptest! {
    #[test]
    fn any_text_comes_back_exactly(
        a in proptest::option::of("[A-Za-z0-9_.=+/-]{0,80}"),
        b in proptest::option::of(any::<String>()),
        c in proptest::option::of("[A-Za-z0-9_-]{0,40}(\\.[A-Za-z0-9_-]{0,40}){0,3}"),
    ) {
        let back = round_trip([a.as_deref(), b.as_deref(), c.as_deref()]);
        prop_assert_eq!(back, [a, b, c]);
    }
}
