//! GSO / GRO, the run-time fallbacks, ECN, `SO_RXQ_OVFL`, `SO_TXTIME`.

use std::io;
use std::time::{Duration, Instant};

use super::*;
use crate::{
    instant_to_monotonic_ns, monotonic_now_ns, EcnCodepoint, OutgoingDatagram, UdpSocket,
    UdpSocketConfig, GSO_MAX_SEGMENTS, GSO_STRIKES,
};

fn gso_datagram<'a>(sock: &UdpSocket, contents: &'a [u8], segment: usize) -> OutgoingDatagram<'a> {
    OutgoingDatagram {
        segment_size: Some(segment),
        ..OutgoingDatagram::new(local(sock), contents)
    }
}

#[test]
fn gso_batch_arrives_as_separate_datagrams() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind("127.0.0.1:0", &no_offloads());
    if linux_backend() {
        assert_eq!(
            sender.gso_segments(),
            GSO_MAX_SEGMENTS,
            "GSO probe on Linux"
        );
    }
    let (contents, parts) = batch(10, 1200, 500);
    send(&sender, gso_datagram(&receiver, &contents, 1200));
    let (got, _) = recv_segments(&receiver, 10, 2048);
    assert_eq!(got.len(), 10, "no GRO: one buffer per segment");
    assert!(got.iter().all(|r| r.meta.segment_size == r.meta.len));
    assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
    assert_empty(&receiver);
    assert!(!sender.stats().gso_disabled);
}

#[test]
fn gso_batch_into_gro_receiver_splits_back() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind("127.0.0.1:0", &UdpSocketConfig::default());
    if linux_backend() {
        assert_eq!(
            receiver.gro_segments(),
            crate::GRO_MAX_SEGMENTS,
            "GRO probe on Linux"
        );
    }
    // Largest batch one message may carry: 46 * 1400 bytes fits the 65 507-byte limit.
    for (count, segment, last) in [(10u16, 1200, 500), (46, 1400, 1400)] {
        let (contents, parts) = batch(count, segment, last);
        send(&sender, gso_datagram(&receiver, &contents, segment));
        let (got, _) = recv_segments(&receiver, parts.len(), receiver.recv_buffer_len());
        eprintln!(
            "{count} segments of {segment} arrived in {} buffer(s), segment sizes {:?}",
            got.len(),
            got.iter().map(|r| r.meta.segment_size).collect::<Vec<_>>()
        );
        if linux_backend() && sender.gso_segments() > 1 && receiver.gro_segments() > 1 {
            // Loopback hands the GSO batch to a GRO socket without segmenting it.
            assert!(got.len() < parts.len(), "GRO coalesced nothing");
        }
        for r in &got {
            assert!(!r.meta.truncated);
            if r.meta.segment_count() > 1 {
                assert_eq!(r.meta.segment_size, segment, "GRO stride");
            }
        }
        assert_same_datagrams(got.iter().flat_map(Received::segments).collect(), parts);
        assert_empty(&receiver);
    }
}

#[test]
fn more_segments_than_one_send_carries() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind(
        "127.0.0.1:0",
        &UdpSocketConfig {
            recv_buffer_size: Some(1 << 22),
            ..no_offloads()
        },
    );
    // 100 segments exceed UDP_MAX_SEGMENTS; 64 * 1400 bytes exceed one send's payload.
    for (count, segment) in [(100u16, 200), (64, 1400)] {
        let (contents, parts) = batch(count, segment, segment / 2);
        send(&sender, gso_datagram(&receiver, &contents, segment));
        let (got, _) = recv_segments(&receiver, parts.len(), 2048);
        assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
    }
    assert_empty(&receiver);
    assert!(!sender.stats().gso_disabled);
}

/// A kernel that accepts `UDP_SEGMENT` but fails every GSO send with `errno`.
fn gso_fallback(errno: i32) {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind("127.0.0.1:0", &no_offloads());
    let had_gso = sender.gso_segments() > 1;
    sender.faults.fail_gso(usize::MAX, errno);
    // Every batch is delivered whole; GSO goes off after `GSO_STRIKES` failures in a row.
    for strike in 1..=GSO_STRIKES {
        let (contents, parts) = batch(8, 1000, 1000);
        send(&sender, gso_datagram(&receiver, &contents, 1000));
        let (got, _) = recv_segments(&receiver, 8, 2048);
        assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
        if had_gso && strike < GSO_STRIKES {
            assert!(
                sender.gso_segments() > 1,
                "GSO still on after {strike} failure(s)"
            );
        }
    }
    assert_eq!(sender.gso_segments(), 1);
    assert_eq!(sender.capabilities().gso_max_segments, 1);
    assert_eq!(sender.stats().gso_disabled, had_gso);
    if !had_gso {
        return;
    }
    // Later batches go out one segment per message without trying GSO again.
    let (contents, parts) = batch(5, 700, 100);
    send(&sender, gso_datagram(&receiver, &contents, 700));
    let (got, _) = recv_segments(&receiver, 5, 2048);
    assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
    assert_empty(&receiver);
}

#[test]
fn gso_eio_falls_back_without_loss() {
    gso_fallback(libc::EIO);
}

#[test]
fn gso_einval_falls_back_without_loss() {
    gso_fallback(libc::EINVAL);
}

/// One destination's GSO sends failing (its path MTU shrank) between successful ones to others:
/// each failing batch is still delivered, and GSO stays on.
#[test]
fn gso_failures_between_successes_keep_gso_on() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    if sender.gso_segments() <= 1 {
        eprintln!("no GSO on this machine: nothing to keep on");
        return;
    }
    let receiver = bind("127.0.0.1:0", &no_offloads());
    for _ in 0..2 * GSO_STRIKES {
        // One GSO send fails (and is rescued one segment per send), the next one works.
        sender.faults.fail_gso(1, libc::EINVAL);
        for _ in 0..2 {
            let (contents, parts) = batch(4, 900, 900);
            send(&sender, gso_datagram(&receiver, &contents, 900));
            let (got, _) = recv_segments(&receiver, 4, 2048);
            assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
        }
    }
    assert!(sender.gso_segments() > 1, "GSO was switched off");
    assert!(!sender.stats().gso_disabled);
}

#[test]
fn gso_not_blamed_for_unrelated_errors() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind("127.0.0.1:0", &no_offloads());
    let gso = sender.gso_segments();
    // Both the GSO send and the one-segment retry fail: the fault is not GSO's. (Without GSO
    // there is no retry, so one failure.)
    sender
        .faults
        .fail_any(if gso > 1 { 2 } else { 1 }, libc::EINVAL);
    let (contents, parts) = batch(4, 500, 500);
    let mut d = gso_datagram(&receiver, &contents, 500);
    let err = sender.try_send(&mut d).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(d.contents.len(), contents.len(), "nothing was sent");
    assert_eq!(sender.gso_segments(), gso, "GSO stays on");
    assert!(!sender.stats().gso_disabled);
    send(&sender, d);
    let (got, _) = recv_segments(&receiver, 4, 2048);
    assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
}

#[test]
fn split_send_resumes_after_would_block() {
    let sender = bind("127.0.0.1:0", &no_offloads());
    let receiver = bind("127.0.0.1:0", &no_offloads());
    assert_eq!(sender.capabilities().gso_max_segments, 1);
    let (contents, parts) = batch(6, 300, 300);
    let mut d = gso_datagram(&receiver, &contents, 300);
    *sender.faults.budget.lock().unwrap() = Some(2);
    let err = sender.try_send(&mut d).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(
        d.contents,
        &contents[600..],
        "advanced past the 2 segments sent"
    );
    sender.try_send(&mut d).expect("retry");
    let (got, _) = recv_segments(&receiver, 6, 2048);
    assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
    assert_empty(&receiver);

    // A batch stops where the socket filled up and resumes there.
    let parts: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 50)).collect();
    let to = local(&receiver);
    let mut ds: Vec<_> = parts.iter().map(|p| OutgoingDatagram::new(to, p)).collect();
    *sender.faults.budget.lock().unwrap() = Some(1);
    assert_eq!(sender.try_send_batch(&mut ds).unwrap(), 1);
    let err = sender.try_send_batch(&mut ds[1..]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(sender.try_send_batch(&mut ds[1..]).unwrap(), 2);
    let (got, _) = recv_segments(&receiver, 3, 2048);
    assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
    assert_empty(&receiver);
}

fn ecn_roundtrip(a: &UdpSocket, b: &UdpSocket) {
    let marks = a.capabilities().ecn && b.capabilities().ecn;
    if linux_backend() {
        assert!(marks, "ECN on Linux loopback");
    }
    for (i, cp) in [EcnCodepoint::Ect0, EcnCodepoint::Ect1, EcnCodepoint::Ce]
        .into_iter()
        .enumerate()
    {
        let msg = payload(i as u16, 64);
        send(
            a,
            OutgoingDatagram {
                ecn: Some(cp),
                dscp: Some(if i == 0 { 46 } else { 0 }),
                ..OutgoingDatagram::new(local(b), &msg)
            },
        );
        let got = recv_one(b);
        assert_eq!(got.data, msg);
        assert_eq!(got.meta.ecn, marks.then_some(cp));
    }
    // A GSO batch carries its mark on every segment.
    let (contents, parts) = batch(3, 400, 400);
    send(
        a,
        OutgoingDatagram {
            ecn: Some(EcnCodepoint::Ect1),
            ..gso_datagram(b, &contents, 400)
        },
    );
    let (got, _) = recv_segments(b, 3, 65_535);
    assert!(got
        .iter()
        .all(|r| r.meta.ecn == marks.then_some(EcnCodepoint::Ect1)));
    assert_same_datagrams(got.iter().flat_map(Received::segments).collect(), parts);
}

#[test]
fn ecn_marks_roundtrip_v4() {
    let cfg = UdpSocketConfig::default();
    ecn_roundtrip(&bind("127.0.0.1:0", &cfg), &bind("127.0.0.1:0", &cfg));
}

#[test]
fn ecn_marks_roundtrip_v6() {
    let cfg = UdpSocketConfig::default();
    if let (Some(a), Some(b)) = (bind_v6("[::1]:0", &cfg), bind_v6("[::1]:0", &cfg)) {
        ecn_roundtrip(&a, &b);
    }
}

#[test]
fn ecn_off_by_config() {
    let cfg = UdpSocketConfig {
        ecn: false,
        ..UdpSocketConfig::default()
    };
    let a = bind("127.0.0.1:0", &cfg);
    let b = bind("127.0.0.1:0", &UdpSocketConfig::default());
    assert!(!a.capabilities().ecn);
    let msg = payload(1, 10);
    send(
        &a,
        OutgoingDatagram {
            ecn: Some(EcnCodepoint::Ce),
            ..OutgoingDatagram::new(local(&b), &msg)
        },
    );
    assert_eq!(
        recv_one(&b).meta.ecn,
        None,
        "marks are not written without ECN"
    );
}

#[test]
fn rejected_ecn_is_switched_off_without_loss() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind("127.0.0.1:0", &UdpSocketConfig::default());
    if !sender.capabilities().ecn {
        assert!(!linux_backend());
        return;
    }
    let gso = sender.gso_segments();
    sender
        .faults
        .tos_failures
        .store(usize::MAX, Ordering::Relaxed);
    let (contents, parts) = batch(4, 500, 200);
    send(
        &sender,
        OutgoingDatagram {
            ecn: Some(EcnCodepoint::Ect0),
            ..gso_datagram(&receiver, &contents, 500)
        },
    );
    let (got, _) = recv_segments(&receiver, 4, 65_535);
    assert!(
        got.iter().all(|r| r.meta.ecn.is_none()),
        "sent without the mark"
    );
    assert_same_datagrams(got.iter().flat_map(Received::segments).collect(), parts);
    assert!(!sender.capabilities().ecn);
    assert!(sender.stats().ecn_disabled);
    assert_eq!(sender.gso_segments(), gso, "GSO was not at fault");
    assert!(!sender.stats().gso_disabled);
}

#[test]
fn gso_and_ecn_both_broken() {
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let receiver = bind("127.0.0.1:0", &no_offloads());
    sender.faults.fail_gso(usize::MAX, libc::EINVAL);
    sender
        .faults
        .tos_failures
        .store(usize::MAX, Ordering::Relaxed);
    for _ in 0..GSO_STRIKES {
        let (contents, parts) = batch(5, 300, 300);
        send(
            &sender,
            OutgoingDatagram {
                ecn: Some(EcnCodepoint::Ect0),
                ..gso_datagram(&receiver, &contents, 300)
            },
        );
        let (got, _) = recv_segments(&receiver, 5, 2048);
        assert_same_datagrams(got.iter().map(|r| r.data.clone()).collect(), parts);
    }
    assert_eq!(sender.gso_segments(), 1);
    assert!(!sender.capabilities().ecn);
    assert_empty(&receiver);
}

#[test]
fn kernel_drops_are_counted() {
    let receiver = bind(
        "127.0.0.1:0",
        &UdpSocketConfig {
            recv_buffer_size: Some(1),
            ..no_offloads()
        },
    );
    let sender = bind("127.0.0.1:0", &UdpSocketConfig::default());
    let to = local(&receiver);
    let filler = payload(0, 1000);
    for _ in 0..200 {
        send(&sender, OutgoingDatagram::new(to, &filler));
    }
    // Drain, then send markers until one gets in: it carries the drop count.
    let deadline = Instant::now() + DEADLINE;
    let marker = payload(1, 20);
    let mut buf = vec![0u8; 2048];
    let mut meta = [RecvMeta::default()];
    'outer: loop {
        assert!(Instant::now() < deadline, "no marker got through");
        send(&sender, OutgoingDatagram::new(to, &marker));
        wait_ready(&receiver, libc::POLLIN, deadline);
        while let Ok(1) = receiver.try_recv(&mut [IoSliceMut::new(&mut buf)], &mut meta) {
            if buf[..meta[0].len] == marker[..] {
                break 'outer;
            }
        }
    }
    let dropped = receiver.dropped_by_kernel();
    eprintln!("kernel reported {dropped} drops");
    if receiver.capabilities().rxq_ovfl {
        assert!(
            dropped > 0,
            "200 datagrams into a minimal buffer must drop some"
        );
        assert!(dropped <= 201);
        assert_eq!(receiver.stats().dropped_by_kernel, dropped);
    } else {
        assert!(!linux_backend());
        assert_eq!(dropped, 0);
    }
}

#[test]
fn txtime_datagrams_are_delivered() {
    let cfg = UdpSocketConfig {
        txtime: true,
        ..UdpSocketConfig::default()
    };
    let sender = bind("127.0.0.1:0", &cfg);
    let receiver = bind("127.0.0.1:0", &UdpSocketConfig::default());
    assert!(!receiver.capabilities().txtime, "off by default");
    if linux_backend() {
        assert!(sender.capabilities().txtime, "SO_TXTIME on Linux");
    }
    let (contents, parts) = batch(3, 200, 200);
    send(
        &sender,
        OutgoingDatagram {
            txtime: Some(instant_to_monotonic_ns(Instant::now())),
            ..gso_datagram(&receiver, &contents, 200)
        },
    );
    let (got, _) = recv_segments(&receiver, 3, 65_535);
    assert_same_datagrams(got.iter().flat_map(Received::segments).collect(), parts);
}

#[test]
fn instant_conversion_to_monotonic() {
    let ahead = Duration::from_millis(10);
    let before = monotonic_now_ns();
    let at = instant_to_monotonic_ns(Instant::now() + ahead);
    let after = monotonic_now_ns();
    let ahead_ns = ahead.as_nanos() as u64;
    // Exact on Linux (Instant reads CLOCK_MONOTONIC); a millisecond of slack elsewhere.
    let slack = if cfg!(target_os = "linux") {
        0
    } else {
        1_000_000
    };
    assert!(at + slack >= before + ahead_ns, "{at} < {before} + 10ms");
    assert!(at <= after + ahead_ns + slack, "{at} > {after} + 10ms");
    if let Some(earlier) = Instant::now().checked_sub(Duration::from_millis(5)) {
        let past = instant_to_monotonic_ns(earlier);
        assert!(past + 5_000_000 <= monotonic_now_ns() + slack);
    }
    assert!(monotonic_now_ns() >= after);
}
