//! 0-RTT replay: a recorded first flight (Initial + 0-RTT) sent again to the server must not
//! run its request a second time, and non-idempotent requests in early data get
//! `425 Too Early` unless the server opts in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use quicksand_core::anti_replay::{AdmitAll, AntiReplay, SharedStrikeRegister};
use quicksand_core::{Connection, ConnectionContext, Event, QuicConfig, QuicSettings};
use quicksand_h3::{
    Body, ClientApplication, EarlyData, EarlyDataRequests, Http3Settings, RecvBody,
    ServerApplication,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{block_on, configs, quic_settings};
use quicksand_tests::pair::{Pair, SERVER_ADDR};

quicksand_tests::virtual_clock!();

/// What the server's handler saw: (method, path, arrived as early data) per call.
type Calls = Arc<Mutex<Vec<(String, String, bool)>>>;

fn server(settings: Http3Settings, calls: &Calls) -> ServerApplication {
    let calls = calls.clone();
    ServerApplication::with_service(settings, move |req: Request<RecvBody>| {
        calls.lock().unwrap().push((
            req.method().to_string(),
            req.uri().path().to_string(),
            req.extensions().get::<EarlyData>().is_some(),
        ));
        async { Response::new(Body::from("done")) }
    })
}

fn early_data_settings() -> QuicSettings {
    let mut settings = quic_settings();
    settings.enable_early_data = true;
    settings
}

/// A first connection that leaves the client with a session ticket; returns the configs.
fn resumable(clock: &VirtualTime, ctx: &ConnectionContext) -> (QuicConfig, QuicConfig) {
    let (mut cc, sc) = configs(early_data_settings(), early_data_settings());
    let calls = Calls::default();
    let (driver, client) = ClientApplication::new(Http3Settings::default());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        driver,
        server(Http3Settings::default(), &calls),
        Duration::from_millis(10),
    )
    .unwrap();
    pair.server_ctx = ctx.clone();
    let response = client
        .request(
            Request::get("https://localhost/warm-up")
                .body(Bytes::new())
                .unwrap(),
        )
        .unwrap();
    block_on(&mut pair, clock, Duration::from_secs(5), response)
        .expect("in time")
        .expect("a response");
    // Let the session ticket arrive.
    pair.run_until(clock, Duration::from_millis(200), |_| false)
        .unwrap();
    let session = pair.client.session().expect("a session ticket");
    cc.set_session(Some(session));
    (cc, pair.into_server_config())
}

/// Sends `request` as 0-RTT on a resumed connection; returns the response status, the
/// client's first flight (to replay) and the server config.
fn early_request(
    clock: &VirtualTime,
    ctx: &ConnectionContext,
    settings: Http3Settings,
    calls: &Calls,
    request: Request<Bytes>,
) -> (u16, Vec<Vec<u8>>, QuicConfig) {
    let (mut cc, sc) = resumable(clock, ctx);
    let (driver, client) = ClientApplication::new(Http3Settings::default());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        driver,
        server(settings, calls),
        Duration::from_millis(10),
    )
    .unwrap();
    pair.server_ctx = ctx.clone();
    pair.client_datagrams = Some(Vec::new());
    // Queued before the first packet: it goes out in 0-RTT with the Initial.
    let response = client.request(request).unwrap();
    let started = Instant::now();
    let response = block_on(&mut pair, clock, Duration::from_secs(5), response)
        .expect("in time")
        .expect("a response");
    assert!(
        pair.client_events
            .iter()
            .any(|(_, e)| *e == Event::EarlyData),
        "the client sent early data"
    );
    let first_flight = pair
        .client_datagrams
        .take()
        .unwrap()
        .into_iter()
        .filter(|(at, _)| *at == started)
        .map(|(_, d)| d)
        .collect();
    (
        response.status().as_u16(),
        first_flight,
        pair.into_server_config(),
    )
}

/// Feeds a recorded first flight to a fresh server connection (an attacker's replay, from
/// another address) and runs it for a second of virtual time; returns its events.
fn replay(
    clock: &VirtualTime,
    config: &mut QuicConfig,
    ctx: &ConnectionContext,
    app: ServerApplication,
    flight: &[Vec<u8>],
) -> Vec<Event> {
    let attacker = "192.0.2.66:5555".parse().unwrap();
    let now = Instant::now();
    let scid = ctx.cid_generator.generate();
    let mut conn = Connection::accept(
        now,
        config,
        &scid,
        None,
        SERVER_ADDR,
        attacker,
        ctx.clone(),
        app,
    )
    .expect("a server connection");
    for d in flight {
        conn.handle_datagram(
            now,
            quicksand_core::Datagram::new(&d[..], attacker, SERVER_ADDR, now),
        );
    }
    let mut events = Vec::new();
    let deadline = now + Duration::from_secs(1);
    while Instant::now() < deadline && !conn.is_closed() {
        let now = Instant::now();
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            conn.handle_timeout(now);
        }
        // The answers go nowhere: the attacker has no keys to continue.
        while conn.poll_transmit(now, 16).is_some() {}
        while let Some(e) = conn.poll_event() {
            events.push(e);
        }
        clock.advance(Duration::from_millis(10));
    }
    events
}

/// Runs an early POST and its replay with `anti_replay`; returns how often the handler ran
/// and the replayed connection's events.
fn post_then_replay(anti_replay: Arc<dyn AntiReplay>) -> (usize, Vec<Event>) {
    let clock = VirtualTime::enter();
    let mut ctx = ConnectionContext::default();
    ctx.anti_replay = anti_replay;
    // The server opts in to non-idempotent early requests, so only the replay record stands
    // between a replay that comes after the genuine flight and a second run.
    let settings = Http3Settings {
        early_data_requests: EarlyDataRequests::All,
        ..Http3Settings::default()
    };
    let calls = Calls::default();
    let post = Request::post("https://localhost/transfer")
        .body(Bytes::from_static(b"100 coins to mallory"))
        .unwrap();
    let (status, flight, mut config) = early_request(&clock, &ctx, settings.clone(), &calls, post);
    assert_eq!(status, 200);
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        [("POST".to_string(), "/transfer".to_string(), true)],
        "the POST ran once, as early data"
    );
    assert!(
        flight.len() >= 2,
        "Initial and 0-RTT: {} datagrams",
        flight.len()
    );
    let events = replay(&clock, &mut config, &ctx, server(settings, &calls), &flight);
    let runs = calls.lock().unwrap().len();
    (runs, events)
}

#[test]
fn a_replayed_early_data_post_is_not_run_twice() {
    let register = Arc::new(SharedStrikeRegister::default());
    let (runs, events) = post_then_replay(register.clone());
    assert_eq!(runs, 1, "the replayed POST ran again; events {events:?}");
    assert!(events.contains(&Event::EarlyDataHeld), "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::HandshakeCompleted { .. })));
    assert_eq!(register.refused(), 1);
}

#[test]
fn without_a_replay_record_quiche_runs_the_replay_again() {
    // What the record guards against: quiche alone accepts the replayed early data.
    let (runs, events) = post_then_replay(Arc::new(AdmitAll));
    assert_eq!(runs, 2, "events {events:?}");
    assert!(events.contains(&Event::EarlyData), "{events:?}");
}

#[test]
fn non_idempotent_early_requests_get_425_and_idempotent_ones_run() {
    let clock = VirtualTime::enter();
    let ctx = ConnectionContext::default();
    let calls = Calls::default();
    let post = Request::post("https://localhost/transfer")
        .body(Bytes::from_static(b"100 coins"))
        .unwrap();
    let (status, _, _) = early_request(&clock, &ctx, Http3Settings::default(), &calls, post);
    assert_eq!(status, 425);
    assert!(
        calls.lock().unwrap().iter().all(|(m, _, _)| m != "POST"),
        "the POST reached the handler: {:?}",
        calls.lock().unwrap()
    );

    let get = Request::get("https://localhost/balance")
        .body(Bytes::new())
        .unwrap();
    let (status, _, _) = early_request(&clock, &ctx, Http3Settings::default(), &calls, get);
    assert_eq!(status, 200);
    assert!(
        calls
            .lock()
            .unwrap()
            .contains(&("GET".to_string(), "/balance".to_string(), true)),
        "the GET ran as early data: {:?}",
        calls.lock().unwrap()
    );
}
