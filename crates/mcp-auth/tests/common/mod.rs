//! Shared test support: keys generated at test time, a JWKS server and an MCP server on
//! loopback port 0, token minting, and a small JSON-RPC client.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::encoding::AsDer;
use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl TestKey {
    pub fn rsa(kid: &str) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).unwrap();
        let encoding =
            EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap();
        Self::finish(kid, Algorithm::RS256, encoding)
    }

    pub fn ec(kid: &str) -> Self {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let encoding =
            EncodingKey::from_ec_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).unwrap();
        Self::finish(kid, Algorithm::ES256, encoding)
    }

    fn finish(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with this key (header `kid`, `typ` as given).
    pub fn sign(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard access-token claims for `sub`, valid for an hour.
pub fn claims(iss: &str, aud: &str, sub: &str, scope: &str) -> Value {
    let now = now();
    json!({
        "iss": iss, "aud": aud, "sub": sub, "client_id": "client_test",
        "scope": scope, "iat": now, "nbf": now, "exp": now + 3600, "jti": format!("oat_{sub}_{now}"),
    })
}

/// A JWKS endpoint on loopback whose keys, availability and fetch count the test controls.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    state: Arc<JwksState>,
}

struct JwksState {
    keys: Mutex<Vec<Jwk>>,
    down: AtomicBool,
    /// Accept requests and never answer them (a hung key endpoint).
    hanging: AtomicBool,
    fetches: AtomicUsize,
}

impl JwksServer {
    pub async fn start(keys: Vec<Jwk>) -> Self {
        let state = Arc::new(JwksState {
            keys: Mutex::new(keys),
            down: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            fetches: AtomicUsize::new(0),
        });
        async fn serve(State(s): State<Arc<JwksState>>) -> axum::response::Response {
            s.fetches.fetch_add(1, Ordering::SeqCst);
            if s.hanging.load(Ordering::SeqCst) {
                // Held until the client gives up: no answer ever comes on this request, even
                // after the endpoint recovers (only new requests are answered).
                std::future::pending::<()>().await;
            }
            if s.down.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let keys = s.keys.lock().unwrap().clone();
            axum::Json(json!({ "keys": keys })).into_response()
        }
        let app = Router::new()
            .route("/jwks.json", get(serve))
            .with_state(state.clone());
        let addr = spawn(app).await;
        Self {
            url: format!("http://{addr}/jwks.json"),
            state,
        }
    }

    pub fn set_keys(&self, keys: Vec<Jwk>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// While set, requests are accepted and never answered.
    #[allow(dead_code)]
    pub fn set_hanging(&self, hanging: bool) {
        self.state.hanging.store(hanging, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

/// Serves `app` on 127.0.0.1 port 0.
pub async fn spawn(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Serves a router built for the bound address (so the resource URL can carry the port).
pub async fn spawn_with(build: impl FnOnce(SocketAddr) -> Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = build(addr);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub const PROTOCOL: &str = "2025-06-18";

pub fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name":"test","version":"0"}}})
}

pub fn call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name": tool, "arguments": args}})
}

/// POSTs a JSON-RPC message to `url` with `token` (if any) and extra headers.
pub async fn post(
    url: &str,
    token: Option<&str>,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL)
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Opens an MCP session as `token`'s caller (`initialize`, then `notifications/initialized`)
/// and returns its id.
#[allow(dead_code)]
pub async fn open_initialized_session(url: &str, token: &str) -> String {
    let resp = post(url, Some(token), &initialize(), &[]).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let resp = post(
        url,
        Some(token),
        &initialized,
        &[("mcp-session-id", &session)],
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    session
}

/// The JSON-RPC answer in a response (plain JSON or a single SSE `data:` event).
pub async fn rpc_result(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    let json_text = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .unwrap_or(text);
    serde_json::from_str(&json_text).unwrap_or_else(|_| panic!("not JSON-RPC: {json_text}"))
}

pub const ISSUER: &str = "https://issuer.test";

/// An MCP server protected by a JWKS-backed verifier, with `whoami` and the scoped
/// `admin-report` (`admin:read`) and `audit-log` (`audit:read`) tools, on loopback.
pub struct TestServer {
    pub addr: SocketAddr,
    pub mcp: String,
    pub resource: String,
    pub key: TestKey,
    pub jwks: JwksServer,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct NoArgs {}

pub struct Options {
    pub sessions: bool,
    pub max_sessions: u64,
    pub max_sessions_per_user: u64,
    pub audience_optional: bool,
    pub max_body: usize,
    pub hierarchy: mcp_auth::ScopeHierarchy,
    pub hide_unauthorized_tools: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sessions: false,
            max_sessions: mcp_auth::DEFAULT_MAX_SESSIONS,
            max_sessions_per_user: mcp_auth::DEFAULT_MAX_SESSIONS_PER_USER,
            audience_optional: false,
            max_body: mcp_auth::DEFAULT_MAX_BODY_BYTES,
            hierarchy: mcp_auth::ScopeHierarchy::default(),
            hide_unauthorized_tools: false,
        }
    }
}

pub async fn start_server(opts: Options) -> TestServer {
    start_server_with(opts, |b| b).await
}

/// [`start_server`], with `extra` applied to the server builder.
pub async fn start_server_with(
    opts: Options,
    extra: impl FnOnce(mcp_auth::McpServerBuilder) -> mcp_auth::McpServerBuilder,
) -> TestServer {
    let key = TestKey::rsa("key-1");
    let jwks = JwksServer::start(vec![key.jwk.clone()]).await;
    let jwks_url = jwks.url.clone();
    let mut resource = String::new();
    let addr = spawn_with(|addr| {
        resource = format!("http://{addr}/mcp");
        let builder = mcp_auth::JwtVerifier::builder(
            ISSUER,
            mcp_auth::Jwks::from_url(jwks_url.parse().unwrap()),
        );
        let builder = if opts.audience_optional {
            builder.audience(mcp_auth::Audience::RequiredIfPresent(vec![
                resource.clone(),
            ]))
        } else {
            builder.resource(resource.clone())
        };
        let verifier = mcp_auth::CachedVerifier::new(builder.build().unwrap());
        extra(mcp_auth::McpServer::builder(&resource))
            .authorization_server(ISSUER)
            .legacy_authorization_server_metadata(false)
            // `offline_access` is configured on purpose: it must appear in no challenge and
            // not in the metadata (the golden file does not list it).
            .scopes_supported(["openid", "profile", "admin:read", "offline_access"])
            .challenge_scopes(["openid", "profile", "offline_access"])
            .scope_hierarchy(opts.hierarchy)
            .hide_unauthorized_tools(opts.hide_unauthorized_tools)
            .resource_name("test server")
            .verifier(verifier)
            .sessions(opts.sessions)
            .max_sessions(opts.max_sessions)
            .max_sessions_per_user(opts.max_sessions_per_user)
            .max_body_bytes(opts.max_body)
            .tool(
                "whoami",
                "Who is calling",
                |_: NoArgs, auth: mcp_auth::AuthInfo| async move {
                    rmcp::model::CallToolResult::structured(json!({
                        "user_id": auth.user_id(),
                        "client_id": auth.client_id(),
                        "scopes": auth.scopes(),
                    }))
                },
            )
            .scoped_tool(
                "admin-report",
                "Needs admin:read",
                ["admin:read"],
                |_: NoArgs, auth: mcp_auth::AuthInfo| async move {
                    format!("report for {}", auth.user_id())
                },
            )
            .scoped_tool(
                "audit-log",
                "Needs audit:read",
                ["audit:read"],
                |_: NoArgs, auth: mcp_auth::AuthInfo| async move {
                    format!("audit log for {}", auth.user_id())
                },
            )
            .build()
            .unwrap()
    })
    .await;
    TestServer {
        addr,
        mcp: format!("http://{addr}/mcp"),
        resource,
        key,
        jwks,
    }
}

impl TestServer {
    /// A valid token for `sub` with `scope`.
    pub fn token(&self, sub: &str, scope: &str) -> String {
        self.key
            .sign(&claims(ISSUER, &self.resource, sub, scope), Some("at+jwt"))
    }

    pub fn metadata_url(&self) -> String {
        format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            self.addr
        )
    }
}
