//! Several drivers on one host: one per `SO_REUSEPORT` socket, each a *worker*.
//!
//! The kernel spreads flows over the sockets by their 4-tuple, so a client that changes address
//! (NAT rebinding, migration) can land on another socket than the one that owns its
//! connection. [`Workers`] gives every worker's endpoint a QUIC-LB connection-ID generator that
//! carries the worker's index as its server id, one shared stateless-reset key and one shared
//! address-token master (so a RETRY or NEW_TOKEN token minted by one worker is accepted by all),
//! and decides for each received packet whether it belongs here or to another worker
//! ([`Workers::route`]). Moving the bytes is the adapter's job.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::endpoint::TokenKeys;
use crate::{
    ConnectionContext, Datagram, QuicLbConnectionIds, QuicLbDecoder, QuicLbError,
    StatelessResetKey, DEFAULT_CID_LEN,
};

/// The QUIC-LB config id the workers' CIDs use.
const CONFIG_ID: u8 = 0;
/// Server ids are one byte: the worker index.
const SERVER_ID_LEN: usize = 1;

/// Where a received packet goes; see [`Workers::route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Handle it on this worker.
    Local,
    /// Hand it to the worker with this index.
    Forward(usize),
}

/// The shared identity of `count` workers on one host. See the module docs.
#[derive(Clone)]
pub struct Workers {
    count: usize,
    decoder: QuicLbDecoder,
    reset_key: Arc<StatelessResetKey>,
    token_master: [u8; 32],
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Identities for `count` workers (1 ..= 256), with a random reset key and token master.
    pub fn new(count: usize) -> Result<Self, QuicLbError> {
        let mut token_master = [0u8; 32];
        StdRng::from_os_rng().fill_bytes(&mut token_master);
        Self::with_keys(count, StatelessResetKey::random(), token_master)
    }

    /// The same with given keys (share them with other hosts behind one load balancer): the
    /// token keys are derived from `token_master` (see [`TokenKeys::derived`]).
    pub fn with_keys(
        count: usize,
        reset_key: StatelessResetKey,
        token_master: [u8; 32],
    ) -> Result<Self, QuicLbError> {
        if !(1..=256).contains(&count) {
            return Err(QuicLbError::ServerIdLength(0));
        }
        Ok(Workers {
            count,
            decoder: QuicLbDecoder::new(CONFIG_ID, SERVER_ID_LEN)?,
            reset_key: Arc::new(reset_key),
            token_master,
        })
    }

    /// How many workers.
    pub fn count(&self) -> usize {
        self.count
    }

    /// `base` with worker `index`'s CID generator and the shared reset key.
    ///
    /// # Panics
    /// If `index` is not below [`count`](Self::count).
    pub fn context(&self, index: usize, base: &ConnectionContext) -> ConnectionContext {
        assert!(index < self.count, "worker {index} of {}", self.count);
        let nonce = DEFAULT_CID_LEN - 1 - SERVER_ID_LEN;
        let server_id = [index as u8];
        let generator = QuicLbConnectionIds::new(CONFIG_ID, &server_id, nonce)
            .expect("a one-byte server id and a default-length nonce are valid");
        ConnectionContext {
            cid_generator: Arc::new(generator),
            reset_key: self.reset_key.clone(),
            ..base.clone()
        }
    }

    /// Token keys every worker's endpoint should use (`*endpoint.token_keys_mut() = ..`): a
    /// new key every [`TokenKeys::DEFAULT_PERIOD`], derived from the shared master.
    pub fn token_keys(&self) -> TokenKeys {
        TokenKeys::derived(self.token_master, TokenKeys::DEFAULT_PERIOD)
    }

    /// Where a packet received by worker `here` goes: to the worker named in its destination
    /// CID, or here when the CID names no worker (a client's first Initial, whose DCID the
    /// client chose, or garbage the endpoint will drop) or names this one.
    pub fn route(&self, here: usize, packet: &[u8]) -> Route {
        match self.decoder.server_id_of_packet(packet, DEFAULT_CID_LEN) {
            Some(&[id]) if usize::from(id) != here && usize::from(id) < self.count => {
                Route::Forward(usize::from(id))
            }
            _ => Route::Local,
        }
    }

    /// Routes every segment of a received datagram on its own: a GRO batch can hold packets
    /// of several connections (a client multiplexing connections over one socket), and
    /// routing the batch by its first segment would hand the others to a worker that does not
    /// know them (and answers them with stateless resets). A batch whose segments all stay
    /// here is delivered whole.
    pub fn route_datagram(
        &self,
        here: usize,
        d: Datagram,
        mut deliver: impl FnMut(Route, Datagram),
    ) {
        let all_here = d
            .segment_payloads()
            .all(|segment| self.route(here, segment) == Route::Local);
        if all_here {
            deliver(Route::Local, d);
            return;
        }
        for segment in d.split_segments() {
            deliver(self.route(here, &segment.payload), segment);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short_header(dcid: &[u8]) -> Vec<u8> {
        let mut p = vec![0x40];
        p.extend_from_slice(dcid);
        p.extend_from_slice(&[0u8; 30]);
        p
    }

    #[test]
    fn packets_route_to_the_worker_whose_cid_they_carry() {
        let w = Workers::new(4).unwrap();
        let base = ConnectionContext::default();
        for owner in 0..4 {
            let cid = w.context(owner, &base).cid_generator.generate();
            assert_eq!(cid.len(), DEFAULT_CID_LEN);
            let p = short_header(&cid);
            for here in 0..4 {
                let want = if here == owner {
                    Route::Local
                } else {
                    Route::Forward(owner)
                };
                assert_eq!(w.route(here, &p), want);
            }
        }
    }

    #[test]
    fn foreign_or_out_of_range_cids_stay_local() {
        let w = Workers::new(2).unwrap();
        // Config id 7 (unroutable) and a server id beyond the worker count.
        let mut cid = [0u8; DEFAULT_CID_LEN];
        cid[0] = 0xe0;
        assert_eq!(w.route(0, &short_header(&cid)), Route::Local);
        cid[0] = 0x0f;
        cid[1] = 9;
        assert_eq!(w.route(1, &short_header(&cid)), Route::Local);
        assert_eq!(w.route(1, &[]), Route::Local);
        assert!(Workers::new(0).is_err());
    }

    #[test]
    fn workers_share_the_reset_key() {
        let w = Workers::new(2).unwrap();
        let base = ConnectionContext::default();
        let (a, b) = (w.context(0, &base), w.context(1, &base));
        assert_eq!(a.reset_key.token(b"cid"), b.reset_key.token(b"cid"));
    }
}
