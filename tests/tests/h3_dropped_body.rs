//! A handler that answers without reading the request body: the request stream must end
//! cleanly when the client's FIN comes late (quinn's h3 sends it in its own packet), and the
//! client is asked to stop only when it actually sends body data nobody will read.

use std::time::Duration;

use http::Response;
use quicksand_core::{quiche, QuicheConnection};
use quicksand_h3::{Body, Http3Settings, ServerApplication};
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::h3::{block_on, configs, quic_settings, run_until, BareH3, BareH3Peer};
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

/// H3_NO_ERROR: what a server asks with when it does not need the rest of a request.
const H3_NO_ERROR: u64 = 0x100;

/// Sends a GET's headers without FIN, then, once the whole response has arrived, `late`:
/// empty for a bare FIN, else body bytes (without FIN). Records what the server did.
struct SplitRequestClient {
    late: &'static [u8],
    stream: Option<u64>,
    late_sent: bool,
    status: Option<Vec<u8>>,
    response_done: bool,
    /// The STOP_SENDING code the server sent on the request stream, if it did.
    stopped: Option<u64>,
}

impl SplitRequestClient {
    fn new(late: &'static [u8]) -> Self {
        SplitRequestClient {
            late,
            stream: None,
            late_sent: false,
            status: None,
            response_done: false,
            stopped: None,
        }
    }
}

impl BareH3Peer for SplitRequestClient {
    fn on_event(
        &mut self,
        h3: &mut quiche::h3::Connection,
        conn: &mut QuicheConnection,
        id: u64,
        event: quiche::h3::Event,
    ) {
        match event {
            quiche::h3::Event::Headers { list, .. } => {
                use quiche::h3::NameValue;
                self.status = list
                    .iter()
                    .find(|h| h.name() == b":status")
                    .map(|h| h.value().to_vec());
            }
            quiche::h3::Event::Data => {
                let mut buf = [0u8; 4096];
                while h3.recv_body(conn, id, &mut buf).is_ok() {}
            }
            quiche::h3::Event::Finished => self.response_done = true,
            _ => {}
        }
    }

    fn write(&mut self, h3: &mut quiche::h3::Connection, conn: &mut QuicheConnection) {
        if let Some(id) = self.stream {
            if let Err(quiche::Error::StreamStopped(code)) = conn.stream_writable(id, 1) {
                self.stopped = Some(code);
            }
        }
        match self.stream {
            None => {
                let headers = [
                    quiche::h3::Header::new(b":method", b"GET"),
                    quiche::h3::Header::new(b":scheme", b"https"),
                    quiche::h3::Header::new(b":authority", b"localhost"),
                    quiche::h3::Header::new(b":path", b"/"),
                ];
                self.stream = h3.send_request(conn, &headers, false).ok();
            }
            Some(id) if self.response_done && !self.late_sent => {
                let fin = self.late.is_empty();
                self.late_sent = h3.send_body(conn, id, self.late, fin).is_ok();
            }
            Some(_) => {}
        }
    }
}

/// Runs one split request against a server whose handler drops the request body unread and
/// answers 200; returns the client once it sent `late` and 200 ms more passed.
fn run(late: &'static [u8]) -> Pair<BareH3<SplitRequestClient>, ServerApplication> {
    let clock = VirtualTime::enter();
    let (mut cc, sc) = configs(quic_settings(), quic_settings());
    let (server, mut incoming) = ServerApplication::new(Http3Settings::default());
    let client = BareH3::new(SplitRequestClient::new(late));
    let mut pair = Pair::new(&mut cc, sc, client, server, Duration::from_millis(5)).unwrap();
    let incoming_request = block_on(&mut pair, &clock, Duration::from_secs(5), async {
        futures::StreamExt::next(&mut incoming).await
    })
    .flatten()
    .expect("the request reaches the handler");
    let (_, body) = incoming_request.request.into_parts();
    drop(body);
    let respond = incoming_request
        .responder
        .respond(Response::new(Body::from("ok")));
    block_on(&mut pair, &clock, Duration::from_secs(5), respond)
        .expect("response sent in time")
        .expect("response sent");
    assert!(
        run_until(&mut pair, &clock, Duration::from_secs(5), |p| {
            let c = &p.client.application().peer;
            c.response_done && c.late_sent
        }),
        "the client got the response and sent the rest of its request"
    );
    run_until(&mut pair, &clock, Duration::from_millis(200), |_| false);
    assert_eq!(
        pair.client.application().peer.status.as_deref(),
        Some(&b"200"[..])
    );
    pair
}

#[test]
fn a_late_fin_after_a_complete_response_is_not_stopped() {
    let pair = run(b"");
    assert_eq!(
        pair.client.application().peer.stopped,
        None,
        "the server stopped a request stream that carried no body"
    );
}

#[test]
fn body_data_nobody_reads_is_stopped_with_h3_no_error() {
    let pair = run(b"an upload the handler never reads");
    assert_eq!(pair.client.application().peer.stopped, Some(H3_NO_ERROR));
}
