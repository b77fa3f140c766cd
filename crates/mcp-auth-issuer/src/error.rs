//! The library's error type: what can go wrong when starting or administering the issuer.

use std::path::PathBuf;

/// Errors returned by [`Issuer::serve`](crate::Issuer::serve) and the [`IssuerHandle`](crate::IssuerHandle)
/// helpers. Messages say what was wrong and what to do; they never contain a token or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent (empty user list, unknown auto-approve user, …).
    #[error("invalid issuer configuration: {0}")]
    Config(String),
    /// `auto_approve_user` was set while listening on a non-loopback address.
    #[error(
        "refusing to auto-approve authorization requests on non-loopback address {0}: \
         auto-approve is for local automated tests only; bind 127.0.0.1 or ::1, or drop the option"
    )]
    AutoApproveOnNonLoopback(std::net::SocketAddr),
    /// A users file could not be read or parsed.
    #[error("cannot load users from {path}: {message}")]
    Users {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The key file could not be read, parsed or written.
    #[error("key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The state directory is in use by another issuer (one owner at a time).
    #[error(
        "the state directory {} is in use by another mcp-auth-issuer{}: stop that one first, or start this one with another --state-dir (or --ephemeral)",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    StateLocked {
        /// The state directory.
        dir: PathBuf,
        /// The process holding it, when it could be read from the lock file.
        pid: Option<u32>,
    },
    /// The state was written by a newer version of the issuer, whose schema this one cannot read.
    #[error(
        "{what} was written by a newer mcp-auth-issuer (schema version {found}; this build reads up to {supported}): run the newer version, or start with another --state-dir"
    )]
    StateTooNew {
        /// The database.
        what: String,
        /// Its schema version.
        found: u32,
        /// The newest schema version this build reads.
        supported: u32,
    },
    /// The state could not be opened, read or written.
    #[error("issuer state: {0}")]
    State(String),
    /// Key generation or signing failed inside the crypto library.
    #[error("crypto failure: {0}")]
    Crypto(String),
    /// A mint request was malformed (empty subject, unknown scope, …).
    #[error("invalid mint request: {0}")]
    InvalidRequest(String),
    /// The listener's address could not be read, or the server task failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Locked { dir, pid } => Self::StateLocked { dir, pid },
            StoreError::TooNew {
                what,
                found,
                supported,
            } => Self::StateTooNew {
                what,
                found,
                supported,
            },
            other => Self::State(other.to_string()),
        }
    }
}
