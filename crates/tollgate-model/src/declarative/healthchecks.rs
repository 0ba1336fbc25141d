//! An upstream's `healthchecks` record: every field checked, Kong's
//! defaults for those left out.

use super::check;
use super::fields::{describe, quote, Ctx, Record};
use crate::{Healthchecks, ProbeKind};
use serde_json::Value;

/// Kong's bound for counters (`successes`, `*_failures`, `timeouts`).
const MAX_COUNT: i64 = 255;
/// Kong's bound for intervals and timeouts, seconds.
const MAX_SECONDS: f64 = 65535.0;

/// Reads `healthchecks`; absent means Kong's defaults (all checks off).
pub(super) fn healthchecks(ctx: &mut Ctx, rec: &Record<'_>) -> Healthchecks {
    let mut out = Healthchecks::default();
    let Some(v) = rec.get("healthchecks") else {
        return out;
    };
    let Some(h) = Record::new(ctx, v, rec.at("healthchecks")) else {
        return out;
    };
    h.check_fields(ctx, &["active", "passive", "threshold"]);
    if let Some(t) = h.float(ctx, "threshold", 0.0, 100.0) {
        out.threshold = t;
    }
    if let Some(v) = h.get("active") {
        if let Some(a) = Record::new(ctx, v, h.at("active")) {
            active(ctx, &a, &mut out);
        }
    }
    if let Some(v) = h.get("passive") {
        if let Some(p) = Record::new(ctx, v, h.at("passive")) {
            passive(ctx, &p, &mut out);
        }
    }
    out
}

fn probe_kind(ctx: &mut Ctx, rec: &Record<'_>) -> Option<ProbeKind> {
    match rec.string(ctx, "type")? {
        "http" => Some(ProbeKind::Http),
        "https" => Some(ProbeKind::Https),
        "tcp" => Some(ProbeKind::Tcp),
        "grpc" | "grpcs" => {
            ctx.err(rec.at("type"), "grpc health checks are not supported yet");
            None
        }
        other => {
            ctx.err(
                rec.at("type"),
                format!(
                    "expected one of: tcp, http, https, grpc, grpcs, got {}",
                    quote(other)
                ),
            );
            None
        }
    }
}

fn count(ctx: &mut Ctx, rec: &Record<'_>, key: &str, into: &mut u32) {
    if let Some(n) = rec.integer(ctx, key, 0, MAX_COUNT) {
        *into = n as u32;
    }
}

fn statuses(ctx: &mut Ctx, rec: &Record<'_>, into: &mut Vec<u16>) {
    let Some(items) = rec.array(ctx, "http_statuses") else {
        return;
    };
    let base = rec.at("http_statuses");
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_u64() {
            Some(s) if (100..=999).contains(&s) => list.push(s as u16),
            _ => ctx.err(
                base.index(i),
                format!(
                    "expected an integer between 100 and 999, got {}",
                    describe(item)
                ),
            ),
        }
    }
    *into = list;
}

fn sub<'v>(ctx: &mut Ctx, rec: &Record<'v>, key: &str, allowed: &[&str]) -> Option<Record<'v>> {
    let r = Record::new(ctx, rec.get(key)?, rec.at(key))?;
    r.check_fields(ctx, allowed);
    Some(r)
}

fn active(ctx: &mut Ctx, a: &Record<'_>, out: &mut Healthchecks) {
    a.check_fields(
        ctx,
        &[
            "type",
            "timeout",
            "concurrency",
            "http_path",
            "https_sni",
            "https_verify_certificate",
            "headers",
            "healthy",
            "unhealthy",
        ],
    );
    let act = &mut out.active;
    if let Some(k) = probe_kind(ctx, a) {
        act.kind = k;
    }
    if let Some(t) = a.float(ctx, "timeout", 0.0, MAX_SECONDS) {
        act.timeout = t;
    }
    if let Some(c) = a.integer(ctx, "concurrency", 1, 2_147_483_648) {
        act.concurrency = u32::try_from(c).unwrap_or(u32::MAX);
    }
    if let Some(p) = a.string(ctx, "http_path") {
        match check::path(p) {
            Ok(()) => act.http_path = p.to_owned(),
            Err(msg) => ctx.err(a.at("http_path"), msg),
        }
    }
    if let Some(sni) = a.string(ctx, "https_sni") {
        match check::hostname(sni) {
            Ok(()) => act.https_sni = Some(sni.to_owned()),
            Err(msg) => ctx.err(a.at("https_sni"), msg),
        }
    }
    act.https_verify_certificate = a.boolean(ctx, "https_verify_certificate", true);
    if let Some(v) = a.get("headers") {
        headers(ctx, v, a, &mut act.headers);
    }
    if let Some(h) = sub(
        ctx,
        a,
        "healthy",
        &["interval", "http_statuses", "successes"],
    ) {
        if let Some(i) = h.float(ctx, "interval", 0.0, MAX_SECONDS) {
            act.healthy.interval = i;
        }
        statuses(ctx, &h, &mut act.healthy.http_statuses);
        count(ctx, &h, "successes", &mut act.healthy.successes);
    }
    if let Some(u) = sub(
        ctx,
        a,
        "unhealthy",
        &[
            "interval",
            "http_statuses",
            "tcp_failures",
            "timeouts",
            "http_failures",
        ],
    ) {
        if let Some(i) = u.float(ctx, "interval", 0.0, MAX_SECONDS) {
            act.unhealthy.interval = i;
        }
        statuses(ctx, &u, &mut act.unhealthy.http_statuses);
        count(ctx, &u, "tcp_failures", &mut act.unhealthy.tcp_failures);
        count(ctx, &u, "timeouts", &mut act.unhealthy.timeouts);
        count(ctx, &u, "http_failures", &mut act.unhealthy.http_failures);
    }
}

fn headers(ctx: &mut Ctx, v: &Value, a: &Record<'_>, into: &mut Vec<(String, Vec<String>)>) {
    let Some(map) = Record::new(ctx, v, a.at("headers")) else {
        return;
    };
    for (name, values) in map.map {
        let path = map.at(name);
        if let Err(msg) = check::header_name(name) {
            ctx.err(path, msg);
            continue;
        }
        let list = match values {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| match i.as_str() {
                    Some(s) => Some(s.to_owned()),
                    None => {
                        ctx.err(
                            path.clone(),
                            format!("expected a string, got {}", describe(i)),
                        );
                        None
                    }
                })
                .collect(),
            other => {
                ctx.err(
                    path,
                    format!("expected an array of strings, got {}", describe(other)),
                );
                continue;
            }
        };
        into.push((name.clone(), list));
    }
}

fn passive(ctx: &mut Ctx, p: &Record<'_>, out: &mut Healthchecks) {
    p.check_fields(ctx, &["type", "healthy", "unhealthy"]);
    // The type only says how a failure is read (http statuses or not);
    // tcp passive checks ignore statuses.
    let kind = probe_kind(ctx, p);
    let pas = &mut out.passive;
    if let Some(h) = sub(ctx, p, "healthy", &["http_statuses", "successes"]) {
        statuses(ctx, &h, &mut pas.healthy_statuses);
        count(ctx, &h, "successes", &mut pas.successes);
    }
    if let Some(u) = sub(
        ctx,
        p,
        "unhealthy",
        &[
            "http_statuses",
            "tcp_failures",
            "timeouts",
            "http_failures",
            "cooldown",
        ],
    ) {
        statuses(ctx, &u, &mut pas.unhealthy_statuses);
        count(ctx, &u, "tcp_failures", &mut pas.tcp_failures);
        count(ctx, &u, "timeouts", &mut pas.timeouts);
        count(ctx, &u, "http_failures", &mut pas.http_failures);
        if let Some(c) = u.float(ctx, "cooldown", 0.0, MAX_SECONDS) {
            pas.cooldown = c;
        }
    }
    if kind == Some(ProbeKind::Tcp) {
        pas.healthy_statuses.clear();
        pas.unhealthy_statuses.clear();
    }
}
