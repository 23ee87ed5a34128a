//! `realmgate_certificate_not_after_seconds`: the expiry of every
//! certificate realmgate holds, so one alert rule covers them all.
//!
//! Two sources fill it. The configuration (`from_settings`, on start and
//! after every successful reload): the TLS serving chain, connections'
//! client certificates (`client_certificate_file`), SAML SP certificates,
//! pinned IdP certificates (`idp_certificate_file`, and those of a SAML /
//! WS-Fed `idp_metadata_file` / `metadata_file`), and the CA files
//! realmgate trusts (`upstream_ca`, LDAP `ca_file`). And the identity
//! providers (`Metrics::set_idp_certificates`): the `x5c` certificates of an
//! OpenID provider's JWKS each time it is fetched, and the signing
//! certificates of SAML / WS-Fed metadata fetched from `idp_metadata_url` /
//! `metadata_url` each time its background refresh succeeds
//! (`saml::source::spawn_refresh`).
//!
//! Labels: `kind` (`tls_server`, `client`, `saml_sp`, `idp_signing`,
//! `upstream_ca`, `ldap_ca`), `name` (the connection or route; `server` for
//! the TLS chain), `subject` (RFC 4514, at most 128 characters) and
//! `sha256` (the first 16 hex digits of the DER's SHA-256: tells two
//! certificates of one subject apart during a rollover). A file that cannot
//! be read has no series (`check` and the start report that); a certificate
//! that cannot be parsed has none either.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode as _, Encode as _};

use crate::config::{ConnectionKind, Settings};

/// Largest certificate file read for the gauge (a PEM bundle of CAs is
/// well below this).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One certificate's labels and expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub sha256: String,
    /// Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    pub fn of_der(der: &[u8]) -> Option<CertInfo> {
        let cert = x509_cert::Certificate::from_der(der).ok()?;
        Some(info(&cert, der))
    }
}

fn info(cert: &x509_cert::Certificate, der: &[u8]) -> CertInfo {
    // A label value the exposition formats write as it is (the metrics
    // library does not escape it): a `\` or `"` an identity provider put in
    // its certificate's subject (RFC 4514 writes `\,` for a comma) would end
    // the value early and break every scrape (review 10). The subject is
    // for people to recognize the certificate, so those characters are
    // dropped or replaced rather than escaped.
    let mut subject: String = cert
        .tbs_certificate
        .subject
        .to_string()
        .chars()
        .filter(|c| *c != '\\')
        .map(|c| match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if subject.len() > 128 {
        let mut cut = 128;
        while !subject.is_char_boundary(cut) {
            cut -= 1;
        }
        subject.truncate(cut);
    }
    let digest = Sha256::digest(der);
    let sha256 = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let secs = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    CertInfo {
        subject,
        sha256,
        not_after: i64::try_from(secs).unwrap_or(i64::MAX),
    }
}

/// Every `CERTIFICATE` block of a PEM text that parses.
pub fn of_pem(text: &str) -> Vec<CertInfo> {
    let Ok(chain) = x509_cert::Certificate::load_pem_chain(text.as_bytes()) else {
        return Vec::new();
    };
    chain
        .iter()
        .filter_map(|c| c.to_der().ok().map(|der| info(c, &der)))
        .collect()
}

fn of_file(path: &Path) -> Vec<CertInfo> {
    let readable = std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_FILE_BYTES);
    match readable.then(|| std::fs::read_to_string(path)) {
        Some(Ok(text)) => of_pem(&text),
        _ => Vec::new(),
    }
}

/// The signing certificates of a SAML / WS-Fed metadata file.
fn of_metadata_file(path: &Path) -> Vec<CertInfo> {
    let max = crate::saml::metadata::MAX_METADATA_BYTES as u64;
    let readable = std::fs::metadata(path).is_ok_and(|m| m.len() <= max);
    let Some(Ok(raw)) = readable.then(|| std::fs::read(path)) else {
        return Vec::new();
    };
    match crate::saml::metadata::parse_idp_metadata(&raw) {
        Ok(m) => m
            .trust
            .certs_der()
            .iter()
            .filter_map(|d| CertInfo::of_der(d))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Where a group of certificates came from: the configuration is replaced
/// whole on reload; an IdP's group when its keys are fetched again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Source {
    Config,
    Idp,
}

type Key = (Source, &'static str, String);

/// The certificates of the configuration: `(kind, name) -> certificates`.
pub(super) fn from_settings(settings: &Settings) -> Vec<(&'static str, String, Vec<CertInfo>)> {
    let mut out = Vec::new();
    if let Some(tls) = &settings.server.tls {
        out.push(("tls_server", "server".to_string(), of_file(&tls.cert)));
    }
    for c in &settings.connections {
        if let Some(crate::connection::credential::ClientCredential::Certificate(cert)) =
            &c.credential
        {
            if let Some(i) = CertInfo::of_der(cert.cert_der()) {
                out.push(("client", c.name.clone(), vec![i]));
            }
        }
        match &c.kind {
            ConnectionKind::Saml(s) | ConnectionKind::WsFed(s) => {
                if let Some(p) = &s.sp_certificate_file {
                    out.push(("saml_sp", c.name.clone(), of_file(p)));
                }
                match &s.idp {
                    crate::saml::config::IdpSource::Manual {
                        certificate_file, ..
                    } => out.push(("idp_signing", c.name.clone(), of_file(certificate_file))),
                    crate::saml::config::IdpSource::MetadataFile(p) => {
                        out.push(("idp_signing", c.name.clone(), of_metadata_file(p)));
                    }
                    // Fetched at run time: whatever fetches it reports them
                    // (`Metrics::set_idp_certificates`).
                    crate::saml::config::IdpSource::MetadataUrl(_) => {}
                }
            }
            ConnectionKind::Ldap(l) => {
                if let Some(p) = &l.ca_file {
                    out.push(("ldap_ca", c.name.clone(), of_file(p)));
                }
            }
            ConnectionKind::Entra(_) | ConnectionKind::Oidc(_) => {}
        }
    }
    for r in &settings.routes {
        if let Some(p) = &r.upstream_ca {
            out.push(("upstream_ca", r.name.clone(), of_file(p)));
        }
    }
    out
}

/// The gauge's current series.
#[derive(Debug, Default)]
pub(super) struct Certificates(RwLock<BTreeMap<Key, Vec<CertInfo>>>);

impl Certificates {
    /// Replaces every configuration group; drops IdP groups of connections
    /// the new configuration no longer has.
    pub fn set_config(&self, settings: &Settings) {
        let groups = from_settings(settings);
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|(source, _, name), _| {
            *source == Source::Idp && settings.connections.iter().any(|c| &c.name == name)
        });
        for (kind, name, certs) in groups {
            map.entry((Source::Config, kind, name))
                .or_default()
                .extend(certs);
        }
    }

    /// Replaces what a connection's IdP currently signs with.
    pub fn set_idp(&self, connection: &str, certs: Vec<CertInfo>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert((Source::Idp, "idp_signing", connection.to_string()), certs);
    }
}

impl Collector for Certificates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut family = encoder.encode_descriptor(
            "certificate_not_after_seconds",
            "When a certificate realmgate holds expires (Unix seconds): kind = tls_server, client, saml_sp, idp_signing, upstream_ca or ldap_ca; name = the connection or route (server for TLS)",
            None,
            MetricType::Gauge,
        )?;
        for ((_, kind, name), certs) in map.iter() {
            for c in certs {
                let labels = [
                    ("kind", *kind),
                    ("name", name.as_str()),
                    ("subject", c.subject.as_str()),
                    ("sha256", c.sha256.as_str()),
                ];
                let g = ConstGauge::new(c.not_after);
                g.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The `x5c` leaf certificates of a JWKS document (standard base64 DER,
/// RFC 7517 4.7), for [`Certificates::set_idp`].
pub fn of_jwks(body: &[u8]) -> Vec<CertInfo> {
    use base64::Engine as _;
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(keys) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Vec::new();
    };
    let mut out: Vec<CertInfo> = Vec::new();
    for key in keys {
        let leaf = key
            .get("x5c")
            .and_then(|x| x.as_array())
            .and_then(|x| x.first())
            .and_then(|x| x.as_str());
        let Some(b64) = leaf else { continue };
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        if let Some(i) = CertInfo::of_der(&der) {
            // Providers list one certificate under several key ids.
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, day: u8) -> rcgen::CertifiedKey {
        let mut p = rcgen::CertificateParams::new(vec!["app.test".into()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.not_after = rcgen::date_time_ymd(2031, 1, day);
        let key_pair = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key_pair).unwrap();
        rcgen::CertifiedKey { cert, key_pair }
    }

    /// Review 10: an IdP's certificate subject with `\`, `"` or a newline
    /// (RFC 4514 writes a comma in a CN as `\,`), cut anywhere, never ends
    /// the label value early: every label value of the family is a plain
    /// quoted string.
    #[test]
    fn a_hostile_subject_cannot_break_the_exposition() {
        for cn in [
            format!("{},zzz", "a".repeat(124)),
            "a\"b".to_string(),
            "x\\".to_string(),
            "line\nbreak".to_string(),
            "\"\\,\"".repeat(40),
        ] {
            let info = CertInfo::of_der(cert(&cn, 1).cert.der()).unwrap();
            assert!(
                !info.subject.contains(['\\', '"']) && !info.subject.chars().any(char::is_control),
                "{cn:?}: {:?}",
                info.subject
            );
            assert!(info.subject.len() <= 128);
            let m = crate::metrics::Metrics::new();
            m.set_idp_certificates("partner", vec![info]);
            let out = m.render(crate::metrics::Format::Prometheus);
            let line = out
                .lines()
                .find(|l| l.starts_with("realmgate_certificate_not_after_seconds{"))
                .expect("the gauge");
            // kind, name, subject, sha256: four quoted values, then the number.
            let labels = line
                .split_once('{')
                .and_then(|(_, rest)| rest.rsplit_once('}'))
                .map(|(labels, _)| labels)
                .unwrap();
            assert_eq!(labels.matches('"').count(), 8, "{line}");
            let (_, sha) = labels.rsplit_once(",sha256=\"").expect("sha256 last");
            assert!(sha.len() == 17 && sha.ends_with('"'), "{line}");
        }
    }

    /// Every file-held certificate of a configuration: the TLS chain, a pinned
    /// IdP certificate and the signing certificates of a metadata file; a
    /// reload replaces them and drops the IdP groups of removed connections.
    #[test]
    fn the_certificates_of_a_configuration_and_of_idps_are_gauges() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n).display().to_string();
        let (tls, manual, meta) = (cert("tls", 1), cert("idp-manual", 2), cert("idp-meta", 3));
        std::fs::write(path("tls.crt"), tls.cert.pem()).unwrap();
        std::fs::write(path("tls.key"), tls.key_pair.serialize_pem()).unwrap();
        std::fs::write(path("idp.crt"), manual.cert.pem()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(meta.cert.der());
        let xml = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.test"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        );
        std::fs::write(path("idp.xml"), xml).unwrap();
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"
[server.tls]
cert = "{tls_crt}"
key = "{tls_key}"
[session]
secret = "0123456789abcdef0123456789abcdef0123"
[[connection]]
name = "pinned"
type = "saml"
idp_entity_id = "https://idp.example.test"
idp_sso_url = "https://idp.example.test/sso"
idp_certificate_file = "{idp_crt}"
home_realm_domains = ["pinned.example"]
[[connection]]
name = "meta"
type = "saml"
idp_metadata_file = "{idp_xml}"
home_realm_domains = ["meta.example"]
[[route]]
name = "app"
hosts = ["app.test"]
upstream = "http://127.0.0.1:9"
"#,
            tls_crt = path("tls.crt"),
            tls_key = path("tls.key"),
            idp_crt = path("idp.crt"),
            idp_xml = path("idp.xml"),
        );
        let settings = crate::config::load_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let m = crate::metrics::Metrics::new();
        m.set_idp_certificates("gone", vec![CertInfo::of_der(meta.cert.der()).unwrap()]);
        m.config_loaded(&settings, false);
        let out = m.render(crate::metrics::Format::Prometheus);
        let series: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("realmgate_certificate_not_after_seconds{"))
            .collect();
        let has = |kind: &str, name: &str, cn: &str, value: i64| {
            series.iter().any(|l| {
                l.starts_with(&format!(
                    "realmgate_certificate_not_after_seconds{{kind=\"{kind}\",name=\"{name}\",subject=\"CN={cn}\""
                )) && l.ends_with(&format!(" {value}"))
            })
        };
        assert!(has("tls_server", "server", "tls", 1_924_992_000), "{out}");
        assert!(
            has("idp_signing", "pinned", "idp-manual", 1_925_078_400),
            "{out}"
        );
        assert!(
            has("idp_signing", "meta", "idp-meta", 1_925_164_800),
            "{out}"
        );
        // The IdP group of a connection the configuration does not have is gone.
        assert_eq!(series.len(), 3, "{out}");
    }
}
