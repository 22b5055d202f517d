//! HTTPS for the hub's HTTP listener: a certificate chain and its private key, PEM files named in
//! `hub.toml` (`[http] tls_cert`, `tls_key`). rustls with the ring provider; TLS 1.2 and 1.3 only.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS setting that cannot be used; each names the `hub.toml` key to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("`http.tls_cert` ({path}): {message}")]
    Cert { path: String, message: String },
    #[error("`http.tls_key` ({path}): {message}")]
    Key { path: String, message: String },
    #[error("`http.tls_key` does not belong to `http.tls_cert`, or is not usable: {0}")]
    Mismatch(rustls::Error),
}

/// The server configuration from the two PEM files, checked: at least one certificate, one private key
/// (PKCS#8, PKCS#1 or SEC1), and a key that matches the first certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key = private_key(key)?;
    // ring rather than aws-lc-rs keeps cmake and minutes out of the build; the price, which rustls flags
    // as a deprecation, is no post-quantum key exchange (classical X25519/P-256 only).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Cert {
        path: path.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
            e => e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_name_their_key() {
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let missing = d.path().join("missing.pem");
        let e = server_config(&missing, &empty).unwrap_err().to_string();
        assert!(e.starts_with("`http.tls_cert`"), "{e}");
        let e = server_config(&empty, &empty).unwrap_err().to_string();
        assert!(
            e.starts_with("`http.tls_cert`") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
