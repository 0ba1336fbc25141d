//! A body read from a file as it is sent: pieces of the file (and bytes in
//! between, for multipart ranges) are read on tokio's blocking pool, a few
//! 64 KiB chunks ahead of the client at most.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// How much is read at once.
pub const CHUNK: usize = 64 * 1024;

/// A piece of a file answer.
#[derive(Debug, Clone)]
pub enum Segment {
    /// Bytes made in memory (a multipart part's head).
    Bytes(Bytes),
    /// `len` bytes of the file from `offset`.
    File {
        /// Where the piece starts.
        offset: u64,
        /// How long it is.
        len: u64,
    },
}

impl Segment {
    /// Its length.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `segments` of `file` into one buffer (for small answers).
pub fn read_now(file: &std::fs::File, segments: &[Segment]) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let total: u64 = segments.iter().map(Segment::len).sum();
    let mut out = Vec::with_capacity(total as usize);
    for s in segments {
        match s {
            Segment::Bytes(b) => out.extend_from_slice(b),
            Segment::File { offset, len } => {
                let start = out.len();
                out.resize(start + *len as usize, 0);
                file.read_exact_at(&mut out[start..], *offset)?;
            }
        }
    }
    Ok(Bytes::from(out))
}

/// The streamed body of a file answer.
#[derive(Debug)]
pub struct FileBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl FileBody {
    /// Starts reading `segments` of `file` (must be called on a tokio
    /// runtime).
    pub fn spawn(file: std::fs::File, segments: Vec<Segment>) -> Self {
        let remaining = segments.iter().map(Segment::len).sum();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            for s in segments {
                match s {
                    Segment::Bytes(b) => {
                        if tx.blocking_send(Ok(b)).is_err() {
                            return;
                        }
                    }
                    Segment::File { mut offset, len } => {
                        let end = offset + len;
                        while offset < end {
                            let n = ((end - offset) as usize).min(CHUNK);
                            let mut buf = vec![0u8; n];
                            let read = file
                                .read_exact_at(&mut buf, offset)
                                .map(|_| Bytes::from(buf));
                            let failed = read.is_err();
                            // The client went away: stop reading.
                            if tx.blocking_send(read).is_err() || failed {
                                return;
                            }
                            offset += n as u64;
                        }
                    }
                }
            }
        });
        FileBody { rx, remaining }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file ended early",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
