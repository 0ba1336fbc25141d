//! The access log: one line per request, nginx "combined" or JSON lines.
//!
//! Requests never wait for it: a record is handed to a bounded channel when
//! the response body is dropped (after the last byte, or when the client went
//! away), and a dedicated thread formats and writes it. When the channel is
//! full the record is dropped and counted rather than slowing traffic.

use http::{HeaderValue, Method, Uri, Version};
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx's `combined` format.
    Combined,
    /// One JSON object per line.
    Json,
}

/// One request's record.
#[derive(Debug)]
pub struct LogRecord {
    /// Client address.
    pub client_ip: IpAddr,
    /// When the request arrived.
    pub started_at: SystemTime,
    /// Method.
    pub method: Method,
    /// Request target as received.
    pub uri: Uri,
    /// Protocol version.
    pub version: Version,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes_sent: u64,
    /// `Referer`.
    pub referer: Option<HeaderValue>,
    /// `User-Agent`.
    pub user_agent: Option<HeaderValue>,
    /// The request id.
    pub request_id: HeaderValue,
    /// Time until the response head was ready.
    pub latency: Duration,
    /// Matched route name or id.
    pub route: Option<Arc<str>>,
    /// Matched route id (for plugins' log phase).
    pub route_id: Option<uuid::Uuid>,
    /// Service id (for plugins' log phase).
    pub service_id: Option<uuid::Uuid>,
    /// Authenticated consumer id (for plugins' log phase).
    pub consumer: Option<uuid::Uuid>,
    /// Service name or id.
    pub service: Option<Arc<str>>,
}

/// A record on its way: written when dropped.
#[derive(Debug)]
pub struct LogHandle {
    record: Box<LogRecord>,
    log: Option<Arc<AccessLog>>,
    /// Plugins whose log phase runs for this request.
    loggers: Vec<Arc<dyn tollgate_plugins::runtime::Plugin>>,
}

impl LogHandle {
    /// A record for the access log (if any) and the plugins' log phase,
    /// handed over when the handle is dropped.
    pub fn new(
        record: LogRecord,
        log: Option<Arc<AccessLog>>,
        loggers: Vec<Arc<dyn tollgate_plugins::runtime::Plugin>>,
    ) -> LogHandle {
        LogHandle {
            record: Box::new(record),
            log,
            loggers,
        }
    }

    /// Counts body bytes sent.
    pub fn add_bytes(&mut self, n: u64) {
        self.record.bytes_sent += n;
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        let r = &self.record;
        if !self.loggers.is_empty() {
            let entry = tollgate_plugins::runtime::LogEntry {
                client_ip: r.client_ip,
                started_at: r.started_at,
                method: &r.method,
                uri: &r.uri,
                status: r.status,
                bytes_sent: r.bytes_sent,
                latency: r.latency,
                request_id: r.request_id.to_str().unwrap_or(""),
                route: r.route_id,
                service: r.service_id,
                consumer: r.consumer,
            };
            for p in &self.loggers {
                p.log(&entry);
            }
        }
        let Some(log) = &self.log else { return };
        let record = std::mem::replace(
            &mut self.record,
            Box::new(LogRecord {
                client_ip: IpAddr::from([0, 0, 0, 0]),
                started_at: SystemTime::UNIX_EPOCH,
                method: Method::GET,
                uri: Uri::from_static("/"),
                version: Version::HTTP_11,
                status: 0,
                bytes_sent: 0,
                referer: None,
                user_agent: None,
                request_id: HeaderValue::from_static(""),
                latency: Duration::ZERO,
                route: None,
                route_id: None,
                service_id: None,
                consumer: None,
                service: None,
            }),
        );
        log.submit(record);
    }
}

/// The access log sink shared by all workers.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<Box<LogRecord>>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Starts the writer thread for `out`.
    pub fn start(out: Box<dyn Write + Send>, format: LogFormat) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = sync_channel(65_536);
        std::thread::Builder::new()
            .name("tollgate-access-log".into())
            .spawn(move || writer(rx, out, format))?;
        Ok(Arc::new(AccessLog {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Prepares a record that is written when the handle is dropped.
    pub fn handle(self: &Arc<Self>, record: LogRecord) -> LogHandle {
        LogHandle::new(record, Some(self.clone()), Vec::new())
    }

    fn submit(&self, record: Box<LogRecord>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn writer(rx: Receiver<Box<LogRecord>>, out: Box<dyn Write + Send>, format: LogFormat) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = String::with_capacity(512);
    while let Ok(rec) = rx.recv() {
        let mut next = Some(rec);
        while let Some(rec) = next {
            line.clear();
            match format {
                LogFormat::Combined => combined(&rec, &mut line),
                LogFormat::Json => json(&rec, &mut line),
            }
            if out.write_all(line.as_bytes()).is_err() {
                break;
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
}

fn hv(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-")
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`
fn combined(r: &LogRecord, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        r.client_ip,
        time_local(r.started_at),
        r.method,
        target(&r.uri),
        version(r.version),
        r.status,
        r.bytes_sent,
        hv(&r.referer).replace('"', "\\x22"),
        hv(&r.user_agent).replace('"', "\\x22"),
    );
}

/// The request target as the client wrote it on HTTP/1 (`/a?b=1`), also
/// for HTTP/2 requests whose URI carries the scheme and authority.
fn target(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

fn json(r: &LogRecord, out: &mut String) {
    let started = r
        .started_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let v = serde_json::json!({
        "client_ip": r.client_ip.to_string(),
        "started_at": started,
        "request": {
            "method": r.method.as_str(),
            "uri": target(&r.uri),
            "protocol": version(r.version),
            "id": r.request_id.to_str().unwrap_or(""),
            "headers": {
                "referer": r.referer.as_ref().and_then(|v| v.to_str().ok()),
                "user-agent": r.user_agent.as_ref().and_then(|v| v.to_str().ok()),
            },
        },
        "response": { "status": r.status, "size": r.bytes_sent },
        "latencies": { "request": r.latency.as_millis() as u64 },
        "route": r.route.as_deref(),
        "service": r.service.as_deref(),
    });
    out.push_str(&v.to_string());
    out.push('\n');
}

/// `27/Nov/2026:23:59:59 +0000` (UTC).
fn time_local(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            client_ip: "127.0.0.1".parse().unwrap(),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_824_000),
            method: Method::GET,
            uri: Uri::from_static("/a?b=1"),
            version: Version::HTTP_11,
            status: 200,
            bytes_sent: 12,
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8")),
            request_id: HeaderValue::from_static("id1"),
            latency: Duration::from_millis(3),
            route: None,
            route_id: None,
            service_id: None,
            consumer: None,
            service: None,
        }
    }

    #[test]
    fn combined_line_matches_nginx_format() {
        let mut s = String::new();
        combined(&record(), &mut s);
        assert_eq!(
            s,
            "127.0.0.1 - - [28/Nov/2026:00:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n"
        );
        // HTTP/2 requests carry scheme and authority in the URI: the
        // line shows the target, as nginx logs `$request`.
        let mut h2 = record();
        h2.uri = Uri::from_static("https://example.test:8443/a?b=1");
        h2.version = Version::HTTP_2;
        let mut s = String::new();
        combined(&h2, &mut s);
        assert!(s.contains("\"GET /a?b=1 HTTP/2.0\""), "{s}");
    }

    #[test]
    fn json_line_is_one_object() {
        let mut s = String::new();
        json(&record(), &mut s);
        let v: serde_json::Value = serde_json::from_str(s.trim_end()).unwrap();
        assert_eq!(v["response"]["status"], 200);
        assert_eq!(v["request"]["uri"], "/a?b=1");
    }
}
