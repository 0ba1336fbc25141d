//! The certificates TLS listeners serve: the node's default one (from
//! `ssl_cert`/`ssl_cert_key`, else self-signed under the prefix) and the
//! configuration's certificates by SNI, swapped in with each configuration.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_model::Config;
use tollgate_tls::rustls::sign::CertifiedKey;
use tollgate_tls::server::{certified_key, CertResolver, SniTable};
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
    /// certificate id → (hash of its PEM texts, the parsed pair).
    by_id: std::sync::Mutex<HashMap<Uuid, (u64, Arc<CertifiedKey>)>>,
}

fn pem_hash(cert: &str, key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (cert, key).hash(&mut h);
    h.finish()
}

impl ParsedCertificates {
    /// The SNI table of a configuration. A certificate that cannot be
    /// served (its key does not match, a PEM does not parse) is left out
    /// and logged.
    pub fn sni_table(&self, config: &Config) -> SniTable {
        let mut cache = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = HashMap::new();
        for c in &config.certificates {
            let hash = pem_hash(&c.cert, &c.key);
            match cache.get(&c.id) {
                Some((h, k)) if *h == hash => {
                    keys.insert(c.id, k.clone());
                }
                _ => match certified_key(&c.cert, &c.key) {
                    Ok(k) => {
                        keys.insert(c.id, k);
                    }
                    Err(e) => tracing::warn!(certificate = %c.id, "not served: {e}"),
                },
            }
        }
        // Only the current configuration's certificates stay cached.
        cache.clear();
        for c in &config.certificates {
            if let Some(k) = keys.get(&c.id) {
                cache.insert(c.id, (pem_hash(&c.cert, &c.key), k.clone()));
            }
        }
        let mut table = SniTable::default();
        for sni in &config.snis {
            if let Some(k) = keys.get(&sni.certificate) {
                table.insert(&sni.name, k.clone());
            }
        }
        table
    }
}
