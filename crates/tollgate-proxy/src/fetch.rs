//! HTTP and HTTPS GETs for plugins (a jwt credential's JWKS document): one
//! connection per fetch, bounded in time and size; `https://` servers are
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
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tollgate_tls::connect(config, name, tcp)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(Box::new(stream))
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn get(url: String, tls: Arc<ClientTls>) -> Result<Vec<u8>, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
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
    let stream = open(&url, &tls, https, host, port).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, crate::SERVER_TOKEN)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("{url}: status {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("{url}: body: {e}"))?;
    Ok(body.to_bytes().to_vec())
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
