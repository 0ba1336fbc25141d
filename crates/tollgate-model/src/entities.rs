//! The validated entities (Kong's field names and defaults).

use crate::balancing::{Algorithm, CircuitBreakers, HashOn, Healthchecks};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A whole, validated configuration: what a snapshot is compiled from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Services, in file order.
    pub services: Vec<Service>,
    /// Routes (nested and top-level ones flattened), in file order.
    pub routes: Vec<Route>,
    /// Upstreams with their targets.
    pub upstreams: Vec<Upstream>,
    /// Consumers, in file order.
    pub consumers: Vec<Consumer>,
    /// Plugins (nested ones first, in parent order, then top-level ones).
    pub plugins: Vec<Plugin>,
    /// Consumer credentials of every kind (nested ones first, then top-level ones).
    pub credentials: Vec<Credential>,
    /// TLS certificates.
    pub certificates: Vec<Certificate>,
    /// Server names bound to certificates (from `certificates[].snis` and `snis`).
    pub snis: Vec<Sni>,
    /// Trusted CA certificates.
    pub ca_certificates: Vec<CaCertificate>,
}

/// The protocol of a service or one accepted by a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// gRPC over plain HTTP/2.
    Grpc,
    /// gRPC over TLS.
    Grpcs,
}

impl Protocol {
    /// Kong's spelling of the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Grpc => "grpc",
            Protocol::Grpcs => "grpcs",
        }
    }

    /// The default port of the scheme (80 or 443).
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Http | Protocol::Grpc => 80,
            Protocol::Https | Protocol::Grpcs => 443,
        }
    }
}

/// A backend service (Kong's Service entity).
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Entity id (given, or UUIDv5 of the name as Kong derives it).
    pub id: Uuid,
    /// Unique name, if any.
    pub name: Option<String>,
    /// Protocol to the backend (default http).
    pub protocol: Protocol,
    /// Backend host name, IP address, or the name of an [`Upstream`]
    /// (an IPv6 address is stored without brackets).
    pub host: String,
    /// Backend port (default 80, or 443 for https/grpcs `url`s).
    pub port: u16,
    /// Path prefix on the backend; `None` means "/".
    pub path: Option<String>,
    /// Retries on connect failure (default 5).
    pub retries: u16,
    /// Connect timeout in milliseconds (default 60000).
    pub connect_timeout: u32,
    /// Timeout between two writes to the backend in milliseconds (default 60000).
    pub write_timeout: u32,
    /// Timeout between two reads from the backend in milliseconds (default 60000).
    pub read_timeout: u32,
    /// When false, the service's routes are left out of the router.
    pub enabled: bool,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// TLS to the backend (`https` services).
    pub tls: ServiceTls,
}

/// How an `https` service talks TLS to its backend (Kong's `tls_verify`,
/// `tls_verify_depth`, `ca_certificates`, `client_certificate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTls {
    /// Verify the backend's certificate (None: Kong's default, off).
    pub verify: Option<bool>,
    /// Longest accepted chain below the trust anchor (None: no limit).
    pub verify_depth: Option<u8>,
    /// CA certificates (ids of `ca_certificates`) trusted for this service,
    /// on top of `lua_ssl_trusted_certificate`.
    pub ca_certificates: Vec<Uuid>,
    /// Certificate (id of a `certificates` entity) presented to the backend.
    pub client_certificate: Option<Uuid>,
}

/// A route (Kong's Route entity, `traditional_compatible` flavour).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Entity id.
    pub id: Uuid,
    /// Unique name, if any.
    pub name: Option<String>,
    /// Accepted protocols (default `[http, https]`).
    pub protocols: Vec<Protocol>,
    /// Accepted methods, uppercase; empty = any.
    pub methods: Vec<String>,
    /// Accepted hosts (`a.com`, `*.a.com`, `a.*`, optionally `:port`); empty = any.
    pub hosts: Vec<String>,
    /// Path prefixes (`/p`) or regexes (`~/re`); empty = any.
    pub paths: Vec<String>,
    /// Header name (lowercase) → accepted values (`~*` prefix = regex).
    pub headers: BTreeMap<String, Vec<String>>,
    /// Strip the matched path prefix before proxying (default true).
    pub strip_path: bool,
    /// Forward the client's Host header (default false).
    pub preserve_host: bool,
    /// Priority among regex routes (default 0).
    pub regex_priority: i64,
    /// How the service path and the request path are joined (default v0).
    pub path_handling: PathHandling,
    /// Status for http requests on https-only routes (426, 301, 302, 307, 308).
    pub https_redirect_status_code: u16,
    /// Tollgate extension (`hsts_max_age`, seconds): answers over TLS carry
    /// `Strict-Transport-Security: max-age=N` (None: no header).
    pub hsts_max_age: Option<u32>,
    /// Tollgate extension: add `; includeSubDomains` to that header.
    pub hsts_include_subdomains: bool,
    /// Buffer the request body before proxying (default true).
    pub request_buffering: bool,
    /// Buffer the response body before sending it (default true).
    pub response_buffering: bool,
    /// The service this route forwards to (None: the route answers 503 as Kong does).
    pub service: Option<Uuid>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// Kong's `path_handling` of a route: how the upstream path is built from the
/// service `path` and the (possibly stripped) request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PathHandling {
    /// Kong's default (`v0`).
    #[default]
    V0,
    /// The deprecated alternative (`v1`).
    V1,
}

impl PathHandling {
    /// Kong's spelling (`v0` or `v1`).
    pub fn as_str(self) -> &'static str {
        match self {
            PathHandling::V0 => "v0",
            PathHandling::V1 => "v1",
        }
    }
}

impl Default for Route {
    /// Kong's defaults for every field; the id is nil and no matcher is set,
    /// so the result is only a starting point (e.g. for tests).
    fn default() -> Route {
        Route {
            id: Uuid::nil(),
            name: None,
            protocols: vec![Protocol::Http, Protocol::Https],
            methods: Vec::new(),
            hosts: Vec::new(),
            paths: Vec::new(),
            headers: BTreeMap::new(),
            strip_path: true,
            preserve_host: false,
            regex_priority: 0,
            path_handling: PathHandling::V0,
            https_redirect_status_code: 426,
            hsts_max_age: None,
            hsts_include_subdomains: false,
            request_buffering: true,
            response_buffering: true,
            service: None,
            tags: Vec::new(),
        }
    }
}

/// A load-balancing upstream (Kong's Upstream entity); a service whose
/// `host` equals the upstream's name balances over its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Entity id.
    pub id: Uuid,
    /// Unique name (a hostname).
    pub name: String,
    /// Balancing algorithm (default round-robin).
    pub algorithm: Algorithm,
    /// What consistent hashing hashes on.
    pub hash_on: HashOn,
    /// What it hashes on when `hash_on` gives nothing.
    pub hash_fallback: HashOn,
    /// Ring size for consistent hashing (Kong's `slots`, default 10000).
    pub slots: u32,
    /// Health checking.
    pub healthchecks: Healthchecks,
    /// Per-target limits (Tollgate extension).
    pub circuit_breakers: CircuitBreakers,
    /// Host header to send to targets instead of the target's host.
    pub host_header: Option<String>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// One backend of an upstream (Kong's Target entity).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Entity id.
    pub id: Uuid,
    /// Host part of `host:port` (an IPv6 address is stored without brackets).
    pub host: String,
    /// Port part of `host:port` (default 8000).
    pub port: u16,
    /// Weight 0–65535 (default 100); 0 disables the target.
    pub weight: u32,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A consumer of the API (Kong's Consumer entity): at least one of
/// `username` and `custom_id` is set, and each is unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    /// Entity id (given, or UUIDv5 of the username as Kong derives it).
    pub id: Uuid,
    /// Unique user name (the endpoint key).
    pub username: Option<String>,
    /// Unique id in an external system.
    pub custom_id: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// The kind of a consumer credential: the auth plugin that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    /// key-auth (`keyauth_credentials`).
    KeyAuth,
    /// basic-auth (`basicauth_credentials`).
    BasicAuth,
    /// jwt (`jwt_secrets`).
    Jwt,
    /// hmac-auth (`hmacauth_credentials`).
    HmacAuth,
    /// oauth2 (`oauth2_credentials`).
    Oauth2,
    /// acl group membership (`acls`).
    Acl,
}

impl CredentialKind {
    /// Every kind, in Kong's declarative order.
    pub const ALL: [CredentialKind; 6] = [
        CredentialKind::KeyAuth,
        CredentialKind::BasicAuth,
        CredentialKind::Jwt,
        CredentialKind::HmacAuth,
        CredentialKind::Oauth2,
        CredentialKind::Acl,
    ];

    /// The key of the kind in a declarative file (`keyauth_credentials`, ...).
    pub fn declarative_key(self) -> &'static str {
        match self {
            CredentialKind::KeyAuth => "keyauth_credentials",
            CredentialKind::BasicAuth => "basicauth_credentials",
            CredentialKind::Jwt => "jwt_secrets",
            CredentialKind::HmacAuth => "hmacauth_credentials",
            CredentialKind::Oauth2 => "oauth2_credentials",
            CredentialKind::Acl => "acls",
        }
    }

    /// The name of the plugin the credential belongs to (`key-auth`, ...).
    pub fn plugin_name(self) -> &'static str {
        match self {
            CredentialKind::KeyAuth => "key-auth",
            CredentialKind::BasicAuth => "basic-auth",
            CredentialKind::Jwt => "jwt",
            CredentialKind::HmacAuth => "hmac-auth",
            CredentialKind::Oauth2 => "oauth2",
            CredentialKind::Acl => "acl",
        }
    }

    /// The kind whose declarative key is `key`.
    pub fn from_declarative_key(key: &str) -> Option<CredentialKind> {
        CredentialKind::ALL
            .into_iter()
            .find(|k| k.declarative_key() == key)
    }
}

/// A consumer credential (key-auth key, basic-auth password, jwt secret,
/// hmac-auth secret, oauth2 client, or acl group).
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// Entity id.
    pub id: Uuid,
    /// The consumer the credential belongs to.
    pub consumer: Uuid,
    /// Which plugin the credential is for.
    pub kind: CredentialKind,
    /// The kind's own fields (e.g. `key`, `ttl` for key-auth), validated and
    /// with Kong's defaults filled in (e.g. jwt `algorithm: "HS256"`).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// Creation time (epoch seconds) when given; key-auth `ttl` counts from it.
    pub created_at: Option<i64>,
}

/// A plugin instance (Kong's Plugin entity), global or scoped to a service,
/// a route, a consumer, or a combination.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    /// Entity id (given, UUIDv5 of `instance_name`, or derived from content).
    pub id: Uuid,
    /// Plugin name (e.g. `rate-limiting`).
    pub name: String,
    /// Unique instance name (the endpoint key), if any.
    pub instance_name: Option<String>,
    /// The configuration: an object, with the plugin's defaults filled in
    /// when the reader was given a [`PluginSchemas`].
    pub config: serde_json::Value,
    /// Scope: the service, if any.
    pub service: Option<Uuid>,
    /// Scope: the route, if any.
    pub route: Option<Uuid>,
    /// Scope: the consumer, if any.
    pub consumer: Option<Uuid>,
    /// Protocols the plugin runs on (default `["grpc", "grpcs", "http", "https"]`).
    pub protocols: Vec<String>,
    /// When false, the plugin is configured but does not run (default true).
    pub enabled: bool,
    /// Dynamic ordering (Kong Enterprise):
    /// `{before: {access: [names]}, after: {access: [names]}}`.
    pub ordering: Option<serde_json::Value>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// Validates one plugin's config and fills its defaults.
pub trait PluginSchemas {
    /// Ok(config with defaults) or Err(list of (path inside config, message)); an unknown plugin name gives Err(UnknownPlugin).
    fn validate(
        &self,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<serde_json::Value, PluginConfigError>;
}

/// Why a plugin's config was refused by [`PluginSchemas::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginConfigError {
    /// No plugin of that name is available.
    UnknownPlugin,
    /// The config is invalid: (path inside `config`, message) pairs.
    Invalid(Vec<(Vec<String>, String)>),
}

/// A TLS certificate with its private key (Kong's Certificate entity).
///
/// Only the PEM framing of `cert` and `key` is checked here; whether the key
/// matches the certificate (and the certificate parses) is checked when the
/// TLS layer loads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// Entity id.
    pub id: Uuid,
    /// PEM certificate (chain).
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// Alternate PEM certificate (e.g. ECDSA next to RSA), set with `key_alt`.
    pub cert_alt: Option<String>,
    /// Alternate PEM private key, set with `cert_alt`.
    pub key_alt: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A server name served with a certificate (Kong's SNI entity).
#[derive(Debug, Clone, PartialEq)]
pub struct Sni {
    /// Entity id (given, or UUIDv5 of the name).
    pub id: Uuid,
    /// Unique server name; may have a `*` as its leftmost or rightmost label.
    pub name: String,
    /// The certificate to serve.
    pub certificate: Uuid,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A trusted CA certificate (Kong's CA Certificate entity).
#[derive(Debug, Clone, PartialEq)]
pub struct CaCertificate {
    /// Entity id.
    pub id: Uuid,
    /// PEM certificate.
    pub cert: String,
    /// SHA-256 digest of the certificate, when given (unique).
    pub cert_digest: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
}
