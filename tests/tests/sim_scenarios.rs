//! The scenario suite on the simulator: the QUIC interop runner's cases and harder ones, each
//! over several seeds (`QUICKSAND_SIM_SEEDS=K` widens the sweep, `QUICKSAND_SEED=N` reruns one),
//! with byte-exact checks. A failing seed prints the command that reproduces it.

use std::time::Duration;

use quicksand_core::{CloseReason, Event, Stage};
use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::many_streams::ManyStreams;
use quicksand_tests::scenario::{self, Reports};
use quicksand_tests::sim::{self, Blackhole, LinkConfig, LossModel, Sim, SimConfig};

quicksand_tests::virtual_clock!();

/// A download of `len` bytes from server to client; true when it completed byte-exact.
fn download(
    config: SimConfig,
    len: u64,
    limit: Duration,
) -> (bool, Sim<BulkTransfer, BulkTransfer>) {
    let mut s = Sim::new(config, move |_| Some(BulkTransfer::new(true, len)));
    s.connect(BulkTransfer::new(false, 0)).unwrap();
    let done = s.run_until(limit, move |s| {
        s.client.conns().any(|c| c.application().is_complete(len))
    });
    (done, s)
}

fn assert_no_corruption(s: &Sim<BulkTransfer, BulkTransfer>) {
    for c in s.client.conns().chain(s.client.finished()) {
        assert_eq!(
            c.application().mismatch,
            None,
            "received bytes differ from the pattern"
        );
    }
}

#[test]
fn handshake() {
    sim::for_each_seed("handshake", 8, |seed| {
        let mut s = Sim::new(SimConfig::new(seed), |_| Some(BulkTransfer::new(true, 0)));
        s.connect(BulkTransfer::new(false, 0)).unwrap();
        assert!(s.run_until(Duration::from_secs(2), |s| s
            .client
            .conns()
            .any(|c| c.stage() == Stage::Running)));
    });
}

#[test]
fn transfers_with_small_flow_control_windows() {
    sim::for_each_seed("transfers_with_small_flow_control_windows", 2, |seed| {
        for mb in [2u64, 3, 5] {
            let mut config = SimConfig::new(seed);
            config.settings.initial_max_data = 64 * 1024;
            config.settings.max_connection_window = 64 * 1024;
            config.settings.initial_max_stream_data_bidi_local = 32 * 1024;
            config.settings.initial_max_stream_data_bidi_remote = 32 * 1024;
            config.settings.max_stream_window = 32 * 1024;
            let (done, s) = download(config, mb * 1_000_000, Duration::from_secs(120));
            assert!(done, "{mb} MB with small windows did not complete");
            assert_no_corruption(&s);
        }
    });
}

#[test]
fn many_small_streams_on_one_connection() {
    sim::for_each_seed("many_small_streams_on_one_connection", 2, |seed| {
        let mut s = Sim::new(SimConfig::new(seed), |_| {
            Some(ManyStreams::new(true, 1999, 32))
        });
        s.connect(ManyStreams::new(false, 1999, 32)).unwrap();
        assert!(s.run_until(Duration::from_secs(60), |s| s
            .server
            .conns()
            .any(|c| c.application().is_complete())));
    });
}

#[test]
fn two_percent_loss_during_two_megabytes() {
    sim::for_each_seed("two_percent_loss_during_two_megabytes", 3, |seed| {
        let config = SimConfig::new(seed).with_link(LinkConfig {
            loss: LossModel::Random(0.02),
            ..Default::default()
        });
        let (done, s) = download(config, 2_000_000, Duration::from_secs(60));
        assert!(done);
        assert_no_corruption(&s);
    });
}

#[test]
fn a_path_mtu_below_the_packet_size_still_delivers() {
    // A tunnel's 1,280-byte MTU: 1,350-byte packets never arrive. Path MTU discovery keeps
    // packets at 1,200 bytes until a larger probe is acknowledged (without it the transfer
    // hung with both ends alive: fuzz/corpus/REGRESSIONS.md).
    sim::for_each_seed(
        "a_path_mtu_below_the_packet_size_still_delivers",
        3,
        |seed| {
            let config = SimConfig::new(seed).with_link(LinkConfig {
                mtu: 1280,
                ..Default::default()
            });
            let (done, s) = download(config, 1_000_000, Duration::from_secs(60));
            assert!(done, "the download did not complete over a 1,280-byte MTU");
            assert_no_corruption(&s);
            let c = s.client.conns().next().expect("the connection lives");
            let pmtu = c.stats().paths[0].pmtu;
            assert!((1200..=1280).contains(&pmtu), "path MTU {pmtu}");
        },
    );
}

#[test]
fn blackholes_during_ten_megabytes() {
    sim::for_each_seed("blackholes_during_ten_megabytes", 2, |seed| {
        let hole = Blackhole {
            start: Duration::from_millis(300),
            on: Duration::from_secs(5),
            off: Duration::from_secs(2),
        };
        let link = LinkConfig {
            bandwidth: Some(100_000_000),
            blackholes: vec![hole],
            ..Default::default()
        };
        let (done, s) = download(
            SimConfig::new(seed).with_link(link),
            10_000_000,
            Duration::from_secs(300),
        );
        assert!(done, "10 MB through 5 s outages did not complete");
        assert_no_corruption(&s);
    });
}

#[test]
fn fifty_connections_at_thirty_percent_bursty_loss() {
    sim::for_each_seed(
        "fifty_connections_at_thirty_percent_bursty_loss",
        2,
        fifty_connections_at_thirty_percent_bursty_loss_with,
    );
}

fn fifty_connections_at_thirty_percent_bursty_loss_with(seed: u64) {
    let mut config = SimConfig::new(seed).with_link(LinkConfig {
        loss: LossModel::bursty(0.3, 3.0),
        ..Default::default()
    });
    // What this asserts: every connection completes eventually; none gets stuck. Not how fast:
    // the probe timeout doubles after every loss (RFC 9002), so the attempts that fit in a time
    // grow with its logarithm. A round trip (a probe and its ACK, or a first flight and its
    // RETRY) fails about 40% of the time here; ten attempts fit in 900 s, and 0.4^10 over 50
    // connections failed about one seed in two hundred (seed 1 did) with any RFC-conformant
    // stack; a probe timeout inflated to a minute by the losses leaves even fewer (seed 302:
    // ten attempts in two days). Virtual time is cheap (a silent connection costs an event per
    // probe): an idle timeout of twelve days (near the largest QUIC allows) leaves room for
    // them, and a RETRY token can age before the client's retransmitted Initial gets through.
    // What the 1,000-seed sweep found on the way:
    // - Seed 5: a client whose Finished was lost waited forever: quiche probed 1-RTT packets
    //   the server could not read yet with every other PTO
    //   (.ci/patches/quiche-0.30.0-pto-after-confirmation.patch; test in quiche_recovery.rs).
    // - Seed 12: after a Retry quiche kept its doubled probe timer, so the Initial with the
    //   token went out minutes later, after the token had expired
    //   (.ci/patches/quiche-0.30.0-pto-reset-on-discard.patch; test in quiche_recovery.rs).
    // - Seeds 10 and 38: the loss model counted bursts in packets only, so on a link carrying
    //   one probe every few minutes a "burst of three packets" lasted half an hour. Bursts now
    //   end after a second of silence (`sim::BURST_MEMORY`).
    let idle_timeout = Duration::from_secs(12 * 24 * 3600);
    config.settings.max_idle_timeout = Some(idle_timeout);
    config.settings.handshake_timeout = None;
    config.server_endpoint.token_lifetimes.retry = Duration::from_secs(300);
    const LEN: u64 = 20_000;
    let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, LEN)));
    for _ in 0..50 {
        s.connect(BulkTransfer::new(false, 0)).unwrap();
    }
    // Completed connections may idle out before the last one completes: count the most
    // ever complete at once, not those left at the end.
    let most = std::cell::Cell::new(0);
    let done = s.run_until(idle_timeout * 2, |s| {
        let complete = s
            .client
            .conns()
            .filter(|c| c.application().is_complete(LEN))
            .count();
        most.set(most.get().max(complete));
        complete == 50
    });
    let stuck: Vec<_> = s
        .client
        .conns()
        .filter(|c| !c.application().is_complete(LEN))
        .map(|c| (c.trace_id().to_string(), c.stage()))
        .collect();
    assert!(
        done,
        "at most {} of 50 complete at once; incomplete: {stuck:?}; closed: {:?}",
        most.get(),
        s.client.closed_reasons()
    );
}

#[test]
fn corruption_during_handshake_and_transfer() {
    sim::for_each_seed("corruption_during_handshake_and_transfer", 3, |seed| {
        let config = SimConfig::new(seed).with_link(LinkConfig {
            corrupt: 0.05,
            ..Default::default()
        });
        let (done, s) = download(config, 1_000_000, Duration::from_secs(60));
        assert!(done, "transfer with 5% corrupted packets did not complete");
        assert_no_corruption(&s);
    });
}

#[test]
fn reordering_duplication_and_jitter() {
    sim::for_each_seed("reordering_duplication_and_jitter", 3, |seed| {
        let config = SimConfig::new(seed).with_link(LinkConfig {
            jitter: Duration::from_millis(8),
            reorder: 0.05,
            duplicate: 0.05,
            ..Default::default()
        });
        let (done, s) = download(config, 2_000_000, Duration::from_secs(60));
        assert!(done);
        assert_no_corruption(&s);
    });
}

#[test]
fn nat_rebinding_every_five_seconds() {
    sim::for_each_seed("nat_rebinding_every_five_seconds", 2, |seed| {
        const LEN: u64 = 20_000_000;
        let link = LinkConfig {
            bandwidth: Some(10_000_000), // 20 MB takes ~16 s: three rebindings
            ..Default::default()
        };
        let mut s = Sim::new(SimConfig::new(seed).with_link(link), |_| {
            Some(BulkTransfer::new(true, LEN))
        });
        s.connect(BulkTransfer::new(false, 0)).unwrap();
        let mut port = 40_000;
        let mut done = false;
        for _ in 0..10 {
            done = s.run_until(Duration::from_secs(5), |s| {
                s.client.conns().any(|c| c.application().is_complete(LEN))
            });
            if done {
                break;
            }
            port += 1;
            s.net.rebind(
                quicksand_sim::ClientId::FIRST,
                std::net::SocketAddr::from(([10, 0, 0, 99], port)),
            );
        }
        assert!(done, "transfer across rebindings did not complete");
        // Every rebinding shows up as a new path at the server. (Whether quiche completes the
        // migration while the bottleneck queue is full varies: path challenges queue behind
        // data; the connection survives either way, which is what this scenario asserts.)
        let new_paths = s
            .server
            .events
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::Path(quicksand_core::PathEvent::New { .. })))
            .count();
        assert!(new_paths >= 3, "{new_paths} new paths seen");
    });
}

/// A mobile client whose NAT rebinds every 2 s for two minutes: 60 new addresses, far beyond
/// quiche's path table (`active_connection_id_limit`, 4). Each rebinding leaves a path behind;
/// the patched quiche frees one the client has left when the table is full
/// (.ci/patches/README.md), so the transfer completes byte-exact.
#[test]
fn nat_rebinding_every_two_seconds_for_two_minutes() {
    sim::for_each_seed(
        "nat_rebinding_every_two_seconds_for_two_minutes",
        2,
        |seed| {
            // A 500 ms RTT and a fixed 12 KB stream window: about 24 KB/s, so 2.6 MB takes two
            // minutes without a deep queue in the network.
            const LEN: u64 = 2_600_000;
            let mut config = SimConfig::new(seed)
                .with_link(LinkConfig::with_latency(Duration::from_millis(250)));
            config.settings.initial_max_stream_data_bidi_local = 12_000;
            config.settings.initial_max_stream_data_bidi_remote = 12_000;
            config.settings.max_stream_window = 12_000;
            let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, LEN)));
            s.connect(BulkTransfer::new(false, 0)).unwrap();
            let mut rebinds = 0;
            let mut done = false;
            while !done && rebinds < 80 {
                done = s.run_until(Duration::from_secs(2), |s| {
                    s.client.conns().any(|c| c.application().is_complete(LEN))
                });
                if !done {
                    rebinds += 1;
                    let port = 40_000 + rebinds;
                    s.net.rebind(
                        quicksand_sim::ClientId::FIRST,
                        std::net::SocketAddr::from(([10, 0, 0, 99], port)),
                    );
                }
            }
            let closed = s.client.closed_reasons();
            assert!(
                done,
                "the transfer stalled after {rebinds} rebindings (client closes: {closed:?})"
            );
            assert!(rebinds >= 55, "only {rebinds} rebindings before completion");
            assert!(closed.is_empty(), "{closed:?}");
            let paths_closed = s
                .server
                .events
                .iter()
                .filter(|(_, _, e)| {
                    matches!(e, Event::Path(quicksand_core::PathEvent::Closed { .. }))
                })
                .count();
            assert!(paths_closed >= 50, "{paths_closed} abandoned paths freed");
        },
    );
}

#[test]
fn long_rtt_handshake() {
    sim::for_each_seed("long_rtt_handshake", 3, |seed| {
        let config =
            SimConfig::new(seed).with_link(LinkConfig::with_latency(Duration::from_millis(375)));
        let (done, s) = download(config, 100_000, Duration::from_secs(30));
        assert!(done);
        let hs = s.client.events.iter().find_map(|(_, _, e)| match e {
            Event::HandshakeCompleted { duration, .. } => Some(*duration),
            _ => None,
        });
        // RETRY, then the handshake: at least two round trips of 750 ms.
        assert!(hs.unwrap() >= Duration::from_millis(1500), "{hs:?}");
    });
}

#[test]
fn resumption_and_zero_rtt() {
    sim::for_each_seed("resumption_and_zero_rtt", 3, |seed| {
        let mut config = SimConfig::new(seed);
        config.settings.enable_early_data = true;
        let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, 1000)));
        s.connect(BulkTransfer::new(false, 1000)).unwrap();
        assert!(s.run_until(Duration::from_secs(2), |s| s
            .client
            .conns()
            .any(|c| c.application().is_complete(1000))));
        s.run_for(Duration::from_millis(100));
        let session = s
            .client
            .conns()
            .next()
            .and_then(|c| c.session())
            .expect("a session ticket");
        s.client_config.set_session(Some(session));
        s.connect(BulkTransfer::new(false, 1000)).unwrap();
        assert!(s.run_until(Duration::from_secs(2), |s| s
            .client
            .conns()
            .filter(|c| c.application().is_complete(1000))
            .count()
            == 2));
        let resumed = s
            .client
            .events
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::HandshakeCompleted { resumed: true, .. }))
            .count();
        assert_eq!(resumed, 1);
        assert!(s
            .client
            .events
            .iter()
            .any(|(_, _, e)| *e == Event::EarlyData));
    });
}

#[test]
fn idle_timeout_and_restart_reset() {
    sim::for_each_seed("idle_timeout_and_restart_reset", 2, |seed| {
        let mut config = SimConfig::new(seed);
        config.settings.max_idle_timeout = Some(Duration::from_secs(4));
        let mut s = Sim::new(config, |_| Some(BulkTransfer::new(true, 0)));
        s.connect(BulkTransfer::new(false, 0)).unwrap();
        assert!(s.run_until(Duration::from_secs(10), |s| !s
            .client
            .closed_reasons()
            .is_empty()));
        assert_eq!(s.client.closed_reasons(), vec![CloseReason::IdleTimeout]);
    });
}

#[test]
fn http3_parallel_requests_under_loss() {
    use futures::future::FutureExt;
    use quicksand_h3::{Body, ClientApplication, Http3Settings, ServerApplication};
    use std::task::{Context, Waker};
    sim::for_each_seed("http3_parallel_requests_under_loss", 3, |seed| {
        let config = SimConfig::new(seed).with_link(LinkConfig {
            loss: LossModel::Random(0.01),
            jitter: Duration::from_millis(2),
            ..Default::default()
        });
        let mut s = Sim::new(config, |_| {
            Some(ServerApplication::with_service(
                Http3Settings::default(),
                |req: http::Request<quicksand_h3::RecvBody>| async move {
                    let n: usize = req
                        .uri()
                        .path()
                        .trim_start_matches('/')
                        .parse()
                        .unwrap_or(0);
                    http::Response::new(Body::from(
                        (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
                    ))
                },
            ))
        });
        let (driver, client) = ClientApplication::new(Http3Settings::default());
        s.connect(driver).unwrap();
        let mut pending: Vec<_> = (0..40usize)
            .map(|i| {
                let client = client.clone();
                let n = 1000 + i * 997;
                async move {
                    let resp = client.get(&format!("https://localhost/{n}")).await.unwrap();
                    let ok = resp.status() == 200
                        && resp.body().len() == n
                        && resp
                            .body()
                            .iter()
                            .enumerate()
                            .all(|(j, b)| *b == (j % 251) as u8);
                    assert!(ok, "response {n} differs");
                }
                .boxed()
            })
            .collect();
        let done = s.run_until(Duration::from_secs(60), |_| {
            let mut cx = Context::from_waker(Waker::noop());
            pending.retain_mut(|f| f.as_mut().poll(&mut cx).is_pending());
            pending.is_empty()
        });
        assert!(done, "{} requests unfinished", pending.len());
    });
}

mod faults {
    use super::*;
    use proptest::prelude::*;

    fn link() -> impl Strategy<Value = LinkConfig> {
        (
            1u64..150,
            0u64..20,
            0u32..12,
            0u32..5,
            0u32..5,
            0u32..3,
            any::<bool>(),
            1000u64..8000,
        )
            .prop_map(
                |(latency, jitter, loss, reorder, dup, corrupt, bursty, hole_ms)| LinkConfig {
                    latency: Duration::from_millis(latency),
                    jitter: Duration::from_millis(jitter),
                    loss: if bursty {
                        LossModel::bursty(loss as f64 / 100.0, 3.0)
                    } else {
                        LossModel::Random(loss as f64 / 100.0)
                    },
                    reorder: reorder as f64 / 100.0,
                    duplicate: dup as f64 / 100.0,
                    corrupt: corrupt as f64 / 100.0,
                    blackholes: vec![Blackhole {
                        start: Duration::from_millis(hole_ms),
                        on: Duration::from_millis(hole_ms / 4),
                        off: Duration::MAX,
                    }],
                    ..Default::default()
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Whatever the network does, every transfer either completes byte-exact or its
        /// connection ends with a reason the caller sees; nothing hangs past the idle timeout.
        #[test]
        fn transfers_complete_or_fail_visibly(
            seed in any::<u64>(),
            to_server in link(),
            to_client in link(),
            sizes in prop::collection::vec(0u64..200_000, 1..4),
        ) {
            let mut config = SimConfig::new(seed);
            config.to_server = to_server;
            config.to_client = to_client;
            config.settings.max_idle_timeout = Some(Duration::from_secs(20));
            let len = sizes[0];
            let mut s = Sim::new(config, move |_| Some(BulkTransfer::new(true, len)));
            for _ in &sizes {
                s.connect(BulkTransfer::new(false, 0)).unwrap();
            }
            let n = sizes.len();
            // Idle timeout (20 s) plus room for back-off: everything settles well before.
            s.run_until(Duration::from_secs(600), |s| {
                s.client.conns().all(|c| c.application().is_complete(len))
                    || s.client.is_empty()
            });
            let complete = s.client.conns().chain(s.client.finished()).filter(|c| c.application().is_complete(len)).count();
            let failed = s.client.closed_reasons().len();
            for c in s.client.conns().chain(s.client.finished()) {
                prop_assert_eq!(c.application().mismatch, None);
            }
            prop_assert!(complete + failed >= n, "{} complete, {} failed of {}: something hangs", complete, failed, n);
        }
    }
}

/// The scenarios shared with the adapters' loopback suite (`e2e_adapters.rs`), here on a clean
/// simulated link.
#[test]
fn shared_scenarios() {
    for scenario in scenario::all() {
        sim::for_each_seed(scenario.name, 2, |seed| {
            let mut config = SimConfig::new(seed);
            scenario.apply(&mut config.settings);
            let reports = Reports::default();
            let (server_side, server_reports) = (scenario.clone(), reports.clone());
            let mut s = Sim::new(config, move |_| {
                Some(server_side.server_app(&server_reports))
            });
            for _ in 0..scenario.connections {
                s.connect(scenario.client_app(&reports)).unwrap();
            }
            let done = s.run_until(Duration::from_secs(60), |_| reports.complete(&scenario));
            if let Err(e) = reports.check(&scenario) {
                panic!("{e} (completed: {done})");
            }
        });
    }
}

/// GOAWAY while ten requests are in flight, under 1% loss: the ten complete byte-exact, a
/// request made after the GOAWAY fails with `GoAway`, and the server then closes the
/// connection cleanly (H3_NO_ERROR).
#[test]
fn goaway_with_requests_in_flight() {
    use futures::future::FutureExt;
    use quicksand_h3::{
        Body, ClientApplication, ErrorCode, Http3Settings, RequestError, ServerApplication,
    };
    use std::task::{Context, Waker};
    const LEN: usize = 200_000;
    sim::for_each_seed("goaway_with_requests_in_flight", 3, |seed| {
        let config = SimConfig::new(seed).with_link(LinkConfig {
            loss: LossModel::Random(0.01),
            ..Default::default()
        });
        let mut s = Sim::new(config, |_| {
            Some(ServerApplication::with_service(
                Http3Settings::default(),
                |_req: http::Request<quicksand_h3::RecvBody>| async move {
                    http::Response::new(Body::from(
                        (0..LEN).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
                    ))
                },
            ))
        });
        let (driver, client) = ClientApplication::new(Http3Settings::default());
        s.connect(driver).unwrap();
        let mut pending: Vec<_> = (0..10)
            .map(|i| {
                let client = client.clone();
                async move {
                    let resp = client.get(&format!("https://localhost/{i}")).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    assert!(
                        resp.body().len() == LEN
                            && resp
                                .body()
                                .iter()
                                .enumerate()
                                .all(|(j, b)| *b == (j % 251) as u8),
                        "response {i} differs"
                    );
                }
                .boxed()
            })
            .collect();
        let mut cx = Context::from_waker(Waker::noop());
        let mut poll = |pending: &mut Vec<_>| {
            pending.retain_mut(|f: &mut futures::future::BoxFuture<'_, ()>| {
                f.as_mut().poll(&mut cx).is_pending()
            });
        };
        // Run until the server has taken all ten, then GOAWAY.
        assert!(s.run_until(Duration::from_secs(30), |s| {
            poll(&mut pending);
            s.server
                .conns()
                .any(|c| c.application().stats().requests == 10)
        }));
        for c in s.server.conns() {
            c.application().handle().goaway();
        }
        let mut late = None;
        let done = s.run_until(Duration::from_secs(60), |s| {
            poll(&mut pending);
            if late.is_none()
                && s.client
                    .conns()
                    .any(|c| c.application().stats().goaway_received)
            {
                late = Some(
                    client.request(
                        http::Request::get("https://localhost/late")
                            .body(bytes::Bytes::new())
                            .unwrap(),
                    ),
                );
            }
            pending.is_empty() && s.server.conns().next().is_none()
        });
        assert!(done, "{} requests unfinished", pending.len());
        assert_eq!(late.map(|r| r.err()), Some(Some(RequestError::GoAway)));
        let closed = s
            .server
            .finished()
            .next()
            .expect("the server closed the connection");
        match closed.application().close_reason() {
            Some(CloseReason::Local {
                application: true,
                code,
                ..
            }) => {
                assert_eq!(*code, ErrorCode::NoError.code())
            }
            other => panic!("unexpected close {other:?}"),
        }
    });
}

/// Handlers that await `sim::sleep` run on virtual time: three requests whose handlers sleep
/// 20, 5 and 12 s finish in the order of their deadlines, each right after it (not after the
/// others, not on real time).
#[test]
fn handlers_sleep_on_virtual_time() {
    use futures::future::FutureExt;
    use quicksand_h3::{Body, ClientApplication, Http3Settings, ServerApplication};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Instant;
    sim::for_each_seed("handlers_sleep_on_virtual_time", 2, |seed| {
        let mut s = Sim::new(SimConfig::new(seed), |_| {
            Some(ServerApplication::with_service(
                Http3Settings::default(),
                |req: http::Request<quicksand_h3::RecvBody>| async move {
                    let secs: u64 = req.uri().path().trim_start_matches('/').parse().unwrap();
                    sim::sleep(Duration::from_secs(secs)).await;
                    // A second await on the same handler, shorter than a tick of anything.
                    sim::sleep(Duration::from_millis(1)).await;
                    http::Response::new(Body::from(format!("slept {secs}")))
                },
            ))
        });
        let start = Instant::now();
        let (driver, client) = ClientApplication::new(Http3Settings::default());
        s.connect(driver).unwrap();
        let finished: Rc<RefCell<Vec<(u64, Duration)>>> = Rc::default();
        let requests: Vec<_> = [20u64, 5, 12]
            .into_iter()
            .map(|secs| {
                let (client, finished) = (client.clone(), finished.clone());
                async move {
                    let resp = client
                        .get(&format!("https://localhost/{secs}"))
                        .await
                        .unwrap();
                    assert_eq!(resp.body().as_ref(), format!("slept {secs}").as_bytes());
                    finished.borrow_mut().push((secs, start.elapsed()));
                }
                .boxed_local()
            })
            .collect();
        let done = s.block_on(Duration::from_secs(60), futures::future::join_all(requests));
        assert!(
            done.is_some(),
            "requests unfinished: {:?} done",
            finished.borrow()
        );
        let finished = finished.borrow();
        let order: Vec<u64> = finished.iter().map(|(s, _)| *s).collect();
        assert_eq!(order, [5, 12, 20], "finished in deadline order");
        for (secs, at) in finished.iter() {
            let slept = Duration::from_secs(*secs);
            assert!(
                *at >= slept && *at < slept + Duration::from_secs(1),
                "the {secs} s request finished at {at:?} of virtual time"
            );
        }
    });
}

/// A `sim::sleep` polled where no simulation runs says so instead of never waking.
#[test]
fn a_sleep_outside_a_simulation_is_a_clear_error() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let panic = std::thread::spawn(|| {
        let mut sleep = std::pin::pin!(sim::sleep(Duration::from_secs(1)));
        let _ = sleep.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    })
    .join()
    .expect_err("polling must panic");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("without a simulation"), "{message}");
}
