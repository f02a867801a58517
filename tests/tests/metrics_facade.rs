//! `MetricsFacade` (feature `metrics` of quicksand-adapter) through a Prometheus recorder: a
//! server's handshakes, RETRYs, packets and HTTP/3 statuses show up in the scraped text.
//!
//! Its own test binary: the recorder is process-global.

mod common;

use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use metrics_exporter_prometheus::PrometheusBuilder;
use quicksand_adapter::MetricsFacade;
use quicksand_h3::{Body, RecvBody};

async fn service(req: http::Request<RecvBody>) -> Response<Body> {
    let status = if req.uri().path() == "/" {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut resp = Response::new(Body::from("x"));
    *resp.status_mut() = status;
    resp
}

/// The value of the sample `line_start` (a metric name with its labels) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_server_reports_through_the_metrics_facade() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this binary");
    common::run_tokio(Duration::from_secs(60), async {
        let mut config = quicksand_tokio::ServerConfig {
            metrics: Arc::new(MetricsFacade),
            workers: 1,
            ..Default::default()
        };
        config.endpoint.address_validation = quicksand_core::AddressValidation::Always;
        let server =
            quicksand_tokio::serve("127.0.0.1:0".parse().unwrap(), config, service).unwrap();
        let (_client, conn) = quicksand_tokio::connect(
            server.local_addr(),
            "localhost",
            quicksand_tokio::ClientConfig::default().insecure(),
        )
        .await
        .unwrap();
        for path in ["/", "/", "/missing"] {
            let _ = conn.get(&format!("https://localhost{path}")).await.unwrap();
        }
        conn.connection.close(0x100, b"done").unwrap();
        let _ = conn.connection.closed().await;
        server.shutdown(Duration::from_secs(2)).await;
    });
    let text = handle.render();
    let expect = [
        ("quicksand_h3_responses_total{status=\"200\"}", 2.0),
        ("quicksand_h3_responses_total{status=\"404\"}", 1.0),
        // The server's; the client's config has no metrics.
        ("quicksand_handshakes_total{outcome=\"completed\"}", 1.0),
        ("quicksand_connections_opened_total", 1.0),
        ("quicksand_handshake_duration_seconds_count", 1.0),
        (
            "quicksand_connection_closes_total{by=\"peer\",space=\"application\"}",
            1.0,
        ),
    ];
    for (name, want) in expect {
        assert_eq!(sample(&text, name), Some(want), "{name} in:\n{text}");
    }
    for name in [
        // One RETRY per client Initial datagram before the client saw it.
        "quicksand_stateless_sent_total{kind=\"retry\"}",
        "quicksand_packets_sent_total",
        "quicksand_packets_received_total",
        "quicksand_bytes_sent_total",
    ] {
        assert!(
            sample(&text, name).is_some_and(|v| v > 0.0),
            "{name} counted in:\n{text}"
        );
    }
}
