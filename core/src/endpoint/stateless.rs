//! Answers the endpoint sends without a connection: version negotiation, RETRY, stateless
//! reset; and the token bucket that rate-limits each kind.
//!
//! Each answer gets a buffer of its own size (at most 1,200 bytes), not one of the pool's
//! 64 KiB send buffers: answers can queue by the hundred under a flood.

use std::time::Instant;

use quiche::ConnectionId;

use crate::{Datagram, PooledBuf, StatelessResetKey, Transmit};

/// The smallest stateless reset we send, RFC 9000 §10.3's minimum: 5 bytes that look like a
/// short header (38 unpredictable bits) and the 16-byte token. A peer recognises a reset by its
/// last 16 bytes once the packet fails to decrypt; quiche does so from 21 bytes on. Resets
/// must stay small because they answer packets one byte shorter: with 8-byte connection IDs a
/// client's ACK-only packet can be 30 bytes.
pub(crate) const MIN_RESET_LEN: usize = 21;

/// The largest answer: no stateless answer needs more than a minimal Initial's size.
const MAX_ANSWER: usize = 1200;

fn reply(dgram: &Datagram, contents: Vec<u8>) -> Transmit {
    Transmit {
        destination: dgram.peer,
        source: dgram.local,
        ecn: None,
        dscp: 0,
        segment_size: None,
        release_at: None,
        contents: PooledBuf::unpooled(contents),
    }
}

/// A version negotiation packet listing the versions we speak.
pub(crate) fn version_negotiation(dgram: &Datagram, dcid: &[u8], scid: &[u8]) -> Option<Transmit> {
    let mut v = vec![0; MAX_ANSWER];
    // We answer with the peer's CIDs swapped.
    let len = quiche::negotiate_version(
        &ConnectionId::from_ref(scid),
        &ConnectionId::from_ref(dcid),
        &mut v,
    )
    .ok()?;
    v.truncate(len);
    v.shrink_to_fit();
    Some(reply(dgram, v))
}

/// A RETRY packet carrying `token`, asking the client to come back to `new_scid`.
pub(crate) fn retry(
    dgram: &Datagram,
    dcid: &[u8],
    scid: &[u8],
    new_scid: &ConnectionId<'_>,
    token: &[u8],
    version: u32,
) -> Option<Transmit> {
    let mut v = vec![0; MAX_ANSWER];
    let len = quiche::retry(
        &ConnectionId::from_ref(scid),
        &ConnectionId::from_ref(dcid),
        new_scid,
        token,
        version,
        &mut v,
    )
    .ok()?;
    v.truncate(len);
    v.shrink_to_fit();
    Some(reply(dgram, v))
}

/// A stateless reset for a short-header packet to the unknown `dcid`: one byte smaller than
/// the packet that triggered it (so two endpoints can never ping-pong resets), never under
/// [`MIN_RESET_LEN`]. `None` when the trigger is too small to answer safely.
pub(crate) fn stateless_reset(
    key: &StatelessResetKey,
    dgram: &Datagram,
    dcid: &[u8],
    unpredictable: &mut impl rand::RngCore,
) -> Option<Transmit> {
    let len = dgram.payload.len().checked_sub(1)?.min(MAX_ANSWER);
    if len < MIN_RESET_LEN {
        return None;
    }
    let mut v = vec![0; len];
    unpredictable.fill_bytes(&mut v[..len - 16]);
    // Short header form: 0b01 fixed bits, the rest unpredictable.
    v[0] = 0b0100_0000 | (v[0] & 0b0011_1111);
    v[len - 16..].copy_from_slice(&key.token(dcid).to_be_bytes());
    Some(reply(dgram, v))
}

/// A token bucket: `rate` events per second, bursts of up to `rate`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    rate: f64,
    budget: f64,
    refilled_at: Option<Instant>,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit {
            rate: per_second as f64,
            budget: per_second as f64,
            refilled_at: None,
        }
    }

    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.refilled_at {
            let gained = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.budget = (self.budget + gained).min(self.rate);
        }
        self.refilled_at = Some(now);
        if self.budget >= 1.0 {
            self.budget -= 1.0;
            true
        } else {
            false
        }
    }
}
