//! Platform back ends.
//!
//! Each back end provides:
//! - `probe(socket, config, is_v6, dual_stack) -> SocketCapabilities`: turns features on;
//! - `send(socket, datagrams, flags) -> io::Result<usize>`: sends datagrams that each fit one
//!   message (the caller splits the rest), returning how many went out, or the error of the
//!   first one;
//! - `recv(socket, buffers, out) -> io::Result<usize>`: receives up to one datagram per buffer.

use std::net::{IpAddr, SocketAddr};

#[cfg(qs_linux)]
mod cmsg;
#[cfg(qs_linux)]
mod linux;
#[cfg(qs_linux)]
pub(crate) use linux::{probe, recv, send};

#[cfg(not(qs_linux))]
mod fallback;
#[cfg(not(qs_linux))]
pub(crate) use fallback::{probe, recv, send};

/// The socket's send-side state, read once per send call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendFlags {
    /// Segments one message may carry (1: no GSO).
    pub(crate) gso_segments: usize,
    /// Write ECN/DSCP marks.
    pub(crate) tos: bool,
    /// Honour source addresses.
    pub(crate) pktinfo: bool,
    /// Pass transmit times.
    pub(crate) txtime: bool,
    /// The socket is IPv6 (destinations are written as IPv6, v4-mapped where needed).
    pub(crate) socket_is_v6: bool,
}

/// What the kernel reported about one received datagram, before addresses are unmapped.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(qs_linux), allow(dead_code))]
pub(crate) struct RawRecv {
    pub(crate) source: SocketAddr,
    pub(crate) destination_ip: Option<IpAddr>,
    pub(crate) len: usize,
    pub(crate) gro_segment_size: Option<usize>,
    pub(crate) tos: Option<u8>,
    pub(crate) truncated: bool,
    pub(crate) control_truncated: bool,
    pub(crate) dropped: Option<u32>,
}

impl RawRecv {
    pub(crate) const EMPTY: Self = Self {
        source: crate::addr::UNKNOWN_SOURCE,
        destination_ip: None,
        len: 0,
        gro_segment_size: None,
        tos: None,
        truncated: false,
        control_truncated: false,
        dropped: None,
    };
}

/// Decodes one received datagram's metadata from plain bytes, through the back end's own
/// decoding: `name` as the kernel writes a `sockaddr_*` (cut to a `sockaddr_storage`),
/// `control` as it writes control messages (cut to the receive path's control buffer; the
/// portable back end reads none). For `crate::recv::decode_recv`.
pub(crate) fn decode_bytes(name: &[u8], len: usize, flags: libc::c_int, control: &[u8]) -> RawRecv {
    let mut storage = socket2::SockAddrStorage::zeroed();
    let name_len = name.len().min(storage.size_of() as usize);
    // SAFETY: `sockaddr_storage` is plain bytes, and `name_len` of them fit.
    unsafe {
        let dst = std::ptr::from_mut(storage.view_as::<libc::sockaddr_storage>()).cast::<u8>();
        std::ptr::copy_nonoverlapping(name.as_ptr(), dst, name_len);
    }
    let name_len = name_len as libc::socklen_t;
    #[cfg(qs_linux)]
    {
        let mut buf = cmsg::CmsgBuf::new();
        let control_len = control.len().min(cmsg::CMSG_BUF_LEN);
        buf.0[..control_len].copy_from_slice(&control[..control_len]);
        linux::decode(storage, name_len, len, flags, &buf, control_len)
    }
    #[cfg(not(qs_linux))]
    {
        let _ = control;
        fallback::decode(storage, name_len, len, flags)
    }
}

/// Retries a system call interrupted by a signal.
pub(crate) fn retry_eintr<T>(mut f: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
