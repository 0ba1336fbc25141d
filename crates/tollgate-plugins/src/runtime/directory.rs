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
    /// Its `X-Consumer-*` header values, made once per snapshot.
    pub values: ConsumerValues,
}

/// A consumer's `X-Consumer-ID`, `-Username` and `-Custom-ID` values.
#[derive(Debug)]
pub struct ConsumerValues {
    /// `X-Consumer-ID`.
    pub id: http::HeaderValue,
    /// `X-Consumer-Username`.
    pub username: Option<http::HeaderValue>,
    /// `X-Consumer-Custom-ID`.
    pub custom_id: Option<http::HeaderValue>,
}

fn value(s: &str) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(s).ok()
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
    /// The key set named by `jwks_uri`, when the keys come from there.
    pub jwks: Option<Arc<super::KeySet>>,
}

fn jwt_cred(c: &tollgate_model::Credential, env: &super::PluginEnv) -> Option<(String, JwtCred)> {
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
            jwks: field(&c.fields, "jwks_uri").map(|u| env.jwks.set(u)),
        },
    ))
}

/// An oauth2 client application (Kong's `oauth2_credentials`).
#[derive(Debug)]
pub struct OAuthClient {
    /// Credential id.
    pub id: Uuid,
    /// Consumer id.
    pub consumer: Uuid,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret` as stored (an argon2 hash when `hash_secret`).
    pub client_secret: Option<String>,
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `confidential` or `public`.
    pub public: bool,
}

impl OAuthClient {
    /// Checks a client secret (constant time, or argon2 for hashed secrets).
    pub fn secret_matches(&self, given: Option<&str>) -> bool {
        match (&self.client_secret, given) {
            (Some(stored), Some(given)) if stored.starts_with("$argon2") => {
                use argon2::password_hash::{PasswordHash, PasswordVerifier};
                PasswordHash::new(stored).is_ok_and(|h| {
                    argon2::Argon2::default()
                        .verify_password(given.as_bytes(), &h)
                        .is_ok()
                })
            }
            (Some(stored), Some(given)) => constant_time_eq(stored.as_bytes(), given.as_bytes()),
            // A public client has no secret to present.
            (_, None) => self.public,
            (None, Some(_)) => false,
        }
    }
}

/// The directory's maps: built from the configuration (clients only look
/// up), hashed with a per-process seeded foldhash, cheaper than SipHash on
/// the short keys every authenticated request looks up.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The consumer directory.
#[derive(Debug)]
pub struct Directory {
    consumers: Map<Uuid, Arc<ConsumerInfo>>,
    by_username: Map<String, Uuid>,
    by_custom_id: Map<String, Uuid>,
    /// CA certificates (PEM) by id, for mtls-auth.
    ca_certificates: Map<Uuid, String>,
    /// key → (consumer, credential, expiry in epoch seconds for keys with a
    /// `ttl`, the credential id as a header value).
    keys: Map<String, (Uuid, Uuid, Option<i64>, http::HeaderValue)>,
    basic: Map<String, BasicCred>,
    jwt: Map<String, JwtCred>,
    hmac: Map<String, (Uuid, Uuid, String)>,
    oauth2: Map<String, Arc<OAuthClient>>,
    oauth2_by_id: Map<Uuid, Arc<OAuthClient>>,
}

use super::epoch_secs as now;

fn field<'a>(
    fields: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    fields.get(name).and_then(|v| v.as_str())
}

impl Directory {
    /// Indexes a configuration's consumers and credentials.
    pub fn build(config: &Config, env: &super::PluginEnv) -> Arc<Directory> {
        let mut groups: HashMap<Uuid, Vec<String>> = HashMap::new();
        let mut keys = Map::default();
        let mut basic = Map::default();
        let mut jwt = Map::default();
        let mut hmac = Map::default();
        let mut oauth2 = Map::default();
        let mut oauth2_by_id = Map::default();
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
                        let id = http::HeaderValue::from_str(&c.id.to_string())
                            .unwrap_or(http::HeaderValue::from_static(""));
                        keys.insert(k.to_owned(), (c.consumer, c.id, expires, id));
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
                    if let Some((k, cred)) = jwt_cred(c, env) {
                        jwt.insert(k, cred);
                    }
                }
                CredentialKind::Oauth2 => {
                    if let Some(client_id) = field(&c.fields, "client_id") {
                        let client = Arc::new(OAuthClient {
                            id: c.id,
                            consumer: c.consumer,
                            client_id: client_id.to_owned(),
                            client_secret: field(&c.fields, "client_secret").map(str::to_owned),
                            redirect_uris: c
                                .fields
                                .get("redirect_uris")
                                .and_then(serde_json::Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|v| v.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            public: field(&c.fields, "client_type") == Some("public"),
                        });
                        oauth2_by_id.insert(c.id, client.clone());
                        oauth2.insert(client_id.to_owned(), client);
                    }
                }
            }
        }
        let mut consumers = Map::default();
        let mut by_username = Map::default();
        let mut by_custom_id = Map::default();
        for c in &config.consumers {
            if let Some(u) = &c.username {
                by_username.insert(u.clone(), c.id);
            }
            if let Some(u) = &c.custom_id {
                by_custom_id.insert(u.clone(), c.id);
            }
            consumers.insert(
                c.id,
                Arc::new(ConsumerInfo {
                    id: c.id,
                    username: c.username.clone(),
                    custom_id: c.custom_id.clone(),
                    groups: groups.remove(&c.id).unwrap_or_default(),
                    values: ConsumerValues {
                        id: value(&c.id.to_string()).unwrap_or(http::HeaderValue::from_static("")),
                        username: c.username.as_deref().and_then(value),
                        custom_id: c.custom_id.as_deref().and_then(value),
                    },
                }),
            );
        }
        Arc::new(Directory {
            consumers,
            by_username,
            by_custom_id,
            ca_certificates: config
                .ca_certificates
                .iter()
                .map(|c| (c.id, c.cert.clone()))
                .collect(),
            keys,
            basic,
            jwt,
            hmac,
            oauth2,
            oauth2_by_id,
        })
    }

    /// An oauth2 client by `client_id`.
    pub fn oauth2_client(&self, client_id: &str) -> Option<Arc<OAuthClient>> {
        let (stored, client) = self.oauth2.get_key_value(client_id)?;
        constant_time_eq(stored.as_bytes(), client_id.as_bytes()).then(|| client.clone())
    }

    /// An oauth2 client by credential id, with its consumer.
    pub fn oauth2_credential(&self, id: Uuid) -> Option<(Arc<OAuthClient>, Arc<ConsumerInfo>)> {
        let client = self.oauth2_by_id.get(&id)?;
        Some((
            client.clone(),
            self.consumers.get(&client.consumer)?.clone(),
        ))
    }

    /// A consumer by username.
    pub fn consumer_by_username(&self, username: &str) -> Option<Arc<ConsumerInfo>> {
        self.consumers.get(self.by_username.get(username)?).cloned()
    }

    /// A consumer by custom_id.
    pub fn consumer_by_custom_id(&self, custom_id: &str) -> Option<Arc<ConsumerInfo>> {
        self.consumers
            .get(self.by_custom_id.get(custom_id)?)
            .cloned()
    }

    /// A CA certificate's PEM by id.
    pub fn ca_certificate(&self, id: Uuid) -> Option<&str> {
        self.ca_certificates.get(&id).map(String::as_str)
    }

    /// A consumer by id or username (for `anonymous`).
    pub fn consumer(&self, id_or_username: &str) -> Option<Arc<ConsumerInfo>> {
        let id = Uuid::parse_str(id_or_username)
            .ok()
            .filter(|id| self.consumers.contains_key(id))
            .or_else(|| self.by_username.get(id_or_username).copied())?;
        self.consumers.get(&id).cloned()
    }

    /// The consumer, credential and credential id (as a header value) of a
    /// key-auth key.
    pub fn key(&self, key: &str) -> Option<(Arc<ConsumerInfo>, Uuid, http::HeaderValue)> {
        let (stored, (consumer, cred, expires, id)) = self.keys.get_key_value(key)?;
        if !constant_time_eq(stored.as_bytes(), key.as_bytes()) {
            return None;
        }
        if expires.is_some_and(|e| now() >= e) {
            return None;
        }
        Some((self.consumers.get(consumer)?.clone(), *cred, id.clone()))
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
