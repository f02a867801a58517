//! The runtime-agnostic driver: wake-ups from outside code reach the adapter's task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use quicksand_core::{CloseReason, ConnectionKey, NoApplication, Stage};
use quicksand_tests::sim::{Sim, SimConfig};

quicksand_tests::virtual_clock!();

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A client and a server with one running connection, and a task waker that counts wake-ups.
fn running(
    seed: u64,
) -> (
    Sim<NoApplication, NoApplication>,
    ConnectionKey,
    Arc<CountingWaker>,
) {
    let mut s = Sim::new(SimConfig::new(seed), |_| Some(NoApplication));
    let handle = s.connect(NoApplication).unwrap();
    assert!(s.run_until(Duration::from_secs(2), |s| s
        .server
        .conns()
        .any(|c| c.stage() == Stage::Running)));
    (s, handle, Arc::new(CountingWaker::default()))
}

#[test]
fn a_command_wakes_the_driver_task_and_is_applied() {
    let (mut s, handle, task) = running(1);
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    // Nothing to do: the driver parks and keeps the task's waker.
    assert_eq!(s.client.driver.poll_wakeup(&mut cx), Poll::Pending);
    let commands = s.client.driver.connection(handle).unwrap().command_sender();
    commands.close(0x77, "from another task").unwrap();
    assert_eq!(task.0.load(Ordering::SeqCst), 1, "the task was woken");
    assert_eq!(s.client.driver.poll_wakeup(&mut cx), Poll::Ready(()));
    assert!(s.run_until(Duration::from_secs(2), |s| s.server.is_empty()
        && s.client.is_empty()));
    assert_eq!(
        s.server.closed_reasons(),
        vec![CloseReason::Peer {
            application: true,
            code: 0x77,
            reason: b"from another task".to_vec()
        }]
    );
}

/// A wake-up that arrives while the driver is running its connections (between
/// `poll_transmit` and `poll_wakeup`) does not wake the task, which is running anyway (a
/// self-wake makes tokio reschedule it on another thread): `poll_wakeup` reports it instead.
/// Once the task is parked again, the next wake-up wakes it. None is lost.
#[test]
fn a_wake_up_while_the_driver_runs_is_reported_not_sent() {
    let (mut s, handle, task) = running(3);
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(s.client.driver.poll_wakeup(&mut cx), Poll::Pending);
    let commands = s.client.driver.connection(handle).unwrap().command_sender();

    // The task runs (it drives its connections), and meanwhile outside code sends a command.
    let now = std::time::Instant::now();
    while s.client.driver.poll_transmit(now).is_some() {}
    commands
        .send(quicksand_core::Command::Run(Box::new(|_| ())))
        .unwrap();
    assert_eq!(
        task.0.load(Ordering::SeqCst),
        0,
        "no wake-up of a running task"
    );
    assert_eq!(s.client.driver.poll_wakeup(&mut cx), Poll::Ready(()));

    // Drive it; parked again, the next command wakes the task once.
    while s.client.driver.poll_transmit(now).is_some() {}
    assert_eq!(s.client.driver.poll_wakeup(&mut cx), Poll::Pending);
    commands
        .send(quicksand_core::Command::Run(Box::new(|_| ())))
        .unwrap();
    commands
        .send(quicksand_core::Command::Run(Box::new(|_| ())))
        .unwrap();
    assert_eq!(
        task.0.load(Ordering::SeqCst),
        1,
        "one wake-up for a parked task"
    );
    assert_eq!(s.client.driver.poll_wakeup(&mut cx), Poll::Ready(()));
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
