//! Deterministic simulation of quicksand QUIC and HTTP/3 endpoints, for `cargo test`.
//!
//! A [`Sim`] runs a server host and one or more client hosts — each a `quicksand_core`
//! [`Driver`], the same loop the tokio and smol adapters run — over a simulated [`Network`]
//! on one thread:
//!
//! - **Virtual time that quiche and BoringSSL see too.** quiche reads `Instant::now()` itself,
//!   so a simulator that only passes `now` around would still run quiche's loss-recovery and
//!   idle timers on real time. A test binary that invokes [`virtual_clock!`] answers every
//!   clock read of the thread that runs a simulation (std's, quiche's, BoringSSL's) from the
//!   simulation's clock; a run of 10 minutes of idle timeouts takes milliseconds.
//! - **One `u64` seed** for everything random: the network's faults, connection IDs, keys,
//!   BoringSSL's randomness. [`for_each_seed`] runs a test for many seeds and prints the one
//!   command that reproduces a failing one (`QUICKSAND_SEED=N`); [`assert_same_history`] runs
//!   one seed twice and reports the first event where the runs diverge.
//! - **Faults per direction** ([`LinkConfig`]): latency, jitter, bandwidth with tail drop,
//!   random and bursty loss, duplication, reordering, corruption, MTU, outages; and
//!   **scheduled events** ([`SimEvent`], [`Sim::schedule`]): partitions that heal, blackholes,
//!   NAT rebinding, server restarts with or without their keys, wall-clock steps and pauses.
//! - **Your own application code**, unchanged: any [`Application`](quicksand_core::Application)
//!   — `quicksand_h3`'s `ServerApplication` running your `Service`, its `ClientApplication`
//!   and `H3Client` — runs inside the simulated hosts. Handlers that wait use [`sleep`] (virtual
//!   time) instead of a runtime's timer.
//! - **What happened**: every connection event of every host ([`Host::events`]), counting
//!   metrics of the server and the clients, and a [`Trace`] of every packet's fate whose digest two runs
//!   of one seed share.
//!
//! # Setup: one macro
//!
//! ```text
//! quicksand_sim::virtual_clock!();   // once per test binary, at the top level
//! ```
//!
//! It defines the binary's `clock_gettime`, `gettimeofday`, `getrandom` and `syscall`
//! symbols, which the linker then prefers to libc's for every caller in the binary; on
//! threads that run a simulation they answer from it, on every other thread from the kernel.
//! The symbols only exist in binaries that invoke the macro: a library that depends on this
//! crate changes nothing for its users. **Platform limits**: x86-64 Linux with glibc (the
//! `syscall` shim relies on x86-64's calling convention for variadic calls, and BoringSSL's
//! RDRAND use is switched off so that its randomness is the seeded stream); code that makes
//! raw clock system calls without libc (none in quiche, BoringSSL or std) would see real
//! time. One simulation per thread; tests run in parallel, each on its own thread. A
//! simulation in a binary without the macro panics at once with a message that says so,
//! rather than silently running on real time.
//!
//! # Example
//!
//! A client connects over a link that loses 5% of packets in each direction, the server
//! restarts mid-run, and the test checks what a user would: the old connection ends (the
//! restarted server has no state for it) and a new connection succeeds.
//!
//! ```
//! use std::time::Duration;
//! use quicksand_core::{CloseReason, NoApplication};
//! use quicksand_sim::{LinkConfig, LossModel, Restart, Sim, SimConfig, SimEvent};
//!
//! quicksand_sim::virtual_clock!();
//!
//! # fn main() {
//! // Bare QUIC connections; an HTTP/3 test puts quicksand_h3's applications here.
//! type App = NoApplication;
//! let link = LinkConfig { loss: LossModel::Random(0.05), ..LinkConfig::default() };
//! let mut sim: Sim<App, App> = Sim::new(SimConfig::new(7).with_link(link), |_| Some(App {}));
//! let first = sim.connect(App {}).unwrap();
//! assert!(sim.run_until(Duration::from_secs(5), |s| s.client.is_established(first)));
//!
//! // At 6 s the server restarts without its keys: the old connection's client cannot
//! // recognise the new process's stateless resets and waits for its idle timeout.
//! sim.schedule(Duration::from_secs(6), SimEvent::RestartServer(Restart::without_keys(|_| Some(App {}))));
//! sim.run_for(Duration::from_secs(7));
//! sim.client.for_each_mut(|c| c.quiche_mut().send_ack_eliciting().unwrap());
//! assert!(sim.run_until(Duration::from_secs(60), |s| s.client.is_closed(first)));
//! assert_eq!(sim.client.close_reason(first), Some(&CloseReason::IdleTimeout));
//!
//! let second = sim.connect(App {}).unwrap();
//! assert!(sim.run_until(Duration::from_secs(5), |s| s.client.is_established(second)));
//! # }
//! ```
//!
//! # Handler and client code
//!
//! A request handler runs inside its connection on the simulation's thread (give
//! `ServerApplication::with_service` no spawner), and client code runs as a task
//! ([`Sim::spawn`]) or under [`Sim::block_on`]. Code that waits awaits [`sleep`] or
//! [`sleep_until`], which end on virtual time; everything else it awaits must be woken by
//! something in the simulation (a response, a body, a channel another handler fills). What it
//! must not do:
//!
//! - **block the thread** (`std::thread::sleep`, blocking IO, a lock held by another thread):
//!   the simulation stops for real while virtual time stands still;
//! - **await a runtime's timers or sockets**: they are not part of the simulation
//!   (`tokio::time::sleep` panics without a tokio runtime: "there is no reactor running").
//!
//! The mistakes fail visibly rather than hang: a [`sleep`] polled on a thread without a
//! simulation panics and says so; a future that nothing in the simulation wakes leaves its
//! request unfinished, and [`Sim::run_until`] returns `false` (and [`Sim::block_on`] `None`)
//! once its limit of virtual time passed, which costs no wall time when nothing else is due.
//!
//! # Driving it
//!
//! [`Sim::step`] processes everything due at the current instant: due [`sleep`]s fire, due
//! packets are delivered, the hosts run (timers, applications, transmits, events) and their
//! transmits go on the wire. [`Sim::run_until`], [`Sim::run_for`] and [`Sim::block_on`] step
//! and jump virtual time to the next thing due, so idle time costs nothing.
//!
//! [`Driver`]: quicksand_core::Driver

pub mod clock;
pub mod entropy;
mod events;
mod host;
mod network;
mod seeds;
mod sim;
mod tasks;
mod timers;
mod trace;

pub use clock::VirtualTime;
pub use events::{ClockStep, Restart, SimEvent};
pub use host::{Host, WokenConnections};
pub use network::{
    Blackhole, ClientId, Direction, Fate, LinkConfig, LossModel, Network, Packet, PacketFilter,
    BURST_MEMORY,
};
pub use seeds::{assert_same_history, for_each_seed, seed_list};
pub use sim::{
    configs, context, server_certificate, PacketObserver, Sim, SimConfig, CLIENT, SERVER,
};
pub use tasks::{Task, WakeFlag};
pub use timers::{sleep, sleep_until, Sleep};
pub use trace::{Divergence, Trace, TraceEntry};
