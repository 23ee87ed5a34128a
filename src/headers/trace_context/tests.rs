use super::*;

const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(TRACEPARENT, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn a_valid_traceparent_is_propagated_unchanged_with_its_tracestate() {
    let t = TraceParent::of(&headers(&[GOOD]));
    assert!(t.propagated);
    assert_eq!(t.value, GOOD);
    let mut out = headers(&[GOOD]);
    out.insert(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
    t.apply(&mut out);
    assert_eq!(out.get_all(TRACEPARENT).iter().count(), 1);
    assert_eq!(out[TRACEPARENT], GOOD);
    assert_eq!(out[TRACESTATE], "congo=t61rcWkgMzE");
}

#[test]
fn invalid_repeated_or_absent_traceparents_start_a_new_trace_and_drop_tracestate() {
    let bad = [
        // upper case, another version, version ff, zero ids, bad separators,
        // too long / short, non-hex, trailing data
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\tx",
        "",
    ];
    let mut cases: Vec<HeaderMap> = bad.iter().map(|b| headers(&[b])).collect();
    cases.push(headers(&[]));
    cases.push(headers(&[GOOD, GOOD]));
    for mut h in cases {
        let sent = format!("{:?}", h.get_all(TRACEPARENT).iter().collect::<Vec<_>>());
        let t = TraceParent::of(&h);
        assert!(!t.propagated, "{sent}");
        assert!(is_valid(t.value.as_bytes()), "{:?}", t.value);
        assert!(t.value.as_bytes().ends_with(b"-01"));
        h.insert(
            TRACESTATE,
            HeaderValue::from_static("rojo=00f067aa0ba902b7"),
        );
        t.apply(&mut h);
        let now: Vec<_> = h.get_all(TRACEPARENT).iter().collect();
        assert_eq!(now, vec![&t.value], "{sent}");
        assert!(h.get(TRACESTATE).is_none(), "{sent}");
    }
}

#[test]
fn new_traces_are_distinct_and_valid_across_batches() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..(PER_BATCH * 3 + 5) {
        let v = new_traceparent();
        assert!(is_valid(v.as_bytes()), "{v:?}");
        assert!(
            seen.insert(v.as_bytes()[3..35].to_vec()),
            "a trace id repeated"
        );
    }
}
