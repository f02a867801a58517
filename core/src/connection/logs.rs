//! Where a connection's diagnostics go: its TLS secrets (NSS key-log format, for Wireshark)
//! and its qlog. The core opens no files: whoever builds the endpoint puts a
//! [`ConnectionLogs`] into the [`ConnectionContext`](crate::ConnectionContext) (the adapters
//! write files named by their configs' `keylog_file` and `qlog_dir`).

use std::fmt;
use std::io::Write;

use crate::QuicheConnection;

/// A writer quiche writes one connection's log to.
pub type LogWriter = Box<dyn Write + Send + Sync>;

/// Hands out the writers of each new connection's logs, asked once when it is created.
///
/// ```
/// use quicksand_core::{ConnectionLogs, LogTarget, LogWriter};
///
/// /// Key logs of every connection into one shared buffer.
/// struct Secrets(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
///
/// struct Into(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
/// impl std::io::Write for Into {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().extend_from_slice(b);
///         Ok(b.len())
///     }
///     fn flush(&mut self) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// impl ConnectionLogs for Secrets {
///     fn key_log(&self, _: &LogTarget<'_>) -> Option<LogWriter> {
///         Some(Box::new(Into(self.0.clone())))
///     }
///     fn qlog(&self, _: &LogTarget<'_>) -> Option<LogWriter> {
///         None
///     }
/// }
/// ```
pub trait ConnectionLogs: Send + Sync {
    /// Where the connection's TLS secrets go; asked only when the QUIC settings have
    /// `log_keys` set (BoringSSL hands the secrets out only then).
    fn key_log(&self, connection: &LogTarget<'_>) -> Option<LogWriter>;

    /// Where the connection's qlog (JSON text sequences) goes.
    fn qlog(&self, connection: &LogTarget<'_>) -> Option<LogWriter>;
}

impl fmt::Debug for dyn ConnectionLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionLogs")
    }
}

/// The connection a log is for.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LogTarget<'a> {
    /// quiche's trace id of the connection (hex of its first source CID).
    pub trace_id: &'a str,
    /// The server side of the connection.
    pub is_server: bool,
}

impl LogTarget<'_> {
    /// `"server"` or `"client"`.
    pub fn role(&self) -> &'static str {
        if self.is_server {
            "server"
        } else {
            "client"
        }
    }
}

/// Attaches the writers `logs` hands out for `conn`.
pub(crate) fn attach(conn: &mut QuicheConnection, logs: &dyn ConnectionLogs, log_keys: bool) {
    let trace_id = conn.trace_id().to_string();
    let target = LogTarget {
        trace_id: &trace_id,
        is_server: conn.is_server(),
    };
    if log_keys {
        if let Some(w) = logs.key_log(&target) {
            conn.set_keylog(w);
        }
    }
    if let Some(w) = logs.qlog(&target) {
        let role = target.role();
        conn.set_qlog(
            w,
            format!("quicksand {role}"),
            format!("quicksand {role} {trace_id}"),
        );
    }
}
