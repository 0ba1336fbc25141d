//! The certificates TLS listeners serve: the node's default one (from
//! `ssl_cert`/`ssl_cert_key`, else self-signed under the prefix) and the
//! configuration's certificates by SNI, swapped in with each configuration.

use std::sync::Arc;

use tollgate_model::Config;
use tollgate_tls::server::{certified_key, CertResolver, SniTable};

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

/// The SNI table of a configuration. A certificate that cannot be served
/// (its key does not match, a PEM does not parse) is left out and logged.
pub fn sni_table(config: &Config) -> SniTable {
    let mut keys = std::collections::HashMap::new();
    for c in &config.certificates {
        match certified_key(&c.cert, &c.key) {
            Ok(k) => {
                keys.insert(c.id, k);
            }
            Err(e) => tracing::warn!(certificate = %c.id, "not served: {e}"),
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
