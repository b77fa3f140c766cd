//! End-to-end tests live in `tests/tests/`: each starts the quickstart on free loopback ports
//! and drives it with a real MCP client from `tests/js` (installed by `scripts/test.sh` from
//! `tests/js/package-lock.json`). This library holds what they share.

use std::path::PathBuf;

pub mod fleet;

/// `tests/js`, after checking that the npm package `package` is installed there. Fails (never
/// skips) with the command that installs it.
///
/// # Panics
/// When `tests/js/node_modules/<package>` is missing.
#[must_use]
pub fn js_dir(package: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        dir.join("node_modules").join(package).exists(),
        "tests/js/node_modules/{package} is missing: run ./scripts/test.sh (or npm ci --prefix tests/js)"
    );
    dir
}

/// A fresh directory under the system temp dir (for a client's cache or an issuer's state),
/// removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `mcp-auth-e2e-<tag>-<pid>-<nanos>`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("mcp-auth-e2e-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sum of the issuer's `mcp_auth_issuer_requests_total` counters for a route and method (all
/// statuses), from its `/metrics` text.
#[must_use]
pub fn requests_total(metrics: &str, path: &str, method: &str) -> u64 {
    let prefix = format!("mcp_auth_issuer_requests_total{{path=\"{path}\",method=\"{method}\",");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
