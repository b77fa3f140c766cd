//! The step-up guard against rmcp itself: whenever rmcp would run a guarded request
//! (`tools/call`, `prompts/get`, `resources/read`, `resources/subscribe`/`unsubscribe`, or a
//! 2026-07-28 `subscriptions/listen` following resources) for something scoped, the guard
//! must have seen it. Otherwise the handler runs without its scope check (the bypass fixed in ca2c009
//! was one such body).
//!
//! Two oracles, by the first input byte:
//!
//! - Any input not starting with 0xFE is a body (0xFF: a structured one, see [`body`]),
//!   compared with rmcp's own parse. rmcp's Streamable HTTP server reads a POST body with
//!   `serde_json::from_slice::<ClientJsonRpcMessage>` (rmcp 3.11,
//!   `src/transport/common/server_side_http.rs`, `expect_json`) and dispatches a
//!   `JsonRpcMessage::Request`; it has no batch support, so a batch never reaches a handler.
//!   [`rmcp_view`] does exactly that parse.
//! - 0xFE: headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, possibly repeated,
//!   possibly `=?base64?…?=`) and a structured body, sent through the whole server (mcp-auth's
//!   pipeline and rmcp's Streamable HTTP service) with a token holding no scope. The handler
//!   behind it records what it ran; anything scoped it ran is a bypass. No model of rmcp's
//!   header rules: rmcp itself decides whether the headers agree with the body.
//!
//! With the feature `guard-before-ca2c009` the guard of the first oracle is the copy of its
//! pre-ca2c009 version (tools only).
#![no_main]

use std::{cell::RefCell, sync::LazyLock};

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use mcp_auth::{
    __fuzz::{Requested, StepUpGuard},
    AuthInfo, McpServer, TokenKind,
    rmcp::{
        ErrorData, RoleServer, ServerHandler,
        model::{
            CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage,
            ClientRequest, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
            JsonRpcMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
            ServerCapabilities, ServerConfig, SubscriptionFilter,
        },
        service::{RequestContext, SubscriptionContext},
    },
};
use mcp_auth_fuzz::json::{Body, Style, Text, render};
use tower::ServiceExt;

/// Scoped tool names: plain, one letter, non-ASCII (escapes and surrogates), with a `/`.
const TOOLS: &[&str] = &[
    "admin-report",
    "a",
    "r\u{e9}sum\u{e9}-\u{1f512}",
    "ops/reboot",
];
/// Scoped prompt names (one shared with a tool).
const PROMPTS: &[&str] = &["incident", "a"];
/// Scoped resource patterns: a prefix, a URI with what continues it, a non-ASCII prefix.
const RESOURCES: &[&str] = &["file:///secret/", "db://users", "x://\u{e9}/"];
/// What `Text::Scoped` picks from: every scoped name and some URIs under (and beside) the
/// patterns, so bodies hit them often.
const PICKS: &[&str] = &[
    "admin-report",
    "a",
    "r\u{e9}sum\u{e9}-\u{1f512}",
    "ops/reboot",
    "incident",
    "file:///secret/",
    "file:///secret/k",
    "file:///secretx",
    "db://users",
    "db://users/1",
    "db://users?x",
    "db://users_archive",
    "x://\u{e9}/y",
];

static GUARD: LazyLock<StepUpGuard> = LazyLock::new(|| {
    StepUpGuard::with(
        TOOLS.iter().copied(),
        PROMPTS.iter().copied(),
        RESOURCES.iter().copied(),
    )
    .unwrap()
});

/// What rmcp would run for this body.
fn rmcp_view(body: &[u8]) -> Vec<Requested> {
    let Ok(JsonRpcMessage::Request(request)) = serde_json::from_slice::<ClientJsonRpcMessage>(body)
    else {
        return Vec::new();
    };
    match request.request {
        ClientRequest::CallToolRequest(r) => vec![Requested::Tool(r.params.name.into_owned())],
        ClientRequest::GetPromptRequest(r) => vec![Requested::Prompt(r.params.name)],
        ClientRequest::ReadResourceRequest(r) => vec![Requested::Resource(r.params.uri)],
        ClientRequest::SubscribeRequest(r) => vec![Requested::Resource(r.params.uri)],
        ClientRequest::UnsubscribeRequest(r) => vec![Requested::Resource(r.params.uri)],
        // rmcp hands the whole filter to `accepted_subscription_filter` (3.11,
        // `src/handler/server.rs`).
        ClientRequest::SubscriptionsListenRequest(r) => r
            .params
            .notifications
            .resource_subscriptions
            .unwrap_or_default()
            .into_iter()
            .map(Requested::Resource)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(not(feature = "guard-before-ca2c009"))]
fn guard_view(body: &[u8]) -> Vec<Requested> {
    GUARD.seen(&http::HeaderMap::new(), body)
}

#[cfg(feature = "guard-before-ca2c009")]
fn guard_view(body: &[u8]) -> Vec<Requested> {
    mcp_auth_fuzz::guard_before_ca2c009::called_tools(body)
        .into_iter()
        .map(Requested::Tool)
        .collect()
}

/// The headers of a request in the second oracle.
#[derive(Arbitrary, Debug)]
struct Headers {
    /// 0: none, 1: 2025-11-25, 2 and 3: 2026-07-28, 4: a later revision.
    version: u8,
    methods: Vec<Text>,
    /// Each `Mcp-Name`, and whether it is sent as `=?base64?…?=`.
    names: Vec<(Text, bool)>,
}

fn text(t: &Text) -> String {
    match t {
        Text::Known(i) => {
            mcp_auth_fuzz::json::KNOWN[*i as usize % mcp_auth_fuzz::json::KNOWN.len()].to_owned()
        }
        Text::Scoped(i) => PICKS[*i as usize % PICKS.len()].to_owned(),
        Text::Any(s) => s.clone(),
    }
}

thread_local! {
    /// What the handler ran during the current input.
    static RAN: RefCell<Vec<Requested>> = const { RefCell::new(Vec::new()) };
}

/// Serves any tool, prompt and resource, and records each it serves.
#[derive(Clone)]
struct Recorder;

impl ServerHandler for Recorder {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        RAN.with(|r| {
            r.borrow_mut()
                .push(Requested::Tool(request.name.into_owned()))
        });
        Ok(CallToolResult::success(Vec::new()).into())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        RAN.with(|r| r.borrow_mut().push(Requested::Prompt(request.name)));
        Ok(GetPromptResult::new(Vec::new()).into())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        RAN.with(|r| r.borrow_mut().push(Requested::Resource(request.uri)));
        Ok(ReadResourceResult::new(Vec::new()).into())
    }

    /// Accepts every resource a `subscriptions/listen` asks to follow: each counts as run.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        RAN.with(|r| {
            r.borrow_mut().extend(
                requested
                    .resource_subscriptions
                    .iter()
                    .flatten()
                    .cloned()
                    .map(Requested::Resource),
            )
        });
        Some(requested.clone())
    }

    /// Ends the stream at once, so the request completes.
    async fn listen(&self, _: SubscriptionContext) -> Result<(), ErrorData> {
        Ok(())
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// The whole server: every scoped item needs `fuzz:scope`, the token has no scope.
static APP: LazyLock<axum::Router> = LazyLock::new(|| {
    let mut builder = McpServer::builder("http://127.0.0.1/mcp")
        .authorization_server("https://issuer.test")
        .legacy_authorization_server_metadata(false)
        .verifier(|_: &str| async {
            Ok::<_, mcp_auth::VerifyError>(
                AuthInfo::builder("user_fuzz", TokenKind::OAuthAccessToken).build(),
            )
        });
    for t in TOOLS {
        builder = builder.tool_scopes(*t, ["fuzz:scope"]);
    }
    for p in PROMPTS {
        builder = builder.prompt_scopes(*p, ["fuzz:scope"]);
    }
    for r in RESOURCES {
        builder = builder.resource_scopes(*r, ["fuzz:scope"]);
    }
    builder.build_with(|| Ok(Recorder)).unwrap()
});

/// Sends `body` with `headers` through the whole server; panics if a scoped handler ran.
fn through_the_server(headers: &Headers, body: Vec<u8>) {
    let mut req = http::Request::post("http://127.0.0.1/mcp")
        .header("host", "127.0.0.1")
        .header("authorization", "Bearer fuzz")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    match headers.version % 5 {
        1 => req = req.header("mcp-protocol-version", "2025-11-25"),
        2 | 3 => req = req.header("mcp-protocol-version", "2026-07-28"),
        4 => req = req.header("mcp-protocol-version", "2099-01-01"),
        _ => {}
    }
    for m in headers.methods.iter().take(3) {
        if let Ok(v) = http::HeaderValue::from_bytes(text(m).as_bytes()) {
            req = req.header("mcp-method", v);
        }
    }
    for (n, b64) in headers.names.iter().take(3) {
        let n = text(n);
        let value = if *b64 {
            format!(
                "=?base64?{}?=",
                base64::engine::general_purpose::STANDARD.encode(n.as_bytes())
            )
        } else {
            n
        };
        if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
            req = req.header("mcp-name", v);
        }
    }
    let Ok(req) = req.body(axum::body::Body::from(body.clone())) else {
        return;
    };
    RAN.with(|r| r.borrow_mut().clear());
    let status = RUNTIME.block_on(async {
        let resp = APP.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        // The handler runs before the JSON answer is complete: read it all.
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        status
    });
    let ran = RAN.with(|r| r.borrow().clone());
    for item in ran.iter().filter(|i| GUARD.is_scoped(i)) {
        panic!(
            "the server ran {item:?} (status {status}) without its scope; headers: {headers:?}; body: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Input bytes starting with 0xFF describe a structured message (the rest, through
/// `arbitrary`), spelled in one of many ways; any other input is the body as it is, so seeds
/// are plain JSON and libFuzzer's byte mutations and the dictionary do the work.
fn body(data: &[u8]) -> Option<Vec<u8>> {
    match data.split_first() {
        Some((0xFF, rest)) => {
            let mut u = Unstructured::new(rest);
            let (body, style) = <(Body, Style)>::arbitrary(&mut u).ok()?;
            Some(render(&body, &style, PICKS))
        }
        _ => Some(data.to_vec()),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((0xFE, rest)) = data.split_first() {
        let mut u = Unstructured::new(rest);
        let Ok((headers, body, style)) = <(Headers, Body, Style)>::arbitrary(&mut u) else {
            return;
        };
        through_the_server(&headers, render(&body, &style, PICKS));
        return;
    }
    let Some(body) = body(data) else {
        return;
    };
    let runs = rmcp_view(&body);
    if !runs.iter().any(|r| GUARD.is_scoped(r)) {
        return;
    }
    let seen = guard_view(&body);
    for run in runs.iter().filter(|r| GUARD.is_scoped(r)) {
        assert!(
            seen.contains(run),
            "rmcp runs {run:?} but the guard saw {seen:?}; body: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
});
