//! The handler API: a [`Service`] answers a request with a response, and the application runs it.

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};

use super::request::Responder;
use crate::body::{Body, BoxFuture, RecvBody};

/// Answers requests: implemented for every `Fn(Request<RecvBody>) -> impl Future<Output =
/// Response<Body>>`, so `async fn handle(req: Request<RecvBody>) -> Response<Body>` is a
/// service.
pub trait Service: Send + Sync + 'static {
    /// The future of one response.
    type Future: Future<Output = Response<Body>> + Send + 'static;

    /// Handles one request.
    fn call(&self, request: Request<RecvBody>) -> Self::Future;
}

impl<F, Fut> Service for F
where
    F: Fn(Request<RecvBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    type Future = Fut;

    fn call(&self, request: Request<RecvBody>) -> Fut {
        self(request)
    }
}

/// A service with its types erased: request + responder in, one task out.
pub(crate) type Handler = Arc<dyn Fn(Request<RecvBody>, Responder) -> BoxFuture + Send + Sync>;

pub(crate) fn erase<S: Service>(service: S) -> Handler {
    let service = Arc::new(service);
    Arc::new(move |request, responder: Responder| {
        let service = service.clone();
        // The call happens inside the future, so that all of the handler's work (an `Fn` may
        // compute before it returns its future) runs where the future runs: a spawned
        // handler does not compute inside the connection.
        Box::pin(async move {
            let response = service.call(request).await;
            if let Err(e) = responder.respond(response).await {
                tracing::debug!(error = %e, "response not delivered");
            }
        })
    })
}
