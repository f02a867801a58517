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
    inherited(
        pid.as_deref(),
        count.as_deref(),
        std::process::id(),
        FIRST_FD,
    )
}

/// The descriptors `first_fd ..` that `listen_pid`/`listen_fds` (the environment's values)
/// hand to process `own_pid`; see [`systemd_sockets`].
pub(crate) fn inherited(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    own_pid: u32,
    first_fd: RawFd,
) -> io::Result<Vec<std::net::UdpSocket>> {
    let (Some(pid), Some(count)) = (listen_pid, listen_fds) else {
        return Ok(Vec::new());
    };
    if pid.trim().parse::<u32>().ok() != Some(own_pid) {
        return Ok(Vec::new());
    }
    let count: RawFd = count.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count:?} is not a count"),
        )
    })?;
    let fds = first_fd..first_fd.saturating_add(count.max(0));
    // Check them all before owning any: a refusal leaves every descriptor as it was.
    for fd in fds.clone() {
        check_datagram_socket(fd)?;
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the socket-activation descriptors were taken already",
        ));
    }
    // SAFETY: the service manager passed these descriptors to this process (LISTEN_PID is
    // ours), they are datagram sockets (checked above), and TAKEN makes this the only owner.
    Ok(fds.map(|fd| unsafe { take(fd) }).collect())
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
    Ok(())
}

/// Owns `fd`, which is not inherited further by processes this one starts.
///
/// # Safety
/// `fd` must be an open datagram socket nothing else owns.
unsafe fn take(fd: RawFd) -> std::net::UdpSocket {
    // SAFETY: plain fcntl calls on an open descriptor, then ownership per the contract.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
        std::net::UdpSocket::from_raw_fd(fd)
    }
}
