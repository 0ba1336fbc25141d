//! The body type used in both directions.
//!
//! A [`ProxyBody`] is either a small body Tollgate made itself, a client's
//! request body on its way up, or a backend's response body on its way down.
//! Bodies are streamed frame by frame: nothing is buffered whole. A backend
//! body returns its connection to the pool when it ends cleanly, fails when
//! the backend stalls longer than the service's `read_timeout`, and counts the
//! bytes it passed (for the access log, written when the body is dropped).

use crate::access_log::LogHandle;
pub use crate::downstream::client_body::ClientBody;
pub use crate::upstream::exchange::UpstreamBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a body stream failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The peer's stream failed (reset, bad framing, closed early).
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// The client's body was cut short, badly framed or too slow.
    #[error("client body: {0}")]
    Client(&'static str),
    /// The backend's body was cut short or badly framed.
    #[error("upstream body: {0}")]
    Backend(String),
    /// The backend sent nothing for longer than `read_timeout`.
    #[error("upstream read timed out")]
    ReadTimeout,
    /// The client's body went past the allowed size.
    #[error("request body too large")]
    TooLarge,
    /// A plugin's streamed answer (a file) could not be read.
    #[error("answer body: {0}")]
    Io(#[from] std::io::Error),
}

/// A plugin's streamed answer body (see [`ProxyBody::stream`]).
struct Streamed(tollgate_plugins::runtime::StreamBody);

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streamed")
    }
}

/// What a [`ProxyBody`] carries. The backend body is held inline: boxing it
/// would cost an allocation on every proxied request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Kind {
    Empty,
    Full(Option<Bytes>),
    /// A hyper body, with the backend request it counts in flight (gRPC
    /// answers) until it is dropped.
    Incoming(
        Incoming,
        // Only held for its Drop.
        #[allow(dead_code)] Option<crate::balancer::state::Load>,
    ),
    Client(ClientBody),
    Upstream(UpstreamBody),
    Stream(Streamed),
}

/// The one body type Tollgate sends, upstream and downstream.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    log: Option<LogHandle>,
    /// Set once the whole body was read (a request body fully sent upstream).
    done: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Bytes still allowed through (request-size-limiting).
    remaining: Option<u64>,
    /// Headers added to the answer at the edge (see [`Edge`]).
    edge: Option<Edge>,
    /// Plugins' body_filter phases over this (response) body.
    filters: Option<Box<Filters>>,
}

/// The body_filter phases an answer goes through, each with its buffer.
#[derive(Debug)]
pub struct Filters {
    plugins: Vec<(
        std::sync::Arc<dyn tollgate_plugins::runtime::Plugin>,
        tollgate_plugins::runtime::BodyState,
    )>,
    /// Answer hooks after the plugins, in the order they see the data.
    hooks: Vec<Box<dyn tollgate_plugins::runtime::AnswerHook>>,
    /// Whether a hook changes the data (else the length is kept).
    rewrites: bool,
    finished: bool,
}

impl Filters {
    fn run(&mut self, mut chunk: Bytes, eof: bool) -> Bytes {
        for (p, held) in &mut self.plugins {
            chunk = p.body_filter(chunk, eof, held);
        }
        for hook in &mut self.hooks {
            if !chunk.is_empty() {
                chunk = hook.data(chunk);
            }
            if eof {
                let tail = hook.finish();
                if !tail.is_empty() {
                    chunk = join(chunk, tail);
                }
            }
        }
        chunk
    }

    /// Whether the data passes unchanged (the length is known).
    fn passes_length(&self) -> bool {
        self.plugins.is_empty() && !self.rewrites
    }
}

fn join(a: Bytes, b: Bytes) -> Bytes {
    if a.is_empty() {
        return b;
    }
    let mut v = bytes::BytesMut::with_capacity(a.len() + b.len());
    v.extend_from_slice(&a);
    v.extend_from_slice(&b);
    v.freeze()
}

/// Headers Tollgate adds to every proxied answer, carried with its body and
/// written when the head goes out (no header-map insertions on the hot
/// path). They come after the header_filter phase, so plugins see the
/// backend's headers only; a backend's own `X-Request-Id` or latency
/// headers are replaced, its `Via` kept before ours.
#[derive(Debug, Clone)]
pub struct Edge {
    /// `X-Request-Id`.
    pub request_id: http::HeaderValue,
    /// `X-Kong-Upstream-Latency`, ms.
    pub upstream_ms: u64,
    /// `X-Kong-Proxy-Latency`, ms.
    pub proxy_ms: u64,
    /// The backend's header lines, passed on as they are (hop-by-hop ones
    /// left out) when no header map was built.
    pub raw_head: Option<crate::upstream::codec::RawHead>,
    /// Headers the access phase added to the answer (rate-limiting's
    /// counters…), written after the backend's when no plugin on the route
    /// edits answers (else they went into the header map).
    pub plugin_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl ProxyBody {
    /// An empty body.
    pub fn empty() -> Self {
        ProxyBody {
            kind: Kind::Empty,
            log: None,
            done: None,
            remaining: None,
            edge: None,
            filters: None,
        }
    }

    /// A complete body made by Tollgate.
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody {
            kind: Kind::Full(Some(bytes)),
            log: None,
            done: None,
            remaining: None,
            edge: None,
            filters: None,
        }
    }

    /// A client's request body, streamed upstream.
    pub fn incoming(body: Incoming) -> Self {
        Self::incoming_held(body, None)
    }

    /// A backend's answer read by hyper (gRPC), keeping its request
    /// counted in flight (`load`) until the body ends.
    pub fn incoming_held(body: Incoming, load: Option<crate::balancer::state::Load>) -> Self {
        ProxyBody {
            kind: Kind::Incoming(body, load),
            log: None,
            done: None,
            remaining: None,
            edge: None,
            filters: None,
        }
    }

    /// A plugin's streamed answer (a static file).
    pub fn stream(body: tollgate_plugins::runtime::StreamBody) -> Self {
        ProxyBody {
            kind: Kind::Stream(Streamed(body)),
            log: None,
            done: None,
            remaining: None,
            edge: None,
            filters: None,
        }
    }

    /// A client's HTTP/1 request body, read from its connection.
    pub fn client(body: ClientBody) -> Self {
        ProxyBody {
            kind: Kind::Client(body),
            log: None,
            done: None,
            remaining: None,
            edge: None,
            filters: None,
        }
    }

    /// A backend's response body, streamed downstream.
    pub fn upstream(body: UpstreamBody) -> Self {
        ProxyBody {
            kind: Kind::Upstream(body),
            log: None,
            done: None,
            remaining: None,
            edge: None,
            filters: None,
        }
    }

    /// Attaches the edge headers of a proxied answer.
    pub fn with_edge(mut self, edge: Edge) -> Self {
        self.edge = Some(edge);
        self
    }

    /// The edge headers, if this is a proxied answer.
    pub fn edge(&self) -> Option<&Edge> {
        self.edge.as_ref()
    }

    /// Takes the edge headers out (to put them into a header map).
    pub fn take_edge(&mut self) -> Option<Edge> {
        self.edge.take()
    }

    /// Cuts the body with [`BodyError::TooLarge`] past `limit` bytes.
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.remaining = Some(limit);
        self
    }

    /// Sets `flag` once the body has been read to its end.
    pub fn with_done_flag(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        if self.is_end_stream() {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
        self.done = Some(flag);
        self
    }

    /// Passes the data through these plugins' body_filter phases (the body
    /// then has no known length).
    pub fn with_filters(
        mut self,
        plugins: Vec<std::sync::Arc<dyn tollgate_plugins::runtime::Plugin>>,
    ) -> Self {
        if !plugins.is_empty() {
            self.filters = Some(Box::new(Filters {
                plugins: plugins
                    .into_iter()
                    .map(|p| (p, Default::default()))
                    .collect(),
                hooks: Vec::new(),
                rewrites: false,
                finished: false,
            }));
        }
        self
    }

    /// Passes the data through these answer hooks (after any body_filter
    /// phases); `rewrites` when one of them changes it.
    pub fn with_hooks(
        mut self,
        hooks: Vec<Box<dyn tollgate_plugins::runtime::AnswerHook>>,
        rewrites: bool,
    ) -> Self {
        if hooks.is_empty() {
            return self;
        }
        let f = self.filters.get_or_insert_with(|| {
            Box::new(Filters {
                plugins: Vec::new(),
                hooks: Vec::new(),
                rewrites: false,
                finished: false,
            })
        });
        f.hooks = hooks;
        f.rewrites |= rewrites;
        self
    }

    /// Attaches the access-log record, written when this body is dropped
    /// (after the last byte was sent, or the client went away).
    pub fn with_log(mut self, log: Option<LogHandle>) -> Self {
        self.log = log;
        self
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let res = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Incoming(b, _) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(BodyError::Hyper))),
            Kind::Client(b) => b.poll_frame(cx),
            Kind::Upstream(b) => b.poll_frame(cx),
            Kind::Stream(b) => {
                b.0.as_mut()
                    .poll_frame(cx)
                    .map(|o| o.map(|r| r.map_err(BodyError::Io)))
            }
        };
        let res = match (this.filters.as_mut(), res) {
            (Some(f), Poll::Ready(Some(Ok(frame)))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(f.run(data, false))))),
                Err(trailers) => Poll::Ready(Some(Ok(trailers))),
            },
            (Some(f), Poll::Ready(None)) if !f.finished => {
                f.finished = true;
                let last = f.run(Bytes::new(), true);
                if last.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(last))))
                }
            }
            (_, res) => res,
        };
        if let (Some(remaining), Poll::Ready(Some(Ok(frame)))) = (this.remaining.as_mut(), &res) {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            if n > *remaining {
                return Poll::Ready(Some(Err(BodyError::TooLarge)));
            }
            *remaining -= n;
        }
        if let (Some(done), Poll::Ready(None)) = (this.done.as_ref(), &res) {
            done.store(true, std::sync::atomic::Ordering::Release);
        }
        if let (Some(log), Poll::Ready(Some(Ok(frame)))) = (this.log.as_mut(), &res) {
            if let Some(d) = frame.data_ref() {
                log.add_bytes(d.len() as u64);
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        if self.filters.as_ref().is_some_and(|f| !f.finished) {
            return false;
        }
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Incoming(b, _) => b.is_end_stream(),
            Kind::Client(b) => b.is_end_stream(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Stream(b) => b.0.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.filters.as_ref().is_some_and(|f| !f.passes_length()) {
            return SizeHint::default();
        }
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Incoming(b, _) => b.size_hint(),
            Kind::Client(b) => b.size_hint(),
            Kind::Upstream(b) => b.size_hint(),
            Kind::Stream(b) => b.0.size_hint(),
        }
    }
}
