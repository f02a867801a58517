//! The client's handle ([`H3Client`]) and response futures.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};

use crate::body::{BodySender, RecvBody};
use crate::datagram::DatagramFlow;
use crate::error::{ErrorCode, RequestError};
use crate::headers::{self, Protocol};
use crate::shared::{ConnShared, NewRequest, Op, StreamSlot};

/// What client handles share with the application besides the connection's queue.
#[derive(Default)]
pub(crate) struct Queue {
    /// The peer sent GOAWAY: refuse new requests.
    pub goaway: AtomicBool,
    /// Every handle was dropped.
    pub handles_gone: AtomicBool,
}

struct Inner {
    queue: Arc<Queue>,
    conn: Arc<ConnShared>,
    cap: usize,
    conn_cap: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.handles_gone.store(true, Ordering::Release);
        self.conn.wake_connection();
    }
}

/// A cloneable handle that sends requests on one connection. When every clone is dropped
/// and no request is in flight, the application closes the connection (H3_NO_ERROR).
#[derive(Clone)]
pub struct H3Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for H3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("H3Client")
    }
}

impl H3Client {
    pub(crate) fn new(
        queue: Arc<Queue>,
        conn: Arc<ConnShared>,
        cap: usize,
        conn_cap: usize,
    ) -> Self {
        H3Client {
            inner: Arc::new(Inner {
                queue,
                conn,
                cap,
                conn_cap,
            }),
        }
    }

    fn queue(
        &self,
        req: http::request::Parts,
        body: Option<Bytes>,
        end_stream: bool,
    ) -> Result<Arc<StreamSlot>, RequestError> {
        let inner = &self.inner;
        if inner.conn.closed.load(Ordering::Acquire) {
            return Err(inner.conn.closed_error().into());
        }
        if inner.queue.goaway.load(Ordering::Acquire) {
            return Err(RequestError::GoAway);
        }
        let extended_connect = req.extensions.get::<Protocol>().is_some();
        let fields = headers::request_fields(req).map_err(RequestError::Invalid)?;
        let key = inner.conn.next_key();
        let slot = StreamSlot::new(key, inner.conn.clone(), inner.cap, inner.conn_cap);
        if let Some(b) = &body {
            slot.add_send(b.len());
        }
        slot.push(Op::Request(Box::new(NewRequest {
            fields,
            slot: slot.clone(),
            end_stream,
            extended_connect,
            body,
        })));
        if inner.conn.is_closed_after_push() {
            // The application may have drained its queue for the last time before this
            // push: fail the request here (a second failure by the application is a no-op).
            slot.fail_with(RequestError::ConnectionClosed(inner.conn.close_reason()));
        }
        Ok(slot)
    }

    /// Sends a request whose body you stream through the returned [`BodySender`] (call
    /// `finish` on it; for a request without body use [`request`](Self::request)). The
    /// request waits for stream credit if the peer's stream limit is reached.
    ///
    /// Add a [`Protocol`] extension to a CONNECT request for extended CONNECT (RFC 9220);
    /// it waits for the peer's SETTINGS and fails if the peer did not enable it.
    pub fn send_request(
        &self,
        req: Request<()>,
    ) -> Result<(BodySender, ResponseFuture), RequestError> {
        let slot = self.queue(req.into_parts().0, None, false)?;
        Ok((
            BodySender::new(slot.clone(), ErrorCode::RequestCancelled),
            ResponseFuture { slot, done: false },
        ))
    }

    /// Sends a request with a complete body (empty for none).
    pub fn request(&self, req: Request<Bytes>) -> Result<ResponseFuture, RequestError> {
        let (parts, body) = req.into_parts();
        let end_stream = body.is_empty();
        let slot = self.queue(parts, (!end_stream).then_some(body), end_stream)?;
        Ok(ResponseFuture { slot, done: false })
    }

    /// GETs `url` (absolute, e.g. `https://example.com/x`) and reads the whole body.
    pub async fn get(&self, url: &str) -> Result<Response<Bytes>, RequestError> {
        let req = Request::get(url)
            .body(Bytes::new())
            .map_err(|_| RequestError::Invalid(headers::HeaderError::InvalidUri))?;
        let resp = self.request(req)?.await?;
        let (parts, mut body) = resp.into_parts();
        let bytes = body.collect(usize::MAX).await?;
        Ok(Response::from_parts(parts, bytes))
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.conn.closed.load(Ordering::Acquire)
    }
}

/// Response extension: the 1xx responses (e.g. 103 Early Hints) received before the final
/// one, in order.
#[derive(Clone, Debug, Default)]
pub struct InformationalResponses(pub Vec<Response<()>>);

/// The response to a request: resolves to the final head with a streaming body. Dropping it
/// before the response arrives cancels the request (H3_REQUEST_CANCELLED both ways).
pub struct ResponseFuture {
    slot: Arc<StreamSlot>,
    done: bool,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("id", &self.slot.id())
            .finish()
    }
}

impl ResponseFuture {
    /// The stream id, once the request went out.
    pub fn stream_id(&self) -> Option<u64> {
        self.slot.id()
    }

    /// Changes the request's priority (RFC 9218): the application sends a PRIORITY_UPDATE frame
    /// on the control stream, once the request has a stream. The server schedules the rest
    /// of the response by it. A later call replaces an update not sent yet.
    ///
    /// The initial priority is the request's `priority` header field (e.g. `u=1, i`).
    pub fn set_priority(&self, priority: crate::Priority) {
        self.slot.push(Op::Priority(priority));
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<RecvBody>, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut received = self.slot.received();
        let Some(head) = received.head.take() else {
            received.head_waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let informational = std::mem::take(&mut received.informational);
        let flow = received.flow.take();
        drop(received);
        self.done = true;
        let head = head?;
        let (mut parts, ()) = head.into_parts();
        parts
            .extensions
            .insert(InformationalResponses(informational));
        if let Some(flow) = flow {
            parts.extensions.insert::<DatagramFlow>(flow);
        }
        let body = RecvBody::new(self.slot.clone(), ErrorCode::RequestCancelled);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

impl Drop for ResponseFuture {
    fn drop(&mut self) {
        if !self.done {
            // Nobody will read the body either: the application hands over nothing more.
            let mut received = self.slot.received();
            received.dropped = true;
            received.discard(&self.slot.conn);
            drop(received);
            self.slot.push(Op::Cancel);
        }
    }
}
