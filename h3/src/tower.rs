//! Serving `tower` services over HTTP/3 (feature `tower`): axum routers, tonic services and
//! tower-http stacks run unchanged.
//!
//! [`TowerService`] turns any `tower::Service<http::Request<RecvBody>>` whose response body
//! is an [`http_body::Body`] into a quicksand [`Service`](crate::Service):
//! - request bodies are [`RecvBody`], which implements `http_body::Body` (data frames, then
//!   trailers; reading is back-pressured by QUIC flow control);
//! - response bodies are streamed frame by frame, trailers included;
//! - `poll_ready` is awaited before every call, on a clone of the service (as hyper does), so
//!   load-shedding and concurrency-limit layers work;
//! - an error from the service, or a panic in it, becomes a `500` and the connection lives
//!   on; an error in a response body after the head was sent resets the stream
//!   (H3_INTERNAL_ERROR);
//! - requests carry the usual extensions ([`ConnectionInfo`](crate::ConnectionInfo),
//!   [`EarlyData`](crate::EarlyData), [`StreamId`](crate::StreamId)).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! // With axum (not a dependency of this crate):
//! // let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
//! // quicksand_tokio::serve(addr, config, quicksand_h3::TowerService::new(app))?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame as HttpFrame, SizeHint};

use crate::body::Frame;
use crate::error::StreamError;
use crate::{Body, RecvBody};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl HttpBody for RecvBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<HttpFrame<Bytes>, StreamError>>> {
        let this = self.get_mut();
        match this.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(HttpFrame::data(data)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                Poll::Ready(this.take_trailers().map(|t| Ok(HttpFrame::trailers(t))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Body {
    /// A body streamed from any [`http_body::Body`]: data frames as they come, then its
    /// trailers. An error from it, or a panic in it, resets the stream (H3_INTERNAL_ERROR):
    /// the body runs inside the connection's endpoint task, which must outlive it.
    pub fn from_http_body<B>(body: B) -> Body
    where
        B: HttpBody + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return Body::empty();
        }
        let mut body = Box::pin(body);
        // Most responses are one buffer (`Full`, a string, JSON): take it at once and skip the
        // stream machinery. Polling with a no-op waker is fine: if the body is not ready, the
        // stream below polls it again with the task's waker.
        let first = match poll_guarded(
            body.as_mut(),
            &mut Context::from_waker(std::task::Waker::noop()),
        ) {
            Poll::Ready(None) => return Body::empty(),
            Poll::Ready(Some(frame)) => match convert(frame) {
                Some(Ok(Frame::Data(data))) if body.is_end_stream() => return Body::from(data),
                other => other,
            },
            Poll::Pending => None,
        };
        let frames = futures_util::stream::unfold((first, body), |(first, mut body)| async move {
            if let Some(item) = first {
                return Some((item, (None, body)));
            }
            loop {
                let frame = std::future::poll_fn(|cx| poll_guarded(body.as_mut(), cx)).await?;
                if let Some(item) = convert(frame) {
                    return Some((item, (None, body)));
                }
            }
        });
        Body::from_frames(Box::pin(frames))
    }
}

/// Polls `body` for a frame; a panic in it becomes an error frame, so it resets this stream
/// rather than unwinding the task that drives every connection of the socket.
fn poll_guarded<B>(
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<HttpFrame<B::Data>, BoxError>>>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    match std::panic::catch_unwind(AssertUnwindSafe(|| body.poll_frame(cx))) {
        Ok(Poll::Ready(Some(frame))) => Poll::Ready(Some(frame.map_err(Into::into))),
        Ok(Poll::Ready(None)) => Poll::Ready(None),
        Ok(Poll::Pending) => Poll::Pending,
        Err(_) => {
            tracing::error!("response body panicked; resetting its stream");
            Poll::Ready(Some(Err("the response body panicked".into())))
        }
    }
}

/// A frame of an `http_body::Body` as one of ours; `None` for a frame kind HTTP/3 does not
/// carry (none exists in http-body 1).
fn convert<D: Buf, E: Into<BoxError>>(
    frame: Result<HttpFrame<D>, E>,
) -> Option<Result<Frame, BoxError>> {
    match frame {
        Ok(frame) => match frame.into_data() {
            Ok(mut data) => Some(Ok(Frame::Data(data.copy_to_bytes(data.remaining())))),
            Err(frame) => frame.into_trailers().ok().map(|t| Ok(Frame::Trailers(t))),
        },
        Err(e) => Some(Err(e.into())),
    }
}

/// A `tower::Service` served as a quicksand [`Service`](crate::Service). See the module docs.
pub struct TowerService<S> {
    // Cloned per request; the lock makes services that are `Send` but not `Sync` servable.
    inner: Mutex<S>,
}

impl<S> TowerService<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        TowerService {
            inner: Mutex::new(service),
        }
    }
}

impl<S> std::fmt::Debug for TowerService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TowerService").finish_non_exhaustive()
    }
}

impl<S, B> crate::Service for TowerService<S>
where
    S: tower_service::Service<Request<RecvBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Future = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

    fn call(&self, request: Request<RecvBody>) -> Self::Future {
        // A poisoned lock only means a clone panicked; the service itself is intact.
        let cloned = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }));
        Box::pin(async move {
            let outcome = AssertUnwindSafe(async move {
                let mut service =
                    cloned.map_err(|_| BoxError::from("the service's clone panicked"))?;
                std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let response = service.call(request).await.map_err(Into::into)?;
                // Its first frame is polled here too, inside the guard.
                Ok::<_, BoxError>(response.map(Body::from_http_body))
            })
            .catch_unwind()
            .await;
            match outcome {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    // Peers can trigger this at will: debug, not warn.
                    tracing::debug!(error = %e, "service failed; answering 500");
                    internal_error()
                }
                Err(_) => {
                    tracing::error!("service panicked; answering 500");
                    internal_error()
                }
            }
        })
    }
}

fn internal_error() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
