//! The step-up guard against rmcp's own parser: whenever rmcp would run a guarded request
//! (today `tools/call`) for a scoped name, the guard must have seen that name. Otherwise the
//! call runs without its scope check (the bypass fixed in ca2c009 was one such body).
//!
//! rmcp's Streamable HTTP server reads a POST body with
//! `serde_json::from_slice::<ClientJsonRpcMessage>` (rmcp 3.11,
//! `src/transport/common/server_side_http.rs`, `expect_json`, line 256) and dispatches a
//! `JsonRpcMessage::Request`; it has no batch support, so a batch never reaches a tool. The
//! oracle below does exactly that parse.
//!
//! Adding a guarded method (issue 12: `resources/read`, `prompts/get`) is one arm in
//! [`rmcp_view`] and one line in [`guard_view`].
//!
//! With the feature `guard-before-ca2c009` the guard is the copy of its pre-ca2c009 version.
#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mcp_auth::rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use mcp_auth_fuzz::json::{Body, Style, render};

/// Scoped names: plain, one letter, non-ASCII (escapes and surrogates), with a `/`.
const SCOPED: &[&str] = &[
    "admin-report",
    "a",
    "r\u{e9}sum\u{e9}-\u{1f512}",
    "ops/reboot",
];

/// A request the guard has to check before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Guarded {
    Tool(String),
}

/// What rmcp would run for this body.
fn rmcp_view(body: &[u8]) -> Vec<Guarded> {
    let Ok(JsonRpcMessage::Request(request)) = serde_json::from_slice::<ClientJsonRpcMessage>(body)
    else {
        return Vec::new();
    };
    match request.request {
        ClientRequest::CallToolRequest(call) => vec![Guarded::Tool(call.params.name.into_owned())],
        _ => Vec::new(),
    }
}

#[cfg(not(feature = "guard-before-ca2c009"))]
fn guard_view(body: &[u8]) -> Vec<Guarded> {
    static GUARD: LazyLock<mcp_auth::__fuzz::StepUpGuard> =
        LazyLock::new(|| mcp_auth::__fuzz::StepUpGuard::new(SCOPED.iter().copied()).unwrap());
    GUARD
        .tools_seen(body)
        .into_iter()
        .map(Guarded::Tool)
        .collect()
}

#[cfg(feature = "guard-before-ca2c009")]
fn guard_view(body: &[u8]) -> Vec<Guarded> {
    mcp_auth_fuzz::guard_before_ca2c009::called_tools(body)
        .into_iter()
        .map(Guarded::Tool)
        .collect()
}

fn is_scoped(g: &Guarded) -> bool {
    match g {
        Guarded::Tool(name) => SCOPED.contains(&name.as_str()),
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
            Some(render(&body, &style, SCOPED))
        }
        _ => Some(data.to_vec()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(body) = body(data) else {
        return;
    };
    let runs = rmcp_view(&body);
    if !runs.iter().any(is_scoped) {
        return;
    }
    let seen = guard_view(&body);
    for run in runs.iter().filter(|r| is_scoped(r)) {
        assert!(
            seen.contains(run),
            "rmcp runs {run:?} but the guard saw {seen:?}; body: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
});
