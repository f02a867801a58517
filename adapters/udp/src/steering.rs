//! Steering datagrams to the socket that owns them, in the kernel: a classic BPF program on a
//! `SO_REUSEPORT` group (`SO_ATTACH_REUSEPORT_CBPF`) that returns one byte of the datagram as
//! the index of the socket to deliver to.
//!
//! The byte's position is the caller's (quicksand's core knows where its connection IDs carry
//! the worker index); this module knows only BPF. The kernel falls back to its 4-tuple hash
//! when the program returns an index beyond the group, so datagrams whose byte names no
//! socket are spread as before.

use std::io;

use crate::UdpSocket;

/// Where the byte that names the socket sits, by the datagram's first bit (QUIC: long or
/// short header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteeringRule {
    /// Offset of the byte when the first byte's top bit is set (QUIC long header).
    pub long_offset: u32,
    /// Offset of the byte otherwise (QUIC short header).
    pub short_offset: u32,
}

#[cfg(target_os = "linux")]
mod bpf {
    // Classic BPF opcodes (linux/bpf_common.h): class | size | mode.
    const LD: u16 = 0x00;
    const JMP: u16 = 0x05;
    const RET: u16 = 0x06;
    const B: u16 = 0x10;
    const ABS: u16 = 0x20;
    const JSET: u16 = 0x40;
    const K: u16 = 0x00;
    const A: u16 = 0x10;
    pub const LD_B_ABS: u16 = LD | B | ABS;
    pub const JMP_JSET_K: u16 = JMP | JSET | K;
    pub const RET_A: u16 = RET | A;
    /// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h).
    pub const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

    pub fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }
}

impl SteeringRule {
    /// The program: load byte 0; if its top bit is set, return the byte at `long_offset`,
    /// else the byte at `short_offset`. (A load past the datagram's end makes the program
    /// return 0: such a datagram is too short to be anything but garbage.)
    #[cfg(target_os = "linux")]
    fn program(&self) -> [libc::sock_filter; 6] {
        use bpf::*;
        [
            insn(LD_B_ABS, 0, 0, 0),
            insn(JMP_JSET_K, 0, 2, 0x80),
            insn(LD_B_ABS, 0, 0, self.long_offset),
            insn(RET_A, 0, 0, 0),
            insn(LD_B_ABS, 0, 0, self.short_offset),
            insn(RET_A, 0, 0, 0),
        ]
    }
}

impl UdpSocket {
    /// Attaches `rule` to this socket's `SO_REUSEPORT` group (once for the group: the kernel
    /// keeps one program per group). The socket's index in the group is the order the sockets
    /// were bound in. `Unsupported` on systems other than Linux.
    pub fn steer_reuseport_group(&self, rule: SteeringRule) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut program = rule.program();
            let fprog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_mut_ptr(),
            };
            // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies it.
            let rc = unsafe {
                libc::setsockopt(
                    self.inner.as_raw_fd(),
                    libc::SOL_SOCKET,
                    bpf::SO_ATTACH_REUSEPORT_CBPF,
                    (&fprog as *const libc::sock_fprog).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = rule;
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SO_ATTACH_REUSEPORT_CBPF is Linux only",
            ))
        }
    }
}
