//! RFC 6749 / RFC 7591 / RFC 8707 error responses: one type, one place that maps it to HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An OAuth error for the JSON endpoints (token, register, revoke, introspect, userinfo).
#[derive(Debug, Clone)]
pub(crate) struct OAuthError {
    pub(crate) code: &'static str,
    pub(crate) description: String,
    status: StatusCode,
    challenge: Option<&'static str>,
}

impl OAuthError {
    fn new(code: &'static str, status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            status,
            challenge: None,
        }
    }

    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", StatusCode::BAD_REQUEST, d)
    }

    /// `invalid_client` is always 401; `basic` adds the `WWW-Authenticate: Basic` challenge that
    /// RFC 6749 §5.2 requires when the client tried the `Authorization` header.
    pub(crate) fn invalid_client(d: impl Into<String>, basic: bool) -> Self {
        let mut e = Self::new("invalid_client", StatusCode::UNAUTHORIZED, d);
        if basic {
            e.challenge = Some("Basic realm=\"mcp-auth-issuer\", charset=\"UTF-8\"");
        }
        e
    }

    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", StatusCode::BAD_REQUEST, d)
    }

    pub(crate) fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new("unauthorized_client", StatusCode::BAD_REQUEST, d)
    }

    pub(crate) fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", StatusCode::BAD_REQUEST, d)
    }

    pub(crate) fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new("invalid_scope", StatusCode::BAD_REQUEST, d)
    }

    pub(crate) fn invalid_target(d: impl Into<String>) -> Self {
        Self::new("invalid_target", StatusCode::BAD_REQUEST, d)
    }

    pub(crate) fn invalid_redirect_uri(d: impl Into<String>) -> Self {
        Self::new("invalid_redirect_uri", StatusCode::BAD_REQUEST, d)
    }

    pub(crate) fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new("invalid_client_metadata", StatusCode::BAD_REQUEST, d)
    }

    /// RFC 6750 `invalid_token` (userinfo): 401 with a Bearer challenge.
    pub(crate) fn invalid_token(d: impl Into<String>) -> Self {
        let mut e = Self::new("invalid_token", StatusCode::UNAUTHORIZED, d);
        e.challenge = Some("Bearer realm=\"mcp-auth-issuer\", error=\"invalid_token\"");
        e
    }

    pub(crate) fn server_error(d: impl Into<String>) -> Self {
        Self::new("server_error", StatusCode::INTERNAL_SERVER_ERROR, d)
    }
}

/// The issuer's limit on a request body (`DefaultBodyLimit`, applied by axum's `Form` and
/// `Json` extractors).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Dynamic client registration (RFC 7591), whose error codes differ from RFC 6749's.
pub(crate) const REGISTER_PATH: &str = "/oauth/register";

/// Turns the extractors' own answer to a body over [`MAX_BODY_BYTES`] (413 with a text body)
/// into an OAuth error object with the 413 kept: OAuth clients read the JSON, and the
/// endpoint's answers stay of one shape. Our own 413s are JSON already.
///
/// The code is the endpoint's own vocabulary: `invalid_client_metadata` at dynamic client
/// registration, whose errors are RFC 7591 §3.2.2's (a body too large to read is metadata the
/// server rejects, as an unreadable one is), `invalid_request` (RFC 6749 §5.2) everywhere else.
pub(crate) async fn oversized_body_as_oauth_error(uri: Uri, response: Response) -> Response {
    let from_extractor = response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && !response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/json"));
    if !from_extractor {
        return response;
    }
    let code = if uri.path() == REGISTER_PATH {
        "invalid_client_metadata"
    } else {
        "invalid_request"
    };
    OAuthError::new(
        code,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
    .into_response()
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "the issuer state failed while handling an OAuth request");
        Self::server_error("the issuer's state database failed; see its log")
    }
}

impl From<crate::Error> for OAuthError {
    fn from(e: crate::Error) -> Self {
        tracing::error!(error = %e, "internal failure while handling an OAuth request");
        Self::server_error("the issuer failed internally; see its log")
    }
}
