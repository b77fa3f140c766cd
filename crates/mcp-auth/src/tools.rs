//! Tools: the [`AuthInfo`] extractor for rmcp handlers, closure-registered tools, and the
//! per-tool scope table.

use std::{borrow::Cow, collections::HashMap, future::Future, sync::Arc};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{
        common::{AsRequestContext, FromContextPart},
        tool::{
            IntoCallToolResult, ToolCallContext, ToolRoute, ToolRouter, parse_json_object,
            schema_for_input,
        },
    },
    model::{
        CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
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
    /// Requires `scopes` for `tool`.
    pub fn insert(&mut self, tool: impl Into<String>, scopes: Vec<String>) {
        if scopes.is_empty() {
            return;
        }
        self.by_tool.insert(tool.into(), scopes);
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
    router: ToolRouter<ClosureTools>,
    info: ServerConfig,
    /// For the in-tool scope check, which must agree with the HTTP-level one.
    hierarchy: ScopeHierarchy,
}

impl std::fmt::Debug for ClosureTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosureTools")
            .field(
                "tools",
                &self
                    .shared
                    .router
                    .list_all()
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Collects closure tools before the server is built.
#[derive(Default)]
pub(crate) struct ClosureToolsBuilder {
    router: ToolRouter<ClosureTools>,
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
        let attr = Tool::new(name, description, schema);
        let required: Box<[String]> = required_scopes.into();
        // Everything before the handler's own future runs here, borrowing the route and the
        // server: the identity is taken out of this call's context (which is dropped when this
        // returns) and nothing shared is cloned. Each clone of an `Arc` every request shares is
        // a write to a cache line both runtime workers use (`BENCHMARKS.md`).
        let route = ToolRoute::new_dyn(attr, move |mut ctx: ToolCallContext<'_, ClosureTools>| {
            let prepared = take_auth(&mut ctx.request_context)
                .and_then(|auth| {
                    let missing = ctx
                        .service
                        .shared
                        .hierarchy
                        .missing(auth.scopes(), &required);
                    if missing.is_empty() {
                        Ok(auth)
                    } else {
                        Err(ErrorData::invalid_request(
                            format!(
                                "insufficient scope: this tool requires {}",
                                missing.join(" ")
                            ),
                            None,
                        ))
                    }
                })
                .and_then(|auth| {
                    let args: T = parse_json_object(ctx.arguments.take().unwrap_or_default())?;
                    Ok(handler(args, auth))
                });
            Box::pin(async move { prepared?.await.into_call_tool_result() })
        });
        self.router.add_route(route);
    }

    pub(crate) fn build(self, info: ServerConfig, hierarchy: ScopeHierarchy) -> ClosureTools {
        ClosureTools {
            shared: Arc::new(Shared {
                router: self.router,
                info,
                hierarchy,
            }),
        }
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
            self.shared.router.list_all(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.shared
            .router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.router.get(name).cloned()
    }
}
