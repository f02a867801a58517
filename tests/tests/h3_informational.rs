//! 1xx responses on the client: kept for the application up to a limit; a server that sends
//! more before its final response fails the request instead of growing the list forever.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use quicksand_core::{quiche, QuicheConnection};
use quicksand_h3::{
    ClientApplication, HeaderError, Http3Settings, InformationalResponses, RequestError,
    MAX_INFORMATIONAL,
};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{block_on, configs, quic_settings, BareH3, BareH3Peer};
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

/// A bare quiche server answering every request with `informational` 103 responses, then 200.
struct EarlyHintsServer {
    informational: usize,
}

impl BareH3Peer for EarlyHintsServer {
    fn on_event(
        &mut self,
        h3: &mut quiche::h3::Connection,
        conn: &mut QuicheConnection,
        id: u64,
        event: quiche::h3::Event,
    ) {
        if let quiche::h3::Event::Headers { .. } = event {
            let hint = [quiche::h3::Header::new(b":status", b"103")];
            h3.send_response(conn, id, &hint, false).unwrap();
            for _ in 1..self.informational {
                h3.send_additional_headers(conn, id, &hint, false, false)
                    .unwrap();
            }
            let ok = [quiche::h3::Header::new(b":status", b"200")];
            h3.send_additional_headers(conn, id, &ok, false, true)
                .unwrap();
        }
    }
}

fn get_with(informational: usize) -> Result<http::Response<quicksand_h3::RecvBody>, RequestError> {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (driver, client) = ClientApplication::new(Http3Settings::default());
    let server = BareH3::new(EarlyHintsServer { informational });
    let mut pair = Pair::new(&mut cc, sc, driver, server, Duration::from_millis(5)).unwrap();
    let request = Request::get("https://localhost/")
        .body(Bytes::new())
        .unwrap();
    let response = client.request(request).unwrap();
    block_on(&mut pair, &clock, Duration::from_secs(5), response).expect("an answer in time")
}

#[test]
fn informational_responses_up_to_the_limit_reach_the_application() {
    let response = get_with(MAX_INFORMATIONAL).expect("the final response");
    assert_eq!(response.status(), 200);
    let hints = response
        .extensions()
        .get::<InformationalResponses>()
        .expect("the 1xx responses");
    assert_eq!(hints.0.len(), MAX_INFORMATIONAL);
    assert!(hints.0.iter().all(|r| r.status() == 103));
}

#[test]
fn one_informational_response_too_many_fails_the_request() {
    match get_with(MAX_INFORMATIONAL + 1) {
        Err(RequestError::InvalidResponse(HeaderError::TooManyInformational(n))) => {
            assert_eq!(n, MAX_INFORMATIONAL)
        }
        other => panic!("expected TooManyInformational, got {other:?}"),
    }
}
