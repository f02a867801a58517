//! The client's handle ([`H3Client`]) and response futures.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};

use crate::body::{BodySender, RecvBody};
use crate::datagram::DatagramFlow;
use crate::error::{ErrorCode, RequestError};
use crate::headers::{self, Protocol};
use crate::shared::{lock, ConnShared, Outgoing, StreamShared};

/// A request waiting for a stream.
pub(crate) struct Pending {
    pub fields: Vec<crate::headers::Field>,
    pub shared: Arc<StreamShared>,
    pub end_stream: bool,
    pub extended_connect: bool,
}

/// Requests queued by handles, taken by the application.
#[derive(Default)]
pub(crate) struct Queue {
    pub pending: Mutex<VecDeque<Pending>>,
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
    ) -> Result<Arc<StreamShared>, RequestError> {
        let inner = &self.inner;
        if inner.conn.closed.load(Ordering::Acquire) {
            return Err(inner.conn.closed_error().into());
        }
        if inner.queue.goaway.load(Ordering::Acquire) {
            return Err(RequestError::GoAway);
        }
        let extended_connect = req.extensions.get::<Protocol>().is_some();
        let fields = headers::request_fields(req).map_err(RequestError::Invalid)?;
        let shared = StreamShared::new(inner.conn.clone(), inner.cap, inner.conn_cap);
        if let Some(b) = body {
            let mut st = shared.lock();
            if !b.is_empty() {
                st.send_buffered = b.len();
                st.send.push_back(Outgoing::Data(b));
            }
            st.send.push_back(Outgoing::Fin);
            st.send_closed = true;
        }
        lock(&inner.queue.pending).push_back(Pending {
            fields,
            shared: shared.clone(),
            end_stream,
            extended_connect,
        });
        inner.conn.wake_connection();
        Ok(shared)
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
        let shared = self.queue(req.into_parts().0, None, false)?;
        Ok((
            BodySender::new(shared.clone(), ErrorCode::RequestCancelled),
            ResponseFuture {
                shared,
                done: false,
            },
        ))
    }

    /// Sends a request with a complete body (empty for none).
    pub fn request(&self, req: Request<Bytes>) -> Result<ResponseFuture, RequestError> {
        let (parts, body) = req.into_parts();
        let end_stream = body.is_empty();
        let shared = self.queue(parts, (!end_stream).then_some(body), end_stream)?;
        Ok(ResponseFuture {
            shared,
            done: false,
        })
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
    shared: Arc<StreamShared>,
    done: bool,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("id", &self.shared.lock().id)
            .finish()
    }
}

impl ResponseFuture {
    /// The stream id, once the request went out.
    pub fn stream_id(&self) -> Option<u64> {
        self.shared.lock().id
    }

    /// Changes the request's priority (RFC 9218): the application sends a PRIORITY_UPDATE frame
    /// on the control stream, once the request has a stream. The server schedules the rest
    /// of the response by it. A later call replaces an update not sent yet.
    ///
    /// The initial priority is the request's `priority` header field (e.g. `u=1, i`).
    pub fn set_priority(&self, priority: crate::Priority) {
        self.shared.lock().priority_update = Some(priority);
        self.shared.wake();
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<RecvBody>, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.lock();
        let Some(head) = st.head.take() else {
            st.head_waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        let informational = std::mem::take(&mut st.informational);
        let flow = st.flow.take();
        drop(st);
        self.done = true;
        let head = head?;
        let (mut parts, ()) = head.into_parts();
        parts
            .extensions
            .insert(InformationalResponses(informational));
        if let Some(flow) = flow {
            parts.extensions.insert::<DatagramFlow>(flow);
        }
        let body = RecvBody::new(self.shared.clone(), ErrorCode::RequestCancelled);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

impl Drop for ResponseFuture {
    fn drop(&mut self) {
        if !self.done {
            let mut st = self.shared.lock();
            st.head_dropped = true;
            // Nobody will read the body either.
            st.recv_dropped = true;
            let buffered = std::mem::take(&mut st.recv_buffered);
            st.recv.clear();
            self.shared
                .conn
                .recv_buffered
                .fetch_sub(buffered, Ordering::AcqRel);
            if st.recv_end == crate::shared::RecvEnd::Open {
                st.recv_stop = Some(ErrorCode::RequestCancelled.code());
            }
            drop(st);
            self.shared.wake();
        }
    }
}
