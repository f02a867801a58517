//! Test applications that run on the core's [`Application`] hook.

use std::collections::HashSet;
use std::time::Instant;

use quicksand_core::QuicheConnection;
use quicksand_core::{quiche, Application, ApplicationError};

/// The byte at `offset` of the deterministic test stream `seed`.
pub fn pattern_byte(seed: u64, offset: u64) -> u8 {
    let x = (offset ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

/// Sends `send_len` pattern bytes on one stream it opens, and checks, byte by byte, the
/// pattern the peer sends on its stream. Both directions at once.
#[derive(Debug)]
pub struct BulkTransfer {
    /// Stream we send on (client: 0, server: 1 — each side's first bidirectional stream).
    pub send_stream: u64,
    /// Bytes to send.
    pub send_len: u64,
    /// Pattern seed of what we send.
    pub send_seed: u64,
    /// Pattern seed of what we expect.
    pub recv_seed: u64,
    /// Bytes sent so far.
    pub sent: u64,
    /// The FIN went out with the last byte.
    pub fin_sent: bool,
    /// Bytes received (in order) so far.
    pub received: u64,
    /// The peer finished its stream.
    pub received_fin: bool,
    /// First offset whose byte differed from the pattern, if any.
    pub mismatch: Option<u64>,
    /// When the last byte of the peer's stream arrived.
    pub finished_at: Option<Instant>,
    scratch: Vec<u8>,
}

impl BulkTransfer {
    /// A transfer sending `send_len` bytes; the client sends seed 1, the server seed 2.
    pub fn new(is_server: bool, send_len: u64) -> Self {
        BulkTransfer {
            send_stream: if is_server { 1 } else { 0 },
            send_len,
            send_seed: if is_server { 2 } else { 1 },
            recv_seed: if is_server { 1 } else { 2 },
            sent: 0,
            fin_sent: false,
            received: 0,
            received_fin: false,
            mismatch: None,
            finished_at: None,
            scratch: vec![0; 64 * 1024],
        }
    }

    /// All sent and all of `expect` bytes received intact.
    pub fn is_complete(&self, expect: u64) -> bool {
        self.fin_sent && self.received == expect && self.received_fin && self.mismatch.is_none()
    }
}

impl Application for BulkTransfer {
    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let readable: Vec<u64> = conn.readable().collect();
        for stream in readable {
            if stream == self.send_stream {
                continue;
            }
            loop {
                match conn.stream_recv(stream, &mut self.scratch) {
                    Ok((n, fin)) => {
                        for (i, b) in self.scratch[..n].iter().enumerate() {
                            let off = self.received + i as u64;
                            if self.mismatch.is_none() && *b != pattern_byte(self.recv_seed, off) {
                                self.mismatch = Some(off);
                            }
                        }
                        self.received += n as u64;
                        if fin {
                            self.received_fin = true;
                            self.finished_at = Some(now);
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(e) => return Err(ApplicationError::new(0x1, format!("stream_recv: {e}"))),
                }
            }
        }
        Ok(())
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        while !self.fin_sent {
            // Generate only what the stream can take now.
            let capacity = match conn.stream_capacity(self.send_stream) {
                Ok(c) => c,
                // Not opened yet: stream_send opens it and takes what credit allows.
                Err(quiche::Error::InvalidStreamState(_)) => self.scratch.len(),
                Err(quiche::Error::Done) => 0,
                Err(e) => return Err(ApplicationError::new(0x1, format!("stream_capacity: {e}"))),
            };
            let remaining = self.send_len - self.sent;
            let chunk = remaining
                .min(self.scratch.len() as u64)
                .min(capacity as u64) as usize;
            if chunk == 0 && remaining > 0 {
                break;
            }
            for (i, b) in self.scratch[..chunk].iter_mut().enumerate() {
                *b = pattern_byte(self.send_seed, self.sent + i as u64);
            }
            let fin = self.sent + chunk as u64 == self.send_len;
            match conn.stream_send(self.send_stream, &self.scratch[..chunk], fin) {
                Ok(n) => {
                    self.sent += n as u64;
                    self.fin_sent = fin && n == chunk;
                    if n < chunk {
                        break;
                    }
                }
                Err(quiche::Error::Done) => break,
                Err(e) => return Err(ApplicationError::new(0x1, format!("stream_send: {e}"))),
            }
        }
        Ok(())
    }
}

/// Does nothing but can be told to fail, to test that application errors close the
/// connection with their code.
#[derive(Debug, Default)]
pub struct FailingApp {
    /// Returned from the next `process_writes`.
    pub fail_with: Option<ApplicationError>,
    /// Set when `on_close` ran.
    pub closed: Option<quicksand_core::CloseReason>,
}

impl Application for FailingApp {
    fn process_reads(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }

    fn process_writes(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        match self.fail_with.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn on_close(&mut self, _: &QuicheConnection, reason: &quicksand_core::CloseReason) {
        self.closed = Some(reason.clone());
    }
}

/// Reads and discards everything that arrives (stream data and datagrams) and records the
/// client-initiated bidirectional streams in the order they first showed up: the raw peer
/// of the HTTP/3 fuzz targets, whose harness writes on the connection itself.
#[derive(Debug, Default)]
pub struct Drain {
    /// Client-initiated bidirectional streams that delivered something, in order.
    pub requests: Vec<u64>,
    known: HashSet<u64>,
}

impl Application for Drain {
    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        let mut buf = [0u8; 4096];
        let readable: Vec<u64> = conn.readable().collect();
        for s in readable {
            if s % 4 == 0 && self.known.insert(s) {
                self.requests.push(s);
            }
            while conn.stream_recv(s, &mut buf).is_ok() {}
        }
        while conn.dgram_recv(&mut buf).is_ok() {}
        Ok(())
    }

    fn process_writes(
        &mut self,
        _: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        Ok(())
    }
}
