//! Reader for Kong's declarative configuration format (`kong.yml`).
//!
//! The text (YAML, or JSON when it starts with `{`) is parsed into a
//! [`serde_json::Value`], then walked by hand so that every problem is
//! reported with its exact place: the file, the entity (index, and name when
//! it has one) and the field. All problems are collected, not just the first.
//!
//! Accepted top-level keys: `_format_version` (required: "1.1", "2.1" or
//! "3.0"), `_transform`, `_comment`, `_ignore`, `services` (with nested
//! `routes` and `plugins`), `routes` (with nested `plugins`), `upstreams`
//! (with nested `targets`), `targets`, `consumers` (with nested `plugins`
//! and credential lists), `plugins`, the credential lists
//! (`keyauth_credentials`, `basicauth_credentials`, `jwt_secrets`,
//! `hmacauth_credentials`, `oauth2_credentials`, `acls`), `certificates`
//! (with nested `snis`), `snis` and `ca_certificates`. The keys of entities
//! Tollgate does not model yet (`vaults`, `consumer_groups`) are accepted
//! only when absent, null or empty.
//!
//! Plugin configs are checked by a [`PluginSchemas`] when one is given
//! (the `..._with` functions); without one any object is accepted as is.
//!
//! Missing ids are derived as Kong derives them (see [`entity_id`]) for
//! named services, routes and upstreams, consumers with a username,
//! plugins with an instance_name, SNIs, and targets. Kong gives other
//! entities (unnamed services and routes, plugins, credentials,
//! certificates, ...) a random UUIDv4; Tollgate gives them a UUIDv5 of
//! their parent and content instead, so that reloading an unchanged file
//! keeps every id.
//!
//! Resulting order: services, upstreams, consumers and certificates in file
//! order; routes nested under services first (in service order), then
//! top-level routes; each upstream's nested targets, then its top-level
//! targets; nested plugins (in parent order: services with their routes,
//! top-level routes, consumers), then top-level plugins; nested credentials,
//! then top-level ones; nested SNIs, then top-level ones.

mod certificate;
mod check;
mod consumer;
mod fields;
mod healthchecks;
mod ids;
mod plugin;
mod route;
mod service;
mod syntax;
mod upstream;

pub use ids::{entity_id, KONG_NAMESPACE};

use crate::error::FieldPath;
use crate::{Config, ConfigError, CredentialKind, PluginSchemas};
use fields::{describe, quote, Ctx, Record};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// Reads and validates a declarative file (YAML or JSON). Errors name the
/// file as given in `path`. Plugin configs are not checked.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load_file_with(path, None)
}

/// Like [`load_file`], checking plugin configs with `schemas` when given.
pub fn load_file_with(
    path: &Path,
    schemas: Option<&dyn PluginSchemas>,
) -> Result<Config, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        source_name: source.clone(),
        error,
    })?;
    parse_str_with(&text, &source, schemas)
}

/// Parses and validates declarative text (YAML or JSON); `source_name` names
/// it in errors (e.g. the file name). Plugin configs are not checked.
pub fn parse_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    parse_str_with(text, source_name, None)
}

/// Like [`parse_str`], checking plugin configs with `schemas` when given.
pub fn parse_str_with(
    text: &str,
    source_name: &str,
    schemas: Option<&dyn PluginSchemas>,
) -> Result<Config, ConfigError> {
    let value = syntax::parse_value(text, source_name)?;
    from_value_with(&value, source_name, schemas)
}

/// Validates an already parsed declarative document (the Admin API builds
/// one from its store); `source_name` names it in errors. Plugin configs
/// are not checked.
pub fn from_value(value: &Value, source_name: &str) -> Result<Config, ConfigError> {
    from_value_with(value, source_name, None)
}

/// Like [`from_value`], checking plugin configs with `schemas` when given:
/// an unknown plugin is reported at its `name`, config problems under its
/// `config`, and the config is replaced by the one with defaults.
pub fn from_value_with(
    value: &Value,
    source_name: &str,
    schemas: Option<&dyn PluginSchemas>,
) -> Result<Config, ConfigError> {
    let mut b = Build::default();
    document(&mut b, value);
    if let Some(schemas) = schemas {
        plugin::validate_configs(&mut b, schemas);
    }
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
const NOT_YET: [&str; 2] = ["vaults", "consumer_groups"];

/// Top-level keys handled here (besides the credential keys).
const TOP_LEVEL: [&str; 11] = [
    "_format_version",
    "_transform",
    "services",
    "routes",
    "upstreams",
    "targets",
    "consumers",
    "plugins",
    "certificates",
    "snis",
    "ca_certificates",
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
    /// Route name → id (for plugin references).
    pub(crate) route_name_ids: HashMap<String, Uuid>,
    pub(crate) consumer_ids: HashMap<Uuid, FieldPath>,
    /// Consumer username → (id, where it was declared).
    pub(crate) consumer_usernames: HashMap<String, (Uuid, FieldPath)>,
    pub(crate) consumer_custom_ids: HashMap<String, FieldPath>,
    pub(crate) credential_ids: HashMap<Uuid, FieldPath>,
    /// (kind, value of the kind's unique field) → where it was declared.
    pub(crate) credential_keys: HashMap<(CredentialKind, String), FieldPath>,
    /// (consumer, acl group) → where it was declared.
    pub(crate) acl_groups: HashMap<(Uuid, String), FieldPath>,
    pub(crate) plugin_ids: HashMap<Uuid, FieldPath>,
    /// (name, service, route, consumer) → where the plugin was declared.
    #[allow(clippy::type_complexity)]
    pub(crate) plugin_scopes:
        HashMap<(String, Option<Uuid>, Option<Uuid>, Option<Uuid>), FieldPath>,
    pub(crate) plugin_instance_names: HashMap<String, FieldPath>,
    /// Where each plugin of `config.plugins` was declared (same order).
    pub(crate) plugin_paths: Vec<FieldPath>,
    pub(crate) certificate_ids: HashMap<Uuid, FieldPath>,
    pub(crate) sni_ids: HashMap<Uuid, FieldPath>,
    /// Lowercased SNI name → where it was declared.
    pub(crate) sni_names: HashMap<String, FieldPath>,
    pub(crate) ca_ids: HashMap<Uuid, FieldPath>,
    /// Service TLS references, checked once certificates are read.
    pub(crate) tls_references: Vec<(FieldPath, service::TlsReference, Uuid)>,
    pub(crate) ca_digests: HashMap<String, FieldPath>,
}

impl Build {
    /// Resolves a reference (a name or an id) to a `service`, `route` or
    /// `consumer` (by username) declared so far.
    pub(crate) fn lookup(&self, entity: &str, reference: &str) -> Option<Uuid> {
        let by_id = Uuid::try_parse(reference).ok().filter(|id| match entity {
            "service" => self.service_ids.contains_key(id),
            "route" => self.route_ids.contains_key(id),
            "consumer" => self.consumer_ids.contains_key(id),
            _ => false,
        });
        by_id.or_else(|| match entity {
            "service" => self.service_names.get(reference).map(|(id, _)| *id),
            "route" => self.route_name_ids.get(reference).copied(),
            "consumer" => self.consumer_usernames.get(reference).map(|(id, _)| *id),
            _ => None,
        })
    }
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
    let allowed: Vec<&str> = TOP_LEVEL
        .iter()
        .chain(NOT_YET.iter())
        .copied()
        .chain(CredentialKind::ALL.map(CredentialKind::declarative_key))
        .collect();
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
    consumer::consumers(b, &rec);
    plugin::top_level(b, &rec);
    consumer::top_level_credentials(b, &rec);
    certificate::certificates(b, &rec);
    certificate::top_level_snis(b, &rec);
    certificate::ca_certificates(b, &rec);
    service::check_tls_references(b);
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
