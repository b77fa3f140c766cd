//! Per-tool scopes at the HTTP layer: a `tools/call` for a tool whose scopes the token lacks
//! is answered with a 403 `insufficient_scope` challenge before the tool runs, so the client
//! can re-authorize with the wider scope (MCP step-up authorization).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::{
    AuthInfo,
    challenge::{AuthError, Challenge, plain_error},
    layer::merge_scopes,
    tools::ToolScopes,
};

#[derive(Clone)]
pub(crate) struct StepUp {
    pub(crate) scopes: Arc<ToolScopes>,
    pub(crate) challenge: Challenge,
    pub(crate) max_body_bytes: usize,
}

/// The part of a JSON-RPC message this guard needs; everything else is skipped unparsed.
/// Strings are `Cow` so escaped JSON (`"tools\/call"`) parses exactly as rmcp parses it: a
/// borrowed `&str` would fail on escapes and let a scoped call slip past unchecked.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

/// Tools called by a JSON-RPC body (one message, or a batch from 2025-03-26 clients).
///
/// The first byte picks the shape, so the body is parsed once, straight into borrowed fields
/// (an untagged enum would first buffer the whole document into serde's `Content` tree).
fn called_tools(body: &[u8]) -> Vec<String> {
    let tool = |m: Message<'_>| match (m.method.as_deref(), m.params) {
        (Some("tools/call"), Some(Params { name: Some(n) })) => Some(n.into_owned()),
        _ => None,
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<Message<'_>>>(body)
            .map(|ms| ms.into_iter().filter_map(tool).collect())
            .unwrap_or_default(),
        // Not JSON-RPC: rmcp answers it with a parse error.
        _ => serde_json::from_slice::<Message<'_>>(body)
            .ok()
            .and_then(tool)
            .into_iter()
            .collect(),
    }
}

/// Whether the request negotiated a revision (2026-07-28 and later) for which rmcp verifies that
/// the `Mcp-Method`/`Mcp-Name` headers match the body; only then are the headers trusted.
fn headers_are_verified(req: &Request) -> bool {
    req.headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= "2026-07-28")
}

pub(crate) async fn guard(State(step_up): State<StepUp>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(info) = req.extensions().get::<AuthInfo>().cloned() else {
        return next.run(req).await;
    };
    if headers_are_verified(&req) {
        let method = req
            .headers()
            .get("mcp-method")
            .and_then(|v| v.to_str().ok());
        if let Some(method) = method {
            let tool = req.headers().get("mcp-name").and_then(|v| v.to_str().ok());
            return match (method, tool) {
                ("tools/call", Some(tool)) => match refuse(&step_up, &info, [tool]) {
                    Some(r) => r,
                    None => next.run(req).await,
                },
                _ => next.run(req).await,
            };
        }
    }
    // Read the body once (bounded), look, and hand the same bytes on.
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, step_up.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return plain_error(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large or unreadable",
            );
        }
    };
    let tools = called_tools(&bytes);
    if let Some(r) = refuse(&step_up, &info, tools.iter().map(String::as_str)) {
        return r;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refuse<'a>(
    step_up: &StepUp,
    info: &AuthInfo,
    tools: impl IntoIterator<Item = &'a str>,
) -> Option<Response> {
    let mut needed: Vec<String> = Vec::new();
    for tool in tools {
        tracing::Span::current().record("tool", tool);
        let required = step_up.scopes.get(tool);
        if !info.missing_scopes(required).is_empty() {
            needed = merge_scopes(&needed, required);
        }
    }
    if needed.is_empty() {
        return None;
    }
    tracing::debug!(
        user = info.user_id(),
        "tool call refused: insufficient scope"
    );
    let scope = merge_scopes(info.scopes(), &needed);
    Some(
        step_up
            .challenge
            .response(&AuthError::InsufficientScope { scope }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tool_names_in_single_and_batch_messages() {
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin-report","arguments":{}}}"#;
        assert_eq!(called_tools(one), vec!["admin-report"]);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a\u0062"}}]"#;
        assert_eq!(called_tools(batch), vec!["ab"]);
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"admin\u002dreport"}}"#;
        assert_eq!(called_tools(escaped), vec!["admin-report"]);
        assert!(called_tools(b"not json").is_empty());
        assert!(called_tools(br#"{"method":"tools/list"}"#).is_empty());
    }
}
