//! `listen` and `serve`: server endpoints on one or several `SO_REUSEPORT` sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_executor::Task;
use futures_channel::mpsc;
use quicksand_core::driver_workers::Workers;
use quicksand_core::{Application, ConnectionContext, Driver, Endpoint, Incoming, QuicConfig};
use quicksand_h3::{ServerDriver, Service};
use quicksand_udp::UdpSocket;

use crate::config::spawn;
use crate::endpoint::{Control, DrainFn, EndpointTask, Siblings, Timer};
use crate::io::Socket;
use crate::{EndpointStats, WorkerReport};
use crate::{Error, ServerConfig};

/// H3_NO_ERROR: the code connections still open at the shutdown deadline are closed with.
pub const SHUTDOWN_CODE: u64 = 0x100;

/// A running server: its sockets' endpoint tasks. Dropping it leaves them running (detached);
/// stop them with [`shutdown`](Self::shutdown) or a [`ShutdownHandle`].
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    handle: ShutdownHandle,
    tasks: Vec<Task<WorkerReport>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.detach();
        }
    }
}

/// Starts a graceful shutdown of a [`Server`] from anywhere; cloneable.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    workers: Vec<mpsc::UnboundedSender<Control>>,
}

impl ShutdownHandle {
    /// Stops accepting connections, asks each connection to finish (HTTP/3: GOAWAY, in-flight
    /// requests complete, then the connection closes) and closes whatever is still open after
    /// `grace` with [`SHUTDOWN_CODE`].
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &self.workers {
            let _ = w.unbounded_send(Control::Shutdown {
                deadline,
                code: SHUTDOWN_CODE,
            });
        }
    }
}

/// What a shutdown found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that were still open at the deadline and were closed with
    /// [`SHUTDOWN_CODE`].
    pub forced_closed: usize,
}

impl Server {
    /// The address the sockets are bound to (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Each socket's endpoint counters, in worker order (empty once the server stopped).
    pub async fn stats(&self) -> Vec<EndpointStats> {
        let mut out = Vec::new();
        for w in &self.handle.workers {
            let (tx, rx) = futures_channel::oneshot::channel();
            if w.unbounded_send(Control::Stats(tx)).is_ok() {
                if let Ok(s) = rx.await {
                    out.push(s);
                }
            }
        }
        out
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
            report.forced_closed += t.await.forced_closed;
        }
        report
    }
}

/// Serves HTTP/3 on `addr`: every request is answered by `service`, any
/// `async fn(Request<RecvBody>) -> Response<Body>`. Handlers run inside their connection's
/// endpoint task (see `quicksand_h3::ServerDriver::with_service`); spawn CPU-heavy work.
///
/// Tasks run on [`ServerConfig::executor`] (or the global executor).
pub fn serve<S: Service>(
    addr: SocketAddr,
    config: ServerConfig,
    service: S,
) -> Result<Server, Error> {
    let service = Arc::new(service);
    let settings = config.h3.clone();
    let accept = move |_: &Incoming| {
        let service = service.clone();
        Some(ServerDriver::with_service(settings.clone(), move |req| {
            service.call(req)
        }))
    };
    listen_inner(
        addr,
        config,
        accept,
        Some(Arc::new(|app: &ServerDriver| app.handle().goaway())),
    )
}

/// Listens on `addr` with any [`Application`]: `accept` picks the application of each new
/// connection (or refuses it with `None`). With `config.workers > 1` it binds that many
/// `SO_REUSEPORT` sockets, one endpoint task each.
///
/// Shutdown stops accepting and waits for the connections to close until the deadline.
/// Tasks run on [`ServerConfig::executor`] (or the global executor).
pub fn listen<A, F>(addr: SocketAddr, config: ServerConfig, accept: F) -> Result<Server, Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    listen_inner(addr, config, accept, None)
}

type SharedDrain<A> = Arc<dyn Fn(&A) + Send + Sync>;

fn listen_inner<A, F>(
    addr: SocketAddr,
    mut config: ServerConfig,
    accept: F,
    drain: Option<SharedDrain<A>>,
) -> Result<Server, Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    let count = config.workers;
    let workers = Workers::new(count).map_err(|_| Error::Workers(count))?;
    if count > 1 {
        config.socket.reuse_port = true;
    }
    let params = config.server_params()?;
    let mut sockets = Vec::with_capacity(count);
    let mut bind_addr = addr;
    for _ in 0..count {
        let s = UdpSocket::bind(bind_addr, &config.socket).map_err(|source| Error::Bind {
            addr: bind_addr,
            source,
        })?;
        // Port 0: the others join the port the first one got.
        bind_addr = s
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        sockets.push(s);
    }
    let local_addr = bind_addr;
    tracing::info!(%local_addr, workers = count, caps = ?sockets[0].capabilities(), "listening");

    let (txs, rxs): (Vec<_>, Vec<_>) = (0..count).map(|_| mpsc::unbounded()).unzip();
    let accept = Arc::new(accept);
    let base = ConnectionContext::default();
    let mut tasks = Vec::with_capacity(count);
    for (index, (socket, rx)) in sockets.into_iter().zip(rxs).enumerate() {
        let socket = Socket::new(socket, true).map_err(Error::Register)?;
        let ctx = if count > 1 {
            workers.context(index, &base)
        } else {
            base.clone()
        };
        let mut endpoint = Endpoint::new(
            config.endpoint.clone(),
            Some(QuicConfig::server(&params)?),
            ctx,
            Instant::now(),
            SystemTime::now(),
        );
        *endpoint.token_keys_mut() = workers.token_keys();
        let accept = accept.clone();
        let driver = Driver::new(
            endpoint,
            Some(Box::new(move |i: &Incoming| accept(i))),
            socket.gso_segments(),
        );
        let siblings = (count > 1).then(|| Siblings {
            index,
            workers: workers.clone(),
            peers: txs.clone(),
        });
        let drain: Option<DrainFn<A>> = drain.clone().map(|d| Box::new(move |a: &A| d(a)) as _);
        tasks.push(spawn(
            config.executor.as_ref(),
            EndpointTask::server(driver, socket, Timer::new(), rx, siblings, drain),
        ));
    }
    Ok(Server {
        local_addr,
        handle: ShutdownHandle { workers: txs },
        tasks,
    })
}
