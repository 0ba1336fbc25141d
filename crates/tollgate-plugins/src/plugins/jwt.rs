//! `jwt`: config schema.

use serde::{Deserialize, Serialize};

use super::{problem, result};
use crate::schema::{field, Bound, Field, PluginSchema, Ty, STRINGS};
use crate::Problem;

/// A registered claim the plugin can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    /// Expiration time.
    Exp,
    /// Not before.
    Nbf,
}

/// `jwt` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Query parameters holding the token (["jwt"]).
    pub uri_param_names: Vec<String>,
    /// Cookies holding the token ([]).
    pub cookie_names: Vec<String>,
    /// Headers holding the token (["authorization"]).
    pub header_names: Vec<String>,
    /// Claims to verify.
    pub claims_to_verify: Option<Vec<Claim>>,
    /// Claim naming the credential key ("iss").
    pub key_claim_name: String,
    /// The secret is base64-encoded (false).
    pub secret_is_base64: bool,
    /// Consumer (id or username) to use when authentication fails.
    pub anonymous: Option<String>,
    /// Authenticate OPTIONS preflights too (true).
    pub run_on_preflight: bool,
    /// Maximum token lifetime in seconds; 0 disables (0).
    pub maximum_expiration: i64,
    /// Realm for `WWW-Authenticate`.
    pub realm: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            uri_param_names: vec!["jwt".to_string()],
            cookie_names: Vec::new(),
            header_names: vec!["authorization".to_string()],
            claims_to_verify: None,
            key_claim_name: "iss".to_string(),
            secret_is_base64: false,
            anonymous: None,
            run_on_preflight: true,
            maximum_expiration: 0,
            realm: None,
        }
    }
}

impl PluginSchema for JwtConfig {
    fn runtime(
        plugin: &tollgate_model::Plugin,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        env: &crate::runtime::PluginEnv,
    ) -> Option<std::sync::Arc<dyn crate::runtime::Plugin>> {
        Jwt::new(&plugin.config, dir, env)
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn crate::runtime::Plugin>)
    }

    const NAME: &'static str = "jwt";
    const PRIORITY: i32 = 1450;
    const FIELDS: &'static [Field] = &[
        field("uri_param_names", STRINGS),
        field("cookie_names", STRINGS),
        field("header_names", STRINGS),
        field("claims_to_verify", Ty::Array(&Ty::OneOf(&["exp", "nbf"]))),
        field("key_claim_name", Ty::Str),
        field("secret_is_base64", Ty::Bool),
        field("anonymous", Ty::Str),
        field("run_on_preflight", Ty::Bool),
        field(
            "maximum_expiration",
            Ty::Int(Bound::Between(0.0, 31536000.0)),
        ),
        field("realm", Ty::Str),
    ];

    fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let has_exp = self
            .claims_to_verify
            .as_ref()
            .is_some_and(|c| c.contains(&Claim::Exp));
        if self.maximum_expiration > 0 && !has_exp {
            problems.push(problem(&["claims_to_verify"], "expected to contain: exp"));
        }
        result(problems)
    }
}

/// The jwt plugin at run time.
#[derive(Debug)]
pub struct Jwt {
    config: JwtConfig,
    headers: Vec<http::HeaderName>,
    dir: std::sync::Arc<crate::runtime::Directory>,
    fetcher: std::sync::Arc<dyn crate::runtime::Fetcher>,
    /// Distinguishes this instance (and so this snapshot's keys) in the
    /// verified-signature cache; never reused.
    instance: u64,
}

static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A token this worker already verified, with what later requests need.
struct Checked {
    /// The plugin instance (so this snapshot's credentials) it was checked by.
    instance: u64,
    /// The key set generation its signature was checked against (JWKS).
    generation: u64,
    /// The credential key (the `iss` or configured claim).
    key: Box<str>,
    /// The key as `X-Credential-Identifier`.
    key_value: Option<http::HeaderValue>,
    /// `exp` and `nbf`, when numbers.
    exp: Option<f64>,
    nbf: Option<f64>,
}

/// Most tokens remembered per worker (each holds its token text).
const CHECKED_MAX: usize = 10_000;

thread_local! {
    /// Tokens whose signature this worker already verified, by their full
    /// text: signature checks and JSON decoding run once per token, not per
    /// request. Claims (exp, nbf, …) are still checked on every request.
    /// Hashed with foldhash (seeded per worker): tokens are long, and a
    /// collision costs only time, as keys are compared in full.
    static CHECKED: std::cell::RefCell<
        std::collections::HashMap<Box<str>, Checked, foldhash::fast::RandomState>,
    > = std::cell::RefCell::new(std::collections::HashMap::with_hasher(
        foldhash::fast::RandomState::default(),
    ));
}

/// Why a token was refused (Kong's messages).
fn unauthorized(message: &str) -> Fail {
    Fail::Answer(crate::runtime::EarlyResponse::message(
        http::StatusCode::UNAUTHORIZED,
        message,
    ))
}

/// A refused claim, as Kong answers it: `{"<claim>": "<why>"}`.
fn claim_refused(claim: &str, why: &str) -> Fail {
    Fail::Answer(crate::runtime::EarlyResponse::json(
        http::StatusCode::UNAUTHORIZED,
        &serde_json::json!({ claim: why }),
    ))
}

/// An accepted token: its consumer, credential id and `X-Credential-Identifier`.
type Verified = (
    std::sync::Arc<crate::runtime::ConsumerInfo>,
    uuid::Uuid,
    Option<http::HeaderValue>,
);

/// Why a token was not accepted (yet).
enum Fail {
    /// Refused with this answer.
    Answer(crate::runtime::EarlyResponse),
    /// The credential's key set must be fetched first (generation seen).
    Fetch(std::sync::Arc<crate::runtime::KeySet>, u64),
}

impl Jwt {
    /// Builds the instance from a validated config.
    pub fn new(
        config: &serde_json::Value,
        dir: &std::sync::Arc<crate::runtime::Directory>,
        env: &crate::runtime::PluginEnv,
    ) -> Option<Self> {
        let config: JwtConfig = serde_json::from_value(config.clone()).ok()?;
        let headers = config
            .header_names
            .iter()
            .filter_map(|n| http::HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        Some(Jwt {
            config,
            headers,
            dir: dir.clone(),
            fetcher: env.fetcher.clone(),
            instance: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The token from the query, cookies or headers (`Bearer ` stripped).
    fn token(&self, ctx: &crate::runtime::AccessCtx<'_>) -> Option<String> {
        let query = ctx.uri.query().unwrap_or("");
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if self.config.uri_param_names.iter().any(|n| n == k) && !v.is_empty() {
                    return Some(v.to_owned());
                }
            }
        }
        if !self.config.cookie_names.is_empty() {
            for cookies in ctx.headers.get_all(http::header::COOKIE) {
                let Ok(cookies) = cookies.to_str() else {
                    continue;
                };
                for c in cookies.split(';') {
                    if let Some((k, v)) = c.trim().split_once('=') {
                        if self.config.cookie_names.iter().any(|n| n == k) && !v.is_empty() {
                            return Some(v.to_owned());
                        }
                    }
                }
            }
        }
        for h in &self.headers {
            if let Some(v) = ctx.headers.get(h).and_then(|v| v.to_str().ok()) {
                let v = v.trim();
                let token = match v.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => v,
                };
                if !token.is_empty() {
                    return Some(token.to_owned());
                }
            }
        }
        None
    }

    fn verify(&self, token: &str, retried: bool) -> Result<Verified, Fail> {
        // A token this worker already verified for this instance (and, for
        // JWKS credentials, against the same key set): claims only.
        let hit = CHECKED.with(|c| {
            c.borrow()
                .get(token)
                .filter(|h| h.instance == self.instance)
                .map(|h| {
                    (
                        h.key.clone(),
                        h.key_value.clone(),
                        h.generation,
                        h.exp,
                        h.nbf,
                    )
                })
        });
        if let Some((key, key_value, generation, exp, nbf)) = hit {
            if let Some((cred, consumer)) = self.dir.jwt(&key) {
                let current = cred.jwks.as_ref().map_or(0, |s| s.generation());
                if current == generation {
                    self.check_claims(exp, nbf)?;
                    return Ok((consumer, cred.id, key_value));
                }
            }
        }
        self.verify_fully(token, retried)
    }

    /// Claims checked on every request (`claims_to_verify`, `maximum_expiration`).
    fn check_claims(&self, exp: Option<f64>, nbf: Option<f64>) -> Result<(), Fail> {
        let now = crate::runtime::epoch_secs();
        for c in self.config.claims_to_verify.iter().flatten() {
            match c {
                Claim::Exp => match exp {
                    Some(exp) if (now as f64) < exp => {}
                    Some(_) => return Err(claim_refused("exp", "token expired")),
                    None => return Err(claim_refused("exp", "must be a number")),
                },
                Claim::Nbf => match nbf {
                    Some(nbf) if (now as f64) >= nbf => {}
                    Some(_) => return Err(claim_refused("nbf", "token not valid yet")),
                    None => return Err(claim_refused("nbf", "must be a number")),
                },
            }
        }
        if self.config.maximum_expiration > 0 {
            match exp {
                Some(exp) if exp - (now as f64) <= self.config.maximum_expiration as f64 => {}
                Some(_) => return Err(claim_refused("exp", "exceeds maximum allowed expiration")),
                None => return Err(claim_refused("exp", "must be a number")),
            }
        }
        Ok(())
    }

    /// Decodes the token, checks its algorithm and signature, remembers it.
    fn verify_fully(&self, token: &str, retried: bool) -> Result<Verified, Fail> {
        use base64::Engine;
        use jsonwebtoken::{Algorithm as A, DecodingKey, Validation};
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("Bad token; invalid JSON"))?;
        let payload = token
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| unauthorized("Bad token; invalid JSON"))?;
        let claim = &self.config.key_claim_name;
        let key = payload
            .get(claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| unauthorized(&format!("No mandatory '{claim}' in claims")))?;
        let (cred, consumer) = self
            .dir
            .jwt(key)
            .ok_or_else(|| unauthorized(&format!("No credentials found for given '{claim}'")))?;
        // The header's alg must be the credential's: no `none`, no HS/RS confusion.
        if header.alg != cred.algorithm {
            return Err(unauthorized("Invalid algorithm"));
        }
        let owned;
        let jwks_keys;
        let mut generation = 0;
        let keys: Vec<&DecodingKey> = match (&cred.jwks, cred.algorithm) {
            (Some(set), alg) => {
                let current = set.keys();
                let found = current
                    .candidates(header.kid.as_deref(), alg)
                    .next()
                    .is_some();
                if !retried && (current.stale() || !found) {
                    return Err(Fail::Fetch(set.clone(), current.generation));
                }
                generation = current.generation;
                jwks_keys = current;
                let keys: Vec<&DecodingKey> = jwks_keys
                    .candidates(header.kid.as_deref(), alg)
                    .map(|k| &k.key)
                    .collect();
                if keys.is_empty() {
                    return Err(unauthorized("Invalid key/secret"));
                }
                keys
            }
            (None, A::HS256 | A::HS384 | A::HS512) => {
                // Never verify against an empty key: anyone could sign.
                let secret = cred
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| unauthorized("Invalid key/secret"))?;
                owned = if self.config.secret_is_base64 {
                    DecodingKey::from_base64_secret(secret)
                        .map_err(|_| unauthorized("Invalid key/secret"))?
                } else {
                    DecodingKey::from_secret(secret.as_bytes())
                };
                vec![&owned]
            }
            (None, _) => vec![cred
                .public_key
                .as_ref()
                .ok_or_else(|| unauthorized("Invalid key/secret"))?],
        };
        let mut validation = Validation::new(cred.algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let good = keys
            .iter()
            .any(|k| jsonwebtoken::decode::<serde_json::Value>(token, k, &validation).is_ok());
        if !good {
            return Err(unauthorized("Invalid signature"));
        }
        let number = |name: &str| payload.get(name).and_then(serde_json::Value::as_f64);
        let (exp, nbf) = (number("exp"), number("nbf"));
        let key_value = http::HeaderValue::from_str(key).ok();
        CHECKED.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CHECKED_MAX {
                c.clear();
            }
            c.insert(
                token.into(),
                Checked {
                    instance: self.instance,
                    generation,
                    key: key.into(),
                    key_value: key_value.clone(),
                    exp,
                    nbf,
                },
            );
        });
        self.check_claims(exp, nbf)?;
        Ok((consumer, cred.id, key_value))
    }
}

impl crate::runtime::Plugin for Jwt {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn priority(&self) -> i32 {
        1450
    }

    fn access(&self, ctx: &mut crate::runtime::AccessCtx<'_>) -> crate::runtime::Flow {
        use crate::runtime::{Flow, Identity};
        if !self.config.run_on_preflight && ctx.method == http::Method::OPTIONS {
            return Flow::Continue;
        }
        if crate::runtime::skip_auth(ctx, self.config.anonymous.as_deref()) {
            return Flow::Continue;
        }
        let outcome = match self.token(ctx) {
            Some(t) => self.verify(&t, ctx.retried),
            None => Err(unauthorized("Unauthorized")),
        };
        let outcome = match outcome {
            Err(Fail::Fetch(set, seen)) => {
                return Flow::Retry(set.refresh(self.fetcher.clone(), seen));
            }
            Err(Fail::Answer(a)) => Err(a),
            Ok(ok) => Ok(ok),
        };
        let failure = match outcome {
            Ok((consumer, cred, key)) => {
                let identity = Identity {
                    consumer,
                    credential: Some(cred),
                    identifier: key,
                    anonymous: false,
                };
                return crate::runtime::authenticate(ctx, identity);
            }
            Err(e) => e,
        };
        crate::runtime::reject(ctx, self.config.anonymous.as_deref(), &self.dir, failure)
    }
}
