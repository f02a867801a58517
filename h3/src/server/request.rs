//! What the server hands the application per request: the request with its body, and a
//! [`Responder`] to answer it.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{Request, Response};

use crate::body::{Body, BodySender, RecvBody};
use crate::error::{ErrorCode, SendError};
use crate::headers::{self, HeaderError};
use crate::shared::{Op, Outgoing, StreamSlot};

/// Request extension: the request arrived in 0-RTT early data, before the handshake completed.
/// A replayed ClientHello's early data never gets here (`quicksand_core::anti_replay`), and by
/// default only idempotent requests do (`EarlyDataRequests`); others were answered 425.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EarlyData;

/// Request extension: the QUIC stream id of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub u64);

/// A request the server accepted, with the means to answer it.
pub struct IncomingRequest {
    /// The request. Extensions: [`StreamId`], [`Priority`](crate::Priority), [`EarlyData`]
    /// when it came in 0-RTT, [`Protocol`](crate::Protocol) for extended CONNECT,
    /// [`DatagramFlow`](crate::DatagramFlow) when datagrams are enabled on an extended
    /// CONNECT, and an [`Informational`] sender.
    pub request: Request<RecvBody>,
    /// Answers the request.
    pub responder: Responder,
}

impl fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("method", self.request.method())
            .field("uri", self.request.uri())
            .finish_non_exhaustive()
    }
}

fn queue_head(slot: &StreamSlot, resp: Response<()>, final_head: bool) -> Result<(), SendError> {
    let status = resp.status();
    if final_head == status.is_informational() || status.as_u16() == 101 {
        return Err(SendError::Invalid(HeaderError::WrongStatusClass(
            status.as_u16(),
        )));
    }
    let fields = headers::response_fields(resp.into_parts().0).map_err(SendError::Invalid)?;
    if let Some(e) = slot.send_error() {
        return Err(SendError::Stream(e.clone()));
    }
    let already = if final_head {
        slot.final_queued.swap(true, Ordering::AcqRel)
    } else {
        slot.final_queued.load(Ordering::Acquire)
    };
    if already {
        return Err(SendError::InvalidState(
            "the final response was already sent",
        ));
    }
    slot.push(Op::Send(Outgoing::Head(fields)));
    Ok(())
}

/// Sends 1xx informational responses (e.g. 103 Early Hints) before the final one. A request
/// extension, so `Service` handlers can use it; cloneable.
#[derive(Clone)]
pub struct Informational {
    slot: Arc<StreamSlot>,
}

impl fmt::Debug for Informational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Informational")
    }
}

impl Informational {
    pub(crate) fn new(slot: Arc<StreamSlot>) -> Self {
        Informational { slot }
    }

    /// Queues a 1xx response (not 101). Fails once the final response was queued.
    pub fn send(&self, resp: Response<()>) -> Result<(), SendError> {
        queue_head(&self.slot, resp, false)
    }
}

/// Answers one request: optional 1xx responses, then the final response head, then the body
/// through a [`BodySender`]. Dropping it without a final response resets the stream with
/// H3_INTERNAL_ERROR.
pub struct Responder {
    slot: Arc<StreamSlot>,
    id: u64,
    answered: bool,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").field("id", &self.id).finish()
    }
}

impl Responder {
    pub(crate) fn new(slot: Arc<StreamSlot>, id: u64) -> Self {
        Responder {
            slot,
            id,
            answered: false,
        }
    }

    /// The request's stream id.
    pub fn stream_id(&self) -> u64 {
        self.id
    }

    /// Queues a 1xx informational response (e.g. 103 Early Hints).
    pub fn send_informational(&mut self, resp: Response<()>) -> Result<(), SendError> {
        queue_head(&self.slot, resp, false)
    }

    /// Queues the final response head; send the body through the returned sender, then
    /// `finish` it or send trailers.
    pub fn send_response(mut self, resp: Response<()>) -> Result<BodySender, SendError> {
        queue_head(&self.slot, resp, true)?;
        self.answered = true;
        Ok(BodySender::new(self.slot.clone(), ErrorCode::InternalError))
    }

    /// Sends a complete response, waiting on the body's backpressure.
    pub async fn respond(self, resp: Response<Body>) -> Result<(), SendError> {
        let (parts, body) = resp.into_parts();
        let sender = self.send_response(Response::from_parts(parts, ()))?;
        body.pipe(sender).await
    }

    /// Resets the stream (both directions) with `code` instead of answering.
    pub fn reset(mut self, code: u64) {
        self.answered = true;
        self.slot.push(Op::Reset(code));
        self.slot.push(Op::StopReading { code, eager: true });
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered && !self.slot.final_queued.load(Ordering::Acquire) {
            self.slot.push(Op::Reset(ErrorCode::InternalError.code()));
        }
    }
}
