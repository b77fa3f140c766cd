//! Clients nobody here wrote, driven through Node (`tests/js`): oauth4webapi and the MCP
//! TypeScript SDK's auth functions run complete flows against the issuer, and headless Chromium
//! renders the consent page, picks a user, clicks Allow (and Deny) and lands on the client's
//! loopback redirect URI.
//!
//! Needs `npm ci --prefix tests/js` (the project's test script does it) and Debian's `chromium`;
//! when either is missing these tests fail and say so: they never skip.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::get;
use common::{jwt_parts, pkce, query_of, start_default};
use reqwest::StatusCode;
use serde_json::{Value, json};

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

fn require_node_modules(package: &str) {
    let dir = js_dir().join("node_modules").join(package);
    assert!(
        dir.is_dir(),
        "{} is missing: the JS test dependencies are not installed. Run scripts/test.sh, or \
         `npm ci --prefix tests/js` from the repository root.",
        dir.display()
    );
}

/// Run `node tests/js/<script> <args…>`; assert exit 0; return the last stdout line as JSON.
async fn run_node(script: &str, args: &[&str]) -> Value {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(js_dir().join(script))
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js 20 or newer"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("node {script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// oauth4webapi: discovery, registration, PKCE, consent, code exchange with `resource`, ID token,
/// RFC 9068 JWT access-token validation against the JWKS, userinfo, introspection, refresh
/// rotation (old token refused), revocation.
#[tokio::test]
async fn oauth4webapi_completes_the_flow() {
    require_node_modules("oauth4webapi");
    let issuer = start_default().await;
    let out = run_node("oauth4webapi-flow.mjs", &[&issuer.base, RESOURCE]).await;
    assert_eq!(out["ok"], true);
    assert_eq!(out["issuer"], issuer.base);
    assert_eq!(out["sub"], issuer.alice());
    assert_eq!(out["aud"], RESOURCE);
    assert_eq!(out["email"], "alice@example.com");
    assert_eq!(out["old_refresh_refused"], true);
}

/// The MCP SDK's discoverAuthorizationServerMetadata / registerClient / startAuthorization /
/// exchangeAuthorization / refreshAuthorization.
#[tokio::test]
async fn mcp_sdk_auth_functions_complete_the_flow() {
    require_node_modules("@modelcontextprotocol/sdk");
    let issuer = start_default().await;
    let out = run_node("mcp-sdk-auth-flow.mjs", &[&issuer.base, RESOURCE]).await;
    assert_eq!(out["ok"], true);
    assert_eq!(out["sub"], issuer.alice());
    assert_eq!(out["aud"], RESOURCE);
    assert_eq!(out["scope"], "profile email");
}

/// The consent page in headless Chromium (JavaScript off): app name, scopes and the user chooser
/// are shown; choosing Bob and clicking Allow redirects to the client's loopback listener with a
/// code that yields a token for Bob; Deny redirects with `error=access_denied`. The screenshot is
/// kept at `target/test-artifacts/consent.png`.
#[tokio::test]
async fn consent_page_in_headless_chromium() {
    require_node_modules("playwright-core");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (`apt-get install -y chromium`) or set CHROMIUM_PATH"
    );
    let issuer = start_default().await;

    // The client's redirect target: a real loopback listener that records what it receives.
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = received.clone();
    let app = axum::Router::new().route(
        "/callback",
        get(move |RawQuery(query): RawQuery| {
            log.lock().unwrap().push(query.unwrap_or_default());
            async { "Signed in. You can close this window." }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = issuer
        .register(json!({
            "client_name": "Consent Test App",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let url = |state: &str| {
        issuer.authorize_url(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", &redirect_uri),
            ("state", state),
            ("scope", "openid profile email offline_access"),
            ("resource", RESOURCE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
    };
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let artifacts = target.join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("consent.png");
    let _ = std::fs::remove_file(&screenshot);

    let out = run_node(
        "consent-browser.mjs",
        &[
            &url("allow-state"),
            &url("deny-state"),
            &redirect_uri,
            screenshot.to_str().unwrap(),
        ],
    )
    .await;

    assert_eq!(out["appName"], "Consent Test App");
    let scopes: Vec<&str> = out["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"See your email address"), "{scopes:?}");
    assert_eq!(out["users"].as_array().unwrap().len(), 3);
    assert_eq!(out["allowButtonVisible"], true);
    let bob = issuer.handle.users()[1].id.clone();
    assert_eq!(out["chosen"], bob);

    let allowed = query_of(out["allowed"].as_str().unwrap());
    assert_eq!(allowed["state"], "allow-state");
    assert_eq!(allowed["iss"], issuer.base);
    let denied = query_of(out["denied"].as_str().unwrap());
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(denied["state"], "deny-state");
    assert!(!denied.contains_key("code"));
    let hits = received.lock().unwrap().clone();
    assert_eq!(
        hits.len(),
        2,
        "the client's listener got both redirects: {hits:?}"
    );

    // The code from the browser is good for a token for the user picked in the page.
    let (status, body, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &allowed["code"]),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_parts(body["access_token"].as_str().unwrap()).1["sub"],
        bob
    );

    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}
