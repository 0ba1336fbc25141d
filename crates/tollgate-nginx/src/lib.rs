//! The nginx front door: `tollgate run --nginx-conf FILE`.
//!
//! This crate reads nginx's configuration syntax into a tree of
//! [`Directive`]s, each knowing the file and line it was written on, with
//! `include` resolved (globs relative to the main file's folder, as the
//! issue specifies). Translating the tree into Tollgate's model (servers →
//! listeners and hosts, locations → routes, `proxy_pass` → services and
//! upstreams, `limit_req` → rate limiting…) builds on it.

mod parse;
mod translate;

pub use parse::{parse_file, parse_str, ConfError, Directive};
pub use translate::{translate, Translated};

/// Reads and translates the nginx configuration in `path`.
pub fn load(path: &std::path::Path) -> Result<Translated, ConfError> {
    translate(&parse_file(path)?)
}
