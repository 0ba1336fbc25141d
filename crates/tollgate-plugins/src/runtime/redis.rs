//! A small Redis client for shared rate-limit counters: RESP over TCP or
//! TLS, `EVALSHA` (falling back to `EVAL` once per connection), `AUTH` and
//! `SELECT` when connecting. Connections are pooled per client and dropped
//! on any error, so the next request reconnects (a restarted Redis is
//! picked up without anything else to do).

use bytes::{Buf, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_tls::ClientTls;

/// A connection to Redis, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = Box<dyn Io>;

/// TLS towards Redis (Kong's `redis.ssl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTls {
    /// The name sent as SNI and verified (`redis.server_name`, else the host).
    pub server_name: String,
    /// Verify the certificate against the trusted authorities (`redis.ssl_verify`).
    pub verify: bool,
}

/// Where the Redis server is and how to log in.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// ACL user, with `password`.
    pub username: Option<String>,
    /// Password (`AUTH`).
    pub password: Option<String>,
    /// Database number (`SELECT`).
    pub database: i64,
    /// Bound on connecting and on each command.
    pub timeout: Duration,
    /// TLS, when set.
    pub tls: Option<RedisTls>,
}

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` (None for nil).
    Bulk(Option<Vec<u8>>),
    /// `*n`.
    Array(Vec<Reply>),
}

/// A pooled Redis client.
#[derive(Debug)]
pub struct RedisClient {
    target: RedisTarget,
    client_tls: Arc<ClientTls>,
    idle: std::sync::Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for dyn Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisConnection")
    }
}

const MAX_IDLE: usize = 16;

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the front of `buf`; `None` when incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some(nl) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[1..nl]).map_err(|_| "bad reply line")?;
    let after = nl + 2;
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let int = || {
        line.parse::<i64>()
            .map_err(|_| format!("bad number {line:?}"))
    };
    match kind {
        b'+' => Ok(Some((Reply::Simple(line.to_owned()), after))),
        b'-' => Ok(Some((Reply::Error(line.to_owned()), after))),
        b':' => Ok(Some((Reply::Int(int()?), after))),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let end = after + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((Reply::Bulk(Some(buf[after..end].to_vec())), end + 2)))
        }
        b'*' => {
            let n = int()?;
            let mut at = after;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                match parse(&buf[at..])? {
                    Some((r, used)) => {
                        items.push(r);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(items), at)))
        }
        other => Err(format!("unexpected reply type {:?}", other as char)),
    }
}

async fn exchange(stream: &mut Conn, out: &[u8], buf: &mut BytesMut) -> Result<Reply, String> {
    stream.write_all(out).await.map_err(|e| e.to_string())?;
    loop {
        if let Some((reply, used)) = parse(buf)? {
            buf.advance(used);
            return Ok(reply);
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("connection closed by Redis".into());
        }
    }
}

impl RedisClient {
    /// A client for `target` (connects on first use); TLS connections
    /// trust what `client_tls` trusts.
    pub fn new(target: RedisTarget, client_tls: Arc<ClientTls>) -> RedisClient {
        RedisClient {
            target,
            client_tls,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Where it connects.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    async fn connect(&self) -> Result<Conn, String> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| format!("connect {}:{}: {e}", t.host, t.port))?;
        let _ = tcp.set_nodelay(true);
        let mut s: Conn = match &t.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let config = self.client_tls.config(tls.verify)?;
                Box::new(
                    tollgate_tls::connect(config, &tls.server_name, tcp)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        if let Some(p) = &t.password {
            match &t.username {
                Some(u) => encode(&mut out, &[b"AUTH", u.as_bytes(), p.as_bytes()]),
                None => encode(&mut out, &[b"AUTH", p.as_bytes()]),
            }
            if let Reply::Error(e) = exchange(&mut s, &out, &mut buf).await? {
                return Err(format!("AUTH: {e}"));
            }
            out.clear();
        }
        if t.database != 0 {
            encode(&mut out, &[b"SELECT", t.database.to_string().as_bytes()]);
            if let Reply::Error(e) = exchange(&mut s, &out, &mut buf).await? {
                return Err(format!("SELECT: {e}"));
            }
        }
        Ok(s)
    }

    /// Runs a Lua script (by its SHA-1 when Redis knows it, else in full).
    pub async fn eval(
        &self,
        script: &str,
        sha: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<Reply, String> {
        let timeout = self.target.timeout;
        let run = async {
            let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
            let mut stream = match pooled {
                Some(s) => s,
                None => self.connect().await?,
            };
            let n = keys.len().to_string();
            let mut argv: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), n.as_bytes()];
            argv.extend(keys.iter().map(|k| k.as_bytes()));
            argv.extend(args.iter().map(|a| a.as_bytes()));
            let mut out = Vec::new();
            encode(&mut out, &argv);
            let mut buf = BytesMut::new();
            let mut reply = exchange(&mut stream, &out, &mut buf).await?;
            if matches!(&reply, Reply::Error(e) if e.starts_with("NOSCRIPT")) {
                argv[0] = b"EVAL";
                argv[1] = script.as_bytes();
                out.clear();
                encode(&mut out, &argv);
                reply = exchange(&mut stream, &out, &mut buf).await?;
            }
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < MAX_IDLE {
                    idle.push(stream);
                }
            }
            Ok(reply)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("Redis did not answer within {timeout:?}")),
        }
    }
}

/// The SHA-1 of a script, as `EVALSHA` names it.
pub fn script_sha(script: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(script.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_not_at_all() {
        let (r, n) = parse(b"*3\r\n:1\r\n$3\r\nabc\r\n$-1\r\n").unwrap().unwrap();
        assert_eq!(n, 22);
        assert_eq!(
            r,
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Bulk(None)
            ])
        );
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert_eq!(
            parse(b"-NOSCRIPT x\r\n").unwrap().unwrap().0,
            Reply::Error("NOSCRIPT x".into())
        );
        assert!(parse(b"?x\r\n").is_err());
    }

    #[test]
    fn script_sha_is_sha1_hex() {
        assert_eq!(
            script_sha("return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
