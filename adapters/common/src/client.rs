//! Client endpoints: one socket carries any number of connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_channel::{mpsc, oneshot};
use quicksand_core::{Application, Driver, Endpoint};
use quicksand_udp::UdpSocket;

use crate::{ClientConfig, Connect, ConnectionHandle, EndpointTask, Error, Inbox, Runtime};

/// The application a [`Client`] runs when its type names none: HTTP/3's `ClientApplication` with
/// the `h3` feature, a bare QUIC connection without.
#[cfg(feature = "h3")]
pub type DefaultApplication = quicksand_h3::ClientApplication;
/// The application a [`Client`] runs when its type names none: HTTP/3's `ClientApplication` with
/// the `h3` feature, a bare QUIC connection without.
#[cfg(not(feature = "h3"))]
pub type DefaultApplication = quicksand_core::NoApplication;

/// A client endpoint: a socket and its task. Clone it freely; the task ends when every clone
/// is dropped and its connections have closed.
pub struct Client<R: Runtime, A: Application = DefaultApplication> {
    tx: mpsc::UnboundedSender<Connect<A>>,
    local_addr: SocketAddr,
    #[cfg(feature = "h3")]
    pub(crate) h3: quicksand_h3::Http3Settings,
    runtime: R,
}

impl<R: Runtime, A: Application> Clone for Client<R, A> {
    fn clone(&self) -> Self {
        Client {
            tx: self.tx.clone(),
            local_addr: self.local_addr,
            #[cfg(feature = "h3")]
            h3: self.h3.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<R: Runtime, A: Application> std::fmt::Debug for Client<R, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local_addr", &self.local_addr)
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default, A: Application + Send + 'static> Client<R, A> {
    /// Binds a socket on `addr` (`0.0.0.0:0` or `[::]:0` for any) and starts its task on the
    /// runtime's default place (tokio: the current runtime; smol: the global executor).
    pub fn bind(addr: SocketAddr, config: ClientConfig) -> Result<Self, Error> {
        Self::bind_on(R::default(), addr, config)
    }
}

impl<R: Runtime, A: Application + Send + 'static> Client<R, A> {
    /// [`bind`](Self::bind), with the task on `runtime`.
    pub fn bind_on(runtime: R, addr: SocketAddr, config: ClientConfig) -> Result<Self, Error> {
        let quic = config.quic_config()?;
        let socket =
            UdpSocket::bind(addr, &config.socket).map_err(|source| Error::Bind { addr, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let gso_segments = socket.gso_segments();
        let socket = runtime.register(socket, false).map_err(Error::Register)?;
        let endpoint = Endpoint::new(
            config.endpoint.clone(),
            None,
            config.context(),
            Instant::now(),
            SystemTime::now(),
        )?;
        let inbox = Arc::new(Inbox::default());
        let driver = Driver::new(endpoint, None, gso_segments, inbox.clone());
        let (tx, rx) = mpsc::unbounded();
        let task = EndpointTask::client((driver, inbox), socket, runtime.timer(), quic, rx);
        // Detached: it ends by itself once every handle is gone and its connections closed.
        runtime.detach(runtime.spawn(task));
        Ok(Client {
            tx,
            local_addr,
            #[cfg(feature = "h3")]
            h3: config.h3,
            runtime,
        })
    }

    /// The socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a connection to `peer` running `app`; resolves when the handshake completed.
    /// `server_name` is the TLS name to verify (and send as SNI).
    pub async fn connect_with(
        &self,
        peer: SocketAddr,
        server_name: &str,
        app: A,
    ) -> Result<ConnectionHandle, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Connect {
                peer,
                server_name: Some(server_name.to_string()),
                app,
                reply,
            })
            .map_err(|_| Error::EndpointGone)?;
        let info = rx.await.map_err(|_| Error::EndpointGone)??;
        Ok(ConnectionHandle::from(info))
    }
}

/// The unspecified address of `peer`'s family, port 0.
pub fn any_addr(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
