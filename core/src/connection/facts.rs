//! What a connection is, for the application: addresses, server name, protocol, early data.

use std::net::SocketAddr;

use crate::QuicheConnection;

/// Facts about a connection that handlers and applications commonly need, read from quiche.
///
/// An [`Application`](crate::Application) gets the quiche connection in every callback and
/// can take them at any time; the HTTP/3 server puts them on every request.
///
/// ```no_run
/// # fn f(conn: &quicksand_core::QuicheConnection) {
/// if let Some(facts) = quicksand_core::ConnectionFacts::of(conn) {
///     println!("{} asked for {:?}", facts.peer, facts.server_name);
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionFacts {
    /// The peer's address on the active path (it changes if the peer migrates).
    pub peer: SocketAddr,
    /// Our address on the active path.
    pub local: SocketAddr,
    /// The server name the client asked for (SNI), if any.
    pub server_name: Option<String>,
    /// The negotiated application protocol (ALPN), e.g. `h3`.
    pub alpn: Vec<u8>,
    /// 0-RTT early data is being received (the handshake has not completed yet).
    pub in_early_data: bool,
    /// quiche's trace id, as in the logs and qlog of this connection.
    pub trace_id: String,
}

impl ConnectionFacts {
    /// The facts of `conn` now; `None` before it has an active path (never once it carries
    /// data).
    pub fn of(conn: &QuicheConnection) -> Option<Self> {
        let path = conn.path_stats().find(|p| p.active)?;
        Some(ConnectionFacts {
            peer: path.peer_addr,
            local: path.local_addr,
            server_name: conn.server_name().map(str::to_owned),
            alpn: conn.application_proto().to_vec(),
            in_early_data: conn.is_in_early_data(),
            trace_id: conn.trace_id().to_owned(),
        })
    }
}
