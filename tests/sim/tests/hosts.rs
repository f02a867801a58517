//! Several client hosts: each is a machine of its own with its own links and NAT.

use std::net::SocketAddr;
use std::time::Duration;

use quicksand_core::{CloseReason, Event, NoApplication, PathEvent};
use quicksand_sim::{ClientId, Direction, LinkConfig, Sim, SimConfig, SimEvent};

quicksand_sim::virtual_clock!();

type Bare = Sim<NoApplication, NoApplication>;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Pings every connection of every client host.
fn ping_all(sim: &mut Bare) {
    let ids: Vec<_> = sim.client_ids().collect();
    for id in ids {
        sim.client_host_mut(id).for_each_mut(|c| {
            c.quiche_mut().send_ack_eliciting().expect("ping");
        });
    }
}

/// The server's connections' peer addresses, sorted.
fn server_peers(sim: &Bare) -> Vec<SocketAddr> {
    let mut peers: Vec<_> = sim
        .server
        .conns()
        .flat_map(|c| {
            c.quiche()
                .paths_iter(quicksand_sim::SERVER)
                .collect::<Vec<_>>()
        })
        .collect();
    peers.sort();
    peers
}

#[test]
fn each_client_host_reaches_the_server_from_its_own_address_over_its_own_link() {
    let mut sim: Bare = Sim::new(SimConfig::new(11), |_| Some(NoApplication));
    let far = LinkConfig::with_latency(Duration::from_millis(200));
    let b = sim.add_client(addr("10.0.1.1:50000"), far.clone(), far);
    assert_eq!(sim.client_ids().collect::<Vec<_>>(), [ClientId::FIRST, b]);
    let a_key = sim.connect(NoApplication).unwrap();
    let b_key = sim.connect_from(b, NoApplication).unwrap();
    // A's 20 ms round trips finish its handshake long before B's 400 ms ones.
    assert!(sim.run_until(Duration::from_secs(1), |s| s.client.is_established(a_key)));
    assert!(!sim.client_host(b).is_established(b_key));
    assert!(sim.run_until(Duration::from_secs(2), |s| s
        .client_host(b)
        .is_established(b_key)));
    assert_eq!(
        server_peers(&sim),
        [quicksand_sim::CLIENT, addr("10.0.1.1:50000")]
    );
}

#[test]
fn an_outage_or_a_rebinding_of_one_host_leaves_the_others_alone() {
    let mut sim: Bare = Sim::new(SimConfig::new(12), |_| Some(NoApplication));
    let b = sim.add_client(
        addr("10.0.1.1:50000"),
        LinkConfig::default(),
        LinkConfig::default(),
    );
    let c = sim.add_client(
        addr("10.0.2.1:50000"),
        LinkConfig::default(),
        LinkConfig::default(),
    );
    let a_key = sim.connect(NoApplication).unwrap();
    let b_key = sim.connect_from(b, NoApplication).unwrap();
    let c_key = sim.connect_from(c, NoApplication).unwrap();
    assert!(sim.run_until(Duration::from_secs(1), |s| {
        s.client.is_established(a_key)
            && s.client_host(b).is_established(b_key)
            && s.client_host(c).is_established(c_key)
    }));
    // B loses its link both ways for longer than the idle timeout; C's NAT rebinds.
    let minute = Duration::from_secs(60);
    sim.schedule(
        Duration::from_secs(2),
        SimEvent::Blackhole(b, Direction::ToServer, minute),
    );
    sim.schedule(
        Duration::from_secs(2),
        SimEvent::Blackhole(b, Direction::ToClient, minute),
    );
    sim.schedule(
        Duration::from_secs(2),
        SimEvent::Rebind(c, addr("198.51.100.7:1234")),
    );
    sim.run_for(Duration::from_secs(3));
    for _ in 0..8 {
        ping_all(&mut sim);
        sim.run_for(Duration::from_secs(5));
    }
    assert_eq!(
        sim.client_host(b).close_reason(b_key),
        Some(&CloseReason::IdleTimeout)
    );
    assert!(sim.client.is_established(a_key), "A is untouched");
    assert!(sim.client_host(c).is_established(c_key), "C migrated");
    let migrations: Vec<_> = sim
        .server
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::Path(PathEvent::PeerMigrated { peer, .. }) => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(
        migrations,
        [addr("198.51.100.7:1234")],
        "only C's connection moved"
    );
}
