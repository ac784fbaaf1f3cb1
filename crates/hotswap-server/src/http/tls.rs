//! The gateway's TLS: a certificate chain and key read from PEM files into
//! a rustls config that offers HTTP/2 and HTTP/1.1 by ALPN. A reload reads
//! the files again (certificate rotation); until the new ones load, the old
//! config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// `[tls]`: the data plane over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM: the server's certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate or its key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM object of the kind.
    #[error("tls.{field} `{}`: {why}", path.display())]
    File {
        /// `cert` or `key`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the pair (a key that does not match the certificate,
    /// an unsupported key type).
    #[error("tls: the certificate and key cannot be used together: {0}")]
    Pair(rustls::Error),
}

/// The protocols offered by ALPN, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl TlsConfig {
    /// Reads the files and builds the rustls config they mean.
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::File {
            field: "key",
            path: self.key.clone(),
            why: pem_error(e, "private key"),
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Pair)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(TlsError::Pair)?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The cryptography every TLS config of hotswap uses: ring, not aws-lc-rs
/// (which needs cmake and a C toolchain to build). rustls 0.23.48
/// deprecates ring's provider only because it lacks post-quantum key
/// exchange, which no client here requires.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |why: String| TlsError::File {
        field: "cert",
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(pem_error(e, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(pem_error(e, "certificate")))?;
    if certs.is_empty() {
        return Err(error("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(e) => format!("cannot read it: {e}"),
        E::NoItemsFound => format!("holds no PEM {what}"),
        e => format!("is not a PEM {what}: {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_files_say_which_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let missing = TlsConfig {
            cert: dir.path().join("nope.pem"),
            key: junk.clone(),
        };
        let e = missing.load().unwrap_err().to_string();
        assert!(
            e.starts_with("tls.cert `") && e.contains("cannot read it"),
            "{e}"
        );
        let empty = TlsConfig {
            cert: junk.clone(),
            key: junk,
        };
        let e = empty.load().unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }
}
