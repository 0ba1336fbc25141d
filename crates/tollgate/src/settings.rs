//! Node settings: defaults, an optional TOML file (`--conf`), then
//! `TOLLGATE_<SETTING>` environment variables, which win (Kong's `KONG_<SETTING>` habit).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// DB-less: the declarative file is the configuration.
    Off,
    /// The embedded SQLite store under the prefix (the default).
    Sqlite,
}

/// One `proxy_listen` / `admin_listen` / `status_listen` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Address to bind.
    pub addr: SocketAddr,
    /// `http2` flag (HTTP/2 is always accepted on plain listeners via h2c prior knowledge).
    pub http2: bool,
    /// `ssl` flag.
    pub ssl: bool,
}

/// Access log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// No access log.
    Off,
    /// Standard output.
    Stdout,
    /// A file (relative paths are under the prefix).
    File(PathBuf),
}

/// All node settings, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Proxy listeners (empty = off).
    pub proxy_listen: Vec<Listen>,
    /// Admin API listeners (empty = off).
    pub admin_listen: Vec<Listen>,
    /// Status listeners (empty = off).
    pub status_listen: Vec<Listen>,
    /// Configuration source.
    pub database: Database,
    /// Declarative file.
    pub declarative_config: Option<PathBuf>,
    /// An nginx configuration served instead of a declarative file
    /// (`tollgate run --nginx-conf FILE`; implies `database = off`).
    pub nginx_conf: Option<PathBuf>,
    /// Working folder (pid file, logs).
    pub prefix: PathBuf,
    /// Worker threads (default: cores).
    pub worker_threads: usize,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`; Kong's `notice` = info, `crit`/`alert`/`emerg` = error).
    pub log_level: String,
    /// Access log target.
    pub access_log: AccessLogTarget,
    /// Access log format (`combined` or `json`).
    pub access_log_json: bool,
    /// trusted_ips (comma-separated IPs/CIDRs).
    pub trusted_ips: Vec<String>,
    /// The header in which a trusted proxy names the client (`X-Real-IP`).
    pub real_ip_header: http::HeaderName,
    /// Skip trusted addresses from the right of `real_ip_header` (`off`).
    pub real_ip_recursive: bool,
    /// The default certificate of TLS listeners (`ssl_cert`, `ssl_cert_key`
    /// PEM files); without it one is generated under the prefix.
    pub ssl_cert: Option<(PathBuf, PathBuf)>,
    /// Maximum concurrent client connections.
    pub max_connections: usize,
    /// Request head / keep-alive idle timeout.
    pub client_header_timeout: Duration,
    /// Longest wait between two reads of a request body.
    pub client_body_timeout: Duration,
    /// Drain timeout on shutdown.
    pub drain_timeout: Duration,
    /// Backend connection pools (Kong's `upstream_keepalive_pool_size`,
    /// `upstream_keepalive_max_requests`, `upstream_keepalive_idle_timeout`).
    pub upstream_keepalive: tollgate_proxy::upstream::pool::PoolOptions,
    /// Longest request target.
    pub max_uri_length: usize,
    /// Largest request head.
    pub max_header_size: usize,
    /// Token required on every Admin API request (`Authorization: Bearer` or `Kong-Admin-Token`).
    pub admin_token: Option<String>,
    /// Authorities trusted by the TLS connections the node opens (Redis,
    /// JWKS): Kong's `lua_ssl_trusted_certificate`, `system` and/or PEM files.
    pub trusted_certificates: tollgate_tls::Trust,
    /// How target and service host names are resolved (Kong's
    /// `dns_resolver`, `dns_valid_ttl`, `dns_error_ttl`, `dns_not_found_ttl`).
    pub dns: tollgate_proxy::balancer::dns::DnsSettings,
    /// Bytes each proxy-cache memory store may hold (Kong's
    /// `mem_cache_size`: `128m`, with `k`/`m`/`g` suffixes).
    pub mem_cache_size: u64,
    /// Bytes of bodies each proxy-cache disk store may hold (`1g`).
    pub proxy_cache_disk_size: u64,
}

/// A setting that cannot be accepted; names the source and the setting.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {setting}: {message}")]
pub struct SettingsError {
    /// The file path, or `environment`.
    pub source_name: String,
    /// The setting's name (`proxy_listen`, `TOLLGATE_PROXY_LISTEN`).
    pub setting: String,
    /// What is wrong.
    pub message: String,
}

/// Where a raw value came from, for error messages.
struct Raw {
    value: String,
    source_name: String,
    setting: String,
}

impl Raw {
    fn err(&self, message: impl Into<String>) -> SettingsError {
        SettingsError {
            source_name: self.source_name.clone(),
            setting: self.setting.clone(),
            message: message.into(),
        }
    }
}

fn value_to_string(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(value_to_string)
            .collect::<Vec<_>>()
            .join(","),
        // Tables and datetimes are not valid for any setting; the resolver refuses them.
        _ => "\u{0}invalid".to_owned(),
    }
}

const NAMES: &[&str] = &[
    "proxy_listen",
    "admin_listen",
    "status_listen",
    "database",
    "declarative_config",
    "nginx_conf",
    "prefix",
    "worker_threads",
    "log_level",
    "access_log",
    "access_log_format",
    "trusted_ips",
    "max_connections",
    "client_header_timeout",
    "client_body_timeout",
    "drain_timeout",
    "upstream_keepalive_pool_size",
    "upstream_keepalive_max_requests",
    "upstream_keepalive_idle_timeout",
    "max_uri_length",
    "max_header_size",
    "admin_token",
    "lua_ssl_trusted_certificate",
    "real_ip_header",
    "real_ip_recursive",
    "ssl_cert",
    "ssl_cert_key",
    "dns_resolver",
    "dns_valid_ttl",
    "dns_error_ttl",
    "dns_not_found_ttl",
    "mem_cache_size",
    "proxy_cache_disk_size",
];

impl Settings {
    /// Loads settings: defaults ← `conf` file ← environment (`env` lists `(name, value)` pairs).
    pub fn load(
        conf: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut raw: std::collections::HashMap<&'static str, Raw> = Default::default();
        if let Some(path) = conf {
            let src = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| SettingsError {
                source_name: src.clone(),
                setting: "--conf".into(),
                message: e.to_string(),
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| SettingsError {
                source_name: src.clone(),
                setting: "syntax".into(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
            for (k, v) in table {
                let Some(name) = NAMES.iter().find(|n| **n == k) else {
                    return Err(SettingsError {
                        source_name: src,
                        setting: k,
                        message: "unknown setting".into(),
                    });
                };
                raw.insert(
                    name,
                    Raw {
                        value: value_to_string(&v),
                        source_name: src.clone(),
                        setting: k.clone(),
                    },
                );
            }
        }
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("TOLLGATE_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            match NAMES.iter().find(|n| **n == lower) {
                Some(name) => {
                    raw.insert(
                        name,
                        Raw {
                            value: v,
                            source_name: "environment".into(),
                            setting: k,
                        },
                    );
                }
                None => tracing::warn!("ignoring unknown environment variable {k}"),
            }
        }
        Self::resolve(raw)
    }

    fn resolve(
        raw: std::collections::HashMap<&'static str, Raw>,
    ) -> Result<Settings, SettingsError> {
        let get = |name: &'static str, default: &str| -> Raw {
            raw.get(name).map_or_else(
                || Raw {
                    value: default.to_owned(),
                    source_name: "default".into(),
                    setting: name.into(),
                },
                |r| Raw {
                    value: r.value.clone(),
                    source_name: r.source_name.clone(),
                    setting: r.setting.clone(),
                },
            )
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let database = {
            let r = get("database", "sqlite");
            match r.value.trim() {
                "off" => Database::Off,
                "sqlite" => Database::Sqlite,
                "postgres" => {
                    return Err(
                        r.err("postgres is not available in this version (use sqlite or off)")
                    )
                }
                other => {
                    return Err(r.err(format!(
                        "unknown database {other:?} (expected sqlite or off)"
                    )))
                }
            }
        };
        let declarative_config = {
            let r = get("declarative_config", "");
            let v = r.value.trim();
            (!v.is_empty()).then(|| PathBuf::from(v))
        };
        let nginx_conf = {
            let r = get("nginx_conf", "");
            let v = r.value.trim();
            (!v.is_empty()).then(|| PathBuf::from(v))
        };
        let access_log = {
            let r = get("access_log", "stdout");
            match r.value.trim() {
                "off" => AccessLogTarget::Off,
                "stdout" => AccessLogTarget::Stdout,
                "" => return Err(r.err("empty (use off, stdout, or a path)")),
                p => AccessLogTarget::File(PathBuf::from(p)),
            }
        };
        let access_log_json = {
            let r = get("access_log_format", "combined");
            match r.value.trim() {
                "combined" => false,
                "json" => true,
                other => {
                    return Err(r.err(format!(
                        "unknown format {other:?} (expected combined or json)"
                    )))
                }
            }
        };
        let log_level = {
            let r = get("log_level", "notice");
            match r.value.trim() {
                "debug" | "trace" | "info" | "warn" | "error" => r.value.trim().to_owned(),
                "notice" => "info".into(),
                "crit" | "alert" | "emerg" => "error".into(),
                other => return Err(r.err(format!("unknown log level {other:?}"))),
            }
        };
        Ok(Settings {
            proxy_listen: parse_listen(&get(
                "proxy_listen",
                "0.0.0.0:8000, 0.0.0.0:8443 http2 ssl",
            ))?,
            admin_listen: parse_listen(&get("admin_listen", "127.0.0.1:8001"))?,
            status_listen: parse_listen(&get("status_listen", "127.0.0.1:8007"))?,
            database,
            declarative_config,
            nginx_conf,
            prefix: PathBuf::from(get("prefix", "./tollgate").value.trim()),
            worker_threads: parse_num(&get("worker_threads", &cores.to_string()), 1, 1024)?,
            log_level,
            access_log,
            access_log_json,
            trusted_ips: get("trusted_ips", "")
                .value
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            real_ip_header: {
                let r = get("real_ip_header", "X-Real-IP");
                let v = r.value.trim();
                if v.eq_ignore_ascii_case("proxy_protocol") {
                    return Err(
                        r.err("proxy_protocol is not supported (no PROXY protocol listeners)")
                    );
                }
                http::HeaderName::from_bytes(v.as_bytes())
                    .map_err(|_| r.err(format!("not a header name: {v:?}")))?
            },
            real_ip_recursive: {
                let r = get("real_ip_recursive", "off");
                match r.value.trim() {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    other => return Err(r.err(format!("expected on or off, got {other:?}"))),
                }
            },
            ssl_cert: {
                let (c, k) = (get("ssl_cert", ""), get("ssl_cert_key", ""));
                match (c.value.trim(), k.value.trim()) {
                    ("", "") => None,
                    ("", _) => return Err(c.err("required with ssl_cert_key")),
                    (_, "") => return Err(k.err("required with ssl_cert")),
                    (cert, key) => Some((PathBuf::from(cert), PathBuf::from(key))),
                }
            },
            max_connections: parse_num(&get("max_connections", "16384"), 1, 10_000_000)?,
            client_header_timeout: Duration::from_millis(parse_num(
                &get("client_header_timeout", "60000"),
                1,
                3_600_000,
            )? as u64),
            client_body_timeout: Duration::from_millis(parse_num(
                &get("client_body_timeout", "60000"),
                1,
                3_600_000,
            )? as u64),
            drain_timeout: Duration::from_millis(parse_num(
                &get("drain_timeout", "30000"),
                0,
                3_600_000,
            )? as u64),
            upstream_keepalive: tollgate_proxy::upstream::pool::PoolOptions {
                max_idle_per_key: parse_num(
                    &get("upstream_keepalive_pool_size", "512"),
                    0,
                    1_000_000,
                )?,
                max_requests: parse_num(
                    &get("upstream_keepalive_max_requests", "10000"),
                    0,
                    u32::MAX as usize,
                )? as u32,
                idle_timeout: Duration::from_secs(parse_num(
                    &get("upstream_keepalive_idle_timeout", "60"),
                    0,
                    86_400,
                )? as u64),
            },
            max_uri_length: parse_num(&get("max_uri_length", "8192"), 64, 1 << 20)?,
            max_header_size: parse_num(&get("max_header_size", "32768"), 8192, 1 << 20)?,
            admin_token: {
                let v = get("admin_token", "").value.trim().to_owned();
                (!v.is_empty()).then_some(v)
            },
            trusted_certificates: {
                let r = get("lua_ssl_trusted_certificate", "system");
                let trust = tollgate_tls::Trust::parse(&r.value);
                tollgate_tls::ClientTls::new(trust.clone())
                    .check()
                    .map_err(|e| r.err(e.to_string()))?;
                trust
            },
            dns: tollgate_proxy::balancer::dns::DnsSettings {
                servers: parse_resolvers(&get("dns_resolver", ""))?,
                valid_ttl: {
                    let r = get("dns_valid_ttl", "");
                    if r.value.trim().is_empty() {
                        None
                    } else {
                        Some(Duration::from_secs(parse_num(&r, 0, 86_400)? as u64))
                    }
                },
                error_ttl: Duration::from_secs(
                    parse_num(&get("dns_error_ttl", "1"), 0, 86_400)? as u64
                ),
                not_found_ttl: Duration::from_secs(parse_num(
                    &get("dns_not_found_ttl", "30"),
                    0,
                    86_400,
                )? as u64),
            },
            mem_cache_size: parse_size(&get("mem_cache_size", "128m"))?,
            proxy_cache_disk_size: parse_size(&get("proxy_cache_disk_size", "1g"))?,
        })
    }
}

/// Parses `dns_resolver`: `IP[:PORT]` entries (`[IPv6]:PORT`), port 53
/// when none is given.
fn parse_resolvers(r: &Raw) -> Result<Vec<SocketAddr>, SettingsError> {
    let mut out = Vec::new();
    for entry in r.value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let addr = entry
            .parse::<SocketAddr>()
            .or_else(|_| {
                entry
                    .parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .map_err(|_| r.err(format!("{entry:?} is not IP[:PORT]")))?;
        out.push(addr);
    }
    Ok(out)
}

/// Parses a byte size: a number with an optional `k`, `m` or `g` suffix
/// (nginx's and Kong's size syntax), at least 1k.
fn parse_size(r: &Raw) -> Result<u64, SettingsError> {
    let v = r.value.trim().to_ascii_lowercase();
    let (digits, unit) = match v.strip_suffix('k') {
        Some(d) => (d, 1u64 << 10),
        None => match v.strip_suffix('m') {
            Some(d) => (d, 1 << 20),
            None => match v.strip_suffix('g') {
                Some(d) => (d, 1 << 30),
                None => (v.as_str(), 1),
            },
        },
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| r.err(format!("expected a size like 128m, got {:?}", r.value)))?;
    match n.checked_mul(unit) {
        Some(bytes) if bytes >= 1024 => Ok(bytes),
        _ => Err(r.err(format!("{:?} is out of range 1k..", r.value))),
    }
}

fn parse_num(r: &Raw, min: usize, max: usize) -> Result<usize, SettingsError> {
    let v: usize = r
        .value
        .trim()
        .parse()
        .map_err(|_| r.err(format!("expected an integer, got {:?}", r.value)))?;
    if v < min || v > max {
        return Err(r.err(format!("{v} is out of range {min}..={max}")));
    }
    Ok(v)
}

/// Parses `ADDR:PORT [http2] [ssl], ...` or `off`.
fn parse_listen(r: &Raw) -> Result<Vec<Listen>, SettingsError> {
    let v = r.value.trim();
    if v == "off" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in v.split(',') {
        let mut words = entry.split_whitespace();
        let Some(addr) = words.next() else {
            return Err(r.err("empty listen entry"));
        };
        let addr: SocketAddr = addr
            .parse()
            .ok()
            .or_else(|| addr.to_socket_addrs().ok().and_then(|mut a| a.next()))
            .ok_or_else(|| r.err(format!("{addr:?} is not ADDR:PORT")))?;
        let mut l = Listen {
            addr,
            http2: false,
            ssl: false,
        };
        for w in words {
            match w {
                "http2" => l.http2 = true,
                "ssl" => l.ssl = true,
                "reuseport" | "deferred" | "bind" => {}
                w if w.starts_with("backlog=") => {}
                other => return Err(r.err(format!("unknown listen flag {other:?}"))),
            }
        }
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_kong() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.proxy_listen[0].addr, "0.0.0.0:8000".parse().unwrap());
        assert!(!s.proxy_listen[0].ssl);
        assert_eq!(s.proxy_listen[1].addr, "0.0.0.0:8443".parse().unwrap());
        assert!(s.proxy_listen[1].ssl);
        assert_eq!(s.admin_listen[0].addr, "127.0.0.1:8001".parse().unwrap());
        assert_eq!(s.status_listen[0].addr, "127.0.0.1:8007".parse().unwrap());
        assert_eq!(s.prefix, PathBuf::from("./tollgate"));
        assert_eq!(s.database, Database::Sqlite);
    }

    #[test]
    fn environment_overrides_and_off_disables_a_listener() {
        let s = Settings::load(
            None,
            env(&[
                ("TOLLGATE_ADMIN_LISTEN", "off"),
                ("TOLLGATE_WORKER_THREADS", "1"),
                (
                    "TOLLGATE_PROXY_LISTEN",
                    "127.0.0.1:9000 http2, 127.0.0.1:9001",
                ),
            ]),
        )
        .unwrap();
        assert!(s.admin_listen.is_empty());
        assert_eq!(s.worker_threads, 1);
        assert_eq!(s.proxy_listen.len(), 2);
        assert!(s.proxy_listen[0].http2);
    }

    #[test]
    fn bad_value_names_the_setting() {
        let e = Settings::load(None, env(&[("TOLLGATE_WORKER_THREADS", "many")])).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_WORKER_THREADS"), "{e}");
    }

    #[test]
    fn dns_resolver_takes_ip_and_port_with_53_by_default() {
        let s = Settings::load(
            None,
            env(&[
                ("TOLLGATE_DNS_RESOLVER", "127.0.0.1:5353, ::1, [::1]:54"),
                ("TOLLGATE_DNS_VALID_TTL", "7"),
            ]),
        )
        .unwrap();
        let want: Vec<SocketAddr> = ["127.0.0.1:5353", "[::1]:53", "[::1]:54"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(s.dns.servers, want);
        assert_eq!(s.dns.valid_ttl, Some(Duration::from_secs(7)));
        let e = Settings::load(None, env(&[("TOLLGATE_DNS_RESOLVER", "dns.example")])).unwrap_err();
        assert!(e.to_string().contains("TOLLGATE_DNS_RESOLVER"), "{e}");
    }

    #[test]
    fn conf_file_is_read_and_environment_wins() {
        let dir = std::env::temp_dir().join(format!("tg-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tollgate.conf");
        std::fs::write(
            &f,
            "proxy_listen = \"127.0.0.1:9100\"\nworker_threads = 3\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), env(&[("TOLLGATE_WORKER_THREADS", "2")])).unwrap();
        assert_eq!(s.proxy_listen[0].addr, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(s.worker_threads, 2);
        std::fs::write(&f, "proxy_lisen = \"x\"\n").unwrap();
        let e = Settings::load(Some(&f), env(&[])).unwrap_err();
        assert!(e.to_string().contains("proxy_lisen"), "{e}");
    }
}
