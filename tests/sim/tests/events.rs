//! Scheduled events: each test schedules one and checks what a user of the connection sees.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use quicksand_core::{CloseReason, ConnectionKey, Event, NoApplication, PathEvent};
use quicksand_sim::{
    ClientId, ClockStep, Direction, Fate, LinkConfig, Restart, Sim, SimConfig, SimEvent,
};

quicksand_sim::virtual_clock!();

type Bare = Sim<NoApplication, NoApplication>;

/// A simulation with one established connection (20 ms RTT, 30 s idle timeout).
fn established(seed: u64) -> (Bare, ConnectionKey) {
    let mut sim = Sim::new(SimConfig::new(seed), |_| Some(NoApplication));
    let key = sim.connect(NoApplication).expect("connect");
    assert!(
        sim.run_until(Duration::from_secs(2), |s| s.client.is_established(key)),
        "no handshake within 2 s"
    );
    (sim, key)
}

/// The client sends an ack-eliciting packet on every connection (the next step sends it).
fn ping(sim: &mut Bare) {
    sim.client.for_each_mut(|c| {
        c.quiche_mut().send_ack_eliciting().expect("ping");
    });
}

/// Virtual time since the simulation started.
fn since_start(sim: &Bare) -> Duration {
    Instant::now() - sim.start
}

#[test]
fn restart_with_keys_ends_old_connections_at_once() {
    let (mut sim, key) = established(1);
    sim.schedule(
        Duration::from_secs(1),
        SimEvent::RestartServer(Restart::with_keys(|_| Some(NoApplication))),
    );
    sim.run_for(Duration::from_secs(2));
    assert!(
        sim.server.is_empty(),
        "the restarted server has no connection"
    );
    ping(&mut sim);
    let sent = Instant::now();
    assert!(sim.run_until(Duration::from_secs(60), |s| s.client.is_closed(key)));
    assert_eq!(
        sim.client.close_reason(key),
        Some(&CloseReason::StatelessReset)
    );
    assert!(
        Instant::now() - sent < Duration::from_secs(1),
        "a recognised reset ends the connection within a round trip, not {:?}",
        Instant::now() - sent
    );
    let again = sim.connect(NoApplication).unwrap();
    assert!(sim.run_until(Duration::from_secs(2), |s| s.client.is_established(again)));
}

#[test]
fn restart_without_keys_leaves_old_clients_to_their_idle_timeout() {
    let (mut sim, key) = established(2);
    sim.schedule(
        Duration::from_secs(1),
        SimEvent::RestartServer(Restart::without_keys(|_| Some(NoApplication))),
    );
    sim.run_for(Duration::from_secs(2));
    ping(&mut sim);
    let sent = Instant::now();
    assert!(sim.run_until(Duration::from_secs(120), |s| s.client.is_closed(key)));
    assert_eq!(
        sim.client.close_reason(key),
        Some(&CloseReason::IdleTimeout)
    );
    assert!(Instant::now() - sent >= Duration::from_secs(25));
    // The new process serves new clients.
    let again = sim.connect(NoApplication).unwrap();
    assert!(sim.run_until(Duration::from_secs(2), |s| s.client.is_established(again)));
}

#[test]
fn a_partition_shorter_than_the_idle_timeout_is_survived_and_a_longer_one_is_not() {
    let (mut sim, key) = established(3);
    let dark = Rc::new(RefCell::new(Vec::new()));
    let log = dark.clone();
    sim.observer = Some(Box::new(move |now, _, _, _, fate| {
        if fate == Fate::Dark {
            log.borrow_mut().push(now);
        }
    }));
    sim.schedule(Duration::from_secs(2), SimEvent::Partition);
    sim.schedule(Duration::from_secs(7), SimEvent::Heal);
    sim.run_for(Duration::from_secs(3) - since_start(&sim));
    ping(&mut sim);
    sim.run_for(Duration::from_secs(10));
    assert!(
        !dark.borrow().is_empty(),
        "the ping was lost in the partition"
    );
    let start = sim.start;
    assert!(dark
        .borrow()
        .iter()
        .all(|t| (2..7).contains(&(*t - start).as_secs())));
    assert!(!sim.client.is_closed(key), "a 5 s partition is survived");
    assert!(sim.client.is_established(key));

    sim.schedule(since_start(&sim), SimEvent::Partition);
    ping(&mut sim);
    assert!(sim.run_until(Duration::from_secs(60), |s| s.client.is_closed(key)));
    assert_eq!(
        sim.client.close_reason(key),
        Some(&CloseReason::IdleTimeout)
    );
}

#[test]
fn a_blackhole_darkens_one_direction_only_for_its_length() {
    let (mut sim, _) = established(4);
    let fates = Rc::new(RefCell::new(Vec::new()));
    let log = fates.clone();
    sim.observer = Some(Box::new(move |now, direction, _, _, fate| {
        log.borrow_mut().push((now, direction, fate));
    }));
    let at = since_start(&sim) + Duration::from_millis(100);
    sim.schedule(
        at,
        SimEvent::Blackhole(ClientId::FIRST, Direction::ToServer, Duration::from_secs(1)),
    );
    sim.run_for(Duration::from_millis(200));
    ping(&mut sim);
    sim.run_for(Duration::from_secs(5));
    let start = sim.start;
    let fates = fates.borrow();
    let dark: Vec<_> = fates.iter().filter(|(_, _, f)| *f == Fate::Dark).collect();
    assert!(
        !dark.is_empty(),
        "the ping and its retransmissions met the outage"
    );
    for (t, direction, _) in &dark {
        assert_eq!(*direction, Direction::ToServer);
        let offset = *t - start;
        assert!(
            offset >= at && offset < at + Duration::from_secs(1),
            "{offset:?}"
        );
    }
    assert!(
        fates.iter().any(|(t, d, f)| *d == Direction::ToServer
            && *f == Fate::Sent
            && *t - start >= at + Duration::from_secs(1)),
        "the client got through once the outage ended"
    );
}

#[test]
fn a_nat_rebinding_migrates_the_connection() {
    let (mut sim, key) = established(5);
    let new_addr = "10.0.9.9:40000".parse().unwrap();
    sim.schedule(
        since_start(&sim),
        SimEvent::Rebind(ClientId::FIRST, new_addr),
    );
    sim.step();
    ping(&mut sim);
    sim.run_for(Duration::from_secs(3));
    let migrated = sim.server.events.iter().any(|(_, _, e)| {
        matches!(e, Event::Path(PathEvent::PeerMigrated { peer, .. }) if *peer == new_addr)
    });
    assert!(migrated, "server events: {:?}", sim.server.events);
    assert!(sim.client.is_established(key));
}

#[test]
fn a_wall_clock_step_moves_system_time_only_and_connections_live_on() {
    let (mut sim, key) = established(6);
    let (wall, mono) = (SystemTime::now(), Instant::now());
    let day = Duration::from_secs(86_400);
    sim.schedule(
        since_start(&sim),
        SimEvent::WallClock(ClockStep::Forward(10 * day)),
    );
    sim.step();
    assert_eq!(Instant::now(), mono, "monotonic time did not move");
    let stepped = SystemTime::now().duration_since(wall).unwrap();
    assert_eq!(stepped, 10 * day);
    // Both endpoints follow: what they stamp tokens with is the stepped clock.
    assert_eq!(sim.server.endpoint().wall_time(mono), SystemTime::now());
    assert_eq!(sim.client.endpoint().wall_time(mono), SystemTime::now());
    ping(&mut sim);
    sim.run_for(Duration::from_secs(1));
    sim.schedule(
        since_start(&sim),
        SimEvent::WallClock(ClockStep::Backward(20 * day)),
    );
    sim.step();
    assert_eq!(
        wall.duration_since(SystemTime::now()).unwrap(),
        10 * day - Duration::from_secs(1)
    );
    assert_eq!(
        sim.server.endpoint().wall_time(Instant::now()),
        SystemTime::now()
    );
    ping(&mut sim);
    sim.run_for(Duration::from_secs(1));
    assert!(sim.client.is_established(key));
    // New connections are unaffected too.
    let again = sim.connect(NoApplication).unwrap();
    assert!(sim.run_until(Duration::from_secs(2), |s| s.client.is_established(again)));
}

#[test]
fn a_new_link_applies_from_the_event_on() {
    let (mut sim, first) = established(8);
    let slow = LinkConfig::with_latency(Duration::from_millis(100));
    let at = since_start(&sim) + Duration::from_millis(10);
    for direction in [Direction::ToServer, Direction::ToClient] {
        sim.schedule(
            at,
            SimEvent::SetLink(ClientId::FIRST, direction, slow.clone()),
        );
    }
    sim.run_for(Duration::from_millis(20));
    let started = Instant::now();
    let key = sim.connect(NoApplication).unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| s.client.is_established(key)));
    let took = Instant::now() - started;
    assert!(
        took >= Duration::from_millis(200),
        "the handshake takes the new 200 ms round trip: {took:?}"
    );
    assert!(sim.client.is_established(first));
}

#[test]
fn a_pause_stops_both_hosts_and_one_past_the_idle_timeout_ends_the_connection() {
    let (mut sim, key) = established(7);
    let sends = Rc::new(RefCell::new(Vec::new()));
    let log = sends.clone();
    sim.observer = Some(Box::new(move |now, _, _, _, _| log.borrow_mut().push(now)));
    let at = since_start(&sim);
    sim.schedule(at, SimEvent::Pause(Duration::from_secs(5)));
    sim.step();
    ping(&mut sim);
    sim.run_for(Duration::from_secs(10));
    let start = sim.start;
    let sends = sends.borrow().clone();
    assert!(!sends.is_empty(), "the ping went out after the pause");
    assert!(
        sends
            .iter()
            .all(|t| *t - start >= at + Duration::from_secs(5)),
        "nothing is sent while paused"
    );
    assert!(sim.client.is_established(key));

    let at = since_start(&sim);
    sim.schedule(at, SimEvent::Pause(Duration::from_secs(45)));
    sim.step();
    assert!(sim.run_until(Duration::from_secs(60), |s| s.client.is_closed(key)));
    assert_eq!(
        sim.client.close_reason(key),
        Some(&CloseReason::IdleTimeout)
    );
    assert!(
        since_start(&sim) >= at + Duration::from_secs(45),
        "it closes when the hosts run again"
    );
}

#[test]
fn scheduled_events_keep_runs_reproducible() {
    quicksand_sim::assert_same_history("scheduled_events", 2, |config| {
        let mut sim: Bare = Sim::new(config, |_| Some(NoApplication));
        let key = sim.connect(NoApplication).unwrap();
        sim.schedule(Duration::from_secs(1), SimEvent::Partition);
        sim.schedule(Duration::from_secs(3), SimEvent::Heal);
        sim.schedule(
            Duration::from_secs(4),
            SimEvent::RestartServer(Restart::with_keys(|_| Some(NoApplication))),
        );
        sim.run_for(Duration::from_millis(1500));
        ping(&mut sim);
        sim.run_for(Duration::from_secs(4));
        ping(&mut sim);
        sim.run_until(Duration::from_secs(60), |s| s.client.is_closed(key));
        sim.trace
    });
}
