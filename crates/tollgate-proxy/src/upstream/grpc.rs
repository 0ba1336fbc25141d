//! gRPC to backends (`grpc` and `grpcs` services): HTTP/2 with prior
//! knowledge over TCP, or over TLS with ALPN `h2`, through hyper's HTTP/2
//! client. One multiplexed connection per target and worker; bodies and
//! trailers stream both ways.

use super::pool::Pool;
use crate::balancer::{state::Failure, Tried};
use crate::body::ProxyBody;
use crate::error::{ErrorKind, ProxyError};
use crate::snapshot::ServiceEntry;
use http::{Request, Response};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

/// Puts `extras` (forwarded headers, request id, Via) into `headers`, as
/// the HTTP/1 encoder writes them.
pub fn apply_extras(headers: &mut http::HeaderMap, extras: &[super::codec::Extra<'_>]) {
    for e in extras {
        if e.replace {
            headers.remove(e.name);
        }
        if let Some(v) = e.value.and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
            headers.append(e.name, v);
        }
    }
}

/// Opens an HTTP/2 connection to target `i` and drives it on this worker.
async fn open(service: &ServiceEntry, i: usize) -> Result<SendRequest<ProxyBody>, ProxyError> {
    let target = service.balancer.target(i);
    let stream = super::tcp(target, service.connect_timeout).await?;
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    let failed = |e: hyper::Error| {
        ProxyError::new(
            ErrorKind::ConnectFailed,
            format!("{}: HTTP/2: {e}", target.key),
        )
    };
    let sender = match &target.tls {
        None => {
            let (s, c) = builder
                .handshake(TokioIo::new(stream))
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                let _ = c.await;
            });
            s
        }
        Some(tls) => {
            let io = super::handshake(target, tls, stream, service.connect_timeout).await?;
            let (s, c) = builder.handshake(TokioIo::new(io)).await.map_err(failed)?;
            tokio::spawn(async move {
                let _ = c.await;
            });
            s
        }
    };
    Ok(sender)
}

/// Sends `req` (its URI the upstream path) to a target of `service` chosen
/// by its balancer, on that target's HTTP/2 connection (opened when there
/// is none or it closed). A failed connect moves to another target, up to
/// the service's `retries`.
pub async fn send(
    pool: &Pool,
    service: &ServiceEntry,
    mut req: Request<ProxyBody>,
    hash: Option<u64>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let balancer = &service.balancer;
    let ticket = balancer.ticket(hash);
    let mut tried = Tried::default();
    let mut tries = 0usize;
    let mut stale = 0usize;
    loop {
        let i = balancer
            .choose(&ticket, &tried)
            .map_err(|e| super::no_target(e, &balancer.name))?;
        let target = balancer.target(i);
        let mut sender = match pool.h2_sender(&target.pool_key) {
            Some(s) => s,
            None => match open(service, i).await {
                Ok(s) => {
                    pool.put_h2_sender(target.pool_key.clone(), s.clone());
                    s
                }
                Err(e) => {
                    balancer.report(i, Err(Failure::Tcp), None);
                    tried.add(i);
                    if e.retryable && tries < usize::from(service.retries) && balancer.may_retry() {
                        tries += 1;
                        continue;
                    }
                    return Err(e);
                }
            },
        };
        let scheme = if target.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        // A preserved client Host must be an authority and nothing more
        // (it cannot smuggle a path into `:path`).
        let authority = req
            .headers()
            .get(http::header::HOST)
            .unwrap_or(&target.host_header);
        let authority = http::uri::Authority::try_from(authority.as_bytes())
            .map_err(|_| ProxyError::new(ErrorKind::BadRequest, "invalid Host for gRPC"))?;
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = http::Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| ProxyError::new(ErrorKind::BadRequest, "upstream uri"))?;
        req.headers_mut().remove(http::header::HOST);
        *req.version_mut() = http::Version::HTTP_2;
        let load = balancer.begin(i);
        let started = balancer.times_answers().then(std::time::Instant::now);
        let answer = tokio::time::timeout(service.read_timeout, sender.try_send_request(req)).await;
        return match answer {
            Ok(Ok(resp)) => {
                let micros = started.map(|t| t.elapsed().as_micros() as u64);
                balancer.report(i, Ok(resp.status().as_u16()), micros);
                // The stream stays in flight until its body ends.
                Ok(resp.map(|body| ProxyBody::incoming_held(body, load)))
            }
            Ok(Err(mut e)) => {
                pool.drop_h2_sender(&target.pool_key);
                if let Some(back) = e.take_message() {
                    // The connection was going away (GOAWAY, closed) before
                    // the request went out: it goes on a new one.
                    if stale < 2 {
                        stale += 1;
                        req = back;
                        continue;
                    }
                }
                let e = e.into_error();
                // The client's own body or cancel is not the target's fault.
                if !(e.is_user() || e.is_canceled() || e.is_body_write_aborted()) {
                    balancer.report(i, Err(Failure::Tcp), None);
                }
                Err(ProxyError::new(
                    ErrorKind::BadResponse,
                    format!("HTTP/2: {e}"),
                ))
            }
            // Not a health failure: a streaming call may legitimately hold
            // its response head back while the client keeps sending.
            Err(_) => Err(ProxyError::new(
                ErrorKind::ReadTimeout,
                "no response head in time",
            )),
        };
    }
}
