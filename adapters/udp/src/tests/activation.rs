//! Socket activation: descriptors handed over the way systemd hands them (`LISTEN_PID` naming
//! this process, `LISTEN_FDS` counting consecutive descriptors) become the sockets, once.

use std::os::fd::AsRawFd;

use crate::activation::inherited;
use crate::systemd_sockets;

/// A descriptor number far above what the test harness uses, to dup sockets onto.
const HIGH_FD: i32 = 900;

#[test]
fn handed_over_descriptors_become_the_sockets_once() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pid = std::process::id();
    let own = pid.to_string();
    // SAFETY: dup2 onto descriptors this test owns from here on.
    unsafe {
        assert!(libc::dup2(socket.as_raw_fd(), HIGH_FD) >= 0);
        assert!(libc::dup2(tcp.as_raw_fd(), HIGH_FD + 2) >= 0);
    }

    // Not for us: another process's LISTEN_PID, or nothing set.
    let other = (pid + 1).to_string();
    assert!(inherited(Some(&other), Some("1"), pid, HIGH_FD)
        .unwrap()
        .is_empty());
    assert!(inherited(None, Some("1"), pid, HIGH_FD).unwrap().is_empty());
    let bad = inherited(Some(&own), Some("one"), pid, HIGH_FD).unwrap_err();
    assert_eq!(bad.kind(), std::io::ErrorKind::InvalidInput);

    // A descriptor that is not open, or not a datagram socket: refused, nothing taken.
    let closed = inherited(Some(&own), Some("2"), pid, HIGH_FD).unwrap_err();
    assert!(closed.to_string().contains("901"), "{closed}");
    let stream = inherited(Some(&own), Some("1"), pid, HIGH_FD + 2).unwrap_err();
    assert!(
        stream.to_string().contains("not a datagram socket"),
        "{stream}"
    );

    let sockets = inherited(Some(&own), Some("1"), pid, HIGH_FD).unwrap();
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].local_addr().unwrap(), addr);
    let again = inherited(Some(&own), Some("1"), pid, HIGH_FD).unwrap_err();
    assert_eq!(
        again.kind(),
        std::io::ErrorKind::AlreadyExists,
        "taken once only"
    );
    // SAFETY: HIGH_FD + 2 is ours (dup2 above); nothing else closes it.
    unsafe { libc::close(HIGH_FD + 2) };
}

#[test]
fn a_process_that_was_not_activated_finds_no_sockets() {
    // The test harness is not socket-activated.
    if std::env::var_os("LISTEN_PID").is_none() {
        assert!(systemd_sockets().unwrap().is_empty());
    }
}
