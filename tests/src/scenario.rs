//! Scenarios defined once and run by every driver: the simulator (on a clean link, virtual
//! time) and the tokio and smol adapters (real loopback sockets, `tests/tests/e2e_adapters.rs`).
//! Only scenarios that need no fault injection belong here; the faulty ones live in
//! `tests/tests/sim_scenarios.rs`.
//!
//! A scenario says what each connection transfers and with which transport settings; a runner
//! opens the connections with [`ReportedBulk`] applications, waits until
//! [`Reports::complete`], and asserts [`Reports::check`]. The applications publish what they
//! saw through shared [`BulkReport`]s, so a runner that cannot reach the connection (an
//! adapter runs it inside its endpoint task) still sees it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use quicksand_core::QuicheConnection;
use quicksand_core::{Application, ApplicationError, QuicSettings};

use crate::apps::BulkTransfer;

/// ALPN of the scenario applications.
pub const ALPN: &[u8] = b"quicksand-test";

/// One scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Test name, for messages.
    pub name: &'static str,
    /// Connections opened at once.
    pub connections: usize,
    /// Bytes each client sends to the server (one stream).
    pub upload: u64,
    /// Bytes the server sends to each client (one stream).
    pub download: u64,
    /// Flow-control windows (connection, stream) for both ends; `None` keeps the runner's.
    pub windows: Option<(u64, u64)>,
}

/// Every shared scenario.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "handshake",
            connections: 1,
            upload: 0,
            download: 0,
            windows: None,
        },
        Scenario {
            name: "download_3mb_small_windows",
            connections: 1,
            upload: 0,
            download: 3_000_000,
            windows: Some((64 * 1024, 32 * 1024)),
        },
        Scenario {
            name: "both_ways_2mb",
            connections: 1,
            upload: 2_000_000,
            download: 2_000_000,
            windows: None,
        },
        Scenario {
            name: "ten_connections_1mb_each",
            connections: 10,
            upload: 100_000,
            download: 1_000_000,
            windows: None,
        },
    ]
}

impl Scenario {
    /// Applies the scenario's ALPN and windows to one end's settings.
    pub fn apply(&self, settings: &mut QuicSettings) {
        settings.alpn = vec![ALPN.to_vec()];
        if let Some((conn, stream)) = self.windows {
            settings.initial_max_data = conn;
            settings.max_connection_window = conn;
            settings.initial_max_stream_data_bidi_local = stream;
            settings.initial_max_stream_data_bidi_remote = stream;
            settings.max_stream_window = stream;
        }
    }

    /// A client application; its report goes to `reports`.
    pub fn client_app(&self, reports: &Reports) -> ReportedBulk {
        ReportedBulk::new(BulkTransfer::new(false, self.upload), &reports.clients)
    }

    /// A server application; its report goes to `reports`.
    pub fn server_app(&self, reports: &Reports) -> ReportedBulk {
        ReportedBulk::new(BulkTransfer::new(true, self.download), &reports.servers)
    }
}

/// What one connection's application saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkReport {
    /// Everything we had to send went out, FIN included.
    pub fin_sent: bool,
    /// Bytes received in order.
    pub received: u64,
    /// The peer's FIN arrived.
    pub received_fin: bool,
    /// First offset that differed from the pattern.
    pub mismatch: Option<u64>,
    /// The connection closed (with the reason's text).
    pub closed: Option<String>,
}

type Shared = Arc<Mutex<Vec<Arc<Mutex<BulkReport>>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reports of a run's client and server applications, shared with the runner.
#[derive(Clone, Debug, Default)]
pub struct Reports {
    clients: Shared,
    servers: Shared,
}

impl Reports {
    /// Snapshots of the client reports.
    pub fn clients(&self) -> Vec<BulkReport> {
        lock(&self.clients)
            .iter()
            .map(|r| lock(r).clone())
            .collect()
    }

    /// Snapshots of the server reports.
    pub fn servers(&self) -> Vec<BulkReport> {
        lock(&self.servers)
            .iter()
            .map(|r| lock(r).clone())
            .collect()
    }

    /// Every connection of `s` finished both directions.
    pub fn complete(&self, s: &Scenario) -> bool {
        let done = |reports: Vec<BulkReport>, expect: u64| {
            reports.len() == s.connections
                && reports
                    .iter()
                    .all(|r| r.fin_sent && r.received_fin && r.received == expect)
        };
        done(self.clients(), s.download) && done(self.servers(), s.upload)
    }

    /// Checks the outcome: every connection transferred byte-exact both ways, and none closed
    /// early. The error says which connection saw what.
    pub fn check(&self, s: &Scenario) -> Result<(), String> {
        for (side, reports, expect) in [
            ("client", self.clients(), s.download),
            ("server", self.servers(), s.upload),
        ] {
            if reports.len() != s.connections {
                return Err(format!(
                    "{}: {} {side} connections, expected {}",
                    s.name,
                    reports.len(),
                    s.connections
                ));
            }
            for (i, r) in reports.iter().enumerate() {
                let ok = r.fin_sent
                    && r.received_fin
                    && r.received == expect
                    && r.mismatch.is_none()
                    && r.closed.is_none();
                if !ok {
                    return Err(format!(
                        "{}: {side} {i}: {r:?}, expected {expect} bytes",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A [`BulkTransfer`] that publishes its progress to a shared [`BulkReport`].
#[derive(Debug)]
pub struct ReportedBulk {
    /// The transfer.
    pub inner: BulkTransfer,
    report: Arc<Mutex<BulkReport>>,
}

impl ReportedBulk {
    fn new(inner: BulkTransfer, into: &Shared) -> Self {
        let report = Arc::new(Mutex::new(BulkReport::default()));
        lock(into).push(report.clone());
        let app = ReportedBulk { inner, report };
        app.publish();
        app
    }

    fn publish(&self) {
        let mut r = lock(&self.report);
        r.fin_sent = self.inner.fin_sent;
        r.received = self.inner.received;
        r.received_fin = self.inner.received_fin;
        r.mismatch = self.inner.mismatch;
    }
}

impl Application for ReportedBulk {
    fn on_established(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let r = self.inner.on_established(conn, now);
        self.publish();
        r
    }

    fn process_reads(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let r = self.inner.process_reads(conn, now);
        self.publish();
        r
    }

    fn process_writes(
        &mut self,
        conn: &mut QuicheConnection,
        now: Instant,
    ) -> Result<(), ApplicationError> {
        let r = self.inner.process_writes(conn, now);
        self.publish();
        r
    }

    fn on_close(&mut self, conn: &QuicheConnection, reason: &quicksand_core::CloseReason) {
        self.inner.on_close(conn, reason);
        self.publish();
        // A clean close after everything arrived is the peer finishing, not a failure.
        let done = self.inner.fin_sent && self.inner.received_fin;
        if !done {
            lock(&self.report).closed = Some(reason.to_string());
        }
    }
}
