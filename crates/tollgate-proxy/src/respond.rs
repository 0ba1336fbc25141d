//! Answers produced by Tollgate itself (errors, early answers), with the body
//! negotiated from `Accept` as Kong does: JSON by default, text, or HTML.

use crate::body::ProxyBody;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

/// The body formats Tollgate can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    Html,
}

fn negotiate(req_headers: &HeaderMap) -> Format {
    let Some(accept) = req_headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Format::Json;
    };
    // Kong looks at the first media type the client lists.
    let first = accept.split(',').next().unwrap_or("").trim();
    let media = first.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("text/html") {
        Format::Html
    } else if media.eq_ignore_ascii_case("text/plain") || media.eq_ignore_ascii_case("text/*") {
        Format::Text
    } else {
        Format::Json
    }
}

fn json_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Builds an error answer: `{"message":..,"request_id":..}` (or text/html),
/// with `X-Request-Id` and `Server` set.
pub fn error_response(
    status: StatusCode,
    message: &str,
    request_id: &HeaderValue,
    req_headers: &HeaderMap,
) -> Response<ProxyBody> {
    let id = request_id.to_str().unwrap_or("");
    let (content_type, body) = match negotiate(req_headers) {
        Format::Json => {
            let mut b = String::with_capacity(64 + message.len());
            b.push_str("{\"message\":\"");
            json_escape(message, &mut b);
            b.push_str("\",\"request_id\":\"");
            json_escape(id, &mut b);
            b.push_str("\"}");
            ("application/json; charset=utf-8", b)
        }
        Format::Text => (
            "text/plain; charset=utf-8",
            format!("{message}\nrequest_id: {id}\n"),
        ),
        Format::Html => (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html>\n<html>\n<head><title>Error</title></head>\n<body>\n<h1>Error</h1>\n<p>{}.</p>\n<p>request_id: {}</p>\n</body>\n</html>\n",
                html_escape(message),
                html_escape(id)
            ),
        ),
    };
    let mut resp = Response::new(ProxyBody::full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(crate::SERVER_TOKEN),
    );
    h.insert(crate::headers::X_REQUEST_ID, request_id.clone());
    resp
}

/// The answer of a plugin that stopped the request (401, 403, 503…): Kong's
/// negotiated error body, or the plugin's own body, plus its headers.
pub fn early_response(
    early: tollgate_plugins::runtime::EarlyResponse,
    request_id: &HeaderValue,
    req_headers: &HeaderMap,
) -> Response<ProxyBody> {
    let mut resp = match early.body {
        Some((content_type, body)) => {
            let mut r = Response::new(ProxyBody::full(Bytes::from(body)));
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r.headers_mut().insert(
                header::SERVER,
                HeaderValue::from_static(crate::SERVER_TOKEN),
            );
            r.headers_mut()
                .insert(crate::headers::X_REQUEST_ID, request_id.clone());
            r
        }
        None => error_response(
            early.status,
            early.message.as_deref().unwrap_or(""),
            request_id,
            req_headers,
        ),
    };
    *resp.status_mut() = early.status;
    for (name, value) in early.headers {
        resp.headers_mut().insert(name, value);
    }
    resp
}

/// A plugin's whole answer (a cached response, a static file), with
/// `X-Request-Id` set.
pub fn answer(
    a: tollgate_plugins::runtime::Answer,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    use tollgate_plugins::runtime::AnswerBody;
    let body = match a.body {
        AnswerBody::Bytes(b) => ProxyBody::full(b),
        AnswerBody::Stream(s) => ProxyBody::stream(s),
    };
    let mut r = Response::new(body);
    *r.status_mut() = a.status;
    *r.headers_mut() = a.headers;
    r.headers_mut()
        .insert(crate::headers::X_REQUEST_ID, request_id.clone());
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: Response<ProxyBody>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_body_is_json_by_default() {
        let id = HeaderValue::from_static("abc");
        let r = error_response(
            StatusCode::NOT_FOUND,
            "no Route matched with those values",
            &id,
            &HeaderMap::new(),
        );
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/json; charset=utf-8"
        );
        assert_eq!(
            body_of(r).await,
            r#"{"message":"no Route matched with those values","request_id":"abc"}"#
        );
    }

    #[tokio::test]
    async fn error_body_is_text_when_client_accepts_text_plain() {
        let id = HeaderValue::from_static("abc");
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("text/plain"));
        let r = error_response(StatusCode::BAD_GATEWAY, "boom", &id, &h);
        assert_eq!(body_of(r).await, "boom\nrequest_id: abc\n");
    }
}
