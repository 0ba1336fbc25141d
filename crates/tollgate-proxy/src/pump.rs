//! Writing a message body to a socket with HTTP/1.1 framing, used in both
//! directions: a client's request body going up to a backend, and an answer
//! (head and body) going down to a client.
//!
//! The head, a chunk-size line, the data and the chunk terminator leave in
//! one vectored write; the first body frame is fetched before the head is
//! written, so a small answer costs a single system call.

use crate::body::{BodyError, ProxyBody};
use crate::chunked;
use crate::sock::Sink;
use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Why writing a body failed.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// The socket failed.
    #[error("write: {0}")]
    Io(#[from] io::Error),
    /// The peer stopped reading for longer than the write timeout.
    #[error("peer stopped reading (write timeout)")]
    WriteTimeout,
    /// The body being forwarded failed.
    #[error("body: {0}")]
    Body(BodyError),
}

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Bytes as they are (Content-Length, or until the connection closes).
    Raw,
    /// Chunked transfer coding, trailers included.
    Chunked,
    /// No body is written at all (HEAD, 204, 304): the body is not read.
    Skip,
}

/// Writes an optional head and then a body.
#[derive(Debug)]
pub struct Pump {
    body: ProxyBody,
    framing: Framing,
    head: Vec<u8>,
    head_pos: usize,
    line: [u8; 18],
    line_len: usize,
    line_pos: usize,
    data: Bytes,
    tail: &'static [u8],
    last: bool,
    done: bool,
    /// Whether a frame was taken from the body (it can no longer be resent).
    pub started: bool,
    /// Body bytes written so far.
    pub written: u64,
    write_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl Pump {
    /// A pump writing `head` (may be empty) and then `body` with `framing`.
    pub fn new(head: Vec<u8>, body: ProxyBody, framing: Framing, write_timeout: Duration) -> Self {
        Pump {
            body,
            framing,
            head,
            head_pos: 0,
            line: [0; 18],
            line_len: 0,
            line_pos: 0,
            data: Bytes::new(),
            tail: b"",
            last: framing == Framing::Skip,
            done: false,
            started: false,
            written: 0,
            write_timeout,
            stall: None,
        }
    }

    /// Whether everything was written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Gives the body back (only meaningful while `started` is false).
    pub fn into_body(self) -> ProxyBody {
        self.body
    }

    /// Takes the head buffer back for reuse.
    pub fn take_head(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.head)
    }

    fn pending_len(&self) -> usize {
        (self.head.len() - self.head_pos)
            + (self.line_len - self.line_pos)
            + self.data.len()
            + self.tail.len()
    }

    /// Takes the next frame from the body when there is room for one.
    /// Returns `Pending` only when the body has nothing yet.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PumpError>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(PumpError::Body(e))),
            Poll::Ready(Some(Ok(frame))) => {
                self.started = true;
                match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => {
                        if self.framing == Framing::Chunked {
                            let (line, len) = chunked::size_line(data.len());
                            self.line = line;
                            self.line_len = len;
                            self.line_pos = 0;
                            self.tail = b"\r\n";
                        }
                        self.written += data.len() as u64;
                        self.data = data;
                    }
                    Err(frame) => {
                        if self.framing == Framing::Chunked {
                            let trailers: Option<HeaderMap> = frame.into_trailers().ok();
                            self.data = chunked::last_chunk(trailers.as_ref());
                        }
                        self.last = true;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(None) => {
                if self.framing == Framing::Chunked {
                    self.data = chunked::last_chunk(None);
                }
                self.last = true;
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Moves the body forward; `Ready(Ok)` once all of it was written.
    pub fn poll(
        &mut self,
        stream: &(impl Sink + ?Sized),
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), PumpError>> {
        loop {
            let room =
                self.data.is_empty() && self.line_pos == self.line_len && self.tail.is_empty();
            if room && !self.last {
                match self.poll_body(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending if self.pending_len() == 0 => return Poll::Pending,
                    Poll::Pending => {}
                }
            }
            if self.pending_len() > 0 {
                let head = &self.head[self.head_pos..];
                let slices = [
                    IoSlice::new(head),
                    IoSlice::new(&self.line[self.line_pos..self.line_len]),
                    IoSlice::new(&self.data),
                    IoSlice::new(self.tail),
                ];
                match stream.poll_write(cx, &slices) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()))
                    }
                    Poll::Ready(Ok(n)) => {
                        self.stall = None;
                        self.advance(n);
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => {
                        let timeout = self.write_timeout;
                        let stall = self
                            .stall
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                        if stall.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Err(PumpError::WriteTimeout));
                        }
                        return Poll::Pending;
                    }
                }
            }
            if self.last {
                self.done = true;
                return Poll::Ready(Ok(()));
            }
        }
    }

    fn advance(&mut self, mut n: usize) {
        let k = n.min(self.head.len() - self.head_pos);
        self.head_pos += k;
        n -= k;
        let k = n.min(self.line_len - self.line_pos);
        self.line_pos += k;
        n -= k;
        let k = n.min(self.data.len());
        let _ = self.data.split_to(k);
        n -= k;
        let k = n.min(self.tail.len());
        self.tail = &self.tail[k..];
    }
}
