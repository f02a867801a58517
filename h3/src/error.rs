//! Errors: HTTP/3 wire codes and the typed errors each API returns.

use std::fmt;

use quicksand_core::CloseReason;

/// HTTP/3 error codes (RFC 9114 §8.1, RFC 9297 §5.2) used by this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// H3_NO_ERROR (0x100).
    NoError,
    /// H3_GENERAL_PROTOCOL_ERROR (0x101).
    GeneralProtocolError,
    /// H3_INTERNAL_ERROR (0x102).
    InternalError,
    /// H3_STREAM_CREATION_ERROR (0x103).
    StreamCreationError,
    /// H3_EXCESSIVE_LOAD (0x107).
    ExcessiveLoad,
    /// H3_ID_ERROR (0x108).
    IdError,
    /// H3_REQUEST_REJECTED (0x10b): the request was not processed; safe to retry.
    RequestRejected,
    /// H3_REQUEST_CANCELLED (0x10c).
    RequestCancelled,
    /// H3_REQUEST_INCOMPLETE (0x10d).
    RequestIncomplete,
    /// H3_MESSAGE_ERROR (0x10e): a malformed message.
    MessageError,
    /// H3_CONNECT_ERROR (0x10f).
    ConnectError,
    /// H3_DATAGRAM_ERROR (0x33).
    DatagramError,
}

impl ErrorCode {
    /// The code on the wire.
    pub const fn code(self) -> u64 {
        match self {
            ErrorCode::NoError => 0x100,
            ErrorCode::GeneralProtocolError => 0x101,
            ErrorCode::InternalError => 0x102,
            ErrorCode::StreamCreationError => 0x103,
            ErrorCode::ExcessiveLoad => 0x107,
            ErrorCode::IdError => 0x108,
            ErrorCode::RequestRejected => 0x10b,
            ErrorCode::RequestCancelled => 0x10c,
            ErrorCode::RequestIncomplete => 0x10d,
            ErrorCode::MessageError => 0x10e,
            ErrorCode::ConnectError => 0x10f,
            ErrorCode::DatagramError => 0x33,
        }
    }

    /// The known code for a wire value, if any.
    pub fn from_code(code: u64) -> Option<Self> {
        use ErrorCode::*;
        [
            NoError,
            GeneralProtocolError,
            InternalError,
            StreamCreationError,
            ExcessiveLoad,
            IdError,
            RequestRejected,
            RequestCancelled,
            RequestIncomplete,
            MessageError,
            ConnectError,
            DatagramError,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// True if an HTTP/3 connection ended without an error: NO_ERROR at the transport level
    /// ([`CloseReason::is_clean`]) or H3_NO_ERROR at the application level, from either side.
    pub fn is_clean_close(reason: &CloseReason) -> bool {
        let h3_no_error =
            |application: bool, code: u64| application && code == ErrorCode::NoError.code();
        reason.is_clean()
            || match reason {
                CloseReason::Local {
                    application, code, ..
                }
                | CloseReason::Peer {
                    application, code, ..
                } => h3_no_error(*application, *code),
                _ => false,
            }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({:#x})", self.code())
    }
}

/// Why a stream (a request or a response, either half) ended abnormally.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer reset its sending half (RESET_STREAM) with this code.
    ResetByPeer {
        /// The peer's error code (see [`ErrorCode::from_code`]).
        code: u64,
    },
    /// The peer asked us to stop sending (STOP_SENDING) with this code.
    StoppedByPeer {
        /// The peer's error code.
        code: u64,
    },
    /// We reset the stream locally with this code (e.g. a limit was crossed).
    ResetLocally {
        /// Our error code.
        code: u64,
    },
    /// The peer sent a malformed message (H3_MESSAGE_ERROR).
    Malformed(crate::headers::HeaderError),
    /// The connection ended before the stream did, for this reason (`None` when the stream
    /// ended without the connection reporting one: its request was refused before it was
    /// sent, say, or the connection's application was dropped).
    ConnectionClosed(Option<CloseReason>),
    /// The HTTP/3 layer reported an error on this stream.
    Protocol(quiche::h3::Error),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |code: u64| {
            ErrorCode::from_code(code).map_or_else(|| format!("{code:#x}"), |c| c.to_string())
        };
        match self {
            StreamError::ResetByPeer { code } => write!(f, "stream reset by peer: {}", name(*code)),
            StreamError::StoppedByPeer { code } => {
                write!(f, "peer stopped reading the stream: {}", name(*code))
            }
            StreamError::ResetLocally { code } => {
                write!(f, "stream reset locally: {}", name(*code))
            }
            StreamError::Malformed(e) => write!(f, "malformed message: {e}"),
            StreamError::ConnectionClosed(reason) => closed(f, reason.as_ref()),
            StreamError::Protocol(e) => write!(f, "HTTP/3 error on the stream: {e:?}"),
        }
    }
}

impl std::error::Error for StreamError {}

fn closed(f: &mut fmt::Formatter<'_>, reason: Option<&CloseReason>) -> fmt::Result {
    match reason {
        Some(reason) => write!(f, "the connection ended: {reason}"),
        None => f.write_str("the connection ended"),
    }
}

/// A client request that failed before a final response arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The request is not a valid HTTP/3 request (e.g. no authority).
    Invalid(crate::headers::HeaderError),
    /// The header section is larger than the peer's SETTINGS_MAX_FIELD_SECTION_SIZE.
    HeadersTooLarge {
        /// Size of our header section (RFC 9114 §4.2.2 accounting).
        size: u64,
        /// The peer's limit.
        limit: u64,
    },
    /// The peer sent GOAWAY: this request was not (and will not be) processed. Safe to retry
    /// on a new connection.
    GoAway,
    /// Extended CONNECT (`:protocol`) was asked for but the peer did not enable it.
    ExtendedConnectNotSupported,
    /// The stream failed.
    Stream(StreamError),
    /// The response the peer sent is malformed.
    InvalidResponse(crate::headers::HeaderError),
    /// The connection ended before the response came, for this reason (`None` when the
    /// application was dropped without the connection reporting one).
    ConnectionClosed(Option<CloseReason>),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Invalid(e) => write!(f, "invalid request: {e}"),
            RequestError::HeadersTooLarge { size, limit } => write!(
                f,
                "request header section of {size} bytes exceeds the peer's limit of {limit}"
            ),
            RequestError::GoAway => f.write_str("the server is going away; request not processed"),
            RequestError::ExtendedConnectNotSupported => {
                f.write_str("the peer did not enable extended CONNECT (RFC 9220)")
            }
            RequestError::Stream(e) => write!(f, "request failed: {e}"),
            RequestError::InvalidResponse(e) => write!(f, "invalid response: {e}"),
            RequestError::ConnectionClosed(reason) => closed(f, reason.as_ref()),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<StreamError> for RequestError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::ConnectionClosed(reason) => RequestError::ConnectionClosed(reason),
            StreamError::ResetByPeer { code } if code == ErrorCode::RequestRejected.code() => {
                RequestError::Stream(e)
            }
            e => RequestError::Stream(e),
        }
    }
}

/// Sending a response or body failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The call is out of order: e.g. a body before the response head, or data after
    /// trailers or `finish`.
    InvalidState(&'static str),
    /// The message is not valid (e.g. a 1xx passed as final, or a final status passed as
    /// informational).
    Invalid(crate::headers::HeaderError),
    /// The stream failed (peer stopped reading, reset, connection closed).
    Stream(StreamError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::InvalidState(what) => write!(f, "call out of order: {what}"),
            SendError::Invalid(e) => write!(f, "invalid message: {e}"),
            SendError::Stream(e) => write!(f, "cannot send: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// An HTTP/3 datagram could not be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramError {
    /// We or the peer did not negotiate HTTP/3 datagrams (SETTINGS_H3_DATAGRAM and the QUIC
    /// max_datagram_frame_size transport parameter).
    NotNegotiated,
    /// The payload is larger than the largest datagram the path can carry now.
    TooLarge {
        /// Payload size.
        size: usize,
        /// Largest payload that fits.
        max: usize,
    },
    /// The flow's stream is closed.
    FlowClosed,
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramError::NotNegotiated => {
                f.write_str("HTTP/3 datagrams were not negotiated with the peer")
            }
            DatagramError::TooLarge { size, max } => {
                write!(f, "datagram of {size} bytes exceeds the maximum of {max}")
            }
            DatagramError::FlowClosed => f.write_str("the datagram flow's stream is closed"),
        }
    }
}

impl std::error::Error for DatagramError {}

/// The wire code of a quiche HTTP/3 error (quiche keeps its own mapping private).
pub(crate) fn wire_code(e: &quiche::h3::Error) -> u64 {
    use quiche::h3::Error as E;
    match e {
        E::Done => 0x100,
        E::ExcessiveLoad => 0x107,
        E::IdError => 0x108,
        E::StreamCreationError => 0x103,
        E::ClosedCriticalStream => 0x104,
        E::MissingSettings => 0x10a,
        E::FrameUnexpected => 0x105,
        E::FrameError => 0x106,
        E::QpackDecompressionFailed => 0x200,
        E::SettingsError => 0x109,
        E::RequestRejected => 0x10b,
        E::RequestCancelled => 0x10c,
        E::RequestIncomplete => 0x10d,
        E::MessageError => 0x10e,
        E::ConnectError => 0x10f,
        E::VersionFallback => 0x110,
        _ => 0x102,
    }
}
