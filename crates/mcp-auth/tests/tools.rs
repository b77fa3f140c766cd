//! What tools see: the right `AuthInfo` per caller, scoped tools and step-up, sessions bound
//! to their opener, and `#[tool]` methods taking `AuthInfo`.

mod common;

use common::*;
use mcp_auth::{AuthInfo, McpServer};
use rmcp::{handler::server::wrapper::Parameters, tool, tool_router};
use serde_json::{Value, json};

/// Two users calling the same tool each see only themselves, with their client and scopes.
#[tokio::test]
async fn tool_sees_the_callers_identity() {
    let s = start_server(Options::default()).await;
    for (user, scope) in [("user_alice", "openid"), ("user_bob", "openid profile")] {
        let resp = post(
            &s.mcp,
            Some(&s.token(user, scope)),
            &call("whoami", json!({})),
            &[],
        )
        .await;
        assert_eq!(resp.status(), 200);
        let r = rpc_result(resp).await;
        let content = &r["result"]["structuredContent"];
        assert_eq!(content["user_id"], user, "{r}");
        assert_eq!(content["client_id"], "client_test");
        let scopes: Vec<&str> = scope.split(' ').collect();
        assert_eq!(content["scopes"], json!(scopes));
    }
}

/// A scoped tool without its scope: 403 with the step-up challenge naming the scopes to
/// request (those held plus the missing one); with the scope it runs.
#[tokio::test]
async fn scoped_tool_steps_up() {
    let s = start_server(Options::default()).await;
    let narrow = s.token("user_alice", "openid profile");
    let resp = post(&s.mcp, Some(&narrow), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"openid profile admin:read\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope; re-authorize with: openid profile admin:read\"",
            s.metadata_url()
        )
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "insufficient_scope"
    );

    // Unscoped tools still work with the narrow token.
    let resp = post(&s.mcp, Some(&narrow), &call("whoami", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);

    let wide = s.token("user_alice", "openid profile admin:read");
    let resp = post(&s.mcp, Some(&wide), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(
        r["result"]["content"][0]["text"], "report for user_alice",
        "{r}"
    );
}

/// A 2025-03-26 style batch hiding a scoped call behind an unscoped one is still refused.
#[tokio::test]
async fn batch_cannot_smuggle_a_scoped_call() {
    let s = start_server(Options::default()).await;
    let narrow = s.token("user_alice", "openid");
    let batch = json!([call("whoami", json!({})), call("admin-report", json!({}))]);
    let resp = post(&s.mcp, Some(&narrow), &batch, &[]).await;
    assert_eq!(resp.status(), 403);
}

/// With a 2026-07-28 request the `Mcp-Method`/`Mcp-Name` headers decide (rmcp checks they
/// match the body); a lying header on an older revision is ignored and the body decides.
#[tokio::test]
async fn step_up_uses_standard_headers_only_when_verified() {
    let s = start_server(Options::default()).await;
    let narrow = s.token("user_alice", "openid");
    let resp = post(
        &s.mcp,
        Some(&narrow),
        &call("admin-report", json!({})),
        &[("mcp-method", "tools/call"), ("mcp-name", "whoami")],
    )
    .await;
    assert_eq!(
        resp.status(),
        403,
        "an old-revision header must not override the body"
    );

    let resp = reqwest::Client::new()
        .post(&s.mcp)
        .bearer_auth(&narrow)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "admin-report")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        403,
        "the verified header alone triggers step-up"
    );
}

/// Sessions are bound to the identity that opened them: another user's valid token on the
/// same session id is refused; the owner keeps working.
#[tokio::test]
async fn session_is_bound_to_its_opener() {
    let s = start_server(Options {
        sessions: true,
        ..Options::default()
    })
    .await;
    let alice = s.token("user_alice", "openid");
    let bob = s.token("user_bob", "openid");
    let resp = post(&s.mcp, Some(&alice), &initialize(), &[]).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let resp = post(
        &s.mcp,
        Some(&alice),
        &initialized,
        &[("mcp-session-id", &session)],
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());

    let resp = post(
        &s.mcp,
        Some(&bob),
        &call("whoami", json!({})),
        &[("mcp-session-id", &session)],
    )
    .await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");

    // Same user through another client is someone else too.
    let mut other_client = claims(ISSUER, &s.resource, "user_alice", "openid");
    other_client["client_id"] = json!("another_client");
    let t = s.key.sign(&other_client, Some("at+jwt"));
    let resp = post(
        &s.mcp,
        Some(&t),
        &call("whoami", json!({})),
        &[("mcp-session-id", &session)],
    )
    .await;
    assert_eq!(resp.status(), 403);

    let resp = post(
        &s.mcp,
        Some(&alice),
        &call("whoami", json!({})),
        &[("mcp-session-id", &session)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(r["result"]["structuredContent"]["user_id"], "user_alice");
}

/// A session id nobody opened is answered 404 by the binding check itself (not passed on), so
/// the client starts a new session.
#[tokio::test]
async fn unknown_session_is_not_found() {
    let s = start_server(Options {
        sessions: true,
        ..Options::default()
    })
    .await;
    let resp = post(
        &s.mcp,
        Some(&s.token("user_alice", "openid")),
        &call("whoami", json!({})),
        &[("mcp-session-id", "0b8ae2d6-5a1c-4a4e-9d55-3c1f0e6f0f00")],
    )
    .await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "session_not_found");
}

/// Sessions are bounded: at `max_sessions`, opening another is refused with 503 and
/// `Retry-After`, while the open ones keep working.
#[tokio::test]
async fn sessions_beyond_the_limit_are_refused() {
    let s = start_server(Options {
        sessions: true,
        max_sessions: 2,
        ..Options::default()
    })
    .await;
    let t = s.token("user_alice", "openid");
    let mut opened = Vec::new();
    for _ in 0..2 {
        let resp = post(&s.mcp, Some(&t), &initialize(), &[]).await;
        assert_eq!(resp.status(), 200);
        opened.push(
            resp.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let _ = resp.text().await;
    }
    let resp = post(&s.mcp, Some(&t), &initialize(), &[]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "60");
    assert!(!resp.headers().contains_key("mcp-session-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let resp = post(
        &s.mcp,
        Some(&t),
        &initialized,
        &[("mcp-session-id", &opened[0])],
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// A session id never stands in for a token.
#[tokio::test]
async fn session_id_does_not_authenticate() {
    let s = start_server(Options {
        sessions: true,
        ..Options::default()
    })
    .await;
    let resp = post(
        &s.mcp,
        Some(&s.token("user_alice", "openid")),
        &initialize(),
        &[],
    )
    .await;
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let resp = post(
        &s.mcp,
        None,
        &call("whoami", json!({})),
        &[("mcp-session-id", &session)],
    )
    .await;
    assert_eq!(resp.status(), 401);
}

#[derive(Clone)]
struct MacroServer;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[tool_router(server_handler)]
impl MacroServer {
    #[tool(name = "echo", description = "Echoes text, signed by the caller")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>, auth: AuthInfo) -> String {
        format!("{}: {}", auth.user_id(), args.text)
    }
}

/// rmcp `#[tool]` methods receive `AuthInfo` as an argument; per-tool scopes work for them too.
#[tokio::test]
async fn tool_macro_methods_receive_auth_info() {
    let key = TestKey::rsa("k1");
    let jwks = JwksServer::start(vec![key.jwk.clone()]).await;
    let mut resource = String::new();
    let addr = spawn_with(|addr| {
        resource = format!("http://{addr}/mcp");
        let verifier = mcp_auth::JwtVerifier::builder(
            ISSUER,
            mcp_auth::Jwks::from_url(jwks.url.parse().unwrap()),
        )
        .resource(&resource)
        .build()
        .unwrap();
        McpServer::builder(&resource)
            .authorization_server(ISSUER)
            .legacy_authorization_server_metadata(false)
            .verifier(verifier)
            .tool_scopes("echo", ["echo:write"])
            .build_with(|| Ok(MacroServer))
            .unwrap()
    })
    .await;
    let url = format!("http://{addr}/mcp");
    let narrow = key.sign(
        &claims(ISSUER, &resource, "user_m", "openid"),
        Some("at+jwt"),
    );
    let resp = post(
        &url,
        Some(&narrow),
        &call("echo", json!({"text": "hi"})),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 403);
    // JSON escapes must not hide the call from the HTTP-level check (rmcp decodes them).
    let escaped = r#"{"jsonrpc":"2.0","id":3,"method":"tools\/call","params":{"name":"ech\u006f","arguments":{"text":"hi"}}}"#;
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&narrow)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        403,
        "escaped tools/call must get the step-up challenge"
    );
    let wide = key.sign(
        &claims(ISSUER, &resource, "user_m", "echo:write"),
        Some("at+jwt"),
    );
    let resp = post(&url, Some(&wide), &call("echo", json!({"text": "hi"})), &[]).await;
    let r = rpc_result(resp).await;
    assert_eq!(r["result"]["content"][0]["text"], "user_m: hi", "{r}");
}
