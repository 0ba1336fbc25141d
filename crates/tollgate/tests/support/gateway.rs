//! Starts the real `tollgate` binary on ephemeral loopback ports with a
//! declarative file, and learns its addresses from its startup log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running gateway process (killed on drop).
pub struct Gateway {
    pub child: Child,
    pub proxy: SocketAddr,
    pub status: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    pub config: PathBuf,
    /// Everything the process wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Everything written to stdout (the access log by default).
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh folder under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("tollgate-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

fn pump(r: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>, echo: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("[gateway] {line}");
            }
            sink.lock().unwrap().push(line);
        }
    });
}

impl Gateway {
    /// Starts the gateway with `config` (YAML) and extra `TOLLGATE_*` settings.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = temp_dir("gw");
        let file = dir.join("kong.yml");
        std::fs::write(&file, config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(dir, env)
    }

    /// Starts a node on the embedded SQLite store with the Admin API on an
    /// ephemeral loopback port.
    pub fn start_sqlite(env: &[(&str, &str)]) -> Gateway {
        let mut all = vec![
            ("TOLLGATE_DATABASE", "sqlite"),
            ("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0"),
        ];
        all.extend_from_slice(env);
        Self::start("_format_version: \"3.0\"\n", &all)
    }

    /// Kills the process with SIGKILL and starts it again on the same
    /// prefix and settings (new ephemeral ports).
    pub fn kill9_and_restart(mut self) -> Gateway {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = self.dir.clone();
        let env = std::mem::take(&mut self.env);
        // Keep the folder: only the process goes away.
        self.dir = PathBuf::from("/nonexistent-tollgate-test-dir");
        drop(self);
        Self::spawn(dir, env)
    }

    fn spawn(dir: PathBuf, env: Vec<(String, String)>) -> Gateway {
        let file = dir.join("kong.yml");
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TOLLGATE_DATABASE", "off")
            .env("TOLLGATE_DECLARATIVE_CONFIG", &file)
            .env("TOLLGATE_PREFIX", dir.join("prefix"))
            .env("TOLLGATE_PROXY_LISTEN", "127.0.0.1:0")
            .env("TOLLGATE_ADMIN_LISTEN", "off")
            .env("TOLLGATE_STATUS_LISTEN", "127.0.0.1:0")
            .env("TOLLGATE_WORKER_THREADS", "2")
            .env("TOLLGATE_LOG_LEVEL", "info")
            .env("TOLLGATE_ACCESS_LOG", "stdout");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        pump(child.stderr.take().unwrap(), log.clone(), true);
        pump(child.stdout.take().unwrap(), stdout.clone(), false);
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut proxy, mut status, mut admin) = (None, None, None);
        while Instant::now() < deadline {
            for line in log.lock().unwrap().iter() {
                if let Some(a) = line.split("proxy listening on ").nth(1) {
                    proxy = a.trim().parse().ok();
                }
                if let Some(a) = line.split("status listening on ").nth(1) {
                    status = a.trim().parse().ok();
                }
                if let Some(a) = line.split("admin listening on ").nth(1) {
                    admin = a.trim().parse().ok();
                }
            }
            if let Ok(Some(code)) = child.try_wait() {
                panic!(
                    "gateway exited early with {code}: {:?}",
                    log.lock().unwrap()
                );
            }
            let status_wanted = !env
                .iter()
                .any(|(k, v)| *k == "TOLLGATE_STATUS_LISTEN" && *v == "off");
            if proxy.is_some() && (status.is_some() || !status_wanted) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let proxy = proxy.expect("gateway did not report its proxy address");
        Gateway {
            child,
            proxy,
            status,
            admin,
            dir,
            env,
            config: file,
            log,
            stdout,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// The Admin API's base URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin.expect("admin listener"))
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Replaces the declarative file and sends SIGHUP; waits until the log
    /// reports the outcome (`reloaded` or `refused`) and returns that line.
    pub fn reload_with(&self, config: &str) -> String {
        std::fs::write(&self.config, config).unwrap();
        let before = self.log.lock().unwrap().len();
        self.signal("HUP");
        self.wait_log_after(before, |l| l.contains("reloaded") || l.contains("refused"))
    }

    /// Waits for a stderr line after index `from` matching `pred`.
    pub fn wait_log_after(&self, from: usize, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(l) = self.log.lock().unwrap().iter().skip(from).find(|l| pred(l)) {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("log line not seen; log: {:?}", self.log.lock().unwrap());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Resident set size of the process in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Peak RSS (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}
