use super::*;

fn fields<'a>(path: &'a [u8], ua: Option<&'a [u8]>, user: Option<&'a str>) -> Fields<'a> {
    Fields {
        method: "GET",
        host: "app.test",
        path,
        status: 200,
        upstream: Some(Duration::from_micros(1_234)),
        client: "203.0.113.9".parse().unwrap(),
        peer: b"10.0.0.1",
        user,
        route: Some("hr"),
        exchange: Some("raw-h1"),
        request_id: b"0123456789abcdef0123456789abcdef",
        traceparent: b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        user_agent: ua,
    }
}

fn line(format: LogFormat, f: &Fields<'_>) -> String {
    let when = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_562_742_123_456);
    let mut l = start(format, f, when);
    finish(format, &mut l, 47, Duration::from_micros(2_500));
    String::from_utf8(l).expect("a line is UTF-8 whatever the request held")
}

/// Hostile values: a forged line and field, a terminal escape, C1 CSI,
/// quotes, backslashes, U+2028, bytes that are not UTF-8, NUL.
const HOSTILE: &[u8] =
    b"/a\r\n2026-01-01T00:00:00.000000Z  INFO access: status=200\" user=\"admin\x1b[31m\xc2\x9b\\\xe2\x80\xa8\xff\xfe\x00end";

#[test]
fn a_json_line_has_every_field_and_parses() {
    let l = line(
        LogFormat::Json,
        &fields(b"/reports/q1", Some(b"curl/8.5"), Some("u-1")),
    );
    assert!(l.ends_with("}\n") && l.matches('\n').count() == 1, "{l}");
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["timestamp"], "2026-12-06T13:12:22.123456Z");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "access");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["host"], "app.test");
    assert_eq!(v["path"], "/reports/q1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 47);
    assert_eq!(v["duration_ms"], 2.5);
    assert_eq!(v["upstream_ms"], 1.234);
    assert_eq!(v["client"], "203.0.113.9");
    assert_eq!(v["peer"], "10.0.0.1");
    assert_eq!(v["user"], "u-1");
    assert_eq!(v["route"], "hr");
    assert_eq!(v["exchange"], "raw-h1");
    assert_eq!(v["request_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(
        v["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(v["user_agent"], "curl/8.5");
}

#[test]
fn a_text_line_has_every_field() {
    let l = line(
        LogFormat::Text,
        &fields(b"/reports/q1", Some(b"curl/8.5"), Some("u-1")),
    );
    assert_eq!(
        l,
        "2026-12-06T13:12:22.123456Z  INFO access: method=\"GET\" host=\"app.test\" \
         path=\"/reports/q1\" status=200 upstream_ms=1.234 client=203.0.113.9 peer=\"10.0.0.1\" \
         user=\"u-1\" route=\"hr\" exchange=\"raw-h1\" request_id=\"0123456789abcdef0123456789abcdef\" \
         traceparent=\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\" \
         user_agent=\"curl/8.5\" bytes=47 duration_ms=2.500\n"
    );
}

#[test]
fn absent_values_are_left_out() {
    let mut f = fields(b"/", None, None);
    f.upstream = None;
    f.route = None;
    f.exchange = None;
    f.host = "";
    let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &f)).unwrap();
    for k in [
        "user",
        "user_agent",
        "upstream_ms",
        "route",
        "exchange",
        "host",
    ] {
        assert!(v.get(k).is_none(), "{k} in {v}");
    }
    let t = line(LogFormat::Text, &f);
    for k in [
        "user=",
        "user_agent=",
        "upstream_ms=",
        "route=",
        "exchange=",
        "host=",
    ] {
        assert!(!t.contains(k), "{k} in {t}");
    }
}

#[test]
fn hostile_values_cannot_end_a_line_forge_a_field_or_reach_a_terminal_in_json() {
    let l = line(
        LogFormat::Json,
        &fields(HOSTILE, Some(HOSTILE), Some("a\"b\nc")),
    );
    assert_eq!(l.matches('\n').count(), 1, "{l}");
    assert!(!l.contains('\r') && !l.contains('\u{1b}') && !l.contains('\u{9b}'));
    assert!(!l.contains('\u{2028}') && !l.contains('\0'), "{l}");
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    // One status, one user: the forged ones are inside the path's string.
    assert_eq!(v["status"], 200);
    assert_eq!(v["user"], "a\"b\nc");
    let want = "/a\r\n2026-01-01T00:00:00.000000Z  INFO access: status=200\" user=\"admin\u{1b}[31m\u{9b}\\\u{2028}\\xff\\xfe\u{0}end";
    assert_eq!(v["path"], want);
    assert_eq!(v["user_agent"], want);
    assert!(
        l.contains(r#"\u001b[31m\u009b\\\u2028\\xff\\xfe\u0000end"#),
        "{l}"
    );
}

#[test]
fn hostile_values_cannot_end_a_line_forge_a_field_or_reach_a_terminal_in_text() {
    let l = line(
        LogFormat::Text,
        &fields(HOSTILE, Some(HOSTILE), Some("a\"b\nc")),
    );
    assert_eq!(l.matches('\n').count(), 1, "{l}");
    assert!(
        l.bytes().all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "{l}"
    );
    let escaped = r#""/a\x0d\x0a2026-01-01T00:00:00.000000Z  INFO access: status=200\" user=\"admin\x1b[31m\xc2\x9b\\\xe2\x80\xa8\xff\xfe\x00end""#;
    assert!(l.contains(&format!(" path={escaped} status=200 ")), "{l}");
    assert!(l.contains(&format!(" user_agent={escaped} bytes=")), "{l}");
    assert!(l.contains(r#" user="a\"b\x0ac" "#), "{l}");
    // Read as a quote-aware reader would: the keys are the real ones, once each.
    assert_eq!(
        text_keys(&l),
        [
            "method",
            "host",
            "path",
            "status",
            "upstream_ms",
            "client",
            "peer",
            "user",
            "route",
            "exchange",
            "request_id",
            "traceparent",
            "user_agent",
            "bytes",
            "duration_ms"
        ]
    );
}

/// The keys of a text line after `access: `, reading `"..."` values with
/// their `\` escapes.
fn text_keys(line: &str) -> Vec<String> {
    let rest = line
        .split_once("access: ")
        .unwrap()
        .1
        .trim_end_matches('\n');
    let (mut keys, mut chars) = (Vec::new(), rest.chars().peekable());
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        keys.push(key.trim().to_string());
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            chars.next(); // the space
        } else {
            for c in chars.by_ref() {
                if c == ' ' {
                    break;
                }
            }
        }
    }
    keys
}

#[test]
fn long_paths_and_user_agents_are_cut_without_splitting_a_character() {
    let mut path = b"/".to_vec();
    path.extend("é".repeat(400).as_bytes()); // 801 bytes
    let ua = vec![b'u'; 1000];
    let l = line(LogFormat::Json, &fields(&path, Some(&ua), None));
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    let p = v["path"].as_str().unwrap();
    assert!(p.ends_with("é..."), "{p}");
    assert!(p.len() <= MAX_PATH + 3, "{}", p.len());
    assert!(!p.contains("\\x"), "a character was split: {p}");
    assert_eq!(v["user_agent"].as_str().unwrap().len(), MAX_USER_AGENT + 3);
    let t = line(LogFormat::Text, &fields(&path, Some(&ua), None));
    assert!(
        t.contains(&format!("user_agent=\"{}...\"", "u".repeat(MAX_USER_AGENT))),
        "{t}"
    );
}

#[test]
fn escaping_is_exact_for_every_byte() {
    for b in 0..=255u8 {
        let mut j = Vec::new();
        json_str(&mut j, &[b'a', b, b'z']);
        let text = String::from_utf8(j).unwrap();
        let back: String = serde_json::from_str(&text).unwrap();
        let want = match b {
            0x80..=0xff => format!("a\\x{b:02x}z"),
            _ => format!("a{}z", b as char),
        };
        assert_eq!(back, want, "byte {b:#x}: {text}");
        let mut t = Vec::new();
        text_str(&mut t, &[b]);
        assert!(t.iter().all(|c| (0x20..0x7f).contains(c)), "byte {b:#x}");
    }
    // Multi-byte UTF-8 passes through JSON unescaped (except C1 and U+2028/9).
    let mut j = Vec::new();
    json_str(&mut j, "Zürich 東京 \u{85}\u{2029}".as_bytes());
    assert_eq!(
        String::from_utf8(j).unwrap(),
        "\"Zürich 東京 \\u0085\\u2029\""
    );
    // Bidirectional controls (review 10): a viewer would reorder the line.
    for c in [
        '\u{200e}', '\u{200f}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
    ] {
        let mut j = Vec::new();
        json_str(&mut j, format!("/a{c}b").as_bytes());
        let text = String::from_utf8(j).unwrap();
        assert_eq!(text, format!("\"/a\\u{:04x}b\"", u32::from(c)));
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back, format!("/a{c}b"));
    }
    // Their neighbours pass as they are.
    let mut j = Vec::new();
    json_str(&mut j, "\u{2027}\u{202f}\u{2065}\u{206a}".as_bytes());
    assert_eq!(
        String::from_utf8(j).unwrap(),
        "\"\u{2027}\u{202f}\u{2065}\u{206a}\""
    );
}

#[test]
fn numbers_and_timestamps_are_rendered_exactly() {
    let mut out = Vec::new();
    push_u64(&mut out, 0);
    out.push(b' ');
    push_u64(&mut out, u64::MAX);
    out.push(b' ');
    push_ms(&mut out, Duration::from_nanos(999));
    out.push(b' ');
    push_ms(&mut out, Duration::from_secs(61) + Duration::from_micros(7));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "0 18446744073709551615 0.000 61000.007"
    );
    // Two seconds in a row on one thread (the cached date is refreshed).
    for (micros, want) in [
        (1_796_562_742_000_001u64, "2026-12-06T13:12:22.000001Z"),
        (1_796_562_743_999_999, "2026-12-06T13:12:23.999999Z"),
        (0, "1970-01-01T00:00:00.000000Z"),
    ] {
        let mut out = Vec::new();
        timestamp(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

#[tokio::test]
async fn the_body_counts_what_was_sent_and_finishes_the_line_once_when_dropped() {
    use http_body_util::BodyExt;
    let body = crate::respond::full(vec![b'x'; 1000]);
    let head = start(
        LogFormat::Json,
        &fields(b"/x", None, None),
        SystemTime::now(),
    );
    // Without `telemetry::init` the line goes to tracing: captured here.
    let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || Writer(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let wrapped = Logged::wrap(body, head, LogFormat::Json, Instant::now());
    let collected = wrapped.collect().await.unwrap().to_bytes();
    assert_eq!(collected.len(), 1000);
    let text = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("\"bytes\":1000,").count(), 1, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");

    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
