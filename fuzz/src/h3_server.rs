//! `h3_server`: a raw QUIC peer's actions — arbitrary request-stream bytes (so arbitrary
//! HTTP/3 frames), unidirectional streams of any type, resets, STOP_SENDING, datagrams, and
//! well-formed requests — against the HTTP/3 server driver. The server must not panic.
//!
//! Persistent ([`crate::persistent`]): one handshaken pair per process; each input opens new
//! streams on it (its stream selectors pick among the streams it opened itself) and the pair
//! runs until nothing is left to deliver. The pair is rebuilt when an input closed the
//! connection, when the stream credit ran out, or after `MAX_INPUTS` inputs.
//!
//! What an input costs is the packets it causes (about half a millisecond a request under
//! AddressSanitizer) and, when it ends the connection, a new handshake (milliseconds; with
//! the rules below, 3 of 12,000 inputs in a 20 s run ended a pair early). So an input
//! plays at most `MAX_ACTIONS` actions, responses are mostly below a packet (`body_len`), a
//! unidirectional stream of a type already open gets the new bytes unless the action asks for
//! a second one (a second control or QPACK stream closes the connection), and the stream
//! types that always close it (a push stream from a client) take one exact selector value
//! ([`uni_type`]). The configs offer only X25519 (`quicksand_tests::fuzzing::h3_configs`).
//!
//! The input is `Vec<Action>` decoded by `arbitrary`, the format the corpus was written in.

use std::cell::Cell;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use quicksand_core::{quiche, QuicConfig};
use quicksand_h3::{Body, Http3Settings, ServerApplication};
use quicksand_tests::apps::Drain;
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::pair::Pair;

use super::persistent::Live;
use super::wire::{headers_frame, varint};

/// Actions played per input at most: every request costs about half a millisecond of packet
/// work under AddressSanitizer, so an input is a handful of them.
const MAX_ACTIONS: usize = 6;
/// Inputs one pair sees at most.
pub const MAX_INPUTS: usize = 500;
/// Pair steps per input at most (each delivers everything in flight).
const MAX_STEPS: usize = 200;

#[derive(Arbitrary, Debug, Clone)]
enum Action {
    Bidi {
        bytes: Vec<u8>,
        fin: bool,
    },
    /// A unidirectional stream; see [`uni_type`].
    Uni {
        kind: u8,
        bytes: Vec<u8>,
    },
    Reset {
        stream: u8,
        code: u16,
    },
    StopSending {
        stream: u8,
        code: u16,
    },
    Datagram(Vec<u8>),
    /// A well-formed request, so the server also has real work in flight.
    Request {
        path: u16,
    },
}

/// The stream type a `Uni { kind }` action opens: `kind % 8` picks control, QPACK encoder,
/// QPACK decoder (indices 0, 2, 3 of `uni_of_type`), a reserved (grease) type or an unknown
/// one, which the server must read and ignore. A push stream, which a client must never open
/// (the server closes the connection), takes `kind == 1` exactly: every input with one costs a
/// new handshake, so it should stay a rare mutation rather than one kind in four.
fn uni_type(kind: u8) -> u64 {
    match kind % 8 {
        0 => 0x00,
        1 if kind == 1 => 0x01,
        2 => 0x02,
        3 => 0x03,
        // Reserved types 0x1f * N + 0x21 (RFC 9114 §6.2.3).
        1 | 4 | 5 => 0x1f * u64::from(kind >> 3) + 0x21,
        _ => 0x40 + u64::from(kind >> 3),
    }
}

/// The response body's length for request path `/{path}`: below one packet mostly (packets
/// are what an input costs), up to 10 kB from path 60,000 on, so bodies that take several
/// packets and flow-control updates still occur.
fn body_len(path: usize) -> usize {
    if path >= 60_000 {
        (path - 60_000) * 2 % 10_000
    } else {
        path % 1_000
    }
}

fn server() -> ServerApplication {
    ServerApplication::with_service(
        Http3Settings::default(),
        |req: http::Request<quicksand_h3::RecvBody>| async move {
            let path: usize = req
                .uri()
                .path()
                .trim_start_matches('/')
                .parse()
                .unwrap_or(0);
            http::Response::new(Body::from(vec![7u8; body_len(path)]))
        },
    )
}

thread_local! {
    /// The client and server configs between pairs: building them is a third of a pair's
    /// cost.
    static CONFIGS: Cell<Option<(QuicConfig, QuicConfig)>> = const { Cell::new(None) };
}

/// The handshaken pair inputs act on.
pub struct H3Server {
    pair: Pair<Drain, ServerApplication>,
    client_config: QuicConfig,
    /// Streams opened so far: the next bidirectional / unidirectional stream index.
    bidi: u64,
    uni: u64,
    /// The last unidirectional stream opened with each type (control, push, QPACK encoder,
    /// QPACK decoder).
    uni_of_type: [Option<u64>; 4],
    // Dropped last: the pair's connections read the clock until they go.
    clock: VirtualTime,
}

impl Live for H3Server {
    fn build(_: &[u8]) -> Self {
        let clock = VirtualTime::enter();
        let mut settings = quicksand_tests::h3::quic_settings();
        settings.enable_dgram = true;
        let (mut client_config, server_config) = CONFIGS
            .take()
            .unwrap_or_else(|| quicksand_tests::fuzzing::h3_configs(settings.clone(), settings));
        let mut pair = Pair::new(
            &mut client_config,
            server_config,
            Drain::default(),
            server(),
            Duration::ZERO,
        )
        .expect("client connection");
        let up = pair
            .run_until(&clock, Duration::from_secs(1), |p| {
                p.client.stage() == quicksand_core::Stage::Running
                    && p.server
                        .as_ref()
                        .is_some_and(|s| s.stage() == quicksand_core::Stage::Running)
            })
            .expect("server connection");
        assert!(up, "the handshake did not complete");
        H3Server {
            pair,
            client_config,
            bidi: 0,
            uni: 0,
            uni_of_type: [None; 4],
            clock,
        }
    }

    fn clock(&self) -> &quicksand_tests::clock::VirtualTime {
        &self.clock
    }

    fn play(&mut self, data: &[u8]) -> bool {
        let Ok(actions) = Vec::<Action>::arbitrary(&mut Unstructured::new(data)) else {
            return true;
        };
        let (first_bidi, mut opened) = (self.bidi, 0u64);
        let pick = |stream: u8, opened: u64| (first_bidi + stream as u64 % (opened + 1)) * 4;
        for action in actions.iter().take(MAX_ACTIONS) {
            let conn = self.pair.client.quiche_mut();
            match action {
                Action::Bidi { bytes, fin } => {
                    let _ = conn.stream_send((first_bidi + opened) * 4, bytes, *fin);
                    opened += 1;
                }
                Action::Uni { kind, bytes } => {
                    let ty = uni_type(*kind);
                    let slot = (ty < 4).then_some(ty as usize);
                    match slot.and_then(|i| self.uni_of_type[i]) {
                        // More bytes on the stream of that type: a second control or QPACK
                        // stream closes the connection, so only `kind >= 0xf0` opens one.
                        Some(id) if *kind < 0xf0 => {
                            let _ = conn.stream_send(id, bytes, false);
                        }
                        _ => {
                            let id = 2 + self.uni * 4;
                            let mut data = Vec::with_capacity(bytes.len() + 8);
                            varint(ty, &mut data);
                            data.extend(bytes);
                            // A stream the server ignores ends with its bytes, so it does not
                            // hold a stream of the credit for the pair's whole life.
                            let _ = conn.stream_send(id, &data, slot.is_none());
                            self.uni += 1;
                            if let Some(i) = slot {
                                self.uni_of_type[i] = Some(id);
                            }
                        }
                    }
                }
                Action::Reset { stream, code } => {
                    let id = pick(*stream, opened);
                    let _ = conn.stream_shutdown(id, quiche::Shutdown::Write, *code as u64);
                }
                Action::StopSending { stream, code } => {
                    let id = pick(*stream, opened);
                    let _ = conn.stream_shutdown(id, quiche::Shutdown::Read, *code as u64);
                }
                Action::Datagram(bytes) => {
                    let _ = conn.dgram_send(bytes);
                }
                Action::Request { path } => {
                    let path = format!("/{path}");
                    let frame = headers_frame(&[
                        (":method", "GET"),
                        (":scheme", "https"),
                        (":authority", "localhost"),
                        (":path", &path),
                    ]);
                    let _ = conn.stream_send((first_bidi + opened) * 4, &frame, true);
                    opened += 1;
                }
            }
        }
        self.bidi += opened;
        // Everything in flight is delivered at once (no delay); time moves a millisecond per
        // input, so acknowledgement and loss timers fire now and then, as they would.
        for _ in 0..MAX_STEPS {
            if self.pair.step().is_err() || self.closed() {
                return false;
            }
            let now = Instant::now();
            if self.pair.next_wakeup().is_none_or(|t| t > now) {
                break;
            }
        }
        self.clock.advance(Duration::from_millis(1));
        let conn = self.pair.client.quiche();
        !self.closed() && conn.peer_streams_left_bidi() > 0 && conn.peer_streams_left_uni() > 0
    }

    fn finish(self, _replay: bool) {
        // Nothing is owed at the end: the server must only not panic. The configs serve the
        // next pair (a state lost to a panic takes them along; they are built anew).
        CONFIGS.set(Some((self.client_config, self.pair.into_server_config())));
    }
}

impl H3Server {
    fn closed(&self) -> bool {
        self.pair.client.is_closed()
            || self.pair.client.stage() != quicksand_core::Stage::Running
            || self
                .pair
                .server
                .as_ref()
                .is_none_or(|s| s.stage() != quicksand_core::Stage::Running)
    }
}
