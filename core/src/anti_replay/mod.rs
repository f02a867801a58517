//! 0-RTT anti-replay: early data is used only from the first ClientHello with its random.
//!
//! Early data (0-RTT) has no protection against replay of its own: anyone who recorded a
//! client's first flight can send it again, and quiche accepts it again (quiche issue 2678),
//! so a request in it would run twice. TLS 1.3 leaves the defence to the server
//! (RFC 8446 §8.2, "ClientHello recording"): remember each ClientHello that offered early
//! data and refuse early data from one seen before.
//!
//! How it works here:
//! - A BoringSSL ClientHello callback on server contexts with early data notes the
//!   ClientHello's 32-byte random (the binder covers it, so a replay cannot change it).
//! - When quiche first reports early data on a connection, the connection asks its
//!   context's [`AntiReplay`] whether that random is new. If not (a replay), or if the record is
//!   full, or if no random was noted (a user hook replaced the callback), the connection does
//!   not start its application until the handshake completes. The early data stays buffered
//!   in quiche and is read then, once the client proved it holds the session's keys, which a
//!   replaying attacker cannot do: honest clients lose the 0-RTT speed-up, never a request.
//! - Only ClientHellos that BoringSSL accepted early data from are recorded (a valid ticket and
//!   binder). A ticket can be reused, so one ticket and one Initial per entry can keep the
//!   record full (about 770 a second at the default size); the record then fails closed:
//!   every connection's early data waits for its handshake, which costs speed, never safety.
//!
//! What it guarantees: a replayed flight's early data reaches the application only if it is
//! the first copy seen. An attacker on the path who delays the genuine flight and delivers a
//! copy first gets that copy admitted; the genuine connection's early data is then held and
//! processed after its handshake, as a client's retry in 1-RTT would be. So a request in 0-RTT
//! can run twice under that attack, whatever the server does (RFC 8446 §8): that is why the
//! HTTP/3 server answers non-idempotent early requests with 425 by default.
//!
//! BoringSSL refuses early data whose ticket age is off by more than 60 s
//! (`kMaxTicketAgeSkewSeconds`), so a replay more than 120 s after the original (60 s of skew
//! either way) is refused by TLS itself: the record keeps randoms for
//! [`SharedStrikeRegister::DEFAULT_WINDOW`] (130 s). For a fleet, the record is per process (shared
//! by its workers); a load balancer that sends a client's packets to one host by address keeps
//! a replay from another source address off other hosts only if the balancer routes by
//! connection ID, so a multi-host deployment should share an [`AntiReplay`] implementation
//! (e.g. one backed by a shared store) through [`ConnectionContext`](crate::ConnectionContext).

use std::cell::Cell;
use std::time::Instant;

use boring::ssl::{ClientHello, ExtensionType};

mod shared;

pub use shared::SharedStrikeRegister;

/// Decides whether early data from a ClientHello may be used before the handshake completes.
pub trait AntiReplay: Send + Sync + std::fmt::Debug {
    /// Called once per connection whose early data TLS accepted, with its ClientHello random:
    /// true to use the early data at once (the first time this random is seen), false to
    /// hold it until the handshake completes.
    fn admit(&self, client_random: &[u8; 32], now: Instant) -> bool;
}

/// Every early data admitted, replays included: quiche's own behaviour. Only for clients of a
/// server whose requests are all safe to repeat, or for tests.
#[derive(Debug, Default)]
pub struct AdmitAll;

impl AntiReplay for AdmitAll {
    fn admit(&self, _: &[u8; 32], _: Instant) -> bool {
        true
    }
}

thread_local! {
    /// The random of the last ClientHello that offered early data, from BoringSSL's callback
    /// to the connection whose `recv` ran it. BoringSSL calls back synchronously inside
    /// quiche's `recv`, on the caller's thread, and the connection takes the value right
    /// after, so it never reaches another connection.
    static CLIENT_HELLO_RANDOM: Cell<Option<[u8; 32]>> = const { Cell::new(None) };
}

/// Notes the random of a ClientHello offering early data (called from the server's ClientHello
/// callback, see `settings::tls`). A user hook that sets its own certificate-selection callback
/// replaces that callback; early data then always waits for the handshake (safe, never a
/// replay).
pub(crate) fn note_client_hello(hello: &ClientHello<'_>) {
    if hello.get_extension(ExtensionType::EARLY_DATA).is_some() {
        if let Ok(random) = <[u8; 32]>::try_from(hello.random()) {
            CLIENT_HELLO_RANDOM.set(Some(random));
        }
    }
}

/// The random noted during the last `recv` on this thread, if any.
pub(crate) fn take_client_hello_random() -> Option<[u8; 32]> {
    CLIENT_HELLO_RANDOM.take()
}
