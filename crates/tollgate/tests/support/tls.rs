//! Certificates made for a test (a CA and a server certificate it signs,
//! written as PEM files), and a TLS server configuration that serves them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_tls::rustls;

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it, as
/// PEM text and as files in `dir`.
pub struct TestPki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestPki {
    pub fn new(dir: &Path) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tollgate test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let pki = TestPki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
            ca,
            ca_key,
        };
        std::fs::write(&pki.ca_file, &pki.ca_pem).unwrap();
        std::fs::write(&pki.cert_file, &pki.cert_pem).unwrap();
        std::fs::write(&pki.key_file, &pki.key_pem).unwrap();
        pki
    }

    /// A server certificate for `localhost` and 127.0.0.1 issued through an
    /// intermediate CA: (chain PEM, leaf first; key PEM).
    pub fn issue_via_intermediate(&self) -> (String, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mid_key = KeyPair::generate().unwrap();
        let mut mid = CertificateParams::new(Vec::<String>::new()).unwrap();
        mid.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        mid.distinguished_name
            .push(DnType::CommonName, "Tollgate test intermediate");
        let mid = mid.signed_by(&mid_key, &self.ca, &self.ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &mid, &mid_key)
            .unwrap();
        (format!("{}{}", leaf.pem(), mid.pem()), key.serialize_pem())
    }

    /// A server configuration presenting `chain` (PEM, leaf first) and `key`.
    pub fn server_config_for(chain: &str, key: &str) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<_> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        )
    }

    /// Another certificate signed by the CA, for `names`: (cert PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        self.sign(names, rcgen::KeyPair::generate().unwrap())
    }

    /// A certificate for `names` with `key`, signed by the CA.
    fn sign(&self, names: &[&str], key: rcgen::KeyPair) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server certificate for `names` with a 2048-bit RSA key (the CA's
    /// others are ECDSA P-256): (cert PEM, key PEM).
    pub fn issue_rsa(&self, names: &[&str]) -> (String, String) {
        use rsa::pkcs8::EncodePrivateKey;
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let der = private.to_pkcs8_der().unwrap();
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
        let key =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
        self.sign(names, key)
    }

    /// A client certificate signed by the CA whose subject's common name
    /// is `cn`: (cert PEM, key PEM).
    pub fn issue_client(&self, cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client configuration that trusts the CA (for a server using
    /// this PKI's certificate) and presents `cert` (PEM and key).
    pub fn client_config_with_cert(&self, cert: &(String, String)) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let chain = vec![CertificateDer::from_pem_slice(cert.0.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    /// A rustls client configuration trusting the CA (or, with `verify`
    /// false, any certificate), offering `alpn`.
    pub fn client_config(&self, verify: bool, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let trust = if verify {
            tollgate_tls::Trust::parse(self.ca_file.to_str().unwrap())
        } else {
            tollgate_tls::Trust::parse("off")
        };
        let tls = tollgate_tls::ClientTls::new(trust);
        let mut config = (*tls.config(verify).unwrap()).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A rustls server configuration presenting the certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_with(false)
    }

    /// The same, and, with `require_clients`, asking every client for a
    /// certificate signed by the CA (mTLS).
    pub fn server_config_with(&self, require_clients: bool) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_clients {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(certs, key).unwrap())
    }
}

/// The answer to one HTTPS request, with the certificate the server showed.
pub struct HttpsGot {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    pub peer_cert: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
}

/// One request over a new TLS connection to `addr`, sending `sni`, with
/// HTTP/2 when ALPN picks it, else HTTP/1.1.
pub async fn https(
    config: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    sni: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Result<HttpsGot, String> {
    use http_body_util::{BodyExt, Full};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tollgate_tls::connect(config, sni, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let peer_cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let alpn = session.alpn_protocol().map(|p| p.to_vec());
    let h2 = alpn.as_deref() == Some(b"h2");
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://{sni}{path}"));
    if !h2 {
        req = req.header("host", sni);
    }
    let req = match body {
        Some((ct, b)) => req
            .header("content-type", ct)
            .body(Full::new(bytes::Bytes::from(b.to_owned()))),
        None => req.body(Full::new(bytes::Bytes::new())),
    }
    .unwrap();
    let io = hyper_util::rt::TokioIo::new(tls);
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(HttpsGot {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        peer_cert,
        alpn,
    })
}

/// The DER of the first certificate in a PEM.
pub fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}
