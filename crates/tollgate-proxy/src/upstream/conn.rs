//! One HTTP/1.1 connection to a backend: the socket and its read buffer.
//!
//! Reads and writes go through the socket's readiness (`&TcpStream`), so the
//! request body can be written while the response is read, from the same
//! task, without a second task or a channel per request.

use crate::sock::{self, READ_RESERVE};
use bytes::BytesMut;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, Waker};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An HTTP/1.1 connection to a backend.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes read from the backend and not consumed yet.
    pub buf: BytesMut,
    /// Requests already sent on this connection.
    pub uses: u32,
    /// When it last went idle in the pool.
    pub idle_since: Instant,
    /// Scratch space for parsing response heads.
    pub spans: Vec<(u32, u32, u32, u32)>,
}

impl Conn {
    /// Wraps a freshly connected socket.
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_RESERVE),
            uses: 0,
            idle_since: Instant::now(),
            spans: Vec::new(),
        }
    }

    /// Reads more bytes into [`Conn::buf`]; `Ok(0)` is the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        sock::poll_fill(&self.stream, &mut self.buf, cx, READ_RESERVE)
    }

    /// Writes some of `bufs`, returning how many bytes went out.
    pub fn poll_write(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        sock::poll_write(&self.stream, cx, bufs)
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether an idle connection can carry a request: the backend has not
    /// closed it nor sent anything unasked. Costs no system call unless the
    /// socket was reported readable.
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// The socket and any bytes already read past the response head (for a
    /// protocol switch).
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buf)
    }
}
