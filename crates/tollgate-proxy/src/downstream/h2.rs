//! HTTP/2 with prior knowledge (h2c) on the plain listener: a connection
//! whose first bytes are the HTTP/2 preface is handed to hyper's HTTP/2
//! server, with the bytes already read replayed first.

use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use crate::headers::{millis_value, X_KONG_PROXY_LATENCY, X_KONG_UPSTREAM_LATENCY, X_REQUEST_ID};
use crate::VIA_TOKEN;
use bytes::{Buf, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The connection preface every HTTP/2 client sends first (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `buf` is, or starts like, the HTTP/2 preface. `None`: too short to tell.
pub fn looks_like_h2(buf: &[u8]) -> Option<bool> {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return Some(false);
    }
    (n == PREFACE.len()).then_some(true)
}

/// A socket that first yields bytes read before the protocol was known.
struct Replay {
    early: BytesMut,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early[..n]);
            self.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Moves the edge headers of a proxied answer into its header map (hyper
/// writes the HTTP/2 head from the map).
fn apply_edge(resp: &mut Response<ProxyBody>) {
    let Some(e) = resp.body_mut().take_edge() else {
        return;
    };
    let h = resp.headers_mut();
    if let Some(raw) = &e.raw_head {
        for (name, value) in raw.fields() {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name),
                HeaderValue::from_bytes(value),
            ) {
                h.append(n, v);
            }
        }
    }
    for (name, value) in e.plugin_headers {
        h.append(name, value);
    }
    h.insert(X_REQUEST_ID, e.request_id);
    h.append(header::VIA, HeaderValue::from_static(VIA_TOKEN));
    h.insert(
        X_KONG_UPSTREAM_LATENCY,
        millis_value(u128::from(e.upstream_ms)),
    );
    h.insert(X_KONG_PROXY_LATENCY, millis_value(u128::from(e.proxy_ms)));
}

/// The hyper service of a connection hyper serves (h2c, TLS): the
/// handler, with the edge headers moved into each answer's header map.
pub(super) fn service<H, F>(
    handler: H,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone
where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        if req.version() == http::Version::HTTP_11 && crate::headers::wants_upgrade(req.headers()) {
            let on = hyper::upgrade::on(&mut req);
            req.extensions_mut().insert(super::ClientUpgrade::hyper(on));
        }
        let answer = handler(worker.clone(), conn.clone(), req.map(ProxyBody::incoming));
        async move {
            let Ok(mut resp) = answer.await;
            apply_edge(&mut resp);
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                // The backend's hop-by-hop Connection was not passed on.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            Ok::<_, Infallible>(resp)
        }
    })
}

/// Serves an h2c connection (the bytes read while sniffing the preface
/// come first) until it ends.
pub async fn serve<H, F>(
    stream: TcpStream,
    early: BytesMut,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
    handler: H,
    shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let io = Replay { early, stream };
    serve_hyper(io, true, worker, conn, handler, shutdown).await;
}

/// Serves one connection with hyper's server: HTTP/2 only (h2c with prior
/// knowledge), or HTTP/1.1 and HTTP/2 (TLS connections, as ALPN chose),
/// with the node's limits, until it ends; on shutdown, stops taking new
/// streams and lets the open ones finish.
pub(super) async fn serve_hyper<I, H, F>(
    io: I,
    http2_only: bool,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let o = &worker.shared.options;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(o.client_header_timeout)
        .max_buf_size(o.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(o.h2_max_concurrent_streams)
        .max_header_list_size(o.max_header_size as u32)
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256)
        .keep_alive_interval(None);
    if http2_only {
        builder = builder.http2_only();
    }
    let client = conn.client;
    let svc = service(handler, worker.clone(), conn);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(connection);
    let res = tokio::select! {
        res = connection.as_mut() => res,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%client, "connection ended: {e}");
    }
}
