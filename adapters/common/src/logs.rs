//! Diagnostics files: [`FileLogs`] writes each connection's TLS secrets to one key-log file
//! and its qlog to a file of its own, what the configs' `keylog_file` and `qlog_dir` ask for.
//! The core asks for writers through [`ConnectionLogs`]; opening files is the adapter's job.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use quicksand_core::{ConnectionLogs, LogTarget, LogWriter, QuicSettings};

/// Key log and qlog files. A file that cannot be opened is logged and skipped: diagnostics
/// must not break a connection.
#[derive(Clone, Debug, Default)]
pub struct FileLogs {
    /// Every connection's TLS secrets are appended here (NSS key-log format).
    pub keylog_file: Option<PathBuf>,
    /// Each connection's qlog goes to `<dir>/<trace id>-<server|client>.sqlog`.
    pub qlog_dir: Option<PathBuf>,
}

impl FileLogs {
    /// The context's logs for a config's `keylog_file` and `qlog_dir`: `None` when there is
    /// nothing to write.
    pub(crate) fn of(
        keylog_file: &Option<PathBuf>,
        qlog_dir: &Option<PathBuf>,
    ) -> Option<Arc<dyn ConnectionLogs>> {
        (keylog_file.is_some() || qlog_dir.is_some()).then(|| {
            Arc::new(FileLogs {
                keylog_file: keylog_file.clone(),
                qlog_dir: qlog_dir.clone(),
            }) as Arc<dyn ConnectionLogs>
        })
    }

    /// `settings` with BoringSSL told to hand out the secrets when a key log is asked for.
    pub(crate) fn settings(settings: &QuicSettings, keylog_file: &Option<PathBuf>) -> QuicSettings {
        let mut settings = settings.clone();
        settings.log_keys |= keylog_file.is_some();
        settings
    }
}

impl ConnectionLogs for FileLogs {
    fn key_log(&self, _: &LogTarget<'_>) -> Option<LogWriter> {
        let path = self.keylog_file.as_ref()?;
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Some(Box::new(file)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open key log file");
                None
            }
        }
    }

    fn qlog(&self, target: &LogTarget<'_>) -> Option<LogWriter> {
        let dir = self.qlog_dir.as_ref()?;
        let path = dir.join(format!("{}-{}.sqlog", target.trace_id, target.role()));
        match File::create(&path) {
            Ok(file) => Some(Box::new(BufWriter::new(file))),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create qlog file");
                None
            }
        }
    }
}
