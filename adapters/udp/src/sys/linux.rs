//! Linux back end: control messages, `sendmmsg` / `recvmmsg`, GSO / GRO, pktinfo, ECN,
//! `SO_RXQ_OVFL`, `SO_TXTIME`.

use std::io::{self, IoSliceMut};
use std::mem::{self, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::{SockAddr, SockAddrStorage, Socket};

use super::cmsg::{self, CmsgBuf, Encoder, CMSG_BUF_LEN};
use super::{retry_eintr, RawRecv, SendFlags};
use crate::addr::{self, SourceIp};
use crate::send::{prepare, OutgoingDatagram};
use crate::{SocketCapabilities, UdpSocketConfig, BATCH_SIZE, GRO_MAX_SEGMENTS, GSO_MAX_SEGMENTS};

fn setsockopt<T>(sock: &Socket, level: libc::c_int, name: libc::c_int, value: T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option too large"))?;
    // SAFETY: `value` lives for the call and `len` is its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn enable(sock: &Socket, level: libc::c_int, name: libc::c_int) -> bool {
    setsockopt(sock, level, name, 1 as libc::c_int).is_ok()
}

/// Turns on what the configuration asks for and the kernel accepts.
pub(crate) fn probe(
    sock: &Socket,
    config: &UdpSocketConfig,
    is_v6: bool,
    dual_stack: bool,
) -> SocketCapabilities {
    let mut caps = SocketCapabilities::none();
    // GSO is per send (a control message); the socket option is only set to see whether the
    // kernel knows it, then cleared.
    if config.gso
        && setsockopt(
            sock,
            libc::IPPROTO_UDP,
            libc::UDP_SEGMENT,
            1200 as libc::c_int,
        )
        .is_ok()
        && setsockopt(sock, libc::IPPROTO_UDP, libc::UDP_SEGMENT, 0 as libc::c_int).is_ok()
    {
        caps.gso_max_segments = GSO_MAX_SEGMENTS;
    }
    if config.gro && enable(sock, libc::IPPROTO_UDP, libc::UDP_GRO) {
        caps.gro_segments = GRO_MAX_SEGMENTS;
    }
    if config.pktinfo {
        caps.pktinfo = if is_v6 {
            enable(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        } else {
            enable(sock, libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
    }
    if config.ecn {
        caps.ecn = if is_v6 {
            // IPv4 packets on a dual-stack socket report their TOS only through IP_RECVTOS.
            enable(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS)
                && (!dual_stack || enable(sock, libc::IPPROTO_IP, libc::IP_RECVTOS))
        } else {
            enable(sock, libc::IPPROTO_IP, libc::IP_RECVTOS)
        };
    }
    if config.dont_fragment {
        let v4 = || {
            setsockopt(
                sock,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            )
            .is_ok()
        };
        caps.dont_fragment = if is_v6 {
            setsockopt(
                sock,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            )
            .is_ok()
                && (!dual_stack || v4())
        } else {
            v4()
        };
    }
    if config.txtime {
        let txtime = libc::sock_txtime {
            clockid: libc::CLOCK_MONOTONIC,
            flags: 0,
        };
        caps.txtime = setsockopt(sock, libc::SOL_SOCKET, libc::SO_TXTIME, txtime).is_ok();
    }
    caps.rxq_ovfl = enable(sock, libc::SOL_SOCKET, libc::SO_RXQ_OVFL);
    caps
}

/// Writes the control messages of one prepared datagram.
fn encode(enc: &mut Encoder<'_>, source: Option<SourceIp>, tos: Option<u8>, over_v4: bool) {
    match source {
        Some(SourceIp::V4(ip)) => enc.push(
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            },
        ),
        Some(SourceIp::V6(ip)) => enc.push(
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: 0,
            },
        ),
        None => {}
    }
    if let Some(tos) = tos {
        let value = libc::c_int::from(tos);
        if over_v4 {
            enc.push(libc::IPPROTO_IP, libc::IP_TOS, value);
        } else {
            enc.push(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, value);
        }
    }
}

/// Sends up to [`BATCH_SIZE`] datagrams that each fit one message: `sendmsg` for one,
/// `sendmmsg` for more. Returns how many were sent, or the first one's error.
pub(crate) fn send(
    sock: &Socket,
    datagrams: &[OutgoingDatagram<'_>],
    flags: SendFlags,
) -> io::Result<usize> {
    let mut names: [SockAddrStorage; BATCH_SIZE] =
        std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut name_lens: [libc::socklen_t; BATCH_SIZE] = [0; BATCH_SIZE];
    let mut iovs = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; BATCH_SIZE];
    let mut controls: [CmsgBuf; BATCH_SIZE] = std::array::from_fn(|_| CmsgBuf::new());
    let mut control_lens = [0usize; BATCH_SIZE];

    let mut count = 0;
    for d in datagrams.iter().take(BATCH_SIZE) {
        let p = match prepare(d, flags) {
            Ok(p) => p,
            Err(e) if count == 0 => return Err(e),
            Err(_) => break,
        };
        let name = SockAddr::from(p.dest);
        name_lens[count] = name.len();
        names[count] = name.as_storage();
        iovs[count] = libc::iovec {
            iov_base: p.contents.as_ptr().cast_mut().cast(),
            iov_len: p.contents.len(),
        };
        let mut enc = Encoder::new(&mut controls[count]);
        encode(&mut enc, p.source, p.tos, p.over_v4);
        if let Some(segment) = p.gso_segment {
            enc.push(libc::IPPROTO_UDP, libc::UDP_SEGMENT, segment);
        }
        if let Some(at) = p.txtime {
            enc.push(libc::SOL_SOCKET, libc::SCM_TXTIME, at);
        }
        control_lens[count] = enc.len();
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }

    // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { mem::zeroed() };
    for i in 0..count {
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = ptr::from_mut(&mut names[i]).cast();
        hdr.msg_namelen = name_lens[i];
        hdr.msg_iov = ptr::from_mut(&mut iovs[i]);
        hdr.msg_iovlen = 1;
        if control_lens[i] > 0 {
            hdr.msg_control = controls[i].0.as_mut_ptr().cast();
            hdr.msg_controllen = control_lens[i] as _;
        }
    }
    let fd = sock.as_raw_fd();
    retry_eintr(|| {
        // SAFETY: every header points at a name, one iovec and a control buffer that outlive
        // the call; the payload is only read by the kernel.
        let rc = unsafe {
            if count == 1 {
                libc::sendmsg(fd, &msgs[0].msg_hdr, 0) as libc::c_int
            } else {
                libc::sendmmsg(fd, msgs.as_mut_ptr(), count as libc::c_uint, 0 as _)
            }
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else if count == 1 {
            Ok(1)
        } else {
            Ok(rc as usize)
        }
    })
}

/// Receives up to one datagram per buffer (at most [`BATCH_SIZE`]) with one `recvmmsg`.
// `msg_controllen` is `usize` with glibc but `socklen_t` with musl.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn recv(
    sock: &Socket,
    bufs: &mut [IoSliceMut<'_>],
    out: &mut [RawRecv],
) -> io::Result<usize> {
    let count = bufs.len().min(out.len()).min(BATCH_SIZE);
    if count == 0 {
        return Ok(0);
    }
    let mut names: [SockAddrStorage; BATCH_SIZE] =
        std::array::from_fn(|_| SockAddrStorage::zeroed());
    let mut controls: [CmsgBuf; BATCH_SIZE] = std::array::from_fn(|_| CmsgBuf::new());
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH_SIZE] = unsafe { mem::zeroed() };
    let name_len = names[0].size_of();
    for i in 0..count {
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = ptr::from_mut(&mut names[i]).cast();
        hdr.msg_namelen = name_len;
        // IoSliceMut is ABI-compatible with iovec on Unix.
        hdr.msg_iov = ptr::from_mut(&mut bufs[i]).cast::<libc::iovec>();
        hdr.msg_iovlen = 1;
        hdr.msg_control = controls[i].0.as_mut_ptr().cast();
        hdr.msg_controllen = CMSG_BUF_LEN as _;
    }
    let fd = sock.as_raw_fd();
    let received = retry_eintr(|| {
        // SAFETY: every header points at a name buffer, one caller-owned buffer and a control
        // buffer, all valid and writable for the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                count as libc::c_uint,
                0 as _,
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    })?;
    for i in 0..received {
        let hdr = &msgs[i].msg_hdr;
        let name = mem::replace(&mut names[i], SockAddrStorage::zeroed());
        out[i] = decode(
            name,
            hdr.msg_namelen,
            msgs[i].msg_len as usize,
            hdr.msg_flags,
            &controls[i],
            hdr.msg_controllen as usize,
        );
    }
    Ok(received)
}

/// Reads one received message: the sender's address (`name_len` bytes of `name`), the length
/// and flags, and the control messages (`control_len` bytes of `control`). Plain values rather
/// than the `mmsghdr`, so that `sys::decode_bytes` can feed it any bytes (fuzz target
/// `udp_recv`).
pub(super) fn decode(
    name: SockAddrStorage,
    name_len: libc::socklen_t,
    len: usize,
    flags: libc::c_int,
    control: &CmsgBuf,
    control_len: usize,
) -> RawRecv {
    let mut raw = RawRecv {
        source: addr::decode(name, name_len).unwrap_or(addr::UNKNOWN_SOURCE),
        len,
        truncated: flags & libc::MSG_TRUNC != 0,
        control_truncated: flags & libc::MSG_CTRUNC != 0,
        ..RawRecv::EMPTY
    };
    cmsg::for_each(control, control_len, |c| match (c.level, c.ty) {
        (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
            if let Some(info) = c.read::<libc::in_pktinfo>() {
                let ip = Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes());
                raw.destination_ip = Some(IpAddr::V4(ip));
            }
        }
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
            if let Some(info) = c.read::<libc::in6_pktinfo>() {
                raw.destination_ip = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
        }
        (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
            raw.tos = c.read_uint().map(|v| (v & 0xff) as u8);
        }
        (libc::IPPROTO_UDP, libc::UDP_GRO) => {
            raw.gro_segment_size = c.read_uint().map(|v| v as usize).filter(|&v| v > 0);
        }
        (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
            raw.dropped = c.read::<u32>();
        }
        _ => {}
    });
    raw
}
