//! Reader for Kong's declarative configuration format (`kong.yml`).
//!
//! The text (YAML, or JSON when it starts with `{`) is parsed into a
//! [`serde_json::Value`], then walked by hand so that every problem is
//! reported with its exact place: the file, the entity (index, and name when
//! it has one) and the field. All problems are collected, not just the first.
//!
//! Accepted top-level keys: `_format_version` (required: "1.1", "2.1" or
//! "3.0"), `_transform`, `_comment`, `_ignore`, `services` (with nested
//! `routes`), `routes`, `upstreams` (with nested `targets`), `targets`. The
//! keys of entities Tollgate does not model yet (`consumers`, `plugins`,
//! `certificates`, `snis`, `ca_certificates`, `vaults`, `consumer_groups` and
//! the credential keys) are accepted only when absent, null or empty.
//!
//! Missing ids are derived as Kong derives them (see [`entity_id`]) for
//! named services, routes and upstreams and for targets. Kong gives unnamed
//! services and routes a random UUIDv4; Tollgate gives them a UUIDv5 of
//! their parent and content instead, so that reloading an unchanged file
//! keeps every id.
//!
//! Resulting order: services and upstreams in file order; routes nested
//! under services first (in service order), then top-level routes; each
//! upstream's nested targets, then its top-level targets.

mod check;
mod fields;
mod ids;
mod route;
mod service;
mod syntax;
mod upstream;

pub use ids::{entity_id, KONG_NAMESPACE};

use crate::error::FieldPath;
use crate::{Config, ConfigError};
use fields::{describe, quote, Ctx, Record};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// Reads and validates a declarative file (YAML or JSON). Errors name the
/// file as given in `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        source_name: source.clone(),
        error,
    })?;
    parse_str(&text, &source)
}

/// Parses and validates declarative text (YAML or JSON); `source_name` names
/// it in errors (e.g. the file name).
pub fn parse_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let value = syntax::parse_value(text, source_name)?;
    let mut b = Build::default();
    document(&mut b, &value);
    if b.ctx.issues.is_empty() {
        Ok(b.config)
    } else {
        Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            issues: b.ctx.issues,
        })
    }
}

/// Validates an already parsed declarative document (the Admin API builds
/// one from its store); `source_name` names it in errors.
pub fn from_value(value: &Value, source_name: &str) -> Result<Config, ConfigError> {
    let mut b = Build::default();
    document(&mut b, value);
    if b.ctx.issues.is_empty() {
        Ok(b.config)
    } else {
        Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            issues: b.ctx.issues,
        })
    }
}

/// Parses declarative text (YAML or JSON) into a document without validating it.
pub fn parse_document(text: &str, source_name: &str) -> Result<Value, ConfigError> {
    syntax::parse_value(text, source_name)
}

/// Supported values of `_format_version`.
const FORMAT_VERSIONS: [&str; 3] = ["1.1", "2.1", "3.0"];

/// Kong entities Tollgate does not model yet: accepted only when empty.
const NOT_YET: [&str; 13] = [
    "consumers",
    "plugins",
    "certificates",
    "snis",
    "ca_certificates",
    "vaults",
    "consumer_groups",
    "keyauth_credentials",
    "basicauth_credentials",
    "jwt_secrets",
    "hmacauth_credentials",
    "oauth2_credentials",
    "acls",
];

/// Top-level keys handled here.
const TOP_LEVEL: [&str; 6] = [
    "_format_version",
    "_transform",
    "services",
    "routes",
    "upstreams",
    "targets",
];

/// Everything gathered while walking the document.
#[derive(Default)]
pub(crate) struct Build {
    pub(crate) ctx: Ctx,
    pub(crate) config: Config,
    /// Service id → where it was declared.
    pub(crate) service_ids: HashMap<Uuid, FieldPath>,
    /// Service name → (id, where it was declared).
    pub(crate) service_names: HashMap<String, (Uuid, FieldPath)>,
    pub(crate) route_ids: HashMap<Uuid, FieldPath>,
    pub(crate) route_names: HashMap<String, FieldPath>,
    /// Upstream id → (index in `config.upstreams`, where it was declared).
    pub(crate) upstream_ids: HashMap<Uuid, (usize, FieldPath)>,
    pub(crate) upstream_names: HashMap<String, (usize, FieldPath)>,
    pub(crate) target_ids: HashMap<Uuid, FieldPath>,
    /// Per upstream index: (host, port) → where the target was declared.
    pub(crate) targets_seen: HashMap<usize, HashMap<(String, u16), FieldPath>>,
    /// Occurrences of identical unnamed entities, for their ids.
    pub(crate) unnamed_seen: HashMap<String, usize>,
}

fn document(b: &mut Build, value: &Value) {
    let root = FieldPath::root();
    let rec = match value {
        Value::Object(map) => Record {
            map,
            path: root.clone(),
        },
        Value::Null => {
            b.ctx.err(root, "the document is empty");
            return;
        }
        other => {
            b.ctx.err(
                root,
                format!(
                    "expected a mapping at the top level, got {}",
                    describe(other)
                ),
            );
            return;
        }
    };
    let allowed: Vec<&str> = TOP_LEVEL.iter().chain(NOT_YET.iter()).copied().collect();
    rec.check_fields(&mut b.ctx, &allowed);

    match rec.map.get("_format_version") {
        None | Some(Value::Null) => b
            .ctx
            .err(rec.at("_format_version"), "required field missing"),
        Some(Value::String(v)) if FORMAT_VERSIONS.contains(&v.as_str()) => {}
        Some(Value::String(v)) => b.ctx.err(
            rec.at("_format_version"),
            format!(
                "unsupported version {} (expected \"1.1\", \"2.1\" or \"3.0\")",
                quote(v)
            ),
        ),
        Some(other) => b.ctx.err(
            rec.at("_format_version"),
            format!(
                "expected a string such as \"3.0\" (quote the value), got {}",
                describe(other)
            ),
        ),
    }
    rec.opt_boolean(&mut b.ctx, "_transform");
    for key in NOT_YET {
        if let Some(items) = rec.array(&mut b.ctx, key) {
            if !items.is_empty() {
                b.ctx
                    .err(rec.at(key), format!("{key} is not supported yet"));
            }
        }
    }

    service::services(b, &rec);
    route::top_level_routes(b, &rec);
    upstream::upstreams(b, &rec);
    upstream::top_level_targets(b, &rec);
}

/// The label of an entity in paths, e.g. `name "orders"`, when `value` is an
/// object whose `key` is a string.
pub(crate) fn label_of(value: &Value, key: &str) -> Option<String> {
    match value.get(key) {
        Some(Value::String(s)) => Some(format!("{key} {}", quote(s))),
        _ => None,
    }
}

/// Reads an explicit `id` (must be a hyphenated UUID).
pub(crate) fn explicit_id(ctx: &mut Ctx, rec: &Record<'_>) -> Option<Uuid> {
    let s = rec.string(ctx, "id")?;
    match Uuid::try_parse(s) {
        Ok(id) if s.len() == 36 => Some(id),
        _ => {
            ctx.err(rec.at("id"), format!("expected a UUID, got {}", quote(s)));
            None
        }
    }
}

/// Reads and checks a Kong `utf8_name` field (`name`).
pub(crate) fn name_field(ctx: &mut Ctx, rec: &Record<'_>) -> Option<String> {
    let s = rec.string(ctx, "name")?;
    if let Err(msg) = check::name(s) {
        ctx.err(rec.at("name"), msg);
    }
    Some(s.to_owned())
}

/// Reads `tags` (a set of strings; duplicates are dropped).
pub(crate) fn tags_field(ctx: &mut Ctx, rec: &Record<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (path, tag) in rec.strings(ctx, "tags").unwrap_or_default() {
        match check::tag(tag) {
            Ok(()) if !out.iter().any(|t| t == tag) => out.push(tag.to_owned()),
            Ok(()) => {}
            Err(msg) => ctx.err(path, msg),
        }
    }
    out
}

/// Checks `created_at` / `updated_at` (accepted and ignored).
pub(crate) fn timestamps(ctx: &mut Ctx, rec: &Record<'_>) {
    rec.number(ctx, "created_at");
    rec.number(ctx, "updated_at");
}

/// Records `key` for the entity at `entity`, or reports a duplicate at `at`;
/// `message` gets the entity that used the key first. True if `key` was new.
pub(crate) fn claim<K: std::hash::Hash + Eq>(
    ctx: &mut Ctx,
    seen: &mut HashMap<K, FieldPath>,
    key: K,
    at: FieldPath,
    entity: &FieldPath,
    message: impl FnOnce(&FieldPath) -> String,
) -> bool {
    match seen.get(&key) {
        Some(first) => {
            ctx.err(at, message(first));
            false
        }
        None => {
            seen.insert(key, entity.clone());
            true
        }
    }
}

/// The id of an entity: the explicit one, Kong's UUIDv5 of its endpoint key,
/// or a content-derived one (see [`ids`]). Reports duplicates.
pub(crate) fn assign_id(
    b: &mut Build,
    rec: &Record<'_>,
    entity: &str,
    key: Option<&str>,
    parent: &str,
    value: &Value,
) -> Uuid {
    let explicit = explicit_id(&mut b.ctx, rec);
    match (explicit, key) {
        (Some(id), _) => id,
        (None, Some(key)) => entity_id(entity, key),
        (None, None) => {
            let content = ids::content_of(value);
            let seen_key = format!("{entity}\u{0}{parent}\u{0}{content}");
            let n = b.unnamed_seen.entry(seen_key).or_insert(0);
            let id = ids::unnamed_id(entity, parent, &content, *n);
            *n += 1;
            id
        }
    }
}

/// Where to report a duplicate id: the `id` field if given, else the entity.
pub(crate) fn id_path(rec: &Record<'_>) -> FieldPath {
    if rec.has("id") {
        rec.at("id")
    } else {
        rec.path.clone()
    }
}
