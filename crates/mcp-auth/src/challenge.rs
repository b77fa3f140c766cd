//! Refusals: [`AuthError`] and the one place that turns it into an HTTP answer
//! (status, `WWW-Authenticate` per RFC 6750 §3 and RFC 9728 §5.1, JSON body).

use std::{borrow::Cow, time::Duration};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::{
    bearer::BearerError, metadata::forwarded_origin, scopes::advertisable, verify::VerifyError,
};

/// Why a request was refused by the auth middleware. Each variant is exactly one status and one
/// RFC 6750 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token (no `Authorization` header, or another scheme): 401, no error code.
    #[error("a bearer token is required")]
    MissingToken,
    /// Malformed request (two `Authorization` headers, token in the query, bad syntax): 400
    /// `invalid_request`.
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// The token is not valid: 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(Cow<'static, str>),
    /// The token lacks scopes: 403 `insufficient_scope`. `scope` is what the client should ask
    /// for when it re-authorizes: every scope the refused operation needs, in one challenge
    /// (MCP 2026-07-28, SEP-2350). `offline_access` is never put in the challenge.
    #[error("insufficient scope")]
    InsufficientScope {
        /// The scopes to request (space-separated in the challenge).
        scope: Vec<String>,
    },
    /// The token could not be checked now: 503 with `Retry-After`.
    #[error("authentication temporarily unavailable")]
    Unavailable {
        /// How long to wait before retrying.
        retry_after: Duration,
    },
}

impl From<BearerError> for AuthError {
    fn from(e: BearerError) -> Self {
        AuthError::InvalidRequest(Cow::Owned(e.to_string()))
    }
}

impl From<VerifyError> for AuthError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::InvalidToken(d) => AuthError::InvalidToken(d),
            VerifyError::InsufficientScope(scope) => AuthError::InsufficientScope { scope },
            VerifyError::Unavailable { retry_after } => AuthError::Unavailable { retry_after },
        }
    }
}

impl AuthError {
    /// The HTTP status this refusal is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingToken | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 error code, if the refusal has one.
    #[must_use]
    pub fn code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken => None,
            AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_) => Some("invalid_token"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthError::Unavailable { .. } => Some("temporarily_unavailable"),
        }
    }

    fn description(&self) -> Cow<'_, str> {
        match self {
            AuthError::MissingToken => "a bearer token is required".into(),
            AuthError::InvalidRequest(d) | AuthError::InvalidToken(d) => Cow::Borrowed(d),
            AuthError::InsufficientScope { scope } => format!(
                "the token lacks a required scope; re-authorize with: {}",
                advertised(scope)
            )
            .into(),
            AuthError::Unavailable { .. } => {
                "token verification is temporarily unavailable; retry later".into()
            }
        }
    }
}

/// What every challenge from one protected resource carries: where its metadata lives and,
/// optionally, the scopes a client should request by default.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// `Bearer resource_metadata="…"`, prebuilt once.
    prefix: String,
    default_scope: Option<String>,
    /// The metadata URL's path (`None` for a bare challenge).
    metadata_path: Option<String>,
    /// Whether the origin in front of `metadata_path` follows the forwarded headers
    /// ([`Challenge::trust_forwarded_headers`]).
    trust_forwarded: bool,
}

impl Challenge {
    /// A challenge pointing at the protected resource metadata at `resource_metadata_url`
    /// (an absolute URL).
    #[must_use]
    pub fn new(resource_metadata_url: &str) -> Self {
        Self {
            prefix: format!(
                "Bearer resource_metadata=\"{}\"",
                quote(resource_metadata_url)
            ),
            default_scope: None,
            metadata_path: url::Url::parse(resource_metadata_url)
                .ok()
                .map(|u| u.path().to_owned()),
            trust_forwarded: false,
        }
    }

    /// A challenge without `resource_metadata` (for routers that serve no metadata).
    #[must_use]
    pub fn bare() -> Self {
        Self {
            prefix: "Bearer".to_owned(),
            default_scope: None,
            metadata_path: None,
            trust_forwarded: false,
        }
    }

    /// Puts `resource_metadata` at the public origin a proxy reports in `Forwarded` or
    /// `X-Forwarded-Proto` + `X-Forwarded-Host`, keeping the configured URL's path, in the
    /// answers of [`response_to`](Self::response_to); a request without those headers gets the
    /// configured URL. This matches what the metadata document does with
    /// `McpServerBuilder::trust_forwarded_headers`, so a challenge never sends a client to an
    /// origin whose document names another resource.
    /// **Only behind a proxy that overwrites those headers**: otherwise clients choose where the
    /// challenge points. No effect on a [`bare`](Self::bare) challenge or one whose URL does
    /// not parse. Default: off.
    #[must_use]
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.trust_forwarded = trust;
        self
    }

    /// Adds `scope="…"` to 401 challenges: the scopes a client should request (RFC 6750 §3,
    /// MCP scope selection). `offline_access` is left out: MCP servers SHOULD NOT put it in a
    /// challenge (MCP 2026-07-28, § Refresh Tokens).
    #[must_use]
    pub fn with_default_scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = scopes
            .into_iter()
            .filter(|s| advertisable(s.as_ref()))
            .map(|s| s.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        self.default_scope = (!joined.is_empty()).then_some(joined);
        self
    }

    /// The `WWW-Authenticate` value for `error`.
    #[must_use]
    pub fn header_value(&self, error: &AuthError) -> String {
        let mut value = self.prefix.clone();
        let sep = |v: &mut String| {
            if v.len() > "Bearer".len() {
                v.push(',');
            }
            v.push(' ');
        };
        let scope = match error {
            AuthError::InsufficientScope { scope } => Some(advertised(scope)),
            AuthError::MissingToken | AuthError::InvalidToken(_) => self.default_scope.clone(),
            _ => None,
        };
        if let Some(scope) = scope.filter(|s| !s.is_empty()) {
            sep(&mut value);
            value.push_str("scope=\"");
            value.push_str(&quote(&scope));
            value.push('"');
        }
        if let Some(code) = error
            .code()
            .filter(|_| !matches!(error, AuthError::Unavailable { .. }))
        {
            sep(&mut value);
            value.push_str("error=\"");
            value.push_str(code);
            value.push_str("\", error_description=\"");
            value.push_str(&quote(&error.description()));
            value.push('"');
        }
        value
    }

    /// The answer for `error` to a request with `headers`: [`response`](Self::response), with
    /// `resource_metadata` at the forwarded origin when
    /// [`trust_forwarded_headers`](Self::trust_forwarded_headers) is on and the headers name one.
    #[must_use]
    pub fn response_to(&self, error: &AuthError, headers: &HeaderMap) -> Response {
        let public = match &self.metadata_path {
            Some(path) if self.trust_forwarded => {
                forwarded_origin(headers).map(|origin| Challenge {
                    default_scope: self.default_scope.clone(),
                    ..Challenge::new(&format!("{origin}{path}"))
                })
            }
            _ => None,
        };
        public.as_ref().unwrap_or(self).response(error)
    }

    /// The full answer for `error`: status, `WWW-Authenticate` (except for 503), `Retry-After`
    /// (503 only), `Cache-Control: no-store`, and a JSON body `{"error", "error_description"}`.
    #[must_use]
    pub fn response(&self, error: &AuthError) -> Response {
        let body = serde_json::json!({
            "error": error.code().unwrap_or("unauthorized"),
            "error_description": error.description(),
        });
        let mut response = (error.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match error {
            AuthError::Unavailable { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {
                if let Ok(v) = HeaderValue::from_str(&self.header_value(error)) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
        }
        response
    }
}

/// A JSON error body with a status, for refusals that are not token problems (bad Origin,
/// session bound to someone else).
pub(crate) fn plain_error(
    status: StatusCode,
    code: &'static str,
    description: &'static str,
) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The scopes of a 403 challenge, space-separated, without `offline_access` (MCP 2026-07-28,
/// `docs/specification/2026-07-28/basic/authorization/index.mdx`, § Refresh Tokens: refresh
/// tokens are not a resource requirement).
fn advertised(scope: &[String]) -> String {
    scope
        .iter()
        .map(String::as_str)
        .filter(|s| advertisable(s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escapes a value for an RFC 9110 quoted-string, and drops characters a header cannot carry.
fn quote(value: &str) -> Cow<'_, str> {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "https://mcp.example/.well-known/oauth-protected-resource/mcp";

    #[test]
    fn missing_token_has_no_error_code() {
        let c = Challenge::new(MD).with_default_scope(["openid", "profile"]);
        assert_eq!(
            c.header_value(&AuthError::MissingToken),
            format!("Bearer resource_metadata=\"{MD}\", scope=\"openid profile\"")
        );
    }

    #[test]
    fn invalid_token_and_insufficient_scope() {
        let c = Challenge::new(MD);
        assert_eq!(
            c.header_value(&AuthError::InvalidToken("token expired".into())),
            format!(
                "Bearer resource_metadata=\"{MD}\", error=\"invalid_token\", error_description=\"token expired\""
            )
        );
        let v = c.header_value(&AuthError::InsufficientScope {
            scope: vec!["a".into(), "b".into()],
        });
        assert!(
            v.starts_with(&format!(
                "Bearer resource_metadata=\"{MD}\", scope=\"a b\", error=\"insufficient_scope\""
            )),
            "{v}"
        );
    }

    #[test]
    fn offline_access_is_never_challenged() {
        let c = Challenge::new(MD).with_default_scope(["openid", "offline_access"]);
        assert_eq!(
            c.header_value(&AuthError::MissingToken),
            format!("Bearer resource_metadata=\"{MD}\", scope=\"openid\"")
        );
        let v = c.header_value(&AuthError::InsufficientScope {
            scope: vec!["offline_access".into(), "admin:read".into()],
        });
        assert!(!v.contains("offline_access"), "{v}");
        assert!(v.contains("scope=\"admin:read\""), "{v}");
    }

    #[test]
    fn statuses() {
        assert_eq!(AuthError::MissingToken.status(), 401);
        assert_eq!(AuthError::InvalidRequest("x".into()).status(), 400);
        assert_eq!(AuthError::InsufficientScope { scope: vec![] }.status(), 403);
        let r = Challenge::new(MD).response(&AuthError::Unavailable {
            retry_after: Duration::from_secs(7),
        });
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("a\"b\\c\n"), "a\\\"b\\\\c");
        let bare = Challenge::bare();
        assert_eq!(
            bare.header_value(&AuthError::InvalidToken("x".into())),
            "Bearer error=\"invalid_token\", error_description=\"x\""
        );
    }
}
