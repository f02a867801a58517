//! Scheduled events: what happens to a simulation at a chosen virtual instant
//! ([`Sim::schedule`](crate::Sim::schedule)), beside what its links do to each packet.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use quicksand_core::driver::AcceptFn;
use quicksand_core::{Application, Incoming};

use crate::{context, Blackhole, ClientId, Direction, LinkConfig, Sim};

/// Something that happens to the network, the server or the clock at a scheduled instant.
pub enum SimEvent<S: Application> {
    /// Nothing gets through in either direction until [`Heal`](SimEvent::Heal).
    Partition,
    /// Ends a [`Partition`](SimEvent::Partition).
    Heal,
    /// One direction of a client host's links drops everything for this long, from the event
    /// on (the other direction and the other hosts keep working).
    Blackhole(ClientId, Direction, Duration),
    /// One direction of a client host's links becomes this one (latency, loss, bandwidth,
    /// ...), from the event on.
    SetLink(ClientId, Direction, LinkConfig),
    /// A client host's NAT maps it to a new public address: from the event on, the server
    /// sees its packets come from this address (connection migration by rebinding).
    Rebind(ClientId, SocketAddr),
    /// The server process restarts: its connections and every other in-memory state (the
    /// 0-RTT strike register, buffers) are gone, and it serves new connections with the
    /// restart's accept function; whether its keys survive is the [`Restart`]'s choice.
    RestartServer(Restart<S>),
    /// The wall clock (`SystemTime`, what address tokens, session tickets and certificates
    /// are checked against) steps, as an NTP correction or an operator would step it;
    /// monotonic time (`Instant`, what QUIC's timers run on) does not. Both endpoints are
    /// told of the step through `Endpoint::handle_wall_clock`, as the adapters tell theirs.
    WallClock(ClockStep),
    /// Every host stops for this long (a VM paused, a stop-the-world pause): virtual time
    /// passes, packets keep arriving and wait in the hosts' sockets, the hosts and spawned
    /// tasks do not run; then every timer and packet that came due is handled at once. The
    /// network and later scheduled events go on meanwhile, and a [`Sim::block_on`] future is
    /// still polled (it is the test's own code, not a host's).
    Pause(Duration),
}

impl<S: Application> fmt::Debug for SimEvent<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimEvent::Partition => f.write_str("Partition"),
            SimEvent::Heal => f.write_str("Heal"),
            SimEvent::Blackhole(c, d, t) => f
                .debug_tuple("Blackhole")
                .field(c)
                .field(d)
                .field(t)
                .finish(),
            SimEvent::SetLink(c, d, l) => {
                f.debug_tuple("SetLink").field(c).field(d).field(l).finish()
            }
            SimEvent::Rebind(c, a) => f.debug_tuple("Rebind").field(c).field(a).finish(),
            SimEvent::RestartServer(r) => f.debug_tuple("RestartServer").field(r).finish(),
            SimEvent::WallClock(s) => f.debug_tuple("WallClock").field(s).finish(),
            SimEvent::Pause(t) => f.debug_tuple("Pause").field(t).finish(),
        }
    }
}

/// A server restart: whether the new process has the old one's keys, and what it serves.
pub struct Restart<S: Application> {
    pub(crate) keep_keys: bool,
    pub(crate) accept: AcceptFn<S>,
}

impl<S: Application> Restart<S> {
    /// The restarted server has the old one's keys (stateless-reset key, connection-ID
    /// generator, address-token keys), as a server that loads them from a file does: clients
    /// of the old process get a stateless reset they recognise and fail fast.
    pub fn with_keys(accept: impl FnMut(&Incoming) -> Option<S> + Send + 'static) -> Self {
        Restart {
            keep_keys: true,
            accept: Box::new(accept),
        }
    }

    /// The restarted server made new keys (a server with random per-process keys): its
    /// stateless resets mean nothing to clients of the old process, which wait for their idle
    /// timeout, and address tokens of the old process are refused.
    pub fn without_keys(accept: impl FnMut(&Incoming) -> Option<S> + Send + 'static) -> Self {
        Restart {
            keep_keys: false,
            accept: Box::new(accept),
        }
    }
}

impl<S: Application> fmt::Debug for Restart<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restart")
            .field("keep_keys", &self.keep_keys)
            .finish_non_exhaustive()
    }
}

/// A step of the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockStep {
    /// The wall clock jumps ahead by this much.
    Forward(Duration),
    /// The wall clock jumps back by this much.
    Backward(Duration),
}

impl<C: Application, S: Application> Sim<C, S> {
    /// Schedules `event` for `at` after the simulation started (an instant already past: the
    /// next step). Events at one instant happen in the order they were scheduled, before the
    /// hosts run at that instant.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use quicksand_core::NoApplication;
    /// # use quicksand_sim::{Sim, SimConfig, SimEvent};
    /// # quicksand_sim::virtual_clock!();
    /// # fn main() {
    /// let mut sim: Sim<NoApplication, NoApplication> =
    ///     Sim::new(SimConfig::new(1), |_| Some(NoApplication));
    /// sim.schedule(Duration::from_secs(2), SimEvent::Partition);
    /// sim.schedule(Duration::from_secs(9), SimEvent::Heal);
    /// # }
    /// ```
    pub fn schedule(&mut self, at: Duration, event: SimEvent<S>) {
        self.scheduled.push((self.start + at, event));
    }

    /// Events scheduled and not yet happened.
    pub fn pending_events(&self) -> usize {
        self.scheduled.len()
    }

    /// The endpoint config and context of a restarted server process: the current process's
    /// keys (stateless-reset key, connection-ID generator, the endpoint seed its address-token
    /// keys come from) or new ones drawn from the simulation's seed; in-memory state (the 0-RTT
    /// strike register, the buffer pool) is always new. Metrics keep counting in
    /// [`server_metrics`](Sim::server_metrics).
    pub(crate) fn restarted_server(
        &mut self,
        keep_keys: bool,
    ) -> (
        quicksand_core::EndpointConfig,
        quicksand_core::ConnectionContext,
    ) {
        self.restarts += 1;
        let mut config = self.server.endpoint().config().clone();
        let mut ctx = self.server.endpoint().context().clone();
        let fresh = quicksand_core::ConnectionContext::default();
        ctx.anti_replay = fresh.anti_replay;
        ctx.buffers = fresh.buffers;
        if !keep_keys {
            let (keys, _) = context(self.config.seed ^ 0x5e5e ^ (self.restarts << 32));
            ctx.cid_generator = keys.cid_generator;
            ctx.reset_key = keys.reset_key;
            config.seed = config
                .seed
                .map(|seed| crate::sim::derived_seed(seed, self.restarts));
        }
        (config, ctx)
    }

    pub(crate) fn fire_scheduled(&mut self, now: Instant) {
        while let Some(i) = self
            .scheduled
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= now)
            .min_by_key(|(i, (at, _))| (*at, *i))
            .map(|(i, _)| i)
        {
            let (_, event) = self.scheduled.remove(i);
            self.trace.record(now, ("event", format!("{event:?}")));
            self.apply(now, event);
        }
    }

    fn apply(&mut self, now: Instant, event: SimEvent<S>) {
        match event {
            SimEvent::Partition => self.net.partitioned = true,
            SimEvent::Heal => self.net.partitioned = false,
            SimEvent::Blackhole(client, direction, length) => {
                let outage = Blackhole {
                    start: now - self.start,
                    on: length,
                    off: Duration::MAX,
                };
                let link = self.net.client_link_mut(client, direction);
                link.blackholes.push(outage);
            }
            SimEvent::SetLink(client, direction, link) => {
                *self.net.client_link_mut(client, direction) = link;
            }
            SimEvent::Rebind(client, addr) => self.net.rebind(client, addr),
            SimEvent::RestartServer(Restart { keep_keys, accept }) => {
                let (endpoint_config, ctx) = self.restarted_server(keep_keys);
                self.start_server(endpoint_config, ctx, accept);
            }
            SimEvent::WallClock(step) => {
                self.clock.step_wall_clock(step);
                // What the adapters do when a second has passed: compare with the system clock.
                let wall = SystemTime::now();
                let clients = std::iter::once(&mut self.client).chain(&mut self.more_clients);
                for host in clients {
                    host.driver.endpoint_mut().handle_wall_clock(now, wall);
                }
                self.server
                    .driver
                    .endpoint_mut()
                    .handle_wall_clock(now, wall);
            }
            SimEvent::Pause(length) => {
                let until = now + length;
                self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
            }
        }
    }
}
