//! Talking to backends: connecting, sending a request on a pooled or fresh
//! connection, and retrying on another connection or target when that is safe.

pub mod codec;
pub mod conn;
pub mod exchange;
pub mod grpc;
pub mod pool;

use crate::balancer::state::Failure;
use crate::balancer::{Balancer, NoTarget, TargetEntry, Tried};
use crate::body::{BodyError, ProxyBody};
use crate::error::{ErrorKind, ProxyError};
use crate::pump::{Framing, Pump};
use crate::snapshot::ServiceEntry;
use bytes::BytesMut;
use codec::RequestFraming;
use conn::Conn;
use exchange::{ExchangeError, UpstreamBody};
use http::{Method, Response};
use http_body::Body;
use pool::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// A backend's answer.
#[derive(Debug)]
pub struct Answer {
    /// The response head and its body, streamed from the backend connection.
    pub response: Response<UpstreamBody>,
    /// After a 101: the backend socket and bytes it sent past the head.
    pub upgraded: Option<(Box<dyn crate::downstream::Switched>, BytesMut)>,
    /// The backend's head, when it is passed on as it is (see
    /// [`Outbound::raw_head`]); the response's header map is then empty.
    pub raw_head: Option<codec::RawHead>,
}

/// Opens a new connection to `target`.
pub async fn connect(target: &TargetEntry, timeout: Duration) -> Result<Box<Conn>, ProxyError> {
    let stream = tcp(target, timeout).await?;
    match &target.tls {
        None => Ok(Box::new(Conn::new(stream))),
        Some(tls) => {
            let (tcp, session) = handshake(target, tls, stream, timeout).await?.into_inner();
            Ok(Box::new(Conn::tls(tcp, session)))
        }
    }
}

/// A TCP connection to `target` within `timeout`.
async fn tcp(target: &TargetEntry, timeout: Duration) -> Result<TcpStream, ProxyError> {
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
    Ok(stream)
}

/// The TLS handshake with `target` over `stream`, within `timeout`.
async fn handshake(
    target: &TargetEntry,
    tls: &crate::balancer::TargetTls,
    stream: TcpStream,
    timeout: Duration,
) -> Result<tollgate_tls::TlsStream<TcpStream>, ProxyError> {
    let handshake = tollgate_tls::connect(tls.config.clone(), &tls.server_name, stream);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ProxyError::new(
            ErrorKind::ConnectFailed,
            format!("{}: {e}", target.key),
        )),
        Err(_) => Err(ProxyError::new(
            ErrorKind::ConnectTimeout,
            format!("TLS handshake with {} timed out", target.key),
        )),
    }
}

/// The error answered when `balancer` has no target to offer.
pub(crate) fn no_target(e: NoTarget, balancer: &str) -> ProxyError {
    match e {
        NoTarget::Unhealthy => ProxyError::new(
            ErrorKind::NoPeer,
            format!("no healthy target in {balancer}"),
        ),
        NoTarget::Saturated => ProxyError::new(
            ErrorKind::Overloaded,
            format!("every target of {balancer} is at max_requests"),
        ),
        NoTarget::Unresolved => ProxyError::new(
            ErrorKind::NameResolution,
            format!("no address in DNS for the targets of {balancer}"),
        ),
    }
}

async fn open_tcp(target: &TargetEntry) -> Result<TcpStream, ProxyError> {
    if let Some(addr) = target.addr {
        return TcpStream::connect(addr)
            .await
            .map_err(|e| ProxyError::new(ErrorKind::ConnectFailed, format!("{addr}: {e}")));
    }
    let addrs =
        crate::balancer::dns::dial_addresses(target.dns.as_deref(), &target.host, target.port)
            .await
            .map_err(|e| {
                ProxyError::new(ErrorKind::NameResolution, format!("{}: {e}", target.host))
            })?;
    // New connections take the name's addresses in turn (as nginx spreads
    // over a name's addresses), moving on to the next when one refuses.
    let start = target.state.next_address();
    let mut last = None;
    for addr in rotated(&addrs, start) {
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

/// `addrs` starting at position `start` (modulo their number), wrapping.
fn rotated(
    addrs: &[std::net::SocketAddr],
    start: usize,
) -> impl Iterator<Item = std::net::SocketAddr> + '_ {
    let n = addrs.len().max(1);
    (0..addrs.len()).map(move |k| addrs[(start + k) % n])
}

/// Maps a failed exchange: a stalled backend is a timeout (504), a broken
/// client body is the client's fault (400, or 413 past a size limit),
/// anything else a bad answer (502).
fn exchange_error(e: ExchangeError) -> ProxyError {
    let kind = match &e {
        ExchangeError::WriteTimeout | ExchangeError::ReadTimeout => ErrorKind::ReadTimeout,
        ExchangeError::ClientBody(BodyError::TooLarge) => ErrorKind::BodyTooLarge,
        ExchangeError::ClientBody(_) => ErrorKind::BadRequest,
        _ => ErrorKind::BadResponse,
    };
    ProxyError::new(kind, format!("upstream: {e}"))
}

/// How one attempt on one connection ended.
enum Attempt {
    Answered(Answer),
    /// Failed before the backend answered anything and before the request
    /// body was consumed: the request can go out again on another connection.
    /// The flag says whether the whole head had been written.
    Resend(ProxyBody, ExchangeError, bool),
    Failed(ExchangeError),
}

/// Everything that stays the same across attempts.
struct Outgoing<'a> {
    head: &'a [u8],
    method: &'a Method,
    framing: RequestFraming,
    upgrade: bool,
    raw_head: bool,
    service: &'a ServiceEntry,
}

/// Sends the request on `conn` and waits for the response head.
async fn attempt(
    mut conn: Box<Conn>,
    out: &Outgoing<'_>,
    body: ProxyBody,
    home: Option<(Arc<Pool>, pool::PoolKey)>,
) -> Attempt {
    conn.uses += 1;
    if let Err(e) = exchange::write_all(&conn, out.head, out.service.write_timeout).await {
        return Attempt::Resend(body, e, false);
    }
    let mut pump = match out.framing {
        RequestFraming::None => None,
        RequestFraming::Length(_) => Some(Pump::new(
            Vec::new(),
            body,
            Framing::Raw,
            out.service.write_timeout,
        )),
        RequestFraming::Chunked => Some(Pump::new(
            Vec::new(),
            body,
            Framing::Chunked,
            out.service.write_timeout,
        )),
    };
    let head = exchange::read_head(
        &mut conn,
        &mut pump,
        out.method,
        out.upgrade,
        out.raw_head,
        out.service.read_timeout,
    )
    .await;
    let mut head = match head {
        Ok(h) => h,
        Err(e @ (ExchangeError::Closed(0) | ExchangeError::Io(_))) => {
            return match pump {
                Some(p) if p.started => Attempt::Failed(e),
                Some(p) => Attempt::Resend(p.into_body(), e, true),
                None => Attempt::Resend(ProxyBody::empty(), e, true),
            }
        }
        Err(e) => return Attempt::Failed(e),
    };
    if head.response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        let upgraded = conn.into_switched();
        let (parts, ()) = head.response.into_parts();
        return Attempt::Answered(Answer {
            response: Response::from_parts(parts, UpstreamBody::empty()),
            upgraded: Some(upgraded),
            raw_head: None,
        });
    }
    let body = UpstreamBody::new(conn, &head, pump, out.service.read_timeout, home);
    let raw_head = head.raw.take();
    let (parts, ()) = head.response.into_parts();
    Attempt::Answered(Answer {
        response: Response::from_parts(parts, body),
        upgraded: None,
        raw_head,
    })
}

/// The request to send upstream, as prepared by the handler.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// Method, upstream target and the client's headers (hop-by-hop removed).
    pub parts: &'a http::request::Parts,
    /// Headers Tollgate sets (forwarded headers, request id, Via).
    pub extras: &'a [codec::Extra<'a>],
    /// The Host to send when the route preserves it (else the target's).
    pub preserved_host: Option<&'a http::HeaderValue>,
    /// Whether the client asked to switch protocols.
    pub upgrade: bool,
    /// Whether nobody needs the backend's response headers as a map (no
    /// plugin on the route, an HTTP/1 client): they are then copied to the
    /// client line by line, without building one.
    pub raw_head: bool,
}

/// How a failed exchange counts against the target's health (None: the
/// client's fault, not the target's).
fn health_failure(e: &ExchangeError) -> Option<Failure> {
    match e {
        ExchangeError::WriteTimeout | ExchangeError::ReadTimeout => Some(Failure::Timeout),
        ExchangeError::ClientBody(_) => None,
        _ => Some(Failure::Tcp),
    }
}

/// Sends the request to the service's balancer's choice of target: on a
/// pooled connection when one is idle, else on a new one. A pooled
/// connection the backend had closed is replaced by a new one (not a
/// retry). A failed connect, and a failure before any response byte of an
/// idempotent request (or before the request head was written), is retried
/// up to the service's `retries`, each time on another target when one is
/// usable, as long as the upstream's retry budget allows. Waiting for the
/// response head is bounded by `read_timeout`, counted from the end of the
/// request body. Outcomes feed the targets' passive health checks.
pub async fn send(
    pool: &Arc<Pool>,
    service: &ServiceEntry,
    req: Outbound<'_>,
    body: ProxyBody,
    hash: Option<u64>,
) -> Result<Answer, ProxyError> {
    let balancer = &service.balancer;
    let parts = req.parts;
    let upgrade = req.upgrade;
    let framing = RequestFraming::choose(
        &parts.method,
        body.is_end_stream(),
        body.size_hint().exact(),
    );
    let idempotent = parts.method.is_idempotent();
    let ticket = balancer.ticket(hash);
    let mut tried = Tried::default();
    let mut body = Some(body);
    let mut head = Vec::with_capacity(512);
    let mut tries = 0usize;
    let mut saturated = 0usize;
    let mut last_host: Option<&http::HeaderValue> = None;
    loop {
        let i = balancer
            .choose(&ticket, &tried)
            .map_err(|e| no_target(e, &balancer.name))?;
        let target = balancer.target(i);
        let host = match req.preserved_host {
            Some(h) => Some(h),
            None => Some(&target.host_header),
        };
        if head.is_empty() || host != last_host {
            codec::encode_request_head(&mut head, parts, host, req.extras, framing);
            last_host = host;
        }
        let out = Outgoing {
            head: &head,
            method: &parts.method,
            framing,
            upgrade,
            raw_head: req.raw_head,
            service,
        };
        let load = balancer.begin(i);
        // Only the latency algorithm needs the time to the response head.
        let started = balancer.times_answers().then(std::time::Instant::now);
        let home = (!upgrade).then(|| (pool.clone(), target.pool_key.clone()));
        let mut outcome = None;
        // Whether the outcome came from a pooled connection (its failures
        // before any answer may be a keep-alive race, not the target's).
        let mut reused = false;
        if !upgrade {
            if let Some(conn) = pool.checkout(&target.pool_key) {
                reused = true;
                let sent = body.take().unwrap_or_else(ProxyBody::empty);
                match attempt(conn, &out, sent, home.clone()).await {
                    // The idle connection had been closed by the backend (a
                    // keep-alive race): say it again on a fresh connection.
                    Attempt::Resend(b, e, written) if idempotent || !written => {
                        tracing::debug!("pooled connection failed, resending: {e}");
                        body = Some(b);
                        reused = false;
                    }
                    other => outcome = Some(other),
                }
            }
        }
        let outcome = match outcome {
            Some(o) => o,
            None => match open(balancer, i, service.connect_timeout).await {
                Ok(conn) => {
                    let sent = body.take().unwrap_or_else(ProxyBody::empty);
                    attempt(conn, &out, sent, home).await
                }
                Err(e) if e.kind == ErrorKind::Overloaded => {
                    // This target is opening too many connections: another
                    // one may take the request (not a retry, no budget).
                    tried.add(i);
                    saturated += 1;
                    if saturated < balancer.targets().len() {
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => {
                    if let Some(f) = connect_failure(&e) {
                        balancer.report(i, Err(f), None);
                    }
                    if e.retryable && again(service, &mut tried, i, &mut tries) {
                        tracing::debug!(tries, target = %target.key, "retrying after: {e}");
                        continue;
                    }
                    return Err(e);
                }
            },
        };
        match outcome {
            Attempt::Answered(mut a) => {
                let micros = started.map(|t| t.elapsed().as_micros() as u64);
                balancer.report(i, Ok(a.response.status().as_u16()), micros);
                a.response.body_mut().hold(load);
                return Ok(a);
            }
            Attempt::Resend(b, e, written) => {
                if let Some(f) = health_failure(&e).filter(|_| !reused) {
                    balancer.report(i, Err(f), None);
                }
                if (idempotent || !written) && again(service, &mut tried, i, &mut tries) {
                    tracing::debug!(tries, target = %target.key, "retrying after: {e}");
                    body = Some(b);
                    continue;
                }
                return Err(exchange_error(e));
            }
            Attempt::Failed(e) => {
                let race = reused && matches!(e, ExchangeError::Closed(0) | ExchangeError::Io(_));
                if let Some(f) = health_failure(&e).filter(|_| !race) {
                    balancer.report(i, Err(f), None);
                }
                return Err(exchange_error(e));
            }
        }
    }
}

/// Whether another try is allowed after a failure on target `i` (which
/// later tries then avoid): tries left, and the retry budget agrees.
fn again(service: &ServiceEntry, tried: &mut Tried, i: usize, tries: &mut usize) -> bool {
    tried.add(i);
    if *tries >= service.retries as usize || !service.balancer.may_retry() {
        return false;
    }
    *tries += 1;
    true
}

/// Opens a connection to target `i` of `balancer`, within its
/// `max_pending_connections`.
async fn open(balancer: &Balancer, i: usize, timeout: Duration) -> Result<Box<Conn>, ProxyError> {
    let Some(_pending) = balancer.connecting(i) else {
        return Err(ProxyError::new(
            ErrorKind::Overloaded,
            format!(
                "{}: max_pending_connections reached",
                balancer.target(i).key
            ),
        ));
    };
    connect(balancer.target(i), timeout).await
}

/// How a failed connect counts against the target's health (None: it
/// was not tried, its circuit breaker refused).
fn connect_failure(e: &ProxyError) -> Option<Failure> {
    match e.kind {
        ErrorKind::Overloaded => None,
        ErrorKind::ConnectTimeout => Some(Failure::Timeout),
        _ => Some(Failure::Tcp),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::rotated;

    #[test]
    fn connections_take_a_names_addresses_in_turn() {
        let addrs: Vec<std::net::SocketAddr> = ["127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let firsts: Vec<_> = (0..4).map(|s| rotated(&addrs, s).next().unwrap()).collect();
        assert_eq!(firsts, [addrs[0], addrs[1], addrs[2], addrs[0]]);
        // Every address is still tried, once.
        assert_eq!(
            rotated(&addrs, 1).collect::<Vec<_>>(),
            [addrs[1], addrs[2], addrs[0]]
        );
        assert_eq!(rotated(&[], 5).count(), 0);
    }
}
