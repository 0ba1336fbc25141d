//! The server side of TLS listeners: the certificate for each handshake is
//! chosen by the client's SNI from the configuration's certificates and
//! SNIs (exact names first, then `*.example.com`, then `example.*`), else
//! the node's default certificate. The table is swapped atomically when the
//! configuration changes, so a certificate added, replaced or removed is
//! served from the next handshake on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::TlsError;

/// A certificate chain and its private key, ready to serve.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    use crate::PairPart::{Cert, Key};
    let bad = |part, reason: String| TlsError::Pair { part, reason };
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(Cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(Cert, "no PEM certificate".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(Key, e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| bad(Key, e.to_string()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| bad(Key, format!("does not match the certificate ({e})")))?;
    Ok(Arc::new(ck))
}

/// A certificate entity ready to serve: its `cert`/`key`, and its
/// `cert_alt`/`key_alt` when set (e.g. ECDSA next to RSA).
#[derive(Debug, Clone)]
pub struct Served {
    /// The main pair.
    pub main: Arc<CertifiedKey>,
    /// The alternate pair.
    pub alt: Option<Arc<CertifiedKey>>,
}

impl Served {
    /// The pair for a client offering signature `schemes`: the alternate
    /// when it is ECDSA and the client can verify it (as Kong prefers),
    /// else the first of main and alternate the client can verify, else
    /// the main one.
    pub fn choose(&self, schemes: &[rustls::SignatureScheme]) -> Arc<CertifiedKey> {
        let usable = |k: &Arc<CertifiedKey>| k.key.choose_scheme(schemes).is_some();
        if let Some(alt) = &self.alt {
            let ecdsa = alt.key.algorithm() == rustls::SignatureAlgorithm::ECDSA;
            if (ecdsa || !usable(&self.main)) && usable(alt) {
                return alt.clone();
            }
        }
        self.main.clone()
    }
}

impl From<Arc<CertifiedKey>> for Served {
    fn from(main: Arc<CertifiedKey>) -> Self {
        Served { main, alt: None }
    }
}

/// Certificates by server name.
#[derive(Debug, Default)]
pub struct SniTable {
    exact: HashMap<String, Served>,
    /// `*.example.com` as `.example.com`.
    leading: Vec<(String, Served)>,
    /// `example.*` as `example.`.
    trailing: Vec<(String, Served)>,
}

impl SniTable {
    /// Adds a server name (`a.example.com`, `*.example.com`, `example.*`).
    pub fn insert(&mut self, name: &str, key: impl Into<Served>) {
        let key = key.into();
        let name = name.to_ascii_lowercase();
        if let Some(rest) = name.strip_prefix('*') {
            self.leading.push((rest.to_owned(), key));
            // Longest suffix first: the most specific wildcard wins.
            self.leading.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        } else if let Some(rest) = name.strip_suffix('*') {
            self.trailing.push((rest.to_owned(), key));
            self.trailing.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        } else {
            self.exact.insert(name, key);
        }
    }

    /// The certificate for `name`, if one is configured.
    pub fn find(&self, name: &str) -> Option<&Served> {
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k);
        }
        let one_label = |rest: &str| !rest.is_empty() && !rest.contains('.');
        for (suffix, k) in &self.leading {
            if let Some(head) = name.strip_suffix(suffix.as_str()) {
                if one_label(head) {
                    return Some(k);
                }
            }
        }
        for (prefix, k) in &self.trailing {
            if let Some(tail) = name.strip_prefix(prefix.as_str()) {
                if one_label(tail) {
                    return Some(k);
                }
            }
        }
        None
    }
}

/// Chooses the certificate of each handshake.
#[derive(Debug)]
pub struct CertResolver {
    table: ArcSwap<SniTable>,
    default: Arc<CertifiedKey>,
    acme: std::sync::OnceLock<Arc<crate::acme::Challenges>>,
}

impl CertResolver {
    /// A resolver with no SNI entries yet, serving `default` to everyone.
    pub fn new(default: Arc<CertifiedKey>) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            table: ArcSwap::from_pointee(SniTable::default()),
            default,
            acme: std::sync::OnceLock::new(),
        })
    }

    /// Serves ACME's TLS-ALPN-01 validation certificates and the
    /// certificates `acme` keeps, and tells it about names without one.
    pub fn set_acme(&self, acme: Arc<crate::acme::Challenges>) {
        let _ = self.acme.set(acme);
    }

    /// Replaces the SNI table (from the next handshake on).
    pub fn replace(&self, table: SniTable) {
        self.table.store(Arc::new(table));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = self.acme.get();
        if let Some(acme) = acme {
            let mut alpn = hello.alpn().into_iter().flatten();
            if alpn.any(|p| p == crate::acme::ACME_TLS_ALPN) {
                // A CA validating TLS-ALPN-01: its certificate or nothing.
                return hello
                    .server_name()
                    .and_then(|name| acme.alpn_certificate(name));
            }
        }
        let table = self.table.load();
        let found = hello.server_name().and_then(|name| table.find(name));
        if let Some(served) = found {
            return Some(served.choose(hello.signature_schemes()));
        }
        if let (Some(acme), Some(name)) = (acme, hello.server_name()) {
            if let Some(issued) = acme.issued(name) {
                return Some(issued);
            }
            acme.want(name);
        }
        Some(self.default.clone())
    }
}

/// TLS sessions remembered by id (TLS 1.2 resumption without tickets).
const SESSION_CACHE: usize = 20_000;

/// The configuration of TLS listeners: TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`, certificates from `resolver`, sessions resumable; client
/// certificates asked for while `client_certs` is set (see
/// [`crate::client_auth`]).
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_certs: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(crate::client_auth::RequestClientCerts::new(client_certs))
        .with_cert_resolver(resolver);
    // `acme-tls/1` last: only ACME validation offers it, alone.
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        crate::acme::ACME_TLS_ALPN.to_vec(),
    ];
    // Session resumption: TLS 1.3 tickets (keys rotated every 6 hours,
    // per node) and a session cache for TLS 1.2 clients that ask by id.
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}

/// The node's default certificate: from `cert`/`key` files when given
/// (Kong's `ssl_cert`, `ssl_cert_key`), else a self-signed one made once
/// into `dir` (as Kong does on first start) and reused after.
pub fn default_certificate(
    files: Option<(&Path, &Path)>,
    dir: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| TlsError::Certificate(format!("{}: {e}", p.display())))
    };
    if let Some((cert, key)) = files {
        return certified_key(&read(cert)?, &read(key)?);
    }
    let (cert, key) = (dir.join("default.crt"), dir.join("default.key"));
    if cert.exists() && key.exists() {
        return certified_key(&read(&cert)?, &read(&key)?);
    }
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|e| TlsError::Certificate(format!("self-signed certificate: {e}")))?;
    let (cert_pem, key_pem) = (made.cert.pem(), made.key_pair.serialize_pem());
    std::fs::create_dir_all(dir)
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", dir.display())))?;
    write_private(&key, &key_pem)?;
    std::fs::write(&cert, &cert_pem)
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", cert.display())))?;
    certified_key(&cert_pem, &key_pem)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).map(|_| f))
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))?;
    f.flush()
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key_for(name: &str) -> Arc<CertifiedKey> {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        certified_key(&made.cert.pem(), &made.key_pair.serialize_pem()).unwrap()
    }

    fn key_with(alg: &'static rcgen::SignatureAlgorithm) -> Arc<CertifiedKey> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        certified_key(&cert.pem(), &key.serialize_pem()).unwrap()
    }

    #[test]
    fn the_alternate_certificate_is_served_to_clients_that_can_use_it() {
        use rustls::SignatureScheme::{ECDSA_NISTP256_SHA256, ED25519};
        let p256 = key_with(&rcgen::PKCS_ECDSA_P256_SHA256);
        let ed = key_with(&rcgen::PKCS_ED25519);
        // Main Ed25519, alternate ECDSA: ECDSA is preferred when usable.
        let served = Served {
            main: ed.clone(),
            alt: Some(p256.clone()),
        };
        assert!(Arc::ptr_eq(
            &served.choose(&[ED25519, ECDSA_NISTP256_SHA256]),
            &p256
        ));
        assert!(Arc::ptr_eq(&served.choose(&[ED25519]), &ed));
        // Main ECDSA, alternate Ed25519: the alternate only for clients
        // that cannot use the main one.
        let served = Served {
            main: p256.clone(),
            alt: Some(ed.clone()),
        };
        assert!(Arc::ptr_eq(
            &served.choose(&[ED25519, ECDSA_NISTP256_SHA256]),
            &p256
        ));
        assert!(Arc::ptr_eq(&served.choose(&[ED25519]), &ed));
    }

    #[test]
    fn names_match_exactly_then_by_wildcard() {
        let (a, wild, tail) = (key_for("a"), key_for("w"), key_for("t"));
        let mut t = SniTable::default();
        t.insert("a.example.com", a.clone());
        t.insert("*.example.com", wild.clone());
        t.insert("example.*", tail.clone());
        assert!(Arc::ptr_eq(&t.find("A.example.com").unwrap().main, &a));
        assert!(Arc::ptr_eq(&t.find("b.example.com").unwrap().main, &wild));
        assert!(t.find("x.b.example.com").is_none());
        assert!(Arc::ptr_eq(&t.find("example.org").unwrap().main, &tail));
        assert!(t.find("other.org").is_none());
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let one = rcgen::generate_simple_self_signed(vec!["one".to_owned()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["two".to_owned()]).unwrap();
        let err = certified_key(&one.cert.pem(), &two.key_pair.serialize_pem())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(certified_key("not a pem", "x").is_err());
    }
}
