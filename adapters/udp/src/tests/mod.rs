//! Loopback tests of the socket layer, and the fault injection they use.
//!
//! Every wait is a readiness poll bounded by a deadline; no test sleeps to decide an outcome.

mod activation;
mod basic;
mod offload;
mod steering;

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::send::{carries_gso, carries_tos};
use crate::sys::SendFlags;
use crate::{OutgoingDatagram, RecvMeta, UdpSocket, UdpSocketConfig, BATCH_SIZE, RECV_BUFFER_LEN};

/// Failures injected into a socket's sends, consumed as they fire.
#[derive(Default)]
pub(crate) struct Faults {
    /// Fail this many sends whose first message carries `UDP_SEGMENT`, with `gso_errno`.
    pub(crate) gso_failures: AtomicUsize,
    pub(crate) gso_errno: AtomicI32,
    /// Fail this many sends whose first message carries a TOS control message, with `EINVAL`.
    pub(crate) tos_failures: AtomicUsize,
    /// Fail this many sends of any kind, with `any_errno`.
    pub(crate) any_failures: AtomicUsize,
    pub(crate) any_errno: AtomicI32,
    /// When set, messages the socket still takes before it reports `WouldBlock` once.
    pub(crate) budget: Mutex<Option<usize>>,
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
        .is_ok()
}

impl Faults {
    /// Decides what a send of `datagrams` does: fail, or go ahead with a prefix of them.
    pub(crate) fn intercept<'d, 'a>(
        &self,
        datagrams: &'d [OutgoingDatagram<'a>],
        flags: SendFlags,
    ) -> io::Result<&'d [OutgoingDatagram<'a>]> {
        let Some(first) = datagrams.first() else {
            return Ok(datagrams);
        };
        if carries_gso(first, flags) && take_one(&self.gso_failures) {
            let errno = self.gso_errno.load(Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(errno));
        }
        if carries_tos(first, flags) && take_one(&self.tos_failures) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if take_one(&self.any_failures) {
            let errno = self.any_errno.load(Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(errno));
        }
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        match *budget {
            Some(0) => {
                *budget = None;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Some(left) => {
                let n = left.min(datagrams.len());
                *budget = Some(left - n);
                Ok(&datagrams[..n])
            }
            None => Ok(datagrams),
        }
    }

    pub(crate) fn fail_gso(&self, times: usize, errno: i32) {
        self.gso_errno.store(errno, Ordering::Relaxed);
        self.gso_failures.store(times, Ordering::Relaxed);
    }

    pub(crate) fn fail_any(&self, times: usize, errno: i32) {
        self.any_errno.store(errno, Ordering::Relaxed);
        self.any_failures.store(times, Ordering::Relaxed);
    }
}

/// Whether the Linux back end is built (some capabilities are then certain).
fn linux_backend() -> bool {
    cfg!(qs_linux)
}

/// How long any test waits for traffic before failing.
const DEADLINE: Duration = Duration::from_secs(5);

fn bind(addr: &str, config: &UdpSocketConfig) -> UdpSocket {
    let addr: SocketAddr = addr.parse().expect("test address");
    UdpSocket::bind(addr, config).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

/// Binds an IPv6 socket, or `None` (with a note) when the machine has no IPv6 loopback.
fn bind_v6(addr: &str, config: &UdpSocketConfig) -> Option<UdpSocket> {
    let parsed: SocketAddr = addr.parse().expect("test address");
    match UdpSocket::bind(parsed, config) {
        Ok(s) => Some(s),
        Err(e)
            if e.kind() == io::ErrorKind::AddrNotAvailable
                || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            eprintln!("IPv6 unavailable here ({e}); skipping the IPv6 part");
            None
        }
        Err(e) => panic!("bind {addr}: {e}"),
    }
}

fn local(sock: &UdpSocket) -> SocketAddr {
    sock.local_addr().expect("local_addr")
}

/// Waits (bounded) until the socket is ready for `events`.
fn wait_ready(sock: &UdpSocket, events: libc::c_short, deadline: Instant) {
    let now = Instant::now();
    assert!(now < deadline, "timed out waiting for the socket");
    let ms = (deadline - now).as_millis().min(100) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let _ = unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Sends a datagram completely, waiting for writability as needed.
fn send(sock: &UdpSocket, datagram: OutgoingDatagram<'_>) {
    let mut d = datagram;
    let deadline = Instant::now() + DEADLINE;
    loop {
        match sock.try_send(&mut d) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_ready(sock, libc::POLLOUT, deadline)
            }
            Err(e) => panic!(
                "send of {} bytes to {}: {e}",
                d.contents.len(),
                d.destination
            ),
        }
    }
}

/// One receive buffer's worth: its metadata and bytes.
#[derive(Debug)]
struct Received {
    meta: RecvMeta,
    data: Vec<u8>,
}

impl Received {
    fn segments(&self) -> Vec<Vec<u8>> {
        self.meta.segments(&self.data).map(<[u8]>::to_vec).collect()
    }
}

/// Receives until at least `segments` datagrams (GRO segments counted singly) arrived, with
/// buffers of `buf_len` bytes. Also returns the largest number of buffers one call filled.
fn recv_segments(sock: &UdpSocket, segments: usize, buf_len: usize) -> (Vec<Received>, usize) {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut got = 0;
    let mut best_batch = 0;
    let mut storage = vec![vec![0u8; buf_len]; BATCH_SIZE];
    let mut meta = [RecvMeta::default(); BATCH_SIZE];
    while got < segments {
        let mut bufs: Vec<IoSliceMut<'_>> =
            storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        match sock.try_recv(&mut bufs, &mut meta) {
            Ok(n) => {
                assert!(n > 0 && n <= BATCH_SIZE);
                best_batch = best_batch.max(n);
                for (m, buf) in meta[..n].iter().zip(&storage) {
                    got += m.segment_count();
                    out.push(Received {
                        meta: *m,
                        data: buf[..m.len].to_vec(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    panic!("timed out: {got} of {segments} datagrams arrived: {out:?}");
                }
                wait_ready(sock, libc::POLLIN, deadline);
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    (out, best_batch)
}

/// Receives exactly one datagram into a full-size buffer.
fn recv_one(sock: &UdpSocket) -> Received {
    let (mut got, _) = recv_segments(sock, 1, RECV_BUFFER_LEN);
    assert_eq!(got.len(), 1, "expected one datagram: {got:?}");
    got.remove(0)
}

/// Asserts that nothing more is queued right now.
fn assert_empty(sock: &UdpSocket) {
    let mut buf = vec![0u8; RECV_BUFFER_LEN];
    let mut meta = [RecvMeta::default()];
    let r = sock.try_recv(&mut [IoSliceMut::new(&mut buf)], &mut meta);
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("expected an empty socket, got {other:?} {meta:?}"),
    }
}

/// A recognisable datagram: a 2-byte sequence number, then bytes derived from it.
fn payload(seq: u16, len: usize) -> Vec<u8> {
    assert!(len >= 2);
    let mut v = seq.to_be_bytes().to_vec();
    v.extend((2..len).map(|i| (i as u16).wrapping_mul(31).wrapping_add(seq) as u8));
    v
}

/// `count` recognisable datagrams of `segment` bytes (the last `last` bytes), back to back.
fn batch(count: u16, segment: usize, last: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let parts: Vec<Vec<u8>> = (0..count)
        .map(|i| payload(i, if i + 1 == count { last } else { segment }))
        .collect();
    (parts.concat(), parts)
}

/// Checks that `received` holds exactly `expected`, in any order, each once.
fn assert_same_datagrams(mut received: Vec<Vec<u8>>, mut expected: Vec<Vec<u8>>) {
    received.sort();
    expected.sort();
    assert_eq!(received.len(), expected.len(), "datagram count");
    for (r, e) in received.iter().zip(&expected) {
        assert!(
            r == e,
            "datagram mismatch: got {} bytes, want {}",
            r.len(),
            e.len()
        );
    }
}

fn no_offloads() -> UdpSocketConfig {
    UdpSocketConfig {
        gso: false,
        gro: false,
        ..UdpSocketConfig::default()
    }
}
