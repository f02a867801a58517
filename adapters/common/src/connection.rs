//! Handles to connections that live in an endpoint task.

use bytes::Bytes;
use http::Response;
use quicksand_core::{CommandSender, ConnectionGone, ConnectionHandle, ConnectionStats};
use quicksand_h3::H3Client;

use crate::Error;

/// A connection whose handshake completed, as the endpoint task reports it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub(crate) handle: ConnectionHandle,
    pub(crate) commands: CommandSender,
}

/// A handle to one established connection: close it, read its statistics. The connection
/// lives in its endpoint's task; dropping this handle does not close it (its application
/// decides: an HTTP/3 client closes when its last `H3Client` is dropped).
#[derive(Clone, Debug)]
pub struct Connection {
    info: ConnectionInfo,
}

impl Connection {
    /// The connection's handle within its endpoint.
    pub fn handle(&self) -> ConnectionHandle {
        self.info.handle
    }

    /// Closes the connection with an application error code.
    pub fn close(&self, code: u64, reason: &[u8]) -> Result<(), ConnectionGone> {
        self.info.commands.close(code, reason.to_vec())
    }

    /// The connection's statistics.
    pub async fn stats(&self) -> Result<ConnectionStats, ConnectionGone> {
        let rx = self.info.commands.stats()?;
        rx.await.map_err(|_| ConnectionGone)
    }

    /// The TLS session to resume on a later connection (`None` until the server sent a
    /// ticket, shortly after the handshake). Put it in the adapter's `ClientConfig::session`.
    pub async fn session(&self) -> Result<Option<Vec<u8>>, ConnectionGone> {
        let rx = self.info.commands.session()?;
        rx.await.map_err(|_| ConnectionGone)
    }

    /// Sends raw commands to the connection.
    pub fn commands(&self) -> &CommandSender {
        &self.info.commands
    }
}

/// An HTTP/3 connection: the [`H3Client`] that sends requests and the [`Connection`].
#[derive(Clone, Debug)]
pub struct H3Connection {
    /// Sends requests.
    pub client: H3Client,
    /// Closes the connection, reads statistics.
    pub connection: Connection,
}

impl H3Connection {
    /// GETs `url` and reads the whole body.
    pub async fn get(&self, url: &str) -> Result<Response<Bytes>, Error> {
        Ok(self.client.get(url).await?)
    }
}

impl From<ConnectionInfo> for Connection {
    fn from(info: ConnectionInfo) -> Self {
        Connection { info }
    }
}
