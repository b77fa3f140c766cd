//! Internals the fuzz targets in `fuzz/` drive directly. Only compiled with the `fuzzing`
//! feature; not part of the API, no stability promise.

use http::HeaderMap;
use url::Url;

use crate::{
    AuthInfo, ScopeHierarchy, TokenKind, VerifyError,
    challenge::Challenge,
    clerk::{BackendError, ClerkUser},
    step_up::{Guarded, RequiredScopes, StepUp},
};

/// Something a request asks for that may need scopes, as the step-up guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// `tools/call` of this tool.
    Tool(String),
    /// `prompts/get` of this prompt.
    Prompt(String),
    /// `resources/read`, `resources/subscribe` or `resources/unsubscribe` of this URI, or a
    /// `subscriptions/listen` following it.
    Resource(String),
}

impl From<Guarded> for Requested {
    fn from(g: Guarded) -> Self {
        match g {
            Guarded::Tool(n) => Self::Tool(n),
            Guarded::Prompt(n) => Self::Prompt(n),
            Guarded::Resource(u) => Self::Resource(u),
        }
    }
}

/// The step-up guard with one scope per named tool, prompt and resource pattern, as
/// `McpServerBuilder` builds it.
pub struct StepUpGuard(StepUp);

impl StepUpGuard {
    /// A guard for `scoped` tool names; `None` when the list is empty (no guard is built then).
    pub fn new<'a>(scoped: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        Self::with(scoped, [], [])
    }

    /// A guard for scoped tools, prompts and resource patterns (the rule of
    /// `McpServerBuilder::resource_scopes`); `None` when all are empty.
    pub fn with<'a>(
        tools: impl IntoIterator<Item = &'a str>,
        prompts: impl IntoIterator<Item = &'a str>,
        resources: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        let mut scopes = RequiredScopes::default();
        for name in tools {
            scopes.tools.insert(name, vec!["fuzz:scope".to_owned()]);
        }
        for name in prompts {
            scopes.prompts.insert(name, vec!["fuzz:scope".to_owned()]);
        }
        for pattern in resources {
            scopes
                .resources
                .insert(pattern, vec!["fuzz:scope".to_owned()]);
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
    /// fast path that skips parsing is taken whenever it applies). The body alone decides, as
    /// it does on the request path for a request without verified `Mcp-*` headers; `seen`
    /// also takes the headers.
    pub fn tools_seen(&self, body: &[u8]) -> Vec<String> {
        self.0
            .requested_in_body(body, false)
            .items
            .into_iter()
            .filter_map(|r| match r {
                Guarded::Tool(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    /// Runs the guard on a whole request, as the MCP endpoint does after authentication (the
    /// caller's [`AuthInfo`] in its extensions, the span not recorded): `true` when it passes.
    /// Header look-ups, the bounded body read and the request's re-assembly included.
    pub async fn passes(&self, mut req: http::Request<axum::body::Body>) -> bool {
        self.0.check(&mut req, false, None).await.is_ok()
    }

    /// What the guard checks for a request with these headers and this body.
    pub fn seen(&self, headers: &HeaderMap, body: &[u8]) -> Vec<Requested> {
        self.0
            .requested_by(headers, body)
            .into_iter()
            .map(Requested::from)
            .collect()
    }

    /// Whether the guard's scope table requires something for `item` (a resource URI is
    /// matched against the patterns).
    pub fn is_scoped(&self, item: &Requested) -> bool {
        let g = match item.clone() {
            Requested::Tool(n) => Guarded::Tool(n),
            Requested::Prompt(n) => Guarded::Prompt(n),
            Requested::Resource(u) => Guarded::Resource(u),
        };
        self.0.is_scoped(&g)
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
