//! Session-ticket keys derived from a shared master (`TlsSettings::ticket_keys`): a second
//! server with the same master resumes the first one's sessions, one with another master does
//! not, and a ticket opens only in its own period and the next.

use std::time::{Duration, SystemTime};

use quicksand_core::{
    CertificateSource, ConnectionParams, Event, NoApplication, QuicConfig, TicketKeys, TlsSettings,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::quic_settings;
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

const PERIOD: Duration = Duration::from_secs(3600);

/// A server config with ticket keys from `master`, told the time `wall`.
fn server_config(master: [u8; 32], wall: SystemTime) -> QuicConfig {
    let config = untimed_server_config(master);
    config.set_ticket_time(wall);
    config
}

/// A server config with ticket keys from `master` that was never told the time.
fn untimed_server_config(master: [u8; 32]) -> QuicConfig {
    let params = ConnectionParams {
        settings: quic_settings(),
        tls: TlsSettings {
            certificate: Some(
                CertificateSource::self_signed(&["localhost"], SystemTime::now())
                    .expect("self-signed certificate"),
            ),
            ticket_keys: Some(TicketKeys::derived(master, PERIOD)),
            ..Default::default()
        },
        ..Default::default()
    };
    QuicConfig::server(&params).expect("server config")
}

fn client_config(session: Option<Vec<u8>>) -> QuicConfig {
    let mut params = ConnectionParams::new(quic_settings());
    params.tls.verify_peer = false;
    params.session = session;
    QuicConfig::client(&params).expect("client config")
}

/// Connects with `session` (if any) to a server built from `server`; returns whether the
/// handshake resumed and the session ticket the client holds afterwards.
fn handshake(
    clock: &VirtualTime,
    server: QuicConfig,
    session: Option<Vec<u8>>,
) -> (bool, Option<Vec<u8>>) {
    let mut client = client_config(session);
    let mut pair = Pair::new(
        &mut client,
        server,
        NoApplication,
        NoApplication,
        Duration::from_millis(5),
    )
    .expect("connection pair");
    pair.run_until(clock, Duration::from_secs(2), |p| {
        p.client.session().is_some()
            && p.client_events
                .iter()
                .any(|(_, e)| matches!(e, Event::HandshakeCompleted { .. }))
    })
    .expect("pair runs");
    let resumed = pair
        .client_events
        .iter()
        .find_map(|(_, e)| match e {
            Event::HandshakeCompleted { resumed, .. } => Some(*resumed),
            _ => None,
        })
        .expect("the handshake completed");
    (resumed, pair.client.session())
}

fn wall(period: u64) -> SystemTime {
    // Inside the period, not at its edge.
    SystemTime::UNIX_EPOCH + PERIOD * period as u32 + Duration::from_secs(60)
}

#[test]
fn a_second_server_with_the_same_master_resumes_the_first_ones_sessions() {
    let clock = VirtualTime::enter();
    let (_, ticket) = handshake(&clock, server_config([1; 32], wall(480_000)), None);
    let ticket = ticket.expect("the first server issued a session ticket");

    let (resumed, _) = handshake(
        &clock,
        server_config([1; 32], wall(480_000)),
        Some(ticket.clone()),
    );
    assert!(
        resumed,
        "another server with the same master resumed the session"
    );

    let (resumed, _) = handshake(&clock, server_config([2; 32], wall(480_000)), Some(ticket));
    assert!(
        !resumed,
        "a server with another master made a full handshake"
    );
}

#[test]
fn a_ticket_opens_in_its_own_period_and_the_next_only() {
    let clock = VirtualTime::enter();
    let (_, ticket) = handshake(&clock, server_config([3; 32], wall(480_000)), None);
    let ticket = ticket.expect("a session ticket");

    let (resumed, renewed) = handshake(
        &clock,
        server_config([3; 32], wall(480_001)),
        Some(ticket.clone()),
    );
    assert!(resumed, "a ticket of the previous period still resumes");
    assert!(
        renewed.is_some(),
        "and the client holds a ticket afterwards"
    );

    let (resumed, _) = handshake(
        &clock,
        server_config([3; 32], wall(480_002)),
        Some(ticket.clone()),
    );
    assert!(!resumed, "two periods later the ticket is refused");

    let (resumed, _) = handshake(&clock, server_config([3; 32], wall(479_999)), Some(ticket));
    assert!(
        !resumed,
        "a ticket from a later period (a clock ahead) is refused"
    );
}

#[test]
fn a_server_that_was_never_told_the_time_issues_no_ticket_rather_than_a_guessable_one() {
    let clock = VirtualTime::enter();
    let server = untimed_server_config([4; 32]);
    let mut client = client_config(None);
    let mut pair = Pair::new(
        &mut client,
        server,
        NoApplication,
        NoApplication,
        Duration::from_millis(5),
    )
    .unwrap();
    pair.run_until(&clock, Duration::from_millis(500), |_| false)
        .unwrap();
    assert!(
        pair.client_events
            .iter()
            .any(|(_, e)| matches!(e, Event::HandshakeCompleted { .. })),
        "the handshake completes without a ticket"
    );
    assert!(pair.client.session().is_none(), "no ticket was issued");
}
