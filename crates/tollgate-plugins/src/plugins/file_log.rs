//! `file-log`: config schema and runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{field, required, Field, PluginSchema, Ty, STRING_MAP};

/// `file-log` config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLogConfig {
    /// File to append to (required).
    pub path: String,
    /// Reopen the file for every entry (false).
    pub reopen: bool,
    /// Extra fields (name → Lua expression in Kong).
    pub custom_fields_by_lua: Option<BTreeMap<String, String>>,
}

fn check_filename(s: &str) -> Result<(), String> {
    if !s.is_empty() && !s.contains(['*', '&', '%', '\\', '`']) {
        Ok(())
    } else {
        Err("not a valid filename".to_string())
    }
}

impl PluginSchema for FileLogConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        FileLog::new(&plugin.config)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "file-log";
    const PRIORITY: i32 = 9;
    const FIELDS: &'static [Field] = &[
        required("path", Ty::Check(check_filename)),
        field("reopen", Ty::Bool),
        field("custom_fields_by_lua", STRING_MAP),
    ];
}

/// The file-log plugin at run time: one JSON object per line for every
/// request of its routes (Kong's log serializer fields that Tollgate has),
/// appended by a writer thread of its own so the log phase never waits on
/// the disk. The thread ends when the configuration that made it is gone.
#[derive(Debug)]
pub struct FileLog {
    lines: std::sync::mpsc::SyncSender<String>,
    dropped: std::sync::atomic::AtomicU64,
}

impl FileLog {
    /// Builds the instance and starts its writer.
    pub fn new(config: &serde_json::Value) -> Option<Self> {
        let config: FileLogConfig = serde_json::from_value(config.clone()).ok()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(16_384);
        let path = std::path::PathBuf::from(&config.path);
        let reopen = config.reopen;
        std::thread::Builder::new()
            .name("tollgate-file-log".into())
            .spawn(move || write_lines(&path, reopen, rx))
            .ok()?;
        Some(FileLog {
            lines: tx,
            dropped: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn write_lines(path: &std::path::Path, reopen: bool, rx: std::sync::mpsc::Receiver<String>) {
    use std::io::Write;
    let mut file = None;
    for line in rx {
        if file.is_none() || reopen {
            file = match open(path) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), "file-log: {e}");
                    None
                }
            };
        }
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::error!(path = %path.display(), "file-log: {e}");
                file = None;
            }
        }
    }
}

impl crate::runtime::Plugin for FileLog {
    fn name(&self) -> &'static str {
        "file-log"
    }

    fn priority(&self) -> i32 {
        9
    }

    fn logs(&self) -> bool {
        true
    }

    fn log(&self, e: &crate::runtime::LogEntry<'_>) {
        let started_ms = e
            .started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let id = |u: Option<uuid::Uuid>| u.map(|id| serde_json::json!({ "id": id }));
        let mut line = serde_json::json!({
            "request": {
                "id": e.request_id,
                "method": e.method.as_str(),
                "uri": e.uri.path_and_query().map_or("/", |p| p.as_str()),
                "querystring": e.uri.query().unwrap_or(""),
            },
            "response": { "status": e.status, "size": e.bytes_sent },
            "latencies": { "request": e.latency.as_millis() as u64 },
            "client_ip": e.client_ip.to_string(),
            "started_at": started_ms,
            "route": id(e.route),
            "service": id(e.service),
            "consumer": id(e.consumer),
        })
        .to_string();
        line.push('\n');
        if self.lines.try_send(line).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
