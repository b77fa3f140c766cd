//! The MCP endpoint's request pipeline: Origin check, authentication, the per-request span,
//! session binding and the step-up guard, in that order, in front of rmcp.
//!
//! One hand-written service rather than one middleware per step: each `axum::middleware::from_fn`
//! boxes its future and its `Next` and clones the service behind it on every request, which
//! showed up in the load profile (`BENCHMARKS.md`). Here a request costs one boxed future for
//! the whole chain.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{extract::Request, response::Response};
use http::{HeaderValue, StatusCode, header};
use tower::Service;
use tracing::Instrument;

use crate::{AuthInfo, challenge::plain_error, layer, session::SessionBindings, step_up::StepUp};

/// Everything the pipeline checks, shared by every request.
pub(crate) struct Pipeline {
    /// Shared with the CORS layer, which answers preflights by the same rule.
    pub(crate) origins: Arc<OriginCheck>,
    pub(crate) auth: Arc<layer::State>,
    /// `None` when the server is stateless.
    pub(crate) sessions: Option<SessionBindings>,
    /// `None` when no tool has scopes.
    pub(crate) step_up: Option<StepUp>,
}

/// DNS-rebinding protection (MCP transport specification): a browser request from an origin
/// not on the list is refused with 403 before anything else happens.
pub(crate) struct OriginCheck {
    pub(crate) origins: Vec<String>,
    pub(crate) any: bool,
}

impl OriginCheck {
    /// Whether a browser on `origin` may call this server.
    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        self.any
            || origin.to_str().is_ok_and(|o| {
                self.origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o))
            })
    }

    fn refuse(&self, req: &Request) -> Option<Response> {
        let origin = req.headers().get(header::ORIGIN)?;
        if self.allows(origin) {
            return None;
        }
        tracing::debug!("request from a disallowed Origin refused");
        Some(plain_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Origin not allowed",
        ))
    }
}

impl Pipeline {
    async fn run<S>(&self, mut req: Request, inner: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        if let Some(refusal) = self.origins.refuse(&req) {
            return refusal;
        }
        if let Err(refusal) = self.auth.admit(&mut req).await {
            return refusal;
        }
        let span = request_span(&req);
        let response = self.admitted(req, inner).instrument(span.clone()).await;
        span.record("status", response.status().as_u16());
        span.in_scope(|| tracing::debug!("request finished"));
        response
    }

    /// The steps after authentication, inside the request's span.
    async fn admitted<S>(&self, req: Request, mut inner: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let session = match &self.sessions {
            Some(bindings) => match bindings.check(&req) {
                Ok(check) => Some((bindings, check)),
                Err(refusal) => return refusal.response(),
            },
            None => None,
        };
        let req = match &self.step_up {
            Some(step_up) => match step_up.check(req).await {
                Ok(req) => req,
                Err(refusal) => return refusal,
            },
            None => req,
        };
        let response = match inner.call(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let Some((bindings, check)) = session {
            bindings.record(check, &response);
        }
        response
    }
}

/// One span per admitted MCP request with who called, which tool (recorded by the step-up
/// guard) and the status. Never the token. The field values are only computed when the span is
/// enabled, so a server logging at `warn` pays nothing for it.
fn request_span(req: &Request) -> tracing::Span {
    let auth = req.extensions().get::<AuthInfo>();
    tracing::info_span!(
        "mcp_request",
        method = %req.method(),
        user = %auth.map_or("", AuthInfo::user_id),
        client = %auth.and_then(AuthInfo::client_id).unwrap_or(""),
        tool = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// The pipeline as a tower service around rmcp's.
#[derive(Clone)]
pub(crate) struct PipelineService<S> {
    pub(crate) inner: S,
    pub(crate) pipeline: Arc<Pipeline>,
}

impl<S> Service<Request> for PipelineService<S>
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

    fn call(&mut self, req: Request) -> Self::Future {
        // The ready service is the one we were polled for; leave a fresh clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let pipeline = self.pipeline.clone();
        Box::pin(async move { Ok(pipeline.run(req, inner).await) })
    }
}
