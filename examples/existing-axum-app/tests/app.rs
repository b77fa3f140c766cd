//! The existing app with MCP merged in, on loopback with the embedded issuer: the public page is
//! open; the API refuses a request without a token (401 + `WWW-Authenticate` pointing at the
//! protected resource metadata the MCP endpoint serves) and accepts an issuer-minted OAuth token;
//! the MCP endpoint accepts the same token, and the API and the tools share per-user state.

use existing_axum_app::{MachineEnv, Options, Running, SCOPES, app};
use mcp_auth::clerk::ClerkConfig;
use mcp_auth_issuer::{Issuer, IssuerConfig, MachineTokenRequest, MintRequest, TokenFormat};
use serde_json::{Value, json};

async fn mcp_call(
    http: &reqwest::Client,
    mcp_url: &str,
    token: &str,
    tool: &str,
    args: Value,
) -> (u16, Value) {
    let resp = http
        .post(mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":args}}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn tool_text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no tool text in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_routes_and_mcp_share_one_verifier() {
    let app = Running::start(Options::default()).await.unwrap();
    let base = app.base_url().to_owned();
    let mcp_url = app.mcp_url();
    let issuer = app.issuer().expect("no Clerk keys given: embedded issuer");
    let users = issuer.users();
    let (alice, bob) = (users[0].id.clone(), users[1].id.clone());
    let mint = |user: &str| {
        issuer
            .mint_access_token(MintRequest {
                scopes: SCOPES.map(String::from).to_vec(),
                resource: Some(mcp_url.clone()),
                ..MintRequest::new(user, "client_existing_app_test")
            })
            .unwrap()
    };
    let (alice_token, bob_token) = (mint(&alice), mint(&bob));
    let http = reqwest::Client::new();

    // The public page needs nothing.
    let home = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status(), 200);

    // The API without a token: 401 with a challenge naming the metadata the MCP endpoint serves.
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    for path in ["/api/me", "/api/notes"] {
        let refused = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{path}");
        let challenge = refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
            "{challenge}"
        );
        assert!(challenge.contains("scope=\"profile email\""), "{challenge}");
    }
    let metadata: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], mcp_url.as_str());
    assert_eq!(
        metadata["authorization_servers"][0],
        issuer.base_url().as_str()
    );

    // A bad token is refused as invalid_token, by the API as by the MCP endpoint.
    let bad = http
        .get(format!("{base}/api/me"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let (status, _) = mcp_call(&http, &mcp_url, "not-a-token", "whoami", json!({})).await;
    assert_eq!(status, 401);

    // With the issuer's token: 200, and the route sees the token's user.
    let me = http
        .get(format!("{base}/api/me"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user_id"], alice.as_str());
    assert_eq!(me["client_id"], "client_existing_app_test");
    assert_eq!(me["token_kind"], "OAuthAccessToken");

    // A note written through the API ...
    let added = http
        .post(format!("{base}/api/notes"))
        .bearer_auth(&alice_token)
        .json(&json!({"text": "from the API"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);

    // ... and the MCP endpoint with the very same token: the tools see the same user and data.
    let (status, answer) = mcp_call(&http, &mcp_url, &alice_token, "whoami", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let who: Value = serde_json::from_str(tool_text(&answer)).unwrap();
    assert_eq!(who["user_id"], alice.as_str());
    let (status, answer) = mcp_call(&http, &mcp_url, &alice_token, "list-notes", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(tool_text(&answer), r#"["from the API"]"#);
    let (status, answer) = mcp_call(
        &http,
        &mcp_url,
        &alice_token,
        "add-note",
        json!({"text": "from MCP"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let notes: Value = http
        .get(format!("{base}/api/notes"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(notes["notes"], json!(["from the API", "from MCP"]));

    // Another user's token sees only their own notes, on both sides.
    let bob_notes: Value = http
        .get(format!("{base}/api/notes"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bob_notes["user_id"], bob.as_str());
    assert_eq!(bob_notes["notes"], json!([]));
    let (_, answer) = mcp_call(&http, &mcp_url, &bob_token, "list-notes", json!({})).await;
    assert_eq!(tool_text(&answer), "[]");

    // A token for another resource (audience) is refused by the API too: one verifier, one policy.
    let other = issuer
        .mint_access_token(MintRequest {
            resource: Some("http://127.0.0.1:1/elsewhere".into()),
            ..MintRequest::new(&alice, "client_existing_app_test")
        })
        .unwrap();
    let refused = http
        .get(format!("{base}/api/me"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    app.shutdown().await;
}

/// `GET /api/machine` accepts Clerk M2M tokens only, opaque and JWT, and answers the calling
/// machine and its granted machines; an OAuth token (valid on the rest of the API) and no token
/// are refused with 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_route_accepts_only_m2m_tokens() {
    let app = Running::start(Options::default()).await.unwrap();
    let issuer = app.issuer().expect("embedded issuer");
    let url = format!("{}/api/machine", app.base_url());
    let http = reqwest::Client::new();
    for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
        let token = issuer
            .mint_machine_token(MachineTokenRequest {
                subject: "mch_worker".into(),
                scopes: vec!["mch_api".into()],
                format: Some(format),
                ..Default::default()
            })
            .unwrap();
        let resp = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{format}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"machine_id": "mch_worker", "scopes": ["mch_api"]}),
            "{format}"
        );
    }
    let oauth = issuer
        .mint_access_token(MintRequest {
            resource: Some(app.mcp_url()),
            ..MintRequest::new(issuer.users()[0].id.clone(), "client_existing_app_test")
        })
        .unwrap();
    let resp = http.get(&url).bearer_auth(&oauth).send().await.unwrap();
    assert_eq!(resp.status(), 401, "an OAuth token is not a machine token");
    let me = http
        .get(format!("{}/api/me", app.base_url()))
        .bearer_auth(&oauth)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    app.shutdown().await;
}

/// With this service's machine configured, `GET /api/machine` accepts only M2M tokens granted
/// to it (opaque: verified with its machine secret key; JWT: by its granted machines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_route_with_a_receiving_machine() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Issuer::serve(listener, IssuerConfig::default())
        .await
        .unwrap();
    let api = issuer.create_machine("api").unwrap();
    let other = issuer.create_machine("other").unwrap();
    let clerk = ClerkConfig::from_env_values(
        Some(&issuer.secret_key()),
        Some(&issuer.publishable_key()),
        Some(&issuer.base_url()),
        Some(&issuer.base_url()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let machine = MachineEnv {
        id: api.id.clone(),
        secret_key: api.secret_key.clone(),
    };
    let router = app(&clerk, &format!("{base}/mcp"), Some(&machine)).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
        let mint = |to: &str| {
            issuer
                .mint_machine_token(MachineTokenRequest {
                    subject: "mch_worker".into(),
                    scopes: vec![to.to_owned()],
                    format: Some(format),
                    ..Default::default()
                })
                .unwrap()
        };
        let call = |token: String| {
            http.get(format!("{base}/api/machine"))
                .bearer_auth(token)
                .send()
        };
        assert_eq!(call(mint(&api.id)).await.unwrap().status(), 200, "{format}");
        assert_eq!(
            call(mint(&other.id)).await.unwrap().status(),
            401,
            "{format}: not granted to this machine"
        );
    }
    let missing_id = MachineEnv::from_env(|name| {
        (name == "CLERK_MACHINE_SECRET_KEY").then(|| "ak_x".to_owned())
    });
    assert!(
        missing_id.is_err(),
        "a machine secret key needs its machine id"
    );
}
