//! `GET /schemas/{entity}`, `GET /schemas/plugins/{name}` and the
//! `POST /schemas/.../validate` endpoints, in Kong's shape
//! (`{"fields":[{"name":{"type":…,"default":…}}]}`).

use crate::kinds::Kind;
use serde_json::{json, Map, Value};
use tollgate_plugins::schema::{Field, Ty};

fn type_of_value(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "record",
        _ => "string",
    }
}

/// An entity's schema, derived from its Kong defaults.
pub fn entity_schema(kind: Kind) -> Value {
    let mut fields = vec![json!({ "id": { "type": "string", "uuid": true, "auto": true } })];
    for (name, default) in kind.defaults() {
        let mut f = Map::new();
        let ty = if kind.foreign_keys().contains(&name.as_str()) {
            "foreign"
        } else if default.is_null() {
            match name.as_str() {
                "port" | "retries" | "weight" | "ttl" => "integer",
                "tags" | "methods" | "hosts" | "paths" | "snis" | "redirect_uris"
                | "ca_certificates" => "set",
                "headers" => "map",
                _ => "string",
            }
        } else {
            type_of_value(&default)
        };
        f.insert("type".into(), json!(ty));
        if !default.is_null() {
            f.insert("default".into(), default);
        }
        fields.push(json!({ name: f }));
    }
    json!({ "fields": fields })
}

fn field_json(f: &Field, defaults: Option<&Value>) -> Value {
    let mut m = Map::new();
    let ty = match f.ty {
        Ty::Str | Ty::Check(_) => "string",
        Ty::OneOf(values) => {
            m.insert("one_of".into(), json!(values));
            "string"
        }
        Ty::Bool => "boolean",
        Ty::Int(_) => "integer",
        Ty::Num(_) => "number",
        Ty::Array(_) => "array",
        Ty::Map(_) => "map",
        Ty::Record(inner) => {
            let sub = defaults.and_then(|d| d.get(f.name));
            let list: Vec<Value> = inner.iter().map(|g| field_json(g, sub)).collect();
            m.insert("fields".into(), Value::Array(list));
            "record"
        }
    };
    m.insert("type".into(), json!(ty));
    if f.required {
        m.insert("required".into(), json!(true));
    }
    if let Some(d) = defaults.and_then(|d| d.get(f.name)) {
        if !d.is_null() && !matches!(f.ty, Ty::Record(_)) {
            m.insert("default".into(), d.clone());
        }
    }
    json!({ f.name: m })
}

/// A bundled plugin's schema (None for an unknown plugin).
pub fn plugin_schema(name: &str) -> Option<Value> {
    let info = tollgate_plugins::registry()
        .iter()
        .find(|p| p.name == name)?;
    let defaults = info.defaults();
    let config: Vec<Value> = info
        .fields()
        .iter()
        .map(|f| field_json(f, Some(&defaults)))
        .collect();
    Some(json!({
        "name": info.name,
        "priority": info.priority,
        "fields": [
            { "protocols": { "type": "set", "default": ["grpc", "grpcs", "http", "https"] } },
            { "config": { "type": "record", "required": true, "fields": config } },
        ],
    }))
}
