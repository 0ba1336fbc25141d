//! Routes (nested under a service, or top-level with `service:`).

use super::fields::{describe, quote, Ctx, Record};
use super::{
    assign_id, check, claim, id_path, label_of, name_field, tags_field, timestamps, Build,
};
use crate::error::FieldPath;
use crate::{PathHandling, Protocol, Route};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

const FIELDS: &[&str] = &[
    "id",
    "name",
    "protocols",
    "methods",
    "hosts",
    "paths",
    "headers",
    "snis",
    "sources",
    "destinations",
    "strip_path",
    "preserve_host",
    "regex_priority",
    "path_handling",
    "https_redirect_status_code",
    "hsts_max_age",
    "hsts_include_subdomains",
    "request_buffering",
    "response_buffering",
    "tags",
    "created_at",
    "updated_at",
    "plugins",
    "service",
    "expression",
    "priority",
];

const REDIRECT_CODES: [i64; 5] = [426, 301, 302, 307, 308];

/// Reads the top-level `routes` (after all services are known).
pub(super) fn top_level_routes(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "routes") else {
        return;
    };
    let base = root.at("routes");
    for (i, item) in items.iter().enumerate() {
        route(b, item, base.entity(i, label_of(item, "name")), None);
    }
}

/// Reads one route; `nested_in` is the id of the enclosing service.
pub(super) fn route(b: &mut Build, value: &Value, path: FieldPath, nested_in: Option<Uuid>) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    rec.check_fields(&mut b.ctx, FIELDS);
    let name = name_field(&mut b.ctx, &rec);
    let (service, parent_key) = match nested_in {
        Some(id) => {
            if rec.has("service") {
                b.ctx.err(
                    rec.at("service"),
                    "must not be set on a route nested under a service",
                );
            }
            (Some(id), id.to_string())
        }
        None => resolve_service(b, &rec),
    };

    let ctx = &mut b.ctx;
    for key in ["expression", "priority"] {
        if rec.has(key) {
            ctx.err(
                rec.at(key),
                format!("'{key}' needs router_flavor = expressions, which is not supported"),
            );
        }
    }
    for key in ["snis", "sources", "destinations"] {
        rec.unsupported(ctx, key);
    }

    let before = ctx.issues.len();
    let protocols = protocols(ctx, &rec);
    let methods = methods(ctx, &rec);
    let hosts = hosts(ctx, &rec);
    let paths = paths(ctx, &rec);
    let headers = headers(ctx, &rec);
    let matchers_ok = ctx.issues.len() == before;

    let grpc = protocols
        .iter()
        .any(|p| matches!(p, Protocol::Grpc | Protocol::Grpcs));
    let http = protocols
        .iter()
        .any(|p| matches!(p, Protocol::Http | Protocol::Https));
    if matchers_ok
        && http
        && methods.is_empty()
        && hosts.is_empty()
        && headers.is_empty()
        && paths.is_empty()
    {
        ctx.err(
            rec.path.clone(),
            "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http' or 'https'",
        );
    }
    if matchers_ok && grpc && hosts.is_empty() && headers.is_empty() && paths.is_empty() {
        ctx.err(
            rec.path.clone(),
            "must set one of 'hosts', 'headers', 'paths' when 'protocols' is 'grpc' or 'grpcs'",
        );
    }

    // Kong refuses strip_path with gRPC; default it to false there.
    let strip_path = match rec.opt_boolean(ctx, "strip_path") {
        Some(true) if grpc => {
            ctx.err(
                rec.at("strip_path"),
                "must be false when 'protocols' is 'grpc' or 'grpcs'",
            );
            true
        }
        Some(v) => v,
        None => !grpc,
    };
    let preserve_host = rec.boolean(ctx, "preserve_host", false);
    let regex_priority = rec
        .integer(ctx, "regex_priority", i64::MIN, i64::MAX)
        .unwrap_or(0);
    let path_handling = match rec.string(ctx, "path_handling") {
        None | Some("v0") => PathHandling::V0,
        Some("v1") => PathHandling::V1,
        Some(other) => {
            ctx.err(
                rec.at("path_handling"),
                format!("expected one of: v0, v1, got {}", quote(other)),
            );
            PathHandling::V0
        }
    };
    let https_redirect_status_code = match rec.get("https_redirect_status_code") {
        None => 426,
        Some(v) => match super::fields::as_integer(v) {
            Some(Ok(code)) if REDIRECT_CODES.contains(&code) => u16::try_from(code).unwrap_or(426),
            _ => {
                ctx.err(
                    rec.at("https_redirect_status_code"),
                    format!(
                        "expected one of: 426, 301, 302, 307, 308, got {}",
                        describe(v)
                    ),
                );
                426
            }
        },
    };
    let hsts_max_age = rec
        .integer(ctx, "hsts_max_age", 0, i64::from(i32::MAX))
        .map(|v| v as u32);
    let hsts_include_subdomains = rec.boolean(ctx, "hsts_include_subdomains", false);
    let request_buffering = rec.boolean(ctx, "request_buffering", true);
    let response_buffering = rec.boolean(ctx, "response_buffering", true);
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);

    let id = assign_id(b, &rec, "routes", name.as_deref(), &parent_key, value);
    let ctx = &mut b.ctx;
    let name_is_new = match &name {
        Some(name) => claim(
            ctx,
            &mut b.route_names,
            name.clone(),
            rec.at("name"),
            &rec.path,
            |first| format!("duplicate name {} (already used by {first})", quote(name)),
        ),
        None => true,
    };
    if let (true, Some(name)) = (name_is_new, &name) {
        b.route_name_ids.insert(name.clone(), id);
    }
    // A generated id repeats exactly when the name does: reported above.
    if name_is_new || rec.has("id") {
        claim(
            ctx,
            &mut b.route_ids,
            id,
            id_path(&rec),
            &rec.path,
            |first| format!("duplicate id \"{id}\" (already used by {first})"),
        );
    }

    b.config.routes.push(Route {
        id,
        name,
        protocols,
        methods,
        hosts,
        paths,
        headers,
        strip_path,
        preserve_host,
        regex_priority,
        path_handling,
        https_redirect_status_code,
        hsts_max_age,
        hsts_include_subdomains,
        request_buffering,
        response_buffering,
        service,
        tags,
    });
    super::plugin::nested(b, &rec, super::plugin::Parent::Route(id));
}

/// Resolves a top-level route's `service` (a name or id, or an object with
/// one of them). Returns the service id and the reference as written.
fn resolve_service(b: &mut Build, rec: &Record<'_>) -> (Option<Uuid>, String) {
    let Some(v) = rec.get("service") else {
        return (None, String::new());
    };
    let Some(reference) = reference(&mut b.ctx, v, rec.at("service")) else {
        return (None, String::new());
    };
    let found = match Uuid::try_parse(&reference) {
        Ok(id) if b.service_ids.contains_key(&id) => Some(id),
        _ => b.service_names.get(&reference).map(|(id, _)| *id),
    };
    if found.is_none() {
        b.ctx.err(
            rec.at("service"),
            format!("no service with name or id {}", quote(&reference)),
        );
    }
    (found, reference)
}

/// A foreign-key reference: `"name-or-id"`, `{id: ...}` or `{name: ...}`.
pub(super) fn reference(ctx: &mut Ctx, v: &Value, path: FieldPath) -> Option<String> {
    reference_with(ctx, v, path, &["id", "name"])
}

/// A foreign-key reference: a string, or an object with exactly one of
/// `keys` (a string).
pub(super) fn reference_with(
    ctx: &mut Ctx,
    v: &Value,
    path: FieldPath,
    allowed: &[&str],
) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => {
            let keys: Vec<&str> = map
                .keys()
                .map(String::as_str)
                .filter(|k| !super::fields::IGNORED_KEYS.contains(k))
                .collect();
            match (keys.as_slice(), keys.first().and_then(|k| map.get(*k))) {
                ([k], Some(Value::String(s))) if allowed.contains(k) => Some(s.clone()),
                _ => {
                    let list: Vec<String> = allowed.iter().map(|k| format!("'{k}'")).collect();
                    ctx.err(
                        path,
                        format!(
                            "expected a {} or id, or an object with exactly one of {}",
                            allowed.get(1).copied().unwrap_or("name"),
                            list.join(" or ")
                        ),
                    );
                    None
                }
            }
        }
        other => {
            ctx.err(
                path,
                format!("expected a name or id, got {}", describe(other)),
            );
            None
        }
    }
}

/// `protocols`: a non-empty set within one exclusive group.
fn protocols(ctx: &mut Ctx, rec: &Record<'_>) -> Vec<Protocol> {
    let default = vec![Protocol::Http, Protocol::Https];
    let Some(items) = rec.strings(ctx, "protocols") else {
        return default;
    };
    if items.is_empty()
        && rec
            .get("protocols")
            .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
    {
        ctx.err(rec.at("protocols"), "length must be at least 1");
        return default;
    }
    let mut out = Vec::new();
    for (path, s) in items {
        match check::protocol(s) {
            Ok(p) if !out.contains(&p) => out.push(p),
            Ok(_) => {}
            Err(msg) => ctx.err(path, msg),
        }
    }
    let http = out
        .iter()
        .any(|p| matches!(p, Protocol::Http | Protocol::Https));
    let grpc = out
        .iter()
        .any(|p| matches!(p, Protocol::Grpc | Protocol::Grpcs));
    if http && grpc {
        ctx.err(
            rec.at("protocols"),
            "these sets are mutually exclusive: ('http', 'https'), ('grpc', 'grpcs')",
        );
    }
    if out.is_empty() {
        return default;
    }
    out
}

/// `methods`: uppercased, letters only, duplicates dropped.
fn methods(ctx: &mut Ctx, rec: &Record<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (path, m) in rec.strings(ctx, "methods").unwrap_or_default() {
        if m.is_empty() || !m.bytes().all(|c| c.is_ascii_alphabetic()) {
            ctx.err(path, format!("invalid method {}", quote(m)));
            continue;
        }
        let m = m.to_ascii_uppercase();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// `hosts`: names, IPs or wildcard names, optional port.
fn hosts(ctx: &mut Ctx, rec: &Record<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (path, h) in rec.strings(ctx, "hosts").unwrap_or_default() {
        match check::route_host(h) {
            Ok(()) if !out.iter().any(|x| x == h) => out.push(h.to_owned()),
            Ok(()) => {}
            Err(msg) => ctx.err(path, msg),
        }
    }
    out
}

/// `paths`: normalised `/prefix`es or `~regex`es that compile.
fn paths(ctx: &mut Ctx, rec: &Record<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (path, p) in rec.strings(ctx, "paths").unwrap_or_default() {
        let checked = match p.strip_prefix('~') {
            Some(re) => check::regex(re),
            None => check::route_prefix(p),
        };
        match checked {
            Ok(()) if !out.iter().any(|x| x == p) => out.push(p.to_owned()),
            Ok(()) => {}
            Err(msg) => ctx.err(path, msg),
        }
    }
    out
}

/// `headers`: lowercase name → values (a `~*` value is a regex).
fn headers(ctx: &mut Ctx, rec: &Record<'_>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some(v) = rec.get("headers") else {
        return out;
    };
    let Some(h) = Record::new(ctx, v, rec.at("headers")) else {
        return out;
    };
    for name in h.map.keys() {
        let at = h.at(name);
        if let Err(msg) = check::header_name(name) {
            ctx.err(at, msg);
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if lower == "host" {
            ctx.err(
                at,
                "cannot contain 'host' header, which must be specified in the 'hosts' attribute",
            );
            continue;
        }
        if out.contains_key(&lower) {
            ctx.err(
                at,
                format!(
                    "duplicate header {} (names are case-insensitive)",
                    quote(name)
                ),
            );
            continue;
        }
        if h.get(name).is_none() {
            ctx.err(at, "expected an array of strings, got null");
            continue;
        }
        let Some(items) = h.strings(ctx, name) else {
            continue;
        };
        if items.is_empty() {
            ctx.err(at, "length must be at least 1");
            continue;
        }
        let mut vals: Vec<String> = Vec::new();
        for (path, s) in items {
            if let Some(re) = s.strip_prefix("~*") {
                if let Err(msg) = check::regex(re) {
                    ctx.err(path, msg);
                    continue;
                }
            }
            if !vals.iter().any(|x| x == s) {
                vals.push(s.to_owned());
            }
        }
        out.insert(lower, vals);
    }
    out
}
