//! The control plane's view of the configuration: one Kong declarative
//! document in memory, mirroring the store, validated as a whole on every
//! write.
//!
//! A write goes: patch the document in place (keeping an undo list) →
//! validate it with `tollgate-model` → compile it (`prepare`) → write the
//! store in one transaction → publish the compiled snapshot. Any failure
//! before the store write is undone; the proxy never sees a configuration
//! the store does not hold, and a write never copies the whole configuration.

use crate::error::AdminError;
use crate::kinds::{self, Kind};
use serde_json::{json, Map, Value};
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

/// The configuration as one Kong declarative document
/// (`{"_format_version":"3.0","services":[…],…}`), each entity stored as the
/// document the Admin API shows. Writes patch it in place and undo on
/// failure, so a write never copies the whole configuration.
type Doc = Value;

struct Inner {
    store: Option<Box<dyn Store>>,
    doc: Doc,
    /// DB-less: the document is rendered from `config` only when the Admin
    /// API first reads it (a large declarative file costs no memory twice
    /// unless someone looks).
    stale: bool,
    config: Arc<Config>,
}

impl Inner {
    fn doc(&mut self) -> &Doc {
        if self.stale {
            self.doc = doc_from_config(&self.config, now());
            self.stale = false;
        }
        &self.doc
    }
}

fn entry_of(body: &Map<String, Value>) -> Option<Entry> {
    let id = body
        .get("id")?
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())?;
    let created_at = body.get("created_at").and_then(Value::as_i64).unwrap_or(0);
    Some(Entry {
        id,
        created_at,
        body: body.clone(),
    })
}

fn bodies(doc: &Doc, kind: Kind) -> impl Iterator<Item = &Map<String, Value>> {
    doc.get(kind.name())
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn id_of(body: &Map<String, Value>) -> Option<Uuid> {
    body.get("id")?
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn position(doc: &Doc, kind: Kind, id: Uuid) -> Option<usize> {
    doc.get(kind.name())?
        .as_array()?
        .iter()
        .position(|v| v.as_object().and_then(id_of) == Some(id))
}

fn array_mut(doc: &mut Doc, kind: Kind) -> Option<&mut Vec<Value>> {
    let obj = doc.as_object_mut()?;
    obj.entry(kind.name())
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
}

/// How to take back one change.
enum Undo {
    Replace(Kind, usize, Value),
    Pop(Kind),
    Insert(Kind, usize, Value),
}

fn revert(doc: &mut Doc, undo: Vec<Undo>) {
    for u in undo.into_iter().rev() {
        match u {
            Undo::Replace(k, i, v) => {
                if let Some(slot) = array_mut(doc, k).and_then(|a| a.get_mut(i)) {
                    *slot = v;
                }
            }
            Undo::Pop(k) => {
                if let Some(a) = array_mut(doc, k) {
                    a.pop();
                }
            }
            Undo::Insert(k, i, v) => {
                if let Some(a) = array_mut(doc, k) {
                    if i <= a.len() {
                        a.insert(i, v);
                    }
                }
            }
        }
    }
}

fn empty_doc() -> Doc {
    json!({ "_format_version": "3.0" })
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

fn doc_from_config(config: &Config, created_at: i64) -> Doc {
    let mut doc = empty_doc();
    for (kind, mut body) in kinds::render_all(config) {
        // Clear basic-auth passwords from a declarative file are stored and
        // shown hashed, as Kong's `_transform` does.
        if kind == Kind::BasicAuth {
            if let Some(Value::String(pw)) = body.get("password") {
                if !pw.starts_with("$argon2") {
                    if let Ok(h) = crate::password::hash(pw) {
                        body.insert("password".into(), Value::String(h));
                    }
                }
            }
        }
        body.insert("created_at".into(), json!(created_at));
        body.insert("updated_at".into(), json!(created_at));
        if let Some(a) = array_mut(&mut doc, kind) {
            a.push(Value::Object(body));
        }
    }
    doc
}

/// Validates the document, plugin configs included.
fn validate(doc: &Doc, source: &str) -> Result<Config, ConfigError> {
    tollgate_model::declarative::from_value_with(doc, source, Some(&crate::PluginRegistry))
}

/// Turns validation issues into Kong's error for the entity being written
/// (`target` = its kind and id).
fn map_issues(err: ConfigError, doc: &Doc, target: Option<(Kind, Uuid)>) -> AdminError {
    let ConfigError::Invalid { issues, .. } = err else {
        return AdminError::Internal(err.to_string());
    };
    let position = target.and_then(|(k, id)| position(doc, k, id).map(|i| (k, i)));
    let mut fields = Map::new();
    for issue in issues {
        let msg = issue.message.clone();
        if msg.starts_with("duplicate ") {
            let key = match target.and_then(|(k, id)| find_body(doc, k, id).map(|b| (k, b))) {
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
        if let Some(kind) = msg
            .strip_prefix("no ")
            .and_then(|m| m.split_once(" with "))
            .map(|(k, _)| format!("{k}s"))
        {
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

fn find_body(doc: &Doc, kind: Kind, id: Uuid) -> Option<&Map<String, Value>> {
    bodies(doc, kind).find(|b| id_of(b) == Some(id))
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
        let (doc, config) = match (&mut store, dbless_config) {
            (Some(s), _) => {
                let records = s.load().map_err(|e| e.to_string())?;
                let mut doc = empty_doc();
                // Records come ordered by kind, creation time and id.
                for r in records {
                    let Some(kind) = Kind::from_name(&r.kind) else {
                        continue;
                    };
                    if !r.body.is_object() {
                        return Err(format!("stored {} {} is not an object", r.kind, r.id));
                    }
                    if let Some(a) = array_mut(&mut doc, kind) {
                        a.push(r.body);
                    }
                }
                let config = validate(&doc, "database")
                    .map_err(|e| format!("stored configuration is invalid: {e}"))?;
                (doc, Arc::new(config))
            }
            (None, Some(config)) => (empty_doc(), config),
            (None, None) => (empty_doc(), Arc::new(Config::default())),
        };
        let activate = prepare(config.clone())?;
        activate();
        let stale = store.is_none();
        Ok(ControlPlane {
            inner: Mutex::new(Inner {
                store,
                doc,
                stale,
                config,
            }),
            prepare,
        })
    }

    /// Compiles and publishes the current configuration again, for when
    /// something it is compiled with changed outside it (a DNS answer).
    pub fn republish(&self) -> Result<(), String> {
        let inner = self.lock();
        let activate = (self.prepare)(inner.config.clone())?;
        activate();
        Ok(())
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
        bodies(self.lock().doc(), kind)
            .filter_map(entry_of)
            .collect()
    }

    /// Finds an entity by id or endpoint key; `parent` (foreign key field and
    /// id) restricts to children of that entity (nested endpoints).
    pub fn find(&self, kind: Kind, id_or_key: &str, parent: Option<(&str, Uuid)>) -> Option<Entry> {
        let mut inner = self.lock();
        let doc = inner.doc();
        // A UUID-looking value is tried as an id first, then as the endpoint
        // key (generated key-auth keys are 32 hex digits, which parse as UUIDs).
        let by_id = Uuid::parse_str(id_or_key).ok();
        let in_scope = |b: &&Map<String, Value>| {
            parent.is_none_or(|(field, p)| foreign_key(b, field) == Some(p))
        };
        let by_key = |b: &&Map<String, Value>| {
            kind.endpoint_key()
                .is_some_and(|key| b.get(key).and_then(Value::as_str) == Some(id_or_key))
        };
        by_id
            .and_then(|id| {
                bodies(doc, kind)
                    .filter(in_scope)
                    .find(|b| id_of(b) == Some(id))
            })
            .or_else(|| bodies(doc, kind).filter(in_scope).find(by_key))
            .and_then(entry_of)
    }

    /// Entities of `kind` whose foreign key `field` is `parent`.
    pub fn children(&self, kind: Kind, field: &str, parent: Uuid) -> Vec<Entry> {
        let mut inner = self.lock();
        bodies(inner.doc(), kind)
            .filter(|b| foreign_key(b, field) == Some(parent))
            .filter_map(entry_of)
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
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.store.is_none() {
            return Err(AdminError::DbLess(
                "cannot change entities when not using a database".into(),
            ));
        }
        let mut undo = Vec::new();
        let mut changes = Vec::new();
        for op in ops {
            match op {
                Op::Put(kind, entry) => {
                    let body = Value::Object(entry.body);
                    changes.push((kind, entry.id, entry.created_at, true));
                    let at = position(&inner.doc, kind, entry.id);
                    let Some(list) = array_mut(&mut inner.doc, kind) else {
                        continue;
                    };
                    match at.and_then(|i| list.get_mut(i).map(|slot| (i, slot))) {
                        Some((i, slot)) => {
                            undo.push(Undo::Replace(kind, i, std::mem::replace(slot, body)))
                        }
                        None => {
                            list.push(body);
                            undo.push(Undo::Pop(kind));
                        }
                    }
                }
                Op::Delete(kind, id) => {
                    changes.push((kind, id, 0, false));
                    if let Some(i) = position(&inner.doc, kind, id) {
                        if let Some(list) = array_mut(&mut inner.doc, kind) {
                            undo.push(Undo::Insert(kind, i, list.remove(i)));
                        }
                    }
                }
            }
        }
        let outcome = (|| {
            let config =
                validate(&inner.doc, "admin").map_err(|e| map_issues(e, &inner.doc, target))?;
            // Plugin configs are stored complete, defaults included, as Kong returns them.
            for p in &config.plugins {
                let Some(i) = position(&inner.doc, Kind::Plugins, p.id) else {
                    continue;
                };
                let Some(slot) =
                    array_mut(&mut inner.doc, Kind::Plugins).and_then(|a| a.get_mut(i))
                else {
                    continue;
                };
                if slot.get("config") != Some(&p.config) {
                    let before = slot.clone();
                    if let Value::Object(b) = slot {
                        b.insert("config".into(), p.config.clone());
                    }
                    undo.push(Undo::Replace(Kind::Plugins, i, before));
                }
            }
            let config = Arc::new(config);
            let activate = (self.prepare)(config.clone()).map_err(|m| {
                let mut f = Map::new();
                f.insert("@entity".into(), json!([m]));
                AdminError::Schema(f)
            })?;
            Ok((config, activate))
        })();
        let (config, activate) = match outcome {
            Ok(ok) if commit => ok,
            Ok(_) => {
                let stored = target
                    .and_then(|(k, id)| find_body(&inner.doc, k, id).cloned())
                    .unwrap_or_default();
                revert(&mut inner.doc, undo);
                return Ok(stored);
            }
            Err(e) => {
                revert(&mut inner.doc, undo);
                return Err(e);
            }
        };
        let records: Vec<Change> = changes
            .into_iter()
            .map(|(kind, id, created_at, put)| {
                let body = find_body(&inner.doc, kind, id).cloned().map(Value::Object);
                match (put, body) {
                    (true, Some(body)) => Change::Put(Record {
                        kind: kind.name().into(),
                        id,
                        created_at,
                        body,
                    }),
                    _ => Change::Delete {
                        kind: kind.name().into(),
                        id,
                    },
                }
            })
            .collect();
        if let Some(store) = inner.store.as_mut() {
            if let Err(e) = store.apply(&records) {
                revert(&mut inner.doc, undo);
                return Err(AdminError::Internal(e.to_string()));
            }
        }
        let stored = target
            .and_then(|(k, id)| find_body(&inner.doc, k, id).cloned())
            .unwrap_or_default();
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
        let mut inner = self.lock();
        if inner.store.is_none() {
            // DB-less: nothing to persist; render lazily on the next read.
            inner.stale = true;
            inner.config = config;
            activate();
            return Ok(());
        }
        let doc = doc_from_config(&config, now());
        if let Some(store) = inner.store.as_mut() {
            let mut records = Vec::new();
            for kind in Kind::ALL {
                for b in bodies(&doc, kind) {
                    if let Some(e) = entry_of(b) {
                        records.push(Record {
                            kind: kind.name().into(),
                            id: e.id,
                            created_at: e.created_at,
                            body: Value::Object(e.body),
                        });
                    }
                }
            }
            store
                .replace_all(&records)
                .map_err(|e| AdminError::Internal(e.to_string()))?;
        }
        inner.doc = doc;
        inner.config = config;
        activate();
        Ok(())
    }

    /// The configuration as a Kong declarative document (GET /config, db_export).
    pub fn export(&self) -> Value {
        let mut doc = self.lock().doc().clone();
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
