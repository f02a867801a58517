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

/// The QUIC-LB config id the workers' CIDs use unless one is chosen.
const CONFIG_ID: u8 = 0;
/// Random bytes in every worker CID, at the least: with a one-byte server id this keeps the
/// default CID length.
const MIN_NONCE: usize = DEFAULT_CID_LEN - 2;

/// Where a received packet goes; see [`Workers::route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Handle it on this worker.
    Local,
    /// Hand it to the worker with this index.
    Forward(usize),
}

/// Offsets of the byte that holds the worker index in a QUIC datagram; see
/// [`Workers::worker_byte`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerByte {
    /// In a long-header packet.
    pub long_header_offset: usize,
    /// In a short-header packet.
    pub short_header_offset: usize,
}

/// The shared identity of `count` workers on one host. See the module docs.
///
/// Each worker's QUIC-LB server id is the host's server id (empty unless
/// [`with_server_id`](Self::with_server_id) set one) followed by one byte, the worker's index;
/// a single worker's server id is the host's alone, and without one it keeps the base
/// context's generator.
#[derive(Clone)]
pub struct Workers {
    count: usize,
    config_id: u8,
    host_id: Vec<u8>,
    decoder: Option<QuicLbDecoder>,
    reset_key: Arc<StatelessResetKey>,
    token_master: [u8; 32],
    token_period: std::time::Duration,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.count)
            .field("host_id", &self.host_id)
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
        let mut w = Workers {
            count,
            config_id: CONFIG_ID,
            host_id: Vec::new(),
            decoder: None,
            reset_key: Arc::new(reset_key),
            token_master,
            token_period: TokenKeys::DEFAULT_PERIOD,
        };
        w.decoder = w.build_decoder()?;
        Ok(w)
    }

    /// Names this host in every CID: QUIC-LB config `config_id` (0..=6) and server id
    /// `host_id` (at most 14 bytes with several workers, 15 with one; empty for none), as a
    /// load balancer in front of a fleet is configured to read them.
    pub fn with_server_id(mut self, config_id: u8, host_id: &[u8]) -> Result<Self, QuicLbError> {
        self.config_id = config_id;
        self.host_id = host_id.to_vec();
        self.decoder = self.build_decoder()?;
        // Check the generator can be built for every worker.
        self.generator(self.count - 1).transpose()?;
        Ok(self)
    }

    /// Derives the token keys with a new key every `period` instead of
    /// [`TokenKeys::DEFAULT_PERIOD`] (every host sharing the master must use the same).
    pub fn with_token_period(mut self, period: std::time::Duration) -> Self {
        self.token_period = period;
        self
    }

    /// How many workers.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The server id of worker `index` (empty: none).
    fn server_id(&self, index: usize) -> Vec<u8> {
        let mut id = self.host_id.clone();
        if self.count > 1 {
            id.push(index as u8);
        }
        id
    }

    fn generator(&self, index: usize) -> Option<Result<QuicLbConnectionIds, QuicLbError>> {
        let id = self.server_id(index);
        (!id.is_empty()).then(|| QuicLbConnectionIds::new(self.config_id, &id, nonce_len(id.len())))
    }

    fn build_decoder(&self) -> Result<Option<QuicLbDecoder>, QuicLbError> {
        if self.count == 1 {
            return Ok(None);
        }
        QuicLbDecoder::new(self.config_id, self.host_id.len() + 1).map(Some)
    }

    /// `base` with worker `index`'s CID generator and the shared reset key.
    ///
    /// # Panics
    /// If `index` is not below [`count`](Self::count).
    pub fn context(&self, index: usize, base: &ConnectionContext) -> ConnectionContext {
        assert!(index < self.count, "worker {index} of {}", self.count);
        let cid_generator = match self.generator(index) {
            Some(generator) => {
                Arc::new(generator.expect("server ids were checked when the workers were built"))
            }
            None => base.cid_generator.clone(),
        };
        ConnectionContext {
            cid_generator,
            reset_key: self.reset_key.clone(),
            ..base.clone()
        }
    }

    /// Token keys every worker's endpoint should use (`*endpoint.token_keys_mut() = ..`): a
    /// new key every [`TokenKeys::DEFAULT_PERIOD`], derived from the shared master.
    pub fn token_keys(&self) -> TokenKeys {
        TokenKeys::derived(self.token_master, self.token_period)
    }

    /// Where a packet received by worker `here` goes: to the worker named in its destination
    /// CID, or here when the CID names no worker (a client's first Initial, whose DCID the
    /// client chose, or garbage the endpoint will drop) or names this one.
    pub fn route(&self, here: usize, packet: &[u8]) -> Route {
        let Some(decoder) = &self.decoder else {
            return Route::Local;
        };
        let cid_len = self.cid_len();
        match decoder.server_id_of_packet(packet, cid_len) {
            Some(id) if id.starts_with(&self.host_id) => {
                let worker = usize::from(id[id.len() - 1]);
                if worker != here && worker < self.count {
                    Route::Forward(worker)
                } else {
                    Route::Local
                }
            }
            _ => Route::Local,
        }
    }

    /// Where a datagram's destination CID carries the worker index, for steering datagrams to
    /// their worker's socket in the kernel (`SO_ATTACH_REUSEPORT_CBPF`) so forwarding becomes
    /// the rare fallback; `None` with one worker. For a client's first Initial the byte is
    /// part of the CID the client chose at random: any worker may take that connection.
    pub fn worker_byte(&self) -> Option<WorkerByte> {
        self.decoder?;
        // Skip the QUIC-LB first octet and the host id.
        let in_cid = 1 + self.host_id.len();
        Some(WorkerByte {
            // Flags, version (4), DCID length, DCID.
            long_header_offset: 6 + in_cid,
            // Flags, DCID.
            short_header_offset: 1 + in_cid,
        })
    }

    /// The length of the workers' CIDs.
    fn cid_len(&self) -> usize {
        let id = self.host_id.len() + usize::from(self.count > 1);
        1 + id + nonce_len(id)
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

/// Random bytes after a server id of `id_len` bytes: the default CID length, or longer to keep
/// [`MIN_NONCE`] of them.
fn nonce_len(id_len: usize) -> usize {
    MIN_NONCE.max(DEFAULT_CID_LEN.saturating_sub(1 + id_len))
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
    fn a_host_server_id_prefixes_the_worker_index() {
        let w = Workers::new(3)
            .unwrap()
            .with_server_id(2, &[0xab, 0xcd])
            .unwrap();
        let base = ConnectionContext::default();
        let cid = w.context(2, &base).cid_generator.generate();
        assert_eq!(cid.len(), 1 + 3 + MIN_NONCE);
        assert_eq!(cid[0] >> 5, 2, "config id");
        assert_eq!(&cid[1..4], &[0xab, 0xcd, 2], "host id, then worker");
        assert_eq!(w.route(0, &short_header(&cid)), Route::Forward(2));
        // Another host's CID with the same worker byte stays here (it is not ours to forward).
        let other = Workers::new(3)
            .unwrap()
            .with_server_id(2, &[0xab, 0xce])
            .unwrap();
        let foreign = other.context(2, &base).cid_generator.generate();
        assert_eq!(w.route(0, &short_header(&foreign)), Route::Local);
        // One worker: the host id alone, nothing to route.
        let one = Workers::new(1).unwrap().with_server_id(1, &[7]).unwrap();
        let cid = one.context(0, &base).cid_generator.generate();
        assert_eq!(cid.len(), DEFAULT_CID_LEN);
        assert_eq!(cid[1], 7);
        assert!(Workers::new(2).unwrap().with_server_id(7, &[1]).is_err());
        assert!(Workers::new(2)
            .unwrap()
            .with_server_id(0, &[1; 15])
            .is_err());
    }

    #[test]
    fn the_worker_byte_is_where_the_cid_carries_the_index() {
        let w = Workers::new(4).unwrap().with_server_id(0, &[9, 9]).unwrap();
        let at = w.worker_byte().unwrap();
        let cid = w
            .context(3, &ConnectionContext::default())
            .cid_generator
            .generate();
        assert_eq!(short_header(&cid)[at.short_header_offset], 3);
        let mut long = vec![0xc0, 0, 0, 0, 1, cid.len() as u8];
        long.extend_from_slice(&cid);
        assert_eq!(long[at.long_header_offset], 3);
        assert_eq!(Workers::new(1).unwrap().worker_byte(), None);
    }

    #[test]
    fn workers_share_the_reset_key() {
        let w = Workers::new(2).unwrap();
        let base = ConnectionContext::default();
        let (a, b) = (w.context(0, &base), w.context(1, &base));
        assert_eq!(a.reset_key.token(b"cid"), b.reset_key.token(b"cid"));
    }
}
