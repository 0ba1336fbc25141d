//! Reading a client's HTTP/1.x request head, with the checks that keep
//! ambiguous framing (request smuggling) out: a request is refused when its
//! body length could be read two ways.

use bytes::BytesMut;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use std::mem::MaybeUninit;

/// Most header lines a request may carry, whatever the settings say.
pub const HEADER_SLOTS: usize = 256;

/// Limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Largest head (request line and headers), bytes; larger → 431.
    pub max_bytes: usize,
    /// Most header lines; more → 431.
    pub max_headers: usize,
    /// Longest request line before the head is complete; longer → 414.
    pub max_uri: usize,
}

/// A request head that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Malformed or ambiguous: 400, and the connection is closed.
    #[error("bad request: {0}")]
    Bad(&'static str),
    /// Too many or too large header fields: 431.
    #[error("request header fields too large")]
    TooLarge,
    /// Request line too long: 414.
    #[error("request target too long")]
    UriTooLong,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Method, target, version and headers.
    pub request: Request<()>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept open.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// Byte ranges of one header line in the head: name start/end, value start/end.
pub type Span = (u32, u32, u32, u32);

/// Room for a few headers plugins add, so adding them does not rehash the
/// map (the forwarded headers go straight into the upstream head instead).
const ROOM_FOR_ADDED: usize = 2;

/// Parses a request head at the start of `buf`: `None` while it is
/// incomplete; once complete its bytes are taken out of the buffer.
/// `spans` is scratch space kept by the connection.
pub fn parse_request_head(
    buf: &mut BytesMut,
    limits: &HeadLimits,
    spans: &mut Vec<Span>,
) -> Result<Option<RequestHead>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let max_headers = limits.max_headers.clamp(1, HEADER_SLOTS);
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut slots[..max_headers],
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if !buf.contains(&b'\n') && buf.len() > limits.max_uri {
                return Err(HeadError::UriTooLong);
            }
            if buf.len() > limits.max_bytes {
                return Err(HeadError::TooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Bad("unsupported HTTP version")),
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    if len > limits.max_bytes {
        return Err(HeadError::TooLarge);
    }
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Bad("invalid method"))?;
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or("");
    let path_span = (path.as_ptr() as usize - base, path.len());
    // Offsets fit in u32: the head is at most max_bytes long.
    spans.clear();
    let count = req.headers.len();
    for h in req.headers.iter() {
        let n = (h.name.as_ptr() as usize - base) as u32;
        let v = (h.value.as_ptr() as usize - base) as u32;
        spans.push((n, n + h.name.len() as u32, v, v + h.value.len() as u32));
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_span.0..path_span.0 + path_span.1))
        .map_err(|_| HeadError::Bad("invalid request target"))?;

    let mut headers = crate::headers::reuse_map(count + ROOM_FOR_ADDED);
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    let mut keep_alive = version == Version::HTTP_11;
    let mut close = false;
    let mut expect_continue = false;
    for &(ns, ne, vs, ve) in spans.iter() {
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name = HeaderName::from_bytes(&head[ns..ne])
            .map_err(|_| HeadError::Bad("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| HeadError::Bad("invalid header value"))?;
        if name == header::CONTENT_LENGTH {
            let n = parse_length(value.as_bytes())?;
            match content_length {
                // Identical repeats are one value (RFC 9110 section 8.6).
                Some(prev) if prev == n => continue,
                Some(_) => return Err(HeadError::Bad("conflicting Content-Length")),
                None => content_length = Some(n),
            }
        } else if name == header::TRANSFER_ENCODING {
            if version == Version::HTTP_10 {
                return Err(HeadError::Bad("Transfer-Encoding in HTTP/1.0"));
            }
            if chunked
                || !value
                    .as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"chunked")
            {
                return Err(HeadError::Bad("unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if name == header::HOST {
            hosts += 1;
            if hosts > 1 {
                return Err(HeadError::Bad("duplicate Host"));
            }
        } else if name == header::CONNECTION {
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name == header::EXPECT {
            expect_continue = version == Version::HTTP_11
                && value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        }
        headers.append(name, value);
    }
    if chunked && content_length.is_some() {
        return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
    }
    if version == Version::HTTP_11 && hosts == 0 && uri.authority().is_none() {
        return Err(HeadError::Bad("HTTP/1.1 request without Host"));
    }
    let framing = match (chunked, content_length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0) | None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        request,
        framing,
        keep_alive: keep_alive && !close,
        expect_continue,
    }))
}

/// A Content-Length value: digits only, no sign, no list.
fn parse_length(v: &[u8]) -> Result<u64, HeadError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Bad("invalid Content-Length"));
    }
    Ok(v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_bytes: 8192,
        max_headers: 100,
        max_uri: 4096,
    };

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(&mut BytesMut::from(raw), &LIMITS, &mut Vec::new())
    }

    fn head(raw: &[u8]) -> RequestHead {
        match parse(raw) {
            Ok(Some(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_plain_get_keeps_the_connection_and_leaves_the_next_request() {
        let mut buf = BytesMut::from(&b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nGET /next"[..]);
        let Ok(Some(h)) = parse_request_head(&mut buf, &LIMITS, &mut Vec::new()) else {
            panic!()
        };
        assert_eq!(h.request.uri().path(), "/a");
        assert_eq!(h.request.uri().query(), Some("b"));
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for raw in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(HeadError::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn framing_keep_alive_and_expect_are_read() {
        let h = head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(4));
        assert_eq!(
            h.request.headers().get_all("content-length").iter().count(),
            1
        );
        assert!(h.expect_continue);
        let h = head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(!h.keep_alive);
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn oversized_heads_and_lines_have_their_own_statuses() {
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(5000));
        assert_eq!(
            parse(long_line.as_bytes()).unwrap_err(),
            HeadError::UriTooLong
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(big.as_bytes()).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..120).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(parse(raw.as_bytes()).unwrap_err(), HeadError::TooLarge);
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None)));
    }
}
