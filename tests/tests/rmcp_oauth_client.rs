//! rmcp's own OAuth client (rmcp with its `auth` feature, the Rust client a Rust developer would
//! use) against the running quickstart: connect → 401 → discovery seeded from the challenge
//! (protected resource metadata → authorization server metadata) → dynamic client registration
//! (the issuer advertises no Client ID Metadata Documents on this branch) → consent,
//! auto-approved by the issuer → PKCE code exchange with `resource` → `whoami` → 403
//! `insufficient_scope` on `get-private-metadata` → re-authorization with the wider scope →
//! the call succeeds on the same running client.
//!
//! The client is driven as rmcp's auth module intends (rmcp 3.11, `src/transport/auth.rs`):
//! `OAuthState::start_authorization` with an `AuthorizationRequest` carrying the 401 challenge
//! (`with_challenge`, `with_initial_scope_selection`), `handle_callback_url`, then an
//! `AuthClient` around the authorized `AuthorizationManager` as the Streamable HTTP client; on
//! the 403, `AuthorizationManager::request_scope_upgrade` with the challenged scope and
//! `exchange_code_for_token_with_issuer`. The browser is the one part played here: a plain
//! HTTP client follows the authorization URL and stops at the redirect to the callback.

use std::time::Duration;

use quickstart::{Options, Quickstart};
use rmcp::{
    ServiceExt,
    model::CallToolRequestParams,
    service::{RoleClient, RunningService},
    transport::{
        StreamableHttpClientTransport,
        auth::{AuthClient, AuthorizationCallback, AuthorizationRequest, OAuthState},
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::Value;

/// Nothing listens here: the test stops at the redirect, as a desktop client's loopback
/// listener would receive it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// Plays the browser: follows the authorization URL (the issuer auto-approves) up to the
/// redirect to `REDIRECT_URI`, and returns that URL (with `code`, `state`, `iss`).
async fn consent(authorization_url: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = authorization_url.to_owned();
    for _ in 0..5 {
        let resp = browser.get(&url).send().await.unwrap();
        assert!(
            resp.status().is_redirection(),
            "{url}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        if location.starts_with(REDIRECT_URI) {
            return location;
        }
        url = location;
    }
    panic!("no redirect to the callback after 5 hops from {authorization_url}");
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

type Client = RunningService<RoleClient, ()>;

async fn connect(auth: &AuthClient<reqwest::Client>, mcp_url: &str) -> Client {
    let transport = StreamableHttpClientTransport::with_client(
        auth.clone(),
        StreamableHttpClientTransportConfig::with_uri(mcp_url),
    );
    ().serve(transport)
        .await
        .expect("the authorized client connects")
}

async fn call(client: &Client, tool: &'static str) -> Result<Value, rmcp::ServiceError> {
    let result = client.call_tool(CallToolRequestParams::new(tool)).await?;
    Ok(serde_json::to_value(result).unwrap())
}

#[tokio::test]
async fn rmcp_oauth_client_authorizes_and_steps_up() {
    tokio::time::timeout(Duration::from_secs(60), flow())
        .await
        .expect("the flow hung");
}

async fn flow() {
    let user = mcp_auth_issuer::default_users()[0].id.clone();
    let qs = Quickstart::start(Options {
        auto_approve_user: Some(user.clone()),
        ..Options::default()
    })
    .await
    .unwrap();
    let issuer = qs.issuer().unwrap();
    let registrations = || e2e::requests_total(&issuer.metrics(), "/oauth/register", "POST");
    assert_eq!(registrations(), 0);

    // 1. Connect without credentials: the server's 401 challenge starts the flow.
    let mut state = OAuthState::new(qs.mcp_url(), None).await.unwrap();
    let anonymous = StreamableHttpClientTransport::from_uri(qs.mcp_url());
    let refused = ().serve(anonymous).await.expect_err("no token: 401");
    let challenge = refused
        .auth_challenge()
        .expect("the 401 carries a WWW-Authenticate challenge")
        .to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    // 2. Discovery from the challenge, registration, authorization URL with PKCE, `resource`
    //    and the scopes the challenge asks for (not `private_metadata`, which the metadata
    //    lists but the first login does not need).
    state
        .start_authorization(
            AuthorizationRequest::new(REDIRECT_URI)
                .with_client_name("rmcp e2e client")
                .with_initial_scope_selection()
                .with_challenge(challenge),
        )
        .await
        .unwrap();
    let authorization_url = state.get_authorization_url().await.unwrap();
    assert_eq!(
        query(&authorization_url, "resource").as_deref(),
        Some(qs.mcp_url()),
        "{authorization_url}"
    );
    assert_eq!(
        query(&authorization_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let first_scopes = query(&authorization_url, "scope").unwrap();
    assert!(!first_scopes.contains("private_metadata"), "{first_scopes}");
    assert_eq!(registrations(), 1, "rmcp registered itself (DCR)");
    let (client_id, _) = state.get_credentials().await.unwrap();

    // 3. Consent (auto-approved), callback with `code`, `state` and RFC 9207 `iss`, token.
    let callback = consent(&authorization_url).await;
    assert!(query(&callback, "iss").is_some(), "{callback}");
    state.handle_callback_url(&callback).await.unwrap();
    let manager = state
        .into_authorization_manager()
        .expect("authorized after the callback");
    let auth = AuthClient::new(reqwest::Client::new(), manager);

    // 4. The caller is the user who consented.
    let client = connect(&auth, qs.mcp_url()).await;
    let whoami = call(&client, "whoami").await.unwrap();
    assert_eq!(whoami["structuredContent"]["user_id"], user, "{whoami}");
    assert_eq!(
        whoami["structuredContent"]["client_id"], client_id,
        "the token was issued to the registered client: {whoami}"
    );

    // 5. Step-up: 403 with a challenge naming the wider scope; rmcp's client surfaces it and
    //    does not re-authorize by itself (that needs the user), so the application does.
    let refused = call(&client, "get-private-metadata")
        .await
        .expect_err("403 insufficient_scope");
    let challenge = refused
        .auth_challenge()
        .expect("the 403 carries a challenge")
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let params = rmcp::transport::auth::WWWAuthenticateParams::parse(
        &challenge,
        &url::Url::parse(qs.mcp_url()).unwrap(),
    );
    assert!(params.is_insufficient_scope());
    let required = params.scope.expect("the challenge names the scopes");
    assert!(required.contains("private_metadata"), "{required}");

    let upgrade_url = auth
        .auth_manager
        .lock()
        .await
        .request_scope_upgrade(&required)
        .await
        .unwrap();
    let upgrade_scopes = query(&upgrade_url, "scope").unwrap();
    for scope in first_scopes.split(' ').chain(["private_metadata"]) {
        assert!(
            upgrade_scopes.split(' ').any(|s| s == scope),
            "{scope} missing from {upgrade_scopes}"
        );
    }
    let callback = AuthorizationCallback::from_redirect_url(&consent(&upgrade_url).await).unwrap();
    auth.auth_manager
        .lock()
        .await
        .exchange_code_for_token_with_issuer(
            &callback.code,
            &callback.csrf_token,
            callback.issuer.as_deref(),
        )
        .await
        .unwrap();

    // 6. The same running client (its transport survives a 403) now sends the wider token:
    //    the tool runs, and the token carries both the first scopes and the new one.
    let metadata = call(&client, "get-private-metadata")
        .await
        .expect("the call succeeds after the step-up");
    assert_ne!(metadata["isError"], true, "{metadata}");
    let whoami = call(&client, "whoami").await.unwrap();
    let granted: Vec<&str> = whoami["structuredContent"]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for scope in first_scopes.split(' ').chain(["private_metadata"]) {
        assert!(granted.contains(&scope), "{scope} not granted: {granted:?}");
    }
    assert_eq!(registrations(), 1, "the step-up reused the registration");
    qs.shutdown().await;
}
