//! The status listener's answers (`/status`, `/status/ready`), as Kong's.

use crate::body::ProxyBody;
use crate::context::{ConnInfo, Worker};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;

fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static(crate::SERVER_TOKEN),
    );
    r
}

/// Serves `GET /status` (node, connection and plugin failure counts) and `GET /status/ready`
/// (200 once a configuration is loaded, 503 while draining).
pub async fn handle(
    worker: Arc<Worker>,
    _conn: Arc<ConnInfo>,
    req: Request<Incoming>,
    ready: bool,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"message":"Method not allowed"}"#.into(),
        ));
    }
    let shared = &worker.shared;
    Ok(match req.uri().path() {
        "/status" | "/status/" => {
            let snap = shared.snapshot.load();
            let used = shared.options.max_connections - shared.connections.available_permits();
            let body = serde_json::json!({
                "server": { "connections_active": used },
                "configuration": {
                    "services": snap.config.services.len(),
                    "routes": snap.config.routes.len(),
                    "upstreams": snap.config.upstreams.len(),
                },
                "plugins": {
                    "rate_limiting_redis_failures": tollgate_plugins::plugins::rate_limiting::REDIS_FAILURES
                        .load(std::sync::atomic::Ordering::Relaxed),
                },
                "version": env!("CARGO_PKG_VERSION"),
            });
            json(StatusCode::OK, body.to_string())
        }
        "/status/ready" => {
            if ready {
                json(StatusCode::OK, r#"{"message":"ready"}"#.into())
            } else {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"message":"not ready"}"#.into(),
                )
            }
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"message":"Not found"}"#.into()),
    })
}
