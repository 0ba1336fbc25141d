//! The certificates TLS listeners serve: the node's default one (from
//! `ssl_cert`/`ssl_cert_key`, else self-signed under the prefix) and the
//! configuration's certificates by SNI, swapped in with each configuration.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_model::Config;
use tollgate_tls::server::{certified_key, CertResolver, Served, SniTable};
use uuid::Uuid;

use crate::settings::Settings;

/// The resolver for the node's TLS listeners (`None` when no proxy
/// listener has `ssl`).
pub fn resolver(settings: &Settings) -> anyhow::Result<Option<Arc<CertResolver>>> {
    if !settings.proxy_listen.iter().any(|l| l.ssl) {
        return Ok(None);
    }
    let files = settings
        .ssl_cert
        .as_ref()
        .map(|(c, k)| (c.as_path(), k.as_path()));
    let default = tollgate_tls::server::default_certificate(files, &settings.prefix.join("ssl"))
        .map_err(|e| anyhow::anyhow!("ssl_cert: {e}"))?;
    Ok(Some(CertResolver::new(default)))
}

/// Parsed certificates kept between configurations, so a write that does
/// not touch a certificate does not parse it again.
#[derive(Debug, Default)]
pub struct ParsedCertificates {
    /// certificate id → (hash of its PEM texts, the parsed pairs).
    by_id: std::sync::Mutex<HashMap<Uuid, (u64, Served)>>,
}

fn pem_hash(c: &tollgate_model::Certificate) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&c.cert, &c.key, &c.cert_alt, &c.key_alt).hash(&mut h);
    h.finish()
}

/// Parses a certificate entity's pairs; the error names the field at fault.
fn parse(c: &tollgate_model::Certificate) -> Result<Served, String> {
    let pair = |cert: &str, key: &str, fields: (&str, &str)| {
        certified_key(cert, key).map_err(|e| match e {
            tollgate_tls::TlsError::Pair { part, reason } => {
                let field = match part {
                    tollgate_tls::PairPart::Cert => fields.0,
                    tollgate_tls::PairPart::Key => fields.1,
                };
                format!("certificate {}: {field}: {reason}", c.id)
            }
            other => format!("certificate {}: {other}", c.id),
        })
    };
    let main = pair(&c.cert, &c.key, ("cert", "key"))?;
    let alt = match (&c.cert_alt, &c.key_alt) {
        (Some(cert), Some(key)) => Some(pair(cert, key, ("cert_alt", "key_alt"))?),
        _ => None,
    };
    Ok(Served { main, alt })
}

impl ParsedCertificates {
    /// The SNI table of a configuration; an error names a certificate that
    /// cannot be served (a key that does not match its certificate, a PEM
    /// that does not parse), so such a configuration is refused.
    pub fn sni_table(&self, config: &Config) -> Result<SniTable, String> {
        let mut cache = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let mut parsed = HashMap::new();
        for c in &config.certificates {
            let hash = pem_hash(c);
            let served = match cache.get(&c.id) {
                Some((h, k)) if *h == hash => k.clone(),
                _ => parse(c)?,
            };
            parsed.insert(c.id, (hash, served));
        }
        // Only the current configuration's certificates stay cached.
        *cache = parsed;
        let mut table = SniTable::default();
        for sni in &config.snis {
            if let Some((_, k)) = cache.get(&sni.certificate) {
                table.insert(&sni.name, k.clone());
            }
        }
        Ok(table)
    }
}
