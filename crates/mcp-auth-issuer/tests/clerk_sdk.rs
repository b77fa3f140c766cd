//! Clerk's own SDKs against the stand-in: `@clerk/backend` 3.25.0 (`createClerkClient`: OAuth,
//! API key and M2M verification, `users.getUser`; `authenticateRequest` for every token kind)
//! and `@clerk/mcp-tools` 0.6.0 (`verifyClerkToken`), pinned in `tests/js/package-lock.json`.
//! If Clerk's code accepts, refuses and maps what the stand-in answers as it does Clerk's own
//! answers, code tested against the stand-in behaves the same against Clerk.
//!
//! Needs `npm ci --prefix tests/js` (the project's test script runs it); fails, never skips,
//! when it is missing.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::start_default;
use serde_json::Value;

/// Every case `tests/js/clerk-backend-sdk.mjs` runs; a case missing from its output fails too.
const CASES: &[&str] = &[
    "isPublishableKey accepts the publishable keys",
    "idPOAuthAccessToken.verify without audience",
    "idPOAuthAccessToken.verify with the audience it was issued for",
    "idPOAuthAccessToken.verify with another audience is refused",
    "apiKeys.verify",
    "m2m.verify with the instance secret key",
    "m2m.verify with the secret key of a machine it is granted to",
    "m2m.verify with the secret key of a machine it is not granted to is refused",
    "m2m.verify of an M2M JWT (local)",
    "users.getUser",
    "authenticateRequest: JWT OAuth access token",
    "authenticateRequest: opaque OAuth access token",
    "authenticateRequest: API key of a user",
    "authenticateRequest: API key of an organization",
    "authenticateRequest: opaque M2M token",
    "authenticateRequest: M2M JWT",
    "authenticateRequest: session token",
    "authenticateRequest: JWT-template token is not a session token",
    "verifyClerkToken on a JWT OAuth access token",
    "verifyClerkToken on an opaque OAuth access token",
    "revoked and expired opaque OAuth tokens are refused",
    "an expired OAuth JWT is refused",
    "revoked and expired API keys are refused",
    "revoked and expired M2M tokens are refused",
    "unknown tokens are refused",
];

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

/// Each case of the Node suite passes against a fresh stand-in.
#[tokio::test]
async fn clerk_sdks_accept_the_stand_in() {
    for package in ["@clerk/backend", "@clerk/mcp-tools"] {
        let dir = js_dir().join("node_modules").join(package);
        assert!(
            dir.is_dir(),
            "{} is missing: run scripts/test.sh, or `npm ci --prefix tests/js`",
            dir.display()
        );
    }
    let issuer = start_default().await;
    let mut command = tokio::process::Command::new("node");
    command
        .arg(js_dir().join("clerk-backend-sdk.mjs"))
        .args([
            issuer.base.as_str(),
            &issuer.handle.secret_key(),
            &issuer.handle.publishable_key(),
        ])
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the Clerk SDK suite did not finish within 120 s")
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js 20 or newer"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let results: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON from node ({e}):\n{stdout}\n{stderr}"));
    let results = results.as_object().expect("a JSON object of cases");
    let mut failures = Vec::new();
    for case in CASES {
        match results.get(*case).and_then(Value::as_str) {
            Some("ok") => {}
            Some(why) => failures.push(format!("{case}: {why}")),
            None => failures.push(format!("{case}: did not run")),
        }
    }
    for name in results.keys() {
        assert!(
            CASES.contains(&name.as_str()),
            "case `{name}` is not listed in CASES"
        );
    }
    assert!(
        failures.is_empty(),
        "Clerk's SDK disagrees with the stand-in:\n{}\n(stderr:\n{stderr})",
        failures.join("\n")
    );
}
