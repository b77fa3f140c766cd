//! In-memory state: clients, authorization codes and every kind of token. Secrets are keyed by
//! their SHA-256 hash; nothing here is persisted.

use std::collections::HashMap;

use serde_json::Value;

use crate::clients::Client;

/// An OAuth access token, JWT or opaque. Keyed by its id (`oat_…`, the JWT `jti`).
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub(crate) id: String,
    pub(crate) client_id: String,
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: Option<String>,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) revoked_at_ms: Option<u64>,
    pub(crate) revocation_reason: Option<String>,
    /// The authorization grant (code) this token descends from, for code-reuse revocation.
    pub(crate) grant_id: Option<String>,
}

/// Where a refresh token stands in its rotation chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshStatus {
    Active,
    /// Exchanged once already; presenting it again is replay (RFC 9700 §4.14.2).
    Rotated,
    Revoked,
}

#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub(crate) client_id: String,
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: Option<String>,
    /// When it was issued (introspection's `iat`).
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) status: RefreshStatus,
    pub(crate) grant_id: String,
}

#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub(crate) client_id: String,
    /// The `redirect_uri` the authorization request named, which the token request must repeat
    /// (`None` when it was omitted because the client registered exactly one).
    pub(crate) redirect_uri: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resource: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) auth_time: u64,
    pub(crate) expires_at_ms: u64,
    pub(crate) used: bool,
    pub(crate) grant_id: String,
}

/// Clerk API key (`ak_…`) or machine token (`mt_…`): same lifecycle, different JSON.
#[derive(Clone, Debug)]
pub(crate) struct MachineCredential {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) claims: Option<Value>,
    pub(crate) created_at_ms: u64,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) revoked_at_ms: Option<u64>,
    pub(crate) revocation_reason: Option<String>,
    pub(crate) last_used_at_ms: Option<u64>,
}

impl MachineCredential {
    /// Neither revoked nor expired at `now_ms`.
    pub(crate) fn is_usable(&self, now_ms: u64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|e| e > now_ms)
    }
}

/// A Clerk machine (`mch_…`), created through `POST /admin/machines`.
#[derive(Clone, Debug)]
pub(crate) struct Machine {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_at_ms: u64,
    /// Machines this machine may call (Clerk's `scoped_machines`).
    pub(crate) scoped_machines: Vec<String>,
    /// Default lifetime of its tokens (Clerk's `default_token_ttl`, seconds).
    pub(crate) default_token_ttl: u64,
}

/// A Clerk-style session token minted by the admin helpers (keyed by `jti`).
#[derive(Clone, Debug)]
pub(crate) struct SessionToken {
    pub(crate) revoked: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) clients: HashMap<String, Client>,
    /// By hash of the code.
    pub(crate) codes: HashMap<String, AuthCode>,
    /// By token id.
    pub(crate) access: HashMap<String, AccessToken>,
    /// Hash of an opaque access token → its id.
    pub(crate) opaque: HashMap<String, String>,
    /// By hash of the refresh token.
    pub(crate) refresh: HashMap<String, RefreshToken>,
    /// By hash of the secret.
    pub(crate) api_keys: HashMap<String, MachineCredential>,
    /// By hash of the token.
    pub(crate) machine_tokens: HashMap<String, MachineCredential>,
    /// By `jti`.
    pub(crate) sessions: HashMap<String, SessionToken>,
    /// By machine id.
    pub(crate) machines: HashMap<String, Machine>,
    /// Hash of a machine secret key → the machine id.
    pub(crate) machine_secrets: HashMap<String, String>,
}

impl Store {
    /// Drop expired authorization codes so the map stays small (used ones stay until they expire,
    /// so a replay is still recognised and revokes its tokens).
    pub(crate) fn prune_codes(&mut self, now_ms: u64) {
        self.codes.retain(|_, c| c.expires_at_ms > now_ms);
    }

    /// Revoke every token descending from an authorization grant (RFC 6749 §4.1.2: a code used
    /// twice SHOULD revoke the tokens issued with it; RFC 9700: refresh token replay).
    pub(crate) fn revoke_grant(&mut self, grant_id: &str, now_ms: u64, reason: &str) {
        for token in self.access.values_mut() {
            if token.grant_id.as_deref() == Some(grant_id) && token.revoked_at_ms.is_none() {
                token.revoked_at_ms = Some(now_ms);
                token.revocation_reason = Some(reason.to_owned());
            }
        }
        for token in self.refresh.values_mut() {
            if token.grant_id == grant_id {
                token.status = RefreshStatus::Revoked;
            }
        }
    }
}
