//! The example binary run as a user would run it, against an issuer that exists only in this
//! test (metadata + JWKS on loopback, keys generated now): RS256 and ES256 tokens both work,
//! the scoped tool steps up, and the strict audience default holds.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::encoding::AsDer;
use axum::{Json, Router, routing::get};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};

struct Key {
    kid: &'static str,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Jwk,
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

fn key(kid: &'static str, alg: Algorithm) -> Key {
    let enc = match alg {
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).unwrap();
            EncodingKey::from_rsa_pem(pem(der.as_ref()).as_bytes()).unwrap()
        }
        _ => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .unwrap();
            EncodingKey::from_ec_pem(pem(pair.to_pkcs8v1().unwrap().as_ref()).as_bytes()).unwrap()
        }
    };
    let mut jwk = Jwk::from_encoding_key(&enc, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    Key { kid, alg, enc, jwk }
}

fn sign(k: &Key, claims: &Value) -> String {
    let mut h = Header::new(k.alg);
    h.kid = Some(k.kid.into());
    h.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&h, claims, &k.enc).unwrap()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port and waits for its "ready" log line.
fn start(issuer: &str, extra: &[&str]) -> (Server, String) {
    let (server, url, _lines) = start_logging(issuer, extra, Some("info"));
    (server, url)
}

/// Like [`start`], with `RUST_LOG` set to `rust_log` (`None`: unset, the binary's default) and
/// the log lines after the "ready" line handed over as they come.
fn start_logging(
    issuer: &str,
    extra: &[&str],
    rust_log: Option<&str>,
) -> (Server, String, std::sync::mpsc::Receiver<String>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_oidc-resource-server"));
    command
        .args(["--issuer", issuer, "--port", &port.to_string()])
        .args(extra)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = format!("http://127.0.0.1:{port}/mcp");
    loop {
        let line = lines
            .next()
            .expect("server exited before it was ready")
            .unwrap();
        if line.contains("MCP server ready") {
            assert!(line.contains(&url), "{line}");
            break;
        }
    }
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            // The test may have stopped listening; keep draining so the child never blocks.
            let _ = send.send(line);
        }
    });
    (Server(child), url, receive)
}

async fn call(url: &str, token: &str, tool: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{}}}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

// Multi-threaded: the test blocks a thread reading the child's stdout while the fake issuer
// must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_any_rs256_or_es256_issuer_work() {
    let rsa = key("rsa-1", Algorithm::RS256);
    let ec = key("ec-1", Algorithm::ES256);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let meta = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
    let keys = json!({"keys": [rsa.jwk, ec.jwk]});
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { Json(meta) }),
        )
        .route("/keys", get(move || async move { Json(keys) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (_server, url) = start(&issuer, &[]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |sub: &str, scope: &str, aud: Option<&str>| {
        let mut c = json!({"iss": issuer, "sub": sub, "client_id": "cli", "scope": scope, "iat": now, "exp": now + 600});
        if let Some(a) = aud {
            c["aud"] = json!(a);
        }
        c
    };
    for (k, user) in [(&rsa, "user_rs"), (&ec, "user_es")] {
        let (status, body) = call(
            &url,
            &sign(k, &claims(user, "openid", Some(&url))),
            "whoami",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["content"][0]["text"], user);
        assert_eq!(body["result"]["structuredContent"]["client_id"], "cli");
    }
    let (status, _) = call(
        &url,
        &sign(&rsa, &claims("user_rs", "openid", Some(&url))),
        "admin-report",
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = call(
        &url,
        &sign(&rsa, &claims("user_rs", "admin:read", Some(&url))),
        "admin-report",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Strict audience by default: a token without `aud` is refused...
    let (status, _) = call(
        &url,
        &sign(&rsa, &claims("user_rs", "openid", None)),
        "whoami",
    )
    .await;
    assert_eq!(status, 401);
    drop(_server);

    // ...and accepted with the documented opt-out, which still refuses a wrong `aud`.
    let (_server, url) = start(&issuer, &["--audience-optional"]);
    let (status, _) = call(
        &url,
        &sign(&rsa, &claims("user_rs", "openid", None)),
        "whoami",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &url,
        &sign(
            &rsa,
            &claims("user_rs", "openid", Some("https://elsewhere/mcp")),
        ),
        "whoami",
    )
    .await;
    assert_eq!(status, 401);
    drop(_server);

    // `--sessions` keeps MCP sessions; without it every answer is stateless.
    let initialize = |url: String, token: String| async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"cli","version":"0"}}}))
            .send()
            .await
            .unwrap()
    };
    for (flags, stateful) in [(&[][..], false), (&["--sessions"][..], true)] {
        let (_server, url) = start(&issuer, flags);
        let token = sign(&rsa, &claims("user_rs", "openid", Some(&url)));
        let resp = initialize(url, token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().contains_key("mcp-session-id"),
            stateful,
            "{flags:?}"
        );
    }
}

/// Run as shipped (no `RUST_LOG`), the server writes exactly one line per request: the access
/// line, with the method, user, client, tool, status and duration, and never the token. rmcp's
/// per-request `info` lines (it sets up a service for every stateless request) are silenced by
/// the default filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_log_is_one_access_line_per_request() {
    let rsa = key("rsa-1", Algorithm::RS256);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let keys = json!({"keys": [rsa.jwk]});
    let app = Router::new().route("/keys", get(move || async move { Json(keys) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let jwks = format!("{issuer}/keys");
    let (_server, url, lines) = start_logging(&issuer, &["--jwks-url", &jwks], None);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = sign(
        &rsa,
        &json!({"iss": issuer, "sub": "user_log", "client_id": "cli", "aud": url,
                "scope": "openid", "iat": now, "exp": now + 600}),
    );
    const REQUESTS: usize = 3;
    for _ in 0..REQUESTS {
        let (status, body) = call(&url, &token, "whoami").await;
        assert_eq!(status, 200, "{body}");
    }
    // Lines arrive in the order they were written. rmcp's chatter for a request starts before
    // the request's access line ("Service initialized as server"), so with it on, the first
    // lines after "ready" would not all be access lines.
    let mut logged = Vec::new();
    while logged.len() < REQUESTS {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("fewer than {REQUESTS} lines: {logged:#?}"));
        logged.push(line);
    }
    for line in &logged {
        for field in [
            " INFO ",
            "mcp_auth::access",
            "method=POST",
            "user=\"user_log\"",
            "client=\"cli\"",
            "tool=\"whoami\"",
            "status=200",
            "duration_us=",
        ] {
            assert!(
                line.contains(field),
                "{field} missing from: {line}\nall: {logged:#?}"
            );
        }
        assert!(
            !line.contains(&token[token.len() - 40..]),
            "token in: {line}"
        );
    }
}
