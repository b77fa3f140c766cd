//! The MCP endpoint: Origin check, body size, authentication, session binding and the step-up
//! guard, in that order, in front of rmcp; tower-http's CORS around it for browser requests.
//! One access-log line per request at `info` (target `mcp_auth::access`, see `access_log`).
//!
//! One hand-written service rather than one middleware per step: each `axum::middleware::from_fn`
//! boxes its future and its `Next` and clones the service behind it on every request, which
//! showed up in the load profile (`BENCHMARKS.md`). Here a request costs one boxed future for
//! the whole chain, and the service axum clones for every request is one `Arc`.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::{Body, HttpBody},
    extract::Request,
    response::Response,
};
use http::{HeaderValue, Method, StatusCode, header};
use rmcp::{
    ServerHandler,
    transport::streamable_http_server::{
        StreamableHttpService, session::local::LocalSessionManager,
    },
};
use tower::{Layer, Service, ServiceExt, util::BoxCloneSyncService};
use tower_http::cors::CorsLayer;
use tracing::Instrument;

use crate::{
    AuthInfo, access_log,
    challenge::plain_error,
    layer,
    rate_limit::{RateLimiter, too_many_requests},
    session::{SessionBindings, SessionCheck},
    step_up::StepUp,
};

/// Everything the pipeline checks, shared by every request.
pub(crate) struct Pipeline {
    /// Shared with the CORS layer, which answers preflights by the same rule.
    pub(crate) origins: Arc<OriginCheck>,
    pub(crate) auth: Arc<layer::State>,
    /// `None` when the server is stateless.
    pub(crate) sessions: Option<SessionBindings>,
    /// `None` when no tool has scopes.
    pub(crate) step_up: Option<StepUp>,
    /// A body declaring more than this is refused before authentication. Bodies are read
    /// with the same limit, by the step-up guard or by rmcp, whichever reads them.
    pub(crate) max_body_bytes: usize,
    /// `None` unless a per-identity rate limit is configured.
    pub(crate) rate_limit: Option<RateLimiter>,
    /// Record each request's outcome and duration (`mcp_auth_requests_total`,
    /// `mcp_auth_request_duration_seconds`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: bool,
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

impl<H> Core<H>
where
    H: ServerHandler,
{
    /// One request, start to end: this is the endpoint's whole future. `route`: how it came
    /// (see [`Endpoint`]).
    ///
    /// rmcp's future is about 4.8 KB, and a future that holds another is moved, all of it,
    /// into its parent: each `async` layer between the task and rmcp costs a copy of
    /// kilobytes per request (`BENCHMARKS.md`, "Fewer future layers"). So rmcp's future is
    /// awaited here, in the one future that gets boxed; the steps before it run in
    /// [`Pipeline::admit`] and [`Pipeline::prepare`], whose futures are small.
    async fn serve(
        self: Arc<Self>,
        mut req: Request,
        route: Route,
    ) -> Result<Response, Infallible> {
        let pipeline = &self.pipeline;
        // Whether the access line is wanted: one callsite check. A server logging at `warn`
        // takes no note of the caller or the tool.
        let log = access_log::wanted();
        // One clock reading serves the access line and the metrics.
        #[cfg(feature = "metrics")]
        let timed = log || pipeline.metrics;
        #[cfg(not(feature = "metrics"))]
        let timed = log;
        let started = timed.then(Instant::now);
        let mut response = 'response: {
            if let Err(refusal) = pipeline.admit(&mut req, route).await {
                if log && let Some(started) = started {
                    access_log::refused(&req, &refusal, started);
                }
                break 'response refusal;
            }
            let line = match started {
                Some(started) if log => Some(access_log::Admitted::new(&mut req, started)),
                _ => None,
            };
            // Disabled unless at `debug`.
            let span = match line {
                Some(_) => access_log::request_span(&req),
                None => tracing::Span::none(),
            };
            let mut seen = None;
            let seen_here = line.is_some().then_some(&mut seen);
            // Each branch awaits the future where it is made: one made before the branch is
            // built on the stack and then copied into this future (1.5 KB here, 5.3 KB for
            // rmcp's below) on every request.
            let prepared = if span.is_disabled() {
                pipeline.prepare(&mut req, seen_here, &span).await
            } else {
                pipeline
                    .prepare(&mut req, seen_here, &span)
                    .instrument(span.clone())
                    .await
            };
            let response = match prepared {
                Err(refusal) => refusal,
                Ok(Prepared {
                    lists_tools,
                    session,
                }) => {
                    // `handle` takes `&self`: no per-request clone of rmcp's service (and of
                    // its config).
                    let response = if span.is_disabled() {
                        self.mcp.handle(req).await
                    } else {
                        self.mcp.handle(req).instrument(span.clone()).await
                    };
                    let mut response = response.map(Body::new);
                    if lists_tools {
                        response = with_top_level_security_schemes(response).await;
                    }
                    if let Some((bindings, check)) = session {
                        bindings.record(check, &response);
                    }
                    response
                }
            };
            if let Some(line) = line {
                line.finished(&response, seen);
            }
            response
        };
        // Each request's outcome and duration (`mcp_auth_requests_total`,
        // `mcp_auth_request_duration_seconds`).
        #[cfg(feature = "metrics")]
        if pipeline.metrics
            && let Some(started) = started
        {
            crate::metrics::request(&response, started);
        }
        if route == Route::Direct {
            response.headers_mut().append(header::VARY, CORS_VARY);
        }
        Ok(response)
    }
}

/// What the checks before rmcp found in a request that passed them all.
struct Prepared<'a> {
    /// A `tools/list` whose answer gets the scoped tools' `securitySchemes` hoisted.
    lists_tools: bool,
    /// Where to record the session the answer opens or closes, when sessions are on.
    session: Option<(&'a SessionBindings, SessionCheck)>,
}

impl Pipeline {
    /// Origin, body size and authentication: the refusals that come before an identity.
    async fn admit(&self, req: &mut Request, route: Route) -> Result<(), Response> {
        if route == Route::Cors
            && let Some(refusal) = self.origins.refuse(req)
        {
            return Err(refusal);
        }
        // hyper's size hint is the declared Content-Length: refuse before doing any work.
        if req.body().size_hint().lower() > self.max_body_bytes as u64 {
            return Err(plain_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ));
        }
        self.auth.admit(req).await
    }

    /// The steps after authentication and before rmcp: rate limit, session, step-up. `seen`,
    /// when the access line is wanted: where the step-up guard puts the name of the tool it
    /// found in the request, if it looked. `span`: the request's span (disabled unless at
    /// `debug`), which gets the tool's name before the tool runs.
    async fn prepare(
        &self,
        req: &mut Request,
        mut seen: Option<&mut Option<String>>,
        span: &tracing::Span,
    ) -> Result<Prepared<'_>, Response> {
        // Before anything that does work for the caller (session, step-up, the tool). Ending a
        // session is never refused: it only frees resources.
        if let Some(limiter) = &self.rate_limit
            && req.method() != Method::DELETE
            && let Some(caller) = req.extensions().get::<AuthInfo>()
            && let Err(retry_after) = limiter.check(caller).await
        {
            tracing::debug!("per-caller rate limit reached");
            return Err(too_many_requests(retry_after));
        }
        let session = match &self.sessions {
            Some(bindings) => match bindings.check(req) {
                Ok(check) => Some((bindings, check)),
                Err(refusal) => return Err(refusal.response()),
            },
            None => None,
        };
        let lists_tools = match &self.step_up {
            Some(step_up) => {
                // The handler names the tool it runs, but too late in two cases, where the
                // guard looks for it itself: the request's span (at `debug` only) shows the tool
                // from the start, and with sessions the answer is a stream whose headers (and so
                // the access line) can come before the tool has run.
                let name_tool = seen.is_some() && (!span.is_disabled() || self.sessions.is_some());
                let checked = step_up.check(req, name_tool, seen.as_deref_mut()).await;
                if !span.is_disabled()
                    && let Some(Some(name)) = seen.as_deref()
                {
                    span.record("tool", name.as_str());
                }
                checked?.lists_tools
            }
            None => false,
        };
        Ok(Prepared {
            lists_tools,
            session,
        })
    }
}

/// A `tools/list` answer with each scoped tool's `securitySchemes` also as a field of the tool
/// object, where the Apps SDK documents it (rmcp's typed `Tool` has no such field; see
/// [`crate::tool_list`]). rmcp's answer is our own output, so it is read whole; an answer that
/// cannot be read or is not a tools list is passed on unchanged.
async fn with_top_level_security_schemes(response: Response) -> Response {
    let sse = match response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(t) if t.starts_with("application/json") => false,
        Some(t) if t.starts_with("text/event-stream") => true,
        _ => return response,
    };
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = http_body_util::BodyExt::collect(body).await else {
        tracing::warn!("the tools/list answer could not be read");
        return plain_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the tools list could not be produced",
        );
    };
    let bytes = collected.to_bytes();
    match crate::tool_list::hoist_security_schemes(&bytes, sse) {
        Some(new) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(new))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// rmcp's Streamable HTTP service, as the pipeline calls it.
pub(crate) type Mcp<H> = StreamableHttpService<H, LocalSessionManager>;

/// The pipeline and rmcp behind it, shared by every request.
pub(crate) struct Core<H> {
    pub(crate) pipeline: Pipeline,
    pub(crate) mcp: Mcp<H>,
}

type BoxResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// What tower-http's CORS layer, as configured here, adds to a response to a request that
/// carries no `Origin`: only this `Vary` (the request headers the CORS answer depends on).
const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// How a request reached [`Core::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Through tower-http's CORS layer: an `OPTIONS`, or a request with an `Origin` header.
    Cors,
    /// Straight from [`Endpoint::call`], which sent it here because it has no `Origin` header:
    /// the Origin check has nothing to refuse (it is not asked again, a header look-up per
    /// request), and the answer gets the `Vary` header CORS would have added.
    Direct,
}

/// The service at the MCP path.
///
/// CORS matters only to browsers, and a browser's request carries `Origin` (a preflight is an
/// `OPTIONS` with `Origin`). Those requests, and every `OPTIONS`, go through tower-http's
/// [`CorsLayer`]. Every other request, which is every request from a desktop client or `mcp-remote`,
/// goes straight to the pipeline and gets the one header CORS would have added: tower-http's
/// layer otherwise builds and merges a header map on each request, and axum clones the whole
/// layer for each request too.
pub(crate) struct Endpoint<H> {
    /// One `Arc`, because axum clones the endpoint for every request.
    shared: Arc<Shared<H>>,
}

struct Shared<H> {
    core: Arc<Core<H>>,
    /// `cors` around the same core; cloned only for the requests that take this path.
    browser: BoxCloneSyncService<Request, Response, Infallible>,
}

impl<H> Endpoint<H>
where
    H: ServerHandler,
{
    pub(crate) fn new(core: Core<H>, cors: CorsLayer) -> Self {
        let core = Arc::new(core);
        let shared = core.clone();
        let browser = cors.layer(tower::service_fn(move |req: Request| {
            shared.clone().serve(req, Route::Cors)
        }));
        Self {
            shared: Arc::new(Shared {
                core,
                browser: BoxCloneSyncService::new(browser),
            }),
        }
    }
}

impl<H> Clone for Endpoint<H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<H> Service<Request> for Endpoint<H>
where
    H: ServerHandler,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() == Method::OPTIONS || req.headers().contains_key(header::ORIGIN) {
            let browser = self.shared.browser.clone();
            return Box::pin(browser.oneshot(req));
        }
        let core = self.shared.core.clone();
        boxed_in_place(move || core.serve(req, Route::Direct))
    }
}

/// `Box::pin(make())`, without the copy: `Box::pin` takes the future by value, so it is built
/// on the stack and then copied into the box, all of it (6.5 KB for [`Core::serve`], however
/// little of it the future has used yet). Allocating first lets the future be built in its
/// box.
fn boxed_in_place<F>(make: impl FnOnce() -> F) -> BoxResponseFuture
where
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    let slot = Box::<F>::new_uninit();
    let boxed: Pin<Box<F>> = Box::into_pin(Box::write(slot, make()));
    boxed
}
