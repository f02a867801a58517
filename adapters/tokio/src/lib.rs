//! # quicksand-tokio
//!
//! quicksand over tokio: UDP sockets from `quicksand-udp` registered with tokio's reactor
//! ([`AsyncFd`](tokio::io::unix::AsyncFd)), timers from `tokio::time`, one task per socket
//! that runs the core's [`Driver`](quicksand_core::Driver). No protocol decision is made
//! here: routing, RETRY, CIDs, GSO batching and HTTP/3 all live in the sans-IO core and
//! `quicksand-h3`.
//!
//! ## Server
//!
//! ```no_run
//! use quicksand_tokio::{serve, ServerConfig};
//! use quicksand_h3::{http::{Request, Response}, Body, RecvBody};
//!
//! async fn hello(_req: Request<RecvBody>) -> Response<Body> {
//!     Response::new(Body::from("hello"))
//! }
//! # async fn run() -> Result<(), quicksand_tokio::Error> {
//! let server = serve("127.0.0.1:4433".parse().unwrap(), ServerConfig::default(), hello)?;
//! // ... later: GOAWAY, let requests finish for up to 5 s, then close.
//! server.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! [`listen`] takes any [`Application`] instead of an HTTP/3
//! handler. With [`ServerConfig::workers`] > 1 the server binds that many `SO_REUSEPORT`
//! sockets (the kernel spreads flows, tokio spreads the tasks over its worker threads); each
//! socket's connection IDs carry its worker id (QUIC-LB), and a packet that lands on the wrong
//! socket (after a NAT rebinding) is forwarded to the owner.
//!
//! ## Client
//!
//! ```no_run
//! use quicksand_tokio::{Client, ClientConfig};
//! # async fn run() -> Result<(), quicksand_tokio::Error> {
//! let client: Client = Client::bind("0.0.0.0:0".parse().unwrap(), ClientConfig::default())?;
//! let a = client.connect("127.0.0.1:4433".parse().unwrap(), "localhost").await?;
//! let b = client.connect("127.0.0.1:4433".parse().unwrap(), "localhost").await?; // same socket
//! let resp = a.get("https://localhost:4433/").await?;
//! # let _ = (b, resp); Ok(()) }
//! ```
//!
//! Or in one call: [`get`]`(url, config)`.
//!
//! ## One task per socket
//!
//! Connections run inside their socket's endpoint task, multiplexed by the driver (it runs a
//! connection only when it has a datagram, a timer or a wake-up). The alternative, a task per
//! connection as tokio-quiche does, adds a channel hop per datagram in each direction and a
//! second wake-up per packet; it buys parallelism only for CPU-heavy connections on one
//! socket. quicksand scales over cores with more sockets instead.
//!
//! ## Timers
//!
//! The task compares the clock with the driver's timeout before trusting a `Sleep` that says
//! pending: under tokio's cooperative budgeting a sleep can stay pending past its deadline.
#![deny(missing_docs)]

mod io;
mod runtime;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Response;
use quicksand_core::{Application, Incoming};
use quicksand_h3::Service;

pub use io::Socket;
pub use quicksand_adapter::{
    any_addr, h3_settings, host_port, ClientConfig, Command, CommandSender, ConnectionGone,
    ConnectionHandle, ConnectionIds, ConnectionInfo, Error, FleetKeys, H3Connection, Handlers,
    KeysError, PemFiles, PreboundSockets, ServerConfig, ShutdownHandle, ShutdownReport,
    WorkerReport, WorkerStats,
};
pub use runtime::{Task, Timer, Tokio};

pub use quicksand_adapter;
pub use quicksand_core;
pub use quicksand_h3;
pub use quicksand_udp;

/// A running server on tokio; see [`quicksand_adapter::Server`].
pub type Server = quicksand_adapter::Server<Tokio>;

/// A client endpoint on tokio; see [`quicksand_adapter::Client`].
pub type Client<A = quicksand_h3::ClientApplication> = quicksand_adapter::Client<Tokio, A>;

/// Serves HTTP/3 on `addr`: every request is answered by `service`, any
/// `async fn(Request<RecvBody>) -> Response<Body>`. Handlers run in a task per connection,
/// apart from the socket (`ServerConfig::handlers`).
///
/// Must be called inside a tokio runtime; [`quicksand_adapter::serve_on`] with
/// [`Tokio::on`] picks another.
pub fn serve<S: Service>(
    addr: SocketAddr,
    config: ServerConfig,
    service: S,
) -> Result<Server, Error> {
    quicksand_adapter::serve_on(Tokio::default(), addr, config, service)
}

/// Listens on `addr` with any [`Application`]: `accept` picks the application of each new
/// connection (or refuses it with `None`). With `config.workers > 1` it binds that many
/// `SO_REUSEPORT` sockets, one endpoint task each.
///
/// Shutdown stops accepting and waits for the connections to close until the deadline.
/// Must be called inside a tokio runtime.
pub fn listen<A, F>(addr: SocketAddr, config: ServerConfig, accept: F) -> Result<Server, Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    quicksand_adapter::listen_on(Tokio::default(), addr, config, accept)
}

/// Binds a client socket for `peer`'s address family and opens one HTTP/3 connection.
/// Must be called inside a tokio runtime.
pub async fn connect(
    peer: SocketAddr,
    server_name: &str,
    config: ClientConfig,
) -> Result<(Client, H3Connection), Error> {
    quicksand_adapter::connect_on(Tokio::default(), peer, server_name, config).await
}

/// GETs `url` (`https://host[:port]/path`) over a new connection and reads the whole body.
pub async fn get(url: &str, config: ClientConfig) -> Result<Response<Bytes>, Error> {
    quicksand_adapter::get_on(Tokio::default(), url, config).await
}

/// The host of an `https` URL and its first address (port 443 unless given).
pub async fn resolve(url: &str) -> Result<(String, SocketAddr), Error> {
    quicksand_adapter::resolve_on(&Tokio::default(), url).await
}
