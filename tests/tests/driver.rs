//! The runtime-agnostic driver: wake-ups from outside code, commands from the owner, timers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quicksand_core::{
    Application, ApplicationError, CloseReason, ConnectionKey, ConnectionWake, NoApplication,
    QuicheConnection, Stage,
};
use quicksand_tests::sim::{Sim, SimConfig};

quicksand_tests::virtual_clock!();

/// What the test shares with the client's application: the wake handle the driver gave it,
/// and work to do (a close) that only the application's `process_writes` carries out.
#[derive(Default)]
struct Outside {
    wake: Option<ConnectionWake>,
    close_with: Option<u64>,
}

/// An application that closes its connection when outside code asked it to.
struct Closer(Arc<Mutex<Outside>>);

impl Application for Closer {
    fn process_reads(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }

    fn process_writes(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        match self.0.lock().unwrap().close_with.take() {
            Some(code) => Err(ApplicationError::new(code, "asked from outside")),
            None => Ok(()),
        }
    }

    fn set_wake(&mut self, wake: ConnectionWake) {
        self.0.lock().unwrap().wake = Some(wake);
    }
}

/// A client with one running connection whose application is a [`Closer`], left until its
/// traffic has settled.
fn running(
    seed: u64,
) -> (
    Sim<Closer, NoApplication>,
    ConnectionKey,
    Arc<Mutex<Outside>>,
) {
    let mut s = Sim::new(SimConfig::new(seed), |_| Some(NoApplication));
    let outside = Arc::new(Mutex::new(Outside::default()));
    let handle = s.connect(Closer(outside.clone())).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| s
        .server
        .conns()
        .any(|c| c.stage() == Stage::Running)));
    s.run_for(Duration::from_secs(1));
    (s, handle, outside)
}

/// The driver gives each connection's application a wake handle carrying the connection's key;
/// waking it runs the application at once (here: a close asked from outside), not at the next
/// packet or timer (the idle timeout, 30 s away).
#[test]
fn an_application_woken_from_outside_runs_at_once() {
    let (mut s, handle, outside) = running(1);
    let wake = outside
        .lock()
        .unwrap()
        .wake
        .clone()
        .expect("the driver gave a wake handle");
    assert_eq!(wake.key(), handle);
    outside.lock().unwrap().close_with = Some(0x77);
    let woken_at = Instant::now();
    wake.wake();
    assert!(s.run_until(Duration::from_secs(2), |s| s.server.is_empty()
        && s.client.is_empty()));
    assert_eq!(
        s.server.closed_reasons(),
        vec![CloseReason::Peer {
            application: true,
            code: 0x77,
            reason: b"asked from outside".to_vec()
        }]
    );
    let closed_at = s.server.events.last().map(|(at, _, _)| *at).unwrap();
    assert!(
        closed_at - woken_at < Duration::from_millis(500),
        "the close reached the server {:?} after the wake-up",
        closed_at - woken_at
    );
}

/// Without the wake-up the same request waits: the application runs only when told.
#[test]
fn work_without_a_wake_up_waits() {
    let (mut s, _, outside) = running(3);
    outside.lock().unwrap().close_with = Some(0x77);
    s.run_for(Duration::from_secs(5));
    assert!(!s.client.is_empty(), "nothing ran the application");
    assert_eq!(outside.lock().unwrap().close_with, Some(0x77));
}

/// A command from the connection's owner: a plain `&mut` call, applied on the next drive.
#[test]
fn the_owner_closes_a_connection_directly() {
    let (mut s, handle, _) = running(5);
    s.client
        .driver
        .connection_mut(handle)
        .unwrap()
        .close(true, 0x78, b"from the owner");
    assert!(s.run_until(Duration::from_secs(2), |s| s.server.is_empty()
        && s.client.is_empty()));
    assert_eq!(
        s.server.closed_reasons(),
        vec![CloseReason::Peer {
            application: true,
            code: 0x78,
            reason: b"from the owner".to_vec()
        }]
    );
}

#[test]
fn timers_fire_through_the_driver_heap() {
    let mut config = SimConfig::new(2);
    config.settings.max_idle_timeout = Some(Duration::from_secs(3));
    let mut s = Sim::new(config, |_| Some(NoApplication));
    for _ in 0..5 {
        s.connect(NoApplication).unwrap();
    }
    assert!(s.run_until(Duration::from_secs(2), |s| s.server.len() == 5));
    let start = std::time::Instant::now();
    assert!(s.run_until(Duration::from_secs(10), |s| s.server.is_empty()
        && s.client.is_empty()));
    let took = std::time::Instant::now() - start;
    assert!(
        took >= Duration::from_millis(2_800) && took <= Duration::from_millis(3_100),
        "{took:?}"
    );
    assert!(s
        .client
        .closed_reasons()
        .iter()
        .all(|r| *r == CloseReason::IdleTimeout));
    assert_eq!(s.client.closed_reasons().len(), 5);
}
