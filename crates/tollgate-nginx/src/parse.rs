//! nginx's configuration syntax: words separated by whitespace, a directive
//! ending with `;` or carrying a `{ … }` block, `#` comments to the end of
//! the line, single- or double-quoted words with `\` escapes, `${var}`
//! inside words. `include PATH;` is replaced by the directives of the files
//! it names (globs allowed; relative paths from the main file's folder).

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep includes may nest (a file including itself stops here).
const MAX_INCLUDE_DEPTH: usize = 16;

/// One directive as written: `name args…;` or `name args… { block }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    /// The directive's name (`server`, `proxy_pass`…).
    pub name: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
    /// The directives inside its block, if it has one.
    pub block: Option<Vec<Directive>>,
    /// The file it was read from.
    pub file: Arc<Path>,
    /// The line its name is on (1-based).
    pub line: usize,
}

impl Directive {
    /// An error about this directive, naming its file and line.
    pub fn error(&self, message: impl Into<String>) -> ConfError {
        ConfError {
            file: self.file.to_path_buf(),
            line: self.line,
            message: message.into(),
        }
    }
}

/// A configuration that cannot be read, with where (nginx's
/// `… in FILE:LINE` habit, written `FILE:LINE: message`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ConfError {
    /// The file.
    pub file: PathBuf,
    /// The line (0 when the file could not be read at all).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A word or a punctuation mark, with its line.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String, usize),
    Semicolon(usize),
    Open(usize),
    Close(usize),
}

fn tokenize(text: &str, file: &Path) -> Result<Vec<Token>, ConfError> {
    let err = |line, message: String| ConfError {
        file: file.to_owned(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            ';' => out.push(Token::Semicolon(line)),
            '{' => out.push(Token::Open(line)),
            '}' => out.push(Token::Close(line)),
            '"' | '\'' => {
                let start = line;
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err(start, format!("unclosed {c} quote"))),
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some('r') => word.push('\r'),
                            Some(e) if e == c || e == '\\' => word.push(e),
                            Some(e) => {
                                if e == '\n' {
                                    line += 1;
                                }
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(err(start, format!("unclosed {c} quote"))),
                        },
                        Some(q) => {
                            if q == '\n' {
                                line += 1;
                            }
                            word.push(q);
                        }
                    }
                }
                // A quoted word must be followed by a separator.
                if let Some(&n) = chars.peek() {
                    if !(n.is_whitespace() || matches!(n, ';' | '{' | '}')) {
                        return Err(err(line, format!("unexpected \"{n}\" after a quoted word")));
                    }
                }
                out.push(Token::Word(word, start));
            }
            c => {
                let mut word = String::from(c);
                let mut prev = c;
                while let Some(&n) = chars.peek() {
                    // `${name}` keeps its braces inside the word.
                    if n == '{' && prev == '$' {
                        word.push(n);
                        chars.next();
                        for v in chars.by_ref() {
                            word.push(v);
                            if v == '}' {
                                break;
                            }
                        }
                        prev = '}';
                        continue;
                    }
                    if n.is_whitespace() || matches!(n, ';' | '{' | '}') {
                        break;
                    }
                    if n == '\\' {
                        chars.next();
                        if let Some(e) = chars.next() {
                            word.push(e);
                            prev = e;
                        }
                        continue;
                    }
                    word.push(n);
                    prev = n;
                    chars.next();
                }
                out.push(Token::Word(word, line));
            }
        }
    }
    Ok(out)
}

/// Reads a configuration from `text`, as if it were the file `file`
/// (includes are looked up from its folder).
pub fn parse_str(text: &str, file: &Path) -> Result<Vec<Directive>, ConfError> {
    let base = file.parent().unwrap_or(Path::new(".")).to_owned();
    read_text(text, file, &base, 0)
}

/// Reads the configuration in `path` and every file it includes.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse_str(&text, path)
}

fn read_text(
    text: &str,
    file: &Path,
    base: &Path,
    depth: usize,
) -> Result<Vec<Directive>, ConfError> {
    let tokens = tokenize(text, file)?;
    let file: Arc<Path> = Arc::from(file);
    let mut pos = 0;
    let list = block(&tokens, &mut pos, &file, base, depth, None)?;
    Ok(list)
}

/// Reads directives until the end (`opened` is None) or the `}` closing
/// the block opened on line `opened`.
fn block(
    tokens: &[Token],
    pos: &mut usize,
    file: &Arc<Path>,
    base: &Path,
    depth: usize,
    opened: Option<usize>,
) -> Result<Vec<Directive>, ConfError> {
    let err = |line, message: String| ConfError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    loop {
        let Some(t) = tokens.get(*pos) else {
            return match opened {
                Some(line) => Err(err(line, "unexpected end of file, expecting \"}\"".into())),
                None => Ok(out),
            };
        };
        *pos += 1;
        let (name, line) = match t {
            Token::Word(w, l) => (w.clone(), *l),
            Token::Close(l) => {
                return match opened {
                    Some(_) => Ok(out),
                    None => Err(err(*l, "unexpected \"}\"".into())),
                }
            }
            Token::Semicolon(l) => return Err(err(*l, "unexpected \";\"".into())),
            Token::Open(l) => return Err(err(*l, "unexpected \"{\"".into())),
        };
        let mut args = Vec::new();
        let inner = loop {
            match tokens.get(*pos) {
                None => {
                    return Err(err(
                        line,
                        format!(
                            "unexpected end of file, expecting \";\" or \"}}\" after \"{name}\""
                        ),
                    ))
                }
                Some(Token::Word(w, _)) => {
                    args.push(w.clone());
                    *pos += 1;
                }
                Some(Token::Semicolon(_)) => {
                    *pos += 1;
                    break None;
                }
                Some(Token::Open(l)) => {
                    let l = *l;
                    *pos += 1;
                    break Some(block(tokens, pos, file, base, depth, Some(l))?);
                }
                Some(Token::Close(l)) => {
                    return Err(err(
                        *l,
                        format!("unexpected \"}}\" in \"{name}\" (missing \";\"?)"),
                    ))
                }
            }
        };
        if name == "include" && inner.is_none() {
            let [pattern] = args.as_slice() else {
                return Err(err(line, "\"include\" takes one file or glob".into()));
            };
            out.extend(include(pattern, file, line, base, depth)?);
            continue;
        }
        out.push(Directive {
            name,
            args,
            block: inner,
            file: file.clone(),
            line,
        });
    }
}

/// The directives of the files `pattern` names, in name order.
fn include(
    pattern: &str,
    file: &Arc<Path>,
    line: usize,
    base: &Path,
    depth: usize,
) -> Result<Vec<Directive>, ConfError> {
    let err = |message: String| ConfError {
        file: file.to_path_buf(),
        line,
        message,
    };
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(err(format!(
            "includes nested deeper than {MAX_INCLUDE_DEPTH} (a loop?)"
        )));
    }
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let has_glob = pattern.contains(['*', '?', '[']);
    let mut paths: Vec<PathBuf> = if has_glob {
        let text = full.to_string_lossy();
        glob::glob(&text)
            .map_err(|e| err(format!("bad include pattern \"{pattern}\": {e}")))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![full]
    };
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p)
            .map_err(|e| err(format!("include \"{}\" failed: {e}", p.display())))?;
        out.extend(read_text(&text, &p, base, depth + 1)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Vec<Directive>, ConfError> {
        parse_str(text, Path::new("/etc/nginx/nginx.conf"))
    }

    fn names(list: &[Directive]) -> Vec<(&str, Vec<&str>, usize)> {
        list.iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.args.iter().map(String::as_str).collect(),
                    d.line,
                )
            })
            .collect()
    }

    #[test]
    fn directives_blocks_quotes_and_comments() {
        let text = "worker_processes auto; # comment ; {\n\
                    http {\n  server {\n    listen 80;\n\
                    add_header X-Note \"a \\\"quoted\\\" ; value\" always;\n\
                    return 200 'it''s';\n  }\n}\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 6, "{err}");
        let text = text.replace("'it''s'", "'it\\'s'");
        let tree = parse(&text).unwrap();
        assert_eq!(
            names(&tree),
            vec![("worker_processes", vec!["auto"], 1), ("http", vec![], 2)]
        );
        let http = tree[1].block.as_ref().unwrap();
        let server = http[0].block.as_ref().unwrap();
        assert_eq!(
            names(server),
            vec![
                ("listen", vec!["80"], 4),
                (
                    "add_header",
                    vec!["X-Note", "a \"quoted\" ; value", "always"],
                    5
                ),
                ("return", vec!["200", "it's"], 6),
            ]
        );
    }

    #[test]
    fn variables_with_braces_stay_in_their_word() {
        let tree = parse("set $x \"${host}_a\"; return 200 ${scheme}://$host;").unwrap();
        assert_eq!(tree[0].args, vec!["$x", "${host}_a"]);
        assert_eq!(tree[1].args, vec!["200", "${scheme}://$host"]);
    }

    #[test]
    fn malformed_files_are_refused_with_their_line() {
        for (text, line, what) in [
            ("server {\n listen 80;\n", 1, "expecting \"}\""),
            ("server {\n}\n}\n", 3, "unexpected \"}\""),
            ("listen 80\n", 1, "expecting \";\""),
            ("server {\n listen 80\n}\n", 3, "missing \";\""),
            ("\n\n;", 3, "unexpected \";\""),
            ("return 200 \"open\n\n", 1, "unclosed"),
            ("a \"b\"c;", 1, "after a quoted word"),
            ("{ }", 1, "unexpected \"{\""),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
            assert!(e.to_string().starts_with("/etc/nginx/nginx.conf:"), "{e}");
        }
    }

    #[test]
    fn includes_resolve_globs_from_the_main_files_folder_in_name_order() {
        let dir = std::env::temp_dir().join(format!("tollgate-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "b_directive 2;\n").unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "\n\na_directive 1;\n").unwrap();
        std::fs::write(dir.join("conf.d/skip.txt"), "ignored;\n").unwrap();
        std::fs::write(dir.join("loop.conf"), "include loop.conf;\n").unwrap();
        let main = dir.join("nginx.conf");
        std::fs::write(
            &main,
            "http {\n include conf.d/*.conf;\n include none/*.conf;\n}\n",
        )
        .unwrap();
        let tree = parse_file(&main).unwrap();
        let http = tree[0].block.as_ref().unwrap();
        assert_eq!(
            names(http),
            vec![("a_directive", vec!["1"], 3), ("b_directive", vec!["2"], 1)]
        );
        assert_eq!(&*http[0].file, dir.join("conf.d/a.conf").as_path());

        std::fs::write(&main, "events {}\ninclude missing.conf;\n").unwrap();
        let e = parse_file(&main).unwrap_err();
        assert_eq!((e.file.as_path(), e.line), (main.as_path(), 2), "{e}");
        assert!(e.message.contains("missing.conf"), "{e}");

        std::fs::write(&main, "include loop.conf;\n").unwrap();
        let e = parse_file(&main).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
