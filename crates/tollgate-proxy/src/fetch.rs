//! HTTP and HTTPS requests the node makes itself (a jwt credential's JWKS
//! document, the ACME protocol): one connection per request, bounded in time and size; `https://` servers are
//! verified against the node's trusted authorities
//! (`lua_ssl_trusted_certificate`). Runs on the requesting worker's
//! runtime; nothing here blocks a thread.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tollgate_plugins::runtime::{BoxFuture, Fetcher};
use tollgate_tls::ClientTls;

/// Largest document accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Fetches `http://` and `https://` URLs with hyper's HTTP/1 client.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    /// Bound on the whole exchange (connect, handshake, request, body).
    pub timeout: Duration,
    /// Trusted authorities for `https://`.
    pub tls: Arc<ClientTls>,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        HttpFetcher {
            timeout: Duration::from_secs(5),
            tls: Arc::default(),
        }
    }
}

/// Opens the connection: TCP, then TLS for `https`.
async fn open(
    url: &str,
    tls: &ClientTls,
    https: bool,
    host: &str,
    port: u16,
) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{url}: connect: {e}"))?;
    if !https {
        return Ok(Box::new(tcp));
    }
    let config = tls.verified().map_err(|e| format!("{url}: {e}"))?;
    // `[::1]` in a URL is the name `::1` for TLS.
    let name = crate::balancer::registry::bare_host(host);
    let stream = tollgate_tls::connect(config, name, tcp)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(Box::new(stream))
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Sends `req`, whose URI is an absolute `http://` or `https://` URL, over
/// a new HTTP/1.1 connection (`https` verified against `tls`'s trusted
/// authorities) and returns the answer with its body, refused beyond
/// `max_body` bytes. The request gets `Host` from the URL, and Tollgate's
/// `User-Agent` unless it has one. Errors name the URL.
pub async fn exchange<B>(
    mut req: http::Request<B>,
    tls: &ClientTls,
    max_body: usize,
) -> Result<http::Response<Bytes>, String>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let uri = req.uri().clone();
    let url = uri.to_string();
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "{url}: only http:// and https:// URLs can be fetched"
            ))
        }
    };
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let stream = open(&url, tls, https, host, port).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    *req.uri_mut() = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| format!("{url}: {e}"))?;
    let h = req.headers_mut();
    h.insert(
        http::header::HOST,
        http::HeaderValue::from_str(&authority).map_err(|e| format!("{url}: {e}"))?,
    );
    h.entry(http::header::USER_AGENT)
        .or_insert(http::HeaderValue::from_static(crate::SERVER_TOKEN));
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| format!("{url}: body: {e}"))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

async fn get(url: String, tls: Arc<ClientTls>) -> Result<Vec<u8>, String> {
    let req = http::Request::get(&url)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = exchange(req, &tls, MAX_BODY).await?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("{url}: status {}", resp.status()));
    }
    Ok(resp.into_body().to_vec())
}

impl Fetcher for HttpFetcher {
    fn get(&self, url: &str) -> BoxFuture<Result<Vec<u8>, String>> {
        let (url, timeout, tls) = (url.to_owned(), self.timeout, self.tls.clone());
        Box::pin(async move {
            match tokio::time::timeout(timeout, get(url.clone(), tls)).await {
                Ok(r) => r,
                Err(_) => Err(format!("{url}: timed out after {timeout:?}")),
            }
        })
    }
}
