//! One request/response exchange on a backend connection, driven inline by
//! the request's own task: write the head, stream the request body (the
//! [`Pump`]) while waiting for the response head, then hand the response
//! body ([`UpstreamBody`]) to the client side, which reads it straight from
//! the connection and gives the connection back to the pool at its end.

use super::codec::{self, BodyFraming, CodecError, Parsed, ResponseHead};
use super::conn::Conn;
use super::pool::{Pool, PoolKey};
use crate::balancer::state::Load;
use crate::body::BodyError;
use crate::chunked::{ChunkedDecoder, Step};
use crate::pump::{Pump, PumpError};
use crate::sock::Sink;
use bytes::Bytes;
use http::Method;
use http_body::{Frame, SizeHint};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Writing to or reading from the backend failed.
    #[error("backend i/o: {0}")]
    Io(#[from] io::Error),
    /// The backend stopped reading for longer than write_timeout.
    #[error("backend stopped reading (write timeout)")]
    WriteTimeout,
    /// No response head within read_timeout after the request was sent.
    #[error("no response within read timeout")]
    ReadTimeout,
    /// The backend closed the connection before a whole response head.
    #[error("backend closed the connection ({0} bytes of a response head read)")]
    Closed(usize),
    /// The backend's answer is not valid HTTP/1.1.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The client's request body failed (or was too large).
    #[error("client body: {0}")]
    ClientBody(BodyError),
}

impl From<PumpError> for ExchangeError {
    fn from(e: PumpError) -> Self {
        match e {
            PumpError::Io(e) => ExchangeError::Io(e),
            PumpError::WriteTimeout => ExchangeError::WriteTimeout,
            PumpError::Body(b) => ExchangeError::ClientBody(b),
        }
    }
}

/// Writes all of `bytes`, failing after `write_timeout` without progress.
pub async fn write_all(
    conn: &Conn,
    mut bytes: &[u8],
    write_timeout: Duration,
) -> Result<(), ExchangeError> {
    // Fast path: the socket's send buffer takes the whole head at once.
    match conn.poll_write(
        &mut Context::from_waker(std::task::Waker::noop()),
        &[IoSlice::new(bytes)],
    ) {
        Poll::Ready(Ok(n)) if n == bytes.len() => return Ok(()),
        Poll::Ready(Ok(n)) => bytes = &bytes[n..],
        Poll::Ready(Err(e)) => return Err(e.into()),
        Poll::Pending => {}
    }
    let deadline = tokio::time::sleep(write_timeout);
    tokio::pin!(deadline);
    poll_fn(|cx| loop {
        if bytes.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match conn.poll_write(cx, &[IoSlice::new(bytes)]) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()))
            }
            Poll::Ready(Ok(n)) => {
                bytes = &bytes[n..];
                deadline.as_mut().reset(Instant::now() + write_timeout);
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(ExchangeError::WriteTimeout));
                }
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Waits for the response head while the request body (if any) keeps
/// flowing. `read_timeout` counts from the end of the request body: while a
/// slow upload is still being sent (guarded by write_timeout), waiting goes on.
pub async fn read_head(
    conn: &mut Conn,
    pump: &mut Option<Pump>,
    method: &Method,
    upgrade: bool,
    raw: bool,
    read_timeout: Duration,
) -> Result<ResponseHead, ExchangeError> {
    let deadline = tokio::time::sleep(read_timeout);
    tokio::pin!(deadline);
    poll_fn(|cx| {
        if let Some(p) = pump.as_mut().filter(|p| !p.is_done()) {
            match p.poll(&*conn, cx) {
                Poll::Ready(Ok(())) => deadline.as_mut().reset(Instant::now() + read_timeout),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {}
            }
        }
        loop {
            match codec::parse_response_head(&mut conn.buf, method, upgrade, raw, &mut conn.spans)?
            {
                Parsed::Head(h) => return Poll::Ready(Ok(h)),
                Parsed::Interim => continue,
                Parsed::Partial => {}
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(ExchangeError::Closed(conn.buf.len())))
                }
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => break,
            }
        }
        while deadline.as_mut().poll(cx).is_ready() {
            if pump.as_ref().is_none_or(Pump::is_done) {
                return Poll::Ready(Err(ExchangeError::ReadTimeout));
            }
            deadline.as_mut().reset(Instant::now() + read_timeout);
        }
        Poll::Pending
    })
    .await
}

#[derive(Debug)]
enum Decoder {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// A backend's response body, read straight from its connection. At a clean
/// end the connection goes back to the pool; an error or a drop mid-way
/// closes it (so a client going away cancels the upstream request).
#[derive(Debug)]
pub struct UpstreamBody {
    conn: Option<Box<Conn>>,
    decoder: Decoder,
    /// Boxed: it holds a request body, and is only there after an early answer.
    pump: Option<Box<Pump>>,
    keep_alive: bool,
    read_timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    home: Option<(Arc<Pool>, PoolKey)>,
    /// A failure reported on the next poll, so that what was already passed
    /// on is flushed to the client before its connection is cut.
    deferred: Option<BodyError>,
    /// The request counted in flight to its target until the body ends.
    load: Option<Load>,
}

impl UpstreamBody {
    /// A body with nothing in it (the answer to an upgrade).
    pub fn empty() -> Self {
        UpstreamBody {
            conn: None,
            decoder: Decoder::Done,
            pump: None,
            keep_alive: false,
            read_timeout: Duration::ZERO,
            sleep: None,
            home: None,
            deferred: None,
            load: None,
        }
    }

    /// The body after `head`, read from `conn`; `pump` is the rest of the
    /// request body if the answer came before all of it was sent.
    pub fn new(
        conn: Box<Conn>,
        head: &ResponseHead,
        pump: Option<Pump>,
        read_timeout: Duration,
        home: Option<(Arc<Pool>, PoolKey)>,
    ) -> Self {
        let decoder = match head.framing {
            BodyFraming::Empty => Decoder::Done,
            BodyFraming::Length(n) => Decoder::Length(n),
            BodyFraming::Chunked => Decoder::Chunked(ChunkedDecoder::new()),
            BodyFraming::UntilClose => Decoder::UntilClose,
        };
        let mut b = UpstreamBody {
            conn: Some(conn),
            decoder,
            pump: pump.filter(|p| !p.is_done()).map(Box::new),
            keep_alive: head.keep_alive,
            read_timeout,
            sleep: None,
            home,
            deferred: None,
            load: None,
        };
        if matches!(b.decoder, Decoder::Done) {
            b.finish();
        }
        b
    }

    /// Keeps the request counted in flight until the body ends.
    pub fn hold(&mut self, load: Option<Load>) {
        if !matches!(self.decoder, Decoder::Done) {
            self.load = load;
        }
    }

    /// Ends the exchange: the connection goes back to the pool when it is
    /// clean (whole request sent, whole response read, nothing extra).
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        self.load = None;
        let Some(conn) = self.conn.take() else { return };
        if self.keep_alive && self.pump.is_none() && conn.buf.is_empty() {
            if let Some((pool, key)) = self.home.take() {
                pool.give_back(key, conn);
            }
        }
        self.pump = None;
    }

    /// Closes the backend connection; the error surfaces on the next poll
    /// (the server flushes what it holds when a body is pending).
    fn fail(
        &mut self,
        cx: &mut Context<'_>,
        e: BodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.conn = None;
        self.pump = None;
        self.deferred = Some(e);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Whether the body has been read to its end.
    pub fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done)
    }

    /// Exact size when the backend sent a Content-Length.
    pub fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Done => SizeHint::with_exact(0),
            Decoder::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// Reads the next frame.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(e) = self.deferred.take() {
            self.decoder = Decoder::Done;
            return Poll::Ready(Some(Err(e)));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(p) = self.pump.as_mut() {
            match p.poll(&**conn, cx) {
                Poll::Ready(Ok(())) => self.pump = None,
                Poll::Ready(Err(e)) => {
                    tracing::debug!("request body after an early answer: {e}");
                    self.pump = None;
                    self.keep_alive = false;
                }
                Poll::Pending => {}
            }
        }
        loop {
            let frame = match &mut self.decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(left) => {
                    if conn.buf.is_empty() {
                        None
                    } else {
                        let n = (*left).min(conn.buf.len() as u64);
                        *left -= n;
                        Some(Frame::data(conn.buf.split_to(n as usize).freeze()))
                    }
                }
                Decoder::UntilClose => {
                    (!conn.buf.is_empty()).then(|| Frame::data(conn.buf.split().freeze()))
                }
                Decoder::Chunked(d) => match d.decode(&mut conn.buf) {
                    Ok(Step::Data(b)) => Some(Frame::data(b)),
                    Ok(Step::Trailers(t)) => Some(Frame::trailers(t)),
                    Ok(Step::End) => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => None,
                    Err(e) => return self.fail(cx, BodyError::Backend(e.to_string())),
                },
            };
            if let Some(frame) = frame {
                if let Some(s) = self.sleep.as_mut() {
                    s.as_mut().reset(Instant::now() + self.read_timeout);
                }
                let ended = match &self.decoder {
                    Decoder::Length(0) => true,
                    Decoder::Chunked(d) => d.is_done(),
                    _ => false,
                };
                if ended {
                    self.finish();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    if matches!(self.decoder, Decoder::UntilClose) {
                        self.keep_alive = false;
                        self.finish();
                        return Poll::Ready(None);
                    }
                    return self.fail(cx, BodyError::Backend("backend closed mid-body".into()));
                }
                Poll::Ready(Ok(_)) => continue,
                Poll::Ready(Err(e)) => return self.fail(cx, BodyError::Backend(e.to_string())),
                Poll::Pending => {
                    let timeout = self.read_timeout;
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        return self.fail(cx, BodyError::ReadTimeout);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
