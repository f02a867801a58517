//! The client's side of `h3_client`: the requests an input makes, as tasks that await and
//! read their responses, checking what the client hands out.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Method, Request, Response};
use quicksand_h3::{
    BodySender, DatagramFlow, H3Client, InformationalResponses, Priority, Protocol, RecvBody,
    ResponseFuture, MAX_INFORMATIONAL,
};
use quicksand_tests::pair::WakeFlag;

/// A request's part that runs until its outcome: awaiting and reading the response, or
/// streaming the request body.
struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    woken: Arc<WakeFlag>,
}

/// Every request task of a state, polled as an executor would: once when added, then when
/// woken. (Polling all of them after every pair step cost more than the steps once a state
/// held a few hundred requests the hostile server never answers.)
#[derive(Default)]
pub(super) struct Tasks(Vec<Task>);

impl Tasks {
    fn push(&mut self, future: impl Future<Output = ()> + 'static) {
        self.0.push(Task {
            future: Box::pin(future),
            woken: Arc::new(WakeFlag::set()),
        });
    }

    /// Polls the tasks woken since their last poll; drops those that finished.
    pub(super) fn poll_woken(&mut self) {
        self.0.retain_mut(|t| {
            if !t.woken.take() {
                return true;
            }
            let waker = Waker::from(t.woken.clone());
            t.future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        });
    }

    /// Polls every task, woken or not: after the close, when bodies held unread are read
    /// (nothing wakes them).
    pub(super) fn poll_all(&mut self) {
        for t in &self.0 {
            Waker::from(t.woken.clone()).wake();
        }
        self.poll_woken();
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// What every response the client hands out must satisfy.
fn check_response(resp: &Response<RecvBody>) {
    assert!(
        resp.status().as_u16() >= 200,
        "a 1xx handed out as the final response: {}",
        resp.status()
    );
    if let Some(info) = resp.extensions().get::<InformationalResponses>() {
        assert!(
            info.0.len() <= MAX_INFORMATIONAL,
            "{} 1xx kept",
            info.0.len()
        );
        assert!(info.0.iter().all(|r| r.status().is_informational()));
    }
}

/// Reads a response body: `mode % 4` is read all then the trailers, collect at most 100
/// bytes, drop at once, or hold it unread until the connection closed and then read all.
async fn read_body(mut body: RecvBody, mode: u8, closed: Rc<Cell<bool>>) {
    match mode % 4 {
        1 => {
            let _ = body.collect(100).await;
            return;
        }
        2 => return,
        3 => {
            poll_fn(|_| {
                if closed.get() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        }
        _ => {}
    }
    while let Some(chunk) = body.data().await {
        if chunk.is_err() {
            break;
        }
    }
    let _ = body.trailers().await;
}

/// Awaits a response, checks it and reads it; `keep` (a CONNECT's request body) lives until
/// the end, since dropping it would reset the stream.
async fn respond(fut: ResponseFuture, mode: u8, closed: Rc<Cell<bool>>, keep: Option<BodySender>) {
    let Ok(mut resp) = fut.await else {
        return;
    };
    check_response(&resp);
    let flow = resp.extensions_mut().remove::<DatagramFlow>();
    read_body(resp.into_body(), mode, closed).await;
    if let Some(flow) = flow {
        let _ = flow.send(Bytes::from_static(b"fuzz"));
        for _ in 0..8 {
            if flow.recv().await.is_none() {
                break;
            }
        }
    }
    drop(keep);
}

/// Streams a request body: `arg % 8` chunks of 1000 bytes, then by `(arg >> 3) % 4` FIN,
/// trailers, a reset, or dropping the sender.
async fn send_body(mut sender: BodySender, arg: u8) {
    for i in 0..arg % 8 {
        if sender.send_data(Bytes::from(vec![i; 1000])).await.is_err() {
            return;
        }
    }
    match (arg >> 3) % 4 {
        0 => {
            let _ = sender.finish();
        }
        1 => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-done", http::HeaderValue::from_static("1"));
            let _ = sender.send_trailers(trailers);
        }
        2 => sender.reset(0x10c),
        _ => drop(sender),
    }
}

/// Queues request `i` of kind `kind % 5` (GET, POST with a whole body of `arg * 257` bytes,
/// POST with a streamed body, extended CONNECT, GET cancelled after `arg % 32` polls) and
/// adds the tasks that drive it. `read` picks how the response body is read (`read_body`) and,
/// with bit 4, changes the request's priority.
pub(super) fn start_request(
    client: &H3Client,
    i: usize,
    (kind, arg, read): (u8, u8, u8),
    closed: &Rc<Cell<bool>>,
    tasks: &mut Tasks,
) {
    let uri = format!("https://localhost/{i}");
    let closed = closed.clone();
    let prioritize = |fut: &ResponseFuture| {
        if read & 0x10 != 0 {
            fut.set_priority(Priority {
                urgency: arg % 8,
                incremental: arg & 8 != 0,
            });
        }
    };
    match kind % 5 {
        0 | 1 => {
            let body = if kind % 5 == 0 {
                Bytes::new()
            } else {
                Bytes::from(vec![7u8; usize::from(arg) * 257])
            };
            let method = if body.is_empty() {
                Method::GET
            } else {
                Method::POST
            };
            let req = Request::builder().method(method).uri(uri).body(body);
            if let Ok(fut) = client.request(req.expect("a valid request")) {
                prioritize(&fut);
                tasks.push(respond(fut, read, closed, None));
            }
        }
        2 => {
            let req = Request::post(uri).body(()).expect("a valid request");
            if let Ok((sender, fut)) = client.send_request(req) {
                prioritize(&fut);
                tasks.push(send_body(sender, arg));
                tasks.push(respond(fut, read, closed, None));
            }
        }
        3 => {
            let mut req = Request::builder()
                .method(Method::CONNECT)
                .uri("https://localhost/.well-known/masque/udp/192.0.2.1/443/")
                .body(())
                .expect("a valid request");
            req.extensions_mut()
                .insert(Protocol("connect-udp".to_string()));
            if let Ok((sender, fut)) = client.send_request(req) {
                tasks.push(respond(fut, read, closed, Some(sender)));
            }
        }
        _ => {
            let req = Request::get(uri)
                .body(Bytes::new())
                .expect("a valid request");
            if let Ok(mut fut) = client.request(req) {
                prioritize(&fut);
                let mut polls = arg % 32;
                tasks.push(poll_fn(move |cx| {
                    if polls == 0 {
                        // Dropping the future here cancels the request.
                        return Poll::Ready(());
                    }
                    polls -= 1;
                    match Pin::new(&mut fut).poll(cx) {
                        Poll::Ready(Ok(resp)) => {
                            check_response(&resp);
                            Poll::Ready(())
                        }
                        Poll::Ready(Err(_)) => Poll::Ready(()),
                        Poll::Pending => {
                            // Counts polls, not wake-ups: polled again at every step.
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                    }
                }));
            }
        }
    }
}
