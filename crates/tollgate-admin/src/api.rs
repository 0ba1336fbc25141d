//! The Admin API's HTTP surface: Kong's paths, methods, status codes,
//! pagination and tag filters, over the [`ControlPlane`].

use crate::decode::{self, FieldType};
use crate::error::AdminError;
use crate::kinds::{self, Kind};
use crate::state::{foreign_key, ControlPlane, Entry, Op};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Largest accepted request body (a whole declarative file for POST /config).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The Admin API service.
#[derive(Debug)]
pub struct AdminApi {
    cp: Arc<ControlPlane>,
    token: Option<String>,
    node_id: Uuid,
    database: &'static str,
    health: Arc<dyn crate::TargetHealth>,
    acme: std::sync::OnceLock<Arc<dyn crate::AcmeControl>>,
    caches: std::sync::OnceLock<Arc<tollgate_plugins::runtime::cache::ProxyCaches>>,
}

type Reply = Result<(StatusCode, Value), AdminError>;

fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION"))),
    );
    r
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Field types used to coerce form values, per kind.
struct KindSchema(Kind);

impl decode::Schema for KindSchema {
    fn field_type(&self, name: &str) -> Option<FieldType> {
        use FieldType::*;
        let t = match (self.0, name) {
            (_, "tags") => StringArray,
            (_, "id" | "name") => FieldType::String,
            (
                Kind::Services,
                "port" | "retries" | "connect_timeout" | "write_timeout" | "read_timeout"
                | "tls_verify_depth",
            ) => Integer,
            (Kind::Services, "enabled" | "tls_verify") => Boolean,
            (Kind::Services, "ca_certificates") => StringArray,
            (Kind::Services, "client_certificate") => ForeignKey,
            (Kind::Services, _) => FieldType::String,
            (Kind::Routes, "protocols" | "methods" | "hosts" | "paths" | "snis") => StringArray,
            (Kind::Routes, "headers") => Map,
            (Kind::Routes, "https_redirect_status_code" | "regex_priority") => Integer,
            (
                Kind::Routes,
                "strip_path" | "preserve_host" | "request_buffering" | "response_buffering",
            ) => Boolean,
            (Kind::Routes, "service") => ForeignKey,
            (Kind::Routes, _) => FieldType::String,
            (Kind::Upstreams, "slots") => Integer,
            (Kind::Upstreams, "use_srv_name") => Boolean,
            (Kind::Upstreams, "healthchecks") => Record,
            (Kind::Upstreams, "client_certificate") => ForeignKey,
            (Kind::Upstreams, _) => FieldType::String,
            (Kind::Targets, "weight") => Integer,
            (Kind::Targets, "upstream") => ForeignKey,
            (Kind::Targets, _) => FieldType::String,
            (Kind::Plugins, "config") => Record,
            (Kind::Plugins, "protocols") => StringArray,
            (Kind::Plugins, "enabled") => Boolean,
            (Kind::Plugins, "ordering") => Record,
            (_, "service" | "route" | "consumer" | "certificate") => ForeignKey,
            (Kind::KeyAuth, "ttl") => Integer,
            (Kind::Oauth2, "hash_secret") => Boolean,
            (Kind::Oauth2, "redirect_uris") => StringArray,
            (_, _) => FieldType::String,
        };
        Some(t)
    }
}

/// Objects are merged field by field; anything else replaces.
fn deep_merge(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(p)) => deep_merge(b, p),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn query_pairs(req: &Request<hyper::body::Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(decode::decode_query)
        .unwrap_or_default()
}

fn has_tags(body: &Map<String, Value>, filter: &str) -> bool {
    let tags: Vec<&str> = body
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if filter.contains('/') {
        filter.split('/').any(|t| tags.contains(&t))
    } else {
        filter.split(',').all(|t| tags.contains(&t))
    }
}

fn paginate(path: &str, entries: Vec<Entry>, query: &[(String, String)]) -> Reply {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let size = match get("size") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(AdminError::Option(
                    9,
                    "size must be an integer between 1 and 1000".into(),
                ))
            }
        },
    };
    let mut entries = entries;
    if let Some(tags) = get("tags") {
        if tags.split([',', '/']).count() > 5 {
            return Err(AdminError::Option(
                11,
                "cannot query more than 5 tags".into(),
            ));
        }
        entries.retain(|e| has_tags(&e.body, tags));
    }
    let start = match get("offset") {
        None => 0,
        Some(o) => match Uuid::parse_str(o)
            .ok()
            .and_then(|id| entries.iter().position(|e| e.id == id))
        {
            Some(i) => i,
            None => {
                return Err(AdminError::Option(
                    7,
                    format!("'{o}' is not a valid offset"),
                ))
            }
        },
    };
    let page: Vec<Value> = entries
        .iter()
        .skip(start)
        .take(size)
        .map(|e| Value::Object(e.body.clone()))
        .collect();
    let next = entries.get(start + size).map(|e| e.id.to_string());
    let mut next_path = Value::Null;
    if let Some(n) = &next {
        let mut q = format!("{path}?offset={n}");
        if let Some(s) = get("size") {
            q.push_str(&format!("&size={s}"));
        }
        if let Some(t) = get("tags") {
            q.push_str(&format!("&tags={t}"));
        }
        next_path = Value::String(q);
    }
    Ok((
        StatusCode::OK,
        json!({ "data": page, "offset": next, "next": next_path }),
    ))
}

impl AdminApi {
    /// An Admin API over `cp`. With `token`, every request must carry it.
    pub fn new(
        cp: Arc<ControlPlane>,
        token: Option<String>,
        database: &'static str,
        health: Arc<dyn crate::TargetHealth>,
    ) -> Arc<AdminApi> {
        Arc::new(AdminApi {
            cp,
            token,
            node_id: Uuid::new_v4(),
            database,
            health,
            acme: std::sync::OnceLock::new(),
            caches: std::sync::OnceLock::new(),
        })
    }

    /// Serves the `/acme` endpoints with the node's ACME manager.
    pub fn set_acme(&self, acme: Arc<dyn crate::AcmeControl>) {
        let _ = self.acme.set(acme);
    }

    /// Serves the `/proxy-cache` endpoints over the node's cache stores.
    pub fn set_proxy_caches(&self, caches: Arc<tollgate_plugins::runtime::cache::ProxyCaches>) {
        let _ = self.caches.set(caches);
    }

    /// `/proxy-cache[/{key}]` (Kong's purge endpoints; `GET /proxy-cache`
    /// reports each store's use, a Tollgate addition).
    fn proxy_cache(&self, key: Option<&str>, method: &Method) -> Reply {
        let stores = self.caches.get().map(|c| c.all()).unwrap_or_default();
        match (key, method) {
            (None, &Method::GET) => {
                let data: Vec<Value> = stores
                    .iter()
                    .map(|(name, disk, s)| {
                        let (entries, bytes, budget) = s.usage();
                        let strategy = if *disk { "disk" } else { "memory" };
                        json!({ "dictionary_name": name, "strategy": strategy, "entries": entries, "bytes": bytes, "budget": budget })
                    })
                    .collect();
                Ok((StatusCode::OK, json!({ "data": data })))
            }
            (None, &Method::DELETE) => {
                for (_, _, s) in &stores {
                    s.purge_all();
                }
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            (Some(key), &Method::GET) => {
                let now = tollgate_plugins::runtime::epoch_secs() as f64;
                let found = stores.iter().find_map(|(_, _, s)| s.get(key));
                let e = found.ok_or(AdminError::NotFound)?;
                let headers: Map<String, Value> = e
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
                    .collect();
                Ok((
                    StatusCode::OK,
                    json!({
                        "key": key,
                        "status": e.status.as_u16(),
                        "headers": headers,
                        "body_len": e.body_len(),
                        "timestamp": e.stored_at as i64,
                        "ttl": e.ttl,
                        "age": e.age(now) as i64,
                    }),
                ))
            }
            (Some(key), &Method::DELETE) => {
                let mut any = false;
                for (_, _, s) in &stores {
                    any |= s.purge(key);
                }
                if any {
                    Ok((StatusCode::NO_CONTENT, Value::Null))
                } else {
                    Err(AdminError::NotFound)
                }
            }
            _ => Err(AdminError::MethodNotAllowed),
        }
    }

    /// `POST /acme`: orders a certificate for `host` (body or query) now.
    async fn acme_create(
        &self,
        ct: Option<&str>,
        body: &[u8],
        query: &[(String, String)],
    ) -> Reply {
        let acme = self.acme.get().ok_or(AdminError::NotFound)?;
        let json = ct.is_some_and(|c| c.contains("json"));
        let host = if json {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("host").and_then(Value::as_str).map(str::to_owned))
        } else {
            std::str::from_utf8(body)
                .ok()
                .into_iter()
                .flat_map(|b| b.split('&'))
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "host")
                .map(|(_, v)| percent_decode(&v.replace('+', " ")))
        }
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "host")
                .map(|(_, v)| v.clone())
        })
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            AdminError::Message(StatusCode::BAD_REQUEST, "host must be provided".into())
        })?;
        if host.contains(':') {
            return Err(AdminError::Message(
                StatusCode::BAD_REQUEST,
                "port is not allowed in host".into(),
            ));
        }
        match acme.create(host.clone()).await {
            Ok(()) => Ok((
                StatusCode::CREATED,
                json!({ "message": format!("certificate for host {host} is created") }),
            )),
            Err(crate::AcmeFailure::Off) => Err(AdminError::Message(
                StatusCode::NOT_FOUND,
                "no acme plugin is enabled".into(),
            )),
            Err(crate::AcmeFailure::NotManaged(h)) => Err(AdminError::Message(
                StatusCode::BAD_REQUEST,
                format!("problem found running sanity check for {h}: {h} is not in the acme plugin's domains"),
            )),
            Err(crate::AcmeFailure::Failed(e)) => Err(AdminError::Message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to create certificate for host {host}: {e}"),
            )),
        }
    }

    /// `PUT /upstreams/{u}/targets/{t}[/{address}]/healthy|unhealthy`.
    fn set_target_health(&self, u: &str, t: &str, address: Option<&str>, verdict: &str) -> Reply {
        let up = self
            .cp
            .find(Kind::Upstreams, u, None)
            .ok_or(AdminError::NotFound)?;
        let target = self
            .cp
            .find(Kind::Targets, t, Some(("upstream", up.id)))
            .ok_or(AdminError::NotFound)?;
        let key = target
            .body
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or("");
        if self
            .health
            .set_health(up.id, key, address, verdict == "healthy")
        {
            Ok((StatusCode::NO_CONTENT, Value::Null))
        } else {
            Err(AdminError::NotFound)
        }
    }

    /// `GET /upstreams/{u}/health`: each target with its live health; with
    /// `balancer_health=1`, the upstream's own health instead.
    fn upstream_health(&self, u: &str, query: &[(String, String)]) -> Reply {
        let up = self
            .cp
            .find(Kind::Upstreams, u, None)
            .ok_or(AdminError::NotFound)?;
        let targets = self.cp.children(Kind::Targets, "upstream", up.id);
        let mut data = Vec::with_capacity(targets.len());
        let (mut total, mut healthy) = (0u64, 0u64);
        for e in targets {
            let mut b = e.body;
            let key = b
                .get("target")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let weight = b.get("weight").and_then(Value::as_u64).unwrap_or(0);
            let report = self.health.health(up.id, &key);
            let health = report.health;
            total += weight;
            if health != "UNHEALTHY" && health != "DNS_ERROR" {
                healthy += weight;
            }
            b.insert("health".into(), json!(health));
            let addresses: Vec<Value> = report
                .addresses
                .iter()
                .map(|(a, h)| json!({"ip": a.ip().to_string(), "port": a.port(), "health": h, "weight": weight}))
                .collect();
            b.insert("data".into(), json!({ "addresses": addresses }));
            data.push(Value::Object(b));
        }
        let balancer = query
            .iter()
            .any(|(k, v)| k == "balancer_health" && (v == "1" || v == "true"));
        if balancer {
            let threshold = up
                .body
                .get("healthchecks")
                .and_then(|h| h.get("threshold"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let percent = if total == 0 {
                0.0
            } else {
                healthy as f64 * 100.0 / total as f64
            };
            let health = if total > 0 && percent >= threshold && healthy > 0 {
                "HEALTHY"
            } else {
                "UNHEALTHY"
            };
            return Ok((
                StatusCode::OK,
                json!({
                    "data": {
                        "id": up.id,
                        "health": health,
                        "details": {"total_weight": total, "healthy_weight": healthy},
                    },
                    "next": null,
                    "node_id": self.node_id,
                }),
            ));
        }
        Ok((
            StatusCode::OK,
            json!({ "data": data, "next": null, "node_id": self.node_id }),
        ))
    }

    /// Serves one request.
    pub async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Bytes> {
        if let Some(token) = &self.token {
            let given = req
                .headers()
                .get("kong-admin-token")
                .and_then(|v| v.to_str().ok())
                .or_else(|| {
                    req.headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                });
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                let e = AdminError::Unauthorized;
                return json_response(e.status(), &e.body());
            }
        }
        match self.route(req).await {
            Ok((StatusCode::NO_CONTENT, _)) => {
                let mut r = Response::new(Bytes::new());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            Ok((status, body)) => json_response(status, &body),
            Err(e) => json_response(e.status(), &e.body()),
        }
    }

    async fn route(&self, req: Request<hyper::body::Incoming>) -> Reply {
        let path = req.uri().path().to_owned();
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let method = req.method().clone();
        let query = query_pairs(&req);
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Err(AdminError::Decode(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "message": "request body too large" }),
                ))
            }
        };
        let ct = ct.as_deref();
        match (segs.as_slice(), &method) {
            ([], &Method::GET) => Ok((StatusCode::OK, self.info())),
            (["status"], &Method::GET) => Ok((StatusCode::OK, self.status())),
            (["config"], &Method::GET) => {
                let doc = self.cp.export();
                Ok((StatusCode::OK, json!({ "config": doc.to_string() })))
            }
            (["config"], &Method::POST) => self.post_config(ct, &body),
            (["acme"], &Method::POST) => self.acme_create(ct, &body, &query).await,
            (["proxy-cache"], m) => self.proxy_cache(None, m),
            (["proxy-cache", key], m) | (["proxy-cache", _, "caches", key], m) => {
                self.proxy_cache(Some(key), m)
            }
            (["acme"], &Method::PATCH) => {
                let acme = self.acme.get().ok_or(AdminError::NotFound)?;
                acme.renew();
                Ok((
                    StatusCode::ACCEPTED,
                    json!({ "message": "Renewal process started successfully" }),
                ))
            }
            (["acme", "certificates"], &Method::GET) => {
                let acme = self.acme.get().ok_or(AdminError::NotFound)?;
                let invalid_only = query
                    .iter()
                    .any(|(k, v)| k == "invalid_only" && (v == "true" || v == "1"));
                let data: Vec<Value> = acme
                    .certificates()
                    .into_iter()
                    .filter(|c| !invalid_only || c["valid"] != json!(true))
                    .collect();
                Ok((StatusCode::OK, json!({ "data": data })))
            }
            (["acme", "certificates", host], &Method::GET) => {
                let acme = self.acme.get().ok_or(AdminError::NotFound)?;
                let found = acme.certificates().into_iter().find(|c| {
                    c["host"] == json!(host)
                        || c["certificate_id"] == json!(host)
                        || c["snis"]
                            .as_array()
                            .is_some_and(|s| s.iter().any(|n| n == host))
                });
                found
                    .map(|c| (StatusCode::OK, json!({ "data": c })))
                    .ok_or(AdminError::NotFound)
            }
            (["plugins", "enabled"], &Method::GET) => {
                let names: Vec<&str> = tollgate_plugins::registry()
                    .iter()
                    .map(|p| p.name)
                    .collect();
                Ok((StatusCode::OK, json!({ "enabled_plugins": names })))
            }
            (["tags", tag], &Method::GET) => Ok((StatusCode::OK, self.tags(tag))),
            (["upstreams", u, "health"], &Method::GET) => self.upstream_health(u, &query),
            (["upstreams", u, "targets", t, verdict @ ("healthy" | "unhealthy")], &Method::PUT) => {
                self.set_target_health(u, t, None, verdict)
            }
            (
                ["upstreams", u, "targets", t, address, verdict @ ("healthy" | "unhealthy")],
                &Method::PUT,
            ) => self.set_target_health(u, t, Some(address), verdict),
            (["schemas", "plugins", "validate"], &Method::POST) => {
                self.validate_only(Kind::Plugins, ct, &body)
            }
            (["schemas", "plugins", name], &Method::GET) => crate::schemas_api::plugin_schema(name)
                .map(|v| (StatusCode::OK, v))
                .ok_or(AdminError::NotFound),
            (["schemas", entity], &Method::GET) => Kind::from_name(entity)
                .map(|k| (StatusCode::OK, crate::schemas_api::entity_schema(k)))
                .ok_or(AdminError::NotFound),
            (["schemas", entity, "validate"], &Method::POST) => {
                let kind = Kind::from_name(entity).ok_or(AdminError::NotFound)?;
                self.validate_only(kind, ct, &body)
            }
            ([coll], m) if Kind::from_path(coll).is_some() => {
                let kind = Kind::from_path(coll).ok_or(AdminError::NotFound)?;
                match *m {
                    Method::GET if kind == Kind::Consumers => {
                        // Kong's `GET /consumers?custom_id=` lookup.
                        let mut list = self.cp.list(kind);
                        if let Some((_, cid)) = query.iter().find(|(k, _)| k == "custom_id") {
                            list.retain(|e| {
                                e.body.get("custom_id").and_then(Value::as_str) == Some(cid)
                            });
                        }
                        paginate(&path, list, &query)
                    }
                    Method::GET => paginate(&path, self.cp.list(kind), &query),
                    Method::POST => self.create(kind, ct, &body, None),
                    _ => Err(AdminError::MethodNotAllowed),
                }
            }
            ([coll, key], m) if Kind::from_path(coll).is_some() => {
                let kind = Kind::from_path(coll).ok_or(AdminError::NotFound)?;
                self.one(kind, key, m, ct, &body, None)
            }
            ([coll, key, "consumer"], &Method::GET)
                if Kind::from_path(coll).is_some_and(Kind::is_credential) =>
            {
                let kind = Kind::from_path(coll).ok_or(AdminError::NotFound)?;
                let cred = self.cp.find(kind, key, None).ok_or(AdminError::NotFound)?;
                let cid = foreign_key(&cred.body, "consumer").ok_or(AdminError::NotFound)?;
                let consumer = self
                    .cp
                    .find(Kind::Consumers, &cid.to_string(), None)
                    .ok_or(AdminError::NotFound)?;
                Ok((StatusCode::OK, Value::Object(consumer.body)))
            }
            ([parent_coll, p, child], m) => {
                let (pkind, kind, field) =
                    nested(parent_coll, child).ok_or(AdminError::NotFound)?;
                let parent = self.cp.find(pkind, p, None).ok_or(AdminError::NotFound)?;
                if kind == Kind::Services {
                    // /routes/{r}/service
                    let sid = foreign_key(&parent.body, "service").ok_or(AdminError::NotFound)?;
                    return match *m {
                        Method::GET => self
                            .cp
                            .find(Kind::Services, &sid.to_string(), None)
                            .map(|e| (StatusCode::OK, Value::Object(e.body)))
                            .ok_or(AdminError::NotFound),
                        _ => Err(AdminError::MethodNotAllowed),
                    };
                }
                match *m {
                    Method::GET => {
                        paginate(&path, self.cp.children(kind, field, parent.id), &query)
                    }
                    Method::POST => self.create(kind, ct, &body, Some((field, parent.id))),
                    _ => Err(AdminError::MethodNotAllowed),
                }
            }
            (["upstreams", u, "targets", "all"], &Method::GET) => {
                let up = self
                    .cp
                    .find(Kind::Upstreams, u, None)
                    .ok_or(AdminError::NotFound)?;
                paginate(
                    &path,
                    self.cp.children(Kind::Targets, "upstream", up.id),
                    &query,
                )
            }
            ([parent_coll, p, child, key], m) => {
                let (pkind, kind, field) =
                    nested(parent_coll, child).ok_or(AdminError::NotFound)?;
                if kind == Kind::Services {
                    return Err(AdminError::NotFound);
                }
                let parent = self.cp.find(pkind, p, None).ok_or(AdminError::NotFound)?;
                self.one(kind, key, m, ct, &body, Some((field, parent.id)))
            }
            _ => Err(AdminError::NotFound),
        }
    }

    fn decode(
        &self,
        kind: Kind,
        ct: Option<&str>,
        body: &[u8],
    ) -> Result<Map<String, Value>, AdminError> {
        decode::decode_body(ct, body, &KindSchema(kind))
            .map_err(|e| AdminError::Decode(e.status(), e.body()))
    }

    fn refuse_db_less(&self, verb: &str, kind: Kind) -> Result<(), AdminError> {
        if self.cp.is_db_less() {
            return Err(AdminError::DbLess(format!(
                "cannot {verb} '{}' entities when not using a database",
                kind.name()
            )));
        }
        Ok(())
    }

    /// Builds the stored document from defaults (or an existing document
    /// for PATCH) and the input.
    fn prepare_input(
        kind: Kind,
        mut input: Map<String, Value>,
        parent: Option<(&'static str, Uuid)>,
    ) -> Result<Map<String, Value>, AdminError> {
        if kind == Kind::Services {
            kinds::expand_url(&mut input);
        }
        input.remove("created_at");
        input.remove("updated_at");
        if let Some((field, p)) = parent {
            input.insert(field.into(), json!({ "id": p }));
        }
        Ok(input)
    }

    fn parse_id(input: &mut Map<String, Value>) -> Result<Option<Uuid>, AdminError> {
        match input.remove("id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Uuid::parse_str(&s).map(Some).map_err(|_| {
                let mut f = Map::new();
                f.insert("id".into(), json!("expected a valid UUID"));
                AdminError::Schema(f)
            }),
            Some(_) => {
                let mut f = Map::new();
                f.insert("id".into(), json!("expected a string"));
                Err(AdminError::Schema(f))
            }
        }
    }

    fn create(
        &self,
        kind: Kind,
        ct: Option<&str>,
        body: &[u8],
        parent: Option<(&'static str, Uuid)>,
    ) -> Reply {
        self.refuse_db_less("create", kind)?;
        let mut input = self.decode(kind, ct, body)?;
        let id = Self::parse_id(&mut input)?.unwrap_or_else(Uuid::new_v4);
        let input = Self::prepare_input(kind, input, parent)?;
        let mut doc = kind.defaults();
        deep_merge(&mut doc, input);
        generate_secrets(kind, &mut doc);
        hash_password(kind, &mut doc)?;
        check_key_pairs(kind, &doc)?;
        let now = self.cp.now();
        doc.insert("id".into(), json!(id));
        doc.insert("created_at".into(), json!(now));
        doc.insert("updated_at".into(), json!(now));
        let entry = Entry {
            id,
            created_at: now,
            body: doc,
        };
        let stored = self
            .cp
            .write(vec![Op::Put(kind, entry)], Some((kind, id)))?;
        Ok((StatusCode::CREATED, Value::Object(stored)))
    }

    /// `POST /schemas/{entity}/validate`: the checks of a create, nothing stored.
    fn validate_only(&self, kind: Kind, ct: Option<&str>, body: &[u8]) -> Reply {
        let mut input = self.decode(kind, ct, body)?;
        let id = Self::parse_id(&mut input)?.unwrap_or_else(Uuid::new_v4);
        let input = Self::prepare_input(kind, input, None)?;
        let mut doc = kind.defaults();
        deep_merge(&mut doc, input);
        generate_secrets(kind, &mut doc);
        doc.insert("id".into(), json!(id));
        let entry = Entry {
            id,
            created_at: self.cp.now(),
            body: doc,
        };
        self.cp
            .check(vec![Op::Put(kind, entry)], Some((kind, id)))?;
        Ok((
            StatusCode::OK,
            json!({ "message": "schema validation successful" }),
        ))
    }

    /// Everything that goes away with an entity (Kong's cascades), or an
    /// error when something still references it.
    fn cascade(&self, kind: Kind, id: Uuid) -> Result<Vec<Op>, AdminError> {
        let mut ops = vec![Op::Delete(kind, id)];
        let mut drop_children = |child: Kind, field: &str| {
            ops.extend(
                self.cp
                    .children(child, field, id)
                    .into_iter()
                    .map(|c| Op::Delete(child, c.id)),
            );
        };
        match kind {
            Kind::Services => {
                if !self.cp.children(Kind::Routes, "service", id).is_empty() {
                    return Err(AdminError::ForeignKey(
                        "an existing 'routes' entity references this 'services' entity".into(),
                    ));
                }
                drop_children(Kind::Plugins, "service");
            }
            Kind::Routes => drop_children(Kind::Plugins, "route"),
            Kind::Upstreams => drop_children(Kind::Targets, "upstream"),
            Kind::Certificates => drop_children(Kind::Snis, "certificate"),
            Kind::Consumers => {
                drop_children(Kind::Plugins, "consumer");
                for k in Kind::ALL.into_iter().filter(|k| k.is_credential()) {
                    drop_children(k, "consumer");
                }
            }
            _ => {}
        }
        Ok(ops)
    }

    fn one(
        &self,
        kind: Kind,
        key: &str,
        method: &Method,
        ct: Option<&str>,
        body: &[u8],
        parent: Option<(&'static str, Uuid)>,
    ) -> Reply {
        let existing = self.cp.find(kind, key, parent);
        match *method {
            Method::GET => existing
                .map(|e| (StatusCode::OK, Value::Object(e.body)))
                .ok_or(AdminError::NotFound),
            Method::DELETE => {
                self.refuse_db_less("delete", kind)?;
                let Some(e) = existing else {
                    return Ok((StatusCode::NO_CONTENT, Value::Null));
                };
                let ops = self.cascade(kind, e.id)?;
                self.cp.write(ops, None)?;
                Ok((StatusCode::NO_CONTENT, Value::Null))
            }
            Method::PATCH => {
                self.refuse_db_less("update", kind)?;
                let e = existing.ok_or(AdminError::NotFound)?;
                let mut input = self.decode(kind, ct, body)?;
                input.remove("id");
                let input = Self::prepare_input(kind, input, None)?;
                let mut doc = e.body.clone();
                deep_merge(&mut doc, input);
                hash_password(kind, &mut doc)?;
                check_key_pairs(kind, &doc)?;
                doc.insert("updated_at".into(), json!(self.cp.now()));
                let entry = Entry {
                    id: e.id,
                    created_at: e.created_at,
                    body: doc,
                };
                let stored = self
                    .cp
                    .write(vec![Op::Put(kind, entry)], Some((kind, e.id)))?;
                Ok((StatusCode::OK, Value::Object(stored)))
            }
            Method::PUT => {
                self.refuse_db_less("update", kind)?;
                let mut input = self.decode(kind, ct, body)?;
                let given = Self::parse_id(&mut input)?;
                let path_id = Uuid::parse_str(key).ok();
                if existing.is_none()
                    && parent.is_some()
                    && path_id.is_some()
                    && self.cp.find(kind, key, None).is_some()
                {
                    // That id belongs to another parent's child: never move it here.
                    return Err(AdminError::NotFound);
                }
                let id = existing
                    .as_ref()
                    .map(|e| e.id)
                    .or(path_id)
                    .or(given)
                    .unwrap_or_else(Uuid::new_v4);
                let mut input = Self::prepare_input(kind, input, parent)?;
                if let (None, Some(field)) = (path_id, kind.endpoint_key()) {
                    input.insert(field.into(), json!(key));
                }
                if let Some(e) = existing.as_ref() {
                    for field in kind.foreign_keys() {
                        if !input.contains_key(*field) {
                            if let Some(p) = e.body.get(*field) {
                                input.insert((*field).into(), p.clone());
                            }
                        }
                    }
                }
                let mut doc = kind.defaults();
                deep_merge(&mut doc, input);
                generate_secrets(kind, &mut doc);
                hash_password(kind, &mut doc)?;
                check_key_pairs(kind, &doc)?;
                let now = self.cp.now();
                let created = existing.as_ref().map_or(now, |e| e.created_at);
                doc.insert("id".into(), json!(id));
                doc.insert("created_at".into(), json!(created));
                doc.insert("updated_at".into(), json!(now));
                let entry = Entry {
                    id,
                    created_at: created,
                    body: doc,
                };
                let stored = self
                    .cp
                    .write(vec![Op::Put(kind, entry)], Some((kind, id)))?;
                Ok((StatusCode::OK, Value::Object(stored)))
            }
            _ => Err(AdminError::MethodNotAllowed),
        }
    }

    fn post_config(&self, ct: Option<&str>, body: &[u8]) -> Reply {
        let text = if ct.is_some_and(|c| {
            c.starts_with("application/x-www-form-urlencoded")
                || c.starts_with("multipart/form-data")
        }) {
            let form = decode::decode_body(ct, body, &NoSchema)
                .map_err(|e| AdminError::Decode(e.status(), e.body()))?;
            match form.get("config") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => {
                    let mut f = Map::new();
                    f.insert("config".into(), json!("required field missing"));
                    return Err(AdminError::Declarative(
                        "config: required field missing".into(),
                        f,
                    ));
                }
            }
        } else {
            String::from_utf8_lossy(body).into_owned()
        };
        let plugins: &dyn tollgate_model::PluginSchemas = if self.cp.is_db_less() {
            &crate::DbLessPluginRegistry
        } else {
            &crate::PluginRegistry
        };
        let config = tollgate_model::declarative::parse_str_with(&text, "config", Some(plugins))
            .map_err(|e| {
                let mut f = Map::new();
                let msgs: Vec<Value> = match &e {
                    tollgate_model::ConfigError::Invalid { issues, .. } => issues
                        .iter()
                        .map(|i| Value::String(i.to_string()))
                        .collect(),
                    other => vec![Value::String(other.to_string())],
                };
                f.insert("@entity".into(), Value::Array(msgs));
                AdminError::Declarative(e.to_string(), f)
            })?;
        self.cp.replace_all(config)?;
        Ok((StatusCode::CREATED, self.cp.export()))
    }

    fn info(&self) -> Value {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        json!({
            "tagline": "Welcome to tollgate",
            "version": env!("CARGO_PKG_VERSION"),
            "edition": "community",
            "hostname": host.trim(),
            "node_id": self.node_id,
            "pids": { "master": std::process::id(), "workers": [] },
            "plugins": {
                "available_on_server": tollgate_plugins::registry()
                    .iter()
                    .map(|p| (p.name.to_owned(), json!({ "version": p.version, "priority": p.priority })))
                    .collect::<Map<String, Value>>(),
                "enabled_in_cluster": self.enabled_in_cluster(),
            },
            "configuration": { "database": self.database },
        })
    }

    fn enabled_in_cluster(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .cp
            .config()
            .plugins
            .iter()
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn status(&self) -> Value {
        let config = self.cp.config();
        json!({
            "database": { "reachable": true },
            "server": {},
            "configuration": {
                "services": config.services.len(),
                "routes": config.routes.len(),
                "upstreams": config.upstreams.len(),
            },
        })
    }

    fn tags(&self, tag: &str) -> Value {
        let mut rows = Vec::new();
        for kind in Kind::ALL {
            for e in self.cp.list(kind) {
                if has_tags(&e.body, tag) {
                    rows.push(json!({ "entity_name": kind.name(), "entity_id": e.id, "tag": tag }));
                }
            }
        }
        json!({ "data": rows, "offset": null, "next": null })
    }
}

/// Nested collections: `(parent path, child segment)` → (parent kind, child
/// kind, the child's foreign key field). `/routes/{r}/service` maps to
/// `Kind::Services` and is handled by the caller.
fn nested(parent: &str, child: &str) -> Option<(Kind, Kind, &'static str)> {
    match (parent, child) {
        ("services", "routes") => Some((Kind::Services, Kind::Routes, "service")),
        ("services", "plugins") => Some((Kind::Services, Kind::Plugins, "service")),
        ("routes", "plugins") => Some((Kind::Routes, Kind::Plugins, "route")),
        ("routes", "service") => Some((Kind::Routes, Kind::Services, "service")),
        ("consumers", "plugins") => Some((Kind::Consumers, Kind::Plugins, "consumer")),
        ("upstreams", "targets") => Some((Kind::Upstreams, Kind::Targets, "upstream")),
        ("certificates", "snis") => Some((Kind::Certificates, Kind::Snis, "certificate")),
        ("consumers", c) => Kind::from_consumer_path(c).map(|k| (Kind::Consumers, k, "consumer")),
        _ => None,
    }
}

/// A random secret: 32 hex characters from a v4 UUID's 122 random bits.
fn random_secret() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Fills the credential fields Kong generates when they are absent.
fn generate_secrets(kind: Kind, doc: &mut Map<String, Value>) {
    let fields: &[&str] = match kind {
        Kind::KeyAuth => &["key"],
        Kind::Jwt => &["key", "secret"],
        Kind::HmacAuth => &["secret"],
        Kind::Oauth2 => &["client_id", "client_secret"],
        _ => &[],
    };
    for f in fields {
        if doc.get(*f).is_none_or(Value::is_null) {
            doc.insert((*f).into(), Value::String(random_secret()));
        }
    }
}

/// Basic-auth passwords are stored hashed (argon2id); an already hashed
/// value (re-import of an export) is kept as it is.
/// A certificate's keys must match their certificates (`key` with `cert`,
/// `key_alt` with `cert_alt`): a pair TLS could not serve is refused with
/// the field that is wrong. PEM that does not parse is left to the schema.
fn check_key_pairs(kind: Kind, doc: &Map<String, Value>) -> Result<(), AdminError> {
    if kind != Kind::Certificates {
        return Ok(());
    }
    for (cert, key) in [("cert", "key"), ("cert_alt", "key_alt")] {
        let (Some(Value::String(c)), Some(Value::String(k))) = (doc.get(cert), doc.get(key)) else {
            continue;
        };
        if !c.contains("-----BEGIN CERTIFICATE-----") || !k.contains("PRIVATE KEY-----") {
            continue;
        }
        if let Err(e) = tollgate_tls::server::certified_key(c, k) {
            let (field, message) = match e {
                tollgate_tls::TlsError::Pair { part, reason } => match part {
                    tollgate_tls::PairPart::Cert => (cert, reason),
                    tollgate_tls::PairPart::Key => (key, reason),
                },
                other => (key, other.to_string()),
            };
            let mut f = Map::new();
            f.insert(field.into(), json!(message));
            return Err(AdminError::Schema(f));
        }
    }
    Ok(())
}

fn hash_password(kind: Kind, doc: &mut Map<String, Value>) -> Result<(), AdminError> {
    if kind != Kind::BasicAuth {
        return Ok(());
    }
    let Some(Value::String(pw)) = doc.get("password") else {
        return Ok(());
    };
    if pw.starts_with("$argon2") {
        return Ok(());
    }
    let hashed = crate::password::hash(pw).map_err(AdminError::Internal)?;
    doc.insert("password".into(), Value::String(hashed));
    Ok(())
}

struct NoSchema;

impl decode::Schema for NoSchema {
    fn field_type(&self, _name: &str) -> Option<FieldType> {
        None
    }
}
