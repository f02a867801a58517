//! Address-validation tokens (RFC 9000 §8.1): sealed with AEAD, bound to the client's
//! address, stamped with their issue time, and openable by every holder of the keys.
//!
//! Wire format: `kind (1) | key id (1) | nonce (12) | ciphertext | tag (16)`, where kind and
//! key id are authenticated as associated data and the plaintext is
//! `issued (8, ms since the Unix epoch) | address | odcid | retry scid`.
//!
//! RETRY tokens bind IP and port (the client answers from the same socket at once);
//! NEW_TOKEN tokens bind the IP only (a returning client has a new port). Note: quiche neither
//! sends NEW_TOKEN frames nor lets a client put a token in its Initial, so NEW_TOKEN tokens
//! reach quicksand only from other clients; the endpoint validates them all the same.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use boring::aead::{AeadCtx, Algorithm};
use quiche::ConnectionId;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;

/// What a token was minted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Sent in a RETRY packet, echoed in the client's next Initial.
    Retry,
    /// Sent in a NEW_TOKEN frame for a future connection.
    NewToken,
}

impl TokenKind {
    fn to_byte(self) -> u8 {
        match self {
            TokenKind::Retry => 0x52,
            TokenKind::NewToken => 0x4e,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x52 => Some(TokenKind::Retry),
            0x4e => Some(TokenKind::NewToken),
            _ => None,
        }
    }
}

/// How long tokens of each kind stay valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// RETRY tokens: the client echoes them within a round trip. Default: 10 s.
    pub retry: Duration,
    /// NEW_TOKEN tokens: for a later connection. Default: 24 h.
    pub new_token: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        TokenLifetimes {
            retry: Duration::from_secs(10),
            new_token: Duration::from_secs(24 * 3600),
        }
    }
}

/// The contents of a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressToken {
    /// What it was minted for.
    pub kind: TokenKind,
    /// When it was minted (millisecond precision).
    pub issued: SystemTime,
    /// The client address it is bound to (port 0 for NEW_TOKEN tokens).
    pub address: SocketAddr,
    /// RETRY: the DCID of the client's first Initial.
    pub original_dcid: ConnectionId<'static>,
    /// RETRY: the SCID of our RETRY packet.
    pub retry_scid: ConnectionId<'static>,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Too short or of an unknown kind: not one of ours.
    Malformed,
    /// Sealed with a key we no longer (or never) had.
    UnknownKey,
    /// Authentication failed: forged or altered.
    Forged,
    /// Older than the token lifetime (or issued in the future beyond clock skew).
    Expired,
    /// Minted for another client address.
    WrongAddress,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::UnknownKey => "token sealed with an unknown key",
            TokenError::Forged => "token failed authentication",
            TokenError::Expired => "token expired",
            TokenError::WrongAddress => "token minted for another address",
        })
    }
}

impl std::error::Error for TokenError {}

/// A 256-bit token key with a one-byte id, so tokens say which key sealed them.
#[derive(Clone)]
pub struct TokenKey {
    id: u8,
    secret: [u8; 32],
}

impl TokenKey {
    /// A key from secret bytes. Share `(id, secret)` between sockets, processes or hosts that
    /// should accept each other's tokens.
    pub fn new(id: u8, secret: [u8; 32]) -> Self {
        TokenKey { id, secret }
    }

    /// A random key.
    pub fn random(id: u8) -> Self {
        let mut secret = [0u8; 32];
        StdRng::from_os_rng().fill_bytes(&mut secret);
        TokenKey { id, secret }
    }

    /// The key's id.
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey(id {})", self.id)
    }
}

/// The current token key and the previous one (still accepted after a rotation), with the
/// nonce source.
pub struct TokenKeys {
    current: TokenKey,
    previous: Option<TokenKey>,
    nonces: StdRng,
}

impl TokenKeys {
    /// Keys starting with `current`; nonces from an OS-seeded RNG.
    pub fn new(current: TokenKey) -> Self {
        TokenKeys {
            current,
            previous: None,
            nonces: StdRng::from_os_rng(),
        }
    }

    /// The kind a token claims to be, before opening it (unauthenticated).
    pub fn claimed_kind(bytes: &[u8]) -> Option<TokenKind> {
        bytes.first().copied().and_then(TokenKind::from_byte)
    }

    /// Keys with nonces from a seeded RNG, for reproducible simulations.
    pub fn with_seed(current: TokenKey, seed: u64) -> Self {
        TokenKeys {
            current,
            previous: None,
            nonces: StdRng::seed_from_u64(seed),
        }
    }

    /// Makes `next` the sealing key; the current one stays valid for opening.
    pub fn rotate(&mut self, next: TokenKey) {
        self.previous = Some(std::mem::replace(&mut self.current, next));
    }

    /// Seals a token.
    pub fn seal(&mut self, token: &AddressToken) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64 + TAG_LEN);
        out.push(token.kind.to_byte());
        out.push(self.current.id);
        let mut nonce = [0u8; NONCE_LEN];
        self.nonces.fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let issued = token
            .issued
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        out.extend_from_slice(&issued.to_be_bytes());
        encode_addr(&mut out, token.address);
        for cid in [&token.original_dcid, &token.retry_scid] {
            out.push(cid.len() as u8);
            out.extend_from_slice(cid);
        }
        let mut tag = [0u8; TAG_LEN];
        let (ad, rest) = out.split_at_mut(2);
        let (nonce, plaintext) = rest.split_at_mut(NONCE_LEN);
        let sealed = aead(&self.current.secret).and_then(|mut ctx| {
            ctx.seal_in_place_mut(nonce, plaintext, &mut tag, ad)
                .map(|t| t.len())
        });
        // AES-256-GCM with a 32-byte key and 12-byte nonce only fails on allocation failure;
        // an all-zero tag then makes the token fail to open, never open wrongly.
        if sealed.is_err() {
            tag = [0; TAG_LEN];
        }
        out.extend_from_slice(&tag);
        out
    }

    /// Opens and checks a token: authentic, of a known key, not older than its kind's
    /// lifetime at `now`, and minted for `peer` (IP and port for RETRY tokens, IP for
    /// NEW_TOKEN ones).
    pub fn open(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
        now: SystemTime,
        lifetimes: TokenLifetimes,
    ) -> Result<AddressToken, TokenError> {
        if bytes.len() < HEADER_LEN + 8 + 1 + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let kind = TokenKind::from_byte(bytes[0]).ok_or(TokenError::Malformed)?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == bytes[1])
            .ok_or(TokenError::UnknownKey)?;
        let (ad, rest) = bytes.split_at(2);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        aead(&key.secret)
            .and_then(|mut ctx| ctx.open_in_place_mut(nonce, &mut plaintext, tag, ad))
            .map_err(|_| TokenError::Forged)?;
        let token = decode_plaintext(kind, &plaintext).ok_or(TokenError::Malformed)?;

        // Allow a little clock skew between hosts sharing keys.
        let skew = Duration::from_secs(5);
        let lifetime = match kind {
            TokenKind::Retry => lifetimes.retry,
            TokenKind::NewToken => lifetimes.new_token,
        };
        let age_ok = match now.duration_since(token.issued) {
            Ok(age) => age <= lifetime,
            Err(e) => e.duration() <= skew,
        };
        if !age_ok {
            return Err(TokenError::Expired);
        }
        let address_ok = match kind {
            TokenKind::Retry => token.address == peer,
            TokenKind::NewToken => token.address.ip() == canonical_ip(peer.ip()),
        };
        if !address_ok {
            return Err(TokenError::WrongAddress);
        }
        Ok(token)
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("current", &self.current)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

fn aead(secret: &[u8; 32]) -> Result<AeadCtx, boring::error::ErrorStack> {
    AeadCtx::new_default_tag(&Algorithm::aes_256_gcm(), secret)
}

/// IPv4-mapped IPv6 addresses compare as their IPv4 form.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn encode_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match canonical_ip(addr.ip()) {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn decode_plaintext(kind: TokenKind, p: &[u8]) -> Option<AddressToken> {
    let mut r = Reader(p);
    let issued =
        UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(r.take(8)?.try_into().ok()?));
    let ip: IpAddr = match r.take(1)?[0] {
        4 => <[u8; 4]>::try_from(r.take(4)?).ok()?.into(),
        6 => <[u8; 16]>::try_from(r.take(16)?).ok()?.into(),
        _ => return None,
    };
    let port = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
    let mut cids = [ConnectionId::default(), ConnectionId::default()];
    for cid in &mut cids {
        let len = r.take(1)?[0] as usize;
        if len > quiche::MAX_CONN_ID_LEN {
            return None;
        }
        *cid = ConnectionId::from_vec(r.take(len)?.to_vec());
    }
    if !r.0.is_empty() {
        return None;
    }
    let [original_dcid, retry_scid] = cids;
    Some(AddressToken {
        kind,
        issued,
        address: SocketAddr::new(ip, port),
        original_dcid,
        retry_scid,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
}
