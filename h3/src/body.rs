//! Message bodies: [`RecvBody`] (what the peer sends, a stream of `Bytes` with bounded
//! buffering), [`BodySender`] (what we send, with backpressure) and [`Body`] (a response body
//! a handler returns).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::HeaderMap;

use crate::error::{ErrorCode, SendError, StreamError};
use crate::headers;
use crate::shared::{Op, Outgoing, RecvEnd, StreamSlot};

/// The body of a received message: a [`Stream`] of `Bytes` chunks, then optional trailers.
///
/// Memory is bounded: the application stops reading from quiche while this body holds
/// `Http3Settings::stream_buffer_size` unread bytes (or the connection holds
/// `connection_buffer_size`), so QUIC flow control slows the peer down. Dropping the body
/// before its end asks the peer to stop sending (STOP_SENDING).
pub struct RecvBody {
    slot: Arc<StreamSlot>,
    done: bool,
    stop_code: u64,
}

impl fmt::Debug for RecvBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBody")
            .field("id", &self.slot.id())
            .finish_non_exhaustive()
    }
}

impl RecvBody {
    pub(crate) fn new(slot: Arc<StreamSlot>, stop_code: ErrorCode) -> Self {
        RecvBody {
            slot,
            done: false,
            stop_code: stop_code.code(),
        }
    }

    /// The next chunk; `None` at the end of the body. An error (reset by the peer, connection
    /// closed) is returned once, then `None`.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut received = self.slot.received();
        if let Some(chunk) = received.chunks.pop_front() {
            received.buffered -= chunk.len();
            let conn = &self.slot.conn;
            conn.recv_buffered.fetch_sub(chunk.len(), Ordering::AcqRel);
            let stream_blocked = std::mem::take(&mut received.blocked);
            drop(received);
            let conn_blocked = conn.recv_blocked.swap(false, Ordering::AcqRel);
            if stream_blocked || conn_blocked {
                // Room again: the application reads on (every stream left with bytes in
                // quiche is retried on each run, so a wake-up is all it needs).
                conn.wake_connection();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        match &received.end {
            RecvEnd::Open => {
                received.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            RecvEnd::Fin => {
                self.done = true;
                Poll::Ready(None)
            }
            RecvEnd::Error(e) => {
                self.done = true;
                Poll::Ready(Some(Err(e.clone())))
            }
        }
    }

    /// The trailers, taken once [`poll_data`](Self::poll_data) returned `None` (`None` if
    /// there were none, or they were taken).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.slot.received().trailers.take()
    }

    /// The next chunk; `None` at the end.
    pub async fn data(&mut self) -> Option<Result<Bytes, StreamError>> {
        std::future::poll_fn(|cx| self.poll_data(cx)).await
    }

    /// The trailers, once the body has been read to its end (`None` if there were none).
    /// Skips unread data.
    pub async fn trailers(&mut self) -> Result<Option<HeaderMap>, StreamError> {
        while let Some(chunk) = self.data().await {
            chunk?;
        }
        Ok(self.slot.received().trailers.take())
    }

    /// Reads the whole body into one buffer; fails with [`StreamError::ResetLocally`] (and
    /// stops the stream) if it grows beyond `limit` bytes.
    ///
    /// With `futures::StreamExt` or `http_body_util::BodyExt` in scope, their `collect`
    /// (which takes the body by value) is found first: call this one as
    /// `RecvBody::collect(&mut body, limit)`.
    pub async fn collect(&mut self, limit: usize) -> Result<Bytes, StreamError> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.data().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                self.stop(ErrorCode::ExcessiveLoad.code());
                return Err(StreamError::ResetLocally {
                    code: ErrorCode::ExcessiveLoad.code(),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Asks the peer to stop sending (STOP_SENDING with `code`) and discards what is buffered.
    pub fn stop(&mut self, code: u64) {
        self.stop_code = code;
        self.release(true);
        self.done = true;
    }

    /// Bytes buffered and not yet read.
    pub fn buffered(&self) -> usize {
        self.slot.received().buffered
    }

    /// Gives up the body. With `stop`, or when unread data is discarded, the peer is asked to
    /// stop sending at once. A body dropped with nothing unread is drained instead, and
    /// STOP_SENDING goes out only if body data does arrive: a request whose FIN follows its
    /// headers in a later packet (quinn's h3 sends it so) must not see its stream stopped
    /// under it, which clients report as a failed request though the response is complete.
    fn release(&mut self, stop: bool) {
        if self.done {
            // Read to its end (or stopped): nothing is buffered, nothing to stop.
            return;
        }
        let mut received = self.slot.received();
        if received.dropped {
            return;
        }
        received.dropped = true;
        let discarded = received.buffered > 0 || !received.chunks.is_empty();
        received.discard(&self.slot.conn);
        if received.end != RecvEnd::Open {
            // The body's end is known: nothing to stop.
            return;
        }
        let eager = stop || discarded;
        if eager {
            received.end = RecvEnd::Error(StreamError::ResetLocally {
                code: self.stop_code,
            });
        }
        drop(received);
        self.slot.push(Op::StopReading {
            code: self.stop_code,
            eager,
        });
    }
}

impl Stream for RecvBody {
    type Item = Result<Bytes, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_data(cx)
    }
}

impl Drop for RecvBody {
    fn drop(&mut self) {
        self.release(false);
    }
}

/// The sending half of a message body, with backpressure: [`send_data`](Self::send_data)
/// waits while `Http3Settings::stream_buffer_size` bytes are queued and not yet taken by
/// QUIC flow control.
///
/// Call order: `send_data` any number of times, then [`finish`](Self::finish) or
/// [`send_trailers`](Self::send_trailers). Dropping the sender before that resets the
/// stream (the message is incomplete).
pub struct BodySender {
    slot: Arc<StreamSlot>,
    ended: bool,
    drop_code: u64,
}

impl fmt::Debug for BodySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodySender")
            .field("id", &self.slot.id())
            .field("ended", &self.ended)
            .finish()
    }
}

impl BodySender {
    pub(crate) fn new(slot: Arc<StreamSlot>, drop_code: ErrorCode) -> Self {
        BodySender {
            slot,
            ended: false,
            drop_code: drop_code.code(),
        }
    }

    /// The error to return if the stream failed or the body was ended.
    fn check(&self) -> Result<(), SendError> {
        if self.ended {
            return Err(SendError::InvalidState("body already finished"));
        }
        match self.slot.send_error() {
            Some(e) => Err(SendError::Stream(e.clone())),
            None => Ok(()),
        }
    }

    /// Ready when a chunk may be queued; an error if the stream failed.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.check()?;
        if self.slot.poll_send_room(cx.waker()) {
            Poll::Ready(self.check())
        } else {
            Poll::Pending
        }
    }

    /// Queues a chunk without waiting (the buffer may go over its cap by this chunk); use
    /// after [`poll_ready`](Self::poll_ready) returned `Ready(Ok)`.
    pub fn start_send(&mut self, data: Bytes) -> Result<(), SendError> {
        self.check()?;
        if data.is_empty() {
            return Ok(());
        }
        self.slot.add_send(data.len());
        self.slot.push(Op::Send(Outgoing::Data(data)));
        Ok(())
    }

    /// Waits for buffer room, then queues `data`.
    pub async fn send_data(&mut self, data: Bytes) -> Result<(), SendError> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(data)
    }

    /// Ends the body with a trailer section.
    pub fn send_trailers(mut self, trailers: HeaderMap) -> Result<(), SendError> {
        let fields = headers::trailer_fields(trailers).map_err(SendError::Invalid)?;
        self.end(Outgoing::Trailers(fields))
    }

    /// Ends the body.
    pub fn finish(mut self) -> Result<(), SendError> {
        self.end(Outgoing::Fin)
    }

    fn end(&mut self, last: Outgoing) -> Result<(), SendError> {
        self.check()?;
        self.ended = true;
        self.slot.push(Op::Send(last));
        Ok(())
    }

    /// Aborts the body: RESET_STREAM with `code`.
    pub fn reset(mut self, code: u64) {
        self.abort(code);
    }

    fn abort(&mut self, code: u64) {
        self.ended = true;
        if self.slot.send_error().is_none() {
            self.slot.fail_send(StreamError::ResetLocally { code });
            self.slot.push(Op::Reset(code));
        }
    }

    /// Bytes queued and not yet accepted by QUIC.
    pub fn buffered(&self) -> usize {
        self.slot.send_buffered()
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        if !self.ended {
            let code = self.drop_code;
            self.abort(code);
        }
    }
}

/// A boxed stream of body chunks.
pub type BoxBodyStream =
    Pin<Box<dyn Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

/// A body to send, as a handler returns it: empty, one buffer, or a stream of chunks, with
/// optional trailers. A stream that yields an error resets the message (H3_INTERNAL_ERROR).
#[derive(Default)]
pub struct Body {
    kind: Kind,
    trailers: Option<HeaderMap>,
}

#[derive(Default)]
enum Kind {
    #[default]
    Empty,
    Full(Bytes),
    Stream(BoxBodyStream),
    /// Data and trailers as they come (from an `http_body::Body`).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    Frames(BoxFrameStream),
}

/// One piece of a body whose trailers come at its end, not up front.
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) enum Frame {
    Data(Bytes),
    Trailers(HeaderMap),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFrameStream = Pin<Box<dyn Stream<Item = Result<Frame, BoxError>> + Send>>;

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty".to_string(),
            Kind::Full(b) => format!("{} bytes", b.len()),
            Kind::Stream(_) | Kind::Frames(_) => "stream".to_string(),
        };
        f.debug_struct("Body")
            .field("kind", &kind)
            .field("trailers", &self.trailers)
            .finish()
    }
}

impl Body {
    /// No body.
    pub fn empty() -> Self {
        Body::default()
    }

    /// A body from a stream of chunks.
    pub fn from_stream<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        use futures_util::TryStreamExt;
        Body {
            kind: Kind::Stream(Box::pin(stream.map_err(Into::into))),
            trailers: None,
        }
    }

    /// A body of data frames and trailers as they come.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn from_frames(frames: BoxFrameStream) -> Self {
        Body {
            kind: Kind::Frames(frames),
            trailers: None,
        }
    }

    /// Adds trailers sent after the last chunk.
    pub fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        self.trailers = Some(trailers);
        self
    }

    /// True if nothing (no data, no trailers) is to be sent.
    pub fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Empty) && self.trailers.is_none()
    }

    /// Sends the whole body through `sender`, honouring its backpressure, then ends it.
    pub async fn pipe(self, mut sender: BodySender) -> Result<(), SendError> {
        let mut trailers = self.trailers;
        match self.kind {
            Kind::Empty => {}
            Kind::Full(b) => sender.send_data(b).await?,
            Kind::Stream(mut s) => {
                use futures_util::StreamExt;
                while let Some(chunk) = s.next().await {
                    match chunk {
                        Ok(b) => sender.send_data(b).await?,
                        Err(e) => {
                            tracing::debug!(error = %e, "body stream failed; resetting");
                            sender.reset(ErrorCode::InternalError.code());
                            return Ok(());
                        }
                    }
                }
            }
            Kind::Frames(mut s) => {
                use futures_util::StreamExt;
                while let Some(frame) = s.next().await {
                    match frame {
                        Ok(Frame::Data(b)) => sender.send_data(b).await?,
                        Ok(Frame::Trailers(t)) => trailers = Some(t),
                        Err(e) => {
                            tracing::debug!(error = %e, "body failed; resetting");
                            sender.reset(ErrorCode::InternalError.code());
                            return Ok(());
                        }
                    }
                }
            }
        }
        match trailers {
            Some(t) => sender.send_trailers(t),
            None => sender.finish(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body {
            kind: if b.is_empty() {
                Kind::Empty
            } else {
                Kind::Full(b)
            },
            trailers: None,
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::from(Bytes::from(v))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::from(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::from(Bytes::from(s))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Body::empty()
    }
}

/// A future that is `Send` and boxed.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
