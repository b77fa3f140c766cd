//! The `tools/list` wrapper: every scoped tool carries the scopes it needs, the way ChatGPT's
//! Apps SDK reads them, and (opt-in) each caller sees only the tools its token can call.

use std::{borrow::Cow, future::Future, sync::Arc};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::*,
    service::{MaybeSendFuture, NotificationContext, RequestContext, SubscriptionContext},
};

use crate::{
    AuthInfo,
    access_log::CalledTool,
    scopes::{ScopeHierarchy, advertisable},
    tools::{ToolScopes, auth_from_context},
};

/// Wraps the MCP handler (closure tools or a custom `#[tool_router]` one) so that `tools/list`
/// tells clients which tools need which scopes, and, opt-in, shows each caller only the tools
/// its token can call. Every other request goes to the handler untouched.
///
/// One is made for every stateless request, so its settings are behind one `Arc`.
pub(crate) struct ScopedToolList<H> {
    inner: H,
    listing: Arc<Listing>,
}

/// How `tools/list` answers are marked, shared by every request.
pub(crate) struct Listing {
    pub(crate) scopes: ToolScopes,
    pub(crate) hierarchy: ScopeHierarchy,
    pub(crate) hide_unauthorized: bool,
}

impl<H> ScopedToolList<H> {
    pub(crate) fn new(inner: H, listing: Arc<Listing>) -> Self {
        Self { inner, listing }
    }

    /// Marks the scoped tools of `list` with their `securitySchemes`, drops (when hiding) the
    /// ones `caller` cannot call.
    ///
    /// Where the schemes go is taken from OpenAI's own authenticated Apps SDK example
    /// (`openai/openai-apps-sdk-examples`, `examples/authenticated/server_python/main.py`,
    /// `_list_tools` and `_tool_meta`): each tool carries
    /// `securitySchemes: [{"type": "oauth2", "scopes": [...]}]` both as a field of the tool
    /// object (what the Apps SDK documentation calls the first-class field) and in its `_meta`
    /// (the mirror for clients that read only `_meta`). rmcp's `Tool` (3.11) has no field for
    /// the former and calls this handler through typed results, so `_meta.securitySchemes` is
    /// set here and the pipeline copies it to the tool object in the serialized answer
    /// ([`hoist_security_schemes`]).
    fn mark(
        &self,
        mut list: ListToolsResult,
        caller: Option<&AuthInfo>,
        cache_hints: bool,
    ) -> ListToolsResult {
        if self.listing.hide_unauthorized {
            list.tools.retain(|tool| {
                let required = self.listing.scopes.get(&tool.name);
                required.is_empty()
                    || caller
                        .is_some_and(|c| self.listing.hierarchy.satisfies(c.scopes(), required))
            });
            // The list now depends on who asks: no shared cache may keep it (SEP-2549,
            // 2026-07-28 clients; older ones have no such field).
            if cache_hints {
                list.cache_scope = Some(CacheScope::Private);
            }
        }
        for tool in &mut list.tools {
            let required = self.listing.scopes.get(&tool.name);
            if required.is_empty() {
                continue;
            }
            tool.meta
                .get_or_insert_with(|| MetaObject(serde_json::Map::new()))
                .0
                .insert("securitySchemes".into(), security_schemes(required));
        }
        list
    }
}

/// Copies each listed tool's `_meta.securitySchemes` to a top-level `securitySchemes` field in a
/// serialized `tools/list` answer: a JSON-RPC response (`application/json`) or the SSE events
/// carrying it (`text/event-stream`, session mode). `None` when there is nothing to change (not
/// a tools list, no scoped tool, or not JSON), so the caller sends the original bytes.
pub(crate) fn hoist_security_schemes(body: &[u8], sse: bool) -> Option<Vec<u8>> {
    if !sse {
        return hoist_in_message(body);
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut changed = false;
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if let Some(data) = line.strip_prefix("data:") {
            let (json, end) = match data.strip_suffix("\r\n") {
                Some(json) => (json, "\r\n"),
                None => data
                    .strip_suffix('\n')
                    .map_or((data, ""), |json| (json, "\n")),
            };
            if let Some(new) = hoist_in_message(json.trim_start().as_bytes()) {
                out.push_str("data: ");
                out.push_str(std::str::from_utf8(&new).ok()?);
                out.push_str(end);
                changed = true;
                continue;
            }
        }
        out.push_str(line);
    }
    changed.then(|| out.into_bytes())
}

fn hoist_in_message(json: &[u8]) -> Option<Vec<u8>> {
    let mut message: serde_json::Value = serde_json::from_slice(json).ok()?;
    let tools = message
        .get_mut("result")?
        .get_mut("tools")?
        .as_array_mut()?;
    let mut changed = false;
    for tool in tools {
        let Some(schemes) = tool
            .get("_meta")
            .and_then(|meta| meta.get("securitySchemes"))
            .cloned()
        else {
            continue;
        };
        if let Some(tool) = tool.as_object_mut()
            && !tool.contains_key("securitySchemes")
        {
            tool.insert("securitySchemes".into(), schemes);
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    serde_json::to_vec(&message).ok()
}

/// `[{"type": "oauth2", "scopes": [...]}]` for a tool needing `required`.
fn security_schemes(required: &[String]) -> serde_json::Value {
    let scopes: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|s| advertisable(s))
        .collect();
    serde_json::json!([{ "type": "oauth2", "scopes": scopes }])
}

// Every method is forwarded to the wrapped handler, `list_tools` after it is marked up.
// Deprecated ones (logging, legacy subscriptions) too: clients of older revisions still use
// them.
#[allow(deprecated)]
impl<H: ServerHandler> ServerHandler for ScopedToolList<H> {
    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.initialize(request, context)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.discover(context)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.complete(request, context)
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.set_level(request, context)
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_prompt(request, context)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_prompts(request, context)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_resources(request, context)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.list_resource_templates(request, context)
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.read_resource(request, context)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    fn listen(
        &self,
        context: SubscriptionContext,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.listen(context)
    }

    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.subscribe(request, context)
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.unsubscribe(request, context)
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        // Names the tool on the request's access line. The slot is there only when the line is
        // wanted, which it cannot be while nothing at `info` is (a server at `warn`): then the
        // two extension look-ups are skipped. Only the global level is asked here, one load;
        // the filter itself was asked when the slot was made.
        if tracing::level_enabled!(tracing::Level::INFO)
            && let Some(called) = context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<CalledTool>())
        {
            called.record(&request.name);
        }
        self.inner.call_tool(request, context)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        if self.listing.scopes.is_empty() {
            return self.inner.list_tools(request, context).await;
        }
        let caller = auth_from_context(&context);
        let cache_hints = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        let list = self.inner.list_tools(request, context).await?;
        Ok(self.mark(list, caller.as_ref(), cache_hints))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(notification, context)
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(notification, context)
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_initialized(context)
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_roots_list_changed(context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_task(request, context)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.update_task(request, context)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.cancel_task(request, context)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_skills(request, context)
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_skill(request, context)
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.read_resource_directory(request, context)
    }
}
