//! Scope rules shared by every check: the optional [`ScopeHierarchy`] (a broader scope
//! satisfying narrower ones) and the `offline_access` rule for challenges and metadata.
//!
//! Both come from the MCP authorization specification, revision 2026-07-28
//! (`docs/specification/2026-07-28/basic/authorization/index.mdx` in
//! `modelcontextprotocol/modelcontextprotocol`): "Servers **MUST** account for scope
//! hierarchies, where a broader scope implies narrower ones, when deciding whether a token is
//! sufficient for an operation" (§ Step-Up Authorization Flow), and "MCP Servers **SHOULD NOT**
//! include `offline_access` in `WWW-Authenticate` scope or Protected Resource Metadata
//! `scopes_supported`, as refresh tokens are not a resource requirement" (§ Refresh Tokens).

use std::collections::HashMap;

/// The OpenID Connect scope that asks for a refresh token. It is a matter between the client
/// and the authorization server, never something a resource needs, so it is left out of every
/// challenge and of `scopes_supported` even when configured.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Whether `scope` may be advertised by a resource (in a challenge or in `scopes_supported`).
pub(crate) fn advertisable(scope: &str) -> bool {
    scope != OFFLINE_ACCESS
}

/// Which granted scopes satisfy which required ones.
///
/// The default ([`ScopeHierarchy::exact`]) is exact matching: a tool that needs `admin:read`
/// runs only for a token granted `admin:read`. Issuers whose scopes nest (a token granted
/// `admin` may do everything `admin:read` allows) declare it, explicitly with
/// [`implies`](Self::implies) or by naming convention with [`by_prefix`](Self::by_prefix);
/// both can be combined. Challenges still name the scopes exactly as the tools require them.
///
/// ```
/// use mcp_auth::ScopeHierarchy;
///
/// let explicit = ScopeHierarchy::exact().implies("admin", ["admin:read", "admin:write"]);
/// assert!(explicit.covers("admin", "admin:read"));
/// assert!(!explicit.covers("admin:read", "admin"));
///
/// let by_name = ScopeHierarchy::by_prefix(':');
/// assert!(by_name.covers("admin", "admin:read:audit"));
/// assert!(!by_name.covers("admin", "administrator"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ScopeHierarchy {
    /// Broader scope → the narrower scopes it directly implies (followed transitively).
    implies: HashMap<String, Vec<String>>,
    /// With `Some(sep)`, `a` covers every `a{sep}…`.
    separator: Option<char>,
}

impl ScopeHierarchy {
    /// Exact matching only: a required scope is satisfied by the same scope, nothing else.
    /// The default.
    pub fn exact() -> Self {
        Self::default()
    }

    /// Hierarchy by name: a scope covers every scope that extends it after `separator`
    /// (with `':'`, `admin` covers `admin:read` and `admin:read:audit`; `admin:read` does not
    /// cover `admin`, and `admin` does not cover `administrator`).
    pub fn by_prefix(separator: char) -> Self {
        Self {
            separator: Some(separator),
            ..Self::default()
        }
    }

    /// Declares that a token granted `broader` may do everything each of `narrower` allows.
    /// Implications chain: `a → b` and `b → c` make `a` cover `c`.
    pub fn implies<I, S>(mut self, broader: impl Into<String>, narrower: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.implies
            .entry(broader.into())
            .or_default()
            .extend(narrower.into_iter().map(Into::into));
        self
    }

    /// Whether this is exact matching (nothing declared).
    #[must_use]
    pub fn is_exact(&self) -> bool {
        self.separator.is_none() && self.implies.is_empty()
    }

    /// Whether a token granted `granted` satisfies a requirement of `required`.
    #[must_use]
    pub fn covers(&self, granted: &str, required: &str) -> bool {
        if granted == required {
            return true;
        }
        if let Some(sep) = self.separator
            && required
                .strip_prefix(granted)
                .is_some_and(|rest| rest.starts_with(sep))
        {
            return true;
        }
        if self.implies.is_empty() {
            return false;
        }
        // Depth-first through the declared implications; `seen` stops cycles.
        let mut stack = vec![granted];
        let mut seen = vec![granted];
        while let Some(scope) = stack.pop() {
            for narrower in self.implies.get(scope).into_iter().flatten() {
                if narrower == required
                    || self.separator.is_some_and(|sep| {
                        required
                            .strip_prefix(narrower.as_str())
                            .is_some_and(|rest| rest.starts_with(sep))
                    })
                {
                    return true;
                }
                if !seen.contains(&narrower.as_str()) {
                    seen.push(narrower);
                    stack.push(narrower);
                }
            }
        }
        false
    }

    /// Scopes from `required` that none of `granted` covers, in the order given.
    #[must_use]
    pub fn missing<'a>(&self, granted: &[String], required: &'a [String]) -> Vec<&'a str> {
        required
            .iter()
            .filter(|r| !granted.iter().any(|g| self.covers(g, r)))
            .map(String::as_str)
            .collect()
    }

    /// Whether `granted` covers every scope of `required`.
    #[must_use]
    pub fn satisfies(&self, granted: &[String], required: &[String]) -> bool {
        required
            .iter()
            .all(|r| granted.iter().any(|g| self.covers(g, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exact_matching_is_the_default() {
        let h = ScopeHierarchy::default();
        assert!(h.is_exact());
        assert!(h.covers("admin:read", "admin:read"));
        assert!(!h.covers("admin", "admin:read"));
        assert_eq!(
            h.missing(&v(&["admin"]), &v(&["admin:read", "admin"])),
            vec!["admin:read"]
        );
    }

    #[test]
    fn implications_chain_and_cycles_end() {
        let h = ScopeHierarchy::exact()
            .implies("admin", ["write"])
            .implies("write", ["read"])
            .implies("read", ["admin"]);
        assert!(h.covers("admin", "read"));
        assert!(h.covers("read", "admin"));
        assert!(!h.covers("admin", "other"));
        assert!(h.satisfies(&v(&["admin"]), &v(&["read", "write"])));
    }

    #[test]
    fn prefix_rule_needs_the_separator() {
        let h = ScopeHierarchy::by_prefix(':');
        assert!(h.covers("admin", "admin:read"));
        assert!(h.covers("admin:read", "admin:read:audit"));
        assert!(!h.covers("admin", "administrator"));
        assert!(!h.covers("admin:read", "admin"));
        let both = ScopeHierarchy::by_prefix(':').implies("root", ["admin"]);
        assert!(both.covers("root", "admin:read"));
    }

    #[test]
    fn offline_access_is_never_advertised() {
        assert!(!advertisable("offline_access"));
        assert!(advertisable("openid"));
    }
}
