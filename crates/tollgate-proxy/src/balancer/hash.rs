//! The consistent-hashing key of a request (`hash_on` / `hash_fallback`).

use super::ring::stable_hash;
use http::{header, HeaderMap, HeaderValue, Uri};
use std::net::IpAddr;
use tollgate_model::HashOn;
use uuid::Uuid;

/// What a hash key can be read from.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    /// The client's request headers.
    pub headers: &'a HeaderMap,
    /// The client's request target.
    pub uri: &'a Uri,
    /// The client's address (after real-IP resolution).
    pub client_ip: IpAddr,
    /// The authenticated consumer.
    pub consumer: Option<Uuid>,
    /// The route's named regex captures.
    pub captures: &'a [(String, String)],
}

/// A request's hash key, and the cookie to set when `hash_on: cookie`
/// found none (the client keeps it, so it sticks to the same target).
#[derive(Debug, Default)]
pub struct HashKey {
    /// The hash, when a key was found.
    pub hash: Option<u64>,
    /// A `Set-Cookie` value for the answer.
    pub set_cookie: Option<HeaderValue>,
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

/// The value of query argument `name`.
fn query_arg<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The hash of what `spec` names, if the request has it.
fn one(spec: &HashOn, input: &HashInput<'_>) -> Option<u64> {
    let h = |s: &[u8]| Some(stable_hash(&[s]));
    match spec {
        HashOn::None | HashOn::Cookie { .. } => None,
        HashOn::Consumer => h(input.consumer?.as_bytes()),
        HashOn::Ip => match input.client_ip {
            IpAddr::V4(a) => h(&a.octets()),
            IpAddr::V6(a) => h(&a.octets()),
        },
        HashOn::Header(name) => {
            // Repeated headers hash as their comma-joined value.
            let mut values = input.headers.get_all(name.as_str()).iter();
            let first = values.next()?;
            let mut joined = first.as_bytes().to_vec();
            for v in values {
                joined.extend_from_slice(b",");
                joined.extend_from_slice(v.as_bytes());
            }
            h(&joined)
        }
        HashOn::Path => h(input.uri.path().as_bytes()),
        HashOn::QueryArg(name) => h(query_arg(input.uri, name)?.as_bytes()),
        HashOn::UriCapture(name) => h(input.captures.iter().find(|(k, _)| k == name)?.1.as_bytes()),
    }
}

/// The request's key for `hash_on`, else `hash_fallback`.
pub fn key(on: &HashOn, fallback: &HashOn, input: &HashInput<'_>) -> HashKey {
    if let HashOn::Cookie { name, path } = on {
        if let Some(v) = cookie(input.headers, name) {
            return HashKey {
                hash: Some(stable_hash(&[v.as_bytes()])),
                set_cookie: None,
            };
        }
        let value = Uuid::new_v4().to_string();
        return HashKey {
            hash: Some(stable_hash(&[value.as_bytes()])),
            set_cookie: HeaderValue::from_str(&format!("{name}={value}; Path={path}")).ok(),
        };
    }
    HashKey {
        hash: one(on, input).or_else(|| one(fallback, input)),
        set_cookie: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn input<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> HashInput<'a> {
        HashInput {
            headers,
            uri,
            client_ip: IpAddr::from([127, 0, 0, 1]),
            consumer: None,
            captures: &[],
        }
    }

    #[test]
    fn falls_back_when_the_header_is_missing() {
        let headers = HeaderMap::new();
        let uri: Uri = "/a?user=7".parse().unwrap();
        let k = key(
            &HashOn::Header("x-user".into()),
            &HashOn::QueryArg("user".into()),
            &input(&headers, &uri),
        );
        assert_eq!(k.hash, Some(stable_hash(&[b"7"])));
    }

    #[test]
    fn a_missing_cookie_is_made_up_and_set() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/".parse().unwrap();
        let spec = HashOn::Cookie {
            name: "sticky".into(),
            path: "/api".into(),
        };
        let k = key(&spec, &HashOn::None, &input(&headers, &uri));
        let set = k.set_cookie.unwrap();
        let value = set.to_str().unwrap().to_owned();
        assert!(value.starts_with("sticky=") && value.ends_with("; Path=/api"));
        let pair = value.split(';').next().unwrap().to_owned();
        headers.insert(header::COOKIE, format!("a=b; {pair}").parse().unwrap());
        let again = key(&spec, &HashOn::None, &input(&headers, &uri));
        assert_eq!(again.hash, k.hash);
        assert!(again.set_cookie.is_none());
    }
}
