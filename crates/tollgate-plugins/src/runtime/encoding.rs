//! Streaming content codings (RFC 9110 section 8.4.1): gzip, brotli and
//! zstd encoders, and decoders for those and `deflate`. Each takes the body
//! piece by piece and gives back what it has produced so far, so an answer
//! is never held whole.

use bytes::Bytes;
use std::io::Write;

/// A content coding Tollgate can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip`.
    Gzip,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// The token in `Content-Encoding` / `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The coding named `token` (case-insensitive).
    pub fn from_token(token: &str) -> Option<Self> {
        [Coding::Gzip, Coding::Brotli, Coding::Zstd]
            .into_iter()
            .find(|c| c.token().eq_ignore_ascii_case(token))
    }
}

/// Compression levels, per coding.
#[derive(Debug, Clone, Copy)]
pub struct Levels {
    /// gzip level, 1–9.
    pub gzip: u32,
    /// brotli quality, 0–11.
    pub brotli: u32,
    /// zstd level, 1–19.
    pub zstd: i32,
}

/// A gzip deflate state. Setting one up zeroes a 128 KiB hash table and
/// its buffers, more work than compressing a small answer: finished states
/// are reset and kept per worker thread for the next answer.
struct Deflater {
    c: flate2::Compress,
    level: u32,
    bits: u8,
}

thread_local! {
    /// Finished deflate states, ready for reuse (a few per thread).
    static DEFLATERS: std::cell::RefCell<Vec<Deflater>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Deflater {
    /// A state for `level` and `bits`, reused when this thread has one.
    fn take(level: u32, bits: u8) -> Deflater {
        let reused = DEFLATERS.with(|d| {
            let mut d = d.borrow_mut();
            let i = d.iter().position(|x| x.level == level && x.bits == bits)?;
            Some(d.swap_remove(i))
        });
        reused.unwrap_or_else(|| Deflater {
            c: flate2::Compress::new_gzip(flate2::Compression::new(level), bits),
            level,
            bits,
        })
    }

    /// Resets a finished state and keeps it for this thread.
    fn give_back(mut self) {
        self.c.reset();
        DEFLATERS.with(|d| {
            let mut d = d.borrow_mut();
            if d.len() < 4 {
                d.push(self);
            }
        });
    }

    /// Compresses `input` into `out` (growing it); with `Finish`, to the
    /// end of the stream.
    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        flush: flate2::FlushCompress,
    ) -> std::io::Result<()> {
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve((input.len() / 2).max(4096));
            }
            let before = self.c.total_in();
            let status = self
                .c
                .compress_vec(input, out, flush)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let used = (self.c.total_in() - before) as usize;
            input = &input[used..];
            let room_left = out.capacity() - out.len() >= 256;
            match (status, flush) {
                (flate2::Status::StreamEnd, _) => return Ok(()),
                (_, flate2::FlushCompress::Finish) => {}
                _ if input.is_empty() && room_left => return Ok(()),
                _ => {}
            }
        }
    }
}

/// Which way a [`Transcoder`] works, with its state.
enum State {
    /// A deflate stream with the gzip wrapper (window sized to the body),
    /// and the output so far.
    Gzip(Deflater, Vec<u8>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Gunzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Inflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Unbrotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Unzstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
    /// Finished, or failed (the rest of the body is dropped).
    Done,
}

/// Encodes or decodes one body as it streams.
pub struct Transcoder {
    state: State,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transcoder")
    }
}

impl Transcoder {
    /// An encoder to `coding`. With the body's `size` known, gzip and
    /// brotli use a window no larger than the body (as nginx sizes zlib's),
    /// which makes small answers much cheaper to set up.
    pub fn encoder(coding: Coding, levels: Levels, size: Option<u64>) -> std::io::Result<Self> {
        // log2 of the smallest power of two holding the body.
        let fit = |n: u64| 64 - n.saturating_sub(1).max(1).leading_zeros();
        let state = match coding {
            Coding::Gzip => {
                let bits = size.map_or(15, |n| fit(n + 262).clamp(9, 15)) as u8;
                let capacity = size.map_or(16 * 1024, |n| (n as usize / 2).clamp(512, 64 * 1024));
                State::Gzip(
                    Deflater::take(levels.gzip.clamp(1, 9), bits),
                    Vec::with_capacity(capacity),
                )
            }
            Coding::Brotli => State::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                levels.brotli.min(11),
                size.map_or(22, |n| fit(n).clamp(10, 22)),
            ))),
            Coding::Zstd => State::Zstd(zstd::stream::write::Encoder::new(
                Vec::new(),
                levels.zstd.clamp(1, 19),
            )?),
        };
        Ok(Transcoder { state })
    }

    /// A decoder of the coding named `token` (gzip, x-gzip, deflate, br,
    /// zstd); None for others.
    pub fn decoder(token: &str) -> Option<Self> {
        let t = token.trim().to_ascii_lowercase();
        let state = match t.as_str() {
            "gzip" | "x-gzip" => State::Gunzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => State::Inflate(flate2::write::ZlibDecoder::new(Vec::new())),
            "br" => State::Unbrotli(Box::new(brotli::DecompressorWriter::new(
                Vec::new(),
                16 * 1024,
            ))),
            "zstd" => State::Unzstd(zstd::stream::write::Decoder::new(Vec::new()).ok()?),
            _ => return None,
        };
        Some(Transcoder { state })
    }

    /// Takes `data` in; returns what came out so far.
    pub fn push(&mut self, data: &[u8]) -> Bytes {
        let out = match &mut self.state {
            State::Gzip(d, out) => d.run(data, out, flate2::FlushCompress::None).map(|_| out),
            State::Brotli(w) => w.write_all(data).map(|_| w.get_mut()),
            State::Zstd(w) => w.write_all(data).map(|_| w.get_mut()),
            State::Gunzip(w) => w.write_all(data).map(|_| w.get_mut()),
            State::Inflate(w) => w.write_all(data).map(|_| w.get_mut()),
            State::Unbrotli(w) => w.write_all(data).map(|_| w.get_mut()),
            State::Unzstd(w) => w.write_all(data).map(|_| w.get_mut()),
            State::Done => return Bytes::new(),
        };
        match out {
            Ok(buf) => Bytes::from(std::mem::take(buf)),
            Err(e) => {
                tracing::warn!("content coding failed: {e}");
                self.state = State::Done;
                Bytes::new()
            }
        }
    }

    /// Ends the stream; returns the last bytes.
    pub fn finish(&mut self) -> Bytes {
        let out = match std::mem::replace(&mut self.state, State::Done) {
            State::Gzip(mut d, mut out) => {
                let done = d
                    .run(&[], &mut out, flate2::FlushCompress::Finish)
                    .map(|_| out);
                if done.is_ok() {
                    d.give_back();
                }
                done
            }
            State::Brotli(w) => Ok(w.into_inner()),
            State::Zstd(w) => w.finish(),
            State::Gunzip(w) => w.finish(),
            State::Inflate(w) => w.finish(),
            State::Unbrotli(w) => w.into_inner().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated brotli stream")
            }),
            State::Unzstd(mut w) => w.flush().map(|_| std::mem::take(w.get_mut())),
            State::Done => Ok(Vec::new()),
        };
        match out {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                tracing::warn!("content coding failed at the end: {e}");
                Bytes::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LEVELS: Levels = Levels {
        gzip: 1,
        brotli: 4,
        zstd: 3,
    };

    fn run(t: &mut Transcoder, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in input.chunks(7_001) {
            out.extend_from_slice(&t.push(piece));
        }
        out.extend_from_slice(&t.finish());
        out
    }

    #[test]
    fn every_coding_round_trips_through_our_decoder() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 ^ b'a').collect();
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            for size in [None, Some(input.len() as u64)] {
                let packed = run(
                    &mut Transcoder::encoder(coding, LEVELS, size).unwrap(),
                    &input,
                );
                assert!(packed.len() < input.len(), "{coding:?}");
                let unpacked = run(&mut Transcoder::decoder(coding.token()).unwrap(), &packed);
                assert_eq!(unpacked, input, "{coding:?} {size:?}");
            }
            // A small body with a window fitted to it.
            let small = &input[..700];
            let packed = run(
                &mut Transcoder::encoder(coding, LEVELS, Some(700)).unwrap(),
                small,
            );
            let unpacked = run(&mut Transcoder::decoder(coding.token()).unwrap(), &packed);
            assert_eq!(unpacked, small, "{coding:?} small");
        }
    }

    #[test]
    fn unknown_codings_have_no_decoder() {
        assert!(Transcoder::decoder("compress").is_none());
        assert_eq!(Coding::from_token("BR"), Some(Coding::Brotli));
    }
}
