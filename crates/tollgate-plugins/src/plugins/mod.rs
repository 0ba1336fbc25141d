//! One module per bundled plugin: its config type (Kong's fields and
//! defaults), its field table and its cross-field rules.

pub mod acl;
pub mod acme;
pub mod basic_auth;
pub mod bot_detection;
pub mod compression;
pub mod correlation_id;
pub mod cors;
pub mod file_log;
pub mod hmac_auth;
pub mod http_log;
pub mod ip_restriction;
pub mod jwt;
pub mod key_auth;
pub mod limit_req;
pub mod mtls_auth;
pub mod oauth2;
pub mod prometheus;
pub mod proxy_cache;
pub mod rate_limiting;
pub mod request_size_limiting;
pub mod request_termination;
pub mod request_transformer;
pub mod response_transformer;
pub mod static_files;
pub mod tcp_log;
pub mod udp_log;

use crate::Problem;

/// A problem at `path` (inside config).
pub(crate) fn problem(path: &[&str], msg: impl Into<String>) -> Problem {
    (path.iter().map(|s| s.to_string()).collect(), msg.into())
}

/// Turns a list of problems into the result of a `validate` method.
pub(crate) fn result(problems: Vec<Problem>) -> Result<(), Vec<Problem>> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
