//! # quicksand-h3
//!
//! HTTP/3 on quicksand's sans-IO core: [`ServerApplication`] and [`ClientApplication`] are
//! [`Application`](quicksand_core::Application)s on top of `quiche::h3`, runtime-agnostic
//! (channels and wakers from `futures` / `std::task`; time only as the `now` the core
//! passes in). The same application runs under any adapter and the simulator.
//!
//! ## Server
//!
//! ```no_run
//! use http::Response;
//! use quicksand_h3::{Body, Http3Settings, RecvBody, ServerApplication};
//!
//! async fn hello(_req: http::Request<RecvBody>) -> Response<Body> {
//!     Response::new(Body::from("hello"))
//! }
//! let application = ServerApplication::with_service(Http3Settings::default(), hello);
//! // Connection::accept(now, &mut config, &scid, None, local, peer, ctx, application)
//! ```
//!
//! Or take requests one by one with [`ServerApplication::new`] and its [`IncomingRequests`]
//! stream; answer each through its [`Responder`]: optional 1xx heads
//! ([`Responder::send_informational`]), then [`Responder::send_response`], then the body
//! through the returned [`BodySender`] ([`BodySender::send_data`] honours backpressure),
//! then [`BodySender::finish`] or [`BodySender::send_trailers`].
//!
//! ## Client
//!
//! [`ClientApplication::new`] returns the application and an [`H3Client`]: [`H3Client::request`]
//! (complete body), [`H3Client::send_request`] (streamed body), [`H3Client::get`]. Each
//! returns a [`ResponseFuture`] resolving to `Response<RecvBody>`.
//!
//! ## Driving
//!
//! The core's `Connection` calls the applications. Handles and handlers wake the connection
//! through the `ConnectionWake` its owner gave it (`Connection::set_wake`, done by the core's
//! `Driver`); a connection driven without one never hears of handle work before its next
//! packet or timer.
//!
//! Handles never touch a stream's state: each call (queue a head or bytes, finish, reset,
//! stop reading, change a priority, send a request) pushes one op on the connection's
//! lock-free queue and wakes the connection once; the application applies the ops in order
//! at the start of its next run and alone owns each stream's lifecycle (one enum per stream
//! half). What handles wait for — received chunks, the body's end, the response head — comes
//! back through the stream's slot (one lock per hand-over), the send credit and send error
//! through atomics.
//!
//! ## Memory bounds
//!
//! Each received body buffers at most [`Http3Settings::stream_buffer_size`] bytes and the
//! connection at most [`Http3Settings::connection_buffer_size`]; beyond that the application
//! stops reading and QUIC flow control pushes back. Each [`BodySender`] waits while its stream
//! has `stream_buffer_size` bytes queued (it may exceed it by one chunk).
#![deny(missing_docs)]

mod body;
mod client;
mod datagram;
mod error;
mod headers;
mod limits;
mod priority;
mod server;
mod settings;
mod shared;
mod streams;
#[cfg(feature = "tower")]
mod tower;

pub use body::{Body, BodySender, BoxBodyStream, RecvBody};
pub use client::{
    ClientApplication, H3Client, InformationalResponses, ResponseFuture, MAX_INFORMATIONAL,
};
pub use datagram::DatagramFlow;
pub use error::{DatagramError, ErrorCode, RequestError, SendError, StreamError};
pub use headers::{field_section_size, HeaderError, Protocol};
#[cfg(feature = "tower")]
pub use http_body;
pub use limits::RapidResetDetector;
pub use priority::Priority;
pub use server::{
    ConnectionInfo, EarlyData, IncomingRequest, IncomingRequests, Informational, Responder,
    ServerApplication, ServerHandle, Service, Spawner, StreamId,
};
pub use settings::{EarlyDataRequests, Http3Settings};
#[cfg(feature = "tower")]
pub use tower::TowerService;

pub use bytes;
pub use http;

/// A snapshot of an application's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H3Stats {
    /// Requests accepted (server) or sent (client).
    pub requests: u64,
    /// Requests refused with H3_REQUEST_REJECTED (server).
    pub rejected: u64,
    /// Malformed requests answered 400 (server).
    pub malformed: u64,
    /// Requests in 0-RTT early data answered 425 Too Early (server; see
    /// [`EarlyDataRequests`]).
    pub too_early: u64,
    /// Streams in flight now.
    pub in_flight: usize,
    /// Most received body bytes buffered over the connection at once.
    pub recv_buffer_high_water: usize,
    /// Most send bytes queued on one stream at once (seen by the application).
    pub send_buffer_high_water: usize,
    /// Resets counted by the rapid-reset detector in its current window (server).
    pub recent_resets: usize,
    /// HTTP/3 datagrams dropped (unknown flow, full queue, too large).
    pub datagrams_dropped: u64,
    /// We sent GOAWAY (server).
    pub goaway_sent: bool,
    /// The peer sent GOAWAY (client): new requests fail with `RequestError::GoAway`.
    pub goaway_received: bool,
    /// PRIORITY_UPDATE frames received for request streams (server).
    pub priority_updates: u64,
    /// Handler futures running now (server, `with_service`).
    pub handlers_running: usize,
    /// Handler futures dropped because the client cancelled their request (server).
    pub handlers_cancelled: u64,
}
