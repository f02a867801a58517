//! [`Smol`]: quicksand-adapter's [`Runtime`] over smol — sockets registered with async-io's
//! [`Async`](async_io::Async), [`async_io::Timer`]s, tasks on an
//! [`async_executor::Executor`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use async_executor::Executor;
use quicksand_adapter::{EndpointTimer, Lookup, Runtime, WorkerReport};
use quicksand_udp::UdpSocket;

use crate::io::Socket;

/// The smol runtime: tasks run on a given [`Executor`] ([`Smol::on`]) or, by
/// [`Default`], on a global executor with one thread per core, started on first use.
#[derive(Clone, Debug, Default)]
pub struct Smol {
    executor: Option<Arc<Executor<'static>>>,
}

impl Smol {
    /// Tasks on `executor` (run it on as many threads as the server should use).
    pub fn on(executor: Arc<Executor<'static>>) -> Self {
        Smol {
            executor: Some(executor),
        }
    }

    fn executor(&self) -> &Executor<'static> {
        match &self.executor {
            Some(ex) => ex,
            None => global(),
        }
    }
}

impl Runtime for Smol {
    type Socket = Socket;
    type Timer = Timer;
    type Task = Task;

    fn register(&self, socket: UdpSocket, is_server: bool) -> io::Result<Socket> {
        Socket::new(socket, is_server)
    }

    fn timer(&self) -> Timer {
        Timer(async_io::Timer::never())
    }

    fn spawn(&self, task: impl Future<Output = WorkerReport> + Send + 'static) -> Task {
        Task(self.executor().spawn(task))
    }

    fn detach(&self, task: Task) {
        task.0.detach();
    }

    fn spawn_handler(&self, handler: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.executor().spawn(handler).detach();
    }

    fn resolve(&self, host: String, port: u16) -> Lookup {
        Box::pin(blocking::unblock(move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .map(|mut addrs| addrs.next())
        }))
    }
}

/// An executor run by one thread per core, started on first use (as smol's global one).
fn global() -> &'static Executor<'static> {
    static GLOBAL: OnceLock<&'static Executor<'static>> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let ex: &'static Executor<'static> = Box::leak(Box::new(Executor::new()));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            std::thread::Builder::new()
                .name(format!("quicksand-smol-{i}"))
                .spawn(move || async_io::block_on(ex.run(std::future::pending::<()>())))
                .expect("spawning an executor thread");
        }
        ex
    })
}

/// An endpoint task spawned on an executor; dropping it cancels the task (a server detaches
/// its tasks when dropped).
#[derive(Debug)]
pub struct Task(async_executor::Task<WorkerReport>);

impl Future for Task {
    type Output = Option<WorkerReport>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WorkerReport>> {
        Pin::new(&mut self.0).poll(cx).map(Some)
    }
}

/// An async-io timer, re-armed for each deadline.
#[derive(Debug)]
pub struct Timer(async_io::Timer);

impl EndpointTimer for Timer {
    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
