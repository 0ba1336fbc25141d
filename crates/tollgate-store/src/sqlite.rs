//! The embedded SQLite store: one file under the node's prefix, WAL journal,
//! `synchronous = FULL` (an acknowledged write is on disk), versioned
//! migrations embedded from `migrations/sqlite/`.

use crate::{Change, Record, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use uuid::Uuid;

/// Versioned migrations, applied in order, each once.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_entities.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_oauth2_tokens.sql"),
    ),
];

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let mut store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(db)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .map_err(db)?;
        for (version, sql) in MIGRATIONS {
            let done: Option<u32> = self
                .conn
                .query_row(
                    "SELECT version FROM schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            if done.is_some() {
                continue;
            }
            let tx = self.conn.transaction().map_err(db)?;
            let fail = |e: rusqlite::Error| StoreError::Migration {
                version: *version,
                message: e.to_string(),
            };
            tx.execute_batch(sql).map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now'))",
                [version],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        Ok(())
    }
}

/// The token table of the same SQLite file, on its own connection (the
/// proxy's token writer, apart from the Admin API's store).
#[derive(Debug)]
pub struct SqliteTokens {
    conn: Connection,
}

impl SqliteTokens {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteTokens, StoreError> {
        Ok(SqliteTokens {
            conn: SqliteStore::open(path)?.conn,
        })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<SqliteTokens, StoreError> {
        Ok(SqliteTokens {
            conn: SqliteStore::in_memory()?.conn,
        })
    }
}

impl crate::TokenStore for SqliteTokens {
    fn live_tokens(&mut self, now: i64) -> Result<Vec<serde_json::Value>, StoreError> {
        self.conn
            .execute("DELETE FROM oauth2_tokens WHERE expires_at <= ?1", [now])
            .map_err(db)?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, body FROM oauth2_tokens ORDER BY created_at, id")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(db)?;
            out.push(
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                    kind: "oauth2_tokens".into(),
                    id,
                    message: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    fn insert_token(
        &mut self,
        id: Uuid,
        created_at: i64,
        expires_at: Option<i64>,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO oauth2_tokens (id, created_at, expires_at, body) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), created_at, expires_at, body.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }

    fn delete_token(&mut self, id: Uuid) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM oauth2_tokens WHERE id = ?1", [id.to_string()])
            .map_err(db)?;
        Ok(())
    }
}

fn put(tx: &rusqlite::Transaction<'_>, r: &Record) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO entities (kind, id, created_at, body) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
        params![r.kind, r.id.to_string(), r.created_at, r.body.to_string()],
    )
    .map_err(db)?;
    Ok(())
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT kind, id, created_at, body FROM entities ORDER BY kind, created_at, id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, id, created_at, body) = row.map_err(db)?;
            let corrupt = |message: String| StoreError::Corrupt {
                kind: kind.clone(),
                id: id.clone(),
                message,
            };
            let uuid = Uuid::parse_str(&id).map_err(|e| corrupt(e.to_string()))?;
            let body = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
            out.push(Record {
                kind,
                id: uuid,
                created_at,
                body,
            });
        }
        Ok(out)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        for c in changes {
            match c {
                Change::Put(r) => put(&tx, r)?,
                Change::Delete { kind, id } => {
                    tx.execute(
                        "DELETE FROM entities WHERE kind = ?1 AND id = ?2",
                        params![kind, id.to_string()],
                    )
                    .map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)
    }

    fn replace_all(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute("DELETE FROM entities", []).map_err(db)?;
        for r in records {
            put(&tx, r)?;
        }
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_kept_until_they_expire() {
        use crate::TokenStore;
        let mut t = SqliteTokens::in_memory().unwrap();
        let body = serde_json::json!({"access_token": "a"});
        t.insert_token(Uuid::from_u128(1), 10, Some(100), &body)
            .unwrap();
        t.insert_token(Uuid::from_u128(2), 11, None, &body).unwrap();
        assert_eq!(t.live_tokens(50).unwrap().len(), 2);
        assert_eq!(t.live_tokens(100).unwrap().len(), 1);
        t.delete_token(Uuid::from_u128(2)).unwrap();
        assert!(t.live_tokens(100).unwrap().is_empty());
    }

    fn rec(kind: &str, n: u128, name: &str) -> Record {
        Record {
            kind: kind.into(),
            id: Uuid::from_u128(n),
            created_at: n as i64,
            body: json!({ "name": name }),
        }
    }

    #[test]
    fn writes_survive_reopening_the_file() {
        let dir = std::env::temp_dir().join(format!("tg-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        {
            let mut s = SqliteStore::open(&path).unwrap();
            s.apply(&[
                Change::Put(rec("services", 1, "a")),
                Change::Put(rec("services", 2, "b")),
            ])
            .unwrap();
            s.apply(&[Change::Delete {
                kind: "services".into(),
                id: Uuid::from_u128(1),
            }])
            .unwrap();
        }
        let mut s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        let all = s.load().unwrap();
        assert_eq!(all, vec![rec("services", 2, "b")]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn replace_all_swaps_everything_at_once() {
        let mut s = SqliteStore::in_memory().unwrap();
        s.apply(&[Change::Put(rec("services", 1, "a"))]).unwrap();
        s.replace_all(&[rec("routes", 5, "r")]).unwrap();
        assert_eq!(s.load().unwrap(), vec![rec("routes", 5, "r")]);
    }

    #[test]
    fn put_replaces_the_body_of_an_existing_record() {
        let mut s = SqliteStore::in_memory().unwrap();
        s.apply(&[Change::Put(rec("services", 1, "a"))]).unwrap();
        s.apply(&[Change::Put(rec("services", 1, "renamed"))])
            .unwrap();
        assert_eq!(s.load().unwrap()[0].body["name"], "renamed");
    }
}
