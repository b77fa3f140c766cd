//! The issuer's state in an embedded SQLite database: signing keys, the secret key, clients,
//! consents, codes, tokens (as hashes), revocations, users, and Clerk machines with their secret
//! keys (as hashes).
//!
//! - In a state directory (`IssuerConfig::state_dir`), the database `issuer.sqlite3` (mode 0600,
//!   in a 0700 directory) runs in WAL mode with `synchronous=FULL`: each operation is one
//!   transaction, durable once it returns, so killing the process at any moment loses at most
//!   the operation in flight and never corrupts what was committed. `issuer.lock` keeps a second
//!   process out ([`lock`]).
//! - Without one, the same code runs over an in-memory SQLite database that dies with the
//!   process (tests, `--ephemeral`).
//!
//! Nothing is loaded into memory at start except the signing keys: every request queries what it
//! needs through the primary keys and indexes, so start-up time does not grow with the state.
//! Handlers call [`Store::read`] or [`Store::write`] with a closure over [`Tx`], whose methods
//! (in `queries`) are the only SQL outside [`schema`].

mod lock;
mod queries;
mod records;
mod schema;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub(crate) use lock::LOCK_FILE;
use lock::StateLock;
pub(crate) use queries::{StoredKey, Tx};
pub(crate) use records::{
    AccessToken, AuthCode, CredentialKind, Machine, MachineCredential, RefreshStatus, RefreshToken,
};

/// File name of the database inside the state directory.
pub(crate) const DB_FILE: &str = "issuer.sqlite3";

/// What can go wrong with the state. Converted to [`crate::Error`] at start and to a 500 (never
/// a 4xx that would send a client back to the consent screen) while serving.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error(
        "the state directory {} is in use by another mcp-auth-issuer{}: stop that one first, or start this one with another --state-dir (or --ephemeral)",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, pid: Option<u32> },
    #[error(
        "{what} was written by a newer mcp-auth-issuer (schema version {found}; this build reads up to {supported}): run the newer version, or start with another --state-dir"
    )]
    TooNew {
        what: String,
        found: u32,
        supported: u32,
    },
    #[error(
        "{what} is not an mcp-auth-issuer state database: start with another --state-dir, or move the file away"
    )]
    NotAState { what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a stored record is malformed: {0}")]
    Corrupt(String),
    #[error("the issuer is shutting down")]
    Closed,
}

/// File options that create a file readable and writable by its owner only (0600).
pub(crate) fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// The database connection, behind one mutex: SQLite serialises writers anyway, and every
/// operation is short.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<Option<Connection>>,
    lock: Mutex<Option<StateLock>>,
    dir: Option<PathBuf>,
}

impl Store {
    /// Open (creating if needed) the state in `dir`: take the lock, open the database, migrate.
    /// Blocking (file I/O, fsync): call from a blocking context.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(dir).map_err(io)?;
        }
        let lock = StateLock::acquire(dir)?;
        let path = dir.join(DB_FILE);
        // Create the file ourselves so it is 0600 from its first byte; SQLite gives the WAL and
        // shared-memory files the database file's permissions.
        private_file_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let what = path.display().to_string();
        // Refuse a foreign or newer database before changing anything in it (not even its
        // journal mode).
        schema::migrate(&mut conn, &what)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "{what}: SQLite refused WAL mode (got `{mode}`)"
            )));
        }
        // FULL: the WAL is synced at every commit, so an acknowledged change survives even a
        // power cut; NORMAL would survive a killed process but not that, for little gain here.
        conn.pragma_update(None, "synchronous", "FULL")?;
        restrict_permissions(dir);
        Ok(Self {
            conn: Mutex::new(Some(conn)),
            lock: Mutex::new(Some(lock)),
            dir: Some(dir.to_path_buf()),
        })
    }

    /// A state that lives in memory and dies with the process.
    pub(crate) fn in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        schema::migrate(&mut conn, "the in-memory state")?;
        Ok(Self {
            conn: Mutex::new(Some(conn)),
            lock: Mutex::new(None),
            dir: None,
        })
    }

    /// The state directory, or `None` in memory.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn connection(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic inside an operation rolled its transaction back as it unwound (the
        // transaction's drop), so the connection is consistent: recover from the poison.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `f` on the current state. Reads see every committed write.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.connection();
        let conn = guard.as_ref().ok_or(StoreError::Closed)?;
        f(&Tx::new(conn))
    }

    /// Run `f` as one transaction: committed when it returns `Ok`, rolled back otherwise (and
    /// when the process dies before the commit). Protocol outcomes that must still be recorded
    /// (a burnt code, a revoked grant) are `Ok` values, not errors.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.connection();
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&Tx::new(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    /// Close the database and release the directory lock, so a new issuer can open the same
    /// state at once (even while requests still hold the shared state: they get
    /// [`StoreError::Closed`]).
    pub(crate) fn close(&self) {
        if let Some(conn) = self.connection().take()
            && let Err((_, e)) = conn.close()
        {
            tracing::warn!(error = %e, "closing the state database failed");
        }
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// Owner-only permissions on every file of the state (the WAL and shared-memory files included),
/// whatever the umask did to files an older build created.
fn restrict_permissions(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in [
            DB_FILE.to_owned(),
            format!("{DB_FILE}-wal"),
            format!("{DB_FILE}-shm"),
            LOCK_FILE.to_owned(),
        ] {
            let path = dir.join(name);
            if path.exists()
                && let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot make a state file private");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests;
