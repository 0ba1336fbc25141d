//! Request path normalisation, as Kong applies it before route matching.
//!
//! Steps, in order (the same order as Kong, so `/%2e%2e/` counts as `/../`):
//! 1. everything from the first `?` on (the query) is dropped;
//! 2. `%XX` triplets (hex digits in either case) that encode an unreserved
//!    character (`ALPHA DIGIT - . _ ~`) are decoded; the hex of every other
//!    valid triplet is uppercased; a `%` not followed by two hex digits is
//!    kept as is;
//! 3. dot segments are removed (RFC 3986 section 5.2.4), and `//` is merged
//!    into `/` in the same pass.
//!
//! Kong's own code also decodes triplets of "other" characters (e.g. `%20`
//! becomes a space, `%C3%A9` raw bytes); we keep those encoded (uppercased),
//! which keeps the result valid UTF-8 and unambiguous.

use std::borrow::Cow;

/// Normalises a raw request path as Kong does before matching (query dropped,
/// unreserved %-escapes decoded and other %-escapes uppercased, dot segments
/// removed, `//` merged).
///
/// Returns [`Cow::Borrowed`] (no allocation) when the path needs no change
/// other than dropping the query, which is the common case.
pub fn normalize_path(raw: &str) -> Cow<'_, str> {
    let path = match raw.find('?') {
        Some(i) => &raw[..i],
        None => raw,
    };
    if !needs_work(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_percent(path);
    let out = remove_dot_segments(&decoded);
    if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    }
}

/// Quick scan: can normalisation change this (query-less) path at all?
fn needs_work(path: &str) -> bool {
    let b = path.as_bytes();
    // One pass over the bytes for the common, clean path; the exact dot
    // segment check only runs when a `.` follows a `/` (or starts the path).
    let mut dot_after_slash = b.first() == Some(&b'.');
    for w in b.windows(2) {
        match w {
            [b'%', _] | [_, b'%'] | [b'/', b'/'] => return true,
            [b'/', b'.'] => dot_after_slash = true,
            _ => {}
        }
    }
    if b == b"%" {
        return true;
    }
    dot_after_slash && path.split('/').any(|seg| seg == "." || seg == "..")
}

/// Whether a byte is an RFC 3986 unreserved character.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Value of an ASCII hex digit.
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Step 2: decodes unreserved triplets and uppercases the others.
fn decode_percent(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0; // bytes[..copied] are already in `out`
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
            break; // a trailing `%` or `%X`: nothing more to decode
        };
        let (Some(hv), Some(lv)) = (hex_val(h), hex_val(l)) else {
            i += 1; // not a triplet: keep the `%` as is
            continue;
        };
        out.push_str(&path[copied..i]);
        let value = hv * 16 + lv;
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push(char::from(h.to_ascii_uppercase()));
            out.push(char::from(l.to_ascii_uppercase()));
        }
        i += 3;
        copied = i;
    }
    out.push_str(&path[copied..]);
    Cow::Owned(out)
}

/// Step 3: RFC 3986 5.2.4 "remove_dot_segments", plus merging of `//`.
fn remove_dot_segments(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    // Removes the last segment and its preceding `/` (if any) from `out`.
    fn pop_segment(out: &mut String) {
        let cut = out.rfind('/').unwrap_or(0);
        out.truncate(cut);
    }
    while !rest.is_empty() {
        if rest == "/." {
            rest = "/";
        } else if rest == "/.." {
            rest = "/";
            pop_segment(&mut out);
        } else if rest == "." || rest == ".." {
            rest = "";
        } else if let Some(r) = rest.strip_prefix("../") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if rest.starts_with("/./") {
            rest = &rest[2..];
        } else if rest.starts_with("/../") {
            rest = &rest[3..];
            pop_segment(&mut out);
        } else if rest.starts_with("//") {
            rest = &rest[1..];
        } else {
            // Move the first segment (with its leading `/`, if any) to the output.
            let end = rest
                .get(1..)
                .and_then(|tail| tail.find('/'))
                .map_or(rest.len(), |i| i + 1);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        normalize_path(s).into_owned()
    }

    #[test]
    fn plain_path_is_borrowed_unchanged() {
        for p in ["/", "/api/users", "/a.b/c..d/.e", "/~user/x-y_z", ""] {
            assert!(
                matches!(normalize_path(p), Cow::Borrowed(b) if b == p),
                "{p}"
            );
        }
    }

    #[test]
    fn query_is_dropped_without_allocating() {
        assert!(matches!(
            normalize_path("/a/b?x=1&y=/../"),
            Cow::Borrowed("/a/b")
        ));
        assert_eq!(norm("/?"), "/");
        assert_eq!(norm("/a%2e/?q"), "/a./");
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(norm("/%61%62%63"), "/abc");
        assert_eq!(norm("/%7Euser/%2D%2e%5F"), "/~user/-._");
        assert_eq!(norm("/%7euser"), "/~user");
        assert_eq!(norm("/%30%39"), "/09");
    }

    #[test]
    fn other_escapes_get_uppercase_hex() {
        assert_eq!(norm("/a%2fb"), "/a%2Fb");
        assert_eq!(norm("/%20%c3%a9"), "/%20%C3%A9");
        assert_eq!(norm("/x%3fy"), "/x%3Fy");
    }

    #[test]
    fn already_uppercase_escapes_stay_borrowed() {
        assert!(matches!(normalize_path("/a%2Fb"), Cow::Borrowed("/a%2Fb")));
    }

    #[test]
    fn broken_escapes_are_kept() {
        assert_eq!(norm("/a%zz"), "/a%zz");
        assert_eq!(norm("/a%"), "/a%");
        assert_eq!(norm("/a%4"), "/a%4");
        assert_eq!(norm("/%%41"), "/%A");
        assert_eq!(norm("/é%41"), "/éA");
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(norm("/a/b/../c"), "/a/c");
        assert_eq!(norm("/a/./b"), "/a/b");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/b/."), "/a/b/");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/../../x"), "/x");
        assert_eq!(norm("/a/../../b/"), "/b/");
        assert_eq!(norm("/a/b/c/./../../g"), "/a/g");
        assert_eq!(norm("mid/content=5/../6"), "mid/6");
    }

    #[test]
    fn encoded_dots_count_as_dot_segments() {
        assert_eq!(norm("/a/%2e%2E/b"), "/b");
        assert_eq!(norm("/a/%2e/b"), "/a/b");
    }

    #[test]
    fn double_slashes_are_merged() {
        assert_eq!(norm("//a///b//"), "/a/b/");
        assert_eq!(norm("/a//../b"), "/b");
    }

    #[test]
    fn dots_inside_segments_are_kept() {
        assert_eq!(norm("/a/..b/c./.../x"), "/a/..b/c./.../x");
        assert_eq!(norm("/v1.2/x/../y"), "/v1.2/y");
    }
}
