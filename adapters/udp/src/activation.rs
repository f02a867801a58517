//! Sockets handed over by a service manager (systemd socket activation).

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The UDP sockets systemd passed to this process (`LISTEN_PID`/`LISTEN_FDS`, as
/// `sd_listen_fds` reads them), in the order of the unit's `ListenDatagram=` lines; empty when
/// the process was not socket-activated.
///
/// The descriptors are owned by the returned sockets, so a second call fails
/// (`AlreadyExists`) rather than handing them out twice. A descriptor that is not a datagram
/// socket is an `InvalidInput` error naming it. The environment variables are left as they
/// are (changing the environment of a running, threaded process is not sound); a child
/// process sees a `LISTEN_PID` that is not its own and ignores them.
pub fn systemd_sockets() -> io::Result<Vec<std::net::UdpSocket>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(Vec::new());
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let count: RawFd = count.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count:?} is not a count"),
        )
    })?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the socket-activation descriptors were taken already",
        ));
    }
    (FIRST_FD..FIRST_FD.saturating_add(count.max(0)))
        .map(|fd| {
            check_datagram_socket(fd)?;
            // SAFETY: systemd passed `fd` to this process (LISTEN_PID is ours), it is a
            // datagram socket (checked above), and TAKEN makes this the only owner.
            Ok(unsafe { std::net::UdpSocket::from_raw_fd(fd) })
        })
        .collect()
}

fn check_datagram_socket(fd: RawFd) -> io::Result<()> {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `kind` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || kind != libc::SOCK_DGRAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited descriptor {fd} is not a datagram socket"),
        ));
    }
    // Not inherited further by processes this one starts.
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
    Ok(())
}
