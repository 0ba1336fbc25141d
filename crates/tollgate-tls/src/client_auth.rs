//! Client certificates on TLS listeners (mTLS): the handshake asks for one
//! when some route wants it and accepts any (the chain is verified per
//! route, by the `mtls-auth` plugin, against that route's authorities);
//! the chain check and the subject's common name for that plugin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::insecure::AcceptAny;
use crate::{provider, TlsError};

/// Asks clients for a certificate while `wanted` is set, and takes any
/// (its possession is still proven by the handshake signature).
#[derive(Debug)]
pub struct RequestClientCerts {
    wanted: Arc<AtomicBool>,
    /// The handshake-signature checks (the same for both sides).
    signatures: AcceptAny,
}

impl RequestClientCerts {
    /// A verifier that asks while `wanted` is true.
    pub fn new(wanted: Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(RequestClientCerts {
            wanted,
            signatures: AcceptAny(provider()),
        })
    }
}

impl ClientCertVerifier for RequestClientCerts {
    fn offer_client_auth(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

/// Verifies client certificate chains against a set of authorities.
#[derive(Debug, Clone)]
pub struct ChainVerifier(Arc<dyn ClientCertVerifier>);

impl ChainVerifier {
    /// A verifier trusting the PEM certificates `cas`.
    pub fn new(cas: &[&str]) -> Result<ChainVerifier, TlsError> {
        let mut roots = RootCertStore::empty();
        crate::add_pem_roots(&mut roots, cas)?;
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        Ok(ChainVerifier(v))
    }

    /// Whether `chain` (leaf first) is valid now and issued by one of the
    /// authorities.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        self.0
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .is_ok()
    }
}

/// One DER element: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject of a certificate as (attribute OID bytes, value) pairs.
fn subject(der: &[u8]) -> Option<Vec<(&[u8], String)>> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (_, mut name, _) = element(rest)?;
    let mut out = Vec::new();
    while !name.is_empty() {
        let (_, set, next) = element(name)?;
        name = next;
        let mut set = set;
        while !set.is_empty() {
            let (_, atv, next) = element(set)?;
            set = next;
            let (_, oid, value) = element(atv)?;
            let (_, value, _) = element(value)?;
            out.push((oid, String::from_utf8_lossy(value).into_owned()));
        }
    }
    Some(out)
}

const OID_CN: [u8; 3] = [0x55, 0x04, 0x03];

/// The subject's common name (the last one, as OpenSSL picks).
pub fn subject_cn(der: &[u8]) -> Option<String> {
    subject(der)?
        .into_iter()
        .filter(|(oid, _)| *oid == OID_CN)
        .map(|(_, v)| v)
        .next_back()
}

/// The subject as an RFC 4514-style string (`CN=alice,O=Example`), most
/// specific first, for `authenticated_group_by: DN`.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let names: &[([u8; 3], &str)] = &[
        ([0x55, 0x04, 0x03], "CN"),
        ([0x55, 0x04, 0x06], "C"),
        ([0x55, 0x04, 0x07], "L"),
        ([0x55, 0x04, 0x08], "ST"),
        ([0x55, 0x04, 0x0a], "O"),
        ([0x55, 0x04, 0x0b], "OU"),
    ];
    let parts: Vec<String> = subject(der)?
        .into_iter()
        .rev()
        .map(|(oid, v)| {
            let label = names
                .iter()
                .find(|(o, _)| *o == oid)
                .map_or("?", |(_, l)| *l);
            format!("{label}={}", escape_dn_value(&v))
        })
        .collect();
    Some(parts.join(","))
}

/// Escapes an attribute value as RFC 4514 asks (`,+"\<>;`, a leading `#`
/// or space, a trailing space), so distinct subjects stay distinct.
fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn common_name_and_dn_are_read_from_the_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["alice.example".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_cn(cert.der()).as_deref(), Some("alice"));
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("CN=alice,O=Example")
        );
        assert_eq!(subject_cn(b"\x30\x03junk"), None);
        assert_eq!(escape_dn_value("alice,O=Example"), "alice\\,O=Example");
        assert_eq!(escape_dn_value(" #x "), "\\ #x\\ ");
    }
}
