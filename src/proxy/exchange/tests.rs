use super::*;

#[test]
fn the_own_codec_serves_only_bodyless_requests_to_an_own_pool() {
    // (own_pool, upgrade, body) -> exchange: every combination.
    let cases = [
        ((true, false, false), Exchange::RawH1),
        ((true, false, true), Exchange::HyperH1),
        ((false, false, false), Exchange::HyperClient),
        ((false, false, true), Exchange::HyperClient),
        ((true, true, false), Exchange::Upgrade),
        ((true, true, true), Exchange::Upgrade),
        ((false, true, false), Exchange::Upgrade),
        ((false, true, true), Exchange::Upgrade),
    ];
    for ((own_pool, upgrade, body), want) in cases {
        assert_eq!(
            Exchange::choose(own_pool, upgrade, body),
            want,
            "own_pool={own_pool} upgrade={upgrade} body={body}"
        );
    }
}

#[test]
fn access_log_names_are_distinct_and_documented() {
    let all = [
        Exchange::RawH1,
        Exchange::HyperH1,
        Exchange::HyperClient,
        Exchange::Upgrade,
    ];
    let names: std::collections::HashSet<_> = all.iter().map(|e| e.name()).collect();
    assert_eq!(names.len(), all.len());
    let operations = include_str!("../../../docs/operations.md");
    let proxying = include_str!("../../../docs/proxying.md");
    for name in names {
        let quoted = format!("`{name}`");
        assert!(
            operations.contains(&quoted),
            "{name} not in docs/operations.md"
        );
        assert!(proxying.contains(&quoted), "{name} not in docs/proxying.md");
    }
}
