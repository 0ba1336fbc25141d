//! `static-files` (Tollgate's own; nginx's `root`/`index`/`try_files`):
//! answers a route from a folder. The routed path (after the route's
//! `strip_path`) names the file under `root`; index files, `try_files`
//! fallbacks (single-page apps), single and multipart `Range` requests,
//! `ETag`/`Last-Modified` with 304s, content types by extension, and
//! `.br`/`.gz` siblings for clients that accept them. Nothing outside the
//! root is ever served: `..` segments (also percent-encoded) are refused,
//! and a file reached through a symbolic link must still be under the root.
//! Directory listings are off unless `directory_listing` is set.
//!
//! Files are looked up and small ones (up to 64 KiB) read on the worker
//! thread, as nginx does without `aio`; larger bodies stream from tokio's
//! blocking pool.

use serde::{Deserialize, Serialize};

use super::compression::{accepted, quality};
use super::{problem, result};
use crate::runtime::file_body::{read_now, FileBody, Segment, CHUNK};
use crate::runtime::{AccessCtx, Answer, AnswerBody, EarlyResponse, Flow};
use crate::schema::{field, Field, PluginSchema, Ty, STRINGS};
use crate::Problem;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// `static-files` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticFilesConfig {
    /// The folder served (required).
    pub root: String,
    /// Files tried, in order, for a path naming a folder (["index.html"]).
    pub index: Vec<String>,
    /// nginx's `try_files`: `$uri`, `$uri/`, or paths with `$uri` in them,
    /// tried in order; the last is the fallback path or `=CODE` ([]).
    pub try_files: Vec<String>,
    /// List folders without an index file (false).
    pub directory_listing: bool,
    /// Serve `FILE.br` / `FILE.gz` to clients that accept them (true).
    pub precompressed: bool,
    /// Send `ETag`s and honour `If-None-Match` (true).
    pub etag: bool,
    /// A `Cache-Control` value for every file answer.
    pub cache_control: Option<String>,
}

impl Default for StaticFilesConfig {
    fn default() -> Self {
        Self {
            root: String::new(),
            index: vec!["index.html".into()],
            try_files: Vec::new(),
            directory_listing: false,
            precompressed: true,
            etag: true,
            cache_control: None,
        }
    }
}

impl PluginSchema for StaticFilesConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        _dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        let config: StaticFilesConfig = serde_json::from_value(plugin.config.clone()).ok()?;
        Some(std::sync::Arc::new(StaticFiles::new(config)))
    }

    const NAME: &'static str = "static-files";
    const PRIORITY: i32 = 120;
    const FIELDS: &'static [Field] = &[
        Field {
            required: true,
            ..field("root", Ty::Str)
        },
        field("index", STRINGS),
        field("try_files", STRINGS),
        field("directory_listing", Ty::Bool),
        field("precompressed", Ty::Bool),
        field("etag", Ty::Bool),
        field("cache_control", Ty::Str),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        if !self.root.starts_with('/') {
            problems.push(problem(&["root"], "must be an absolute path"));
        }
        if let Some(last) = self.try_files.last() {
            if let Some(code) = last.strip_prefix('=') {
                if !code.parse::<u16>().is_ok_and(|c| (200..=599).contains(&c)) {
                    problems.push(problem(&["try_files"], "=CODE needs a status 200-599"));
                }
            }
        }
        if self.index.iter().any(|i| i.contains('/') || i.is_empty()) {
            problems.push(problem(&["index"], "index entries are file names"));
        }
        result(problems)
    }
}

/// The static-files plugin at run time.
#[derive(Debug)]
pub struct StaticFiles {
    config: StaticFilesConfig,
    /// The root with its symbolic links resolved (as given if it does not
    /// exist yet), when the configuration was loaded.
    root: PathBuf,
    /// The root folder, opened then (files are opened beneath it).
    root_dir: Option<std::fs::File>,
}

/// A file found for a request.
struct Found {
    file: std::fs::File,
    meta: std::fs::Metadata,
    /// The name that decides the content type (without `.br`/`.gz`).
    name: PathBuf,
    /// The coding of a precompressed sibling.
    coding: Option<&'static str>,
}

/// What a lookup gave.
enum Lookup {
    File(Found),
    /// A folder asked for without its trailing slash.
    Redirect,
    /// A folder without an index file.
    Folder(PathBuf),
    Missing,
}

impl StaticFiles {
    /// An instance from a validated config.
    pub fn new(config: StaticFilesConfig) -> Self {
        let root =
            std::fs::canonicalize(&config.root).unwrap_or_else(|_| config.root.clone().into());
        let root_dir = std::fs::File::open(&root).ok();
        StaticFiles {
            config,
            root,
            root_dir,
        }
    }

    /// Whether `path` (resolved) lies under the root.
    fn inside(&self, path: &Path) -> bool {
        std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(&self.root))
    }

    /// Opens `rel` (clean, relative) without leaving the root: one
    /// `openat2` with `RESOLVE_BENEATH`, which follows symbolic links only
    /// while they stay under the root. A link the kernel will not follow
    /// that way (an absolute one), or a kernel without `openat2`, falls
    /// back to resolving the path and checking where it lands.
    fn open_beneath(&self, rel: &str) -> Option<(std::fs::File, std::fs::Metadata)> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        let checked = || {
            let path = self.root.join(rel);
            if !self.inside(&path) {
                return None;
            }
            std::fs::File::open(path).ok()
        };
        let file = match &self.root_dir {
            Some(dir) => {
                let path = if rel.is_empty() { "." } else { rel };
                match rustix::fs::openat2(
                    dir,
                    path,
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Ok(fd) => std::fs::File::from(fd),
                    Err(e) if e == Errno::XDEV || e == Errno::NOSYS || e == Errno::AGAIN => {
                        checked()?
                    }
                    Err(_) => return None,
                }
            }
            None => checked()?,
        };
        let meta = file.metadata().ok()?;
        Some((file, meta))
    }

    /// Opens the regular file `rel`, or a precompressed sibling the client
    /// accepts.
    fn open(&self, rel: &str, accept: Option<&[(String, f32)]>) -> Option<Found> {
        if self.config.precompressed {
            if let Some(accept) = accept {
                for (coding, ext) in [("br", "br"), ("gzip", "gz")] {
                    if quality(accept, coding) <= 0.0 {
                        continue;
                    }
                    if let Some((file, meta)) = self.open_beneath(&format!("{rel}.{ext}")) {
                        if meta.is_file() {
                            return Some(Found {
                                file,
                                meta,
                                name: PathBuf::from(rel),
                                coding: Some(coding),
                            });
                        }
                    }
                }
            }
        }
        let (file, meta) = self.open_beneath(rel)?;
        meta.is_file().then(|| Found {
            file,
            meta,
            name: PathBuf::from(rel),
            coding: None,
        })
    }

    /// Looks up `rel` (a clean relative path; `dir` when the request path
    /// ended with `/`).
    fn lookup(&self, rel: &str, dir: bool, accept: Option<&[(String, f32)]>) -> Lookup {
        let Some((file, meta)) = self.open_beneath(rel) else {
            return Lookup::Missing;
        };
        if meta.is_dir() {
            if !dir && !rel.is_empty() {
                return Lookup::Redirect;
            }
            for index in &self.config.index {
                let name = if rel.is_empty() {
                    index.clone()
                } else {
                    format!("{rel}/{index}")
                };
                if let Some(f) = self.open(&name, accept) {
                    return Lookup::File(f);
                }
            }
            return Lookup::Folder(self.root.join(rel));
        }
        if dir || !meta.is_file() {
            return Lookup::Missing;
        }
        if self.config.precompressed && accept.is_some() {
            if let Some(f) = self.open(rel, accept) {
                return Lookup::File(f);
            }
        }
        Lookup::File(Found {
            file,
            meta,
            name: PathBuf::from(rel),
            coding: None,
        })
    }
}

/// The routed path as a clean relative path: percent-decoded (the model's
/// decoder: bad escapes stay literal, bad UTF-8 is replaced, so such a path
/// names no file), empty and `.` segments dropped; `None` when a segment is
/// `..` or has a NUL or a backslash (nothing may name a place above the
/// root).
fn clean(path: &str) -> Option<(String, bool)> {
    let decoded = if path.contains('%') {
        tollgate_model::form::percent_decode(path.as_bytes(), false)
    } else {
        path.to_owned()
    };
    let dir = decoded.ends_with('/');
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\0') || s.contains('\\') => return None,
            s => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(s);
            }
        }
    }
    Some((out, dir))
}

/// nginx's ETag: modification time and size in hex.
fn etag_of(mtime: u64, len: u64) -> String {
    format!("\"{mtime:x}-{len:x}\"")
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison).
fn none_match(list: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = strip(etag);
    list.split(',').any(|t| t.trim() == "*" || strip(t) == want)
}

/// A `Range: bytes=…` header as (first, last) byte positions within `len`:
/// `None` when it is not a byte range set (the whole file is sent),
/// `Some(empty)` when nothing in it is satisfiable (416).
fn ranges(value: &str, len: u64) -> Option<Vec<(u64, u64)>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let mut out = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        let (a, b) = item.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() {
            let n: u64 = b.parse().ok()?;
            if n > 0 && len > 0 {
                out.push((len.saturating_sub(n), len - 1));
            }
            continue;
        }
        let first: u64 = a.parse().ok()?;
        let last: u64 = if b.is_empty() {
            u64::MAX
        } else {
            b.parse().ok()?
        };
        if last < first {
            return None;
        }
        if first < len {
            out.push((first, last.min(len - 1)));
        }
    }
    Some(out)
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

fn content_type(name: &Path) -> HeaderValue {
    let guess = mime_guess::from_path(name).first_or_octet_stream();
    value(guess.essence_str())
}

impl StaticFiles {
    /// The answer for a file found.
    fn serve(&self, f: Found, req: &HeaderMap, head: bool) -> Answer {
        let len = f.meta.len();
        let mtime = f
            .meta
            .modified()
            .unwrap_or(UNIX_EPOCH)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let modified = UNIX_EPOCH + std::time::Duration::from_secs(mtime);
        let last_modified = httpdate::fmt_http_date(modified);
        let etag = etag_of(mtime, len);
        let ctype = content_type(&f.name);
        let mut h = HeaderMap::new();
        h.insert(header::LAST_MODIFIED, value(&last_modified));
        if self.config.etag {
            h.insert(header::ETAG, value(&etag));
        }
        if let Some(cc) = &self.config.cache_control {
            h.insert(header::CACHE_CONTROL, value(cc));
        }
        if let Some(coding) = f.coding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        if self.config.precompressed {
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        let text = |name| req.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        // Conditional requests (RFC 9110 section 13.2.2): If-None-Match
        // first, If-Modified-Since only without it.
        let not_modified = match text(header::IF_NONE_MATCH) {
            Some(list) if self.config.etag => none_match(list, &etag),
            Some(_) => false,
            None => text(header::IF_MODIFIED_SINCE)
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .is_some_and(|since| modified <= since),
        };
        if not_modified {
            return Answer {
                status: StatusCode::NOT_MODIFIED,
                headers: h,
                body: AnswerBody::Bytes(Bytes::new()),
            };
        }
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let range_ok = match text(header::IF_RANGE) {
            None => true,
            Some(v) if v.starts_with('"') => self.config.etag && v == etag,
            Some(v) => v == last_modified,
        };
        let wanted = text(header::RANGE)
            .filter(|_| range_ok)
            .and_then(|r| ranges(r, len));
        let (status, segments) = match wanted {
            None => (StatusCode::OK, vec![Segment::File { offset: 0, len }]),
            Some(r) if r.is_empty() => {
                h.insert(header::CONTENT_RANGE, value(&format!("bytes */{len}")));
                return Answer {
                    status: StatusCode::RANGE_NOT_SATISFIABLE,
                    headers: h,
                    body: AnswerBody::Bytes(Bytes::new()),
                };
            }
            Some(r) if r.len() == 1 => {
                let (a, b) = r[0];
                h.insert(
                    header::CONTENT_RANGE,
                    value(&format!("bytes {a}-{b}/{len}")),
                );
                (
                    StatusCode::PARTIAL_CONTENT,
                    vec![Segment::File {
                        offset: a,
                        len: b - a + 1,
                    }],
                )
            }
            Some(r) => {
                let boundary = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
                let mut segs = Vec::with_capacity(r.len() * 2 + 1);
                for (a, b) in r {
                    let head = format!(
                        "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {a}-{b}/{len}\r\n\r\n",
                        ctype.to_str().unwrap_or("application/octet-stream")
                    );
                    segs.push(Segment::Bytes(Bytes::from(head)));
                    segs.push(Segment::File {
                        offset: a,
                        len: b - a + 1,
                    });
                }
                segs.push(Segment::Bytes(Bytes::from(format!(
                    "\r\n--{boundary}--\r\n"
                ))));
                h.insert(
                    header::CONTENT_TYPE,
                    value(&format!("multipart/byteranges; boundary={boundary}")),
                );
                (StatusCode::PARTIAL_CONTENT, segs)
            }
        };
        if !h.contains_key(header::CONTENT_TYPE) {
            h.insert(header::CONTENT_TYPE, ctype);
        }
        let total: u64 = segments.iter().map(Segment::len).sum();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
        let body = if head {
            AnswerBody::Bytes(Bytes::new())
        } else if total <= CHUNK as u64 {
            match read_now(&f.file, &segments) {
                Ok(b) => AnswerBody::Bytes(b),
                Err(e) => {
                    tracing::warn!(file = %f.name.display(), "read failed: {e}");
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
                }
            }
        } else {
            AnswerBody::Stream(Box::pin(FileBody::spawn(f.file, segments)))
        };
        Answer {
            status,
            headers: h,
            body,
        }
    }

    /// An HTML list of a folder's entries.
    fn listing(&self, dir: &Path, shown: &str) -> Answer {
        let mut names: Vec<(String, bool)> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| {
                        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                        (e.file_name().to_string_lossy().into_owned(), is_dir)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut html = format!(
            "<!doctype html>\n<html><head><title>Index of {0}</title></head><body>\n<h1>Index of {0}</h1><hr><pre>\n<a href=\"../\">../</a>\n",
            esc(shown)
        );
        for (name, is_dir) in names {
            let slash = if is_dir { "/" } else { "" };
            let href: String = name
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    b => format!("%{b:02X}"),
                })
                .collect();
            html.push_str(&format!(
                "<a href=\"{href}{slash}\">{}{slash}</a>\n",
                esc(&name)
            ));
        }
        html.push_str("</pre><hr></body></html>\n");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        Answer {
            status: StatusCode::OK,
            headers: h,
            body: AnswerBody::Bytes(Bytes::from(html)),
        }
    }
}

fn plain(status: StatusCode, location: &str) -> Answer {
    let mut h = HeaderMap::new();
    if !location.is_empty() {
        h.insert(header::LOCATION, value(location));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    Answer {
        status,
        headers: h,
        body: AnswerBody::Bytes(Bytes::new()),
    }
}

impl crate::runtime::Plugin for StaticFiles {
    fn name(&self) -> &'static str {
        "static-files"
    }

    fn priority(&self) -> i32 {
        120
    }

    fn access(&self, ctx: &mut AccessCtx<'_>) -> Flow {
        let head = *ctx.method == Method::HEAD;
        if !head && *ctx.method != Method::GET {
            return Flow::Respond(
                EarlyResponse::message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                    .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD")),
            );
        }
        let Some((rel, dir)) = clean(ctx.routed_path) else {
            return Flow::Respond(EarlyResponse::message(
                StatusCode::BAD_REQUEST,
                "Bad request",
            ));
        };
        let accept = accepted(ctx.headers);
        let accept = accept.as_deref();
        let not_found =
            || Flow::Respond(EarlyResponse::message(StatusCode::NOT_FOUND, "Not found"));
        let redirect = |ctx: &AccessCtx<'_>| {
            let mut to = format!("{}/", ctx.uri.path());
            if let Some(q) = ctx.uri.query() {
                to.push('?');
                to.push_str(q);
            }
            Flow::Answer(Box::new(plain(StatusCode::MOVED_PERMANENTLY, &to)))
        };
        let found = |lookup: Lookup, ctx: &AccessCtx<'_>| -> Option<Flow> {
            match lookup {
                Lookup::File(f) => Some(Flow::Answer(Box::new(self.serve(f, ctx.headers, head)))),
                Lookup::Redirect => Some(redirect(ctx)),
                Lookup::Folder(path) if self.config.directory_listing => {
                    Some(Flow::Answer(Box::new(self.listing(&path, ctx.uri.path()))))
                }
                Lookup::Folder(_) => Some(Flow::Respond(EarlyResponse::message(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                ))),
                Lookup::Missing => None,
            }
        };
        let tries = &self.config.try_files;
        let Some((last, first)) = tries.split_last() else {
            return found(self.lookup(&rel, dir, accept), ctx).unwrap_or_else(not_found);
        };
        let uri = if dir {
            format!("/{rel}/")
        } else {
            format!("/{rel}")
        };
        for t in first {
            let candidate = t.replace("$uri", &uri);
            let Some((r, d)) = clean(&candidate) else {
                continue;
            };
            match self.lookup(&r, d, accept) {
                Lookup::File(f) => {
                    return Flow::Answer(Box::new(self.serve(f, ctx.headers, head)));
                }
                l @ Lookup::Folder(_) if self.config.directory_listing => {
                    if let Some(flow) = found(l, ctx) {
                        return flow;
                    }
                }
                _ => {}
            }
        }
        if let Some(code) = last.strip_prefix('=') {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::NOT_FOUND);
            return Flow::Respond(EarlyResponse::message(
                status,
                status.canonical_reason().unwrap_or(""),
            ));
        }
        let fallback = last.replace("$uri", &uri);
        match clean(&fallback) {
            Some((r, d)) => found(self.lookup(&r, d, accept), ctx).unwrap_or_else(not_found),
            None => not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_climb_out_of_the_root_are_refused() {
        assert_eq!(clean("/a/./b//c"), Some(("a/b/c".into(), false)));
        assert_eq!(clean("/a/"), Some(("a".into(), true)));
        assert_eq!(clean("/a/../b"), None);
        assert_eq!(clean("/%2e%2e/etc/passwd"), None);
        assert_eq!(clean("/a/%2E%2E%2Fb"), None);
        assert_eq!(clean("/a%00b"), None);
        assert_eq!(clean("/..%5c..%5cwin.ini"), None);
        assert_eq!(clean("/with%20space"), Some(("with space".into(), false)));
    }

    #[test]
    fn byte_ranges_resolve_against_the_length() {
        assert_eq!(ranges("bytes=0-9", 100), Some(vec![(0, 9)]));
        assert_eq!(ranges("bytes=90-", 100), Some(vec![(90, 99)]));
        assert_eq!(ranges("bytes=-10", 100), Some(vec![(90, 99)]));
        assert_eq!(
            ranges("bytes=0-0, 50-200", 100),
            Some(vec![(0, 0), (50, 99)])
        );
        assert_eq!(ranges("bytes=100-", 100), Some(vec![]));
        assert_eq!(ranges("bytes=5-1", 100), None);
        assert_eq!(ranges("items=0-1", 100), None);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match("W/\"a-1\"", "\"a-1\""));
        assert!(none_match("\"x\", \"a-1\"", "\"a-1\""));
        assert!(none_match("*", "\"a-1\""));
        assert!(!none_match("\"b\"", "\"a-1\""));
    }
}
