//! Connection IDs: how they are made and the stateless-reset tokens that go with them.

mod quic_lb;

pub use quic_lb::{QuicLbConnectionIds, QuicLbDecoder, QuicLbError};

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use boring::hash::MessageDigest;
use boring::hmac::Hmac;
use quiche::ConnectionId;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// The length of connection IDs quicksand issues by default: 8 bytes, as quinn's.
///
/// 64 random bits make a CID unguessable, and shorter IDs leave room in the server's transport
/// parameters, which quiche must fit into 128 bytes together with a client's 20-byte original
/// DCID (see [`ServerTransportParams`](crate::ServerTransportParams)). With 8-byte IDs every
/// setting can take its largest accepted value.
pub const DEFAULT_CID_LEN: usize = 8;

/// Makes the source connection IDs an endpoint issues.
///
/// All CIDs of one endpoint have one length, so short-header packets can be routed by their
/// first bytes. Implementations may encode routing information (see the QUIC-LB generator).
pub trait ConnectionIdGenerator: Send + Sync + fmt::Debug {
    /// A new connection ID, unpredictable to outsiders.
    fn generate(&self) -> ConnectionId<'static>;

    /// The length of every ID this generator makes (1 ..= 20).
    fn cid_len(&self) -> usize;
}

/// Unpredictable bytes without a lock, for generators shared by every connection of an
/// endpoint: ChaCha12 keyed once (from the OS, or from a seed for simulations), one keystream
/// per call, picked by an atomic counter. Concurrent calls never get the same stream, and one
/// seed with one order of calls gives the same bytes.
pub(crate) struct KeyedRandom {
    key: [u8; 32],
    next: AtomicU64,
}

impl KeyedRandom {
    pub(crate) fn from_os() -> Self {
        Self::from_rng(StdRng::from_os_rng())
    }

    pub(crate) fn with_seed(seed: u64) -> Self {
        Self::from_rng(StdRng::seed_from_u64(seed))
    }

    fn from_rng(mut rng: StdRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        KeyedRandom {
            key,
            next: AtomicU64::new(0),
        }
    }

    /// Fills `out` from the next keystream.
    pub(crate) fn fill(&self, out: &mut [u8]) {
        let mut rng = ChaCha12Rng::from_seed(self.key);
        rng.set_stream(self.next.fetch_add(1, Ordering::Relaxed));
        rng.fill_bytes(out);
    }
}

impl fmt::Debug for KeyedRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRandom").finish_non_exhaustive()
    }
}

/// Random connection IDs from a cryptographic RNG (ChaCha12), seedable for simulations.
#[derive(Debug)]
pub struct RandomConnectionIds {
    len: usize,
    rng: KeyedRandom,
}

impl RandomConnectionIds {
    /// IDs of `len` bytes (clamped to 1 ..= 20) from an RNG seeded by the OS.
    pub fn new(len: usize) -> Self {
        Self::from_rng(len, KeyedRandom::from_os())
    }

    /// IDs of `len` bytes from an RNG seeded with `seed`: the same seed gives the same IDs.
    pub fn with_seed(len: usize, seed: u64) -> Self {
        Self::from_rng(len, KeyedRandom::with_seed(seed))
    }

    fn from_rng(len: usize, rng: KeyedRandom) -> Self {
        RandomConnectionIds {
            len: len.clamp(1, quiche::MAX_CONN_ID_LEN),
            rng,
        }
    }
}

impl Default for RandomConnectionIds {
    fn default() -> Self {
        Self::new(DEFAULT_CID_LEN)
    }
}

impl ConnectionIdGenerator for RandomConnectionIds {
    fn generate(&self) -> ConnectionId<'static> {
        let mut id = vec![0; self.len];
        self.rng.fill(&mut id);
        ConnectionId::from_vec(id)
    }

    fn cid_len(&self) -> usize {
        self.len
    }
}

/// The static key stateless-reset tokens are derived from (RFC 9000 §10.3.2).
///
/// The token for a CID is HMAC-SHA256(key, CID) truncated to 16 bytes, so any process holding
/// the key can reset a connection it has lost, and nobody without it can forge a reset.
pub struct StatelessResetKey {
    secret: Vec<u8>,
}

impl StatelessResetKey {
    /// A key from secret bytes (at least 16, ideally 32).
    pub fn new(secret: &[u8]) -> Self {
        StatelessResetKey {
            secret: secret.to_vec(),
        }
    }

    /// A key from 32 random bytes.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        StdRng::from_os_rng().fill_bytes(&mut secret);
        Self::from_array(secret)
    }

    /// A key from a seed, for reproducible simulations only.
    pub fn with_seed(seed: u64) -> Self {
        let mut secret = [0u8; 32];
        StdRng::seed_from_u64(seed).fill_bytes(&mut secret);
        Self::from_array(secret)
    }

    fn from_array(secret: [u8; 32]) -> Self {
        Self::new(&secret)
    }

    /// The reset token for `cid`.
    pub fn token(&self, cid: &[u8]) -> u128 {
        let mac = Hmac::init(&self.secret, &MessageDigest::sha256()).and_then(|mut h| {
            h.update(cid)?;
            h.finalize()
        });
        // HMAC-SHA256 fails only if BoringSSL cannot allocate; a zero token then makes our
        // resets unrecognised, it never forges one.
        let mut token = [0u8; 16];
        if let Some(mac) = mac.ok().filter(|m| m.len() >= 16) {
            token.copy_from_slice(&mac[..16]);
        }
        u128::from_be_bytes(token)
    }
}

impl fmt::Debug for StatelessResetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatelessResetKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_and_have_the_length() {
        let a = RandomConnectionIds::with_seed(8, 7);
        let b = RandomConnectionIds::with_seed(8, 7);
        let ids: Vec<_> = (0..4).map(|_| a.generate()).collect();
        assert!(ids.iter().all(|id| id.len() == 8));
        assert_eq!(ids, (0..4).map(|_| b.generate()).collect::<Vec<_>>());
        assert_ne!(ids[0], ids[1]);
        assert_eq!(RandomConnectionIds::new(40).cid_len(), 20);
    }

    #[test]
    fn reset_tokens_depend_on_key_and_cid() {
        let k1 = StatelessResetKey::with_seed(1);
        let k2 = StatelessResetKey::with_seed(2);
        assert_eq!(
            k1.token(b"abc"),
            StatelessResetKey::with_seed(1).token(b"abc")
        );
        assert_ne!(k1.token(b"abc"), k1.token(b"abd"));
        assert_ne!(k1.token(b"abc"), k2.token(b"abc"));
        assert_ne!(k1.token(b"abc"), 0);
    }
}
