//! HTTP/3 limits and lifecycle over the in-memory pair: bounded buffers with a slow reader,
//! GOAWAY with requests in flight, rapid reset, oversize headers, malformed requests,
//! concurrency and request-count limits, post-accept timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use http::{Request, Response, StatusCode};
use quicksand_core::QuicheConnection;
use quicksand_core::{quiche, CloseReason};
use quicksand_h3::{
    Body, ClientApplication, ErrorCode, H3Client, Http3Settings, IncomingRequests, RecvBody,
    RequestError, ServerApplication, StreamError,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{
    accept, block_on, configs, quic_settings, run_until, BareH3, BareH3Peer,
};
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

type H3Pair = Pair<ClientApplication, ServerApplication>;

fn pair(client: Http3Settings, server: Http3Settings) -> (H3Pair, H3Client, IncomingRequests) {
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (driver, handle) = ClientApplication::new(client);
    let (server, incoming) = ServerApplication::new(server);
    let pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    (pair, handle, incoming)
}

fn get(client: &H3Client, path: &str) -> quicksand_h3::ResponseFuture {
    client
        .request(
            Request::get(format!("https://localhost{path}"))
                .body(Bytes::new())
                .unwrap(),
        )
        .unwrap()
}

fn server_close(pair: &H3Pair) -> Option<CloseReason> {
    pair.server().application().close_reason().cloned()
}

#[test]
fn slow_reader_keeps_server_and_client_buffers_bounded() {
    let clock = VirtualTime::enter();
    const CAP: usize = 64 * 1024;
    const LEN: usize = 4 << 20;
    let settings = Http3Settings {
        stream_buffer_size: CAP,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(settings.clone(), settings);
    let response = get(&client, "/big");
    let req = block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next())
        .unwrap()
        .unwrap();
    // The server writes as fast as the sender lets it, in 16 KiB chunks.
    let mut sender = req
        .responder
        .send_response(Response::new(()))
        .expect("head queued");
    let writer = async move {
        let chunk = Bytes::from(vec![0xab; 16 * 1024]);
        for _ in 0..LEN / chunk.len() {
            sender.send_data(chunk.clone()).await.unwrap();
        }
        sender.finish().unwrap();
    };
    let mut writer = Box::pin(writer);
    let resp = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        futures::future::select(&mut writer, response).await
    })
    .unwrap();
    let resp = match resp {
        futures::future::Either::Right((r, _)) => r.unwrap(),
        futures::future::Either::Left(_) => panic!("writer finished before the head arrived"),
    };
    let mut body = resp.into_body();
    let mut received = 0;
    let mut writer_done = false;
    while received < LEN {
        // Read one chunk, then let 20 ms pass without reading.
        let (chunk, done) = block_on(&mut pair, &clock, Duration::from_secs(5), async {
            if writer_done {
                return (body.data().await, true);
            }
            match futures::future::select(&mut writer, Box::pin(body.data())).await {
                futures::future::Either::Left(((), _)) => (None, true),
                futures::future::Either::Right((c, _)) => (c, false),
            }
        })
        .unwrap();
        writer_done |= done;
        if let Some(c) = chunk {
            received += c.unwrap().len();
        }
        assert!(body.buffered() <= CAP);
        let until = Instant::now() + Duration::from_millis(20);
        run_until(&mut pair, &clock, Duration::from_millis(20), |_| {
            Instant::now() >= until
        });
    }
    assert_eq!(received, LEN);
    let s = pair.server().application().stats();
    let c = pair.client.application().stats();
    // At most the cap plus one chunk queued on the server; at most the cap read ahead on the
    // client: the rest waited in the peer's flow-control window.
    assert!(s.send_buffer_high_water <= CAP + 16 * 1024, "{s:?}");
    assert!(c.recv_buffer_high_water <= CAP, "{c:?}");
}

#[test]
fn goaway_lets_ten_in_flight_requests_finish() {
    let clock = VirtualTime::enter();
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), Http3Settings::default());
    let responses: Vec<_> = (0..10).map(|i| get(&client, &format!("/{i}"))).collect();
    let requests = accept(&mut pair, &clock, &mut incoming, 10);
    incoming.handle().goaway();
    run_until(&mut pair, &clock, Duration::from_millis(100), |_| false);
    assert!(pair.server().application().stats().goaway_sent);
    // A new request after GOAWAY is refused on the client, with a clear error.
    let late = client.request(
        Request::get("https://localhost/late")
            .body(Bytes::new())
            .unwrap(),
    );
    assert_eq!(late.err(), Some(RequestError::GoAway));
    for r in requests {
        let path = r.request.uri().path().to_string();
        let sender = r.responder.send_response(Response::new(())).unwrap();
        let mut sender = sender;
        block_on(
            &mut pair,
            &clock,
            Duration::from_secs(1),
            sender.send_data(Bytes::from(path)),
        )
        .unwrap()
        .unwrap();
        sender.finish().unwrap();
    }
    let bodies = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(5),
        join_all(responses.into_iter().map(|f| async move {
            let resp = f.await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.into_body().collect(1024).await.unwrap()
        })),
    )
    .unwrap();
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(&b[..], format!("/{i}").as_bytes());
    }
    // With nothing in flight the server closes the connection cleanly.
    assert!(run_until(&mut pair, &clock, Duration::from_secs(5), |p| p
        .server()
        .is_closed()));
    match server_close(&pair) {
        Some(CloseReason::Local {
            application: true,
            code,
            ..
        }) => {
            assert_eq!(code, ErrorCode::NoError.code())
        }
        other => panic!("unexpected close {other:?}"),
    }
}

/// The server closes once its responses are acknowledged; a client that has not read them
/// yet (its buffer cap stopped the driver; the rest sits in quiche) still gets every byte.
#[test]
fn responses_acked_before_a_graceful_close_are_delivered_whole() {
    let clock = VirtualTime::enter();
    const CAP: usize = 16 * 1024;
    const LEN: usize = 256 * 1024;
    let client_settings = Http3Settings {
        stream_buffer_size: CAP,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(client_settings, Http3Settings::default());
    let responses: Vec<_> = (0..3).map(|i| get(&client, &format!("/{i}"))).collect();
    let requests = accept(&mut pair, &clock, &mut incoming, 3);
    incoming.handle().goaway();
    for (i, r) in requests.into_iter().enumerate() {
        let mut sender = r.responder.send_response(Response::new(())).unwrap();
        sender
            .start_send(quicksand_tests::h3::pattern(i as u64, LEN))
            .unwrap();
        sender.finish().unwrap();
    }
    // Nobody reads the responses while the server delivers them and closes.
    assert!(run_until(&mut pair, &clock, Duration::from_secs(10), |p| p
        .server()
        .is_closed()
        && p.client.is_closed()));
    assert!(matches!(
        server_close(&pair),
        Some(CloseReason::Local {
            application: true,
            code: 0x100,
            ..
        })
    ));
    for (i, f) in responses.into_iter().enumerate() {
        let body = block_on(&mut pair, &clock, Duration::from_secs(1), async move {
            let resp = f.await.expect("response head");
            assert_eq!(resp.status(), StatusCode::OK);
            resp.into_body().collect(LEN).await
        })
        .expect("the body is buffered; no I/O needed");
        assert_eq!(
            body.expect("whole body"),
            quicksand_tests::h3::pattern(i as u64, LEN),
            "response {i}"
        );
    }
}

#[test]
fn rapid_reset_closes_the_connection_with_excessive_load() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        rapid_reset_threshold: 10,
        rapid_reset_window: Duration::from_secs(1),
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    let mut streams = Vec::new();
    for i in 0..30 {
        let req = Request::post(format!("https://localhost/{i}"))
            .body(())
            .unwrap();
        streams.push(client.send_request(req).unwrap());
    }
    // Let the requests reach the server (it holds them, never answering).
    // Held, never answered.
    let _held = accept(&mut pair, &clock, &mut incoming, 30);
    for (sender, _response) in streams.drain(..) {
        sender.reset(ErrorCode::RequestCancelled.code());
    }
    assert!(run_until(&mut pair, &clock, Duration::from_secs(5), |p| p
        .server()
        .is_closed()));
    match server_close(&pair) {
        Some(CloseReason::Local {
            application: true,
            code,
            ..
        }) => {
            assert_eq!(code, ErrorCode::ExcessiveLoad.code())
        }
        other => panic!("unexpected close {other:?}"),
    }
}

/// The HTTP/3 form of the attack: GETs (HEADERS with FIN) cancelled right after the server
/// took them, by dropping the response futures (H3_REQUEST_CANCELLED both ways).
#[test]
fn cancelled_gets_count_as_rapid_resets() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        rapid_reset_threshold: 10,
        rapid_reset_window: Duration::from_secs(1),
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    let responses: Vec<_> = (0..30).map(|i| get(&client, &format!("/{i}"))).collect();
    // Held, never answered.
    let _held = accept(&mut pair, &clock, &mut incoming, 30);
    drop(responses);
    assert!(run_until(&mut pair, &clock, Duration::from_secs(5), |p| p
        .server()
        .is_closed()));
    assert!(
        matches!(
            server_close(&pair),
            Some(CloseReason::Local { application: true, code, .. })
                if code == ErrorCode::ExcessiveLoad.code()
        ),
        "{:?}",
        server_close(&pair)
    );
}

/// A POST cancelled by dropping both its body sender and its response future brings
/// RESET_STREAM and STOP_SENDING: one cancelled request, counted once.
#[test]
fn a_cancelled_post_counts_once() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        rapid_reset_threshold: 10,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    let mut held = Vec::new();
    for i in 0..10 {
        let req = Request::post(format!("https://localhost/{i}"))
            .body(())
            .unwrap();
        let (sender, response) = client.send_request(req).unwrap();
        held.push(
            block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next())
                .unwrap()
                .unwrap(),
        );
        drop((sender, response));
        run_until(&mut pair, &clock, Duration::from_millis(50), |_| false);
    }
    assert!(!pair.server().is_closed());
    assert_eq!(pair.server().application().stats().recent_resets, 10);
}

#[test]
fn rapid_reset_below_the_threshold_is_tolerated() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        rapid_reset_threshold: 10,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    for i in 0..10 {
        let (sender, _resp) = client
            .send_request(
                Request::post(format!("https://localhost/{i}"))
                    .body(())
                    .unwrap(),
            )
            .unwrap();
        let _req = block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next()).unwrap();
        sender.reset(ErrorCode::RequestCancelled.code());
        run_until(&mut pair, &clock, Duration::from_millis(50), |_| false);
    }
    assert!(!pair.server().is_closed());
    assert_eq!(pair.server().application().stats().recent_resets, 10);
}

#[test]
fn oversize_request_headers_are_refused_before_sending() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        max_header_list_size: 1000,
        ..Default::default()
    };
    let (mut pair, client, _incoming) = pair(Http3Settings::default(), server);
    // Let SETTINGS arrive.
    run_until(&mut pair, &clock, Duration::from_millis(200), |_| false);
    let req = Request::get("https://localhost/")
        .header("x-big", "a".repeat(2000))
        .body(Bytes::new())
        .unwrap();
    let result = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(1),
        client.request(req).unwrap(),
    )
    .unwrap();
    match result {
        Err(RequestError::HeadersTooLarge { size, limit }) => {
            assert_eq!(limit, 1000);
            assert!(size > 2000);
        }
        other => panic!("expected HeadersTooLarge, got {other:?}"),
    }
}

#[test]
fn oversize_response_headers_close_the_connection() {
    let clock = VirtualTime::enter();
    let client_settings = Http3Settings {
        max_header_list_size: 1000,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(client_settings, Http3Settings::default());
    let response = get(&client, "/");
    let req = block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next())
        .unwrap()
        .unwrap();
    let resp = Response::builder()
        .header("x-big", "b".repeat(4000))
        .body(())
        .unwrap();
    req.responder.send_response(resp).unwrap().finish().unwrap();
    let result = block_on(&mut pair, &clock, Duration::from_secs(5), response).unwrap();
    // The request fails with the reason the connection closed for.
    let close_reason = pair.client.application().close_reason().cloned();
    assert!(close_reason.is_some());
    assert_eq!(
        result.err(),
        Some(RequestError::ConnectionClosed(close_reason))
    );
    match pair.client.application().close_reason() {
        Some(CloseReason::Local {
            application: true,
            code,
            ..
        }) => {
            assert_eq!(*code, ErrorCode::ExcessiveLoad.code())
        }
        other => panic!("unexpected close {other:?}"),
    }
}

#[test]
fn too_many_concurrent_requests_are_rejected() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        max_concurrent_streams: 3,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    let responses: Vec<_> = (0..5).map(|i| get(&client, &format!("/{i}"))).collect();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next()).unwrap());
    }
    let results = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        let mut out = Vec::new();
        for r in responses.into_iter().skip(3) {
            out.push(r.await);
        }
        out
    })
    .unwrap();
    for r in results {
        assert_eq!(
            r.err(),
            Some(RequestError::Stream(StreamError::ResetByPeer {
                code: ErrorCode::RequestRejected.code()
            }))
        );
    }
    assert_eq!(pair.server().application().stats().rejected, 2);
}

#[test]
fn max_requests_per_connection_sends_goaway() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        max_requests_per_connection: Some(2),
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    let responses: Vec<_> = (0..3).map(|i| get(&client, &format!("/{i}"))).collect();
    for _ in 0..2 {
        let r = block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next())
            .unwrap()
            .unwrap();
        r.responder
            .send_response(Response::new(()))
            .unwrap()
            .finish()
            .unwrap();
    }
    let results = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(5),
        join_all(responses),
    )
    .unwrap();
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(results[2].is_err(), "third request must be refused");
    assert!(pair.server().application().stats().goaway_sent);
}

#[test]
fn an_endless_post_accept_timeout_never_fires() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        post_accept_timeout: Some(Duration::MAX),
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(Http3Settings::default(), server);
    // Idle for a while (it used to overflow `Instant + Duration` and panic here)...
    run_until(&mut pair, &clock, Duration::from_secs(3), |_| false);
    assert!(!pair.server().is_closed());
    // ...and still serving.
    let response = get(&client, "/");
    let request = accept(&mut pair, &clock, &mut incoming, 1).remove(0);
    let respond = request
        .responder
        .respond(Response::new(quicksand_h3::Body::empty()));
    block_on(&mut pair, &clock, Duration::from_secs(5), respond)
        .expect("in time")
        .expect("sent");
    let head = block_on(&mut pair, &clock, Duration::from_secs(5), response);
    assert_eq!(
        head.expect("in time").expect("response").status(),
        StatusCode::OK
    );
}

#[test]
fn post_accept_timeout_closes_an_idle_connection() {
    let clock = VirtualTime::enter();
    let server = Http3Settings {
        post_accept_timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let (mut pair, _client, _incoming) = pair(Http3Settings::default(), server);
    assert!(run_until(&mut pair, &clock, Duration::from_secs(5), |p| p
        .server
        .as_ref()
        .is_some_and(|s| s.is_closed())));
    let elapsed = clock.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    match server_close(&pair) {
        Some(CloseReason::Local { code, .. }) => assert_eq!(code, ErrorCode::NoError.code()),
        other => panic!("unexpected close {other:?}"),
    }
}

#[test]
fn dropping_the_client_handle_closes_an_idle_connection() {
    let clock = VirtualTime::enter();
    let (mut pair, client, _incoming) = pair(Http3Settings::default(), Http3Settings::default());
    run_until(&mut pair, &clock, Duration::from_millis(200), |_| false);
    drop(client);
    assert!(run_until(&mut pair, &clock, Duration::from_secs(5), |p| p
        .client
        .is_closed()));
}

/// Sends one request without `:path` through quiche directly, then records the status.
#[derive(Default)]
struct RawClient {
    sent: bool,
    status: Option<Vec<u8>>,
}

impl BareH3Peer for RawClient {
    fn on_event(
        &mut self,
        _: &mut quiche::h3::Connection,
        _: &mut QuicheConnection,
        _: u64,
        event: quiche::h3::Event,
    ) {
        if let quiche::h3::Event::Headers { list, .. } = event {
            use quiche::h3::NameValue;
            self.status = list
                .iter()
                .find(|h| h.name() == b":status")
                .map(|h| h.value().to_vec());
        }
    }

    fn write(&mut self, h3: &mut quiche::h3::Connection, conn: &mut QuicheConnection) {
        if !self.sent {
            let headers = [
                quiche::h3::Header::new(b":method", b"GET"),
                quiche::h3::Header::new(b":scheme", b"https"),
                quiche::h3::Header::new(b":authority", b"localhost"),
            ];
            self.sent = h3.send_request(conn, &headers, true).is_ok();
        }
    }
}

#[test]
fn malformed_request_gets_400_and_never_reaches_the_handler() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (server, mut incoming) = ServerApplication::new(Http3Settings::default());
    let raw = BareH3::new(RawClient::default());
    let mut pair = Pair::new(&mut cc, sc, raw, server, Duration::from_millis(5)).unwrap();
    assert!(run_until(&mut pair, &clock, Duration::from_secs(5), |p| p
        .client
        .application()
        .peer
        .status
        .is_some()));
    assert_eq!(
        pair.client.application().peer.status.as_deref(),
        Some(&b"400"[..])
    );
    assert_eq!(pair.server().application().stats().malformed, 1);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(futures::Stream::poll_next(std::pin::Pin::new(&mut incoming), &mut cx).is_pending());
}

/// Counts its drops: held by a handler future, it tells when the future was dropped.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_cancelled_request_drops_its_handler() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (driver, client) = ClientApplication::new(Http3Settings::default());
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let service = {
        let (calls, drops) = (calls.clone(), drops.clone());
        move |_: Request<RecvBody>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let held = DropCounter(drops.clone());
            // Never answers: it would run for as long as the connection lives.
            async move {
                let _held = held;
                std::future::pending::<Response<Body>>().await
            }
        }
    };
    let server = ServerApplication::with_service(Http3Settings::default(), service);
    let mut pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    let response = get(&client, "/slow");
    assert!(run_until(
        &mut pair,
        &clock,
        Duration::from_secs(5),
        |_| calls.load(Ordering::SeqCst) == 1
    ));
    assert_eq!(pair.server().application().stats().handlers_running, 1);
    // The client gives up on the response (STOP_SENDING, and RESET_STREAM if needed).
    drop(response);
    assert!(
        run_until(&mut pair, &clock, Duration::from_secs(5), |_| drops
            .load(Ordering::SeqCst)
            == 1),
        "the handler of a cancelled request still runs"
    );
    let stats = pair.server().application().stats();
    assert_eq!((stats.handlers_running, stats.handlers_cancelled), (0, 1));
    assert!(!pair.server().is_closed());
}
