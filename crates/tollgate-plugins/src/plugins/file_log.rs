//! `file-log`: config schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{field, required, Field, PluginSchema, Ty, STRING_MAP};

/// `file-log` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLogConfig {
    /// File to append to (required).
    pub path: String,
    /// Reopen the file for every entry (false).
    pub reopen: bool,
    /// Extra fields (name → Lua expression in Kong).
    pub custom_fields_by_lua: Option<BTreeMap<String, String>>,
}

fn check_filename(s: &str) -> Result<(), String> {
    if !s.is_empty() && !s.contains(['*', '&', '%', '\\', '`']) {
        Ok(())
    } else {
        Err("not a valid filename".to_string())
    }
}

impl PluginSchema for FileLogConfig {
    const NAME: &'static str = "file-log";
    const PRIORITY: i32 = 9;
    const FIELDS: &'static [Field] = &[
        required("path", Ty::Check(check_filename)),
        field("reopen", Ty::Bool),
        field("custom_fields_by_lua", STRING_MAP),
    ];
}
