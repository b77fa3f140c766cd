//! Tools: the [`AuthInfo`] extractor for rmcp handlers, closure-registered tools, and the
//! per-tool scope table.

use std::{borrow::Cow, collections::HashMap, future::Future, pin::Pin, sync::Arc};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{
        common::{AsRequestContext, FromContextPart},
        tool::{IntoCallToolResult, parse_json_object, schema_for_input},
    },
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
        Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
        ServerConfig, Tool,
    },
    service::{MaybeSendFuture, RequestContext},
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{AuthInfo, scopes::ScopeHierarchy};

/// `AuthInfo` as an rmcp handler argument: a `#[tool]` method (or a prompt) can take
/// `auth: AuthInfo` and receives the verified caller.
///
/// rmcp copies the HTTP request's `Parts` into the handler context; the auth middleware put the
/// `AuthInfo` into those parts' extensions. A handler reached without authentication (an
/// optional-mode layer and an anonymous caller) gets an `invalid_request` error, never a
/// default identity.
impl<C: AsRequestContext> FromContextPart<C> for AuthInfo {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        auth_from_context(context.as_request_context()).ok_or_else(unauthenticated)
    }
}

/// Takes the `AuthInfo` out of a context that is about to be dropped: no clone.
fn take_auth(context: &mut RequestContext<RoleServer>) -> Result<AuthInfo, ErrorData> {
    context
        .extensions
        .get_mut::<http::request::Parts>()
        .and_then(|parts| parts.extensions.remove::<AuthInfo>())
        .ok_or_else(unauthenticated)
}

fn unauthenticated() -> ErrorData {
    ErrorData::invalid_request("this tool requires an authenticated caller", None)
}

/// The `AuthInfo` of the request behind an rmcp context, if any.
#[must_use]
pub fn auth_from_context(context: &RequestContext<RoleServer>) -> Option<AuthInfo> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<AuthInfo>())
        .cloned()
}

/// Scopes each tool needs, by tool name. Checked at the HTTP layer before the tool runs (so the
/// client gets a 403 step-up challenge) and again inside closure tools.
#[derive(Debug, Clone, Default)]
pub struct ToolScopes {
    by_tool: HashMap<String, Vec<String>>,
}

impl ToolScopes {
    /// Requires `scopes` for `tool`, in place of whatever an earlier call required for it; an
    /// empty list leaves `tool` needing no scope. (A tool registered again replaces the earlier
    /// one, its scopes included: keeping the old requirement would make the HTTP-level guard
    /// ask for more than the tool that now runs.)
    pub fn insert(&mut self, tool: impl Into<String>, scopes: Vec<String>) {
        let tool = tool.into();
        if scopes.is_empty() {
            self.by_tool.remove(&tool);
        } else {
            self.by_tool.insert(tool, scopes);
        }
    }

    /// The scopes `tool` needs (empty when none).
    #[must_use]
    pub fn get(&self, tool: &str) -> &[String] {
        self.by_tool.get(tool).map_or(&[], Vec::as_slice)
    }

    /// The tools that need a scope.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_tool.keys().map(String::as_str)
    }

    /// Whether any tool needs a scope at all (when not, requests are not inspected).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_tool.is_empty()
    }
}

/// An MCP server made of closure-registered tools (built by
/// [`McpServerBuilder::tool`](crate::McpServerBuilder::tool)).
///
/// Cloning it (once per stateless request) is one reference-count increment.
#[derive(Clone)]
pub struct ClosureTools {
    shared: Arc<Shared>,
}

struct Shared {
    /// Sorted by name (the order `tools/list` answers in), one per name.
    routes: Box<[Route]>,
    info: ServerConfig,
    /// For the in-tool scope check, which must agree with the HTTP-level one.
    hierarchy: ScopeHierarchy,
}

/// One closure tool: what `tools/list` says of it, the scopes it needs, and its handler.
///
/// The tools are called from here rather than through rmcp's `ToolRouter`: a `tools/call`
/// then crosses one dynamic call instead of the router's future, its name hashing and its
/// `ToolCallContext`, code every request runs cold in the instruction cache
/// (`BENCHMARKS.md`, "The tool called directly").
struct Route {
    tool: Tool,
    required: Box<[String]>,
    call: Box<CallHandler>,
}

/// A tool's handler, erased: the call's arguments (not yet parsed) and the caller in, the
/// answer out.
type CallHandler = dyn Fn(JsonObject, AuthInfo) -> Answer + Send + Sync;

type Answer = Pin<Box<dyn Future<Output = Result<CallToolResponse, ErrorData>> + Send>>;

impl std::fmt::Debug for ClosureTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosureTools")
            .field(
                "tools",
                &self
                    .shared
                    .routes
                    .iter()
                    .map(|route| &route.tool.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Collects closure tools before the server is built.
#[derive(Default)]
pub(crate) struct ClosureToolsBuilder {
    routes: Vec<Route>,
}

impl ClosureToolsBuilder {
    pub(crate) fn add<T, F, Fut, R>(
        &mut self,
        name: Cow<'static, str>,
        description: Cow<'static, str>,
        required_scopes: Vec<String>,
        handler: F,
    ) where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(T, AuthInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoCallToolResult,
    {
        let schema = schema_for_input::<T>().unwrap_or_else(|_| {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), "object".into());
            Arc::new(object)
        });
        let tool = Tool::new(name, description, schema);
        let call = move |arguments: JsonObject, auth: AuthInfo| -> Answer {
            match parse_json_object::<T>(arguments) {
                Ok(args) => {
                    let running = handler(args, auth);
                    Box::pin(async move {
                        argument_error_as_result(running.await.into_call_tool_result())
                    })
                }
                Err(error) => Box::pin(std::future::ready(argument_error_as_result(Err(error)))),
            }
        };
        let route = Route {
            tool,
            required: required_scopes.into(),
            call: Box::new(call),
        };
        // A name registered again replaces the earlier tool, as rmcp's router does.
        match self
            .routes
            .binary_search_by(|r| r.tool.name.as_ref().cmp(route.tool.name.as_ref()))
        {
            Ok(at) => self.routes[at] = route,
            Err(at) => self.routes.insert(at, route),
        }
    }

    pub(crate) fn build(self, info: ServerConfig, hierarchy: ScopeHierarchy) -> ClosureTools {
        ClosureTools {
            shared: Arc::new(Shared {
                routes: self.routes.into(),
                info,
                hierarchy,
            }),
        }
    }
}

/// Arguments that do not deserialize are answered with a tool result marked `isError` (which
/// the model can read and correct), not a protocol error: what rmcp's router does with the
/// error `parse_json_object` makes (rmcp 3.11, `src/handler/server/router/tool.rs`,
/// `into_tool_argument_error`, lines 144–156), whether the parsing or the handler returned it.
fn argument_error_as_result(
    result: Result<CallToolResponse, ErrorData>,
) -> Result<CallToolResponse, ErrorData> {
    match result {
        Err(error)
            if error.code == ErrorCode::INVALID_PARAMS
                && error
                    .message
                    .starts_with("failed to deserialize parameters:") =>
        {
            Ok(CallToolResult::error(vec![ContentBlock::text(error.message)]).into())
        }
        result => result,
    }
}

impl Shared {
    fn route(&self, name: &str) -> Option<&Route> {
        self.routes
            .binary_search_by(|r| r.tool.name.as_ref().cmp(name))
            .ok()
            .map(|at| &self.routes[at])
    }
}

/// The `ServerConfig` used when the builder is not given one.
pub(crate) fn default_info(name: &str) -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(Implementation::new(name, env!("CARGO_PKG_VERSION")))
}

impl ServerHandler for ClosureTools {
    fn get_info(&self) -> ServerConfig {
        self.shared.info.clone()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.shared.routes.iter().map(|r| r.tool.clone()).collect(),
        ))
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, ErrorData>> + MaybeSendFuture + '_ {
        // Everything before the handler's own future runs here: the identity is taken out of
        // this call's context (dropped when this returns) and nothing shared is cloned. Each
        // clone of an `Arc` every request shares is a write to a cache line both runtime
        // workers use (`BENCHMARKS.md`).
        let running = match self.shared.route(&request.name) {
            // rmcp's router's answer to an unknown name (rmcp 3.11,
            // `src/handler/server/router/tool.rs`, `ToolRouter::call`, lines 560–579).
            None => Err(ErrorData::invalid_params("tool not found", None)),
            Some(route) => take_auth(&mut context).and_then(|auth| {
                let missing = self
                    .shared
                    .hierarchy
                    .missing(auth.scopes(), &route.required);
                if missing.is_empty() {
                    Ok((route.call)(request.arguments.unwrap_or_default(), auth))
                } else {
                    Err(ErrorData::invalid_request(
                        format!(
                            "insufficient scope: this tool requires {}",
                            missing.join(" ")
                        ),
                        None,
                    ))
                }
            }),
        };
        async move { running?.await }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.route(name).map(|r| r.tool.clone())
    }
}
