//! Everything of a quicksand server or client that does not depend on the runtime, written
//! once: the configs ([`ServerConfig`], [`ClientConfig`], [`FleetKeys`]), binding and building
//! the workers, the endpoint task's loop ([`EndpointTask`]), [`Server`], [`Client`], their
//! handles and the error type. `quicksand-tokio` and `quicksand-smol` are each an
//! implementation of [`Runtime`] plus short wrappers that pick it.
//!
//! A [`Runtime`] supplies what only a reactor and an executor can:
//!
//! - an [`EndpointSocket`]: [`SocketBuffers`] plus readiness — receive a batch, register the
//!   waker for readability, send the queue or register the waker;
//! - an [`EndpointTimer`]: set a deadline, say whether it passed;
//! - spawning (and detaching) the endpoint task, and resolving a host name.
//!
//! The endpoint task talks to its handles over the channels in [`Connect`] and [`WorkerCommand`],
//! and hears from its connections' applications and handles through its [`Inbox`].
//! No QUIC logic lives in an adapter: the loop is here and every protocol decision is in the
//! core.
//!
//! The generic layer knows QUIC [`Application`](quicksand_core::Application)s only
//! ([`listen_on`], [`Client::connect_with`]). HTTP/3 plugs in on top of it like any other
//! protocol, in one module behind the `h3` feature (on by default): `serve_on`, `h3_accept`,
//! `H3Connection`, `connect_on`, `get_on`, and the `h3` and `handlers` config fields.

use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use quicksand_core::Datagram;

mod buffers;
mod client;
mod config;
mod connection;
mod endpoint;
mod error;
#[cfg(feature = "metrics")]
mod facade;
mod forward;
mod handlers;
#[cfg(feature = "h3")]
mod http3;
mod inbox;
mod keys;
mod logs;
mod pem_files;
mod runtime;
mod server;

pub use buffers::{SocketBuffers, SEND_QUEUE};
pub use client::{any_addr, Client, DefaultApplication};
pub use config::{ClientConfig, ConnectionIds, PreboundSockets, ServerConfig};
pub use connection::{ConnectionHandle, ConnectionInfo};
pub use endpoint::{Connect, EndpointTask, Siblings, WorkerCommand, WorkerReport, WorkerStats};
pub use error::Error;
#[cfg(feature = "metrics")]
pub use facade::MetricsFacade;
pub use forward::{forward_queues, Forwarder, FORWARD_QUEUE};
pub use handlers::{submit_here, BoxedHandler, STUCK_AFTER};
#[cfg(feature = "h3")]
pub use http3::{
    connect_on, get_on, h3_accept, h3_settings, host_port, resolve_on, serve_on, H3Connection,
    Handlers,
};
pub use inbox::{Command, CommandSender, ConnectionGone, Inbox};
pub use keys::{FleetKeys, KeysError};
pub use logs::FileLogs;
pub use pem_files::PemFiles;
pub use runtime::{Lookup, Runtime};
pub use server::{build_workers, listen_on, Server, ShutdownHandle, ShutdownReport, Worker};

/// A UDP socket registered with a runtime's reactor, as the endpoint task uses it.
pub trait EndpointSocket: Unpin {
    /// The buffers and send queue.
    fn buffers(&self) -> &SocketBuffers;
    /// The buffers and send queue, to queue transmits.
    fn buffers_mut(&mut self) -> &mut SocketBuffers;
    /// Receives one batch and hands its datagrams to `sink`: the count of filled buffers,
    /// `WouldBlock` when nothing is queued. Registers no waker: a busy task reads the socket
    /// directly and asks the reactor for nothing.
    fn try_recv(&mut self, now: Instant, sink: impl FnMut(Datagram)) -> io::Result<usize>;
    /// `Ready` when a receive may find data; registers the waker for readability otherwise.
    /// The task calls it only right before it parks, so the reactor is told about the socket
    /// once per idle period, not once per receive.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Sends the queue; `Pending` (waker registered for writability) while the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A runtime's timer, as the endpoint task uses it.
pub trait EndpointTimer: Unpin {
    /// Sets the deadline.
    fn reset(&mut self, at: Instant);
    /// `Ready` once the deadline passed; registers the waker otherwise.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}
