//! The plugin runtime: what a plugin sees of a request, what it may answer,
//! and the [`Directory`] of consumers and credentials the auth plugins
//! consult. Everything here is compiled once per configuration snapshot; a
//! request does no lookup of which plugins apply.
//!
//! Phases run in Kong's order: `access` (authentication, authorization,
//! early answers) before the upstream call, `header_filter` on the response
//! head. The log phase is the access log, written after the response.

mod answer;
mod body;
pub mod cache;
mod counters;
mod directory;
pub mod encoding;
pub mod file_body;
mod jwks;
pub mod redis;
mod tokens;

pub use answer::{Answer, AnswerBody, AnswerHook, HookStep, StreamBody};
pub use body::{BodyParams, PLUGIN_BODY_MAX};
pub use counters::{sliding_allowance, window_start, Counters};
pub use directory::{ConsumerInfo, Directory, OAuthClient};
pub use jwks::{Fetcher, JwksCache, KeySet, NoFetch};
pub use tokens::{BoxFuture, OAuthToken, PluginEnv, TokenPersistence, TokenVault, TokenWrite};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use std::net::IpAddr;
use std::sync::Arc;

/// Who the request was authenticated as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The consumer.
    pub consumer: Arc<ConsumerInfo>,
    /// The credential used (None for the anonymous consumer).
    pub credential: Option<uuid::Uuid>,
    /// `X-Credential-Identifier` as Kong sends it (the credential id for
    /// key-auth, the username for basic-auth and hmac-auth, the key for jwt,
    /// the client_id for oauth2).
    pub identifier: Option<HeaderValue>,
    /// Whether this is the configured anonymous consumer.
    pub anonymous: bool,
}

/// The capture groups of the route's path regex, as plugin templates read
/// them (`$(uri_captures[1])`, `$(uri_captures.name)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct UriCaptureView<'a> {
    /// Groups by number (`[0]` is the whole match; `None` for a group
    /// that took no part).
    pub positional: &'a [Option<String>],
    /// Named groups that matched.
    pub named: &'a [(String, String)],
}

impl<'a> UriCaptureView<'a> {
    /// A group by name, or by number when `key` is one.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        if let Some((_, v)) = self.named.iter().find(|(k, _)| k == key) {
            return Some(v.as_str());
        }
        let n: usize = key.parse().ok()?;
        self.positional.get(n)?.as_deref()
    }
}

/// The request as the access phase sees it.
#[derive(Debug)]
pub struct AccessCtx<'a> {
    /// Method.
    pub method: &'a Method,
    /// Request target as received.
    pub uri: &'a Uri,
    /// Request headers; plugins may change them before they go upstream.
    pub headers: &'a mut HeaderMap,
    /// Client address.
    pub client_ip: IpAddr,
    /// The client address as text (formatted once per connection).
    pub client_ip_text: &'a str,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Whether the client is in `trusted_ips` (its X-Forwarded-* count).
    pub trusted_client: bool,
    /// The certificate chain the client presented over TLS (leaf first),
    /// not verified yet.
    pub client_certs: Option<&'a [tollgate_tls::rustls::pki_types::CertificateDer<'static>]>,
    /// Whether the running plugin's access phase is being run again after
    /// it asked for [`Flow::Retry`] (it may not ask twice).
    pub retried: bool,
    /// Set by an authentication plugin.
    pub identity: Option<Identity>,
    /// The matched route's service.
    pub service: Option<uuid::Uuid>,
    /// Headers to add to the response, whether proxied or answered early
    /// (e.g. rate-limit headers).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// Query arguments to remove before the request goes upstream
    /// (e.g. a key-auth key with `hide_credentials`).
    pub strip_query_args: Vec<String>,
    /// Most request body bytes allowed through (a body without a declared
    /// size is cut there and the request answered 413).
    pub body_limit: Option<u64>,
    /// A plugin's state between a [`Flow::Retry`] and its second run.
    pub scratch: Option<Box<dyn std::any::Any + Send>>,
    /// The method to use upstream instead of the client's.
    pub upstream_method: Option<Method>,
    /// The upstream path instead of the routed one (request-transformer's
    /// `replace.uri`).
    pub upstream_path: Option<String>,
    /// The upstream query string instead of the client's (already encoded,
    /// without `?`; empty for none).
    pub upstream_query: Option<String>,
    /// The route's path-regex captures (empty for prefix paths).
    pub uri_captures: UriCaptureView<'a>,
    /// The path as routed: after the route's `strip_path` and joined to the
    /// service's path (what the backend would be asked for; static files
    /// map it under their root).
    pub routed_path: &'a str,
    /// Whether a body of undeclared length follows (chunked, or HTTP/2
    /// without `Content-Length`).
    pub unsized_body: bool,
    /// The request body, read before the access phase when a plugin on the
    /// route asked for it ([`Plugin::wants_body`]); plugins may replace it
    /// (it is sent upstream with its new length).
    pub body: Option<bytes::Bytes>,
    /// Hooks over this request's answer (see [`AnswerHook`]).
    pub hooks: Vec<Box<dyn AnswerHook>>,
}

/// An answer a plugin gives instead of proxying.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyResponse {
    /// Status.
    pub status: StatusCode,
    /// Message for Kong's negotiated error body (`{"message":…}`).
    pub message: Option<String>,
    /// A raw body (with its content type) instead of the message body.
    pub body: Option<(String, String)>,
    /// Extra response headers (e.g. `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl EarlyResponse {
    /// An error answer with Kong's `{"message":…}` body.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        EarlyResponse {
            status,
            message: Some(message.into()),
            body: None,
            headers: Vec::new(),
        }
    }

    /// An answer with a JSON body (e.g. oauth2's `{"error",…}`, jwt's claim map).
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        EarlyResponse {
            status,
            message: None,
            body: Some(("application/json; charset=utf-8".into(), body.to_string())),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// What the access phase decided.
pub enum Flow {
    /// Go on with the next plugin, then proxy.
    Continue,
    /// Answer now; the upstream is not called.
    Respond(EarlyResponse),
    /// Answer with what this future gives (e.g. after a token was stored);
    /// the upstream is not called.
    Pending(BoxFuture<EarlyResponse>),
    /// Answer with this whole answer (a cached response); the upstream is
    /// not called.
    Answer(Box<Answer>),
    /// Answer with what this future gives (a static file being opened).
    PendingAnswer(BoxFuture<Answer>),
    /// Wait for this future (e.g. a key set being fetched), then run this
    /// plugin's access phase again, once, with `AccessCtx::retried` set.
    Retry(BoxFuture<()>),
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flow::Continue => f.write_str("Continue"),
            Flow::Respond(r) => f.debug_tuple("Respond").field(r).finish(),
            Flow::Pending(_) => f.write_str("Pending"),
            Flow::Retry(_) => f.write_str("Retry"),
            Flow::Answer(a) => f.debug_tuple("Answer").field(a).finish(),
            Flow::PendingAnswer(_) => f.write_str("PendingAnswer"),
        }
    }
}

/// A configured plugin instance.
pub trait Plugin: Send + Sync + std::fmt::Debug {
    /// Kong's plugin name.
    fn name(&self) -> &'static str;
    /// Kong's priority (higher runs first).
    fn priority(&self) -> i32;
    /// Whether this request's body must be read before the access phase
    /// (at most [`PLUGIN_BODY_MAX`] bytes; larger bodies are answered 413).
    fn wants_body(&self, _method: &Method, _headers: &HeaderMap) -> bool {
        false
    }
    /// Rewrite phase: runs for every plugin of the route, in order, before
    /// any access phase. (Kong runs it for global plugins only, before
    /// routing; Tollgate resolves plugins after routing, so it runs here.)
    fn rewrite(&self, _ctx: &mut AccessCtx<'_>) -> Flow {
        Flow::Continue
    }
    /// Access phase.
    fn access(&self, _ctx: &mut AccessCtx<'_>) -> Flow {
        Flow::Continue
    }
    /// Whether `header_filter` or `body_filter` may change answers from the
    /// backend (routes whose plugins do not pass the backend's header lines
    /// on as they are, without building a header map).
    fn edits_answers(&self) -> bool {
        false
    }
    /// Response-header phase.
    fn header_filter(&self, _identity: Option<&Identity>, _headers: &mut HeaderMap) {}
    /// Whether this plugin filters the body of an answer with these
    /// (already header-filtered) headers. The answer is then sent chunked.
    fn filters_body(&self, _headers: &HeaderMap) -> bool {
        false
    }
    /// Response-body phase: gets each chunk of the answer's body, then a
    /// last call with `eof` (its chunk may be empty), and returns what goes
    /// to the client instead. `state` is this plugin's, for this answer
    /// (for changes that need the whole body).
    fn body_filter(&self, chunk: bytes::Bytes, _eof: bool, _state: &mut BodyState) -> bytes::Bytes {
        chunk
    }
    /// Whether this plugin has a log phase.
    fn logs(&self) -> bool {
        false
    }
    /// Log phase: after the answer was sent (or the client went away), for
    /// every request of the route, proxied or answered early. Runs on the
    /// worker thread: it must not block (queue work elsewhere).
    fn log(&self, _entry: &LogEntry<'_>) {}
}

/// A plugin's state over one answer's body (see [`Plugin::body_filter`]).
#[derive(Debug, Default)]
pub struct BodyState {
    /// Data held back so far.
    pub held: bytes::BytesMut,
    /// Set by the plugin when it gave up on this body (passes it through).
    pub bypass: bool,
}

/// What the log phase sees of a finished request.
#[derive(Debug)]
pub struct LogEntry<'a> {
    /// Client address.
    pub client_ip: IpAddr,
    /// When the request arrived.
    pub started_at: std::time::SystemTime,
    /// Method.
    pub method: &'a Method,
    /// Request target as received.
    pub uri: &'a Uri,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes_sent: u64,
    /// Time until the answer's head was ready.
    pub latency: std::time::Duration,
    /// The request id.
    pub request_id: &'a str,
    /// Matched route.
    pub route: Option<uuid::Uuid>,
    /// Its service.
    pub service: Option<uuid::Uuid>,
    /// The authenticated consumer.
    pub consumer: Option<uuid::Uuid>,
}

/// Builds the runtime instance of a configured plugin through the registry
/// (each plugin's `PluginSchema::runtime`); `None` when this version has no
/// runtime for it yet (its config is still validated and stored).
pub fn instantiate(
    plugin: &tollgate_model::Plugin,
    dir: &Arc<Directory>,
    env: &PluginEnv,
) -> Option<Arc<dyn Plugin>> {
    crate::registry::find(&plugin.name)?.runtime(plugin, dir, env)
}

/// Sets Kong's consumer headers on the upstream request after authentication.
pub fn set_consumer_headers(headers: &mut HeaderMap, identity: &Identity) {
    const ID: HeaderName = HeaderName::from_static("x-consumer-id");
    const USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
    const CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
    const CREDENTIAL: HeaderName = HeaderName::from_static("x-credential-identifier");
    const ANONYMOUS: HeaderName = HeaderName::from_static("x-anonymous-consumer");
    let c = &identity.consumer.values;
    // Copies sent by the client (or set by an earlier auth plugin) are
    // replaced or removed; when there are none, the common case, the
    // removals (a hash lookup each) are skipped.
    let present = headers.keys().any(|k| {
        let n = k.as_str();
        n.starts_with("x-consumer-")
            || n == "x-credential-identifier"
            || n == "x-anonymous-consumer"
    });
    let set = |h: &mut HeaderMap, name: HeaderName, v: Option<&HeaderValue>| match v {
        Some(v) => {
            h.insert(name, v.clone());
        }
        None if present => {
            h.remove(name);
        }
        None => {}
    };
    set(headers, ID, Some(&c.id));
    set(headers, USERNAME, c.username.as_ref());
    set(headers, CUSTOM_ID, c.custom_id.as_ref());
    set(headers, CREDENTIAL, identity.identifier.as_ref());
    if identity.anonymous {
        headers.insert(ANONYMOUS, HeaderValue::from_static("true"));
    } else if present {
        headers.remove(ANONYMOUS);
    }
}

/// Kong's OR between auth plugins: with `anonymous` set, a request another
/// auth plugin already authenticated passes; without it, every auth plugin
/// on the route must succeed.
pub fn skip_auth(ctx: &AccessCtx<'_>, anonymous: Option<&str>) -> bool {
    anonymous.is_some() && ctx.identity.as_ref().is_some_and(|i| !i.anonymous)
}

/// Records a successful authentication (identity and `X-Consumer-*` headers).
pub fn authenticate(ctx: &mut AccessCtx<'_>, identity: Identity) -> Flow {
    set_consumer_headers(ctx.headers, &identity);
    ctx.identity = Some(identity);
    Flow::Continue
}

/// A failed authentication: the configured anonymous consumer takes over
/// (Kong's 500 when it does not exist); without one, `failure` is the answer.
pub fn reject(
    ctx: &mut AccessCtx<'_>,
    anonymous: Option<&str>,
    dir: &Directory,
    failure: EarlyResponse,
) -> Flow {
    let Some(name) = anonymous else {
        return Flow::Respond(failure);
    };
    match dir.consumer(name) {
        Some(consumer) => authenticate(
            ctx,
            Identity {
                consumer,
                credential: None,
                identifier: None,
                anonymous: true,
            },
        ),
        None => Flow::Respond(EarlyResponse::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred",
        )),
    }
}

/// The time now in seconds since the Unix epoch (0 if the clock is before it).
pub fn epoch_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
