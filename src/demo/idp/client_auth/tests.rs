use super::*;
use crate::connection::credential::tests::certificate;
use crate::connection::credential::CertificateCredential;

const ENDPOINT: &str = "http://127.0.0.1:1/contoso.example/oauth2/v2.0/token";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn client(cert_der: Vec<u8>) -> IdpClient {
    IdpClient {
        client_id: "app".into(),
        client_secret: String::new(),
        certificate_der: Some(cert_der),
        federated: Vec::new(),
        redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
    }
}

fn with_assertion(jwt: &str) -> Presented {
    Presented {
        client_id: Some("app".into()),
        secret: None,
        assertion: Some(jwt.to_string()),
    }
}

fn credential() -> CertificateCredential {
    let (cert, key) = certificate(true, 30);
    CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
}

fn refusal(r: Result<ClientAuthMethod, Refused>) -> String {
    match r {
        Ok(m) => panic!("accepted as {m:?}"),
        Err(Refused(code, why)) => format!("{code}: {why}"),
    }
}

#[test]
fn a_good_assertion_passes_once() {
    let c = credential();
    let seen = SeenJtis::default();
    let client = client(c.certificate_der().to_vec());
    let jwt = c.assertion("app", ENDPOINT, now()).unwrap();
    let p = with_assertion(&jwt);
    assert_eq!(
        authenticate(&client, &p, ENDPOINT, &seen, now()).ok(),
        Some(ClientAuthMethod::PrivateKeyJwt)
    );
    let again = refusal(authenticate(&client, &p, ENDPOINT, &seen, now()));
    assert!(again.contains("jti was used before"), "{again}");
}

#[test]
fn assertions_for_another_audience_client_or_certificate_are_refused() {
    let c = credential();
    let seen = SeenJtis::default();
    let registered = client(c.certificate_der().to_vec());
    let t = now();
    // Another token endpoint.
    let jwt = c
        .assertion("app", "http://127.0.0.1:1/other/token", t)
        .unwrap();
    let e = refusal(authenticate(
        &registered,
        &with_assertion(&jwt),
        ENDPOINT,
        &seen,
        t,
    ));
    assert!(e.contains("not valid"), "{e}");
    // iss/sub of another client.
    let jwt = c.assertion("someone-else", ENDPOINT, t).unwrap();
    let e = refusal(authenticate(
        &registered,
        &with_assertion(&jwt),
        ENDPOINT,
        &seen,
        t,
    ));
    assert!(e.contains("not valid"), "{e}");
    // Expired (signed an hour ago).
    let jwt = c.assertion("app", ENDPOINT, t - 3600).unwrap();
    let e = refusal(authenticate(
        &registered,
        &with_assertion(&jwt),
        ENDPOINT,
        &seen,
        t,
    ));
    assert!(e.contains("not valid"), "{e}");
    // Signed by a certificate that is not registered.
    let other = credential();
    let jwt = other.assertion("app", ENDPOINT, t).unwrap();
    let e = refusal(authenticate(
        &registered,
        &with_assertion(&jwt),
        ENDPOINT,
        &seen,
        t,
    ));
    assert!(e.contains("not registered"), "{e}");
    // Naming the registered certificate but signed with another key.
    let forged = {
        let honest = c.assertion("app", ENDPOINT, t).unwrap();
        let by_other = other.assertion("app", ENDPOINT, t).unwrap();
        let head = honest.split('.').next().unwrap();
        let rest: Vec<&str> = by_other.split('.').skip(1).collect();
        format!("{head}.{}", rest.join("."))
    };
    let e = refusal(authenticate(
        &registered,
        &with_assertion(&forged),
        ENDPOINT,
        &seen,
        t,
    ));
    assert!(e.contains("not valid"), "{e}");
    // No assertion and no secret; an empty registered secret matches nothing.
    let none = Presented {
        client_id: Some("app".into()),
        secret: Some((String::new(), ClientAuthMethod::ClientSecretPost)),
        assertion: None,
    };
    let e = refusal(authenticate(&registered, &none, ENDPOINT, &seen, t));
    assert!(e.contains("Invalid client secret"), "{e}");
}

#[test]
fn an_assertion_living_longer_than_ten_minutes_is_refused() {
    let (cert, key) = certificate(false, 30);
    let c = CertificateCredential::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let registered = client(c.certificate_der().to_vec());
    // Signed "in the future": its exp is more than ten minutes away.
    let t = now();
    let jwt = c.assertion("app", ENDPOINT, t + 1200).unwrap();
    let e = refusal(authenticate(
        &registered,
        &with_assertion(&jwt),
        ENDPOINT,
        &SeenJtis::default(),
        t,
    ));
    assert!(e.contains("not valid") || e.contains("too long"), "{e}");
}
