//! Consumers and credentials, indexed for the auth plugins; built once per
//! configuration snapshot.

use super::constant_time_eq;
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use tollgate_model::{Config, CredentialKind};
use uuid::Uuid;

/// A consumer as plugins see it.
#[derive(Debug)]
pub struct ConsumerInfo {
    /// Id.
    pub id: Uuid,
    /// Username.
    pub username: Option<String>,
    /// Custom id.
    pub custom_id: Option<String>,
    /// ACL groups.
    pub groups: Vec<String>,
}

#[derive(Debug)]
struct BasicCred {
    id: Uuid,
    consumer: Uuid,
    password: String,
    /// Fingerprint of the stored hash: a changed password invalidates cached checks.
    stored: u64,
}

/// Keys for the per-thread verification cache, fixed for the process.
fn digest_keys() -> &'static (RandomState, RandomState) {
    static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
    KEYS.get_or_init(|| (RandomState::new(), RandomState::new()))
}

thread_local! {
    /// Verified (credential, stored hash, password digest) tuples. One cache
    /// per worker thread: checking it never takes a lock another worker holds,
    /// and argon2 runs once per good password per worker.
    static VERIFIED: RefCell<HashSet<(Uuid, u64, u64, u64)>> = RefCell::new(HashSet::new());
}

/// A jwt credential, keys parsed once per snapshot.
#[derive(Debug)]
pub struct JwtCred {
    /// Credential id.
    pub id: Uuid,
    /// Consumer id.
    pub consumer: Uuid,
    /// The algorithm tokens must be signed with.
    pub algorithm: jsonwebtoken::Algorithm,
    /// The HMAC secret (HS*), as stored.
    pub secret: Option<String>,
    /// The verification key for RS*/PS*/ES*/EdDSA, parsed from `rsa_public_key`.
    pub public_key: Option<jsonwebtoken::DecodingKey>,
}

fn jwt_cred(c: &tollgate_model::Credential) -> Option<(String, JwtCred)> {
    use jsonwebtoken::{Algorithm as A, DecodingKey};
    let key = field(&c.fields, "key")?.to_owned();
    let algorithm: A = field(&c.fields, "algorithm")
        .unwrap_or("HS256")
        .parse()
        .ok()?;
    let pem = field(&c.fields, "rsa_public_key").map(str::as_bytes);
    let public_key = match (algorithm, pem) {
        (A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512, Some(p)) => {
            DecodingKey::from_rsa_pem(p).ok()
        }
        (A::ES256 | A::ES384, Some(p)) => DecodingKey::from_ec_pem(p).ok(),
        (A::EdDSA, Some(p)) => DecodingKey::from_ed_pem(p).ok(),
        _ => None,
    };
    Some((
        key,
        JwtCred {
            id: c.id,
            consumer: c.consumer,
            algorithm,
            secret: field(&c.fields, "secret").map(str::to_owned),
            public_key,
        },
    ))
}

/// The consumer directory.
#[derive(Debug)]
pub struct Directory {
    consumers: HashMap<Uuid, Arc<ConsumerInfo>>,
    by_username: HashMap<String, Uuid>,
    /// key → (consumer, credential, expiry in epoch seconds for keys with a `ttl`).
    keys: HashMap<String, (Uuid, Uuid, Option<i64>)>,
    basic: HashMap<String, BasicCred>,
    jwt: HashMap<String, JwtCred>,
    hmac: HashMap<String, (Uuid, Uuid, String)>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn field<'a>(
    fields: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    fields.get(name).and_then(|v| v.as_str())
}

impl Directory {
    /// Indexes a configuration's consumers and credentials.
    pub fn build(config: &Config) -> Arc<Directory> {
        let mut groups: HashMap<Uuid, Vec<String>> = HashMap::new();
        let mut keys = HashMap::new();
        let mut basic = HashMap::new();
        let mut jwt = HashMap::new();
        let mut hmac = HashMap::new();
        for c in &config.credentials {
            match c.kind {
                CredentialKind::Acl => {
                    if let Some(g) = field(&c.fields, "group") {
                        groups.entry(c.consumer).or_default().push(g.to_owned());
                    }
                }
                CredentialKind::KeyAuth => {
                    if let Some(k) = field(&c.fields, "key") {
                        let expires = c
                            .fields
                            .get("ttl")
                            .and_then(serde_json::Value::as_i64)
                            .filter(|t| *t > 0)
                            .map(|t| c.created_at.unwrap_or_else(now) + t);
                        keys.insert(k.to_owned(), (c.consumer, c.id, expires));
                    }
                }
                CredentialKind::BasicAuth => {
                    if let (Some(u), Some(p)) =
                        (field(&c.fields, "username"), field(&c.fields, "password"))
                    {
                        basic.insert(
                            u.to_owned(),
                            BasicCred {
                                id: c.id,
                                consumer: c.consumer,
                                password: p.to_owned(),
                                stored: digest_keys().0.hash_one(p),
                            },
                        );
                    }
                }
                CredentialKind::HmacAuth => {
                    if let (Some(u), Some(secret)) =
                        (field(&c.fields, "username"), field(&c.fields, "secret"))
                    {
                        hmac.insert(u.to_owned(), (c.consumer, c.id, secret.to_owned()));
                    }
                }
                CredentialKind::Jwt => {
                    if let Some((k, cred)) = jwt_cred(c) {
                        jwt.insert(k, cred);
                    }
                }
                _ => {}
            }
        }
        let mut consumers = HashMap::new();
        let mut by_username = HashMap::new();
        for c in &config.consumers {
            if let Some(u) = &c.username {
                by_username.insert(u.clone(), c.id);
            }
            consumers.insert(
                c.id,
                Arc::new(ConsumerInfo {
                    id: c.id,
                    username: c.username.clone(),
                    custom_id: c.custom_id.clone(),
                    groups: groups.remove(&c.id).unwrap_or_default(),
                }),
            );
        }
        Arc::new(Directory {
            consumers,
            by_username,
            keys,
            basic,
            jwt,
            hmac,
        })
    }

    /// A consumer by id or username (for `anonymous`).
    pub fn consumer(&self, id_or_username: &str) -> Option<Arc<ConsumerInfo>> {
        let id = Uuid::parse_str(id_or_username)
            .ok()
            .filter(|id| self.consumers.contains_key(id))
            .or_else(|| self.by_username.get(id_or_username).copied())?;
        self.consumers.get(&id).cloned()
    }

    /// The consumer and credential of a key-auth key.
    pub fn key(&self, key: &str) -> Option<(Arc<ConsumerInfo>, Uuid)> {
        let (stored, (consumer, cred, expires)) = self.keys.get_key_value(key)?;
        if !constant_time_eq(stored.as_bytes(), key.as_bytes()) {
            return None;
        }
        if expires.is_some_and(|e| now() >= e) {
            return None;
        }
        Some((self.consumers.get(consumer)?.clone(), *cred))
    }

    /// The jwt credential with this key (the token's `iss`, or the configured claim).
    pub fn jwt(&self, key: &str) -> Option<(&JwtCred, Arc<ConsumerInfo>)> {
        let cred = self.jwt.get(key)?;
        Some((cred, self.consumers.get(&cred.consumer)?.clone()))
    }

    /// The consumer, credential id and secret of an hmac-auth username.
    pub fn hmac(&self, username: &str) -> Option<(Arc<ConsumerInfo>, Uuid, &str)> {
        let (consumer, cred, secret) = self.hmac.get(username)?;
        Some((
            self.consumers.get(consumer)?.clone(),
            *cred,
            secret.as_str(),
        ))
    }

    /// Checks a basic-auth username and password.
    pub fn basic(&self, username: &str, password: &str) -> Option<(Arc<ConsumerInfo>, Uuid)> {
        let cred = self.basic.get(username)?;
        let consumer = self.consumers.get(&cred.consumer)?.clone();
        let keys = digest_keys();
        let cache_key = (
            cred.id,
            cred.stored,
            keys.0.hash_one(password),
            keys.1.hash_one(password),
        );
        if VERIFIED.with(|v| v.borrow().contains(&cache_key)) {
            return Some((consumer, cred.id));
        }
        let ok = if cred.password.starts_with("$argon2") {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            PasswordHash::new(&cred.password)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        } else {
            // A declarative file may carry the clear password.
            constant_time_eq(cred.password.as_bytes(), password.as_bytes())
        };
        if !ok {
            return None;
        }
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() > 100_000 {
                v.clear();
            }
            v.insert(cache_key);
        });
        Some((consumer, cred.id))
    }
}
