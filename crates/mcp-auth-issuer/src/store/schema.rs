//! The database schema as an ordered list of migrations. `PRAGMA user_version` is the number of
//! migrations applied; opening a state applies the missing ones, each in its own transaction
//! (the version bump included), and refuses a state written by a newer issuer.
//!
//! To add a table (the CIMD metadata-document cache, machines, …): append a migration, never
//! edit one that has shipped. Timestamps are milliseconds since the Unix epoch; lists of scopes
//! and redirect URIs are JSON arrays; every secret is a hex SHA-256 (`hash` columns), except the
//! signing keys and the secret key, which must be usable.

use rusqlite::Connection;

use super::StoreError;

/// `PRAGMA application_id` of an issuer state ("mcai"), so another program's SQLite file is
/// recognised and refused instead of being migrated.
pub(crate) const APPLICATION_ID: i32 = 0x6d63_6169;

/// Migration 1: everything the issuer needs to survive a restart.
const V1: &str = r"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    pkcs8      BLOB NOT NULL,
    created_at INTEGER NOT NULL,  -- seconds
    retired_at INTEGER            -- seconds; NULL for the active key
) STRICT;

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    secret_hash   TEXT,
    auth_method   TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    grant_types   TEXT NOT NULL,
    client_name   TEXT,
    logo_uri      TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

-- A user's decision to let a client act for them; codes and tokens descend from it.
CREATE TABLE consents (
    grant_id   TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT,
    granted_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE TABLE auth_codes (
    hash           TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT,
    code_challenge TEXT NOT NULL,
    subject        TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    resource       TEXT,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,  -- seconds
    expires_at     INTEGER NOT NULL,
    used           INTEGER NOT NULL,
    grant_id       TEXT NOT NULL
) STRICT;
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);

-- JWT and opaque access tokens by id (`oat_…`, the JWT `jti`); `hash` only for opaque ones.
CREATE TABLE access_tokens (
    id                TEXT PRIMARY KEY,
    hash              TEXT UNIQUE,
    client_id         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    scopes            TEXT NOT NULL,
    resource          TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    revoked_at        INTEGER,
    revocation_reason TEXT,
    grant_id          TEXT
) STRICT;
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    resource   TEXT,
    expires_at INTEGER NOT NULL,
    status     TEXT NOT NULL,  -- active | rotated | revoked
    grant_id   TEXT NOT NULL
) STRICT;
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- Clerk API keys (`ak_…`) and machine tokens (`mt_…`).
CREATE TABLE credentials (
    hash              TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,  -- api_key | machine_token
    id                TEXT NOT NULL,
    name              TEXT NOT NULL,
    subject           TEXT NOT NULL,
    scopes            TEXT NOT NULL,
    claims            TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER,
    revoked_at        INTEGER,
    revocation_reason TEXT,
    last_used_at      INTEGER
) STRICT;

-- Session tokens minted by the admin helpers, by `jti`, for revocation.
CREATE TABLE session_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL
) STRICT;
";

/// Migration 2: the users file's contents, so tokens' subjects still exist after a restart
/// without `--users`.
const V2: &str = r"
CREATE TABLE users (
    position INTEGER PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,
    json     TEXT NOT NULL
) STRICT;
";

/// Migration 3: Clerk machines (`POST /admin/machines`) and their secret keys (as hashes, each
/// naming its machine), and when each refresh token was issued (introspection's `iat`).
/// Refresh tokens written before have no issue time; they get their consent's time, the
/// earliest they can have been issued (0 if the consent is gone).
const V3: &str = r"
CREATE TABLE machines (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    scoped_machines   TEXT NOT NULL,  -- JSON array of machine ids
    default_token_ttl INTEGER NOT NULL  -- seconds
) STRICT;

CREATE TABLE machine_secrets (
    hash       TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL
) STRICT;

ALTER TABLE refresh_tokens ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
UPDATE refresh_tokens SET created_at = coalesce(
    (SELECT granted_at FROM consents WHERE consents.grant_id = refresh_tokens.grant_id), 0);
";

/// Migration 4: the cache of Client ID Metadata Documents (CIMD), by URL: the document as
/// fetched (re-validated at every use) and until when it may be reused without fetching it
/// again. A cache only: deleting rows costs a fetch, never a client.
const V4: &str = r"
CREATE TABLE client_metadata_documents (
    url        TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX client_metadata_documents_by_expiry ON client_metadata_documents (expires_at);
";

/// Every migration, in order; `MIGRATIONS[n]` takes a state from version `n` to `n + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes.
pub(crate) fn latest_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Bring `conn` to the latest version. `what` names the state in error messages.
pub(crate) fn migrate(conn: &mut Connection, what: &str) -> Result<(), StoreError> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if application_id != APPLICATION_ID && (application_id != 0 || version != 0) {
        return Err(StoreError::NotAState {
            what: what.to_owned(),
        });
    }
    if version > latest_version() {
        return Err(StoreError::TooNew {
            what: what.to_owned(),
            found: version,
            supported: latest_version(),
        });
    }
    let from = usize::try_from(version).unwrap_or(usize::MAX);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
        if from > 0 {
            tracing::info!(state = what, to = index + 1, "migrated the issuer state");
        }
    }
    Ok(())
}

/// Apply only the first `version` migrations: tests build a state as an older issuer wrote it.
#[cfg(test)]
pub(crate) fn migrate_to(conn: &mut Connection, version: usize) -> rusqlite::Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate().take(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}
