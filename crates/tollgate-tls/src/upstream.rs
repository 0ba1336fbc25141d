//! Client configurations for TLS to backends (`https` services): Kong's
//! `tls_verify`, `tls_verify_depth`, `ca_certificates` and
//! `client_certificate`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::{insecure::AcceptAny, provider, ClientTls, PairPart, TlsError};

/// What one service asks of TLS to its backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamTls<'a> {
    /// Verify the backend's certificate.
    pub verify: bool,
    /// Most intermediate certificates accepted between the backend's
    /// certificate and the trust anchor (OpenSSL's verify depth).
    pub depth: Option<u8>,
    /// PEM certificates trusted on top of the node's authorities.
    pub extra_cas: &'a [&'a str],
    /// A certificate chain and key (PEM) presented to the backend.
    pub client: Option<(&'a str, &'a str)>,
    /// Offer HTTP/2 (ALPN `h2`, for gRPC) instead of HTTP/1.1.
    pub h2: bool,
}

/// Refuses chains with more intermediates than allowed, then defers.
#[derive(Debug)]
struct Depth {
    inner: Arc<dyn ServerCertVerifier>,
    max: usize,
}

impl ServerCertVerifier for Depth {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if intermediates.len() > self.max {
            return Err(rustls::Error::General(format!(
                "certificate chain longer than tls_verify_depth {}",
                self.max
            )));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl ClientTls {
    /// A client configuration for a backend, offering HTTP/1.1 or, with
    /// `h2`, HTTP/2 (ALPN).
    pub fn upstream(&self, spec: &UpstreamTls<'_>) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = if spec.verify {
            let mut roots = self.trust.roots()?;
            crate::add_pem_roots(&mut roots, spec.extra_cas)?;
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Certificate(e.to_string()))?;
            match spec.depth {
                Some(d) => Arc::new(Depth {
                    inner: webpki,
                    max: usize::from(d),
                }),
                None => webpki,
            }
        } else {
            Arc::new(AcceptAny(provider.clone()))
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match spec.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let bad = |part, reason: String| TlsError::Pair { part, reason };
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(PairPart::Cert, e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| bad(PairPart::Key, e.to_string()))?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        config.alpn_protocols = if spec.h2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Arc::new(config))
    }
}
