//! Certificate keys (ECDSA P-256 or RSA, Kong's `cert_type`) and what the
//! renewal needs to know of an issued certificate.

use crate::AcmeError;
use std::time::SystemTime;
use tollgate_tls::rustls::pki_types::pem::PemObject;
use tollgate_tls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use x509_cert::der::Decode;

/// A new key for a certificate: `ecc` (P-256) or `rsa` of `rsa_bits`.
pub(crate) fn generate(cert_type: &str, rsa_bits: u32) -> Result<rcgen::KeyPair, AcmeError> {
    let key = |e: String| AcmeError::Key(e);
    if cert_type == "ecc" {
        return rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| key(e.to_string()));
    }
    use rsa::pkcs8::EncodePrivateKey;
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, rsa_bits as usize)
        .map_err(|e| key(e.to_string()))?;
    let der = private.to_pkcs8_der().map_err(|e| key(e.to_string()))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| key(e.to_string()))
}

/// What a stored certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// When it stops being valid.
    pub not_after: SystemTime,
    /// Its serial number, hex.
    pub serial: String,
}

/// The facts of the first certificate of `pem` (None when it cannot be read).
pub fn facts(pem: &str) -> Option<CertFacts> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    let serial = tbs
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(CertFacts {
        not_after: std::time::UNIX_EPOCH + tbs.validity.not_after.to_date_time().unix_duration(),
        serial,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn facts_read_expiry_and_serial() {
        let key = generate("ecc", 0).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        params.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0x0b]));
        let cert = params.self_signed(&key).unwrap();
        let f = facts(&cert.pem()).unwrap();
        assert_eq!(f.serial, "0a0b");
        let secs = f
            .not_after
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1_925_078_400);
        assert!(facts("not a certificate").is_none());
    }
}
