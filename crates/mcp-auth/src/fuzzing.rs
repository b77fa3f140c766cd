//! Internals the fuzz targets in `fuzz/` drive directly. Only compiled with the `fuzzing`
//! feature; not part of the API, no stability promise.

use http::HeaderMap;
use url::Url;

use crate::{ScopeHierarchy, challenge::Challenge, step_up::StepUp, tools::ToolScopes};

/// The step-up guard with one scope per named tool, as `McpServerBuilder` builds it.
pub struct StepUpGuard(StepUp);

impl StepUpGuard {
    /// A guard for `scoped` tool names; `None` when the list is empty (no guard is built then).
    pub fn new<'a>(scoped: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut scopes = ToolScopes::default();
        for name in scoped {
            scopes.insert(name, vec!["fuzz:scope".to_owned()]);
        }
        StepUp::new(
            scopes,
            ScopeHierarchy::exact(),
            Challenge::bare(),
            usize::MAX,
        )
        .map(Self)
    }

    /// The tools the guard checks for `body` (a request whose span is not recorded, so the
    /// fast path that skips parsing is taken whenever it applies).
    pub fn tools_seen(&self, body: &[u8]) -> Vec<String> {
        self.0.tools_in_body(body, false)
    }
}

/// The public origin a request's `Forwarded`/`X-Forwarded-*` headers name, if valid.
pub fn forwarded_origin(headers: &HeaderMap) -> Option<String> {
    crate::metadata::forwarded_origin(headers)
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &Url) -> String {
    crate::metadata::origin(url)
}
