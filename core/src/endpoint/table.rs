//! The connection-ID table: which connection each CID (and peer reset token) belongs to.

use std::collections::HashMap;

use slab::Slab;

/// Names a connection within its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub usize);

#[derive(Debug, Default)]
struct Entry {
    cids: Vec<Vec<u8>>,
    reset_token: Option<u128>,
    handshaking: bool,
}

/// CID → connection, with every connection's CIDs so that all go when it does.
#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    by_cid: HashMap<Vec<u8>, ConnectionHandle>,
    by_reset_token: HashMap<u128, ConnectionHandle>,
    entries: Slab<Entry>,
    handshaking: usize,
}

impl ConnectionTable {
    /// Registers a new connection reachable by `cids`. A CID already taken keeps its owner.
    pub(crate) fn insert(&mut self, cids: &[&[u8]], handshaking: bool) -> ConnectionHandle {
        let handle = ConnectionHandle(self.entries.insert(Entry {
            handshaking,
            ..Default::default()
        }));
        self.handshaking += usize::from(handshaking);
        for cid in cids {
            self.add_cid(handle, cid);
        }
        handle
    }

    pub(crate) fn add_cid(&mut self, handle: ConnectionHandle, cid: &[u8]) {
        let Some(entry) = self.entries.get_mut(handle.0) else {
            return;
        };
        if cid.is_empty() || self.by_cid.contains_key(cid) {
            return;
        }
        self.by_cid.insert(cid.to_vec(), handle);
        entry.cids.push(cid.to_vec());
    }

    pub(crate) fn retire_cid(&mut self, handle: ConnectionHandle, cid: &[u8]) {
        if self.by_cid.get(cid) != Some(&handle) {
            return;
        }
        self.by_cid.remove(cid);
        if let Some(entry) = self.entries.get_mut(handle.0) {
            entry.cids.retain(|c| c.as_slice() != cid);
        }
    }

    pub(crate) fn established(&mut self, handle: ConnectionHandle, reset_token: Option<u128>) {
        let Some(entry) = self.entries.get_mut(handle.0) else {
            return;
        };
        if std::mem::take(&mut entry.handshaking) {
            self.handshaking -= 1;
        }
        if let Some(token) = reset_token {
            if let Some(old) = entry.reset_token.replace(token) {
                self.by_reset_token.remove(&old);
            }
            self.by_reset_token.insert(token, handle);
        }
    }

    pub(crate) fn remove(&mut self, handle: ConnectionHandle) {
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
    }

    pub(crate) fn get(&self, cid: &[u8]) -> Option<ConnectionHandle> {
        self.by_cid.get(cid).copied()
    }

    pub(crate) fn by_reset_token(&self, token: u128) -> Option<ConnectionHandle> {
        self.by_reset_token.get(&token).copied()
    }

    pub(crate) fn contains(&self, handle: ConnectionHandle) -> bool {
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
        let a = t.insert(&[b"aaaa", b"odcid"], true);
        let b = t.insert(&[b"bbbb"], false);
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
}
