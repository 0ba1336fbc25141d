//! The real `curl` client (built with zlib, brotli and zstd): its decoders
//! check what Tollgate encodes, independently of the crates Tollgate uses.

/// What curl received: the header block (lowercased names) and the body.
pub struct Curled {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Curled {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -s -D - -o FILE ARGS… URL` and reads what it wrote.
pub async fn curl(url: &str, args: &[&str]) -> Curled {
    let dir = crate::support::gateway::temp_dir("curl");
    let out = dir.join("body");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "30", "-D", "-", "-o"])
        .arg(&out)
        .args(args)
        .arg(url);
    let done = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("curl runs");
    assert!(
        done.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = String::from_utf8_lossy(&done.stdout).into_owned();
    // The last header block (after any 100 Continue).
    let block = text
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let mut lines = block.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Curled {
        status,
        headers,
        body,
    }
}
