//! `hmac-auth`: config schema.

use serde::{Deserialize, Serialize};

use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};

/// The signature algorithms `hmac-auth` knows.
pub const ALGORITHMS: &[&str] = &["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// `hmac-auth` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HmacAuthConfig {
    /// Remove the credential before proxying (false).
    pub hide_credentials: bool,
    /// Allowed clock skew in seconds (300).
    pub clock_skew: f64,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Check the `Digest` header against the body (false).
    pub validate_request_body: bool,
    /// Headers the signature must cover ([]).
    pub enforce_headers: Vec<String>,
    /// Accepted algorithms (all four).
    pub algorithms: Vec<String>,
    /// Realm for `WWW-Authenticate`.
    pub realm: Option<String>,
}

impl Default for HmacAuthConfig {
    fn default() -> Self {
        Self {
            hide_credentials: false,
            clock_skew: 300.0,
            anonymous: None,
            validate_request_body: false,
            enforce_headers: Vec::new(),
            algorithms: ALGORITHMS.iter().map(|a| a.to_string()).collect(),
            realm: None,
        }
    }
}

impl PluginSchema for HmacAuthConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        _env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        HmacAuth::new(&plugin.config, dir)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "hmac-auth";
    const PRIORITY: i32 = 1030;
    const FIELDS: &'static [Field] = &[
        field("hide_credentials", Ty::Bool),
        field("clock_skew", Ty::Num(Bound::Gt(0.0))),
        field("anonymous", Ty::Str),
        field("validate_request_body", Ty::Bool),
        field("enforce_headers", STRINGS),
        field("algorithms", Ty::Array(&Ty::OneOf(ALGORITHMS))),
        field("realm", Ty::Str),
    ];
}

/// The hmac-auth plugin at run time (Kong's `Authorization: hmac username=…,
/// algorithm=…, headers=…, signature=…` format).
#[derive(Debug)]
pub struct HmacAuth {
    config: HmacAuthConfig,
    dir: std::sync::Arc<crate::runtime::Directory>,
}

/// The parsed `hmac` credentials of a request.
#[derive(Debug, PartialEq)]
struct Params {
    username: String,
    algorithm: String,
    headers: Vec<String>,
    signature: String,
}

fn parse_params(value: &str) -> Option<Params> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("hmac") {
        return None;
    }
    let mut p = Params {
        username: String::new(),
        algorithm: String::new(),
        headers: Vec::new(),
        signature: String::new(),
    };
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim() {
            "username" => p.username = v,
            "algorithm" => p.algorithm = v.to_ascii_lowercase(),
            "headers" => p.headers = v.split_whitespace().map(str::to_ascii_lowercase).collect(),
            "signature" => p.signature = v,
            _ => {}
        }
    }
    (!p.username.is_empty() && !p.signature.is_empty() && !p.algorithm.is_empty()).then_some(p)
}

fn mac(algorithm: &str, secret: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    use hmac::{Hmac, Mac};
    fn run<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(secret).ok()?;
        m.update(data);
        Some(m.finalize().into_bytes().to_vec())
    }
    match algorithm {
        "hmac-sha1" => run::<Hmac<sha1::Sha1>>(secret, data),
        "hmac-sha256" => run::<Hmac<sha2::Sha256>>(secret, data),
        "hmac-sha384" => run::<Hmac<sha2::Sha384>>(secret, data),
        "hmac-sha512" => run::<Hmac<sha2::Sha512>>(secret, data),
        _ => None,
    }
}

/// Parses an HTTP date (IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`) to epoch seconds.
fn http_date(s: &str) -> Option<i64> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?;
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

impl HmacAuth {
    /// Builds the instance from a validated config.
    pub fn new(
        config: &serde_json::Value,
        dir: &std::sync::Arc<crate::runtime::Directory>,
    ) -> Option<Self> {
        let config: HmacAuthConfig = serde_json::from_value(config.clone()).ok()?;
        Some(HmacAuth {
            config,
            dir: dir.clone(),
        })
    }

    fn check(
        &self,
        ctx: &crate::runtime::AccessCtx<'_>,
    ) -> Result<
        (
            std::sync::Arc<crate::runtime::ConsumerInfo>,
            uuid::Uuid,
            http::HeaderName,
            String,
        ),
        &'static str,
    > {
        use base64::Engine;
        let (header, params) = [
            http::header::AUTHORIZATION,
            http::header::PROXY_AUTHORIZATION,
        ]
        .into_iter()
        .find_map(|h| {
            let v = ctx.headers.get(&h)?.to_str().ok()?;
            Some((h, v.to_owned()))
        })
        .ok_or("Unauthorized")?;
        let params = parse_params(&params).ok_or("HMAC signature cannot be verified")?;
        // A fresh Date or X-Date is required (replay window = clock_skew).
        let now = crate::runtime::epoch_secs();
        let date = ["x-date", "date"].iter().find_map(|h| {
            ctx.headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .and_then(http_date)
        });
        match date {
            Some(d) if ((now - d).abs() as f64) <= self.config.clock_skew => {}
            _ => {
                return Err(
                    "HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication",
                )
            }
        }
        if !self.config.algorithms.contains(&params.algorithm) {
            return Err("HMAC signature does not match");
        }
        if self
            .config
            .enforce_headers
            .iter()
            .any(|h| !params.headers.contains(&h.to_ascii_lowercase()))
        {
            return Err("HMAC signature does not match");
        }
        let (consumer, cred, secret) = self
            .dir
            .hmac(&params.username)
            .ok_or("HMAC signature does not match")?;
        let mut lines = Vec::with_capacity(params.headers.len());
        for name in &params.headers {
            let target = ctx.uri.path_and_query().map_or("/", |p| p.as_str());
            if name == "request-line" {
                lines.push(format!("{} {} HTTP/1.1", ctx.method, target));
            } else if name == "@request-target" {
                let method = ctx.method.as_str().to_ascii_lowercase();
                lines.push(format!("{name}: {method} {target}"));
            } else {
                let v = ctx
                    .headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .ok_or("HMAC signature does not match")?;
                lines.push(format!("{name}: {v}"));
            }
        }
        let expected = mac(
            &params.algorithm,
            secret.as_bytes(),
            lines.join("\n").as_bytes(),
        )
        .ok_or("HMAC signature does not match")?;
        let given = base64::engine::general_purpose::STANDARD
            .decode(params.signature.as_bytes())
            .map_err(|_| "HMAC signature does not match")?;
        if !crate::runtime::constant_time_eq(&expected, &given) {
            return Err("HMAC signature does not match");
        }
        if self.config.validate_request_body && !body_matches_digest(ctx) {
            return Err("HMAC signature does not match");
        }
        Ok((consumer, cred, header, params.username))
    }
}

/// Kong's body check: the `Digest` header must be `SHA-256=<base64 of the
/// body's SHA-256>`; without a `Digest` header only an empty body passes.
fn body_matches_digest(ctx: &crate::runtime::AccessCtx<'_>) -> bool {
    use base64::Engine;
    use sha2::Digest;
    let body = ctx.body.as_deref().unwrap_or_default();
    let Some(given) = ctx.headers.get("digest") else {
        return body.is_empty();
    };
    let expected = format!(
        "SHA-256={}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
    );
    crate::runtime::constant_time_eq(expected.as_bytes(), given.as_bytes())
}

impl crate::runtime::Plugin for HmacAuth {
    fn name(&self) -> &'static str {
        "hmac-auth"
    }

    fn priority(&self) -> i32 {
        1030
    }

    fn wants_body(&self, _method: &http::Method, _headers: &http::HeaderMap) -> bool {
        self.config.validate_request_body
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{EarlyResponse, Flow, Identity};
        if crate::runtime::skip_auth(ctx, self.config.anonymous.as_deref()) {
            return Flow::Continue;
        }
        let failure = match self.check(ctx) {
            Ok((consumer, cred, header, username)) => {
                if self.config.hide_credentials {
                    ctx.headers.remove(header);
                }
                let identity = Identity {
                    consumer,
                    credential: Some(cred),
                    identifier: http::HeaderValue::from_str(&username).ok(),
                    anonymous: false,
                };
                return crate::runtime::authenticate(ctx, identity);
            }
            Err(m) => m,
        };
        let failure = EarlyResponse::message(http::StatusCode::UNAUTHORIZED, failure);
        crate::runtime::reject(ctx, self.config.anonymous.as_deref(), &self.dir, failure)
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[test]
    fn authorization_parameters_are_parsed() {
        let p = parse_params(r#"hmac username="alice", algorithm="hmac-sha256", headers="date request-line", signature="abc=""#).unwrap();
        assert_eq!(p.username, "alice");
        assert_eq!(p.headers, vec!["date", "request-line"]);
        assert_eq!(p.signature, "abc=");
        assert!(parse_params("Basic abc").is_none());
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn hmac_sha256_matches_a_known_vector() {
        // RFC 4231 test case 2.
        let m = mac("hmac-sha256", b"Jefe", b"what do ya want for nothing?").unwrap();
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
