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
