//! What differs between runtimes, as one small trait: registering a socket, making a timer,
//! spawning the endpoint task and resolving a name. Everything else — binding, building the
//! endpoints, the task's loop, servers, clients — is written once, in this crate.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use quicksand_udp::UdpSocket;

use crate::{EndpointSocket, EndpointTimer, WorkerReport};

/// A name lookup's result: the first address, `None` when the name has none.
pub type Lookup = Pin<Box<dyn Future<Output = io::Result<Option<SocketAddr>>> + Send>>;

/// A runtime quicksand can run on (`quicksand-tokio`'s `Tokio`, `quicksand-smol`'s `Smol`).
///
/// Like quinn's `Runtime`, it captures only what a reactor and an executor provide; the
/// endpoint task ([`EndpointTask`](crate::EndpointTask)) and every protocol decision are
/// shared. A value of it says where tasks run (a handle, an executor), so it is cheap to
/// clone.
pub trait Runtime: Clone + fmt::Debug + Send + Sync + 'static {
    /// A UDP socket registered with the reactor.
    type Socket: EndpointSocket + Send + 'static;
    /// A timer of the reactor.
    type Timer: EndpointTimer + Send + 'static;
    /// A spawned endpoint task: resolves with its report, or `None` if the task failed
    /// (panicked or was cancelled).
    type Task: Future<Output = Option<WorkerReport>> + Send + Unpin + 'static;

    /// Registers `socket` with the reactor (`is_server`: sized for a server's load).
    fn register(&self, socket: UdpSocket, is_server: bool) -> io::Result<Self::Socket>;
    /// A timer, not armed yet.
    fn timer(&self) -> Self::Timer;
    /// Runs an endpoint task.
    fn spawn(&self, task: impl Future<Output = WorkerReport> + Send + 'static) -> Self::Task;
    /// Lets a task run on without anyone awaiting it.
    fn detach(&self, task: Self::Task);
    /// Runs a task detached: a runner of an endpoint task's handler pool (see
    /// `Handlers::Spawned`), or a request handler spawned outside an endpoint task.
    fn spawn_handler(&self, handler: Pin<Box<dyn Future<Output = ()> + Send>>);
    /// Resolves `host` to its first address for `port`.
    fn resolve(&self, host: String, port: u16) -> Lookup;
}
