//! The auth middleware: a tower [`Layer`] usable on any axum router, MCP or not.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{extract::Request, response::Response};
use tower::{Layer, Service};

use crate::{
    AuthInfo,
    bearer::{self, Bearer},
    challenge::{AuthError, Challenge},
    scopes::ScopeHierarchy,
    verify::{TokenVerifier, memo},
};

/// Default for [`AuthLayer::max_form_bytes`]: 2 MiB, axum's default body limit.
pub const DEFAULT_MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// Authenticates requests with a bearer token and puts the caller's [`AuthInfo`] into the
/// request extensions.
///
/// - required mode (default): a request without a valid token is refused with 401 and a
///   `WWW-Authenticate` challenge pointing at the protected resource metadata;
/// - [`optional`](AuthLayer::optional) mode: a request without any token passes through
///   anonymously (no `AuthInfo`), but a request with a bad token is still refused.
///
/// ```no_run
/// use axum::{Extension, Router, routing::get};
/// use mcp_auth::{AuthInfo, AuthLayer, Jwks, JwtVerifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = JwtVerifier::builder("https://issuer.example", Jwks::from_url("https://issuer.example/jwks".parse()?))
///     .resource("https://api.example/api")
///     .build()?;
/// let app: Router = Router::new()
///     .route("/api/me", get(|Extension(auth): Extension<AuthInfo>| async move { auth.user_id().to_owned() }))
///     .layer(AuthLayer::new(verifier, "https://api.example/.well-known/oauth-protected-resource"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthLayer {
    state: Arc<State>,
}

pub(crate) struct State {
    verifier: Arc<dyn TokenVerifier>,
    challenge: Challenge,
    optional: bool,
    required_scopes: Vec<String>,
    hierarchy: ScopeHierarchy,
    max_form_bytes: usize,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("challenge", &self.state.challenge)
            .field("optional", &self.state.optional)
            .field("required_scopes", &self.state.required_scopes)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Requires a valid token on every request; challenges point at `resource_metadata_url`.
    pub fn new(verifier: impl TokenVerifier, resource_metadata_url: &str) -> Self {
        Self::with_challenge(Arc::new(verifier), Challenge::new(resource_metadata_url))
    }

    /// Like [`AuthLayer::new`] with a shared verifier and a prepared [`Challenge`].
    pub fn with_challenge(verifier: Arc<dyn TokenVerifier>, challenge: Challenge) -> Self {
        Self {
            state: Arc::new(State {
                verifier,
                challenge,
                optional: false,
                required_scopes: Vec::new(),
                hierarchy: ScopeHierarchy::default(),
                max_form_bytes: DEFAULT_MAX_FORM_BYTES,
            }),
        }
    }

    pub(crate) fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    fn edit(self, f: impl FnOnce(&mut State)) -> Self {
        let mut state = Arc::try_unwrap(self.state).unwrap_or_else(|shared| State {
            verifier: shared.verifier.clone(),
            challenge: shared.challenge.clone(),
            optional: shared.optional,
            required_scopes: shared.required_scopes.clone(),
            hierarchy: shared.hierarchy.clone(),
            max_form_bytes: shared.max_form_bytes,
        });
        f(&mut state);
        Self {
            state: Arc::new(state),
        }
    }

    /// Lets requests without any token through, without an [`AuthInfo`].
    pub fn optional(self) -> Self {
        self.edit(|s| s.optional = true)
    }

    /// Scopes every request needs; a valid token without them gets 403 `insufficient_scope`
    /// naming all of them (after the token's own). Matched exactly unless a
    /// [`scope_hierarchy`](Self::scope_hierarchy) is set.
    pub fn required_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.edit(|s| s.required_scopes = scopes)
    }

    /// Lets a broader granted scope satisfy narrower required ones (e.g. `admin` covers
    /// `admin:read`) in the [`required_scopes`](Self::required_scopes) check. Default:
    /// [`ScopeHierarchy::exact`], exact matching.
    pub fn scope_hierarchy(self, hierarchy: ScopeHierarchy) -> Self {
        self.edit(|s| s.hierarchy = hierarchy)
    }

    /// Largest `application/x-www-form-urlencoded` body read to check that it carries no
    /// `access_token` (RFC 6750 §2.2 tokens are refused, see below); a larger form body is
    /// refused with 413. Other bodies are never read. Default: [`DEFAULT_MAX_FORM_BYTES`].
    ///
    /// Tokens are accepted only in the `Authorization` header: an `access_token` in the query
    /// string or in a form body is refused with 400 `invalid_request`, and so is a token sent in
    /// more than one of those places.
    pub fn max_form_bytes(self, bytes: usize) -> Self {
        self.edit(|s| s.max_form_bytes = bytes)
    }

    /// The challenge this layer answers with.
    #[must_use]
    pub fn challenge(&self) -> &Challenge {
        &self.state.challenge
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    state: Arc<State>,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S> Service<Request> for AuthService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The ready service is the one we were polled for; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            match state.admit(&mut req).await {
                Ok(()) => inner.call(req).await,
                Err(refusal) => Ok(refusal),
            }
        })
    }
}

impl State {
    /// Verifies the request's token and puts the caller's [`AuthInfo`] into its extensions,
    /// or answers with the challenge.
    pub(crate) async fn admit(&self, req: &mut Request) -> Result<(), Response> {
        // Only form bodies can carry a token (RFC 6750 §2.2), so only they are read: MCP
        // requests (JSON) and most others never pay for this.
        let form = if bearer::is_form(req.headers()) {
            // Read whole (at most `max_form_bytes`), and the same bytes put back for the handler.
            let read = crate::body::take_whole(req.body_mut(), self.max_form_bytes).await;
            Some(read.map_err(crate::body::Unreadable::response)?)
        } else {
            None
        };
        // A token this thread verified a moment ago (nearly every request's) is not checked for
        // `b64token` syntax again: the verified-token memo keeps only tokens that passed. About
        // 1,300 instructions per request for an 800-byte JWT.
        let bearer =
            bearer::parse_with_form_knowing(req.headers(), req.uri(), form.as_deref(), memo::holds);
        match authenticate(self, bearer).await {
            Ok(Some(info)) => {
                req.extensions_mut().insert(info);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                tracing::debug!(status = error.status().as_u16(), reason = %error, "request refused");
                Err(self.challenge.response_to(&error, req.headers()))
            }
        }
    }
}

async fn authenticate(
    state: &State,
    bearer: Result<Option<Bearer>, bearer::BearerError>,
) -> Result<Option<AuthInfo>, AuthError> {
    let bearer = match bearer? {
        Some(b) => b,
        None if state.optional => return Ok(None),
        None => return Err(AuthError::MissingToken),
    };
    let info = match state.verifier.verify_now(bearer.token()) {
        Some(info) => info,
        None => state.verifier.verify(bearer.token()).await?,
    };
    if !state.required_scopes.is_empty()
        && !state
            .hierarchy
            .satisfies(info.scopes(), &state.required_scopes)
    {
        return Err(AuthError::InsufficientScope {
            scope: merge_scopes(info.scopes(), &state.required_scopes),
        });
    }
    let (header, start) = bearer.into_parts();
    Ok(Some(info.with_token(header, start)))
}

/// The scopes to ask for on step-up: what the token already has plus what is missing, so
/// re-authorizing does not lose the scopes the client already held.
pub(crate) fn merge_scopes(granted: &[String], required: &[String]) -> Vec<String> {
    let mut out: Vec<String> = granted.to_vec();
    for s in required {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::{Extension, Router, body::Body, routing::get};
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::{TokenKind, VerifyError, verify::VerifyFuture};

    /// Knows one token without waiting and refuses everything through `verify`.
    struct KnowsNow;

    impl TokenVerifier for KnowsNow {
        fn verify<'a>(&'a self, _token: &'a str) -> VerifyFuture<'a> {
            Box::pin(async { Err(VerifyError::invalid_token("asked to wait")) })
        }

        fn verify_now(&self, token: &str) -> Option<AuthInfo> {
            (token == "known").then(|| {
                AuthInfo::builder("user_now", TokenKind::OAuthAccessToken)
                    .scopes(["read"])
                    .build()
            })
        }
    }

    async fn status_and_body(layer: AuthLayer, token: &str) -> (StatusCode, String) {
        let app = Router::new()
            .route(
                "/",
                get(
                    |Extension(auth): Extension<AuthInfo>| async move { auth.user_id().to_owned() },
                ),
            )
            .layer(layer);
        let req = Request::get("/")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A token that is not `b64token` syntax is refused even when its verifier accepts it and a
    /// [`CachedVerifier`](crate::CachedVerifier) remembers that (called directly, not from a
    /// request): the memo that spares a repeated token the syntax check does not keep it. A
    /// well-formed token remembered the same way is served.
    #[tokio::test]
    async fn a_malformed_token_is_refused_even_after_its_verifier_accepted_it() {
        let md = "http://127.0.0.1/.well-known/oauth-protected-resource";
        let accepts_anything = |_: &str| async {
            Ok(AuthInfo::builder("user_any", TokenKind::OAuthAccessToken).build())
        };
        let cached = Arc::new(crate::CachedVerifier::new(accepts_anything));
        for token in ["not,b64token", "well-formed.token"] {
            cached.verify(token).await.unwrap();
        }
        let layer = || AuthLayer::with_challenge(cached.clone(), Challenge::new(md));
        let (status, body) = status_and_body(layer(), "not,b64token").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = status_and_body(layer(), "well-formed.token").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "user_any"));
    }

    /// An answer from `verify_now` admits the request without `verify`, and still goes
    /// through the layer's scope check.
    #[tokio::test]
    async fn an_answer_without_waiting_is_used_and_still_scope_checked() {
        let md = "http://127.0.0.1/.well-known/oauth-protected-resource";
        let (status, body) = status_and_body(AuthLayer::new(KnowsNow, md), "known").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "user_now"));
        let (status, _) = status_and_body(AuthLayer::new(KnowsNow, md), "other").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let scoped = AuthLayer::new(KnowsNow, md).required_scopes(["write"]);
        let (status, _) = status_and_body(scoped, "known").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
