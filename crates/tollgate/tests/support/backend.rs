//! A real HTTP/1.1 backend on 127.0.0.1:0 whose answers depend on the path:
//! - default: JSON echo of method, uri, headers and body length;
//! - `/slow/<ms>`: answers after <ms> milliseconds;
//! - `/bytes/<n>`: streams <n> bytes (64 KiB chunks);
//! - `/status/<code>`: answers with that status;
//! - `/ws`: WebSocket echo (any `Upgrade: websocket` request).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, std::io::Error>;

/// A running backend.
pub struct Backend {
    pub addr: SocketAddr,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// `/bytes/<n>` downloads cut short because the reader went away.
    pub aborted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// Closes every open connection when the backend is dropped.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.stop.send(true);
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

async fn serve(
    req: Request<Incoming>,
    name: Arc<str>,
    aborted: Arc<AtomicUsize>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(100);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return Ok(Response::new(full(format!("slept {ms}"))));
    }
    if path == "/answer" || path.starts_with("/answer/") {
        return Ok(answer(req.uri().query().unwrap_or("")).await);
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(full(format!("status {code}")));
        *r.status_mut() = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        return Ok(r);
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let total: u64 = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_stream(total, chunk, aborted);
        let mut r = Response::new(StreamBody::new(stream).boxed());
        r.headers_mut()
            .insert("content-type", "application/octet-stream".parse().unwrap());
        return Ok(r);
    }
    if req.headers().get("upgrade").is_some() {
        return Ok(websocket(req));
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = v.to_str().unwrap_or("").to_owned();
        match headers.get_mut(k.as_str()) {
            Some(serde_json::Value::String(prev)) => {
                *prev = format!("{prev}, {v}");
            }
            _ => {
                headers.insert(k.as_str().to_owned(), serde_json::Value::String(v));
            }
        }
    }
    // Count the body, keeping only its start (uploads can be large).
    let mut body = req.into_body();
    let mut len = 0u64;
    let mut start = Vec::new();
    let mut trailers = serde_json::Map::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(d) = frame.data_ref() {
            len += d.len() as u64;
            let room = 4096usize.saturating_sub(start.len());
            start.extend_from_slice(&d[..d.len().min(room)]);
        } else if let Some(t) = frame.trailers_ref() {
            for (k, v) in t {
                trailers.insert(k.to_string(), v.to_str().unwrap_or("").into());
            }
        }
    }
    let echo = serde_json::json!({
        "backend": &*name,
        "method": method,
        "uri": uri,
        "version": version,
        "headers": headers,
        "body_len": len,
        "body": String::from_utf8_lossy(&start),
        "trailers": trailers,
    });
    let mut r = Response::new(full(echo.to_string()));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}

/// `/answer?Header=Value&…`: an answer with those headers (values
/// percent-decoded; `Content-Type` defaults to `text/plain`), after
/// `_delay=<ms>`, with status `_status`; the body is `answer <n>` (a
/// process-wide sequence number, so a cached copy shows an old number) or
/// `_len=<n>` bytes of compressible text.
async fn answer(query: &str) -> Response<Body> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::SeqCst) + 1;
    let mut r = Response::new(full(Bytes::new()));
    let mut body = format!("answer {n}").into_bytes();
    r.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    for (k, v) in url_pairs(query) {
        match k.as_str() {
            "_delay" => {
                let ms = v.parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            "_status" => *r.status_mut() = StatusCode::from_u16(v.parse().unwrap()).unwrap(),
            "_len" => {
                let line = b"Tollgate compresses text answers; this line repeats. ";
                let len: usize = v.parse().unwrap();
                body = line.iter().copied().cycle().take(len).collect();
            }
            _ => {
                let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
                if name == http::header::CONTENT_TYPE {
                    r.headers_mut().insert(name, v.parse().unwrap());
                } else {
                    r.headers_mut().append(name, v.parse().unwrap());
                }
            }
        }
    }
    let headers = std::mem::take(r.headers_mut());
    let status = r.status();
    let mut r = Response::new(full(body));
    *r.headers_mut() = headers;
    *r.status_mut() = status;
    r
}

/// Splits a query string into percent-decoded pairs.
pub fn url_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                    out.push(h);
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn futures_stream(
    total: u64,
    chunk: Bytes,
    aborted: Arc<AtomicUsize>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(chunk.len() as u64) as usize;
            if tx.send(Ok(Frame::data(chunk.slice(..n)))).await.is_err() {
                aborted.fetch_add(1, Ordering::SeqCst);
                return;
            }
            sent += n as u64;
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        let Ok(io) = upgrade.await else { return };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(io),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(msg)) = rx.next().await {
            if msg.is_text() || msg.is_binary() {
                if tx.send(msg).await.is_err() {
                    break;
                }
            } else if msg.is_close() {
                break;
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut()
        .insert("upgrade", "websocket".parse().unwrap());
    r.headers_mut()
        .insert("connection", "upgrade".parse().unwrap());
    r.headers_mut()
        .insert("sec-websocket-accept", key.parse().unwrap());
    r
}

impl Backend {
    /// Starts a backend named `name` (echoed back as `"backend"`).
    pub async fn start(name: &str) -> Backend {
        Self::start_with(name, "127.0.0.1:0".parse().unwrap(), Duration::ZERO).await
    }

    /// Starts a backend on `addr` (e.g. the address of one that was
    /// dropped) that waits `delay` before every answer. Dropping it closes
    /// its listener and every connection, as a killed process would.
    pub async fn start_with(name: &str, addr: SocketAddr, delay: Duration) -> Backend {
        Self::start_full(name, addr, delay, None).await
    }

    /// Starts an HTTPS backend with `tls` (e.g. [`super::tls::TestPki`]'s).
    pub async fn start_tls(name: &str, tls: Arc<tollgate_tls::rustls::ServerConfig>) -> Backend {
        let any = "127.0.0.1:0".parse().unwrap();
        Self::start_full(name, any, Duration::ZERO, Some(tls)).await
    }

    async fn start_full(
        name: &str,
        addr: SocketAddr,
        delay: Duration,
        tls: Option<Arc<tollgate_tls::rustls::ServerConfig>>,
    ) -> Backend {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let aborted = Arc::new(AtomicUsize::new(0));
        let name: Arc<str> = name.into();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (h, c, a) = (hits.clone(), connections.clone(), aborted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (h, name, a) = (h.clone(), name.clone(), a.clone());
                let mut stopped = stopped.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let (name, a) = (name.clone(), a.clone());
                        async move {
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            serve(req, name, a).await
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let conn =
                                builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = stopped.wait_for(|s| *s) => {}
                            }
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let conn =
                                builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = stopped.wait_for(|s| *s) => {}
                            }
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            hits,
            connections,
            aborted,
            task,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A TCP "backend" that answers every connection with fixed raw bytes
/// (to test broken framing), or, with `None`, accepts and never reads.
pub struct RawBackend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawBackend {
    pub async fn start(answer: Option<&'static [u8]>) -> RawBackend {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                match answer {
                    Some(bytes) => {
                        tokio::spawn(async move {
                            let mut buf = [0u8; 4096];
                            let _ = s.read(&mut buf).await;
                            let _ = s.write_all(bytes).await;
                            let _ = s.shutdown().await;
                        });
                    }
                    // Keep the socket open without ever reading from it.
                    None => held.push(s),
                }
            }
        });
        RawBackend { addr, task }
    }
}
