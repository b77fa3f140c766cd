//! The persistent state (`state_dir`, `--state-dir`): what survives a restart, crash safety
//! under SIGKILL, one owner per directory, no usable secret on disk, and the page a client with
//! a forgotten registration lands on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{REDIRECT, TestIssuer, jwt_parts, pkce, start, start_on};
use mcp_auth_issuer::{
    ApiKeyRequest, IssuerConfig, MachineTokenRequest, MintRequest, SessionTokenRequest, TokenFormat,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "mcp-auth-issuer-state-{tag}-{}-{nanos}",
            std::process::id()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn persistent(dir: &Path) -> IssuerConfig {
    IssuerConfig {
        state_dir: Some(dir.to_path_buf()),
        ..IssuerConfig::default()
    }
}

/// Restart `issuer` on the same address (same `iss`) with `config`.
async fn restart(issuer: TestIssuer, config: IssuerConfig) -> TestIssuer {
    let addr = issuer.handle.local_addr();
    issuer.handle.shutdown().await.unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    start_on(listener, config).await
}

/// A public client registered while public clients were admitted is refused at the token
/// endpoint (`invalid_client`) once the issuer restarts with `public_clients: false`: the
/// setting holds for every client, not only new registrations.
#[tokio::test]
async fn a_stored_public_client_is_refused_without_public_clients() {
    let dir = TempDir::new("public-off");
    let issuer = start(persistent(&dir.0)).await;
    let client_id = issuer.public_client().await;
    let issuer = restart(
        issuer,
        IssuerConfig {
            public_clients: false,
            ..persistent(&dir.0)
        },
    )
    .await;
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (status, error, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"], "invalid_client");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("confidential clients only"),
        "{error}"
    );
}

/// Everything a client holds keeps working after a restart: its registration (client
/// authentication with its secret), its JWT access token (same keys), its refresh token, its
/// opaque token; revocations stay revoked; the secret key is the same, and so are the users the
/// first run was given (the second is given none).
#[tokio::test]
async fn clients_and_tokens_survive_a_restart() {
    let dir = TempDir::new("survive");
    let mut users = mcp_auth_issuer::default_users();
    users.push(
        serde_json::from_value(json!({
            "id": "user_2daveXXXXXXXXXXXXXXXXXXXXXX",
            "first_name": "Dave",
            "last_name": "Doe",
            "email": "dave@example.com",
        }))
        .unwrap(),
    );
    let issuer = start(IssuerConfig {
        users: Some(users.clone()),
        ..persistent(&dir.0)
    })
    .await;
    let (client_id, secret) = issuer.confidential_client("client_secret_post").await;
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (status, tokens, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let opaque = issuer
        .handle
        .mint_access_token(MintRequest {
            format: Some(TokenFormat::Opaque),
            ..MintRequest::new(issuer.alice(), "c")
        })
        .unwrap();
    let revoked = issuer
        .handle
        .mint_access_token(MintRequest {
            format: Some(TokenFormat::Opaque),
            ..MintRequest::new(issuer.alice(), "c")
        })
        .unwrap();
    assert!(issuer.handle.revoke(&revoked));
    let secret_key = issuer.handle.secret_key();

    let issuer = restart(issuer, persistent(&dir.0)).await;
    assert_eq!(issuer.handle.secret_key(), secret_key);
    assert_eq!(issuer.handle.users(), users);
    let verify = |token: String| {
        let issuer = &issuer;
        async move {
            let response = issuer
                .backend_post(
                    "/v1/oauth_applications/access_tokens/verify",
                    json!({ "access_token": token }),
                )
                .await;
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = verify(access).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"], issuer.alice());
    let (status, body) = verify(opaque).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], false);
    // A revoked token is refused with 404, as at Clerk; that it is still known (not lost with
    // the restart) shows in the administrator's revoke finding it.
    let (status, body) = verify(revoked.clone()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a revocation survives the restart: {body}"
    );
    assert!(
        issuer.handle.revoke(&revoked),
        "the revoked token is still known"
    );

    let (status, refreshed, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    // Rotation state survived too: the old refresh token is now a replay.
    let (status, replay, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{replay}");
    issuer.handle.shutdown().await.unwrap();
}

/// A second issuer on a directory in use refuses to start, naming the directory and the
/// process that holds it; after the first shuts down it starts.
#[tokio::test]
async fn a_state_directory_has_one_owner() {
    let dir = TempDir::new("owner");
    let first = start(persistent(&dir.0)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = mcp_auth_issuer::Issuer::serve(listener, persistent(&dir.0))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, mcp_auth_issuer::Error::StateLocked { .. }),
        "{message}"
    );
    assert!(message.contains(&dir.0.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    first.handle.shutdown().await.unwrap();
    let again = start(persistent(&dir.0)).await;
    again.handle.shutdown().await.unwrap();
}

/// `POST /m2m_tokens/verify` with `token`, authenticated by `key` (the instance secret key or a
/// machine secret key): the status and the answer.
async fn verify_m2m(issuer: &TestIssuer, key: &str, token: &str) -> (StatusCode, Value) {
    let response = issuer
        .http
        .post(issuer.url("/m2m_tokens/verify"))
        .bearer_auth(key)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Clerk machines survive a restart: a machine's secret key still authenticates
/// `m2m_tokens/verify`, an M2M token granted to it still verifies (its grant too: another
/// machine's key still gets 404), and the `last_used_at` the first verification recorded is
/// still there.
#[tokio::test]
async fn machines_and_machine_tokens_survive_a_restart() {
    let dir = TempDir::new("machines");
    let issuer = start(persistent(&dir.0)).await;
    let worker = issuer.handle.create_machine("worker").unwrap();
    let api = issuer.handle.create_machine("api").unwrap();
    let token = issuer
        .handle
        .mint_machine_token(MachineTokenRequest {
            subject: worker.id.clone(),
            scopes: vec![api.id.clone()],
            ..MachineTokenRequest::default()
        })
        .unwrap();
    let (status, before) = verify_m2m(&issuer, &api.secret_key, &token).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["last_used_at"], Value::Null, "{before}");

    let issuer = restart(issuer, persistent(&dir.0)).await;
    let (status, after) = verify_m2m(&issuer, &api.secret_key, &token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the machine secret key and the token: {after}"
    );
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["subject"], json!(worker.id));
    assert_eq!(after["scopes"], json!([api.id]));
    assert!(
        after["last_used_at"].is_u64(),
        "the first verification's use was kept: {after}"
    );
    let (status, body) = verify_m2m(&issuer, &worker.secret_key, &token).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not granted to the worker: {body}"
    );
    let (status, body) = verify_m2m(&issuer, &issuer.handle.secret_key(), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = verify_m2m(&issuer, "ak_not_a_machine_key", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    issuer.handle.shutdown().await.unwrap();
}

/// Every file of the state, as bytes.
fn state_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// No usable secret is on disk: every token, code and client secret the issuer handed out is
/// absent from every state file (database, WAL, shared memory, lock); only their SHA-256
/// hashes are there (which the test also finds, so it does look in the right place).
#[tokio::test]
async fn the_state_holds_no_usable_token() {
    let dir = TempDir::new("grep");
    let issuer = start(persistent(&dir.0)).await;
    let (client_id, client_secret) = issuer.confidential_client("client_secret_post").await;
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (status, tokens, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let alice = issuer.alice();
    let machine = issuer.handle.create_machine("grep").unwrap();
    let handed_out = vec![
        ("client secret", client_secret.clone()),
        ("authorization code", code.clone()),
        (
            "JWT access token",
            tokens["access_token"].as_str().unwrap().to_owned(),
        ),
        ("refresh token", refresh.clone()),
        (
            "rotated access token",
            rotated["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            "rotated refresh token",
            rotated["refresh_token"].as_str().unwrap().to_owned(),
        ),
        (
            "opaque access token",
            issuer
                .handle
                .mint_access_token(MintRequest {
                    format: Some(TokenFormat::Opaque),
                    ..MintRequest::new(alice.clone(), "c")
                })
                .unwrap(),
        ),
        (
            "API key",
            issuer
                .handle
                .mint_api_key(ApiKeyRequest {
                    subject: alice.clone(),
                    ..ApiKeyRequest::default()
                })
                .unwrap(),
        ),
        (
            "machine token",
            issuer
                .handle
                .mint_machine_token(MachineTokenRequest {
                    subject: "mch_test".into(),
                    ..MachineTokenRequest::default()
                })
                .unwrap(),
        ),
        ("machine secret key", machine.secret_key.clone()),
        (
            "M2M token granted to a machine",
            issuer
                .handle
                .mint_machine_token(MachineTokenRequest {
                    subject: machine.id.clone(),
                    scopes: vec![machine.id.clone()],
                    ..MachineTokenRequest::default()
                })
                .unwrap(),
        ),
        (
            "session token",
            issuer
                .handle
                .mint_session_token(SessionTokenRequest {
                    user_id: alice.clone(),
                    ..SessionTokenRequest::default()
                })
                .unwrap(),
        ),
    ];
    // Read while the issuer runs (the WAL holds the recent writes), then after it closed
    // (checkpointed into the database file).
    let running = state_bytes(&dir.0);
    issuer.handle.shutdown().await.unwrap();
    let closed = state_bytes(&dir.0);
    for (name, bytes) in running.iter().chain(&closed) {
        for (what, secret) in &handed_out {
            assert!(
                !contains(bytes, secret),
                "the {what} is stored in clear in {name}"
            );
        }
        // Also the JWT signatures: nothing reusable of a signed token.
        let jwt = tokens["access_token"].as_str().unwrap();
        assert!(!contains(bytes, jwt_signature(jwt)), "{name}");
    }
    let all: Vec<u8> = running
        .iter()
        .chain(&closed)
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert!(contains(&all, &sha256_hex(&refresh)), "the hash is stored");
    assert!(contains(&all, &client_id), "the client is stored");
    assert!(
        contains(&all, &sha256_hex(&machine.secret_key)),
        "the machine secret key's hash is stored"
    );
    assert!(contains(&all, &machine.id), "the machine is stored");
    let _ = jwt_parts;
}

fn jwt_signature(jwt: &str) -> &str {
    jwt.rsplit('.').next().unwrap()
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The state directory was deleted while a client kept its registration: the client arriving
/// at the authorization endpoint with its old `client_id` gets a page that says what happened
/// and how each client forgets its registration; registering again (RFC 7591) simply works.
#[tokio::test]
async fn a_forgotten_client_gets_a_page_that_says_what_to_do() {
    let dir = TempDir::new("wiped");
    let issuer = start(persistent(&dir.0)).await;
    let old_client = issuer.public_client().await;
    let addr = issuer.handle.local_addr();
    issuer.handle.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir.0).unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let issuer = start_on(listener, persistent(&dir.0)).await;

    let (_, challenge) = pkce();
    let url = issuer.authorize_url(&TestIssuer::standard_params(&old_client, &challenge));
    let response = issuer.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.headers().get("location").is_none(),
        "never redirected"
    );
    let html = response.text().await.unwrap();
    assert!(
        html.contains("This application is not registered here"),
        "{html}"
    );
    assert!(html.contains(&old_client), "names the client id");
    assert!(html.contains("state was deleted"), "says what happened");
    for client in ["cursor", "claude-code", "vscode", "inspector", "mcp-remote"] {
        assert!(
            html.contains(&format!("data-client=\"{client}\"")),
            "instructions for {client}"
        );
    }
    assert!(html.contains("Cursor: Clear All MCP Tokens"));
    assert!(html.contains("rm -rf ~/.mcp-auth"));

    // What a person sees, in headless Chromium (screenshot kept for review).
    let shot = screenshot_path("unknown-client.png");
    let seen = run_node("page-screenshot.mjs", &[&url, shot.to_str().unwrap()]).await;
    assert_eq!(seen["status"], 400, "{seen}");
    assert_eq!(seen["heading"], "This application is not registered here");
    let shown: Vec<&str> = seen["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["visible"] == true)
        .filter_map(|c| c["client"].as_str())
        .collect();
    assert_eq!(
        shown,
        ["cursor", "claude-code", "vscode", "inspector", "mcp-remote"],
        "{seen}"
    );
    let png = std::fs::read(&shot).expect("screenshot saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );

    // Registering again is all it takes.
    let new_client = issuer.public_client().await;
    issuer
        .consent_form(&TestIssuer::standard_params(&new_client, &challenge))
        .await;
    issuer.handle.shutdown().await.unwrap();
}

/// `target/test-artifacts/<name>` (created), where the consent-page screenshot also goes.
fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Run `node tests/js/<script> <args…>` (headless Chromium needs Debian's `chromium` and
/// `npm ci --prefix tests/js`; without them this fails, never skips); returns its JSON line.
async fn run_node(script: &str, args: &[&str]) -> Value {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "tests/js/node_modules is missing: run scripts/test.sh (or npm ci --prefix tests/js)"
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install Debian's chromium (`apt-get install -y chromium`) or set CHROMIUM_PATH"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("node")
            .arg(js.join(script))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node finished in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node {script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON line")
}

// --- the binary, killed mid-write --------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_mcp-auth-issuer");

/// The issuer binary on a free port with `dir` as state; returns it and its base URL.
async fn spawn_binary(dir: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--rate-limit", "100000"])
        .args(["--auto-approve-user", "user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6"])
        .arg("--state-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the issuer binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("Issuer / Frontend API") {
                return Some(rest.trim().to_owned());
            }
        }
        None
    })
    .await
    .expect("the issuer printed its banner in time");
    match base {
        Some(base) => {
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            (child, base)
        }
        None => {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "the issuer exited before serving: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// What one completed (acknowledged) operation left in the state.
#[derive(Clone)]
struct Acked {
    client_id: String,
    /// The newest refresh token of the client's grant, when one was issued.
    refresh: Option<String>,
}

/// One client's life: register, authorize (auto-approved), exchange the code, refresh twice.
/// Reports each acknowledged step.
async fn client_life(
    http: reqwest::Client,
    base: String,
    acked: tokio::sync::mpsc::UnboundedSender<Acked>,
) {
    let Ok(response) = http
        .post(format!("{base}/oauth/register"))
        .json(&json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
    else {
        return;
    };
    let Ok(body) = response.json::<Value>().await else {
        return;
    };
    let client_id = body["client_id"].as_str().unwrap_or_default().to_owned();
    let _ = acked.send(Acked {
        client_id: client_id.clone(),
        refresh: None,
    });
    let (verifier, challenge) = pkce();
    let url = format!(
        "{base}/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let Ok(response) = http.get(url).send().await else {
        return;
    };
    let Some(code) = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url::Url::parse(l).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
    else {
        return;
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("client_id", client_id.clone()),
        ("code", code),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_verifier", verifier),
    ];
    for _ in 0..3 {
        let Ok(response) = http
            .post(format!("{base}/oauth/token"))
            .form(&form)
            .send()
            .await
        else {
            return;
        };
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        let Some(refresh) = body["refresh_token"].as_str() else {
            return;
        };
        let _ = acked.send(Acked {
            client_id: client_id.clone(),
            refresh: Some(refresh.to_owned()),
        });
        form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", client_id.clone()),
            ("refresh_token", refresh.to_owned()),
        ];
    }
}

/// SIGKILL at any moment of a burst of registrations and token exchanges leaves a state that
/// opens, with every acknowledged operation in it: 20 times, the binary is killed after a
/// different number of acknowledged operations while others are in flight, restarted on the
/// same directory, and the last acknowledged registration and refresh token still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_issuer_mid_write_never_loses_acknowledged_state() {
    let dir = TempDir::new("kill");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for round in 0..20_usize {
        let (mut child, base) = spawn_binary(&dir.0).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (http, base, tx) = (http.clone(), base.clone(), tx.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    client_life(http.clone(), base.clone(), tx.clone()).await;
                    if tx.is_closed() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        // Kill after a different number of acknowledged operations each round, with the other
        // workers' requests in flight.
        let mut acked = Vec::new();
        while acked.len() < 3 + round * 2 {
            acked.push(rx.recv().await.expect("the workers report"));
        }
        child.start_kill().unwrap();
        let _ = child.wait().await;
        rx.close();
        for worker in workers {
            worker.abort();
        }

        let (mut child, base) = spawn_binary(&dir.0).await;
        let last_client = acked.last().unwrap().client_id.clone();
        let (_, challenge) = pkce();
        let response = http
            .get(format!(
                "{base}/oauth/authorize?response_type=code&client_id={last_client}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
                url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "round {round}: the last acknowledged registration is known"
        );
        if let Some(last) = acked.iter().rev().find(|a| a.refresh.is_some()) {
            let response = http
                .post(format!("{base}/oauth/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", &last.client_id),
                    ("refresh_token", last.refresh.as_deref().unwrap()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            // The newest token of its chain may already have been rotated by a later exchange
            // whose answer was lost in the kill: then it is a replay (400 invalid_grant), which
            // also proves the rotation was stored. Anything but the two is lost state.
            assert!(
                status == StatusCode::OK || body.contains("already used"),
                "round {round}: the last acknowledged refresh token is known: {status} {body}"
            );
        }
        // Wait until it is gone: its lock is released only when the process has exited.
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
}

/// Two binaries on one state directory: the second refuses to start and names the directory
/// and the first one's pid.
#[tokio::test]
async fn a_second_binary_on_the_same_state_refuses_to_start() {
    let dir = TempDir::new("second");
    let (first, _) = spawn_binary(&dir.0).await;
    let out = Command::new(BIN)
        .args(["--port", "0"])
        .arg("--state-dir")
        .arg(&dir.0)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&dir.0.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.id().unwrap())),
        "{stderr}"
    );
    drop(first);
}
