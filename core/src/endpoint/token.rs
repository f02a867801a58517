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

/// Where token keys come from.
#[derive(Clone)]
enum Schedule {
    /// Fixed keys: `current` seals, `previous` still opens (after [`TokenKeys::rotate`]).
    Fixed {
        current: TokenKey,
        previous: Option<TokenKey>,
    },
    /// A new key each `period` of wall time, derived from `master`, so every holder of the
    /// master agrees on the keys without talking to each other.
    Derived { master: [u8; 32], period: Duration },
}

/// The keys tokens are sealed and opened with, and the nonce source.
///
/// Tokens carry random 96-bit nonces, so one AES-GCM key must seal well under 2^32 of them.
/// The default schedule ([`derived`](Self::derived)) moves to a new key every
/// [`DEFAULT_PERIOD`](Self::DEFAULT_PERIOD): the key of period `n` (wall time divided by the
/// period) is HMAC-SHA256(master, "quicksand token key" ‖ n), and its id is `n mod 256`. A
/// RETRY rate of 10,000 a second seals 36 million tokens an hour, a hundredth of the bound —
/// per endpoint: every worker and host sharing the master seals with the same key, so a fleet
/// of more than about 50 sockets at the full RETRY rate should shorten the period.
pub struct TokenKeys {
    schedule: Schedule,
    nonces: StdRng,
}

impl TokenKeys {
    /// How long one derived key seals tokens: an hour.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(3600);

    /// Fixed keys starting with `current`; nonces from an OS-seeded RNG.
    pub fn new(current: TokenKey) -> Self {
        Self::with_schedule(
            Schedule::Fixed {
                current,
                previous: None,
            },
            StdRng::from_os_rng(),
        )
    }

    /// Keys derived from `master`, a new one each `period` (at least a second); nonces from an
    /// OS-seeded RNG. Hosts sharing `master` (and `period`) open each other's tokens. A token
    /// stays valid for its kind's lifetime across key changes, as long as the lifetime spans
    /// fewer than 255 periods (key ids wrap).
    pub fn derived(master: [u8; 32], period: Duration) -> Self {
        Self::derived_with_seed(master, period, None)
    }

    /// [`derived`](Self::derived), with nonces from a seeded RNG when `seed` is given (for
    /// reproducible simulations).
    pub fn derived_with_seed(master: [u8; 32], period: Duration, seed: Option<u64>) -> Self {
        let period = period.max(Duration::from_secs(1));
        let nonces = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self::with_schedule(Schedule::Derived { master, period }, nonces)
    }

    fn with_schedule(schedule: Schedule, nonces: StdRng) -> Self {
        TokenKeys { schedule, nonces }
    }

    /// The kind a token claims to be, before opening it (unauthenticated).
    pub fn claimed_kind(bytes: &[u8]) -> Option<TokenKind> {
        bytes.first().copied().and_then(TokenKind::from_byte)
    }

    /// Fixed keys with nonces from a seeded RNG, for reproducible simulations.
    pub fn with_seed(current: TokenKey, seed: u64) -> Self {
        Self::with_schedule(
            Schedule::Fixed {
                current,
                previous: None,
            },
            StdRng::seed_from_u64(seed),
        )
    }

    /// Makes `next` the sealing key. With fixed keys the current one stays valid for
    /// opening; a derived schedule ends here (its tokens are refused from now on).
    pub fn rotate(&mut self, next: TokenKey) {
        let previous = match &self.schedule {
            Schedule::Fixed { current, .. } => Some(current.clone()),
            Schedule::Derived { .. } => None,
        };
        self.schedule = Schedule::Fixed {
            current: next,
            previous,
        };
    }

    /// The key that seals a token issued at `issued`.
    fn sealing_key(&mut self, issued: SystemTime) -> TokenKey {
        match &self.schedule {
            Schedule::Fixed { current, .. } => current.clone(),
            Schedule::Derived { master, period } => {
                let n = period_of(issued, *period);
                derive(master, n).unwrap_or_else(|| {
                    // HMAC failed (allocation): a one-off random key, so the token is refused
                    // later rather than sealed with a key anyone could guess.
                    let mut secret = [0u8; 32];
                    self.nonces.fill_bytes(&mut secret);
                    TokenKey::new(n as u8, secret)
                })
            }
        }
    }

    /// The key whose id is `id`, for a token opened at `now`.
    fn opening_key(&self, id: u8, now: SystemTime) -> Option<TokenKey> {
        match &self.schedule {
            Schedule::Fixed { current, previous } => [Some(current), previous.as_ref()]
                .into_iter()
                .flatten()
                .find(|k| k.id == id)
                .cloned(),
            Schedule::Derived { master, period } => {
                // The latest period with this id, allowing a period ahead for clock skew
                // between hosts; the token's own timestamp then decides whether it expired.
                let ahead = period_of(now, *period).saturating_add(1);
                let back = ahead.wrapping_sub(u64::from(id)) % 256;
                derive(master, ahead.checked_sub(back)?)
            }
        }
    }

    /// Seals a token.
    pub fn seal(&mut self, token: &AddressToken) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64 + TAG_LEN);
        let key = self.sealing_key(token.issued);
        out.push(token.kind.to_byte());
        out.push(key.id);
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
        let sealed = aead(&key.secret).and_then(|mut ctx| {
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
        let key = self
            .opening_key(bytes[1], now)
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
        match &self.schedule {
            Schedule::Fixed { current, previous } => f
                .debug_struct("TokenKeys")
                .field("current", current)
                .field("previous", previous)
                .finish_non_exhaustive(),
            // Never print key material.
            Schedule::Derived { period, .. } => f
                .debug_struct("TokenKeys")
                .field("derived_every", period)
                .finish_non_exhaustive(),
        }
    }
}

/// The index of the period `at` falls in (0 before the Unix epoch).
fn period_of(at: SystemTime, period: Duration) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_millis() / period.as_millis().max(1)) as u64
}

/// The key of period `n` of a derived schedule; `None` if HMAC failed (allocation only).
fn derive(master: &[u8; 32], n: u64) -> Option<TokenKey> {
    let mut info = Vec::with_capacity(32);
    info.extend_from_slice(b"quicksand token key");
    info.extend_from_slice(&n.to_be_bytes());
    let secret = boring::hash::hmac_sha256(master, &info).ok()?;
    Some(TokenKey::new(n as u8, secret))
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
