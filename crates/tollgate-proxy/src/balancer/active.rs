//! Active health checks: probes sent to each target of an upstream on a
//! timer (TCP connect, or an HTTP/1.1 request over plain TCP or TLS),
//! whose results mark targets healthy or unhealthy.

use super::state::{Failure, Source, TargetState, Thresholds};
use super::StatusSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tollgate_model::{Healthchecks, ProbeKind};
use tollgate_tls::ClientTls;

/// How to probe, from `healthchecks.active`.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    kind: ProbeKind,
    timeout: Duration,
    concurrency: usize,
    path: String,
    /// Header lines after `Host`, and the blank line.
    request_tail: String,
    sni: Option<String>,
    verify: bool,
    healthy_every: Option<Duration>,
    unhealthy_every: Option<Duration>,
    healthy: StatusSet,
    unhealthy: StatusSet,
    thresholds: Thresholds,
}

fn seconds(s: f64) -> Option<Duration> {
    (s > 0.0).then(|| Duration::from_secs_f64(s))
}

impl ProbeSpec {
    /// The probing described by `h` (None when active checks are off).
    pub fn new(h: &Healthchecks) -> Option<ProbeSpec> {
        if !h.active_on() {
            return None;
        }
        let a = &h.active;
        let mut tail = String::new();
        for (name, values) in &a.headers {
            for v in values {
                tail.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        tail.push_str("User-Agent: tollgate-healthcheck\r\nConnection: close\r\n\r\n");
        Some(ProbeSpec {
            kind: a.kind,
            timeout: Duration::from_secs_f64(a.timeout.max(0.001)),
            concurrency: a.concurrency.max(1) as usize,
            path: a.http_path.clone(),
            request_tail: tail,
            sni: a.https_sni.clone(),
            verify: a.https_verify_certificate,
            healthy_every: seconds(a.healthy.interval),
            unhealthy_every: seconds(a.unhealthy.interval),
            healthy: StatusSet::new(&a.healthy.http_statuses),
            unhealthy: StatusSet::new(&a.unhealthy.http_statuses),
            thresholds: Thresholds {
                successes: a.healthy.successes,
                tcp_failures: a.unhealthy.tcp_failures,
                timeouts: a.unhealthy.timeouts,
                http_failures: a.unhealthy.http_failures,
            },
        })
    }
}

/// One target to probe.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// `host:port`, for logs.
    pub key: Arc<str>,
    /// Host name or IP (sent as `Host` and SNI).
    pub host: Arc<str>,
    /// The address to connect to (None: `host` is resolved at each probe).
    pub addr: Option<std::net::SocketAddr>,
    /// Port.
    pub port: u16,
    /// Resolves `host` when `addr` is None (else the system resolver does).
    pub dns: Option<Arc<super::dns::Dns>>,
    /// Its live state.
    pub state: Arc<TargetState>,
}

/// What one probe saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Up,
    Down(Failure),
    /// A status in neither list: no verdict.
    Neither,
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> std::io::Result<Option<u16>> {
    s.write_all(request).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    // "HTTP/1.1 200 OK"
    let line = String::from_utf8_lossy(&buf);
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok()))
}

async fn probe(spec: &ProbeSpec, t: &ProbeTarget, tls: &ClientTls) -> Seen {
    let work = async {
        let addrs = match t.addr {
            Some(a) => vec![a],
            None => super::dns::dial_addresses(t.dns.as_deref(), &t.host, t.port)
                .await
                .map_err(|_| Failure::Tcp)?,
        };
        let tcp = TcpStream::connect(&addrs[..])
            .await
            .map_err(|_| Failure::Tcp)?;
        if spec.kind == ProbeKind::Tcp {
            return Ok(None);
        }
        let host = if t.host.contains(':') {
            format!("[{}]:{}", t.host, t.port)
        } else {
            format!("{}:{}", t.host, t.port)
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\n{}",
            spec.path, spec.request_tail
        );
        let status = if spec.kind == ProbeKind::Https {
            let config = tls.config(spec.verify).map_err(|_| Failure::Tcp)?;
            let name = spec.sni.as_deref().unwrap_or(&t.host);
            let stream = tollgate_tls::connect(config, name, tcp)
                .await
                .map_err(|_| Failure::Tcp)?;
            exchange(stream, request.as_bytes()).await
        } else {
            exchange(tcp, request.as_bytes()).await
        };
        status.map_err(|_| Failure::Tcp)
    };
    match tokio::time::timeout(spec.timeout, work).await {
        Err(_) => Seen::Down(Failure::Timeout),
        Ok(Err(f)) => Seen::Down(f),
        Ok(Ok(None)) if spec.kind == ProbeKind::Tcp => Seen::Up,
        Ok(Ok(None)) => Seen::Down(Failure::Tcp),
        Ok(Ok(Some(code))) if spec.healthy.contains(code) => Seen::Up,
        Ok(Ok(Some(code))) if spec.unhealthy.contains(code) => Seen::Down(Failure::Http),
        Ok(Ok(Some(_))) => Seen::Neither,
    }
}

/// Probes `targets` of upstream `name` until the task is aborted: healthy
/// targets every `healthy.interval`, unhealthy ones every
/// `unhealthy.interval` (an interval of 0 leaves that group alone), at
/// most `concurrency` probes at a time.
pub async fn run(name: Arc<str>, spec: ProbeSpec, targets: Vec<ProbeTarget>, tls: Arc<ClientTls>) {
    let tick = [spec.healthy_every, spec.unhealthy_every]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(1));
    let mut last: Vec<Option<Instant>> = vec![None; targets.len()];
    loop {
        let now = Instant::now();
        let due: Vec<usize> = (0..targets.len())
            .filter(|i| {
                let every = if targets[*i].state.is_healthy() {
                    spec.healthy_every
                } else {
                    spec.unhealthy_every
                };
                every.is_some_and(|e| last[*i].is_none_or(|l| now.duration_since(l) >= e))
            })
            .collect();
        for batch in due.chunks(spec.concurrency) {
            let mut set = tokio::task::JoinSet::new();
            for i in batch {
                let (spec, t, tls) = (spec.clone(), targets[*i].clone(), tls.clone());
                let i = *i;
                set.spawn(async move { (i, probe(&spec, &t, &tls).await) });
            }
            while let Some(Ok((i, seen))) = set.join_next().await {
                last[i] = Some(now);
                let t = &targets[i];
                let changed = match seen {
                    Seen::Up => t.state.success(&spec.thresholds, false),
                    Seen::Down(f) => t.state.failure(f, &spec.thresholds, Source::Active),
                    Seen::Neither => false,
                };
                if changed {
                    let health = if t.state.is_healthy() {
                        "healthy"
                    } else {
                        "unhealthy"
                    };
                    tracing::warn!(upstream = %name, target = %t.key, "active checks: target is {health}");
                }
            }
        }
        tokio::time::sleep(tick).await;
    }
}
