//! `compression` (Tollgate's own; nginx's `gzip` module as a plugin):
//! compresses answers with gzip, brotli or zstd, chosen by the client's
//! `Accept-Encoding` qualities and the configured preference, for the
//! configured content types above a minimum size, while they stream. It
//! never compresses twice, adds `Vary: Accept-Encoding`, and decodes
//! answers the client cannot read (a backend's or a cached gzip answer to a
//! client that does not accept gzip).
//!
//! Its priority (150) puts it before proxy-cache (100), so the cache stores
//! answers as the backend sent them and each hit is encoded for its client.

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::runtime::encoding::{Coding, Levels, Transcoder};
use crate::runtime::{AccessCtx, AnswerHook, Flow, HookStep};
use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};
use crate::Problem;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::sync::Arc;

/// `compression` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Codings offered, most preferred first (["zstd", "br", "gzip"]); the
    /// client's qualities decide first, this order breaks ties.
    pub algorithms: Vec<String>,
    /// Media types compressed (`type/*` allowed).
    pub content_types: Vec<String>,
    /// Answers with a smaller `Content-Length` are sent as they are (1000).
    pub min_length: u64,
    /// gzip level, 1–9 (1, nginx's `gzip_comp_level` default).
    pub gzip_level: u32,
    /// brotli quality, 0–11 (4).
    pub brotli_quality: u32,
    /// zstd level, 1–19 (3).
    pub zstd_level: i32,
    /// Decode encoded answers for clients that do not accept their coding (true).
    pub decompress: bool,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            algorithms: vec!["zstd".into(), "br".into(), "gzip".into()],
            content_types: [
                "text/html",
                "text/plain",
                "text/css",
                "text/javascript",
                "text/xml",
                "application/javascript",
                "application/json",
                "application/xml",
                "application/problem+json",
                "image/svg+xml",
            ]
            .map(String::from)
            .to_vec(),
            min_length: 1000,
            gzip_level: 1,
            brotli_quality: 4,
            zstd_level: 3,
            decompress: true,
        }
    }
}

impl PluginSchema for CompressionConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        let config: CompressionConfig = serde_json::from_value(plugin.config.clone()).ok()?;
        Some(std::sync::Arc::new(Compression::new(config)))
    }

    const NAME: &'static str = "compression";
    const PRIORITY: i32 = 150;
    const FIELDS: &'static [Field] = &[
        field("algorithms", Ty::Array(&Ty::OneOf(&["gzip", "br", "zstd"]))),
        field("content_types", STRINGS),
        field("min_length", Ty::Int(Bound::Between(0.0, 1e12))),
        field("gzip_level", Ty::Int(Bound::Between(1.0, 9.0))),
        field("brotli_quality", Ty::Int(Bound::Between(0.0, 11.0))),
        field("zstd_level", Ty::Int(Bound::Between(1.0, 19.0))),
        field("decompress", Ty::Bool),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        if self.algorithms.is_empty() {
            problems.push(problem(
                &["algorithms"],
                "at least one algorithm is required",
            ));
        }
        result(problems)
    }
}

/// What every request of one instance shares.
#[derive(Debug)]
struct Settings {
    /// Offered codings, most preferred first.
    offered: Vec<Coding>,
    /// (type, subtype or `*`) pairs, lowercase.
    types: Vec<(String, String)>,
    min_length: u64,
    levels: Levels,
    decompress: bool,
}

/// The compression plugin at run time.
#[derive(Debug)]
pub struct Compression {
    s: Arc<Settings>,
}

impl Compression {
    /// An instance from a validated config.
    pub fn new(config: CompressionConfig) -> Self {
        let types = config
            .content_types
            .iter()
            .filter_map(|t| {
                let t = t.split(';').next()?.trim().to_ascii_lowercase();
                let (a, b) = t.split_once('/')?;
                Some((a.to_owned(), b.to_owned()))
            })
            .collect();
        Compression {
            s: Arc::new(Settings {
                offered: config
                    .algorithms
                    .iter()
                    .filter_map(|a| Coding::from_token(a))
                    .collect(),
                types,
                min_length: config.min_length,
                levels: Levels {
                    gzip: config.gzip_level,
                    brotli: config.brotli_quality,
                    zstd: config.zstd_level,
                },
                decompress: config.decompress,
            }),
        }
    }
}

/// The client's `Accept-Encoding`: (coding, quality) pairs; `None` when
/// the header is absent.
pub(crate) fn accepted(headers: &HeaderMap) -> Option<Vec<(String, f32)>> {
    let mut out = Vec::new();
    let mut any = false;
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        any = true;
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            out.push((coding, q));
        }
    }
    any.then_some(out)
}

/// The quality the client gives `coding` (`*` counts for unnamed ones).
pub(crate) fn quality(accept: &[(String, f32)], coding: &str) -> f32 {
    let named = accept
        .iter()
        .find(|(c, _)| c == coding || (coding == "gzip" && c == "x-gzip"));
    match named {
        Some((_, q)) => *q,
        None => accept
            .iter()
            .find(|(c, _)| c == "*")
            .map_or(0.0, |(_, q)| *q),
    }
}

impl Settings {
    /// The best offered coding the client accepts: highest quality, then
    /// the configured order.
    fn choose(&self, accept: &[(String, f32)]) -> Option<Coding> {
        let mut best: Option<(Coding, f32)> = None;
        for c in &self.offered {
            let q = quality(accept, c.token());
            if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((*c, q));
            }
        }
        best.map(|(c, _)| c)
    }

    fn compressible(&self, headers: &HeaderMap) -> bool {
        let Some(ct) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((a, b)) = media.split_once('/') else {
            return false;
        };
        self.types
            .iter()
            .any(|(ta, tb)| (ta == a || ta == "*") && (tb == b || tb == "*"))
    }
}

impl crate::runtime::Plugin for Compression {
    fn name(&self) -> &'static str {
        "compression"
    }

    fn priority(&self) -> i32 {
        150
    }

    fn edits_answers(&self) -> bool {
        true
    }

    fn access(&self, ctx: &mut AccessCtx<'_>) -> Flow {
        let accept = accepted(ctx.headers);
        let choice = accept.as_deref().and_then(|a| self.s.choose(a));
        ctx.hooks.push(Box::new(Compress {
            s: self.s.clone(),
            accept,
            choice,
            head: ctx.method == Method::HEAD,
            coder: None,
        }));
        Flow::Continue
    }
}

/// Encodes (or decodes) one answer.
#[derive(Debug)]
struct Compress {
    s: Arc<Settings>,
    accept: Option<Vec<(String, f32)>>,
    choice: Option<Coding>,
    head: bool,
    coder: Option<Transcoder>,
}

fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            t.trim_ascii().eq_ignore_ascii_case(b"accept-encoding") || t.trim_ascii() == b"*"
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A strong ETag becomes weak once the bytes change (as nginx does).
fn weaken_etag(headers: &mut HeaderMap) {
    if let Some(tag) = headers.get(header::ETAG) {
        if !tag.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(tag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                headers.insert(header::ETAG, v);
            }
        }
    }
}

impl AnswerHook for Compress {
    fn head(&mut self, status: &mut StatusCode, headers: &mut HeaderMap) -> HookStep {
        let status = *status;
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::PARTIAL_CONTENT
        {
            return HookStep::Aside;
        }
        let encoded = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v != "identity");
        if let Some(coding) = encoded {
            // Never encode twice; decode what the client cannot read.
            let readable = self
                .accept
                .as_deref()
                .is_some_and(|a| quality(a, &coding) > 0.0);
            if readable || !self.s.decompress {
                return HookStep::Aside;
            }
            let Some(decoder) = Transcoder::decoder(&coding) else {
                return HookStep::Aside;
            };
            headers.remove(header::CONTENT_ENCODING);
            headers.remove(header::CONTENT_LENGTH);
            weaken_etag(headers);
            if self.head {
                return HookStep::Aside;
            }
            self.coder = Some(decoder);
            return HookStep::Rewrite;
        }
        if !self.s.compressible(headers) {
            return HookStep::Aside;
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|n| n < self.s.min_length) {
            return HookStep::Aside;
        }
        add_vary(headers);
        let no_transform = headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
        });
        let Some(coding) = self.choice.filter(|_| !no_transform) else {
            return HookStep::Aside;
        };
        let Ok(encoder) = Transcoder::encoder(coding, self.s.levels, length) else {
            return HookStep::Aside;
        };
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::ACCEPT_RANGES);
        weaken_etag(headers);
        if self.head {
            return HookStep::Aside;
        }
        self.coder = Some(encoder);
        HookStep::Rewrite
    }

    fn data(&mut self, chunk: Bytes) -> Bytes {
        match &mut self.coder {
            Some(c) => c.push(&chunk),
            None => chunk,
        }
    }

    fn finish(&mut self) -> Bytes {
        match &mut self.coder {
            Some(c) => c.finish(),
            None => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings() -> Settings {
        let c = Compression::new(CompressionConfig::default());
        Arc::try_unwrap(c.s).unwrap()
    }

    fn accept(v: &'static str) -> Vec<(String, f32)> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        accepted(&h).unwrap()
    }

    #[test]
    fn qualities_decide_then_the_configured_order() {
        let s = settings();
        assert_eq!(s.choose(&accept("gzip, deflate, br")), Some(Coding::Brotli));
        assert_eq!(s.choose(&accept("gzip;q=1, br;q=0.5")), Some(Coding::Gzip));
        assert_eq!(s.choose(&accept("zstd, br, gzip")), Some(Coding::Zstd));
        assert_eq!(s.choose(&accept("*;q=0.1, zstd;q=0")), Some(Coding::Brotli));
        assert_eq!(s.choose(&accept("identity")), None);
        assert_eq!(s.choose(&accept("gzip;q=0")), None);
    }

    #[test]
    fn content_types_match_with_wildcards_and_parameters() {
        let s = settings();
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(s.compressible(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        assert!(!s.compressible(&h));
    }
}
