//! The secrets every host of a fleet shares, in one file.
//!
//! Three things must be equal on every server a client may reach (every worker of a host,
//! every host behind a load balancer, and the process after a restart):
//!
//! - the **stateless-reset key**: a client whose server lost its state (a restart, another
//!   host) is told so and fails at once, instead of waiting out its idle timeout;
//! - the **address-token master**: a RETRY or NEW_TOKEN token minted by one server is
//!   accepted by the others;
//! - the **session-ticket master**: a session resumes (and sends 0-RTT) on any of them.
//!
//! The file is text, one `name = hex` line per secret:
//!
//! ```text
//! # quicksand fleet keys: keep secret, give every host of the fleet the same file
//! reset-key = 9f0c…(64 hex digits)
//! token-master = 41d2…
//! ticket-master = 07be…
//! ```
//!
//! Create one with [`FleetKeys::load_or_create`] (the example server's `--keys FILE` does it on
//! first start), or by hand: `printf 'reset-key = %s\ntoken-master = %s\nticket-master = %s\n'
//! $(openssl rand -hex 32) $(openssl rand -hex 32) $(openssl rand -hex 32) > keys`.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quicksand_core::endpoint::TokenKeys;
use quicksand_core::{StatelessResetKey, TicketKeys};

const NAMES: [&str; 3] = ["reset-key", "token-master", "ticket-master"];

/// The secrets a fleet shares; see the module docs.
///
/// ```
/// use quicksand_adapter::FleetKeys;
/// let keys = FleetKeys::generate();
/// let again = FleetKeys::from_text(&keys.to_text()).unwrap();
/// assert_eq!(keys, again);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FleetKeys {
    /// Derives every CID's stateless-reset token.
    pub reset_key: [u8; 32],
    /// Derives the address-token keys, a new one every `token_period`.
    pub token_master: [u8; 32],
    /// Derives the session-ticket keys, a new one every `ticket_period`.
    pub ticket_master: [u8; 32],
    /// How long one token key seals tokens. Default: [`TokenKeys::DEFAULT_PERIOD`] (an hour).
    /// Not stored in the file: every host must use the same.
    pub token_period: Duration,
    /// How long one ticket key seals tickets. Default: [`TicketKeys::DEFAULT_PERIOD`] (a day).
    /// Not stored in the file: every host must use the same.
    pub ticket_period: Duration,
}

impl fmt::Debug for FleetKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("FleetKeys")
            .field("token_period", &self.token_period)
            .field("ticket_period", &self.ticket_period)
            .finish_non_exhaustive()
    }
}

/// Why a keys file could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeysError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line is not `name = 64 hex digits` with a known name.
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A secret is missing or given twice.
    Missing(&'static str),
    /// The system's random generator failed.
    Random,
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeysError::Io { path, source } => write!(f, "keys file {}: {source}", path.display()),
            KeysError::Syntax { line, reason } => write!(f, "keys file line {line}: {reason}"),
            KeysError::Missing(name) => write!(f, "keys file: `{name}` missing or repeated"),
            KeysError::Random => f.write_str("generating keys: the random generator failed"),
        }
    }
}

impl std::error::Error for KeysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeysError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl FleetKeys {
    /// New random secrets (BoringSSL's generator), with the default periods.
    ///
    /// # Panics
    /// If the random generator fails (see [`try_generate`](Self::try_generate)).
    pub fn generate() -> Self {
        Self::try_generate().expect("the system random generator failed")
    }

    /// New random secrets, or [`KeysError::Random`].
    pub fn try_generate() -> Result<Self, KeysError> {
        let mut secrets = [[0u8; 32]; 3];
        for s in &mut secrets {
            quicksand_core::boring::rand::rand_bytes(s).map_err(|_| KeysError::Random)?;
        }
        Ok(Self::from_secrets(secrets))
    }

    fn from_secrets([reset_key, token_master, ticket_master]: [[u8; 32]; 3]) -> Self {
        FleetKeys {
            reset_key,
            token_master,
            ticket_master,
            token_period: TokenKeys::DEFAULT_PERIOD,
            ticket_period: TicketKeys::DEFAULT_PERIOD,
        }
    }

    /// Parses the file format (see the module docs); `#` starts a comment line.
    pub fn from_text(text: &str) -> Result<Self, KeysError> {
        let mut found: [Option<[u8; 32]>; 3] = [None; 3];
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |reason| KeysError::Syntax {
                line: line_no,
                reason,
            };
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| syntax("expected `name = hex`"))?;
            let slot = NAMES
                .iter()
                .position(|n| *n == name.trim())
                .ok_or_else(|| syntax("unknown name (reset-key, token-master, ticket-master)"))?;
            if found[slot].is_some() {
                return Err(KeysError::Missing(NAMES[slot]));
            }
            found[slot] = Some(parse_hex(value.trim()).ok_or_else(|| syntax("not 64 hex digits"))?);
        }
        let mut secrets = [[0u8; 32]; 3];
        for (slot, secret) in found.into_iter().enumerate() {
            secrets[slot] = secret.ok_or(KeysError::Missing(NAMES[slot]))?;
        }
        Ok(Self::from_secrets(secrets))
    }

    /// The file format.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "# quicksand fleet keys: keep secret, give every host of the fleet the same file\n",
        );
        for (name, secret) in
            NAMES
                .iter()
                .zip([&self.reset_key, &self.token_master, &self.ticket_master])
        {
            out.push_str(name);
            out.push_str(" = ");
            for b in secret {
                out.push_str(&format!("{b:02x}"));
            }
            out.push('\n');
        }
        out
    }

    /// Reads a keys file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeysError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_text(&text)
    }

    /// Reads a keys file, or creates it with new secrets (readable by its owner only) if it
    /// does not exist. Two processes starting together both end up with the file's keys.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, KeysError> {
        let path = path.as_ref();
        let io_err = |source| KeysError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                let keys = Self::try_generate()?;
                file.write_all(keys.to_text().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io_err)?;
                tracing::info!(path = %path.display(), "created a new keys file");
                Ok(keys)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_err(e)),
        }
    }

    /// The stateless-reset key.
    pub fn stateless_reset_key(&self) -> StatelessResetKey {
        StatelessResetKey::new(&self.reset_key)
    }

    /// The session-ticket key schedule.
    pub fn ticket_keys(&self) -> TicketKeys {
        TicketKeys::derived(self.ticket_master, self.ticket_period)
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_round_trips_and_bad_files_name_their_fault() {
        let keys = FleetKeys::generate();
        assert_eq!(FleetKeys::from_text(&keys.to_text()).unwrap(), keys);
        assert_ne!(FleetKeys::generate(), keys, "fresh secrets each time");

        let good = keys.to_text();
        let missing: String = good
            .lines()
            .filter(|l| !l.starts_with("token"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(matches!(
            FleetKeys::from_text(&missing),
            Err(KeysError::Missing("token-master"))
        ));
        let short = good.replace("reset-key = ", "reset-key = 0");
        assert!(matches!(
            FleetKeys::from_text(&short),
            Err(KeysError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            FleetKeys::from_text("colour = blue"),
            Err(KeysError::Syntax { line: 1, .. })
        ));
        let twice = format!("{good}{}", good.lines().nth(1).unwrap());
        assert!(matches!(
            FleetKeys::from_text(&twice),
            Err(KeysError::Missing("reset-key"))
        ));
        let debug = format!("{keys:?}");
        let hex = good.lines().nth(1).unwrap().split(" = ").nth(1).unwrap();
        assert!(
            !debug.contains(hex) && !debug.contains("reset_key"),
            "{debug}"
        );
    }

    #[test]
    fn load_or_create_writes_once_and_reads_after() {
        let dir = std::env::temp_dir().join(format!("quicksand-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        let _ = std::fs::remove_file(&path);
        let first = FleetKeys::load_or_create(&path).unwrap();
        let second = FleetKeys::load_or_create(&path).unwrap();
        assert_eq!(
            first, second,
            "the second start reads the file the first wrote"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "only the owner may read the keys: {mode:o}"
            );
        }
        std::fs::write(&path, "reset-key = zz").unwrap();
        let err = FleetKeys::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
