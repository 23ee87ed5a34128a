//! TLS termination with rustls: the server configuration built from the PEM
//! files of `[server.tls]`, re-read on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// Why `[server.tls]` gave no usable server configuration: each names the
/// key and the file, and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
    #[error(
        "server.tls: the certificate in {} and the key in {} do not form a usable pair ({error}); \
         expected the key that belongs to the first (leaf) certificate",
        .cert.display(),
        .key.display()
    )]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
    #[error(
        "server.tls.cert: cannot read {}: {error}; expected a readable PEM certificate chain",
        .path.display()
    )]
    ReadCert {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "server.tls.cert: {} is not valid PEM ({error}); expected -----BEGIN CERTIFICATE----- blocks",
        .path.display()
    )]
    CertPem {
        path: PathBuf,
        error: rustls_pki_types::pem::Error,
    },
    #[error(
        "server.tls.cert: {} holds no certificate; expected -----BEGIN CERTIFICATE----- blocks, leaf first",
        .path.display()
    )]
    NoCert { path: PathBuf },
    #[error(
        "server.tls.key: cannot read {}: {error}; expected a readable PEM private key",
        .path.display()
    )]
    ReadKey {
        path: PathBuf,
        error: std::io::Error,
    },
    // Never the file's content nor the parser's word on it: it is the private key.
    #[error(
        "server.tls.key: {} holds no usable private key; expected a PEM PKCS#8, PKCS#1 or SEC1 key",
        .path.display()
    )]
    Key { path: PathBuf },
}

/// Loads the certificate chain and key and builds a server config that
/// offers HTTP/2 and HTTP/1.1 by ALPN. Errors name the file and what to do.
pub fn load(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&settings.cert)?;
    let key = read_key(&settings.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::Pair {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
            error,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|error| TlsError::ReadCert {
        path: path.to_owned(),
        error,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::CertPem {
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|error| TlsError::ReadKey {
        path: path.to_owned(),
        error,
    })?;
    // Never echo the file's content: it is the private key.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Key {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> TlsSettings {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let settings = TlsSettings {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&settings.cert, cert.cert.pem()).unwrap();
        std::fs::write(&settings.key, cert.key_pair.serialize_pem()).unwrap();
        settings
    }

    #[test]
    fn loads_a_pair_and_offers_h2_then_http11() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load(&write_pair(dir.path())).unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn missing_garbage_or_mismatched_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_pair(dir.path());

        let missing = TlsSettings {
            cert: dir.path().join("nope.crt"),
            key: good.key.clone(),
        };
        let e = load(&missing).unwrap_err().to_string();
        assert!(
            e.contains("server.tls.cert") && e.contains("nope.crt"),
            "{e}"
        );

        std::fs::write(dir.path().join("junk.key"), "not a key").unwrap();
        let junk = TlsSettings {
            cert: good.cert.clone(),
            key: dir.path().join("junk.key"),
        };
        let e = load(&junk).unwrap_err().to_string();
        assert!(
            e.contains("server.tls.key") && !e.contains("not a key"),
            "{e}"
        );

        let other = tempfile::tempdir().unwrap();
        let other = write_pair(other.path());
        let mismatched = TlsSettings {
            cert: good.cert,
            key: other.key,
        };
        assert!(load(&mismatched).is_err());
    }
}
