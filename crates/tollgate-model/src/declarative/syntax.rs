//! Turns declarative text (JSON or YAML) into a [`serde_json::Value`], with
//! syntax errors reported as `source:line:column: message`.

use crate::ConfigError;
use serde_json::Value;

/// Generous YAML limits: a Kong file with tens of thousands of routes must
/// load, while alias bombs and absurd nesting are still refused.
const MAX_EVENTS: usize = 50_000_000;
const MAX_NODES: usize = 20_000_000;
const MAX_DEPTH: usize = 128;

/// Parses `text` as JSON when it starts with `{` (for exact error positions),
/// as YAML otherwise. JSON that fails is retried as YAML (a YAML flow mapping
/// also starts with `{`); if both fail, the JSON error is reported.
pub(crate) fn parse_value(text: &str, source: &str) -> Result<Value, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => Ok(v),
            Err(json_err) => parse_yaml(text, source).map_err(|_| json_error(&json_err, source)),
        }
    } else {
        parse_yaml(text, source)
    }
}

// Options are built with struct update syntax (older serde-saphyr releases
// lack the `options!` macro); newer releases deprecate some fields.
#[allow(deprecated)]
fn parse_yaml(text: &str, source: &str) -> Result<Value, ConfigError> {
    let budget = serde_saphyr::Budget {
        max_events: MAX_EVENTS,
        max_nodes: MAX_NODES,
        max_depth: MAX_DEPTH,
        ..Default::default()
    };
    let options = serde_saphyr::Options {
        budget: Some(budget),
        // `yes`/`on` stay strings: `strip_path: yes` is a type error, as in Kong.
        strict_booleans: true,
        with_snippet: false,
        ..Default::default()
    };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let full = e.to_string();
        let suffix = format!(" at line {line}, column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        ConfigError::Syntax {
            source_name: source.to_owned(),
            line,
            column,
            message,
        }
    })
}

fn json_error(e: &serde_json::Error, source: &str) -> ConfigError {
    let (line, column) = (e.line() as u64, e.column() as u64);
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    ConfigError::Syntax {
        source_name: source.to_owned(),
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(err: ConfigError) -> (u64, u64, String) {
        match err {
            ConfigError::Syntax {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn json_syntax_error_has_line_and_column_without_repeating_them() {
        let err = parse_value("{\n  \"a\": [1,\n  }", "f.json").unwrap_err();
        let (line, column, message) = syntax(err);
        assert_eq!(line, 3);
        assert!(column > 0);
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let err = parse_value("a:\n  - x\n - y\n", "f.yml").unwrap_err();
        let (line, column, message) = syntax(err);
        assert_eq!((line, column), (3, 2));
        assert!(!message.contains("at line"), "{message}");
    }

    #[test]
    fn yaml_flow_mapping_starting_with_brace_is_accepted() {
        let v = parse_value("{a: 1, b: [x]}", "f.yml").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][0], "x");
    }

    #[test]
    fn yaml_booleans_are_strict() {
        let v = parse_value("a: yes\nb: true\n", "f.yml").unwrap();
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], true);
    }

    #[test]
    fn yaml_duplicate_keys_are_a_syntax_error() {
        let err = parse_value("a: 1\na: 2\n", "f.yml").unwrap_err();
        assert_eq!(syntax(err).0, 2);
    }
}
