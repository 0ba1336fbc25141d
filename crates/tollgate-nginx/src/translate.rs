//! The directive tree → a Kong declarative document (the same model every
//! front door produces), plus what the node itself needs (listeners, worker
//! threads).
//!
//! Mapping (first set; every other directive is refused with its file and
//! line):
//! - `upstream NAME { server H[:P] [weight=N] [down]; least_conn | ip_hash |
//!   hash KEY [consistent]; keepalive N; }` → an upstream with targets.
//! - `server { listen; server_name; location … }` → routes with the
//!   server's names as hosts (none for `_`/empty names: every host).
//! - `location` → one route, in nginx's order: `= /x` is an anchored regex
//!   above everything; `^~ /p` a regex above the `~`/`~*` ones; `~`/`~*`
//!   regexes ranked by their place in the file; plain prefixes after all
//!   regexes, longest first (Kong's prefix order).
//! - `proxy_pass URL` → a service; with a URI part the matched prefix is
//!   replaced by it (strip_path plus the service path), without one the
//!   request URI passes unchanged.
//! - `proxy_*_timeout` → the service's timeouts; `proxy_set_header Host
//!   $host` → preserve_host; the forwarded headers nginx configs usually
//!   set (`X-Real-IP`, `X-Forwarded-For/-Proto/-Host`, `Connection ""`)
//!   are set by Tollgate already and accepted.

use crate::parse::{ConfError, Directive};
use serde_json::{json, Map, Value};

/// What an nginx configuration becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The Kong declarative document (`_format_version: "3.0"`).
    pub document: Value,
    /// `proxy_listen` entries (`ADDR:PORT [ssl] [http2]`), one per distinct
    /// `listen`.
    pub listen: Vec<String>,
    /// `worker_processes` as worker threads (None: `auto` or unset).
    pub workers: Option<usize>,
    /// Directives accepted without effect, as `FILE:LINE: message`.
    pub warnings: Vec<String>,
}

/// Process-model directives accepted with a warning.
const PROCESS_ONLY: &[&str] = &[
    "user",
    "pid",
    "error_log",
    "worker_rlimit_nofile",
    "worker_connections",
    "multi_accept",
    "use",
    "daemon",
    "master_process",
    "accept_mutex",
];

/// Directives that tune nginx's own proxy buffers and connections:
/// Tollgate streams and pools anyway.
const PROXY_TUNING: &[&str] = &[
    "proxy_http_version",
    "proxy_buffering",
    "proxy_buffer_size",
    "proxy_buffers",
    "proxy_busy_buffers_size",
    "sendfile",
    "tcp_nopush",
    "tcp_nodelay",
    "keepalive_timeout",
    "keepalive_requests",
    "types_hash_max_size",
    "server_tokens",
    "default_type",
    "types",
    "charset",
];

/// Headers Tollgate sets on every proxied request the way these usual
/// values ask for.
fn usual_header(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        (name.as_str(), value),
        ("x-real-ip", "$remote_addr")
            | ("x-forwarded-for", "$proxy_add_x_forwarded_for")
            | ("x-forwarded-for", "$remote_addr")
            | ("x-forwarded-proto", "$scheme")
            | ("x-forwarded-host", "$host")
            | ("connection", "")
            | ("upgrade", "$http_upgrade")
            | ("connection", "upgrade")
            | ("connection", "$connection_upgrade")
    )
}

/// Translates a parsed configuration.
pub fn translate(tree: &[Directive]) -> Result<Translated, ConfError> {
    let mut t = Translator::default();
    t.main(tree)?;
    let mut doc = Map::new();
    doc.insert("_format_version".into(), json!("3.0"));
    doc.insert("services".into(), Value::Array(t.services));
    if !t.upstreams.is_empty() {
        doc.insert("upstreams".into(), Value::Array(t.upstreams));
    }
    if t.listen.is_empty() {
        // nginx's default `listen 80` (8000 when not root, nginx's own rule).
        t.listen.push("0.0.0.0:80".into());
    }
    Ok(Translated {
        document: Value::Object(doc),
        listen: t.listen,
        workers: t.workers,
        warnings: t.warnings,
    })
}

/// Settings a `location` inherits from its `server`, and a `server` from
/// `http`.
#[derive(Debug, Clone, Default)]
struct Inherited {
    preserve_host: bool,
    timeouts: Map<String, Value>,
    /// `limit_req` in force: (zone, burst, nodelay, delay).
    limit_req: Vec<(String, u64, bool, u64)>,
    /// Whether this level set its own `limit_req` (replacing inherited ones).
    limit_req_here: bool,
    /// `limit_req_status`.
    limit_req_status: Option<u16>,
}

impl Inherited {
    /// What a nested level starts from.
    fn child(&self) -> Inherited {
        Inherited {
            limit_req_here: false,
            ..self.clone()
        }
    }
}

/// A `limit_req_zone`: what a bucket is per, and its rate.
#[derive(Debug, Clone)]
struct ZoneDef {
    limit_by: &'static str,
    header: Option<String>,
    rate: f64,
    max_keys: u64,
}

#[derive(Default)]
struct Translator {
    services: Vec<Value>,
    upstreams: Vec<Value>,
    upstream_names: Vec<String>,
    listen: Vec<String>,
    workers: Option<usize>,
    warnings: Vec<String>,
    /// Regex locations seen so far (their file order ranks them).
    regexes: i64,
    servers: usize,
    /// Whether a server took unmatched hosts already.
    has_default: bool,
    /// Whether some server is marked `default_server`.
    marked_default: bool,
    /// `limit_req_zone`s by name.
    zones: std::collections::HashMap<String, ZoneDef>,
}

/// nginx's size syntax (`10m`, `512k`, bytes).
fn bytes(d: &Directive, v: &str) -> Result<u64, ConfError> {
    let lower = v.to_ascii_lowercase();
    let (num, k) = match lower.strip_suffix('k') {
        Some(n) => (n, 1024),
        None => match lower.strip_suffix('m') {
            Some(n) => (n, 1 << 20),
            None => match lower.strip_suffix('g') {
                Some(n) => (n, 1 << 30),
                None => (lower.as_str(), 1),
            },
        },
    };
    num.parse::<u64>()
        .map(|n| n * k)
        .map_err(|_| d.error(format!("invalid size \"{v}\" in \"{}\"", d.name)))
}

/// Whether a `server` block has a `listen … default_server`.
fn marked_default(d: &Directive) -> bool {
    d.block.iter().flatten().any(|s| {
        s.name == "listen"
            && s.args
                .iter()
                .any(|a| a == "default_server" || a == "default")
    })
}

fn arg(d: &Directive, i: usize) -> Result<&str, ConfError> {
    d.args
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| d.error(format!("invalid number of arguments in \"{}\"", d.name)))
}

fn block(d: &Directive) -> Result<&[Directive], ConfError> {
    d.block
        .as_deref()
        .ok_or_else(|| d.error(format!("\"{}\" needs a {{ … }} block", d.name)))
}

/// nginx's time syntax (`60s`, `500ms`, `1m`, bare seconds) in ms.
fn millis(d: &Directive, v: &str) -> Result<u64, ConfError> {
    let (num, unit) = v
        .find(|c: char| !c.is_ascii_digit())
        .map_or((v, "s"), |i| (&v[..i], &v[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| d.error(format!("invalid time \"{v}\" in \"{}\"", d.name)))?;
    let k = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(d.error(format!("invalid time \"{v}\" in \"{}\"", d.name))),
    };
    Ok(n * k)
}

impl Translator {
    fn warn(&mut self, d: &Directive, message: &str) {
        self.warnings
            .push(format!("{}:{}: {message}", d.file.display(), d.line));
    }

    fn main(&mut self, tree: &[Directive]) -> Result<(), ConfError> {
        // Bare `server {}` blocks (no `http {}`) sit in an implicit http;
        // upstreams first, as proxy_pass may name one declared below.
        let inherited = Inherited::default();
        self.marked_default = tree.iter().any(|d| d.name == "server" && marked_default(d));
        for d in tree.iter().filter(|d| d.name == "upstream") {
            self.upstream(d)?;
        }
        for d in tree.iter().filter(|d| d.name != "upstream") {
            match d.name.as_str() {
                "http" => self.http(block(d)?)?,
                "events" => {}
                "worker_processes" => {
                    let v = arg(d, 0)?;
                    if v != "auto" {
                        let n = v.parse().map_err(|_| {
                            d.error(format!("invalid value \"{v}\" in \"worker_processes\""))
                        })?;
                        self.workers = Some(n);
                    }
                }
                "server" => self.server(d, &inherited)?,
                n if PROCESS_ONLY.contains(&n) => {
                    self.warn(d, &format!("\"{n}\" tunes nginx's process model; ignored"))
                }
                n => return Err(d.error(format!("unknown directive \"{n}\" in the main context"))),
            }
        }
        Ok(())
    }

    fn http(&mut self, list: &[Directive]) -> Result<(), ConfError> {
        let mut inherited = Inherited::default();
        self.marked_default |= list.iter().any(|d| d.name == "server" && marked_default(d));
        // Upstreams first: proxy_pass may name one declared further down.
        for d in list.iter().filter(|d| d.name == "upstream") {
            self.upstream(d)?;
        }
        for d in list
            .iter()
            .filter(|d| d.name != "server" && d.name != "upstream")
        {
            self.http_directive(d, &mut inherited)?;
        }
        for d in list.iter().filter(|d| d.name == "server") {
            self.server(d, &inherited)?;
        }
        Ok(())
    }

    fn http_directive(
        &mut self,
        d: &Directive,
        inherited: &mut Inherited,
    ) -> Result<(), ConfError> {
        match d.name.as_str() {
            "server" => self.server(d, inherited),
            "upstream" => self.upstream(d),
            "include" => Ok(()),
            "limit_req_zone" => self.limit_req_zone(d),
            "access_log" | "log_format" => {
                self.warn(
                    d,
                    &format!(
                        "\"{}\" is not translated yet; Tollgate's access_log setting applies",
                        d.name
                    ),
                );
                Ok(())
            }
            _ => self.common(d, inherited),
        }
    }

    /// Directives valid in http, server and location.
    fn common(&mut self, d: &Directive, inherited: &mut Inherited) -> Result<(), ConfError> {
        let n = d.name.as_str();
        match n {
            "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout" => {
                let ms = millis(d, arg(d, 0)?)?;
                let key = match n {
                    "proxy_connect_timeout" => "connect_timeout",
                    "proxy_read_timeout" => "read_timeout",
                    _ => "write_timeout",
                };
                inherited.timeouts.insert(key.into(), json!(ms));
                Ok(())
            }
            "proxy_set_header" => {
                let (name, value) = (arg(d, 0)?, arg(d, 1)?);
                if name.eq_ignore_ascii_case("host") {
                    match value {
                        "$host" | "$http_host" => inherited.preserve_host = true,
                        "$proxy_host" => inherited.preserve_host = false,
                        v => return Err(d.error(format!("\"proxy_set_header Host {v}\" is not supported yet (only $host, $http_host, $proxy_host)"))),
                    }
                    Ok(())
                } else if usual_header(name, value) {
                    Ok(())
                } else {
                    Err(d.error(format!("\"proxy_set_header {name}\" is not supported yet")))
                }
            }
            "limit_req" => {
                let zone = arg(d, 0)?
                    .strip_prefix("zone=")
                    .ok_or_else(|| d.error("\"limit_req\" needs zone=NAME"))?
                    .to_owned();
                if !self.zones.contains_key(&zone) {
                    return Err(d.error(format!("unknown limit_req_zone \"{zone}\"")));
                }
                let (mut burst, mut nodelay, mut delay) = (0, false, 0);
                for opt in &d.args[1..] {
                    let num = |v: &str| {
                        v.parse::<u64>().map_err(|_| {
                            d.error(format!("invalid value \"{opt}\" in \"limit_req\""))
                        })
                    };
                    if let Some(v) = opt.strip_prefix("burst=") {
                        burst = num(v)?;
                    } else if let Some(v) = opt.strip_prefix("delay=") {
                        delay = num(v)?;
                    } else if opt == "nodelay" {
                        nodelay = true;
                    } else {
                        return Err(
                            d.error(format!("invalid parameter \"{opt}\" in \"limit_req\""))
                        );
                    }
                }
                if !inherited.limit_req_here {
                    inherited.limit_req.clear();
                    inherited.limit_req_here = true;
                }
                inherited.limit_req.push((zone, burst, nodelay, delay));
                Ok(())
            }
            "limit_req_status" => {
                let code = arg(d, 0)?
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (400..=599).contains(c))
                    .ok_or_else(|| d.error("\"limit_req_status\" needs a status 400-599"))?;
                inherited.limit_req_status = Some(code);
                Ok(())
            }
            "proxy_redirect" if d.args.first().is_some_and(|a| a == "off" || a == "default") => {
                Ok(())
            }
            n if PROXY_TUNING.contains(&n) => {
                self.warn(
                    d,
                    &format!("\"{n}\" has no effect: Tollgate streams and pools on its own"),
                );
                Ok(())
            }
            n if PROCESS_ONLY.contains(&n) => {
                self.warn(d, &format!("\"{n}\" tunes nginx's process model; ignored"));
                Ok(())
            }
            n => Err(d.error(format!("unknown or unsupported directive \"{n}\""))),
        }
    }

    fn limit_req_zone(&mut self, d: &Directive) -> Result<(), ConfError> {
        let key = arg(d, 0)?;
        let (mut name, mut size, mut rate) = (None, None, None);
        for opt in &d.args[1..] {
            if let Some(z) = opt.strip_prefix("zone=") {
                let (n, sz) = z
                    .split_once(':')
                    .ok_or_else(|| d.error(format!("invalid zone size \"{z}\"")))?;
                name = Some(n.to_owned());
                size = Some(bytes(d, sz)?);
            } else if let Some(r) = opt.strip_prefix("rate=") {
                let (n, per) = match (r.strip_suffix("r/s"), r.strip_suffix("r/m")) {
                    (Some(n), _) => (n, 1.0),
                    (None, Some(n)) => (n, 60.0),
                    _ => return Err(d.error(format!("invalid rate \"{r}\""))),
                };
                let n: f64 = n
                    .parse()
                    .map_err(|_| d.error(format!("invalid rate \"{r}\"")))?;
                rate = Some(n / per);
            } else if opt != "sync" {
                return Err(d.error(format!("invalid parameter \"{opt}\" in \"limit_req_zone\"")));
            }
        }
        let (Some(name), Some(size)) = (name, size) else {
            return Err(d.error("\"limit_req_zone\" needs zone=NAME:SIZE"));
        };
        let rate = rate
            .filter(|r| *r > 0.0)
            .ok_or_else(|| d.error("\"limit_req_zone\" needs rate=Nr/s or Nr/m"))?;
        let (limit_by, header) = if key == "$binary_remote_addr" || key == "$remote_addr" {
            ("ip", None)
        } else if let Some(h) = key.strip_prefix("$http_") {
            ("header", Some(h.replace('_', "-")))
        } else if !key.contains('$') {
            ("global", None)
        } else {
            return Err(d.error(format!("limit_req_zone key \"{key}\" is not supported yet")));
        };
        self.zones.insert(
            name,
            ZoneDef {
                limit_by,
                header,
                rate,
                // nginx: one megabyte holds about 16,000 states.
                max_keys: (size / 64).max(1),
            },
        );
        Ok(())
    }

    fn upstream(&mut self, d: &Directive) -> Result<(), ConfError> {
        let name = arg(d, 0)?.to_owned();
        if self.upstream_names.contains(&name) {
            return Err(d.error(format!("duplicate upstream \"{name}\"")));
        }
        let mut up = Map::new();
        up.insert("name".into(), json!(name));
        let mut targets = Vec::new();
        for s in block(d)? {
            match s.name.as_str() {
                "server" => {
                    let addr = arg(s, 0)?;
                    let target = if addr.contains(':') {
                        addr.to_owned()
                    } else {
                        format!("{addr}:80")
                    };
                    let mut weight = 100;
                    for opt in &s.args[1..] {
                        if let Some(w) = opt.strip_prefix("weight=") {
                            weight = w
                                .parse::<u32>()
                                .map_err(|_| s.error(format!("invalid weight \"{w}\"")))?
                                * 100;
                        } else if opt == "down" {
                            weight = 0;
                        } else {
                            return Err(s.error(format!(
                                "server parameter \"{opt}\" is not supported yet"
                            )));
                        }
                    }
                    targets.push(json!({ "target": target, "weight": weight }));
                }
                "least_conn" => {
                    up.insert("algorithm".into(), json!("least-connections"));
                }
                "ip_hash" => {
                    up.insert("algorithm".into(), json!("consistent-hashing"));
                    up.insert("hash_on".into(), json!("ip"));
                }
                "hash" => {
                    let key = arg(s, 0)?;
                    up.insert("algorithm".into(), json!("consistent-hashing"));
                    if let Some(h) = key.strip_prefix("$http_") {
                        up.insert("hash_on".into(), json!("header"));
                        up.insert("hash_on_header".into(), json!(h.replace('_', "-")));
                    } else if let Some(c) = key.strip_prefix("$cookie_") {
                        up.insert("hash_on".into(), json!("cookie"));
                        up.insert("hash_on_cookie".into(), json!(c));
                    } else if let Some(a) = key.strip_prefix("$arg_") {
                        up.insert("hash_on".into(), json!("query_arg"));
                        up.insert("hash_on_query_arg".into(), json!(a));
                    } else if key == "$remote_addr" || key == "$binary_remote_addr" {
                        up.insert("hash_on".into(), json!("ip"));
                    } else if key == "$request_uri" || key == "$uri" {
                        up.insert("hash_on".into(), json!("path"));
                    } else {
                        return Err(s.error(format!("hash key \"{key}\" is not supported yet")));
                    }
                }
                "keepalive" | "keepalive_timeout" | "keepalive_requests" => {
                    self.warn(
                        s,
                        &format!(
                            "\"{}\": Tollgate's upstream_keepalive settings apply",
                            s.name
                        ),
                    );
                }
                n => return Err(s.error(format!("unknown directive \"{n}\" in upstream"))),
            }
        }
        if targets.is_empty() {
            return Err(d.error(format!("no servers are inside upstream \"{name}\"")));
        }
        up.insert("targets".into(), Value::Array(targets));
        self.upstreams.push(Value::Object(up));
        self.upstream_names.push(name);
        Ok(())
    }

    fn server(&mut self, d: &Directive, from_http: &Inherited) -> Result<(), ConfError> {
        self.servers += 1;
        let index = self.servers;
        let mut inherited = from_http.child();
        let list = block(d)?;
        let mut hosts: Vec<String> = Vec::new();
        // nginx's default server: the one marked `default_server`, else the
        // first; it also answers hosts no server_name matches.
        let marked = marked_default(d);
        let default = marked || (!self.has_default && !self.marked_default);
        self.has_default |= default;
        for s in list {
            match s.name.as_str() {
                "listen" => {
                    let a = arg(s, 0)?;
                    let addr = if a.contains(':') {
                        a.to_owned()
                    } else if a.parse::<u16>().is_ok() {
                        format!("0.0.0.0:{a}")
                    } else {
                        format!("{a}:80")
                    };
                    let mut entry = addr;
                    for opt in &s.args[1..] {
                        match opt.as_str() {
                            "ssl" | "http2" => {
                                entry.push(' ');
                                entry.push_str(opt);
                            }
                            "default_server" | "default" | "reuseport" => {}
                            o => {
                                return Err(s.error(format!(
                                    "listen parameter \"{o}\" is not supported yet"
                                )))
                            }
                        }
                    }
                    if !self.listen.contains(&entry) {
                        self.listen.push(entry);
                    }
                }
                "server_name" => {
                    for n in &s.args {
                        if n.starts_with('~') {
                            return Err(s.error(format!(
                                "regex server names (\"{n}\") are not supported yet"
                            )));
                        }
                        if !n.is_empty() && n != "_" && n != "\"\"" {
                            hosts.push(n.clone());
                        }
                    }
                }
                "location" => {}
                _ => self.common(s, &mut inherited)?,
            }
        }
        for s in list.iter().filter(|s| s.name == "location") {
            self.location(s, &hosts, &inherited, index, default)?;
        }
        Ok(())
    }

    fn location(
        &mut self,
        d: &Directive,
        hosts: &[String],
        from_server: &Inherited,
        server: usize,
        default: bool,
    ) -> Result<(), ConfError> {
        let (modifier, path) = match d.args.as_slice() {
            [p] => ("", p.as_str()),
            [m, p] => (m.as_str(), p.as_str()),
            _ => return Err(d.error("invalid number of arguments in \"location\"")),
        };
        let mut inherited = from_server.child();
        let mut proxy_pass = None;
        for s in block(d)? {
            match s.name.as_str() {
                "proxy_pass" => proxy_pass = Some(s),
                "location" => {
                    return Err(s.error("nested locations are not supported yet"));
                }
                _ => self.common(s, &mut inherited)?,
            }
        }
        let Some(pass) = proxy_pass else {
            return Err(d.error(
                "this location has no proxy_pass (return, root and the like are not supported yet)",
            ));
        };
        let regex = matches!(modifier, "~" | "~*");
        if regex {
            if let Err(e) = regex::Regex::new(path) {
                return Err(d.error(format!("invalid regular expression \"{path}\": {e}")));
            }
        }
        let (kong_path, regex_priority) = match modifier {
            "" => (path.to_owned(), 0),
            "=" => (format!("~{}$", regex::escape(path)), 3_000_000),
            "^~" => (format!("~{}", regex::escape(path)), 2_000_000),
            "~" => {
                self.regexes += 1;
                (format!("~(?s).*?(?:{path})"), 1_000_000 - self.regexes)
            }
            "~*" => {
                self.regexes += 1;
                (format!("~(?is).*?(?:{path})"), 1_000_000 - self.regexes)
            }
            m => return Err(d.error(format!("invalid location modifier \"{m}\""))),
        };
        let url = arg(pass, 0)?;
        let rest = url
            .strip_prefix("http://")
            .map(|r| ("http", r))
            .or_else(|| url.strip_prefix("https://").map(|r| ("https", r)));
        let Some((scheme, rest)) = rest else {
            return Err(pass.error(format!("invalid URL prefix in \"{url}\"")));
        };
        let (authority, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if uri.is_some() && regex {
            return Err(pass.error(
                "\"proxy_pass\" cannot have URI part in location given by regular expression",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| pass.error(format!("invalid port in \"{url}\"")))?,
            ),
            None => (authority, if scheme == "https" { 443 } else { 80 }),
        };
        let is_upstream = self.upstream_names.iter().any(|n| n == host);
        if !is_upstream {
            use std::net::ToSocketAddrs;
            if (host, port)
                .to_socket_addrs()
                .map_or(true, |mut a| a.next().is_none())
            {
                return Err(pass.error(format!("host not found in upstream \"{authority}\"")));
            }
        }
        let mut service = Map::new();
        let name = format!("server{server}-line{}", d.line);
        service.insert("name".into(), json!(name));
        service.insert("protocol".into(), json!(scheme));
        service.insert("host".into(), json!(host));
        service.insert("port".into(), json!(port));
        if let Some(u) = uri {
            service.insert("path".into(), json!(u));
        }
        for (k, v) in &inherited.timeouts {
            service.insert(k.clone(), v.clone());
        }
        let mut route = Map::new();
        route.insert("name".into(), json!(name));
        route.insert("paths".into(), json!([kong_path]));
        if !hosts.is_empty() {
            route.insert("hosts".into(), json!(hosts));
        }
        // With a URI part the matched prefix is replaced (strip + service
        // path); without one the whole URI passes.
        route.insert("strip_path".into(), json!(uri.is_some()));
        route.insert("preserve_host".into(), json!(inherited.preserve_host));
        if regex_priority != 0 {
            route.insert("regex_priority".into(), json!(regex_priority));
        }
        match inherited.limit_req.as_slice() {
            [] => {}
            [(zone, burst, nodelay, delay)] => {
                let z = &self.zones[zone];
                let mut config = json!({
                    "zone": zone,
                    "rate": z.rate,
                    "burst": burst,
                    "nodelay": nodelay,
                    "delay": delay,
                    "limit_by": z.limit_by,
                    "status": inherited.limit_req_status.unwrap_or(503),
                    "max_keys": z.max_keys,
                });
                if let Some(h) = &z.header {
                    config["header_name"] = json!(h);
                }
                route.insert(
                    "plugins".into(),
                    json!([{ "name": "limit-req", "config": config }]),
                );
            }
            _ => {
                return Err(d.error("more than one limit_req for one location is not supported yet"))
            }
        }
        let mut routes = vec![Value::Object(route.clone())];
        if default && !hosts.is_empty() {
            // The default server also answers hosts no server_name
            // matches: the same location without hosts (routes with hosts
            // rank above it).
            route.remove("hosts");
            route.insert("name".into(), json!(format!("{name}-default")));
            routes.push(Value::Object(route));
        }
        service.insert("routes".into(), Value::Array(routes));
        self.services.push(Value::Object(service));
        Ok(())
    }
}
