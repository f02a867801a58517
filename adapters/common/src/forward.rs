//! Datagrams one server worker received for another worker's connection, handed over on
//! bounded queues: a flood aimed at one worker's CIDs costs a bounded amount of memory, and
//! what does not fit is dropped and counted, as a full socket buffer would.

use futures_channel::mpsc;
use quicksand_core::Datagram;

/// Datagrams queued for one worker before further ones for it are dropped.
pub const FORWARD_QUEUE: usize = 1024;

/// The sending side: a bounded queue to each worker (its own slot unused).
pub struct Forwarder {
    peers: Vec<mpsc::Sender<Datagram>>,
    sent: u64,
    dropped: u64,
}

/// `count` connected queues: the forwarder every worker clones, and each worker's receiver.
pub fn forward_queues(count: usize) -> (Forwarder, Vec<mpsc::Receiver<Datagram>>) {
    let (peers, receivers) = (0..count).map(|_| mpsc::channel(FORWARD_QUEUE)).unzip();
    (
        Forwarder {
            peers,
            sent: 0,
            dropped: 0,
        },
        receivers,
    )
}

impl Clone for Forwarder {
    /// A forwarder on the same queues, with its own counts.
    fn clone(&self) -> Self {
        Forwarder {
            peers: self.peers.clone(),
            sent: 0,
            dropped: 0,
        }
    }
}

impl Forwarder {
    /// Queues `d` for worker `to`, or drops it (counted) when that queue is full or gone.
    pub fn forward(&mut self, to: usize, d: Datagram) {
        let queued = match self.peers.get_mut(to) {
            Some(peer) => peer.try_send(d).is_ok(),
            None => false,
        };
        if queued {
            self.sent += 1;
        } else {
            self.dropped += 1;
        }
    }

    /// Datagrams handed to another worker.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Datagrams dropped because the other worker's queue was full (or it had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        let (mut fwd, mut rx) = forward_queues(2);
        let a = "127.0.0.1:1".parse().unwrap();
        let d = || Datagram::new(&[0u8; 1200][..], a, a, std::time::Instant::now());
        for _ in 0..FORWARD_QUEUE + 100 {
            fwd.forward(1, d());
        }
        // A bounded futures channel also takes one message per sender beyond its buffer.
        let queued = FORWARD_QUEUE + 1;
        assert_eq!(fwd.sent(), queued as u64);
        assert_eq!(fwd.dropped(), 100 - 1);
        let mut got = 0;
        while rx[1].try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, queued);
        // An index past the workers is dropped too, not a panic.
        fwd.forward(9, d());
        assert_eq!(fwd.dropped(), 100);
    }
}
