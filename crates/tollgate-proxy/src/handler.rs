//! The request path: one client request in, one response out.
//!
//! Order of work, following Kong's phases: framing checks (smuggling guard) →
//! route → protocol checks → build the upstream request (path joining,
//! forwarded headers) → send (pool, retries) → shape the response headers →
//! stream the body back. The log phase happens when the response body is
//! dropped. Dropping this future (client gone) cancels the upstream request.

use crate::access_log::LogRecord;
use crate::body::{Edge, ProxyBody};
use crate::context::{ConnInfo, Worker};
use crate::error::{ErrorKind, ProxyError};
use crate::headers::{self, *};
use crate::respond::error_response;
use crate::snapshot::{RouteEntry, Snapshot};
use crate::upstream::codec::Extra;
use crate::{request_id, upstream, SERVER_TOKEN, VIA_TOKEN};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tollgate_plugins::runtime::UriCaptureView;
use tollgate_plugins::runtime::PLUGIN_BODY_MAX;
use tollgate_router::{normalize_path, upstream_path, RequestInfo};

/// What the access log needs from the request, taken before it moves on.
struct LogSeed {
    started_at: SystemTime,
    method: http::Method,
    uri: Uri,
    version: Version,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

/// Serves one request. Never fails: every error becomes a response.
pub async fn handle(
    worker: Arc<Worker>,
    conn: Arc<ConnInfo>,
    req: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    if let Some(answer) = worker
        .shared
        .options
        .acme
        .as_ref()
        .and_then(|a| a.http_answer(req.uri().path()))
    {
        // A CA validating an HTTP-01 challenge of this node's ACME order.
        let mut resp = Response::new(ProxyBody::full(answer.into()));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(resp);
    }
    let request_id = request_id::from_incoming(req.headers().get(X_REQUEST_ID));
    let snapshot = worker.shared.snapshot.load_full();
    let seed = (worker.shared.access_log.is_some() || snapshot.has_loggers).then(|| LogSeed {
        started_at: SystemTime::now(),
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        referer: req.headers().get(header::REFERER).cloned(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
    });
    let accept = req.headers().get(header::ACCEPT).cloned();
    let (resp, trail) = match proxy(&worker, &conn, &snapshot, req, &request_id, start).await {
        Ok(ok) => ok,
        Err((e, trail)) => {
            if e.fault != crate::error::Fault::Downstream {
                tracing::warn!(request_id = ?request_id, "{e}");
            }
            let mut h = HeaderMap::new();
            if let Some(a) = accept {
                h.insert(header::ACCEPT, a);
            }
            let mut resp = error_response(e.status(), e.message(), &request_id, &h);
            if e.closes_connection() {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp.headers_mut().insert(
                X_KONG_RESPONSE_LATENCY,
                HeaderValue::from(start.elapsed().as_millis() as u64),
            );
            (resp, trail)
        }
    };
    Ok(attach_log(
        &worker, &conn, resp, seed, request_id, start, trail,
    ))
}

/// Route and service names (or ids) as the access log shows them.
type Names = Option<(Option<Arc<str>>, Option<Arc<str>>)>;

/// What the log phases need to know of the request's route and caller.
#[derive(Debug, Clone, Default)]
struct Trail {
    /// Route and service names, for the access log (only when it is on).
    names: Names,
    /// For plugins' log phases (only when the configuration has some).
    plugins: Option<Box<PluginTrail>>,
}

/// The ids and plugins a request's log phase needs.
#[derive(Debug, Clone, Default)]
struct PluginTrail {
    /// Matched route.
    route: Option<uuid::Uuid>,
    /// Its service.
    service: Option<uuid::Uuid>,
    /// The authenticated consumer.
    consumer: Option<uuid::Uuid>,
    /// The route's plugins that have a log phase (for this consumer).
    loggers: Vec<Arc<dyn tollgate_plugins::runtime::Plugin>>,
}

fn attach_log(
    worker: &Worker,
    conn: &ConnInfo,
    resp: Response<ProxyBody>,
    seed: Option<LogSeed>,
    request_id: HeaderValue,
    start: Instant,
    trail: Trail,
) -> Response<ProxyBody> {
    let log = worker.shared.access_log.clone();
    let plugins = trail.plugins.map(|p| *p).unwrap_or_default();
    if log.is_none() && plugins.loggers.is_empty() {
        return resp;
    }
    let Some(seed) = seed else { return resp };
    let (route, service) = trail.names.unwrap_or((None, None));
    let status = resp.status().as_u16();
    let record = LogRecord {
        client_ip: conn.client.ip(),
        started_at: seed.started_at,
        method: seed.method,
        uri: seed.uri,
        version: seed.version,
        status,
        bytes_sent: 0,
        referer: seed.referer,
        user_agent: seed.user_agent,
        request_id,
        latency: start.elapsed(),
        route,
        route_id: plugins.route,
        service_id: plugins.service,
        consumer: plugins.consumer,
        service,
    };
    let handle = crate::access_log::LogHandle::new(record, log, plugins.loggers);
    resp.map(|b| b.with_log(Some(handle)))
}

type Failure = (ProxyError, Trail);

/// Refuses request targets longer than allowed. (Ambiguous HTTP/1 framing
/// never gets this far: the HTTP/1 server refuses it while parsing the head,
/// see `downstream::request`; HTTP/2 has no such framing.)
fn check_framing(req: &Request<ProxyBody>, max_uri_len: usize) -> Result<(), ProxyError> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > max_uri_len {
        return Err(ProxyError::new(
            ErrorKind::UriTooLong,
            "request target too long",
        ));
    }
    Ok(())
}

/// The Host as sent (header, or `:authority` for HTTP/2), and without its port.
fn request_host(req: &Request<ProxyBody>) -> (&str, Option<&HeaderValue>) {
    let hv = req.headers().get(header::HOST);
    let full = match hv.and_then(|v| v.to_str().ok()) {
        Some(h) => h,
        None => req.uri().authority().map_or("", |a| a.as_str()),
    };
    (strip_port(full), hv)
}

fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rfind(':') {
        Some(i) if h[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &h[..i],
        _ => h,
    }
}

fn route_names(entry: &RouteEntry) -> Names {
    let route = entry
        .route
        .name
        .as_deref()
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(entry.route.id.to_string()));
    let service = entry.service.as_ref().map(|s| {
        s.service
            .name
            .as_deref()
            .map(Arc::from)
            .unwrap_or_else(|| Arc::from(s.service.id.to_string()))
    });
    Some((Some(route), service))
}

async fn proxy(
    worker: &Worker,
    conn: &Arc<ConnInfo>,
    snapshot: &Snapshot,
    mut req: Request<ProxyBody>,
    request_id: &HeaderValue,
    start: Instant,
) -> Result<(Response<ProxyBody>, Trail), Failure> {
    check_framing(&req, worker.shared.options.max_uri_len).map_err(|e| (e, Trail::default()))?;

    // Route.
    let raw_path = req.uri().path();
    let path = normalize_path(raw_path);
    let (host, host_value) = request_host(&req);
    let found = snapshot.router.find(&RequestInfo {
        method: req.method().as_str(),
        host,
        port: conn.port,
        path: &path,
        headers: req.headers(),
    });
    let Some(m) = found else {
        return Err((
            ProxyError::new(ErrorKind::NoRoute, "no route"),
            Trail::default(),
        ));
    };
    let Some(entry) = snapshot.routes.get(m.route) else {
        return Err((
            ProxyError::new(ErrorKind::NoRoute, "route index"),
            Trail::default(),
        ));
    };
    let mut trail = Trail {
        names: if worker.shared.access_log.is_some() {
            route_names(entry)
        } else {
            None
        },
        plugins: None,
    };
    if !conn.tls && !entry.accepts_http {
        return Ok((https_required(entry, host, &req, request_id), trail));
    }
    if entry.grpc {
        let refusal = if req.version() != Version::HTTP_2 {
            Some((StatusCode::UPGRADE_REQUIRED, "Please use HTTP2 protocol"))
        } else if !req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"))
        {
            Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Non-gRPC request matched gRPC route",
            ))
        } else {
            None
        };
        if let Some((status, message)) = refusal {
            let r = crate::respond::error_response(status, message, request_id, req.headers());
            return Ok((r, trail));
        }
    }
    // Upstream target and headers. A route without a service is answered
    // by its plugins (static files, request-termination) or fails below.
    let route = &entry.route;
    let mut target = upstream_path(
        entry
            .service
            .as_ref()
            .and_then(|s| s.service.path.as_deref()),
        &path,
        m.matched_len,
        route.strip_path,
    );
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    let mut uri = Uri::from_maybe_shared(Bytes::from(target)).map_err(|_| {
        (
            ProxyError::new(ErrorKind::BadRequest, "upstream uri"),
            trail.clone(),
        )
    })?;

    let preserved_host = if route.preserve_host {
        match host_value {
            Some(v) => Some(v.clone()),
            None => req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
        }
    } else {
        None
    };
    // The client's Host, kept for X-Forwarded-Host (a cheap shared clone).
    let client_host = host_value.cloned();
    let prefix_len = (route.strip_path && m.matched_len > 1).then_some(m.matched_len);
    drop(path);
    let upgrade = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
    let client_upgrade = if upgrade {
        req.extensions_mut()
            .remove::<crate::downstream::ClientUpgrade>()
    } else {
        None
    };

    let client_version = req.version();
    let (mut parts, body) = req.into_parts();
    // Hop-by-hop headers go first, so a client's `Connection: x-consumer-id`
    // cannot delete what plugins set below.
    headers::remove_hop_by_hop(&mut parts.headers, upgrade);
    let mut plugin_headers = Vec::new();
    let mut strip_args = Vec::new();
    let mut body_limit = None;
    let mut identity = None;
    let mut hooks = Vec::new();
    let mut body = body;
    if !entry.plugins.is_empty() {
        let unsized_body = {
            use http_body::Body as _;
            !body.is_end_stream() && body.size_hint().exact().is_none()
        };
        let buffered = if entry
            .plugins
            .iter()
            .any(|s| s.wants_body(&parts.method, &parts.headers))
        {
            // Boxed, as the access phase below: routes that do not read
            // bodies do not carry this future's state.
            let read = Box::pin(read_body(body, PLUGIN_BODY_MAX)).await;
            body = ProxyBody::empty();
            Some(read.map_err(|e| (e, trail.clone()))?)
        } else {
            None
        };
        // Boxed: routes without plugins do not carry this future's state.
        let captures = m
            .uri_captures
            .as_ref()
            .map(|c| UriCaptureView {
                positional: &c.positional,
                named: &c.named,
            })
            .unwrap_or_default();
        let options = &worker.shared.options;
        let forwarded_ip = if conn.trusted {
            options
                .real_ip
                .resolve(&parts.headers, &options.trusted_ips)
        } else {
            None
        };
        let access = Box::pin(access_phase(
            entry,
            &mut parts,
            conn,
            buffered,
            (captures, uri.path()),
            forwarded_ip,
            unsized_body,
        ))
        .await;
        if snapshot.has_loggers {
            let consumer = access.identity.as_ref().map(|i| i.consumer.id);
            trail.plugins = Some(Box::new(PluginTrail {
                route: Some(entry.route.id),
                service: entry.route.service,
                consumer,
                loggers: entry
                    .plugins
                    .iter()
                    .filter_map(|s| s.for_consumer(consumer))
                    .filter(|p| p.logs())
                    .cloned()
                    .collect(),
            }));
        }
        plugin_headers = access.response_headers;
        strip_args = access.strip_query_args;
        body_limit = access.body_limit;
        identity = access.identity;
        hooks = access.hooks;
        if let Some(early) = access.early {
            let mut resp = match early {
                Early::Response(e) => crate::respond::early_response(e, request_id, &parts.headers),
                Early::Answer(a) => crate::respond::answer(a, request_id),
            };
            for (name, value) in plugin_headers {
                resp.headers_mut().append(name, value);
            }
            if let (true, Some(v)) = (conn.tls, &entry.hsts) {
                resp.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
            }
            if !discard_body(body).await {
                // What follows on the connection cannot be told apart from
                // the unread body: the client must not reuse it.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Ok((with_hooks(resp, hooks), trail));
        }
        if access.upstream_path.is_some() || access.upstream_query.is_some() {
            let path = access.upstream_path.as_deref().unwrap_or(uri.path());
            let query = access
                .upstream_query
                .as_deref()
                .or(uri.query())
                .filter(|q| !q.is_empty());
            let target = match query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_owned(),
            };
            match Uri::try_from(target) {
                Ok(u) => uri = u,
                Err(_) => {
                    return Err((
                        ProxyError::new(ErrorKind::BadRequest, "plugin-made upstream uri"),
                        trail,
                    ))
                }
            }
        }
        if let Some(m) = access.upstream_method {
            parts.method = m;
        }
        if let Some(b) = access.body {
            // Sent with its (possibly new) length; the client's framing
            // headers are replaced by the upstream codec.
            body = ProxyBody::full(b);
        }
    }
    let client_uri = std::mem::replace(
        &mut parts.uri,
        if strip_args.is_empty() {
            uri
        } else {
            strip_query(uri, &strip_args)
        },
    );
    let fwd_host = match &client_host {
        Some(v) => v.to_str().ok().map(strip_port),
        None => client_uri.authority().map(|a| strip_port(a.as_str())),
    };
    // The matched prefix of the normalised path (normalising again is
    // cheaper than keeping a copy of the path for every request).
    let normalized = prefix_len.map(|_| normalize_path(client_uri.path()));
    let prefix = prefix_len.and_then(|n| normalized.as_deref()?.get(..n));
    let mut xff = Vec::new();
    let extras = forwarded(
        &parts.headers,
        conn,
        Forwarded {
            host: fwd_host,
            path: client_uri.path(),
            prefix,
            request_id,
        },
        &mut xff,
    );
    let Some(service) = entry.service.as_ref() else {
        return Err((
            ProxyError::new(ErrorKind::NoService, "route without service"),
            trail,
        ));
    };
    let mut up_body = body;
    if let Some(limit) = body_limit {
        up_body = up_body.with_limit(limit);
    }

    let proxy_latency = start.elapsed();
    let balancer = &service.balancer;
    let key = if balancer.algorithm() == tollgate_model::Algorithm::ConsistentHashing {
        let options = &worker.shared.options;
        let client_ip = conn
            .trusted
            .then(|| {
                options
                    .real_ip
                    .resolve(&parts.headers, &options.trusted_ips)
            })
            .flatten()
            .unwrap_or_else(|| conn.client.ip());
        let (on, fallback) = &balancer.hash_on;
        crate::balancer::hash::key(
            on,
            fallback,
            &crate::balancer::hash::HashInput {
                headers: &parts.headers,
                uri: &client_uri,
                client_ip,
                consumer: identity.as_ref().map(|i| i.consumer.id),
                captures: m.uri_captures.as_ref().map_or(&[], |c| &c.named[..]),
            },
        )
    } else {
        crate::balancer::hash::HashKey::default()
    };
    if service.h2 {
        let mut h = std::mem::take(&mut parts.headers);
        upstream::grpc::apply_extras(&mut h, &extras);
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        // The authority is the target's unless the route preserves the
        // client's (checked as an authority by the gRPC client).
        h.remove(header::HOST);
        if let Some(host) = &preserved_host {
            h.insert(header::HOST, host.clone());
        }
        let mut out = Request::new(up_body);
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = parts.uri.clone();
        *out.headers_mut() = h;
        let resp = upstream::grpc::send(&worker.pool, service, out, key.hash)
            .await
            .map_err(|e| (e, trail.clone()))?;
        let (mut head, body) = resp.into_parts();
        for (name, value) in plugin_headers {
            head.headers.append(name, value);
        }
        if let (true, Some(v)) = (conn.tls, &entry.hsts) {
            head.headers
                .insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
        let consumer = identity.as_ref().map(|i| i.consumer.id);
        for slot in entry.plugins.iter() {
            if let Some(p) = slot.for_consumer(consumer) {
                p.header_filter(identity.as_ref(), &mut head.headers);
            }
        }
        let upstream_latency = start.elapsed() - proxy_latency;
        let body = body.with_edge(Edge {
            request_id: request_id.clone(),
            upstream_ms: upstream_latency.as_millis() as u64,
            proxy_ms: proxy_latency.as_millis() as u64,
            raw_head: None,
            plugin_headers: Vec::new(),
        });
        return Ok((Response::from_parts(head, body), trail));
    }
    let answer = upstream::send(
        &worker.pool,
        service,
        upstream::Outbound {
            parts: &parts,
            extras: &extras,
            preserved_host: preserved_host.as_ref(),
            upgrade,
            raw_head: entry.raw_answers && !upgrade && client_version <= Version::HTTP_11,
        },
        up_body,
        key.hash,
    )
    .await
    .map_err(|e| (e, trail.clone()))?;
    headers::recycle_map(std::mem::take(&mut parts.headers));
    let upstream_latency = start.elapsed() - proxy_latency;

    let response = answer.response;
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let (Some(client_upgrade), Some(upstream)) = (client_upgrade, answer.upgraded) else {
            // A 101 to a request that did not ask for it is broken framing.
            return Err((
                ProxyError::new(ErrorKind::BadResponse, "unsolicited 101"),
                trail,
            ));
        };
        tokio::spawn(tunnel(
            client_upgrade,
            upstream,
            service.read_timeout,
            Arc::clone(conn),
        ));
    }
    let (mut parts, body) = response.into_parts();
    // The backend's hop-by-hop headers were left out when its head was parsed.
    let h = &mut parts.headers;
    let mut plugin_headers = plugin_headers;
    if let Some(cookie) = key.set_cookie {
        plugin_headers.push((header::SET_COOKIE, cookie));
    }
    if let (true, Some(v)) = (conn.tls, &entry.hsts) {
        plugin_headers.push((header::STRICT_TRANSPORT_SECURITY, v.clone()));
    }
    // Answers no plugin edits take the plugins' headers at the edge (no
    // header map is built for them); others get them in the map, where the
    // header_filter phase sees them.
    let edge_headers = if entry.raw_answers {
        plugin_headers
    } else {
        for (name, value) in plugin_headers {
            h.append(name, value);
        }
        Vec::new()
    };
    // header_filter phase (e.g. response-transformer), with the consumer's
    // instances; then the plugins that filter this answer's body.
    let mut filters = Vec::new();
    if !entry.plugins.is_empty() {
        let consumer = identity
            .as_ref()
            .map(|i: &tollgate_plugins::runtime::Identity| i.consumer.id);
        for slot in entry.plugins.iter() {
            if let Some(p) = slot.for_consumer(consumer) {
                p.header_filter(identity.as_ref(), h);
            }
        }
        if !switching {
            filters = entry
                .plugins
                .iter()
                .filter_map(|s| s.for_consumer(consumer))
                .filter(|p| p.filters_body(h))
                .cloned()
                .collect();
        }
        if !filters.is_empty() {
            h.remove(header::CONTENT_LENGTH);
        }
    }
    let body = if switching {
        ProxyBody::empty()
    } else {
        ProxyBody::upstream(body).with_filters(filters)
    };
    let body = body.with_edge(Edge {
        request_id: request_id.clone(),
        upstream_ms: upstream_latency.as_millis() as u64,
        proxy_ms: proxy_latency.as_millis() as u64,
        raw_head: answer.raw_head,
        plugin_headers: edge_headers,
    });
    let resp = Response::from_parts(parts, body);
    if switching || hooks.is_empty() {
        return Ok((resp, trail));
    }
    Ok((with_hooks(resp, hooks), trail))
}

/// Reads and drops a request body that an early answer left unread (as
/// nginx discards it), so the connection can serve the next request; false
/// when it is too large, undeclared or too slow to wait for.
async fn discard_body(body: ProxyBody) -> bool {
    use http_body::Body as _;
    if body.is_end_stream() {
        return true;
    }
    const MAX: u64 = 64 * 1024;
    if body.size_hint().exact().is_none_or(|n| n > MAX) {
        return false;
    }
    let read = read_body(body, MAX as usize);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), read).await,
        Ok(Ok(_))
    )
}

/// Runs the request's answer hooks over `resp` (the last registered first;
/// see [`AnswerHook`](tollgate_plugins::runtime::AnswerHook)).
fn with_hooks(
    mut resp: Response<ProxyBody>,
    hooks: Vec<Box<dyn tollgate_plugins::runtime::AnswerHook>>,
) -> Response<ProxyBody> {
    use tollgate_plugins::runtime::HookStep;
    if hooks.is_empty() {
        return resp;
    }
    let mut status = resp.status();
    let mut kept = Vec::with_capacity(hooks.len());
    let mut rewrites = false;
    for mut hook in hooks.into_iter().rev() {
        match hook.head(&mut status, resp.headers_mut()) {
            HookStep::Aside => {}
            HookStep::Watch => kept.push(hook),
            HookStep::Rewrite => {
                rewrites = true;
                kept.push(hook);
            }
        }
    }
    *resp.status_mut() = status;
    if rewrites {
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    resp.map(|b| b.with_hooks(kept, rewrites))
}

/// How the access phase ended a request early.
enum Early {
    /// Kong's negotiated answer (errors, plugin bodies).
    Response(tollgate_plugins::runtime::EarlyResponse),
    /// A whole answer (a cached response, a static file).
    Answer(tollgate_plugins::runtime::Answer),
}

/// What the access phase decided, for the rest of the request.
struct Access {
    /// An answer given instead of proxying.
    early: Option<Early>,
    /// Hooks over the answer.
    hooks: Vec<Box<dyn tollgate_plugins::runtime::AnswerHook>>,
    /// Headers for the answer (proxied or early).
    response_headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Query arguments removed before going upstream.
    strip_query_args: Vec<String>,
    /// Request-size limit for bodies of unknown size.
    body_limit: Option<u64>,
    /// Who the request was authenticated as.
    identity: Option<tollgate_plugins::runtime::Identity>,
    /// The buffered request body (possibly changed by a plugin).
    body: Option<Bytes>,
    /// Upstream method, path and query set by plugins.
    upstream_method: Option<http::Method>,
    upstream_path: Option<String>,
    upstream_query: Option<String>,
}

/// Runs the route's plugins' access phases in order (see [`Flow`]).
///
/// [`Flow`]: tollgate_plugins::runtime::Flow
async fn access_phase(
    entry: &RouteEntry,
    parts: &mut http::request::Parts,
    conn: &ConnInfo,
    body: Option<Bytes>,
    (uri_captures, routed_path): (UriCaptureView<'_>, &str),
    forwarded_ip: Option<std::net::IpAddr>,
    unsized_body: bool,
) -> Access {
    use tollgate_plugins::runtime::{AccessCtx, EarlyResponse, Flow};
    // Plugins see the address a trusted proxy forwarded (Kong's
    // `kong.client.get_forwarded_ip()`), else the peer's.
    let forwarded_text = forwarded_ip.map(|ip| ip.to_string());
    let mut ctx = AccessCtx {
        method: &parts.method,
        uri: &parts.uri,
        headers: &mut parts.headers,
        client_ip: forwarded_ip.unwrap_or(conn.client.ip()),
        client_ip_text: match &forwarded_text {
            Some(t) => t,
            None => conn.client_ip_value.to_str().unwrap_or(""),
        },
        tls: conn.tls,
        trusted_client: conn.trusted,
        client_certs: conn.client_certs.as_deref(),
        retried: false,
        identity: None,
        service: entry.route.service,
        response_headers: Vec::new(),
        strip_query_args: Vec::new(),
        body_limit: None,
        scratch: None,
        upstream_method: None,
        upstream_path: None,
        upstream_query: None,
        uri_captures,
        routed_path,
        unsized_body,
        body,
        hooks: Vec::new(),
    };
    let mut early = None;
    // Rewrite phases first (no consumer is known yet), then access phases;
    // consumer-scoped instances replace the general one once an
    // authentication plugin has identified the consumer.
    let phases = entry
        .plugins
        .iter()
        .map(|s| (true, s))
        .chain(entry.plugins.iter().map(|s| (false, s)));
    for (rewrite, slot) in phases {
        let consumer = ctx.identity.as_ref().map(|i| i.consumer.id);
        let Some(plugin) = slot.for_consumer(if rewrite { None } else { consumer }) else {
            continue;
        };
        let run = |ctx: &mut AccessCtx<'_>| {
            if rewrite {
                plugin.rewrite(ctx)
            } else {
                plugin.access(ctx)
            }
        };
        let mut flow = run(&mut ctx);
        if let Flow::Retry(wait) = flow {
            wait.await;
            ctx.retried = true;
            flow = run(&mut ctx);
            ctx.retried = false;
        }
        match flow {
            Flow::Continue => {}
            Flow::Respond(answer) => {
                early = Some(Early::Response(answer));
                break;
            }
            Flow::Pending(answer) => {
                early = Some(Early::Response(answer.await));
                break;
            }
            Flow::Answer(answer) => {
                early = Some(Early::Answer(*answer));
                break;
            }
            Flow::PendingAnswer(answer) => {
                early = Some(Early::Answer(answer.await));
                break;
            }
            Flow::Retry(_) => {
                tracing::error!(plugin = plugin.name(), "asked to be run a third time");
                early = Some(Early::Response(EarlyResponse::message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An unexpected error occurred",
                )));
                break;
            }
        }
    }
    Access {
        strip_query_args: if early.is_some() {
            Vec::new()
        } else {
            ctx.strip_query_args
        },
        early,
        hooks: ctx.hooks,
        response_headers: ctx.response_headers,
        body_limit: ctx.body_limit,
        identity: ctx.identity,
        body: ctx.body,
        upstream_method: ctx.upstream_method,
        upstream_path: ctx.upstream_path,
        upstream_query: ctx.upstream_query,
    }
}

/// Reads a request body for the plugins that asked for it, up to `max`
/// bytes (past that: 413, as request-size-limiting answers).
async fn read_body(mut body: ProxyBody, max: usize) -> Result<Bytes, ProxyError> {
    use http_body_util::BodyExt;
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e {
            crate::body::BodyError::TooLarge => {
                ProxyError::new(ErrorKind::BodyTooLarge, "request body too large")
            }
            e => ProxyError::new(ErrorKind::BadRequest, format!("request body: {e}")),
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ProxyError::new(
                    ErrorKind::BodyTooLarge,
                    "request body larger than plugins may read",
                ));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// The upstream target without the named query arguments.
fn strip_query(uri: Uri, names: &[String]) -> Uri {
    let Some(q) = uri.query() else { return uri };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| {
            !names
                .iter()
                .any(|n| p.split('=').next() == Some(n.as_str()))
        })
        .collect();
    let mut target = uri.path().to_owned();
    if !kept.is_empty() {
        target.push('?');
        target.push_str(&kept.join("&"));
    }
    Uri::from_maybe_shared(Bytes::from(target)).unwrap_or(uri)
}

/// What the forwarded headers say about the client's request.
struct Forwarded<'a> {
    host: Option<&'a str>,
    path: &'a str,
    prefix: Option<&'a str>,
    request_id: &'a HeaderValue,
}

/// The headers Tollgate sets upstream, as Kong does: X-Forwarded-*,
/// X-Real-IP, Via and X-Request-Id. Incoming X-Forwarded-* values are kept
/// only from trusted clients. They are written straight into the upstream
/// request head: the client's header map is never touched for them.
fn forwarded<'a>(
    h: &HeaderMap,
    conn: &'a ConnInfo,
    f: Forwarded<'a>,
    xff: &'a mut Vec<u8>,
) -> [Extra<'a>; 9] {
    let trusted = conn.trusted;
    let ip = conn.client_ip_value.as_bytes();
    let prev = if trusted {
        h.get(X_FORWARDED_FOR)
    } else {
        None
    };
    let xff_value: &[u8] = match prev {
        Some(prev) => {
            xff.extend_from_slice(prev.as_bytes());
            xff.extend_from_slice(b", ");
            xff.extend_from_slice(ip);
            xff
        }
        None => ip,
    };
    // A trusted client's own value is passed on (not replaced).
    let own = |name: &'static str, value: Option<&'a [u8]>| Extra {
        name: if trusted && h.contains_key(name) {
            ""
        } else {
            name
        },
        value,
        replace: true,
    };
    let proto: &'static [u8] = if conn.tls { b"https" } else { b"http" };
    [
        Extra::replace("x-forwarded-for", Some(xff_value)),
        own("x-forwarded-proto", Some(proto)),
        own(
            "x-forwarded-host",
            f.host.map(str::as_bytes).filter(|v| valid_value(v)),
        ),
        own("x-forwarded-port", Some(conn.port_value.as_bytes())),
        own("x-forwarded-path", Some(f.path.as_bytes())),
        own(
            "x-forwarded-prefix",
            f.prefix.map(str::as_bytes).filter(|v| valid_value(v)),
        ),
        own("x-real-ip", Some(ip)),
        Extra::replace("x-request-id", Some(f.request_id.as_bytes())),
        Extra {
            name: "via",
            value: Some(VIA_TOKEN.as_bytes()),
            replace: false,
        },
    ]
}

/// Whether bytes can be sent as a header value (no control characters).
fn valid_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Kong's answer to plain http on an https-only route: 426, or a redirect.
fn https_required(
    entry: &RouteEntry,
    host: &str,
    req: &Request<ProxyBody>,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let code = entry.route.https_redirect_status_code;
    if matches!(code, 301 | 302 | 307 | 308) {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{pq}");
        let mut r = Response::new(ProxyBody::empty());
        *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r.headers_mut()
            .insert(header::SERVER, HeaderValue::from_static(SERVER_TOKEN));
        r.headers_mut().insert(X_REQUEST_ID, request_id.clone());
        return r;
    }
    let mut r = error_response(
        StatusCode::UPGRADE_REQUIRED,
        "Please use HTTPS protocol",
        request_id,
        req.headers(),
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    r.headers_mut().insert(
        header::UPGRADE,
        HeaderValue::from_static("TLS/1.2, HTTP/1.1"),
    );
    r
}

/// Copies bytes both ways between an upgraded client and backend connection.
///
/// The tunnel ends when either side closes, or when nothing crossed it for
/// `idle` (the service's read_timeout, as nginx's proxy_read_timeout for
/// WebSockets). It holds the client connection's slot under
/// `max_connections` (`conn`) for as long as it lives.
async fn tunnel(
    client: crate::downstream::ClientUpgrade,
    upstream: (Box<dyn crate::downstream::Switched>, BytesMut),
    idle: std::time::Duration,
    conn: Arc<ConnInfo>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((mut c, client_early)) = client.socket().await else {
        tracing::debug!("client upgrade did not complete");
        return;
    };
    let (mut u, early) = upstream;
    // Bytes either side sent right behind the handshake go first.
    if !early.is_empty() && c.write_all(&early).await.is_err() {
        return;
    }
    if !client_early.is_empty() && u.write_all(&client_early).await.is_err() {
        return;
    }
    let mut buf_c = vec![0u8; 16 * 1024];
    let mut buf_u = vec![0u8; 16 * 1024];
    loop {
        let step = tokio::time::timeout(idle, async {
            tokio::select! {
                r = c.read(&mut buf_c) => match r {
                    Ok(0) | Err(_) => Err(()),
                    Ok(n) => u.write_all(&buf_c[..n]).await.map_err(|_| ()),
                },
                r = u.read(&mut buf_u) => match r {
                    Ok(0) | Err(_) => Err(()),
                    Ok(n) => c.write_all(&buf_u[..n]).await.map_err(|_| ()),
                },
            }
        })
        .await;
        match step {
            Ok(Ok(())) => continue,
            Ok(Err(())) => break,
            Err(_) => {
                tracing::debug!(client = %conn.client, "tunnel idle for {idle:?}; closing");
                break;
            }
        }
    }
    let _ = c.shutdown().await;
    let _ = u.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(strip_port("a.com:8000"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
