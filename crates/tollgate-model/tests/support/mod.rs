//! Helpers shared by the declarative tests.
#![allow(dead_code)]

use tollgate_model::declarative::parse_str;
use tollgate_model::{Config, ConfigError};

/// Parses YAML that must be valid.
pub fn ok(yaml: &str) -> Config {
    match parse_str(yaml, "kong.yml") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// Parses YAML that must be invalid; returns the error text.
pub fn err(yaml: &str) -> String {
    match parse_str(yaml, "kong.yml") {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e.to_string(),
    }
}

/// Parses YAML that must be invalid; returns the error.
pub fn error(yaml: &str) -> ConfigError {
    match parse_str(yaml, "kong.yml") {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e,
    }
}

/// Asserts that `text` has a line equal to `line`, or starting with it.
#[track_caller]
pub fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line || l.starts_with(line)),
        "no line starting with\n  {line}\nin\n{text}"
    );
}
