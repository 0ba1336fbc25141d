//! The schema machinery shared by every plugin: a field table describing the
//! JSON shape of a config ([`Field`], [`Ty`]), the walker that checks a JSON
//! value against it with Kong's messages, and the [`PluginSchema`] trait that
//! ties a plugin's config struct to its table.
//!
//! Validation runs in three steps: the walker checks types, ranges and
//! unknown fields (collecting every problem with its path, and turning a
//! single string into a one-element array where an array of strings is
//! expected); serde then fills the defaults from the struct's `Default`; the
//! struct's [`PluginSchema::validate`] checks cross-field rules.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::{Problem, SchemaError};

/// Kong's name for one bound of a number or integer field.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    /// No bound.
    Any,
    /// Strictly greater than (Kong's `gt`).
    Gt(f64),
    /// Inclusive range (Kong's `between`).
    Between(f64, f64),
}

/// The expected JSON type of a field, with its value rules.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// Any string.
    Str,
    /// A string checked by a function returning Kong's message on failure.
    Check(fn(&str) -> Result<(), String>),
    /// A string among these values.
    OneOf(&'static [&'static str]),
    /// A boolean.
    Bool,
    /// An integer (an integral float such as `10.0` is accepted).
    Int(Bound),
    /// Any number.
    Num(Bound),
    /// An array of this element type; a single string is accepted as a
    /// one-element array when the elements are strings.
    Array(&'static Ty),
    /// An object with string keys and values of this type.
    Map(&'static Ty),
    /// A nested record.
    Record(&'static [Field]),
}

/// One field of a config record.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The JSON key.
    pub name: &'static str,
    /// The expected type.
    pub ty: Ty,
    /// Whether the field must be present (and not null); Kong's
    /// `required = true` without a default.
    pub required: bool,
}

/// A field that may be omitted (its default applies).
pub const fn field(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

/// A field that must be given.
pub const fn required(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

/// An array of strings.
pub const STRINGS: Ty = Ty::Array(&Ty::Str);
/// A map of strings to strings.
pub const STRING_MAP: Ty = Ty::Map(&Ty::Str);
/// A TCP/UDP port (Kong's `typedefs.port`).
pub const PORT: Ty = Ty::Int(Bound::Between(0.0, 65535.0));
/// A header name (Kong's `typedefs.header_name`).
pub const HEADER_NAME: Ty = Ty::Check(check_header_name);
/// An array of header names.
pub const HEADER_NAMES: Ty = Ty::Array(&HEADER_NAME);

/// A bundled plugin's config type: its name, priority, field table and
/// cross-field rules. Defaults come from the struct's `Default`.
pub trait PluginSchema: Serialize + DeserializeOwned + Default {
    /// The plugin name, as in Kong.
    const NAME: &'static str;
    /// Kong's `PRIORITY` (higher runs first).
    const PRIORITY: i32;
    /// The JSON shape of the config record.
    const FIELDS: &'static [Field];

    /// Cross-field and entity-level rules, run on the config with defaults
    /// filled.
    fn validate(&self) -> Result<(), Vec<Problem>> {
        Ok(())
    }

    /// Builds the plugin's runtime from a validated instance; `None` when
    /// this version has none for it yet (its config is still validated and
    /// stored, and the node warns).
    fn runtime(
        _plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        None
    }
}

/// Validates `config` for plugin type `T` and returns the full config.
pub fn validate_as<T: PluginSchema>(config: &Value) -> Result<Value, SchemaError> {
    let mut value = match config {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    };
    let mut problems = Vec::new();
    check(
        &Ty::Record(T::FIELDS),
        &mut value,
        &mut Vec::new(),
        &mut problems,
    );
    if !problems.is_empty() {
        // Deterministic order whatever the JSON map type (serde_json's
        // `preserve_order` may be on through other crates).
        problems.sort();
        return Err(SchemaError::Invalid(problems));
    }
    let parsed: T = serde_json::from_value(value)
        .map_err(|e| SchemaError::Invalid(vec![(Vec::new(), format!("invalid config: {e}"))]))?;
    parsed.validate().map_err(SchemaError::Invalid)?;
    Ok(to_json(&parsed))
}

/// The default config of plugin type `T`, as Kong would show it.
pub fn defaults_of<T: PluginSchema>() -> Value {
    to_json(&T::default())
}

fn to_json<T: Serialize>(config: &T) -> Value {
    let mut out = serde_json::to_value(config).unwrap_or(Value::Null);
    integralize(&mut out);
    out
}

/// Shows integral floats as integers (`100` rather than `100.0`), as Kong's
/// JSON encoder does.
fn integralize(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integralize),
        Value::Object(map) => map.values_mut().for_each(integralize),
        _ => {}
    }
}

fn push(out: &mut Vec<Problem>, path: &[String], msg: impl Into<String>) {
    out.push((path.to_vec(), msg.into()));
}

fn is_string_like(ty: &Ty) -> bool {
    matches!(ty, Ty::Str | Ty::Check(_) | Ty::OneOf(_))
}

fn check_bound(n: f64, bound: Bound, path: &[String], out: &mut Vec<Problem>) {
    match bound {
        Bound::Any => {}
        Bound::Gt(min) if n <= min => push(out, path, format!("value must be greater than {min}")),
        Bound::Between(lo, hi) if n < lo || n > hi => {
            push(out, path, format!("value should be between {lo} and {hi}"));
        }
        _ => {}
    }
}

/// Checks `value` against `ty`, normalizing it in place (single strings to
/// arrays, integral floats to integers, nulls removed from records).
pub fn check(ty: &Ty, value: &mut Value, path: &mut Vec<String>, out: &mut Vec<Problem>) {
    match ty {
        Ty::Str => {
            if !value.is_string() {
                push(out, path, "expected a string");
            }
        }
        Ty::Check(f) => match value.as_str() {
            None => push(out, path, "expected a string"),
            Some(s) => {
                if let Err(msg) = f(s) {
                    push(out, path, msg);
                }
            }
        },
        Ty::OneOf(options) => match value.as_str() {
            None => push(out, path, "expected a string"),
            Some(s) if !options.contains(&s) => {
                push(
                    out,
                    path,
                    format!("expected one of: {}", options.join(", ")),
                );
            }
            Some(_) => {}
        },
        Ty::Bool => {
            if !value.is_boolean() {
                push(out, path, "expected a boolean");
            }
        }
        Ty::Int(bound) => {
            let int = match value.as_i64() {
                Some(i) => Some(i),
                None => value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64),
            };
            match int {
                None => push(out, path, "expected an integer"),
                Some(i) => {
                    *value = Value::from(i);
                    check_bound(i as f64, *bound, path, out);
                }
            }
        }
        Ty::Num(bound) => match value.as_f64() {
            None => push(out, path, "expected a number"),
            Some(n) => check_bound(n, *bound, path, out),
        },
        Ty::Array(elem) => {
            if value.is_string() && is_string_like(elem) {
                *value = Value::Array(vec![value.take()]);
            }
            match value.as_array_mut() {
                None => push(out, path, "expected an array"),
                Some(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        path.push(i.to_string());
                        check(elem, item, path, out);
                        path.pop();
                    }
                }
            }
        }
        Ty::Map(elem) => match value.as_object_mut() {
            None => push(out, path, "expected a map"),
            Some(map) => {
                for (key, item) in map.iter_mut() {
                    path.push(key.clone());
                    check(elem, item, path, out);
                    path.pop();
                }
            }
        },
        Ty::Record(fields) => check_record(fields, value, path, out),
    }
}

fn check_record(
    fields: &[Field],
    value: &mut Value,
    path: &mut Vec<String>,
    out: &mut Vec<Problem>,
) {
    let Some(map) = value.as_object_mut() else {
        push(out, path, "expected a record");
        return;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        path.push(key.clone());
        match fields.iter().find(|f| f.name == key) {
            None => push(out, path, "unknown field"),
            Some(f) => {
                if map.get(&key).is_some_and(Value::is_null) {
                    // An explicit null means "not set": the default applies.
                    map.remove(&key);
                } else if let Some(item) = map.get_mut(&key) {
                    check(&f.ty, item, path, out);
                }
            }
        }
        path.pop();
    }
    for f in fields.iter().filter(|f| f.required) {
        if !map.contains_key(f.name) {
            path.push(f.name.to_string());
            push(out, path, "required field missing");
            path.pop();
        }
    }
}

/// Kong's `typedefs.header_name`.
pub fn check_header_name(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "bad header name '{s}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        ))
    }
}

/// Kong's `typedefs.ip_or_cidr`.
pub fn check_ip_or_cidr(s: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid ip or cidr range: '{s}'"));
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (s, None),
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return bad();
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Ok(()),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && !p.starts_with('+') => Ok(()),
            _ => bad(),
        },
    }
}

/// Kong's `typedefs.url` (an http or https URL with a host).
pub fn check_url(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("missing host in url".to_string());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("invalid url: unsupported scheme '{scheme}'"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("missing host in url".to_string());
    }
    Ok(())
}

/// A "key:value" string as in the transformer plugins.
pub fn check_colon_pair(s: &str) -> Result<(), String> {
    match s.split_once(':') {
        Some((k, _)) if !k.is_empty() => Ok(()),
        _ => Err(format!("key '{s}' has no value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_or_cidr_accepts_addresses_and_ranges_only() {
        for ok in ["10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"] {
            assert!(check_ip_or_cidr(ok).is_ok(), "{ok}");
        }
        for bad in ["10.0.0", "10.0.0.0/33", "::/129", "host", "1.2.3.4/x"] {
            assert!(check_ip_or_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_needs_http_scheme_and_host() {
        assert!(check_url("http://logs.example:8080/path").is_ok());
        assert!(check_url("https://u:p@h").is_ok());
        assert!(check_url("logs.example").is_err());
        assert!(check_url("ftp://h").is_err());
        assert!(check_url("http:///x").is_err());
    }
}
