//! Client endpoints: one socket carries any number of connections.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use http::{Response, Uri};
use quicksand_core::{Application, Driver, Endpoint};
use quicksand_h3::{ClientDriver, Http3Settings};
use quicksand_udp::UdpSocket;

use crate::{ClientConfig, Connect, Connection, EndpointTask, Error, H3Connection, Runtime};

/// A client endpoint: a socket and its task. Clone it freely; the task ends when every clone
/// is dropped and its connections have closed.
pub struct Client<R: Runtime, A: Application = ClientDriver> {
    tx: mpsc::UnboundedSender<Connect<A>>,
    local_addr: SocketAddr,
    h3: Http3Settings,
    runtime: R,
}

impl<R: Runtime, A: Application> Clone for Client<R, A> {
    fn clone(&self) -> Self {
        Client {
            tx: self.tx.clone(),
            local_addr: self.local_addr,
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
        let driver = Driver::new(endpoint, None, gso_segments);
        let (tx, rx) = mpsc::unbounded();
        let task = EndpointTask::client(driver, socket, runtime.timer(), quic, rx);
        // Detached: it ends by itself once every handle is gone and its connections closed.
        runtime.detach(runtime.spawn(task));
        Ok(Client {
            tx,
            local_addr,
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
    ) -> Result<Connection, Error> {
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
        Ok(Connection::from(info))
    }
}

impl<R: Runtime> Client<R, ClientDriver> {
    /// Opens an HTTP/3 connection to `peer`.
    pub async fn connect(
        &self,
        peer: SocketAddr,
        server_name: &str,
    ) -> Result<H3Connection, Error> {
        let (driver, client) = ClientDriver::new(self.h3.clone());
        let connection = self.connect_with(peer, server_name, driver).await?;
        Ok(H3Connection { client, connection })
    }
}

/// Binds a client socket for `peer`'s address family on `runtime` and opens one HTTP/3
/// connection.
pub async fn connect_on<R: Runtime>(
    runtime: R,
    peer: SocketAddr,
    server_name: &str,
    config: ClientConfig,
) -> Result<(Client<R>, H3Connection), Error> {
    let client = Client::bind_on(runtime, any_addr(peer), config)?;
    let conn = client.connect(peer, server_name).await?;
    Ok((client, conn))
}

/// GETs `url` (`https://host[:port]/path`) over a new connection on `runtime` and reads the
/// whole body.
pub async fn get_on<R: Runtime>(
    runtime: R,
    url: &str,
    config: ClientConfig,
) -> Result<Response<Bytes>, Error> {
    let (host, peer) = resolve_on(&runtime, url).await?;
    let (_client, conn) = connect_on(runtime, peer, &host, config).await?;
    conn.get(url).await
}

/// The unspecified address of `peer`'s family, port 0.
pub fn any_addr(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// The host of an `https` URL and its first address (port 443 unless given), looked up on
/// `runtime`.
pub async fn resolve_on<R: Runtime>(runtime: &R, url: &str) -> Result<(String, SocketAddr), Error> {
    let (host, port) = host_port(url)?;
    match runtime.resolve(host.clone(), port).await {
        Ok(Some(addr)) => Ok((host, addr)),
        Ok(None) => Err(Error::Resolve { host, source: None }),
        Err(e) => Err(Error::Resolve {
            host,
            source: Some(e),
        }),
    }
}

/// Host (without IPv6 brackets) and port of an `https` URL.
pub fn host_port(url: &str) -> Result<(String, u16), Error> {
    let bad = |reason| Error::Url {
        url: url.to_string(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("only https:// URLs are fetched over HTTP/3"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}
