//! Chunked transfer coding (RFC 9112 section 7.1), both directions: the
//! decoder for bodies read (client requests, backend responses) and the chunk
//! framing for bodies written.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Longest chunk-size line (with extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// A chunked body that breaks the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk-size line, terminator or trailer section is malformed or too long.
    #[error("invalid chunked encoding")]
    Malformed,
    /// A trailer field name or value is invalid.
    #[error("invalid trailer field")]
    BadField,
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Incremental decoder of a chunked body held in a read buffer.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    trailers: Option<Box<HeaderMap>>,
    trailer_bytes: usize,
}

/// One step of decoding.
#[derive(Debug)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The trailer fields (sent before [`Step::End`] when there are any).
    Trailers(HeaderMap),
    /// The body ended.
    End,
    /// The buffer holds no complete next piece: read more.
    NeedMore,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            trailers: None,
            trailer_bytes: 0,
        }
    }

    /// Whether the terminating chunk and trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what `buf` holds, taking consumed bytes out of it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(eol) = find_crlf(buf) else {
                        if buf.len() > MAX_SIZE_LINE {
                            return Err(ChunkError::Malformed);
                        }
                        return Ok(Step::NeedMore);
                    };
                    let size = parse_size(&buf[..eol])?;
                    let _ = buf.split_to(eol + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::Malformed);
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(eol) = find_crlf(buf) else {
                        if self.trailer_bytes + buf.len() > MAX_TRAILERS {
                            return Err(ChunkError::Malformed);
                        }
                        return Ok(Step::NeedMore);
                    };
                    if eol == 0 {
                        let _ = buf.split_to(2);
                        self.state = State::Done;
                        if let Some(t) = self.trailers.take() {
                            return Ok(Step::Trailers(*t));
                        }
                        return Ok(Step::End);
                    }
                    self.trailer_bytes += eol + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(ChunkError::Malformed);
                    }
                    let line = buf.split_to(eol + 2);
                    let (name, value) = parse_field(&line[..eol])?;
                    self.trailers
                        .get_or_insert_with(Box::default)
                        .append(name, value);
                }
                State::Done => return Ok(Step::End),
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Parses `1a;ext=1` into 26; at most 15 hex digits (no overflow).
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits_end == 0 || digits_end > 15 {
        return Err(ChunkError::Malformed);
    }
    let rest = &line[digits_end..];
    // Only whitespace before a chunk extension; nothing else may follow.
    let rest = rest.trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(ChunkError::Malformed);
    }
    let mut n = 0u64;
    for &b in &line[..digits_end] {
        let d = (b as char).to_digit(16).ok_or(ChunkError::Malformed)?;
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

fn parse_field(line: &[u8]) -> Result<(HeaderName, HeaderValue), ChunkError> {
    let colon = line
        .iter()
        .position(|b| *b == b':')
        .ok_or(ChunkError::Malformed)?;
    let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| ChunkError::BadField)?;
    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
        .map_err(|_| ChunkError::BadField)?;
    Ok((name, value))
}

/// The size line that opens a chunk of `len` bytes (`1a\r\n`).
pub fn size_line(len: usize) -> ([u8; 18], usize) {
    let mut out = [0u8; 18];
    let hex = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = 16;
    loop {
        i -= 1;
        digits[i] = hex[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    let d = 16 - i;
    out[..d].copy_from_slice(&digits[i..]);
    out[d..d + 2].copy_from_slice(b"\r\n");
    (out, d + 2)
}

/// The last chunk with `trailers`, ending the body.
pub fn last_chunk(trailers: Option<&HeaderMap>) -> Bytes {
    let Some(t) = trailers.filter(|t| !t.is_empty()) else {
        return Bytes::from_static(b"0\r\n\r\n");
    };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"0\r\n");
    for (name, value) in t {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        let mut trailers = None;
        loop {
            match d.decode(&mut buf)? {
                Step::Data(b) => body.extend_from_slice(&b),
                Step::Trailers(t) => trailers = Some(t),
                Step::End => return Ok((body, trailers)),
                Step::NeedMore => return Err(ChunkError::Malformed),
            }
        }
    }

    #[test]
    fn chunks_extensions_and_trailers_decode() {
        let (body, trailers) =
            decode_all(b"5;x=1\r\nhello\r\n1 \r\n!\r\n0\r\nx-sum: 9\r\n\r\n").unwrap();
        assert_eq!(body, b"hello!");
        assert_eq!(trailers.unwrap()["x-sum"], "9");
    }

    #[test]
    fn byte_at_a_time_input_decodes_the_same() {
        let input = b"3\r\nabc\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf).unwrap() {
                    Step::Data(x) => body.extend_from_slice(&x),
                    Step::NeedMore => break,
                    Step::End | Step::Trailers(_) => break,
                }
            }
        }
        assert!(d.is_done());
        assert_eq!(body, b"abc");
    }

    #[test]
    fn broken_sizes_and_terminators_are_refused() {
        assert!(decode_all(b"zz\r\nhello\r\n0\r\n\r\n").is_err());
        assert!(decode_all(b"5\r\nhelloXX0\r\n\r\n").is_err());
        assert!(decode_all(b"ffffffffffffffffff\r\n").is_err());
        assert!(decode_all(b"5 x\r\nhello\r\n0\r\n\r\n").is_err());
    }

    #[test]
    fn size_lines_are_lowercase_hex() {
        let (b, n) = size_line(26);
        assert_eq!(&b[..n], b"1a\r\n");
        let (b, n) = size_line(0);
        assert_eq!(&b[..n], b"0\r\n");
    }
}
