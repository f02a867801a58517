//! The connection-ID table: which connection each CID (and peer reset token) belongs to.

use std::collections::HashMap;
use std::net::IpAddr;

use slab::Slab;

/// Names a connection within its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionKey(pub usize);

#[derive(Debug, Default)]
struct Entry {
    cids: Vec<Vec<u8>>,
    reset_token: Option<u128>,
    handshaking: bool,
    /// A server connection still handshaking: its client's address, counted in the quotas.
    source: Option<IpAddr>,
}

/// The network a client address belongs to for the per-prefix handshake quota: its /24 for
/// IPv4, its /64 for IPv6 (what one subscriber or one host typically holds).
pub(crate) fn prefix_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::from(seg)
        }
    }
}

/// CID → connection, with every connection's CIDs so that all go when it does.
#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    by_cid: HashMap<Vec<u8>, ConnectionKey>,
    by_reset_token: HashMap<u128, ConnectionKey>,
    entries: Slab<Entry>,
    handshaking: usize,
    /// Handshakes in progress per client address and per prefix ([`prefix_of`]); entries
    /// leave at zero, so the maps hold only sources with a handshake in progress.
    by_address: HashMap<IpAddr, usize>,
    by_prefix: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    /// Registers a new connection reachable by `cids`, handshaking; a server connection names
    /// its client's address (`source`) for the per-address quotas. A CID already taken keeps
    /// its owner.
    pub(crate) fn insert(&mut self, cids: &[&[u8]], source: Option<IpAddr>) -> ConnectionKey {
        let handle = ConnectionKey(self.entries.insert(Entry {
            handshaking: true,
            source,
            ..Default::default()
        }));
        self.handshaking += 1;
        if let Some(ip) = source {
            *self.by_address.entry(ip).or_default() += 1;
            *self.by_prefix.entry(prefix_of(ip)).or_default() += 1;
        }
        for cid in cids {
            self.add_cid(handle, cid);
        }
        handle
    }

    pub(crate) fn add_cid(&mut self, handle: ConnectionKey, cid: &[u8]) {
        let Some(entry) = self.entries.get_mut(handle.0) else {
            return;
        };
        if cid.is_empty() || self.by_cid.contains_key(cid) {
            return;
        }
        self.by_cid.insert(cid.to_vec(), handle);
        entry.cids.push(cid.to_vec());
    }

    pub(crate) fn retire_cid(&mut self, handle: ConnectionKey, cid: &[u8]) {
        if self.by_cid.get(cid) != Some(&handle) {
            return;
        }
        self.by_cid.remove(cid);
        if let Some(entry) = self.entries.get_mut(handle.0) {
            entry.cids.retain(|c| c.as_slice() != cid);
        }
    }

    pub(crate) fn established(&mut self, handle: ConnectionKey, reset_token: Option<u128>) {
        let Some(entry) = self.entries.get_mut(handle.0) else {
            return;
        };
        if std::mem::take(&mut entry.handshaking) {
            self.handshaking -= 1;
        }
        if let Some(ip) = entry.source.take() {
            Self::release_source(&mut self.by_address, &mut self.by_prefix, ip);
        }
        if let Some(token) = reset_token {
            if let Some(old) = entry.reset_token.replace(token) {
                self.by_reset_token.remove(&old);
            }
            self.by_reset_token.insert(token, handle);
        }
    }

    pub(crate) fn remove(&mut self, handle: ConnectionKey) {
        let Some(entry) = self.entries.try_remove(handle.0) else {
            return;
        };
        for cid in entry.cids {
            self.by_cid.remove(&cid);
        }
        if let Some(token) = entry.reset_token {
            self.by_reset_token.remove(&token);
        }
        self.handshaking -= usize::from(entry.handshaking);
        if let Some(ip) = entry.source {
            Self::release_source(&mut self.by_address, &mut self.by_prefix, ip);
        }
    }

    /// Handshakes in progress from `ip`, and from its prefix ([`prefix_of`]).
    pub(crate) fn handshaking_from(&self, ip: IpAddr) -> (usize, usize) {
        let count = |map: &HashMap<IpAddr, usize>, key| map.get(&key).copied().unwrap_or(0);
        (
            count(&self.by_address, ip),
            count(&self.by_prefix, prefix_of(ip)),
        )
    }

    /// One handshake from `ip` ended.
    fn release_source(
        by_address: &mut HashMap<IpAddr, usize>,
        by_prefix: &mut HashMap<IpAddr, usize>,
        ip: IpAddr,
    ) {
        for (map, key) in [(by_address, ip), (by_prefix, prefix_of(ip))] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }

    pub(crate) fn get(&self, cid: &[u8]) -> Option<ConnectionKey> {
        self.by_cid.get(cid).copied()
    }

    pub(crate) fn by_reset_token(&self, token: u128) -> Option<ConnectionKey> {
        self.by_reset_token.get(&token).copied()
    }

    pub(crate) fn contains(&self, handle: ConnectionKey) -> bool {
        self.entries.contains(handle.0)
    }

    pub(crate) fn connections(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn cids(&self) -> usize {
        self.by_cid.len()
    }

    pub(crate) fn handshaking(&self) -> usize {
        self.handshaking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_route_and_all_go_with_their_connection() {
        let mut t = ConnectionTable::default();
        let a = t.insert(&[b"aaaa", b"odcid"], None);
        let b = t.insert(&[b"bbbb"], None);
        t.established(b, None);
        t.add_cid(a, b"aaa2");
        t.add_cid(b, b"aaaa"); // taken: keeps its owner
        assert_eq!(
            (t.get(b"aaaa"), t.get(b"aaa2"), t.get(b"bbbb")),
            (Some(a), Some(a), Some(b))
        );
        assert_eq!(t.handshaking(), 1);
        t.established(a, Some(7));
        assert_eq!((t.handshaking(), t.by_reset_token(7)), (0, Some(a)));
        t.retire_cid(a, b"odcid");
        t.retire_cid(b, b"aaa2"); // not b's: ignored
        assert_eq!((t.get(b"odcid"), t.get(b"aaa2")), (None, Some(a)));
        t.remove(a);
        assert_eq!(
            (t.get(b"aaaa"), t.get(b"aaa2"), t.by_reset_token(7)),
            (None, None, None)
        );
        assert_eq!((t.connections(), t.cids()), (1, 1));
        t.remove(b);
        t.remove(b);
        assert_eq!((t.connections(), t.cids(), t.handshaking()), (0, 0, 0));
    }

    #[test]
    fn handshakes_are_counted_per_address_and_prefix_until_they_end() {
        let mut t = ConnectionTable::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = t.insert(&[b"a"], Some(ip("192.0.2.7")));
        let b = t.insert(&[b"b"], Some(ip("192.0.2.7")));
        let c = t.insert(&[b"c"], Some(ip("192.0.2.200")));
        let d = t.insert(&[b"d"], Some(ip("2001:db8:0:1::5")));
        t.insert(&[b"e"], None); // a client connection: no quota
        assert_eq!(t.handshaking_from(ip("192.0.2.7")), (2, 3));
        assert_eq!(t.handshaking_from(ip("192.0.2.9")), (0, 3));
        assert_eq!(t.handshaking_from(ip("2001:db8:0:1:ffff::1")), (0, 1));
        assert_eq!(t.handshaking_from(ip("2001:db8:0:2::5")), (0, 0));
        // Established or gone, a handshake no longer counts (and only once).
        t.established(a, None);
        t.established(a, None);
        t.remove(c);
        assert_eq!(t.handshaking_from(ip("192.0.2.7")), (1, 1));
        t.remove(b);
        t.remove(d);
        assert!(t.by_address.is_empty() && t.by_prefix.is_empty());
    }
}
