//! The core's connection worker end to end: two connections joined in memory, on virtual time.

use std::time::{Duration, SystemTime};

use quicksand_core::{
    CertificateSource, CloseReason, ConnectionParams, Event, NoApplication, QuicConfig,
    QuicSettings, Stage, TlsSettings,
};
use quicksand_tests::apps::{BulkTransfer, FailingApp};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

fn settings() -> QuicSettings {
    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"quicksand-test".to_vec()];
    settings.max_idle_timeout = Some(Duration::from_secs(5));
    settings
}

fn configs(settings: QuicSettings) -> (QuicConfig, QuicConfig) {
    let mut client = ConnectionParams::new(settings.clone());
    client.tls.verify_peer = false;
    let server = ConnectionParams {
        settings,
        tls: TlsSettings {
            certificate: Some(
                CertificateSource::self_signed(&["localhost"], SystemTime::now()).unwrap(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    (
        QuicConfig::client(&client).unwrap(),
        QuicConfig::server(&server).unwrap(),
    )
}

fn closed_reason(
    events: &[(std::time::Instant, Event)],
) -> Option<(std::time::Instant, CloseReason)> {
    events.iter().find_map(|(t, e)| match e {
        Event::Closed(r) => Some((*t, r.clone())),
        _ => None,
    })
}

#[test]
fn handshake_completes_and_reports_duration() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(settings());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        NoApplication,
        NoApplication,
        Duration::from_millis(20),
    )
    .unwrap();
    let done = pair
        .run_until(&clock, Duration::from_secs(2), |p| {
            p.client.stage() == Stage::Running
                && p.server
                    .as_ref()
                    .is_some_and(|s| s.stage() == Stage::Running)
        })
        .unwrap();
    assert!(done, "handshake did not complete");
    // A 1-RTT handshake over a 40 ms RTT: the client is done after one round trip.
    let client_hs = pair.client_events.iter().find_map(|(_, e)| match e {
        Event::HandshakeCompleted { duration, resumed } => Some((*duration, *resumed)),
        _ => None,
    });
    let (duration, resumed) = client_hs.expect("client handshake event");
    assert!(!resumed);
    assert!(
        duration >= Duration::from_millis(40) && duration < Duration::from_millis(100),
        "{duration:?}"
    );
    assert_eq!(pair.client.stats().handshake_duration, Some(duration));
    assert!(clock.elapsed() < Duration::from_secs(1));
}

#[test]
fn ten_megabytes_both_ways_byte_exact() {
    let clock = VirtualTime::enter();
    const LEN: u64 = 10 * 1024 * 1024;
    let (mut cc, sc) = configs(settings());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        BulkTransfer::new(false, LEN),
        BulkTransfer::new(true, LEN),
        Duration::from_millis(10),
    )
    .unwrap();
    let done = pair
        .run_until(&clock, Duration::from_secs(120), |p| {
            p.client.application().is_complete(LEN)
                && p.server
                    .as_ref()
                    .is_some_and(|s| s.application().is_complete(LEN))
        })
        .unwrap();
    let c = pair.client.application();
    let s = pair.server().application();
    assert!(
        done,
        "transfer incomplete: client sent {} received {}, server sent {} received {}",
        c.sent, c.received, s.sent, s.received
    );
    assert_eq!(c.mismatch, None);
    assert_eq!(s.mismatch, None);
    // Equal-size packets were batched for GSO.
    assert!(
        pair.gso_transmits > 0,
        "no transmit carried more than one segment"
    );
    let stats = pair.client.stats();
    assert!(stats.datagrams_sent >= stats.transmits);
    assert!(stats.quic.sent_bytes > LEN);
    eprintln!(
        "virtual {:?}, client {:?}, gso transmits {}",
        clock.elapsed(),
        stats.quic,
        pair.gso_transmits
    );
}

#[test]
fn close_with_application_code_reaches_the_peer() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(settings());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        NoApplication,
        NoApplication,
        Duration::from_millis(10),
    )
    .unwrap();
    assert!(pair
        .run_until(&clock, Duration::from_secs(2), |p| p
            .server
            .as_ref()
            .is_some_and(|s| s.stage() == Stage::Running))
        .unwrap());
    // A plain call by the connection's owner; it goes out with the next transmit.
    pair.client.close(true, 0x42, b"bye");
    assert!(pair
        .run_until(&clock, Duration::from_secs(5), |p| p.client.is_closed()
            && p.server().is_closed())
        .unwrap());
    let (_, client_reason) = closed_reason(&pair.client_events).unwrap();
    let (_, server_reason) = closed_reason(&pair.server_events).unwrap();
    assert_eq!(
        client_reason,
        CloseReason::Local {
            application: true,
            code: 0x42,
            reason: b"bye".to_vec()
        }
    );
    assert_eq!(
        server_reason,
        CloseReason::Peer {
            application: true,
            code: 0x42,
            reason: b"bye".to_vec()
        }
    );
    // Closing a closed connection does nothing.
    pair.client.close(true, 1, b"again");
    assert!(pair.client.is_closed());
    pair.step().unwrap();
    let closes = pair
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Closed(_)));
    assert_eq!(closes.count(), 1, "one close event");
}

#[test]
fn idle_timeout_fires_at_the_negotiated_time() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(settings());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        NoApplication,
        NoApplication,
        Duration::from_millis(10),
    )
    .unwrap();
    assert!(pair
        .run_until(&clock, Duration::from_secs(2), |p| p.client.stage()
            == Stage::Running
            && p.server
                .as_ref()
                .is_some_and(|s| s.stage() == Stage::Running))
        .unwrap());
    // Let the last ACKs settle, then note when the peers last heard each other.
    let settled = pair
        .run_until(&clock, Duration::from_millis(200), |_| false)
        .unwrap();
    assert!(!settled, "nothing should end the connection in 200 ms");
    let quiet_from = std::time::Instant::now();
    assert!(pair
        .run_until(&clock, Duration::from_secs(30), |p| p.client.is_closed()
            && p.server().is_closed())
        .unwrap());
    for events in [&pair.client_events, &pair.server_events] {
        let (at, reason) = closed_reason(events).unwrap();
        assert_eq!(reason, CloseReason::IdleTimeout);
        let idle = at - quiet_from;
        // 5 s after the last packet, which came at most 200 ms before `quiet_from`.
        assert!(
            idle >= Duration::from_millis(4_800) && idle <= Duration::from_millis(5_001),
            "closed after {idle:?}"
        );
    }
}

#[test]
fn handshake_timeout_closes_a_client_whose_server_is_silent() {
    let _clock = VirtualTime::enter();
    let (mut cc, _) = configs({
        let mut settings = settings();
        settings.handshake_timeout = Some(Duration::from_secs(3));
        settings.max_idle_timeout = Some(Duration::from_secs(60));
        settings
    });
    let start = std::time::Instant::now();
    let mut client = quicksand_core::Connection::connect(
        start,
        &mut cc,
        Some("localhost"),
        quicksand_tests::pair::CLIENT_ADDR,
        quicksand_tests::pair::SERVER_ADDR,
        Default::default(),
        NoApplication,
    )
    .unwrap();
    // Drive the client alone: everything it sends is lost.
    let clock = _clock;
    let mut closed_at = None;
    while closed_at.is_none() {
        let now = std::time::Instant::now();
        client.handle_timeout(now);
        while client.poll_transmit(now, 1).is_some() {}
        while let Some(e) = client.poll_event() {
            if let Event::Closed(r) = e {
                assert_eq!(r, CloseReason::HandshakeTimeout);
                closed_at = Some(now);
            }
        }
        match client.poll_timeout() {
            Some(t) => clock.advance_to(t),
            None => break,
        }
    }
    assert_eq!(closed_at.map(|t| t - start), Some(Duration::from_secs(3)));
    assert!(client.is_closed());
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn application_error_closes_with_its_code() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(settings());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        FailingApp::default(),
        NoApplication,
        Duration::from_millis(10),
    )
    .unwrap();
    assert!(pair
        .run_until(&clock, Duration::from_secs(2), |p| p.client.stage()
            == Stage::Running)
        .unwrap());
    pair.client.application_mut().fail_with =
        Some(quicksand_core::ApplicationError::new(0x10c, "boom"));
    assert!(pair
        .run_until(&clock, Duration::from_secs(5), |p| p
            .server
            .as_ref()
            .is_some_and(|s| s.is_closed())
            && p.client.is_closed())
        .unwrap());
    let expected = CloseReason::Local {
        application: true,
        code: 0x10c,
        reason: b"boom".to_vec(),
    };
    assert_eq!(pair.client.application().closed, Some(expected.clone()));
    assert_eq!(closed_reason(&pair.client_events).unwrap().1, expected);
    assert_eq!(
        closed_reason(&pair.server_events).unwrap().1,
        CloseReason::Peer {
            application: true,
            code: 0x10c,
            reason: b"boom".to_vec()
        }
    );
}

#[test]
fn close_during_handshake_ends_both_sides() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(settings());
    let mut pair = Pair::new(
        &mut cc,
        sc,
        NoApplication,
        NoApplication,
        Duration::from_millis(50),
    )
    .unwrap();
    // Let the server receive the first Initial, then close the client before it hears back.
    assert!(pair
        .run_until(&clock, Duration::from_secs(1), |p| p.server.is_some())
        .unwrap());
    assert_eq!(pair.client.stage(), Stage::Handshake);
    pair.client.close(false, 0x0, b"changed my mind");
    assert_eq!(pair.client.stage(), Stage::Closing);
    assert!(pair
        .run_until(&clock, Duration::from_secs(10), |p| p.client.is_closed()
            && p.server().is_closed())
        .unwrap());
    assert!(matches!(
        closed_reason(&pair.client_events).unwrap().1,
        CloseReason::Local {
            application: false,
            code: 0,
            ..
        }
    ));
    assert!(!pair
        .client_events
        .iter()
        .any(|(_, e)| matches!(e, Event::HandshakeCompleted { .. })));
}

#[test]
fn resumption_with_zero_rtt_data() {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs({
        let mut settings = settings();
        settings.enable_early_data = true;
        settings
    });
    let mut first = Pair::new(
        &mut cc,
        sc,
        NoApplication,
        NoApplication,
        Duration::from_millis(25),
    )
    .unwrap();
    // Run past the handshake so the client receives the session ticket.
    first
        .run_until(&clock, Duration::from_millis(500), |_| false)
        .unwrap();
    assert_eq!(first.client.stage(), Stage::Running);
    let session = first
        .client
        .session()
        .expect("a session ticket after the handshake");
    let sc = first.into_server_config();

    cc.set_session(Some(session));
    let mut second = Pair::new(
        &mut cc,
        sc,
        BulkTransfer::new(false, 1000),
        BulkTransfer::new(true, 1000),
        Duration::from_millis(25),
    )
    .unwrap();
    // Before any packet: the client can already write 0-RTT data.
    let mut first_flight = Vec::new();
    while let Some(t) = second.client.poll_transmit(std::time::Instant::now(), 16) {
        first_flight.push(t);
    }
    assert!(
        first_flight.len() >= 2,
        "Initial, then 0-RTT in the same wake-up"
    );
    assert!(second.client.quiche().is_in_early_data());
    assert_eq!(
        second.client.application().sent,
        1000,
        "the request went out as 0-RTT"
    );
    assert!(second
        .run_until(&clock, Duration::from_secs(2), |p| p
            .client
            .application()
            .is_complete(1000)
            && p.server
                .as_ref()
                .is_some_and(|s| s.application().is_complete(1000)))
        .unwrap());
    assert!(second
        .client_events
        .iter()
        .any(|(_, e)| *e == Event::EarlyData));
    assert!(second
        .client_events
        .iter()
        .any(|(_, e)| matches!(e, Event::HandshakeCompleted { resumed: true, .. })));
}
