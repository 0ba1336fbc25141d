//! Tollgate's router: compiles a configuration's routes once into an
//! immutable [`Router`] and matches requests with Kong's semantics
//! (`router_flavor = traditional_compatible`, `path_handling = v0`).
//!
//! - [`normalize_path`] turns the raw request target into the path the
//!   router matches (query dropped, unreserved escapes decoded, dot segments
//!   removed, `//` merged).
//! - [`Router::new`] compiles routes; [`Router::find`] returns the best
//!   [`Match`] for a [`RequestInfo`].
//! - [`upstream_path`] builds the path sent to the service.
//!
//! Matching (details in the private `matcher`, `host` and `priority` modules):
//! every non-empty criterion of a route must hold (methods exact and
//! case-sensitive; hosts exact, `*.a.com`, `a.*`, optionally `:port`, compared
//! ASCII case-insensitively; headers by lowercased value or `~*` regex; paths
//! by byte prefix or `~` regex anchored at the start). Among matching routes
//! the highest packed priority wins (more criteria, then plain hosts, then
//! more headers, then regex over prefix, then regex_priority, then longer
//! prefix); ties go to the higher route uuid.
//!
//! Lookups use indexes built at compile time (by host, then by path prefix
//! or a regex set), so the cost depends on the request, not on the number of
//! routes — except for routes told apart only by methods or headers, which
//! are scanned in priority order.
//!
//! Routes' `protocols`, `snis` and https redirects are not the router's
//! business: the proxy checks them on the matched route, as Kong does.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod host;
mod index;
mod matcher;
mod normalize;
mod path_join;
mod priority;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use tollgate_model::Route;

pub use normalize::normalize_path;
pub use path_join::upstream_path;

/// What the router looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// Request method, as sent (e.g. `GET`).
    pub method: &'a str,
    /// Host as sent, without the port (any ASCII case).
    pub host: &'a str,
    /// The port the request arrived on (listener port).
    pub port: u16,
    /// The request path, already normalised by [`normalize_path`] (no query).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

/// Capture groups of the regex path that matched (Kong's `uri_captures`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriCaptures {
    /// Groups by number: `[0]` is the whole match, `[n]` group `n`, `None`
    /// for a group that did not take part in the match.
    pub positional: Vec<Option<String>>,
    /// Named groups that took part in the match, in pattern order.
    pub named: Vec<(String, String)>,
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the matched route in the slice given to [`Router::new`].
    pub route: usize,
    /// Number of leading bytes of the normalised path that the route matched
    /// (prefix length, or whole regex match); stripped when `strip_path` is on.
    /// 0 when the route has no paths.
    pub matched_len: usize,
    /// Captures of the matching regex path, as Kong exposes them: present
    /// only when the regex has capture groups and group 1 took part.
    pub uri_captures: Option<UriCaptures>,
}

/// Compiled routes: immutable, cheap to share between threads.
#[derive(Debug, Default)]
pub struct Router {
    /// Matchers sorted by rank (priority then tie-break id, best first).
    matchers: Vec<matcher::Matcher>,
    index: index::Index,
    routes: usize,
}

/// A route that cannot be compiled (e.g. a bad regex).
#[derive(Debug, thiserror::Error)]
#[error("route {route}: {message}")]
pub struct RouterError {
    /// Index of the route.
    pub route: usize,
    /// What is wrong.
    pub message: String,
}

impl Router {
    /// Compiles routes (only those whose service is enabled should be passed).
    ///
    /// Fails on the first route with an invalid path or header regex, an
    /// invalid header name, or a header without values.
    pub fn new(routes: &[Route]) -> Result<Router, RouterError> {
        let mut matchers = Vec::with_capacity(routes.len());
        for (i, route) in routes.iter().enumerate() {
            matchers.extend(matcher::compile(i, route)?);
        }
        if u32::try_from(matchers.len()).map_or(true, |n| n == u32::MAX) {
            return Err(RouterError {
                route: routes.len().saturating_sub(1),
                message: "too many routes".to_owned(),
            });
        }
        matchers.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| b.tie.cmp(&a.tie))
                .then_with(|| a.route.cmp(&b.route))
        });
        let index = index::Index::build(&matchers);
        Ok(Router {
            matchers,
            index,
            routes: routes.len(),
        })
    }

    /// Finds the best route for a request.
    pub fn find(&self, req: &RequestInfo<'_>) -> Option<Match> {
        let host_lc: Cow<'_, str> = if req.host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(req.host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(req.host)
        };
        let best = self.index.find(&self.matchers, req, &host_lc);
        let hit = best.hit?;
        let m = self.matchers.get(best.rank as usize)?;
        Some(Match {
            route: m.route,
            matched_len: hit.matched_len,
            uri_captures: hit.captures,
        })
    }

    /// Number of routes compiled.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether no routes were compiled (every lookup then fails).
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }
}
