//! Small real HTTP clients (hyper) for tests: HTTP/1.1 and h2c.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A pooled HTTP/1.1 client.
pub fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response with its whole body.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn collect(resp: Response<hyper::body::Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// GET `url` with extra headers.
pub async fn get(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    collect(resp).await
}

/// Sends raw bytes on a fresh TCP connection and returns everything read until close or timeout.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An h2c (HTTP/2 prior knowledge) connection.
pub async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// Sends `method url` with a body of `content_type` (empty body when None).
pub async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> Got {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some((ct, text)) => {
            b = b.header("content-type", ct);
            Bytes::from(text.to_owned())
        }
        None => Bytes::new(),
    };
    collect(
        client
            .request(b.body(Full::new(body)).unwrap())
            .await
            .unwrap(),
    )
    .await
}

/// POST a form body (`a=1&b=2`).
pub async fn post_form(client: &HttpClient, url: &str, form: &str) -> Got {
    send(
        client,
        "POST",
        url,
        Some(("application/x-www-form-urlencoded", form)),
        &[],
    )
    .await
}

/// POSTs a form that must create something: asserts 201.
pub async fn created(client: &HttpClient, url: &str, form: &str) -> Got {
    let got = post_form(client, url, form).await;
    assert_eq!(got.status, 201, "{}", got.text());
    got
}

/// Sends a JSON body.
pub async fn send_json(
    client: &HttpClient,
    method: &str,
    url: &str,
    json: &serde_json::Value,
) -> Got {
    send(
        client,
        method,
        url,
        Some(("application/json", &json.to_string())),
        &[],
    )
    .await
}

/// Creates service `s` (proxying to `backend_url`) and its route `r` on
/// `path` through the Admin API at `admin`.
/// A service `s` with a route on `path` (as [`admin_service_with_route`])
/// and one plugin on the service (an Admin API form), once the proxy
/// serves them.
pub async fn admin_service_with_plugin(
    client: &HttpClient,
    admin: &str,
    backend_url: &str,
    path: &str,
    plugin_form: &str,
) {
    admin_service_with_route(client, admin, backend_url, path).await;
    created(client, &format!("{admin}/services/s/plugins"), plugin_form).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

pub async fn admin_service_with_route(
    client: &HttpClient,
    admin: &str,
    backend_url: &str,
    path: &str,
) {
    let got = post_form(
        client,
        &format!("{admin}/services"),
        &format!("name=s&url={backend_url}"),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
    let got = post_form(
        client,
        &format!("{admin}/services/s/routes"),
        &format!("name=r&paths[]={path}"),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text());
}

/// Opens a WebSocket to `url` over `stream`, checks the 101, and checks
/// that 5 text messages (`"{label} {i}"`) come back as they were sent.
pub async fn websocket_echo<S>(url: &str, stream: S, label: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, resp) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("{label} {i}")))
            .await
            .unwrap();
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("{label} {i}"));
    }
    ws.close(None).await.unwrap();
}
