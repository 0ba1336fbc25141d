//! Readiness-based socket I/O shared by both sides of the proxy. Working on
//! `&TcpStream` lets one task read a body and write an answer on the same
//! connection at once, without splitting it or taking a lock.

use bytes::BytesMut;
use std::io::{self, IoSlice};
use std::task::{ready, Context, Poll};
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
        match stream.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(stream.poll_read_ready(cx))?;
            }
            res => return Poll::Ready(res),
        }
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
