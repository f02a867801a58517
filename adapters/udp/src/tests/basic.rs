//! Round trips, batching, addresses, truncation, `SO_REUSEPORT`.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;
use crate::{EcnCodepoint, OutgoingDatagram, RecvMeta, UdpSocket, UdpSocketConfig};

fn roundtrip(a: &UdpSocket, b: &UdpSocket) {
    let msg = payload(7, 1200);
    send(a, OutgoingDatagram::new(local(b), &msg));
    let got = recv_one(b);
    assert_eq!(got.data, msg);
    assert_eq!(got.meta.source, local(a));
    assert_eq!(got.meta.len, msg.len());
    assert_eq!(got.meta.segment_size, msg.len());
    assert!(!got.meta.truncated);
    assert_eq!(got.meta.ecn, None, "no mark was sent");
    // And back.
    let reply = payload(8, 33);
    send(b, OutgoingDatagram::new(got.meta.source, &reply));
    let back = recv_one(a);
    assert_eq!(back.data, reply);
    assert_eq!(back.meta.source, local(b));
}

#[test]
fn roundtrip_v4() {
    let cfg = UdpSocketConfig::default();
    let a = bind("127.0.0.1:0", &cfg);
    let b = bind("127.0.0.1:0", &cfg);
    roundtrip(&a, &b);
    let caps = a.capabilities();
    assert!(!caps.dual_stack);
    assert!(caps.recv_buffer_size > 0 && caps.send_buffer_size > 0);
}

#[test]
fn capabilities_are_reported() {
    let v4 = bind("127.0.0.1:0", &UdpSocketConfig::default());
    eprintln!("IPv4 socket: {:?}", v4.capabilities());
    let txtime = UdpSocketConfig {
        txtime: true,
        ..UdpSocketConfig::default()
    };
    if let Some(v6) = bind_v6(
        "[::]:0",
        &UdpSocketConfig {
            ipv6_only: Some(false),
            ..txtime
        },
    ) {
        eprintln!("dual-stack IPv6 socket: {:?}", v6.capabilities());
    }
    let caps = v4.capabilities();
    if linux_backend() {
        assert!(caps.gso_max_segments > 1 && caps.gro_segments > 1);
        assert!(caps.pktinfo && caps.ecn && caps.rxq_ovfl && caps.dont_fragment);
    } else {
        assert_eq!((caps.gso_max_segments, caps.gro_segments), (1, 1));
        assert!(!caps.pktinfo && !caps.ecn && !caps.rxq_ovfl && !caps.txtime);
    }
    assert!(!caps.txtime && !caps.reuse_port, "off by default");
    let none = bind(
        "127.0.0.1:0",
        &UdpSocketConfig {
            gso: false,
            gro: false,
            pktinfo: false,
            ecn: false,
            dont_fragment: false,
            ..UdpSocketConfig::default()
        },
    );
    let caps = none.capabilities();
    assert_eq!((caps.gso_max_segments, caps.gro_segments), (1, 1));
    assert!(!caps.pktinfo && !caps.ecn && !caps.dont_fragment);
}

#[test]
fn roundtrip_v6() {
    let cfg = UdpSocketConfig::default();
    let (Some(a), Some(b)) = (bind_v6("[::1]:0", &cfg), bind_v6("[::1]:0", &cfg)) else {
        return;
    };
    roundtrip(&a, &b);
}

#[test]
fn batch_send_and_batch_recv() {
    let cfg = UdpSocketConfig::default();
    let a = bind("127.0.0.1:0", &cfg);
    let b = bind("127.0.0.1:0", &cfg);
    let to = local(&b);
    let parts: Vec<Vec<u8>> = (0..50u16)
        .map(|i| payload(i, 100 + usize::from(i)))
        .collect();
    let mut datagrams: Vec<OutgoingDatagram<'_>> =
        parts.iter().map(|p| OutgoingDatagram::new(to, p)).collect();
    let deadline = Instant::now() + DEADLINE;
    let mut sent = 0;
    let mut calls = 0;
    while sent < datagrams.len() {
        match a.try_send_batch(&mut datagrams[sent..]) {
            Ok(n) => {
                assert!(n >= 1);
                sent += n;
                calls += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_ready(&a, libc::POLLOUT, deadline)
            }
            Err(e) => panic!("send batch: {e}"),
        }
    }
    assert!(calls <= 5, "50 datagrams took {calls} batch calls");
    let (got, best_batch) = recv_segments(&b, parts.len(), 2048);
    assert!(
        best_batch > 1,
        "receive never returned more than one datagram per call"
    );
    assert!(got
        .iter()
        .all(|r| r.meta.source == local(&a) && !r.meta.truncated));
    assert_same_datagrams(got.iter().flat_map(Received::segments).collect(), parts);
    assert_empty(&b);
}

#[test]
fn empty_batches_and_buffers() {
    let a = bind("127.0.0.1:0", &UdpSocketConfig::default());
    assert_eq!(a.try_send_batch(&mut []).unwrap(), 0);
    let err = a.try_recv(&mut [], &mut [RecvMeta::default()]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let mut buf = [0u8; 16];
    let err = a
        .try_recv(&mut [IoSliceMut::new(&mut buf)], &mut [])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn from_std_is_non_blocking() {
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = std_sock.local_addr().unwrap();
    let a = UdpSocket::from_std(std_sock, &UdpSocketConfig::default()).unwrap();
    assert_eq!(local(&a), addr);
    let mut buf = [0u8; 16];
    let err = a
        .try_recv(&mut [IoSliceMut::new(&mut buf)], &mut [RecvMeta::default()])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let b = bind("127.0.0.1:0", &UdpSocketConfig::default());
    roundtrip(&a, &b);
    let back = a.into_std();
    assert_eq!(back.local_addr().unwrap(), addr);
}

#[test]
fn wrong_family_is_invalid_input() {
    let a = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let data = [0u8; 4];
    let mut d = OutgoingDatagram::new("[2001:db8::1]:9".parse().unwrap(), &data);
    let err = a.try_send(&mut d).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let mut d = OutgoingDatagram {
        segment_size: Some(0),
        ..OutgoingDatagram::new(local(&a), &data)
    };
    assert_eq!(
        a.try_send(&mut d).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn truncation_is_reported() {
    let cfg = UdpSocketConfig::default();
    let a = bind("127.0.0.1:0", &cfg);
    let b = bind("127.0.0.1:0", &cfg);
    let big = payload(1, 500);
    send(&a, OutgoingDatagram::new(local(&b), &big));
    let (got, _) = recv_segments(&b, 1, 100);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].meta.truncated,
        "a 500-byte datagram in a 100-byte buffer"
    );
    assert_eq!(got[0].meta.len, 100);
    assert_eq!(got[0].data, big[..100]);
    assert_eq!(b.stats().truncated_datagrams, 1);
    let small = payload(2, 60);
    send(&a, OutgoingDatagram::new(local(&b), &small));
    let (got, _) = recv_segments(&b, 1, 100);
    assert!(!got[0].meta.truncated);
    assert_eq!(got[0].data, small);
    assert_eq!(b.stats().truncated_datagrams, 1);
    assert_eq!(b.stats().truncated_control, 0);
}

#[test]
fn reuse_port_shares_a_port() {
    let shared = UdpSocketConfig {
        reuse_port: true,
        ..UdpSocketConfig::default()
    };
    let first = bind("127.0.0.1:0", &shared);
    let addr = local(&first);
    assert!(first.capabilities().reuse_port);
    let second = UdpSocket::bind(addr, &shared).expect("second SO_REUSEPORT bind");
    assert_eq!(local(&second), addr);
    assert!(second.capabilities().reuse_port);
    let err = UdpSocket::bind(addr, &UdpSocketConfig::default()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string().contains("binding"),
        "error has context: {err}"
    );

    // Flows from many source ports are spread over both; together they get every datagram.
    let senders: Vec<UdpSocket> = (0..16)
        .map(|_| bind("127.0.0.1:0", &UdpSocketConfig::default()))
        .collect();
    let mut expected = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let p = payload(i as u16, 64);
        send(s, OutgoingDatagram::new(addr, &p));
        expected.push(p);
    }
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    while got.len() < expected.len() {
        let mut idle = true;
        for sock in [&first, &second] {
            let mut meta = [RecvMeta::default()];
            if let Ok(1) = sock.try_recv(&mut [IoSliceMut::new(&mut buf)], &mut meta) {
                got.push(buf[..meta[0].len].to_vec());
                idle = false;
            }
        }
        if idle {
            assert!(
                Instant::now() < deadline,
                "only {} of 16 arrived",
                got.len()
            );
            wait_ready(&first, libc::POLLIN, deadline);
        }
    }
    assert_same_datagrams(got, expected);
}

#[test]
fn pktinfo_reports_destination_and_sets_source() {
    let cfg = UdpSocketConfig::default();
    let server = bind("0.0.0.0:0", &cfg);
    let port = local(&server).port();
    let client = bind("127.0.0.1:0", &cfg);
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let msg = payload(3, 40);
    send(&client, OutgoingDatagram::new(to, &msg));
    let got = recv_one(&server);
    assert_eq!(got.data, msg);
    let caps = server.capabilities();
    if !caps.pktinfo {
        assert!(!linux_backend(), "Linux always has IP_PKTINFO");
        assert_eq!(got.meta.destination_ip, None);
        return;
    }
    assert_eq!(
        got.meta.destination_ip,
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    );

    // Reply from another loopback address through the wildcard socket.
    let other_src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let reply = payload(4, 40);
    send(
        &server,
        OutgoingDatagram {
            source_ip: Some(other_src),
            ..OutgoingDatagram::new(got.meta.source, &reply)
        },
    );
    let back = recv_one(&client);
    assert_eq!(back.data, reply);
    assert_eq!(back.meta.source, SocketAddr::new(other_src, port));
}

#[test]
fn pktinfo_v6() {
    let cfg = UdpSocketConfig {
        ipv6_only: Some(true),
        ..UdpSocketConfig::default()
    };
    let (Some(server), Some(client)) = (bind_v6("[::]:0", &cfg), bind_v6("[::1]:0", &cfg)) else {
        return;
    };
    let to: SocketAddr = format!("[::1]:{}", local(&server).port()).parse().unwrap();
    let msg = payload(5, 40);
    send(&client, OutgoingDatagram::new(to, &msg));
    let got = recv_one(&server);
    assert_eq!(got.data, msg);
    let want = server.capabilities().pktinfo.then_some(to.ip());
    assert_eq!(got.meta.destination_ip, want);
    // Source address on an IPv6 send.
    let reply = payload(6, 40);
    send(
        &server,
        OutgoingDatagram {
            source_ip: Some(to.ip()),
            ..OutgoingDatagram::new(got.meta.source, &reply)
        },
    );
    let back = recv_one(&client);
    assert_eq!((back.data, back.meta.source), (reply, to));
}

#[test]
fn dual_stack_maps_ipv4() {
    let cfg = UdpSocketConfig {
        ipv6_only: Some(false),
        ..UdpSocketConfig::default()
    };
    let Some(server) = bind_v6("[::]:0", &cfg) else {
        return;
    };
    let caps = server.capabilities();
    assert!(caps.dual_stack);
    let port = local(&server).port();
    let client = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let marks = caps.ecn && client.capabilities().ecn;
    let msg = payload(9, 100);
    send(
        &client,
        OutgoingDatagram {
            ecn: Some(EcnCodepoint::Ce),
            ..OutgoingDatagram::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), &msg)
        },
    );
    let got = recv_one(&server);
    assert_eq!(got.data, msg);
    assert_eq!(got.meta.source, local(&client), "IPv4 peer shown as IPv4");
    assert_eq!(
        got.meta.ecn,
        marks.then_some(EcnCodepoint::Ce),
        "IPv4 TOS on a v6 socket"
    );
    if caps.pktinfo {
        assert_eq!(
            got.meta.destination_ip,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }

    // Reply to the IPv4 address, with an ECN mark and an IPv4 source address.
    let reply = payload(10, 100);
    send(
        &server,
        OutgoingDatagram {
            ecn: Some(EcnCodepoint::Ect0),
            source_ip: got.meta.destination_ip,
            ..OutgoingDatagram::new(got.meta.source, &reply)
        },
    );
    let back = recv_one(&client);
    assert_eq!(back.data, reply);
    assert_eq!(
        back.meta.source,
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    );
    assert_eq!(back.meta.ecn, marks.then_some(EcnCodepoint::Ect0));

    // The mapped spelling of the destination works too.
    let again = payload(11, 10);
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", local(&client).port())
        .parse()
        .unwrap();
    send(&server, OutgoingDatagram::new(mapped, &again));
    assert_eq!(recv_one(&client).data, again);

    // And an IPv4 socket accepts a v4-mapped destination.
    let to_server: SocketAddr = format!("[::ffff:127.0.0.1]:{port}").parse().unwrap();
    send(&client, OutgoingDatagram::new(to_server, &again));
    let got = recv_one(&server);
    assert_eq!((got.data, got.meta.source), (again.clone(), local(&client)));
}
