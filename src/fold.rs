//! Text as lenient comparers read it, for the checks that must not be
//! fooled by a spelling another program takes for the same text: route
//! prefixes as case-insensitive or Unicode-normalizing apps match them
//! (`router::loose`), and login names as Active Directory compares them
//! (`ldap::limit::canonical_login`).
//!
//! [`fold`]: Unicode NFKD (compatibility forms such as full-width `ａ` and
//! `︰` become `a` and `..`), without marks (accents, however many are
//! stacked: AD, and `localeCompare` at base sensitivity, ignore them; `İ`
//! loses its dot) and without default-ignorable code points (soft hyphen,
//! zero-width space: invisible, and given no weight by collation), then
//! case-folded by the uppercase mapping first (so `ı` and `ſ` read as `i`
//! and `s`, as .NET's and Java's ignore-case comparisons have them) and
//! `ß`/`ẞ` as `ss` (Python's `casefold`, AD).

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup};
use icu_properties::{CodePointMapData, CodePointSetData};

/// See the module docs.
pub fn fold(text: &str) -> String {
    let nfkd = icu_normalizer::DecomposingNormalizerBorrowed::new_nfkd().normalize(text);
    let category = CodePointMapData::<GeneralCategory>::new();
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let mut out = String::with_capacity(nfkd.len());
    for c in nfkd.chars() {
        if GeneralCategoryGroup::Mark.contains(category.get(c)) || ignorable.contains(c) {
            continue;
        }
        for upper in c.to_uppercase() {
            for lower in upper.to_lowercase() {
                match lower {
                    'ß' => out.push_str("ss"),
                    l => out.push(l),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn spellings_lenient_comparers_take_for_one_text_fold_alike() {
        for (text, folded) in [
            ("/Admin", "/admin"),
            ("/\u{ff21}dmin", "/admin"),
            ("/adm\u{130}n", "/admin"),
            ("/adm\u{131}n", "/admin"),
            ("/\u{17f}tatic", "/static"),
            ("/stra\u{1e9e}e", "/strasse"),
            ("/stra\u{df}e", "/strasse"),
            ("/ad\u{ad}min", "/admin"),
            ("/ad\u{200b}min", "/admin"),
            ("/adm\u{ed}n", "/admin"),
            ("/a\u{301}\u{301}dmin", "/admin"),
            ("/x/\u{fe30}/y", "/x/../y"),
            ("Bj\u{f6}rn", "bjorn"),
        ] {
            assert_eq!(fold(text), folded, "{text:?}");
        }
    }
}
