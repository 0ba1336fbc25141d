//! Consumers (`consumers:` with nested `plugins:` and credential lists) and
//! the top-level credential lists (`keyauth_credentials:`, ..., `acls:`),
//! whose items name their consumer with `consumer:`.

use super::fields::{quote, Ctx, Record};
use super::plugin::{self, Parent};
use super::route::reference_with;
use super::{assign_id, claim, id_path, label_of, tags_field, timestamps, Build};
use crate::error::FieldPath;
use crate::{Consumer, Credential, CredentialKind};
use serde_json::{Map, Value};
use uuid::Uuid;

const FIELDS: &[&str] = &[
    "id",
    "username",
    "custom_id",
    "tags",
    "created_at",
    "updated_at",
    "plugins",
    "keyauth_credentials",
    "basicauth_credentials",
    "jwt_secrets",
    "hmacauth_credentials",
    "oauth2_credentials",
    "acls",
];

/// Fields every credential has besides its kind's own.
const COMMON_FIELDS: [&str; 5] = ["id", "consumer", "tags", "created_at", "updated_at"];

const JWT_ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA",
];

/// Reads the top-level `consumers` with their nested plugins and credentials.
pub(super) fn consumers(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "consumers") else {
        return;
    };
    let base = root.at("consumers");
    for (i, item) in items.iter().enumerate() {
        let label = label_of(item, "username").or_else(|| label_of(item, "custom_id"));
        consumer(b, item, base.entity(i, label));
    }
}

fn consumer(b: &mut Build, value: &Value, path: FieldPath) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    let ctx = &mut b.ctx;
    rec.check_fields(ctx, FIELDS);
    let username = non_empty(ctx, &rec, "username");
    let custom_id = non_empty(ctx, &rec, "custom_id");
    if username.is_none() && custom_id.is_none() && !rec.has("username") && !rec.has("custom_id") {
        ctx.err(
            rec.path.clone(),
            "at least one of these fields must be non-empty: 'custom_id', 'username'",
        );
    }
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);

    // The id does not depend on the nested children.
    let mut content = value.clone();
    if let Value::Object(m) = &mut content {
        for kind in CredentialKind::ALL {
            m.remove(kind.declarative_key());
        }
    }
    let id = assign_id(b, &rec, "consumers", username.as_deref(), "", &content);
    let ctx = &mut b.ctx;
    let mut is_new = true;
    if let Some(u) = &username {
        if let Some((_, first)) = b.consumer_usernames.get(u) {
            ctx.err(
                rec.at("username"),
                format!("duplicate username {} (already used by {first})", quote(u)),
            );
            is_new = false;
        } else {
            b.consumer_usernames
                .insert(u.clone(), (id, rec.path.clone()));
        }
    }
    if let Some(c) = &custom_id {
        is_new &= claim(
            ctx,
            &mut b.consumer_custom_ids,
            c.clone(),
            rec.at("custom_id"),
            &rec.path,
            |first| format!("duplicate custom_id {} (already used by {first})", quote(c)),
        );
    }
    if is_new || rec.has("id") {
        claim(
            ctx,
            &mut b.consumer_ids,
            id,
            id_path(&rec),
            &rec.path,
            |first| format!("duplicate id \"{id}\" (already used by {first})"),
        );
    }
    b.config.consumers.push(Consumer {
        id,
        username,
        custom_id,
        tags,
    });

    plugin::nested(b, &rec, Parent::Consumer(id));
    for kind in CredentialKind::ALL {
        let key = kind.declarative_key();
        let Some(items) = rec.array(&mut b.ctx, key) else {
            continue;
        };
        let base = rec.at(key);
        for (j, item) in items.iter().enumerate() {
            credential(b, kind, item, base.entity(j, None), Some(id));
        }
    }
}

/// A string field that must not be empty when set.
fn non_empty(ctx: &mut Ctx, rec: &Record<'_>, key: &str) -> Option<String> {
    let s = rec.string(ctx, key)?;
    if s.is_empty() {
        ctx.err(rec.at(key), "must not be empty");
        return None;
    }
    Some(s.to_owned())
}

/// Reads the top-level credential lists (after the consumers).
pub(super) fn top_level_credentials(b: &mut Build, root: &Record<'_>) {
    for kind in CredentialKind::ALL {
        let key = kind.declarative_key();
        let Some(items) = root.array(&mut b.ctx, key) else {
            continue;
        };
        let base = root.at(key);
        for (i, item) in items.iter().enumerate() {
            credential(b, kind, item, base.entity(i, None), None);
        }
    }
}

/// The fields of a credential kind besides [`COMMON_FIELDS`].
fn kind_fields(kind: CredentialKind) -> &'static [&'static str] {
    match kind {
        CredentialKind::KeyAuth => &["key", "ttl"],
        CredentialKind::BasicAuth => &["username", "password"],
        CredentialKind::Jwt => &["key", "secret", "rsa_public_key", "algorithm", "jwks_uri"],
        CredentialKind::HmacAuth => &["username", "secret"],
        CredentialKind::Oauth2 => &[
            "name",
            "client_id",
            "client_secret",
            "hash_secret",
            "redirect_uris",
            "client_type",
        ],
        CredentialKind::Acl => &["group"],
    }
}

/// The field that is unique across all credentials of a kind, if any.
fn unique_field(kind: CredentialKind) -> Option<&'static str> {
    match kind {
        CredentialKind::KeyAuth | CredentialKind::Jwt => Some("key"),
        CredentialKind::BasicAuth | CredentialKind::HmacAuth => Some("username"),
        CredentialKind::Oauth2 => Some("client_id"),
        CredentialKind::Acl => None,
    }
}

/// Reads one credential; `nested_in` is the id of the enclosing consumer.
fn credential(
    b: &mut Build,
    kind: CredentialKind,
    value: &Value,
    path: FieldPath,
    nested_in: Option<Uuid>,
) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    let allowed: Vec<&str> = COMMON_FIELDS
        .iter()
        .chain(kind_fields(kind))
        .copied()
        .collect();
    rec.check_fields(&mut b.ctx, &allowed);
    let consumer = match nested_in {
        Some(id) => {
            if rec.has("consumer") {
                b.ctx.err(
                    rec.at("consumer"),
                    "must not be set on a credential nested under a consumer",
                );
            }
            Some(id)
        }
        None => match rec.get("consumer") {
            None => {
                b.ctx.err(rec.at("consumer"), "required field missing");
                None
            }
            Some(v) => reference_with(
                &mut b.ctx,
                v,
                rec.at("consumer"),
                &["id", "username", "name"],
            )
            .and_then(|r| {
                let found = b.lookup("consumer", &r);
                if found.is_none() {
                    b.ctx.err(
                        rec.at("consumer"),
                        format!("no consumer with username or id {}", quote(&r)),
                    );
                }
                found
            }),
        },
    };

    let ctx = &mut b.ctx;
    let fields = kind_values(ctx, &rec, kind);
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);
    let created_at = rec
        .get("created_at")
        .and_then(Value::as_f64)
        .map(|t| t as i64);

    let parent = consumer.map(|c| c.to_string()).unwrap_or_default();
    let id = assign_id(b, &rec, kind.declarative_key(), None, &parent, value);
    let ctx = &mut b.ctx;
    let mut is_new = true;
    if let Some(field) = unique_field(kind) {
        if let Some(Value::String(v)) = fields.get(field) {
            is_new = claim(
                ctx,
                &mut b.credential_keys,
                (kind, v.clone()),
                rec.at(field),
                &rec.path,
                |first| {
                    format!(
                        "duplicate {} {field} {} (already used by {first})",
                        kind.plugin_name(),
                        quote(v)
                    )
                },
            );
        }
    }
    if let (CredentialKind::Acl, Some(c), Some(Value::String(g))) =
        (kind, consumer, fields.get("group"))
    {
        is_new = claim(
            ctx,
            &mut b.acl_groups,
            (c, g.clone()),
            rec.at("group"),
            &rec.path,
            |first| {
                format!(
                    "duplicate acl group {} for this consumer (already declared at {first})",
                    quote(g)
                )
            },
        );
    }
    if is_new || rec.has("id") {
        claim(
            ctx,
            &mut b.credential_ids,
            id,
            id_path(&rec),
            &rec.path,
            |first| format!("duplicate id \"{id}\" (already used by {first})"),
        );
    }
    let Some(consumer) = consumer else {
        return;
    };
    b.config.credentials.push(Credential {
        id,
        consumer,
        kind,
        fields,
        tags,
        created_at,
    });
}

/// Validates a credential's own fields and fills Kong's defaults.
fn kind_values(ctx: &mut Ctx, rec: &Record<'_>, kind: CredentialKind) -> Map<String, Value> {
    let mut out = Map::new();
    let out = &mut out;
    let string = |ctx: &mut Ctx, out: &mut Map<String, Value>, key: &str, required: bool| {
        put_string(ctx, rec, out, key, required)
    };
    match kind {
        CredentialKind::KeyAuth => {
            string(ctx, out, "key", true);
            if let Some(ttl) = rec.integer(ctx, "ttl", 0, i64::MAX) {
                out.insert("ttl".into(), Value::from(ttl));
            }
        }
        CredentialKind::BasicAuth => {
            string(ctx, out, "username", true);
            string(ctx, out, "password", true);
        }
        CredentialKind::Jwt => {
            string(ctx, out, "key", true);
            string(ctx, out, "secret", false);
            let rsa = string(ctx, out, "rsa_public_key", false);
            let algorithm = match rec.string(ctx, "algorithm") {
                None => "HS256".to_owned(),
                Some(a) if JWT_ALGORITHMS.contains(&a) => a.to_owned(),
                Some(a) => {
                    ctx.err(
                        rec.at("algorithm"),
                        format!(
                            "expected one of: {}, got {}",
                            JWT_ALGORITHMS.join(", "),
                            quote(a)
                        ),
                    );
                    "HS256".to_owned()
                }
            };
            // Beyond Kong: the public keys may come from a JWKS document
            // (an identity provider's), fetched by the proxy when needed.
            let jwks = string(ctx, out, "jwks_uri", false);
            if let Some(uri) = &jwks {
                if algorithm.starts_with("HS") {
                    ctx.err(
                        rec.at("jwks_uri"),
                        format!(
                            "not allowed when 'algorithm' is '{algorithm}' (JWKS hold public keys)"
                        ),
                    );
                } else if !["https://", "http://"]
                    .iter()
                    .any(|p| uri.starts_with(p) && uri.len() > p.len())
                {
                    ctx.err(rec.at("jwks_uri"), "expected an https:// or http:// URL");
                }
            }
            if !algorithm.starts_with("HS")
                && rsa.is_none()
                && jwks.is_none()
                && !rec.has("rsa_public_key")
            {
                ctx.err(
                    rec.at("rsa_public_key"),
                    format!("required field missing when 'algorithm' is '{algorithm}'"),
                );
            }
            out.insert("algorithm".into(), Value::String(algorithm));
        }
        CredentialKind::HmacAuth => {
            string(ctx, out, "username", true);
            string(ctx, out, "secret", true);
        }
        CredentialKind::Oauth2 => {
            string(ctx, out, "name", true);
            string(ctx, out, "client_id", true);
            string(ctx, out, "client_secret", true);
            let hash_secret = rec.boolean(ctx, "hash_secret", false);
            out.insert("hash_secret".into(), Value::Bool(hash_secret));
            if let Some(uris) = rec.strings(ctx, "redirect_uris") {
                let uris: Vec<Value> = uris
                    .into_iter()
                    .map(|(_, u)| Value::String(u.to_owned()))
                    .collect();
                out.insert("redirect_uris".into(), Value::Array(uris));
            }
            let client_type = match rec.string(ctx, "client_type") {
                None => "confidential",
                Some(t @ ("confidential" | "public")) => t,
                Some(t) => {
                    ctx.err(
                        rec.at("client_type"),
                        format!("expected one of: confidential, public, got {}", quote(t)),
                    );
                    "confidential"
                }
            };
            out.insert("client_type".into(), Value::String(client_type.to_owned()));
        }
        CredentialKind::Acl => {
            string(ctx, out, "group", true);
        }
    }
    std::mem::take(out)
}

/// Copies the string field `key` into `out`; Kong strings are non-empty.
fn put_string(
    ctx: &mut Ctx,
    rec: &Record<'_>,
    out: &mut Map<String, Value>,
    key: &str,
    required: bool,
) -> Option<String> {
    match rec.string(ctx, key) {
        Some("") => {
            ctx.err(rec.at(key), "length must be at least 1");
            None
        }
        Some(s) => {
            out.insert(key.to_owned(), Value::String(s.to_owned()));
            Some(s.to_owned())
        }
        None => {
            if required && !rec.has(key) {
                ctx.err(rec.at(key), "required field missing");
            }
            None
        }
    }
}
