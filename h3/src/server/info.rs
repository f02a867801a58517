//! The connection a request arrived on, as a request extension.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use quicksand_core::{quiche, ConnectionFacts, QuicheConnection};

/// Request extension: the connection a request arrived on, shared by all its requests.
///
/// Addresses and statistics are those of the server application's latest read (a peer that
/// migrates shows its new address from then on); the server name and protocol are fixed at
/// the handshake.
///
/// ```no_run
/// use quicksand_h3::{Body, ConnectionInfo, RecvBody};
/// async fn handler(req: http::Request<RecvBody>) -> http::Response<Body> {
///     let info = req.extensions().get::<ConnectionInfo>().expect("set on every request");
///     let rtt = info.path_stats().map(|p| p.rtt);
///     http::Response::new(Body::from(format!("hello {} ({rtt:?})", info.peer_addr())))
/// }
/// ```
#[derive(Clone)]
pub struct ConnectionInfo(Arc<Shared>);

struct Shared {
    server_name: Option<String>,
    alpn: Vec<u8>,
    trace_id: String,
    live: Mutex<Live>,
}

struct Live {
    peer: SocketAddr,
    local: SocketAddr,
    stats: quiche::Stats,
    path: Option<quiche::PathStats>,
}

impl ConnectionInfo {
    /// The connection's facts now; `None` before it has an active path.
    pub(crate) fn new(conn: &QuicheConnection) -> Option<Self> {
        let facts = ConnectionFacts::of(conn)?;
        Some(ConnectionInfo(Arc::new(Shared {
            server_name: facts.server_name,
            alpn: facts.alpn,
            trace_id: facts.trace_id,
            live: Mutex::new(Live {
                peer: facts.peer,
                local: facts.local,
                stats: conn.stats(),
                path: conn.path_stats().find(|p| p.active),
            }),
        })))
    }

    /// Refreshes addresses and statistics (once per application wake-up).
    pub(crate) fn update(&self, conn: &QuicheConnection) {
        let path = conn.path_stats().find(|p| p.active);
        let mut live = self.live();
        if let Some(p) = &path {
            live.peer = p.peer_addr;
            live.local = p.local_addr;
        }
        live.path = path;
        live.stats = conn.stats();
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // The data is plain values: a panic elsewhere cannot leave it half-written.
        self.0.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.live().peer
    }

    /// Our address the client reached.
    pub fn local_addr(&self) -> SocketAddr {
        self.live().local
    }

    /// The server name the client asked for (SNI), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.0.server_name.as_deref()
    }

    /// The negotiated application protocol (ALPN).
    pub fn alpn(&self) -> &[u8] {
        &self.0.alpn
    }

    /// quiche's trace id of the connection, as in its logs and qlog.
    pub fn trace_id(&self) -> &str {
        &self.0.trace_id
    }

    /// The connection's counters (packets, bytes, losses).
    pub fn stats(&self) -> quiche::Stats {
        self.live().stats.clone()
    }

    /// The active path's statistics (RTT, congestion window, delivery rate).
    pub fn path_stats(&self) -> Option<quiche::PathStats> {
        self.live().path.clone()
    }
}

impl std::fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = self.live();
        f.debug_struct("ConnectionInfo")
            .field("peer", &live.peer)
            .field("local", &live.local)
            .field("server_name", &self.0.server_name)
            .field("alpn", &String::from_utf8_lossy(&self.0.alpn))
            .field("trace_id", &self.0.trace_id)
            .finish_non_exhaustive()
    }
}
