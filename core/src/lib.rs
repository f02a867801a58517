//! # quicksand-core
//!
//! The sans-IO heart of quicksand: QUIC connections (on Cloudflare's quiche) as deterministic
//! state machines over abstract time and datagram queues. Nothing here reads a clock, spawns,
//! sleeps or touches a socket; a driver (the tokio or smol adapter, or the simulator) owns
//! those and feeds the core.
//!
//! ## Driving a [`Connection`]
//!
//! Every call that can change state takes `now: Instant`. Per wake-up, in this order:
//!
//! 1. `handle_datagram(now, datagram)` for each datagram received, and
//!    `handle_timeout(now)` if the instant from `poll_timeout()` has passed;
//! 2. `poll_transmit(now, max_segments)` until `None`, sending each [`Transmit`] (it may carry
//!    several GSO segments and a pacing release time). The application runs inside the first
//!    call, so within a wake-up the order is always recv → application reads → application
//!    writes → send;
//! 3. `poll_event()` and `poll_endpoint_event()` until `None`;
//! 4. wait for the earliest of: a datagram, `poll_timeout()`, or a wake-up from outside code
//!    (the [`Application`] has work: its [`ConnectionWake`] reached your [`WakeTarget`]), and
//!    pass that to `handle_wakeup()`.
//!
//! Outside code changes a connection through `&mut` methods (`close`, `stats`, `quiche_mut`,
//! `application_mut`) called by its owner; the core holds no channels, locks or wakers.
//! Whatever crosses threads (command queues, task wakers) lives in the runtime layer.
//!
//! quiche reads the wall clock itself; a driver must therefore pass the same clock it runs on
//! (`Instant::now()` in real drivers, whose `clock_gettime` the simulator virtualises).
//!
//! ## Configuring
//!
//! [`ConnectionParams`] (transport [`QuicSettings`], [`TlsSettings`], [`Hooks`], a session)
//! build a [`QuicConfig`] once; connections borrow it when created.
//!
//! ## Where quiche shows
//!
//! The core wraps quiche; it does not hide it everywhere, by choice:
//!
//! - **Part of the API, on purpose**: an [`Application`] gets `&mut quiche::Connection`
//!   ([`QuicheConnection`]) to read and write streams and datagrams, and
//!   [`Connection::quiche_mut`] hands it to the connection's owner. Wrapping every stream call would copy quiche's whole stream API
//!   for nothing; an application is written against quiche, as with tokio-quiche. The crate
//!   re-exports [`quiche`] so that its version is the core's. Connection IDs are
//!   `quiche::ConnectionId` for the same reason: they pass straight into quiche.
//! - **Kept out**: what a driver or handle matches on is the core's own type ([`Event`],
//!   [`PathEvent`], [`CloseReason`], [`Stage`], errors), marked `#[non_exhaustive]` where it may
//!   grow, so a quiche upgrade changes what a connection can do, not how its owner is written.
//!   [`QuicSettings`] and [`ConnectionContext`] are built from `Default` and set field by
//!   field, so new settings are not breaking changes either.
#![deny(missing_docs)]

pub mod anti_replay;
mod application;
mod buffer;
mod cid;
mod connection;
mod datagram;
pub mod driver;
pub mod driver_workers;
pub mod endpoint;
pub mod gso;
mod log;
pub mod metrics;
mod settings;
mod stream_buf;
mod wake;

pub use application::{Application, ApplicationError, NoApplication};
pub use buffer::{BufferPool, PooledBuf};
pub use cid::{
    ConnectionIdGenerator, QuicLbConnectionIds, QuicLbDecoder, QuicLbError, RandomConnectionIds,
    StatelessResetKey, DEFAULT_CID_LEN,
};
pub use connection::{
    CloseReason, Connection, ConnectionContext, ConnectionFacts, ConnectionLogs, ConnectionStats,
    CreateError, EndpointEvent, Event, LogTarget, LogWriter, PathEvent, RetryIds, Stage,
};
pub use datagram::{Datagram, Ecn, SegmentIter, Transmit};
pub use driver::Driver;
pub use endpoint::{
    AcceptError, AddressValidation, ConnectionKey, DatagramEvent, Endpoint, EndpointConfig,
    EndpointStats, Incoming, WALL_CLOCK_TOLERANCE,
};
pub use log::capture_quiche_logs;
pub use metrics::{Metrics, NoopMetrics};
pub use settings::{
    CertificateKey, CertificateRequest, CertificateResolver, CertificateSource, CertificateStore,
    ConfigError, ConfigErrorKind, ConnectionParams, Hooks, QuicConfig, QuicSettings,
    ServerTransportParams, TicketKeys, TlsSettings, QUICHE_TRANSPORT_PARAMS_CAPACITY,
};
pub use stream_buf::{QuicheConnection, StreamBuf, StreamBufs};
pub(crate) use wake::WakeTargetSlot;
pub use wake::{ConnectionWake, WakeTarget};

pub use boring;
pub use quiche;
pub use quiche::ConnectionId;
