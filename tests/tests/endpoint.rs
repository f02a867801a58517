//! The server endpoint: routing, address validation, version negotiation, stateless reset,
//! limits, shutdown and migration — over the simulator, on virtual time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use quicksand_core::driver::STATELESS_QUEUE;
use quicksand_core::endpoint::{TokenKind, TokenLifetimes};
use quicksand_core::metrics::{DropReason, RejectReason};
use quicksand_core::{
    AddressValidation, CloseReason, ConnectionIdGenerator, Datagram, DatagramEvent, Driver,
    Endpoint, EndpointConfig, EndpointEvent, Event, NoApplication, QuicLbConnectionIds, Stage,
};
use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::sim::{self, Direction, Fate, LinkConfig, Sim, SimConfig, SERVER};

quicksand_tests::virtual_clock!();

fn all_running<C: quicksand_core::Application, S: quicksand_core::Application>(
    s: &Sim<C, S>,
    n: usize,
) -> bool {
    s.client.len() == n
        && s.client.conns().all(|c| c.stage() == Stage::Running)
        && s.server.len() == n
        && s.server.conns().all(|c| c.stage() == Stage::Running)
}

fn bulk_sim(config: SimConfig, len: u64) -> Sim<BulkTransfer, BulkTransfer> {
    Sim::new(config, move |_| Some(BulkTransfer::new(true, len)))
}

#[test]
fn retry_round_trip_then_transfer() {
    sim::for_each_seed("retry_round_trip_then_transfer", 3, |seed| {
        let mut s = bulk_sim(SimConfig::new(seed), 100_000);
        s.connect(BulkTransfer::new(false, 100_000)).unwrap();
        assert!(s.run_until(Duration::from_secs(5), |s| {
            s.client
                .conns()
                .all(|c| c.application().is_complete(100_000))
                && s.server
                    .conns()
                    .all(|c| c.application().is_complete(100_000))
                && !s.server.is_empty()
        }));
        let stats = s.server.endpoint().stats();
        // The client's first flight may span two datagrams; each token-less one gets a RETRY.
        assert!(stats.retries >= 1 && stats.incoming == 1, "{stats:?}");
        assert_eq!(stats.tokens_rejected, 0);
    });
}

#[test]
fn without_address_validation_there_is_no_retry() {
    let mut config = SimConfig::new(1);
    config.server_endpoint.address_validation = AddressValidation::Never;
    let mut s = bulk_sim(config, 10);
    s.connect(BulkTransfer::new(false, 10)).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 1)));
    assert_eq!(s.server.endpoint().stats().retries, 0);
}

fn long_header(version: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0xc0];
    p.extend(version.to_be_bytes());
    p.push(8);
    p.extend([0xd1; 8]);
    p.push(4);
    p.extend([0x5c; 4]);
    p.resize(len, 0);
    p
}

fn endpoint(config: EndpointConfig) -> (Endpoint, Instant) {
    let (ep, _) = endpoint_with_metrics(config);
    (ep, Instant::now())
}

/// A server endpoint and the metrics its context counts into.
fn endpoint_with_metrics(
    config: EndpointConfig,
) -> (Endpoint, Arc<quicksand_core::metrics::CountingMetrics>) {
    let now = Instant::now();
    let (_, server) = sim::configs(&SimConfig::new(1).settings);
    let (ctx, metrics) = sim::context(7);
    let ep = Endpoint::new(
        config,
        Some(server),
        ctx,
        now,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
    .unwrap();
    (ep, metrics)
}

fn peer() -> SocketAddr {
    "192.0.2.7:4000".parse().unwrap()
}

#[test]
fn a_flood_of_answerable_packets_queues_a_bounded_number_of_answers() {
    let _clock = quicksand_tests::clock::VirtualTime::enter();
    // A rate above the flood, so the queue's cap is what bounds the answers here.
    let (ep, now) = endpoint(EndpointConfig {
        version_negotiation_rate: 100_000,
        ..EndpointConfig::default()
    });
    let mut driver: Driver<NoApplication> = Driver::new(
        ep,
        None,
        1,
        Arc::new(quicksand_tests::sim::WokenConnections::default()),
    );
    // Each unknown-version Initial of 1,200 bytes draws a version negotiation; nothing is
    // sent meanwhile (the socket is full).
    let flood = 10_000u16;
    for port in 0..flood {
        let from = SocketAddr::new(peer().ip(), 10_000 + port);
        let d = Datagram::new(&long_header(0x1a2a_3a4a, 1200)[..], from, SERVER, now);
        driver.handle_datagram(now, d);
    }
    assert_eq!(
        driver.stateless_dropped(),
        u64::from(flood) - STATELESS_QUEUE as u64
    );
    let mut sent = 0;
    while let Some(t) = driver.poll_transmit(now) {
        assert!(t.contents.len() < 1200, "never larger than its trigger");
        sent += 1;
    }
    assert_eq!(sent, STATELESS_QUEUE);
    // Once sent, new answers queue again.
    let d = Datagram::new(&long_header(0x1a2a_3a4a, 1200)[..], peer(), SERVER, now);
    driver.handle_datagram(now, d);
    assert!(driver.poll_transmit(now).is_some());
}

#[test]
fn unknown_versions_get_version_negotiation_and_small_ones_nothing() {
    let _clock = quicksand_tests::clock::VirtualTime::enter();
    let (mut ep, now) = endpoint(EndpointConfig::default());
    let event = ep.handle_datagram(
        now,
        Datagram::new(&long_header(0x1a2a_3a4a, 1200)[..], peer(), SERVER, now),
    );
    let Some(DatagramEvent::Respond(t)) = event else {
        panic!("expected a response, got {event:?}")
    };
    assert_eq!(t.destination, peer());
    let mut bytes = t.contents.to_vec();
    let hdr = quicksand_core::quiche::Header::from_slice(&mut bytes, 8).unwrap();
    assert_eq!(hdr.ty, quicksand_core::quiche::Type::VersionNegotiation);
    // CIDs swapped, and our version offered.
    assert_eq!(
        (hdr.dcid.as_ref(), hdr.scid.as_ref()),
        (&[0x5c; 4][..], &[0xd1; 8][..])
    );
    assert!(hdr
        .versions
        .unwrap()
        .contains(&quicksand_core::quiche::PROTOCOL_VERSION));
    assert!(
        t.contents.len() < 1200,
        "never larger than what triggered it"
    );
    // Too small to answer, and version negotiation packets themselves: silence.
    assert!(ep
        .handle_datagram(
            now,
            Datagram::new(&long_header(0x1a2a_3a4a, 1199)[..], peer(), SERVER, now)
        )
        .is_none());
    assert!(ep
        .handle_datagram(
            now,
            Datagram::new(&long_header(0, 1300)[..], peer(), SERVER, now)
        )
        .is_none());
    assert_eq!(ep.stats().version_negotiations, 1);
    assert_eq!(ep.connection_count(), 0);
}

#[test]
fn short_initials_and_stray_packets_are_dropped_with_reasons() {
    let _clock = quicksand_tests::clock::VirtualTime::enter();
    let (mut ep, now) = endpoint(EndpointConfig::default());
    assert!(ep
        .handle_datagram(
            now,
            Datagram::new(&long_header(1, 1100)[..], peer(), SERVER, now)
        )
        .is_none());
    let mut handshake = long_header(1, 1300);
    handshake[0] = 0xe0; // Handshake type for an unknown connection
    assert!(ep
        .handle_datagram(now, Datagram::new(&handshake[..], peer(), SERVER, now))
        .is_none());
    assert!(ep
        .handle_datagram(now, Datagram::new(&[][..], peer(), SERVER, now))
        .is_none());
    assert_eq!(ep.stats().dropped, 3);
}

#[test]
fn restarted_server_resets_the_client() {
    sim::for_each_seed("restarted_server_resets_the_client", 3, |seed| {
        let mut s = bulk_sim(SimConfig::new(seed), 10);
        s.connect(BulkTransfer::new(false, 10)).unwrap();
        assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 1)));
        s.run_for(Duration::from_millis(100));
        s.restart_server(|_| Some(BulkTransfer::new(true, 10)));
        // The client speaks; the new server knows nothing and resets it.
        s.client
            .for_each_mut(|conn| conn.quiche_mut().send_ack_eliciting().unwrap());
        assert!(s.run_until(Duration::from_secs(2), |s| s.client.is_empty()));
        assert_eq!(s.client.closed_reasons(), vec![CloseReason::StatelessReset]);
        assert_eq!(s.server.endpoint().stats().stateless_resets, 1);
        // Long before the idle timeout.
        assert!(Instant::now() - s.start < Duration::from_secs(3));
    });
}

#[test]
fn a_thousand_connections_route_through_cid_rotation_and_leave_no_entries() {
    let mut config = SimConfig::new(11);
    config.server_endpoint.address_validation = AddressValidation::Never;
    config.server_endpoint.max_handshakes = 2000;
    // All thousand come from the simulator's one client address at once.
    config.server_endpoint.max_handshakes_per_address = 1000;
    config.server_endpoint.max_handshakes_per_prefix = 1000;
    let mut s = Sim::new(config, |_| Some(NoApplication));
    for _ in 0..1000 {
        s.connect(NoApplication).unwrap();
    }
    assert!(s.run_until(Duration::from_secs(10), |s| all_running(s, 1000)));
    s.run_for(Duration::from_millis(200));
    let cids_before = s.server.endpoint().cid_count();
    // The client retires the server CID it started with: the server must retire it from
    // its table, issue a fresh one and keep routing.
    s.client.for_each_mut(|conn| {
        let q = conn.quiche_mut();
        assert!(q.available_dcids() > 0, "the server issued spare CIDs");
        q.retire_dcid(0).unwrap();
    });
    s.run_for(Duration::from_millis(200));
    s.client
        .for_each_mut(|conn| conn.quiche_mut().send_ack_eliciting().unwrap());
    s.run_for(Duration::from_millis(200));
    assert!(all_running(&s, 1000));
    let server_cids: Vec<_> = s
        .server
        .driver
        .connections()
        .map(|(h, c)| (h, c.source_ids()))
        .collect();
    for (handle, cids) in server_cids {
        for cid in cids {
            let routed = s.server.driver.endpoint_mut().handle_datagram(
                Instant::now(),
                Datagram::new(
                    &[&[0x40][..], &cid[..], &[0u8; 40][..]].concat()[..],
                    peer(),
                    SERVER,
                    Instant::now(),
                ),
            );
            assert!(matches!(routed, Some(DatagramEvent::Connection(h, _)) if h == handle));
        }
    }
    assert_eq!(s.server.endpoint().connection_count(), 1000);
    let cids_after = s.server.endpoint().cid_count();
    assert!(
        cids_after <= 1000 * 10 && cids_before <= 1000 * 10,
        "{cids_before} {cids_after}"
    );
    s.client.for_each_mut(|conn| conn.close(true, 0, b"done"));
    assert!(s.run_until(Duration::from_secs(10), |s| s.client.is_empty()
        && s.server.is_empty()));
    for ep in [s.client.endpoint(), s.server.endpoint()] {
        assert_eq!(
            (
                ep.connection_count(),
                ep.cid_count(),
                ep.handshakes_in_progress()
            ),
            (0, 0, 0)
        );
    }
    assert_eq!(
        s.server_metrics.connections_in_memory(),
        1000,
        "closed connections kept for inspection"
    );
    drop(s.server.driver.take_closed());
    assert_eq!(s.server_metrics.connections_in_memory(), 0);
}

#[test]
fn quic_lb_cids_name_their_server() {
    let mut s = Sim::new(SimConfig::new(3), |_| Some(NoApplication));
    let lb = Arc::new(QuicLbConnectionIds::with_seed(1, &[0x42, 0x07], 8, 3).unwrap());
    let decoder = lb.decoder();
    // Rebuild the server endpoint around the QUIC-LB generator.
    let mut ctx = s.server.endpoint().context().clone();
    ctx.cid_generator = lb.clone();
    s.replace_server(ctx, |_| Some(NoApplication));
    for _ in 0..20 {
        s.connect(NoApplication).unwrap();
    }
    assert!(s.run_until(Duration::from_secs(5), |s| all_running(s, 20)));
    s.run_for(Duration::from_millis(100));
    let mut seen = 0;
    for conn in s.server.conns() {
        for cid in conn.source_ids() {
            assert_eq!(cid.len(), lb.cid_len());
            assert_eq!(decoder.server_id(&cid), Some(&[0x42, 0x07][..]));
            seen += 1;
        }
    }
    assert!(seen > 20, "spare CIDs were issued too");
}

#[test]
fn backlog_limit_refuses_extra_handshakes() {
    let mut config = SimConfig::new(5);
    config.server_endpoint.address_validation = AddressValidation::Never;
    config.server_endpoint.max_handshakes = 3;
    let mut s = Sim::new(config, |_| Some(NoApplication));
    for _ in 0..5 {
        s.connect(NoApplication).unwrap();
    }
    // The first three get in; the others' Initials are dropped until room frees up.
    s.run_for(Duration::from_millis(15));
    assert_eq!(s.server.len(), 3);
    assert!(s.server_metrics.rejected(RejectReason::Backlog) >= 2);
    assert!(s.server_metrics.dropped(DropReason::Overloaded) >= 2);
    // Clients retransmit; once handshakes finish the rest are accepted.
    assert!(s.run_until(Duration::from_secs(5), |s| all_running(s, 5)));
}

#[test]
fn shutdown_refuses_new_connections_and_keeps_old_ones() {
    let mut s = bulk_sim(SimConfig::new(9), 0);
    s.connect(BulkTransfer::new(false, 0)).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 1)));
    s.server.driver.shutdown();
    s.connect(BulkTransfer::new(false, 0)).unwrap();
    s.run_for(Duration::from_secs(1));
    assert_eq!(s.server.len(), 1);
    assert!(s.server_metrics.dropped(DropReason::ShuttingDown) >= 1);
    // The established connection still works.
    let old = s.client.handles()[0];
    assert_eq!(
        s.client.driver.connection(old).unwrap().stage(),
        Stage::Running
    );
    assert_eq!(s.server.conns().next().unwrap().stage(), Stage::Running);
}

/// A server application that counts `on_shutdown` calls and, if `finish`, closes at once
/// with code 0x77 (as an application with nothing in flight would).
struct Graceful {
    finish: bool,
    told: Arc<Mutex<usize>>,
}

impl quicksand_core::Application for Graceful {
    fn process_reads(
        &mut self,
        _: &mut quicksand_core::QuicheConnection,
        _: Instant,
    ) -> Result<(), quicksand_core::ApplicationError> {
        Ok(())
    }

    fn process_writes(
        &mut self,
        _: &mut quicksand_core::QuicheConnection,
        _: Instant,
    ) -> Result<(), quicksand_core::ApplicationError> {
        Ok(())
    }

    fn on_shutdown(
        &mut self,
        conn: &mut quicksand_core::QuicheConnection,
        _: Instant,
    ) -> Result<(), quicksand_core::ApplicationError> {
        *self.told.lock().unwrap() += 1;
        if self.finish {
            conn.close(true, 0x77, b"finished").unwrap();
        }
        Ok(())
    }
}

#[test]
fn graceful_shutdown_is_the_applications_and_the_deadline_closes_with_no_error() {
    let told = Arc::new(Mutex::new(0));
    let mut accepted = 0;
    let server_told = told.clone();
    let mut s = Sim::new(SimConfig::new(12), move |_| {
        accepted += 1;
        Some(Graceful {
            finish: accepted == 1,
            told: server_told.clone(),
        })
    });
    s.connect(NoApplication).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 1)));
    s.connect(NoApplication).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 2)));

    s.server.driver.shutdown();
    s.run_for(Duration::from_secs(1));
    assert_eq!(
        *told.lock().unwrap(),
        2,
        "every application hears of the shutdown once"
    );
    // The first application finished and closed; the second one keeps its connection open.
    assert_eq!(s.server.len(), 1);
    let reasons = s.client.closed_reasons();
    assert!(
        matches!(
            reasons[..],
            [CloseReason::Peer {
                application: true,
                code: 0x77,
                ..
            }]
        ),
        "{reasons:?}"
    );

    // The deadline: what is left closes with the application's shutdown close, here the
    // default, NO_ERROR at the transport level.
    assert_eq!(s.server.driver.close_for_shutdown(), 1);
    // Now closing: a second deadline pass counts nothing (the forced-close count of a
    // shutdown report is of connections that were still open).
    assert_eq!(s.server.driver.close_for_shutdown(), 0);
    s.run_for(Duration::from_secs(1));
    assert!(s.server.is_empty());
    let reasons = s.client.closed_reasons();
    assert!(
        matches!(
            reasons[1..],
            [CloseReason::Peer {
                application: false,
                code: 0,
                ..
            }]
        ),
        "{reasons:?}"
    );
    assert!(reasons[1].is_clean());
}

#[test]
fn nat_rebinding_keeps_the_connection() {
    sim::for_each_seed("nat_rebinding_keeps_the_connection", 3, |seed| {
        const LEN: u64 = 2_000_000;
        let mut s = bulk_sim(SimConfig::new(seed), LEN);
        s.connect(BulkTransfer::new(false, LEN)).unwrap();
        assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 1)));
        s.run_for(Duration::from_millis(30));
        s.net.rebind(
            quicksand_sim::ClientId::FIRST,
            "10.0.0.99:61000".parse().unwrap(),
        );
        assert!(s.run_until(Duration::from_secs(30), |s| {
            s.client.conns().all(|c| c.application().is_complete(LEN))
                && s.server.conns().all(|c| c.application().is_complete(LEN))
        }));
        assert!(s.server.events.iter().any(|(_, _, e)| matches!(
            e,
            Event::Path(quicksand_core::PathEvent::PeerMigrated { .. })
        )));
    });
}

#[test]
fn expired_retry_tokens_are_refused() {
    let mut config =
        SimConfig::new(2).with_link(LinkConfig::with_latency(Duration::from_millis(100)));
    config.server_endpoint.token_lifetimes = TokenLifetimes {
        retry: Duration::from_millis(50),
        ..Default::default()
    };
    let mut s = Sim::new(config, |_| Some(NoApplication));
    s.connect(NoApplication).unwrap();
    s.run_for(Duration::from_secs(1));
    assert!(s.server.is_empty());
    assert!(s.server_metrics.rejected(RejectReason::ExpiredToken) >= 1);
}

#[test]
fn retry_tokens_from_another_address_are_refused() {
    let mut s = Sim::new(SimConfig::new(4), |_| Some(NoApplication));
    // The client's public address changes between the RETRY and its answer.
    s.connect(NoApplication).unwrap();
    assert!(s.run_until(Duration::from_secs(1), |s| s
        .server
        .endpoint()
        .stats()
        .retries
        >= 1));
    s.net.rebind(
        quicksand_sim::ClientId::FIRST,
        "10.0.0.77:4242".parse().unwrap(),
    );
    s.run_for(Duration::from_millis(500));
    assert!(s.server_metrics.rejected(RejectReason::WrongAddress) >= 1);
    assert!(s.server.is_empty());
}

#[test]
fn forged_retry_token_in_an_initial_is_dropped() {
    let mut s = Sim::new(SimConfig::new(6), |_| Some(NoApplication));
    // Capture the client's Initials, then flip a bit inside the RETRY token of one.
    let captured: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let sink = captured.clone();
    s.observer = Some(Box::new(move |_, dir, _, bytes, fate| {
        if dir == Direction::ToServer && fate == Fate::Sent {
            sink.lock().unwrap().push(bytes.to_vec());
        }
    }));
    s.connect(NoApplication).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| all_running(s, 1)));
    let packets = captured.lock().unwrap().clone();
    let with_token = packets
        .iter()
        .find(|p| p[0] & 0xf0 == 0xc0 && token_range(p).is_some_and(|r| !r.is_empty()))
        .expect("an Initial carrying the RETRY token");
    let range = token_range(with_token).unwrap();
    assert_eq!(
        quicksand_core::endpoint::TokenKeys::claimed_kind(&with_token[range.clone()]),
        Some(TokenKind::Retry)
    );
    let mut forged = with_token.clone();
    forged[range.end - 3] ^= 0x10;
    // On the live server its DCID routes to the connection (quiche then rejects the altered
    // packet); an endpoint without that connection shows the token check itself.
    let (mut fresh, now) = endpoint(EndpointConfig::default());
    assert!(fresh
        .handle_datagram(now, Datagram::new(&forged[..], sim::CLIENT, SERVER, now))
        .is_none());
    assert_eq!(fresh.stats().tokens_rejected, 1);
    assert_eq!(
        (fresh.stats().retries, fresh.connection_count()),
        (0, 0),
        "a bad RETRY token gets no new RETRY"
    );
}

/// A datagram on the wire: when, which way, how big, and its fate.
type WireEntry = (Instant, Direction, usize, Fate);

/// The byte range of an Initial's token.
fn token_range(p: &[u8]) -> Option<std::ops::Range<usize>> {
    let dcid_len = *p.get(5)? as usize;
    let at = 6 + dcid_len;
    let scid_len = *p.get(at)? as usize;
    let at = at + 1 + scid_len;
    let first = *p.get(at)?;
    let (len, n) = match first >> 6 {
        0 => (u64::from(first & 0x3f), 1),
        1 => (
            u64::from(u16::from_be_bytes([first & 0x3f, *p.get(at + 1)?])),
            2,
        ),
        _ => return None,
    };
    Some(at + n..at + n + len as usize)
}

#[test]
fn server_never_sends_more_than_three_times_what_it_received_before_validation() {
    sim::for_each_seed(
        "server_never_sends_more_than_three_times_what_it_received_before_validation",
        3,
        |seed| {
            let mut config = SimConfig::new(seed);
            config.server_endpoint.address_validation = AddressValidation::Never;
            let mut s = Sim::new(config, |_| Some(NoApplication));
            // Client packets 2..=7 are lost: the server cannot validate the address for a while.
            s.net.filter = Some(Box::new(|dir, index, _| {
                dir == Direction::ToServer && (1..=6).contains(&index)
            }));
            let log: Arc<Mutex<Vec<WireEntry>>> = Arc::default();
            let sink = log.clone();
            s.observer = Some(Box::new(move |now, dir, _, bytes, fate| {
                sink.lock().unwrap().push((now, dir, bytes.len(), fate))
            }));
            s.connect(NoApplication).unwrap();
            assert!(s.run_until(Duration::from_secs(10), |s| all_running(s, 1)));
            let validated_at = s
                .server
                .events
                .iter()
                .find_map(|(t, _, e)| matches!(e, Event::HandshakeCompleted { .. }).then_some(*t))
                .unwrap();
            let latency = s.config().to_server.latency;
            let log = log.lock().unwrap();
            let mut sent = 0usize;
            for &(t, _, len, _) in log
                .iter()
                .filter(|e| e.1 == Direction::ToClient && e.0 < validated_at)
            {
                sent += len;
                let received: usize = log
                    .iter()
                    .filter(|e| {
                        e.1 == Direction::ToServer && e.3 == Fate::Sent && e.0 + latency <= t
                    })
                    .map(|e| e.2)
                    .sum();
                assert!(
                    sent <= 3 * received,
                    "at {:?}: sent {sent} > 3 × received {received}",
                    t - s.start
                );
            }
            assert!(sent > 0);
        },
    );
}

/// A client's first Initial, as quiche builds it (no token).
fn first_initial() -> Vec<u8> {
    let (mut client, _) = sim::configs(&SimConfig::new(1).settings);
    let now = Instant::now();
    let mut conn = quicksand_core::Connection::connect(
        now,
        &mut client,
        Some("localhost"),
        sim::CLIENT,
        SERVER,
        Default::default(),
        NoApplication,
    )
    .unwrap();
    let t = conn.poll_transmit(now, 1).unwrap();
    let first = t.datagrams().next().unwrap().to_vec();
    first
}

/// The same Initial with `token` in its header (the packet's protection no longer verifies,
/// but the endpoint decides before decryption, which is what these tests observe).
fn with_token(initial: &[u8], token: &[u8]) -> Vec<u8> {
    let range = token_range(initial).unwrap();
    assert!(range.is_empty(), "quiche sends no token in a first Initial");
    let mut p = initial[..range.start - 1].to_vec();
    assert!(token.len() < 16_384);
    p.extend(((token.len() as u16) | 0x4000).to_be_bytes());
    p.extend(token);
    p.extend(&initial[range.end..]);
    p
}

#[test]
fn a_new_token_skips_the_retry_round_trip() {
    let _clock = quicksand_tests::clock::VirtualTime::enter();
    let (mut ep, now) = endpoint(EndpointConfig::default());
    let initial = first_initial();
    // Without a token: RETRY.
    let plain = ep.handle_datagram(now, Datagram::new(&initial[..], sim::CLIENT, SERVER, now));
    assert!(matches!(plain, Some(DatagramEvent::Respond(_))));
    assert_eq!(ep.stats().retries, 1);
    // With a NEW_TOKEN token minted for this client's IP (any port): straight in, validated.
    let token = ep.mint_new_token(now, sim::CLIENT);
    let returning: SocketAddr = SocketAddr::new(sim::CLIENT.ip(), 61_000);
    let event = ep.handle_datagram(
        now,
        Datagram::new(&with_token(&initial, &token)[..], returning, SERVER, now),
    );
    let Some(DatagramEvent::NewConnection(incoming)) = event else {
        panic!("expected a new connection, got {event:?}");
    };
    assert!(incoming.is_validated());
    assert_eq!(ep.stats().retries, 1, "no second RETRY");
}

#[test]
fn bad_new_tokens_fall_back_to_retry() {
    let clock = quicksand_tests::clock::VirtualTime::enter();
    let mut config = EndpointConfig::default();
    config.token_lifetimes.new_token = Duration::from_secs(60);
    let (mut ep, now) = endpoint(config);
    let initial = first_initial();
    let token = ep.mint_new_token(now, sim::CLIENT);
    // From another IP: refused, counted, answered with RETRY as if there were no token.
    let stranger: SocketAddr = "192.0.2.99:5000".parse().unwrap();
    let event = ep.handle_datagram(
        now,
        Datagram::new(&with_token(&initial, &token)[..], stranger, SERVER, now),
    );
    assert!(matches!(event, Some(DatagramEvent::Respond(_))));
    // Too old: the same.
    clock.advance(Duration::from_secs(61));
    let later = Instant::now();
    let event = ep.handle_datagram(
        later,
        Datagram::new(
            &with_token(&initial, &token)[..],
            sim::CLIENT,
            SERVER,
            later,
        ),
    );
    assert!(matches!(event, Some(DatagramEvent::Respond(_))));
    assert_eq!((ep.stats().tokens_rejected, ep.stats().retries), (2, 2));
}

#[test]
fn version_negotiation_and_retry_answers_are_rate_limited() {
    let clock = quicksand_tests::clock::VirtualTime::enter();
    let (mut ep, metrics) = endpoint_with_metrics(EndpointConfig {
        version_negotiation_rate: 10,
        retry_rate: 5,
        ..EndpointConfig::default()
    });
    let answered = |ep: &mut Endpoint, packet: &[u8], n: u16| {
        let now = Instant::now();
        (0..n)
            .filter(|i| {
                let from = SocketAddr::new(peer().ip(), 20_000 + i);
                let d = Datagram::new(packet, from, SERVER, now);
                match ep.handle_datagram(now, d) {
                    Some(DatagramEvent::Respond(t)) => {
                        // An answer of its own size, not a 64 KiB send buffer.
                        assert!(t.contents.len() <= 1200);
                        true
                    }
                    _ => false,
                }
            })
            .count()
    };
    let unknown_version = long_header(0x1a2a_3a4a, 1200);
    let initial = first_initial();
    // A burst at one instant: the bucket's size answers, the rest is dropped and counted.
    assert_eq!(answered(&mut ep, &unknown_version, 50), 10);
    assert_eq!(answered(&mut ep, &initial, 20), 5);
    assert_eq!(ep.stats().version_negotiations, 10);
    assert_eq!(ep.stats().retries, 5);
    assert_eq!(metrics.dropped(DropReason::RateLimited), 40 + 15);
    // The buckets refill with time: half a second, half the rate.
    clock.advance(Duration::from_millis(500));
    assert_eq!(answered(&mut ep, &unknown_version, 50), 5);
    assert_eq!(answered(&mut ep, &initial, 20), 2);
}

#[test]
fn one_address_or_network_cannot_fill_the_accept_backlog() {
    let _clock = quicksand_tests::clock::VirtualTime::enter();
    let (mut ep, _) = endpoint_with_metrics(EndpointConfig {
        max_handshakes_per_address: 3,
        max_handshakes_per_prefix: 5,
        ..EndpointConfig::default()
    });
    // A validated Initial (NEW_TOKEN token, a fresh DCID) from `from`: accepted into a
    // handshake, or not.
    let try_from = |ep: &mut Endpoint, from: &str| {
        let now = Instant::now();
        let from: SocketAddr = from.parse().unwrap();
        let token = ep.mint_new_token(now, from);
        let packet = with_token(&first_initial(), &token);
        match ep.handle_datagram(now, Datagram::new(&packet[..], from, SERVER, now)) {
            Some(DatagramEvent::NewConnection(incoming)) => {
                Some(ep.accept(now, incoming, NoApplication).unwrap().0)
            }
            _ => None,
        }
    };
    let first: Vec<_> = (0..3)
        .map(|i| try_from(&mut ep, &format!("198.51.100.7:{}", 4000 + i)))
        .collect();
    assert!(first.iter().all(Option::is_some), "three from one address");
    assert_eq!(
        try_from(&mut ep, "198.51.100.7:5000"),
        None,
        "a fourth is refused"
    );
    // Its /24 has room for two more, then is full too; another network is not affected.
    assert!(try_from(&mut ep, "198.51.100.8:4000").is_some());
    assert!(try_from(&mut ep, "198.51.100.9:4000").is_some());
    assert_eq!(try_from(&mut ep, "198.51.100.10:4000"), None);
    assert!(try_from(&mut ep, "203.0.113.1:4000").is_some());
    assert_eq!(ep.stats().rejected(RejectReason::AddressQuota), 2);
    // A handshake that completes frees its place.
    let done = first[0].expect("accepted");
    ep.handle_event(
        done,
        EndpointEvent::Established {
            peer_reset_token: None,
        },
    );
    assert!(try_from(&mut ep, "198.51.100.7:6000").is_some());
}

#[test]
fn under_load_address_validation_retries_only_while_handshakes_pile_up() {
    let _clock = quicksand_tests::clock::VirtualTime::enter();
    let (mut ep, _) = endpoint(EndpointConfig {
        address_validation: AddressValidation::UnderLoad { handshakes: 2 },
        ..EndpointConfig::default()
    });
    let send = |ep: &mut Endpoint, port: u16| {
        let now = Instant::now();
        let from = SocketAddr::new(peer().ip(), port);
        // Each client's own Initial (its own DCID).
        let initial = first_initial();
        match ep.handle_datagram(now, Datagram::new(&initial[..], from, SERVER, now)) {
            Some(DatagramEvent::NewConnection(incoming)) => {
                assert!(!incoming.is_validated());
                Ok(ep.accept(now, incoming, NoApplication).unwrap().0)
            }
            Some(DatagramEvent::Respond(answer)) => {
                assert!(
                    answer.contents.len() < initial.len(),
                    "smaller than its trigger"
                );
                Err(())
            }
            other => panic!("port {port}: {other:?}"),
        }
    };
    // Below the threshold token-less clients connect without a RETRY round trip.
    let first = send(&mut ep, 5000).expect("accepted without RETRY");
    send(&mut ep, 5001).expect("accepted without RETRY");
    // With two handshakes in progress the third client must prove its address.
    send(&mut ep, 5002).expect_err("a RETRY");
    assert_eq!(ep.stats().retries, 1);
    // Once a handshake completes, validation is off again.
    ep.handle_event(
        first,
        EndpointEvent::Established {
            peer_reset_token: None,
        },
    );
    send(&mut ep, 5003).expect("accepted without RETRY");
    assert_eq!(ep.stats().incoming, 3);
}
