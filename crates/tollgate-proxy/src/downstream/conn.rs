//! One client connection speaking HTTP/1.x: read a head, run the handler,
//! write the answer, and go again while the connection stays reusable.
//!
//! Everything happens in the connection's own task: the request body is read
//! from the same socket the answer is written to (see [`ClientBody`]), so a
//! request costs no extra task, channel or wakeup.

use super::client_body::{ClientBody, LeftoverSlot};
use super::request::{self, BodyFraming, HeadError, HeadLimits, RequestHead};
use super::response::{self, RequestFacts};
use super::{h2, ClientUpgrade};
use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use crate::error::{ErrorKind, ProxyError};
use crate::pump::{Framing, Pump};
use crate::{headers, request_id, respond, sock};
use bytes::BytesMut;
use http::{HeaderMap, Method, Request, Response, Version};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a client may leave an answer unread before the connection is
/// dropped (nginx's send_timeout default).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Read buffer a connection starts with; it grows for large heads.
const INITIAL_BUFFER: usize = 4 * 1024;

/// Why no request head came.
enum NoHead {
    /// The client closed, or the connection failed.
    Closed,
    /// The head did not arrive within client_header_timeout.
    Timeout,
    /// The head cannot be served.
    Refused(HeadError),
    /// The connection speaks HTTP/2 (prior knowledge).
    Http2,
}

/// Reads until a whole request head is in `buf`.
async fn read_head(
    stream: &TcpStream,
    buf: &mut BytesMut,
    limits: &HeadLimits,
    timeout: Duration,
    first: bool,
    spans: &mut Vec<request::Span>,
) -> Result<RequestHead, NoHead> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    poll_fn(|cx| loop {
        if first && !buf.is_empty() {
            match h2::looks_like_h2(buf) {
                Some(true) => return Poll::Ready(Err(NoHead::Http2)),
                Some(false) => {}
                None => {
                    if let Poll::Ready(r) = fill(stream, buf, cx) {
                        match r {
                            Ok(()) => continue,
                            Err(e) => return Poll::Ready(Err(e)),
                        }
                    }
                    return pending_or_timeout(&mut deadline, cx);
                }
            }
        }
        if !buf.is_empty() {
            match request::parse_request_head(buf, limits, spans) {
                Ok(Some(h)) => return Poll::Ready(Ok(h)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(NoHead::Refused(e))),
            }
        }
        match fill(stream, buf, cx) {
            Poll::Ready(Ok(())) => continue,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return pending_or_timeout(&mut deadline, cx),
        }
    })
    .await
}

fn fill(
    stream: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut std::task::Context<'_>,
) -> Poll<Result<(), NoHead>> {
    match sock::poll_fill(stream, buf, cx, INITIAL_BUFFER) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(Err(NoHead::Closed)),
        Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
        Poll::Pending => Poll::Pending,
    }
}

fn pending_or_timeout<T>(
    deadline: &mut std::pin::Pin<&mut tokio::time::Sleep>,
    cx: &mut std::task::Context<'_>,
) -> Poll<Result<T, NoHead>> {
    match deadline.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(Err(NoHead::Timeout)),
        Poll::Pending => Poll::Pending,
    }
}

/// Writes an answer with `plan` framing; false when the client is gone.
async fn write_answer(stream: &TcpStream, pump: &mut Pump) -> bool {
    poll_fn(|cx| pump.poll(stream, cx)).await.is_ok()
}

/// Answers a refused head (400, 414 or 431) and closes.
async fn refuse(stream: &TcpStream, e: HeadError, out: &mut Vec<u8>) {
    let kind = match e {
        HeadError::Bad(_) => ErrorKind::BadRequest,
        HeadError::TooLarge => ErrorKind::HeadersTooLarge,
        HeadError::UriTooLong => ErrorKind::UriTooLong,
    };
    let err = ProxyError::new(kind, e.to_string());
    let resp = respond::error_response(
        err.status(),
        err.message(),
        &request_id::generate(),
        &HeaderMap::new(),
    );
    let (parts, body) = resp.into_parts();
    let facts = RequestFacts {
        head: false,
        version: Version::HTTP_11,
    };
    let plan = response::encode_head(out, &parts, &body, facts, true);
    let mut pump = Pump::new(std::mem::take(out), body, plan.framing, SEND_TIMEOUT);
    let _ = write_answer(stream, &mut pump).await;
}

/// Serves one client connection until it closes, fails, times out, or the
/// node shuts down (then after the answer in progress).
pub async fn serve_connection<H, F>(
    stream: TcpStream,
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Worker>, Arc<ConnInfo>, Request<ProxyBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let o = &worker.shared.options;
    let limits = HeadLimits {
        max_bytes: o.max_header_size,
        max_headers: o.max_headers,
        max_uri: o.max_uri_len + 64,
    };
    let header_timeout = o.client_header_timeout;
    let body_timeout = o.client_body_timeout;
    let stream = Arc::new(stream);
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut first = true;
    let mut spans = Vec::with_capacity(32);
    loop {
        let idle = buf.is_empty();
        let head = tokio::select! {
            biased;
            h = read_head(&stream, &mut buf, &limits, header_timeout, first, &mut spans) => h,
            _ = shutdown.changed(), if idle => return,
        };
        let head = match head {
            Ok(h) => h,
            Err(NoHead::Closed | NoHead::Timeout) => return,
            Err(NoHead::Refused(e)) => return refuse(&stream, e, &mut out).await,
            Err(NoHead::Http2) => {
                drop(out);
                if let Ok(stream) = Arc::try_unwrap(stream) {
                    h2::serve(stream, buf, worker, conn, handler, shutdown).await;
                }
                return;
            }
        };
        first = false;
        let RequestHead {
            mut request,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let facts = RequestFacts {
            head: request.method() == Method::HEAD,
            version: request.version(),
        };
        let upgrade = (request.version() == Version::HTTP_11
            && headers::wants_upgrade(request.headers()))
        .then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            request.extensions_mut().insert(ClientUpgrade::new(rx));
            tx
        });
        let mut slot: Option<LeftoverSlot> = None;
        let body = if framing == BodyFraming::None {
            ProxyBody::empty()
        } else {
            let s: LeftoverSlot = Arc::new(Mutex::new(None));
            slot = Some(s.clone());
            ProxyBody::client(ClientBody::new(
                stream.clone(),
                std::mem::take(&mut buf),
                framing,
                expect_continue,
                body_timeout,
                s,
            ))
        };
        let Ok(resp) = handler(worker.clone(), conn.clone(), request.map(|()| body)).await;
        let (parts, body) = resp.into_parts();
        let closing = !keep_alive || *shutdown.borrow();
        let plan = response::encode_head(&mut out, &parts, &body, facts, closing);
        let switching = parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
        let framing = if switching {
            Framing::Skip
        } else {
            plan.framing
        };
        let mut pump = Pump::new(std::mem::take(&mut out), body, framing, SEND_TIMEOUT);
        let started = Instant::now();
        let sent = write_answer(&stream, &mut pump).await;
        out = pump.take_head();
        // Dropping the answer's body writes its access-log line, returns the
        // backend connection, and gives back the request body's buffer.
        drop(pump);
        crate::headers::recycle_map(parts.headers);
        if !sent {
            tracing::debug!(client = %conn.client, elapsed = ?started.elapsed(), "answer not delivered");
            return;
        }
        if switching {
            // The socket now belongs to the tunnel.
            if let (Some(tx), Ok(stream)) = (upgrade, Arc::try_unwrap(stream)) {
                let _ = tx.send((stream, buf));
            }
            return;
        }
        if let Some(slot) = slot {
            let left = slot.lock().ok().and_then(|mut s| s.take());
            match left {
                Some(l) if l.complete => buf = l.buf,
                // The body was not read to its end: what follows on the
                // connection cannot be told apart from it.
                _ => return,
            }
        }
        if plan.close {
            return;
        }
    }
}
