//! The client side of the proxy: accepting connections and speaking
//! HTTP/1.x to clients with Tollgate's own server code (HTTP/2 with prior
//! knowledge is handed to hyper's HTTP/2 server; TLS listeners, see
//! [`tls`], to hyper's HTTP/1 and HTTP/2 servers by ALPN).
//!
//! Owning the HTTP/1 server lets Tollgate refuse ambiguous requests exactly
//! (a Content-Length next to a Transfer-Encoding is a 400, not silently
//! reinterpreted) and keeps a request's cost to one task with no channels.

pub mod client_body;
mod conn;
mod h2;
pub mod request;
pub mod response;
pub mod tls;

use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use bytes::BytesMut;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// The client socket of an HTTP/1.1 request that asked to switch protocols,
/// handed over once the 101 answer was written (with any bytes the client
/// sent past the request head). Found in the request's extensions.
#[derive(Debug, Clone)]
pub struct ClientUpgrade(Arc<Mutex<Option<Pending>>>);

/// Where the switched connection will come from.
#[derive(Debug)]
enum Pending {
    /// Tollgate's own HTTP/1 server hands the socket over.
    Own(oneshot::Receiver<Handoff>),
    /// hyper's server (TLS listeners) hands over its upgraded connection.
    Hyper(hyper::upgrade::OnUpgrade),
}

/// A client socket and the bytes read past its last request head.
pub type Handoff = (TcpStream, BytesMut);

/// A client connection after a protocol switch.
pub trait Switched:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug
{
}

impl<T> Switched for T where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug
{
}

impl ClientUpgrade {
    fn new(rx: oneshot::Receiver<Handoff>) -> Self {
        ClientUpgrade(Arc::new(Mutex::new(Some(Pending::Own(rx)))))
    }

    /// The upgrade of a request hyper serves.
    pub(crate) fn hyper(on: hyper::upgrade::OnUpgrade) -> Self {
        ClientUpgrade(Arc::new(Mutex::new(Some(Pending::Hyper(on)))))
    }

    /// Waits for the connection, with any bytes the client sent past the
    /// request head; `None` if the answer was not a 101 after all.
    pub async fn socket(self) -> Option<(Box<dyn Switched>, BytesMut)> {
        let pending = self.0.lock().ok()?.take()?;
        match pending {
            Pending::Own(rx) => {
                let (s, early) = rx.await.ok()?;
                Some((Box::new(s), early))
            }
            Pending::Hyper(on) => {
                let upgraded = on.await.ok()?;
                let io = hyper_util::rt::TokioIo::new(upgraded);
                Some((Box::new(io), BytesMut::new()))
            }
        }
    }
}

/// Accepts client connections on `listener` until `shutdown` turns true,
/// then stops accepting and waits (up to the drain timeout) for in-flight
/// requests, and the connections and tunnels carrying them, to end. With
/// `tls`, each connection starts with a TLS handshake (see [`tls`]).
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<tollgate_tls::tokio_rustls::TlsAcceptor>,
    worker: Arc<Worker>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    while let Some((stream, conn)) =
        crate::server::accept(&listener, &worker, &mut shutdown, tls.is_some()).await
    {
        let (worker, handler, shutdown) = (worker.clone(), handler.clone(), shutdown.clone());
        match &tls {
            None => tokio::spawn(conn::serve_connection(
                stream, worker, conn, handler, shutdown,
            )),
            Some(acceptor) => tokio::spawn(tls::serve_connection(
                acceptor.clone(),
                stream,
                worker,
                conn,
                handler,
                shutdown,
            )),
        };
    }
    drop(listener);
    drain(&worker).await;
}

/// Waits (up to the drain timeout) for the node's connections to end.
async fn drain(worker: &Worker) {
    // Every live connection (and WebSocket tunnel) holds a permit: the drain
    // is over when all of them are back.
    let shared = &worker.shared;
    let drained = async {
        while shared.connections.available_permits() < shared.options.max_connections {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    };
    if tokio::time::timeout(shared.options.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
}
