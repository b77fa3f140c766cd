//! The step-up guard's body reading as it was before commit ca2c009 ("Step-up guard: decode
//! escaped JSON like rmcp does"), copied verbatim from `crates/mcp-auth/src/step_up.rs` at
//! ca2c009^. It read `method` as a borrowed `&str`, which serde_json cannot produce for an
//! escaped string, so `"tools\/call"` failed to parse and the guard saw no call. Kept only to
//! show that `step_up_differential` finds that bypass (feature `guard-before-ca2c009`).

use serde::Deserialize;

/// The part of a JSON-RPC message this guard needs; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    method: Option<&'a str>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Messages<'a> {
    #[serde(borrow)]
    One(Message<'a>),
    #[serde(borrow)]
    Batch(Vec<Message<'a>>),
}

/// Tools called by a JSON-RPC body (one message, or a batch from 2025-03-26 clients).
pub fn called_tools(body: &[u8]) -> Vec<String> {
    let tool = |m: Message<'_>| match (m.method, m.params) {
        (Some("tools/call"), Some(Params { name: Some(n) })) => Some(n.into_owned()),
        _ => None,
    };
    match serde_json::from_slice::<Messages<'_>>(body) {
        Ok(Messages::One(m)) => tool(m).into_iter().collect(),
        Ok(Messages::Batch(ms)) => ms.into_iter().filter_map(tool).collect(),
        // Not JSON-RPC: rmcp answers it with a parse error.
        Err(_) => Vec::new(),
    }
}
