//! Request body parameters for plugins that read them (key-auth's
//! `key_in_body`, hmac-auth's digest, oauth2's token endpoint): urlencoded,
//! multipart and JSON bodies, as Kong's `kong.request.get_body()` reads them.

use http::header::CONTENT_TYPE;
use http::HeaderMap;
use serde_json::Value;
use tollgate_model::form;

/// Largest body read for plugins; a larger one is answered 413 (a decision:
/// Kong spills big bodies to a temporary file, Tollgate keeps them bounded).
pub const PLUGIN_BODY_MAX: usize = 8 * 1024 * 1024;

/// The parameters of a request body, by its content type.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyParams {
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
    /// `multipart/form-data`, with its boundary.
    Multipart(Vec<(String, String)>, String),
    /// `application/json` (an object).
    Json(serde_json::Map<String, Value>),
}

impl BodyParams {
    /// Parses `body` by the request's `Content-Type`; `None` for other media
    /// types and bodies that do not parse.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Option<BodyParams> {
        let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        match form::media_type(ct).as_str() {
            "application/json" => match serde_json::from_slice(body) {
                Ok(Value::Object(map)) => Some(BodyParams::Json(map)),
                _ => None,
            },
            "multipart/form-data" => {
                let boundary = form::multipart_boundary(ct)?;
                let pairs = form::parse_multipart(body, &boundary).ok()?;
                Some(BodyParams::Multipart(pairs, boundary))
            }
            _ => Some(BodyParams::Form(form::pairs(Some(ct), body)?.ok()?)),
        }
    }

    /// Whether a body of this content type carries parameters.
    pub fn understood(headers: &HeaderMap) -> bool {
        let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        matches!(
            form::media_type(ct).as_str(),
            "application/json" | "multipart/form-data" | "application/x-www-form-urlencoded"
        )
    }

    /// The first string value of `name` (JSON numbers and booleans too, as
    /// text; other JSON values are not parameters).
    pub fn get(&self, name: &str) -> Option<String> {
        match self {
            BodyParams::Form(p) | BodyParams::Multipart(p, _) => {
                p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            }
            BodyParams::Json(m) => match m.get(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            },
        }
    }

    /// Removes every `name` parameter; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        match self {
            BodyParams::Form(p) | BodyParams::Multipart(p, _) => {
                let before = p.len();
                p.retain(|(k, _)| k != name);
                p.len() != before
            }
            BodyParams::Json(m) => m.remove(name).is_some(),
        }
    }

    /// The body again, in its own encoding (multipart parts keep only their
    /// names and values).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            BodyParams::Form(p) => form::encode_urlencoded(p).into_bytes(),
            BodyParams::Multipart(p, boundary) => {
                let mut out = String::new();
                for (k, v) in p {
                    let name = k.replace('"', "%22");
                    out.push_str(&format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n"
                    ));
                }
                out.push_str(&format!("--{boundary}--\r\n"));
                out.into_bytes()
            }
            BodyParams::Json(m) => serde_json::to_vec(m).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn form_json_and_multipart_bodies_give_their_parameters() {
        let f = BodyParams::parse(
            &headers("application/x-www-form-urlencoded"),
            b"a=1&apikey=x%20y",
        )
        .unwrap();
        assert_eq!(f.get("apikey").as_deref(), Some("x y"));
        let j =
            BodyParams::parse(&headers("application/json"), br#"{"apikey":"k","n":3}"#).unwrap();
        assert_eq!(j.get("apikey").as_deref(), Some("k"));
        assert_eq!(j.get("n").as_deref(), Some("3"));
        let m = BodyParams::parse(
            &headers("multipart/form-data; boundary=XX"),
            b"--XX\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nm\r\n--XX--\r\n",
        )
        .unwrap();
        assert_eq!(m.get("apikey").as_deref(), Some("m"));
        assert!(BodyParams::parse(&headers("text/plain"), b"apikey=x").is_none());
    }

    #[test]
    fn removing_a_parameter_re_encodes_the_body() {
        let mut f = BodyParams::parse(
            &headers("application/x-www-form-urlencoded"),
            b"apikey=k&b=x+y%26z",
        )
        .unwrap();
        assert!(f.remove("apikey"));
        assert_eq!(f.encode(), b"b=x%20y%26z");
        let mut m = BodyParams::parse(
            &headers("multipart/form-data; boundary=XX"),
            b"--XX\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\nm\r\n--XX\r\nContent-Disposition: form-data; name=\"keep\"\r\n\r\nv\r\n--XX--\r\n",
        )
        .unwrap();
        assert!(m.remove("apikey"));
        let again =
            BodyParams::parse(&headers("multipart/form-data; boundary=XX"), &m.encode()).unwrap();
        assert_eq!(again.get("keep").as_deref(), Some("v"));
        assert_eq!(again.get("apikey"), None);
    }
}
