//! A client's request body, read straight from its connection while the
//! request is proxied. The connection's read buffer travels with the body and
//! is handed back when the body is dropped, together with whether the body
//! was read to its end (if not, the connection cannot carry another request).

use super::request::BodyFraming;
use crate::body::BodyError;
use crate::chunked::{ChunkedDecoder, Step};
use crate::sock;
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What a finished or dropped body leaves for its connection.
#[derive(Debug, Default)]
pub struct Leftover {
    /// The read buffer, with any bytes past the body (a pipelined request).
    pub buf: BytesMut,
    /// Whether the body was read to its end.
    pub complete: bool,
}

/// Where the connection picks up its buffer after the request.
pub type LeftoverSlot = Arc<Mutex<Option<Leftover>>>;

#[derive(Debug)]
enum Decoder {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

/// A request body streamed from the client connection.
#[derive(Debug)]
pub struct ClientBody {
    stream: Arc<TcpStream>,
    buf: BytesMut,
    decoder: Decoder,
    /// Bytes of `100 Continue` still to send before reading.
    continue_left: &'static [u8],
    read_timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    slot: LeftoverSlot,
    /// Read to its proper end (not cut by an error).
    ended: bool,
}

impl ClientBody {
    /// A body delimited by `framing`, starting with what `buf` already holds.
    pub fn new(
        stream: Arc<TcpStream>,
        buf: BytesMut,
        framing: BodyFraming,
        expect_continue: bool,
        read_timeout: Duration,
        slot: LeftoverSlot,
    ) -> Self {
        let decoder = match framing {
            BodyFraming::None => Decoder::Done,
            BodyFraming::Length(n) => Decoder::Length(n),
            BodyFraming::Chunked => Decoder::Chunked(ChunkedDecoder::new()),
        };
        ClientBody {
            stream,
            buf,
            decoder,
            continue_left: if expect_continue { CONTINUE } else { b"" },
            read_timeout,
            sleep: None,
            slot,
            ended: framing == BodyFraming::None,
        }
    }

    /// Whether the body was read to its end.
    pub fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done)
    }

    /// The exact length still to come, when the client sent a Content-Length.
    pub fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Done => SizeHint::with_exact(0),
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Chunked(_) => SizeHint::default(),
        }
    }

    /// Reads the next frame.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if matches!(self.decoder, Decoder::Done) {
            return Poll::Ready(None);
        }
        // The client waits for this before sending its body.
        while !self.continue_left.is_empty() {
            match sock::poll_write(&self.stream, cx, &[IoSlice::new(self.continue_left)]) {
                Poll::Ready(Ok(n)) if n > 0 => self.continue_left = &self.continue_left[n..],
                Poll::Ready(_) => {
                    self.decoder = Decoder::Done;
                    return Poll::Ready(Some(Err(BodyError::Client("connection lost"))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        loop {
            let frame = match &mut self.decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(left) => {
                    if self.buf.is_empty() {
                        None
                    } else {
                        let n = (*left).min(self.buf.len() as u64);
                        *left -= n;
                        let data = self.buf.split_to(n as usize).freeze();
                        if *left == 0 {
                            self.decoder = Decoder::Done;
                            self.ended = true;
                        }
                        Some(Frame::data(data))
                    }
                }
                Decoder::Chunked(d) => match d.decode(&mut self.buf) {
                    Ok(Step::Data(b)) => Some(Frame::data(b)),
                    Ok(Step::Trailers(t)) => Some(Frame::trailers(t)),
                    Ok(Step::End) => {
                        self.decoder = Decoder::Done;
                        self.ended = true;
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => None,
                    Err(_) => {
                        self.decoder = Decoder::Done;
                        return Poll::Ready(Some(Err(BodyError::Client("invalid chunked body"))));
                    }
                },
            };
            if let Some(frame) = frame {
                if let Decoder::Chunked(d) = &self.decoder {
                    if d.is_done() {
                        self.decoder = Decoder::Done;
                        self.ended = true;
                    }
                }
                if let Some(s) = self.sleep.as_mut() {
                    s.as_mut().reset(Instant::now() + self.read_timeout);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            match sock::poll_fill(&self.stream, &mut self.buf, cx, sock::READ_RESERVE) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.decoder = Decoder::Done;
                    return Poll::Ready(Some(Err(BodyError::Client("client closed mid-body"))));
                }
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => {
                    let timeout = self.read_timeout;
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        self.decoder = Decoder::Done;
                        return Poll::Ready(Some(Err(BodyError::Client("client body timeout"))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        let left = Leftover {
            buf: std::mem::take(&mut self.buf),
            complete: self.ended,
        };
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(left);
        }
    }
}
