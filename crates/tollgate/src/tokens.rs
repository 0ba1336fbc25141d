//! What the node gives its plugins (`PluginEnv`), and the OAuth 2.0 token
//! vault's persistence: with `database =
//! sqlite`, tokens are written to the SQLite file by one writer thread (a
//! request issuing a token waits for its write without blocking its worker
//! thread) and loaded again at start; with `database = off` they live in
//! memory only.

use crate::settings::{Database, Settings};
use std::sync::mpsc;
use std::sync::Arc;
use tollgate_plugins::runtime::{
    BoxFuture, OAuthToken, PluginEnv, TokenPersistence, TokenVault, TokenWrite,
};
use tollgate_store::sqlite::SqliteTokens;
use tollgate_store::TokenStore;

type Job = (TokenWrite, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Sends token writes to the writer thread.
#[derive(Debug)]
struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl TokenPersistence for Writer {
    fn save(&self, write: TokenWrite) -> BoxFuture<Result<(), String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .send((write, tx))
            .map_err(|_| "token writer stopped".to_owned());
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| "token writer stopped".to_owned())?
        })
    }
}

fn apply(store: &mut SqliteTokens, write: TokenWrite) -> Result<(), String> {
    match write {
        TokenWrite::Insert(t) => {
            let body = serde_json::to_value(&t).map_err(|e| e.to_string())?;
            store
                .insert_token(t.id, t.created_at, t.refresh_expires_at, &body)
                .map_err(|e| e.to_string())
        }
        TokenWrite::Delete(id) => store.delete_token(id).map_err(|e| e.to_string()),
    }
}

/// What the node's plugins share: the token vault (loaded from the store),
/// the JWKS cache, and an HTTP fetcher for key sets.
pub fn plugin_env(settings: &Settings) -> anyhow::Result<PluginEnv> {
    let tls = Arc::new(tollgate_tls::ClientTls::new(
        settings.trusted_certificates.clone(),
    ));
    let env = PluginEnv {
        fetcher: Arc::new(tollgate_proxy::fetch::HttpFetcher {
            tls: tls.clone(),
            ..Default::default()
        }),
        tls,
        caches: Arc::new(
            tollgate_plugins::runtime::cache::ProxyCaches::new(
                settings.mem_cache_size,
                Arc::new(tollgate_plugins::runtime::cache::SystemClock),
            )
            .with_disk(
                settings.prefix.join("proxy-cache"),
                settings.proxy_cache_disk_size,
            ),
        ),
        ..PluginEnv::default()
    };
    if settings.database == Database::Off {
        return Ok(env);
    }
    let mut store = SqliteTokens::open(&crate::node::database_path(settings))?;
    let mut tokens = Vec::new();
    for body in store.live_tokens(tollgate_plugins::runtime::epoch_secs())? {
        match serde_json::from_value::<OAuthToken>(body) {
            Ok(t) => tokens.push(t),
            Err(e) => tracing::warn!("skipping an unreadable oauth2 token: {e}"),
        }
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("tollgate-tokens".into())
        .spawn(move || {
            for (write, reply) in rx {
                let done = apply(&mut store, write);
                if let Err(e) = &done {
                    tracing::error!("oauth2 token write failed: {e}");
                }
                let _ = reply.send(done);
            }
        })?;
    let writer: Arc<dyn TokenPersistence> = Arc::new(Writer { jobs: tx });
    Ok(PluginEnv {
        tokens: TokenVault::new(tokens, Some(writer)),
        ..env
    })
}
