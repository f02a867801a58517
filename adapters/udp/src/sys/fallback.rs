//! Portable back end for every Unix: one `sendto` / `recvmsg` per datagram, no control messages.
//! GSO batches arrive here already split into single segments (the socket reports
//! `gso_max_segments == 1`), and no other offload is reported, so nothing is silently dropped.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::{SockAddr, SockAddrStorage, Socket};

use super::{retry_eintr, RawRecv, SendFlags};
use crate::send::{prepare, OutgoingDatagram};
use crate::{SocketCapabilities, UdpSocketConfig};

/// The portable back end turns nothing on.
pub(crate) fn probe(
    _sock: &Socket,
    _config: &UdpSocketConfig,
    _is_v6: bool,
    _dual_stack: bool,
) -> SocketCapabilities {
    SocketCapabilities::none()
}

/// Sends datagrams one `sendto` each. Returns how many were sent, or the first one's error.
pub(crate) fn send(
    sock: &Socket,
    datagrams: &[OutgoingDatagram<'_>],
    flags: SendFlags,
) -> io::Result<usize> {
    for (i, d) in datagrams.iter().enumerate() {
        let result = prepare(d, flags).and_then(|p| {
            let dest = SockAddr::from(p.dest);
            retry_eintr(|| sock.send_to(p.contents, &dest))
        });
        match result {
            Ok(_) => {}
            Err(e) if i == 0 => return Err(e),
            Err(_) => return Ok(i),
        }
    }
    Ok(datagrams.len())
}

/// Receives datagrams one `recvmsg` each until a buffer slot is left or the socket is empty.
pub(crate) fn recv(
    sock: &Socket,
    bufs: &mut [IoSliceMut<'_>],
    out: &mut [RawRecv],
) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let count = bufs.len().min(out.len());
    for i in 0..count {
        let mut name = SockAddrStorage::zeroed();
        // SAFETY: all-zero is a valid msghdr.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = ptr::from_mut(&mut name).cast();
        hdr.msg_namelen = name.size_of();
        // IoSliceMut is ABI-compatible with iovec on Unix.
        hdr.msg_iov = ptr::from_mut(&mut bufs[i]).cast::<libc::iovec>();
        hdr.msg_iovlen = 1;
        let result = retry_eintr(|| {
            // SAFETY: the header points at a name buffer and one caller-owned buffer, both valid
            // and writable for the call; there is no control buffer.
            let rc = unsafe { libc::recvmsg(fd, &mut hdr, 0) };
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(rc as usize)
            }
        });
        match result {
            Ok(len) => out[i] = decode(name, hdr.msg_namelen, len, hdr.msg_flags),
            Err(e) if i == 0 => return Err(e),
            Err(_) => return Ok(i),
        }
    }
    Ok(count)
}

/// Reads one received message's address, length and flags (see `sys::decode_bytes`).
pub(super) fn decode(
    name: SockAddrStorage,
    name_len: libc::socklen_t,
    len: usize,
    flags: libc::c_int,
) -> RawRecv {
    RawRecv {
        source: crate::addr::decode(name, name_len).unwrap_or(crate::addr::UNKNOWN_SOURCE),
        len,
        truncated: flags & libc::MSG_TRUNC != 0,
        ..RawRecv::EMPTY
    }
}
