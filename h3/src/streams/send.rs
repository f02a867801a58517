//! Sending: what handles queued, written to quiche in priority order as far as flow control
//! allows; streams the peer stopped.

use quiche::h3;
use quicksand_core::{Metrics, QuicheConnection, StreamBuf};

use super::{send_priority_update, Entry, SendHalf, Streams};
use crate::error::StreamError;
use crate::headers;
use crate::shared::Outgoing;

impl Streams {
    /// Writes queued output on every stream that has some, as far as flow control allows,
    /// and retries PRIORITY_UPDATEs the control stream had no room for. quiche takes only
    /// about a congestion window of data at a time, so who writes first gets the capacity:
    /// streams write in priority order (urgency, then stream id), or a less urgent response
    /// queued earlier would hold the window and the priority would only reorder within it.
    pub fn flush_all(&mut self, h3: &mut h3::Connection, conn: &mut QuicheConnection) {
        if !self.priority_updates.is_empty() {
            for (id, priority) in std::mem::take(&mut self.priority_updates) {
                if self.map.contains_key(&id) {
                    send_priority_update(h3, conn, id, priority, &mut self.priority_updates);
                }
            }
        }
        if self.ready.is_empty() {
            return;
        }
        let mut order: Vec<(u8, u64)> = self
            .ready
            .iter()
            .filter_map(|id| self.map.get(id).map(|e| (e.priority.urgency, *id)))
            .collect();
        order.sort_unstable();
        for (_, id) in order {
            let Some(entry) = self.map.get_mut(&id) else {
                continue;
            };
            let queued = flush(h3, conn, id, entry, self.metrics.as_deref());
            if !queued {
                self.ready.remove(&id);
            }
            self.send_high_water = self.send_high_water.max(entry.slot.send_buffered());
        }
    }

    /// Finds the streams the peer sent STOP_SENDING on while we had nothing to write (quiche
    /// reports them writable, with an error) and fails their sending half. Returns each such
    /// stream with whether it had no final response yet and was not counted as cancelled
    /// before: a server counts those as cancelled requests.
    pub fn take_stopped(&mut self, conn: &mut QuicheConnection) -> Vec<(u64, bool)> {
        let stopped: Vec<(u64, u64)> = conn
            .writable()
            .filter(|id| {
                self.map
                    .get(id)
                    .is_some_and(|e| matches!(e.send, SendHalf::Open { .. }))
            })
            .filter_map(|id| match conn.stream_writable(id, 0) {
                Err(quiche::Error::StreamStopped(code)) => Some((id, code)),
                _ => None,
            })
            .collect();
        let mut cancelled = Vec::new();
        for (id, code) in stopped {
            let Some(entry) = self.map.get_mut(&id) else {
                continue;
            };
            // The send half was open, so the final response was not complete.
            cancelled.push((id, !entry.cancelled));
            entry.cancelled = true;
            entry.send_failed(StreamError::StoppedByPeer { code });
            self.ready.remove(&id);
        }
        cancelled
    }
}

/// Writes the stream's queue in order until it is empty or flow control stops it. True if
/// output is still queued.
fn flush(
    h3: &mut h3::Connection,
    conn: &mut QuicheConnection,
    id: u64,
    entry: &mut Entry,
    metrics: Option<&dyn Metrics>,
) -> bool {
    let SendHalf::Open { queue, head_sent } = &mut entry.send else {
        return false;
    };
    let slot = &entry.slot;
    // Some(Ok): the stream's end went out. Some(Err): the half failed.
    let mut ended: Option<Result<(), StreamError>> = None;
    while let Some(item) = queue.pop_front() {
        let fin_next = matches!(queue.front(), Some(Outgoing::Fin));
        // Ok(true): the stream's end went out. Err: `item` (or its rest) goes back in front.
        let result: Result<bool, (Outgoing, h3::Error)> = match item {
            Outgoing::Head(fields) => {
                let r = if !*head_sent {
                    h3.send_response(conn, id, &fields, fin_next)
                } else {
                    h3.send_additional_headers(conn, id, &fields, false, fin_next)
                };
                match r {
                    Ok(()) => {
                        *head_sent = true;
                        if let (Some(m), Some(status)) = (metrics, headers::status(&fields)) {
                            m.h3_response(status);
                        }
                        Ok(fin_next)
                    }
                    Err(e) => Err((Outgoing::Head(fields), e)),
                }
            }
            // Zero-copy: quiche keeps (a slice of) the application's `Bytes` until it is
            // acknowledged, and copies it once, into the packet.
            Outgoing::Data(bytes) => {
                match h3.send_body_zc(conn, id, &mut StreamBuf(bytes.clone()), fin_next) {
                    Ok(n) => {
                        slot.sent(n);
                        if n == bytes.len() {
                            Ok(fin_next)
                        } else {
                            Err((Outgoing::Data(bytes.slice(n..)), h3::Error::Done))
                        }
                    }
                    Err(e) => Err((Outgoing::Data(bytes), e)),
                }
            }
            Outgoing::Trailers(fields) => {
                match h3.send_additional_headers(conn, id, &fields, true, true) {
                    Ok(()) => Ok(true),
                    Err(e) => Err((Outgoing::Trailers(fields), e)),
                }
            }
            Outgoing::Fin => match h3.send_body(conn, id, b"", true) {
                Ok(_) => Ok(true),
                Err(e) => Err((Outgoing::Fin, e)),
            },
        };
        match result {
            Ok(true) => {
                ended = Some(Ok(()));
                break;
            }
            Ok(false) => {}
            Err((item, h3::Error::Done | h3::Error::StreamBlocked)) => {
                queue.push_front(item);
                break;
            }
            Err((_, h3::Error::TransportError(quiche::Error::StreamStopped(code)))) => {
                ended = Some(Err(StreamError::StoppedByPeer { code }));
                break;
            }
            Err((_, e)) => {
                tracing::debug!(stream = id, error = ?e, "stream write failed");
                ended = Some(Err(StreamError::Protocol(e)));
                break;
            }
        }
    }
    match ended {
        Some(Ok(())) => {
            entry.send = SendHalf::Finished;
            false
        }
        Some(Err(e)) => {
            entry.send_failed(e);
            false
        }
        None => !queue.is_empty(),
    }
}
