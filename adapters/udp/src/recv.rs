//! Receiving: per-datagram metadata, batched receive, and splitting of GRO buffers.

use std::io::{self, IoSliceMut};
use std::iter::FusedIterator;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use crate::sys::{self, RawRecv};
use crate::{addr, EcnCodepoint, UdpSocket, BATCH_SIZE, RECV_BUFFER_LEN};

/// What was received into one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// The sender. IPv4 senders on a dual-stack socket appear as IPv4 addresses.
    pub source: SocketAddr,
    /// The address the datagram was sent to (needs
    /// [`SocketCapabilities::pktinfo`](crate::SocketCapabilities::pktinfo); `None` without it).
    /// IPv4 destinations on a dual-stack socket appear as IPv4 addresses.
    pub destination_ip: Option<IpAddr>,
    /// Bytes written to the buffer.
    pub len: usize,
    /// Size of each coalesced datagram (the last may be shorter); equal to `len` when the buffer
    /// holds one datagram. Use [`RecvMeta::segments`] to split.
    pub segment_size: usize,
    /// ECN codepoint of the datagram(s) (needs
    /// [`SocketCapabilities::ecn`](crate::SocketCapabilities::ecn)).
    pub ecn: Option<EcnCodepoint>,
    /// The datagram did not fit the buffer and was cut to `len` bytes; the rest is lost. Such a
    /// buffer should be dropped. Also counted in
    /// [`SocketStats::truncated_datagrams`](crate::SocketStats::truncated_datagrams).
    pub truncated: bool,
}

impl Default for RecvMeta {
    fn default() -> Self {
        Self {
            source: addr::UNKNOWN_SOURCE,
            destination_ip: None,
            len: 0,
            segment_size: 0,
            ecn: None,
            truncated: false,
        }
    }
}

impl RecvMeta {
    /// Splits the received bytes (`buf[..len]`) into the datagrams they hold.
    pub fn segments<'b>(&self, buf: &'b [u8]) -> Segments<'b> {
        split_segments(&buf[..self.len.min(buf.len())], self.segment_size)
    }

    /// Number of datagrams in the buffer.
    pub fn segment_count(&self) -> usize {
        split_segments_count(self.len, self.segment_size)
    }
}

fn split_segments_count(len: usize, stride: usize) -> usize {
    if len == 0 {
        1
    } else {
        len.div_ceil(stride.max(1).min(len))
    }
}

/// Splits `data` into chunks of `segment_size` bytes (the last may be shorter). Empty `data`
/// yields one empty datagram; a `segment_size` of 0 yields `data` whole.
pub fn split_segments(data: &[u8], segment_size: usize) -> Segments<'_> {
    let stride = if segment_size == 0 {
        data.len().max(1)
    } else {
        segment_size
    };
    Segments {
        rest: data,
        stride,
        empty_pending: data.is_empty(),
    }
}

/// Iterator over the datagrams of a GRO buffer; see [`split_segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    rest: &'a [u8],
    stride: usize,
    empty_pending: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return if std::mem::take(&mut self.empty_pending) {
                Some(self.rest)
            } else {
                None
            };
        }
        let (segment, rest) = self.rest.split_at(self.stride.min(self.rest.len()));
        self.rest = rest;
        Some(segment)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.rest.is_empty() {
            usize::from(self.empty_pending)
        } else {
            self.rest.len().div_ceil(self.stride)
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Segments<'_> {}
impl FusedIterator for Segments<'_> {}

impl UdpSocket {
    /// Receives up to one datagram (or GRO batch) per buffer, at most [`BATCH_SIZE`] per call,
    /// with one `recvmmsg` on Linux. Returns how many buffers were filled; `meta[i]` describes
    /// `bufs[i]`. Returns `WouldBlock` when nothing is queued.
    ///
    /// Buffers should be [`Self::recv_buffer_len`] bytes long. A datagram that does not fit is
    /// still returned, cut, with [`RecvMeta::truncated`] set.
    ///
    /// Errors with `InvalidInput` if `bufs` or `meta` is empty.
    pub fn try_recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let count = bufs.len().min(meta.len()).min(BATCH_SIZE);
        if count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "try_recv needs at least one buffer and one RecvMeta",
            ));
        }
        let mut raw = [RawRecv::EMPTY; BATCH_SIZE];
        let received = sys::recv(&self.inner, &mut bufs[..count], &mut raw[..count])?;
        for (m, r) in meta.iter_mut().zip(&raw[..received]) {
            *m = self.finish(r);
        }
        Ok(received)
    }

    /// Length a receive buffer needs so that no datagram or GRO batch is ever truncated.
    pub fn recv_buffer_len(&self) -> usize {
        RECV_BUFFER_LEN
    }

    /// Turns what the back end reported into a [`RecvMeta`], updating the counters.
    fn finish(&self, r: &RawRecv) -> RecvMeta {
        if r.truncated {
            self.counters
                .truncated_datagrams
                .fetch_add(1, Ordering::Relaxed);
        }
        if r.control_truncated {
            self.counters
                .truncated_control
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Some(dropped) = r.dropped {
            self.counters
                .dropped_by_kernel
                .store(u64::from(dropped), Ordering::Relaxed);
        }
        meta_of(r)
    }
}

/// What `try_recv` reports for what the back end reported.
fn meta_of(r: &RawRecv) -> RecvMeta {
    let segment_size = match r.gro_segment_size {
        Some(size) if size < r.len => size,
        _ => r.len,
    };
    RecvMeta {
        source: addr::unmap(r.source),
        destination_ip: r.destination_ip.map(addr::unmap_ip),
        len: r.len,
        segment_size,
        ecn: r.tos.and_then(EcnCodepoint::from_bits),
        truncated: r.truncated,
    }
}

/// The [`RecvMeta`] that [`UdpSocket::try_recv`] reports for a datagram of `len` bytes with
/// these `msg_flags`, sender address (`name`, a `sockaddr_*` as the kernel writes it) and
/// control messages (`control`, as the kernel writes them; at most 256 bytes are read), decoded
/// by the same code. For fuzzing the receive path without a socket; not a stable API.
#[doc(hidden)]
pub fn decode_recv(name: &[u8], len: usize, flags: i32, control: &[u8]) -> RecvMeta {
    meta_of(&sys::decode_bytes(name, len, flags, control))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(data: &[u8], stride: usize) -> Vec<usize> {
        split_segments(data, stride).map(<[u8]>::len).collect()
    }

    #[test]
    fn splits_gro_buffers() {
        let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        assert_eq!(lens(&data, 1000), [1000, 1000, 500]);
        assert_eq!(lens(&data, 2500), [2500]);
        assert_eq!(lens(&data, 9000), [2500]);
        assert_eq!(lens(&data, 0), [2500]);
        assert_eq!(lens(&[], 1000), [0]);
        let segs: Vec<&[u8]> = split_segments(&data, 1000).collect();
        assert_eq!(segs.concat(), data);
        assert_eq!(split_segments(&data, 1000).len(), 3);
        let meta = RecvMeta {
            len: 2100,
            segment_size: 700,
            ..RecvMeta::default()
        };
        assert_eq!(meta.segment_count(), 3);
        assert_eq!(meta.segments(&data).len(), 3);
        assert_eq!(meta.segments(&data).map(<[u8]>::len).sum::<usize>(), 2100);
    }

    #[test]
    fn ecn_bits() {
        for cp in [EcnCodepoint::Ect0, EcnCodepoint::Ect1, EcnCodepoint::Ce] {
            assert_eq!(
                EcnCodepoint::from_bits(cp.to_bits() | 0b1011_0100),
                Some(cp)
            );
        }
        assert_eq!(EcnCodepoint::from_bits(0b1011_0100), None);
    }
}
