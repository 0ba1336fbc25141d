//! TLS with rustls (the `ring` provider, TLS 1.2 and 1.3): for the
//! connections Tollgate opens itself (Redis, JWKS documents), and
//! ([`server`]) for its TLS listeners.
//!
//! Which authorities are trusted follows Kong's `lua_ssl_trusted_certificate`
//! setting: a comma-separated list of PEM files and/or `system` (the
//! operating system's store). The verified configuration is built on first
//! use, so a node that never opens a TLS connection never reads a store.

pub mod acme;
pub mod client_auth;
mod insecure;
pub mod server;
pub mod upstream;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

pub use rustls;
pub use tokio_rustls;
pub use tokio_rustls::client::TlsStream;

/// Why a TLS client could not be set up or connect.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A trusted-certificate file could not be read or holds no certificate.
    #[error("lua_ssl_trusted_certificate: {path}: {reason}")]
    TrustedFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No authority at all to verify against.
    #[error("lua_ssl_trusted_certificate: no trusted certificate could be loaded")]
    NoRoots,
    /// A certificate or key that cannot be served.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A certificate/key pair that cannot be served, by the part at fault.
    #[error("certificate: {part}: {reason}")]
    Pair {
        /// Which PEM is at fault: the certificate or the key.
        part: PairPart,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The name to verify is not a DNS name or an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The handshake failed (certificate refused, protocol error, I/O).
    #[error("TLS handshake with {name}: {source}")]
    Handshake {
        /// The server name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The half of a certificate/key pair an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPart {
    /// The certificate (chain).
    Cert,
    /// The private key (unreadable, or not the certificate's).
    Key,
}

impl std::fmt::Display for PairPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PairPart::Cert => "cert",
            PairPart::Key => "key",
        })
    }
}

/// What to trust, parsed from `lua_ssl_trusted_certificate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// The operating system's store.
    pub system: bool,
    /// PEM files of extra authorities.
    pub files: Vec<PathBuf>,
}

impl Default for Trust {
    /// `system`, as Kong's default.
    fn default() -> Self {
        Trust {
            system: true,
            files: Vec::new(),
        }
    }
}

impl Trust {
    /// Parses the setting: comma-separated, `system` or file paths; `off`
    /// or empty trusts nothing (every verified connection fails).
    pub fn parse(value: &str) -> Trust {
        let mut trust = Trust {
            system: false,
            files: Vec::new(),
        };
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "system" => trust.system = true,
                "off" => {}
                path => trust.files.push(PathBuf::from(path)),
            }
        }
        trust
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        if self.system {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("system certificate store: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if ignored > 0 {
                tracing::debug!(added, ignored, "system certificate store");
            }
        }
        for path in &self.files {
            let bad = |reason: String| TlsError::TrustedFile {
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        Ok(roots)
    }
}

/// Adds every certificate of the PEM texts `pems` to `roots`.
pub(crate) fn add_pem_roots(roots: &mut RootCertStore, pems: &[&str]) -> Result<(), TlsError> {
    for pem in pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| TlsError::Certificate(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Certificate(e.to_string()))?;
        }
    }
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The node's TLS client settings: a verifying configuration (built on
/// first use from [`Trust`]) and a non-verifying one for connections
/// configured with verification off (Kong's `ssl_verify: false`).
#[derive(Debug)]
pub struct ClientTls {
    trust: Trust,
    verified: OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls::new(Trust::default())
    }
}

impl ClientTls {
    /// Client settings trusting `trust`.
    pub fn new(trust: Trust) -> ClientTls {
        ClientTls {
            trust,
            verified: OnceLock::new(),
        }
    }

    /// Checks now that the trusted files load (for start-up errors).
    pub fn check(&self) -> Result<(), TlsError> {
        if self.trust.files.is_empty() {
            return Ok(());
        }
        self.trust.roots().map(|_| ())
    }

    /// The configuration that verifies servers against the trusted roots.
    pub fn verified(&self) -> Result<Arc<ClientConfig>, String> {
        self.verified
            .get_or_init(|| {
                let roots = self.trust.roots().map_err(|e| e.to_string())?;
                ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The configuration for `verify` on or off.
    pub fn config(&self, verify: bool) -> Result<Arc<ClientConfig>, String> {
        if verify {
            self.verified()
        } else {
            insecure::config(provider())
        }
    }
}

/// Runs the TLS handshake over `tcp`, sending `name` as SNI (not for IP
/// addresses) and verifying the certificate for it when `config` verifies.
pub async fn connect(
    config: Arc<ClientConfig>,
    name: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let server =
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(server, tcp)
        .await
        .map_err(|source| TlsError::Handshake {
            name: name.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trust_setting_lists_system_and_files() {
        assert_eq!(Trust::parse("system"), Trust::default());
        assert_eq!(
            Trust::parse(" /etc/ca.pem , system"),
            Trust {
                system: true,
                files: vec![PathBuf::from("/etc/ca.pem")]
            }
        );
        assert_eq!(
            Trust::parse("off"),
            Trust {
                system: false,
                files: vec![]
            }
        );
    }

    #[test]
    fn a_missing_trusted_file_is_named() {
        let tls = ClientTls::new(Trust::parse("/nonexistent/ca.pem"));
        let err = tls.check().map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(tls.verified().is_err());
    }

    #[test]
    fn nothing_trusted_is_an_error_not_an_open_door() {
        let tls = ClientTls::new(Trust::parse("off"));
        assert!(tls.verified().is_err());
        assert!(tls.config(false).is_ok());
    }
}
