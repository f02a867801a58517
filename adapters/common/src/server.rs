//! Building a server's workers (one per `SO_REUSEPORT` socket) and talking to them once they
//! run: everything of `listen` but registering the sockets and spawning the tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_channel::{mpsc, oneshot};
use quicksand_core::driver_workers::Workers;
use quicksand_core::{
    Application, ConnectionContext, ConnectionParams, Driver, Endpoint, EndpointConfig, Incoming,
    QuicConfig,
};
use quicksand_udp::{UdpSocket, UdpSocketConfig};

use crate::{forward_queues, Control, DrainFn, EndpointStats, Error, Siblings};

/// H3_NO_ERROR: the code connections still open at the shutdown deadline are closed with.
pub const SHUTDOWN_CODE: u64 = 0x100;

/// The graceful-shutdown hook shared by every worker (HTTP/3: GOAWAY).
pub type SharedDrain<A> = Arc<dyn Fn(&A) + Send + Sync>;

/// What a server is made of, per socket.
pub struct ServerOptions<'a> {
    /// Sockets to bind (`SO_REUSEPORT` when more than one).
    pub workers: usize,
    /// Socket options.
    pub socket: &'a UdpSocketConfig,
    /// Endpoint policies.
    pub endpoint: &'a EndpointConfig,
    /// Transport and TLS parameters of accepted connections.
    pub params: &'a ConnectionParams,
}

/// One worker, ready for the adapter to register its socket and spawn its
/// [`EndpointTask`](crate::EndpointTask).
pub struct Worker<A: Application> {
    /// The bound socket.
    pub socket: UdpSocket,
    /// The endpoint and its connections.
    pub driver: Driver<A>,
    /// Shutdown, forwarded datagrams and stats requests.
    pub control: mpsc::UnboundedReceiver<Control>,
    /// The other workers, when there are several.
    pub siblings: Option<Siblings>,
    /// The graceful-shutdown hook.
    pub drain: Option<DrainFn<A>>,
}

/// Binds the sockets (the first one picks the port for port 0; the others join it) and
/// builds each worker's driver. Workers share the certificate, ticket key, reset key and
/// token keys; with several, each one's CIDs carry its worker id.
pub fn build_workers<A, F>(
    addr: SocketAddr,
    options: ServerOptions<'_>,
    accept: F,
    drain: Option<SharedDrain<A>>,
) -> Result<(SocketAddr, ShutdownHandle, Vec<Worker<A>>), Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    let count = options.workers;
    let workers = Workers::new(count).map_err(|_| Error::Workers(count))?;
    let mut socket_config = options.socket.clone();
    if count > 1 {
        socket_config.reuse_port = true;
    }
    let mut sockets = Vec::with_capacity(count);
    let mut bind_addr = addr;
    for _ in 0..count {
        let s = UdpSocket::bind(bind_addr, &socket_config).map_err(|source| Error::Bind {
            addr: bind_addr,
            source,
        })?;
        bind_addr = s
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        sockets.push(s);
    }
    let local_addr = bind_addr;
    tracing::info!(%local_addr, workers = count, caps = ?sockets[0].capabilities(), "listening");

    let (txs, rxs): (Vec<_>, Vec<_>) = (0..count).map(|_| mpsc::unbounded()).unzip();
    let (forward, mut forwarded) = forward_queues(count);
    forwarded.reverse();
    let accept = Arc::new(accept);
    let base = ConnectionContext::default();
    let mut out = Vec::with_capacity(count);
    for (index, (socket, control)) in sockets.into_iter().zip(rxs).enumerate() {
        let ctx = if count > 1 {
            workers.context(index, &base)
        } else {
            base.clone()
        };
        let mut endpoint = Endpoint::new(
            options.endpoint.clone(),
            Some(QuicConfig::server(options.params)?),
            ctx,
            Instant::now(),
            SystemTime::now(),
        )?;
        *endpoint.token_keys_mut() = workers.token_keys();
        let accept = accept.clone();
        let driver = Driver::new(
            endpoint,
            Some(Box::new(move |i: &Incoming| accept(i))),
            socket.gso_segments(),
        );
        let forwarded = forwarded.pop().expect("one queue per worker");
        let siblings = (count > 1).then(|| Siblings {
            index,
            workers: workers.clone(),
            forward: forward.clone(),
            forwarded,
        });
        let drain: Option<DrainFn<A>> = drain.clone().map(|d| Box::new(move |a: &A| d(a)) as _);
        out.push(Worker {
            socket,
            driver,
            control,
            siblings,
            drain,
        });
    }
    Ok((local_addr, ShutdownHandle { workers: txs }, out))
}

/// Starts a graceful shutdown of a server from anywhere; cloneable.
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

    /// Each socket's endpoint counters, in worker order (empty once the server stopped).
    pub async fn stats(&self) -> Vec<EndpointStats> {
        let mut out = Vec::new();
        for w in &self.workers {
            let (tx, rx) = oneshot::channel();
            if w.unbounded_send(Control::Stats(tx)).is_ok() {
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
    /// Connections that were still open at the deadline and were closed with
    /// [`SHUTDOWN_CODE`].
    pub forced_closed: usize,
}
