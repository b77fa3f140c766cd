//! End-to-end tests live in `tests/tests/`: each starts the quickstart on free loopback ports
//! and drives it with a real MCP client from `tests/js` (installed by `scripts/test.sh` from
//! `tests/js/package-lock.json`). This library holds what they share.

use std::path::PathBuf;

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
