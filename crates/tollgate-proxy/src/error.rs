//! The one proxy error type and its mapping to an HTTP answer.
//!
//! Every failure on the request path becomes a [`ProxyError`]; [`ProxyError::status`]
//! and [`ProxyError::message`] are the single place where a failure is turned into
//! what the client sees (Kong's statuses and messages).

use http::StatusCode;

/// Which side of the proxy a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something we refuse.
    Downstream,
    /// The backend failed or misbehaved.
    Upstream,
    /// Tollgate itself.
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No route matched the request.
    NoRoute,
    /// The matched route has no service.
    NoService,
    /// The request is malformed or ambiguous (smuggling guard).
    BadRequest,
    /// The request target is longer than allowed.
    UriTooLong,
    /// The request head has too many or too large header fields.
    HeadersTooLarge,
    /// The request body exceeds the allowed size.
    BodyTooLarge,
    /// Could not connect to any backend.
    ConnectFailed,
    /// Connecting took longer than the service's connect_timeout.
    ConnectTimeout,
    /// The backend did not answer within read_timeout.
    ReadTimeout,
    /// The backend's answer was not valid HTTP.
    BadResponse,
    /// The backend host name could not be resolved.
    NameResolution,
    /// No healthy target in the upstream.
    NoPeer,
    /// Every usable target is at its circuit-breaker limit.
    Overloaded,
}

/// A failure on the request path.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?} ({fault:?}): {context}")]
pub struct ProxyError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Whose fault it is.
    pub fault: Fault,
    /// Whether trying another connection/target is safe.
    pub retryable: bool,
    /// Detail for the error log (never shown to the client).
    pub context: String,
}

impl ProxyError {
    /// Builds an error; fault and retryability follow from the kind.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        let (fault, retryable) = match kind {
            ErrorKind::NoRoute
            | ErrorKind::BadRequest
            | ErrorKind::UriTooLong
            | ErrorKind::HeadersTooLarge
            | ErrorKind::BodyTooLarge => (Fault::Downstream, false),
            ErrorKind::NoService => (Fault::Internal, false),
            ErrorKind::ConnectFailed | ErrorKind::ConnectTimeout | ErrorKind::NameResolution => {
                (Fault::Upstream, true)
            }
            ErrorKind::NoPeer | ErrorKind::Overloaded => (Fault::Upstream, false),
            ErrorKind::ReadTimeout | ErrorKind::BadResponse => (Fault::Upstream, false),
        };
        ProxyError {
            kind,
            fault,
            retryable,
            context: context.into(),
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::NoService => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::ConnectFailed | ErrorKind::BadResponse => StatusCode::BAD_GATEWAY,
            ErrorKind::ConnectTimeout | ErrorKind::ReadTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::NameResolution | ErrorKind::NoPeer | ErrorKind::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The message the client gets (Kong's wording).
    pub fn message(&self) -> &'static str {
        match self.kind {
            ErrorKind::NoRoute => "no Route matched with those values",
            ErrorKind::NoService => "no Service found with those values",
            ErrorKind::BadRequest => "Bad request",
            ErrorKind::UriTooLong => "Request-URI Too Large",
            ErrorKind::HeadersTooLarge => "Request Header Or Cookie Too Large",
            ErrorKind::BodyTooLarge => "Request size limit exceeded",
            ErrorKind::ConnectFailed | ErrorKind::BadResponse => {
                "An invalid response was received from the upstream server"
            }
            ErrorKind::ConnectTimeout | ErrorKind::ReadTimeout => {
                "The upstream server is timing out"
            }
            ErrorKind::NameResolution => "name resolution failed",
            ErrorKind::NoPeer => "failure to get a peer from the ring-balancer",
            ErrorKind::Overloaded => "The upstream server is overloaded",
        }
    }

    /// Whether the client connection must be closed after the answer
    /// (ambiguous framing: the rest of the stream cannot be trusted).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::BadRequest
                | ErrorKind::BodyTooLarge
                | ErrorKind::HeadersTooLarge
                | ErrorKind::UriTooLong
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failure_is_502_and_retryable() {
        let e = ProxyError::new(ErrorKind::ConnectFailed, "refused");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(e.retryable);
    }

    #[test]
    fn read_timeout_is_504_and_not_retryable() {
        let e = ProxyError::new(ErrorKind::ReadTimeout, "slow");
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(!e.retryable);
    }
}
