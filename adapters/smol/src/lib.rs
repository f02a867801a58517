//! # quicksand-smol
//!
//! quicksand over smol: UDP sockets from `quicksand-udp` registered with async-io's reactor
//! ([`Async`](async_io::Async)), timers from [`async_io::Timer`], one task per socket on an
//! [`async_executor::Executor`] you supply ([`Smol::on`] with the `*_on` functions and
//! [`Client::bind_on`](quicksand_adapter::Client::bind_on)) or a global one with a thread per
//! core. Each task runs the core's [`Driver`](quicksand_core::Driver). No protocol
//! decision is made here: routing, RETRY, CIDs, GSO batching and HTTP/3 all live in the
//! sans-IO core and `quicksand-h3`. The API has the same shape as `quicksand-tokio`'s.
//!
//! ## Server
//!
//! ```no_run
//! use quicksand_smol::{serve, ServerConfig};
//! use quicksand_h3::{http::{Request, Response}, Body, RecvBody};
//!
//! async fn hello(_req: Request<RecvBody>) -> Response<Body> {
//!     Response::new(Body::from("hello"))
//! }
//! # async fn run() -> Result<(), quicksand_smol::Error> {
//! let server = serve("127.0.0.1:4433".parse().unwrap(), ServerConfig::default(), hello)?;
//! // ... later: GOAWAY, let requests finish for up to 5 s, then close.
//! server.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! [`listen`] takes any [`Application`] instead of an HTTP/3
//! handler. With [`ServerConfig::workers`] > 1 the server binds that many `SO_REUSEPORT`
//! sockets, one task each (run the executor on as many threads to use as many cores); each
//! socket's connection IDs carry its worker id (QUIC-LB), and a packet that lands on the wrong
//! socket is forwarded to the owner.
//!
//! ## Client
//!
//! ```no_run
//! use quicksand_smol::{Client, ClientConfig};
//! # async fn run() -> Result<(), quicksand_smol::Error> {
//! let client: Client = Client::bind("0.0.0.0:0".parse().unwrap(), ClientConfig::default())?;
//! let a = client.connect("127.0.0.1:4433".parse().unwrap(), "localhost").await?;
//! let b = client.connect("127.0.0.1:4433".parse().unwrap(), "localhost").await?; // same socket
//! let resp = a.get("https://localhost:4433/").await?;
//! # let _ = (b, resp); Ok(()) }
//! ```
//!
//! ## One task per socket
//!
//! Connections run inside their socket's endpoint task, multiplexed by the driver; see the
//! `quicksand-tokio` docs for why. Servers scale over cores with more sockets.
//!
//! ## Timers
//!
//! The task compares the clock with the driver's timeout itself rather than trusting the
//! timer alone, as the tokio adapter does.
#![deny(missing_docs)]

mod io;
mod runtime;

use std::net::SocketAddr;
use std::sync::Arc;

use async_executor::Executor;
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
pub use runtime::{Smol, Task, Timer};

pub use quicksand_adapter;
pub use quicksand_core;
pub use quicksand_h3;
pub use quicksand_udp;

/// A running server on smol; see [`quicksand_adapter::Server`].
pub type Server = quicksand_adapter::Server<Smol>;

/// A client endpoint on smol; see [`quicksand_adapter::Client`].
pub type Client<A = quicksand_h3::ClientApplication> = quicksand_adapter::Client<Smol, A>;

/// Serves HTTP/3 on `addr`: every request is answered by `service`, any
/// `async fn(Request<RecvBody>) -> Response<Body>`. Handlers run in a task per connection,
/// apart from the socket (`ServerConfig::handlers`).
///
/// Tasks run on the global executor; [`serve_on`] takes yours.
pub fn serve<S: Service>(
    addr: SocketAddr,
    config: ServerConfig,
    service: S,
) -> Result<Server, Error> {
    quicksand_adapter::serve_on(Smol::default(), addr, config, service)
}

/// [`serve`] with the tasks on `executor`.
pub fn serve_on<S: Service>(
    executor: &Arc<Executor<'static>>,
    addr: SocketAddr,
    config: ServerConfig,
    service: S,
) -> Result<Server, Error> {
    quicksand_adapter::serve_on(Smol::on(executor.clone()), addr, config, service)
}

/// Listens on `addr` with any [`Application`]: `accept` picks the application of each new
/// connection (or refuses it with `None`). With `config.workers > 1` it binds that many
/// `SO_REUSEPORT` sockets, one endpoint task each.
///
/// Shutdown stops accepting and waits for the connections to close until the deadline.
/// Tasks run on the global executor; [`listen_on`] takes yours.
pub fn listen<A, F>(addr: SocketAddr, config: ServerConfig, accept: F) -> Result<Server, Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    quicksand_adapter::listen_on(Smol::default(), addr, config, accept)
}

/// [`listen`] with the tasks on `executor`.
pub fn listen_on<A, F>(
    executor: &Arc<Executor<'static>>,
    addr: SocketAddr,
    config: ServerConfig,
    accept: F,
) -> Result<Server, Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    quicksand_adapter::listen_on(Smol::on(executor.clone()), addr, config, accept)
}

/// Binds a client socket for `peer`'s address family and opens one HTTP/3 connection (its
/// task on the global executor).
pub async fn connect(
    peer: SocketAddr,
    server_name: &str,
    config: ClientConfig,
) -> Result<(Client, H3Connection), Error> {
    quicksand_adapter::connect_on(Smol::default(), peer, server_name, config).await
}

/// GETs `url` (`https://host[:port]/path`) over a new connection and reads the whole body.
pub async fn get(url: &str, config: ClientConfig) -> Result<Response<Bytes>, Error> {
    quicksand_adapter::get_on(Smol::default(), url, config).await
}

/// The host of an `https` URL and its first address (port 443 unless given).
pub async fn resolve(url: &str) -> Result<(String, SocketAddr), Error> {
    quicksand_adapter::resolve_on(&Smol::default(), url).await
}
