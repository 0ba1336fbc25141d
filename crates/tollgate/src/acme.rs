//! The node's side of ACME: certificates kept in the database as Kong's
//! certificate and SNI entities (tagged `acme`), the enabled acme plugin's
//! config handed to the manager with each configuration, and the Admin
//! API's `/acme` endpoints.

use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock, Weak};
use tollgate_acme::{Acme, AcmeError, CertStore, StoredCert};
use tollgate_admin::acme::CreateFuture;
use tollgate_admin::kinds::Kind;
use tollgate_admin::state::{Entry, Op};
use tollgate_admin::{AcmeFailure, ControlPlane};
use tollgate_model::Config;
use uuid::Uuid;

/// The tag on entities the ACME manager wrote.
const TAG: &str = "acme";

/// Certificates in the database (`storage: kong`): every node sharing it
/// serves them through the ordinary SNI table.
#[derive(Debug, Default)]
pub struct DatabaseStore {
    cp: OnceLock<Weak<ControlPlane>>,
}

impl DatabaseStore {
    /// Writes through `cp` from now on (it is opened after the manager).
    pub fn attach(&self, cp: &Arc<ControlPlane>) {
        let _ = self.cp.set(Arc::downgrade(cp));
    }

    fn cp(&self) -> Result<Arc<ControlPlane>, String> {
        self.cp
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| "the database is not open".to_owned())
    }
}

fn tagged(body: &Map<String, Value>) -> bool {
    body.get("tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|v| v == TAG))
}

impl CertStore for DatabaseStore {
    fn list(&self) -> Vec<StoredCert> {
        let Ok(cp) = self.cp() else {
            return Vec::new();
        };
        cp.list(Kind::Certificates)
            .into_iter()
            .filter(|e| tagged(&e.body))
            .map(|e| StoredCert {
                names: cp
                    .children(Kind::Snis, "certificate", e.id)
                    .iter()
                    .filter_map(|s| s.body.get("name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
                cert_pem: e
                    .body
                    .get("cert")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                id: Some(e.id),
            })
            .collect()
    }

    fn save(&self, name: &str, cert: &str, key: &str, replace: Option<Uuid>) -> Result<(), String> {
        let cp = self.cp()?;
        let now = cp.now();
        let existing = replace.and_then(|id| cp.find(Kind::Certificates, &id.to_string(), None));
        let mut ops = Vec::new();
        let cert_entry = match existing {
            // Renewal: the same entity gets the new pair; its SNIs stay.
            Some(mut e) => {
                e.body.insert("cert".into(), json!(cert));
                e.body.insert("key".into(), json!(key));
                e.body.insert("updated_at".into(), json!(now));
                e
            }
            None => {
                let id = Uuid::new_v4();
                let mut body = Kind::Certificates.defaults();
                body.insert("id".into(), json!(id));
                body.insert("cert".into(), json!(cert));
                body.insert("key".into(), json!(key));
                body.insert("tags".into(), json!([TAG]));
                body.insert("created_at".into(), json!(now));
                body.insert("updated_at".into(), json!(now));
                // An SNI of that name (another certificate's) is moved to
                // the new certificate, as Kong's acme does.
                let sni = match cp.find(Kind::Snis, name, None) {
                    Some(mut e) => {
                        e.body.insert("certificate".into(), json!({ "id": id }));
                        e.body.insert("updated_at".into(), json!(now));
                        e
                    }
                    None => {
                        let sni = Uuid::new_v4();
                        let mut body = Kind::Snis.defaults();
                        body.insert("id".into(), json!(sni));
                        body.insert("name".into(), json!(name));
                        body.insert("certificate".into(), json!({ "id": id }));
                        body.insert("tags".into(), json!([TAG]));
                        body.insert("created_at".into(), json!(now));
                        body.insert("updated_at".into(), json!(now));
                        Entry {
                            id: sni,
                            created_at: now,
                            body,
                        }
                    }
                };
                ops.push(Op::Put(Kind::Snis, sni));
                Entry {
                    id,
                    created_at: now,
                    body,
                }
            }
        };
        let target = (Kind::Certificates, cert_entry.id);
        ops.insert(0, Op::Put(Kind::Certificates, cert_entry));
        cp.write(ops, Some(target))
            .map(|_| ())
            .map_err(|e| e.body()["message"].as_str().unwrap_or("refused").to_owned())
    }
}

/// The enabled global acme plugin's config in `config`, if any.
pub fn plugin_config(config: &Config) -> Option<tollgate_plugins::plugins::acme::AcmeConfig> {
    config
        .plugins
        .iter()
        .find(|p| {
            p.enabled
                && p.name == "acme"
                && p.service.is_none()
                && p.route.is_none()
                && p.consumer.is_none()
        })
        .and_then(|p| serde_json::from_value(p.config.clone()).ok())
}

/// The Admin API's `/acme` endpoints over the manager, whose orders run on
/// its own runtime.
#[derive(Debug)]
pub struct AcmeView {
    /// The manager.
    pub acme: Arc<Acme>,
    /// Where its orders run.
    pub runtime: tokio::runtime::Handle,
}

impl tollgate_admin::AcmeControl for AcmeView {
    fn create(&self, host: String) -> CreateFuture {
        let acme = self.acme.clone();
        let task = self.runtime.spawn(async move { acme.create(&host).await });
        Box::pin(async move {
            match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(AcmeError::Off)) => Err(AcmeFailure::Off),
                Ok(Err(AcmeError::NotManaged(h))) => Err(AcmeFailure::NotManaged(h)),
                Ok(Err(e)) => Err(AcmeFailure::Failed(e.to_string())),
                Err(e) => Err(AcmeFailure::Failed(e.to_string())),
            }
        })
    }

    fn renew(&self) {
        let acme = self.acme.clone();
        self.runtime.spawn(async move {
            let n = acme.renew_due().await;
            tracing::info!("ACME: {n} certificate(s) renewed");
        });
    }

    fn certificates(&self) -> Vec<Value> {
        self.acme
            .certificates()
            .into_iter()
            .map(|(c, facts)| {
                let now = std::time::SystemTime::now();
                let f = facts.as_ref();
                json!({
                    "host": c.names.first(),
                    "snis": c.names,
                    "certificate_id": c.id,
                    "digest": f.map(|f| f.digest.clone()),
                    "issuer_cn": f.and_then(|f| f.issuer_cn.clone()),
                    "not_before": f.map(|f| tollgate_acme::keys::kong_date(f.not_before)),
                    "not_after": f.map(|f| tollgate_acme::keys::kong_date(f.not_after)),
                    "valid": f.is_some_and(|f| f.valid_at(now)),
                    "serial_number": f.map(|f| f.serial.clone()),
                    "pubkey_type": f.map(|f| f.pubkey_type.clone()),
                })
            })
            .collect()
    }
}
