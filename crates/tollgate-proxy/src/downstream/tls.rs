//! TLS listeners (`proxy_listen … ssl`): the handshake (certificate chosen
//! by SNI, see `tollgate_tls::server`), then hyper's server speaks HTTP/2
//! or HTTP/1.1 as ALPN chose. Requests go through the same handler as on
//! plain listeners, marked as arriving over TLS (`X-Forwarded-Proto:
//! https`, routes with `protocols: [https]`). Protocol upgrades
//! (WebSocket) over HTTP/1.1 are tunnelled through hyper's upgrade.

use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use http::{Request, Response};
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
    if tls.get_ref().1.alpn_protocol() == Some(tollgate_tls::acme::ACME_TLS_ALPN) {
        // An ACME TLS-ALPN-01 validation: the handshake was the answer.
        return;
    }
    let mut conn = conn;
    if let (Some(certs), Some(info)) =
        (tls.get_ref().1.peer_certificates(), Arc::get_mut(&mut conn))
    {
        info.client_certs = Some(certs.iter().map(|c| c.clone().into_owned()).collect());
    }
    super::h2::serve_hyper(tls, false, worker, conn, handler, shutdown).await;
}
