//! The stage machine and the application stage of a wake-up.

use std::time::Instant;

use super::{CloseReason, Connection, EndpointEvent, Event, Shutdown, Stage, MAX_ISSUED_CIDS};
use crate::metrics::{HandshakeFailure, TransportDelta};

/// How often a running connection reports its transport counters to the metrics.
const TRANSPORT_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
use crate::Application;

impl<A: Application> Connection<A> {
    /// Runs the application once if anything happened since it last ran: `on_established`
    /// the first time data can flow, then `process_reads` if packets arrived, then
    /// `process_writes`. An application error closes the connection with that error.
    pub(super) fn run_application(&mut self, now: Instant) {
        if self.stage == Stage::Draining {
            self.final_read(now);
            return;
        }
        if self.stage > Stage::Running {
            return;
        }
        let early = self.conn.is_in_early_data() && self.early_data_admitted;
        if !(self.conn.is_established() || early) {
            return;
        }
        let result = (|| -> Result<(), crate::ApplicationError> {
            if !self.app_started {
                self.app_started = true;
                self.writes_pending = true;
                self.app.on_established(&mut self.conn, now)?;
            }
            if self.reads_pending {
                self.app.process_reads(&mut self.conn, now)?;
                self.writes_pending = true;
            }
            if self.shutdown == Shutdown::Asked {
                self.shutdown = Shutdown::Told;
                self.app.on_shutdown(&mut self.conn, now)?;
                self.writes_pending = true;
            }
            if self.writes_pending {
                self.app.process_writes(&mut self.conn, now)?;
            }
            Ok(())
        })();
        self.reads_pending = false;
        self.writes_pending = false;
        if let Err(e) = result {
            tracing::debug!(trace_id = self.conn.trace_id(), error = %e, "application error");
            self.close(true, e.code, &e.reason);
        }
    }

    /// The peer closed the connection: lets the application read what arrived before the
    /// close. The peer may have seen it acknowledged and counts it as delivered (a server
    /// closes after its last response is acknowledged), so it must not die with the
    /// connection. Nothing is written any more.
    fn final_read(&mut self, now: Instant) {
        if !self.app_started || !self.reads_pending {
            return;
        }
        self.reads_pending = false;
        self.writes_pending = false;
        if let Err(e) = self.app.process_reads(&mut self.conn, now) {
            tracing::debug!(trace_id = self.conn.trace_id(), error = %e, "final read failed");
        }
    }

    /// Brings stage, events and CIDs up to date with quiche after any input.
    pub(super) fn update(&mut self, now: Instant) {
        if self.stage == Stage::Closed {
            return;
        }
        if !self.early_data_reported && self.conn.is_in_early_data() {
            self.early_data_reported = true;
            self.early_data_admitted = !self.conn.is_server()
                || self
                    .client_hello_random
                    .is_some_and(|r| self.ctx.anti_replay.admit(&r, now));
            if self.early_data_admitted {
                self.events.push_back(Event::EarlyData);
            } else {
                tracing::debug!(
                    trace_id = self.conn.trace_id(),
                    "early data held until the handshake completes (replayed or unrecorded)"
                );
                self.events.push_back(Event::EarlyDataHeld);
            }
        }
        if self.handshake_duration.is_none() && self.conn.is_established() {
            let duration = now.saturating_duration_since(self.created_at);
            self.handshake_duration = Some(duration);
            self.ctx.metrics.handshake_completed(duration);
            self.events.push_back(Event::HandshakeCompleted {
                duration,
                resumed: self.conn.is_resumed(),
            });
            let peer_reset_token = self
                .conn
                .peer_transport_params()
                .and_then(|p| p.stateless_reset_token);
            self.endpoint_events
                .push_back(EndpointEvent::Established { peer_reset_token });
        }
        while let Some(e) = self.conn.path_event_next() {
            if let Some(e) = super::PathEvent::from_quiche(e) {
                self.events.push_back(Event::Path(e));
            }
        }
        self.update_source_ids();
        self.update_stage();
        if self.conn.is_closed() {
            self.finish(now);
        } else if now >= self.transport_reported.1 + TRANSPORT_REPORT_INTERVAL {
            self.report_transport(now);
        }
    }

    /// Tells the metrics what the transport did since the last report.
    fn report_transport(&mut self, now: Instant) {
        let totals = TransportDelta::totals(&self.conn.stats());
        let delta = totals.since(&self.transport_reported.0);
        self.transport_reported = (totals, now);
        if delta != TransportDelta::default() {
            self.ctx.metrics.transport(&delta);
        }
    }

    pub(super) fn update_stage(&mut self) {
        if self.stage == Stage::Closed {
            return;
        }
        let next = if self.conn.local_error().is_some() || self.forced_reason.is_some() {
            Stage::Closing
        } else if self.conn.peer_error().is_some() || self.conn.is_draining() {
            Stage::Draining
        } else if self.conn.is_established() {
            Stage::Running
        } else {
            Stage::Handshake
        };
        // Stages only move forward.
        self.stage = self.stage.max(next);
    }

    /// Keeps the peer supplied with fresh CIDs up to its limit (capped, so a peer announcing a
    /// huge limit cannot make us mint unbounded IDs) and reports retired ones.
    fn update_source_ids(&mut self) {
        if self.conn.is_established() && self.stage <= Stage::Running {
            while self.conn.scids_left() > 0 && self.conn.active_scids() < MAX_ISSUED_CIDS {
                let cid = self.ctx.cid_generator.generate();
                let token = self.ctx.reset_key.token(&cid);
                match self.conn.new_scid(&cid, token, false) {
                    Ok(_) => self
                        .endpoint_events
                        .push_back(EndpointEvent::NewConnectionId(cid)),
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot issue a new connection id");
                        break;
                    }
                }
            }
        }
        while let Some(cid) = self.conn.retired_scid_next() {
            self.endpoint_events
                .push_back(EndpointEvent::RetiredConnectionId(cid));
        }
    }

    /// The handshake deadline passed: end at once and silently, as an idle timeout does (the
    /// peer is slow or gone; RFC 9000 §10.1 lets an endpoint drop a connection it gives up on).
    pub(super) fn handshake_timed_out(&mut self, now: Instant) {
        self.forced_reason = Some(CloseReason::HandshakeTimeout);
        self.finish(now);
    }

    /// Ends the connection: final reason, metrics, `on_close`, the last events.
    pub(super) fn finish(&mut self, now: Instant) {
        if self.stage == Stage::Closed {
            return;
        }
        if self.stage == Stage::Draining {
            self.final_read(now);
        }
        self.stage = Stage::Closed;
        self.held = None;
        self.carry = None;
        let reason = self.close_reason();
        self.report_transport(now);
        let metrics = &self.ctx.metrics;
        match &reason {
            CloseReason::Local {
                application, code, ..
            } => metrics.local_close(*application, *code),
            CloseReason::Peer {
                application, code, ..
            } => metrics.peer_close(*application, *code),
            _ => {}
        }
        if self.handshake_duration.is_none() {
            metrics.handshake_failed(match &reason {
                CloseReason::HandshakeTimeout => HandshakeFailure::Timeout,
                CloseReason::IdleTimeout => HandshakeFailure::IdleTimeout,
                CloseReason::Local {
                    application: false,
                    code,
                    ..
                } if *code != 0 => HandshakeFailure::Protocol,
                _ => HandshakeFailure::Closed,
            });
        }
        tracing::debug!(trace_id = self.conn.trace_id(), %reason, "connection closed");
        self.app.on_close(&self.conn, &reason);
        self.events.push_back(Event::Closed(reason));
        self.endpoint_events.push_back(EndpointEvent::Closed);
    }

    fn close_reason(&self) -> CloseReason {
        if let Some(reason) = &self.forced_reason {
            return reason.clone();
        }
        if let Some(e) = self.conn.local_error() {
            return CloseReason::Local {
                application: e.is_app,
                code: e.error_code,
                reason: e.reason.clone(),
            };
        }
        if let Some(e) = self.conn.peer_error() {
            return CloseReason::Peer {
                application: e.is_app,
                code: e.error_code,
                reason: e.reason.clone(),
            };
        }
        if self.conn.is_timed_out() {
            return CloseReason::IdleTimeout;
        }
        // quiche closes without error or timeout only on a stateless reset.
        CloseReason::StatelessReset
    }
}
