//! `mcp-remote` (npm), the bridge stdio-only MCP clients use to reach a remote server, against
//! the running quickstart. The test is the stdio client: it speaks newline-delimited JSON-RPC on
//! mcp-remote's stdin/stdout (initialize, notifications/initialized, tools/list, tools/call
//! `whoami`). mcp-remote meets the 401, discovers the issuer, registers itself dynamically and
//! prints the authorization URL; the test plays the browser (consent page → allow as a chosen user
//! → GET of the redirect to mcp-remote's loopback callback), mcp-remote exchanges the code and the
//! conversation proceeds: `whoami` answers with the consenting user's id.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use quickstart::{Options, Quickstart};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::mpsc,
};

/// Upper bound for each step (sign-in, each JSON-RPC round trip, the consent helper).
const STEP: Duration = Duration::from_secs(20);

fn js_dir() -> PathBuf {
    e2e::js_dir("mcp-remote")
}

/// A fresh directory for mcp-remote's state (client registration, tokens), removed at the end, so
/// the test never reads or writes the developer's `~/.mcp-auth`.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "mcp-auth-e2e-mcp-remote-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nobody listens on right now, for mcp-remote's OAuth callback server.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// mcp-remote as a child process, with its stderr drained into a log (for failure messages) and
/// a channel (to wait on lines).
struct McpRemote {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr_lines: mpsc::UnboundedReceiver<String>,
    stderr_log: Arc<Mutex<Vec<String>>>,
}

impl McpRemote {
    fn spawn(mcp_url: &str, callback_port: u16, state_dir: &Path) -> Self {
        let mut child = Command::new("node")
            .current_dir(js_dir())
            .arg("node_modules/mcp-remote/dist/proxy.js")
            .arg(mcp_url)
            .arg(callback_port.to_string())
            // The authorization URL must reach no real browser: with no display and no desktop
            // session, `open` (and the xdg-open fallback) go through $BROWSER, and `true` accepts
            // the URL and does nothing. The test reads the URL from stderr instead.
            .env("BROWSER", "true")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("XDG_CURRENT_DESKTOP")
            .env_remove("DESKTOP_SESSION")
            .env_remove("KDE_FULL_SESSION")
            .env_remove("GNOME_DESKTOP_SESSION_ID")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            // Client registration and tokens go to a fresh directory (verified name: the package's
            // getConfigDir() reads MCP_REMOTE_CONFIG_DIR, else ~/.mcp-auth); HOME too, for anything
            // else it might write.
            .env("MCP_REMOTE_CONFIG_DIR", state_dir.join("config"))
            .env("HOME", state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node could not be started");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, stderr_lines) = mpsc::unbounded_channel();
        let stderr_log = Arc::new(Mutex::new(Vec::new()));
        let log = stderr_log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            stdin,
            stdout,
            stderr_lines,
            stderr_log,
        }
    }

    fn stderr(&self) -> String {
        self.stderr_log.lock().unwrap().join("\n")
    }

    /// Waits for the stderr line that is the authorization URL on the issuer.
    async fn authorization_url(&mut self, issuer: &str) -> String {
        let prefix = format!("{issuer}/");
        let wait = async {
            while let Some(line) = self.stderr_lines.recv().await {
                let line = line.trim();
                if line.starts_with(&prefix) && line.contains("response_type=code") {
                    return Some(line.to_owned());
                }
            }
            None // stderr closed: mcp-remote exited
        };
        match tokio::time::timeout(STEP, wait).await {
            Ok(Some(url)) => url,
            Ok(None) => panic!(
                "mcp-remote exited without printing an authorization URL; stderr:\n{}",
                self.stderr()
            ),
            Err(_) => panic!(
                "mcp-remote printed no authorization URL within {STEP:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    async fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .expect("mcp-remote's stdin is closed");
        self.stdin.flush().await.unwrap();
    }

    /// Sends a request and returns its response, skipping notifications and other messages.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let wait = async {
            loop {
                let line = self.stdout.next_line().await.ok().flatten()?;
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue; // not JSON-RPC
                };
                if message["id"] == id && message.get("method").is_none() {
                    return Some(message);
                }
            }
        };
        match tokio::time::timeout(STEP, wait).await {
            Ok(Some(response)) => response,
            Ok(None) => panic!(
                "mcp-remote closed stdout before answering {method}; stderr:\n{}",
                self.stderr()
            ),
            Err(_) => panic!(
                "mcp-remote did not answer {method} within {STEP:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Runs `consent-to-callback.mjs`: consent as `user`, then the GET of the redirect to
/// mcp-remote's callback. Returns its JSON report.
async fn consent(authorization_url: &str, user: &str) -> Value {
    let mut cmd = Command::new("node");
    cmd.current_dir(js_dir())
        .arg("consent-to-callback.mjs")
        .arg(authorization_url)
        .arg(user)
        .kill_on_drop(true);
    let out = tokio::time::timeout(STEP, cmd.output())
        .await
        .expect("the consent helper hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "consent or callback failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("the consent helper's report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_remote_bridges_stdio_through_oauth() {
    let qs = Quickstart::start(Options {
        opaque_tokens: false,
        ..Options::default()
    })
    .await
    .unwrap();
    let issuer = qs.issuer().unwrap();
    let user = issuer.users()[1].id.clone();
    let state = TempDir::new();
    let callback_port = free_port();
    let mut remote = McpRemote::spawn(qs.mcp_url(), callback_port, &state.0);

    // The sign-in happens before mcp-remote serves stdio: it prints the URL and waits for the
    // browser to come back to http://localhost:<callback_port>/oauth/callback.
    let url = remote.authorization_url(&issuer.base_url()).await;
    let report = consent(&url, &user).await;
    let params = &report["params"];
    assert_eq!(params["code_challenge_method"], "S256", "{report}");
    assert!(params["code_challenge"].is_string(), "PKCE: {report}");
    assert_eq!(params["resource"], qs.mcp_url(), "RFC 8707: {report}");
    let redirect_uri = params["redirect_uri"].as_str().unwrap_or_default();
    assert!(
        redirect_uri.ends_with(&format!(":{callback_port}/oauth/callback")),
        "mcp-remote's loopback callback: {report}"
    );
    assert_eq!(report["callback_status"], 200, "{report}");

    // Now the stdio conversation, relayed to the server with the token mcp-remote obtained.
    let init = remote
        .request(
            1,
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "mcp-auth-e2e-stdio", "version": "0.0.0"},
            }),
        )
        .await;
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "initialize: {init}\nstderr:\n{}",
        remote.stderr()
    );
    remote
        .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    let listed = remote.request(2, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list: {listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"whoami"), "{names:?}");

    let called = remote
        .request(3, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    let result = &called["result"];
    assert_eq!(result["isError"], false, "{called}");
    assert_eq!(result["content"][0]["text"], user.as_str(), "{called}");
    assert_eq!(result["structuredContent"]["user_id"], user.as_str());
    let scopes = result["structuredContent"]["scopes"].to_string();
    assert!(
        scopes.contains("profile") && scopes.contains("email"),
        "{called}"
    );

    // The tokens went to the isolated directory, not the developer's home.
    let stored = files_under(&state.0.join("config"));
    assert!(
        stored.iter().any(|f| f.ends_with("_tokens.json")),
        "tokens stored under MCP_REMOTE_CONFIG_DIR: {stored:?}"
    );

    remote.stop().await;
    qs.shutdown().await;
}

/// Finds mcp-remote's cached tokens file under its config directory.
fn tokens_file(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = tokens_file(&path) {
                return Some(found);
            }
        } else if path.to_string_lossy().ends_with("_tokens.json") {
            return Some(path);
        }
    }
    None
}

/// Initialize and call `whoami` through a running mcp-remote; returns the text it answered.
async fn whoami_through(remote: &mut McpRemote) -> String {
    let init = remote
        .request(
            1,
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "mcp-auth-e2e-stdio", "version": "0.0.0"},
            }),
        )
        .await;
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "initialize: {init}\nstderr:\n{}",
        remote.stderr()
    );
    remote
        .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    let called = remote
        .request(2, "tools/call", json!({"name": "whoami", "arguments": {}}))
        .await;
    assert_eq!(
        called["result"]["isError"],
        false,
        "{called}\nstderr:\n{}",
        remote.stderr()
    );
    called["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The quickstart restarts while mcp-remote keeps its registration and tokens in its own cache
/// directory: a new mcp-remote on the same cache reaches `whoami` with zero registrations and
/// zero consent pages on the restarted issuer, first with the cached access token, then (the
/// access token made unusable, as after expiry) through a refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_remote_survives_a_quickstart_restart() {
    let state = e2e::TempDir::new("mcp-remote-restart-state");
    let cache = TempDir::new();
    let options = |port, issuer_port| Options {
        port,
        issuer_port,
        state_dir: Some(state.0.clone()),
        ..Options::default()
    };
    let qs = Quickstart::start(options(0, 0)).await.unwrap();
    let issuer = qs.issuer().unwrap();
    let user = issuer.users()[1].id.clone();
    let callback_port = free_port();
    let mut remote = McpRemote::spawn(qs.mcp_url(), callback_port, &cache.0);
    let url = remote.authorization_url(&issuer.base_url()).await;
    consent(&url, &user).await;
    assert_eq!(whoami_through(&mut remote).await, user);
    remote.stop().await;

    let mcp_url = qs.mcp_url().to_owned();
    let port: u16 = mcp_url
        .trim_end_matches("/mcp")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let issuer_port = issuer.local_addr().port();
    qs.shutdown().await;
    let qs = Quickstart::start(options(port, issuer_port)).await.unwrap();
    let issuer = qs.issuer().unwrap();

    // With the cached access token.
    let mut remote = McpRemote::spawn(&mcp_url, callback_port, &cache.0);
    assert_eq!(whoami_through(&mut remote).await, user);
    remote.stop().await;
    let metrics = issuer.metrics();
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/register", "POST"),
        0,
        "{metrics}"
    );
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/authorize", "GET"),
        0,
        "{metrics}"
    );
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/token", "POST"),
        0,
        "{metrics}"
    );

    // Through a refresh: the cached access token no longer works.
    let file = tokens_file(&cache.0.join("config")).expect("mcp-remote cached its tokens");
    let mut tokens: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens["access_token"] = json!("expired-access-token");
    std::fs::write(&file, tokens.to_string()).unwrap();
    let mut remote = McpRemote::spawn(&mcp_url, callback_port, &cache.0);
    assert_eq!(whoami_through(&mut remote).await, user);
    remote.stop().await;
    let metrics = issuer.metrics();
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/register", "POST"),
        0,
        "{metrics}"
    );
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/authorize", "GET"),
        0,
        "{metrics}"
    );
    assert_eq!(
        e2e::requests_total(&metrics, "/oauth/token", "POST"),
        1,
        "one refresh: {metrics}"
    );
    qs.shutdown().await;
}
