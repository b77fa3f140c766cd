//! Scopes required to read resources, by URI or URI prefix (the table behind
//! [`McpServerBuilder::resource_scopes`](crate::McpServerBuilder::resource_scopes)).
//!
//! # Matching rule
//!
//! A pattern `p` matches a requested URI `u` when
//! - `u == p`, or
//! - `p` ends with `/` and `u` starts with `p` (`file:///docs/` matches `file:///docs/a` and
//!   `file:///docs/a/b`, not `file:///docs`), or
//! - `u` starts with `p` followed by `/`, `?` or `#` (`file:///docs` matches
//!   `file:///docs/a`, `file:///docs?v=2` and `file:///docs#top`).
//!
//! So a pattern never matches a sibling that merely shares its spelling: `file:///a` does not
//! match `file:///ab`, and `db://users` does not match `db://users_archive`. Every pattern that
//! matches applies and their scopes add up: a narrower pattern can require more than the
//! broader one it sits under, never less.
//!
//! URIs are compared as the client spelled them, byte for byte (after JSON unescaping), as rmcp
//! hands them to `read_resource`. Nothing is normalised: a handler that resolves `..`
//! segments, percent-escapes or case before looking a resource up must refuse URIs that are
//! not already in that form, or `file:///public/../secret` reaches a secret under a pattern
//! `file:///secret/` that it does not match.

/// Scopes each resource URI (or URI prefix) needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResourceScopes {
    patterns: Vec<(String, Vec<String>)>,
}

impl ResourceScopes {
    /// Requires `scopes` for the resources `pattern` matches (see the module docs). A second
    /// call with the same pattern adds its scopes to the first's.
    pub(crate) fn insert(&mut self, pattern: impl Into<String>, scopes: Vec<String>) {
        if scopes.is_empty() {
            return;
        }
        let pattern = pattern.into();
        match self.patterns.iter_mut().find(|(p, _)| *p == pattern) {
            Some((_, existing)) => {
                for s in scopes {
                    if !existing.contains(&s) {
                        existing.push(s);
                    }
                }
            }
            None => self.patterns.push((pattern, scopes)),
        }
    }

    /// The scopes reading `uri` needs: those of every matching pattern, each once, in the
    /// order the patterns were declared (empty when none matches).
    pub(crate) fn get(&self, uri: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pattern, scopes) in &self.patterns {
            if matches(pattern, uri) {
                for s in scopes {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
            }
        }
        out
    }

    /// The patterns, for the guard's quick "can this body name a scoped resource" test: a URI
    /// a pattern matches contains the pattern verbatim.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Whether `pattern` matches `uri` (see the module docs).
fn matches(pattern: &str, uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix(pattern) else {
        return false;
    };
    rest.is_empty() || pattern.ends_with('/') || rest.starts_with(['/', '?', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &[&str])]) -> ResourceScopes {
        let mut t = ResourceScopes::default();
        for (p, s) in entries {
            t.insert(*p, s.iter().map(|s| (*s).to_owned()).collect());
        }
        t
    }

    #[test]
    fn a_pattern_never_matches_a_sibling() {
        let t = table(&[("file:///a", &["a:read"])]);
        assert_eq!(t.get("file:///a"), ["a:read"]);
        assert_eq!(t.get("file:///a/b"), ["a:read"]);
        assert_eq!(t.get("file:///a?x=1"), ["a:read"]);
        assert_eq!(t.get("file:///a#frag"), ["a:read"]);
        assert!(t.get("file:///ab").is_empty());
        assert!(t.get("file:///a.txt").is_empty());
        assert!(t.get("file:///").is_empty());
        assert!(t.get("FILE:///a").is_empty(), "compared as spelled");
    }

    #[test]
    fn a_pattern_ending_with_a_slash_is_a_prefix() {
        let t = table(&[("file:///docs/", &["docs:read"])]);
        assert_eq!(t.get("file:///docs/a"), ["docs:read"]);
        assert_eq!(t.get("file:///docs/a/b"), ["docs:read"]);
        assert_eq!(t.get("file:///docs/"), ["docs:read"]);
        assert!(t.get("file:///docs").is_empty());
        assert!(t.get("file:///docsx/a").is_empty());
        let scheme = table(&[("secret://", &["s"])]);
        assert_eq!(scheme.get("secret://anything"), ["s"]);
        assert!(scheme.get("secrets://x").is_empty());
    }

    #[test]
    fn every_matching_pattern_adds_its_scopes() {
        let t = table(&[
            ("file:///docs", &["docs:read"]),
            ("file:///docs/hr/", &["hr:read", "docs:read"]),
        ]);
        assert_eq!(t.get("file:///docs/hr/pay"), ["docs:read", "hr:read"]);
        assert_eq!(t.get("file:///docs/eng"), ["docs:read"]);
        let mut twice = table(&[("x://a", &["one"])]);
        twice.insert("x://a", vec!["two".into(), "one".into()]);
        assert_eq!(twice.get("x://a"), ["one", "two"]);
        twice.insert("x://b", Vec::new());
        assert!(twice.get("x://b").is_empty());
    }
}
