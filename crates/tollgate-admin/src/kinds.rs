//! The entity kinds the Admin API serves, their Kong-shaped defaults, and
//! how a stored document is rendered back from the validated model.

use serde_json::{json, Map, Value};
use tollgate_model::{
    Config, CredentialKind, HashOn, Healthchecks, ProbeKind, Protocol, Route, Service, Target,
    Upstream,
};
use uuid::Uuid;

/// An entity kind with Admin API endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/services`
    Services,
    /// `/routes`
    Routes,
    /// `/upstreams`
    Upstreams,
    /// `/upstreams/{u}/targets`
    Targets,
    /// `/consumers`
    Consumers,
    /// `/plugins`
    Plugins,
    /// `/certificates`
    Certificates,
    /// `/snis`
    Snis,
    /// `/ca_certificates`
    CaCertificates,
    /// `/key-auths`, `/consumers/{c}/key-auth`
    KeyAuth,
    /// `/basic-auths`, `/consumers/{c}/basic-auth`
    BasicAuth,
    /// `/jwts`, `/consumers/{c}/jwt`
    Jwt,
    /// `/hmac-auths`, `/consumers/{c}/hmac-auth`
    HmacAuth,
    /// `/oauth2`, `/consumers/{c}/oauth2`
    Oauth2,
    /// `/acls`, `/consumers/{c}/acls`
    Acls,
}

impl Kind {
    /// All kinds, parents before children.
    pub const ALL: [Kind; 15] = [
        Kind::Services,
        Kind::Routes,
        Kind::Upstreams,
        Kind::Targets,
        Kind::Consumers,
        Kind::Plugins,
        Kind::Certificates,
        Kind::Snis,
        Kind::CaCertificates,
        Kind::KeyAuth,
        Kind::BasicAuth,
        Kind::Jwt,
        Kind::HmacAuth,
        Kind::Oauth2,
        Kind::Acls,
    ];

    /// Kong's entity name: the declarative key and the store kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Services => "services",
            Kind::Routes => "routes",
            Kind::Upstreams => "upstreams",
            Kind::Targets => "targets",
            Kind::Consumers => "consumers",
            Kind::Plugins => "plugins",
            Kind::Certificates => "certificates",
            Kind::Snis => "snis",
            Kind::CaCertificates => "ca_certificates",
            Kind::KeyAuth => "keyauth_credentials",
            Kind::BasicAuth => "basicauth_credentials",
            Kind::Jwt => "jwt_secrets",
            Kind::HmacAuth => "hmacauth_credentials",
            Kind::Oauth2 => "oauth2_credentials",
            Kind::Acls => "acls",
        }
    }

    /// Parses a store kind / declarative key.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The top-level collection path (`/key-auths` for key-auth credentials).
    pub fn path(self) -> &'static str {
        match self {
            Kind::KeyAuth => "key-auths",
            Kind::BasicAuth => "basic-auths",
            Kind::Jwt => "jwts",
            Kind::HmacAuth => "hmac-auths",
            Kind::Oauth2 => "oauth2",
            other => other.name(),
        }
    }

    /// Parses a top-level collection path; targets are only reachable nested.
    pub fn from_path(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| *k != Kind::Targets && k.path() == s)
    }

    /// The credential kind nested under a consumer (`/consumers/{c}/key-auth`).
    pub fn from_consumer_path(s: &str) -> Option<Kind> {
        match s {
            "key-auth" => Some(Kind::KeyAuth),
            "basic-auth" => Some(Kind::BasicAuth),
            "jwt" => Some(Kind::Jwt),
            "hmac-auth" => Some(Kind::HmacAuth),
            "oauth2" => Some(Kind::Oauth2),
            "acls" => Some(Kind::Acls),
            _ => None,
        }
    }

    /// Whether this is a consumer credential.
    pub fn is_credential(self) -> bool {
        matches!(
            self,
            Kind::KeyAuth
                | Kind::BasicAuth
                | Kind::Jwt
                | Kind::HmacAuth
                | Kind::Oauth2
                | Kind::Acls
        )
    }

    /// The field that is the entity's endpoint key (besides its id), if any.
    pub fn endpoint_key(self) -> Option<&'static str> {
        match self {
            Kind::Services | Kind::Routes | Kind::Upstreams | Kind::Snis => Some("name"),
            Kind::Targets => Some("target"),
            Kind::Consumers => Some("username"),
            Kind::Plugins => Some("instance_name"),
            Kind::KeyAuth | Kind::Jwt => Some("key"),
            Kind::BasicAuth | Kind::HmacAuth => Some("username"),
            Kind::Oauth2 => Some("client_id"),
            Kind::Acls => Some("group"),
            Kind::Certificates | Kind::CaCertificates => None,
        }
    }

    /// Foreign keys to other entities (`service` for routes, …).
    pub fn foreign_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Routes => &["service"],
            Kind::Targets => &["upstream"],
            Kind::Plugins => &["service", "route", "consumer"],
            Kind::Snis => &["certificate"],
            k if k.is_credential() => &["consumer"],
            _ => &[],
        }
    }

    /// Kong's defaults: every field present, `null` when unset.
    pub fn defaults(self) -> Map<String, Value> {
        let v = match self {
            Kind::Services => json!({
                "name": null, "protocol": "http", "host": null, "port": 80, "path": null,
                "retries": 5, "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
                "tags": null, "client_certificate": null, "tls_verify": null, "tls_verify_depth": null,
                "ca_certificates": null, "enabled": true,
            }),
            Kind::Routes => json!({
                "name": null, "protocols": ["http", "https"], "methods": null, "hosts": null,
                "paths": null, "headers": null, "https_redirect_status_code": 426, "regex_priority": 0,
                "strip_path": true, "path_handling": "v0", "preserve_host": false,
                "request_buffering": true, "response_buffering": true, "snis": null, "sources": null,
                "destinations": null, "tags": null, "service": null,
            }),
            Kind::Upstreams => json!({
                "name": null, "algorithm": "round-robin", "hash_on": "none", "hash_fallback": "none",
                "hash_on_header": null, "hash_fallback_header": null, "hash_on_cookie": null,
                "hash_on_cookie_path": "/", "hash_on_query_arg": null, "hash_fallback_query_arg": null,
                "hash_on_uri_capture": null, "hash_fallback_uri_capture": null, "slots": 10000,
                "host_header": null, "client_certificate": null, "use_srv_name": false, "tags": null,
                "healthchecks": {
                    "threshold": 0,
                    "active": {
                        "type": "http", "timeout": 1, "concurrency": 10, "http_path": "/",
                        "https_sni": null, "https_verify_certificate": true, "headers": null,
                        "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
                        "unhealthy": {"interval": 0, "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
                                      "tcp_failures": 0, "timeouts": 0, "http_failures": 0}
                    },
                    "passive": {
                        "type": "http",
                        "healthy": {"http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                                      300, 301, 302, 303, 304, 305, 306, 307, 308], "successes": 0},
                        "unhealthy": {"http_statuses": [429, 500, 503], "tcp_failures": 0, "timeouts": 0, "http_failures": 0}
                    }
                },
            }),
            Kind::Targets => {
                json!({ "target": null, "weight": 100, "tags": null, "upstream": null })
            }
            Kind::Consumers => json!({ "username": null, "custom_id": null, "tags": null }),
            Kind::Plugins => json!({
                "name": null, "instance_name": null, "config": {}, "protocols": ["grpc", "grpcs", "http", "https"],
                "enabled": true, "service": null, "route": null, "consumer": null, "ordering": null, "tags": null,
            }),
            Kind::Certificates => {
                json!({ "cert": null, "key": null, "cert_alt": null, "key_alt": null, "tags": null })
            }
            Kind::Snis => json!({ "name": null, "certificate": null, "tags": null }),
            Kind::CaCertificates => json!({ "cert": null, "cert_digest": null, "tags": null }),
            Kind::KeyAuth => json!({ "key": null, "ttl": null, "consumer": null, "tags": null }),
            Kind::BasicAuth => {
                json!({ "username": null, "password": null, "consumer": null, "tags": null })
            }
            Kind::Jwt => json!({
                "key": null, "secret": null, "rsa_public_key": null, "algorithm": "HS256", "jwks_uri": null, "consumer": null, "tags": null,
            }),
            Kind::HmacAuth => {
                json!({ "username": null, "secret": null, "consumer": null, "tags": null })
            }
            Kind::Oauth2 => json!({
                "name": null, "client_id": null, "client_secret": null, "hash_secret": false,
                "redirect_uris": null, "client_type": "confidential", "consumer": null, "tags": null,
            }),
            Kind::Acls => json!({ "group": null, "consumer": null, "tags": null }),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Expands a service's `url` shorthand into protocol/host/port/path, as Kong
/// does; leaves the document alone when the url cannot be parsed (the
/// validator then reports it).
pub fn expand_url(doc: &mut Map<String, Value>) {
    let Some(Value::String(url)) = doc.get("url").cloned() else {
        return;
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty() && !h.ends_with(']')
                || authority.starts_with('[') && h.ends_with(']') =>
        {
            match p.parse::<u16>() {
                Ok(p) => (
                    h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    Some(p),
                ),
                Err(_) => return,
            }
        }
        _ => (
            authority
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            None,
        ),
    };
    let scheme = scheme.to_ascii_lowercase();
    let port = port.unwrap_or(if scheme == "https" || scheme == "grpcs" {
        443
    } else {
        80
    });
    doc.remove("url");
    doc.insert("protocol".into(), Value::String(scheme));
    doc.insert("host".into(), Value::String(host));
    doc.insert("port".into(), Value::from(port));
    doc.insert(
        "path".into(),
        path.map_or(Value::Null, |p| Value::String(p.to_owned())),
    );
}

fn tags(t: &[String]) -> Value {
    if t.is_empty() {
        Value::Null
    } else {
        json!(t)
    }
}

fn opt(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

fn protocol(p: Protocol) -> &'static str {
    p.as_str()
}

/// Renders a validated service as Kong shows it.
pub fn service_json(s: &Service) -> Map<String, Value> {
    let mut m = Kind::Services.defaults();
    m.insert("id".into(), json!(s.id));
    m.insert("name".into(), json!(s.name));
    m.insert("protocol".into(), json!(protocol(s.protocol)));
    m.insert("host".into(), json!(s.host));
    m.insert("port".into(), json!(s.port));
    m.insert("path".into(), json!(s.path));
    m.insert("retries".into(), json!(s.retries));
    m.insert("connect_timeout".into(), json!(s.connect_timeout));
    m.insert("write_timeout".into(), json!(s.write_timeout));
    m.insert("read_timeout".into(), json!(s.read_timeout));
    m.insert("enabled".into(), json!(s.enabled));
    m.insert("tags".into(), tags(&s.tags));
    m.insert("tls_verify".into(), json!(s.tls.verify));
    m.insert("tls_verify_depth".into(), json!(s.tls.verify_depth));
    let cas = &s.tls.ca_certificates;
    m.insert(
        "ca_certificates".into(),
        if cas.is_empty() {
            Value::Null
        } else {
            json!(cas)
        },
    );
    m.insert("client_certificate".into(), fk(s.tls.client_certificate));
    m
}

/// Renders a validated route as Kong shows it.
pub fn route_json(r: &Route) -> Map<String, Value> {
    let mut m = Kind::Routes.defaults();
    m.insert("id".into(), json!(r.id));
    m.insert("name".into(), json!(r.name));
    m.insert(
        "protocols".into(),
        json!(r.protocols.iter().map(|p| protocol(*p)).collect::<Vec<_>>()),
    );
    m.insert("methods".into(), opt(&r.methods));
    m.insert("hosts".into(), opt(&r.hosts));
    m.insert("paths".into(), opt(&r.paths));
    m.insert(
        "headers".into(),
        if r.headers.is_empty() {
            Value::Null
        } else {
            json!(r.headers)
        },
    );
    m.insert(
        "https_redirect_status_code".into(),
        json!(r.https_redirect_status_code),
    );
    m.insert("regex_priority".into(), json!(r.regex_priority));
    if let Some(age) = r.hsts_max_age {
        // Tollgate extensions, shown only when set.
        m.insert("hsts_max_age".into(), json!(age));
        m.insert(
            "hsts_include_subdomains".into(),
            json!(r.hsts_include_subdomains),
        );
    }
    m.insert("strip_path".into(), json!(r.strip_path));
    m.insert("path_handling".into(), json!(r.path_handling.as_str()));
    m.insert("preserve_host".into(), json!(r.preserve_host));
    m.insert("request_buffering".into(), json!(r.request_buffering));
    m.insert("response_buffering".into(), json!(r.response_buffering));
    m.insert("tags".into(), tags(&r.tags));
    m.insert(
        "service".into(),
        r.service.map_or(Value::Null, |id| json!({ "id": id })),
    );
    m
}

/// Renders a validated upstream as Kong shows it (fields Tollgate does not
/// model yet keep Kong's defaults).
pub fn upstream_json(u: &Upstream) -> Map<String, Value> {
    let mut m = Kind::Upstreams.defaults();
    m.insert("id".into(), json!(u.id));
    m.insert("name".into(), json!(u.name));
    m.insert("algorithm".into(), json!(u.algorithm.as_str()));
    for (of, spec) in [("hash_on", &u.hash_on), ("hash_fallback", &u.hash_fallback)] {
        let (name, field) = match spec {
            HashOn::None => ("none", None),
            HashOn::Consumer => ("consumer", None),
            HashOn::Ip => ("ip", None),
            HashOn::Path => ("path", None),
            HashOn::Header(h) => ("header", Some(("header", h))),
            HashOn::Cookie { name, path } => {
                m.insert("hash_on_cookie_path".into(), json!(path));
                ("cookie", Some(("cookie", name)))
            }
            HashOn::QueryArg(a) => ("query_arg", Some(("query_arg", a))),
            HashOn::UriCapture(c) => ("uri_capture", Some(("uri_capture", c))),
        };
        m.insert(of.into(), json!(name));
        if let Some((suffix, value)) = field {
            m.insert(format!("{of}_{suffix}"), json!(value));
        }
    }
    m.insert("slots".into(), json!(u.slots));
    m.insert("healthchecks".into(), healthchecks_json(&u.healthchecks));
    let cb = u.circuit_breakers;
    if cb != Default::default() {
        m.insert(
            "circuit_breakers".into(),
            json!({"max_requests": cb.max_requests, "max_pending_connections": cb.max_pending_connections}),
        );
    }
    m.insert("host_header".into(), json!(u.host_header));
    m.insert("tags".into(), tags(&u.tags));
    m
}

fn healthchecks_json(h: &Healthchecks) -> Value {
    let (a, p) = (&h.active, &h.passive);
    let kind = |k: ProbeKind| match k {
        ProbeKind::Tcp => "tcp",
        ProbeKind::Http => "http",
        ProbeKind::Https => "https",
    };
    let headers: Option<Map<String, Value>> = (!a.headers.is_empty()).then(|| {
        a.headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect()
    });
    let mut out = json!({
        "threshold": h.threshold,
        "active": {
            "type": kind(a.kind), "timeout": a.timeout, "concurrency": a.concurrency,
            "http_path": a.http_path, "https_sni": a.https_sni,
            "https_verify_certificate": a.https_verify_certificate, "headers": headers,
            "healthy": {"interval": a.healthy.interval, "http_statuses": a.healthy.http_statuses,
                        "successes": a.healthy.successes},
            "unhealthy": {"interval": a.unhealthy.interval, "http_statuses": a.unhealthy.http_statuses,
                          "tcp_failures": a.unhealthy.tcp_failures, "timeouts": a.unhealthy.timeouts,
                          "http_failures": a.unhealthy.http_failures},
        },
        "passive": {
            "type": if p.healthy_statuses.is_empty() && p.unhealthy_statuses.is_empty() { "tcp" } else { "http" },
            "healthy": {"http_statuses": p.healthy_statuses, "successes": p.successes},
            "unhealthy": {"http_statuses": p.unhealthy_statuses, "tcp_failures": p.tcp_failures,
                          "timeouts": p.timeouts, "http_failures": p.http_failures},
        },
    });
    // The Tollgate extension is shown only when set, so Kong's view stays Kong's.
    if p.cooldown != tollgate_model::DEFAULT_COOLDOWN {
        out["passive"]["unhealthy"]["cooldown"] = json!(p.cooldown);
    }
    out
}

/// Renders a validated target as Kong shows it.
pub fn target_json(t: &Target, upstream: Uuid) -> Map<String, Value> {
    let mut m = Kind::Targets.defaults();
    m.insert("id".into(), json!(t.id));
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    m.insert("target".into(), json!(format!("{host}:{}", t.port)));
    m.insert("weight".into(), json!(t.weight));
    m.insert("tags".into(), tags(&t.tags));
    m.insert("upstream".into(), json!({ "id": upstream }));
    m
}

fn fk(id: Option<Uuid>) -> Value {
    id.map_or(Value::Null, |id| json!({ "id": id }))
}

/// The Admin API kind of a credential kind.
pub fn credential_kind(k: CredentialKind) -> Kind {
    match k {
        CredentialKind::KeyAuth => Kind::KeyAuth,
        CredentialKind::BasicAuth => Kind::BasicAuth,
        CredentialKind::Jwt => Kind::Jwt,
        CredentialKind::HmacAuth => Kind::HmacAuth,
        CredentialKind::Oauth2 => Kind::Oauth2,
        CredentialKind::Acl => Kind::Acls,
    }
}

/// Every entity of a validated configuration, rendered, in model order.
pub fn render_all(config: &Config) -> Vec<(Kind, Map<String, Value>)> {
    let mut out = Vec::new();
    out.extend(
        config
            .services
            .iter()
            .map(|s| (Kind::Services, service_json(s))),
    );
    out.extend(config.routes.iter().map(|r| (Kind::Routes, route_json(r))));
    for u in &config.upstreams {
        out.push((Kind::Upstreams, upstream_json(u)));
        out.extend(
            u.targets
                .iter()
                .map(|t| (Kind::Targets, target_json(t, u.id))),
        );
    }
    for c in &config.consumers {
        let mut m = Kind::Consumers.defaults();
        m.insert("id".into(), json!(c.id));
        m.insert("username".into(), json!(c.username));
        m.insert("custom_id".into(), json!(c.custom_id));
        m.insert("tags".into(), tags(&c.tags));
        out.push((Kind::Consumers, m));
    }
    for c in &config.credentials {
        let kind = credential_kind(c.kind);
        let mut m = kind.defaults();
        for (k, v) in &c.fields {
            m.insert(k.clone(), v.clone());
        }
        m.insert("id".into(), json!(c.id));
        m.insert("consumer".into(), fk(Some(c.consumer)));
        m.insert("tags".into(), tags(&c.tags));
        out.push((kind, m));
    }
    for p in &config.plugins {
        let mut m = Kind::Plugins.defaults();
        m.insert("id".into(), json!(p.id));
        m.insert("name".into(), json!(p.name));
        m.insert("instance_name".into(), json!(p.instance_name));
        m.insert("config".into(), p.config.clone());
        m.insert("protocols".into(), json!(p.protocols));
        m.insert("enabled".into(), json!(p.enabled));
        m.insert("service".into(), fk(p.service));
        m.insert("route".into(), fk(p.route));
        m.insert("consumer".into(), fk(p.consumer));
        m.insert("ordering".into(), p.ordering.clone().unwrap_or(Value::Null));
        m.insert("tags".into(), tags(&p.tags));
        out.push((Kind::Plugins, m));
    }
    for c in &config.certificates {
        let mut m = Kind::Certificates.defaults();
        m.insert("id".into(), json!(c.id));
        m.insert("cert".into(), json!(c.cert));
        m.insert("key".into(), json!(c.key));
        m.insert("cert_alt".into(), json!(c.cert_alt));
        m.insert("key_alt".into(), json!(c.key_alt));
        m.insert("tags".into(), tags(&c.tags));
        out.push((Kind::Certificates, m));
    }
    for n in &config.snis {
        let mut m = Kind::Snis.defaults();
        m.insert("id".into(), json!(n.id));
        m.insert("name".into(), json!(n.name));
        m.insert("certificate".into(), fk(Some(n.certificate)));
        m.insert("tags".into(), tags(&n.tags));
        out.push((Kind::Snis, m));
    }
    for c in &config.ca_certificates {
        let mut m = Kind::CaCertificates.defaults();
        m.insert("id".into(), json!(c.id));
        m.insert("cert".into(), json!(c.cert));
        m.insert("cert_digest".into(), json!(c.cert_digest));
        m.insert("tags".into(), tags(&c.tags));
        out.push((Kind::CaCertificates, m));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_shorthand_expands_with_scheme_default_ports() {
        let mut m = Map::new();
        m.insert("url".into(), json!("https://api.example.com/v1"));
        expand_url(&mut m);
        assert_eq!(m["protocol"], "https");
        assert_eq!(m["host"], "api.example.com");
        assert_eq!(m["port"], 443);
        assert_eq!(m["path"], "/v1");
        assert!(!m.contains_key("url"));
        let mut m = Map::new();
        m.insert("url".into(), json!("http://127.0.0.1:9000"));
        expand_url(&mut m);
        assert_eq!(m["port"], 9000);
        assert_eq!(m["path"], Value::Null);
    }
}
