//! Listeners: binding (one socket per worker with `SO_REUSEPORT`), accepting
//! under the connection cap ([`accept`], shared with the proxy listener in
//! [`crate::downstream`]), and hyper-based serving of HTTP/1.1 and HTTP/2 for
//! the status and admin listeners, with a graceful drain.

use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Fails when `addr` is already in use by anyone, including another
/// process's `SO_REUSEPORT` sockets (which a reuseport bind would silently
/// share traffic with). Binding port 0 picks a free port and is not checked.
pub fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let probe = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())
}

/// Binds a listening socket with `SO_REUSEPORT`, so every worker can bind its
/// own socket on the same address and the kernel spreads connections.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// The HTTP server settings for client connections.
pub fn http_builder(worker: &Worker) -> auto::Builder<TokioExecutor> {
    let o = &worker.shared.options;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(o.client_header_timeout)
        .max_buf_size(o.max_header_size.max(8192))
        .max_headers(o.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(o.h2_max_concurrent_streams)
        .max_header_list_size(o.max_header_size as u32)
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256)
        .keep_alive_interval(None);
    b
}

/// Waits for the next client connection, under the node's connection cap
/// (connections beyond it are closed at once), with Nagle off. `None` once
/// `shutdown` turns true. Shared by the proxy and the status/admin listeners.
pub async fn accept(
    listener: &TcpListener,
    worker: &Worker,
    shutdown: &mut watch::Receiver<bool>,
    tls: bool,
) -> Option<(TcpStream, Arc<ConnInfo>)> {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => return None,
            a = listener.accept() => a,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = worker.shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(%client, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok().or(local).unwrap_or(client);
        let conn = ConnInfo::new(client, local, tls, &worker.shared.options.trusted_ips)
            .with_permit(permit);
        return Some((stream, Arc::new(conn)));
    }
}

/// Accepts connections on `listener` until `shutdown` turns true, then stops
/// accepting and lets in-flight requests finish for up to `drain_timeout`.
///
/// `handler` serves each request (the status and admin APIs; the proxy
/// listener is served by [`crate::downstream::serve`]).
pub async fn serve<H, F>(
    listener: TcpListener,
    worker: Arc<Worker>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let builder = Arc::new(http_builder(&worker));
    let graceful = GracefulShutdown::new();
    while let Some((stream, conn)) = accept(&listener, &worker, &mut shutdown, false).await {
        let client = conn.client;
        let h = handler.clone();
        let w = worker.clone();
        let svc = hyper::service::service_fn(move |req| h(w.clone(), conn.clone(), req));
        let builder = builder.clone();
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(%client, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    let drain = worker.shared.options.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
}
