//! Automatic certificates (Kong's `acme` plugin): certificates obtained
//! from an ACME CA for the names in the plugin's `domains`, stored, served,
//! and renewed before `renew_threshold_days`.
//!
//! - A TLS handshake for a managed name without a certificate (served the
//!   default one meanwhile) starts an order in the background; so does
//!   `POST /acme` on the Admin API, which waits for it.
//! - The CA's challenge is answered by the data plane through the shared
//!   [`Challenges`]: HTTP-01 when the node has a plain HTTP listener (the
//!   CA connects to port 80), else TLS-ALPN-01 (port 443).
//! - Certificates are kept where `storage` says: `kong` puts them in the
//!   database as certificate and SNI entities tagged `acme` (every node
//!   serves them); `shm`, or a node without a database, keeps them in node
//!   memory ([`MemoryStore`]).
//! - Every hour, and on `PATCH /acme`, certificates expiring within
//!   `renew_threshold_days` are ordered again and replaced in place.
//! - The account key is kept under the prefix, one per CA and e-mail.

mod http;
pub mod keys;
mod order;

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tollgate_plugins::plugins::acme::AcmeConfig;
use tollgate_tls::acme::{Challenges, Domains};
use tollgate_tls::ClientTls;

pub use keys::{facts, CertFacts};

/// Why a certificate could not be obtained or kept.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// No enabled acme plugin.
    #[error("the acme plugin is not enabled")]
    Off,
    /// The name is not one the plugin manages.
    #[error("{0} is not in the acme plugin's domains")]
    NotManaged(String),
    /// The CA or the protocol failed.
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The order did not end with a certificate.
    #[error("ACME order: {0}")]
    Order(String),
    /// A key or CSR could not be made.
    #[error("certificate key: {0}")]
    Key(String),
    /// The certificate could not be stored.
    #[error("storing the certificate: {0}")]
    Store(String),
}

/// A certificate obtained through ACME, as its store holds it.
#[derive(Debug, Clone)]
pub struct StoredCert {
    /// Its id in the store (the certificate entity), when it has one.
    pub id: Option<uuid::Uuid>,
    /// The names it serves.
    pub names: Vec<String>,
    /// The chain, PEM.
    pub cert_pem: String,
}

/// Where certificates obtained through ACME are kept.
pub trait CertStore: Send + Sync + std::fmt::Debug {
    /// Every certificate obtained through ACME.
    fn list(&self) -> Vec<StoredCert>;
    /// Keeps `cert_pem`/`key_pem` for `name`, replacing certificate
    /// `replace` when given.
    fn save(
        &self,
        name: &str,
        cert_pem: &str,
        key_pem: &str,
        replace: Option<uuid::Uuid>,
    ) -> Result<(), String>;
}

/// Certificates kept in node memory (`storage: shm`, or no database),
/// served through [`Challenges::issued`].
#[derive(Debug)]
pub struct MemoryStore {
    challenges: Arc<Challenges>,
    certs: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryStore {
    /// A store serving through `challenges`.
    pub fn new(challenges: Arc<Challenges>) -> MemoryStore {
        MemoryStore {
            challenges,
            certs: Mutex::new(HashMap::new()),
        }
    }
}

impl CertStore for MemoryStore {
    fn list(&self) -> Vec<StoredCert> {
        lock(&self.certs)
            .iter()
            .map(|(name, pem)| StoredCert {
                id: None,
                names: vec![name.clone()],
                cert_pem: pem.clone(),
            })
            .collect()
    }

    fn save(&self, name: &str, cert: &str, key: &str, _: Option<uuid::Uuid>) -> Result<(), String> {
        let served = tollgate_tls::server::certified_key(cert, key).map_err(|e| e.to_string())?;
        self.challenges.set_issued(name, served);
        lock(&self.certs).insert(name.to_owned(), cert.to_owned());
        Ok(())
    }
}

/// Orders running at once.
const MAX_ORDERS: usize = 2;

/// Names remembered as failed at most (oldest forgotten first).
const MAX_FAILED: usize = 10_000;

/// How often certificates are checked for renewal.
const RENEW_EVERY: Duration = Duration::from_secs(3600);

/// The node's ACME manager.
pub struct Acme {
    challenges: Arc<Challenges>,
    tls: Arc<ClientTls>,
    /// The database's store (none: no database).
    database: Option<Arc<dyn CertStore>>,
    memory: Arc<MemoryStore>,
    /// Where account keys are kept.
    dir: PathBuf,
    /// Whether HTTP-01 can be answered (a plain HTTP listener exists).
    http01: bool,
    config: Mutex<Option<Arc<AcmeConfig>>>,
    accounts: tokio::sync::Mutex<HashMap<String, Account>>,
    /// Names with an order in flight.
    busy: Mutex<HashSet<String>>,
    /// Names whose last order failed, and when.
    failed: Mutex<HashMap<String, Instant>>,
    /// Orders running at once (handshakes with random names must not
    /// start an order each).
    orders: tokio::sync::Semaphore,
    wanted: mpsc::Sender<String>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").finish_non_exhaustive()
    }
}

/// What the node gives the manager.
#[derive(Debug)]
pub struct AcmeSetup {
    /// Shared with the data plane (challenge answers, memory certificates).
    pub challenges: Arc<Challenges>,
    /// Trusted authorities for the CA's directory.
    pub tls: Arc<ClientTls>,
    /// The database's store, when the node has a database.
    pub database: Option<Arc<dyn CertStore>>,
    /// Directory for account keys (under the prefix).
    pub dir: PathBuf,
    /// Whether the node has a plain HTTP proxy listener.
    pub http01: bool,
    /// Where orders run.
    pub runtime: tokio::runtime::Handle,
}

/// Restricts `name` to what may appear in a file name.
/// Other bytes are escaped as `_xx`, so two inputs never share a name.
fn file_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Writes `bytes` to `file` readable by the owner only, replacing it at
/// once (a temporary file renamed over it).
fn write_private(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// Runs `work` (key generation, database writes) off the async thread the
/// manager shares with health probes and DNS.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AcmeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AcmeError::Order(e.to_string()))
}

impl Acme {
    /// Starts the manager: its loop (wanted names, hourly renewal) runs on
    /// `setup.runtime`.
    pub fn start(setup: AcmeSetup) -> Arc<Acme> {
        let (tx, rx) = mpsc::channel(256);
        let acme = Arc::new(Acme {
            memory: Arc::new(MemoryStore::new(setup.challenges.clone())),
            challenges: setup.challenges,
            tls: setup.tls,
            database: setup.database,
            dir: setup.dir,
            http01: setup.http01,
            config: Mutex::new(None),
            accounts: tokio::sync::Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashMap::new()),
            orders: tokio::sync::Semaphore::new(MAX_ORDERS),
            wanted: tx,
            runtime: setup.runtime.clone(),
        });
        setup.runtime.spawn(acme.clone().run(rx));
        acme
    }

    /// Follows the configuration: `config` is the enabled acme plugin's
    /// (None: ACME off).
    pub fn configure(self: &Arc<Self>, config: Option<AcmeConfig>) {
        let config = config.map(Arc::new);
        let changed = {
            let mut current = lock(&self.config);
            let changed = *current != config;
            current.clone_from(&config);
            changed
        };
        if !changed {
            return;
        }
        match config {
            None => self.challenges.manage(None),
            Some(c) => {
                let domains = Domains {
                    names: c.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                    any: c.allow_any_domain,
                };
                let tx = self.wanted.clone();
                let wanted = Box::new(move |name: &str| {
                    let _ = tx.try_send(name.to_owned());
                });
                self.challenges.manage(Some((domains, wanted)));
                let me = self.clone();
                self.runtime.spawn(async move {
                    me.renew_due().await;
                });
            }
        }
    }

    /// Checks the stored certificates for renewal now (in the background).
    pub fn check_renewals(self: &Arc<Self>) {
        let me = self.clone();
        self.runtime.spawn(async move {
            me.renew_due().await;
        });
    }

    fn current(&self) -> Result<Arc<AcmeConfig>, AcmeError> {
        lock(&self.config).clone().ok_or(AcmeError::Off)
    }

    /// The store `config` says certificates go to.
    fn store(&self, config: &AcmeConfig) -> Arc<dyn CertStore> {
        match (&self.database, config.storage.as_str()) {
            (Some(db), "kong") => db.clone(),
            _ => self.memory.clone(),
        }
    }

    async fn run(self: Arc<Self>, mut wanted: mpsc::Receiver<String>) {
        let mut timer = tokio::time::interval(RENEW_EVERY);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                name = wanted.recv() => {
                    let Some(name) = name else { return };
                    if lock(&self.busy).contains(&name) {
                        continue;
                    }
                    let me = self.clone();
                    tokio::spawn(async move { me.ensure(&name).await });
                }
                _ = timer.tick() => {
                    self.renew_due().await;
                }
            }
        }
    }

    /// Orders a certificate for `name` unless one is stored, one is being
    /// ordered, or its last order failed within `fail_backoff_minutes`.
    async fn ensure(&self, name: &str) {
        let Ok(config) = self.current() else { return };
        if lock(&self.busy).contains(name) {
            return;
        }
        if self
            .stored(&config)
            .await
            .iter()
            .any(|c| c.names.iter().any(|n| n == name))
        {
            return;
        }
        let backoff = Duration::from_secs_f64(config.fail_backoff_minutes * 60.0);
        if lock(&self.failed)
            .get(name)
            .is_some_and(|at| at.elapsed() < backoff)
        {
            return;
        }
        if let Err(e) = self.obtain(&config, name, None).await {
            tracing::warn!(name, "ACME: no certificate: {e}");
        }
    }

    /// Orders a certificate for `host` now and stores it (`POST /acme`).
    pub async fn create(&self, host: &str) -> Result<(), AcmeError> {
        let config = self.current()?;
        let host = host.to_ascii_lowercase();
        let domains = Domains {
            names: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            any: config.allow_any_domain,
        };
        if !domains.matches(&host) {
            return Err(AcmeError::NotManaged(host));
        }
        let existing = self
            .stored(&config)
            .await
            .into_iter()
            .find(|c| c.names.contains(&host))
            .and_then(|c| c.id);
        self.obtain(&config, &host, existing).await
    }

    /// Renews every certificate expiring within `renew_threshold_days`
    /// (`PATCH /acme`, and hourly); returns how many were renewed.
    pub async fn renew_due(&self) -> usize {
        let Ok(config) = self.current() else { return 0 };
        let threshold = Duration::from_secs_f64(config.renew_threshold_days * 86_400.0);
        let horizon = SystemTime::now() + threshold;
        let mut renewed = 0;
        for cert in self.stored(&config).await {
            let Some(facts) = keys::facts(&cert.cert_pem) else {
                continue;
            };
            if facts.not_after > horizon {
                continue;
            }
            let Some(name) = cert.names.first() else {
                continue;
            };
            match self.obtain(&config, name, cert.id).await {
                Ok(()) => renewed += 1,
                Err(e) => tracing::warn!(name = %name, "ACME: renewal failed: {e}"),
            }
        }
        renewed
    }

    /// The certificates in the store `config` names (read off the async
    /// thread: a database read may wait for a write).
    async fn stored(&self, config: &AcmeConfig) -> Vec<StoredCert> {
        let store = self.store(config);
        off_thread(move || store.list()).await.unwrap_or_default()
    }

    /// The certificates obtained so far, for `GET /acme/certificates`.
    pub fn certificates(&self) -> Vec<(StoredCert, Option<CertFacts>)> {
        let Ok(config) = self.current() else {
            return Vec::new();
        };
        self.store(&config)
            .list()
            .into_iter()
            .map(|c| {
                let f = keys::facts(&c.cert_pem);
                (c, f)
            })
            .collect()
    }

    /// One order for `name`, stored (replacing `replace`).
    async fn obtain(
        &self,
        config: &AcmeConfig,
        name: &str,
        replace: Option<uuid::Uuid>,
    ) -> Result<(), AcmeError> {
        if !lock(&self.busy).insert(name.to_owned()) {
            return Err(AcmeError::Order(format!(
                "an order for {name} is already running"
            )));
        }
        let outcome = match self.orders.acquire().await {
            Ok(_permit) => self.order(config, name, replace).await,
            Err(e) => Err(AcmeError::Order(e.to_string())),
        };
        lock(&self.busy).remove(name);
        match &outcome {
            Ok(()) => {
                lock(&self.failed).remove(name);
                tracing::info!(name, "ACME: certificate obtained");
            }
            Err(_) => {
                let mut failed = lock(&self.failed);
                if failed.len() >= MAX_FAILED {
                    let backoff = Duration::from_secs_f64(config.fail_backoff_minutes * 60.0);
                    failed.retain(|_, at| at.elapsed() < backoff);
                }
                if failed.len() < MAX_FAILED {
                    failed.insert(name.to_owned(), Instant::now());
                }
            }
        }
        outcome
    }

    async fn order(
        &self,
        config: &AcmeConfig,
        name: &str,
        replace: Option<uuid::Uuid>,
    ) -> Result<(), AcmeError> {
        let (cert_type, bits) = (config.cert_type.clone(), config.rsa_key_size);
        let key = off_thread(move || keys::generate(&cert_type, bits)).await??;
        let account = self.account(config).await?;
        let chain = order::issue(&account, name, &self.challenges, self.http01, &key).await?;
        let (store, name, key_pem) = (self.store(config), name.to_owned(), key.serialize_pem());
        off_thread(move || store.save(&name, &chain, &key_pem, replace))
            .await?
            .map_err(AcmeError::Store)
    }

    /// The account for the configured CA and e-mail: remembered, read from
    /// the prefix, or created (and saved there).
    async fn account(&self, config: &AcmeConfig) -> Result<Account, AcmeError> {
        let id = format!("{}|{}", config.api_uri, config.account_email);
        let mut accounts = self.accounts.lock().await;
        if let Some(a) = accounts.get(&id) {
            return Ok(a.clone());
        }
        let http = || {
            Box::new(http::AcmeHttp {
                tls: self.tls.clone(),
            })
        };
        let file = self.dir.join(format!(
            "account-{}-{}.json",
            file_safe(&config.account_email),
            file_safe(&config.api_uri)
        ));
        let saved: Option<AccountCredentials> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let account = match saved {
            Some(creds) => {
                Account::builder_with_http(http())
                    .from_credentials(creds)
                    .await?
            }
            None => {
                let contact = format!("mailto:{}", config.account_email);
                let eab = match (&config.eab_kid, &config.eab_hmac_key) {
                    (Some(kid), Some(key)) => Some(ExternalAccountKey::new(
                        kid.clone(),
                        &decode_base64url(key)?,
                    )),
                    _ => None,
                };
                let (account, creds) = Account::builder_with_http(http())
                    .create(
                        &NewAccount {
                            contact: &[&contact],
                            // As Kong: agreed on the account; the schema
                            // makes Let's Encrypt users set tos_accepted.
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        config.api_uri.clone(),
                        eab.as_ref(),
                    )
                    .await?;
                if let Err(e) = std::fs::create_dir_all(&self.dir).and_then(|()| {
                    write_private(&file, &serde_json::to_vec(&creds).unwrap_or_default())
                }) {
                    tracing::warn!("ACME: account key not saved to {}: {e}", file.display());
                }
                account
            }
        };
        accounts.insert(id, account.clone());
        Ok(account)
    }
}

/// Decodes base64url, padded or not (`eab_hmac_key`).
fn decode_base64url(s: &str) -> Result<Vec<u8>, AcmeError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| AcmeError::Key("eab_hmac_key is not base64url".into()))
}
