//! `proxy-cache`: config schema and runtime. Answers are stored whole in the
//! node's memory store ([`crate::runtime::cache`]) under a sha256 key of the
//! consumer, service, method, path, query and chosen headers; the first
//! request for a missing key fills it while the others wait for it.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};

/// The in-memory strategy's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Shared dictionary name ("kong_db_cache").
    pub dictionary_name: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            dictionary_name: "kong_db_cache".to_string(),
        }
    }
}

/// Which cache headers the client sees (all true).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseHeaders {
    /// `Age`.
    pub age: bool,
    /// `X-Cache-Status`.
    #[serde(rename = "X-Cache-Status")]
    pub x_cache_status: bool,
    /// `X-Cache-Key`.
    #[serde(rename = "X-Cache-Key")]
    pub x_cache_key: bool,
}

impl Default for ResponseHeaders {
    fn default() -> Self {
        Self {
            age: true,
            x_cache_status: true,
            x_cache_key: true,
        }
    }
}

/// `proxy-cache` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyCacheConfig {
    /// Cacheable upstream statuses ([200, 301, 404]).
    pub response_code: Vec<u16>,
    /// Cacheable methods (["GET", "HEAD"]).
    pub request_method: Vec<String>,
    /// Cacheable content types.
    pub content_type: Vec<String>,
    /// Entry lifetime in seconds (300).
    pub cache_ttl: i64,
    /// Storage strategy ("memory").
    pub strategy: String,
    /// Honour Cache-Control (false).
    pub cache_control: bool,
    /// Case-insensitive URI in the key (false).
    pub ignore_uri_case: bool,
    /// How long entries are kept in storage, in seconds.
    pub storage_ttl: Option<i64>,
    /// Memory strategy settings.
    pub memory: MemoryConfig,
    /// Query parameters in the key (all when unset).
    pub vary_query_params: Option<Vec<String>>,
    /// Headers in the key.
    pub vary_headers: Option<Vec<String>>,
    /// Which cache headers to send.
    pub response_headers: ResponseHeaders,
}

impl Default for ProxyCacheConfig {
    fn default() -> Self {
        Self {
            response_code: vec![200, 301, 404],
            request_method: vec!["GET".to_string(), "HEAD".to_string()],
            content_type: vec!["text/plain".to_string(), "application/json".to_string()],
            cache_ttl: 300,
            strategy: "memory".to_string(),
            cache_control: false,
            ignore_uri_case: false,
            storage_ttl: None,
            memory: MemoryConfig::default(),
            vary_query_params: None,
            vary_headers: None,
            response_headers: ResponseHeaders::default(),
        }
    }
}

impl PluginSchema for ProxyCacheConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        let config: ProxyCacheConfig = serde_json::from_value(plugin.config.clone()).ok()?;
        let disk = config.strategy == "disk";
        let store = env.caches.store(&config.memory.dictionary_name, disk)?;
        Some(std::sync::Arc::new(ProxyCache::new(
            config, plugin.id, store,
        )))
    }

    const NAME: &'static str = "proxy-cache";
    const PRIORITY: i32 = 100;
    const FIELDS: &'static [Field] = &[
        field(
            "response_code",
            Ty::Array(&Ty::Int(Bound::Between(100.0, 900.0))),
        ),
        field(
            "request_method",
            Ty::Array(&Ty::OneOf(&["HEAD", "GET", "POST", "PATCH", "PUT"])),
        ),
        field("content_type", STRINGS),
        field("cache_ttl", Ty::Int(Bound::Gt(0.0))),
        field("strategy", Ty::OneOf(&["memory", "disk"])),
        field("cache_control", Ty::Bool),
        field("ignore_uri_case", Ty::Bool),
        field("storage_ttl", Ty::Int(Bound::Any)),
        field("memory", Ty::Record(&[field("dictionary_name", Ty::Str)])),
        field("vary_query_params", STRINGS),
        field("vary_headers", STRINGS),
        field(
            "response_headers",
            Ty::Record(&[
                field("age", Ty::Bool),
                field("X-Cache-Status", Ty::Bool),
                field("X-Cache-Key", Ty::Bool),
            ]),
        ),
    ];
}

use crate::runtime::cache::{CacheStore, CachedAnswer, Fill, FillGuard, FILL_WAIT};
use crate::runtime::file_body::{read_now, FileBody, Segment, CHUNK};
use crate::runtime::{AccessCtx, Answer, AnswerBody, AnswerHook, Flow, HookStep};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use std::sync::Arc;

const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
const X_CACHE_KEY: HeaderName = HeaderName::from_static("x-cache-key");

/// The cache directives Tollgate reads (RFC 9111 section 5.2).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Directives {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`.
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `only-if-cached`.
    pub only_if_cached: bool,
    /// `max-age`.
    pub max_age: Option<f64>,
    /// `s-maxage`.
    pub s_maxage: Option<f64>,
    /// `min-fresh`.
    pub min_fresh: Option<f64>,
    /// `max-stale` (without a value: any staleness).
    pub max_stale: Option<f64>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<f64>,
    /// `stale-if-error`.
    pub stale_if_error: Option<f64>,
}

impl Directives {
    /// Reads every `Cache-Control` header of `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        for v in headers.get_all(header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for item in v.split(',') {
                let (name, value) = match item.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (item.trim(), None),
                };
                let secs = value.and_then(|v| v.parse::<u64>().ok()).map(|n| n as f64);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "only-if-cached" => d.only_if_cached = true,
                    "max-age" => d.max_age = secs.or(Some(0.0)),
                    "s-maxage" => d.s_maxage = secs.or(Some(0.0)),
                    "min-fresh" => d.min_fresh = secs,
                    "max-stale" => d.max_stale = Some(secs.unwrap_or(f64::INFINITY)),
                    "stale-while-revalidate" => d.stale_while_revalidate = secs,
                    "stale-if-error" => d.stale_if_error = secs,
                    _ => {}
                }
            }
        }
        d
    }
}

/// A configured content type: media type, and the full value when it has
/// parameters (then they must match too).
#[derive(Debug)]
struct TypeRule {
    media: String,
    full: Option<String>,
}

impl TypeRule {
    fn new(s: &str) -> Self {
        let norm = s.to_ascii_lowercase().replace(' ', "");
        let media = norm.split(';').next().unwrap_or("").to_owned();
        TypeRule {
            full: norm.contains(';').then_some(norm.clone()),
            media,
        }
    }

    fn matches(&self, content_type: &str) -> bool {
        let norm = content_type.to_ascii_lowercase().replace(' ', "");
        let media = norm.split(';').next().unwrap_or("");
        let media_ok = match self.media.split_once('/') {
            Some(("*", "*")) => true,
            Some((t, "*")) => media.split('/').next() == Some(t),
            _ => media == self.media,
        };
        media_ok && self.full.as_ref().is_none_or(|f| *f == norm)
    }
}

/// What every request of one instance shares.
#[derive(Debug)]
struct Settings {
    config: ProxyCacheConfig,
    id: uuid::Uuid,
    methods: Vec<Method>,
    types: Vec<TypeRule>,
    vary_headers: Vec<HeaderName>,
    store: Arc<CacheStore>,
}

/// The proxy-cache plugin at run time.
#[derive(Debug)]
pub struct ProxyCache {
    s: Arc<Settings>,
}

impl ProxyCache {
    /// An instance over `store`.
    pub fn new(config: ProxyCacheConfig, id: uuid::Uuid, store: Arc<CacheStore>) -> Self {
        let methods = config
            .request_method
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let types = config
            .content_type
            .iter()
            .map(|t| TypeRule::new(t))
            .collect();
        let mut vary_headers: Vec<HeaderName> = config
            .vary_headers
            .iter()
            .flatten()
            .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
            .collect();
        vary_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ProxyCache {
            s: Arc::new(Settings {
                config,
                id,
                methods,
                types,
                vary_headers,
                store,
            }),
        }
    }
}

impl Settings {
    /// Kong's key: a sha256 (hex) of who asks, through which service, the
    /// method, the path, the query parameters and the chosen headers.
    fn key(&self, ctx: &AccessCtx<'_>) -> String {
        use sha2::Digest;
        let mut text = String::with_capacity(160);
        match &ctx.identity {
            Some(i) => text.push_str(&i.consumer.id.to_string()),
            None => text.push_str("default"),
        }
        text.push('|');
        match ctx.service {
            Some(s) => text.push_str(&s.to_string()),
            None => text.push_str(&self.id.to_string()),
        }
        text.push('|');
        text.push_str(ctx.method.as_str());
        text.push('|');
        if self.config.ignore_uri_case {
            text.push_str(&ctx.uri.path().to_lowercase());
        } else {
            text.push_str(ctx.uri.path());
        }
        text.push('|');
        let mut params: Vec<(&str, &str)> = ctx
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(k, _)| {
                self.config
                    .vary_query_params
                    .as_ref()
                    .is_none_or(|keep| keep.iter().any(|n| n == k))
            })
            .collect();
        params.sort_unstable();
        for (k, v) in params {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push(':');
        }
        text.push('|');
        for name in &self.vary_headers {
            text.push_str(name.as_str());
            text.push('=');
            for v in ctx.headers.get_all(name) {
                text.push_str(&String::from_utf8_lossy(v.as_bytes()));
                text.push(',');
            }
            text.push(':');
        }
        let digest = sha2::Sha256::digest(text.as_bytes());
        // Hex without a formatting allocation per byte (this runs on
        // every cacheable request).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for b in digest {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 15)]));
        }
        hex
    }

    fn status_header(&self, headers: &mut Vec<(HeaderName, HeaderValue)>, status: &'static str) {
        if self.config.response_headers.x_cache_status {
            headers.push((X_CACHE_STATUS, HeaderValue::from_static(status)));
        }
    }

    fn key_header(&self, headers: &mut Vec<(HeaderName, HeaderValue)>, key: &str) {
        if self.config.response_headers.x_cache_key {
            if let Ok(v) = HeaderValue::from_str(key) {
                headers.push((X_CACHE_KEY, v));
            }
        }
    }

    /// The stored answer, as sent to a client (`None` when its file is
    /// gone).
    fn serve(
        &self,
        entry: &CachedAnswer,
        key: &str,
        status: &'static str,
        now: f64,
    ) -> Option<Answer> {
        let body = match &entry.disk {
            None => AnswerBody::Bytes(entry.body.clone()),
            Some(d) => {
                let file = std::fs::File::open(&d.path).ok()?;
                let whole = vec![Segment::File {
                    offset: 0,
                    len: d.len,
                }];
                if d.len <= CHUNK as u64 {
                    AnswerBody::Bytes(read_now(&file, &whole).ok()?)
                } else {
                    AnswerBody::Stream(Box::pin(FileBody::spawn(file, whole)))
                }
            }
        };
        let mut headers = entry.headers.clone();
        if self.config.response_headers.age {
            headers.insert(header::AGE, HeaderValue::from(entry.age(now) as u64));
        }
        if self.config.response_headers.x_cache_status {
            headers.insert(X_CACHE_STATUS, HeaderValue::from_static(status));
        }
        if self.config.response_headers.x_cache_key {
            if let Ok(v) = HeaderValue::from_str(key) {
                headers.insert(X_CACHE_KEY, v);
            }
        }
        Some(Answer {
            status: entry.status,
            headers,
            body,
        })
    }

    /// Whether a stored answer was made for a request like this one (its
    /// `Vary` headers have the same values).
    fn varies_alike(entry: &CachedAnswer, headers: &HeaderMap) -> bool {
        entry
            .vary
            .iter()
            .all(|(name, v)| headers.get(name) == v.as_ref())
    }

    /// Seconds a response stays fresh, with its stale-while-revalidate and
    /// stale-if-error windows; None when it may not be stored.
    fn response_ttl(&self, status: StatusCode, headers: &HeaderMap) -> Option<(f64, f64, f64)> {
        if !self.config.response_code.contains(&status.as_u16()) {
            return None;
        }
        let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        if !self.types.iter().any(|t| t.matches(ct)) {
            return None;
        }
        // Never shared between clients: cookies being set (nginx's rule).
        if headers.contains_key(header::SET_COOKIE) {
            return None;
        }
        if !self.config.cache_control {
            return Some((self.config.cache_ttl as f64, 0.0, 0.0));
        }
        let d = Directives::parse(headers);
        if d.no_store || d.private || d.no_cache {
            return None;
        }
        if headers.get_all(header::VARY).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii() == b"*")
        }) {
            return None;
        }
        let ttl = d.s_maxage.or(d.max_age).or_else(|| {
            let expires = headers.get(header::EXPIRES)?.to_str().ok()?;
            let at = httpdate_secs(expires)?;
            Some(at - self.store.now())
        });
        let ttl = ttl.unwrap_or(self.config.cache_ttl as f64);
        (ttl > 0.0).then_some((
            ttl,
            d.stale_while_revalidate.unwrap_or(0.0),
            d.stale_if_error.unwrap_or(0.0),
        ))
    }
}

/// An HTTP date as seconds since the epoch.
fn httpdate_secs(s: &str) -> Option<f64> {
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

impl crate::runtime::Plugin for ProxyCache {
    fn name(&self) -> &'static str {
        "proxy-cache"
    }

    fn priority(&self) -> i32 {
        100
    }

    fn edits_answers(&self) -> bool {
        true
    }

    fn access(&self, ctx: &mut AccessCtx<'_>) -> Flow {
        let s = &self.s;
        let cc = if s.config.cache_control {
            Directives::parse(ctx.headers)
        } else {
            Directives::default()
        };
        if !s.methods.contains(ctx.method)
            || (s.config.cache_control
                && (cc.no_store || cc.no_cache || ctx.headers.contains_key(header::AUTHORIZATION)))
        {
            s.status_header(&mut ctx.response_headers, "Bypass");
            return Flow::Continue;
        }
        let key: Arc<str> = s.key(ctx).into();
        let now = s.store.now();
        let found = s
            .store
            .get(&key)
            .filter(|e| Settings::varies_alike(e, ctx.headers));
        let mut stale = None;
        let mut fallback = None;
        let refresh = found.is_some();
        if let Some(e) = found {
            let age = e.age(now);
            let mut fresh = age <= e.ttl;
            if s.config.cache_control {
                if cc.max_age.is_some_and(|m| age > m)
                    || cc.min_fresh.is_some_and(|m| e.ttl - age < m)
                {
                    fresh = false;
                } else if !fresh && cc.max_stale.is_some_and(|m| age - e.ttl <= m) {
                    fresh = true;
                }
            }
            if fresh {
                if let Some(answer) = s.serve(&e, &key, "Hit", now) {
                    return Flow::Answer(Box::new(answer));
                }
            }
            if age <= e.ttl + e.stale_if_error {
                fallback = Some(e.clone());
            }
            if age <= e.ttl + e.stale_while_revalidate {
                stale = Some(e);
            }
        } else if s.config.cache_control && cc.only_if_cached {
            return Flow::Respond(crate::runtime::EarlyResponse::message(
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway Timeout",
            ));
        }
        let status = if stale.is_some() || refresh {
            "Refresh"
        } else {
            "Miss"
        };
        let guard = match s.store.fill(&key) {
            Fill::Leader(guard) => Some(guard),
            Fill::Wait(mut done) if !ctx.retried => {
                if let Some(e) = stale {
                    // Another request is refreshing it: serve what we have.
                    if let Some(answer) = s.serve(&e, &key, "Stale", now) {
                        return Flow::Answer(Box::new(answer));
                    }
                }
                return Flow::Retry(Box::pin(async move {
                    let _ = tokio::time::timeout(FILL_WAIT, done.changed()).await;
                }));
            }
            // Woken but still nothing stored: go upstream without storing.
            Fill::Wait(_) => None,
        };
        s.status_header(&mut ctx.response_headers, status);
        s.key_header(&mut ctx.response_headers, &key);
        if let Some(guard) = guard {
            let request = ctx.headers.clone();
            let added = ctx
                .response_headers
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            ctx.hooks.push(Box::new(CacheFill {
                s: self.s.clone(),
                guard: Some(guard),
                head: ctx.method == Method::HEAD,
                fallback: fallback.map(|e| (e, key.clone())),
                replacing: None,
                request,
                added,
                entry: None,
                body: BytesMut::new(),
            }));
        }
        Flow::Continue
    }
}

/// Fills one key from the answer going out.
#[derive(Debug)]
struct CacheFill {
    s: Arc<Settings>,
    guard: Option<FillGuard>,
    /// A HEAD request: its answer has no body to wait for.
    head: bool,
    /// A stale entry (and its key) that may replace a backend's 5xx.
    fallback: Option<(Arc<CachedAnswer>, Arc<str>)>,
    /// The body of the stale entry sent instead of the backend's.
    replacing: Option<Bytes>,
    /// The request's headers, for the answer's `Vary`.
    request: HeaderMap,
    /// Headers the access phase added (not stored: made per request).
    added: Vec<HeaderName>,
    entry: Option<CachedAnswer>,
    body: BytesMut,
}

impl CacheFill {
    fn abandon(&mut self) {
        self.entry = None;
        self.guard = None;
        self.body = BytesMut::new();
    }
}

impl AnswerHook for CacheFill {
    fn head(&mut self, status: &mut StatusCode, headers: &mut HeaderMap) -> HookStep {
        if status.is_server_error() {
            // stale-if-error: the stale copy instead of the failure (from
            // disk only when it is small enough to read at once).
            let stale = self.fallback.take().and_then(|(e, key)| {
                let answer = self.s.serve(&e, &key, "Stale", self.s.store.now())?;
                let body = match answer.body {
                    AnswerBody::Bytes(b) => b,
                    AnswerBody::Stream(_) => return None,
                };
                Some((answer.status, answer.headers, body))
            });
            if let Some((stale_status, stale_headers, body)) = stale {
                *status = stale_status;
                *headers = stale_headers;
                self.replacing = Some(body);
                self.abandon();
                return HookStep::Rewrite;
            }
        }
        let status = *status;
        let Some((ttl, swr, sie)) = self.s.response_ttl(status, headers) else {
            if self.s.config.response_headers.x_cache_status {
                headers.insert(X_CACHE_STATUS, HeaderValue::from_static("Bypass"));
            }
            self.abandon();
            return HookStep::Aside;
        };
        let mut stored = headers.clone();
        for name in &self.added {
            stored.remove(name);
        }
        stored.remove(header::AGE);
        let mut vary = Vec::new();
        for v in headers.get_all(header::VARY) {
            for name in v.as_bytes().split(|b| *b == b',') {
                if let Ok(name) = HeaderName::from_bytes(name.trim_ascii()) {
                    let value = self.request.get(&name).cloned();
                    vary.push((name, value));
                }
            }
        }
        let storage_ttl = match self.s.config.storage_ttl {
            Some(t) if t > 0 => t as f64,
            // Kept a minute past staleness, so a later request refreshes
            // it (Refresh) rather than missing.
            _ => ttl + swr.max(sie) + 60.0,
        };
        self.entry = Some(CachedAnswer {
            status,
            headers: stored,
            body: Bytes::new(),
            disk: None,
            stored_at: self.s.store.now(),
            ttl,
            stale_while_revalidate: swr,
            stale_if_error: sie,
            vary,
            storage_ttl,
        });
        self.request = HeaderMap::new();
        if self.head {
            // The client reads no body: store the head now.
            self.finish();
            return HookStep::Aside;
        }
        HookStep::Watch
    }

    fn data(&mut self, chunk: Bytes) -> Bytes {
        if self.replacing.is_some() {
            return Bytes::new();
        }
        if self.entry.is_some() {
            if self.body.len() + chunk.len() > self.s.store.max_body() {
                self.abandon();
            } else {
                self.body.extend_from_slice(&chunk);
            }
        }
        chunk
    }

    fn finish(&mut self) -> Bytes {
        if let Some(body) = self.replacing.take() {
            return body;
        }
        if let (Some(entry), Some(guard)) = (self.entry.take(), self.guard.take()) {
            let body = std::mem::take(&mut self.body).freeze();
            let store = guard.store().clone();
            store.store(guard, entry, body);
        }
        Bytes::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn directives_are_read_from_every_cache_control_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        h.append(
            header::CACHE_CONTROL,
            HeaderValue::from_static("s-maxage=\"10\", no-cache"),
        );
        let d = Directives::parse(&h);
        assert_eq!(d.max_age, Some(60.0));
        assert_eq!(d.s_maxage, Some(10.0));
        assert!(d.no_cache && !d.no_store);
    }

    /// A clock moved by hand.
    #[derive(Debug, Default)]
    struct HandClock(std::sync::Mutex<f64>);

    impl crate::runtime::cache::Clock for HandClock {
        fn now(&self) -> f64 {
            *self.0.lock().unwrap()
        }
    }

    type Ran = (
        Flow,
        Vec<(HeaderName, HeaderValue)>,
        Vec<Box<dyn AnswerHook>>,
    );

    /// Runs the access phase for `GET /x?a=1`.
    fn access(p: &ProxyCache, headers: &mut HeaderMap) -> Ran {
        use crate::runtime::Plugin as _;
        let method = Method::GET;
        let uri: http::Uri = "/x?a=1".parse().unwrap();
        let mut ctx = AccessCtx {
            method: &method,
            uri: &uri,
            headers,
            client_ip: [127, 0, 0, 1].into(),
            client_ip_text: "127.0.0.1",
            tls: false,
            trusted_client: false,
            client_certs: None,
            retried: false,
            identity: None,
            service: None,
            response_headers: Vec::new(),
            strip_query_args: Vec::new(),
            body_limit: None,
            scratch: None,
            upstream_method: None,
            upstream_path: None,
            upstream_query: None,
            uri_captures: crate::runtime::UriCaptureView::default(),
            routed_path: "/x",
            unsized_body: false,
            body: None,
            hooks: Vec::new(),
        };
        let flow = p.access(&mut ctx);
        (flow, ctx.response_headers, ctx.hooks)
    }

    #[test]
    fn entries_turn_stale_when_the_clock_passes_cache_ttl() {
        let clock = Arc::new(HandClock::default());
        *clock.0.lock().unwrap() = 1000.0;
        let store = CacheStore::new(1 << 20, clock.clone());
        let config = ProxyCacheConfig {
            cache_ttl: 30,
            ..Default::default()
        };
        let p = ProxyCache::new(config, uuid::Uuid::nil(), store);
        let mut h = HeaderMap::new();
        let (flow, headers, mut hooks) = access(&p, &mut h);
        assert!(matches!(flow, Flow::Continue));
        assert_eq!(headers[0].1, "Miss");
        // The backend's answer fills the entry.
        let mut status = StatusCode::OK;
        let mut answer = HeaderMap::new();
        answer.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let mut hook = hooks.pop().unwrap();
        assert_eq!(hook.head(&mut status, &mut answer), HookStep::Watch);
        hook.data(Bytes::from_static(b"body"));
        hook.finish();
        drop(hook);
        // 29 s later: a hit, 29 s old.
        *clock.0.lock().unwrap() += 29.0;
        let Flow::Answer(a) = access(&p, &mut h).0 else {
            panic!("not a hit")
        };
        assert_eq!(a.headers["age"], "29");
        assert_eq!(a.headers["x-cache-status"], "Hit");
        // Two seconds more: past cache_ttl, fetched again.
        *clock.0.lock().unwrap() += 2.0;
        let (flow, headers, _) = access(&p, &mut h);
        assert!(matches!(flow, Flow::Continue));
        assert_eq!(headers[0].1, "Refresh");
    }

    #[test]
    fn content_type_rules_match_media_types_and_parameters() {
        assert!(TypeRule::new("application/json").matches("application/json; charset=utf-8"));
        assert!(TypeRule::new("text/*").matches("text/html"));
        assert!(!TypeRule::new("text/plain").matches("text/html"));
        assert!(TypeRule::new("text/plain; charset=utf-8").matches("text/plain;charset=UTF-8"));
        assert!(!TypeRule::new("text/plain; charset=utf-8").matches("text/plain"));
    }
}
