//! A real gRPC echo server built on tonic's server (h2c, or TLS with ALPN
//! h2), and a streaming HTTP/2 client.
//!
//! Every method of the server echoes each request message back as it
//! arrives (a bidirectional stream; a unary call is a stream of one) and
//! ends with `grpc-status: 0`. It reports the path and the `te` header it
//! saw as `x-path` and `x-te` response headers.

use bytes::{Buf, BufMut, Bytes};
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::Status;

/// Messages as raw bytes (no protobuf: the echo does not look inside).
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// The echo method: the request stream is the response stream.
#[derive(Debug, Clone, Copy)]
struct Echo;

impl tower_service::Service<tonic::Request<Streaming<Bytes>>> for Echo {
    type Response = tonic::Response<Streaming<Bytes>>;
    type Error = Status;
    type Future = std::future::Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Streaming<Bytes>>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(req.into_inner())))
    }
}

async fn serve(req: Request<Incoming>) -> Result<Response<tonic::body::Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let te = req.headers().get("te").cloned();
    let mut resp = tonic::server::Grpc::new(RawCodec)
        .streaming(Echo, req)
        .await;
    let h = resp.headers_mut();
    h.insert("x-path", path.parse().unwrap());
    if let Some(te) = te {
        h.insert("x-te", te);
    }
    Ok(resp)
}

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

/// Starts the echo server (h2c) on 127.0.0.1:0.
pub async fn start() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    start_with(None).await
}

/// Starts the echo server on 127.0.0.1:0, over TLS with `tls` (ALPN h2
/// is added) when given.
pub async fn start_with(
    tls: Option<Arc<tollgate_tls::rustls::ServerConfig>>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.map(|c| {
        let mut c = (*c).clone();
        c.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(c))
    });
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                let service = hyper::service::service_fn(serve);
                let _ = match acceptor {
                    Some(a) => match a.accept(stream).await {
                        Ok(tls) => h2.serve_connection(TokioIo::new(tls), service).await,
                        Err(_) => return,
                    },
                    None => h2.serve_connection(TokioIo::new(stream), service).await,
                };
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

/// An HTTP/2 client connection over TLS to `addr` (ALPN h2, SNI `sni`)
/// whose request bodies stream.
pub async fn client_tls(
    addr: SocketAddr,
    config: Arc<tollgate_tls::rustls::ClientConfig>,
    sni: &str,
) -> hyper::client::conn::http2::SendRequest<ChannelBody> {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tollgate_tls::connect(Arc::new(config), sni, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}
