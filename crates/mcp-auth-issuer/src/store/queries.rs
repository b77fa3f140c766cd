//! One method per operation on the state. Each runs inside the transaction (or read) that
//! [`Store::write`](super::Store::write) / [`Store::read`](super::Store::read) opened; statements
//! are cached per connection, so the SQL is parsed once.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::StoreError;
use super::records::{
    AccessToken, AuthCode, CredentialKind, Machine, MachineCredential, RefreshStatus, RefreshToken,
};
use crate::clients::{AuthMethod, Client};
use crate::users::User;

/// The operations, over a connection inside a transaction.
pub(crate) struct Tx<'a> {
    conn: &'a Connection,
}

/// A signing key as stored: PKCS#8 DER and its lifecycle (seconds).
#[derive(Clone)]
pub(crate) struct StoredKey {
    pub(crate) kid: String,
    pub(crate) pkcs8: Vec<u8>,
    pub(crate) created_at: u64,
    pub(crate) retired_at: Option<u64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Milliseconds (or seconds) as SQLite's signed integer, saturating.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// A JSON column read back, as a `FromSql` conversion error when malformed.
fn parse_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn bad_value(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, format!("unknown {what}").into())
}

const CLIENT_COLUMNS: &str =
    "client_id, secret_hash, auth_method, redirect_uris, grant_types, client_name, logo_uri";

fn client_row(row: &Row<'_>) -> rusqlite::Result<Client> {
    let method: String = row.get(2)?;
    Ok(Client {
        client_id: row.get(0)?,
        secret_hash: row.get(1)?,
        auth_method: AuthMethod::parse(&method).ok_or_else(|| bad_value(2, "auth method"))?,
        redirect_uris: parse_json(row, 3)?,
        grant_types: parse_json(row, 4)?,
        client_name: row.get(5)?,
        logo_uri: row.get(6)?,
        document: None,
    })
}

const ACCESS_COLUMNS: &str = "id, client_id, subject, scopes, resource, created_at, expires_at, revoked_at, revocation_reason, grant_id";

fn access_row(row: &Row<'_>) -> rusqlite::Result<AccessToken> {
    Ok(AccessToken {
        id: row.get(0)?,
        client_id: row.get(1)?,
        subject: row.get(2)?,
        scopes: parse_json(row, 3)?,
        resource: row.get(4)?,
        created_at_ms: uint(row.get(5)?),
        expires_at_ms: uint(row.get(6)?),
        revoked_at_ms: row.get::<_, Option<i64>>(7)?.map(uint),
        revocation_reason: row.get(8)?,
        grant_id: row.get(9)?,
    })
}

const CREDENTIAL_COLUMNS: &str = "id, name, subject, scopes, claims, created_at, expires_at, revoked_at, revocation_reason, last_used_at";

fn credential_row(row: &Row<'_>) -> rusqlite::Result<MachineCredential> {
    let claims: Option<String> = row.get(4)?;
    Ok(MachineCredential {
        id: row.get(0)?,
        name: row.get(1)?,
        subject: row.get(2)?,
        scopes: parse_json(row, 3)?,
        claims: claims
            .map(|c| serde_json::from_str::<Value>(&c))
            .transpose()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, Type::Text, Box::new(e)))?,
        created_at_ms: uint(row.get(5)?),
        expires_at_ms: row.get::<_, Option<i64>>(6)?.map(uint),
        revoked_at_ms: row.get::<_, Option<i64>>(7)?.map(uint),
        revocation_reason: row.get(8)?,
        last_used_at_ms: row.get::<_, Option<i64>>(9)?.map(uint),
    })
}

impl<'a> Tx<'a> {
    pub(super) fn new(conn: &'a Connection) -> Self {
        Self { conn }
    }

    // --- meta: the secret key, the CSRF key -------------------------------------------------

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute([key, value])?;
        Ok(())
    }

    // --- signing keys -----------------------------------------------------------------------

    pub(crate) fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT kid, pkcs8, created_at, retired_at FROM signing_keys ORDER BY created_at",
        )?;
        let keys = statement
            .query_map([], |r| {
                Ok(StoredKey {
                    kid: r.get(0)?,
                    pkcs8: r.get(1)?,
                    created_at: uint(r.get(2)?),
                    retired_at: r.get::<_, Option<i64>>(3)?.map(uint),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(keys)
    }

    /// Replace the whole key ring (rotation retires one key, adds one and prunes old ones).
    pub(crate) fn replace_signing_keys(&self, keys: &[StoredKey]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM signing_keys")?
            .execute([])?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO signing_keys (kid, pkcs8, created_at, retired_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for key in keys {
            insert.execute(params![
                key.kid,
                key.pkcs8,
                int(key.created_at),
                key.retired_at.map(int)
            ])?;
        }
        Ok(())
    }

    // --- users ------------------------------------------------------------------------------

    /// The users saved by a previous run, in their original order; empty when none were.
    pub(crate) fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT json FROM users ORDER BY position")?;
        let users = statement
            .query_map([], |r| parse_json(r, 0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(users)
    }

    pub(crate) fn replace_users(&self, users: &[User]) -> Result<(), StoreError> {
        self.conn.prepare_cached("DELETE FROM users")?.execute([])?;
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO users (position, id, json) VALUES (?1, ?2, ?3)")?;
        for (position, user) in users.iter().enumerate() {
            let json = serde_json::to_string(user)
                .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", user.id)))?;
            insert.execute(params![int(position as u64), user.id, json])?;
        }
        Ok(())
    }

    // --- clients ----------------------------------------------------------------------------

    pub(crate) fn insert_client(&self, client: &Client, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO clients ({CLIENT_COLUMNS}, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                client.client_id,
                client.secret_hash,
                client.auth_method.as_str(),
                json_list(&client.redirect_uris),
                json_list(&client.grant_types),
                client.client_name,
                client.logo_uri,
                int(now_ms),
            ])?;
        Ok(())
    }

    pub(crate) fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?1"
            ))?
            .query_row([client_id], client_row)
            .optional()?)
    }

    // --- consents and authorization codes ---------------------------------------------------

    /// Record a user's consent (the grant every code and token of this authorization descends
    /// from).
    pub(crate) fn insert_consent(&self, code: &AuthCode, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO consents (grant_id, client_id, user_id, scopes, resource, granted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                code.grant_id,
                code.client_id,
                code.subject,
                json_list(&code.scopes),
                code.resource,
                int(now_ms),
            ])?;
        Ok(())
    }

    pub(crate) fn insert_code(&self, hash: &str, code: &AuthCode) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO auth_codes (hash, client_id, redirect_uri, code_challenge, subject,
                     scopes, resource, nonce, auth_time, expires_at, used, grant_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                hash,
                code.client_id,
                code.redirect_uri,
                code.code_challenge,
                code.subject,
                json_list(&code.scopes),
                code.resource,
                code.nonce,
                int(code.auth_time),
                int(code.expires_at_ms),
                code.used,
                code.grant_id,
            ])?;
        Ok(())
    }

    pub(crate) fn code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT client_id, redirect_uri, code_challenge, subject, scopes, resource, nonce,
                     auth_time, expires_at, used, grant_id
                 FROM auth_codes WHERE hash = ?1",
            )?
            .query_row([hash], |r| {
                Ok(AuthCode {
                    client_id: r.get(0)?,
                    redirect_uri: r.get(1)?,
                    code_challenge: r.get(2)?,
                    subject: r.get(3)?,
                    scopes: parse_json(r, 4)?,
                    resource: r.get(5)?,
                    nonce: r.get(6)?,
                    auth_time: uint(r.get(7)?),
                    expires_at_ms: uint(r.get(8)?),
                    used: r.get(9)?,
                    grant_id: r.get(10)?,
                })
            })
            .optional()?)
    }

    pub(crate) fn mark_code_used(&self, hash: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE auth_codes SET used = 1 WHERE hash = ?1")?
            .execute([hash])?;
        Ok(())
    }

    /// Drop expired codes (used ones stay until they expire, so a replay is still recognised
    /// and revokes its tokens).
    pub(crate) fn prune_codes(&self, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM auth_codes WHERE expires_at <= ?1")?
            .execute([int(now_ms)])?;
        Ok(())
    }

    /// Revoke every token descending from a grant, and the consent itself (RFC 6749 §4.1.2: a
    /// code used twice; RFC 9700 §4.14.2: refresh token replay; RFC 7009 §2.1).
    pub(crate) fn revoke_grant(
        &self,
        grant_id: &str,
        now_ms: u64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE access_tokens SET revoked_at = ?2, revocation_reason = ?3
                 WHERE grant_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![grant_id, int(now_ms), reason])?;
        self.conn
            .prepare_cached("UPDATE refresh_tokens SET status = 'revoked' WHERE grant_id = ?1")?
            .execute([grant_id])?;
        self.conn
            .prepare_cached(
                "UPDATE consents SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![grant_id, int(now_ms)])?;
        Ok(())
    }

    // --- access tokens ----------------------------------------------------------------------

    /// Record an access token; `hash` is the SHA-256 of an opaque token (JWTs are found by
    /// `jti`, which is not a secret).
    pub(crate) fn insert_access(
        &self,
        token: &AccessToken,
        hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO access_tokens ({ACCESS_COLUMNS}, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                token.id,
                token.client_id,
                token.subject,
                json_list(&token.scopes),
                token.resource,
                int(token.created_at_ms),
                int(token.expires_at_ms),
                token.revoked_at_ms.map(int),
                token.revocation_reason,
                token.grant_id,
                hash,
            ])?;
        Ok(())
    }

    pub(crate) fn access_by_id(&self, id: &str) -> Result<Option<AccessToken>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {ACCESS_COLUMNS} FROM access_tokens WHERE id = ?1"
            ))?
            .query_row([id], access_row)
            .optional()?)
    }

    pub(crate) fn access_by_hash(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {ACCESS_COLUMNS} FROM access_tokens WHERE hash = ?1"
            ))?
            .query_row([hash], access_row)
            .optional()?)
    }

    /// Mark an access token revoked (the first revocation's time and reason stay).
    pub(crate) fn revoke_access(
        &self,
        id: &str,
        now_ms: u64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?2),
                     revocation_reason = coalesce(revocation_reason, ?3)
                 WHERE id = ?1",
            )?
            .execute(params![id, int(now_ms), reason])?;
        Ok(())
    }

    // --- refresh tokens ---------------------------------------------------------------------

    pub(crate) fn insert_refresh(
        &self,
        hash: &str,
        token: &RefreshToken,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO refresh_tokens (hash, client_id, subject, scopes, resource,
                     expires_at, status, grant_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                hash,
                token.client_id,
                token.subject,
                json_list(&token.scopes),
                token.resource,
                int(token.expires_at_ms),
                token.status.as_str(),
                token.grant_id,
                int(token.created_at_ms),
            ])?;
        Ok(())
    }

    pub(crate) fn refresh(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT client_id, subject, scopes, resource, expires_at, status, grant_id,
                     created_at
                 FROM refresh_tokens WHERE hash = ?1",
            )?
            .query_row([hash], |r| {
                let status: String = r.get(5)?;
                Ok(RefreshToken {
                    client_id: r.get(0)?,
                    subject: r.get(1)?,
                    scopes: parse_json(r, 2)?,
                    resource: r.get(3)?,
                    expires_at_ms: uint(r.get(4)?),
                    status: RefreshStatus::parse(&status)
                        .ok_or_else(|| bad_value(5, "refresh token status"))?,
                    grant_id: r.get(6)?,
                    created_at_ms: uint(r.get(7)?),
                })
            })
            .optional()?)
    }

    pub(crate) fn set_refresh_status(
        &self,
        hash: &str,
        status: RefreshStatus,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE refresh_tokens SET status = ?2 WHERE hash = ?1")?
            .execute([hash, status.as_str()])?;
        Ok(())
    }

    // --- API keys and machine tokens --------------------------------------------------------

    pub(crate) fn insert_credential(
        &self,
        kind: CredentialKind,
        hash: &str,
        record: &MachineCredential,
    ) -> Result<(), StoreError> {
        let claims = record.claims.as_ref().map(Value::to_string);
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO credentials (hash, kind, {CREDENTIAL_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                hash,
                kind.as_str(),
                record.id,
                record.name,
                record.subject,
                json_list(&record.scopes),
                claims,
                int(record.created_at_ms),
                record.expires_at_ms.map(int),
                record.revoked_at_ms.map(int),
                record.revocation_reason,
                record.last_used_at_ms.map(int),
            ])?;
        Ok(())
    }

    pub(crate) fn credential(
        &self,
        kind: CredentialKind,
        hash: &str,
    ) -> Result<Option<MachineCredential>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE hash = ?1 AND kind = ?2"
            ))?
            .query_row([hash, kind.as_str()], credential_row)
            .optional()?)
    }

    pub(crate) fn touch_credential(&self, hash: &str, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE credentials SET last_used_at = ?2 WHERE hash = ?1")?
            .execute(params![hash, int(now_ms)])?;
        Ok(())
    }

    /// Revoke an API key or machine token; `false` when no credential has this hash.
    pub(crate) fn revoke_credential(
        &self,
        hash: &str,
        now_ms: u64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE credentials SET revoked_at = coalesce(revoked_at, ?2),
                     revocation_reason = coalesce(revocation_reason, ?3)
                 WHERE hash = ?1",
            )?
            .execute(params![hash, int(now_ms), reason])?;
        Ok(changed > 0)
    }

    // --- machines ---------------------------------------------------------------------------

    /// Record a machine and its first secret key (`secret_hash`, the SHA-256 of the key).
    pub(crate) fn insert_machine(
        &self,
        machine: &Machine,
        secret_hash: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO machines (id, name, created_at, scoped_machines, default_token_ttl)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                machine.id,
                machine.name,
                int(machine.created_at_ms),
                json_list(&machine.scoped_machines),
                int(machine.default_token_ttl),
            ])?;
        self.conn
            .prepare_cached("INSERT INTO machine_secrets (hash, machine_id) VALUES (?1, ?2)")?
            .execute([secret_hash, machine.id.as_str()])?;
        Ok(())
    }

    pub(crate) fn machine(&self, id: &str) -> Result<Option<Machine>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, name, created_at, scoped_machines, default_token_ttl
                 FROM machines WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(Machine {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at_ms: uint(r.get(2)?),
                    scoped_machines: parse_json(r, 3)?,
                    default_token_ttl: uint(r.get(4)?),
                })
            })
            .optional()?)
    }

    /// The id of the machine whose secret key has this hash.
    pub(crate) fn machine_of_secret(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT machine_id FROM machine_secrets WHERE hash = ?1")?
            .query_row([hash], |r| r.get(0))
            .optional()?)
    }

    // --- session tokens ---------------------------------------------------------------------

    pub(crate) fn insert_session(&self, jti: &str, expires_at_ms: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO session_tokens (jti, expires_at, revoked) VALUES (?1, ?2, 0)",
            )?
            .execute(params![jti, int(expires_at_ms)])?;
        Ok(())
    }

    /// `false` when no session token has this `jti`.
    pub(crate) fn revoke_session(&self, jti: &str) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached("UPDATE session_tokens SET revoked = 1 WHERE jti = ?1")?
            .execute([jti])?;
        Ok(changed > 0)
    }

    // --- client metadata documents ---------------------------------------------------------

    /// The cached document at `url`, if one is still fresh at `now_ms`.
    pub(crate) fn metadata_document(
        &self,
        url: &str,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT document FROM client_metadata_documents WHERE url = ?1 AND expires_at > ?2",
            )?
            .query_row(params![url, int(now_ms)], |r| r.get(0))
            .optional()?)
    }

    /// Cache (or replace) the document at `url` until `expires_at_ms`.
    pub(crate) fn put_metadata_document(
        &self,
        url: &str,
        document: &str,
        fetched_at_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO client_metadata_documents (url, document, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (url) DO UPDATE SET document = excluded.document,
                     fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
            )?
            .execute(params![
                url,
                document,
                int(fetched_at_ms),
                int(expires_at_ms)
            ])?;
        Ok(())
    }

    // --- housekeeping -----------------------------------------------------------------------

    /// Delete what can no longer be used or replayed: codes, access and refresh tokens, session
    /// tokens and credentials past their expiry. Returns the number of rows removed.
    pub(crate) fn prune_expired(&self, now_ms: u64) -> Result<usize, StoreError> {
        let now = int(now_ms);
        let mut removed = 0;
        for sql in [
            "DELETE FROM auth_codes WHERE expires_at <= ?1",
            "DELETE FROM access_tokens WHERE expires_at <= ?1",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
            "DELETE FROM session_tokens WHERE expires_at <= ?1",
            "DELETE FROM credentials WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            "DELETE FROM client_metadata_documents WHERE expires_at <= ?1",
        ] {
            removed += self.conn.prepare_cached(sql)?.execute([now])?;
        }
        Ok(removed)
    }
}
