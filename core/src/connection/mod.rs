//! One QUIC connection as a sans-IO state machine: [`Connection`].

mod close;
mod context;
mod facts;
mod lifecycle;
mod logs;
mod path;
mod stats;
mod transmit;

pub use close::{CloseReason, Stage};
pub use context::ConnectionContext;
pub use facts::ConnectionFacts;
pub use logs::{ConnectionLogs, LogTarget, LogWriter};
pub use path::PathEvent;
pub use stats::ConnectionStats;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quiche::ConnectionId;

use crate::gso::PacketMeta;
use crate::metrics::TransportDelta;
use crate::{
    Application, ConnectionWake, Datagram, PooledBuf, QuicConfig, QuicheConnection, Transmit,
};

/// Something that happened to a connection, for its owner. Drain with
/// [`Connection::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// 0-RTT data can flow before the handshake completes.
    EarlyData,
    /// A server accepted 0-RTT at the TLS level, but the application will see it only once the
    /// handshake completes: the ClientHello was seen before (a replay), or could not be
    /// recorded (see [`crate::anti_replay`]).
    EarlyDataHeld,
    /// The handshake completed.
    HandshakeCompleted {
        /// Time from creation to completion.
        duration: Duration,
        /// A TLS session was resumed.
        resumed: bool,
    },
    /// A path changed (new, validated, failed, peer migrated, ...).
    Path(PathEvent),
    /// The connection ended. The last event.
    Closed(CloseReason),
}

/// What a connection tells the endpoint that routes datagrams to it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointEvent {
    /// Route datagrams for this CID here too.
    NewConnectionId(ConnectionId<'static>),
    /// Stop routing this CID here.
    RetiredConnectionId(ConnectionId<'static>),
    /// The handshake completed (the connection leaves the accept backlog). Carries the peer's
    /// stateless-reset token, by which the endpoint recognises a reset from a peer that lost
    /// the connection.
    Established {
        /// The token from the peer's transport parameters (servers send one).
        peer_reset_token: Option<u128>,
    },
    /// The connection ended: drop all its CIDs.
    Closed,
}

/// Failure to create a connection.
#[derive(Debug)]
pub enum CreateError {
    /// A client connection was requested from a server config, or the reverse.
    WrongSide {
        /// Whether the config is a server config.
        config_is_server: bool,
    },
    /// quiche refused to create the connection.
    Quiche(quiche::Error),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::WrongSide {
                config_is_server: true,
            } => f.write_str("a client connection needs a client config, not a server one"),
            CreateError::WrongSide {
                config_is_server: false,
            } => f.write_str("a server connection needs a server config, not a client one"),
            CreateError::Quiche(e) => write!(f, "quiche refused the connection: {e}"),
        }
    }
}

impl std::error::Error for CreateError {}

/// The connection IDs a server saw in a RETRY exchange (see RFC 9000 §7.3).
#[derive(Clone, Debug)]
pub struct RetryIds {
    /// DCID of the client's first Initial.
    pub original_destination_cid: ConnectionId<'static>,
    /// SCID of our RETRY packet.
    pub retry_source_cid: ConnectionId<'static>,
}

/// One QUIC connection, client or server, with its [`Application`], over abstract time.
///
/// # Driving it
///
/// Time is an argument: pass the current `Instant` to every call. On every wake-up:
///
/// 1. feed every received datagram with [`handle_datagram`](Self::handle_datagram), and if
///    the timer from `poll_timeout` has passed, call [`handle_timeout`](Self::handle_timeout);
/// 2. call [`poll_transmit`](Self::poll_transmit) until it returns `None`, sending each
///    [`Transmit`]. The application runs inside the first call, so the order within a wake-up
///    is always recv → application reads → application writes → send;
/// 3. drain [`poll_event`](Self::poll_event) and [`poll_endpoint_event`](Self::poll_endpoint_event);
/// 4. sleep until [`poll_timeout`](Self::poll_timeout), a datagram, or a wake-up from outside
///    code (the [`ConnectionWake`] given with [`set_wake`](Self::set_wake)), then call
///    [`handle_wakeup`](Self::handle_wakeup).
///
/// After [`Event::Closed`] the connection is finished ([`is_closed`](Self::is_closed)) and can
/// be dropped.
pub struct Connection<A: Application> {
    conn: QuicheConnection,
    app: A,
    ctx: ConnectionContext,
    stage: Stage,
    created_at: Instant,
    handshake_deadline: Option<Instant>,
    handshake_duration: Option<Duration>,
    /// Transport totals as last reported to the metrics, and when.
    transport_reported: (TransportDelta, Instant),
    /// The connection's tracing span, entered while it runs.
    span: tracing::Span,
    dscp: u8,
    app_started: bool,
    early_data_reported: bool,
    /// The ClientHello random of a server connection whose client offered early data.
    client_hello_random: Option<[u8; 32]>,
    /// Early data may be used before the handshake completes (not a replay).
    early_data_admitted: bool,
    reads_pending: bool,
    writes_pending: bool,
    shutdown: Shutdown,
    /// A transmit waiting for its pacing release time.
    held: Option<Transmit>,
    /// A packet quiche wrote that did not fit the previous batch; it starts the next one.
    carry: Option<(PooledBuf, PacketMeta)>,
    /// Set when we must close without waiting for quiche's closing period (handshake timeout).
    forced_reason: Option<CloseReason>,
    events: VecDeque<Event>,
    endpoint_events: VecDeque<EndpointEvent>,
    /// How outside code wakes this connection, once its owner said.
    wake: Option<ConnectionWake>,
    stats: TransmitCounters,
}

#[derive(Clone, Copy, Debug, Default)]
struct TransmitCounters {
    transmits: u64,
    datagrams_sent: u64,
    datagrams_received: u64,
}

/// Where a connection is in its server's graceful shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    /// Not asked.
    No,
    /// Asked; the application hears of it on its next run.
    Asked,
    /// The application's `on_shutdown` ran.
    Told,
}

/// Most source CIDs a connection keeps issued at once, whatever limit the peer announces.
const MAX_ISSUED_CIDS: usize = 8;

impl<A: Application> Connection<A> {
    /// Creates a client connection to `peer` from the `local` address, with a CID from the
    /// context's generator. Resumes the config's session if it has one (a bad session is
    /// ignored: the handshake is then a full one).
    pub fn connect(
        now: Instant,
        config: &mut QuicConfig,
        server_name: Option<&str>,
        local: SocketAddr,
        peer: SocketAddr,
        ctx: ConnectionContext,
        app: A,
    ) -> Result<Self, CreateError> {
        if config.is_server {
            return Err(CreateError::WrongSide {
                config_is_server: true,
            });
        }
        let scid = ctx.cid_generator.generate();
        let mut conn = quiche::connect_with_buffer_factory(
            server_name,
            &scid,
            local,
            peer,
            &mut config.quiche,
        )
        .map_err(CreateError::Quiche)?;
        if let Some(session) = &config.session {
            if let Err(e) = conn.set_session(session) {
                tracing::warn!(error = %e, "stored TLS session rejected; doing a full handshake");
            }
        }
        Ok(Self::new(now, conn, config, ctx, app, peer))
    }

    /// Creates a server connection for a client's first Initial, with our source CID `scid`
    /// (announced with its stateless-reset token) and, after a RETRY, the retry CIDs.
    /// Feed the Initial itself with [`handle_datagram`](Self::handle_datagram).
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        now: Instant,
        config: &mut QuicConfig,
        scid: &ConnectionId<'_>,
        retry: Option<&RetryIds>,
        local: SocketAddr,
        peer: SocketAddr,
        ctx: ConnectionContext,
        app: A,
    ) -> Result<Self, CreateError> {
        if !config.is_server {
            return Err(CreateError::WrongSide {
                config_is_server: false,
            });
        }
        config
            .quiche
            .set_stateless_reset_token(Some(ctx.reset_key.token(scid)));
        let conn = match retry {
            Some(ids) => quiche::accept_with_retry(
                scid,
                quiche::RetryConnectionIds {
                    original_destination_cid: &ids.original_destination_cid,
                    retry_source_cid: &ids.retry_source_cid,
                },
                local,
                peer,
                &mut config.quiche,
            ),
            None => quiche::accept_with_buf_factory(scid, None, local, peer, &mut config.quiche),
        }
        .map_err(CreateError::Quiche)?;
        Ok(Self::new(now, conn, config, ctx, app, peer))
    }

    fn new(
        now: Instant,
        mut conn: QuicheConnection,
        config: &QuicConfig,
        ctx: ConnectionContext,
        app: A,
        peer: SocketAddr,
    ) -> Self {
        if let Some(logs) = &ctx.logs {
            logs::attach(&mut conn, logs.as_ref(), config.settings.log_keys);
        }
        // Everything logged while this connection runs (quicksand's, quiche's, the
        // application's and its handlers') carries its trace id and peer.
        let span = tracing::info_span!(
            "quic",
            trace_id = %conn.trace_id(),
            %peer,
            server = conn.is_server()
        );
        ctx.metrics.connection_opened();
        Connection {
            conn,
            app,
            stage: Stage::Handshake,
            created_at: now,
            handshake_deadline: config.handshake_timeout().map(|t| now + t),
            handshake_duration: None,
            transport_reported: (TransportDelta::default(), now),
            dscp: config.settings.dscp,
            app_started: false,
            early_data_reported: false,
            client_hello_random: None,
            early_data_admitted: false,
            reads_pending: false,
            writes_pending: false,
            shutdown: Shutdown::No,
            held: None,
            carry: None,
            forced_reason: None,
            events: VecDeque::new(),
            endpoint_events: VecDeque::new(),
            wake: None,
            stats: TransmitCounters::default(),
            ctx,
            span,
        }
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Feeds a received datagram (split into its GRO segments if coalesced).
    pub fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        if self.stage == Stage::Closed {
            return;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        for mut segment in datagram.split_segments() {
            self.stats.datagrams_received += 1;
            let info = quiche::RecvInfo {
                from: segment.peer,
                to: segment.local,
            };
            // Only a server still in its handshake can receive a ClientHello; nothing noted by
            // an earlier call (another connection's) may leak into this one.
            let may_see_client_hello = self.conn.is_server() && !self.conn.is_established();
            if may_see_client_hello {
                let _ = crate::anti_replay::take_client_hello_random();
            }
            let received = if may_see_client_hello {
                // A certificate resolver may suspend the handshake inside `recv`.
                let conn = &mut self.conn;
                crate::settings::with_handshaking(self.wake.as_ref(), || {
                    conn.recv(&mut segment.payload, info)
                })
            } else {
                self.conn.recv(&mut segment.payload, info)
            };
            match received {
                Ok(_) | Err(quiche::Error::Done) => {}
                // quiche has closed the connection with a transport error; the close reason
                // will say which.
                Err(e) => {
                    tracing::debug!(trace_id = self.conn.trace_id(), error = %e, "recv failed")
                }
            }
            // Set by BoringSSL's ClientHello callback inside this `recv`, if at all.
            if may_see_client_hello {
                if let Some(random) = crate::anti_replay::take_client_hello_random() {
                    self.client_hello_random = Some(random);
                }
            }
        }
        self.reads_pending = true;
        self.update(now);
    }

    /// Fires the timers that are due at `now`: quiche's loss/idle/drain timers, the handshake
    /// deadline and the application's deadline. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stage == Stage::Closed {
            return;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        if self.conn.timeout_instant().is_some_and(|t| t <= now) {
            self.conn.on_timeout();
        }
        if self.stage == Stage::Handshake && self.handshake_deadline.is_some_and(|t| t <= now) {
            self.handshake_timed_out(now);
        }
        if self.app_started && self.app.poll_deadline().is_some_and(|t| t <= now) {
            self.writes_pending = true;
        }
        self.update(now);
    }

    /// Outside code woke the connection (its [`ConnectionWake`]): the application's
    /// `process_writes` runs on the next `poll_transmit`, and a handshake that waited for a
    /// certificate lookup goes on.
    pub fn handle_wakeup(&mut self) {
        if self.stage != Stage::Closed {
            self.writes_pending = true;
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next lifecycle event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next routing change for the endpoint, if any.
    pub fn poll_endpoint_event(&mut self) -> Option<EndpointEvent> {
        self.endpoint_events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the earliest of quiche's
    /// timer, a held transmit's release time, the handshake deadline and the application's
    /// deadline. `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stage == Stage::Closed {
            return None;
        }
        let handshake = (self.stage == Stage::Handshake)
            .then_some(self.handshake_deadline)
            .flatten();
        let app = (self.app_started && self.stage <= Stage::Running)
            .then(|| self.app.poll_deadline())
            .flatten();
        let held = self.held.as_ref().and_then(|t| t.release_at);
        [self.conn.timeout_instant(), handshake, app, held]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- commands -----------------------------------------------------------------------

    /// Closes the connection with an application error code (or a transport one with
    /// `application == false`). The close goes out with the next `poll_transmit`.
    pub fn close(&mut self, application: bool, code: u64, reason: &[u8]) {
        match self.conn.close(application, code, reason) {
            // Done: already closing or closed; the first close wins.
            Ok(()) | Err(quiche::Error::Done) => {}
            Err(e) => tracing::debug!(error = %e, "close failed"),
        }
        self.update_stage();
    }

    /// Starts a graceful shutdown: the application's
    /// [`on_shutdown`](Application::on_shutdown) runs on the next `poll_transmit` (once the
    /// application has started, if it has not yet). Asking again does nothing.
    pub fn shutdown(&mut self) {
        if self.shutdown == Shutdown::No {
            self.shutdown = Shutdown::Asked;
        }
    }

    /// Closes the connection as a shutdown deadline does: with the application's
    /// [`shutdown_close`](Application::shutdown_close), or NO_ERROR at the transport level.
    /// False if it was already closing (nothing to close).
    pub fn close_for_shutdown(&mut self) -> bool {
        if self.stage > Stage::Running {
            return false;
        }
        match self.app.shutdown_close() {
            Some(e) => self.close(true, e.code, &e.reason),
            None => self.close(false, 0, b"server shutting down"),
        }
        true
    }

    /// Gives the connection the way outside code wakes it (its owner calls it once, as it
    /// takes the connection in): the application gets a copy
    /// ([`Application::set_wake`]), and a certificate lookup that suspends the handshake uses
    /// it to resume.
    pub fn set_wake(&mut self, wake: ConnectionWake) {
        self.app.set_wake(wake.clone());
        self.wake = Some(wake);
    }

    // ---- getters ------------------------------------------------------------------------

    /// The current stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The connection's tracing span (`quic`, with `trace_id`, `peer` and `server`): entered
    /// while the connection runs, so log lines of one connection can be followed; enter it
    /// around your own work for the connection too.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// True once [`Event::Closed`] has been emitted.
    pub fn is_closed(&self) -> bool {
        self.stage == Stage::Closed
    }

    /// True for a server-side connection.
    pub fn is_server(&self) -> bool {
        self.conn.is_server()
    }

    /// quiche's trace id, for logs.
    pub fn trace_id(&self) -> &str {
        self.conn.trace_id()
    }

    /// The TLS session to store for resumption (clients, after the handshake).
    pub fn session(&self) -> Option<Vec<u8>> {
        self.conn.session().map(<[u8]>::to_vec)
    }

    /// All our source CIDs currently active.
    pub fn source_ids(&self) -> Vec<ConnectionId<'static>> {
        self.conn
            .source_ids()
            .map(|c| c.clone().into_owned())
            .collect()
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            quic: self.conn.stats(),
            paths: self.conn.path_stats().collect(),
            handshake_duration: self.handshake_duration,
            stage: self.stage,
            transmits: self.stats.transmits,
            datagrams_sent: self.stats.datagrams_sent,
            datagrams_received: self.stats.datagrams_received,
        }
    }

    /// The quiche connection, for reading state quicksand does not wrap.
    pub fn quiche(&self) -> &QuicheConnection {
        &self.conn
    }

    /// The quiche connection, mutably. Anything done here is sent on the next
    /// `poll_transmit`.
    pub fn quiche_mut(&mut self) -> &mut QuicheConnection {
        self.writes_pending = true;
        &mut self.conn
    }

    /// The application.
    pub fn application(&self) -> &A {
        &self.app
    }

    /// The application, mutably; it gets a `process_writes` on the next `poll_transmit`.
    pub fn application_mut(&mut self) -> &mut A {
        self.writes_pending = true;
        &mut self.app
    }
}

impl<A: Application> fmt::Debug for Connection<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("trace_id", &self.conn.trace_id())
            .field("server", &self.conn.is_server())
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl<A: Application> Drop for Connection<A> {
    fn drop(&mut self) {
        self.ctx.metrics.connection_closed();
    }
}
