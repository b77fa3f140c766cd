//! The records the store keeps: authorization codes and every kind of token. Secrets are keyed
//! by their SHA-256 hash, never stored themselves.

use serde_json::Value;

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

/// A Clerk machine (`mch_…`), created through `POST /admin/machines`. Its secret keys are kept
/// apart, as hashes (`machine_secrets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Machine {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_at_ms: u64,
    /// Machines this machine may call (Clerk's `scoped_machines`).
    pub(crate) scoped_machines: Vec<String>,
    /// Default lifetime of its tokens (Clerk's `default_token_ttl`, seconds).
    pub(crate) default_token_ttl: u64,
}

/// Which table of Clerk machine credentials a record lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    /// `ak_…`.
    ApiKey,
    /// `mt_…`.
    MachineToken,
}

impl CredentialKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::MachineToken => "machine_token",
        }
    }
}

impl RefreshStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Rotated => "rotated",
            Self::Revoked => "revoked",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "rotated" => Some(Self::Rotated),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}
