//! `request-transformer`: config schema and runtime.

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

/// The request-transformer plugin at run time: headers, query string,
/// body (urlencoded, multipart and JSON), the upstream path
/// (`replace.uri`) and method (`http_method`), each in Kong's order
/// (remove, rename, replace when present, add when absent, append). Values
/// may use `$(headers.name)`, `$(query_params.name)` and
/// `$(uri_captures.name)` / `$(uri_captures[1])` templates (from the request
/// as received and the route's path regex).
#[derive(Debug)]
pub struct RequestTransformer {
    config: RequestTransformerConfig,
    edits_body: bool,
    edits_query: bool,
    templated: bool,
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
    /// Builds the instance from a validated config.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: RequestTransformerConfig = serde_json::from_value(config.clone()).ok()?;
        let edits_body = [&config.remove, &config.rename, &config.add, &config.append]
            .iter()
            .any(|p| !p.body.is_empty())
            || !config.replace.body.is_empty();
        let edits_query = [&config.remove, &config.rename, &config.add, &config.append]
            .iter()
            .any(|p| !p.querystring.is_empty())
            || !config.replace.querystring.is_empty();
        let templated = serde_json::to_string(&config).is_ok_and(|s| s.contains("$("));
        Some(RequestTransformer {
            config,
            edits_body,
            edits_query,
            templated,
        })
    }

    /// Kong's edits over (name, value) pairs: remove, rename, replace (when
    /// present), add (when absent), append.
    fn edit_pairs(
        &self,
        pairs: &mut Vec<(String, String)>,
        pick: fn(&Parts) -> &Vec<String>,
        replace: &[String],
        t: &Templates<'_>,
    ) {
        for name in pick(&self.config.remove) {
            pairs.retain(|(k, _)| k != name);
        }
        for r in pick(&self.config.rename) {
            if let Some((from, to)) = r.split_once(':') {
                for (k, _) in pairs.iter_mut().filter(|(k, _)| k == from) {
                    *k = to.to_owned();
                }
            }
        }
        for (k, v) in replace.iter().filter_map(|p| t.pair(p)) {
            for (_, old) in pairs.iter_mut().filter(|(n, _)| *n == k) {
                *old = v.clone();
            }
        }
        for (k, v) in pick(&self.config.add).iter().filter_map(|p| t.pair(p)) {
            if !pairs.iter().any(|(n, _)| *n == k) {
                pairs.push((k, v));
            }
        }
        for (k, v) in pick(&self.config.append).iter().filter_map(|p| t.pair(p)) {
            pairs.push((k, v));
        }
    }

    /// The same edits over a JSON object's top-level keys (values added as
    /// strings; appending to a present key makes an array).
    fn edit_json(&self, map: &mut serde_json::Map<String, serde_json::Value>, t: &Templates<'_>) {
        use serde_json::Value;
        for name in &self.config.remove.body {
            map.remove(name);
        }
        for r in &self.config.rename.body {
            if let Some((from, to)) = r.split_once(':') {
                if let Some(v) = map.remove(from) {
                    map.insert(to.to_owned(), v);
                }
            }
        }
        for (k, v) in self.config.replace.body.iter().filter_map(|p| t.pair(p)) {
            if let Some(slot) = map.get_mut(&k) {
                *slot = Value::String(v);
            }
        }
        for (k, v) in self.config.add.body.iter().filter_map(|p| t.pair(p)) {
            map.entry(k).or_insert(Value::String(v));
        }
        for (k, v) in self.config.append.body.iter().filter_map(|p| t.pair(p)) {
            match map.get_mut(&k) {
                None => {
                    map.insert(k, Value::String(v));
                }
                Some(Value::Array(a)) => a.push(Value::String(v)),
                Some(other) => {
                    let first = other.take();
                    *other = Value::Array(vec![first, Value::String(v)]);
                }
            }
        }
    }
}

/// Renders Kong's templates in config values, from the request as it
/// arrived: `$(headers.x)`, `$(query_params.x)` and `$(uri_captures.x)`
/// (a named group, or a group's number), each also as `ns["x"]`, `ns['x']`
/// or `ns[1]`. A template it does not understand stays as written.
struct Templates<'a> {
    headers: Option<&'a http::HeaderMap>,
    query: Vec<(String, String)>,
    captures: crate::runtime::UriCaptureView<'a>,
}

/// Splits a template expression into its namespace and key:
/// `headers.x-user`, `headers["x-user"]`, `uri_captures[1]`.
fn template_parts(expr: &str) -> Option<(&str, &str)> {
    let expr = expr.trim();
    let i = expr.find(['.', '['])?;
    let (ns, rest) = expr.split_at(i);
    let key = match rest.strip_prefix('.') {
        Some(k) => k,
        None => {
            let inner = rest.strip_prefix('[')?.strip_suffix(']')?.trim();
            inner
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
                .unwrap_or(inner)
        }
    };
    (!key.is_empty()).then_some((ns, key))
}

impl Templates<'_> {
    /// The value a template expression stands for; `None` when it is not
    /// one this version knows (it stays literal).
    fn value(&self, headers: &http::HeaderMap, expr: &str) -> Option<String> {
        let (ns, key) = template_parts(expr)?;
        Some(match ns {
            "headers" => headers
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            "query_params" => self
                .query
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| v.as_str())
                .to_owned(),
            "uri_captures" => self.captures.get(key).unwrap_or("").to_owned(),
            _ => return None,
        })
    }

    fn render(&self, v: &str) -> String {
        let Some(headers) = self.headers else {
            return v.to_owned();
        };
        let mut out = String::with_capacity(v.len());
        let mut rest = v;
        while let Some(start) = rest.find("$(") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else {
                out.push_str(&rest[start..]);
                return out;
            };
            match self.value(headers, &after[..end]) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[start..start + 2 + end + 1]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A `name:value` entry, its value rendered.
    fn pair(&self, p: &str) -> Option<(String, String)> {
        let (k, v) = p.split_once(':')?;
        Some((k.to_owned(), self.render(v)))
    }

    fn all(&self, entries: &[String]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e.split_once(':') {
                Some((k, v)) => format!("{k}:{}", self.render(v)),
                None => e.clone(),
            })
            .collect()
    }
}

use tollgate_model::form::encode_urlencoded as encode_query;

impl crate::runtime::Plugin for RequestTransformer {
    fn name(&self) -> &'static str {
        "request-transformer"
    }

    fn priority(&self) -> i32 {
        801
    }

    fn wants_body(&self, method: &http::Method, headers: &http::HeaderMap) -> bool {
        let to_query = self
            .config
            .http_method
            .as_deref()
            .is_some_and(|m| matches!(m, "GET" | "HEAD" | "TRACE"));
        (self.edits_body || (to_query && method != http::Method::GET))
            && crate::runtime::BodyParams::understood(headers)
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::BodyParams;
        // Templates read the request as it arrived.
        let received = self.templated.then(|| ctx.headers.clone());
        let needs_query = self.templated || self.edits_query || self.config.http_method.is_some();
        let t = Templates {
            headers: received.as_ref(),
            captures: ctx.uri_captures,
            query: if needs_query {
                tollgate_model::form::parse_urlencoded(ctx.uri.query().unwrap_or("").as_bytes())
            } else {
                Vec::new()
            },
        };
        let c = &self.config;
        let rendered;
        let (replace, add, append): (&[String], &[String], &[String]) = if self.templated {
            rendered = (
                t.all(&c.replace.headers),
                t.all(&c.add.headers),
                t.all(&c.append.headers),
            );
            (&rendered.0, &rendered.1, &rendered.2)
        } else {
            (&c.replace.headers, &c.add.headers, &c.append.headers)
        };
        transform_headers(
            ctx.headers,
            &HeaderEdits {
                remove: &c.remove.headers,
                rename: &c.rename.headers,
                replace,
                add,
                append,
            },
        );
        if !needs_query && !self.edits_body && c.replace.uri.is_none() {
            return crate::runtime::Flow::Continue;
        }
        let mut query = t.query.clone();
        let mut query_changed = false;
        if self.edits_query {
            self.edit_pairs(&mut query, |p| &p.querystring, &c.replace.querystring, &t);
            query_changed = true;
        }
        if self.edits_body || c.http_method.is_some() {
            let params = ctx
                .body
                .as_ref()
                .and_then(|b| BodyParams::parse(ctx.headers, b));
            if let Some(mut params) = params {
                if self.edits_body {
                    match &mut params {
                        BodyParams::Form(p) | BodyParams::Multipart(p, _) => {
                            self.edit_pairs(p, |p| &p.body, &c.replace.body, &t)
                        }
                        BodyParams::Json(m) => self.edit_json(m, &t),
                    }
                }
                let to_query = matches!(c.http_method.as_deref(), Some("GET" | "HEAD" | "TRACE"));
                match (&params, to_query) {
                    // Kong moves a form body into the query string when the
                    // method becomes one without a body.
                    (BodyParams::Form(p), true) => {
                        for (k, v) in p {
                            query.retain(|(n, _)| n != k);
                            query.push((k.clone(), v.clone()));
                        }
                        query_changed = true;
                        ctx.body = Some(bytes::Bytes::new());
                        ctx.headers.remove(http::header::CONTENT_TYPE);
                    }
                    _ => ctx.body = Some(params.encode().into()),
                }
            }
        }
        if query_changed {
            ctx.upstream_query = Some(encode_query(&query));
        }
        if let Some(uri) = &c.replace.uri {
            ctx.upstream_path = Some(t.render(uri));
        }
        if let Some(m) = &c.http_method {
            if let Ok(m) = http::Method::from_bytes(m.as_bytes()) {
                ctx.upstream_method = Some(m);
            }
        }
        crate::runtime::Flow::Continue
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[test]
    fn templates_read_headers_query_params_and_uri_captures() {
        let mut h = http::HeaderMap::new();
        h.insert("x-user", http::HeaderValue::from_static("ann"));
        let positional = [Some("/users/42".to_owned()), Some("42".to_owned()), None];
        let named = [("id".to_owned(), "42".to_owned())];
        let t = Templates {
            headers: Some(&h),
            query: vec![("page".into(), "2".into())],
            captures: crate::runtime::UriCaptureView {
                positional: &positional,
                named: &named,
            },
        };
        assert_eq!(
            t.render("u=$(headers.x-user)&p=$(query_params.page)"),
            "u=ann&p=2"
        );
        assert_eq!(
            t.render("$(headers[\"x-user\"])/$(uri_captures[1])/$(uri_captures.id)/$(uri_captures['id'])"),
            "ann/42/42/42"
        );
        assert_eq!(
            t.render("$(headers.missing)|$(uri_captures[2])|$(uri_captures.nope)|$(shared.x)|$(x)"),
            "|||$(shared.x)|$(x)"
        );
    }

    #[test]
    fn query_edits_follow_kongs_order() {
        let rt = RequestTransformer::new(&serde_json::json!({
            "remove": {"querystring": ["drop"]},
            "rename": {"querystring": ["old:new"]},
            "replace": {"querystring": ["keep:replaced", "absent:x"]},
            "add": {"querystring": ["added:1", "keep:not-added"]},
            "append": {"querystring": ["keep:again"]},
        }))
        .unwrap();
        let t = Templates {
            headers: None,
            query: Vec::new(),
            captures: Default::default(),
        };
        let mut q = vec![
            ("drop".to_owned(), "1".to_owned()),
            ("old".to_owned(), "v".to_owned()),
            ("keep".to_owned(), "k".to_owned()),
        ];
        rt.edit_pairs(
            &mut q,
            |p| &p.querystring,
            &rt.config.replace.querystring,
            &t,
        );
        assert_eq!(encode_query(&q), "new=v&keep=replaced&added=1&keep=again");
    }
}
