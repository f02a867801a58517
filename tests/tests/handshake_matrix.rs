//! Every RFC-valid client connects to the server as shipped: client Initial DCIDs of 8 through
//! 20 bytes, client SCIDs of 0 through 20 bytes, with RETRY on and off, full, resumed and 0-RTT
//! handshakes, at the default settings and with every setting that adds a transport parameter at
//! its largest accepted value.
//!
//! The client is bare quiche (so it can pick any CID lengths, as quinn and curl do); the server
//! is the core's `Driver`, the loop every adapter runs, on virtual time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use quicksand_core::driver::Driver;
use quicksand_core::metrics::RejectReason;
use quicksand_core::quiche;
use quicksand_core::{
    AddressValidation, ConfigErrorKind, Datagram, Endpoint, EndpointConfig, Event, NoApplication,
    QuicSettings, ServerTransportParams, DEFAULT_CID_LEN, QUICHE_TRANSPORT_PARAMS_CAPACITY,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::sim::{self, SERVER};

quicksand_tests::virtual_clock!();

const CLIENT: SocketAddr = sim::CLIENT;
/// One-way delay of the in-memory link.
const DELAY: Duration = Duration::from_millis(5);

/// The largest value each setting that adds a transport parameter accepts.
fn largest_settings() -> QuicSettings {
    let max = (1 << 30) - 1;
    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"h3".to_vec()];
    settings.initial_max_data = max;
    settings.initial_max_stream_data_bidi_local = max;
    settings.initial_max_stream_data_bidi_remote = max;
    settings.initial_max_stream_data_uni = max;
    settings.initial_max_streams_bidi = max;
    settings.initial_max_streams_uni = max;
    settings.max_connection_window = max;
    settings.max_stream_window = max;
    settings.max_idle_timeout = Some(Duration::from_millis(max));
    settings.enable_dgram = true;
    settings.enable_early_data = true;
    settings.disable_active_migration = true;
    settings.active_connection_id_limit = 16_383;
    settings.max_recv_udp_payload_size = 65_527;
    settings.ack_delay_exponent = 20;
    settings.max_ack_delay = Duration::from_millis(16_383);
    settings
}

fn default_settings() -> QuicSettings {
    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"h3".to_vec()];
    settings.enable_early_data = true;
    settings
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Full,
    Resumed,
    EarlyData,
}

/// A server driver and a client config for one column of the matrix.
struct Bench {
    server: Driver<NoApplication>,
    client: quicksand_core::QuicConfig,
    clock: VirtualTime,
    session: Option<Vec<u8>>,
}

impl Bench {
    fn new(settings: &QuicSettings, retry: bool) -> Self {
        let clock = VirtualTime::enter_seeded(7);
        let (client, server_config) = sim::configs(settings);
        let (ctx, _) = sim::context(11);
        let config = EndpointConfig {
            address_validation: if retry {
                AddressValidation::Always
            } else {
                AddressValidation::Never
            },
            seed: Some(3),
            ..Default::default()
        };
        let now = Instant::now();
        let endpoint = Endpoint::new(config, Some(server_config), ctx, now, SystemTime::now())
            .expect("the settings fit");
        let accept = Box::new(|_: &_| Some(NoApplication));
        Bench {
            server: Driver::new(
                endpoint,
                Some(accept),
                1,
                Arc::new(quicksand_tests::sim::WokenConnections::default()),
            ),
            client,
            clock,
            session: None,
        }
    }

    /// One handshake; `Err` says what went wrong.
    fn handshake(&mut self, dcid_len: usize, scid_len: usize, mode: Mode) -> Result<(), String> {
        let scid = quiche::ConnectionId::from_vec(vec![0xc5; scid_len]);
        let dcid = quiche::ConnectionId::from_vec((0..dcid_len as u8).collect());
        let config = self.client.quiche_config_mut();
        let mut client =
            quiche::connect_with_dcid(Some("localhost"), &scid, &dcid, CLIENT, SERVER, config)
                .map_err(|e| format!("client: {e}"))?;
        if mode != Mode::Full {
            let session = self.session.as_ref().ok_or("no session to resume")?;
            client.set_session(session).map_err(|e| format!("{e}"))?;
        }
        if mode == Mode::EarlyData {
            // Request bytes ride in 0-RTT packets with the first flight.
            client
                .stream_send(0, b"GET /", true)
                .map_err(|e| format!("0-RTT send: {e}"))?;
        }
        let rejected_before = self.server.endpoint().stats().rejected_total();
        let mut early_seen = false;
        let mut buf = vec![0; 65_535];
        for _ in 0..40 {
            let now = Instant::now();
            while let Ok((n, info)) = client.send(&mut buf) {
                let d = Datagram::new(&buf[..n], info.from, info.to, now);
                self.server.handle_datagram(now, d);
            }
            self.clock.advance(DELAY);
            let now = Instant::now();
            self.server.handle_timeout(now);
            let mut to_client = Vec::new();
            while let Some(t) = self.server.poll_transmit(now) {
                to_client.extend(t.datagrams().map(<[u8]>::to_vec));
            }
            while let Some((_, event)) = self.server.poll_event() {
                early_seen |= event == Event::EarlyData;
                if let Event::Closed(reason) = event {
                    return Err(format!("server closed: {reason:?}"));
                }
            }
            self.clock.advance(DELAY);
            for mut d in to_client {
                let info = quiche::RecvInfo {
                    from: SERVER,
                    to: CLIENT,
                };
                let _ = client.recv(&mut d, info);
            }
            if client.timeout().is_some_and(|t| t.is_zero()) {
                client.on_timeout();
            }
            let server_running = self
                .server
                .connections()
                .any(|(_, c)| c.stage() == quicksand_core::Stage::Running);
            if client.is_established() && server_running {
                break;
            }
        }
        let stats = self.server.endpoint().stats();
        if stats.rejected_total() != rejected_before {
            return Err(format!("the endpoint refused it: {stats:?}"));
        }
        if !client.is_established() {
            return Err(format!("no handshake; client: {:?}", client.peer_error()));
        }
        if mode == Mode::Full {
            self.session = client.session().map(<[u8]>::to_vec);
        } else if !client.is_resumed() {
            return Err("not resumed".into());
        }
        if mode == Mode::EarlyData && !early_seen {
            return Err("the server saw no early data".into());
        }
        client
            .close(true, 0, b"")
            .map_err(|e| format!("close: {e}"))?;
        // Let the server forget the connection, so the table stays small.
        while let Ok((n, info)) = client.send(&mut buf) {
            let now = Instant::now();
            self.server
                .handle_datagram(now, Datagram::new(&buf[..n], info.from, info.to, now));
        }
        self.clock.advance(Duration::from_secs(5));
        let now = Instant::now();
        self.server.handle_timeout(now);
        while self.server.poll_transmit(now).is_some() {}
        while self.server.poll_event().is_some() {}
        Ok(())
    }
}

fn sweep(settings: QuicSettings, retry: bool) {
    let mut bench = Bench::new(&settings, retry);
    let mut failures = Vec::new();
    let mut cases = 0;
    for mode in [Mode::Full, Mode::Resumed, Mode::EarlyData] {
        for dcid_len in 8..=20 {
            for scid_len in 0..=20 {
                cases += 1;
                if let Err(e) = bench.handshake(dcid_len, scid_len, mode) {
                    failures.push(format!("DCID {dcid_len}, SCID {scid_len}, {mode:?}: {e}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} handshakes failed (RETRY {retry}, settings {settings:?}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(bench.server.endpoint().stats().rejected_total(), 0);
}

#[test]
fn every_client_connects_with_retry_and_the_largest_settings() {
    sweep(largest_settings(), true);
}

#[test]
fn every_client_connects_with_retry_and_default_settings() {
    sweep(default_settings(), true);
}

#[test]
fn every_client_connects_without_retry_and_the_largest_settings() {
    sweep(largest_settings(), false);
}

#[test]
fn every_client_connects_without_retry_and_default_settings() {
    sweep(default_settings(), false);
}

/// The byte count the endpoint checks is quiche's own: at exactly 128 bytes quiche accepts a
/// 20-byte-DCID client after a RETRY, at 129 it refuses it.
#[test]
fn the_size_check_matches_quiche_at_the_boundary() {
    let _clock = VirtualTime::enter();
    let base = largest_settings();
    // One byte less than `base`: a limit below 64 is a 1-byte varint instead of 2.
    let shorter = {
        let mut settings = base.clone();
        settings.active_connection_id_limit = 63;
        settings
    };
    let len = |s: &QuicSettings, cid_len| ServerTransportParams::worst_case(s, cid_len).len();
    assert_eq!(len(&base, 8), 127);
    assert_eq!(len(&shorter, 9), 128);
    assert_eq!(len(&base, 9), 129);
    for (settings, cid_len) in [(&base, 8), (&shorter, 9), (&base, 9)] {
        let computed = ServerTransportParams::worst_case(settings, cid_len).len();
        let (_, mut server) = sim::configs(settings);
        let quiche_config = server.quiche_config_mut();
        quiche_config.set_stateless_reset_token(Some(1));
        let scid = quiche::ConnectionId::from_vec(vec![1; cid_len]);
        let odcid = quiche::ConnectionId::from_vec(vec![2; 20]);
        let outcome: Result<quiche::Connection, _> = quiche::accept_with_retry(
            &scid,
            quiche::RetryConnectionIds {
                original_destination_cid: &odcid,
                retry_source_cid: &scid,
            },
            SERVER,
            CLIENT,
            quiche_config,
        );
        assert_eq!(
            outcome.is_ok(),
            computed <= QUICHE_TRANSPORT_PARAMS_CAPACITY,
            "computed {computed} bytes with {cid_len}-byte CIDs, quiche said {:?}",
            outcome.err()
        );
    }
}

/// Settings whose parameters could not serve a 20-byte-DCID client are refused when the
/// endpoint is built, with the numbers, instead of failing clients one by one.
#[test]
fn an_endpoint_refuses_settings_some_clients_could_not_use() {
    let _clock = VirtualTime::enter();
    let (_, server) = sim::configs(&largest_settings());
    let mut ctx = sim::context(1).0;
    ctx.cid_generator = std::sync::Arc::new(quicksand_core::RandomConnectionIds::new(20));
    let err = Endpoint::new(
        EndpointConfig::default(),
        Some(server),
        ctx,
        Instant::now(),
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(err.field, "transport_parameters");
    let ConfigErrorKind::TransportParamsTooLarge { len, cid_len, .. } = err.kind else {
        panic!("{err}")
    };
    assert_eq!(cid_len, 20);
    assert!(len > QUICHE_TRANSPORT_PARAMS_CAPACITY);
    assert!(err.to_string().contains("20-byte"), "{err}");
    // The default length leaves room for everything.
    assert!(ServerTransportParams::worst_case(&largest_settings(), DEFAULT_CID_LEN).fits());
}

/// A connection the endpoint could not create is counted by reason, not dropped silently.
#[test]
fn refused_connections_are_counted_by_reason() {
    let mut bench = Bench::new(&default_settings(), false);
    bench.server.endpoint_mut().shutdown();
    let err = bench.handshake(20, 20, Mode::Full).unwrap_err();
    assert!(err.contains("refused"), "{err}");
    let stats = bench.server.endpoint().stats();
    assert!(stats.rejected(RejectReason::ShuttingDown) >= 1, "{stats:?}");
}

/// ... and logged at `warn` with the peer and the reason, so it shows in a default log.
#[test]
fn refused_connections_are_logged_at_warn() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let initial = {
        let _clock = VirtualTime::enter();
        let (mut client, _) = sim::configs(&default_settings());
        let scid = quiche::ConnectionId::from_vec(vec![7; 20]);
        let mut conn = quiche::connect(
            Some("localhost"),
            &scid,
            CLIENT,
            SERVER,
            client.quiche_config_mut(),
        )
        .unwrap();
        let mut buf = vec![0; 1500];
        let (n, _) = conn.send(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let stats = tracing::subscriber::with_default(subscriber, || {
        let mut bench = Bench::new(&default_settings(), false);
        bench.server.endpoint_mut().shutdown();
        // A burst of 100 Initials, then one more a second later.
        let now = Instant::now();
        for _ in 0..100 {
            let d = Datagram::new(&initial[..], CLIENT, SERVER, now);
            bench.server.handle_datagram(now, d);
        }
        bench.clock.advance(Duration::from_secs(1));
        let now = Instant::now();
        bench
            .server
            .handle_datagram(now, Datagram::new(&initial[..], CLIENT, SERVER, now));
        bench.server.endpoint().stats()
    });
    assert_eq!(stats.rejected(RejectReason::ShuttingDown), 101);
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("connection refused")
            && lines[0].contains(&CLIENT.to_string())
            && lines[0].contains("shutting_down"),
        "{log}"
    );
    // Rate limited: a few lines for the burst, then one that counts what it left out.
    assert_eq!(lines.len(), 6, "{log}");
    assert!(lines[5].contains("suppressed=95"), "{log}");
}
