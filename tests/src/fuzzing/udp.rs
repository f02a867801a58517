//! The UDP adapter's receive path without a socket: arbitrary sender addresses, `msg_flags`,
//! control-message buffers (UDP_GRO segment sizes, IP_TOS / IPV6_TCLASS, IP_PKTINFO /
//! IPV6_PKTINFO, SO_RXQ_OVFL, timestamps, unknown types; short, overlong, huge and misaligned
//! lengths; messages cut by the end of the buffer) and payload lengths go through the decoding
//! `UdpSocket::try_recv` uses (`quicksand_udp::decode_recv`), then GRO splitting. Decoding must
//! not panic; the segments must cover the payload exactly and in order, each of the segment
//! size but a shorter last one, and the core's splitting of the same datagram (built as the
//! adapters build it) must give the same segments. The sender address must decode as the
//! bytes say, and for buffers of well-formed messages, destination, ECN and segment size must
//! be those of the last message of each kind.
//!
//! Byte format (seeds: `fuzz/make_seeds.py`; reads past the end give zeros):
//!
//! ```text
//! len:u16le flags:u8 name_len:u8 name[name_len] mode:u8 rest
//! ```
//!
//! `len` payload bytes were received; `flags` bit 0 is MSG_TRUNC, bit 1 MSG_CTRUNC; `name` is
//! the `sockaddr_*` the kernel wrote. With `mode` even, `rest` is the control buffer itself.
//! With `mode` odd, `rest` is records `kind:u8 adjust:u8 data_len:u8 data[data_len]`, laid out
//! as control messages CMSG_SPACE apart: `KINDS[kind]` (from `KINDS.len()` on, an unknown
//! level and type), with a `cmsg_len` that is exact for `adjust == 0`, huge for `0x80` and off
//! by `adjust as i8` otherwise.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use quicksand_core::Datagram;
use quicksand_udp::{decode_recv, EcnCodepoint};

use super::reader::Reader;

/// The receive path's control buffer holds this many bytes; `decode_recv` reads no more.
const CONTROL_LEN: usize = 256;

/// Control messages by `kind`: the ones the receive path reads, then others a socket may get.
const KINDS: [(libc::c_int, libc::c_int); 10] = [
    (libc::IPPROTO_IP, libc::IP_PKTINFO),
    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    (libc::IPPROTO_UDP, libc::UDP_GRO),
    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS),
    (libc::SOL_SOCKET, libc::SO_TIMESTAMP),
    (libc::IPPROTO_IP, libc::IP_RECVERR),
    (libc::IPPROTO_IP, libc::IP_TTL),
];

/// `CMSG_ALIGN`: control messages start at multiples of the header's alignment.
fn align(n: usize) -> usize {
    n.next_multiple_of(std::mem::align_of::<libc::cmsghdr>())
}

/// `CMSG_LEN(n)`: a header and `n` bytes of data.
fn cmsg_len(n: usize) -> usize {
    align(size_of::<libc::cmsghdr>()) + n
}

/// Lays the records out as control messages. Returns the buffer and, if every length was
/// exact, the messages a reader must see: those that fit whole in `CONTROL_LEN` bytes.
#[allow(clippy::type_complexity)]
fn build_control(
    r: &mut Reader<'_>,
) -> (Vec<u8>, Option<Vec<(libc::c_int, libc::c_int, Vec<u8>)>>) {
    let mut buf = Vec::new();
    let mut exact = true;
    let mut seen = Vec::new();
    while !r.is_empty() && buf.len() < 2 * CONTROL_LEN {
        let kind = r.u8();
        let adjust = r.u8();
        let data_len = usize::from(r.u8());
        let data = r.bytes(data_len);
        let (level, ty) = KINDS.get(usize::from(kind)).copied().unwrap_or((
            0x7fff_0000 | libc::c_int::from(kind),
            libc::c_int::from(kind),
        ));
        let len = match adjust {
            0 => cmsg_len(data.len()),
            0x80 => usize::MAX - 3,
            a => cmsg_len(data.len()).saturating_add_signed(isize::from(a as i8)),
        };
        exact &= adjust == 0;
        // SAFETY: an all-zero cmsghdr is valid; it is plain integers.
        let mut hdr: libc::cmsghdr = unsafe { std::mem::zeroed() };
        hdr.cmsg_len = len as _;
        hdr.cmsg_level = level;
        hdr.cmsg_type = ty;
        // SAFETY: reads the header's own bytes (no padding in cmsghdr).
        let hdr_bytes = unsafe {
            std::slice::from_raw_parts(
                std::ptr::from_ref(&hdr).cast::<u8>(),
                size_of::<libc::cmsghdr>(),
            )
        };
        let start = buf.len();
        buf.extend_from_slice(hdr_bytes);
        buf.resize(start + align(size_of::<libc::cmsghdr>()), 0);
        buf.extend_from_slice(data);
        buf.resize(start + align(cmsg_len(data.len())), 0);
        if start + cmsg_len(data.len()) <= CONTROL_LEN {
            seen.push((level, ty, data.to_vec()));
        }
    }
    (buf, exact.then_some(seen))
}

/// How the receive path reads integers the kernel may send as 1, 2 or 4 bytes.
fn read_uint(data: &[u8]) -> Option<u32> {
    match data.len() {
        0 => None,
        1 => Some(u32::from(data[0])),
        2 | 3 => Some(u16::from_ne_bytes([data[0], data[1]]).into()),
        _ => Some(u32::from_ne_bytes([data[0], data[1], data[2], data[3]])),
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The sender as `try_recv` must report it: by the family field, v4-mapped shown as IPv4.
fn expected_source(name: &[u8]) -> SocketAddr {
    let mut raw = [0u8; 128];
    raw[..name.len()].copy_from_slice(name);
    let family = libc::c_int::from(u16::from_ne_bytes([raw[0], raw[1]]));
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    if family == libc::AF_INET {
        let ip: [u8; 4] = raw[4..8].try_into().expect("4 bytes");
        SocketAddr::new(Ipv4Addr::from(ip).into(), port)
    } else if family == libc::AF_INET6 {
        let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&raw[8..24]).expect("16 bytes"));
        match ip.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), port),
            // Flow label and scope id as the kernel wrote them (host order, untouched).
            None => SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                port,
                u32::from_ne_bytes(raw[4..8].try_into().expect("4 bytes")),
                u32::from_ne_bytes(raw[24..28].try_into().expect("4 bytes")),
            )),
        }
    } else {
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0)
    }
}

/// See the module docs.
pub fn udp_recv(data: &[u8]) {
    let mut r = Reader::new(data);
    let len = usize::from(r.u16());
    let flags = r.u8();
    let name_len = usize::from(r.u8()).min(128);
    let name = r.bytes(name_len);
    let (control, messages) = if r.u8() % 2 == 0 {
        (r.rest().to_vec(), None)
    } else {
        build_control(&mut r)
    };
    let msg_flags = if flags & 1 != 0 { libc::MSG_TRUNC } else { 0 }
        | if flags & 2 != 0 { libc::MSG_CTRUNC } else { 0 };

    let meta = decode_recv(name, len, msg_flags, &control);

    assert_eq!(meta.len, len);
    assert_eq!(meta.truncated, flags & 1 != 0);
    assert_eq!(meta.source, expected_source(name));
    if let Some(messages) = messages {
        let (mut dest, mut tos, mut gro) = (None, None, None);
        for (level, ty, data) in &messages {
            match (*level, *ty) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO)
                    if data.len() >= size_of::<libc::in_pktinfo>() =>
                {
                    let ip: [u8; 4] = data[8..12].try_into().expect("4 bytes");
                    dest = Some(IpAddr::from(ip));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                    if data.len() >= size_of::<libc::in6_pktinfo>() =>
                {
                    let ip: [u8; 16] = data[..16].try_into().expect("16 bytes");
                    dest = Some(unmap(IpAddr::from(ip)));
                }
                (libc::IPPROTO_IP, libc::IP_TOS) | (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                    tos = read_uint(data).map(|v| v as u8);
                }
                (libc::IPPROTO_UDP, libc::UDP_GRO) => {
                    gro = read_uint(data).map(|v| v as usize).filter(|&v| v > 0);
                }
                _ => {}
            }
        }
        assert_eq!(meta.destination_ip, dest, "destination of {messages:?}");
        assert_eq!(meta.ecn, tos.and_then(EcnCodepoint::from_bits));
        assert_eq!(
            meta.segment_size,
            gro.filter(|&g| g < len).unwrap_or(len),
            "segment size of {messages:?}"
        );
    }

    // GRO splitting: the payload back, in order, in segment-size pieces but a shorter last.
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    assert!(len == 0 || (1..=len).contains(&meta.segment_size));
    let segments: Vec<&[u8]> = meta.segments(&payload).collect();
    assert_eq!(segments.len(), meta.segment_count());
    assert_eq!(meta.segments(&payload).len(), segments.len());
    assert_eq!(segments.concat(), payload);
    if len == 0 {
        assert_eq!(segments, [&[] as &[u8]]);
    }
    for (i, s) in segments.iter().enumerate() {
        if i + 1 < segments.len() {
            assert_eq!(s.len(), meta.segment_size);
        } else {
            assert!(len == 0 || (1..=meta.segment_size).contains(&s.len()));
        }
    }

    // The core splits the datagram the adapters hand it the same way
    // (adapters/common/src/buffers.rs builds it like this).
    let local = SocketAddr::from(([127, 0, 0, 1], 443));
    let mut d = Datagram::new(&payload[..], meta.source, local, Instant::now());
    d.segment_size =
        (meta.segment_size > 0 && meta.segment_size < meta.len).then_some(meta.segment_size);
    let core: Vec<Vec<u8>> = d.split_segments().map(|s| s.payload.to_vec()).collect();
    assert_eq!(core, segments);
}
