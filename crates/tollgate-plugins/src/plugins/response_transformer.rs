//! `response-transformer`: config schema and runtime (headers and JSON bodies).

use serde::{Deserialize, Serialize};

use crate::schema::{check_colon_pair, field, Field, PluginSchema, Ty, STRINGS};

/// Header and JSON-key names (remove) or `old:new` pairs (rename).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Parts {
    /// Header entries.
    pub headers: Vec<String>,
    /// JSON body entries.
    pub json: Vec<String>,
}

/// `name:value` entries with the JSON value types.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypedParts {
    /// Header entries.
    pub headers: Vec<String>,
    /// JSON body entries.
    pub json: Vec<String>,
    /// Type of each `json` entry (boolean, number or string).
    pub json_types: Vec<String>,
}

/// `response-transformer` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseTransformerConfig {
    /// Names to remove.
    pub remove: Parts,
    /// `old:new` names to rename.
    pub rename: Parts,
    /// `name:value` to replace when present.
    pub replace: TypedParts,
    /// `name:value` to add when absent.
    pub add: TypedParts,
    /// `name:value` to append.
    pub append: TypedParts,
}

const PAIRS: Ty = Ty::Array(&Ty::Check(check_colon_pair));

const REMOVE: &[Field] = &[field("headers", STRINGS), field("json", STRINGS)];

const RENAME: &[Field] = &[field("headers", PAIRS), field("json", PAIRS)];

const TYPED: &[Field] = &[
    field("headers", PAIRS),
    field("json", PAIRS),
    field(
        "json_types",
        Ty::Array(&Ty::OneOf(&["boolean", "number", "string"])),
    ),
];

impl PluginSchema for ResponseTransformerConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        ResponseTransformer::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "response-transformer";
    const PRIORITY: i32 = 800;
    const FIELDS: &'static [Field] = &[
        field("remove", Ty::Record(REMOVE)),
        field("rename", Ty::Record(RENAME)),
        field("replace", Ty::Record(TYPED)),
        field("add", Ty::Record(TYPED)),
        field("append", Ty::Record(TYPED)),
    ];
}

/// The response-transformer plugin at run time: headers in the
/// header_filter phase; top-level keys of JSON bodies in the body_filter
/// phase (the whole body is held, up to [`PLUGIN_BODY_MAX`] bytes; a larger
/// or non-JSON body passes unchanged).
///
/// [`PLUGIN_BODY_MAX`]: crate::runtime::PLUGIN_BODY_MAX
#[derive(Debug)]
pub struct ResponseTransformer {
    config: ResponseTransformerConfig,
    edits_json: bool,
}

impl ResponseTransformer {
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: ResponseTransformerConfig = serde_json::from_value(config.clone()).ok()?;
        let edits_json = !config.remove.json.is_empty()
            || !config.rename.json.is_empty()
            || !config.replace.json.is_empty()
            || !config.add.json.is_empty()
            || !config.append.json.is_empty();
        Some(ResponseTransformer { config, edits_json })
    }

    /// Kong's order: remove, rename, replace (when present), add (when
    /// absent), append (turning a present value into an array).
    fn transform(&self, body: &mut serde_json::Map<String, serde_json::Value>) {
        use serde_json::Value;
        for k in &self.config.remove.json {
            body.remove(k);
        }
        for pair in &self.config.rename.json {
            if let Some((old, new)) = pair.split_once(':') {
                if let Some(v) = body.remove(old) {
                    body.insert(new.to_owned(), v);
                }
            }
        }
        for (k, v) in typed(&self.config.replace) {
            if let Some(slot) = body.get_mut(&k) {
                *slot = v;
            }
        }
        for (k, v) in typed(&self.config.add) {
            body.entry(k).or_insert(v);
        }
        for (k, v) in typed(&self.config.append) {
            match body.get_mut(&k) {
                None => {
                    body.insert(k, v);
                }
                Some(Value::Array(a)) => a.push(v),
                Some(other) => {
                    let first = other.take();
                    *other = Value::Array(vec![first, v]);
                }
            }
        }
    }
}

/// `name:value` entries with their values cast by `json_types` (by index;
/// strings when absent).
fn typed(parts: &TypedParts) -> Vec<(String, serde_json::Value)> {
    parts
        .json
        .iter()
        .enumerate()
        .filter_map(|(i, pair)| {
            let (k, v) = pair.split_once(':')?;
            let value = match parts.json_types.get(i).map(String::as_str) {
                Some("number") => v
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(|n| match v.parse::<i64>() {
                        Ok(i) => serde_json::Value::from(i),
                        Err(_) => serde_json::Value::Number(n),
                    })?,
                Some("boolean") => serde_json::Value::Bool(v == "true"),
                _ => serde_json::Value::String(v.to_owned()),
            };
            Some((k.to_owned(), value))
        })
        .collect()
}

fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("application/json"))
}

impl crate::runtime::Plugin for ResponseTransformer {
    fn name(&self) -> &'static str {
        "response-transformer"
    }

    fn priority(&self) -> i32 {
        800
    }

    fn header_filter(
        &self,
        _identity: Option<&crate::runtime::Identity>,
        headers: &mut http::HeaderMap,
    ) {
        use crate::plugins::request_transformer::{transform_headers, HeaderEdits};
        transform_headers(
            headers,
            &HeaderEdits {
                remove: &self.config.remove.headers,
                rename: &self.config.rename.headers,
                replace: &self.config.replace.headers,
                add: &self.config.add.headers,
                append: &self.config.append.headers,
            },
        );
    }

    fn edits_answers(&self) -> bool {
        true
    }

    fn filters_body(&self, headers: &http::HeaderMap) -> bool {
        self.edits_json && is_json(headers)
    }

    fn body_filter(
        &self,
        chunk: bytes::Bytes,
        eof: bool,
        state: &mut crate::runtime::BodyState,
    ) -> bytes::Bytes {
        if state.bypass {
            return chunk;
        }
        if state.held.len() + chunk.len() > crate::runtime::PLUGIN_BODY_MAX {
            state.bypass = true;
            state.held.extend_from_slice(&chunk);
            return state.held.split().freeze();
        }
        state.held.extend_from_slice(&chunk);
        if !eof {
            return bytes::Bytes::new();
        }
        let held = state.held.split().freeze();
        match serde_json::from_slice::<serde_json::Value>(&held) {
            Ok(serde_json::Value::Object(mut map)) => {
                self.transform(&mut map);
                serde_json::to_vec(&map)
                    .map(bytes::Bytes::from)
                    .unwrap_or(held)
            }
            _ => held,
        }
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;
    use crate::runtime::{BodyState, Plugin};

    #[test]
    fn json_bodies_are_edited_in_kongs_order() {
        let p = ResponseTransformer::new(&serde_json::json!({
            "remove": {"json": ["secret"]},
            "rename": {"json": ["old:new"]},
            "replace": {"json": ["n:7", "absent:x"], "json_types": ["number", "string"]},
            "add": {"json": ["flag:true", "n:99"], "json_types": ["boolean", "number"]},
            "append": {"json": ["tags:b", "fresh:1"]},
        }))
        .unwrap();
        let mut st = BodyState::default();
        let first = p.body_filter(
            bytes::Bytes::from_static(br#"{"secret":1,"old":"v","n":1,"#),
            false,
            &mut st,
        );
        assert!(first.is_empty());
        let out = p.body_filter(bytes::Bytes::from_static(br#""tags":"a"}"#), true, &mut st);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"new": "v", "n": 7, "flag": true, "tags": ["a", "b"], "fresh": "1"})
        );
        // Not JSON: passed on as it came.
        let mut st = BodyState::default();
        assert_eq!(
            p.body_filter(bytes::Bytes::from_static(b"plain"), true, &mut st),
            "plain"
        );
    }
}
