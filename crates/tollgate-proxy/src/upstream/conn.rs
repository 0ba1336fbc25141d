//! One HTTP/1.1 connection to a backend: the socket (plain or TLS) and its
//! read buffer.
//!
//! Reads and writes go through the socket's readiness (`&TcpStream`), so the
//! request body can be written while the response is read, from the same
//! task, without a second task or a channel per request. A TLS connection
//! keeps its rustls state behind a mutex that only that task ever takes.

use crate::sock::{self, Sink, READ_RESERVE};
use bytes::BytesMut;
use std::io::{self, IoSlice, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tollgate_tls::rustls::ClientConnection;

/// An HTTP/1.1 connection to a backend.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    /// Bytes read from the backend and not consumed yet.
    pub buf: BytesMut,
    /// Requests already sent on this connection.
    pub uses: u32,
    /// When it last went idle in the pool.
    pub idle_since: Instant,
    /// Scratch space for parsing response heads.
    pub spans: Vec<(u32, u32, u32, u32)>,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsIo>),
}

/// A TLS session over a TCP socket, driven by the socket's readiness.
#[derive(Debug)]
struct TlsIo {
    tcp: TcpStream,
    state: Mutex<TlsState>,
}

#[derive(Debug)]
struct TlsState {
    tls: ClientConnection,
    /// Plaintext taken by the last `poll_write` whose records are not all
    /// sent yet: reported once they are.
    accepted: Option<usize>,
}

/// `Read`/`Write` over a tokio socket without waiting (WouldBlock when not
/// ready), for rustls's `read_tls`/`write_tls`.
struct NoWait<'a>(&'a TcpStream);

impl Read for NoWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NoWait<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl TlsIo {
    fn lock(&self) -> MutexGuard<'_, TlsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the records rustls has queued; Pending until all are out.
    fn poll_flush(&self, st: &mut TlsState, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while st.tls.wants_write() {
            match st.tls.write_tls(&mut NoWait(&self.tcp)) {
                Ok(_) => {}
                Err(e) if would_block(&e) => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_fill(&self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        const CHUNK: usize = 16 * 1024;
        let mut st = self.lock();
        loop {
            let start = buf.len();
            buf.resize(start + CHUNK, 0);
            let got = st.tls.reader().read(&mut buf[start..]);
            buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(n) => return Poll::Ready(Ok(n)),
                // Closed without close_notify: many servers do; an end of
                // stream like any other (framing decides if it was early).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) if would_block(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Alerts or key updates rustls wants to send go out first.
            if let Poll::Ready(Err(e)) = self.poll_flush(&mut st, cx) {
                return Poll::Ready(Err(e));
            }
            match st.tls.read_tls(&mut NoWait(&self.tcp)) {
                Ok(_) => {
                    if let Err(e) = st.tls.process_new_packets() {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if would_block(&e) => {
                    ready!(self.tcp.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let mut st = self.lock();
        loop {
            ready!(self.poll_flush(&mut st, cx))?;
            if let Some(n) = st.accepted.take() {
                return Poll::Ready(Ok(n));
            }
            let n = st.tls.writer().write_vectored(bufs)?;
            st.accepted = Some(n);
        }
    }

    fn is_usable(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.tcp.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                // Session tickets may arrive on an idle connection: read
                // them; anything else (data, close) makes it unusable.
                let mut st = self.lock();
                loop {
                    match st.tls.read_tls(&mut NoWait(&self.tcp)) {
                        Ok(0) => return false,
                        Ok(_) => {
                            if st.tls.process_new_packets().is_err() {
                                return false;
                            }
                        }
                        Err(e) if would_block(&e) => break,
                        Err(_) => return false,
                    }
                }
                let mut probe = [0u8; 1];
                matches!(st.tls.reader().read(&mut probe), Err(e) if would_block(&e))
            }
        }
    }
}

impl Conn {
    /// Wraps a freshly connected socket.
    pub fn new(stream: TcpStream) -> Self {
        Self::with_io(Io::Plain(stream))
    }

    /// Wraps a socket whose TLS handshake is done.
    pub fn tls(tcp: TcpStream, tls: ClientConnection) -> Self {
        Self::with_io(Io::Tls(Box::new(TlsIo {
            tcp,
            state: Mutex::new(TlsState {
                tls,
                accepted: None,
            }),
        })))
    }

    fn with_io(io: Io) -> Self {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_RESERVE),
            uses: 0,
            idle_since: Instant::now(),
            spans: Vec::new(),
        }
    }

    /// Reads more bytes into [`Conn::buf`]; `Ok(0)` is the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match &self.io {
            Io::Plain(s) => sock::poll_fill(s, &mut self.buf, cx, READ_RESERVE),
            Io::Tls(t) => t.poll_fill(&mut self.buf, cx),
        }
    }

    /// Whether an idle connection can carry a request: the backend has not
    /// closed it nor sent anything unasked. Costs no system call unless the
    /// socket was reported readable.
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let stream = match &self.io {
            Io::Plain(s) => s,
            Io::Tls(t) => return t.is_usable(),
        };
        let mut cx = Context::from_waker(Waker::noop());
        match stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(stream.try_read(&mut probe), Err(e) if would_block(&e))
            }
        }
    }

    /// The connection after a protocol switch, and any bytes already read
    /// past the response head: the plain socket itself, or, over TLS, this
    /// connection as a byte stream (its buffered bytes come first).
    pub fn into_switched(self: Box<Self>) -> (Box<dyn crate::downstream::Switched>, BytesMut) {
        match self.io {
            Io::Plain(s) => (Box::new(s), self.buf),
            Io::Tls(_) => (self, BytesMut::new()),
        }
    }
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            ready!(self.poll_fill(cx))?;
        }
        let n = self.buf.len().min(out.remaining());
        out.put_slice(&self.buf.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Sink::poll_write(&*self, cx, &[IoSlice::new(buf)])
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every write is sent before it is reported done.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(t) => {
                {
                    let mut st = t.lock();
                    st.tls.send_close_notify();
                    ready!(t.poll_flush(&mut st, cx))?;
                }
                std::pin::Pin::new(&mut t.tcp).poll_shutdown(cx)
            }
        }
    }
}

impl Sink for Conn {
    /// Writes some of `bufs`, returning how many bytes went out (over TLS:
    /// were sealed and sent).
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match &self.io {
            Io::Plain(s) => sock::poll_write(s, cx, bufs),
            Io::Tls(t) => t.poll_write(cx, bufs),
        }
    }
}
