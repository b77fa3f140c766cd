//! What tools see: the right `AuthInfo` per caller, scoped tools and step-up, sessions bound
//! to their opener, and `#[tool]` methods taking `AuthInfo`.

mod common;

use common::*;
use mcp_auth::{AuthInfo, McpServer, ScopeHierarchy};
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

/// With optional authentication an anonymous request reaches rmcp, but a closure tool never
/// runs without an identity: the caller gets a JSON-RPC error naming why.
#[tokio::test]
async fn closure_tools_never_run_anonymously() {
    let s = start_server_with(Options::default(), |b| b.optional_auth(true)).await;
    let resp = post(&s.mcp, None, &call("whoami", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(
        r["error"]["message"], "this tool requires an authenticated caller",
        "{r}"
    );
    // The same tool with a token still runs.
    let token = s.token("user_alice", "openid");
    let r = rpc_result(post(&s.mcp, Some(&token), &call("whoami", json!({})), &[]).await).await;
    assert_eq!(
        r["result"]["structuredContent"]["user_id"], "user_alice",
        "{r}"
    );
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Echo {
    text: String,
}

/// Closure tools answer as rmcp's `ToolRouter` did before they were dispatched directly: an
/// unknown name is a JSON-RPC `invalid_params` error "tool not found"; arguments that do not
/// deserialize are a tool result with `isError` (the model can correct them), carrying rmcp's
/// message; a name registered again replaces the earlier tool; `tools/list` is sorted by name.
#[tokio::test]
async fn closure_tools_dispatch_as_rmcps_router_did() {
    let s = start_server_with(Options::default(), |b| {
        b.tool(
            "echo",
            "Says it back",
            |args: Echo, _: AuthInfo| async move { args.text },
        )
        // Registered again (with a structured answer) after this closure: that one wins.
        .tool("whoami", "replaced", |_: NoArgs, _: AuthInfo| async move {
            String::from("the first whoami")
        })
    })
    .await;
    let token = s.token("user_alice", "openid");
    let rpc = |tool: &str, args: Value| {
        let (mcp, token, body) = (s.mcp.clone(), token.clone(), call(tool, args));
        async move { rpc_result(post(&mcp, Some(&token), &body, &[]).await).await }
    };

    let r = rpc("no-such-tool", json!({})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "tool not found", "{r}");

    let r = rpc("echo", json!({"text": 5})).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("failed to deserialize parameters:"), "{r}");
    let r = rpc("echo", json!({"text": "hello"})).await;
    assert_eq!(r["result"]["content"][0]["text"], "hello", "{r}");
    assert_ne!(r["result"]["isError"], true, "{r}");

    let r = rpc("whoami", json!({})).await;
    assert_eq!(
        r["result"]["structuredContent"]["user_id"], "user_alice",
        "{r}"
    );

    let names: Vec<Value> = listed_tools(&s, "openid")
        .await
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(
        names,
        json!(["admin-report", "audit-log", "echo", "whoami"])
            .as_array()
            .unwrap()
            .clone()
    );
}

/// A tool registered first with scopes and again without needs none: the HTTP-level guard and
/// `tools/list` follow the registration that runs, as the tool itself does.
#[tokio::test]
async fn a_tool_registered_again_without_scopes_needs_none() {
    let s = start_server_with(Options::default(), |b| {
        b.scoped_tool(
            "echo",
            "Says it back, for admins",
            ["admin:read"],
            |args: Echo, _: AuthInfo| async move { format!("admin: {}", args.text) },
        )
        .tool(
            "echo",
            "Says it back",
            |args: Echo, _: AuthInfo| async move { args.text },
        )
    })
    .await;
    let narrow = s.token("user_alice", "openid");
    let resp = post(
        &s.mcp,
        Some(&narrow),
        &call("echo", json!({"text": "hello"})),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(r["result"]["content"][0]["text"], "hello", "{r}");

    let tools = listed_tools(&s, "openid").await;
    let echo = tool(&tools, "echo").expect("echo is listed");
    assert_eq!(echo["description"], "Says it back", "{echo}");
    assert!(echo.get("securitySchemes").is_none(), "{echo}");
    // The tools registered with scopes once keep them.
    let admin = tool(&tools, "admin-report").expect("admin-report is listed");
    assert!(admin.get("securitySchemes").is_some(), "{admin}");
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

/// SEP-2350 (MCP 2026-07-28, authorization § Scope Challenge Handling): a batch calling two
/// scoped tools gets one 403 naming the scopes of both, so one step-up is enough; even when
/// the token already holds one tool's scope, the challenge names every scope of the operation.
#[tokio::test]
async fn batch_challenge_names_every_scoped_call() {
    let s = start_server(Options::default()).await;
    let batch = json!([
        call("admin-report", json!({})),
        call("whoami", json!({})),
        call("audit-log", json!({}))
    ]);
    for (granted, expected) in [
        ("openid", "openid admin:read audit:read"),
        ("audit:read", "audit:read admin:read"),
    ] {
        let resp = post(&s.mcp, Some(&s.token("user_alice", granted)), &batch, &[]).await;
        assert_eq!(resp.status(), 403, "{granted}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(&format!(
                "scope=\"{expected}\", error=\"insufficient_scope\""
            )),
            "{granted}: {challenge}"
        );
    }
    // With both scopes the guard lets the batch through to rmcp, which answers it itself
    // (rmcp 3.11 does not take batches and says so with 415).
    let both = s.token("user_alice", "admin:read audit:read");
    let resp = post(&s.mcp, Some(&both), &batch, &[]).await;
    assert_ne!(resp.status(), 403);
}

/// `offline_access` is never challenged for (MCP 2026-07-28, authorization § Refresh Tokens),
/// neither in the 401 default scope (configured with it) nor in a 403 to a token holding it.
#[tokio::test]
async fn offline_access_is_never_challenged() {
    let s = start_server(Options::default()).await;
    let resp = post(&s.mcp, None, &initialize(), &[]).await;
    assert_eq!(resp.status(), 401);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.contains("scope=\"openid profile\""), "{www}");
    let t = s.token("user_alice", "openid offline_access");
    let resp = post(&s.mcp, Some(&t), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 403);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!www.contains("offline_access"), "{www}");
    assert!(www.contains("scope=\"openid admin:read\""), "{www}");
    let body: Value = resp.json().await.unwrap();
    assert!(
        !body["error_description"]
            .as_str()
            .unwrap()
            .contains("offline_access"),
        "{body}"
    );
}

/// Scope hierarchy: off by default (`admin` does not satisfy `admin:read`); declared, `admin`
/// runs the tool, in the step-up guard and in the closure tool's own check alike.
#[tokio::test]
async fn scope_hierarchy_is_opt_in() {
    let off = start_server(Options::default()).await;
    let t = off.token("user_alice", "admin");
    let resp = post(&off.mcp, Some(&t), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 403);

    let on = start_server(Options {
        hierarchy: ScopeHierarchy::exact().implies("admin", ["admin:read"]),
        ..Options::default()
    })
    .await;
    let t = on.token("user_alice", "admin");
    let resp = post(&on.mcp, Some(&t), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(
        r["result"]["content"][0]["text"], "report for user_alice",
        "{r}"
    );
    // `admin` covers only what was declared; the refusal of a batch still names every scope
    // the batch needs, including `admin:read`, which `admin` covers.
    let resp = post(&on.mcp, Some(&t), &call("audit-log", json!({})), &[]).await;
    assert_eq!(resp.status(), 403);
    let batch = json!([
        call("admin-report", json!({})),
        call("audit-log", json!({}))
    ]);
    let resp = post(&on.mcp, Some(&t), &batch, &[]).await;
    assert_eq!(resp.status(), 403);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        www.contains("scope=\"admin admin:read audit:read\""),
        "{www}"
    );
}

async fn listed_tools(s: &TestServer, scope: &str) -> Vec<Value> {
    let list = json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}});
    let resp = post(&s.mcp, Some(&s.token("user_alice", scope)), &list, &[]).await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    r["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone()
}

fn tool<'a>(tools: &'a [Value], name: &str) -> Option<&'a Value> {
    tools.iter().find(|t| t["name"] == name)
}

/// By default every tool is listed, and each scoped one carries its scopes the way ChatGPT's
/// Apps SDK reads them: `securitySchemes` on the tool object (the Apps SDK's first-class
/// field; OpenAI's authenticated example, `examples/authenticated/server_python/main.py`,
/// `_list_tools`) and the same in `_meta.securitySchemes` (its mirror for clients that read
/// only `_meta`). Unscoped tools carry neither. Checked on the raw HTTP answer, in stateless
/// (JSON) and session (SSE) mode.
#[tokio::test]
async fn tools_list_announces_scopes() {
    for sessions in [false, true] {
        let s = start_server(Options {
            sessions,
            ..Options::default()
        })
        .await;
        let token = s.token("user_alice", "openid");
        let mut extra = Vec::new();
        if sessions {
            let resp = post(&s.mcp, Some(&token), &initialize(), &[]).await;
            extra.push((
                "mcp-session-id",
                resp.headers()["mcp-session-id"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            ));
            let _ = resp.text().await;
        }
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let list = json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}});
        let resp = post(&s.mcp, Some(&token), &list, &extra).await;
        assert_eq!(resp.status(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with(if sessions {
                "text/event-stream"
            } else {
                "application/json"
            }),
            "{content_type}"
        );
        let r = rpc_result(resp).await;
        let tools = r["result"]["tools"].as_array().unwrap().clone();
        assert_eq!(tools.len(), 3, "{tools:?}");
        let report = tool(&tools, "admin-report").unwrap();
        let expected = json!([{"type": "oauth2", "scopes": ["admin:read"]}]);
        assert_eq!(report["securitySchemes"], expected, "{report}");
        assert_eq!(report["_meta"]["securitySchemes"], expected, "{report}");
        let whoami = tool(&tools, "whoami").unwrap();
        assert!(whoami.get("_meta").is_none(), "{whoami}");
        assert!(whoami.get("securitySchemes").is_none(), "{whoami}");
    }
}

/// With `hide_unauthorized_tools`, a caller without a tool's scope does not see it, one with
/// it does (the list is per caller).
#[tokio::test]
async fn hidden_tools_depend_on_the_caller() {
    let s = start_server(Options {
        hide_unauthorized_tools: true,
        ..Options::default()
    })
    .await;
    let narrow = listed_tools(&s, "openid").await;
    assert!(tool(&narrow, "whoami").is_some());
    assert!(tool(&narrow, "admin-report").is_none(), "{narrow:?}");
    assert!(tool(&narrow, "audit-log").is_none());
    let wide = listed_tools(&s, "openid admin:read").await;
    assert!(tool(&wide, "admin-report").is_some(), "{wide:?}");
    assert!(tool(&wide, "audit-log").is_none());
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
    let session = open_initialized_session(&s.mcp, &alice).await;

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

/// Opens a session for `token`: the response's status and its `Mcp-Session-Id`, if any.
async fn open_session(s: &TestServer, token: &str) -> (u16, Option<String>, reqwest::Response) {
    let resp = post(&s.mcp, Some(token), &initialize(), &[]).await;
    let id = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), id, resp)
}

async fn delete_session(s: &TestServer, token: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .delete(&s.mcp)
        .bearer_auth(token)
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// One user cannot hold more than `max_sessions_per_user` sessions: the extra one gets 429
/// with `Retry-After` and no session; another user is unaffected; another user's `DELETE` of
/// the first user's session frees nothing, the owner's own `DELETE` frees the slot at once.
#[tokio::test]
async fn sessions_beyond_the_per_user_limit_are_refused_until_one_is_deleted() {
    let s = start_server(Options {
        sessions: true,
        max_sessions_per_user: 2,
        ..Options::default()
    })
    .await;
    let alice = s.token("user_alice", "openid");
    let bob = s.token("user_bob", "openid");
    let mut opened = Vec::new();
    for _ in 0..2 {
        let (status, id, resp) = open_session(&s, &alice).await;
        assert_eq!(status, 200);
        opened.push(id.expect("a session id"));
        let _ = resp.text().await;
    }
    let (status, id, resp) = open_session(&s, &alice).await;
    assert_eq!(status, 429);
    assert_eq!(id, None);
    assert_eq!(resp.headers()["retry-after"], "60");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_sessions");

    // Through another client, the same user is still the same user.
    let mut other_client = claims(ISSUER, &s.resource, "user_alice", "openid");
    other_client["client_id"] = json!("another_client");
    let alice_elsewhere = s.key.sign(&other_client, Some("at+jwt"));
    assert_eq!(open_session(&s, &alice_elsewhere).await.0, 429);

    let (status, _, _) = open_session(&s, &bob).await;
    assert_eq!(status, 200, "another user has slots of their own");

    assert_eq!(delete_session(&s, &bob, &opened[0]).await, 403);
    assert_eq!(
        open_session(&s, &alice).await.0,
        429,
        "bob's DELETE freed nothing"
    );

    assert!((200..300).contains(&delete_session(&s, &alice, &opened[0]).await));
    let (status, id, _) = open_session(&s, &alice).await;
    assert_eq!(status, 200, "the deleted session's slot is free at once");
    assert!(id.is_some());
    assert_eq!(open_session(&s, &alice).await.0, 429);
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
    // `#[tool]` routers' tools carry their scopes in `tools/list` too.
    let list = json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}});
    let r = rpc_result(post(&url, Some(&narrow), &list, &[]).await).await;
    assert_eq!(
        r["result"]["tools"][0]["_meta"]["securitySchemes"],
        json!([{"type": "oauth2", "scopes": ["echo:write"]}]),
        "{r}"
    );
    let wide = key.sign(
        &claims(ISSUER, &resource, "user_m", "echo:write"),
        Some("at+jwt"),
    );
    let resp = post(&url, Some(&wide), &call("echo", json!({"text": "hi"})), &[]).await;
    let r = rpc_result(resp).await;
    assert_eq!(r["result"]["content"][0]["text"], "user_m: hi", "{r}");
}
