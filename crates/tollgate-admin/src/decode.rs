//! Request body decoding for the Admin API, the way Kong does it.
//!
//! Kong's Admin API accepts three body encodings on `POST`, `PUT` and
//! `PATCH`: `application/json`, `application/x-www-form-urlencoded` and
//! `multipart/form-data`. Anything else is answered with 415. This module
//! turns any of them into one JSON object:
//!
//! * JSON bodies are passed through untouched (no coercion); they must be
//!   objects.
//! * Form bodies (urlencoded or multipart) are a flat list of `(key, value)`
//!   string pairs. Keys use Kong's syntax (see `kong/api/arguments_decoder.lua`):
//!   - `config.minute=100` and `config.redis.host=x` build nested objects;
//!   - `paths[]=/a&paths[]=/b`, repeated `paths=/a&paths=/b` and indexed
//!     `paths[1]=/a&paths[2]=/b` (1-based, ordered by index) build arrays;
//!   - `headers[x-foo]=bar` (a non-numeric bracket) is map syntax;
//!   - the forms mix: `sources[1].ip=10.0.0.1&sources[1].port=80`.
//!
//!   The resulting strings are then coerced by the entity [`Schema`], as
//!   Kong's `arguments.infer` does: `""` becomes `null`, integer, number and
//!   boolean fields are parsed, a single value for an array field becomes a
//!   one-element array, and so on (see [`FieldType`]).
//!
//! What Kong does that callers must mirror: body decoding only happens for
//! `POST`, `PUT` and `PATCH`; other methods ignore the body and its
//! content type altogether, so do not call [`decode_body`] for them.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{Map, Number, Value};
use tollgate_model::form::{media_type, multipart_boundary, parse_multipart, parse_urlencoded};

/// Deepest form key accepted (`a.b[1].c` has depth 4); deeper keys are a
/// [`DecodeError::BadForm`] rather than a risk of deep recursion.
const MAX_KEY_DEPTH: usize = 32;

/// Message of [`DecodeError::BadJson`] responses, as Kong words it.
const BAD_JSON_MESSAGE: &str = "Cannot parse JSON body";

/// Message of [`DecodeError::UnsupportedMediaType`] responses.
///
/// Kong answers 415 with `kong.response.exit(415)` and no message of its
/// own; we send the status' reason phrase in the usual `{"message": ...}`
/// shape.
const UNSUPPORTED_MEDIA_TYPE_MESSAGE: &str = "Unsupported Media Type";

/// The type of an entity field, used to coerce form values.
///
/// JSON bodies are never coerced; only form (urlencoded and multipart)
/// values, which all arrive as strings, are. For every type an empty string
/// becomes `null` first. A value the type cannot be parsed from is left as
/// it is, so that the schema validator reports it (for example "expected an
/// integer").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string: left as it is.
    String,
    /// An integer: parsed as a number (like Lua's `tonumber`); an integral
    /// value becomes a JSON integer.
    Integer,
    /// A number: parsed as an integer or a float.
    Number,
    /// A boolean: `"true"` and `"false"` only.
    Boolean,
    /// An array (or set) of strings: a single value becomes a one-element
    /// array; empty elements become `null`.
    StringArray,
    /// An array (or set) of integers: like [`FieldType::StringArray`], each
    /// element coerced as [`FieldType::Integer`].
    IntegerArray,
    /// A map of name to array of strings, like a route's `headers`:
    /// `headers[x-foo]=bar` gives `{"x-foo": ["bar"]}`; repeating the key
    /// adds values.
    Map,
    /// A nested record, like a plugin's `config`. Its sub-fields are typed by
    /// [`Schema::nested_field_type`] when the schema knows them; otherwise
    /// leaves are coerced heuristically: `"true"`/`"false"` become booleans,
    /// integer-looking strings (`-?(0|[1-9][0-9]*)`) integers, decimal-looking
    /// strings (`12.5`) numbers, and everything else stays a string.
    Record,
    /// A foreign key, an object such as `{"id": "..."}` built from
    /// `service.id=...` (or `service.name=...`); its strings are kept, and
    /// `service=` (empty) becomes `null`. A bare `service=<id>` string is left
    /// for the validator, as in Kong.
    ForeignKey,
}

/// The field types of an entity, as far as form decoding needs them.
///
/// Any `Fn(&str) -> Option<FieldType>` closure is a schema:
///
/// ```
/// use tollgate_admin::decode::{decode_body, FieldType};
///
/// let schema = |name: &str| match name {
///     "port" => Some(FieldType::Integer),
///     _ => None,
/// };
/// let body = decode_body(
///     Some("application/x-www-form-urlencoded"),
///     b"port=8080",
///     &schema,
/// )
/// .unwrap();
/// assert_eq!(body["port"], 8080);
/// ```
pub trait Schema {
    /// The type of the top-level field `name`, or `None` when the entity has
    /// no such field (its form value is then left as it is; the validator
    /// reports "unknown field").
    fn field_type(&self, name: &str) -> Option<FieldType>;

    /// The type of a field nested in a [`FieldType::Record`], by its full
    /// path (for example `["config", "redis", "port"]`), when known.
    ///
    /// `None` (the default) makes the decoder guess from the value, as
    /// described on [`FieldType::Record`].
    fn nested_field_type(&self, path: &[&str]) -> Option<FieldType> {
        let _ = path;
        None
    }
}

impl<F> Schema for F
where
    F: Fn(&str) -> Option<FieldType>,
{
    fn field_type(&self, name: &str) -> Option<FieldType> {
        self(name)
    }
}

/// Why a request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The content type is neither JSON, urlencoded nor multipart, or a
    /// non-empty body came without a content type (415).
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    /// A JSON body (including an empty one) did not parse; holds the
    /// parser's explanation, which is logged but not sent (400).
    #[error("Cannot parse JSON body: {0}")]
    BadJson(String),
    /// A form, a multipart body or a JSON value other than an object was
    /// malformed; the message is sent as is (400).
    #[error("{0}")]
    BadForm(String),
}

impl DecodeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            DecodeError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DecodeError::BadJson(_) | DecodeError::BadForm(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON body to answer with: `{"message": ...}`.
    pub fn body(&self) -> Value {
        let message = match self {
            DecodeError::UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE_MESSAGE,
            DecodeError::BadJson(_) => BAD_JSON_MESSAGE,
            DecodeError::BadForm(message) => message.as_str(),
        };
        serde_json::json!({ "message": message })
    }
}

/// Decodes a `POST`, `PUT` or `PATCH` request body into a JSON object,
/// according to its `Content-Type` header value.
///
/// * No content type (or a blank one): an empty body gives an empty object,
///   any other body is a [`DecodeError::UnsupportedMediaType`].
/// * `application/json` (parameters such as `charset` allowed): the body must
///   be a JSON object and is returned as is. An empty or invalid body is a
///   [`DecodeError::BadJson`] (Kong: 400 "Cannot parse JSON body"); a valid
///   JSON value other than an object is a [`DecodeError::BadForm`].
/// * `application/x-www-form-urlencoded` and `multipart/form-data`: an empty
///   body gives an empty object; otherwise the pairs are decoded by
///   [`decode_pairs`].
/// * Anything else (including `application/yaml`):
///   [`DecodeError::UnsupportedMediaType`].
pub fn decode_body(
    content_type: Option<&str>,
    body: &[u8],
    schema: &dyn Schema,
) -> Result<Map<String, Value>, DecodeError> {
    let media = content_type.map(media_type).unwrap_or_default();
    match media.as_str() {
        "" if body.is_empty() => Ok(Map::new()),
        "application/json" => decode_json(body),
        "application/x-www-form-urlencoded" => {
            if body.is_empty() {
                return Ok(Map::new());
            }
            decode_pairs(parse_urlencoded(body), schema)
        }
        "multipart/form-data" => {
            if body.is_empty() {
                return Ok(Map::new());
            }
            let boundary = content_type.and_then(multipart_boundary).ok_or_else(|| {
                DecodeError::BadForm("missing multipart boundary in Content-Type".to_owned())
            })?;
            decode_pairs(
                parse_multipart(body, &boundary).map_err(|e| DecodeError::BadForm(e.0))?,
                schema,
            )
        }
        _ => Err(DecodeError::UnsupportedMediaType),
    }
}

/// Splits a query string into its `(name, value)` pairs, in order.
///
/// Pairs are separated by `&`; names and values are percent-decoded with `+`
/// meaning a space (invalid escapes are kept as they are, invalid UTF-8 is
/// replaced by U+FFFD). A pair without `=` has an empty value; empty pairs
/// and pairs with an empty name are skipped. A leading `?` is ignored.
///
/// No key syntax is applied and nothing is coerced; pass the pairs to
/// [`decode_pairs`] to get Kong's nested form of them.
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    let query = query.strip_prefix('?').unwrap_or(query);
    parse_urlencoded(query.as_bytes())
}

/// Builds a JSON object from form `(name, value)` pairs with Kong's key
/// syntax (dotted keys, arrays, maps; see the [module docs](self)), then
/// coerces the values by `schema`.
///
/// This is what [`decode_body`] does for urlencoded and multipart bodies.
/// A key whose path conflicts with another (`config=x&config.minute=1`) or
/// is nested deeper than 32 levels is a [`DecodeError::BadForm`].
pub fn decode_pairs<I>(pairs: I, schema: &dyn Schema) -> Result<Map<String, Value>, DecodeError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut root = Node::Object(BTreeMap::new());
    for (key, value) in pairs {
        if key.is_empty() {
            continue;
        }
        let path = parse_key(&key);
        if path.len() > MAX_KEY_DEPTH {
            return Err(DecodeError::BadForm(format!(
                "form key '{key}' is nested too deeply"
            )));
        }
        put(&mut root, &path, value).map_err(|Conflict| {
            DecodeError::BadForm(format!("form key '{key}' conflicts with another key"))
        })?;
    }

    let Value::Object(object) = root.into_value() else {
        return Ok(Map::new());
    };
    let mut out = Map::new();
    for (name, value) in object {
        let value = match schema.field_type(&name) {
            Some(ty) => {
                let mut path = vec![name.clone()];
                coerce(value, ty, &mut path, schema)
            }
            None => value,
        };
        out.insert(name, value);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Content types and JSON
// ---------------------------------------------------------------------------

/// The lowercased media type of a `Content-Type` value, without parameters.
fn decode_json(body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(DecodeError::BadForm(
            "body must be a JSON object".to_owned(),
        )),
        Err(err) => Err(DecodeError::BadJson(err.to_string())),
    }
}

// ---------------------------------------------------------------------------
// Form keys and the value tree
// ---------------------------------------------------------------------------

/// One step of a form key's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `.name`, the leading name, or `[name]` (map syntax).
    Key(String),
    /// `[]`: append.
    Push,
    /// `[n]`: the n-th element (1-based, as in Lua).
    Index(u64),
}

/// Parses a form key into its path, following Kong's
/// `arguments_decoder.lua`: dots and brackets separate steps (a dot inside
/// brackets does not), empty dotted steps are dropped, `[]` appends, `[n]`
/// indexes, other brackets are map keys. A key starting or ending with a dot
/// or starting with a bracket, or with text right after a `]`, or with an
/// unclosed `[`, is taken literally as one name.
fn parse_key(raw: &str) -> Vec<Seg> {
    let literal = || vec![Seg::Key(raw.to_owned())];
    if raw.starts_with(['.', '[']) || raw.ends_with('.') {
        return literal();
    }
    let mut path = Vec::new();
    let mut name = String::new();
    let mut after_bracket = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !name.is_empty() {
                    path.push(Seg::Key(std::mem::take(&mut name)));
                }
                after_bracket = false;
            }
            '[' => {
                if !name.is_empty() {
                    path.push(Seg::Key(std::mem::take(&mut name)));
                }
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    return literal();
                }
                path.push(bracket_seg(inner));
                after_bracket = true;
            }
            _ if after_bracket => return literal(),
            _ => name.push(c),
        }
    }
    if !name.is_empty() {
        path.push(Seg::Key(name));
    }
    if path.is_empty() {
        return literal();
    }
    path
}

fn bracket_seg(inner: String) -> Seg {
    if inner.is_empty() {
        return Seg::Push;
    }
    if inner.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(index) = inner.parse() {
            return Seg::Index(index);
        }
    }
    Seg::Key(inner)
}

/// A form value being built.
#[derive(Debug, Default)]
enum Node {
    /// Just created; always filled before decoding ends.
    #[default]
    Empty,
    /// A single value.
    Leaf(String),
    /// An array.
    List(List),
    /// An object.
    Object(BTreeMap<String, Node>),
}

/// An array being built: indexed elements (in index order), then appended
/// ones.
#[derive(Debug, Default)]
struct List {
    /// `a[n]=` elements by `n`; several when an index repeats.
    indexed: BTreeMap<u64, Vec<Node>>,
    /// `a[]=` and repeated `a=` elements, in order.
    pushed: Vec<Node>,
}

/// Two keys want different shapes at the same path.
struct Conflict;

impl Node {
    /// Turns this node into a list (a leaf becomes its first element) and
    /// returns the list's parts; an object cannot.
    fn as_list(&mut self) -> Result<&mut List, Conflict> {
        match std::mem::take(self) {
            Node::Empty => *self = Node::List(List::default()),
            Node::Leaf(value) => {
                *self = Node::List(List {
                    indexed: BTreeMap::new(),
                    pushed: vec![Node::Leaf(value)],
                })
            }
            other => *self = other,
        }
        match self {
            Node::List(list) => Ok(list),
            _ => Err(Conflict),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Empty => Value::Null,
            Node::Leaf(value) => Value::String(value),
            Node::List(List { indexed, pushed }) => Value::Array(
                indexed
                    .into_values()
                    .flatten()
                    .chain(pushed)
                    .map(Node::into_value)
                    .collect(),
            ),
            Node::Object(object) => Value::Object(
                object
                    .into_iter()
                    .map(|(key, node)| (key, node.into_value()))
                    .collect(),
            ),
        }
    }
}

/// Stores `value` at `path` below `node`, creating objects and lists on the
/// way. Assigning a path again appends (`a=1&a=2` gives `["1", "2"]`).
fn put(node: &mut Node, path: &[Seg], value: String) -> Result<(), Conflict> {
    let Some((seg, rest)) = path.split_first() else {
        match node {
            Node::Empty => *node = Node::Leaf(value),
            Node::Object(_) => return Err(Conflict),
            Node::Leaf(_) | Node::List(_) => node.as_list()?.pushed.push(Node::Leaf(value)),
        }
        return Ok(());
    };
    match seg {
        Seg::Key(key) => {
            if matches!(node, Node::Empty) {
                *node = Node::Object(BTreeMap::new());
            }
            let Node::Object(object) = node else {
                return Err(Conflict);
            };
            put(object.entry(key.clone()).or_default(), rest, value)
        }
        Seg::Push | Seg::Index(_) => {
            let List { indexed, pushed } = node.as_list()?;
            match (seg, rest.is_empty()) {
                (Seg::Push, true) => {
                    pushed.push(Node::Leaf(value));
                    Ok(())
                }
                (Seg::Index(index), true) => {
                    indexed.entry(*index).or_default().push(Node::Leaf(value));
                    Ok(())
                }
                _ => {
                    // `a[].b=` means the first element, as in Kong.
                    let index = match seg {
                        Seg::Index(index) => *index,
                        _ => 1,
                    };
                    let slot = indexed.entry(index).or_default();
                    if slot.is_empty() {
                        slot.push(Node::Empty);
                    }
                    match slot.last_mut() {
                        Some(child) => put(child, rest, value),
                        None => Err(Conflict),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Coercion
// ---------------------------------------------------------------------------

/// Coerces a decoded form value to `ty`; `path` is the field's path (used to
/// ask the schema about record sub-fields).
fn coerce(value: Value, ty: FieldType, path: &mut Vec<String>, schema: &dyn Schema) -> Value {
    if value.as_str() == Some("") {
        return Value::Null;
    }
    match (ty, value) {
        (FieldType::String, value) => value,
        (FieldType::Integer, Value::String(s)) => to_integer(&s).unwrap_or(Value::String(s)),
        (FieldType::Number, Value::String(s)) => to_number(&s).unwrap_or(Value::String(s)),
        (FieldType::Boolean, Value::String(s)) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s),
        },
        (FieldType::StringArray, value) => coerce_array(value, FieldType::String, path, schema),
        (FieldType::IntegerArray, value) => coerce_array(value, FieldType::Integer, path, schema),
        (FieldType::Map, Value::Object(object)) => Value::Object(
            object
                .into_iter()
                .map(|(key, value)| {
                    let value = coerce_array(value, FieldType::String, path, schema);
                    (key, value)
                })
                .collect(),
        ),
        (FieldType::Record, Value::Object(object)) => {
            let mut out = Map::new();
            for (key, value) in object {
                path.push(key.clone());
                let nested = {
                    let names: Vec<&str> = path.iter().map(String::as_str).collect();
                    schema.nested_field_type(&names)
                };
                let value = match nested {
                    Some(ty) => coerce(value, ty, path, schema),
                    None => guess(value, path, schema),
                };
                path.pop();
                out.insert(key, value);
            }
            Value::Object(out)
        }
        (FieldType::ForeignKey, Value::Object(object)) => Value::Object(
            object
                .into_iter()
                .map(|(key, value)| {
                    let value = if value.as_str() == Some("") {
                        Value::Null
                    } else {
                        value
                    };
                    (key, value)
                })
                .collect(),
        ),
        (_, value) => value,
    }
}

/// Coerces an array field: a single value becomes a one-element array, each
/// element is coerced to `element`. Objects are left to the validator.
fn coerce_array(
    value: Value,
    element: FieldType,
    path: &mut Vec<String>,
    schema: &dyn Schema,
) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| coerce(item, element, path, schema))
                .collect(),
        ),
        Value::String(s) if s.is_empty() => Value::Null,
        Value::String(_) => Value::Array(vec![coerce(value, element, path, schema)]),
        other => other,
    }
}

/// Coerces a record sub-field of unknown type from the look of its value.
fn guess(value: Value, path: &mut Vec<String>, schema: &dyn Schema) -> Value {
    match value {
        Value::String(s) => guess_leaf(s),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => guess_leaf(s),
                    other => other,
                })
                .collect(),
        ),
        object @ Value::Object(_) => coerce(object, FieldType::Record, path, schema),
        other => other,
    }
}

/// `""` → null, `"true"`/`"false"` → booleans, `-?(0|[1-9][0-9]*)` →
/// integers, `-?(0|[1-9][0-9]*)\.[0-9]+` → numbers; anything else stays a
/// string (so `"007"`, `"1e3"` or `"+1"` stay strings).
fn guess_leaf(s: String) -> Value {
    match s.as_str() {
        "" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let unsigned = s.strip_prefix('-').unwrap_or(&s);
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((int_part, frac)) => (int_part, Some(frac)),
        None => (unsigned, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int_part) && (int_part == "0" || !int_part.starts_with('0'));
    if !int_ok {
        return Value::String(s);
    }
    let parsed = match frac_part {
        None => s.parse::<i64>().ok().map(Value::from),
        Some(frac) if digits(frac) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        Some(_) => None,
    };
    parsed.unwrap_or(Value::String(s))
}

/// Parses like Lua's `tonumber` (decimal only, surrounding blanks allowed);
/// integral values become JSON integers.
fn to_integer(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Ok(int) = s.parse::<i64>() {
        return Some(Value::from(int));
    }
    let float = parse_finite(s)?;
    // 2^63 is exactly representable; anything integral below it fits i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if float.fract() == 0.0 && (-LIMIT..LIMIT).contains(&float) {
        // Integral and in range: the cast is exact.
        return Some(Value::from(float as i64));
    }
    Number::from_f64(float).map(Value::Number)
}

/// Parses an integer or a finite float (surrounding blanks allowed).
fn to_number(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Ok(int) = s.parse::<i64>() {
        return Some(Value::from(int));
    }
    Number::from_f64(parse_finite(s)?).map(Value::Number)
}

/// A finite float; `inf`, `NaN` and overflowing values are refused.
fn parse_finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    /// A schema covering services, routes, upstream-ish and plugin fields.
    fn schema(name: &str) -> Option<FieldType> {
        Some(match name {
            "name" | "host" | "protocol" | "path" | "policy" => FieldType::String,
            "port" | "retries" | "regex_priority" => FieldType::Integer,
            "weight_ratio" => FieldType::Number,
            "enabled" | "strip_path" | "preserve_host" => FieldType::Boolean,
            "paths" | "hosts" | "methods" | "tags" | "protocols" => FieldType::StringArray,
            "http_statuses" => FieldType::IntegerArray,
            "headers" => FieldType::Map,
            "config" | "healthchecks" => FieldType::Record,
            "service" | "route" | "consumer" => FieldType::ForeignKey,
            _ => return None,
        })
    }

    fn form(body: &str) -> Map<String, Value> {
        decode_body(FORM, body.as_bytes(), &schema).unwrap()
    }

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn seed_plugin_form_nests_and_coerces_config() {
        assert_eq!(
            form("name=rate-limiting&config.minute=100"),
            obj(json!({"name": "rate-limiting", "config": {"minute": 100}}))
        );
    }

    #[test]
    fn seed_plugin_form_with_name_only() {
        assert_eq!(form("name=jwt"), obj(json!({"name": "jwt"})));
    }

    #[test]
    fn dotted_keys_build_nested_objects() {
        assert_eq!(
            form("config.redis.host=x&config.redis.port=6379&service.id=abc&service.name=svc"),
            obj(json!({
                "config": {"redis": {"host": "x", "port": 6379}},
                "service": {"id": "abc", "name": "svc"},
            }))
        );
    }

    #[test]
    fn empty_dotted_steps_are_dropped_and_edge_dots_are_literal() {
        assert_eq!(
            form("config..minute=1&.odd=1&odd.=2"),
            obj(json!({"config": {"minute": 1}, ".odd": "1", "odd.": "2"}))
        );
    }

    #[test]
    fn bracket_arrays_append_in_order() {
        assert_eq!(
            form("paths[]=/a&paths[]=/b"),
            obj(json!({"paths": ["/a", "/b"]}))
        );
    }

    #[test]
    fn repeated_keys_make_arrays() {
        assert_eq!(
            form("paths=/a&paths=/b"),
            obj(json!({"paths": ["/a", "/b"]}))
        );
        // Even for fields the schema does not know.
        assert_eq!(form("x=1&x=2"), obj(json!({"x": ["1", "2"]})));
    }

    #[test]
    fn indexed_arrays_are_ordered_by_index() {
        assert_eq!(
            form("paths[2]=/b&paths[1]=/a&paths[10]=/c"),
            obj(json!({"paths": ["/a", "/b", "/c"]}))
        );
    }

    #[test]
    fn single_value_for_array_field_becomes_one_element_array() {
        assert_eq!(
            form("paths=/a&methods=GET&http_statuses=200"),
            obj(json!({"paths": ["/a"], "methods": ["GET"], "http_statuses": [200]}))
        );
    }

    #[test]
    fn integer_array_elements_are_coerced() {
        assert_eq!(
            form("http_statuses[]=200&http_statuses[]=302&http_statuses[]=x"),
            obj(json!({"http_statuses": [200, 302, "x"]}))
        );
    }

    #[test]
    fn indexed_arrays_of_objects() {
        fn untyped(_: &str) -> Option<FieldType> {
            None
        }
        let decoded = decode_body(
            FORM,
            b"sources[1].ip=10.0.0.1&sources[1].port=80&sources[2].ip=10.0.0.2",
            &untyped,
        )
        .unwrap();
        assert_eq!(
            decoded,
            obj(json!({"sources": [{"ip": "10.0.0.1", "port": "80"}, {"ip": "10.0.0.2"}]}))
        );
    }

    #[test]
    fn map_syntax_builds_string_array_values() {
        assert_eq!(
            form("headers[x-foo]=bar&headers[x-multi]=a&headers[x-multi]=b&headers[x.dotted]=c"),
            obj(json!({"headers": {
                "x-foo": ["bar"],
                "x-multi": ["a", "b"],
                "x.dotted": ["c"],
            }}))
        );
    }

    #[test]
    fn percent_encoded_brackets_are_decoded() {
        assert_eq!(
            form("headers%5Bx-foo%5D=bar&paths%5B%5D=%2Fa"),
            obj(json!({"headers": {"x-foo": ["bar"]}, "paths": ["/a"]}))
        );
    }

    #[test]
    fn empty_string_coerces_to_null_for_typed_fields() {
        assert_eq!(
            form("host=&port=&enabled=&paths=&headers=&config=&service=&config2=&headers2[x]="),
            obj(json!({
                "host": null, "port": null, "enabled": null, "paths": null,
                "headers": null, "config": null, "service": null,
                // Unknown fields are left alone.
                "config2": "", "headers2": {"x": ""},
            }))
        );
        assert_eq!(
            form("service.id=&headers[x-foo]=&config.minute="),
            obj(
                json!({"service": {"id": null}, "headers": {"x-foo": null}, "config": {"minute": null}})
            )
        );
    }

    #[test]
    fn scalars_coerce_by_field_type() {
        assert_eq!(
            form("port=8080&retries=abc&regex_priority=1.5&weight_ratio=0.5&enabled=true&strip_path=false&preserve_host=yes&name=123"),
            obj(json!({
                "port": 8080,
                "retries": "abc",
                "regex_priority": 1.5,
                "weight_ratio": 0.5,
                "enabled": true,
                "strip_path": false,
                "preserve_host": "yes",
                "name": "123",
            }))
        );
        assert_eq!(
            form("port=1e3&retries=inf"),
            obj(json!({"port": 1000, "retries": "inf"}))
        );
    }

    #[test]
    fn unknown_top_level_fields_stay_strings() {
        assert_eq!(
            form("foo=100&bar=true&baz.qux=1"),
            obj(json!({"foo": "100", "bar": "true", "baz": {"qux": "1"}}))
        );
    }

    #[test]
    fn record_leaves_are_coerced_heuristically() {
        assert_eq!(
            form(
                "config.minute=100&config.policy=local&config.key_names=apikey\
                 &config.hide_credentials=true&config.ratio=0.25&config.neg=-3\
                 &config.zip=007&config.exp=1e3&config.list[]=1&config.list[]=a\
                 &config.redis.ssl=false"
            ),
            obj(json!({"config": {
                "minute": 100,
                "policy": "local",
                "key_names": "apikey",
                "hide_credentials": true,
                "ratio": 0.25,
                "neg": -3,
                "zip": "007",
                "exp": "1e3",
                "list": [1, "a"],
                "redis": {"ssl": false},
            }}))
        );
    }

    #[test]
    fn nested_field_types_from_schema_override_guessing() {
        struct Plugin;
        impl Schema for Plugin {
            fn field_type(&self, name: &str) -> Option<FieldType> {
                (name == "config").then_some(FieldType::Record)
            }
            fn nested_field_type(&self, path: &[&str]) -> Option<FieldType> {
                match path {
                    ["config", "password"] => Some(FieldType::String),
                    ["config", "key_names"] => Some(FieldType::StringArray),
                    _ => None,
                }
            }
        }
        let decoded = decode_body(
            FORM,
            b"config.password=12345&config.key_names=apikey&config.minute=5",
            &Plugin,
        )
        .unwrap();
        assert_eq!(
            decoded,
            obj(json!({"config": {"password": "12345", "key_names": ["apikey"], "minute": 5}}))
        );
    }

    #[test]
    fn foreign_key_strings_are_kept() {
        assert_eq!(
            form("service.id=123&route=abc"),
            obj(json!({"service": {"id": "123"}, "route": "abc"}))
        );
    }

    #[test]
    fn plus_and_percent_escapes_decode() {
        assert_eq!(
            form("name=a+b%20c&tags=%E2%82%AC&host=bad%zz"),
            obj(json!({"name": "a b c", "tags": ["€"], "host": "bad%zz"}))
        );
    }

    #[test]
    fn conflicting_keys_are_bad_form() {
        let err = decode_body(FORM, b"config=x&config.minute=1", &schema).unwrap_err();
        assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn too_deep_keys_are_bad_form() {
        let key = vec!["a"; 100].join(".");
        let err = decode_body(FORM, format!("{key}=1").as_bytes(), &schema).unwrap_err();
        assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
    }

    #[test]
    fn json_passes_through_without_coercion() {
        let body =
            br#"{"name":"x","port":"8080","config":{"minute":"100"},"host":"","paths":"/a"}"#;
        let decoded = decode_body(Some("application/json; charset=utf-8"), body, &schema).unwrap();
        assert_eq!(
            decoded,
            obj(
                json!({"name": "x", "port": "8080", "config": {"minute": "100"}, "host": "", "paths": "/a"})
            )
        );
    }

    #[test]
    fn bad_json_is_400_cannot_parse() {
        let err = decode_body(Some("application/json"), b"{nope", &schema).unwrap_err();
        assert!(matches!(err, DecodeError::BadJson(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.body(), json!({"message": "Cannot parse JSON body"}));
    }

    #[test]
    fn empty_json_body_is_bad_json_like_kong() {
        let err = decode_body(Some("application/json"), b"", &schema).unwrap_err();
        assert!(matches!(err, DecodeError::BadJson(_)), "{err:?}");
    }

    #[test]
    fn non_object_json_is_bad_form() {
        for body in [&b"[1,2]"[..], b"\"x\"", b"null", b"3"] {
            let err = decode_body(Some("application/json"), body, &schema).unwrap_err();
            assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
            assert_eq!(err.body(), json!({"message": "body must be a JSON object"}));
        }
    }

    #[test]
    fn unsupported_content_type_is_415() {
        for ct in ["application/yaml", "text/plain", "invalid"] {
            let err = decode_body(Some(ct), b"a: b", &schema).unwrap_err();
            assert!(matches!(err, DecodeError::UnsupportedMediaType), "{err:?}");
            assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert_eq!(err.body(), json!({"message": "Unsupported Media Type"}));
        }
    }

    #[test]
    fn missing_content_type_with_body_is_415() {
        let err = decode_body(None, b"invalid", &schema).unwrap_err();
        assert!(matches!(err, DecodeError::UnsupportedMediaType), "{err:?}");
    }

    #[test]
    fn empty_body_gives_empty_object() {
        assert!(decode_body(None, b"", &schema).unwrap().is_empty());
        assert!(decode_body(Some(""), b"", &schema).unwrap().is_empty());
        assert!(decode_body(FORM, b"", &schema).unwrap().is_empty());
        assert!(decode_body(Some("multipart/form-data"), b"", &schema)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn content_type_matching_ignores_case_and_parameters() {
        let decoded = decode_body(
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            b"port=80",
            &schema,
        )
        .unwrap();
        assert_eq!(decoded, obj(json!({"port": 80})));
    }

    #[test]
    fn multipart_with_two_fields() {
        let body = "--XyZ\r\n\
                    Content-Disposition: form-data; name=\"name\"\r\n\
                    \r\n\
                    rate-limiting\r\n\
                    --XyZ\r\n\
                    Content-Disposition: form-data; name=\"config.minute\"\r\n\
                    \r\n\
                    100\r\n\
                    --XyZ--\r\n";
        let decoded = decode_body(
            Some("multipart/form-data; boundary=XyZ"),
            body.as_bytes(),
            &schema,
        )
        .unwrap();
        assert_eq!(
            decoded,
            obj(json!({"name": "rate-limiting", "config": {"minute": 100}}))
        );
    }

    #[test]
    fn multipart_quoted_boundary_files_arrays_and_empty_values() {
        let body = "preamble\r\n\
                    --b-1\r\n\
                    Content-Disposition: form-data; name=\"cert\"; filename=\"c.pem\"\r\n\
                    Content-Type: application/x-pem-file\r\n\
                    \r\n\
                    -----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n\
                    --b-1\r\n\
                    content-disposition: form-data; name=paths[]\r\n\
                    \r\n\
                    /a\r\n\
                    --b-1\r\n\
                    Content-Disposition: form-data; name=\"paths[]\"\r\n\
                    \r\n\
                    /b\r\n\
                    --b-1\r\n\
                    Content-Disposition: form-data; name=\"host\"\r\n\
                    \r\n\
                    \r\n\
                    --b-1\r\n\
                    Content-Disposition: form-data\r\n\
                    \r\n\
                    nameless\r\n\
                    --b-1--";
        let decoded = decode_body(
            Some("multipart/form-data; boundary=\"b-1\"; charset=utf-8"),
            body.as_bytes(),
            &schema,
        )
        .unwrap();
        assert_eq!(
            decoded,
            obj(json!({
                "cert": "-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----",
                "paths": ["/a", "/b"],
                "host": null,
            }))
        );
    }

    #[test]
    fn multipart_accepts_bare_lf_line_endings() {
        let body = "--b\nContent-Disposition: form-data; name=\"port\"\n\n80\n--b--\n";
        let decoded = decode_body(
            Some("multipart/form-data; boundary=b"),
            body.as_bytes(),
            &schema,
        )
        .unwrap();
        assert_eq!(decoded, obj(json!({"port": 80})));
    }

    #[test]
    fn multipart_boundary_lookalikes_in_content_are_content() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--bx\r\n--b--";
        let decoded = decode_body(
            Some("multipart/form-data; boundary=b"),
            body.as_bytes(),
            &schema,
        )
        .unwrap();
        assert_eq!(decoded, obj(json!({"name": "x\r\n--bx"})));
    }

    #[test]
    fn multipart_rfc5987_name() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"x\"; name*=UTF-8''t%C3%A4g\r\n\r\nv\r\n--b--";
        let decoded = decode_body(
            Some("multipart/form-data; boundary=b"),
            body.as_bytes(),
            &schema,
        )
        .unwrap();
        assert_eq!(decoded, obj(json!({"täg": "v"})));
    }

    #[test]
    fn malformed_multipart_is_bad_form() {
        let ct = Some("multipart/form-data; boundary=b");
        for body in [
            &b"no boundary here"[..],
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--b--",
        ] {
            let err = decode_body(ct, body, &schema).unwrap_err();
            assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
        }
        let err = decode_body(Some("multipart/form-data"), b"--b--", &schema).unwrap_err();
        assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
    }

    #[test]
    fn query_strings_split_into_decoded_pairs() {
        assert_eq!(
            decode_query("?tags=a%2Cb&size=10&flag&&=x&name=a+b&paths[]=/a"),
            vec![
                ("tags".to_owned(), "a,b".to_owned()),
                ("size".to_owned(), "10".to_owned()),
                ("flag".to_owned(), String::new()),
                ("name".to_owned(), "a b".to_owned()),
                ("paths[]".to_owned(), "/a".to_owned()),
            ]
        );
        assert!(decode_query("").is_empty());
    }

    #[test]
    fn decode_pairs_applies_form_syntax_to_query_pairs() {
        let decoded = decode_pairs(decode_query("config.minute=5&paths=/a"), &schema).unwrap();
        assert_eq!(
            decoded,
            obj(json!({"config": {"minute": 5}, "paths": ["/a"]}))
        );
    }

    #[test]
    fn key_parsing_follows_kong() {
        use Seg::{Index, Key, Push};
        let k = |s: &str| Key(s.to_owned());
        assert_eq!(parse_key("a"), vec![k("a")]);
        assert_eq!(parse_key("a.b[]"), vec![k("a"), k("b"), Push]);
        assert_eq!(parse_key("a[2].b"), vec![k("a"), Index(2), k("b")]);
        assert_eq!(parse_key("a[x.y][1]"), vec![k("a"), k("x.y"), Index(1)]);
        assert_eq!(parse_key("a[x"), vec![k("a[x")]);
        assert_eq!(parse_key("a[x]y"), vec![k("a[x]y")]);
        assert_eq!(parse_key("[1]"), vec![k("[1]")]);
    }
}
