//! How many bytes a server's transport parameters take, and whether quiche can encode them.
//!
//! quiche 0.30 encodes one side's transport parameters into a fixed 128-byte buffer
//! (`tls::Handshake::set_quic_transport_params`). A server's parameters grow with the client:
//! they carry the client's original Destination Connection ID (up to 20 bytes) and, after a
//! RETRY, the RETRY's Source Connection ID as well as our own initial one. When they do not
//! fit, quiche refuses the connection with `BufferTooShort` and the client never hears back
//! (quinn and curl use 20-byte DCIDs). So the endpoint checks the worst case once, when it is
//! built, and refuses settings that could not serve every valid client.
//!
//! [`ServerTransportParams::worst_case`] mirrors quiche's encoder parameter by parameter (a
//! test holds the mirror to quiche's own behaviour at the 128-byte boundary). It sees the
//! settings quicksand wraps; a knob changed through `QuicConfig::quiche_config_mut` is outside
//! the check.

use super::{ConfigError, ConfigErrorKind, QuicSettings};

/// The bytes quiche has for one side's encoded transport parameters.
pub const QUICHE_TRANSPORT_PARAMS_CAPACITY: usize = 128;

/// The longest connection ID QUIC v1 allows, and so the longest original DCID a client sends.
const MAX_CID_LEN: usize = 20;

/// quiche's advertised `max_datagram_frame_size` when DATAGRAM frames are on.
const DATAGRAM_FRAME_SIZE: u64 = 65_536;

/// The size of a server's encoded transport parameters, parameter by parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTransportParams {
    parts: Vec<(&'static str, usize)>,
}

impl ServerTransportParams {
    /// The largest a server's parameters get with these settings and `cid_len`-byte
    /// connection IDs of our own: a client whose first DCID has 20 bytes, after a RETRY.
    pub fn worst_case(settings: &QuicSettings, cid_len: usize) -> Self {
        Self::for_client(settings, cid_len, MAX_CID_LEN, true)
    }

    /// The parameters for one client: its first DCID had `original_dcid_len` bytes, and
    /// `retry` says whether it came through a RETRY whose SCID had `cid_len` bytes.
    pub fn for_client(
        settings: &QuicSettings,
        cid_len: usize,
        original_dcid_len: usize,
        retry: bool,
    ) -> Self {
        let s = settings;
        let mut parts = Vec::with_capacity(16);
        let mut int = |name, id: u64, value: u64, sent: bool| {
            if sent {
                parts.push((name, param_len(id, varint_len(value))));
            }
        };
        let idle = s.max_idle_timeout.map_or(0, |d| d.as_millis() as u64);
        let ack_delay = s.max_ack_delay.as_millis() as u64;
        let limit = s.active_connection_id_limit;
        // Integer parameters; `sent` is quiche's condition for writing each (order does not
        // change the length).
        let ints = [
            ("max_idle_timeout", 0x01, idle),
            (
                "max_udp_payload_size",
                0x03,
                s.max_recv_udp_payload_size as u64,
            ),
            ("initial_max_data", 0x04, s.initial_max_data),
            (
                "initial_max_stream_data_bidi_local",
                0x05,
                s.initial_max_stream_data_bidi_local,
            ),
            (
                "initial_max_stream_data_bidi_remote",
                0x06,
                s.initial_max_stream_data_bidi_remote,
            ),
            (
                "initial_max_stream_data_uni",
                0x07,
                s.initial_max_stream_data_uni,
            ),
            ("initial_max_streams_bidi", 0x08, s.initial_max_streams_bidi),
            ("initial_max_streams_uni", 0x09, s.initial_max_streams_uni),
            ("ack_delay_exponent", 0x0a, s.ack_delay_exponent),
            ("max_ack_delay", 0x0b, ack_delay),
        ];
        for (name, id, value) in ints {
            int(name, id, value, value != 0);
        }
        int("active_connection_id_limit", 0x0e, limit, limit != 2);
        if s.enable_dgram {
            int("max_datagram_frame_size", 0x20, DATAGRAM_FRAME_SIZE, true);
        }
        let mut fixed = vec![
            (
                "original_destination_connection_id",
                param_len(0x00, original_dcid_len),
            ),
            ("stateless_reset_token", param_len(0x02, 16)),
            ("initial_source_connection_id", param_len(0x0f, cid_len)),
        ];
        if retry {
            fixed.push(("retry_source_connection_id", param_len(0x10, cid_len)));
        }
        if s.disable_active_migration {
            fixed.push(("disable_active_migration", param_len(0x0c, 0)));
        }
        parts.extend(fixed);
        ServerTransportParams { parts }
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|(_, n)| n).sum()
    }

    /// Always false: a server always sends some parameters.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// True if quiche can encode them.
    pub fn fits(&self) -> bool {
        self.len() <= QUICHE_TRANSPORT_PARAMS_CAPACITY
    }

    /// Each parameter sent with its encoded length (id, length and value).
    pub fn parts(&self) -> &[(&'static str, usize)] {
        &self.parts
    }

    /// The parameters that take the most room, largest first, as `name (N bytes)`: what to
    /// shrink when they do not fit.
    pub fn largest(&self, n: usize) -> String {
        let mut parts = self.parts.clone();
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let shown: Vec<String> = parts
            .iter()
            .take(n)
            .map(|(name, len)| format!("{name} ({len} bytes)"))
            .collect();
        shown.join(", ")
    }
}

/// Refuses server settings whose worst-case parameters quiche could not encode, naming the
/// largest ones. The field reported is `transport_parameters`.
pub(crate) fn check_server(settings: &QuicSettings, cid_len: usize) -> Result<(), ConfigError> {
    let tp = ServerTransportParams::worst_case(settings, cid_len);
    if tp.fits() {
        return Ok(());
    }
    Err(ConfigError::new(
        "transport_parameters",
        ConfigErrorKind::TransportParamsTooLarge {
            len: tp.len(),
            capacity: QUICHE_TRANSPORT_PARAMS_CAPACITY,
            cid_len,
            largest: tp.largest(3),
        },
    ))
}

/// Bytes of a parameter: its id and length as varints, then `value_len` bytes.
fn param_len(id: u64, value_len: usize) -> usize {
    varint_len(id) + varint_len(value_len as u64) + value_len
}

/// Bytes of a QUIC variable-length integer (RFC 9000 §16).
pub(crate) fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_room_for_every_client() {
        let s = QuicSettings::default();
        let tp = ServerTransportParams::worst_case(&s, crate::DEFAULT_CID_LEN);
        assert!(tp.fits(), "{} bytes: {:?}", tp.len(), tp.parts());
        // With DATAGRAM frames on too (HTTP/3 datagrams).
        let s = QuicSettings {
            enable_dgram: true,
            ..s
        };
        assert!(ServerTransportParams::worst_case(&s, crate::DEFAULT_CID_LEN).fits());
    }

    #[test]
    fn a_retry_adds_its_source_connection_id() {
        let s = QuicSettings::default();
        let with = ServerTransportParams::for_client(&s, 8, 20, true).len();
        let without = ServerTransportParams::for_client(&s, 8, 20, false).len();
        assert_eq!(with - without, 10);
        assert!(ServerTransportParams::worst_case(&s, 8)
            .largest(1)
            .starts_with("original_destination_connection_id (22 bytes)"));
    }

    #[test]
    fn varints_have_their_rfc_lengths() {
        assert_eq!(varint_len(63), 1);
        assert_eq!(varint_len(64), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 4);
        assert_eq!(varint_len((1 << 30) - 1), 4);
        assert_eq!(varint_len(1 << 30), 8);
    }
}
