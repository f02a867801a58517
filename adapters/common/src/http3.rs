//! HTTP/3 on the generic server and client: [`serve_on`] runs a `quicksand_h3` [`Service`]
//! through [`listen_on`](crate::listen_on) with an HTTP/3 application per connection, and
//! [`H3Connection`], [`connect_on`] and [`get_on`] are the client's conveniences over
//! [`Client::connect_with`](crate::Client::connect_with). Nothing else in this crate knows
//! HTTP/3: this module uses only the generic API, as any other application protocol would, and
//! goes away with the `h3` feature (on by default).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, Uri};
use quicksand_core::{Incoming, Metrics, QuicSettings};
use quicksand_h3::{
    ClientApplication, H3Client, Http3Settings, ServerApplication, Service, Spawner,
};

use crate::{
    any_addr, listen_on, Client, ClientConfig, ConnectionHandle, Error, Runtime, Server,
    ServerConfig,
};

/// Transport settings with `h3` as ALPN and the core's defaults otherwise.
pub fn h3_settings() -> QuicSettings {
    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"h3".to_vec()];
    settings
}

/// Where `serve`'s request handlers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handlers {
    /// Handlers run apart from the socket, as a hyper or tokio-quiche server runs them: each
    /// endpoint task has a runner task that polls its connections' handlers, woken once per
    /// turn of the endpoint task (so on tokio it runs next on the same thread, without a
    /// cross-thread wake-up per request). A handler that computes for long, or blocks,
    /// holds only its runner: packets keep flowing, and handlers waiting behind it get a
    /// helper runner after [`STUCK_AFTER`](crate::STUCK_AFTER) on the runtime's other
    /// threads. Costs a hop to the runner per batch of requests.
    #[default]
    Spawned,
    /// Handlers are polled inside their connection's endpoint task: no spawn, no
    /// cross-thread wake-up, the fastest for handlers that answer at once or only await
    /// I/O. A handler that computes for 200 ms stalls the socket's every connection for
    /// 200 ms.
    Inline,
}

/// Serves HTTP/3 on `addr` with tasks on `runtime`: every request is answered by `service`,
/// any `async fn(Request<RecvBody>) -> Response<Body>`. Handlers run where
/// `config.handlers` says: by default in a task per connection, apart from the socket.
pub fn serve_on<R: Runtime, S: Service>(
    runtime: R,
    addr: SocketAddr,
    config: ServerConfig,
    service: S,
) -> Result<Server<R>, Error> {
    let spawner = match config.handlers {
        Handlers::Spawned => {
            let runtime = runtime.clone();
            // On the pool of the endpoint task that reads the request; a task of its own
            // if an application is somehow run elsewhere.
            Some(Arc::new(move |handler| {
                if let Err(handler) = crate::submit_here(handler) {
                    runtime.spawn_handler(handler)
                }
            }) as Spawner)
        }
        Handlers::Inline => None,
    };
    let accept = h3_accept(service, config.h3.clone(), config.metrics.clone(), spawner);
    listen_on(runtime, addr, config, accept)
}

/// The `accept` function of an HTTP/3 server answering every request with
/// `service`, reporting response statuses to `metrics`, its handlers spawned with `spawner`
/// (or polled in the connection without one) — what `serve` passes to `build_workers`.
pub fn h3_accept<S: Service>(
    service: S,
    settings: Http3Settings,
    metrics: Arc<dyn Metrics>,
    spawner: Option<Spawner>,
) -> impl Fn(&Incoming) -> Option<ServerApplication> + Send + Sync + 'static {
    let service = Arc::new(service);
    move |_: &Incoming| {
        let service = service.clone();
        let driver =
            ServerApplication::with_service(settings.clone(), move |req| service.call(req))
                .with_metrics(metrics.clone());
        Some(match &spawner {
            Some(spawn) => driver.with_spawner(spawn.clone()),
            None => driver,
        })
    }
}

/// An HTTP/3 connection: the [`H3Client`] that sends requests and the [`ConnectionHandle`].
#[derive(Clone, Debug)]
pub struct H3Connection {
    /// Sends requests.
    pub client: H3Client,
    /// Closes the connection, reads statistics.
    pub connection: ConnectionHandle,
}

impl H3Connection {
    /// GETs `url` and reads the whole body.
    pub async fn get(&self, url: &str) -> Result<Response<Bytes>, Error> {
        Ok(self.client.get(url).await?)
    }
}

impl<R: Runtime> Client<R, ClientApplication> {
    /// Opens an HTTP/3 connection to `peer`.
    pub async fn connect(
        &self,
        peer: SocketAddr,
        server_name: &str,
    ) -> Result<H3Connection, Error> {
        let (driver, client) = ClientApplication::new(self.h3.clone());
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
