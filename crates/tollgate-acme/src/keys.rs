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

/// What a stored certificate says about itself (Kong's
/// `GET /acme/certificates` fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// When it starts being valid.
    pub not_before: SystemTime,
    /// When it stops being valid.
    pub not_after: SystemTime,
    /// Its serial number, upper-case hex bytes joined by colons.
    pub serial: String,
    /// The issuer's common name.
    pub issuer_cn: Option<String>,
    /// `rsaEncryption` or `id-ecPublicKey` (else the key algorithm's OID).
    pub pubkey_type: String,
    /// SHA-256 of the certificate (DER), lower-case hex.
    pub digest: String,
}

impl CertFacts {
    /// Whether `now` is within the validity period.
    pub fn valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

fn system_time(t: &x509_cert::time::Time) -> SystemTime {
    std::time::UNIX_EPOCH + t.to_date_time().unix_duration()
}

/// A time as Kong prints it: `2026-11-28 12:00:00` (UTC).
pub fn kong_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match x509_cert::der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs)) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        ),
        Err(_) => String::new(),
    }
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
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let issuer = tbs.issuer.to_string();
    let issuer_cn = issuer
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN="))
        .map(str::to_owned);
    let pubkey_type = match tbs
        .subject_public_key_info
        .algorithm
        .oid
        .to_string()
        .as_str()
    {
        "1.2.840.113549.1.1.1" => "rsaEncryption".to_owned(),
        "1.2.840.10045.2.1" => "id-ecPublicKey".to_owned(),
        other => other.to_owned(),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(CertFacts {
        not_before: system_time(&tbs.validity.not_before),
        not_after: system_time(&tbs.validity.not_after),
        serial,
        issuer_cn,
        pubkey_type,
        digest,
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
        assert_eq!(f.serial, "0A:0B");
        assert_eq!(f.pubkey_type, "id-ecPublicKey");
        assert_eq!(f.digest.len(), 64);
        assert_eq!(kong_date(f.not_after), "2031-01-02 00:00:00");
        let secs = f
            .not_after
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1_925_078_400);
        assert!(facts("not a certificate").is_none());
    }
}
