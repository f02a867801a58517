//! Sending: the datagram description, splitting of GSO batches, and the run-time fallbacks for
//! GSO and ECN (see the crate docs).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::slice;

use crate::addr::{self, SourceIp};
use crate::sys::{self, SendFlags};
use crate::{EcnCodepoint, UdpSocket, BATCH_SIZE, MAX_SEND_PAYLOAD};

/// One datagram to send, or with `segment_size` several equal datagrams sent as one GSO batch.
///
/// Build it with [`OutgoingDatagram::new`] and struct update syntax:
///
/// ```
/// # use quicksand_udp::{EcnCodepoint, OutgoingDatagram};
/// let payload = [0u8; 3000];
/// let batch = OutgoingDatagram {
///     segment_size: Some(1200), // 1200 + 1200 + 600
///     ecn: Some(EcnCodepoint::Ect0),
///     ..OutgoingDatagram::new("192.0.2.1:443".parse().unwrap(), &payload)
/// };
/// assert_eq!(batch.segment_count(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutgoingDatagram<'a> {
    /// Where to send. IPv4 addresses may be used on dual-stack IPv6 sockets.
    pub destination: SocketAddr,
    /// Source address to send from (needs [`SocketCapabilities::pktinfo`]; ignored without it).
    /// Must be of the destination's family (a v4-mapped IPv6 address counts as IPv4).
    ///
    /// [`SocketCapabilities::pktinfo`]: crate::SocketCapabilities::pktinfo
    pub source_ip: Option<IpAddr>,
    /// ECN codepoint to mark (needs [`SocketCapabilities::ecn`]; ignored without it).
    ///
    /// [`SocketCapabilities::ecn`]: crate::SocketCapabilities::ecn
    pub ecn: Option<EcnCodepoint>,
    /// DSCP value (0..=63) for the upper six bits of the TOS / traffic class byte (needs
    /// [`SocketCapabilities::ecn`]; ignored without it).
    ///
    /// [`SocketCapabilities::ecn`]: crate::SocketCapabilities::ecn
    pub dscp: Option<u8>,
    /// `contents` holds several datagrams of this many bytes back to back (the last may be
    /// shorter). Sent with GSO where available, otherwise split by this layer. Must be in
    /// `1..=65535`.
    pub segment_size: Option<usize>,
    /// Earliest transmit time in `CLOCK_MONOTONIC` nanoseconds (see
    /// [`instant_to_monotonic_ns`](crate::instant_to_monotonic_ns)); needs
    /// [`SocketCapabilities::txtime`](crate::SocketCapabilities::txtime), ignored without it.
    pub txtime: Option<u64>,
    /// The payload. Advanced past the segments already sent when a send stops part-way.
    pub contents: &'a [u8],
}

impl<'a> OutgoingDatagram<'a> {
    /// A plain datagram: no source address, marks, segmentation or transmit time.
    pub fn new(destination: SocketAddr, contents: &'a [u8]) -> Self {
        Self {
            destination,
            source_ip: None,
            ecn: None,
            dscp: None,
            segment_size: None,
            txtime: None,
            contents,
        }
    }

    /// Number of datagrams this describes (1 without `segment_size`, and for empty contents).
    pub fn segment_count(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 && !self.contents.is_empty() => {
                self.contents.len().div_ceil(size)
            }
            _ => 1,
        }
    }
}

/// A datagram checked and resolved against the socket's state, ready for a back end.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(qs_linux), allow(dead_code))]
pub(crate) struct Prepared<'a> {
    /// Destination in the socket's family.
    pub(crate) dest: SocketAddr,
    /// The datagram travels over IPv4 (possibly from an IPv6 socket).
    pub(crate) over_v4: bool,
    pub(crate) source: Option<SourceIp>,
    /// TOS / traffic class byte to write.
    pub(crate) tos: Option<u8>,
    /// `UDP_SEGMENT` value, set only when the message carries more than one segment.
    pub(crate) gso_segment: Option<u16>,
    pub(crate) txtime: Option<u64>,
    pub(crate) contents: &'a [u8],
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Checks what does not depend on how the datagram will be split.
fn check(d: &OutgoingDatagram<'_>, flags: SendFlags) -> io::Result<(SocketAddr, Option<SourceIp>)> {
    if let Some(size) = d.segment_size {
        if size == 0 || size > usize::from(u16::MAX) {
            return Err(invalid(format!("segment_size {size} is not in 1..=65535")));
        }
    }
    if let Some(dscp) = d.dscp {
        if dscp > 63 {
            return Err(invalid(format!("dscp {dscp} is not in 0..=63")));
        }
    }
    let dest = addr::destination_for(d.destination, flags.socket_is_v6)?;
    let source = match d.source_ip {
        Some(ip) => Some(addr::source_for(ip, addr::travels_over_v4(dest))?),
        None => None,
    };
    Ok((dest, source))
}

/// Segments one message may carry for this segment size.
fn segments_per_message(segment_size: usize, flags: SendFlags) -> usize {
    if flags.gso_segments <= 1 {
        return 1;
    }
    flags
        .gso_segments
        .min(MAX_SEND_PAYLOAD / segment_size.max(1))
        .max(1)
}

/// Whether the datagram takes more than one message.
fn needs_split(d: &OutgoingDatagram<'_>, flags: SendFlags) -> bool {
    match d.segment_size {
        Some(size) if size > 0 => d.segment_count() > segments_per_message(size, flags),
        _ => false,
    }
}

/// Whether the datagram's message carries a TOS / traffic class control message.
pub(crate) fn carries_tos(d: &OutgoingDatagram<'_>, flags: SendFlags) -> bool {
    flags.tos && (d.ecn.is_some() || d.dscp.is_some())
}

/// Whether the datagram's message carries `UDP_SEGMENT`.
pub(crate) fn carries_gso(d: &OutgoingDatagram<'_>, flags: SendFlags) -> bool {
    flags.gso_segments > 1 && d.segment_count() > 1
}

/// Resolves a datagram that fits one message for a back end.
pub(crate) fn prepare<'a>(d: &OutgoingDatagram<'a>, flags: SendFlags) -> io::Result<Prepared<'a>> {
    let (dest, source) = check(d, flags)?;
    let gso_segment = match d.segment_size {
        Some(size) if d.segment_count() > 1 => {
            if d.segment_count() > segments_per_message(size, flags) {
                return Err(invalid(format!(
                    "{} segments do not fit one message (internal error)",
                    d.segment_count()
                )));
            }
            Some(u16::try_from(size).map_err(|_| invalid(format!("segment_size {size}")))?)
        }
        _ => None,
    };
    let tos = carries_tos(d, flags)
        .then(|| (d.dscp.unwrap_or(0) << 2) | d.ecn.map_or(0, EcnCodepoint::to_bits));
    Ok(Prepared {
        dest,
        over_v4: addr::travels_over_v4(dest),
        source: if flags.pktinfo { source } else { None },
        tos,
        gso_segment,
        txtime: if flags.txtime { d.txtime } else { None },
        contents: d.contents,
    })
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl UdpSocket {
    /// Sends one datagram (or GSO batch).
    ///
    /// Returns `WouldBlock` when the socket's send buffer is full: wait for writability and call
    /// again with the same `datagram`. If the layer had to split the batch and some segments
    /// went out before the error, `datagram.contents` has been advanced past them, so a retry
    /// sends each segment exactly once. Other errors (`EMSGSIZE`, unreachable networks, invalid
    /// input) are returned as they are; GSO and ECN failures are first retried as described in
    /// the crate docs.
    pub fn try_send(&self, datagram: &mut OutgoingDatagram<'_>) -> io::Result<()> {
        let flags = self.send_flags();
        check(datagram, flags)?;
        if needs_split(datagram, flags) {
            return self.send_split(datagram, flags);
        }
        match self.sys_send(slice::from_ref(datagram), flags) {
            Ok(_) => Ok(()),
            Err(e) => self.recover(datagram, flags, e),
        }
    }

    /// Sends several datagrams, with `sendmmsg` where available (up to [`BATCH_SIZE`] per system
    /// call).
    ///
    /// Returns how many datagrams from the front of `datagrams` were sent completely (at least
    /// one), or the error of the first one if none was. An error after some progress is not
    /// reported by this call; retrying with the rest reports it. As with [`Self::try_send`], the
    /// first unsent datagram may have had its `contents` advanced past segments already sent, so
    /// retry with `&mut datagrams[n..]`. When the first datagram fails for good (`EMSGSIZE`, an
    /// unreachable destination), it is up to the caller to skip it and go on with the rest.
    pub fn try_send_batch(&self, datagrams: &mut [OutgoingDatagram<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        while sent < datagrams.len() {
            let flags = self.send_flags();
            let rest = &mut datagrams[sent..];
            let run = rest
                .iter()
                .take(BATCH_SIZE)
                .take_while(|d| check(d, flags).is_ok() && !needs_split(d, flags))
                .count();
            let result = if run == 0 {
                self.try_send(&mut rest[0]).map(|()| 1)
            } else {
                match self.sys_send(&rest[..run], flags) {
                    Ok(n) if n < run => return Ok(sent + n),
                    Ok(n) => Ok(n),
                    Err(e) => self.recover(&mut rest[0], flags, e).map(|()| 1),
                }
            };
            match result {
                Ok(n) => sent += n,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => return Ok(sent),
            }
        }
        Ok(sent)
    }

    /// The socket's current send-side switches.
    pub(crate) fn send_flags(&self) -> SendFlags {
        SendFlags {
            gso_segments: self.gso_segments(),
            tos: self.tos_enabled(),
            pktinfo: self.probed.pktinfo,
            txtime: self.probed.txtime,
            socket_is_v6: self.is_v6,
        }
    }

    /// Sends a datagram that takes several messages: chunks of as many segments as one message
    /// may carry, several chunks per system call. `datagram.contents` is advanced as chunks go
    /// out. `flags` may be narrower than the socket's (the fallback uses that).
    fn send_split(&self, datagram: &mut OutgoingDatagram<'_>, flags: SendFlags) -> io::Result<()> {
        let segment_size = datagram
            .segment_size
            .unwrap_or(datagram.contents.len())
            .max(1);
        while !datagram.contents.is_empty() {
            // A fallback during an earlier round may have narrowed the socket's flags.
            let flags = flags.narrowed_by(self.send_flags());
            let chunk_len = segment_size * segments_per_message(segment_size, flags);
            let mut chunks = [*datagram; BATCH_SIZE];
            let mut count = 0;
            let mut offset = 0;
            while count < BATCH_SIZE && offset < datagram.contents.len() {
                let end = (offset + chunk_len).min(datagram.contents.len());
                chunks[count].contents = &datagram.contents[offset..end];
                offset = end;
                count += 1;
            }
            let done = match self.sys_send(&chunks[..count], flags) {
                Ok(n) => chunks[..n].iter().map(|c| c.contents.len()).sum(),
                Err(e) => {
                    let mut first = chunks[0];
                    let before = first.contents.len();
                    match self.recover(&mut first, flags, e) {
                        Ok(()) => before,
                        Err(e) => {
                            let done = before - first.contents.len();
                            datagram.contents = &datagram.contents[done..];
                            return Err(e);
                        }
                    }
                }
            };
            if done == 0 {
                // Back ends report at least one message or an error; never spin regardless.
                return Err(io::Error::other("UDP send made no progress"));
            }
            datagram.contents = &datagram.contents[done..];
        }
        Ok(())
    }

    /// Handles the failure of a single-message send of `datagram` made with `flags`.
    ///
    /// If the error may come from the `UDP_SEGMENT` (`EIO`, `EINVAL`) or TOS (`EINVAL`) control
    /// message, the send is retried without the suspect(s): first without TOS, then without GSO
    /// (one segment per send), then without both. The first retry that gets anything out proves
    /// which feature failed, and only that one is switched off. If no retry helps, the original
    /// features stay on and the last error is returned. `WouldBlock` ends the attempt at once
    /// (with `datagram.contents` advanced past whatever went out).
    fn recover(
        &self,
        datagram: &mut OutgoingDatagram<'_>,
        flags: SendFlags,
        err: io::Error,
    ) -> io::Result<()> {
        let code = err.raw_os_error();
        let tos_suspect = carries_tos(datagram, flags) && code == Some(libc::EINVAL);
        let gso_suspect =
            carries_gso(datagram, flags) && matches!(code, Some(libc::EIO) | Some(libc::EINVAL));
        if !tos_suspect && !gso_suspect {
            return Err(err);
        }
        let mut last = err;
        for (drop_tos, drop_gso) in [(true, false), (false, true), (true, true)] {
            if (drop_tos && !tos_suspect) || (drop_gso && !gso_suspect) {
                continue;
            }
            let mut narrowed = flags;
            if drop_tos {
                narrowed.tos = false;
            }
            if drop_gso {
                narrowed.gso_segments = 1;
                let before = datagram.contents.len();
                let result = self.send_split(datagram, narrowed);
                if result.is_ok() || datagram.contents.len() < before {
                    // GSO failed where single segments went out: switched off only after
                    // several such failures in a row (see `GSO_STRIKES`).
                    let gso_broken = self.gso_failed();
                    self.switch_off(drop_tos, gso_broken);
                    return result;
                }
                match result {
                    Err(e) if is_would_block(&e) => return Err(e),
                    Err(e) => last = e,
                    Ok(()) => return Ok(()),
                }
            } else {
                match self.sys_send(slice::from_ref(datagram), narrowed) {
                    Ok(_) => {
                        self.switch_off(drop_tos, drop_gso);
                        return Ok(());
                    }
                    Err(e) if is_would_block(&e) => return Err(e),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }

    /// Hands datagrams that each fit one message to the back end.
    fn sys_send(&self, datagrams: &[OutgoingDatagram<'_>], flags: SendFlags) -> io::Result<usize> {
        #[cfg(test)]
        let datagrams = self.faults.intercept(datagrams, flags)?;
        let sent = sys::send(&self.inner, datagrams, flags)?;
        if datagrams[..sent].iter().any(|d| carries_gso(d, flags)) {
            self.gso_worked();
        }
        Ok(sent)
    }
}

impl SendFlags {
    /// The narrower of two sets of switches.
    fn narrowed_by(self, other: SendFlags) -> SendFlags {
        SendFlags {
            gso_segments: self.gso_segments.min(other.gso_segments),
            tos: self.tos && other.tos,
            pktinfo: self.pktinfo && other.pktinfo,
            txtime: self.txtime && other.txtime,
            socket_is_v6: self.socket_is_v6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(gso_segments: usize) -> SendFlags {
        SendFlags {
            gso_segments,
            tos: true,
            pktinfo: true,
            txtime: true,
            socket_is_v6: false,
        }
    }

    #[test]
    fn segment_counting_and_splitting() {
        let data = [0u8; 3000];
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut d = OutgoingDatagram::new(dest, &data);
        assert_eq!(d.segment_count(), 1);
        d.segment_size = Some(1000);
        assert_eq!(d.segment_count(), 3);
        assert!(!needs_split(&d, flags(64)));
        assert!(needs_split(&d, flags(1)));
        assert!(needs_split(&d, flags(2)));
        // Never more than MAX_SEND_PAYLOAD bytes per message.
        let big = vec![0u8; 64 * 1400];
        let d = OutgoingDatagram {
            segment_size: Some(1400),
            ..OutgoingDatagram::new(dest, &big)
        };
        assert_eq!(segments_per_message(1400, flags(64)), 46);
        assert!(needs_split(&d, flags(64)));
        let p = prepare(&d, flags(1));
        assert!(p.is_err(), "prepare refuses what does not fit one message");
    }

    #[test]
    fn prepare_resolves_marks_and_addresses() {
        let data = [1u8; 10];
        let d = OutgoingDatagram {
            ecn: Some(EcnCodepoint::Ect0),
            dscp: Some(46),
            source_ip: Some("::ffff:127.0.0.1".parse().unwrap()),
            txtime: Some(5),
            ..OutgoingDatagram::new("127.0.0.1:9".parse().unwrap(), &data)
        };
        let v6 = SendFlags {
            socket_is_v6: true,
            ..flags(64)
        };
        let p = prepare(&d, v6).unwrap();
        assert_eq!(p.tos, Some((46 << 2) | 0b10));
        assert!(p.over_v4);
        assert_eq!(
            p.dest,
            "[::ffff:127.0.0.1]:9".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(p.source, Some(SourceIp::V4(std::net::Ipv4Addr::LOCALHOST)));
        assert_eq!(p.txtime, Some(5));
        assert_eq!(p.gso_segment, None);
        let off = SendFlags {
            tos: false,
            pktinfo: false,
            txtime: false,
            ..v6
        };
        let p = prepare(&d, off).unwrap();
        assert_eq!((p.tos, p.source, p.txtime), (None, None, None));
    }

    #[test]
    fn invalid_input_is_rejected() {
        let data = [0u8; 10];
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for bad in [
            OutgoingDatagram {
                segment_size: Some(0),
                ..OutgoingDatagram::new(dest, &data)
            },
            OutgoingDatagram {
                segment_size: Some(70_000),
                ..OutgoingDatagram::new(dest, &data)
            },
            OutgoingDatagram {
                dscp: Some(64),
                ..OutgoingDatagram::new(dest, &data)
            },
            OutgoingDatagram {
                source_ip: Some("::1".parse().unwrap()),
                ..OutgoingDatagram::new(dest, &data)
            },
            OutgoingDatagram::new("[::1]:9".parse().unwrap(), &data),
        ] {
            let err = check(&bad, flags(64)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
