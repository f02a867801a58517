//! Validation of settings and the `quiche::Config` they build.

use std::time::{Duration, SystemTime};

use super::tickets::TicketClock;

use super::{tls, ConfigError, ConfigErrorKind, ConnectionParams, QuicSettings};

/// A validated, built configuration for one side of many connections.
///
/// Building is expensive (a TLS context, certificates read and parsed), so build once and share
/// it across connections; the endpoint and [`Connection`](crate::Connection) constructors borrow
/// it mutably only while creating a connection.
pub struct QuicConfig {
    pub(crate) quiche: quiche::Config,
    pub(crate) settings: QuicSettings,
    pub(crate) is_server: bool,
    pub(crate) session: Option<Vec<u8>>,
    tickets: Option<TicketClock>,
}

impl std::fmt::Debug for QuicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConfig")
            .field("is_server", &self.is_server)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl QuicConfig {
    /// Builds a client configuration.
    pub fn client(params: &ConnectionParams) -> Result<Self, ConfigError> {
        Self::build(params, false)
    }

    /// Builds a server configuration; a certificate is required.
    pub fn server(params: &ConnectionParams) -> Result<Self, ConfigError> {
        Self::build(params, true)
    }

    /// The settings this config was built from.
    pub fn settings(&self) -> &QuicSettings {
        &self.settings
    }

    /// True for a server config.
    pub fn is_server(&self) -> bool {
        self.is_server
    }

    /// Direct access to quiche's config, for knobs quicksand does not wrap.
    pub fn quiche_config_mut(&mut self) -> &mut quiche::Config {
        &mut self.quiche
    }

    /// Tells the session-ticket keys ([`TlsSettings::ticket_keys`](super::TlsSettings)) the
    /// wall time, which picks the key new tickets are sealed with; returns how long until the
    /// next key (`None` without ticket keys). The endpoint calls it when that time has come; a
    /// server driving connections without an endpoint calls it itself (before the first
    /// handshake: until then no tickets are issued).
    pub fn set_ticket_time(&self, wall: SystemTime) -> Option<Duration> {
        self.tickets.as_ref().map(|clock| clock.set_time(wall))
    }

    /// Sets the TLS session a client resumes on its next connection (from
    /// [`Connection::session`](crate::Connection::session)).
    pub fn set_session(&mut self, session: Option<Vec<u8>>) {
        self.session = session;
    }

    fn build(params: &ConnectionParams, is_server: bool) -> Result<Self, ConfigError> {
        let s = &params.settings;
        validate(s)?;
        let (ctx, tickets) =
            tls::build_context(&params.tls, &params.hooks, is_server, s.enable_early_data)?;
        let mut c = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, ctx)
            .map_err(|e| ConfigError::new("tls", ConfigErrorKind::Quiche(e)))?;

        let alpn: Vec<&[u8]> = s.alpn.iter().map(Vec::as_slice).collect();
        c.set_application_protos(&alpn)
            .map_err(|e| ConfigError::new("alpn", ConfigErrorKind::Quiche(e)))?;
        c.set_initial_max_data(s.initial_max_data);
        c.set_initial_max_stream_data_bidi_local(s.initial_max_stream_data_bidi_local);
        c.set_initial_max_stream_data_bidi_remote(s.initial_max_stream_data_bidi_remote);
        c.set_initial_max_stream_data_uni(s.initial_max_stream_data_uni);
        c.set_initial_max_streams_bidi(s.initial_max_streams_bidi);
        c.set_initial_max_streams_uni(s.initial_max_streams_uni);
        c.set_max_connection_window(s.max_connection_window);
        c.set_max_stream_window(s.max_stream_window);
        c.set_max_idle_timeout(s.max_idle_timeout.map_or(0, |d| d.as_millis() as u64));
        c.enable_dgram(
            s.enable_dgram,
            s.dgram_recv_max_queue_len,
            s.dgram_send_max_queue_len,
        );
        if s.enable_early_data {
            c.enable_early_data();
        }
        c.set_disable_active_migration(s.disable_active_migration);
        c.set_active_connection_id_limit(s.active_connection_id_limit);
        c.set_max_recv_udp_payload_size(s.max_recv_udp_payload_size);
        c.set_max_send_udp_payload_size(s.max_send_udp_payload_size);
        c.set_cc_algorithm_name(&s.cc_algorithm).map_err(|_| {
            ConfigError::new(
                "cc_algorithm",
                ConfigErrorKind::UnknownCongestionControl(s.cc_algorithm.clone()),
            )
        })?;
        c.set_initial_congestion_window_packets(s.initial_congestion_window_packets);
        c.enable_hystart(s.enable_hystart);
        c.enable_pacing(s.enable_pacing);
        if let Some(rate) = s.max_pacing_rate {
            c.set_max_pacing_rate(rate);
        }
        c.discover_pmtu(s.discover_pmtu);
        c.set_pmtud_max_probes(s.pmtud_max_probes);
        c.set_max_amplification_factor(s.max_amplification_factor);
        c.set_ack_delay_exponent(s.ack_delay_exponent);
        c.set_max_ack_delay(s.max_ack_delay.as_millis() as u64);
        c.set_initial_rtt(s.initial_rtt);
        c.grease(s.grease);
        if s.log_keys {
            c.log_keys();
        }
        // Servers verify clients only when given roots to verify them against.
        c.verify_peer(params.tls.verify_peer && (!is_server || params.tls.ca_pem.is_some()));
        Ok(QuicConfig {
            quiche: c,
            tickets,
            settings: s.clone(),
            is_server,
            session: params.session.clone(),
        })
    }

    pub(crate) fn handshake_timeout(&self) -> Option<Duration> {
        self.settings.handshake_timeout
    }
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        let kind = if value == 0 {
            ConfigErrorKind::Zero
        } else {
            ConfigErrorKind::OutOfRange { value, min, max }
        };
        return Err(ConfigError::new(field, kind));
    }
    Ok(())
}

const VARINT_MAX: u64 = (1 << 62) - 1;
/// The largest value of a 4-byte varint: the cap of every window, stream count and timeout
/// that travels in the transport parameters, so that all of them at once still fit (see
/// [`ServerTransportParams`](super::ServerTransportParams)).
const PARAM_MAX: u64 = (1 << 30) - 1;

fn validate(s: &QuicSettings) -> Result<(), ConfigError> {
    if s.alpn.is_empty() {
        return Err(ConfigError::new("alpn", ConfigErrorKind::Empty));
    }
    for proto in &s.alpn {
        range("alpn", proto.len() as u64, 1, 255)?;
    }
    range("initial_max_data", s.initial_max_data, 1, PARAM_MAX)?;
    range(
        "initial_max_stream_data_bidi_local",
        s.initial_max_stream_data_bidi_local,
        1,
        PARAM_MAX,
    )?;
    range(
        "initial_max_stream_data_bidi_remote",
        s.initial_max_stream_data_bidi_remote,
        1,
        PARAM_MAX,
    )?;
    range(
        "initial_max_stream_data_uni",
        s.initial_max_stream_data_uni,
        1,
        PARAM_MAX,
    )?;
    range(
        "initial_max_streams_bidi",
        s.initial_max_streams_bidi,
        0,
        PARAM_MAX,
    )?;
    range(
        "initial_max_streams_uni",
        s.initial_max_streams_uni,
        0,
        PARAM_MAX,
    )?;
    range(
        "max_connection_window",
        s.max_connection_window,
        s.initial_max_data.max(1),
        VARINT_MAX,
    )?;
    range("max_stream_window", s.max_stream_window, 1, VARINT_MAX)?;
    if let Some(t) = s.max_idle_timeout {
        range("max_idle_timeout", t.as_millis() as u64, 1, PARAM_MAX)?;
    }
    if let Some(t) = s.handshake_timeout {
        range(
            "handshake_timeout",
            t.as_millis() as u64,
            1,
            u32::MAX as u64,
        )?;
    }
    if s.enable_dgram {
        range(
            "dgram_recv_max_queue_len",
            s.dgram_recv_max_queue_len as u64,
            1,
            u32::MAX as u64,
        )?;
        range(
            "dgram_send_max_queue_len",
            s.dgram_send_max_queue_len as u64,
            1,
            u32::MAX as u64,
        )?;
    }
    range(
        "active_connection_id_limit",
        s.active_connection_id_limit,
        2,
        16_383,
    )?;
    range(
        "max_recv_udp_payload_size",
        s.max_recv_udp_payload_size as u64,
        1200,
        65_527,
    )?;
    range(
        "max_send_udp_payload_size",
        s.max_send_udp_payload_size as u64,
        1200,
        65_527,
    )?;
    range(
        "initial_congestion_window_packets",
        s.initial_congestion_window_packets as u64,
        1,
        1 << 20,
    )?;
    if let Some(rate) = s.max_pacing_rate {
        range("max_pacing_rate", rate, 1, u64::MAX)?;
    }
    range("pmtud_max_probes", s.pmtud_max_probes as u64, 1, 255)?;
    range(
        "max_amplification_factor",
        s.max_amplification_factor as u64,
        1,
        100,
    )?;
    range("ack_delay_exponent", s.ack_delay_exponent, 0, 20)?;
    range(
        "max_ack_delay",
        s.max_ack_delay.as_millis() as u64,
        0,
        (1 << 14) - 1,
    )?;
    range("initial_rtt", s.initial_rtt.as_millis() as u64, 1, 60_000)?;
    range("dscp", s.dscp as u64, 0, 63)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::CertificateSource;

    fn settings() -> QuicSettings {
        QuicSettings {
            alpn: vec![b"test".to_vec()],
            ..Default::default()
        }
    }

    fn client_err(s: QuicSettings) -> ConfigError {
        QuicConfig::client(&ConnectionParams::new(s)).unwrap_err()
    }

    #[test]
    fn defaults_build_a_client() {
        let c = QuicConfig::client(&ConnectionParams::new(settings())).unwrap();
        assert!(!c.is_server());
    }

    #[test]
    fn invalid_values_name_their_field() {
        let e = client_err(QuicSettings {
            initial_max_data: 0,
            ..settings()
        });
        assert_eq!(e.field, "initial_max_data");
        assert!(matches!(e.kind, ConfigErrorKind::Zero));
        assert!(e.to_string().contains("initial_max_data"));

        let e = client_err(QuicSettings {
            cc_algorithm: "vegas".into(),
            ..settings()
        });
        assert_eq!(e.field, "cc_algorithm");
        assert!(e.to_string().contains("vegas"));

        let e = client_err(QuicSettings {
            alpn: vec![],
            ..settings()
        });
        assert_eq!(e.field, "alpn");

        let e = client_err(QuicSettings {
            max_send_udp_payload_size: 1000,
            ..settings()
        });
        assert_eq!(e.field, "max_send_udp_payload_size");
        assert!(matches!(
            e.kind,
            ConfigErrorKind::OutOfRange {
                value: 1000,
                min: 1200,
                ..
            }
        ));

        let e = client_err(QuicSettings {
            active_connection_id_limit: 1,
            ..settings()
        });
        assert_eq!(e.field, "active_connection_id_limit");

        let e = client_err(QuicSettings {
            dscp: 64,
            ..settings()
        });
        assert_eq!(e.field, "dscp");

        let e = client_err(QuicSettings {
            initial_max_stream_data_uni: 0,
            ..settings()
        });
        assert_eq!(e.field, "initial_max_stream_data_uni");
    }

    #[test]
    fn server_without_certificate_is_refused() {
        let e = QuicConfig::server(&ConnectionParams::new(settings())).unwrap_err();
        assert_eq!(e.field, "tls.certificate");
        assert!(matches!(e.kind, ConfigErrorKind::MissingCertificate));
    }

    #[test]
    fn garbage_certificates_and_roots_are_clear_errors() {
        let mut p = ConnectionParams::new(settings());
        p.tls.certificate = Some(CertificateSource::Pem {
            chain: b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
                .to_vec(),
            key: b"garbage".to_vec(),
        });
        let e = QuicConfig::server(&p).unwrap_err();
        assert_eq!(e.field, "tls.certificate");
        assert!(matches!(e.kind, ConfigErrorKind::InvalidPem { .. }), "{e}");

        p.tls.certificate = Some(CertificateSource::Pem {
            chain: Vec::new(),
            key: Vec::new(),
        });
        assert!(QuicConfig::server(&p).is_err());

        let mut c = ConnectionParams::new(settings());
        c.tls.ca_pem = Some(b"no certificate here".to_vec());
        let e = QuicConfig::client(&c).unwrap_err();
        assert_eq!(e.field, "tls.ca_pem");
    }
}
