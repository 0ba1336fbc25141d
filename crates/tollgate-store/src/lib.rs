//! Tollgate's configuration store.
//!
//! The store persists entities; it does not judge them. The control plane
//! validates the whole configuration (with `tollgate-model`) before it asks
//! the store to write, and every write is one transaction, so a write that
//! fails validation changes nothing and an acknowledged write survives a crash.
//!
//! [`Store`] is the one seam for backends: [`sqlite::SqliteStore`] is the
//! embedded default; PostgreSQL can implement the same trait.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod sqlite;

use uuid::Uuid;

/// One stored entity: its kind (Kong's entity name, e.g. `services`), id,
/// creation time and the JSON document the Admin API shows for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Kong's entity name (`services`, `routes`, `upstreams`, `targets`, …).
    pub kind: String,
    /// Entity id.
    pub id: Uuid,
    /// Creation time (epoch seconds), for stable ordering.
    pub created_at: i64,
    /// The entity as a JSON object.
    pub body: serde_json::Value,
}

/// One change inside an atomic write.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or replace a record.
    Put(Record),
    /// Remove a record (no error if absent).
    Delete {
        /// Kind of the record.
        kind: String,
        /// Its id.
        id: Uuid,
    },
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("database error: {0}")]
    Database(String),
    /// A stored document is not valid JSON (the file was altered outside Tollgate).
    #[error("corrupt record {kind}/{id}: {message}")]
    Corrupt {
        /// Kind of the record.
        kind: String,
        /// Its id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A migration could not be applied.
    #[error("migration {version} failed: {message}")]
    Migration {
        /// Migration version.
        version: u32,
        /// What failed.
        message: String,
    },
}

/// A configuration store backend.
pub trait Store: Send {
    /// Every stored record, ordered by kind, creation time and id.
    fn load(&mut self) -> Result<Vec<Record>, StoreError>;
    /// Applies all changes in one transaction: all or nothing.
    fn apply(&mut self, changes: &[Change]) -> Result<(), StoreError>;
    /// Replaces the whole content in one transaction.
    fn replace_all(&mut self, records: &[Record]) -> Result<(), StoreError>;
}

/// Storage for OAuth 2.0 tokens issued on the proxy (kept apart from the
/// configuration: issuing a token does not change the configuration).
pub trait TokenStore: Send {
    /// Drops records expired at `now`, then returns the others (JSON bodies).
    fn live_tokens(&mut self, now: i64) -> Result<Vec<serde_json::Value>, StoreError>;
    /// Stores a token durably.
    fn insert_token(
        &mut self,
        id: Uuid,
        created_at: i64,
        expires_at: Option<i64>,
        body: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Removes a token (no error if absent).
    fn delete_token(&mut self, id: Uuid) -> Result<(), StoreError>;
}
