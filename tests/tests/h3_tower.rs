//! The tower bridge (`quicksand_h3::TowerService`) over the in-memory pair: streaming bodies
//! both ways beyond the flow-control windows, trailers both ways, `poll_ready` back-pressure,
//! and failing or panicking services answered with a 500 on a connection that lives on.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::StreamBody;
use quicksand_h3::http_body::Frame;
use quicksand_h3::{
    ClientApplication, ConnectionInfo, H3Client, Http3Settings, RecvBody, ServerApplication,
    TowerService,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{block_on, configs, pattern, quic_settings};
use quicksand_tests::pair::Pair;
use tower::ServiceExt;

quicksand_tests::virtual_clock!();

type H3Pair = Pair<ClientApplication, ServerApplication>;

fn pair<S: quicksand_h3::Service>(service: S) -> (H3Pair, H3Client) {
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (driver, client) = ClientApplication::new(Http3Settings::default());
    let server = ServerApplication::with_service(Http3Settings::default(), service);
    let pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    (pair, client)
}

/// Echoes the request: its body streamed back as the response body, trailers included.
fn echo() -> impl tower::Service<
    Request<RecvBody>,
    Response = Response<RecvBody>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    tower::service_fn(|req: Request<RecvBody>| async move {
        assert!(req.extensions().get::<ConnectionInfo>().is_some());
        Ok::<_, Infallible>(Response::new(req.into_body()))
    })
}

/// GETs `path` and reads the whole body; a reset (of the head or the body) is the error.
fn get_whole(
    pair: &mut H3Pair,
    clock: &VirtualTime,
    client: &H3Client,
    path: &str,
) -> Result<Bytes, quicksand_h3::RequestError> {
    let get = Request::get(format!("https://localhost{path}"))
        .body(Bytes::new())
        .unwrap();
    block_on(pair, clock, Duration::from_secs(5), async {
        // The reset may overtake the head (quiche drops a reset stream's unread data).
        let mut body = client.request(get).unwrap().await?.into_body();
        body.collect(usize::MAX)
            .await
            .map_err(quicksand_h3::RequestError::from)
    })
    .expect("in time")
}

/// True if `result` is this stream reset by the server with H3_INTERNAL_ERROR (not a
/// connection error).
fn reset_internal_error(result: &Result<Bytes, quicksand_h3::RequestError>) -> bool {
    let code = quicksand_h3::ErrorCode::InternalError.code();
    matches!(
        result,
        Err(quicksand_h3::RequestError::Stream(
            quicksand_h3::StreamError::ResetByPeer { code: c }
        )) if *c == code
    )
}

async fn read(resp: Response<RecvBody>) -> (StatusCode, Bytes, Option<HeaderMap>) {
    let status = resp.status();
    let mut body = resp.into_body();
    let data = body.collect(usize::MAX).await.expect("response body");
    let trailers = body.trailers().await.expect("trailers");
    (status, data, trailers)
}

#[test]
fn bodies_stream_both_ways_beyond_the_flow_control_windows_with_trailers() {
    let clock = VirtualTime::enter();
    let (mut pair, client) = pair(TowerService::new(echo()));
    // 6 MiB: three times the 2 MiB stream window, so both directions wait for credit.
    let sent = pattern(3, 6 << 20);
    let (mut body, response) = client
        .send_request(Request::post("https://localhost/echo").body(()).unwrap())
        .unwrap();
    let upload = {
        let sent = sent.clone();
        async move {
            for chunk in sent.chunks(100_000) {
                body.send_data(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", "1234".parse().unwrap());
            body.send_trailers(trailers).unwrap();
        }
    };
    let (_, (status, echoed, trailers)) = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(60),
        futures::future::join(upload, async { read(response.await.unwrap()).await }),
    )
    .expect("in time");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "echo differs");
    let trailers = trailers.expect("the request's trailers, echoed");
    assert_eq!(trailers.get("x-checksum").unwrap(), "1234");
}

#[test]
fn a_streamed_response_with_trailers_from_an_http_body() {
    let clock = VirtualTime::enter();
    let service = tower::service_fn(|_: Request<RecvBody>| async {
        let data = futures::stream::iter(
            (0..50u64).map(|i| Ok::<_, Infallible>(Frame::data(pattern(i, 10_000)))),
        );
        let trailers = futures::stream::once(async {
            let mut t = HeaderMap::new();
            t.insert("x-frames", "50".parse().unwrap());
            Ok(Frame::trailers(t))
        });
        let frames = futures::StreamExt::chain(data, trailers);
        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
    });
    let (mut pair, client) = pair(TowerService::new(service));
    let get = Request::get("https://localhost/")
        .body(Bytes::new())
        .unwrap();
    let (status, data, trailers) = block_on(&mut pair, &clock, Duration::from_secs(10), async {
        read(client.request(get).unwrap().await.unwrap()).await
    })
    .expect("in time");
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<u8> = (0..50u64).flat_map(|i| pattern(i, 10_000)).collect();
    assert!(data == expected, "streamed body differs");
    assert_eq!(trailers.unwrap().get("x-frames").unwrap(), "50");
}

/// A service that is ready only while none of its calls runs (a concurrency limit of one, as
/// tower's `ConcurrencyLimit` would be), and counts how many calls ever ran at once.
#[derive(Clone, Default)]
struct OneAtATime {
    /// The slot, claimed in `poll_ready`.
    running: Arc<AtomicUsize>,
    /// Calls in progress, counted by the calls themselves: a caller that ignored `poll_ready`
    /// shows up here as overlap.
    calls: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    /// Callers waiting in `poll_ready`, woken when a call ends.
    waiting: Arc<Mutex<Vec<Waker>>>,
}

impl tower::Service<Request<RecvBody>> for OneAtATime {
    type Response = Response<http_body_util::Full<Bytes>>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        let mut waiting = self.waiting.lock().unwrap();
        // Claim the slot under the lock, so two ready callers cannot both get it.
        if self
            .running
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            Poll::Ready(Ok(()))
        } else {
            waiting.push(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, req: Request<RecvBody>) -> Self::Future {
        let now = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let (running, waiting, calls) = (
            self.running.clone(),
            self.waiting.clone(),
            self.calls.clone(),
        );
        Box::pin(async move {
            // Hold the call while the request body arrives.
            let mut body = req.into_body();
            let data = body.collect(usize::MAX).await.unwrap();
            let wake = std::mem::take(&mut *waiting.lock().unwrap());
            calls.fetch_sub(1, Ordering::SeqCst);
            running.store(0, Ordering::SeqCst);
            wake.into_iter().for_each(Waker::wake);
            Ok(Response::new(http_body_util::Full::new(data)))
        })
    }
}

#[test]
fn poll_ready_is_honoured() {
    let clock = VirtualTime::enter();
    let service = OneAtATime::default();
    let most = service.most.clone();
    let (mut pair, client) = pair(TowerService::new(service));
    let requests = (0..8u64).map(|i| {
        let post = Request::post("https://localhost/")
            .body(pattern(i, 300_000))
            .unwrap();
        let response = client.request(post).unwrap();
        async move { read(response.await.unwrap()).await }
    });
    let results = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(30),
        futures::future::join_all(requests),
    )
    .expect("in time");
    for (i, (status, data, _)) in results.into_iter().enumerate() {
        assert_eq!(status, StatusCode::OK);
        assert!(data == pattern(i as u64, 300_000), "request {i}");
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "calls overlapped despite poll_ready"
    );
}

#[test]
fn failing_and_panicking_services_answer_500_and_the_connection_lives_on() {
    let clock = VirtualTime::enter();
    let service = tower::service_fn(|req: Request<RecvBody>| async move {
        match req.uri().path() {
            "/error" => Err(std::io::Error::other("backend down")),
            "/panic" => panic!("handler bug"),
            _ => Ok(Response::new(http_body_util::Full::new(Bytes::from(
                "fine",
            )))),
        }
    });
    let (mut pair, client) = pair(TowerService::new(service));
    for (path, status) in [
        ("/error", StatusCode::INTERNAL_SERVER_ERROR),
        ("/panic", StatusCode::INTERNAL_SERVER_ERROR),
        ("/ok", StatusCode::OK),
        ("/panic", StatusCode::INTERNAL_SERVER_ERROR),
        ("/ok", StatusCode::OK),
    ] {
        let get = Request::get(format!("https://localhost{path}"))
            .body(Bytes::new())
            .unwrap();
        let got = block_on(&mut pair, &clock, Duration::from_secs(5), async {
            read(client.request(get).unwrap().await.unwrap()).await
        })
        .expect("in time");
        assert_eq!(got.0, status, "{path}");
    }
    assert!(!pair.client.is_closed());
}

#[test]
fn a_failing_response_body_resets_the_stream() {
    let clock = VirtualTime::enter();
    let service = tower::service_fn(|_: Request<RecvBody>| async {
        let frames = futures::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"partial"))),
            Err(std::io::Error::other("disk gone")),
        ]);
        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
    });
    let (mut pair, client) = pair(TowerService::new(service));
    // Twice: the first reset leaves the connection able to serve the next request.
    for _ in 0..2 {
        let result = get_whole(&mut pair, &clock, &client, "/");
        assert!(
            reset_internal_error(&result),
            "a truncated body must end in a stream reset: {result:?}"
        );
    }
    assert!(!pair.client.is_closed());
}

#[test]
fn tower_layers_compose() {
    // A layered service (a timeout-free stack of util combinators) still serves.
    let clock = VirtualTime::enter();
    let service = echo().map_response(|mut r: Response<RecvBody>| {
        r.headers_mut().insert("x-layered", "yes".parse().unwrap());
        r
    });
    let (mut pair, client) = pair(TowerService::new(service));
    let post = Request::post("https://localhost/")
        .body(Bytes::from_static(b"ping"))
        .unwrap();
    let resp = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        client.request(post).unwrap().await.unwrap()
    })
    .expect("in time");
    assert_eq!(resp.headers().get("x-layered").unwrap(), "yes");
    let body = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        // `http_body_util::BodyExt` works on `RecvBody` like on any `http_body::Body`.
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes()
    })
    .expect("in time");
    assert_eq!(body, "ping");
}

/// A body whose second frame panics.
struct PanickingBody(u8);

impl quicksand_h3::http_body::Body for PanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0 += 1;
        if self.0 > 1 {
            panic!("body bug");
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first")))))
    }
}

#[test]
fn a_panicking_response_body_resets_its_stream_and_nothing_else() {
    let clock = VirtualTime::enter();
    let service = tower::service_fn(|req: Request<RecvBody>| async move {
        if req.uri().path() == "/panic-body" {
            return Ok::<_, Infallible>(Response::new(http_body_util::Either::Left(
                PanickingBody(0),
            )));
        }
        let fine = http_body_util::Full::new(Bytes::from_static(b"fine"));
        Ok(Response::new(http_body_util::Either::Right(fine)))
    });
    let (mut pair, client) = pair(TowerService::new(service));
    let result = get_whole(&mut pair, &clock, &client, "/panic-body");
    assert!(
        reset_internal_error(&result),
        "a panicked body must end in a stream reset: {result:?}"
    );
    let get = Request::get("https://localhost/ok")
        .body(Bytes::new())
        .unwrap();
    let (status, body, _) = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        read(client.request(get).unwrap().await.unwrap()).await
    })
    .expect("in time");
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from_static(b"fine"))
    );
}
