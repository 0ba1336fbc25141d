//! Writing an answer's head to a client, and choosing how its body is framed:
//! Content-Length when the size is known, chunked for HTTP/1.1 otherwise, or
//! until-close for HTTP/1.0; no body at all for HEAD, 1xx, 204 and 304.

use crate::body::ProxyBody;
use crate::headers::{Decimal, X_KONG_PROXY_LATENCY, X_KONG_UPSTREAM_LATENCY, X_REQUEST_ID};
use crate::pump::Framing;
use crate::VIA_TOKEN;
use http::header;
use http::{StatusCode, Version};
use http_body::Body;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the request said that shapes the answer.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// The request was a HEAD.
    pub head: bool,
    /// The request's HTTP version.
    pub version: Version,
}

/// How the answer goes out.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Body framing.
    pub framing: Framing,
    /// Whether the connection closes after this answer.
    pub close: bool,
}

/// Writes the head of `parts` into `out` and returns how the body follows.
/// `close` is whether the connection must close after this answer already.
pub fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &ProxyBody,
    req: RequestFacts,
    mut close: bool,
) -> Plan {
    let status = parts.status;
    let mut upgrade_token = false;
    let mut has_date = false;
    let mut has_length = false;
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // HEAD and 304 answers describe a body they do not carry: their
    // Content-Length is passed on as it is.
    let keep_length = req.head || status == StatusCode::NOT_MODIFIED;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let edge = body.edge();
    // One pass over the headers, no lookups by name.
    for (name, value) in &parts.headers {
        if edge.is_some()
            && (name == X_REQUEST_ID
                || name == X_KONG_UPSTREAM_LATENCY
                || name == X_KONG_PROXY_LATENCY)
        {
            continue;
        }
        if name == header::CONNECTION {
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
            }
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONTENT_LENGTH {
            has_length = true;
            if !keep_length {
                continue;
            }
        }
        has_date |= name == header::DATE;
        put(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(raw) = edge.and_then(|e| e.raw_head.as_ref()) {
        // The backend's header lines, copied run by run; its hop-by-hop
        // headers, framing and the headers set below were left out.
        for run in raw.runs() {
            out.extend_from_slice(run);
        }
        has_date |= raw.has_date;
        if let Some(line) = raw.length_line() {
            has_length = true;
            if keep_length {
                out.extend_from_slice(line);
            }
        }
    }
    if let Some(e) = edge {
        for (name, value) in &e.plugin_headers {
            put(out, name.as_str().as_bytes(), value.as_bytes());
        }
        put(out, b"x-request-id", e.request_id.as_bytes());
        put(out, b"via", VIA_TOKEN.as_bytes());
        put(
            out,
            b"x-kong-upstream-latency",
            Decimal::new(e.upstream_ms).as_bytes(),
        );
        put(
            out,
            b"x-kong-proxy-latency",
            Decimal::new(e.proxy_ms).as_bytes(),
        );
    }
    if !has_date {
        with_date(|d| put(out, b"date", d));
    }
    let framing = if no_body {
        Framing::Skip
    } else if req.head {
        if !has_length {
            if let Some(n) = body.size_hint().exact().filter(|n| *n > 0) {
                put(out, b"content-length", Decimal::new(n).as_bytes());
            }
        }
        Framing::Skip
    } else if body.is_end_stream() {
        put(out, b"content-length", b"0");
        Framing::Skip
    } else if let Some(n) = body.size_hint().exact() {
        put(out, b"content-length", Decimal::new(n).as_bytes());
        Framing::Raw
    } else if req.version == Version::HTTP_11 {
        put(out, b"transfer-encoding", b"chunked");
        Framing::Chunked
    } else {
        close = true;
        Framing::Raw
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        put(out, b"connection", b"upgrade");
    } else if close {
        put(out, b"connection", b"close");
    } else if upgrade_token {
        put(out, b"connection", b"upgrade");
    } else if req.version == Version::HTTP_10 {
        put(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    Plan { framing, close }
}

fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` value, formatted once per second per worker.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, httpdate::fmt_http_date(now).into_bytes());
        }
        f(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn encode(resp: http::Response<ProxyBody>, req: RequestFacts) -> (String, Plan) {
        let (parts, body) = resp.into_parts();
        let mut out = Vec::new();
        let plan = encode_head(&mut out, &parts, &body, req, false);
        (String::from_utf8(out).unwrap(), plan)
    }

    const GET11: RequestFacts = RequestFacts {
        head: false,
        version: Version::HTTP_11,
    };

    #[test]
    fn a_known_size_gets_a_content_length_and_the_old_one_is_dropped() {
        let resp = http::Response::builder()
            .header("content-length", "999")
            .header("x-a", "1")
            .body(ProxyBody::full(Bytes::from_static(b"hello")))
            .unwrap();
        let (head, plan) = encode(resp, GET11);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: "),
            "{head}"
        );
        assert!(head.ends_with("content-length: 5\r\n\r\n"), "{head}");
        assert_eq!(plan.framing, Framing::Raw);
        assert!(!plan.close);
    }

    #[test]
    fn a_raw_backend_head_is_copied_without_hop_by_hop_lines() {
        let mut buf = bytes::BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nServer: be\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nContent-Length: 2\r\nX-Request-Id: be\r\nDate: Sat, 28 Nov 2026 00:00:00 GMT\r\nX-A: 1\r\n\r\n"[..],
        );
        let parsed = crate::upstream::codec::parse_response_head(
            &mut buf,
            &http::Method::GET,
            false,
            true,
            &mut Vec::new(),
        );
        let Ok(crate::upstream::codec::Parsed::Head(parsed)) = parsed else {
            panic!("{parsed:?}")
        };
        assert!(parsed.response.headers().is_empty());
        let raw = parsed.raw.expect("raw mode");
        let body = ProxyBody::full(Bytes::from_static(b"ok")).with_edge(crate::body::Edge {
            request_id: http::HeaderValue::from_static("rid"),
            upstream_ms: 3,
            proxy_ms: 0,
            raw_head: Some(raw),
            plugin_headers: vec![(
                http::HeaderName::from_static("x-ratelimit-remaining-minute"),
                http::HeaderValue::from_static("9"),
            )],
        });
        let (head, plan) = encode(http::Response::new(body), GET11);
        let expected = format!(
            "HTTP/1.1 200 OK\r\nServer: be\r\nDate: Sat, 28 Nov 2026 00:00:00 GMT\r\nX-A: 1\r\n\
             x-ratelimit-remaining-minute: 9\r\nx-request-id: rid\r\nvia: {}\r\nx-kong-upstream-latency: 3\r\n\
             x-kong-proxy-latency: 0\r\ncontent-length: 2\r\n\r\n",
            crate::VIA_TOKEN
        );
        assert_eq!(head, expected);
        assert_eq!(plan.framing, Framing::Raw);
    }

    #[test]
    fn head_answers_keep_their_length_and_send_no_body() {
        let resp = http::Response::builder()
            .header("content-length", "42")
            .body(ProxyBody::empty())
            .unwrap();
        let req = RequestFacts {
            head: true,
            version: Version::HTTP_11,
        };
        let (head, plan) = encode(resp, req);
        assert!(head.contains("content-length: 42\r\n"), "{head}");
        assert_eq!(plan.framing, Framing::Skip);
    }

    #[test]
    fn http10_clients_get_keep_alive_or_close_delimited_bodies() {
        let req = RequestFacts {
            head: false,
            version: Version::HTTP_10,
        };
        let resp = http::Response::new(ProxyBody::empty());
        let (head, plan) = encode(resp, req);
        assert!(head.contains("connection: keep-alive\r\n"), "{head}");
        assert!(!plan.close);
        let resp = http::Response::builder()
            .header("connection", "close")
            .body(ProxyBody::empty())
            .unwrap();
        let (head, plan) = encode(resp, GET11);
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(plan.close);
    }
}
