//! The control plane's view of the configuration: an in-memory mirror of the
//! store, validated as a whole on every write.
//!
//! A write goes: apply the change to a copy of the mirror → build the Kong
//! declarative document → validate it with `tollgate-model` → compile it
//! (`prepare`) → write the store in one transaction → swap the mirror and
//! publish the compiled snapshot. Any failure before the store write leaves
//! everything as it was; the proxy never sees a configuration the store does
//! not hold.

use crate::error::AdminError;
use crate::kinds::{self, Kind};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tollgate_model::PathSegment;
use tollgate_model::{Config, ConfigError};
use tollgate_store::{Change, Record, Store};
use uuid::Uuid;

/// One entity in the mirror.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Entity id.
    pub id: Uuid,
    /// Creation time (epoch seconds).
    pub created_at: i64,
    /// The document the Admin API shows.
    pub body: Map<String, Value>,
}

/// Compiles a validated configuration; returns the action that makes it live.
pub type Prepare = dyn Fn(Arc<Config>) -> Result<Box<dyn FnOnce() + Send>, String> + Send + Sync;

type Mirror = BTreeMap<Kind, Vec<Entry>>;

struct Inner {
    store: Option<Box<dyn Store>>,
    mirror: Mirror,
    config: Arc<Config>,
}

/// The configuration owner behind the Admin API.
pub struct ControlPlane {
    inner: Mutex<Inner>,
    prepare: Box<Prepare>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a write does to one entity.
#[derive(Debug, Clone)]
pub enum Op {
    /// Insert or replace.
    Put(Kind, Entry),
    /// Remove.
    Delete(Kind, Uuid),
}

fn document(mirror: &Mirror) -> Value {
    let mut doc = Map::new();
    doc.insert("_format_version".into(), json!("3.0"));
    for (kind, entries) in mirror {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| Value::Object(e.body.clone()))
            .collect();
        doc.insert(kind.name().into(), Value::Array(list));
    }
    Value::Object(doc)
}

fn mirror_from_config(config: &Config, created_at: i64) -> Mirror {
    let mut mirror = Mirror::new();
    for (kind, mut body) in kinds::render_all(config) {
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(Uuid::new_v4);
        body.insert("created_at".into(), json!(created_at));
        body.insert("updated_at".into(), json!(created_at));
        mirror.entry(kind).or_default().push(Entry {
            id,
            created_at,
            body,
        });
    }
    mirror
}

/// Validates the mirror as one declarative document, plugin configs included.
fn validate(mirror: &Mirror, source: &str) -> Result<Config, ConfigError> {
    tollgate_model::declarative::from_value_with(
        &document(mirror),
        source,
        Some(&crate::PluginRegistry),
    )
}

/// Turns validation issues into Kong's error for the entity being written
/// (`target` = its kind and id).
fn map_issues(err: ConfigError, mirror: &Mirror, target: Option<(Kind, Uuid)>) -> AdminError {
    let ConfigError::Invalid { issues, .. } = err else {
        return AdminError::Internal(err.to_string());
    };
    let position = target.and_then(|(k, id)| {
        mirror
            .get(&k)
            .and_then(|list| list.iter().position(|e| e.id == id))
            .map(|i| (k, i))
    });
    let mut fields = Map::new();
    for issue in issues {
        let msg = issue.message.clone();
        if msg.starts_with("duplicate ") {
            let key = match target.and_then(|(k, id)| find_body(mirror, k, id).map(|b| (k, b))) {
                Some((Kind::Plugins, b)) => {
                    let name = b.get("name").and_then(Value::as_str).unwrap_or("");
                    let scope: Vec<String> = ["consumer", "route", "service"]
                        .iter()
                        .map(|f| match foreign_key(b, f) {
                            Some(id) => format!("{f}={{id=\"{id}\"}}"),
                            None => format!("{f}=null"),
                        })
                        .collect();
                    format!("{{{},name=\"{name}\",{}}}", scope[0], scope[1..].join(","))
                }
                Some((k, b)) => {
                    let f = k.endpoint_key().unwrap_or("id");
                    format!(
                        "{{{f}=\"{}\"}}",
                        b.get(f).and_then(Value::as_str).unwrap_or("")
                    )
                }
                None => msg.clone(),
            };
            return AdminError::Unique(key);
        }
        if msg.starts_with("no service with") || msg.starts_with("no upstream with") {
            let kind = if msg.starts_with("no service") {
                "services"
            } else {
                "upstreams"
            };
            let id = msg.split('"').nth(1).unwrap_or("");
            return AdminError::ForeignKey(format!(
                "the foreign key '{{id=\"{id}\"}}' does not reference an existing '{kind}' entity."
            ));
        }
        let segs = issue.path.segments();
        let under_target = match (position, segs) {
            (Some((k, i)), [PathSegment::Field(name), PathSegment::Index { index, .. }, ..]) => {
                name == k.name() && *index == i
            }
            _ => false,
        };
        let rest: &[PathSegment] = if under_target { &segs[2..] } else { segs };
        // `unknown field 'x'` on the entity becomes fields.x = "unknown field".
        let (rest_owned, msg) = match msg
            .strip_prefix("unknown field '")
            .and_then(|m| m.split_once('\''))
        {
            Some((name, _)) => {
                let mut r = rest.to_vec();
                r.push(PathSegment::Field(name.to_owned()));
                (r, "unknown field".to_owned())
            }
            None => (rest.to_vec(), msg),
        };
        insert_field(&mut fields, &rest_owned, msg);
    }
    AdminError::Schema(fields)
}

fn insert_field(fields: &mut Map<String, Value>, path: &[PathSegment], msg: String) {
    let mut key = String::new();
    for seg in path {
        match seg {
            PathSegment::Field(f) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(f);
            }
            PathSegment::Index { index, .. } => key.push_str(&format!("[{}]", index + 1)),
        }
    }
    if key.is_empty() {
        key = "@entity".into();
    }
    // Nest dotted keys as Kong nests record fields.
    let mut cur = fields;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            match cur.get_mut(*p) {
                Some(Value::Array(a)) => a.push(Value::String(msg.clone())),
                Some(existing) => {
                    let prev = existing.take();
                    *existing = Value::Array(vec![prev, Value::String(msg.clone())]);
                }
                None => {
                    cur.insert((*p).to_owned(), Value::String(msg.clone()));
                }
            }
        } else {
            let next = cur
                .entry((*p).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            let Value::Object(m) = next else { return };
            cur = m;
        }
    }
}

fn find_body(mirror: &Mirror, kind: Kind, id: Uuid) -> Option<&Map<String, Value>> {
    mirror
        .get(&kind)?
        .iter()
        .find(|e| e.id == id)
        .map(|e| &e.body)
}

impl ControlPlane {
    /// Opens the control plane over a store (loading and validating what it
    /// holds), or over a fixed configuration when `store` is None (DB-less).
    pub fn new(
        store: Option<Box<dyn Store>>,
        dbless_config: Option<Arc<Config>>,
        prepare: Box<Prepare>,
    ) -> Result<ControlPlane, String> {
        let mut store = store;
        let (mirror, config) = match (&mut store, dbless_config) {
            (Some(s), _) => {
                let records = s.load().map_err(|e| e.to_string())?;
                let mut mirror = Mirror::new();
                for r in records {
                    let Some(kind) = Kind::from_name(&r.kind) else {
                        continue;
                    };
                    let Value::Object(body) = r.body else {
                        return Err(format!("stored {} {} is not an object", r.kind, r.id));
                    };
                    mirror.entry(kind).or_default().push(Entry {
                        id: r.id,
                        created_at: r.created_at,
                        body,
                    });
                }
                let config =
                    tollgate_model::declarative::from_value(&document(&mirror), "database")
                        .map_err(|e| format!("stored configuration is invalid: {e}"))?;
                (mirror, Arc::new(config))
            }
            (None, Some(config)) => (mirror_from_config(&config, now()), config),
            (None, None) => (Mirror::new(), Arc::new(Config::default())),
        };
        let activate = prepare(config.clone())?;
        activate();
        Ok(ControlPlane {
            inner: Mutex::new(Inner {
                store,
                mirror,
                config,
            }),
            prepare,
        })
    }

    /// Whether writes are refused (DB-less).
    pub fn is_db_less(&self) -> bool {
        self.lock().store.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current validated configuration.
    pub fn config(&self) -> Arc<Config> {
        self.lock().config.clone()
    }

    /// All entities of a kind, oldest first.
    pub fn list(&self, kind: Kind) -> Vec<Entry> {
        self.lock().mirror.get(&kind).cloned().unwrap_or_default()
    }

    /// Finds an entity by id or endpoint key; `parent` (foreign key field and
    /// id) restricts to children of that entity (nested endpoints).
    pub fn find(&self, kind: Kind, id_or_key: &str, parent: Option<(&str, Uuid)>) -> Option<Entry> {
        let inner = self.lock();
        let list = inner.mirror.get(&kind)?;
        // A UUID-looking value is tried as an id first, then as the endpoint
        // key (generated key-auth keys are 32 hex digits, which parse as UUIDs).
        let by_id = Uuid::parse_str(id_or_key).ok();
        let in_scope =
            |e: &&Entry| parent.is_none_or(|(field, p)| foreign_key(&e.body, field) == Some(p));
        let by_key = |e: &&Entry| {
            kind.endpoint_key()
                .is_some_and(|key| e.body.get(key).and_then(Value::as_str) == Some(id_or_key))
        };
        by_id
            .and_then(|id| list.iter().filter(in_scope).find(|e| e.id == id))
            .or_else(|| list.iter().filter(in_scope).find(by_key))
            .cloned()
    }

    /// Entities of `kind` whose foreign key `field` is `parent`.
    pub fn children(&self, kind: Kind, field: &str, parent: Uuid) -> Vec<Entry> {
        self.list(kind)
            .into_iter()
            .filter(|e| foreign_key(&e.body, field) == Some(parent))
            .collect()
    }

    /// Applies `ops` atomically after validating the resulting configuration;
    /// `target` is the entity errors are reported for, and whose stored
    /// document (plugin configs completed with their defaults) is returned.
    pub fn write(
        &self,
        ops: Vec<Op>,
        target: Option<(Kind, Uuid)>,
    ) -> Result<Map<String, Value>, AdminError> {
        self.apply(ops, target, true)
    }

    /// Validates `ops` as [`ControlPlane::write`] would, without storing anything.
    pub fn check(&self, ops: Vec<Op>, target: Option<(Kind, Uuid)>) -> Result<(), AdminError> {
        self.apply(ops, target, false).map(|_| ())
    }

    fn apply(
        &self,
        ops: Vec<Op>,
        target: Option<(Kind, Uuid)>,
        commit: bool,
    ) -> Result<Map<String, Value>, AdminError> {
        let mut inner = self.lock();
        if inner.store.is_none() {
            return Err(AdminError::DbLess(
                "cannot change entities when not using a database".into(),
            ));
        }
        let mut mirror = inner.mirror.clone();
        let mut changes = Vec::new();
        for op in ops {
            match op {
                Op::Put(kind, entry) => {
                    changes.push(Change::Put(Record {
                        kind: kind.name().into(),
                        id: entry.id,
                        created_at: entry.created_at,
                        body: Value::Object(entry.body.clone()),
                    }));
                    let list = mirror.entry(kind).or_default();
                    match list.iter_mut().find(|e| e.id == entry.id) {
                        Some(e) => *e = entry,
                        None => list.push(entry),
                    }
                }
                Op::Delete(kind, id) => {
                    changes.push(Change::Delete {
                        kind: kind.name().into(),
                        id,
                    });
                    if let Some(list) = mirror.get_mut(&kind) {
                        list.retain(|e| e.id != id);
                    }
                }
            }
        }
        let config = validate(&mirror, "admin").map_err(|e| map_issues(e, &mirror, target))?;
        // Plugin configs are stored complete, defaults included, as Kong returns them.
        for p in &config.plugins {
            let Some(list) = mirror.get_mut(&Kind::Plugins) else {
                break;
            };
            if let Some(e) = list.iter_mut().find(|e| e.id == p.id) {
                if e.body.get("config") != Some(&p.config) {
                    e.body.insert("config".into(), p.config.clone());
                    for c in changes.iter_mut() {
                        if let Change::Put(r) = c {
                            if r.id == p.id && r.kind == Kind::Plugins.name() {
                                r.body = Value::Object(e.body.clone());
                            }
                        }
                    }
                }
            }
        }
        let stored = target
            .and_then(|(k, id)| find_body(&mirror, k, id).cloned())
            .unwrap_or_default();
        let config = Arc::new(config);
        let activate = (self.prepare)(config.clone()).map_err(|m| {
            let mut f = Map::new();
            f.insert("@entity".into(), json!([m]));
            AdminError::Schema(f)
        })?;
        if !commit {
            return Ok(stored);
        }
        if let Some(store) = inner.store.as_mut() {
            store
                .apply(&changes)
                .map_err(|e| AdminError::Internal(e.to_string()))?;
        }
        inner.mirror = mirror;
        inner.config = config;
        activate();
        Ok(stored)
    }

    /// Replaces everything with a validated configuration (POST /config, db_import).
    pub fn replace_all(&self, config: Config) -> Result<(), AdminError> {
        let config = Arc::new(config);
        let activate = (self.prepare)(config.clone()).map_err(|m| {
            let mut f = Map::new();
            f.insert("@entity".into(), json!([m]));
            AdminError::Declarative(m, f)
        })?;
        let mirror = mirror_from_config(&config, now());
        let mut inner = self.lock();
        if let Some(store) = inner.store.as_mut() {
            let records: Vec<Record> = mirror
                .iter()
                .flat_map(|(k, list)| {
                    list.iter().map(|e| Record {
                        kind: k.name().into(),
                        id: e.id,
                        created_at: e.created_at,
                        body: Value::Object(e.body.clone()),
                    })
                })
                .collect();
            store
                .replace_all(&records)
                .map_err(|e| AdminError::Internal(e.to_string()))?;
        }
        inner.mirror = mirror;
        inner.config = config;
        activate();
        Ok(())
    }

    /// The configuration as a Kong declarative document (GET /config, db_export).
    pub fn export(&self) -> Value {
        let inner = self.lock();
        let mut doc = document(&inner.mirror);
        if let Value::Object(m) = &mut doc {
            for (_, list) in m.iter_mut() {
                if let Value::Array(items) = list {
                    for item in items {
                        if let Value::Object(o) = item {
                            o.remove("created_at");
                            o.remove("updated_at");
                            o.retain(|_, v| !v.is_null());
                        }
                    }
                }
            }
        }
        doc
    }

    /// Time now, for timestamps.
    pub fn now(&self) -> i64 {
        now()
    }
}

/// The id a foreign key field (`service`, `upstream`, …) of a document points to.
pub fn foreign_key(body: &Map<String, Value>, field: &str) -> Option<Uuid> {
    body.get(field)?
        .get("id")?
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
}
