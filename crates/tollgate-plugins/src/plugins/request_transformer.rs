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
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        RequestTransformer::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

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

/// The request-transformer plugin at run time, for headers (Kong's order:
/// remove, rename, replace, add, append). A config that also transforms
/// the query string, the body, the URI or the method is not run by this
/// version (the node warns) rather than half-applied.
#[derive(Debug)]
pub struct RequestTransformer {
    config: RequestTransformerConfig,
}

/// Header edits in Kong's order: remove, rename, replace, add, append.
#[derive(Debug)]
pub struct HeaderEdits<'a> {
    /// Names to remove.
    pub remove: &'a [String],
    /// `old:new` renames.
    pub rename: &'a [String],
    /// `name:value`, only when present.
    pub replace: &'a [String],
    /// `name:value`, only when absent.
    pub add: &'a [String],
    /// `name:value`, always added.
    pub append: &'a [String],
}

/// Applies header edits (shared by the request and response transformers).
pub fn transform_headers(h: &mut http::HeaderMap, e: &HeaderEdits<'_>) {
    for name in e.remove {
        h.remove(name.trim());
    }
    for r in e.rename {
        if let Some((from, to)) = r.split_once(':') {
            let (Ok(from), Ok(to)) = (
                http::HeaderName::from_bytes(from.trim().as_bytes()),
                http::HeaderName::from_bytes(to.trim().as_bytes()),
            ) else {
                continue;
            };
            let values: Vec<http::HeaderValue> = h.get_all(&from).iter().cloned().collect();
            if !values.is_empty() {
                h.remove(&from);
                for v in values {
                    h.append(to.clone(), v);
                }
            }
        }
    }
    for (k, v) in e.replace.iter().filter_map(|s| pair(s)) {
        if h.contains_key(&k) {
            h.insert(k, v);
        }
    }
    for (k, v) in e.add.iter().filter_map(|s| pair(s)) {
        if !h.contains_key(&k) {
            h.insert(k, v);
        }
    }
    for (k, v) in e.append.iter().filter_map(|s| pair(s)) {
        h.append(k, v);
    }
}

fn pair(s: &str) -> Option<(http::HeaderName, http::HeaderValue)> {
    let (k, v) = s.split_once(':')?;
    Some((
        http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
        http::HeaderValue::from_str(v.trim()).ok()?,
    ))
}

impl RequestTransformer {
    /// Builds the instance from a validated config (headers only).
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: RequestTransformerConfig = serde_json::from_value(config.clone()).ok()?;
        let others = [&config.remove, &config.rename, &config.add, &config.append]
            .iter()
            .any(|p| !p.querystring.is_empty() || !p.body.is_empty())
            || !config.replace.querystring.is_empty()
            || !config.replace.body.is_empty()
            || config.replace.uri.is_some()
            || config.http_method.is_some();
        (!others).then_some(RequestTransformer { config })
    }
}

impl crate::runtime::Plugin for RequestTransformer {
    fn name(&self) -> &'static str {
        "request-transformer"
    }

    fn priority(&self) -> i32 {
        801
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        transform_headers(
            ctx.headers,
            &HeaderEdits {
                remove: &self.config.remove.headers,
                rename: &self.config.rename.headers,
                replace: &self.config.replace.headers,
                add: &self.config.add.headers,
                append: &self.config.append.headers,
            },
        );
        crate::runtime::Flow::Continue
    }
}
