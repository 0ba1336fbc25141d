//! Configuration errors.
//!
//! A [`ConfigError`] says where a configuration came from (its source name,
//! usually a file path) and what is wrong with it: an I/O failure, a YAML/JSON
//! syntax error with line and column, or a list of [`Issue`]s, each naming the
//! entity (by index and, when it has one, its name) and the field.

use std::fmt;

/// A configuration that cannot be accepted.
///
/// `Display` prints one line per problem, each starting with the source name:
///
/// ```text
/// kong.yml:3:7: did not find expected key
/// kong.yml: services[0] (name "a"): unknown field 'prot'
/// kong.yml: services[1] (name "orders").routes[0].paths[2]: invalid regex ...
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The source could not be read.
    #[error("{source_name}: cannot read: {error}")]
    Io {
        /// The file that could not be read.
        source_name: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// The text is not well-formed YAML or JSON.
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax {
        /// Name of the source (file path).
        source_name: String,
        /// 1-based line of the error.
        line: u64,
        /// 1-based column of the error.
        column: u64,
        /// What the parser reported.
        message: String,
    },
    /// The document is well-formed but not a valid configuration; every
    /// problem found is listed, in document order as far as possible.
    #[error("{}", DisplayIssues::new(.source_name, .issues))]
    Invalid {
        /// Name of the source (file path).
        source_name: String,
        /// The problems; never empty.
        issues: Vec<Issue>,
    },
}

impl ConfigError {
    /// The name of the source the error is about (usually a file path).
    pub fn source_name(&self) -> &str {
        match self {
            ConfigError::Io { source_name, .. }
            | ConfigError::Syntax { source_name, .. }
            | ConfigError::Invalid { source_name, .. } => source_name,
        }
    }

    /// The validation problems (empty for I/O and syntax errors).
    pub fn issues(&self) -> &[Issue] {
        match self {
            ConfigError::Invalid { issues, .. } => issues,
            _ => &[],
        }
    }
}

struct DisplayIssues<'a> {
    source_name: &'a str,
    issues: &'a [Issue],
}

impl<'a> DisplayIssues<'a> {
    fn new(source_name: &'a str, issues: &'a [Issue]) -> Self {
        DisplayIssues {
            source_name,
            issues,
        }
    }
}

impl fmt::Display for DisplayIssues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {issue}", self.source_name)?;
        }
        Ok(())
    }
}

/// One validation problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Issue {
    /// Where the problem is (empty for the document root).
    pub path: FieldPath,
    /// What is wrong, e.g. `unknown field 'prot'` or `expected an integer, got string "abc"`.
    pub message: String,
}

impl Issue {
    /// Creates an issue.
    pub fn new(path: FieldPath, message: impl Into<String>) -> Issue {
        Issue {
            path,
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A location inside a document, such as
/// `services[1] (name "orders").routes[0].paths[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<PathSegment>,
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A field of an object.
    Field(String),
    /// An element of an array; entities carry a label such as `name "orders"`.
    Index {
        /// 0-based position in the array.
        index: usize,
        /// How the element is known, e.g. `name "orders"` or `target "a:80"`.
        label: Option<String>,
    },
}

impl FieldPath {
    /// The document root.
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// True for the document root.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The steps, outermost first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    /// This path extended by an object field.
    pub fn field(&self, name: &str) -> FieldPath {
        let mut p = self.clone();
        p.segments.push(PathSegment::Field(name.to_owned()));
        p
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut p = self.clone();
        p.segments.push(PathSegment::Index { index, label: None });
        p
    }

    /// This path extended by an array index with a label (an entity's name).
    pub fn entity(&self, index: usize, label: Option<String>) -> FieldPath {
        let mut p = self.clone();
        p.segments.push(PathSegment::Index { index, label });
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                PathSegment::Field(name) if i == 0 => write!(f, "{name}")?,
                PathSegment::Field(name) => write!(f, ".{name}")?,
                PathSegment::Index { index, label } => {
                    write!(f, "[{index}]")?;
                    if let Some(label) = label {
                        write!(f, " ({label})")?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_displays_entities_with_labels_and_plain_indexes() {
        let p = FieldPath::root()
            .field("services")
            .entity(1, Some("name \"orders\"".into()))
            .field("routes")
            .entity(0, None)
            .field("paths")
            .index(2);
        assert_eq!(
            p.to_string(),
            "services[1] (name \"orders\").routes[0].paths[2]"
        );
    }

    #[test]
    fn invalid_error_prints_one_issue_per_line_prefixed_by_source() {
        let e = ConfigError::Invalid {
            source_name: "kong.yml".into(),
            issues: vec![
                Issue::new(FieldPath::root(), "unknown field 'x'"),
                Issue::new(FieldPath::root().field("services").index(0), "bad"),
            ],
        };
        assert_eq!(
            e.to_string(),
            "kong.yml: unknown field 'x'\nkong.yml: services[0]: bad"
        );
        assert_eq!(e.issues().len(), 2);
    }

    #[test]
    fn syntax_error_prints_file_line_column() {
        let e = ConfigError::Syntax {
            source_name: "kong.yml".into(),
            line: 3,
            column: 7,
            message: "oops".into(),
        };
        assert_eq!(e.to_string(), "kong.yml:3:7: oops");
    }
}
