//! # quicksand-smol
//!
//! quicksand over smol: UDP sockets from `quicksand-udp` registered with async-io's reactor
//! ([`Async`](async_io::Async)), timers from [`async_io::Timer`], one task per socket on an
//! [`async_executor::Executor`] you supply (`executor` in the configs) or a global one with a
//! thread per core. Each task runs the core's [`Driver`](quicksand_core::Driver). No protocol
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
//! [`listen`] takes any [`Application`](quicksand_core::Application) instead of an HTTP/3
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
