//! The HTTP client the ACME protocol runs over: the node's own
//! ([`tollgate_proxy::fetch::exchange`]: one HTTP/1.1 connection per
//! request, `https://` directories verified against the node's trusted
//! authorities, `lua_ssl_trusted_certificate`).

use bytes::Bytes;
use http_body_util::Full;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
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

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let exchange = tollgate_proxy::fetch::exchange(req, &tls, MAX_BODY);
            match tokio::time::timeout(TIMEOUT, exchange).await {
                Ok(Ok(resp)) => Ok(BytesResponse::from(resp.map(Full::new))),
                Ok(Err(e)) => Err(other(e)),
                Err(_) => Err(other(format!("no answer from the CA in {TIMEOUT:?}"))),
            }
        })
    }
}
