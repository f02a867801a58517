//! [`MetricsFacade`]: quicksand's telemetry through the [`metrics`] crate, so any recorder
//! (Prometheus, StatsD, OpenTelemetry exporters) can scrape it. Feature `metrics`.

use std::borrow::Cow;
use std::time::Duration;

use metrics::{counter, histogram};
use quicksand_core::metrics::{
    DropReason, HandshakeFailure, RejectReason, StatelessKind, TransportDelta,
};
use quicksand_core::Metrics;

/// A [`Metrics`] sink that records into the global `metrics` recorder. Set it as
/// `ServerConfig::metrics` (or `ClientConfig::metrics`).
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `quicksand_connections_opened_total`, `quicksand_connections_closed_total` | counter | |
/// | `quicksand_handshakes_total` | counter | `outcome`: `completed` or a [`HandshakeFailure`] |
/// | `quicksand_handshake_duration_seconds` | histogram | |
/// | `quicksand_initials_rejected_total` | counter | `reason` ([`RejectReason`]) |
/// | `quicksand_datagrams_dropped_total` | counter | `reason` ([`DropReason`]) |
/// | `quicksand_stateless_sent_total`, `quicksand_stateless_sent_bytes_total` | counter | `kind`: `retry`, `version_negotiation`, `stateless_reset` |
/// | `quicksand_packets_sent_total`, `_received_total`, `_lost_total` | counter | |
/// | `quicksand_bytes_sent_total`, `quicksand_bytes_received_total` | counter | |
/// | `quicksand_datagrams_forwarded_total` | counter | |
/// | `quicksand_connection_closes_total` | counter | `by`: `local`/`peer`, `space`: `transport`/`application` |
/// | `quicksand_write_errors_total` | counter | |
/// | `quicksand_h3_responses_total` | counter | `status` |
///
/// ```
/// use std::sync::Arc;
/// use quicksand_adapter::{MetricsFacade, ServerConfig};
/// let config = ServerConfig {
///     metrics: Arc::new(MetricsFacade),
///     ..ServerConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsFacade;

fn space(application: bool) -> &'static str {
    if application {
        "application"
    } else {
        "transport"
    }
}

/// A status label without allocating for the common ones.
fn status_label(status: u16) -> Cow<'static, str> {
    const COMMON: [(u16, &str); 14] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (206, "206"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (403, "403"),
        (404, "404"),
        (425, "425"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    match COMMON.iter().find(|(s, _)| *s == status) {
        Some((_, label)) => Cow::Borrowed(label),
        None => Cow::Owned(status.to_string()),
    }
}

impl Metrics for MetricsFacade {
    fn connection_opened(&self) {
        counter!("quicksand_connections_opened_total").increment(1);
    }

    fn connection_closed(&self) {
        counter!("quicksand_connections_closed_total").increment(1);
    }

    fn handshake_completed(&self, duration: Duration) {
        counter!("quicksand_handshakes_total", "outcome" => "completed").increment(1);
        histogram!("quicksand_handshake_duration_seconds").record(duration.as_secs_f64());
    }

    fn handshake_failed(&self, reason: HandshakeFailure) {
        counter!("quicksand_handshakes_total", "outcome" => reason.as_str()).increment(1);
    }

    fn write_error(&self) {
        counter!("quicksand_write_errors_total").increment(1);
    }

    fn initial_rejected(&self, reason: RejectReason) {
        counter!("quicksand_initials_rejected_total", "reason" => reason.as_str()).increment(1);
    }

    fn local_close(&self, application: bool, _code: u64) {
        counter!("quicksand_connection_closes_total", "by" => "local", "space" => space(application))
            .increment(1);
    }

    fn peer_close(&self, application: bool, _code: u64) {
        counter!("quicksand_connection_closes_total", "by" => "peer", "space" => space(application))
            .increment(1);
    }

    fn datagram_dropped(&self, reason: DropReason) {
        counter!("quicksand_datagrams_dropped_total", "reason" => reason.as_str()).increment(1);
    }

    fn stateless_sent(&self, kind: StatelessKind, bytes: usize) {
        counter!("quicksand_stateless_sent_total", "kind" => kind.as_str()).increment(1);
        counter!("quicksand_stateless_sent_bytes_total", "kind" => kind.as_str())
            .increment(bytes as u64);
    }

    fn transport(&self, d: &TransportDelta) {
        counter!("quicksand_packets_sent_total").increment(d.packets_sent);
        counter!("quicksand_packets_received_total").increment(d.packets_received);
        counter!("quicksand_packets_lost_total").increment(d.packets_lost);
        counter!("quicksand_bytes_sent_total").increment(d.bytes_sent);
        counter!("quicksand_bytes_received_total").increment(d.bytes_received);
    }

    fn datagrams_forwarded(&self, count: u64) {
        counter!("quicksand_datagrams_forwarded_total").increment(count);
    }

    fn h3_response(&self, status: u16) {
        counter!("quicksand_h3_responses_total", "status" => status_label(status)).increment(1);
    }
}
