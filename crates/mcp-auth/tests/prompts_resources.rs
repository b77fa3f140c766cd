//! Scopes beyond tools: `prompts/get` per prompt name and `resources/read` (and
//! `resources/subscribe`, `resources/unsubscribe`, and the resources a 2026-07-28
//! `subscriptions/listen` follows) per URI or URI prefix, refused with the step-up challenge
//! before the handler runs, over real HTTP.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use mcp_auth::{McpServer, ScopeHierarchy};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, PromptMessage,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
        Role, ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
        UnsubscribeRequestParams,
    },
    service::{RequestContext, SubscriptionContext},
};
use serde_json::{Value, json};

/// Serves any prompt and any resource, and records what it served: a refused request must
/// never reach it.
#[derive(Clone, Default)]
struct Library {
    served: Arc<Mutex<Vec<String>>>,
}

impl ServerHandler for Library {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.served
            .lock()
            .unwrap()
            .push(format!("prompt {}", request.name));
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("prompt {}", request.name),
        )])
        .into())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.served
            .lock()
            .unwrap()
            .push(format!("resource {}", request.uri));
        Ok(ReadResourceResult::new(vec![ResourceContents::text("contents", request.uri)]).into())
    }

    // Legacy-only in rmcp 3.11 (2026-07-28 clients use `subscriptions/listen`), still served
    // to the revisions before it.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.served
            .lock()
            .unwrap()
            .push(format!("subscribe {}", request.uri));
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.served
            .lock()
            .unwrap()
            .push(format!("unsubscribe {}", request.uri));
        Ok(())
    }

    /// 2026-07-28: accepts every resource a `subscriptions/listen` asks to follow (rmcp 3.11
    /// hands it the request's `notifications` filter, `src/handler/server.rs`).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let uris = requested.resource_subscriptions.clone().unwrap_or_default();
        self.served
            .lock()
            .unwrap()
            .push(format!("listen {}", uris.join(" ")));
        Some(requested.clone())
    }

    /// Ends the stream at once (a graceful end: rmcp sends the final result).
    async fn listen(&self, _subscription: SubscriptionContext) -> Result<(), ErrorData> {
        Ok(())
    }
}

struct Server {
    mcp: String,
    resource: String,
    key: TestKey,
    served: Arc<Mutex<Vec<String>>>,
    _jwks: JwksServer,
}

impl Server {
    fn token(&self, scope: &str) -> String {
        self.key.sign(
            &claims(ISSUER, &self.resource, "user_alice", scope),
            Some("at+jwt"),
        )
    }

    fn served(&self) -> Vec<String> {
        self.served.lock().unwrap().clone()
    }
}

async fn start(hierarchy: ScopeHierarchy) -> Server {
    let key = TestKey::rsa("k1");
    let jwks = JwksServer::start(vec![key.jwk.clone()]).await;
    let library = Library::default();
    let served = library.served.clone();
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
            .scope_hierarchy(hierarchy)
            .prompt_scopes("incident", ["ops:read"])
            .resource_scopes("file:///secret/", ["secret:read"])
            .resource_scopes("file:///secret/hr/", ["hr:read"])
            .resource_scopes("db://users", ["users:read"])
            .build_with(move || Ok(library.clone()))
            .unwrap()
    })
    .await;
    Server {
        mcp: format!("http://{addr}/mcp"),
        resource,
        key,
        served,
        _jwks: jwks,
    }
}

fn get_prompt(name: &str) -> Value {
    json!({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name": name}})
}

fn read(uri: &str) -> Value {
    json!({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri": uri}})
}

/// `resources/subscribe` or `resources/unsubscribe` of `uri`.
fn subscription(method: &str, uri: &str) -> Value {
    json!({"jsonrpc":"2.0","id":5,"method": method,"params":{"uri": uri}})
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A scoped prompt without its scope: 403 naming the scopes to request, the handler never
/// runs; other prompts are served; with the scope the prompt is served.
#[tokio::test]
async fn scoped_prompt_steps_up() {
    let s = start(ScopeHierarchy::exact()).await;
    let narrow = s.token("openid");
    let resp = post(&s.mcp, Some(&narrow), &get_prompt("incident"), &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(
        challenge(&resp).contains("scope=\"openid ops:read\", error=\"insufficient_scope\""),
        "{}",
        challenge(&resp)
    );
    assert!(s.served().is_empty(), "{:?}", s.served());

    let resp = post(&s.mcp, Some(&narrow), &get_prompt("greeting"), &[]).await;
    assert_eq!(resp.status(), 200);
    let resp = post(
        &s.mcp,
        Some(&s.token("openid ops:read")),
        &get_prompt("incident"),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(
        r["result"]["messages"][0]["content"]["text"], "prompt incident",
        "{r}"
    );
    assert_eq!(s.served(), ["prompt greeting", "prompt incident"]);
}

/// Resource patterns: a prefix ending in `/` covers what is below it, a pattern without one
/// covers itself and what continues it with `/`, `?` or `#`, never a sibling (`db://users`
/// does not cover `db://users_archive`); nested patterns add their scopes, and the challenge
/// names all of them.
#[tokio::test]
async fn resource_patterns_step_up() {
    let s = start(ScopeHierarchy::exact()).await;
    let narrow = s.token("openid");
    for (uri, scope) in [
        ("file:///secret/plan.txt", "openid secret:read"),
        ("file:///secret/hr/pay.csv", "openid secret:read hr:read"),
        ("db://users", "openid users:read"),
        ("db://users/42", "openid users:read"),
        ("db://users?active=true", "openid users:read"),
    ] {
        let resp = post(&s.mcp, Some(&narrow), &read(uri), &[]).await;
        assert_eq!(resp.status(), 403, "{uri}");
        assert!(
            challenge(&resp).contains(&format!("scope=\"{scope}\", error=\"insufficient_scope\"")),
            "{uri}: {}",
            challenge(&resp)
        );
    }
    assert!(s.served().is_empty(), "{:?}", s.served());
    for uri in ["db://users_archive", "file:///secret", "file:///public/a"] {
        let resp = post(&s.mcp, Some(&narrow), &read(uri), &[]).await;
        assert_eq!(resp.status(), 200, "{uri}");
    }
    // `secret:read` alone is not enough below `hr/`.
    let resp = post(
        &s.mcp,
        Some(&s.token("secret:read")),
        &read("file:///secret/hr/pay.csv"),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 403);
    let resp = post(
        &s.mcp,
        Some(&s.token("secret:read hr:read")),
        &read("file:///secret/hr/pay.csv"),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let r = rpc_result(resp).await;
    assert_eq!(
        r["result"]["contents"][0]["uri"],
        "file:///secret/hr/pay.csv"
    );
}

/// The scope hierarchy applies to prompts and resources as to tools.
#[tokio::test]
async fn hierarchy_covers_prompts_and_resources() {
    let s = start(ScopeHierarchy::by_prefix(':').implies("root", ["ops", "users"])).await;
    let root = s.token("root");
    for body in [get_prompt("incident"), read("db://users/1")] {
        let resp = post(&s.mcp, Some(&root), &body, &[]).await;
        assert_eq!(resp.status(), 200, "{body}");
    }
    let resp = post(&s.mcp, Some(&root), &read("file:///secret/a"), &[]).await;
    assert_eq!(resp.status(), 403);
}

/// Escapes, duplicate keys and batches do not hide a scoped prompt or resource from the
/// guard (rmcp decodes escapes and would serve them).
#[tokio::test]
async fn spelling_does_not_hide_prompts_or_resources() {
    let s = start(ScopeHierarchy::exact()).await;
    let narrow = s.token("openid");
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts\/get","params":{"name":"inci\u0064ent"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:\/\/\/secret\/a"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"m\u0065thod":"resources/read","params":{"\u0075ri":"db://users"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"incident","uri":7}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"db://x","uri":"db://users"}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"incident"}}]"#,
    ] {
        let resp = reqwest::Client::new()
            .post(&s.mcp)
            .bearer_auth(&narrow)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{body}");
    }
    assert!(s.served().is_empty(), "{:?}", s.served());
}

/// 2026-07-28: the `Mcp-Method`/`Mcp-Name` headers decide, `Mcp-Name` decoded from its
/// `=?base64?…?=` form as rmcp decodes it. Read raw, the encoded name would be an unknown
/// prompt and rmcp (which decodes it and finds it equal to the body's) would serve the
/// scoped prompt unchecked.
#[tokio::test]
async fn standard_headers_decide_for_prompts_and_resources() {
    let s = start(ScopeHierarchy::exact()).await;
    let narrow = s.token("openid");
    let send = |method: &'static str, name: &'static str, body: Value| {
        reqwest::Client::new()
            .post(&s.mcp)
            .bearer_auth(&narrow)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .header("mcp-name", name)
            .json(&body)
            .send()
    };
    // `aW5jaWRlbnQ=` is base64 for `incident`.
    let resp = send(
        "prompts/get",
        "=?base64?aW5jaWRlbnQ=?=",
        get_prompt("incident"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = send("resources/read", "db://users/7", read("db://users/7"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(challenge(&resp).contains("users:read"));
    assert!(s.served().is_empty(), "{:?}", s.served());
}

/// `resources/subscribe` and `resources/unsubscribe` follow the rule of `resources/read`: a
/// URI a pattern covers needs the pattern's scopes (nested patterns add up), whether the body
/// names it or, for 2026-07-28, the `Mcp-Method`/`Mcp-Name` headers do; the handler never
/// runs for a refused one. Uncovered URIs, and covered ones with the scope, are served.
#[tokio::test]
async fn subscriptions_step_up_like_reads() {
    let s = start(ScopeHierarchy::exact()).await;
    let narrow = s.token("openid");
    for method in ["resources/subscribe", "resources/unsubscribe"] {
        for (uri, scope) in [
            ("file:///secret/plan.txt", "openid secret:read"),
            ("file:///secret/hr/pay.csv", "openid secret:read hr:read"),
            ("db://users/42", "openid users:read"),
        ] {
            let resp = post(&s.mcp, Some(&narrow), &subscription(method, uri), &[]).await;
            assert_eq!(resp.status(), 403, "{method} {uri}");
            assert!(
                challenge(&resp)
                    .contains(&format!("scope=\"{scope}\", error=\"insufficient_scope\"")),
                "{method} {uri}: {}",
                challenge(&resp)
            );
        }
        // Escaped in the body, as rmcp would decode it.
        let escaped = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{}","params":{{"uri":"file:\/\/\/secret\/a"}}}}"#,
            method.replace('/', "\\/")
        );
        let resp = reqwest::Client::new()
            .post(&s.mcp)
            .bearer_auth(&narrow)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .body(escaped.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{escaped}");
        // 2026-07-28: the standard headers decide (rmcp checks them against the body).
        let resp = reqwest::Client::new()
            .post(&s.mcp)
            .bearer_auth(&narrow)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .header("mcp-name", "db://users/7")
            .json(&subscription(method, "db://users/7"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} by headers");
        assert!(challenge(&resp).contains("users:read"));
    }
    assert!(s.served().is_empty(), "{:?}", s.served());

    let resp = post(
        &s.mcp,
        Some(&narrow),
        &subscription("resources/subscribe", "file:///public/a"),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let wide = s.token("secret:read hr:read");
    for method in ["resources/subscribe", "resources/unsubscribe"] {
        let resp = post(
            &s.mcp,
            Some(&wide),
            &subscription(method, "file:///secret/hr/pay.csv"),
            &[],
        )
        .await;
        assert_eq!(resp.status(), 200, "{method}");
        let r = rpc_result(resp).await;
        assert!(r.get("error").is_none(), "{r}");
    }
    assert_eq!(
        s.served(),
        [
            "subscribe file:///public/a",
            "subscribe file:///secret/hr/pay.csv",
            "unsubscribe file:///secret/hr/pay.csv"
        ]
    );
}

/// A 2026-07-28 `subscriptions/listen` for resources (`params.notifications.resourceSubscriptions`)
/// follows the rule of `resources/read` for each URI it lists: one refused URI refuses the
/// request, the challenge names the scopes of every listed URI, and the handler's filter is
/// never consulted. The headers name no resource for this method, so the body decides even
/// when they are verified; escapes do not hide a URI. With the scopes it is served.
#[tokio::test]
async fn subscriptions_listen_steps_up_like_reads() {
    let s = start(ScopeHierarchy::exact()).await;
    let listen = |uris: &[&str]| {
        json!({"jsonrpc":"2.0","id":"listen-1","method":"subscriptions/listen","params":{
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            },
            "notifications": {"resourceSubscriptions": uris}}})
        .to_string()
    };
    let send = |token: String, body: String| {
        let url = s.mcp.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "subscriptions/listen")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let narrow = s.token("openid");
    let both = listen(&[
        "file:///public/a",
        "file:///secret/hr/pay.csv",
        "db://users/1",
    ]);
    let resp = send(narrow.clone(), both.clone()).await;
    assert_eq!(resp.status(), 403);
    assert!(
        challenge(&resp).contains(
            "scope=\"openid secret:read hr:read users:read\", error=\"insufficient_scope\""
        ),
        "{}",
        challenge(&resp)
    );
    let escaped = listen(&["file:///secret/x"])
        .replace("resourceSubscriptions", "resource\\u0053ubscriptions")
        .replace("file:///secret/x", "file:\\/\\/\\/secret\\/x");
    assert!(escaped.contains("\\u0053"), "{escaped}");
    let resp = send(narrow.clone(), escaped).await;
    assert_eq!(resp.status(), 403);
    assert!(
        challenge(&resp).contains("secret:read"),
        "{}",
        challenge(&resp)
    );
    assert!(s.served().is_empty(), "{:?}", s.served());

    let resp = send(narrow, listen(&["file:///public/a"])).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await.unwrap();
    let resp = send(s.token("secret:read hr:read users:read"), both).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await.unwrap();
    assert_eq!(
        s.served(),
        [
            "listen file:///public/a",
            "listen file:///public/a file:///secret/hr/pay.csv db://users/1"
        ]
    );
}
