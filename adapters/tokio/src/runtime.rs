//! [`Tokio`]: quicksand-adapter's [`Runtime`] over tokio — sockets registered with
//! [`AsyncFd`](tokio::io::unix::AsyncFd), `tokio::time` sleeps, `tokio::spawn`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quicksand_adapter::{EndpointTimer, Lookup, Runtime, WorkerReport};
use quicksand_udp::UdpSocket;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use crate::io::Socket;

/// The tokio runtime: tasks go to the runtime this value was made in (the current one for
/// [`Default`], which must be called inside a tokio runtime) or to a given [`Handle`].
#[derive(Clone, Debug)]
pub struct Tokio {
    handle: Handle,
}

impl Default for Tokio {
    /// The runtime the call is made in; panics outside one, as `tokio::spawn` does.
    fn default() -> Self {
        Tokio {
            handle: Handle::current(),
        }
    }
}

impl Tokio {
    /// Tasks on the runtime of `handle`.
    pub fn on(handle: Handle) -> Self {
        Tokio { handle }
    }
}

impl Runtime for Tokio {
    type Socket = Socket;
    type Timer = Timer;
    type Task = Task;

    fn register(&self, socket: UdpSocket, is_server: bool) -> io::Result<Socket> {
        let _guard = self.handle.enter();
        Socket::new(socket, is_server)
    }

    fn timer(&self) -> Timer {
        let _guard = self.handle.enter();
        Timer(Box::pin(tokio::time::sleep(Duration::from_secs(3600))))
    }

    fn spawn(&self, task: impl Future<Output = WorkerReport> + Send + 'static) -> Task {
        Task(self.handle.spawn(task))
    }

    fn detach(&self, task: Task) {
        // Dropping a JoinHandle detaches its task.
        drop(task);
    }

    fn spawn_handler(&self, handler: Pin<Box<dyn Future<Output = ()> + Send>>) {
        drop(self.handle.spawn(handler));
    }

    fn resolve(&self, host: String, port: u16) -> Lookup {
        Box::pin(async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|mut addrs| addrs.next())
        })
    }
}

/// An endpoint task spawned on tokio.
#[derive(Debug)]
pub struct Task(JoinHandle<WorkerReport>);

impl Future for Task {
    type Output = Option<WorkerReport>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WorkerReport>> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::error!(error = %e, "endpoint task failed");
                None
            }
        })
    }
}

/// A tokio sleep, re-armed for each deadline.
pub struct Timer(Pin<Box<Sleep>>);

impl EndpointTimer for Timer {
    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(tokio::time::Instant::from_std(at));
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}
