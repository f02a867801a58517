//! Loss recovery rules quicksand relies on from its patched quiche (`.ci/patches`), checked on
//! bare quiche connections, packet by packet, on virtual time.

use std::net::SocketAddr;
use std::time::Duration;

use quicksand_core::quiche;
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::sim::{self, SimConfig};

quicksand_tests::virtual_clock!();

const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4000);
const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 443);

/// A bare quiche client to `SERVER`.
fn connect(config: &mut quicksand_core::QuicConfig) -> quiche::Connection {
    let scid = quiche::ConnectionId::from_ref(&[7; 8]);
    quiche::connect(
        Some("localhost"),
        &scid,
        CLIENT,
        SERVER,
        config.quiche_config_mut(),
    )
    .expect("a client connection")
}

/// The datagrams `conn` sends now.
fn flush(conn: &mut quiche::Connection) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = conn.send(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn deliver(to: &mut quiche::Connection, datagrams: &[Vec<u8>], from: SocketAddr, at: SocketAddr) {
    for d in datagrams {
        let mut d = d.clone();
        let _ = to.recv(&mut d, quiche::RecvInfo { from, to: at });
    }
}

/// A bare client and server, handshaken on `clock` until the client is established (it has
/// sent its Finished; nothing it sent after is delivered).
fn established(clock: &VirtualTime) -> (quiche::Connection, quiche::Connection) {
    let (mut cc, mut sc) = sim::configs(&SimConfig::new(1).settings);
    let mut client = connect(&mut cc);
    let sscid = quiche::ConnectionId::from_ref(&[9; 8]);
    let mut server = quiche::accept(&sscid, None, SERVER, CLIENT, sc.quiche_config_mut()).unwrap();
    while !client.is_established() {
        let to_server = flush(&mut client);
        deliver(&mut server, &to_server, CLIENT, SERVER);
        clock.advance(Duration::from_millis(10));
        let to_client = flush(&mut server);
        deliver(&mut client, &to_client, SERVER, CLIENT);
        clock.advance(Duration::from_millis(10));
    }
    (client, server)
}

/// True if the datagram holds a Handshake packet (long header, type 2).
fn has_handshake_packet(d: &[u8]) -> bool {
    d.first().is_some_and(|b| b & 0xf0 == 0xe0)
}

/// RFC 9002 §6.2.1: no probe timeout for Application Data before the handshake is confirmed.
/// A client whose Finished is lost must probe with Handshake packets, which carry it, every
/// time: probing 1-RTT packets the server cannot decrypt yet wastes the probe (the 1,000-seed
/// sweep found a client that lost all four Handshake probes it had left in 900 s that way;
/// .ci/patches/quiche-0.30.0-pto-after-confirmation.patch).
#[test]
fn an_unconfirmed_client_probes_with_handshake_packets_only() {
    let clock = VirtualTime::enter();
    let (mut client, mut server) = established(&clock);
    // The client's Finished and everything after it is lost; the server waits for it. The
    // client also has 1-RTT data in flight (a request), as every real client does.
    client.stream_send(0, b"request", true).unwrap();
    let _ = flush(&mut client);
    for round in 0..6 {
        let at = client.timeout_instant().expect("a probe timer");
        clock.advance_to(at);
        client.on_timeout();
        let probe = flush(&mut client);
        assert!(
            !probe.is_empty(),
            "round {round}: the timer fired but nothing was sent"
        );
        assert!(
            probe.iter().any(|d| has_handshake_packet(d)),
            "round {round}: the probe had no Handshake packet, so not the Finished: first bytes {:?}",
            probe.iter().map(|d| d[0]).collect::<Vec<_>>()
        );
    }
    assert!(!server.is_established());
    // Delivering a probe completes the handshake.
    let at = client.timeout_instant().expect("a probe timer");
    clock.advance_to(at);
    client.on_timeout();
    let probe = flush(&mut client);
    deliver(&mut server, &probe, CLIENT, SERVER);
    assert!(server.is_established());
}

/// RFC 9002 §6.3 and A.11: a Retry discards the Initial space and resets the probe backoff. A
/// client whose first flights were lost for a while (its timer doubled each time) and that then
/// gets a Retry must send its token-bearing Initial again at the base interval, not minutes
/// later, when the token may have expired (the 1,000-seed sweep, seed 12;
/// .ci/patches/quiche-0.30.0-pto-reset-on-discard.patch).
#[test]
fn a_retry_resets_the_probe_backoff() {
    let clock = VirtualTime::enter();
    let mut settings = SimConfig::new(1).settings;
    // Room for six doublings before the idle timeout.
    settings.max_idle_timeout = Some(Duration::from_secs(600));
    let (mut cc, _) = sim::configs(&settings);
    let mut client = connect(&mut cc);
    let first = flush(&mut client);
    let first_interval = client.timeout_instant().unwrap() - std::time::Instant::now();
    // Six lost flights: the timer has doubled six times.
    for _ in 0..6 {
        clock.advance_to(client.timeout_instant().unwrap());
        client.on_timeout();
        let _ = flush(&mut client);
    }
    let backed_off = client.timeout_instant().unwrap() - std::time::Instant::now();
    assert!(
        backed_off >= first_interval * 32,
        "{backed_off:?} vs {first_interval:?}"
    );
    // The server's Retry for the first flight.
    let mut initial = first[0].clone();
    let hdr = quiche::Header::from_slice(&mut initial, quiche::MAX_CONN_ID_LEN).unwrap();
    let new_scid = quiche::ConnectionId::from_ref(&[5; 8]);
    let mut retry = [0u8; 512];
    let n = quiche::retry(
        &hdr.scid,
        &hdr.dcid,
        &new_scid,
        b"a token",
        hdr.version,
        &mut retry,
    )
    .unwrap();
    let mut retry = retry[..n].to_vec();
    client
        .recv(
            &mut retry,
            quiche::RecvInfo {
                from: SERVER,
                to: CLIENT,
            },
        )
        .unwrap();
    let again = flush(&mut client);
    assert!(
        !again.is_empty(),
        "the Initial with the token goes out at once"
    );
    let after_retry = client.timeout_instant().unwrap() - std::time::Instant::now();
    assert!(
        after_retry <= first_interval * 2,
        "after the Retry the next probe comes in {after_retry:?}, not about {first_interval:?}"
    );
}

/// A client that closes with an application error (an HTTP/3 client dropped right after
/// connecting) while its handshake is complete but not confirmed, with a Handshake probe
/// pending, sends its close once and goes quiet. Unpatched quiche picked the Handshake space
/// for the pending probe on every `send`, left the PING out (closing), so the probe never
/// cleared: each `send` made another ACK-only Handshake packet, without end, and the close
/// (1-RTT) never went out. Over loopback such a client sent about a million packets in 18 s
/// and starved the server of the CPU its next handshakes needed
/// (.ci/patches/quiche-0.30.0-quiet-close.patch).
#[test]
fn a_close_before_confirmation_with_a_probe_pending_goes_out_once() {
    let clock = VirtualTime::enter();
    let (mut client, _server) = established(&clock);
    // The client's Finished is lost (no HANDSHAKE_DONE comes), its probe timer fires, and
    // before the probe goes out the application closes the connection.
    let _ = flush(&mut client);
    let at = client.timeout_instant().expect("a probe timer");
    clock.advance_to(at);
    client.on_timeout();
    client.close(true, 0x100, b"").unwrap();
    let mut sent = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = client.send(&mut buf) {
        sent.push(buf[..n].to_vec());
        if sent.len() > 100 {
            break;
        }
    }
    assert!(
        (1..=4).contains(&sent.len()),
        "the close took {} datagrams (first bytes {:?}); want one to four",
        sent.len(),
        sent.iter().take(8).map(|d| d[0]).collect::<Vec<_>>()
    );
    assert!(
        client.is_draining(),
        "the close went out: the client drains"
    );
}
