//! `listen` and `serve`: server endpoints on one or several `SO_REUSEPORT` sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_executor::Task;
use quicksand_adapter::{
    build_workers, ServerOptions, SharedDrain, ShutdownHandle, ShutdownReport,
};
use quicksand_core::{Application, Incoming};
use quicksand_h3::{ServerDriver, Service};

use crate::config::spawn;
use crate::endpoint::{EndpointTask, Timer};
use crate::io::Socket;
use crate::{EndpointStats, WorkerReport};
use crate::{Error, ServerConfig};

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

impl Server {
    /// The address the sockets are bound to (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Each socket's endpoint counters, in worker order (empty once the server stopped).
    pub async fn stats(&self) -> Vec<EndpointStats> {
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

fn listen_inner<A, F>(
    addr: SocketAddr,
    config: ServerConfig,
    accept: F,
    drain: Option<SharedDrain<A>>,
) -> Result<Server, Error>
where
    A: Application + Send + 'static,
    F: Fn(&Incoming) -> Option<A> + Send + Sync + 'static,
{
    let params = config.server_params()?;
    let options = ServerOptions {
        workers: config.workers,
        socket: &config.socket,
        endpoint: &config.endpoint,
        params: &params,
    };
    let (local_addr, handle, workers) = build_workers(addr, options, accept, drain)?;
    let mut tasks = Vec::with_capacity(workers.len());
    for w in workers {
        let socket = Socket::new(w.socket, true).map_err(Error::Register)?;
        let task = EndpointTask::server(
            w.driver,
            socket,
            Timer::new(),
            w.control,
            w.siblings,
            w.drain,
        );
        tasks.push(spawn(config.executor.as_ref(), task));
    }
    Ok(Server {
        local_addr,
        handle,
        tasks,
    })
}
