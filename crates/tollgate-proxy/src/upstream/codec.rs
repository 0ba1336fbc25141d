//! HTTP/1.1 on the wire towards backends: the request head Tollgate writes,
//! and the response head it reads back together with the framing of the body
//! that follows it (RFC 9112 section 6).
//!
//! The response head is parsed with `httparse` straight out of the
//! connection's read buffer; header values are slices of that buffer (no copy).

use crate::headers::{self, RawClass};
use bytes::BytesMut;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};

/// Most header lines accepted in a backend's response head.
const MAX_HEADERS: usize = 100;
/// Largest response head accepted (nginx's proxy_buffer_size is far smaller).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A backend's answer that is not valid HTTP/1.1.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The head could not be parsed.
    #[error("malformed response head: {0}")]
    Malformed(#[from] httparse::Error),
    /// The head is longer than [`MAX_HEAD_BYTES`].
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// A header name or value is not acceptable.
    #[error("invalid response header")]
    BadHeader,
    /// Content-Length missing digits, or several that disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// The chunked body is broken.
    #[error(transparent)]
    Chunked(#[from] crate::chunked::ChunkError),
    /// A 101 answer to a request that did not ask to upgrade.
    #[error("unsolicited 101 Switching Protocols")]
    UnsolicitedUpgrade,
}

/// How the request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    None,
    /// `Content-Length: n` followed by n bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl RequestFraming {
    /// The framing for a body of `exact` size (when known) sent with `method`.
    pub fn choose(method: &Method, end_stream: bool, exact: Option<u64>) -> Self {
        if end_stream {
            // As curl and hyper do: methods that carry a body say it is empty.
            return if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                RequestFraming::Length(0)
            } else {
                RequestFraming::None
            };
        }
        match exact {
            Some(n) => RequestFraming::Length(n),
            None => RequestFraming::Chunked,
        }
    }
}

/// A header Tollgate sets on the upstream request, written after the
/// client's. With `replace`, client headers of that name are not sent (and
/// a `None` value removes them); an empty name is ignored.
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    /// Lower-case header name.
    pub name: &'static str,
    /// The value, already checked to be a valid header value.
    pub value: Option<&'a [u8]>,
    /// Whether client headers of the same name are dropped.
    pub replace: bool,
}

impl<'a> Extra<'a> {
    /// A header that replaces the client's of the same name.
    pub fn replace(name: &'static str, value: Option<&'a [u8]>) -> Self {
        Extra {
            name,
            value,
            replace: true,
        }
    }
}

/// Writes the request head into `buf`: the request line, `Host` first, every
/// other header as given (minus framing headers, `Expect`, and the names
/// `extras` replace), then `extras`, then the framing header.
pub fn encode_request_head(
    buf: &mut Vec<u8>,
    parts: &http::request::Parts,
    host: Option<&HeaderValue>,
    extras: &[Extra<'_>],
    framing: RequestFraming,
) {
    buf.clear();
    buf.extend_from_slice(parts.method.as_str().as_bytes());
    buf.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    buf.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        put_header(buf, b"host", host.as_bytes());
    }
    for (name, value) in &parts.headers {
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
        {
            continue;
        }
        let n = name.as_str();
        if extras.iter().any(|e| e.replace && e.name == n) {
            continue;
        }
        put_header(buf, n.as_bytes(), value.as_bytes());
    }
    for e in extras {
        if let (false, Some(v)) = (e.name.is_empty(), e.value) {
            put_header(buf, e.name.as_bytes(), v);
        }
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            put_header(buf, b"content-length", headers::Decimal::new(n).as_bytes());
        }
        RequestFraming::Chunked => put_header(buf, b"transfer-encoding", b"chunked"),
    }
    buf.extend_from_slice(b"\r\n");
}

fn put_header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// How the body after a response head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD, 204, 304, 101, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and headers (body still on the wire).
    pub response: Response<()>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may carry another request afterwards.
    pub keep_alive: bool,
    /// In raw mode: the backend's header lines to pass on as they are (the
    /// response's header map is then left empty).
    pub raw: Option<RawHead>,
}

/// Most runs of consecutive header lines a raw head is cut into (headers
/// left out split runs); a head that needs more gets a header map instead.
const RAW_RUNS: usize = 4;

/// A backend head passed on without a header map: the runs of header lines
/// kept (hop-by-hop, framing and proxy-set headers left out), each copied
/// with one `memcpy` when the answer head is written.
#[derive(Debug, Clone)]
pub struct RawHead {
    head: bytes::Bytes,
    runs: [(u32, u32); RAW_RUNS],
    n_runs: u8,
    /// The backend's `Content-Length` line, for answers that keep it (HEAD, 304).
    length_line: Option<(u32, u32)>,
    /// Whether a `Date` line is among the runs.
    pub has_date: bool,
}

impl RawHead {
    /// The header lines kept, in order, each run ending with CRLF.
    pub fn runs(&self) -> impl Iterator<Item = &[u8]> {
        self.runs[..usize::from(self.n_runs)]
            .iter()
            .map(|&(a, b)| &self.head[a as usize..b as usize])
    }

    /// The backend's `Content-Length` line with its CRLF, if it sent one.
    pub fn length_line(&self) -> Option<&[u8]> {
        self.length_line
            .map(|(a, b)| &self.head[a as usize..b as usize])
    }

    /// Every header line kept, as (name, value), for building a map.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.runs().flat_map(|run| {
            run.split(|b| *b == b'\n').filter_map(|line| {
                let line = line.strip_suffix(b"\r")?;
                let colon = line.iter().position(|b| *b == b':')?;
                Some((&line[..colon], line[colon + 1..].trim_ascii()))
            })
        })
    }
}

/// What one parse attempt found in the buffer. (The head is returned by
/// value once per response; boxing it would cost an allocation instead.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// Not a whole head yet: read more.
    Partial,
    /// An interim 1xx answer (other than 101) was consumed; look again.
    Interim,
    /// A final head (or a 101); its bytes were taken out of the buffer.
    Head(ResponseHead),
}

/// Parses a response head at the start of `buf`, taking its bytes out on
/// success. `method` is the request's (a HEAD answer has no body) and
/// `upgrade` whether it asked for a protocol switch. With `raw`, no header
/// map is built when it can be avoided (nobody will look at the headers):
/// the head is kept whole in [`ResponseHead::raw`] instead.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
    upgrade: bool,
    raw: bool,
    spans: &mut Vec<(u32, u32, u32, u32)>,
) -> Result<Parsed, CodecError> {
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)?;
    let len = match parsed {
        httparse::Status::Partial if buf.len() >= MAX_HEAD_BYTES => {
            return Err(CodecError::HeadTooLarge)
        }
        httparse::Status::Partial => return Ok(Parsed::Partial),
        httparse::Status::Complete(len) => len,
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| CodecError::BadHeader)?;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        let _ = buf.split_to(len);
        return Ok(Parsed::Interim);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
        return Err(CodecError::UnsolicitedUpgrade);
    }
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Header values become slices of the frozen head: no copy.
    let base = buf.as_ptr() as usize;
    // Offsets fit in u32: the head is at most MAX_HEAD_BYTES long.
    spans.clear();
    let count = resp.headers.len();
    for h in resp.headers.iter() {
        let n = (h.name.as_ptr() as usize - base) as u32;
        let v = (h.value.as_ptr() as usize - base) as u32;
        spans.push((n, n + h.name.len() as u32, v, v + h.value.len() as u32));
    }
    let head = buf.split_to(len).freeze();
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut has_te = false;
    let mut close = version == Version::HTTP_10;
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // Whether a `Connection` header lists other header names (hop-by-hop too).
    let mut lists_names = false;
    // Runs of kept header lines, for raw mode.
    let mut runs = [(0u32, 0u32); RAW_RUNS];
    let mut n_runs = 0usize;
    let mut raw_fits = raw;
    let mut has_date = false;
    let mut length_line = None;
    // First pass, on the bytes: framing and keep-alive.
    for (i, &(ns, ne, vs, ve)) in spans.iter().enumerate() {
        let (name, value) = (
            &head[ns as usize..ne as usize],
            &head[vs as usize..ve as usize],
        );
        let class = headers::raw_class(name);
        if raw_fits {
            // A line runs up to the next header's name (or the blank line);
            // only CRLF-terminated lines are copied as they are.
            let end = spans.get(i + 1).map_or(len as u32 - 2, |next| next.0);
            if head.get(end as usize - 2..end as usize) != Some(&b"\r\n"[..]) {
                raw_fits = false;
            } else {
                match class {
                    RawClass::Other | RawClass::Date => {
                        has_date |= class == RawClass::Date;
                        if n_runs > 0 && runs[n_runs - 1].1 == ns {
                            runs[n_runs - 1].1 = end;
                        } else if n_runs < RAW_RUNS {
                            runs[n_runs] = (ns, end);
                            n_runs += 1;
                        } else {
                            raw_fits = false;
                        }
                    }
                    RawClass::ContentLength => length_line = Some((ns, end)),
                    _ => {}
                }
            }
        }
        match class {
            RawClass::Connection => {
                for token in value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        if version == Version::HTTP_10 {
                            close = false;
                        }
                    } else if !token.eq_ignore_ascii_case(b"upgrade") && !token.is_empty() {
                        lists_names = true;
                    }
                }
            }
            RawClass::TransferEncoding => {
                has_te = true;
                // Only a final `chunked` coding delimits the body.
                chunked = last_token(value).eq_ignore_ascii_case(b"chunked");
            }
            RawClass::ContentLength => {
                let n = parse_content_length(value)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(CodecError::BadContentLength);
                }
                content_length = Some(n);
            }
            _ => {}
        }
    }
    let raw = raw_fits && !lists_names && !switching;
    let mut headers = if raw {
        http::HeaderMap::new()
    } else {
        // Room for the headers the proxy adds on the way down.
        headers::reuse_map(count + 4)
    };
    if !raw {
        // Second pass: the header map, without hop-by-hop headers.
        let mut listed: Vec<HeaderName> = Vec::new();
        for &(ns, ne, vs, ve) in spans.iter() {
            let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
            let class = headers::raw_class(&head[ns..ne]);
            let keep = match class {
                RawClass::Other | RawClass::Date | RawClass::ContentLength | RawClass::Edge => true,
                RawClass::Hop => {
                    (switching && head[ns..ne].eq_ignore_ascii_case(b"upgrade"))
                        || (head[ns..ne].eq_ignore_ascii_case(b"te")
                            && head[vs..ve].eq_ignore_ascii_case(b"trailers"))
                }
                RawClass::Connection => {
                    for token in head[vs..ve].split(|b| *b == b',') {
                        let token = token.trim_ascii();
                        let usual = token.is_empty()
                            || token.eq_ignore_ascii_case(b"close")
                            || token.eq_ignore_ascii_case(b"keep-alive")
                            || token.eq_ignore_ascii_case(b"upgrade");
                        if !usual {
                            if let Ok(n) = HeaderName::from_bytes(token) {
                                listed.push(n);
                            }
                        }
                    }
                    false
                }
                RawClass::TransferEncoding => false,
            };
            if !keep {
                continue;
            }
            let name = HeaderName::from_bytes(&head[ns..ne]).map_err(|_| CodecError::BadHeader)?;
            let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                .map_err(|_| CodecError::BadHeader)?;
            headers.append(name, value);
        }
        for name in listed {
            headers.remove(&name);
        }
    }
    let bodyless = *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::SWITCHING_PROTOCOLS;
    let framing = if bodyless {
        BodyFraming::Empty
    } else if has_te {
        // Transfer-Encoding overrides Content-Length; a message with both may
        // be a smuggling attempt: never reuse the connection after it.
        if content_length.is_some() {
            headers.remove(header::CONTENT_LENGTH);
            close = true;
        }
        if chunked {
            BodyFraming::Chunked
        } else {
            close = true;
            BodyFraming::UntilClose
        }
    } else {
        match content_length {
            Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
            None => {
                close = true;
                BodyFraming::UntilClose
            }
        }
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Parsed::Head(ResponseHead {
        response,
        framing,
        keep_alive: !close && status != StatusCode::SWITCHING_PROTOCOLS,
        raw: raw.then_some(RawHead {
            head,
            runs,
            n_runs: n_runs as u8,
            length_line,
            has_date,
        }),
    }))
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|b| *b == b',').next().unwrap_or(v).trim_ascii()
}

/// Parses a Content-Length value; a list of equal values (`5, 5`) is accepted
/// as RFC 9110 allows, anything else is refused.
fn parse_content_length(v: &[u8]) -> Result<u64, CodecError> {
    let mut found: Option<u64> = None;
    for part in v.split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(CodecError::BadContentLength);
        }
        let n = part
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        if found.is_some_and(|prev| prev != n) {
            return Err(CodecError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(CodecError::BadContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, method: Method) -> Result<Parsed, CodecError> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_response_head(&mut buf, &method, false, false, &mut Vec::new())
    }

    fn head(raw: &str) -> ResponseHead {
        match parse(raw, Method::GET) {
            Ok(Parsed::Head(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_body_on_a_keep_alive_connection() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello");
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.response.headers()["x-a"], "b");
        assert_eq!(h.response.headers()["content-length"], "5");
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_left_out() {
        let h = head("HTTP/1.1 200 OK\r\nConnection: keep-alive, x-secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n");
        let mut names: Vec<&str> = h.response.headers().keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
        assert!(h.keep_alive);
    }

    #[test]
    fn chunked_wins_over_content_length_and_closes_the_connection() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(!h.keep_alive);
        assert!(!h.response.headers().contains_key("content-length"));
    }

    #[test]
    fn conflicting_content_lengths_are_refused() {
        assert!(parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Method::GET
        )
        .is_err());
        assert!(parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            Method::GET
        )
        .is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", Method::GET).is_err());
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(5));
    }

    #[test]
    fn no_length_means_until_close() {
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::UntilClose);
        assert!(!h.keep_alive);
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
        assert!(
            !head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn head_and_304_have_no_body() {
        match parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::HEAD) {
            Ok(Parsed::Head(h)) => assert_eq!(h.framing, BodyFraming::Empty),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            head("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").framing,
            BodyFraming::Empty
        );
    }

    #[test]
    fn interim_answers_are_skipped_and_partial_heads_wait() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
        assert!(matches!(
            parse_response_head(&mut buf, &Method::GET, false, false, &mut Vec::new()),
            Ok(Parsed::Interim)
        ));
        assert!(matches!(
            parse_response_head(&mut buf, &Method::GET, false, false, &mut Vec::new()),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn unsolicited_101_and_garbage_are_errors() {
        assert!(parse("HTTP/1.1 101 Switching\r\n\r\n", Method::GET).is_err());
        assert!(parse("HTTX/1.1 200 OK\r\n\r\n", Method::GET).is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", Method::GET).is_err());
    }

    #[test]
    fn request_head_puts_host_first_and_its_own_framing() {
        let req = http::Request::post("/a?b=1")
            .header("content-length", "3")
            .header("host", "ignored")
            .header("x-one", "1")
            .header("x-gone", "1")
            .header("via", "1.0 old")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut buf = Vec::new();
        let host = HeaderValue::from_static("backend:8080");
        let extras = [
            Extra::replace("x-one", Some(b"replaced")),
            Extra::replace("x-gone", None),
            Extra {
                name: "via",
                value: Some(b"1.1 t"),
                replace: false,
            },
        ];
        encode_request_head(
            &mut buf,
            &parts,
            Some(&host),
            &extras,
            RequestFraming::Length(3),
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nhost: backend:8080\r\nvia: 1.0 old\r\nx-one: replaced\r\nvia: 1.1 t\r\ncontent-length: 3\r\n\r\n"
        );
    }
}
