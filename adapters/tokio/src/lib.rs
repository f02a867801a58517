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
//! [`listen`] takes any [`Application`](quicksand_core::Application) instead of an HTTP/3
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
//! socket. quicksand scales over cores with more sockets instead. Benchmarks of the two shapes
//! belong to the benchmark suite.
//!
//! ## Timers
//!
//! The task compares the clock with the driver's timeout before trusting a `Sleep` that says
//! pending: under tokio's cooperative budgeting a sleep can stay pending past its deadline.
#![deny(missing_docs)]

mod client;
mod config;
mod endpoint;
mod io;
mod server;

pub use client::{any_addr, connect, get, host_port, resolve, Client};
pub use config::{h3_settings, ClientConfig, ServerConfig};
pub use quicksand_adapter::{
    Connection, ConnectionInfo, EndpointStats, Error, H3Connection, WorkerReport,
};
pub use quicksand_adapter::{ShutdownHandle, ShutdownReport, SHUTDOWN_CODE};
pub use server::{listen, serve, Server};

pub use quicksand_core;
pub use quicksand_h3;
pub use quicksand_udp;
