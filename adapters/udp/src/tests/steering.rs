//! Kernel steering of a `SO_REUSEPORT` group: the byte the rule names picks the socket.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::{SteeringRule, UdpSocket, UdpSocketConfig};

fn group(count: usize) -> (SocketAddr, Vec<std::net::UdpSocket>) {
    let mut addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut out = Vec::new();
    for _ in 0..count {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_port(true).unwrap();
        s.bind(&addr.into()).unwrap();
        addr = s.local_addr().unwrap().as_socket().unwrap();
        let s: std::net::UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        out.push(s);
    }
    (addr, out)
}

/// Which socket of `sockets` received `payload` (waiting up to a second for it).
fn receiver(sockets: &[std::net::UdpSocket], payload: &[u8]) -> Option<usize> {
    let mut buf = [0u8; 64];
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        for (i, s) in sockets.iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            while let Ok(n) = s.recv(&mut buf) {
                if &buf[..n] == payload {
                    return Some(i);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

#[test]
fn the_named_byte_picks_the_socket() {
    let (addr, sockets) = group(4);
    let first =
        UdpSocket::from_std(sockets[0].try_clone().unwrap(), &UdpSocketConfig::default()).unwrap();
    first
        .steer_reuseport_group(SteeringRule {
            long_offset: 7,
            short_offset: 2,
        })
        .unwrap();
    // Several client ports, so the kernel's hash alone would spread them.
    for port_try in 0..8u8 {
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for want in 0..4u8 {
            let short = [0x40, 0xee, want, port_try, 1];
            client.send_to(&short, addr).unwrap();
            assert_eq!(
                receiver(&sockets, &short),
                Some(want as usize),
                "short header"
            );
            let mut long = [0u8; 12];
            long[0] = 0xc0;
            long[7] = want;
            long[8] = port_try;
            client.send_to(&long, addr).unwrap();
            assert_eq!(
                receiver(&sockets, &long),
                Some(want as usize),
                "long header"
            );
        }
    }
    // A byte naming no socket: the kernel's hash picks one; the datagram is not lost.
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stray = [0x40, 0xee, 200, 9, 9];
    client.send_to(&stray, addr).unwrap();
    assert!(receiver(&sockets, &stray).is_some());
}
