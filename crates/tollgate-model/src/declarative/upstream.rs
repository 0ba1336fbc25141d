//! Upstreams (`upstreams:` with nested `targets:`) and top-level `targets:`.

use super::fields::{quote, Ctx, Record};
use super::route::reference;
use super::{assign_id, check, claim, id_path, label_of, tags_field, timestamps, Build};
use crate::error::FieldPath;
use crate::{Algorithm, CircuitBreakers, HashOn, Target, Upstream};
use serde_json::Value;
use std::net::IpAddr;
use uuid::Uuid;

const FIELDS: &[&str] = &[
    "id",
    "name",
    "algorithm",
    "slots",
    "hash_on",
    "hash_fallback",
    "hash_on_header",
    "hash_fallback_header",
    "hash_on_cookie",
    "hash_on_cookie_path",
    "hash_on_query_arg",
    "hash_fallback_query_arg",
    "hash_on_uri_capture",
    "hash_fallback_uri_capture",
    "healthchecks",
    "circuit_breakers",
    "host_header",
    "client_certificate",
    "use_srv_name",
    "tags",
    "created_at",
    "updated_at",
    "targets",
];

const TARGET_FIELDS: &[&str] = &[
    "id",
    "target",
    "weight",
    "tags",
    "created_at",
    "updated_at",
    "upstream",
];

const HASH_ON: [&str; 8] = [
    "none",
    "consumer",
    "ip",
    "header",
    "cookie",
    "path",
    "query_arg",
    "uri_capture",
];

/// Kong's default target port.
const DEFAULT_TARGET_PORT: u16 = 8000;

/// Reads the top-level `upstreams` and their nested targets.
pub(super) fn upstreams(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "upstreams") else {
        return;
    };
    let base = root.at("upstreams");
    for (i, item) in items.iter().enumerate() {
        upstream(b, item, base.entity(i, label_of(item, "name")));
    }
}

fn upstream(b: &mut Build, value: &Value, path: FieldPath) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    let ctx = &mut b.ctx;
    rec.check_fields(ctx, FIELDS);
    let name = match rec.string(ctx, "name") {
        Some(n) => {
            let is_ip = n.parse::<IpAddr>().is_ok()
                || n.strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .is_some_and(|r| r.parse::<IpAddr>().is_ok());
            if is_ip {
                ctx.err(
                    rec.at("name"),
                    format!("invalid name {}: must not be an IP address", quote(n)),
                );
            } else if n.contains(':') {
                ctx.err(
                    rec.at("name"),
                    format!("invalid name {}: must not have a port", quote(n)),
                );
            } else if let Err(msg) = check::hostname(n) {
                ctx.err(
                    rec.at("name"),
                    format!("{msg}: an upstream name must be a hostname"),
                );
            }
            Some(n.to_owned())
        }
        None => {
            if !rec.has("name") {
                ctx.err(rec.at("name"), "required field missing");
            }
            None
        }
    };
    let (algorithm, hash_on, hash_fallback) = hashing(ctx, &rec);
    let slots = rec
        .integer(ctx, "slots", 10, 65536)
        .map_or(10_000, |s| s as u32);
    let host_header = rec
        .string(ctx, "host_header")
        .and_then(|h| match check::host(h) {
            Ok(h) => Some(h),
            Err(msg) => {
                ctx.err(rec.at("host_header"), msg);
                None
            }
        });
    rec.unsupported(ctx, "client_certificate");
    rec.opt_boolean(ctx, "use_srv_name");
    let healthchecks = super::healthchecks::healthchecks(ctx, &rec);
    let circuit_breakers = circuit_breakers(ctx, &rec);
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);

    let id = assign_id(b, &rec, "upstreams", name.as_deref(), "", value);
    let index = b.config.upstreams.len();
    let ctx = &mut b.ctx;
    let mut name_is_new = true;
    if let Some(name) = &name {
        if let Some((_, first)) = b.upstream_names.get(name) {
            ctx.err(
                rec.at("name"),
                format!("duplicate name {} (already used by {first})", quote(name)),
            );
            name_is_new = false;
        } else {
            b.upstream_names
                .insert(name.clone(), (index, rec.path.clone()));
        }
    }
    // A generated id repeats exactly when the name does: reported above.
    if name_is_new || rec.has("id") {
        if let Some((_, first)) = b.upstream_ids.get(&id) {
            ctx.err(
                id_path(&rec),
                format!("duplicate id \"{id}\" (already used by {first})"),
            );
        } else {
            b.upstream_ids.insert(id, (index, rec.path.clone()));
        }
    }
    b.config.upstreams.push(Upstream {
        id,
        name: name.unwrap_or_default(),
        algorithm,
        hash_on,
        hash_fallback,
        slots,
        healthchecks,
        circuit_breakers,
        host_header,
        targets: Vec::new(),
        tags,
    });

    if let Some(targets) = rec.array(&mut b.ctx, "targets") {
        let base = rec.at("targets");
        for (j, t) in targets.iter().enumerate() {
            target(b, t, base.entity(j, label_of(t, "target")), Some(index));
        }
    }
}

/// Validates `algorithm` and the `hash_*` fields; returns the algorithm
/// (a `hash_on` other than `none` implies consistent-hashing) and what it
/// hashes on.
fn hashing(ctx: &mut Ctx, rec: &Record<'_>) -> (Algorithm, HashOn, HashOn) {
    let algorithm = match rec.string(ctx, "algorithm") {
        None | Some("round-robin") => Algorithm::RoundRobin,
        Some("consistent-hashing") => Algorithm::ConsistentHashing,
        Some("least-connections") => Algorithm::LeastConnections,
        Some("latency") => Algorithm::Latency,
        Some("random") => Algorithm::Random,
        Some(other) => {
            ctx.err(
                rec.at("algorithm"),
                format!(
                    "expected one of: round-robin, consistent-hashing, least-connections, latency, random, got {}",
                    quote(other)
                ),
            );
            Algorithm::RoundRobin
        }
    };
    let mut hash = |key: &str| -> String {
        match rec.string(ctx, key) {
            None => "none".to_owned(),
            Some(v) if HASH_ON.contains(&v) => v.to_owned(),
            Some(v) => {
                ctx.err(
                    rec.at(key),
                    format!("expected one of: {}, got {}", HASH_ON.join(", "), quote(v)),
                );
                "none".to_owned()
            }
        }
    };
    let hash_on = hash("hash_on");
    let hash_fallback = hash("hash_fallback");

    if hash_fallback != "none" && (hash_on == "none" || hash_on == "cookie") {
        ctx.err(
            rec.at("hash_fallback"),
            format!("must be 'none' when 'hash_on' is '{hash_on}'"),
        );
    }
    for key in [
        "hash_on_header",
        "hash_fallback_header",
        "hash_on_cookie",
        "hash_on_cookie_path",
        "hash_on_query_arg",
        "hash_fallback_query_arg",
        "hash_on_uri_capture",
        "hash_fallback_uri_capture",
    ] {
        let Some(v) = rec.string(ctx, key) else {
            continue;
        };
        let checked = match key {
            "hash_on_header" | "hash_fallback_header" => check::header_name(v),
            "hash_on_cookie_path" => check::path(v),
            _ => Ok(()),
        };
        if let Err(msg) = checked {
            ctx.err(rec.at(key), msg);
        }
    }
    for (of, value) in [("hash_on", &hash_on), ("hash_fallback", &hash_fallback)] {
        if of == "hash_fallback" && value == "cookie" {
            ctx.err(rec.at(of), "'cookie' is only allowed for 'hash_on'");
        } else if matches!(
            value.as_str(),
            "header" | "cookie" | "query_arg" | "uri_capture"
        ) {
            let field = format!("{of}_{value}");
            if !rec.has(&field) {
                ctx.err(
                    rec.at(&field),
                    format!("required field missing when '{of}' is '{value}'"),
                );
            }
        }
    }
    let algorithm = match (hash_on.as_str(), algorithm) {
        ("none", Algorithm::ConsistentHashing) => Algorithm::RoundRobin,
        ("none", a) => a,
        _ => Algorithm::ConsistentHashing,
    };
    let mut spec = |of: &str, value: &str| -> HashOn {
        let mut field = |suffix: &str| {
            rec.string(ctx, &format!("{of}_{suffix}"))
                .unwrap_or_default()
                .to_owned()
        };
        match value {
            "consumer" => HashOn::Consumer,
            "ip" => HashOn::Ip,
            "header" => HashOn::Header(field("header").to_ascii_lowercase()),
            "cookie" => HashOn::Cookie {
                name: field("cookie"),
                path: rec
                    .string(ctx, "hash_on_cookie_path")
                    .unwrap_or("/")
                    .to_owned(),
            },
            "path" => HashOn::Path,
            "query_arg" => HashOn::QueryArg(field("query_arg")),
            "uri_capture" => HashOn::UriCapture(field("uri_capture")),
            _ => HashOn::None,
        }
    };
    let on = spec("hash_on", &hash_on);
    let fallback = spec("hash_fallback", &hash_fallback);
    (algorithm, on, fallback)
}

/// `circuit_breakers` (Tollgate extension): per-target limits, 0 = none.
fn circuit_breakers(ctx: &mut Ctx, rec: &Record<'_>) -> CircuitBreakers {
    let mut out = CircuitBreakers::default();
    let Some(v) = rec.get("circuit_breakers") else {
        return out;
    };
    let Some(c) = Record::new(ctx, v, rec.at("circuit_breakers")) else {
        return out;
    };
    c.check_fields(ctx, &["max_requests", "max_pending_connections"]);
    let max = i64::from(u32::MAX);
    if let Some(n) = c.integer(ctx, "max_requests", 0, max) {
        out.max_requests = n as u32;
    }
    if let Some(n) = c.integer(ctx, "max_pending_connections", 0, max) {
        out.max_pending_connections = n as u32;
    }
    out
}

/// Reads the top-level `targets` (each names its `upstream`).
pub(super) fn top_level_targets(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "targets") else {
        return;
    };
    let base = root.at("targets");
    for (i, item) in items.iter().enumerate() {
        target(b, item, base.entity(i, label_of(item, "target")), None);
    }
}

/// Reads one target; `nested_in` is the index of the enclosing upstream.
fn target(b: &mut Build, value: &Value, path: FieldPath, nested_in: Option<usize>) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    rec.check_fields(&mut b.ctx, TARGET_FIELDS);
    // The upstream index, and the upstream as Kong keys the target id with.
    let parent: Option<(usize, String)> = match nested_in {
        Some(index) => {
            if rec.has("upstream") {
                b.ctx.err(
                    rec.at("upstream"),
                    "must not be set on a target nested under an upstream",
                );
            }
            b.config
                .upstreams
                .get(index)
                .map(|u| (index, u.id.to_string()))
        }
        None => match rec.get("upstream") {
            None => {
                b.ctx.err(rec.at("upstream"), "required field missing");
                None
            }
            Some(v) => reference(&mut b.ctx, v, rec.at("upstream")).and_then(|r| {
                let found = match Uuid::try_parse(&r) {
                    Ok(id) => b.upstream_ids.get(&id).map(|(i, _)| *i),
                    Err(_) => None,
                }
                .or_else(|| b.upstream_names.get(&r).map(|(i, _)| *i));
                if found.is_none() {
                    b.ctx.err(
                        rec.at("upstream"),
                        format!("no upstream with name or id {}", quote(&r)),
                    );
                }
                found.map(|i| (i, r))
            }),
        },
    };

    let ctx = &mut b.ctx;
    let raw = rec.string(ctx, "target");
    if raw.is_none() && !rec.has("target") {
        ctx.err(rec.at("target"), "required field missing");
    }
    let address = raw.and_then(|t| match check::host_and_port(t) {
        Ok((host, port)) => Some((host, port.unwrap_or(DEFAULT_TARGET_PORT))),
        Err(msg) => {
            ctx.err(
                rec.at("target"),
                format!("invalid target {}: {msg}", quote(t)),
            );
            None
        }
    });
    let weight = rec
        .integer(ctx, "weight", 0, 65535)
        .and_then(|w| u32::try_from(w).ok())
        .unwrap_or(100);
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);

    // Without an upstream or a target an error was reported already; the
    // nil id is then a stand-in that is not checked for duplicates.
    let explicit = super::explicit_id(ctx, &rec);
    let id = match (explicit, &parent, raw) {
        (Some(id), _, _) => id,
        (None, Some((_, upstream)), Some(t)) => super::ids::target_id(upstream, t),
        (None, _, _) => Uuid::nil(),
    };
    let is_new_target = match (&parent, &address) {
        (Some((index, _)), Some((host, port))) => {
            let seen = b.targets_seen.entry(*index).or_default();
            let upstream_name = b
                .config
                .upstreams
                .get(*index)
                .map(|u| u.name.clone())
                .unwrap_or_default();
            claim(
                ctx,
                seen,
                (host.to_ascii_lowercase(), *port),
                rec.at("target"),
                &rec.path,
                |first| {
                    format!(
                        "duplicate target {} in upstream {} (already declared at {first})",
                        quote(raw.unwrap_or_default()),
                        quote(&upstream_name)
                    )
                },
            )
        }
        _ => true,
    };
    // A generated id repeats when the target does: reported above.
    if !id.is_nil() && (is_new_target || rec.has("id")) {
        claim(
            ctx,
            &mut b.target_ids,
            id,
            id_path(&rec),
            &rec.path,
            |first| format!("duplicate id \"{id}\" (already used by {first})"),
        );
    }

    let (Some((index, _)), Some((host, port))) = (parent, address) else {
        return;
    };
    if let Some(u) = b.config.upstreams.get_mut(index) {
        u.targets.push(Target {
            id,
            host,
            port,
            weight,
            tags,
        });
    }
}
