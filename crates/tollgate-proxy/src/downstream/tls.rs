//! TLS listeners (`proxy_listen … ssl`): the handshake (certificate chosen
//! by SNI, see `tollgate_tls::server`), then hyper's server speaks HTTP/2
//! or HTTP/1.1 as ALPN chose. Requests go through the same handler as on
//! plain listeners, marked as arriving over TLS (`X-Forwarded-Proto:
//! https`, routes with `protocols: [https]`). Protocol upgrades
//! (WebSocket) are not tunnelled on TLS listeners in this version.

use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tollgate_tls::tokio_rustls::TlsAcceptor;

/// Runs the handshake on an accepted connection (bounded like a request
/// head, against slow clients), then serves it.
pub(super) async fn serve_connection<H, F>(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
    handler: H,
    shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let limit = worker.shared.options.client_header_timeout;
    let tls = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(client = %conn.client, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    serve_http(tls, worker, conn, handler, shutdown).await;
}

async fn serve_http<H, F, S>(
    stream: S,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
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
    let client = conn.client;
    let svc = super::h2::service(handler, worker.clone(), conn);
    let connection = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(connection);
    let res = tokio::select! {
        res = connection.as_mut() => res,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%client, "TLS connection ended: {e}");
    }
}
