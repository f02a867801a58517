//! Servers: binding the sockets (one worker per `SO_REUSEPORT` socket), building each
//! worker's endpoint, spawning its task on a [`Runtime`], and talking to the workers once they
//! run.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_channel::{mpsc, oneshot};
use quicksand_core::driver_workers::Workers;
use quicksand_core::{Application, Driver, Endpoint, Incoming, QuicConfig};
use quicksand_udp::{SteeringRule, UdpSocket, UdpSocketConfig};

use crate::{
    forward_queues, EndpointTask, Error, Inbox, PreboundSockets, Runtime, ServerConfig, Siblings,
    WorkerCommand, WorkerStats,
};

/// A running server: its sockets' endpoint tasks. Dropping it leaves them running (detached,
/// whatever the number of workers); stop them with [`shutdown`](Self::shutdown) or a
/// [`ShutdownHandle`], or by ending the runtime.
#[derive(Debug)]
pub struct Server<R: Runtime> {
    local_addr: SocketAddr,
    handle: ShutdownHandle,
    tasks: Vec<R::Task>,
    runtime: R,
}

impl<R: Runtime> Drop for Server<R> {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            self.runtime.detach(t);
        }
    }
}

impl<R: Runtime> Server<R> {
    /// The address the sockets are bound to (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Each socket's endpoint counters, in worker order (empty once the server stopped).
    pub async fn stats(&self) -> Vec<WorkerStats> {
        self.handle.stats().await
    }

    /// A handle that starts a graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Graceful shutdown (see [`ShutdownHandle::shutdown`]); resolves when every socket's task
    /// has ended.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        self.handle.shutdown(grace);
        self.closed().await
    }

    /// Resolves when every socket's task has ended (after a shutdown).
    pub async fn closed(mut self) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        for t in std::mem::take(&mut self.tasks) {
            match t.await {
                Some(r) => report.forced_closed += r.forced_closed,
                None => tracing::error!("an endpoint task failed"),
            }
        }
        report
    }
}

/// Listens on `addr` with any [`Application`], tasks on `runtime`: `accept` picks the
/// application of each new connection (or refuses it with `None`). With `config.workers > 1`
/// it binds that many `SO_REUSEPORT` sockets, one endpoint task each.
///
/// Shutdown stops accepting, calls each connection's
/// [`Application::on_shutdown`](quicksand_core::Application::on_shutdown) and waits for the
/// connections to close until the deadline.
pub fn listen_on<R, A, F>(
    runtime: R,
    addr: SocketAddr,
    config: ServerConfig,
    accept: F,
) -> Result<Server<R>, Error>
where
    R: Runtime,
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    start(runtime, addr, &config, accept)
}

fn start<R, A, F>(
    runtime: R,
    addr: SocketAddr,
    config: &ServerConfig,
    accept: F,
) -> Result<Server<R>, Error>
where
    R: Runtime,
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    let (local_addr, handle, workers) = build_workers(addr, config, accept)?;
    let mut tasks = Vec::with_capacity(workers.len());
    for w in workers {
        let socket = runtime.register(w.socket, true).map_err(Error::Register)?;
        let spawn = {
            let runtime = runtime.clone();
            Arc::new(move |runner| runtime.spawn_handler(runner)) as crate::handlers::SpawnRunner
        };
        let task = EndpointTask::server(
            (w.driver, w.inbox),
            socket,
            runtime.timer(),
            w.control,
            w.siblings,
        )
        .with_handlers(crate::handlers::HandlerPool::new(spawn));
        tasks.push(runtime.spawn(task));
    }
    Ok(Server {
        local_addr,
        handle,
        tasks,
        runtime,
    })
}

/// One worker, ready for the adapter to register its socket and spawn its
/// [`EndpointTask`](crate::EndpointTask).
pub struct Worker<A: Application> {
    /// The bound socket.
    pub socket: UdpSocket,
    /// The endpoint and its connections.
    pub driver: Driver<A>,
    /// Where the driver's connections are woken and commanded (the driver's wake target).
    pub inbox: Arc<Inbox>,
    /// Shutdown, forwarded datagrams and stats requests.
    pub control: mpsc::UnboundedReceiver<WorkerCommand>,
    /// The other workers, when there are several.
    pub siblings: Option<Siblings>,
}

/// Binds the sockets (the first one picks the port for port 0; the others join it), or takes
/// `config.prebound`, and builds each worker's driver. Workers share the certificate and the
/// keys; with several, each one's CIDs carry its worker id.
pub fn build_workers<A, F>(
    addr: SocketAddr,
    config: &ServerConfig,
    accept: F,
) -> Result<(SocketAddr, ShutdownHandle, Vec<Worker<A>>), Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    let sockets = match &config.prebound {
        Some(prebound) => take_prebound(addr, prebound, &config.socket)?,
        None => bind(addr, config.workers, &config.socket)?,
    };
    let count = sockets.len();
    let local_addr = sockets[0]
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    tracing::info!(%local_addr, workers = count, caps = ?sockets[0].capabilities(), "listening");

    let keys = config.keys_or_random()?;
    let params = config.server_params(&keys)?;
    let workers = config.workers(count, &keys)?;
    if config.kernel_steering {
        steer(&sockets[0], &workers);
    }
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..count).map(|_| mpsc::unbounded()).unzip();
    let (forward, mut forwarded) = forward_queues(count);
    forwarded.reverse();
    let accept = Arc::new(accept);
    let base = config.base_context();
    let mut out = Vec::with_capacity(count);
    for (index, (socket, control)) in sockets.into_iter().zip(rxs).enumerate() {
        let mut endpoint = Endpoint::new(
            config.endpoint.clone(),
            Some(QuicConfig::server(&params)?),
            workers.context(index, &base),
            Instant::now(),
            SystemTime::now(),
        )?;
        *endpoint.token_keys_mut() = workers.token_keys();
        let accept = accept.clone();
        let inbox = Arc::new(Inbox::default());
        let driver = Driver::new(
            endpoint,
            Some(Box::new(move |i: &Incoming| accept(i))),
            socket.gso_segments(),
            inbox.clone(),
        );
        let forwarded = forwarded.pop().expect("one queue per worker");
        let siblings = (count > 1).then(|| Siblings {
            index,
            workers: workers.clone(),
            forward: forward.clone(),
            forwarded,
        });
        out.push(Worker {
            socket,
            driver,
            inbox,
            control,
            siblings,
        });
    }
    Ok((local_addr, ShutdownHandle { workers: txs }, out))
}

/// Attaches the workers' steering program to the sockets' `SO_REUSEPORT` group.
fn steer(socket: &UdpSocket, workers: &Workers) {
    let Some(at) = workers.worker_byte() else {
        return;
    };
    let rule = SteeringRule {
        long_offset: at.long_header_offset as u32,
        short_offset: at.short_header_offset as u32,
    };
    match socket.steer_reuseport_group(rule) {
        Ok(()) => tracing::debug!(?rule, "datagrams steered to their worker in the kernel"),
        Err(e) => tracing::warn!(
            error = %e,
            "kernel steering unavailable: datagrams on the wrong socket are forwarded"
        ),
    }
}

/// `count` sockets on `addr`, `SO_REUSEPORT` when more than one.
fn bind(
    addr: SocketAddr,
    count: usize,
    options: &UdpSocketConfig,
) -> Result<Vec<UdpSocket>, Error> {
    if !(1..=256).contains(&count) {
        return Err(Error::Workers(count));
    }
    let mut options = options.clone();
    if count > 1 {
        options.reuse_port = true;
    }
    let mut sockets = Vec::with_capacity(count);
    let mut bind_addr = addr;
    for _ in 0..count {
        let s = UdpSocket::bind(bind_addr, &options).map_err(|source| Error::Bind {
            addr: bind_addr,
            source,
        })?;
        bind_addr = s
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        sockets.push(s);
    }
    Ok(sockets)
}

/// The pre-bound sockets, which must be where `addr` says (an unspecified address or port
/// matches any).
fn take_prebound(
    addr: SocketAddr,
    prebound: &PreboundSockets,
    options: &UdpSocketConfig,
) -> Result<Vec<UdpSocket>, Error> {
    let mismatch = |reason: String| Error::Bind {
        addr,
        source: io::Error::new(io::ErrorKind::InvalidInput, reason),
    };
    if !(1..=256).contains(&prebound.len()) {
        return Err(Error::Workers(prebound.len()));
    }
    let mut out = Vec::with_capacity(prebound.len());
    for std_socket in prebound
        .duplicate()
        .map_err(|source| Error::Bind { addr, source })?
    {
        let at = std_socket
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let ip_ok = addr.ip().is_unspecified() || addr.ip() == at.ip();
        let port_ok = addr.port() == 0 || addr.port() == at.port();
        if !(ip_ok && port_ok) {
            return Err(mismatch(format!("a pre-bound socket is bound to {at}")));
        }
        out.push(
            UdpSocket::from_std(std_socket, options)
                .map_err(|source| Error::Bind { addr: at, source })?,
        );
    }
    Ok(out)
}

/// Starts a graceful shutdown of a server from anywhere; cloneable.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
}

impl ShutdownHandle {
    /// Stops accepting connections, asks each connection to finish (its application's
    /// [`on_shutdown`](quicksand_core::Application::on_shutdown); HTTP/3: GOAWAY, in-flight
    /// requests complete, then the connection closes) and closes whatever is still open after
    /// `grace` with its application's
    /// [`shutdown_close`](quicksand_core::Application::shutdown_close) (HTTP/3: H3_NO_ERROR).
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &self.workers {
            let _ = w.unbounded_send(WorkerCommand::Shutdown { deadline });
        }
    }

    /// Each socket's endpoint counters, in worker order (empty once the server stopped).
    pub async fn stats(&self) -> Vec<WorkerStats> {
        let mut out = Vec::new();
        for w in &self.workers {
            let (tx, rx) = oneshot::channel();
            if w.unbounded_send(WorkerCommand::Stats(tx)).is_ok() {
                if let Ok(s) = rx.await {
                    out.push(s);
                }
            }
        }
        out
    }
}

/// What a shutdown found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that were still open at the deadline and were closed with their
    /// application's shutdown close.
    pub forced_closed: usize,
}
