//! What the data plane serves for ACME (automatic certificates): answers
//! to the CA's challenges while an order is being validated — HTTP-01
//! tokens under `/.well-known/acme-challenge/` and TLS-ALPN-01 certificates
//! (RFC 8737) for handshakes that offer only `acme-tls/1` — the
//! certificates a node keeps in memory when it has no database, and the
//! names clients asked for that have no certificate yet.
//!
//! Written by the ACME manager (`tollgate-acme`), read on handshakes and
//! requests: reads take a read lock only while a challenge is pending or a
//! name is managed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rustls::sign::CertifiedKey;

use crate::TlsError;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The path prefix of HTTP-01 challenges (RFC 8555 §8.3).
pub const HTTP_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Which names may get a certificate: Kong's `domains` (exact names and
/// `*.example.com`) or any name (`allow_any_domain`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Domains {
    /// The configured names, lower-case.
    pub names: Vec<String>,
    /// Any name may.
    pub any: bool,
}

impl Domains {
    /// Whether `name` may get a certificate.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.any
            || self.names.iter().any(|d| match d.strip_prefix("*.") {
                Some(suffix) => name.strip_suffix(suffix).is_some_and(|head| {
                    head.ends_with('.') && !head[..head.len() - 1].contains('.')
                }),
                None => *d == name,
            })
    }
}

/// Receives the names handshakes asked for without a certificate.
pub type Wanted = Box<dyn Fn(&str) + Send + Sync>;

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The node's ACME state shared with the data plane.
#[derive(Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: RwLock<HashMap<String, String>>,
    http_pending: AtomicBool,
    /// TLS-ALPN-01: name → validation certificate.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Certificates kept in node memory (no database), by name.
    issued: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Managed names, and who hears about handshakes lacking a certificate.
    managed: RwLock<(Domains, Option<Arc<Wanted>>)>,
    active: AtomicBool,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

impl Challenges {
    /// Manages `domains` from now on, telling `wanted` about names asked
    /// for without a certificate; `None` turns ACME off.
    pub fn manage(&self, managed: Option<(Domains, Wanted)>) {
        match managed {
            Some((d, w)) => {
                *write(&self.managed) = (d, Some(Arc::new(w)));
                self.active.store(true, Ordering::Release);
            }
            None => {
                self.active.store(false, Ordering::Release);
                *write(&self.managed) = (Domains::default(), None);
            }
        }
    }

    /// Answers `key_authorization` for HTTP-01 `token`.
    pub fn set_http(&self, token: &str, key_authorization: &str) {
        let mut m = write(&self.http);
        m.insert(token.to_owned(), key_authorization.to_owned());
        self.http_pending.store(true, Ordering::Release);
    }

    /// Stops answering HTTP-01 `token`.
    pub fn remove_http(&self, token: &str) {
        let mut m = write(&self.http);
        m.remove(token);
        self.http_pending.store(!m.is_empty(), Ordering::Release);
    }

    /// The key authorization for a request to `path`, when it is a pending
    /// HTTP-01 challenge.
    pub fn http_answer(&self, path: &str) -> Option<String> {
        if !self.http_pending.load(Ordering::Acquire) {
            return None;
        }
        let token = path.strip_prefix(HTTP_CHALLENGE_PREFIX)?;
        read(&self.http).get(token).cloned()
    }

    /// Serves a TLS-ALPN-01 validation certificate for `name`, proving
    /// `key_authorization` (RFC 8737 §3: its SHA-256 in a critical
    /// acmeIdentifier extension).
    pub fn set_alpn(&self, name: &str, key_authorization_sha256: &[u8]) -> Result<(), TlsError> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(
            key_authorization_sha256,
        )];
        let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Certificate(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        // Built directly: the pair-check parser refuses the critical
        // acmeIdentifier extension that is the point of this certificate.
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signing = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let served = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
        write(&self.alpn).insert(name.to_ascii_lowercase(), served);
        Ok(())
    }

    /// Stops serving the TLS-ALPN-01 certificate of `name`.
    pub fn remove_alpn(&self, name: &str) {
        write(&self.alpn).remove(&name.to_ascii_lowercase());
    }

    /// The TLS-ALPN-01 certificate for `name`, while validation runs.
    pub fn alpn_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        read(&self.alpn).get(&name.to_ascii_lowercase()).cloned()
    }

    /// Keeps `cert` for `name` in node memory (ACME without a database).
    pub fn set_issued(&self, name: &str, cert: Arc<CertifiedKey>) {
        write(&self.issued).insert(name.to_ascii_lowercase(), cert);
    }

    /// The certificate for `name` kept in node memory; None when ACME is off.
    pub fn issued(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        read(&self.issued).get(&name.to_ascii_lowercase()).cloned()
    }

    /// A handshake asked for `name` and no certificate matched: tells the
    /// manager when the name is one it manages.
    pub fn want(&self, name: &str) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let wanted = {
            let m = read(&self.managed);
            if !m.0.matches(name) {
                return;
            }
            m.1.clone()
        };
        if let Some(w) = wanted {
            w(&name.to_ascii_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn domains_match_exact_names_and_one_label_wildcards() {
        let d = Domains {
            names: vec!["shop.example".into(), "*.api.example".into()],
            any: false,
        };
        assert!(d.matches("shop.example"));
        assert!(d.matches("SHOP.example"));
        assert!(d.matches("v1.api.example"));
        assert!(!d.matches("a.b.api.example"));
        assert!(!d.matches("api.example"));
        assert!(!d.matches("other.example"));
        assert!(Domains {
            names: vec![],
            any: true
        }
        .matches("anything.example"));
    }

    #[test]
    fn http_answers_only_pending_tokens() {
        let c = Challenges::default();
        assert_eq!(c.http_answer("/.well-known/acme-challenge/t1"), None);
        c.set_http("t1", "t1.thumb");
        assert_eq!(
            c.http_answer("/.well-known/acme-challenge/t1").as_deref(),
            Some("t1.thumb")
        );
        assert_eq!(c.http_answer("/.well-known/acme-challenge/t2"), None);
        assert_eq!(c.http_answer("/t1"), None);
        c.remove_http("t1");
        assert_eq!(c.http_answer("/.well-known/acme-challenge/t1"), None);
    }

    #[test]
    fn an_alpn_certificate_is_made_for_the_name() {
        let c = Challenges::default();
        c.set_alpn("shop.example", &[7u8; 32]).unwrap();
        assert!(c.alpn_certificate("shop.example").is_some());
        c.remove_alpn("shop.example");
        assert!(c.alpn_certificate("shop.example").is_none());
    }
}
