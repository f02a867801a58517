//! A test application that moves many small streams: the client opens `total` bidirectional
//! streams as stream credit allows, each carrying `size` pattern bytes; the server checks each
//! byte, counts the stream and finishes its side so the stream is freed and credit returns.

use std::collections::HashMap;
use std::time::Instant;

use quicksand_core::QuicheConnection;
use quicksand_core::{quiche, Application, ApplicationError};

use crate::apps::pattern_byte;

/// See the module docs.
#[derive(Debug)]
pub struct ManyStreams {
    is_server: bool,
    /// Streams to move.
    pub total: u64,
    /// Bytes per stream.
    pub size: usize,
    /// Client: streams fully written.
    pub opened: u64,
    /// Server: streams received intact. Client: streams the server finished.
    pub completed: u64,
    /// Streams whose bytes differed from the pattern.
    pub corrupt: u64,
    pending: Option<(u64, usize)>,
    received: HashMap<u64, Vec<u8>>,
    scratch: Vec<u8>,
}

impl ManyStreams {
    /// A client (`is_server == false`) or server side.
    pub fn new(is_server: bool, total: u64, size: usize) -> Self {
        ManyStreams {
            is_server,
            total,
            size,
            opened: 0,
            completed: 0,
            corrupt: 0,
            pending: None,
            received: HashMap::new(),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Every stream arrived intact.
    pub fn is_complete(&self) -> bool {
        self.completed == self.total && self.corrupt == 0
    }

    fn body(stream: u64, size: usize) -> Vec<u8> {
        (0..size as u64).map(|i| pattern_byte(stream, i)).collect()
    }
}

impl Application for ManyStreams {
    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        _: Instant,
    ) -> Result<(), ApplicationError> {
        let readable: Vec<u64> = conn.readable().collect();
        for stream in readable {
            loop {
                match conn.stream_recv(stream, &mut self.scratch) {
                    Ok((n, fin)) => {
                        if self.is_server {
                            self.received
                                .entry(stream)
                                .or_default()
                                .extend_from_slice(&self.scratch[..n]);
                        }
                        if fin {
                            if self.is_server {
                                let got = self.received.remove(&stream).unwrap_or_default();
                                if got == Self::body(stream, self.size) {
                                    self.completed += 1;
                                } else {
                                    self.corrupt += 1;
                                }
                                // Finish our side so the stream is freed and its credit returns.
                                match conn.stream_send(stream, b"", true) {
                                    Ok(_) | Err(quiche::Error::Done) => {}
                                    Err(e) => {
                                        return Err(ApplicationError::new(1, format!("fin: {e}")))
                                    }
                                }
                            } else {
                                self.completed += 1;
                            }
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(e) => return Err(ApplicationError::new(1, format!("stream_recv: {e}"))),
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
        if self.is_server {
            return Ok(());
        }
        loop {
            let (stream, offset) = match self.pending {
                Some(p) => p,
                None if self.opened < self.total && conn.peer_streams_left_bidi() > 0 => {
                    (self.opened * 4, 0)
                }
                None => return Ok(()),
            };
            let body = Self::body(stream, self.size);
            match conn.stream_send(stream, &body[offset..], true) {
                Ok(n) if offset + n == body.len() => {
                    self.pending = None;
                    self.opened += 1;
                }
                Ok(n) => {
                    self.pending = Some((stream, offset + n));
                    return Ok(());
                }
                Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => {
                    self.pending = Some((stream, offset));
                    return Ok(());
                }
                Err(e) => return Err(ApplicationError::new(1, format!("stream_send: {e}"))),
            }
        }
    }
}
