//! Readiness-based socket I/O shared by both sides of the proxy. Working on
//! `&TcpStream` lets one task read a body and write an answer on the same
//! connection at once, without splitting it or taking a lock.

use bytes::BytesMut;
use std::io::{self, IoSlice};
use std::task::{ready, Context, Poll};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Room kept free in a read buffer before each read.
pub const READ_RESERVE: usize = 16 * 1024;

/// Reads more bytes into `buf`, first making room for at least `reserve / 4`
/// bytes (growing by `reserve`); `Ok(0)` is the end of the stream.
pub fn poll_fill(
    stream: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
    reserve: usize,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < reserve / 4 {
        buf.reserve(reserve);
    }
    loop {
        let spare = buf.capacity() - buf.len();
        let mut got = 0;
        // A read shorter than the room offered drained the socket: tell the
        // reactor it is no longer readable (as nginx does with its `ready`
        // flag), so the next read waits for epoll instead of costing a
        // system call that can only answer EAGAIN.
        let res = stream.try_io(Interest::READABLE, || {
            got = stream.try_read_buf(buf)?;
            if got > 0 && got < spare {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        });
        match res {
            _ if got > 0 => return Poll::Ready(Ok(got)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(stream.poll_read_ready(cx))?;
            }
            res => return Poll::Ready(res),
        }
    }
}

/// Something a body can be written to, by readiness.
pub trait Sink {
    /// Writes some of `bufs`, returning how many bytes went out.
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
}

impl Sink for TcpStream {
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        poll_write(self, cx, bufs)
    }
}

/// Writes some of `bufs`, returning how many bytes went out.
pub fn poll_write(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        match stream.try_write_vectored(bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(stream.poll_write_ready(cx))?;
            }
            res => return Poll::Ready(res),
        }
    }
}
