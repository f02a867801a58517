//! Socket activation: a child process started the way systemd starts a service (the socket
//! as descriptor 3, `LISTEN_PID`/`LISTEN_FDS` naming it) finds the socket.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::systemd_sockets;

const CHILD: &str = "QUICKSAND_ACTIVATION_EXPECT";

#[test]
fn a_socket_activated_process_takes_its_socket_once() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let fd = socket.as_raw_fd();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("/bin/sh");
    child
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --ignored --exact tests::activation::activated_child")
        .arg(&exe)
        .env(CHILD, addr.to_string());
    // SAFETY: dup2 and fcntl are async-signal-safe; they run in the forked child only.
    unsafe {
        child.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = libc::fcntl(3, libc::F_GETFD);
            libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let out = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the activated child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs only as the child of the test above.
#[test]
#[ignore = "the child half of a_socket_activated_process_takes_its_socket_once"]
fn activated_child() {
    let want = std::env::var(CHILD).expect("started by the parent test");
    let sockets = systemd_sockets().expect("the inherited socket");
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].local_addr().unwrap().to_string(), want);
    let again = systemd_sockets().unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
}

#[test]
fn a_process_that_was_not_activated_finds_no_sockets() {
    // The test harness is not socket-activated (or LISTEN_PID names another process).
    if std::env::var_os(CHILD).is_none() {
        assert!(systemd_sockets().unwrap().is_empty());
    }
}
