//! Extended CONNECT (RFC 9220) and HTTP/3 datagrams (RFC 9297) over the in-memory pair.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use quicksand_h3::{
    BodySender, ClientApplication, DatagramError, DatagramFlow, H3Client, Http3Settings,
    IncomingRequests, Protocol, RequestError, ServerApplication,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{block_on, configs, quic_settings, run_until};
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

type H3Pair = Pair<ClientApplication, ServerApplication>;

fn connect_settings() -> Http3Settings {
    Http3Settings {
        enable_extended_connect: true,
        enable_datagrams: true,
        ..Default::default()
    }
}

fn pair(
    client: Http3Settings,
    server: Http3Settings,
    server_dgram: bool,
) -> (H3Pair, H3Client, IncomingRequests) {
    let mut sq = quic_settings();
    sq.enable_dgram = server_dgram;
    let (mut cc, sc) = configs(quic_settings(), sq);
    let (driver, handle) = ClientApplication::new(client);
    let (server, incoming) = ServerApplication::new(server);
    let pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    (pair, handle, incoming)
}

fn connect_request() -> Request<()> {
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri("https://localhost/.well-known/masque/udp/192.0.2.1/443/")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(Protocol("connect-udp".to_string()));
    req
}

/// An open CONNECT-UDP tunnel: each side's datagram flow, and the stream halves that keep it
/// open.
struct Tunnel {
    client: DatagramFlow,
    server: DatagramFlow,
    _streams: (BodySender, BodySender),
}

/// Opens a CONNECT-UDP tunnel through the pair and checks both sides got their flow.
fn open_tunnel(
    pair: &mut H3Pair,
    clock: &VirtualTime,
    client: &H3Client,
    incoming: &mut IncomingRequests,
) -> Tunnel {
    let (to_server, response) = client.send_request(connect_request()).unwrap();
    let req = block_on(pair, clock, Duration::from_secs(5), incoming.next())
        .unwrap()
        .unwrap();
    assert_eq!(req.request.method(), Method::CONNECT);
    assert_eq!(
        req.request.extensions().get::<Protocol>(),
        Some(&Protocol("connect-udp".into()))
    );
    let server = req
        .request
        .extensions()
        .get::<DatagramFlow>()
        .cloned()
        .expect("server flow");
    let to_client = req.responder.send_response(Response::new(())).unwrap();
    let resp = block_on(pair, clock, Duration::from_secs(5), response)
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let client = resp
        .extensions()
        .get::<DatagramFlow>()
        .cloned()
        .expect("client flow");
    Tunnel {
        client,
        server,
        _streams: (to_server, to_client),
    }
}

#[test]
fn extended_connect_and_datagrams_round_trip() {
    let clock = VirtualTime::enter();
    let (mut pair, client, mut incoming) = pair(connect_settings(), connect_settings(), true);
    let tunnel = open_tunnel(&mut pair, &clock, &client, &mut incoming);
    let (client_flow, server_flow) = (&tunnel.client, &tunnel.server);
    assert_eq!(server_flow.quarter_stream_id(), 0);
    assert!(client_flow.is_negotiated());
    // Client → server → client, several datagrams.
    for i in 0..5u8 {
        client_flow.send(Bytes::from(vec![i; 100])).unwrap();
        let got = block_on(
            &mut pair,
            &clock,
            Duration::from_secs(1),
            server_flow.recv(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(&got[..], &[i; 100][..]);
        server_flow.send(got).unwrap();
        let back = block_on(
            &mut pair,
            &clock,
            Duration::from_secs(1),
            client_flow.recv(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(&back[..], &[i; 100][..]);
    }
    // The largest payload that fits goes through; one byte more is refused with the limit.
    let max = client_flow.max_payload();
    assert!((1000..1500).contains(&max), "max payload {max}");
    assert_eq!(
        client_flow.send(Bytes::from(vec![7; max + 1])),
        Err(DatagramError::TooLarge { size: max + 1, max })
    );
    client_flow.send(Bytes::from(vec![7; max])).unwrap();
    let got = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(1),
        server_flow.recv(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(got.len(), max);
    assert_eq!(pair.client.application().stats().datagrams_dropped, 0);
}

#[test]
fn extended_connect_is_refused_when_the_peer_did_not_enable_it() {
    let clock = VirtualTime::enter();
    let (mut pair, client, _incoming) = pair(connect_settings(), Http3Settings::default(), true);
    let (_tx, response) = client.send_request(connect_request()).unwrap();
    let result = block_on(&mut pair, &clock, Duration::from_secs(5), response).unwrap();
    assert_eq!(
        result.err(),
        Some(RequestError::ExtendedConnectNotSupported)
    );
}

#[test]
fn datagrams_are_refused_when_not_negotiated() {
    let clock = VirtualTime::enter();
    // The server has QUIC datagrams off, so it cannot announce HTTP/3 datagrams.
    let server = Http3Settings {
        enable_extended_connect: true,
        ..Default::default()
    };
    let (mut pair, client, mut incoming) = pair(connect_settings(), server, false);
    let (_tx, response) = client.send_request(connect_request()).unwrap();
    let req = block_on(&mut pair, &clock, Duration::from_secs(5), incoming.next())
        .unwrap()
        .unwrap();
    assert!(req.request.extensions().get::<DatagramFlow>().is_none());
    let _rx = req.responder.send_response(Response::new(())).unwrap();
    let resp = block_on(&mut pair, &clock, Duration::from_secs(5), response)
        .unwrap()
        .unwrap();
    let flow = resp.extensions().get::<DatagramFlow>().cloned().unwrap();
    assert!(!flow.is_negotiated());
    assert_eq!(
        flow.send(Bytes::from_static(b"x")),
        Err(DatagramError::NotNegotiated)
    );
}

#[test]
fn an_unread_flow_holds_at_most_its_byte_budget() {
    let clock = VirtualTime::enter();
    // A budget of 4,000 bytes: four 1,000-byte datagrams, though the count limit allows 64.
    let server_settings = Http3Settings {
        datagram_queue_bytes: 4_000,
        ..connect_settings()
    };
    let (mut pair, client, mut incoming) = pair(connect_settings(), server_settings, true);
    let tunnel = open_tunnel(&mut pair, &clock, &client, &mut incoming);
    let (client_flow, server_flow) = (&tunnel.client, &tunnel.server);
    // Ten datagrams the server's application does not read yet.
    for i in 0..10u8 {
        client_flow.send(Bytes::from(vec![i; 1_000])).unwrap();
        run_until(&mut pair, &clock, Duration::from_millis(20), |_| false);
    }
    // The newest four are kept; the six oldest were dropped and counted.
    for i in 6..10u8 {
        let got = block_on(
            &mut pair,
            &clock,
            Duration::from_secs(1),
            server_flow.recv(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((got.len(), got[0]), (1_000, i), "datagram {i} expected");
    }
    assert_eq!(pair.server().application().stats().datagrams_dropped, 6);
    // Reading made room again.
    client_flow.send(Bytes::from(vec![42; 1_000])).unwrap();
    let got = block_on(
        &mut pair,
        &clock,
        Duration::from_secs(1),
        server_flow.recv(),
    )
    .unwrap()
    .unwrap();
    assert_eq!((got.len(), got[0]), (1_000, 42));
}
