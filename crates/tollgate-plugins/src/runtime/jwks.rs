//! JSON Web Key Sets fetched from identity providers for jwt credentials
//! with a `jwks_uri` (beyond Kong OSS).
//!
//! One [`KeySet`] per URL, node-wide (it outlives snapshots). Keys are read
//! from an immutable, swapped copy; a token whose `kid` is unknown, or a set
//! older than [`MAX_AGE`], makes the request wait for one refresh (requests
//! waiting together share it) and then try again. Refreshes of one URL are
//! at least [`MIN_INTERVAL`] apart, so tokens with made-up `kid`s cannot make
//! the gateway hammer the provider.

use super::tokens::BoxFuture;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Keys older than this are fetched again before use.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// Two fetches of one URL are at least this far apart.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Fetches documents over HTTP for plugins (JWKS).
pub trait Fetcher: Send + Sync + std::fmt::Debug {
    /// GETs `url`; the body of a 200 answer.
    fn get(&self, url: &str) -> BoxFuture<Result<Vec<u8>, String>>;
}

/// A fetcher that has no network (for `tollgate check` and unit tests).
#[derive(Debug)]
pub struct NoFetch;

impl Fetcher for NoFetch {
    fn get(&self, url: &str) -> BoxFuture<Result<Vec<u8>, String>> {
        let e = format!("{url}: no fetcher configured");
        Box::pin(async move { Err(e) })
    }
}

/// One usable key of a set.
#[derive(Clone)]
pub struct Key {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// `alg`, if the key names one.
    pub alg: Option<Algorithm>,
    /// The verification key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// The keys of a set as last fetched.
#[derive(Debug, Default)]
pub struct Keys {
    /// Bumped by every fetch attempt.
    pub generation: u64,
    /// When the keys were fetched (None: never successfully).
    pub fetched_at: Option<Instant>,
    /// The keys.
    pub keys: Vec<Key>,
}

impl Keys {
    /// The keys that may verify a token with this `kid` and `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            k.alg.is_none_or(|a| a == alg) && (kid.is_none() || k.kid.as_deref() == kid)
        })
    }

    /// Whether the keys are too old to be used.
    pub fn stale(&self) -> bool {
        self.fetched_at.is_none_or(|t| t.elapsed() >= MAX_AGE)
    }
}

/// The key set behind one URL.
#[derive(Debug)]
pub struct KeySet {
    url: String,
    /// Swapped whole on refresh; reading it takes no lock.
    current: arc_swap::ArcSwap<Keys>,
    last_attempt: std::sync::Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl KeySet {
    /// The keys as last fetched.
    pub fn keys(&self) -> Arc<Keys> {
        self.current.load_full()
    }

    /// The generation of the current keys (no shared counter touched).
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// A future that fetches the set again, unless another refresh happened
    /// since `seen` (the generation the caller looked at) or the last attempt
    /// was less than [`MIN_INTERVAL`] ago.
    pub fn refresh(self: &Arc<Self>, fetcher: Arc<dyn Fetcher>, seen: u64) -> BoxFuture<()> {
        let set = self.clone();
        Box::pin(async move {
            let _turn = set.refreshing.lock().await;
            if set.keys().generation != seen {
                return;
            }
            {
                let Ok(mut last) = set.last_attempt.lock() else {
                    return;
                };
                if last.is_some_and(|t| t.elapsed() < MIN_INTERVAL) {
                    return;
                }
                *last = Some(Instant::now());
            }
            let fetched = fetcher.get(&set.url).await.and_then(|body| parse(&body));
            let old = set.keys();
            let next = match fetched {
                Ok(keys) => Keys {
                    generation: old.generation + 1,
                    fetched_at: Some(Instant::now()),
                    keys,
                },
                Err(e) => {
                    tracing::warn!(url = %set.url, "JWKS fetch failed, keeping the previous keys: {e}");
                    Keys {
                        generation: old.generation + 1,
                        fetched_at: old.fetched_at,
                        keys: old.keys.clone(),
                    }
                }
            };
            set.current.store(Arc::new(next));
        })
    }
}

/// The usable keys of a JWKS document (keys of unknown types are skipped).
pub fn parse(body: &[u8]) -> Result<Vec<Key>, String> {
    // Key by key: one key of a type this version does not know must not
    // hide the others.
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("bad JWKS: {e}"))?;
    Ok(doc
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            Some(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect())
}

/// Every key set the node knows, by URL.
#[derive(Debug, Default)]
pub struct JwksCache {
    sets: RwLock<HashMap<String, Arc<KeySet>>>,
}

impl JwksCache {
    /// The set behind `url` (created empty, fetched on first use).
    pub fn set(&self, url: &str) -> Arc<KeySet> {
        if let Some(s) = self.sets.read().ok().and_then(|m| m.get(url).cloned()) {
            return s;
        }
        let Ok(mut sets) = self.sets.write() else {
            return Arc::new(new_set(url));
        };
        sets.entry(url.to_owned())
            .or_insert_with(|| Arc::new(new_set(url)))
            .clone()
    }
}

fn new_set(url: &str) -> KeySet {
    KeySet {
        url: url.to_owned(),
        current: arc_swap::ArcSwap::from_pointee(Keys::default()),
        last_attempt: std::sync::Mutex::new(None),
        refreshing: tokio::sync::Mutex::new(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_document_gives_keys_with_their_kid_and_alg() {
        let doc = br#"{"keys":[
            {"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"weird","kid":"k2"}
        ]}"#;
        let keys = parse(doc).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("k1"));
        assert_eq!(keys[0].alg, Some(Algorithm::RS256));
        let set = Keys {
            generation: 1,
            fetched_at: Some(Instant::now()),
            keys,
        };
        assert_eq!(set.candidates(Some("k1"), Algorithm::RS256).count(), 1);
        assert_eq!(set.candidates(Some("k9"), Algorithm::RS256).count(), 0);
        assert_eq!(set.candidates(Some("k1"), Algorithm::RS384).count(), 0);
        assert!(!set.stale());
        assert!(parse(b"not json").is_err());
    }
}
