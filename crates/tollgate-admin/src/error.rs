//! Kong's Admin API error shapes, built in one place.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// An Admin API failure, rendered as Kong renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminError {
    /// 400 code 2: field-level problems (`fields` is nested like the entity).
    Schema(Map<String, Value>),
    /// 400 code 4: a reference to a missing entity, or a delete that would orphan one.
    ForeignKey(String),
    /// 409 code 5: a unique field already used (`{name="foo"}`).
    Unique(String),
    /// 404 `{"message":"Not found"}`.
    NotFound,
    /// 405 `{"message":"Method not allowed"}`.
    MethodNotAllowed,
    /// 405 code 12: writes in DB-less mode.
    DbLess(String),
    /// 400 code 7 / 9 / 11: bad offset, size or query option.
    Option(u16, String),
    /// 400/415 from body decoding.
    Decode(StatusCode, Value),
    /// 400 code 14: an invalid declarative configuration (POST /config).
    Declarative(String, Map<String, Value>),
    /// 401: missing or wrong admin token.
    Unauthorized,
    /// 500: the store failed; the write did not happen.
    Internal(String),
    /// Any status with `{"message": …}`.
    Message(StatusCode, String),
}

fn count_message(fields: &Map<String, Value>) -> String {
    fn flatten(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&p, v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    if !v.is_null() {
                        flatten(&format!("{prefix}.{}", i + 1), v, out);
                    }
                }
            }
            Value::String(s) => out.push(format!("{prefix}: {s}")),
            other => out.push(format!("{prefix}: {other}")),
        }
    }
    let mut parts = Vec::new();
    for (k, v) in fields {
        flatten(k, v, &mut parts);
    }
    if parts.len() == 1 {
        format!("schema violation ({})", parts[0])
    } else {
        format!("{} schema violations ({})", parts.len(), parts.join("; "))
    }
}

impl AdminError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Schema(_)
            | AdminError::ForeignKey(_)
            | AdminError::Option(..)
            | AdminError::Declarative(..) => StatusCode::BAD_REQUEST,
            AdminError::Unique(_) => StatusCode::CONFLICT,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed | AdminError::DbLess(_) => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Decode(s, _) => *s,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AdminError::Message(s, _) => *s,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        match self {
            AdminError::Schema(fields) => json!({
                "code": 2, "name": "schema violation", "message": count_message(fields), "fields": fields,
            }),
            AdminError::ForeignKey(m) => {
                json!({ "code": 4, "name": "foreign key violation", "message": m })
            }
            AdminError::Unique(key) => json!({
                "code": 5, "name": "unique constraint violation",
                "message": format!("UNIQUE violation detected on '{key}'"),
            }),
            AdminError::NotFound => json!({ "message": "Not found" }),
            AdminError::MethodNotAllowed => json!({ "message": "Method not allowed" }),
            AdminError::DbLess(m) => {
                json!({ "code": 12, "name": "operation unsupported", "message": m })
            }
            AdminError::Option(code, m) => {
                let name = match code {
                    7 => "invalid offset",
                    9 => "invalid size",
                    _ => "invalid options",
                };
                json!({ "code": code, "name": name, "message": m })
            }
            AdminError::Decode(_, body) => body.clone(),
            AdminError::Declarative(m, fields) => json!({
                "code": 14, "name": "invalid declarative configuration",
                "message": format!("declarative config is invalid: {m}"), "fields": fields,
            }),
            AdminError::Unauthorized => json!({ "message": "Unauthorized" }),
            AdminError::Internal(m) => {
                json!({ "message": format!("An unexpected error occurred: {m}") })
            }
            AdminError::Message(_, m) => json!({ "message": m }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_violation_message_counts_fields() {
        let mut f = Map::new();
        f.insert("host".into(), json!("required field missing"));
        let e = AdminError::Schema(f.clone());
        assert_eq!(
            e.body()["message"],
            "schema violation (host: required field missing)"
        );
        f.insert("port".into(), json!("expected an integer"));
        let e = AdminError::Schema(f);
        assert_eq!(
            e.body()["message"],
            "2 schema violations (host: required field missing; port: expected an integer)"
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
