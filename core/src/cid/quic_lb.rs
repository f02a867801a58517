//! Connection IDs that name their server, in QUIC-LB's plaintext format
//! (draft-ietf-quic-load-balancers, §5.2 "Plaintext CID Algorithm").
//!
//! ```text
//! first octet: config id (3 bits) | length − 1 (5 bits)
//! then:        server id (1..=15 bytes) | nonce (4..=18 bytes, random)
//! ```
//!
//! A stateless load balancer, or one socket among several on a host, reads the server id from
//! any CID of a connection with [`QuicLbDecoder`] and forwards the packet to its owner.

use std::fmt;

use quiche::ConnectionId;

use super::{ConnectionIdGenerator, KeyedRandom};

/// A QUIC-LB configuration that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuicLbError {
    /// Config ids are 0..=6 (7 marks unroutable CIDs).
    ConfigId(u8),
    /// Server ids are 1..=15 bytes.
    ServerIdLength(usize),
    /// Nonces are 4..=18 bytes and server id + nonce at most 19 bytes.
    NonceLength(usize),
}

impl fmt::Display for QuicLbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuicLbError::ConfigId(id) => write!(f, "QUIC-LB config id {id} is not in 0..=6"),
            QuicLbError::ServerIdLength(n) => {
                write!(f, "QUIC-LB server id of {n} bytes is not in 1..=15")
            }
            QuicLbError::NonceLength(n) => write!(
                f,
                "QUIC-LB nonce of {n} bytes is not in 4..=18 or makes the CID longer than 20 bytes"
            ),
        }
    }
}

impl std::error::Error for QuicLbError {}

/// Reads the server id out of QUIC-LB plaintext CIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuicLbDecoder {
    config_id: u8,
    server_id_len: usize,
}

impl QuicLbDecoder {
    /// A decoder for CIDs of config `config_id` with `server_id_len`-byte server ids.
    pub fn new(config_id: u8, server_id_len: usize) -> Result<Self, QuicLbError> {
        if config_id > 6 {
            return Err(QuicLbError::ConfigId(config_id));
        }
        if !(1..=15).contains(&server_id_len) {
            return Err(QuicLbError::ServerIdLength(server_id_len));
        }
        Ok(QuicLbDecoder {
            config_id,
            server_id_len,
        })
    }

    /// The server id in `cid`, or `None` if the CID is not of this config (another config id,
    /// unroutable, or too short). Works on the DCID of any packet, long or short header.
    ///
    /// ```
    /// use quicksand_core::{ConnectionIdGenerator, QuicLbConnectionIds, QuicLbDecoder};
    /// let gen = QuicLbConnectionIds::new(1, &[0xab, 0xcd], 8).unwrap();
    /// let cid = gen.generate();
    /// let decoder = QuicLbDecoder::new(1, 2).unwrap();
    /// assert_eq!(decoder.server_id(&cid), Some(&[0xab, 0xcd][..]));
    /// ```
    pub fn server_id<'a>(&self, cid: &'a [u8]) -> Option<&'a [u8]> {
        let first = *cid.first()?;
        if first >> 5 != self.config_id || cid.len() < 1 + self.server_id_len {
            return None;
        }
        Some(&cid[1..1 + self.server_id_len])
    }

    /// The server id in the destination CID of a packet (long or short header; short-header
    /// DCIDs are `cid_len` bytes). What a load balancer, or the socket a packet landed on,
    /// uses to find the worker that owns the connection. `None` for packets whose DCID is not
    /// of this config (e.g. a client's first Initial, whose DCID the client chose).
    pub fn server_id_of_packet<'a>(&self, packet: &'a [u8], cid_len: usize) -> Option<&'a [u8]> {
        let header = crate::endpoint::PacketHeader::parse(packet, cid_len).ok()?;
        self.server_id(header.dcid)
    }
}

/// Makes QUIC-LB plaintext CIDs carrying this server's id.
pub struct QuicLbConnectionIds {
    config_id: u8,
    server_id: Vec<u8>,
    nonce_len: usize,
    rng: KeyedRandom,
}

impl QuicLbConnectionIds {
    /// A generator for `server_id` under config `config_id`, with `nonce_len` random bytes.
    pub fn new(config_id: u8, server_id: &[u8], nonce_len: usize) -> Result<Self, QuicLbError> {
        Self::build(config_id, server_id, nonce_len, KeyedRandom::from_os())
    }

    /// The same with a seeded nonce RNG, for reproducible simulations.
    pub fn with_seed(
        config_id: u8,
        server_id: &[u8],
        nonce_len: usize,
        seed: u64,
    ) -> Result<Self, QuicLbError> {
        Self::build(
            config_id,
            server_id,
            nonce_len,
            KeyedRandom::with_seed(seed),
        )
    }

    fn build(
        config_id: u8,
        server_id: &[u8],
        nonce_len: usize,
        rng: KeyedRandom,
    ) -> Result<Self, QuicLbError> {
        QuicLbDecoder::new(config_id, server_id.len())?;
        if !(4..=18).contains(&nonce_len) || server_id.len() + nonce_len > 19 {
            return Err(QuicLbError::NonceLength(nonce_len));
        }
        Ok(QuicLbConnectionIds {
            config_id,
            server_id: server_id.to_vec(),
            nonce_len,
            rng,
        })
    }

    /// The decoder that reads this generator's CIDs.
    pub fn decoder(&self) -> QuicLbDecoder {
        QuicLbDecoder {
            config_id: self.config_id,
            server_id_len: self.server_id.len(),
        }
    }
}

impl ConnectionIdGenerator for QuicLbConnectionIds {
    fn generate(&self) -> ConnectionId<'static> {
        let len = self.cid_len();
        let mut id = Vec::with_capacity(len);
        id.push((self.config_id << 5) | ((len - 1) as u8 & 0x1f));
        id.extend_from_slice(&self.server_id);
        let mut nonce = [0u8; 18];
        self.rng.fill(&mut nonce[..self.nonce_len]);
        id.extend_from_slice(&nonce[..self.nonce_len]);
        ConnectionId::from_vec(id)
    }

    fn cid_len(&self) -> usize {
        1 + self.server_id.len() + self.nonce_len
    }
}

impl fmt::Debug for QuicLbConnectionIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicLbConnectionIds")
            .field("config_id", &self.config_id)
            .field("server_id", &self.server_id)
            .field("nonce_len", &self.nonce_len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_encode_config_length_and_server() {
        let g = QuicLbConnectionIds::with_seed(2, &[9, 8, 7], 10, 1).unwrap();
        let cid = g.generate();
        assert_eq!(cid.len(), 14);
        assert_eq!(cid[0] >> 5, 2);
        assert_eq!((cid[0] & 0x1f) as usize + 1, 14);
        assert_eq!(g.decoder().server_id(&cid), Some(&[9, 8, 7][..]));
        assert_ne!(g.generate(), cid, "nonces differ");
        // Another config id is not ours.
        assert_eq!(QuicLbDecoder::new(3, 3).unwrap().server_id(&cid), None);
        assert_eq!(g.decoder().server_id(&[]), None);
        assert_eq!(g.decoder().server_id(&[2 << 5]), None);
        let mut short = vec![0x41];
        short.extend_from_slice(&cid);
        short.extend_from_slice(&[0; 30]);
        assert_eq!(
            g.decoder().server_id_of_packet(&short, 14),
            Some(&[9, 8, 7][..])
        );
        let mut long = vec![0xc0, 0, 0, 0, 1, 14];
        long.extend_from_slice(&cid);
        long.push(0);
        assert_eq!(
            g.decoder().server_id_of_packet(&long, 14),
            Some(&[9, 8, 7][..])
        );
        assert_eq!(g.decoder().server_id_of_packet(&[0x41, 1], 14), None);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(
            QuicLbConnectionIds::new(7, &[1], 8).err(),
            Some(QuicLbError::ConfigId(7))
        );
        assert_eq!(
            QuicLbConnectionIds::new(0, &[], 8).err(),
            Some(QuicLbError::ServerIdLength(0))
        );
        assert_eq!(
            QuicLbConnectionIds::new(0, &[1; 4], 3).err(),
            Some(QuicLbError::NonceLength(3))
        );
        assert_eq!(
            QuicLbConnectionIds::new(0, &[1; 15], 5).err(),
            Some(QuicLbError::NonceLength(5))
        );
    }
}
