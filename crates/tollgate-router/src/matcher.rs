//! Compiled matchers: one per path group of a route, with the full check of
//! a request against every criterion.
//!
//! A route with several paths is split like Kong does: one matcher for all
//! its regex paths together, and one for each distinct prefix length. Within
//! a matcher the paths are alternatives; for regexes the first one that
//! matches (in configured order) decides the matched length and captures.
//!
//! Criteria, all of which must hold:
//! - methods: the request method equals one of them (case-sensitive);
//! - hosts: one of the [`HostPattern`]s matches;
//! - headers: for every configured header, one of the request's values for
//!   that header (compared ASCII-lowercased) equals one configured value
//!   (lowercased), or matches one `~*` regex (case-insensitive, unanchored).
//!   Underscores in configured header names stand for dashes, as in Kong;
//! - paths: a prefix is a byte prefix of the normalised path; a regex `~re`
//!   is compiled as `^(?:re)`, i.e. anchored at the start only. (Kong
//!   prepends a bare `^`, which leaves the later branches of a top-level `|`
//!   unanchored; we anchor every branch. Rust's regex crate accepts
//!   `(?<name>…)` itself, so Kong's rewrite to `(?P<name>…)` is not needed.)

use crate::host::{is_wildcard, HostPattern};
use crate::priority::{priority, split_id, PathGroup, PriorityInput};
use crate::{RequestInfo, RouterError, UriCaptures};
use regex::Regex;
use tollgate_model::Route;
use uuid::Uuid;

/// One accepted value of a header.
#[derive(Debug, Clone)]
enum HeaderValueRule {
    /// Equality with this lowercase value (ASCII case-insensitive).
    Exact(Box<[u8]>),
    /// A `~*` regex, case-insensitive, searched anywhere in the value.
    Regex(regex::bytes::Regex),
}

impl HeaderValueRule {
    fn matches(&self, value: &[u8]) -> bool {
        match self {
            HeaderValueRule::Exact(v) => value.eq_ignore_ascii_case(v),
            HeaderValueRule::Regex(re) => re.is_match(value),
        }
    }
}

/// A configured header: the request must carry a matching value.
#[derive(Debug, Clone)]
struct HeaderRule {
    name: http::HeaderName,
    values: Box<[HeaderValueRule]>,
}

impl HeaderRule {
    fn matches(&self, headers: &http::HeaderMap) -> bool {
        headers
            .get_all(&self.name)
            .iter()
            .any(|v| self.values.iter().any(|rule| rule.matches(v.as_bytes())))
    }
}

/// The path part of a matcher.
#[derive(Debug, Clone)]
pub(crate) enum PathRule {
    /// No paths: any path matches, with matched length 0.
    Any,
    /// Prefixes, all of the same length.
    Prefixes(Box<[Box<str>]>),
    /// Regexes, in configured order.
    Regexes(Box<[PathRegex]>),
}

/// A compiled regex path.
#[derive(Debug, Clone)]
pub(crate) struct PathRegex {
    /// `^(?:re)`.
    pub(crate) re: Regex,
    /// Bytes every match starts with (possibly empty), used for indexing.
    pub(crate) literal_prefix: Box<[u8]>,
}

/// The literal bytes every match of `pattern` must start with (the longest
/// common prefix of its extracted prefix literals; empty when unknown).
fn literal_prefix(pattern: &str) -> Box<[u8]> {
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Box::default();
    };
    let seq = regex_syntax::hir::literal::Extractor::new().extract(&hir);
    seq.longest_common_prefix()
        .map(Box::from)
        .unwrap_or_default()
}

/// The outcome of a successful full check.
#[derive(Debug)]
pub(crate) struct Hit {
    /// Matched length of the path.
    pub(crate) matched_len: usize,
    /// Regex captures, when the regex has groups and group 1 matched.
    pub(crate) captures: Option<UriCaptures>,
}

/// One path group of a route, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    /// Index of the route in the slice given to the router.
    pub(crate) route: usize,
    /// Packed priority (higher wins).
    pub(crate) priority: u64,
    /// Tie-break id (higher wins): the route id, or Kong's derived id when
    /// the route was split by path group.
    pub(crate) tie: Uuid,
    methods: Box<[Box<str>]>,
    /// Host patterns (empty: any host).
    pub(crate) hosts: Box<[HostPattern]>,
    headers: Box<[HeaderRule]>,
    /// Path alternatives.
    pub(crate) paths: PathRule,
}

/// Compiles a route into its matchers (one per path group).
pub(crate) fn compile(index: usize, route: &Route) -> Result<Vec<Matcher>, RouterError> {
    let err = |message: String| RouterError {
        route: index,
        message,
    };

    let methods: Box<[Box<str>]> = route
        .methods
        .iter()
        .map(|m| Box::from(m.as_str()))
        .collect();
    let hosts: Box<[HostPattern]> = route.hosts.iter().map(|h| HostPattern::parse(h)).collect();

    let mut headers = Vec::with_capacity(route.headers.len());
    for (name, values) in &route.headers {
        let normalised = name.replace('_', "-").to_ascii_lowercase();
        let header = http::HeaderName::from_bytes(normalised.as_bytes())
            .map_err(|e| err(format!("invalid header name {name:?}: {e}")))?;
        if values.is_empty() {
            return Err(err(format!("header {name:?} has no values")));
        }
        let mut rules = Vec::with_capacity(values.len());
        for value in values {
            let rule = match value.strip_prefix("~*") {
                Some(re) => HeaderValueRule::Regex(
                    regex::bytes::RegexBuilder::new(re)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| err(format!("header {name:?}: invalid regex {re:?}: {e}")))?,
                ),
                None => HeaderValueRule::Exact(value.to_ascii_lowercase().into_bytes().into()),
            };
            rules.push(rule);
        }
        headers.push(HeaderRule {
            name: header,
            values: rules.into(),
        });
    }
    let headers: Box<[HeaderRule]> = headers.into();

    let base = PriorityInput {
        methods: !methods.is_empty(),
        hosts: hosts.len(),
        no_wildcard_host: !route.hosts.iter().any(|h| is_wildcard(h)),
        headers: headers.len(),
        path: PathGroup::None,
        regex_priority: route.regex_priority,
    };
    let make = |group: PathGroup, paths: PathRule| {
        let tie = if route.paths.len() > 1 {
            split_id(route.id, group)
        } else {
            route.id
        };
        Matcher {
            route: index,
            priority: priority(&PriorityInput {
                path: group,
                ..base
            }),
            tie,
            methods: methods.clone(),
            hosts: hosts.clone(),
            headers: headers.clone(),
            paths,
        }
    };

    if route.paths.is_empty() {
        return Ok(vec![make(PathGroup::None, PathRule::Any)]);
    }

    let mut regexes = Vec::new();
    // (length, prefixes) in order of first appearance.
    let mut prefixes: Vec<(usize, Vec<Box<str>>)> = Vec::new();
    for path in &route.paths {
        if let Some(re) = path.strip_prefix('~') {
            let anchored = format!("^(?:{re})");
            let compiled = Regex::new(&anchored)
                .map_err(|e| err(format!("invalid regex path {path:?}: {e}")))?;
            regexes.push(PathRegex {
                re: compiled,
                literal_prefix: literal_prefix(&anchored),
            });
        } else {
            let len = path.len();
            match prefixes.iter_mut().find(|(l, _)| *l == len) {
                Some((_, group)) => {
                    if !group.iter().any(|p| **p == **path) {
                        group.push(path.as_str().into());
                    }
                }
                None => prefixes.push((len, vec![path.as_str().into()])),
            }
        }
    }

    let mut out = Vec::with_capacity(prefixes.len() + 1);
    if !regexes.is_empty() {
        out.push(make(PathGroup::Regex, PathRule::Regexes(regexes.into())));
    }
    for (len, group) in prefixes {
        out.push(make(
            PathGroup::Prefix(len),
            PathRule::Prefixes(group.into()),
        ));
    }
    Ok(out)
}

impl Matcher {
    /// Checks every criterion; `host_lc` is the request host, lowercased.
    pub(crate) fn check(&self, req: &RequestInfo<'_>, host_lc: &str) -> Option<Hit> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| **m == *req.method) {
            return None;
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(host_lc, req.port)) {
            return None;
        }
        if !self.headers.iter().all(|h| h.matches(req.headers)) {
            return None;
        }
        match &self.paths {
            PathRule::Any => Some(Hit {
                matched_len: 0,
                captures: None,
            }),
            PathRule::Prefixes(list) => list
                .iter()
                .find(|p| req.path.as_bytes().starts_with(p.as_bytes()))
                .map(|p| Hit {
                    matched_len: p.len(),
                    captures: None,
                }),
            PathRule::Regexes(list) => list.iter().find_map(|r| regex_hit(&r.re, req.path)),
        }
    }
}

/// Runs one path regex, collecting captures only when it has groups.
fn regex_hit(re: &Regex, path: &str) -> Option<Hit> {
    if re.captures_len() <= 1 {
        return re.find(path).map(|m| Hit {
            matched_len: m.end(),
            captures: None,
        });
    }
    let caps = re.captures(path)?;
    let matched_len = caps.get(0).map_or(0, |m| m.end());
    let captures = caps.get(1).map(|_| UriCaptures {
        positional: caps
            .iter()
            .map(|m| m.map(|m| m.as_str().to_owned()))
            .collect(),
        named: re
            .capture_names()
            .flatten()
            .filter_map(|name| {
                caps.name(name)
                    .map(|m| (name.to_owned(), m.as_str().to_owned()))
            })
            .collect(),
    });
    Some(Hit {
        matched_len,
        captures,
    })
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn regex_literal_prefix_is_what_every_match_starts_with() {
        assert_eq!(&*literal_prefix(r"^(?:/users/\d+)"), b"/users/");
        assert_eq!(&*literal_prefix(r"^(?:/ab?c)"), b"/a");
        assert_eq!(&*literal_prefix(r"^(?:/api/v1|/api/v2)"), b"/api/v");
        assert_eq!(&*literal_prefix(r"^(?:/a|/b)"), b"/");
        assert_eq!(&*literal_prefix(r"^(?:(?i)/abc)"), b"/");
        assert_eq!(&*literal_prefix(r"^(?:.*)"), b"");
        assert_eq!(&*literal_prefix(r"^(?:/caf\u{e9}/x)"), "/café/x".as_bytes());
    }
}
