//! Whole answers a plugin gives instead of proxying (a cached response, a
//! static file), and per-request hooks over the answer that goes out
//! (proxy-cache filling an entry, compression).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::pin::Pin;

/// A streamed body a plugin answers with (a file, or parts of one).
pub type StreamBody = Pin<Box<dyn http_body::Body<Data = Bytes, Error = std::io::Error> + Send>>;

/// The body of an [`Answer`].
pub enum AnswerBody {
    /// Held in memory.
    Bytes(Bytes),
    /// Read as it is sent.
    Stream(StreamBody),
}

impl std::fmt::Debug for AnswerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerBody::Bytes(b) => f.debug_tuple("Bytes").field(&b.len()).finish(),
            AnswerBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// A complete answer made by a plugin: status, every header, body. Unlike
/// an [`EarlyResponse`](super::EarlyResponse) nothing is negotiated or added
/// but `X-Request-Id` and the access phase's response headers.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers, as sent.
    pub headers: HeaderMap,
    /// Body (ignored for HEAD requests).
    pub body: AnswerBody,
}

/// What an [`AnswerHook`] does with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStep {
    /// Leaves this answer alone.
    Aside,
    /// Sees the body but passes it on unchanged.
    Watch,
    /// Changes the body (its length is then unknown in advance).
    Rewrite,
}

/// A hook over one request's answer, registered by a plugin's access phase
/// ([`AccessCtx::hooks`](super::AccessCtx::hooks)). Hooks run after the
/// header_filter and body_filter phases, the last registered first (a hook
/// registered earlier wraps the later ones: compression sees what the cache
/// stored or served). Dropped without [`finish`](AnswerHook::finish) when
/// the answer was cut short.
pub trait AnswerHook: Send + std::fmt::Debug {
    /// Sees the status and headers about to be sent; may change both (a
    /// hook that replaces the answer, e.g. with a stale cached copy, then
    /// returns [`HookStep::Rewrite`] and gives its own body).
    fn head(&mut self, status: &mut StatusCode, headers: &mut HeaderMap) -> HookStep;
    /// A piece of the body; returns what goes on.
    fn data(&mut self, chunk: Bytes) -> Bytes;
    /// The body ended; returns its last bytes.
    fn finish(&mut self) -> Bytes;
}
