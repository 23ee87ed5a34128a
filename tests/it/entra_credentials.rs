//! Credentials without secrets (SPEC 5.10) against the mock Entra: a
//! certificate (`private_key_jwt`), a rotating federated token file, and the
//! app-only Graph fallback when the user's token may not read groups. The
//! mock checks each assertion as Entra does (`src/demo/idp/client_auth.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use realmgate::demo::idp::{ClientAuthMethod, FederatedCredential, IdpClient, IdpConfig, IdpGroup};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::signin::{location, Browser};
use crate::util::{echo_route, Echoed};

const HOST: &str = "app.test";
const ALICE: &str = "alice@contoso.example";
const CLIENT_ID: &str = "5d1a3c7e-0000-4000-8000-0000000c0de5";
const K8S_ISSUER: &str = "https://oidc.prod-aks.azure.example/tenant/issuer/";
const K8S_SUBJECT: &str = "system:serviceaccount:gateway:realmgate";
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A self-signed RSA certificate (PEM) and its key (PKCS#8 PEM), valid a year.
fn rsa_certificate() -> (String, String, Vec<u8>) {
    use rsa::pkcs8::EncodePrivateKey as _;
    let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = k.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["realmgate".to_string()]).unwrap();
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(365 * 86_400)).into();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// The workload identity platform's signing key (P-256) and its public PEM.
struct Platform {
    key: jsonwebtoken::EncodingKey,
    public_pem: String,
}

impl Platform {
    fn new() -> Platform {
        use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
        let secret = p256::SecretKey::random(&mut rand::thread_rng());
        let der = secret.to_pkcs8_der().unwrap();
        Platform {
            key: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            public_pem: secret
                .public_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .unwrap(),
        }
    }

    /// A service account token as the platform mounts it (valid an hour).
    fn token(&self, subject: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut jti = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut jti);
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &json!({
                "iss": K8S_ISSUER, "sub": subject, "aud": [EXCHANGE_AUDIENCE],
                "iat": now, "nbf": now, "exp": now + 3600,
                "jti": format!("{jti:?}"),
            }),
            &self.key,
        )
        .unwrap()
    }
}

/// The mock with one app registration that has no secret: a certificate
/// (`cert_der`) and a federated credential of `platform`; alice in 300
/// groups (above the overage limit: Graph is asked).
fn idp_config(cert_der: Option<Vec<u8>>, platform: Option<&Platform>) -> IdpConfig {
    let mut config = IdpConfig::demo_default();
    config.clients.push(IdpClient {
        client_id: CLIENT_ID.into(),
        client_secret: String::new(),
        certificate_der: cert_der,
        federated: platform
            .map(|p| FederatedCredential {
                issuer: K8S_ISSUER.into(),
                subject: K8S_SUBJECT.into(),
                audience: EXCHANGE_AUDIENCE.into(),
                public_key_pem: p.public_pem.clone(),
            })
            .into_iter()
            .collect(),
        redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
    });
    for user in &mut config.users {
        if user.email == ALICE {
            user.groups = (0..300)
                .map(|i| IdpGroup {
                    id: format!("00000000-0000-4000-8000-{i:012}"),
                    name: format!("Group {i}"),
                })
                .collect();
        }
    }
    config
}

enum Credentials {}
type World = crate::util::World<Credentials>;

impl World {
    /// One Entra connection authenticating with `credential` lines.
    async fn with(config: IdpConfig, credential: &str, keep: tempfile::TempDir) -> World {
        World::named("contoso", config, credential, keep).await
    }

    /// The same with connection name `name`.
    async fn named(
        name: &str,
        config: IdpConfig,
        credential: &str,
        keep: tempfile::TempDir,
    ) -> World {
        World::builder()
            .idp(config)
            .connection(format!(
                r#"
[[connection]]
name = "{name}"
type = "entra"
tenant = "contoso.example"
authority_host = "{{idp}}"
graph_endpoint = "{{idp}}/graph"
client_id = "{CLIENT_ID}"
groups = true
{credential}
"#
            ))
            .route(echo_route("app", HOST))
            .keep(keep)
            .start()
            .await
    }

    /// Signs `user` in through a fresh browser; the callback's answer.
    async fn sign_in(&self, user: &str) -> (Browser, reqwest::Response) {
        let browser = Browser::new(&self.gateway);
        let authorize = browser
            .login_at(&self.gateway.url(
                HOST,
                &format!(
                    "/.auth/login/{}?rd=/page",
                    self.gateway.settings.connections[0].name
                ),
            ))
            .await;
        let resp = browser.finish_login(&self.idp, &authorize, user).await;
        (browser, resp)
    }

    async fn groups(&self, browser: &Browser) -> Vec<String> {
        let (status, me) = browser.me(&self.gateway.url(HOST, "/.auth/me")).await;
        assert_eq!(status, StatusCode::OK);
        me["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_certificate_signs_in_with_private_key_jwt() {
    let (cert, key, der) = rsa_certificate();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let w = World::with(
        idp_config(Some(der), None),
        &format!(
            "client_certificate_file = {:?}\nclient_key_file = {:?}",
            cert_path, key_path
        ),
        dir,
    )
    .await;
    let (browser, resp) = w.sign_in(ALICE).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
    assert_eq!(location(&resp), "/page");
    assert_eq!(
        w.idp.client_authentications(),
        [ClientAuthMethod::PrivateKeyJwt],
        "the code exchange authenticated with the certificate"
    );
    assert_eq!(
        w.groups(&browser).await.len(),
        300,
        "Graph with the user's token"
    );
    // A second sign-in signs a new assertion (the mock takes each jti once).
    let (_, resp) = w.sign_in(ALICE).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in again");
    assert_eq!(w.idp.client_authentications().len(), 2);
}

#[tokio::test]
async fn a_certificate_the_app_registration_does_not_know_fails_the_exchange() {
    let (_, _, registered) = rsa_certificate();
    let (cert, key, _) = rsa_certificate();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let w = World::with(
        idp_config(Some(registered), None),
        &format!(
            "client_certificate_file = {:?}\nclient_key_file = {:?}",
            cert_path, key_path
        ),
        dir,
    )
    .await;
    let (_, resp) = w.sign_in(ALICE).await;
    assert_ne!(resp.status(), StatusCode::FOUND, "no session");
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(w.idp.client_authentications().is_empty());
}

#[tokio::test]
async fn a_rotating_assertion_file_is_read_again_for_each_use() {
    let platform = Platform::new();
    let dir = tempfile::tempdir().unwrap();
    let token_path = write(
        dir.path(),
        "azure-identity-token",
        &platform.token(K8S_SUBJECT),
    );
    let path = token_path.clone();
    let w = World::with(
        idp_config(None, Some(&platform)),
        &format!("client_assertion_file = {token_path:?}"),
        dir,
    )
    .await;
    let (_, resp) = w.sign_in(ALICE).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "signed in with the first token"
    );
    assert_eq!(
        w.idp.client_authentications(),
        [ClientAuthMethod::Federated]
    );

    // The platform writes a token the app registration does not federate:
    // the next exchange sends it (read again), and Entra refuses it.
    std::fs::write(&path, platform.token("system:serviceaccount:other:app")).unwrap();
    let (_, resp) = w.sign_in(ALICE).await;
    assert_ne!(
        resp.status(),
        StatusCode::FOUND,
        "the new file's token was sent"
    );
    assert_eq!(w.idp.client_authentications().len(), 1);

    // Rotated again to a good token: sign-in works without a restart.
    std::fs::write(&path, format!("{}\n", platform.token(K8S_SUBJECT))).unwrap();
    let (_, resp) = w.sign_in(ALICE).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "signed in with the rotated token"
    );
    assert_eq!(w.idp.client_authentications().len(), 2);
}

#[tokio::test]
async fn graph_refusing_the_users_token_falls_back_to_an_app_only_token() {
    let (cert, key, der) = rsa_certificate();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let w = World::with(
        idp_config(Some(der), None),
        &format!(
            "client_certificate_file = {:?}\nclient_key_file = {:?}",
            cert_path, key_path
        ),
        dir,
    )
    .await;
    w.idp.set_graph_refuses_user_tokens(true);
    let (browser, resp) = w.sign_in(ALICE).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
    let groups = w.groups(&browser).await;
    assert_eq!(groups.len(), 300, "read with the app-only token");
    assert_eq!(groups[0], "00000000-0000-4000-8000-000000000000");
    // Code exchange, then the client credentials grant, both with the certificate.
    assert_eq!(
        w.idp.client_authentications(),
        [
            ClientAuthMethod::PrivateKeyJwt,
            ClientAuthMethod::PrivateKeyJwt
        ]
    );
    // The app-only token is cached: the next sign-in asks only for the code.
    let (browser, resp) = w.sign_in(ALICE).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(w.groups(&browser).await.len(), 300);
    assert_eq!(w.idp.client_authentications().len(), 3);
}

#[tokio::test]
async fn test_connection_tries_the_credential() {
    let (cert, key, der) = rsa_certificate();
    let (_, _, other) = rsa_certificate();
    for (registered, ok) in [(der, true), (other, false)] {
        let idp = realmgate::demo::idp::start(
            idp_config(Some(registered), None),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_path = write(dir.path(), "cert.pem", &cert);
        let key_path = write(dir.path(), "key.pem", &key);
        let text = format!(
            r#"
[session]
secret = "0123456789abcdef0123456789abcdef"
[[connection]]
name = "contoso"
type = "entra"
tenant = "contoso.example"
authority_host = "{}"
client_id = "{CLIENT_ID}"
client_certificate_file = {cert_path:?}
client_key_file = {key_path:?}
[[route]]
name = "app"
hosts = ["app.test"]
upstream = "http://127.0.0.1:9"
"#,
            idp.base_url()
        );
        let settings = realmgate::config::load_str(&text).unwrap();
        let mut out = Vec::new();
        let passed = realmgate::oidc::test_connection(&settings, "contoso", &mut out).await;
        let out = String::from_utf8(out).unwrap();
        assert_eq!(passed, ok, "{out}");
        assert!(
            out.contains("client credential:      certificate (private_key_jwt)"),
            "{out}"
        );
        if ok {
            assert!(
                out.contains("accepted: a client credentials token request"),
                "{out}"
            );
        } else {
            assert!(
                out.contains(
                    "PROBLEM: the token endpoint refused the client credential (invalid_client)"
                ),
                "{out}"
            );
        }
    }
}

#[tokio::test]
async fn group_names_from_graph_name_unmapped_groups_in_headers_and_me() {
    let (cert, key, der) = rsa_certificate();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let id = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
    let mut config = idp_config(Some(der), None);
    for user in &mut config.users {
        if user.email == ALICE {
            // Names that would read as something else are not used.
            user.groups[2].name = "HR Admins,Root".into();
            user.groups[3].name = id(4);
            user.groups[5].name = "zero".into();
        }
    }
    // Its own connection name: the name cache is per process.
    let w = World::named(
        "names",
        config,
        &format!(
            "client_certificate_file = {cert_path:?}\nclient_key_file = {key_path:?}\n\
             group_names = {{ \"{}\" = \"Zero\" }}\ngroup_names_from_graph = true",
            id(0)
        ),
        dir,
    )
    .await;
    let (browser, resp) = w.sign_in(ALICE).await;
    assert_eq!(resp.status(), StatusCode::FOUND, "signed in");
    assert_eq!(
        w.idp.graph_name_calls(),
        1,
        "299 unmapped ids in one getByIds"
    );

    let (_, me) = browser.me(&w.gateway.url(HOST, "/.auth/me")).await;
    let names = me["group_names"].as_object().expect("group_names");
    assert_eq!(names[&id(0)], "Zero", "group_names first");
    assert_eq!(names[&id(1)], "Group 1", "then Graph");
    for i in [2, 3, 5] {
        assert!(!names.contains_key(&id(i)), "group {i}'s name is not used");
    }
    assert_eq!(names.len(), 297);

    let echoed = Echoed::from(browser.get(&w.gateway.url(HOST, "/page")).await).await;
    let header = echoed.header("x-forwarded-groups").expect("groups header");
    let sent: Vec<&str> = header.split(',').collect();
    assert_eq!(sent.len(), 300);
    assert_eq!(sent[0], "Zero");
    assert_eq!(sent[1], "Group 1");
    assert_eq!(sent[2], id(2), "the id instead of a name with a comma");
    assert_eq!(sent[3], id(3), "the id instead of a GUID-shaped name");
    assert_eq!(sent[5], id(5), "the id instead of a configured name");
    assert!(!header.contains("Root"));

    // Cached: the next sign-in reads no names.
    let (_, resp) = w.sign_in(ALICE).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(w.idp.graph_name_calls(), 1);
}
