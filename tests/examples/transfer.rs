//! Moves data both ways between two in-memory connections on virtual time and reports how
//! much faster than real time the simulation ran.
//!
//! `cargo run --release -p quicksand-tests --example transfer -- [MEGABYTES] [RTT_MS]`

use std::time::{Duration, Instant, SystemTime};

use quicksand_core::{CertificateSource, ConnectionParams, QuicConfig, QuicSettings, TlsSettings};
use quicksand_tests::apps::BulkTransfer;
use quicksand_tests::clock::VirtualTime;
use quicksand_tests::pair::Pair;

quicksand_tests::virtual_clock!();

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let megabytes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let rtt_ms: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);
    let len = megabytes << 20;

    let mut settings = QuicSettings::default();
    settings.alpn = vec![b"quicksand-transfer".to_vec()];
    let mut client = ConnectionParams::new(settings.clone());
    client.tls.verify_peer = false;
    let server = ConnectionParams {
        settings,
        tls: TlsSettings {
            certificate: Some(CertificateSource::self_signed(
                &["localhost"],
                SystemTime::now(),
            )?),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut client_config = QuicConfig::client(&client)?;
    let server_config = QuicConfig::server(&server)?;

    let wall = Instant::now();
    let clock = VirtualTime::enter();
    let mut pair = Pair::new(
        &mut client_config,
        server_config,
        BulkTransfer::new(false, len),
        BulkTransfer::new(true, len),
        Duration::from_millis(rtt_ms / 2),
    )?;
    let done = pair.run_until(&clock, Duration::from_secs(3600), |p| {
        p.client.application().is_complete(len)
            && p.server
                .as_ref()
                .is_some_and(|s| s.application().is_complete(len))
    })?;
    let simulated = clock.elapsed();
    drop(clock);
    let real = wall.elapsed();
    if !done {
        return Err("transfer did not complete".into());
    }
    println!(
        "{megabytes} MiB each way over {rtt_ms} ms RTT: {simulated:.3?} simulated in {real:.3?} real ({:.1}x real time), byte-exact",
        simulated.as_secs_f64() / real.as_secs_f64()
    );
    Ok(())
}
