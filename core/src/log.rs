//! Bridging quiche's `log` output into `tracing`.

/// Forwards records of the `log` crate (quiche's logging) to `tracing`, so one subscriber sees
/// both. Call once at start-up; returns an error if another `log` logger is already set.
pub fn capture_quiche_logs() -> Result<(), log::SetLoggerError> {
    log::set_logger(&Bridge)?;
    log::set_max_level(log::LevelFilter::Trace);
    Ok(())
}

struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        match metadata.level() {
            log::Level::Error => tracing::enabled!(tracing::Level::ERROR),
            log::Level::Warn => tracing::enabled!(tracing::Level::WARN),
            log::Level::Info => tracing::enabled!(tracing::Level::INFO),
            log::Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
            log::Level::Trace => tracing::enabled!(tracing::Level::TRACE),
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        let target = record.target();
        let args = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(log.target = target, "{args}"),
            log::Level::Warn => tracing::warn!(log.target = target, "{args}"),
            log::Level::Info => tracing::info!(log.target = target, "{args}"),
            log::Level::Debug => tracing::debug!(log.target = target, "{args}"),
            log::Level::Trace => tracing::trace!(log.target = target, "{args}"),
        }
    }

    fn flush(&self) {}
}
