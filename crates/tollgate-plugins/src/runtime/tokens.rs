//! OAuth 2.0 access tokens issued by the `oauth2` plugin.
//!
//! The [`TokenVault`] is node-wide and outlives configuration snapshots (a
//! reload keeps every token). Lookups on the request path read an in-memory
//! table split into shards, each behind its own lock, so no lock is shared by
//! all requests and no lookup waits on the database. Issuing and revoking go
//! through the vault's [`TokenPersistence`] first (the SQLite store when the
//! node has one), so an issued token survives a restart.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// A future a plugin hands to the data plane (Send, owns what it needs).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One issued token, as Kong's `oauth2_tokens` entity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OAuthToken {
    /// Entity id.
    pub id: Uuid,
    /// Issue time, epoch seconds.
    pub created_at: i64,
    /// The oauth2 credential (client application) it was issued to.
    pub credential: Uuid,
    /// The service it is valid for (None: global, with `global_credentials`).
    pub service: Option<Uuid>,
    /// The bearer token.
    pub access_token: String,
    /// The refresh token, when one was issued.
    pub refresh_token: Option<String>,
    /// Lifetime of the access token in seconds (0: never expires).
    pub expires_in: i64,
    /// When the record (and its refresh token) goes away, epoch seconds.
    pub refresh_expires_at: Option<i64>,
    /// The end user the token acts for.
    pub authenticated_userid: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: Option<String>,
}

impl OAuthToken {
    /// Whether the access token has expired at `now`.
    pub fn access_expired(&self, now: i64) -> bool {
        self.expires_in > 0 && now - self.created_at >= self.expires_in
    }

    /// Whether the whole record is gone at `now` (refresh window over too).
    pub fn record_expired(&self, now: i64) -> bool {
        match self.refresh_expires_at {
            Some(t) => now >= t,
            None => self.refresh_token.is_none() && self.access_expired(now),
        }
    }
}

/// A change to the stored tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenWrite {
    /// A new token.
    Insert(OAuthToken),
    /// A token revoked (refreshed away).
    Delete(Uuid),
}

/// Where tokens are kept durably.
pub trait TokenPersistence: Send + Sync + std::fmt::Debug {
    /// Applies `write`; the future resolves once it is durable.
    fn save(&self, write: TokenWrite) -> BoxFuture<Result<(), String>>;
}

const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Shard {
    by_access: HashMap<String, Arc<OAuthToken>>,
    by_refresh: HashMap<String, Arc<OAuthToken>>,
}

/// The node's tokens (see the module docs).
#[derive(Debug)]
pub struct TokenVault {
    shards: Vec<RwLock<Shard>>,
    hasher: RandomState,
    persistence: Option<Arc<dyn TokenPersistence>>,
}

use super::epoch_secs as now;

impl TokenVault {
    /// A vault holding `tokens` (loaded from the store), writing through
    /// `persistence` (None: tokens live in memory only, as with `database = off`).
    pub fn new(
        tokens: Vec<OAuthToken>,
        persistence: Option<Arc<dyn TokenPersistence>>,
    ) -> Arc<TokenVault> {
        let vault = TokenVault {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            persistence,
        };
        for t in tokens {
            vault.remember(Arc::new(t));
        }
        Arc::new(vault)
    }

    fn shard(&self, token: &str) -> &RwLock<Shard> {
        let i = self.hasher.hash_one(token) as usize % SHARDS;
        &self.shards[i]
    }

    fn remember(&self, t: Arc<OAuthToken>) {
        if let Ok(mut s) = self.shard(&t.access_token).write() {
            s.by_access.insert(t.access_token.clone(), t.clone());
        }
        if let Some(r) = &t.refresh_token {
            if let Ok(mut s) = self.shard(r).write() {
                s.by_refresh.insert(r.clone(), t.clone());
            }
        }
    }

    fn forget(&self, t: &OAuthToken) {
        if let Ok(mut s) = self.shard(&t.access_token).write() {
            s.by_access.remove(&t.access_token);
        }
        if let Some(r) = &t.refresh_token {
            if let Ok(mut s) = self.shard(r).write() {
                s.by_refresh.remove(r);
            }
        }
    }

    /// The token with this access token, if it is still stored (it may have
    /// expired: the caller checks, to answer Kong's message).
    pub fn access(&self, access_token: &str) -> Option<Arc<OAuthToken>> {
        let s = self.shard(access_token).read().ok()?;
        let t = s.by_access.get(access_token)?;
        super::constant_time_eq(t.access_token.as_bytes(), access_token.as_bytes())
            .then(|| t.clone())
    }

    /// The live token with this refresh token.
    pub fn refresh(&self, refresh_token: &str) -> Option<Arc<OAuthToken>> {
        let s = self.shard(refresh_token).read().ok()?;
        let t = s.by_refresh.get(refresh_token)?;
        (!t.record_expired(now())
            && t.refresh_token
                .as_deref()
                .is_some_and(|r| super::constant_time_eq(r.as_bytes(), refresh_token.as_bytes())))
        .then(|| t.clone())
    }

    /// Stores `token` (durably first), revoking `replaces` if given.
    pub fn issue(
        self: &Arc<Self>,
        token: OAuthToken,
        replaces: Option<Arc<OAuthToken>>,
    ) -> BoxFuture<Result<(), String>> {
        let vault = self.clone();
        Box::pin(async move {
            if let Some(p) = &vault.persistence {
                if let Some(old) = &replaces {
                    p.save(TokenWrite::Delete(old.id)).await?;
                }
                p.save(TokenWrite::Insert(token.clone())).await?;
            }
            if let Some(old) = &replaces {
                vault.forget(old);
            }
            vault.sweep();
            vault.remember(Arc::new(token));
            Ok(())
        })
    }

    /// Drops records whose lifetime is over (the store drops them on load).
    fn sweep(&self) {
        let now = now();
        for shard in &self.shards {
            if let Ok(mut s) = shard.write() {
                s.by_access.retain(|_, t| !t.record_expired(now));
                s.by_refresh.retain(|_, t| !t.record_expired(now));
            }
        }
    }

    /// How many tokens are held (tests, metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map_or(0, |s| s.by_access.len()))
            .sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What plugins get from the node besides their configuration; it
/// outlives configuration snapshots.
#[derive(Debug, Clone)]
pub struct PluginEnv {
    /// The node's OAuth 2.0 tokens.
    pub tokens: Arc<TokenVault>,
    /// Key sets fetched for jwt credentials with a `jwks_uri`.
    pub jwks: Arc<super::JwksCache>,
    /// How those are fetched.
    pub fetcher: Arc<dyn super::Fetcher>,
    /// TLS for connections plugins open (Redis): the trusted authorities.
    pub tls: Arc<tollgate_tls::ClientTls>,
    /// proxy-cache's memory stores.
    pub caches: Arc<super::cache::ProxyCaches>,
}

impl Default for PluginEnv {
    /// Tokens in memory only, no network.
    fn default() -> Self {
        PluginEnv {
            tokens: TokenVault::new(Vec::new(), None),
            jwks: Arc::default(),
            fetcher: Arc::new(super::NoFetch),
            tls: Arc::default(),
            caches: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(access: &str, refresh: Option<&str>, created_at: i64, expires_in: i64) -> OAuthToken {
        OAuthToken {
            id: Uuid::new_v4(),
            created_at,
            credential: Uuid::nil(),
            service: None,
            access_token: access.into(),
            refresh_token: refresh.map(Into::into),
            expires_in,
            refresh_expires_at: refresh.map(|_| created_at + 1000),
            authenticated_userid: None,
            scope: None,
        }
    }

    #[test]
    fn access_tokens_expire_after_their_lifetime() {
        let t = token("a", None, 100, 10);
        assert!(!t.access_expired(109));
        assert!(t.access_expired(110));
        assert!(t.record_expired(110));
        assert!(!token("a", None, 100, 0).access_expired(1 << 40));
    }

    #[test]
    fn a_refresh_replaces_the_old_token() {
        let v = TokenVault::new(vec![token("old", Some("r1"), now(), 60)], None);
        let old = v.refresh("r1").unwrap();
        let fut = v.issue(token("new", Some("r2"), now(), 60), Some(old));
        // No persistence: the future completes on its first poll.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = fut;
        assert!(matches!(
            fut.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Ok(()))
        ));
        assert!(v.access("old").is_none());
        assert!(v.refresh("r1").is_none());
        assert!(v.access("new").is_some());
        assert_eq!(v.len(), 1);
    }
}
