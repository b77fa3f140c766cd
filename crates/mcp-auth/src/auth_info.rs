//! The verified identity handed to every tool: [`AuthInfo`].

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::HeaderValue;
use serde_json::{Map, Value};

/// What kind of credential a request carried.
///
/// Clerk distinguishes these (its `acceptsToken` option); verifiers refuse the kinds
/// they were not configured to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenKind {
    /// An OAuth 2.x access token issued to a client on behalf of a user (Clerk: `oauth_token`).
    OAuthAccessToken,
    /// A first-party browser session token (Clerk: `session_token`).
    SessionToken,
    /// A long-lived API key (Clerk: `api_key`, `ak_…`).
    ApiKey,
    /// A machine-to-machine token (Clerk: `m2m_token`, opaque `mt_…` or a JWT whose `sub` is a
    /// machine, `mch_…`).
    MachineToken,
}

impl TokenKind {
    /// The name used in configuration and logs (`oauth_token`, `session_token`, …), as Clerk spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuthAccessToken => "oauth_token",
            Self::SessionToken => "session_token",
            Self::ApiKey => "api_key",
            Self::MachineToken => "m2m_token",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller's verified identity.
///
/// Produced by a [`TokenVerifier`](crate::TokenVerifier), placed in the request extensions by
/// [`AuthLayer`](crate::AuthLayer), and handed to tool handlers (it implements rmcp's
/// `FromContextPart`, so a `#[tool]` method can take it as an argument).
///
/// Cloning is cheap: the identity is shared behind an `Arc`. The raw bearer token is reachable
/// only through [`AuthInfo::expose_token`]; `Debug` never prints it.
#[derive(Clone)]
pub struct AuthInfo {
    identity: Arc<Identity>,
    token: Option<RawToken>,
}

/// The verified fields; shared between cache entries and requests.
#[derive(Clone)]
struct Identity {
    subject: String,
    /// Empty when the token speaks for no user (an organization's API key, a machine).
    user_id: String,
    organization_id: Option<String>,
    machine_id: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    kind: TokenKind,
    issuer: Option<String>,
    audience: Vec<String>,
    expires_at: Option<u64>,
    claims: Map<String, Value>,
    /// Unix time in milliseconds past which a cache must not serve this identity, when sooner
    /// than its expiry: an identity read from a shared store may be kept locally only as long
    /// as the store would have kept it, so sharing never delays noticing a revocation.
    /// Milliseconds, not seconds: a bound rounded down to the second would, in the last second
    /// of the store's entry, give the local copy no life at all, and every request in that
    /// second would go back to the store.
    cache_until_ms: Option<u64>,
}

/// The `Authorization` header value, kept as received (cloning it is a reference-count bump)
/// together with where the token starts inside it.
#[derive(Clone)]
struct RawToken {
    header: HeaderValue,
    start: usize,
}

impl AuthInfo {
    /// Starts building an identity for `subject` (the token's `sub`, or Clerk's `subject`),
    /// which is also the [user id](Self::user_id) unless the builder says the subject is an
    /// organization or a machine.
    ///
    /// Verifiers use this; tools normally only read an `AuthInfo`.
    pub fn builder(subject: impl Into<String>, kind: TokenKind) -> AuthInfoBuilder {
        let subject = subject.into();
        AuthInfoBuilder {
            identity: Identity {
                user_id: subject.clone(),
                subject,
                organization_id: None,
                machine_id: None,
                client_id: None,
                scopes: Vec::new(),
                kind,
                issuer: None,
                audience: Vec::new(),
                expires_at: None,
                cache_until_ms: None,
                claims: Map::new(),
            },
        }
    }

    /// The user the token speaks for, or `""` when it speaks for no user.
    ///
    /// For OAuth access tokens, session tokens and generic JWTs this is the subject. For Clerk
    /// API keys it is the subject only when that is a user (`user_…`): an organization's key
    /// ([`organization_id`](Self::organization_id)) and a machine's key or M2M token
    /// ([`machine_id`](Self::machine_id)) have no user, so a tool that looks the caller up with
    /// `users().get(auth.user_id())` is never handed an organization or machine id (it gets
    /// "not found" without a Backend API call). Clerk's own auth objects do the same
    /// (`@clerk/backend` 3.25.0 `tokens/authObjects.ts`: `userId` only for `user_…` API key
    /// subjects).
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.identity.user_id
    }

    /// The token's subject as issued (`sub`, or Clerk's `subject`): a user, an organization
    /// (`org_…`) or a machine (`mch_…`).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.identity.subject
    }

    /// The organization the token speaks for: set for a Clerk API key owned by an organization
    /// (subject `org_…`).
    #[must_use]
    pub fn organization_id(&self) -> Option<&str> {
        self.identity.organization_id.as_deref()
    }

    /// The machine the token speaks for: set for Clerk M2M tokens (opaque `mt_…` or JWT) and for
    /// API keys owned by a machine (subject `mch_…`).
    #[must_use]
    pub fn machine_id(&self) -> Option<&str> {
        self.identity.machine_id.as_deref()
    }

    /// The OAuth client the token was issued to (`client_id`, else `azp`), when known.
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.identity.client_id.as_deref()
    }

    /// The scopes granted to the token.
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.identity.scopes
    }

    /// Whether the token was granted `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.identity.scopes.iter().any(|s| s == scope)
    }

    /// Scopes from `required` that the token lacks, in the order given.
    #[must_use]
    pub fn missing_scopes<'a>(&self, required: &'a [String]) -> Vec<&'a str> {
        required
            .iter()
            .filter(|s| !self.has_scope(s))
            .map(String::as_str)
            .collect()
    }

    /// What kind of credential this was.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.identity.kind
    }

    /// The token's issuer (`iss`), when known.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.identity.issuer.as_deref()
    }

    /// The token's audiences (`aud`), possibly empty.
    #[must_use]
    pub fn audience(&self) -> &[String] {
        &self.identity.audience
    }

    /// When the token expires, when known.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.identity
            .expires_at
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// When the token expires, in seconds since the Unix epoch.
    #[must_use]
    pub fn expires_at_unix(&self) -> Option<u64> {
        self.identity.expires_at
    }

    /// See `Identity::cache_until_ms`.
    pub(crate) fn cache_until_ms(&self) -> Option<u64> {
        self.identity.cache_until_ms
    }

    /// The same identity, which caches may serve until `millis` (Unix, in milliseconds) at
    /// most.
    pub(crate) fn with_cache_until_ms(mut self, millis: u64) -> Self {
        Arc::make_mut(&mut self.identity).cache_until_ms = Some(millis);
        self
    }

    /// Every claim the verifier saw (JWT claims, or the fields of an introspection answer),
    /// for anything the typed accessors do not cover (`sid`, `org_id`, `email`, …).
    #[must_use]
    pub fn claims(&self) -> &Map<String, Value> {
        &self.identity.claims
    }

    /// One claim by name.
    #[must_use]
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.identity.claims.get(name)
    }

    /// The raw bearer token this identity was verified from.
    ///
    /// Named loudly on purpose: the MCP specification forbids passing a client's token through to
    /// upstream APIs. Use it only to talk to the authorization server that issued it (for
    /// example to revoke it). `None` when the identity did not come from a request.
    #[must_use]
    pub fn expose_token(&self) -> Option<&str> {
        let raw = self.token.as_ref()?;
        // The layer only attaches headers it parsed as visible ASCII, so this cannot fail.
        raw.header.to_str().ok().map(|s| &s[raw.start..])
    }

    /// The same identity in an allocation of its own. Every clone of an `AuthInfo` writes the
    /// reference count of the identity it shares; a copy that one thread keeps for itself (the
    /// verification memo's, `verify/memo.rs`) is one that no other thread writes to.
    pub(crate) fn unshared(&self) -> Self {
        Self {
            identity: Arc::new(Identity::clone(&self.identity)),
            token: self.token.clone(),
        }
    }

    /// Whether the two share one identity allocation.
    #[cfg(test)]
    pub(crate) fn shares_identity_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.identity, &other.identity)
    }

    /// Attaches the `Authorization` header the identity was verified from; `start` is the byte
    /// offset of the token inside it.
    pub(crate) fn with_token(mut self, header: HeaderValue, start: usize) -> Self {
        self.token = Some(RawToken { header, start });
        self
    }

    /// A key that identifies the principal, used to bind sessions: issuer, subject and client.
    /// The subject, not the user id: two machines (which have no user id) must not share one.
    pub(crate) fn principal(&self) -> (Option<&str>, &str, Option<&str>) {
        (self.issuer(), self.subject(), self.client_id())
    }
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.identity;
        f.debug_struct("AuthInfo")
            .field("subject", &id.subject)
            .field("user_id", &id.user_id)
            .field("organization_id", &id.organization_id)
            .field("machine_id", &id.machine_id)
            .field("client_id", &id.client_id)
            .field("scopes", &id.scopes)
            .field("kind", &id.kind)
            .field("issuer", &id.issuer)
            .field("audience", &id.audience)
            .field("expires_at", &id.expires_at)
            .field("claims", &format_args!("{{{} claims}}", id.claims.len()))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Builds an [`AuthInfo`]; used by [`TokenVerifier`](crate::TokenVerifier) implementations.
#[derive(Debug)]
#[must_use]
pub struct AuthInfoBuilder {
    identity: Identity,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AuthInfoBuilder {
    /// The subject is an organization (`org_…`, e.g. a Clerk API key an organization owns): the
    /// identity gets this organization id and no user id.
    pub fn subject_is_organization(mut self) -> Self {
        self.identity.organization_id = Some(self.identity.subject.clone());
        self.identity.user_id.clear();
        self
    }

    /// The subject is a machine (`mch_…`: Clerk M2M tokens, machine API keys): the identity
    /// gets this machine id and no user id.
    pub fn subject_is_machine(mut self) -> Self {
        self.identity.machine_id = Some(self.identity.subject.clone());
        self.identity.user_id.clear();
        self
    }

    /// The subject is neither a user, an organization nor a machine known to the verifier: no
    /// user id.
    pub fn subject_is_not_a_user(mut self) -> Self {
        self.identity.user_id.clear();
        self
    }

    /// The OAuth client the token was issued to.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.identity.client_id = Some(client_id.into());
        self
    }

    /// The granted scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.identity.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.identity.issuer = Some(issuer.into());
        self
    }

    /// The audiences.
    pub fn audience<I, S>(mut self, audience: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.identity.audience = audience.into_iter().map(Into::into).collect();
        self
    }

    /// Expiry, in seconds since the Unix epoch.
    pub fn expires_at_unix(mut self, secs: u64) -> Self {
        self.identity.expires_at = Some(secs);
        self
    }

    /// All raw claims.
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.identity.claims = claims;
        self
    }

    /// Finishes the identity.
    #[must_use]
    pub fn build(self) -> AuthInfo {
        AuthInfo {
            identity: Arc::new(self.identity),
            token: None,
        }
    }
}

/// Splits a space-delimited OAuth `scope` string (RFC 6749 §3.3).
pub(crate) fn split_scopes(scope: &str) -> Vec<String> {
    scope.split_ascii_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let header = HeaderValue::from_static("Bearer secret-token-value");
        let info = AuthInfo::builder("user_1", TokenKind::OAuthAccessToken)
            .client_id("client_1")
            .build()
            .with_token(header, 7);
        assert_eq!(info.expose_token(), Some("secret-token-value"));
        let printed = format!("{info:?}");
        assert!(!printed.contains("secret-token-value"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert!(printed.contains("user_1"));
    }

    #[test]
    fn missing_scopes_lists_only_absent_ones() {
        let info = AuthInfo::builder("u", TokenKind::OAuthAccessToken)
            .scopes(["a", "b"])
            .build();
        let required = vec!["a".to_owned(), "c".to_owned()];
        assert_eq!(info.missing_scopes(&required), vec!["c"]);
        assert!(info.has_scope("b"));
    }

    #[test]
    fn organization_and_machine_subjects_have_no_user_id() {
        let org = AuthInfo::builder("org_1", TokenKind::ApiKey)
            .subject_is_organization()
            .build();
        assert_eq!(org.user_id(), "");
        assert_eq!(org.subject(), "org_1");
        assert_eq!(org.organization_id(), Some("org_1"));
        assert_eq!(org.machine_id(), None);
        let machine = AuthInfo::builder("mch_1", TokenKind::MachineToken)
            .subject_is_machine()
            .build();
        assert_eq!(machine.user_id(), "");
        assert_eq!(machine.machine_id(), Some("mch_1"));
        let user = AuthInfo::builder("user_1", TokenKind::ApiKey).build();
        assert_eq!(user.user_id(), "user_1");
        assert_eq!(user.organization_id(), None);
    }

    #[test]
    fn split_scopes_handles_runs_of_spaces() {
        assert_eq!(split_scopes(" a  b\tc "), vec!["a", "b", "c"]);
        assert!(split_scopes("").is_empty());
    }
}
