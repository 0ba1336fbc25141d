//! The HTTP client the ACME protocol runs over: hyper's HTTP/1.1 client,
//! one connection per request, `https://` directories verified against the
//! node's trusted authorities (`lua_ssl_trusted_certificate`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tollgate_tls::ClientTls;

/// Largest response accepted (a certificate chain is a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Bound on one exchange with the CA.
const TIMEOUT: Duration = Duration::from_secs(30);

/// ACME's HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct AcmeHttp {
    pub(crate) tls: Arc<ClientTls>,
}

fn other(msg: String) -> instant_acme::Error {
    instant_acme::Error::Other(msg.into())
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn exchange(
    mut req: http::Request<BodyWrapper<Bytes>>,
    tls: Arc<ClientTls>,
) -> Result<http::Response<Full<Bytes>>, String> {
    let uri = req.uri().clone();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{uri}: not an http(s) URL")),
    };
    let host = uri.host().ok_or_else(|| format!("{uri}: no host"))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{uri}: connect: {e}"))?;
    let io: Box<dyn Io> = if https {
        let config = tls.verified().map_err(|e| format!("{uri}: {e}"))?;
        let name = host.trim_start_matches('[').trim_end_matches(']');
        Box::new(
            tollgate_tls::connect(config, name, tcp)
                .await
                .map_err(|e| format!("{uri}: {e}"))?,
        )
    } else {
        Box::new(tcp)
    };
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    *req.uri_mut() = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| format!("{uri}: {e}"))?;
    let host_value = http::HeaderValue::from_str(&authority).map_err(|e| format!("{uri}: {e}"))?;
    req.headers_mut().insert(http::header::HOST, host_value);
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("tollgate-acme"),
    );
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("{uri}: body: {e}"))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, Full::new(body)))
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            match tokio::time::timeout(TIMEOUT, exchange(req, tls)).await {
                Ok(Ok(resp)) => Ok(BytesResponse::from(resp)),
                Ok(Err(e)) => Err(other(e)),
                Err(_) => Err(other(format!("no answer from the CA in {TIMEOUT:?}"))),
            }
        })
    }
}
