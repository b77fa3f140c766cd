//! The access log: one line per MCP request at `info`, target `mcp_auth::access`, with the
//! method, the caller (user and client), the tool, the status and the duration. Never the token.
//!
//! The line is one event written when the response is ready, every field in it. Under this
//! crate's own subscriber (`logging::init`) the same bytes skip the event machinery and go
//! straight to the log writer (`logging::direct`); under any other it is an ordinary event.
//!
//! It used to be an event inside a span carrying the caller and the tool; the span cost a
//! registry entry, its fields formatted up front, and subscriber work on every poll of every
//! task rmcp runs for the request, a third of what the line cost (`BENCHMARKS.md`, "The access
//! line as one event").
//! The span is still there at `debug` (`mcp_auth::access=debug`), for a tool's own events.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{extract::Request, response::Response};
use tracing::{Level, metadata::Kind};

use crate::AuthInfo;

/// The target of the access log. Filter it like any target: `RUST_LOG=info,mcp_auth::access=off`
/// turns it off, `mcp_auth::access=debug` adds each request's span.
pub(crate) const ACCESS: &str = "mcp_auth::access";

/// Where the MCP handler writes the name of the tool it runs, for the access line. Put into the
/// request's extensions only when the line is wanted; rmcp hands those extensions to the handler
/// (in the `http::request::Parts` of its context), where `ScopedToolList::call_tool` fills it.
/// So the line names the tool rmcp actually ran without reading the body a second time.
#[derive(Clone, Default)]
pub(crate) struct CalledTool(Arc<OnceLock<ToolName>>);

impl CalledTool {
    /// Records `name`; the first tool of a batch wins.
    pub(crate) fn record(&self, name: &str) {
        if self.0.get().is_none() {
            let _ = self.0.set(ToolName::new(name));
        }
    }

    fn get(&self) -> Option<&str> {
        self.0.get().map(ToolName::as_str)
    }
}

/// A tool's name as [`CalledTool`] keeps it: inline when it is short, as nearly every name is.
/// It is recorded on the thread that runs the tool and read on the request's: a heap copy
/// would be freed by another thread than the one that allocated it, which glibc's allocator
/// pays for with a lock on that thread's arena.
enum ToolName {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

/// Longest name kept inline, in bytes.
const INLINE_NAME: usize = 62;

impl ToolName {
    fn new(name: &str) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE_NAME => {
                let mut bytes = [0; INLINE_NAME];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(name.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes of a `&str`, whole: never fails.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Self::Heap(name) => name,
        }
    }
}

/// What the access line of an admitted request needs from the request, taken before the
/// request is handed on.
pub(crate) struct Admitted {
    started: Instant,
    method: http::Method,
    caller: Option<AuthInfo>,
    called: CalledTool,
}

impl Admitted {
    /// Takes what the line needs and gives the handler the slot for the tool's name.
    pub(crate) fn new(req: &mut Request, started: Instant) -> Self {
        let called = CalledTool::default();
        req.extensions_mut().insert(called.clone());
        Self {
            started,
            method: req.method().clone(),
            caller: req.extensions().get::<AuthInfo>().cloned(),
            called,
        }
    }

    /// The line. `seen`: the tool the step-up guard found in the request, for a request that
    /// never reached a tool (refused by the guard, a batch that failed to parse).
    pub(crate) fn finished(self, response: &Response, seen: Option<String>) {
        let caller = self.caller.as_ref();
        Line {
            method: &self.method,
            caller: Some(Caller {
                user: caller.map_or("", AuthInfo::user_id),
                client: caller.and_then(AuthInfo::client_id).unwrap_or(""),
                tool: self.called.get().or(seen.as_deref()),
            }),
            status: response.status().as_u16(),
            duration_us: micros(self.started),
        }
        .emit();
    }
}

/// Whether an admitted request's line is wanted: what the filter decides for that line's
/// callsite (its target, level and field names: a directive may name fields, as in
/// `mcp_auth::access[{user}]=info`). Asked once per request, before anything is noted for the
/// line. A refused request's line has a subset of these fields, so it is wanted only if this
/// one is; [`refused`] asks for its own.
pub(crate) fn wanted() -> bool {
    // `kind: EVENT`: `EnvFilter` matches a directive's field names only against an event's.
    tracing::enabled!(
        kind: Kind::EVENT,
        target: ACCESS,
        Level::INFO,
        { message, method, user, client, tool, status, duration_us }
    )
}

/// The line of a request refused before it had an identity (bad Origin, too large, no or a bad
/// token), if [`wanted`] said yes. The reason is logged at `debug` where the refusal is decided.
pub(crate) fn refused(req: &Request, refusal: &Response, started: Instant) {
    if !tracing::enabled!(
        kind: Kind::EVENT,
        target: ACCESS,
        Level::INFO,
        { message, method, status, duration_us }
    ) {
        return;
    }
    Line {
        method: req.method(),
        caller: None,
        status: refusal.status().as_u16(),
        duration_us: micros(started),
    }
    .emit();
}

/// One access line's fields.
pub(crate) struct Line<'a> {
    pub(crate) method: &'a http::Method,
    /// Who called and which tool ran: `None` for a request refused before it had an identity,
    /// whose line has none of the three fields ("request refused").
    pub(crate) caller: Option<Caller<'a>>,
    pub(crate) status: u16,
    pub(crate) duration_us: u64,
}

/// The fields of an admitted request's line ("request finished").
pub(crate) struct Caller<'a> {
    /// Empty for an anonymous request (optional authentication).
    pub(crate) user: &'a str,
    pub(crate) client: &'a str,
    /// Left out of the line when no tool was named.
    pub(crate) tool: Option<&'a str>,
}

impl Line<'_> {
    /// Writes the line, which the filter wants (see [`wanted`]): straight to the log writer
    /// when this crate's own subscriber ([`crate::logging::init`]) is the one in use, else as
    /// a `tracing` event, which any subscriber can filter, format and send where it likes.
    /// The bytes are the same either way.
    pub(crate) fn emit(&self) {
        #[cfg(feature = "logging")]
        if crate::logging::direct::write(self) {
            return;
        }
        match &self.caller {
            Some(caller) => tracing::info!(
                target: ACCESS,
                method = %self.method,
                user = caller.user,
                client = caller.client,
                tool = caller.tool,
                status = self.status,
                duration_us = self.duration_us,
                "request finished"
            ),
            None => tracing::info!(
                target: ACCESS,
                method = %self.method,
                status = self.status,
                duration_us = self.duration_us,
                "request refused"
            ),
        }
    }
}

/// One span per admitted request, at `debug`, with who called and which tool (recorded by the
/// pipeline once the step-up guard has looked): a tool's own events carry it. At the default
/// `info` it is never created. Never the token.
pub(crate) fn request_span(req: &Request) -> tracing::Span {
    // Before the extension look-up the span's fields need: at `info` there is no span.
    if !tracing::level_enabled!(Level::DEBUG) {
        return tracing::Span::none();
    }
    let auth = req.extensions().get::<AuthInfo>();
    tracing::debug_span!(
        target: ACCESS,
        "mcp_request",
        user = auth.map_or("", AuthInfo::user_id),
        client = auth.and_then(AuthInfo::client_id).unwrap_or(""),
        tool = tracing::field::Empty,
    )
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short names are kept inline, long ones on the heap; either way the name comes back
    /// whole, multi-byte characters included, and the first name recorded wins.
    #[test]
    fn a_called_tool_keeps_the_first_name_whole() {
        let short = "caf\u{e9}-whoami";
        let edge = "x".repeat(INLINE_NAME);
        let long = format!("{}\u{1f600}", "y".repeat(INLINE_NAME));
        for name in [short, "", edge.as_str(), long.as_str()] {
            let called = CalledTool::default();
            assert_eq!(called.get(), None);
            called.clone().record(name);
            called.record("second");
            assert_eq!(called.get(), Some(name));
        }
        assert!(matches!(ToolName::new(&edge), ToolName::Inline { .. }));
        assert!(matches!(ToolName::new(&long), ToolName::Heap(_)));
    }
}
