//! Form bodies as HTTP clients send them: `application/x-www-form-urlencoded`
//! and `multipart/form-data` split into `(name, value)` pairs. Shared by the
//! Admin API (which then applies Kong's key syntax) and the plugins that read
//! request bodies (key-auth's `key_in_body`, oauth2's token endpoint).

/// Longest multipart boundary accepted (RFC 2046 allows 70).
const MAX_BOUNDARY_LEN: usize = 200;

/// A form body that cannot be split into pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// The `(name, value)` pairs of a urlencoded or multipart body; `None` for
/// any other media type.
pub fn pairs(
    content_type: Option<&str>,
    body: &[u8],
) -> Option<Result<Vec<(String, String)>, FormError>> {
    let ct = content_type?;
    match media_type(ct).as_str() {
        "application/x-www-form-urlencoded" => Some(Ok(parse_urlencoded(body))),
        "multipart/form-data" => Some(match multipart_boundary(ct) {
            Some(b) => parse_multipart(body, &b),
            None => Err(FormError(
                "missing multipart boundary in Content-Type".to_owned(),
            )),
        }),
        _ => None,
    }
}

/// The media type of a `Content-Type` value, lower-cased, parameters dropped.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

// ---------------------------------------------------------------------------
// urlencoded
// ---------------------------------------------------------------------------

/// Splits `a=1&b=2` into decoded pairs (`+` is a space; bad escapes kept; empty names skipped).
pub fn parse_urlencoded(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            let name = percent_decode(name, true);
            if name.is_empty() {
                return None;
            }
            Some((name, percent_decode(value, true)))
        })
        .collect()
}

/// Percent-decodes `input`; with `plus_is_space`, `+` decodes to a space.
/// Invalid escapes are kept literally; invalid UTF-8 is replaced.
pub fn percent_decode(input: &[u8], plus_is_space: bool) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).and_then(|&b| hex_value(b));
                let lo = input.get(i + 2).and_then(|&b| hex_value(b));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// multipart/form-data
// ---------------------------------------------------------------------------

/// The `boundary` parameter of a multipart `Content-Type`, unquoted.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|&q| value.strip_prefix(q)?.strip_suffix(q))
            .unwrap_or(value);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

fn malformed_multipart(why: &str) -> FormError {
    FormError(format!("malformed multipart body: {why}"))
}

/// Parses a multipart body into `(name, value)` pairs, in order. Parts
/// without a name are skipped; file parts count as plain fields.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, FormError> {
    if boundary.len() > MAX_BOUNDARY_LEN {
        return Err(malformed_multipart("boundary too long"));
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let mut pairs = Vec::new();

    // The first delimiter starts the body or a line (after a preamble).
    let mut at = find_delimiter(body, &delimiter, 0, true)
        .ok_or_else(|| malformed_multipart("boundary not found"))?;
    loop {
        let mut p = at + delimiter.len();
        if body.get(p..p + 2) == Some(b"--") {
            break; // close delimiter; the epilogue is ignored
        }
        p = skip_line_end(body, p).ok_or_else(|| malformed_multipart("bad delimiter line"))?;

        let (headers, content_start) = parse_part_headers(body, p)?;
        // `at_start`: a delimiter right after the blank line is an empty part.
        let next = find_delimiter(body, &delimiter, content_start, true)
            .ok_or_else(|| malformed_multipart("missing closing boundary"))?;
        // `next` is just after the line break preceding the delimiter.
        let mut content_end = next.saturating_sub(1).max(content_start);
        if content_end > content_start && body.get(content_end - 1) == Some(&b'\r') {
            content_end -= 1;
        }
        let content = body.get(content_start..content_end).unwrap_or_default();

        if let Some(name) = headers {
            let value = String::from_utf8(content.to_vec())
                .map_err(|_| FormError(format!("multipart field '{name}' is not valid UTF-8")))?;
            pairs.push((name, value));
        }
        at = next;
    }
    Ok(pairs)
}

/// Finds the next delimiter line at or after `from`: `delimiter` at the start
/// of a line, followed by `--`, optional blanks and a line end, or the end of
/// the body. With `at_start`, a delimiter right at `from` also counts (the
/// body's very first line). Returns the delimiter's offset.
fn find_delimiter(body: &[u8], delimiter: &[u8], from: usize, at_start: bool) -> Option<usize> {
    let valid_end =
        |end: usize| body.get(end..end + 2) == Some(b"--") || skip_line_end(body, end).is_some();
    if at_start && body.get(from..)?.starts_with(delimiter) && valid_end(from + delimiter.len()) {
        return Some(from);
    }
    let mut search = from;
    loop {
        let newline = search + body.get(search..)?.iter().position(|&b| b == b'\n')?;
        let start = newline + 1;
        if body.get(start..)?.starts_with(delimiter) && valid_end(start + delimiter.len()) {
            return Some(start);
        }
        search = start;
    }
}

/// Skips blanks then one line end (`\r\n` or `\n`) at `at`; returns the
/// offset after it. The end of the body counts as a line end.
fn skip_line_end(body: &[u8], mut at: usize) -> Option<usize> {
    while matches!(body.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    match (body.get(at), body.get(at + 1)) {
        (None, _) => Some(at),
        (Some(b'\n'), _) => Some(at + 1),
        (Some(b'\r'), Some(b'\n')) => Some(at + 2),
        _ => None,
    }
}

/// Reads a part's header lines from `at` up to the blank line. Returns the
/// part's field name (from `Content-Disposition`), if any, and the offset of
/// its content.
fn parse_part_headers(body: &[u8], mut at: usize) -> Result<(Option<String>, usize), FormError> {
    let mut name = None;
    loop {
        let rest = body
            .get(at..)
            .ok_or_else(|| malformed_multipart("truncated part headers"))?;
        let newline = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| malformed_multipart("truncated part headers"))?;
        let line = &rest[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += newline + 1;
        if line.is_empty() {
            return Ok((name, at));
        }
        let line = String::from_utf8_lossy(line);
        if let Some((header, value)) = line.split_once(':') {
            if header.trim().eq_ignore_ascii_case("content-disposition") {
                name = disposition_name(value);
            }
        }
    }
}

/// The `name` parameter of a `Content-Disposition` value (`name*` with a
/// UTF-8 RFC 5987 encoding wins over `name`).
fn disposition_name(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (param, value) in header_params(value) {
        if param.eq_ignore_ascii_case("name") {
            plain.get_or_insert(value);
        } else if param.eq_ignore_ascii_case("name*") {
            let encoded = value
                .get(..7)
                .filter(|prefix| prefix.eq_ignore_ascii_case("utf-8''"))
                .and_then(|_| value.get(7..));
            if let Some(encoded) = encoded {
                extended = Some(percent_decode(encoded.as_bytes(), false));
            }
        }
    }
    extended.or(plain).filter(|name| !name.is_empty())
}

/// The `key=value` parameters after the first `;` of a header value;
/// values may be quoted strings with backslash escapes.
fn header_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = value.chars().peekable();
    // Skip the disposition type (`form-data`).
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let mut key = String::new();
        let mut has_value = false;
        for c in chars.by_ref() {
            match c {
                '=' => {
                    has_value = true;
                    break;
                }
                ';' => break,
                _ => key.push(c),
            }
        }
        let key = key.trim().to_owned();
        let mut val = String::new();
        if has_value {
            while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => val.extend(chars.next()),
                        '"' => break,
                        _ => val.push(c),
                    }
                }
                // Drop anything up to the next parameter.
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                }
            } else {
                for c in chars.by_ref() {
                    if c == ';' {
                        break;
                    }
                    val.push(c);
                }
                val = val.trim().to_owned();
            }
        }
        if !key.is_empty() {
            params.push((key, val));
        }
        if chars.peek().is_none() {
            return params;
        }
    }
}

/// Appends `s` to `out` percent-encoded for a urlencoded body (unreserved
/// characters as they are, everything else as `%XX`).
pub fn percent_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Encodes `(name, value)` pairs as a urlencoded body or query string.
pub fn encode_urlencoded(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode_into(&mut out, k);
        out.push('=');
        percent_encode_into(&mut out, v);
    }
    out
}
