//! Internals the fuzz targets in `fuzz/` drive directly. Only compiled with the `fuzzing`
//! feature; not part of the API, no stability promise.

use http::HeaderMap;
use url::Url;

use crate::{
    AuthInfo, ScopeHierarchy, TokenKind, VerifyError,
    challenge::Challenge,
    clerk::{BackendError, ClerkUser},
    step_up::StepUp,
    tools::ToolScopes,
};

/// The step-up guard with one scope per named tool, as `McpServerBuilder` builds it.
pub struct StepUpGuard(StepUp);

impl StepUpGuard {
    /// A guard for `scoped` tool names; `None` when the list is empty (no guard is built then).
    pub fn new<'a>(scoped: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut scopes = ToolScopes::default();
        for name in scoped {
            scopes.insert(name, vec!["fuzz:scope".to_owned()]);
        }
        StepUp::new(
            scopes,
            ScopeHierarchy::exact(),
            Challenge::bare(),
            usize::MAX,
        )
        .map(Self)
    }

    /// The tools the guard checks for `body` (a request whose span is not recorded, so the
    /// fast path that skips parsing is taken whenever it applies).
    pub fn tools_seen(&self, body: &[u8]) -> Vec<String> {
        self.0.tools_in_body(body, false)
    }
}

/// The public origin a request's `Forwarded`/`X-Forwarded-*` headers name, if valid.
pub fn forwarded_origin(headers: &HeaderMap) -> Option<String> {
    crate::metadata::forwarded_origin(headers)
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &Url) -> String {
    crate::metadata::origin(url)
}

/// The Clerk preset's reading of a Backend API token-verify answer: the 2xx `body` of
/// `POST /oauth_applications/access_tokens/verify` (`kind` [`TokenKind::OAuthAccessToken`]),
/// `/api_keys/verify` ([`TokenKind::ApiKey`]) or `/m2m_tokens/verify`
/// ([`TokenKind::MachineToken`]), parsed as the client parses it, then turned into an identity
/// for the resource `resource` (audience required unless `allow_missing_audience`), at `now`
/// (Unix seconds). `Ok` is the identity the MCP server would hand to its tools.
pub fn clerk_verify_answer(
    kind: TokenKind,
    body: &[u8],
    issuer: &str,
    resource: &str,
    allow_missing_audience: bool,
    now: u64,
) -> Result<AuthInfo, VerifyError> {
    let answer =
        crate::clerk::parse_answer(body).map_err(|_| VerifyError::invalid_token("not JSON"))?;
    crate::clerk::verify_answer(kind, answer, issuer, resource, allow_missing_audience, now)
}

/// The Clerk preset's reading of the 2xx `body` of `GET /v1/users/{user_id}`, as
/// `users().get(user_id)` returns it.
pub fn clerk_user_answer(user_id: &str, body: &[u8]) -> Result<ClerkUser, BackendError> {
    let answer = crate::clerk::parse_answer(body)?;
    crate::clerk::user_from_answer(user_id, answer)
}
