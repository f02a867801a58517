//! Helpers for HTTP/3 tests: configs with the `h3` ALPN, and a way to run a future while the
//! pair exchanges packets on virtual time.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use quicksand_core::{
    quiche, Application, ApplicationError, CertificateSource, ConnectionParams, Hooks, QuicConfig,
    QuicSettings, QuicheConnection, TlsSettings,
};

use crate::clock::VirtualTime;
use crate::pair::Pair;

/// Transport settings for HTTP/3 tests: `h3`, generous windows, datagrams on.
pub fn quic_settings() -> QuicSettings {
    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"h3".to_vec()];
    settings.max_idle_timeout = Some(Duration::from_secs(30));
    settings.initial_max_data = 16 << 20;
    settings.initial_max_stream_data_bidi_local = 2 << 20;
    settings.initial_max_stream_data_bidi_remote = 2 << 20;
    settings.enable_dgram = true;
    settings
}

/// A client and a server config (self-signed certificate, no verification).
pub fn configs(client: QuicSettings, server: QuicSettings) -> (QuicConfig, QuicConfig) {
    configs_with_hooks(client, server, Hooks::default())
}

/// [`configs`], with `hooks` on both sides' TLS contexts.
pub fn configs_with_hooks(
    client: QuicSettings,
    server: QuicSettings,
    hooks: Hooks,
) -> (QuicConfig, QuicConfig) {
    let mut c = ConnectionParams::new(client);
    c.tls.verify_peer = false;
    c.hooks = hooks.clone();
    let s = ConnectionParams {
        settings: server,
        tls: TlsSettings {
            certificate: Some(
                CertificateSource::self_signed(&["localhost"], SystemTime::now())
                    .expect("self-signed certificate"),
            ),
            ..Default::default()
        },
        hooks,
        ..Default::default()
    };
    (
        QuicConfig::client(&c).expect("client config"),
        QuicConfig::server(&s).expect("server config"),
    )
}

/// Polls `fut` while stepping the pair (advancing virtual time as needed) until it
/// completes; `None` if `limit` of virtual time passed or nothing was left to do.
pub fn block_on<C: Application, S: Application, F: Future>(
    pair: &mut Pair<C, S>,
    clock: &VirtualTime,
    limit: Duration,
    fut: F,
) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let deadline = Instant::now() + limit;
    let mut spins = 0u32;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        pair.step().expect("pair step");
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = Instant::now();
        let next = pair.next_wakeup()?;
        if next > deadline {
            return None;
        }
        if next <= now {
            spins += 1;
            assert!(spins < 100_000, "no progress at one instant: livelock");
        } else {
            spins = 0;
            clock.advance_to(next);
        }
    }
}

/// Steps the pair until `done` holds or `limit` passes.
pub fn run_until<C: Application, S: Application>(
    pair: &mut Pair<C, S>,
    clock: &VirtualTime,
    limit: Duration,
    done: impl FnMut(&Pair<C, S>) -> bool,
) -> bool {
    pair.run_until(clock, limit, done).expect("pair step")
}

/// `len` bytes of the deterministic pattern `seed`.
pub fn pattern(seed: u64, len: usize) -> bytes::Bytes {
    (0..len as u64)
        .map(|i| crate::apps::pattern_byte(seed, i))
        .collect::<Vec<u8>>()
        .into()
}

/// Receives `n` requests on the server of an HTTP/3 pair, in arrival order (panics if one
/// does not come within 5 s of virtual time).
pub fn accept(
    pair: &mut Pair<quicksand_h3::ClientApplication, quicksand_h3::ServerApplication>,
    clock: &VirtualTime,
    incoming: &mut quicksand_h3::IncomingRequests,
    n: usize,
) -> Vec<quicksand_h3::IncomingRequest> {
    (0..n)
        .map(|_| {
            block_on(pair, clock, Duration::from_secs(5), incoming.next())
                .expect("request in time")
                .expect("request")
        })
        .collect()
}

/// One side of a test that speaks HTTP/3 through `quiche::h3` directly, below quicksand's
/// drivers (to send what they never would). Run it as an [`Application`] with [`BareH3`].
pub trait BareH3Peer: Send + 'static {
    /// An event quiche's HTTP/3 layer reported on stream `id`.
    fn on_event(
        &mut self,
        h3: &mut quiche::h3::Connection,
        conn: &mut QuicheConnection,
        id: u64,
        event: quiche::h3::Event,
    );

    /// A chance to send, after every read.
    fn write(&mut self, _h3: &mut quiche::h3::Connection, _conn: &mut QuicheConnection) {}
}

/// Runs a [`BareH3Peer`] as a connection's application: opens `quiche::h3` on the
/// established connection, hands it every event, and lets the peer write.
pub struct BareH3<P> {
    /// The test's side of the conversation.
    pub peer: P,
    h3: Option<quiche::h3::Connection>,
}

impl<P: BareH3Peer> BareH3<P> {
    /// `peer`, before the handshake.
    pub fn new(peer: P) -> Self {
        BareH3 { peer, h3: None }
    }
}

impl<P: BareH3Peer> Application for BareH3<P> {
    fn on_established(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        let config = quiche::h3::Config::new().expect("h3 config");
        let h3 =
            quiche::h3::Connection::with_transport(conn, &config).expect("h3 on a new connection");
        self.h3 = Some(h3);
        Ok(())
    }

    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        if let Some(h3) = self.h3.as_mut() {
            while let Ok((id, event)) = h3.poll(conn) {
                self.peer.on_event(h3, conn, id, event);
            }
        }
        Ok(())
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        if let Some(h3) = self.h3.as_mut() {
            self.peer.write(h3, conn);
        }
        Ok(())
    }
}
