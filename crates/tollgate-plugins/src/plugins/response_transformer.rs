//! `response-transformer`: config schema.

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

/// The response-transformer plugin at run time, for headers. A config that
/// also edits the JSON body is not run by this version (the node warns).
#[derive(Debug)]
pub struct ResponseTransformer {
    config: ResponseTransformerConfig,
}

impl ResponseTransformer {
    /// Builds the instance from a validated config (headers only).
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: ResponseTransformerConfig = serde_json::from_value(config.clone()).ok()?;
        let json = !config.remove.json.is_empty()
            || !config.rename.json.is_empty()
            || !config.replace.json.is_empty()
            || !config.add.json.is_empty()
            || !config.append.json.is_empty();
        (!json).then_some(ResponseTransformer { config })
    }
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
}
