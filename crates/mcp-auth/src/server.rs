//! The server builder: rmcp's Streamable HTTP service, the auth middleware and the discovery
//! routes, wired into one axum [`Router`].

use std::{borrow::Cow, future::Future, sync::Arc, time::Duration};

use axum::Router;
use http::{HeaderName, HeaderValue, Method, header};
use rmcp::{
    ServerHandler,
    handler::server::tool::IntoCallToolResult,
    model::ServerConfig,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;
use url::Url;

use crate::{
    AuthInfo, AuthLayer, FleetStore, RateLimit,
    challenge::Challenge,
    metadata::{self, LegacyAsMetadata, MetadataState, ProtectedResourceMetadata},
    pipeline::{Core, Endpoint, OriginCheck, Pipeline},
    rate_limit::RateLimiter,
    resource_scopes::ResourceScopes,
    scopes::ScopeHierarchy,
    session::SessionBindings,
    step_up::{RequiredScopes, StepUp},
    tool_list::{Listing, ScopedToolList},
    tools::{ClosureToolsBuilder, ToolScopes, default_info},
    verify::TokenVerifier,
};

/// Default request body limit: 4 MiB, like rmcp's own default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Default for [`McpServerBuilder::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: u64 = 10_000;

/// Default for [`McpServerBuilder::max_sessions_per_user`]: far more than one person's
/// clients keep open (one per client window), far below [`DEFAULT_MAX_SESSIONS`] (it takes 200
/// users at the cap to fill the server).
pub const DEFAULT_MAX_SESSIONS_PER_USER: u64 = 50;

/// Entry point: `McpServer::builder(resource_url)`.
#[derive(Debug)]
pub struct McpServer;

impl McpServer {
    /// Starts a server whose canonical resource URL (the URL clients connect to, and the
    /// audience tokens must name) is `resource`, e.g. `https://mcp.example.com/mcp`. The MCP
    /// endpoint is mounted at that URL's path.
    pub fn builder(resource: &str) -> McpServerBuilder {
        McpServerBuilder::new(resource)
    }
}

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The resource URL is not an absolute http(s) URL without query or fragment, or its path
    /// cannot be the MCP route: a segment starting with `:` or `*`, or a path the server serves
    /// itself (the metadata documents, `/healthz` and `/readyz`, `/metrics`).
    #[error("invalid resource URL: {0}")]
    InvalidResource(String),
    /// No verifier was given.
    #[error("no token verifier: call .verifier(...)")]
    NoVerifier,
    /// No authorization server was given; RFC 9728 metadata for MCP must name at least one.
    #[error("no authorization server: call .authorization_server(url)")]
    NoAuthorizationServer,
    /// An authorization server or origin is not a valid URL.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
}

/// Configures an OAuth-protected MCP server. See the crate docs for a full example.
#[must_use]
pub struct McpServerBuilder {
    resource: Result<Url, BuildError>,
    authorization_servers: Vec<String>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    scopes_supported: Vec<String>,
    challenge_scopes: Option<Vec<String>>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    tools: ClosureToolsBuilder,
    tool_scopes: ToolScopes,
    prompt_scopes: ToolScopes,
    resource_scopes: ResourceScopes,
    scope_hierarchy: ScopeHierarchy,
    hide_unauthorized_tools: bool,
    info: Option<ServerConfig>,
    sessions: bool,
    session_keep_alive: Duration,
    max_sessions: u64,
    max_sessions_per_user: u64,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    any_origin: bool,
    max_body_bytes: usize,
    trust_forwarded: bool,
    legacy_as_metadata: bool,
    optional_auth: bool,
    health_checks: bool,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::MetricsHandle>,
    cancellation: CancellationToken,
    rate_limit: Option<RateLimit>,
    shared_store: Option<FleetStore>,
}

impl std::fmt::Debug for McpServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerBuilder")
            .field("resource", &self.resource.as_ref().map(Url::as_str).ok())
            .field("authorization_servers", &self.authorization_servers)
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl McpServerBuilder {
    fn new(resource: &str) -> Self {
        let resource = Url::parse(resource)
            .map_err(|e| BuildError::InvalidResource(e.to_string()))
            .and_then(|u| {
                if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    Err(BuildError::InvalidResource(
                        "must be an absolute http(s) URL".into(),
                    ))
                } else if u.query().is_some() || u.fragment().is_some() {
                    Err(BuildError::InvalidResource(
                        "must not have a query or fragment (RFC 8707)".into(),
                    ))
                } else if u
                    .path()
                    .split('/')
                    .any(|segment| segment.starts_with([':', '*']))
                {
                    // The path becomes axum routes (the MCP endpoint, the metadata document),
                    // and axum reads such segments as parameters (and panics on `:`).
                    Err(BuildError::InvalidResource(
                        "path segments must not start with `:` or `*`".into(),
                    ))
                } else {
                    Ok(u)
                }
            });
        Self {
            resource,
            authorization_servers: Vec::new(),
            verifier: None,
            scopes_supported: Vec::new(),
            challenge_scopes: None,
            resource_name: None,
            resource_documentation: None,
            tools: ClosureToolsBuilder::default(),
            tool_scopes: ToolScopes::default(),
            prompt_scopes: ToolScopes::default(),
            resource_scopes: ResourceScopes::default(),
            scope_hierarchy: ScopeHierarchy::default(),
            hide_unauthorized_tools: false,
            info: None,
            sessions: false,
            session_keep_alive: Duration::from_secs(300),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            any_origin: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            trust_forwarded: false,
            legacy_as_metadata: true,
            optional_auth: false,
            health_checks: false,
            #[cfg(feature = "metrics")]
            metrics: None,
            cancellation: CancellationToken::new(),
            rate_limit: None,
            shared_store: None,
        }
    }

    /// Adds an authorization server (its issuer URL), listed in the protected resource
    /// metadata. The first one also backs `/.well-known/oauth-authorization-server`.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The verifier every request's token goes through.
    pub fn verifier(mut self, verifier: impl TokenVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// A shared verifier.
    pub fn shared_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// `scopes_supported` in the metadata. Also the default `scope` of 401 challenges unless
    /// [`challenge_scopes`](Self::challenge_scopes) says otherwise.
    ///
    /// `offline_access` is never served, in the metadata or in any challenge, even when listed
    /// here: MCP servers SHOULD NOT advertise it (MCP 2026-07-28, § Refresh Tokens); a client
    /// that wants a refresh token asks the authorization server for it.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The `scope` put in 401 challenges: what a client should request on first authorization.
    /// Empty for none.
    pub fn challenge_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.challenge_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// `resource_name` in the metadata.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `resource_documentation` in the metadata.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The `initialize` answer (server name, version, instructions) for closure tools.
    pub fn server_info(mut self, info: ServerConfig) -> Self {
        self.info = Some(info);
        self
    }

    /// Registers a tool implemented by a closure. The input schema comes from `T`'s
    /// `JsonSchema`; the handler receives the parsed arguments and the caller's [`AuthInfo`].
    ///
    /// ```
    /// use mcp_auth::{AuthInfo, McpServer};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Greet { name: String }
    ///
    /// let builder = McpServer::builder("http://127.0.0.1:8787/mcp")
    ///     .tool("greet", "Greets someone on behalf of the caller", |args: Greet, auth: AuthInfo| async move {
    ///         format!("{} says hello to {}", auth.user_id(), args.name)
    ///     });
    /// ```
    pub fn tool<T, F, Fut, R>(
        self,
        name: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
        handler: F,
    ) -> Self
    where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(T, AuthInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoCallToolResult,
    {
        self.scoped_tool(name, description, Vec::<String>::new(), handler)
    }

    /// Registers a closure tool that needs `scopes`. A `tools/call` without them is answered
    /// with 403 `insufficient_scope` naming the scopes (the step-up challenge); in `tools/list`
    /// the tool carries `securitySchemes: [{"type": "oauth2", "scopes": [...]}]` so a client
    /// knows before calling (see [`hide_unauthorized_tools`](Self::hide_unauthorized_tools)).
    pub fn scoped_tool<T, F, Fut, R, I, S>(
        mut self,
        name: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
        scopes: I,
        handler: F,
    ) -> Self
    where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(T, AuthInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoCallToolResult,
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let name = name.into();
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.tool_scopes.insert(name.to_string(), scopes.clone());
        self.tools.add(name, description.into(), scopes, handler);
        self
    }

    /// Requires `scopes` for a tool served by a custom handler (see
    /// [`build_with`](Self::build_with)), checked at the HTTP layer before the tool runs, and
    /// announced in `tools/list` like [`scoped_tool`](Self::scoped_tool)'s. A later call for the
    /// same tool replaces the earlier requirement; an empty list removes it.
    pub fn tool_scopes<I, S>(mut self, tool: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tool_scopes
            .insert(tool, scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Requires `scopes` for `prompts/get` of the prompt `name`: a request without them is
    /// answered with 403 `insufficient_scope` naming the scopes, before the handler's
    /// `get_prompt` runs (the same step-up challenge as a scoped tool's). A later call for the
    /// same prompt replaces the earlier requirement; an empty list removes it.
    ///
    /// ```
    /// use mcp_auth::McpServer;
    ///
    /// let builder = McpServer::builder("http://127.0.0.1:8787/mcp")
    ///     .prompt_scopes("incident-review", ["ops:read"]);
    /// ```
    pub fn prompt_scopes<I, S>(mut self, name: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prompt_scopes
            .insert(name, scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Requires `scopes` for `resources/read`, `resources/subscribe` and
    /// `resources/unsubscribe` of the resources `pattern` matches, and for a 2026-07-28
    /// `subscriptions/listen` that lists one of them in `notifications.resourceSubscriptions`:
    /// a request without them is answered with 403 `insufficient_scope` naming the scopes,
    /// before the handler's `read_resource` (or `subscribe`, `unsubscribe`,
    /// `accepted_subscription_filter`) runs.
    ///
    /// `pattern` matches a URI equal to it, and the URIs below it: those that continue it with
    /// `/`, `?` or `#`, or, when `pattern` itself ends with `/`, every URI that starts with it.
    /// It never matches a sibling that merely shares its spelling (`file:///a` does not match
    /// `file:///ab`). When several patterns match a URI their scopes add up. URIs are compared
    /// exactly as the client sent them, with no normalisation: a handler that resolves `..`,
    /// percent-escapes or case before the lookup must refuse URIs not already in that form.
    ///
    /// ```
    /// use mcp_auth::McpServer;
    ///
    /// let builder = McpServer::builder("http://127.0.0.1:8787/mcp")
    ///     // file:///reports/q3.pdf, file:///reports/2026/q1.pdf; not file:///reports-old/x
    ///     .resource_scopes("file:///reports/", ["reports:read"])
    ///     // db://users, db://users/42, db://users?active; not db://users_archive
    ///     .resource_scopes("db://users", ["users:read"]);
    /// ```
    pub fn resource_scopes<I, S>(mut self, pattern: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resource_scopes
            .insert(pattern, scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Lets a broader granted scope satisfy narrower required ones in every scope check (the
    /// step-up guard for tools, prompts and resources, closure tools, and the hidden-tool
    /// filter), e.g.
    /// `ScopeHierarchy::exact().implies("admin", ["admin:read"])` or
    /// `ScopeHierarchy::by_prefix(':')`. The MCP specification asks servers to account for
    /// scope hierarchies (2026-07-28, § Step-Up Authorization Flow); which scopes nest is the
    /// authorization server's policy, so it is declared here. A 403 still names the scopes
    /// exactly as the tools require them. Default: [`ScopeHierarchy::exact`] (`admin` does not
    /// cover `admin:read`).
    ///
    /// ```
    /// use mcp_auth::{McpServer, ScopeHierarchy};
    ///
    /// let builder = McpServer::builder("http://127.0.0.1:8787/mcp")
    ///     .scope_hierarchy(ScopeHierarchy::exact().implies("admin", ["admin:read", "admin:write"]));
    /// ```
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> Self {
        self.scope_hierarchy = hierarchy;
        self
    }

    /// Hides from `tools/list` the scoped tools whose scopes the caller's token lacks (an
    /// anonymous caller, with [`optional_auth`](Self::optional_auth), sees no scoped tool).
    /// The list then differs per caller: it is marked `cacheScope: "private"` for 2026-07-28
    /// clients, and nothing here caches it. Hiding is not protection (a hidden tool called by
    /// name still gets the 403 step-up challenge), and a client that does not see a tool will
    /// not know to step up for it. Default: off, every tool is listed, each scoped one with
    /// its `securitySchemes`.
    pub fn hide_unauthorized_tools(mut self, hide: bool) -> Self {
        self.hide_unauthorized_tools = hide;
        self
    }

    /// Keeps MCP sessions (protocol revisions before 2026-07-28). Default: stateless. Each
    /// session is bound to the identity that opened it.
    pub fn sessions(mut self, enabled: bool) -> Self {
        self.sessions = enabled;
        self
    }

    /// Most MCP sessions open at once (with [`sessions`](Self::sessions) on). Default:
    /// [`DEFAULT_MAX_SESSIONS`]. rmcp holds about 50 KiB per open session (measured in
    /// `BENCHMARKS.md`), so this is what bounds session memory: at the limit, a request that
    /// would open another session gets 503 with `Retry-After` until idle sessions expire.
    pub fn max_sessions(mut self, max: u64) -> Self {
        self.max_sessions = max;
        self
    }

    /// Limits each verified caller to `requests` MCP requests per `window`: the user, the
    /// machine for machine tokens, the organization for an organization's API key. Checked
    /// after authentication and before the session, step-up and the tool: a request over the
    /// limit gets `429 Too Many Requests` with `Retry-After` (whole seconds until the caller's
    /// window ends) and a JSON body `{"error": "rate_limited", "error_description": …,
    /// "retry_after": N}`, and the tool does not run. Ending a session (`DELETE`) is never
    /// refused. The window is fixed and starts at the caller's first request.
    ///
    /// Default: off. Counts are kept in this process unless a
    /// [`shared_store`](Self::shared_store) is set, which makes the limit hold across every
    /// replica of a fleet. `requests` below 1 is taken as 1.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_auth::McpServer;
    ///
    /// let builder = McpServer::builder("https://mcp.example.com/mcp")
    ///     .rate_limit_per_user(30, Duration::from_secs(60));
    /// # let _ = builder;
    /// ```
    pub fn rate_limit_per_user(mut self, requests: u32, window: Duration) -> Self {
        self.rate_limit = Some(RateLimit::new(requests, window));
        self
    }

    /// The store the replicas of a fleet share (Redis with the `redis` feature:
    /// `mcp_auth::redis::RedisStore`): with it,
    /// [`rate_limit_per_user`](Self::rate_limit_per_user) counts fleet-wide. If the store is
    /// down, each replica counts on its own until it is back; a request is never refused
    /// because of the store. Default: none (in-process counts).
    pub fn shared_store(mut self, fleet: FleetStore) -> Self {
        self.shared_store = Some(fleet);
        self
    }

    /// Most MCP sessions one user (issuer and user id, whatever client) may hold open at once
    /// (with [`sessions`](Self::sessions) on), so one caller cannot take every slot of
    /// [`max_sessions`](Self::max_sessions). Beyond it, a request that would open another
    /// session gets 429 `too_many_sessions` with `Retry-After`; a session closed with `DELETE`
    /// frees its slot at once, an abandoned one when its binding expires (twice the session
    /// keep-alive). Counts are per replica: behind a load balancer with sticky sessions, a
    /// user may hold this many on each replica. Default: [`DEFAULT_MAX_SESSIONS_PER_USER`].
    pub fn max_sessions_per_user(mut self, max: u64) -> Self {
        self.max_sessions_per_user = max;
        self
    }

    /// Also accepts requests whose `Host` is `host` (or `host:port`). The resource URL's host is
    /// always accepted; anything else is refused by rmcp (DNS-rebinding protection).
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into());
        self
    }

    /// Also accepts browser requests from `origin` (e.g. `http://localhost:6274` for the MCP
    /// Inspector), and answers its CORS preflights. The resource URL's own origin is always
    /// accepted; requests without `Origin` (non-browser clients) always pass; any other
    /// `Origin` gets 403.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Accepts any `Origin`. **Weakens DNS-rebinding protection**: only for servers that are
    /// not reachable from a browser on the user's machine.
    pub fn allow_any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    /// Largest request body accepted (413 above). Default: [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Builds the metadata document's `resource`, and the `resource_metadata` URL of every
    /// 401/403 challenge, from `Forwarded` / `X-Forwarded-Proto` + `X-Forwarded-Host` (for one
    /// server reachable under several public hosts), so the two always name the same origin.
    /// Tokens must still name an accepted audience.
    /// **Only behind a proxy that overwrites those headers**: otherwise clients choose what the
    /// metadata and the challenges say. Default: off (the configured resource URL is used).
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.trust_forwarded = trust;
        self
    }

    /// Serves `/.well-known/oauth-authorization-server` at this server's origin by fetching the
    /// first authorization server's metadata (for 2025-03-26 clients). Default: on.
    pub fn legacy_authorization_server_metadata(mut self, enabled: bool) -> Self {
        self.legacy_as_metadata = enabled;
        self
    }

    /// Lets requests without a token reach the tools anonymously (a tool taking `AuthInfo`
    /// then refuses). A presented bad token is still refused. Default: off.
    pub fn optional_auth(mut self, optional: bool) -> Self {
        self.optional_auth = optional;
        self
    }

    /// Serves `GET /healthz` (200 while the process serves) and `GET /readyz` (200 when the
    /// verifier can verify tokens now, see [`TokenVerifier::ready`]: signing keys loaded or the
    /// Backend API answering; else 503 with `Retry-After`), for load balancers and
    /// orchestrators. Both are unauthenticated and answer a fixed word, nothing more; the
    /// verifier is checked at most once a second however often `/readyz` is probed. The paths
    /// are at the root of the origin, whatever the MCP path. Default: off.
    pub fn health_checks(mut self, enabled: bool) -> Self {
        self.health_checks = enabled;
        self
    }

    /// Serves `GET /metrics` in the Prometheus text format, rendered from `handle` (from
    /// [`metrics::install_recorder`](crate::metrics::install_recorder)), and records every MCP
    /// request's outcome and duration; the names are listed in [`crate::metrics`]. The route
    /// is unauthenticated, like `/healthz`: keep it off the public listener (the load balancer
    /// in `deploy/haproxy.cfg` refuses it) and let Prometheus scrape each replica directly.
    /// Default: off.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(mut self, handle: crate::metrics::MetricsHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Cancelling this token closes every open MCP session and stream (for graceful shutdown).
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancellation = token;
        self
    }

    /// Builds the router for the closure-registered tools.
    pub fn build(mut self) -> Result<Router, BuildError> {
        let info = self.info.take().unwrap_or_else(|| default_info("mcp-auth"));
        let tools = std::mem::take(&mut self.tools).build(info, self.scope_hierarchy.clone());
        self.build_with(move || Ok(tools.clone()))
    }

    /// Builds the router around a custom rmcp [`ServerHandler`] (e.g. one written with
    /// `#[tool_router]`, whose `#[tool]` methods take `auth: AuthInfo`). `factory` makes one
    /// handler per session (or per request, when stateless).
    pub fn build_with<H, F>(self, factory: F) -> Result<Router, BuildError>
    where
        H: ServerHandler,
        F: Fn() -> Result<H, std::io::Error> + Send + Sync + 'static,
    {
        let resource = self.resource?;
        let verifier = self.verifier.ok_or(BuildError::NoVerifier)?;
        // Every path the server answers itself besides the MCP path, with what it is.
        let mut own_paths: Vec<(&str, &str)> = Vec::new();
        if self.health_checks {
            own_paths.push((crate::health::HEALTHZ_PATH, "a health-check path"));
            own_paths.push((crate::health::READYZ_PATH, "a health-check path"));
        }
        #[cfg(feature = "metrics")]
        if self.metrics.is_some() {
            own_paths.push((crate::metrics::METRICS_PATH, "the metrics path"));
        }
        let health = self
            .health_checks
            .then(|| crate::health::routes(verifier.clone()));
        if self.authorization_servers.is_empty() {
            return Err(BuildError::NoAuthorizationServer);
        }
        for a in &self.authorization_servers {
            Url::parse(a).map_err(|_| BuildError::InvalidUrl(a.clone()))?;
        }
        let origins = allowed_origins(&resource, &self.allowed_origins)?;

        let metadata_url = metadata::metadata_url(&resource);
        let challenge_scopes = self
            .challenge_scopes
            .unwrap_or_else(|| self.scopes_supported.clone());
        let challenge = Challenge::new(&metadata_url)
            .with_default_scope(&challenge_scopes)
            .trust_forwarded_headers(self.trust_forwarded);

        let mut document =
            ProtectedResourceMetadata::new(resource.as_str(), self.authorization_servers.clone())
                .scopes_supported(self.scopes_supported.clone());
        document.resource_name = self.resource_name;
        document.resource_documentation = self.resource_documentation;
        let legacy = if self.legacy_as_metadata {
            Url::parse(&self.authorization_servers[0])
                .ok()
                .map(|u| Arc::new(LegacyAsMetadata::new(u, Duration::from_secs(300))))
        } else {
            None
        };
        let (root, inserted, legacy_path) = metadata::route_paths(&resource, legacy.is_some());
        let metadata_paths = [Some(root), inserted.as_deref(), legacy_path];
        own_paths.extend(
            metadata_paths
                .into_iter()
                .flatten()
                .map(|p| (p, "a path the metadata routes serve")),
        );
        // axum refuses (with a panic) a path routed twice; and a request there would never
        // reach the MCP endpoint.
        if let Some((path, what)) = own_paths.iter().find(|(p, _)| *p == resource.path()) {
            return Err(BuildError::InvalidResource(format!(
                "the MCP path {path} is {what}"
            )));
        }
        let metadata_routes = metadata::routes(MetadataState::new(
            document,
            resource.clone(),
            self.trust_forwarded,
            legacy,
        ));

        let mut hosts = self.allowed_hosts;
        if let Some(host) = resource.host_str() {
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            );
            if let Some(port) = resource.port_or_known_default() {
                hosts.push(format!("{host}:{port}"));
            }
        }
        let mut rmcp_config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_legacy_session_mode(self.sessions)
            .with_json_response(!self.sessions)
            .with_max_request_body_bytes(self.max_body_bytes)
            .with_cancellation_token(self.cancellation.clone());
        // Origin is checked by our own middleware, before authentication.
        rmcp_config = rmcp_config.disable_allowed_origins();
        let mut session_manager = LocalSessionManager::default();
        session_manager.session_config.keep_alive = Some(self.session_keep_alive);
        let listing = Arc::new(Listing {
            scopes: self.tool_scopes.clone(),
            hierarchy: self.scope_hierarchy.clone(),
            hide_unauthorized: self.hide_unauthorized_tools,
        });
        let factory =
            move || factory().map(|handler| ScopedToolList::new(handler, listing.clone()));
        let mcp = StreamableHttpService::new(factory, Arc::new(session_manager), rmcp_config);

        // The form-body check reads at most what the pipeline lets through anyway.
        let mut auth = AuthLayer::with_challenge(verifier, challenge.clone())
            .max_form_bytes(self.max_body_bytes);
        if self.optional_auth {
            auth = auth.optional();
        }
        let origin_check = Arc::new(OriginCheck {
            origins,
            any: self.any_origin,
        });
        let pipeline = Pipeline {
            origins: origin_check.clone(),
            auth: auth.state(),
            sessions: self.sessions.then(|| {
                SessionBindings::new(
                    self.max_sessions,
                    self.max_sessions_per_user,
                    self.session_keep_alive * 2,
                )
            }),
            step_up: StepUp::new(
                RequiredScopes {
                    tools: self.tool_scopes,
                    prompts: self.prompt_scopes,
                    resources: self.resource_scopes,
                },
                self.scope_hierarchy,
                challenge,
                self.max_body_bytes,
            ),
            max_body_bytes: self.max_body_bytes,
            rate_limit: self
                .rate_limit
                .map(|limit| RateLimiter::new(limit, self.shared_store.clone())),
            #[cfg(feature = "metrics")]
            metrics: self.metrics.is_some(),
        };

        let cors = CorsLayer::new()
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
                HeaderName::from_static("mcp-method"),
                HeaderName::from_static("mcp-name"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                header::WWW_AUTHENTICATE,
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
            ])
            .max_age(Duration::from_secs(600));
        let cors = if self.any_origin {
            cors.allow_origin(tower_http::cors::Any)
        } else {
            // The pipeline's own Origin rule, shared, so preflights and requests are judged by
            // one list.
            cors.allow_origin(tower_http::cors::AllowOrigin::predicate(
                move |origin: &HeaderValue, _: &http::request::Parts| origin_check.allows(origin),
            ))
        };

        // Browser requests go through tower-http's CORS, the rest straight to the pipeline
        // (Origin, body size, auth, span, session, step-up) and rmcp; see `Endpoint`.
        let service = Endpoint::new(Core { pipeline, mcp }, cors);
        let path = match resource.path() {
            "" => "/",
            p => p,
        };
        let mut router = Router::new()
            .route_service(path, service)
            .merge(metadata_routes);
        if let Some(health) = health {
            router = router.merge(health);
        }
        #[cfg(feature = "metrics")]
        if let Some(handle) = self.metrics {
            router = router.merge(crate::metrics::routes(handle));
        }
        Ok(router)
    }
}

/// The origins a browser may call from: the resource's own plus the configured ones.
fn allowed_origins(resource: &Url, extra: &[String]) -> Result<Vec<String>, BuildError> {
    let mut out = vec![metadata::origin(resource)];
    for o in extra {
        let url = Url::parse(o).map_err(|_| BuildError::InvalidUrl(o.clone()))?;
        out.push(metadata::origin(&url));
    }
    Ok(out)
}
