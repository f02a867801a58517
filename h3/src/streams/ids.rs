//! Maps and sets keyed by stream id, with a hash that costs nothing.

use std::collections::{HashMap, HashSet};

/// Hashes stream ids cheaply. They are not chosen freely by the peer (quiche accepts only ids
/// within the stream limits it granted, and they come in sequence), so a keyed hash buys
/// nothing against collisions here, while SipHash cost about 2k instructions per request.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys use this hasher; anything else still hashes, just slowly.
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        // The low two bits name the stream type, always the same in one map; the multiply
        // spreads the rest over the high bits, the shift folds them into the low ones, which
        // pick the bucket.
        let h = (id >> 2).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// A map keyed by stream id.
pub(crate) type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;
/// A set of stream ids.
pub(crate) type IdSet = HashSet<u64, std::hash::BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::IdHasher;

    #[test]
    fn stream_ids_spread_over_the_low_bits_that_pick_buckets() {
        let build = BuildHasherDefault::<IdHasher>::default();
        for kind in 0..4u64 {
            let buckets: std::collections::HashSet<u64> = (0..1024u64)
                .map(|n| build.hash_one(n * 4 + kind) & 1023)
                .collect();
            // Sequential ids of one type must not crowd into a fraction of 1,024 buckets
            // (an identity hash of multiples of 4 would use a quarter of them).
            assert!(
                buckets.len() > 600,
                "type {kind}: {} buckets",
                buckets.len()
            );
        }
    }
}
