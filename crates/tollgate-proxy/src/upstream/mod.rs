//! Talking to backends: connecting, sending a request on a pooled or fresh
//! connection, and retrying on another connection or target when that is safe.

pub mod pool;
mod timed_io;

use crate::body::ProxyBody;
use crate::error::{ErrorKind, ProxyError};
use crate::snapshot::{ServiceEntry, TargetEntry};
use http::{Request, Response};
use hyper::body::Incoming;
use pool::{Conn, Pool, Returner};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// A backend's answer, with what is needed to give its connection back.
#[derive(Debug)]
pub struct Answer {
    /// The response head and body.
    pub response: Response<Incoming>,
    /// Returns the connection to the pool once the body ended (None for upgrades).
    pub returner: Option<Returner>,
}

/// Opens a new HTTP/1.1 connection to `target`.
pub async fn connect(
    target: &TargetEntry,
    timeout: Duration,
    write_timeout: Duration,
) -> Result<Conn, ProxyError> {
    let stream = match tokio::time::timeout(timeout, open_tcp(target)).await {
        Ok(res) => res?,
        Err(_) => {
            return Err(ProxyError::new(
                ErrorKind::ConnectTimeout,
                format!("connect to {} timed out", target.key),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(timed_io::TimedIo::new(stream, write_timeout))
        .await
        .map_err(|e| ProxyError::new(ErrorKind::ConnectFailed, format!("handshake: {e}")))?;
    let key = target.key.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(upstream = %key, "upstream connection ended: {e}");
        }
    });
    Ok(Conn::new(sender))
}

async fn open_tcp(target: &TargetEntry) -> Result<TcpStream, ProxyError> {
    if let Some(addr) = target.addr {
        return TcpStream::connect(addr)
            .await
            .map_err(|e| ProxyError::new(ErrorKind::ConnectFailed, format!("{addr}: {e}")));
    }
    let addrs = tokio::net::lookup_host((&*target.host, target.port))
        .await
        .map_err(|e| ProxyError::new(ErrorKind::NameResolution, format!("{}: {e}", target.host)))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    Err(match last {
        Some(msg) => ProxyError::new(ErrorKind::ConnectFailed, msg),
        None => ProxyError::new(
            ErrorKind::NameResolution,
            format!("{}: no address", target.host),
        ),
    })
}

/// Maps a failed exchange: a stalled write is a timeout (504), a broken
/// client body is the client's fault (400), anything else a bad answer (502).
/// Waits for the response head. `read_timeout` counts from the end of the
/// request body: while a slow upload is still being sent (guarded by the
/// write timeout), waiting goes on.
async fn await_head<F, T>(
    fut: F,
    read_timeout: Duration,
    body_done: Option<&std::sync::atomic::AtomicBool>,
) -> Result<T, ()>
where
    F: std::future::Future<Output = T>,
{
    tokio::pin!(fut);
    loop {
        match tokio::time::timeout(read_timeout, &mut fut).await {
            Ok(v) => return Ok(v),
            Err(_) if body_done.is_none_or(|d| d.load(std::sync::atomic::Ordering::Acquire)) => {
                return Err(())
            }
            Err(_) => continue,
        }
    }
}

fn send_error(e: &hyper::Error) -> ProxyError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ProxyError::new(ErrorKind::ReadTimeout, format!("upstream: {e}"));
            }
        }
        if let Some(b) = s.downcast_ref::<crate::body::BodyError>() {
            let kind = match b {
                crate::body::BodyError::TooLarge => ErrorKind::BodyTooLarge,
                _ => ErrorKind::BadRequest,
            };
            return ProxyError::new(kind, format!("client body: {e}"));
        }
        source = s.source();
    }
    ProxyError::new(ErrorKind::BadResponse, format!("upstream: {e}"))
}

/// Sends `req` to the service: on a pooled connection when one is idle, else
/// on a new one; connect failures are retried up to the service's `retries`,
/// moving to the next target each time. Waiting for the response head is
/// bounded by `read_timeout`.
pub async fn send(
    pool: &Arc<Pool>,
    service: &ServiceEntry,
    req: Request<ProxyBody>,
    pick: usize,
    upgrade: bool,
    preserve_host: bool,
) -> Result<Answer, ProxyError> {
    let read_timeout = service.read_timeout;
    // Requests without a body (most) need no completion flag: no allocation.
    let body_done = (!http_body::Body::is_end_stream(req.body()))
        .then(|| std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let mut req = match &body_done {
        Some(flag) => req.map(|b| b.with_done_flag(flag.clone())),
        None => req,
    };
    let mut attempt = 0usize;
    loop {
        let Some(target) = service.target(pick, attempt) else {
            return Err(ProxyError::new(
                ErrorKind::NoPeer,
                "no target with weight > 0",
            ));
        };
        if !preserve_host {
            req.headers_mut()
                .insert(http::header::HOST, target.host_header.clone());
        }
        if !upgrade {
            if let Some(mut conn) = pool.checkout(&target.key) {
                if !conn.sender.is_ready() {
                    // Still finishing a previous exchange (e.g. an early answer
                    // while a slow upload continues): wait a bounded time, then
                    // leave it and use another connection.
                    match tokio::time::timeout(service.connect_timeout, conn.sender.ready()).await {
                        Ok(Ok(())) => {}
                        _ => continue,
                    }
                }
                conn.uses += 1;
                match await_head(
                    conn.sender.try_send_request(req),
                    read_timeout,
                    body_done.as_deref(),
                )
                .await
                {
                    Ok(Ok(response)) => {
                        return Ok(Answer {
                            response,
                            returner: Some(Returner::new(pool.clone(), target.key.clone(), conn)),
                        })
                    }
                    Ok(Err(mut e)) => match e.take_message() {
                        // Not sent (the idle connection had just closed): try a fresh one.
                        Some(back) => req = back,
                        None => return Err(send_error(e.error())),
                    },
                    Err(_) => return Err(ProxyError::new(ErrorKind::ReadTimeout, "response head")),
                }
            }
        }
        let mut conn = match connect(target, service.connect_timeout, service.write_timeout).await {
            Ok(c) => c,
            Err(e) if e.retryable && attempt < service.retries as usize => {
                tracing::debug!(attempt, "retrying after: {e}");
                attempt += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        conn.uses += 1;
        return match await_head(
            conn.sender.try_send_request(req),
            read_timeout,
            body_done.as_deref(),
        )
        .await
        {
            Ok(Ok(response)) => Ok(Answer {
                response,
                returner: (!upgrade).then(|| Returner::new(pool.clone(), target.key.clone(), conn)),
            }),
            Ok(Err(e)) => Err(send_error(e.error())),
            Err(_) => Err(ProxyError::new(ErrorKind::ReadTimeout, "response head")),
        };
    }
}
