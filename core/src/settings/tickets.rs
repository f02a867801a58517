//! Session-ticket keys that rotate on a schedule every host of a fleet agrees on.
//!
//! A fixed ticket key (`TlsSettings::ticket_key`) lets servers resume each other's sessions but
//! never changes, so one leaked key decrypts every ticket ever issued. BoringSSL's own rotation
//! is per process. [`TicketKeys`] derives the key of each period from a shared master: hosts
//! that share the master seal and open the same tickets, and the key moves on every period.
//!
//! The core reads no clock: the endpoint tells the keys what period it is
//! ([`QuicConfig::set_ticket_time`](super::QuicConfig::set_ticket_time), called with its wall
//! time on every input), and BoringSSL's ticket callback reads that period.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use boring::hash::MessageDigest;
use boring::hmac::HmacCtxRef;
use boring::ssl::{SslContextBuilder, SslRef, TicketKeyCallbackResult};
use boring::symm::{Cipher, CipherCtxRef};

/// The first bytes of every ticket key name quicksand issues.
const NAME_MAGIC: &[u8; 8] = b"qsandtk1";
/// "No period yet": the endpoint has not told the keys the time.
const UNSET: u64 = u64::MAX;

/// A session-ticket key schedule derived from a master secret; see the module docs.
///
/// The key of period `n` (wall time divided by the period) is
/// HMAC-SHA256(master, "quicksand ticket key" ‖ n): its first half encrypts (AES-128-CBC), its
/// second half authenticates (HMAC-SHA256). Tickets sealed in period `n` open until period
/// `n + ACCEPTED_PERIODS`; one opened after its own period resumes and the client gets a fresh
/// ticket. With the default period a ticket resumes for one to two days, BoringSSL's
/// default TLS 1.3 session lifetime.
///
/// ```
/// use quicksand_core::TicketKeys;
/// let keys = TicketKeys::derived([7; 32], TicketKeys::DEFAULT_PERIOD);
/// assert_eq!(keys.period(), TicketKeys::DEFAULT_PERIOD);
/// ```
#[derive(Clone)]
pub struct TicketKeys {
    master: [u8; 32],
    period: Duration,
}

impl TicketKeys {
    /// How long one derived key seals tickets: a day.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(24 * 3600);
    /// Periods after its own in which a ticket still opens.
    pub const ACCEPTED_PERIODS: u64 = 1;

    /// Keys derived from `master`, a new one every `period` (at least a second).
    pub fn derived(master: [u8; 32], period: Duration) -> Self {
        TicketKeys {
            master,
            period: period.max(Duration::from_secs(1)),
        }
    }

    /// How long one key seals tickets.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The period `at` falls in.
    fn period_of(&self, at: SystemTime) -> u64 {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        (since.as_millis() / self.period.as_millis().max(1)) as u64
    }

    /// The encryption and authentication keys of period `n`.
    fn keys_of(&self, n: u64) -> Option<([u8; 16], [u8; 16])> {
        let mut info = Vec::with_capacity(28);
        info.extend_from_slice(b"quicksand ticket key");
        info.extend_from_slice(&n.to_be_bytes());
        let secret = boring::hash::hmac_sha256(&self.master, &info).ok()?;
        let mut aes = [0u8; 16];
        let mut mac = [0u8; 16];
        aes.copy_from_slice(&secret[..16]);
        mac.copy_from_slice(&secret[16..]);
        Some((aes, mac))
    }
}

impl PartialEq for TicketKeys {
    fn eq(&self, other: &Self) -> bool {
        self.master == other.master && self.period == other.period
    }
}

impl Eq for TicketKeys {}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TicketKeys")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// The current period, shared by a built config's ticket callback and its endpoint.
#[derive(Clone)]
pub(crate) struct TicketClock {
    keys: TicketKeys,
    period: Arc<AtomicU64>,
}

impl TicketClock {
    /// Installs the ticket callback on `ctx`.
    pub(crate) fn install(keys: &TicketKeys, ctx: &mut SslContextBuilder) -> Self {
        let clock = TicketClock {
            keys: keys.clone(),
            period: Arc::new(AtomicU64::new(UNSET)),
        };
        let shared = clock.clone();
        // SAFETY: the callback fills the key name and IV it is handed and initialises the
        // cipher and HMAC contexts with keys of the lengths their algorithms take.
        unsafe {
            ctx.set_ticket_key_callback(move |_: &SslRef, name, iv, cipher, hmac, encrypt| {
                if encrypt {
                    shared.seal(name, iv, cipher, hmac)
                } else {
                    shared.open(name, iv, cipher, hmac)
                }
            });
        }
        clock
    }

    /// Moves to the period of `wall`; returns how long that period lasts from `wall` on.
    pub(crate) fn set_time(&self, wall: SystemTime) -> Duration {
        self.period
            .store(self.keys.period_of(wall), Ordering::Relaxed);
        let since = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let period = self.keys.period.as_millis().max(1);
        Duration::from_millis((period - since % period) as u64)
    }

    fn seal(
        &self,
        name: &mut [u8; 16],
        iv: &mut [u8; 16],
        cipher: &mut CipherCtxRef,
        hmac: &mut HmacCtxRef,
    ) -> TicketKeyCallbackResult {
        let n = self.period.load(Ordering::Relaxed);
        let Some((aes, mac)) = (n != UNSET).then(|| self.keys.keys_of(n)).flatten() else {
            // No time yet, or HMAC failed: issue no ticket rather than a guessable one.
            return TicketKeyCallbackResult::Noop;
        };
        name[..8].copy_from_slice(NAME_MAGIC);
        name[8..].copy_from_slice(&n.to_be_bytes());
        if boring::rand::rand_bytes(iv).is_err() {
            return TicketKeyCallbackResult::Noop;
        }
        let ok = cipher
            .init_encrypt(&Cipher::aes_128_cbc(), &aes, iv)
            .is_ok()
            && hmac.init(&mac, &MessageDigest::sha256()).is_ok();
        if ok {
            TicketKeyCallbackResult::Success
        } else {
            TicketKeyCallbackResult::Error
        }
    }

    fn open(
        &self,
        name: &[u8; 16],
        iv: &[u8; 16],
        cipher: &mut CipherCtxRef,
        hmac: &mut HmacCtxRef,
    ) -> TicketKeyCallbackResult {
        let now = self.period.load(Ordering::Relaxed);
        if now == UNSET || &name[..8] != NAME_MAGIC {
            return TicketKeyCallbackResult::Noop;
        }
        let mut sealed = [0u8; 8];
        sealed.copy_from_slice(&name[8..]);
        let sealed = u64::from_be_bytes(sealed);
        // From the future (a host whose clock runs ahead by more than a period) or too old:
        // a full handshake.
        if sealed > now || now - sealed > TicketKeys::ACCEPTED_PERIODS {
            return TicketKeyCallbackResult::Noop;
        }
        let Some((aes, mac)) = self.keys.keys_of(sealed) else {
            return TicketKeyCallbackResult::Noop;
        };
        let ok = cipher
            .init_decrypt(&Cipher::aes_128_cbc(), &aes, iv)
            .is_ok()
            && hmac.init(&mac, &MessageDigest::sha256()).is_ok();
        match (ok, sealed == now) {
            (false, _) => TicketKeyCallbackResult::Error,
            (true, true) => TicketKeyCallbackResult::Success,
            (true, false) => TicketKeyCallbackResult::DecryptSuccessRenew,
        }
    }
}
