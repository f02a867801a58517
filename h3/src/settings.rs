//! [`Http3Settings`]: the HTTP/3 knobs and the limits against abuse.

use std::time::Duration;

/// HTTP/3 settings of an application (client or server). Every field has a documented default.
///
/// The QUIC transport settings live in the core's `QuicSettings`; HTTP/3 needs `alpn` to
/// contain `h3`, and datagrams additionally need `QuicSettings::enable_dgram`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http3Settings {
    /// SETTINGS_MAX_FIELD_SECTION_SIZE we announce: a header section larger than this from
    /// the peer closes the connection with H3_EXCESSIVE_LOAD (quiche's behaviour). A request
    /// larger than the *peer's* value is refused locally by the client. Default: 16 KiB.
    pub max_header_list_size: u64,
    /// SETTINGS_QPACK_MAX_TABLE_CAPACITY. Default: 0 (no dynamic table; quiche's encoder does
    /// not use one either).
    pub qpack_max_table_capacity: u64,
    /// SETTINGS_QPACK_BLOCKED_STREAMS. Default: 0.
    pub qpack_blocked_streams: u64,
    /// Announce SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220) and accept `:protocol`.
    /// Default: false.
    pub enable_extended_connect: bool,
    /// Accept and send HTTP/3 datagrams (RFC 9297). Needs QUIC datagrams
    /// (`QuicSettings::enable_dgram`); quiche announces SETTINGS_H3_DATAGRAM whenever those
    /// are on, and with this false incoming datagrams are dropped and flows refuse to send.
    /// Default: false.
    pub enable_datagrams: bool,
    /// Server: close the connection (H3_NO_ERROR) if no request arrives within this time of
    /// the handshake. `None` disables. Default: `None`.
    pub post_accept_timeout: Option<Duration>,
    /// Server: requests accepted on one connection; the next one triggers GOAWAY and is
    /// rejected with H3_REQUEST_REJECTED. `None` for no limit. Default: `None`.
    pub max_requests_per_connection: Option<u64>,
    /// Largest body chunk read from quiche at once. Default: 64 KiB.
    pub receive_buffer_size: usize,
    /// Server: requests in flight at once; more are rejected with H3_REQUEST_REJECTED. (QUIC's
    /// `initial_max_streams_bidi` bounds what the peer may open; this bounds what the
    /// application is handed.) Default: 256.
    pub max_concurrent_streams: usize,
    /// Received body bytes buffered per stream before we stop reading from quiche (flow control
    /// then pushes back on the peer). Also the per-stream send buffer before `send_data`
    /// waits. Default: 256 KiB.
    pub stream_buffer_size: usize,
    /// Received body bytes buffered over all streams of the connection before we stop reading.
    /// Default: 4 MiB.
    pub connection_buffer_size: usize,
    /// Rapid-reset defence: more than this many request streams reset or cancelled by the
    /// peer before their response completed, within [`rapid_reset_window`](Self::rapid_reset_window),
    /// closes the connection with H3_EXCESSIVE_LOAD. `0` disables. Default: 300.
    pub rapid_reset_threshold: u32,
    /// The window of the rapid-reset defence. Default: 1 s.
    pub rapid_reset_window: Duration,
    /// HTTP/3 datagrams buffered per flow before the oldest is dropped. Default: 64.
    pub datagram_queue_len: usize,
    /// Payload bytes buffered per flow before the oldest datagrams are dropped (a datagram
    /// larger than this on its own is dropped). Default: 256 KiB.
    pub datagram_queue_bytes: usize,
    /// Server: which requests that arrive in 0-RTT early data (and may be replays) reach the
    /// application. Default: [`EarlyDataRequests::Idempotent`].
    pub early_data_requests: EarlyDataRequests,
}

/// Which requests received as 0-RTT early data a server hands to the application.
///
/// Early data can be replayed by an attacker who recorded it. The QUIC layer refuses a
/// replayed ClientHello's early data (`quicksand_core::anti_replay`), but a request that must
/// never run twice should not rest on one process's record alone (RFC 8470).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EarlyDataRequests {
    /// Requests with idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE; RFC 9110
    /// §9.2.2) reach the application, marked with the `EarlyData` extension; all others are
    /// answered `425 Too Early`, which tells the client to send them again after the handshake.
    #[default]
    Idempotent,
    /// Every request reaches the application; handlers check the `EarlyData` extension. A
    /// replayed flight's request runs at most once only if the genuine flight arrives first:
    /// an attacker on the path can deliver a copy before it, and the genuine request then runs
    /// too (see `quicksand_core::anti_replay`).
    All,
}

impl EarlyDataRequests {
    /// True if a request with `method` that arrived as early data reaches the application.
    pub fn allows(self, method: &http::Method) -> bool {
        match self {
            EarlyDataRequests::All => true,
            EarlyDataRequests::Idempotent => method.is_idempotent(),
        }
    }
}

impl Default for Http3Settings {
    fn default() -> Self {
        Http3Settings {
            max_header_list_size: 16 * 1024,
            qpack_max_table_capacity: 0,
            qpack_blocked_streams: 0,
            enable_extended_connect: false,
            enable_datagrams: false,
            post_accept_timeout: None,
            max_requests_per_connection: None,
            receive_buffer_size: 64 * 1024,
            max_concurrent_streams: 256,
            stream_buffer_size: 256 * 1024,
            connection_buffer_size: 4 * 1024 * 1024,
            rapid_reset_threshold: 300,
            rapid_reset_window: Duration::from_secs(1),
            datagram_queue_len: 64,
            datagram_queue_bytes: 256 * 1024,
            early_data_requests: EarlyDataRequests::Idempotent,
        }
    }
}

impl Http3Settings {
    /// quiche's HTTP/3 config for these settings.
    pub(crate) fn quiche_config(&self) -> Result<quiche::h3::Config, quiche::h3::Error> {
        let mut c = quiche::h3::Config::new()?;
        c.set_max_field_section_size(self.max_header_list_size);
        c.set_qpack_max_table_capacity(self.qpack_max_table_capacity);
        c.set_qpack_blocked_streams(self.qpack_blocked_streams);
        c.enable_extended_connect(self.enable_extended_connect);
        Ok(c)
    }

    pub(crate) fn read_chunk(&self) -> usize {
        self.receive_buffer_size.max(1024)
    }
}
