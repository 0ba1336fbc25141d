//! A real HTTP/2 (h2c) gRPC echo server, and a streaming HTTP/2 client.
//!
//! The server answers `application/grpc` requests with 200, echoes every
//! request message (data frame) back as it arrives, then ends with the
//! trailers `grpc-status: 0` and `grpc-message: echoed`; it reports the
//! path and the `te` header it saw as `x-path` and `x-te`. Other content
//! types get 415.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A body fed through a channel: data frames, then optional trailers.
pub struct ChannelBody(pub mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// One gRPC message with its 5-byte length prefix.
pub fn message(payload: &[u8]) -> Bytes {
    let mut m = vec![0u8];
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    m.extend_from_slice(payload);
    Bytes::from(m)
}

async fn echo(req: Request<Incoming>) -> Result<Response<ChannelBody>, Infallible> {
    let (tx, rx) = mpsc::channel(16);
    let grpc = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let mut resp = Response::new(ChannelBody(rx));
    if !grpc {
        *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return Ok(resp);
    }
    let h = resp.headers_mut();
    h.insert("content-type", "application/grpc".parse().unwrap());
    h.insert("x-path", req.uri().path().parse().unwrap());
    if let Some(te) = req.headers().get("te") {
        h.insert("x-te", te.clone());
    }
    let mut body = req.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                if tx.send(Frame::data(data)).await.is_err() {
                    return;
                }
            }
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("grpc-message", "echoed".parse().unwrap());
        let _ = tx.send(Frame::trailers(trailers)).await;
    });
    Ok(resp)
}

/// Starts the echo server on 127.0.0.1:0.
pub async fn start() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo))
                    .await;
            });
        }
    });
    (addr, task)
}

/// An h2c client connection to `addr` whose request bodies stream.
pub async fn client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<ChannelBody> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}
