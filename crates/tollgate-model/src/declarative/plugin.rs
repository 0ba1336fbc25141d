//! Plugins: nested under services, routes and consumers (scoped to their
//! parent), or top-level with `service:`, `route:` and `consumer:` references.

use super::fields::{describe, quote, Ctx, Record};
use super::route::reference_with;
use super::{assign_id, check, claim, id_path, label_of, tags_field, timestamps, Build};
use crate::error::FieldPath;
use crate::{Plugin, PluginConfigError, PluginSchemas};
use serde_json::{Map, Value};
use uuid::Uuid;

const FIELDS: &[&str] = &[
    "id",
    "name",
    "instance_name",
    "config",
    "service",
    "route",
    "consumer",
    "protocols",
    "enabled",
    "ordering",
    "tags",
    "created_at",
    "updated_at",
];

/// Protocols a plugin may run on.
const PROTOCOLS: [&str; 10] = [
    "grpc",
    "grpcs",
    "http",
    "https",
    "tcp",
    "tls",
    "tls_passthrough",
    "udp",
    "ws",
    "wss",
];

/// Kong's default `protocols` of a plugin.
const DEFAULT_PROTOCOLS: [&str; 4] = ["grpc", "grpcs", "http", "https"];

/// Authentication plugins: they identify the consumer, so they cannot be
/// scoped to one.
const AUTH_PLUGINS: [&str; 6] = [
    "key-auth",
    "basic-auth",
    "jwt",
    "hmac-auth",
    "oauth2",
    "ldap-auth",
];

/// The entity a nested plugin is declared in.
#[derive(Clone, Copy)]
pub(super) enum Parent {
    Service(Uuid),
    Route(Uuid),
    Consumer(Uuid),
}

impl Parent {
    fn kind(self) -> &'static str {
        match self {
            Parent::Service(_) => "service",
            Parent::Route(_) => "route",
            Parent::Consumer(_) => "consumer",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Parent::Service(id) | Parent::Route(id) | Parent::Consumer(id) => id,
        }
    }
}

/// Reads the `plugins` nested in `rec`, scoped to `parent`.
pub(super) fn nested(b: &mut Build, rec: &Record<'_>, parent: Parent) {
    let Some(items) = rec.array(&mut b.ctx, "plugins") else {
        return;
    };
    let base = rec.at("plugins");
    for (i, item) in items.iter().enumerate() {
        plugin(
            b,
            item,
            base.entity(i, label_of(item, "name")),
            Some(parent),
        );
    }
}

/// Reads the top-level `plugins` (after services, routes and consumers).
pub(super) fn top_level(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "plugins") else {
        return;
    };
    let base = root.at("plugins");
    for (i, item) in items.iter().enumerate() {
        plugin(b, item, base.entity(i, label_of(item, "name")), None);
    }
}

fn plugin(b: &mut Build, value: &Value, path: FieldPath, parent: Option<Parent>) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    rec.check_fields(&mut b.ctx, FIELDS);

    let (mut service, mut route, mut consumer) = (None, None, None);
    let parent_key = match parent {
        Some(p) => {
            for key in ["service", "route", "consumer"] {
                if rec.has(key) {
                    b.ctx.err(
                        rec.at(key),
                        format!(
                            "must not be set on a plugin nested under a {} (a plugin with two foreign keys must be top-level)",
                            p.kind()
                        ),
                    );
                }
            }
            match p {
                Parent::Service(id) => service = Some(id),
                Parent::Route(id) => route = Some(id),
                Parent::Consumer(id) => consumer = Some(id),
            }
            p.id().to_string()
        }
        None => {
            service = resolve(b, &rec, "service");
            route = resolve(b, &rec, "route");
            consumer = resolve(b, &rec, "consumer");
            String::new()
        }
    };

    let ctx = &mut b.ctx;
    let name = match rec.string(ctx, "name") {
        Some("") => {
            ctx.err(rec.at("name"), "must not be empty");
            None
        }
        Some(n) => Some(n.to_owned()),
        None => {
            if !rec.has("name") {
                ctx.err(rec.at("name"), "required field missing");
            }
            None
        }
    };
    let instance_name = rec.string(ctx, "instance_name").map(|s| {
        if let Err(msg) = check::name(s) {
            ctx.err(rec.at("instance_name"), msg);
        }
        s.to_owned()
    });
    let config = match rec.get("config") {
        None => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            ctx.err(
                rec.at("config"),
                format!("expected an object, got {}", describe(other)),
            );
            Value::Object(Map::new())
        }
    };
    let protocols = protocols(ctx, &rec);
    let enabled = rec.boolean(ctx, "enabled", true);
    let ordering = rec.get("ordering").map(|v| {
        ordering_shape(ctx, v, rec.at("ordering"));
        v.clone()
    });
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);

    if name.as_deref() == Some("acme") {
        // Kong's acme is global only: one account and one set of domains.
        for (field, set) in [
            ("service", service),
            ("route", route),
            ("consumer", consumer),
        ] {
            if set.is_some() {
                let at = match parent {
                    Some(_) => rec.path.clone(),
                    None => rec.at(field),
                };
                ctx.err(
                    at,
                    format!("{field}: value must be null (acme can only be applied globally)"),
                );
            }
        }
    }
    if let (Some(n), Some(_)) = (&name, consumer) {
        if AUTH_PLUGINS.contains(&n.as_str()) {
            let at = match parent {
                Some(_) => rec.path.clone(),
                None => rec.at("consumer"),
            };
            ctx.err(at, format!("plugin '{n}' cannot be applied to a consumer"));
        }
    }

    let id = assign_id(
        b,
        &rec,
        "plugins",
        instance_name.as_deref(),
        &parent_key,
        value,
    );
    let ctx = &mut b.ctx;
    let mut is_new = true;
    if let Some(n) = &name {
        is_new = claim(
            ctx,
            &mut b.plugin_scopes,
            (n.clone(), service, route, consumer),
            rec.path.clone(),
            &rec.path,
            |first| {
                format!(
                    "duplicate plugin '{n}' for the same {} (already declared at {first})",
                    scope_text(service, route, consumer)
                )
            },
        );
    }
    if let Some(inst) = &instance_name {
        is_new &= claim(
            ctx,
            &mut b.plugin_instance_names,
            inst.clone(),
            rec.at("instance_name"),
            &rec.path,
            |first| {
                format!(
                    "duplicate instance_name {} (already used by {first})",
                    quote(inst)
                )
            },
        );
    }
    if is_new || rec.has("id") {
        claim(
            ctx,
            &mut b.plugin_ids,
            id,
            id_path(&rec),
            &rec.path,
            |first| format!("duplicate id \"{id}\" (already used by {first})"),
        );
    }

    let Some(name) = name else {
        return;
    };
    b.plugin_paths.push(rec.path.clone());
    b.config.plugins.push(Plugin {
        id,
        name,
        instance_name,
        config,
        service,
        route,
        consumer,
        protocols,
        enabled,
        ordering,
        tags,
    });
}

/// How a plugin scope is described in the duplicate message.
fn scope_text(service: Option<Uuid>, route: Option<Uuid>, consumer: Option<Uuid>) -> String {
    let parts: Vec<String> = [
        ("service", service),
        ("route", route),
        ("consumer", consumer),
    ]
    .into_iter()
    .filter_map(|(k, id)| id.map(|id| format!("{k} \"{id}\"")))
    .collect();
    if parts.is_empty() {
        "global scope".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Resolves a top-level plugin's `service`, `route` or `consumer` reference.
fn resolve(b: &mut Build, rec: &Record<'_>, key: &str) -> Option<Uuid> {
    let v = rec.get(key)?;
    let keys: &[&str] = if key == "consumer" {
        &["id", "username", "name"]
    } else {
        &["id", "name"]
    };
    let reference = reference_with(&mut b.ctx, v, rec.at(key), keys)?;
    let found = b.lookup(key, &reference);
    if found.is_none() {
        let what = if key == "consumer" {
            "username"
        } else {
            "name"
        };
        b.ctx.err(
            rec.at(key),
            format!("no {key} with {what} or id {}", quote(&reference)),
        );
    }
    found
}

/// `protocols`: a non-empty set of Kong's protocol names.
fn protocols(ctx: &mut Ctx, rec: &Record<'_>) -> Vec<String> {
    let default = || DEFAULT_PROTOCOLS.iter().map(|p| (*p).to_owned()).collect();
    let Some(items) = rec.strings(ctx, "protocols") else {
        return default();
    };
    if rec
        .get("protocols")
        .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
    {
        ctx.err(rec.at("protocols"), "length must be at least 1");
        return default();
    }
    let mut out: Vec<String> = Vec::new();
    for (path, p) in items {
        if !PROTOCOLS.contains(&p) {
            ctx.err(
                path,
                format!(
                    "invalid protocol {}: expected one of: {}",
                    quote(p),
                    PROTOCOLS.join(", ")
                ),
            );
        } else if !out.iter().any(|x| x == p) {
            out.push(p.to_owned());
        }
    }
    out
}

/// `ordering`: `{before: {access: [names]}, after: {access: [names]}}`.
fn ordering_shape(ctx: &mut Ctx, v: &Value, path: FieldPath) {
    let Some(rec) = Record::new(ctx, v, path) else {
        return;
    };
    rec.check_fields(ctx, &["before", "after"]);
    for key in ["before", "after"] {
        let Some(inner) = rec.get(key) else {
            continue;
        };
        let Some(phases) = Record::new(ctx, inner, rec.at(key)) else {
            continue;
        };
        phases.check_fields(ctx, &["access"]);
        for (p, name) in phases.strings(ctx, "access").unwrap_or_default() {
            if name.is_empty() {
                ctx.err(p, "must not be empty");
            }
        }
    }
}

/// Runs every plugin's config through `schemas`: fills defaults, reports
/// unknown plugins at `name` and config problems under `config`.
pub(super) fn validate_configs(b: &mut Build, schemas: &dyn PluginSchemas) {
    for (plugin, path) in b.config.plugins.iter_mut().zip(&b.plugin_paths) {
        match schemas.validate(&plugin.name, &plugin.config) {
            Ok(config) => plugin.config = config,
            Err(PluginConfigError::UnknownPlugin) => b.ctx.err(
                path.field("name"),
                format!(
                    "plugin '{}' not enabled; add it to the 'plugins' configuration property",
                    plugin.name
                ),
            ),
            Err(PluginConfigError::Invalid(problems)) => {
                for (inner, message) in problems {
                    let at = inner
                        .iter()
                        .fold(path.field("config"), |p, seg| p.field(seg));
                    b.ctx.err(at, message);
                }
            }
        }
    }
}
