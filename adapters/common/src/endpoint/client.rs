//! The client half of an endpoint task: connect requests in, handshake results and close
//! reasons out to the connections' handles.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use quicksand_core::{Application, CloseReason, ConnectionKey, Driver, QuicConfig};

use crate::connection::CloseSignal;
use crate::inbox::{CommandSender, ConnectionGone, Inbox};
use crate::{ConnectionInfo, Error};

/// A request to open a client connection.
pub struct Connect<A> {
    pub peer: SocketAddr,
    pub server_name: Option<String>,
    pub app: A,
    pub reply: oneshot::Sender<Result<ConnectionInfo, Error>>,
}

/// What a client endpoint task keeps: its handles' requests and the connections they wait on.
pub(super) struct ClientRole<A: Application> {
    /// `None` once every `Client` handle is gone.
    connects: Option<mpsc::UnboundedReceiver<Connect<A>>>,
    config: QuicConfig,
    /// Connections in their handshake, with who waits for them.
    waiting: HashMap<ConnectionKey, oneshot::Sender<Result<ConnectionInfo, Error>>>,
    /// Established connections' close signals.
    open: HashMap<ConnectionKey, Arc<CloseSignal>>,
}

impl<A: Application> ClientRole<A> {
    pub(super) fn new(config: QuicConfig, connects: mpsc::UnboundedReceiver<Connect<A>>) -> Self {
        ClientRole {
            connects: Some(connects),
            config,
            waiting: HashMap::new(),
            open: HashMap::new(),
        }
    }

    /// Opens the connections asked for.
    pub(super) fn poll_connects(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        driver: &mut Driver<A>,
        local: SocketAddr,
    ) {
        while let Some(rx) = self.connects.as_mut() {
            let c = match Pin::new(rx).poll_next(cx) {
                Poll::Ready(Some(c)) => c,
                Poll::Ready(None) => {
                    self.connects = None;
                    break;
                }
                Poll::Pending => break,
            };
            let server_name = c.server_name.as_deref();
            match driver.connect(now, &mut self.config, server_name, local, c.peer, c.app) {
                Ok(handle) => {
                    self.waiting.insert(handle, c.reply);
                }
                Err(e) => {
                    let _ = c.reply.send(Err(Error::Create(e)));
                }
            }
        }
    }

    /// A handshake completed: hand the connection to whoever asked for it.
    pub(super) fn established(&mut self, handle: ConnectionKey, inbox: &Arc<Inbox>) {
        let Some(reply) = self.waiting.remove(&handle) else {
            return;
        };
        let closed = Arc::new(CloseSignal::default());
        self.open.insert(handle, closed.clone());
        let _ = reply.send(Ok(ConnectionInfo {
            key: handle,
            commands: CommandSender::new(handle, inbox.clone(), closed.clone()),
            closed,
        }));
    }

    /// True if `signal` is the close signal of the open connection under `key` (not of an
    /// earlier one whose key was reused).
    pub(super) fn is_open(&self, key: ConnectionKey, signal: &Arc<CloseSignal>) -> bool {
        self.open.get(&key).is_some_and(|s| Arc::ptr_eq(s, signal))
    }

    /// A connection closed: tell its handles (or its caller, if it never got established).
    pub(super) fn closed(&mut self, handle: ConnectionKey, reason: &CloseReason) {
        if let Some(signal) = self.open.remove(&handle) {
            signal.set(Ok(reason.clone()));
        }
        if let Some(reply) = self.waiting.remove(&handle) {
            let _ = reply.send(Err(Error::Handshake(reason.clone())));
        }
    }

    /// A client ends when every handle is gone (and its connections have closed).
    pub(super) fn finished(&self) -> bool {
        self.connects.is_none()
    }
}

impl<A: Application> Drop for ClientRole<A> {
    fn drop(&mut self) {
        for (_, signal) in self.open.drain() {
            signal.set(Err(ConnectionGone));
        }
    }
}

#[cfg(test)]
mod tests {
    use quicksand_core::NoApplication;

    use super::*;

    /// Keys are reused once a connection ends: a handle of the old connection must not count
    /// as a handle of the new one under the same key (its commands are dropped, not applied).
    #[test]
    fn a_reused_key_does_not_make_an_old_handle_current() {
        let config = crate::ClientConfig::default().quic_config().unwrap();
        let (_tx, rx) = mpsc::unbounded::<Connect<NoApplication>>();
        let mut role = ClientRole::new(config, rx);
        let inbox = Arc::new(Inbox::default());
        let key = ConnectionKey(0);
        let establish = |role: &mut ClientRole<NoApplication>| {
            let (reply, mut answer) = oneshot::channel();
            role.waiting.insert(key, reply);
            role.established(key, &inbox);
            answer.try_recv().unwrap().unwrap().unwrap()
        };
        let first = establish(&mut role);
        assert!(role.is_open(key, &first.closed));
        let reason = CloseReason::IdleTimeout;
        role.closed(key, &reason);
        assert!(!role.is_open(key, &first.closed));
        let second = establish(&mut role);
        assert!(role.is_open(key, &second.closed));
        assert!(
            !role.is_open(key, &first.closed),
            "the old handle's commands would reach the new connection"
        );
    }
}
