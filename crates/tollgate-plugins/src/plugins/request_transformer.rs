//! `request-transformer`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{check_colon_pair, field, Field, PluginSchema, Ty, STRINGS};

/// Names to remove.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Parts {
    /// Header entries.
    pub headers: Vec<String>,
    /// Query-string entries.
    pub querystring: Vec<String>,
    /// Body entries.
    pub body: Vec<String>,
}

/// `name:value` entries to replace, plus the upstream URI.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaceParts {
    /// Header entries.
    pub headers: Vec<String>,
    /// Query-string entries.
    pub querystring: Vec<String>,
    /// Body entries.
    pub body: Vec<String>,
    /// New upstream path.
    pub uri: Option<String>,
}

/// `request-transformer` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestTransformerConfig {
    /// New upstream method.
    pub http_method: Option<String>,
    /// Names to remove.
    pub remove: Parts,
    /// `old:new` names to rename.
    pub rename: Parts,
    /// `name:value` to replace when present.
    pub replace: ReplaceParts,
    /// `name:value` to add when absent.
    pub add: Parts,
    /// `name:value` to append.
    pub append: Parts,
}

fn check_method(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("invalid value: {s}"))
    }
}

const PAIRS: Ty = Ty::Array(&Ty::Check(check_colon_pair));

const REMOVE: &[Field] = &[
    field("headers", STRINGS),
    field("querystring", STRINGS),
    field("body", STRINGS),
];

const PAIR_PARTS: &[Field] = &[
    field("headers", PAIRS),
    field("querystring", PAIRS),
    field("body", PAIRS),
];

const REPLACE: &[Field] = &[
    field("headers", PAIRS),
    field("querystring", PAIRS),
    field("body", PAIRS),
    field("uri", Ty::Str),
];

impl PluginSchema for RequestTransformerConfig {
    const NAME: &'static str = "request-transformer";
    const PRIORITY: i32 = 801;
    const FIELDS: &'static [Field] = &[
        field("http_method", Ty::Check(check_method)),
        field("remove", Ty::Record(REMOVE)),
        field("rename", Ty::Record(PAIR_PARTS)),
        field("replace", Ty::Record(REPLACE)),
        field("add", Ty::Record(PAIR_PARTS)),
        field("append", Ty::Record(PAIR_PARTS)),
    ];
}
