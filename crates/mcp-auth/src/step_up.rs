//! Per-tool scopes at the HTTP layer: a `tools/call` for a tool whose scopes the token lacks
//! is answered with a 403 `insufficient_scope` challenge before the tool runs, so the client
//! can re-authorize with the wider scope (MCP step-up authorization).
//!
//! The challenge follows MCP 2026-07-28 (SEP-2350;
//! `docs/specification/2026-07-28/basic/authorization/index.mdx` in
//! `modelcontextprotocol/modelcontextprotocol`, § Scope Challenge Handling): "servers **SHOULD**
//! include all scopes required for the current operation in a single challenge". For a batch
//! the operation is every call in it, so one 403 names the union of the scopes of every scoped
//! tool the batch calls (not only the ones found missing first), and a client that steps up
//! once can run the whole batch.

use axum::{body::Body, extract::Request, response::Response};
use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::{
    AuthInfo,
    challenge::{AuthError, Challenge, plain_error},
    layer::merge_scopes,
    scopes::ScopeHierarchy,
    tools::ToolScopes,
};

pub(crate) struct StepUp {
    scopes: ToolScopes,
    hierarchy: ScopeHierarchy,
    /// One substring searcher per scoped tool name, for [`StepUp::may_call_scoped_tool`].
    scoped_names: Vec<memchr::memmem::Finder<'static>>,
    challenge: Challenge,
    max_body_bytes: usize,
}

impl StepUp {
    /// `None` when no tool has scopes: then there is nothing to check.
    pub(crate) fn new(
        scopes: ToolScopes,
        hierarchy: ScopeHierarchy,
        challenge: Challenge,
        max_body_bytes: usize,
    ) -> Option<Self> {
        if scopes.is_empty() {
            return None;
        }
        let scoped_names = scopes
            .names()
            .map(|name| memchr::memmem::Finder::new(name.as_bytes()).into_owned())
            .collect();
        Some(Self {
            scopes,
            hierarchy,
            scoped_names,
            challenge,
            max_body_bytes,
        })
    }
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

impl StepUp {
    /// Refuses (403 `insufficient_scope`) a `tools/call` for a tool whose scopes the caller's
    /// token lacks. Otherwise hands the request back, its body re-assembled from the bytes read.
    /// `traced`: the request's span is recorded, so the called tool is always looked up for it.
    pub(crate) async fn check(&self, req: Request, traced: bool) -> Result<Request, Response> {
        if req.method() != Method::POST {
            return Ok(req);
        }
        let Some(info) = req.extensions().get::<AuthInfo>() else {
            return Ok(req);
        };
        if headers_are_verified(&req) {
            let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
            if let Some(method) = header("mcp-method") {
                if let ("tools/call", Some(tool)) = (method, header("mcp-name"))
                    && let Some(refusal) = refuse(self, info, req.headers(), [tool])
                {
                    return Err(refusal);
                }
                return Ok(req);
            }
        }
        // Read the body once (bounded), look, and hand the same bytes on.
        let (parts, body) = req.into_parts();
        let bytes = match http_body_util::Limited::new(body, self.max_body_bytes)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return Err(plain_error(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "request body too large or unreadable",
                ));
            }
        };
        let tools = self.tools_in_body(&bytes, traced);
        if let Some(info) = parts.extensions.get::<AuthInfo>()
            && let Some(refusal) =
                refuse(self, info, &parts.headers, tools.iter().map(String::as_str))
        {
            return Err(refusal);
        }
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }

    /// The tools a body calls, as far as the guard needs to know: parsing is skipped when it
    /// cannot change the outcome (no scoped tool can be named in the body and nobody listens
    /// for the span's `tool` field).
    pub(crate) fn tools_in_body(&self, body: &[u8], traced: bool) -> Vec<String> {
        if traced || self.may_call_scoped_tool(body) {
            called_tools(body)
        } else {
            Vec::new()
        }
    }

    /// Whether `body` can possibly call a scoped tool. JSON spells a string's characters
    /// either literally or with a `\` escape, so a body that has no backslash and does not
    /// contain a scoped tool's name verbatim cannot name that tool anywhere.
    fn may_call_scoped_tool(&self, body: &[u8]) -> bool {
        memchr::memchr(b'\\', body).is_some()
            || self
                .scoped_names
                .iter()
                .any(|finder| finder.find(body).is_some())
    }
}

/// The 403 for a request calling `tools`, if the token lacks a scope one of them needs. The
/// challenge names the scopes of every scoped tool called (SEP-2350: all scopes of the
/// operation in one challenge), after those already granted, so a client that replaces its
/// scope set with the challenge's (rather than adding to it) keeps what it had.
fn refuse<'a>(
    step_up: &StepUp,
    info: &AuthInfo,
    headers: &http::HeaderMap,
    tools: impl IntoIterator<Item = &'a str>,
) -> Option<Response> {
    let mut operation: Vec<String> = Vec::new();
    let mut refused = false;
    for tool in tools {
        tracing::Span::current().record("tool", tool);
        let required = step_up.scopes.get(tool);
        if required.is_empty() {
            continue;
        }
        refused |= !step_up.hierarchy.satisfies(info.scopes(), required);
        operation = merge_scopes(&operation, required);
    }
    if !refused {
        return None;
    }
    tracing::debug!(
        user = info.user_id(),
        "tool call refused: insufficient scope"
    );
    let scope = merge_scopes(info.scopes(), &operation);
    Some(
        step_up
            .challenge
            .response_to(&AuthError::InsufficientScope { scope }, headers),
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

    /// The input `fuzz/` target `step_up_differential` found against the guard as it was before
    /// ca2c009 (from an empty corpus, in 46,489 executions): rmcp decodes `tools\/call` and runs
    /// the tool; the guard must see the call too, through the same path a request takes.
    #[test]
    fn sees_the_call_the_fuzzer_found_behind_an_escaped_method() {
        let name = "résumé-🔒";
        let mut scopes = ToolScopes::default();
        scopes.insert(name, vec!["admin:read".into()]);
        let step_up =
            StepUp::new(scopes, ScopeHierarchy::exact(), Challenge::bare(), 1024).unwrap();
        let body = r#"{"method":"tools\/call","params":{"name":"résumé-🔒"},"jsonrpc":"2.0","id":5136151966242003967}"#;
        assert_eq!(step_up.tools_in_body(body.as_bytes(), false), vec![name]);
    }

    #[test]
    fn skips_parsing_only_when_no_scoped_tool_can_be_named() {
        let mut scopes = ToolScopes::default();
        scopes.insert("admin-report", vec!["admin:read".into()]);
        let step_up = StepUp::new(
            scopes,
            ScopeHierarchy::default(),
            Challenge::new("http://x/m"),
            1024,
        )
        .unwrap();
        let whoami =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#;
        assert!(!step_up.may_call_scoped_tool(whoami));
        let literal = br#"{"method":"tools/call","params":{"name":"admin-report"}}"#;
        assert!(step_up.may_call_scoped_tool(literal));
        // Any escape forces the parse: `\u002d` is the `-` of `admin-report`.
        let escaped = br#"{"method":"tools/call","params":{"name":"admin\u002dreport"}}"#;
        assert!(step_up.may_call_scoped_tool(escaped));
        assert!(
            StepUp::new(
                ToolScopes::default(),
                ScopeHierarchy::default(),
                Challenge::new("http://x/m"),
                1
            )
            .is_none()
        );
    }
}
