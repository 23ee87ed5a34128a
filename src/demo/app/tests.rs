use std::time::Instant;

use super::*;

async fn app() -> App {
    start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("demo app starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn page_highlights_identity_headers_and_escapes_values() {
    let app = app().await;
    let principal = base64::engine::general_purpose::STANDARD
        .encode(r#"{"auth_typ":"aad","claims":[{"typ":"name","val":"<b>Jo</b>"}]}"#);
    let res = client()
        .get(format!("{}/reports/q3?x=<y>", app.url()))
        .header("X-Forwarded-User", "00000000-0000-0000-0000-000000000001")
        .header("X-Forwarded-Email", "jo@contoso.example")
        .header("X-Forwarded-Groups", "HR Admins,<script>alert(1)</script>")
        .header("X-Forwarded-For", "127.0.0.1")
        .header("X-MS-CLIENT-PRINCIPAL", principal)
        .header("OIDC_CLAIM_sub", "abc")
        .header("X-Custom", "\"><img src=x onerror=alert(1)>")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = res.text().await.expect("body");
    assert!(html.contains("<title>Demo app — the headers realmgate sent</title>"));
    assert!(html.contains("Signed in as jo@contoso.example"));
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        !html.contains("<b>Jo</b>"),
        "decoded principal is escaped too"
    );
    assert!(html.contains("HR Admins,&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(
        html.contains("Decoded"),
        "the Easy Auth principal is decoded"
    );
    assert!(html.contains("href=\"/.auth/me\""));
    assert!(html.contains("href=\"/.auth/logout\""));

    // Identity first, then forwarding, then the rest.
    let identity = html.find("<h2 id=\"identity\">").expect("identity section");
    let forwarding = html
        .find("<h2 id=\"forwarding\">")
        .expect("forwarding section");
    let other = html.find("<h2 id=\"other\">").expect("other section");
    let pos = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing"))
    };
    for name in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-ms-client-principal",
        "oidc_claim_sub",
    ] {
        let at = pos(&format!("<th scope=\"row\">{name}</th>"));
        assert!(
            identity < at && at < forwarding,
            "{name} is not in the identity table"
        );
    }
    let xff = pos("<th scope=\"row\">x-forwarded-for</th>");
    assert!(
        forwarding < xff && xff < other,
        "x-forwarded-for is a forwarding header"
    );
    let custom = pos("<th scope=\"row\">x-custom</th>");
    assert!(other < custom);
    // The request line is escaped as well.
    assert!(html.contains("GET &#x2f;reports&#x2f;q3?x=") && !html.contains("x=<y>"));
}

#[tokio::test]
async fn page_without_identity_says_so() {
    let app = app().await;
    let html = client()
        .get(app.url())
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(html.contains("No identity headers received"));
    assert!(html.contains("<p class=\"empty\">None. Requests that reach this app"));
}

#[tokio::test]
async fn headers_json_maps_lowercase_names_to_values_or_arrays() {
    let app = app().await;
    let res = client()
        .get(format!("{}/headers.json", app.url()))
        .header("X-Forwarded-Email", "jo@contoso.example")
        .header("X-Dup", "one")
        .header("x-dup", "two")
        .header(
            "X-Bytes",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let json: serde_json::Value = res.json().await.expect("json");
    assert_eq!(json["x-forwarded-email"], "jo@contoso.example");
    assert_eq!(json["x-dup"], serde_json::json!(["one", "two"]));
    assert_eq!(json["x-bytes"], "caf\u{fffd}");
    assert!(json.get("X-Forwarded-Email").is_none());
}

#[tokio::test]
async fn app_stops_listening_when_dropped() {
    let app = app().await;
    let addr = app.addr();
    assert_eq!(
        client().get(app.url()).send().await.expect("up").status(),
        200
    );
    drop(app);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo app still accepts connections after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn headers_are_classified_as_identity_forwarding_or_other() {
    for name in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-ms-client-principal-name",
        "x-ms-token-aad-id-token",
        "remote-user",
        "x-auth-request-email",
        "x-pomerium-jwt-assertion",
        "oidc_claim_email",
        "x-realmgate-assertion",
    ] {
        assert_eq!(kind(name), Kind::Identity, "{name}");
    }
    for name in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "forwarded",
    ] {
        assert_eq!(kind(name), Kind::Forwarding, "{name}");
    }
    for name in ["accept", "cookie", "host", "user-agent", "x-remote"] {
        assert_eq!(kind(name), Kind::Other, "{name}");
    }
}

#[test]
fn undecodable_principal_is_shown_raw_only() {
    assert_eq!(decode_principal("not base64!"), None);
    assert_eq!(decode_principal("bm90IGpzb24="), None, "base64 of non-JSON");
    assert!(decode_principal("eyJhIjoxfQ==").is_some_and(|s| s.contains("\"a\": 1")));
}
