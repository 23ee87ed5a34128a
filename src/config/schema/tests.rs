use super::*;

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema is a valid JSON Schema")
}

fn toml_to_json(text: &str) -> Value {
    let v: toml::Value = toml::from_str(text).expect("TOML");
    serde_json::to_value(v).expect("JSON")
}

#[test]
fn the_example_config_is_valid_against_the_schema() {
    let v = validator();
    let example = toml_to_json(EXAMPLE);
    let errors: Vec<String> = v.iter_errors(&example).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schema_has_exactly_the_keys_the_loader_accepts() {
    let schema = schema();
    let mut in_schema: Vec<String> = schema["$defs"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|d| d.get("properties").and_then(Value::as_object))
        .flat_map(|p| p.keys().cloned())
        .collect();
    in_schema.sort();
    in_schema.dedup();
    let mut accepted: Vec<String> = super::super::raw::all_keys()
        .into_iter()
        .map(str::to_string)
        .collect();
    accepted.sort();
    accepted.dedup();
    assert_eq!(in_schema, accepted);
    let mut top: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    top.sort();
    let mut expected = super::super::raw::TOP_LEVEL_KEYS.to_vec();
    expected.sort();
    assert_eq!(top, expected);
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_in_every_table() {
    let v = validator();
    for bad in [
        "unknown = 1",
        "[server]\nlisten = 8080",
        "[server]\nlistn = \"0.0.0.0:8080\"",
        "[server.tls]\ncertificate = \"x\"",
        "[session]\nsecret = [1]",
        "[[connection]]\nname = \"a\"\nclient_secrt = \"x\"",
        "[[route]]\nname = \"a\"\npublic = \"/static/\"",
        "[[route]]\nname = \"a\"\n[route.allow]\ngroup = [\"x\"]",
        "connection = { name = \"a\" }",
    ] {
        assert!(!v.is_valid(&toml_to_json(bad)), "accepted: {bad}");
    }
    assert!(v.is_valid(&toml_to_json(
        "[session]\nredis_url = [\"redis://a\", \"redis://b\"]"
    )));
}

#[test]
fn keys_carry_the_example_comment_as_description() {
    let schema = schema();
    let d = &schema["$defs"];
    assert!(d["RawServer"]["properties"]["listen"]["description"]
        .as_str()
        .unwrap()
        .contains("proxy listener"));
    assert!(d["RawRoute"]["properties"]["headers"]["description"]
        .as_str()
        .unwrap()
        .contains("easyauth"));
    assert!(d["RawConnection"]["properties"]["type"]["description"]
        .as_str()
        .unwrap()
        .contains("entra"));
}

/// docs/config.schema.json (named by the example's `#:schema` line, so an
/// editor opening a copy beside a checkout finds it) is the current schema.
#[test]
fn the_committed_schema_file_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.schema.json");
    let want = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
    if std::env::var_os("REALMGATE_BLESS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/config.schema.json is stale: run `cargo run -q -- schema > docs/config.schema.json` (or REALMGATE_BLESS=1 cargo test --lib schema)"
    );
}
