//! TLS with rustls (the ring provider): the certificate chain and key read from PEM files at
//! start and again on SIGHUP; a reload that fails keeps the configuration being served.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Where the certificate chain and its key are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The TLS configuration being served, replaced whole by a reload that succeeds.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the files; an error when they cannot be read or do not make a configuration.
    pub fn load(files: TlsFiles) -> Result<Tls> {
        let config = read(&files)?;
        Ok(Tls { files, current: RwLock::new(config) })
    }

    /// Reads the files again; on error the configuration being served stays.
    pub fn reload(&self) -> Result<()> {
        let config = read(&self.files)?;
        *self.current.write().expect("the TLS lock is never poisoned") = config;
        Ok(())
    }

    /// The configuration a new connection is served with.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().expect("the TLS lock is never poisoned").clone())
    }
}

fn read(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect())
        .with_context(|| format!("cannot read a certificate chain from {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot choose the TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!("the key in {} does not fit the certificate in {}", files.key.display(), files.cert.display())
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
