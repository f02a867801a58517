//! `h3_client`: a hostile HTTP/3 server against the HTTP/3 client driver. A raw QUIC peer
//! plays an arbitrary sequence of actions — raw bytes on request streams (any HTTP/3 frames,
//! any QPACK), response heads (1xx, final, invalid statuses), DATA, trailers, unidirectional
//! streams of any type (control streams with arbitrary SETTINGS, GOAWAY and other frames,
//! QPACK and push streams, unknown types), resets, STOP_SENDING, datagrams — over the
//! in-memory pair on virtual time, while the client has up to six new requests in flight
//! (GETs, bodies sent whole or streamed, extended CONNECT with a datagram flow, cancellations)
//! whose responses it reads in different ways. The client must not panic, may only hand out
//! final responses with at most `MAX_INFORMATIONAL` 1xx ones, must close within bounded
//! (virtual) time once the server closes, goes silent or the handle is dropped, and every
//! request future, body and body sender must have finished once the connection closed.
//!
//! Persistent ([`crate::persistent`]): one connection per state; each input makes new
//! requests on it and its actions act on those (stream selectors pick among the input's own
//! requests). An input that ends the connection (`end` 0xfc to 0xff), or one after which the
//! connection cannot take another input (closed, no stream credit left on either side, a
//! GOAWAY sent), ends the state; so does the `MAX_INPUTS`th input. The end of a state closes
//! the connection if it is open and runs the checks above over every request the state made.
//!
//! Byte format (seeds: `fuzz/make_seeds.py`; reads past the end give zeros):
//!
//! ```text
//! streams:u8 end:u8 end_code:u16le   the server's bidi stream limit (>= 10: 100; read by the
//!                                     input a state is built for); end: 0xfc application
//!                                     close, 0xfd transport close, 0xfe silence, 0xff drop
//!                                     the handle, other: the connection stays for the next
//!                                     input
//! count:u8, then count % 6 + 1 times kind:u8 arg:u8 read:u8         the requests
//! op:u8 fields..., until the input ends (at most 64)                  the actions; see `Act`
//! ```
//!
//! The actions before a `Wait` are written at once, then the pair runs until nothing is left
//! to deliver at that instant (the link has no delay); a `Wait` lets time pass with every
//! timer firing on the way. Time moves a millisecond after each input.

mod actions;
mod requests;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use quicksand_core::QuicConfig;
use quicksand_h3::{ClientApplication, H3Client, Http3Settings};
use quicksand_tests::apps::Drain;
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::fuzzing::Reader;
use quicksand_tests::pair::Pair;

use self::actions::{Act, Actor, Selection};
use self::requests::{start_request, Tasks};
use super::persistent::Live;

/// Actions played per input at most.
const MAX_ACTIONS: usize = 16;
/// Inputs one state sees at most.
pub const MAX_INPUTS: usize = 200;
/// Virtual time within which the client connection must have closed once the end began:
/// an idle timeout of 30 s at the latest.
const CLOSE_LIMIT: Duration = Duration::from_secs(120);
/// Pair steps at one instant before we call it a livelock.
const MAX_SPINS: u32 = 10_000;
/// H3_NO_ERROR, the code a retiring state closes with.
const H3_NO_ERROR: u64 = 0x100;

/// How an input ends.
#[derive(Clone, Copy, Debug)]
enum End {
    AppClose(u64),
    TransportClose(u64),
    /// The server says nothing more: the idle timeout ends the connection.
    Silence,
    /// The client application drops its `H3Client`: the driver closes once no request is left.
    DropHandle,
    /// The connection stays for the next input.
    Continue,
}

/// One decoded input (see the module docs).
struct Input {
    streams: u64,
    end: End,
    requests: Vec<(u8, u8, u8)>,
    actions: Vec<Act>,
}

impl Input {
    fn parse(data: &[u8]) -> Input {
        let mut r = Reader::new(data);
        let streams = match r.u8() {
            n @ 0..10 => u64::from(n),
            _ => 100,
        };
        let end_kind = r.u8();
        let end_code = u64::from(r.u16());
        // The ends that close take four exact values, so most mutations keep the connection
        // (a new one costs a handshake).
        let end = match end_kind {
            0xfc => End::AppClose(end_code),
            0xfd => End::TransportClose(end_code % 0x11),
            0xfe => End::Silence,
            0xff => End::DropHandle,
            _ => End::Continue,
        };
        let count = usize::from(r.u8() % 6) + 1;
        let requests = (0..count).map(|_| (r.u8(), r.u8(), r.u8())).collect();
        let mut actions = Vec::new();
        while !r.is_empty() && actions.len() < MAX_ACTIONS {
            actions.push(Act::parse(&mut r));
        }
        Input {
            streams,
            end,
            requests,
            actions,
        }
    }
}

thread_local! {
    /// The client and server configs between states: building them is most of a state's cost.
    static CONFIGS: Cell<Option<(QuicConfig, QuicConfig)>> = const { Cell::new(None) };
}

/// The state inputs act on: a client connection and its driver facing the hostile server.
pub struct Client {
    pair: Pair<ClientApplication, Drain>,
    /// The application's handle; dropped by an input that ends with `DropHandle`.
    handle: Option<H3Client>,
    /// Every request's tasks still pending, from all inputs of this state.
    tasks: Tasks,
    /// Set once the connection closed: bodies held unread are read then.
    closed: Rc<Cell<bool>>,
    actor: Actor,
    /// Requests made so far (each gets its own path).
    made: usize,
    client_config: QuicConfig,
    // Dropped last: the pair's connections read the clock until they go.
    clock: VirtualTime,
}

impl Live for Client {
    fn build(first: &[u8]) -> Self {
        let clock = VirtualTime::enter();
        let (mut client_config, mut server_config) = CONFIGS.take().unwrap_or_else(|| {
            // On a thread of its own, so that building takes nothing from this thread's
            // seeded entropy: a state then runs the same whether the configs were cached.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let settings = quicksand_tests::h3::quic_settings();
                    quicksand_tests::fuzzing::h3_configs(settings.clone(), settings)
                })
                .join()
                .expect("configs")
            })
        });
        server_config
            .quiche_config_mut()
            .set_initial_max_streams_bidi(Input::parse(first).streams);
        // Small buffers, so bodies that are held unread reach the caps.
        let h3 = Http3Settings {
            enable_datagrams: true,
            stream_buffer_size: 8 * 1024,
            connection_buffer_size: 32 * 1024,
            ..Http3Settings::default()
        };
        let (driver, handle) = ClientApplication::new(h3);
        let pair = Pair::new(
            &mut client_config,
            server_config,
            driver,
            Drain::default(),
            Duration::ZERO,
        )
        .expect("client connection");
        Client {
            pair,
            handle: Some(handle),
            tasks: Tasks::default(),
            closed: Rc::new(Cell::new(false)),
            actor: Actor::default(),
            made: 0,
            client_config,
            clock,
        }
    }

    fn clock(&self) -> &VirtualTime {
        &self.clock
    }

    fn play(&mut self, data: &[u8]) -> bool {
        let input = Input::parse(data);
        let (before, base) = {
            let seen = self.seen();
            (seen.len(), seen.iter().max().map_or(0, |m| m + 4))
        };
        if let Some(handle) = &self.handle {
            for spec in input.requests {
                start_request(handle, self.made, spec, &self.closed, &mut self.tasks);
                self.made += 1;
            }
        }
        // The handshake, on a new state, and the requests reach the server.
        self.settle();
        let mut actions = input.actions.into_iter().peekable();
        while actions.peek().is_some() && !self.pair.client.is_closed() {
            let streams = Selection {
                seen: self.seen()[before..].to_vec(),
                base,
            };
            let Some(server) = self.pair.server.as_mut() else {
                break;
            };
            while let Some(act) = actions.next_if(|a| !matches!(a, Act::Wait(_))) {
                self.actor.act(server.quiche_mut(), &streams, act);
            }
            self.settle();
            if let Some(Act::Wait(ms)) = actions.next() {
                self.wait(Duration::from_millis(u64::from(ms) + 1));
            }
        }
        match input.end {
            End::Continue => {
                self.settle();
                self.clock.advance(Duration::from_millis(1));
                !self.spent()
            }
            end => {
                self.end(end);
                false
            }
        }
    }

    fn finish(mut self, _replay: bool) {
        if !self.pair.client.is_closed() {
            self.end(End::AppClose(H3_NO_ERROR));
        }
        // Every request must have an outcome now; held bodies are read after the close.
        self.closed.set(true);
        for _ in 0..4 {
            self.tasks.poll_all();
        }
        assert!(
            self.tasks.len() == 0,
            "{} request tasks still pending after the connection closed",
            self.tasks.len()
        );
        assert!(self.pair.client.application().close_reason().is_some());
        drop(self.handle.take());
        CONFIGS.set(Some((self.client_config, self.pair.into_server_config())));
    }
}

impl Client {
    /// The request streams the server saw so far.
    fn seen(&self) -> &[u64] {
        self.pair
            .server
            .as_ref()
            .map_or(&[], |s| &s.application().requests)
    }

    /// Steps the pair until nothing is due at this instant.
    fn settle(&mut self) {
        let mut spins = 0u32;
        loop {
            self.pair.step().expect("server connection");
            self.tasks.poll_woken();
            let now = Instant::now();
            if self.pair.next_wakeup().is_none_or(|t| t > now) {
                return;
            }
            spins += 1;
            assert!(spins < MAX_SPINS, "no progress at one instant: livelock");
        }
    }

    /// Lets `time` pass, firing every timer on the way.
    fn wait(&mut self, time: Duration) {
        let until = Instant::now() + time;
        loop {
            match self.pair.next_wakeup() {
                Some(t) if t <= until => self.clock.advance_to(t),
                _ => {
                    self.clock.advance_to(until);
                    self.settle();
                    return;
                }
            }
            self.settle();
        }
    }

    /// Ends the connection as `end` says and runs until the client connection closed.
    fn end(&mut self, end: End) {
        let server = self.pair.server.as_mut().map(|s| s.quiche_mut());
        match (end, server) {
            (End::AppClose(code), Some(conn)) => {
                let _ = conn.close(true, code, b"fuzz");
            }
            (End::TransportClose(code), Some(conn)) => {
                let _ = conn.close(false, code, b"fuzz");
            }
            // No server connection yet (the handshake never got far): the client ends it.
            (End::AppClose(code) | End::TransportClose(code), None) => {
                let _ = self.pair.client.quiche_mut().close(true, code, b"fuzz");
            }
            (End::DropHandle, _) => drop(self.handle.take()),
            (End::Silence | End::Continue, _) => {}
        }
        let deadline = Instant::now() + CLOSE_LIMIT;
        let mut spins = 0u32;
        loop {
            self.pair.step().expect("server connection");
            self.tasks.poll_woken();
            if self.pair.client.is_closed() {
                return;
            }
            let now = Instant::now();
            let next = self
                .pair
                .next_wakeup()
                .expect("an open connection always has a timer");
            assert!(
                next <= deadline,
                "the client connection is still open after {CLOSE_LIMIT:?} of virtual time"
            );
            if next <= now {
                spins += 1;
                assert!(spins < MAX_SPINS, "no progress at one instant: livelock");
            } else {
                spins = 0;
                self.clock.advance_to(next);
            }
        }
    }

    /// The connection cannot take another input: closed, no stream credit left for the
    /// client's requests or the server's unidirectional streams, or a GOAWAY sent.
    fn spent(&self) -> bool {
        let client = self.pair.client.quiche();
        self.pair.client.is_closed()
            || self.actor.goaway
            || client.peer_streams_left_bidi() == 0
            || self
                .pair
                .server
                .as_ref()
                .is_none_or(|s| s.is_closed() || s.quiche().peer_streams_left_uni() == 0)
    }
}
