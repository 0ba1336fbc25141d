//! Certificates (`certificates:` with nested `snis:`), top-level `snis:`
//! and `ca_certificates:`.
//!
//! Only the PEM framing is checked; parsing the certificates and matching
//! each key with its certificate is left to the TLS layer.

use super::fields::{quote, Ctx, Record};
use super::route::reference_with;
use super::{assign_id, check, claim, id_path, label_of, tags_field, timestamps, Build};
use crate::error::FieldPath;
use crate::{CaCertificate, Certificate, Sni};
use serde_json::Value;
use uuid::Uuid;

const FIELDS: &[&str] = &[
    "id",
    "cert",
    "key",
    "cert_alt",
    "key_alt",
    "snis",
    "tags",
    "created_at",
    "updated_at",
];

const SNI_FIELDS: &[&str] = &[
    "id",
    "name",
    "certificate",
    "tags",
    "created_at",
    "updated_at",
];

const CA_FIELDS: &[&str] = &[
    "id",
    "cert",
    "cert_digest",
    "tags",
    "created_at",
    "updated_at",
];

const CERT_MARK: &str = "-----BEGIN CERTIFICATE-----";
const KEY_MARK: &str = "PRIVATE KEY-----";

/// Reads the top-level `certificates` and their nested SNIs.
pub(super) fn certificates(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "certificates") else {
        return;
    };
    let base = root.at("certificates");
    for (i, item) in items.iter().enumerate() {
        certificate(b, item, base.entity(i, None));
    }
}

/// A required or optional PEM field containing `mark`.
fn pem(ctx: &mut Ctx, rec: &Record<'_>, key: &str, mark: &str, required: bool) -> Option<String> {
    match rec.string(ctx, key) {
        Some(s) if s.contains(mark) => Some(s.to_owned()),
        Some(_) => {
            let what = if mark == CERT_MARK {
                "a PEM certificate"
            } else {
                "a PEM private key"
            };
            ctx.err(
                rec.at(key),
                format!("expected {what} (text containing '{mark}')"),
            );
            None
        }
        None => {
            if required && !rec.has(key) {
                ctx.err(rec.at(key), "required field missing");
            }
            None
        }
    }
}

fn certificate(b: &mut Build, value: &Value, path: FieldPath) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    let ctx = &mut b.ctx;
    rec.check_fields(ctx, FIELDS);
    let cert = pem(ctx, &rec, "cert", CERT_MARK, true);
    let key = pem(ctx, &rec, "key", KEY_MARK, true);
    let cert_alt = pem(ctx, &rec, "cert_alt", CERT_MARK, false);
    let key_alt = pem(ctx, &rec, "key_alt", KEY_MARK, false);
    match (rec.has("cert_alt"), rec.has("key_alt")) {
        (true, false) => ctx.err(
            rec.at("key_alt"),
            "required field missing when 'cert_alt' is set",
        ),
        (false, true) => ctx.err(
            rec.at("cert_alt"),
            "required field missing when 'key_alt' is set",
        ),
        _ => {}
    }
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);

    let mut content = value.clone();
    if let Value::Object(m) = &mut content {
        m.remove("snis");
    }
    let id = assign_id(b, &rec, "certificates", None, "", &content);
    claim(
        &mut b.ctx,
        &mut b.certificate_ids,
        id,
        id_path(&rec),
        &rec.path,
        |first| format!("duplicate id \"{id}\" (already used by {first})"),
    );
    b.config.certificates.push(Certificate {
        id,
        cert: cert.unwrap_or_default(),
        key: key.unwrap_or_default(),
        cert_alt,
        key_alt,
        tags,
    });

    if let Some(items) = rec.array(&mut b.ctx, "snis") {
        let base = rec.at("snis");
        for (j, item) in items.iter().enumerate() {
            match item {
                // Kong's transient field: plain names.
                Value::String(name) => {
                    let at = base.index(j);
                    add_sni(b, name, id, Vec::new(), None, at.clone(), at);
                }
                _ => sni(b, item, base.entity(j, label_of(item, "name")), Some(id)),
            }
        }
    }
}

/// Reads the top-level `snis` (each names its `certificate` by id).
pub(super) fn top_level_snis(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "snis") else {
        return;
    };
    let base = root.at("snis");
    for (i, item) in items.iter().enumerate() {
        sni(b, item, base.entity(i, label_of(item, "name")), None);
    }
}

fn sni(b: &mut Build, value: &Value, path: FieldPath, nested_in: Option<Uuid>) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    rec.check_fields(&mut b.ctx, SNI_FIELDS);
    let certificate = match nested_in {
        Some(id) => {
            if rec.has("certificate") {
                b.ctx.err(
                    rec.at("certificate"),
                    "must not be set on an sni nested under a certificate",
                );
            }
            Some(id)
        }
        None => match rec.get("certificate") {
            None => {
                b.ctx.err(rec.at("certificate"), "required field missing");
                None
            }
            Some(v) => {
                reference_with(&mut b.ctx, v, rec.at("certificate"), &["id"]).and_then(|r| {
                    let found = Uuid::try_parse(&r)
                        .ok()
                        .filter(|id| b.certificate_ids.contains_key(id));
                    if found.is_none() {
                        b.ctx.err(
                            rec.at("certificate"),
                            format!("no certificate with id {}", quote(&r)),
                        );
                    }
                    found
                })
            }
        },
    };
    let ctx = &mut b.ctx;
    let name = rec.string(ctx, "name");
    if name.is_none() && !rec.has("name") {
        ctx.err(rec.at("name"), "required field missing");
    }
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);
    let explicit = super::explicit_id(ctx, &rec);
    let (Some(name), Some(certificate)) = (name, certificate) else {
        return;
    };
    add_sni(
        b,
        name,
        certificate,
        tags,
        explicit,
        rec.at("name"),
        id_path(&rec),
    );
}

/// Checks and records one SNI; `name_at` and `id_at` are where to report
/// a bad or duplicate name and a duplicate id.
fn add_sni(
    b: &mut Build,
    name: &str,
    certificate: Uuid,
    tags: Vec<String>,
    explicit: Option<Uuid>,
    name_at: FieldPath,
    id_at: FieldPath,
) {
    let ctx = &mut b.ctx;
    if let Err(msg) = check::sni(name) {
        ctx.err(name_at.clone(), msg);
    }
    let id = explicit.unwrap_or_else(|| super::entity_id("snis", name));
    let is_new = claim(
        ctx,
        &mut b.sni_names,
        name.to_ascii_lowercase(),
        name_at.clone(),
        &name_at,
        |first| format!("duplicate sni {} (already used by {first})", quote(name)),
    );
    if is_new || explicit.is_some() {
        claim(ctx, &mut b.sni_ids, id, id_at, &name_at, |first| {
            format!("duplicate id \"{id}\" (already used by {first})")
        });
    }
    b.config.snis.push(Sni {
        id,
        name: name.to_owned(),
        certificate,
        tags,
    });
}

/// Reads the top-level `ca_certificates`.
pub(super) fn ca_certificates(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "ca_certificates") else {
        return;
    };
    let base = root.at("ca_certificates");
    for (i, value) in items.iter().enumerate() {
        let Some(rec) = Record::new(&mut b.ctx, value, base.entity(i, None)) else {
            continue;
        };
        let ctx = &mut b.ctx;
        rec.check_fields(ctx, CA_FIELDS);
        let cert = pem(ctx, &rec, "cert", CERT_MARK, true);
        let cert_digest = rec.string(ctx, "cert_digest").map(str::to_owned);
        if let Some(d) = &cert_digest {
            if d.is_empty() {
                ctx.err(rec.at("cert_digest"), "length must be at least 1");
            }
        }
        let tags = tags_field(ctx, &rec);
        timestamps(ctx, &rec);
        let id = assign_id(b, &rec, "ca_certificates", None, "", value);
        let ctx = &mut b.ctx;
        let mut is_new = true;
        if let Some(d) = &cert_digest {
            is_new = claim(
                ctx,
                &mut b.ca_digests,
                d.clone(),
                rec.at("cert_digest"),
                &rec.path,
                |first| {
                    format!(
                        "duplicate cert_digest {} (already used by {first})",
                        quote(d)
                    )
                },
            );
        }
        if is_new || rec.has("id") {
            claim(ctx, &mut b.ca_ids, id, id_path(&rec), &rec.path, |first| {
                format!("duplicate id \"{id}\" (already used by {first})")
            });
        }
        b.config.ca_certificates.push(CaCertificate {
            id,
            cert: cert.unwrap_or_default(),
            cert_digest,
            tags,
        });
    }
}
