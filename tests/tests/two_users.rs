//! Two users, two official TypeScript SDK clients, one quickstart, at the same time
//! (`tests/js/sdk-conversation.mjs`, one Node process per user, driven line by line):
//!
//! 1. both clients connect concurrently: each gets 401, discovers, registers its own client
//!    (with the `refresh_token` grant) and consents as a different user;
//! 2. `whoami` is called on both at once, several rounds: each only ever sees its own user id
//!    and its own client id;
//! 3. the access tokens expire mid-conversation: the next call gets 401 `invalid_token`, the SDK
//!    refreshes (a `refresh_token` grant at the issuer's token endpoint, counted in its
//!    `/metrics`), retries, and the conversation continues as the same user.
//!
//! How expiry is made deterministic. The MCP server judges expiry by the real clock: a JWT's
//! `exp` (plus the Clerk verifier's 5 s leeway) is compared with the system time, and an opaque
//! token's verify answer is cached for at most `exp − now` (real time) before the issuer is asked
//! again. Advancing the issuer's clock (`IssuerHandle::advance_clock`) therefore cannot make the
//! MCP server refuse a token it has already accepted; only a short real lifetime can. So the
//! quickstart is started with a short access-token lifetime
//! (`quickstart::Options::access_token_lifetime`), and instead of sleeping the test waits
//! for the condition itself: it probes the MCP endpoint with each client's current access token
//! until the server answers 401 `invalid_token`, and only then asks the clients for their next
//! call, which must therefore hit the 401 and refresh. Both token formats are covered: JWT
//! (1 s lifetime, refused ~6 s after minting) and opaque (4 s lifetime, refused when the cached
//! verify answer lapses and the issuer reports `expired`).

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use quickstart::{Options, Quickstart};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin},
    sync::mpsc,
};

/// Upper bound for any single step; the whole test takes well under this.
const STEP: Duration = Duration::from_secs(20);

fn js_dir() -> PathBuf {
    e2e::js_dir("@modelcontextprotocol/sdk")
}

/// One SDK client process in conversation.
struct Conversation {
    user: String,
    _child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Every event seen so far, for assertions and failure messages.
    log: Vec<Value>,
}

impl Conversation {
    fn spawn(mcp_url: &str, user: &str) -> Self {
        let mut child = tokio::process::Command::new("node")
            .current_dir(js_dir())
            .arg("sdk-conversation.mjs")
            .arg(mcp_url)
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node could not be started");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(event) => {
                        if tx.send(event).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("node: {line}"),
                }
            }
        });
        Self {
            user: user.to_owned(),
            _child: child,
            stdin,
            events,
            log: Vec::new(),
        }
    }

    /// Reads events until one named `name` arrives; an `error` event fails the test.
    async fn until(&mut self, name: &str) -> Value {
        loop {
            let event = tokio::time::timeout(STEP, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("{}: no `{name}` event in time: {:#?}", self.user, self.log)
                })
                .unwrap_or_else(|| panic!("{}: the client exited: {:#?}", self.user, self.log));
            self.log.push(event.clone());
            assert_ne!(event["event"], "error", "{}: {:#?}", self.user, self.log);
            if event["event"] == name {
                return event;
            }
        }
    }

    async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Calls `whoami`; returns the result and every event the call produced.
    async fn whoami(&mut self) -> (Value, Vec<Value>) {
        let start = self.log.len();
        self.send("whoami").await;
        let result = self.until("result").await;
        assert_eq!(result["isError"], false, "{}: {result}", self.user);
        (result, self.log[start..].to_vec())
    }

    fn events(&self, name: &str) -> Vec<&Value> {
        self.log.iter().filter(|e| e["event"] == name).collect()
    }

    fn access_token(&self) -> String {
        self.events("tokens")
            .last()
            .and_then(|t| t["access_token"].as_str())
            .expect("the client saved no token")
            .to_owned()
    }

    async fn exit(mut self) {
        self.send("exit").await;
        let status = tokio::time::timeout(STEP, self._child.wait())
            .await
            .expect("the client did not exit")
            .unwrap();
        assert!(status.success(), "{}: {status}", self.user);
    }
}

/// One raw HTTP/1.1 request to the MCP endpoint with `token`; the status and `WWW-Authenticate`.
fn probe(mcp_url: &str, token: &str) -> (u16, String) {
    let rest = mcp_url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let challenge = response
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, challenge)
}

/// Waits (polling, bounded) until the MCP server refuses `token` as expired.
async fn wait_until_refused(mcp_url: &str, token: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let (url, t) = (mcp_url.to_owned(), token.to_owned());
        let (status, challenge) = tokio::task::spawn_blocking(move || probe(&url, &t))
            .await
            .unwrap();
        if status == 401 {
            return challenge;
        }
        assert_eq!(
            status / 100,
            2,
            "unexpected answer {status} while the token is valid"
        );
        assert!(
            Instant::now() < deadline,
            "the MCP server still accepts the token after {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Successful requests to the issuer's token endpoint, from its Prometheus metrics.
fn token_requests(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("mcp_auth_issuer_requests_total{")
                && l.contains("path=\"/oauth/token\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn assert_own_identity(conv: &Conversation, result: &Value, client_id: &str) {
    assert_eq!(result["user_id"], conv.user.as_str(), "{result}");
    assert_eq!(result["text"], conv.user.as_str(), "{result}");
    assert_eq!(result["client_id"], client_id, "{result}");
}

async fn two_users(opaque_tokens: bool, lifetime: Duration) {
    let qs = Quickstart::start(Options {
        opaque_tokens,
        access_token_lifetime: Some(lifetime),
        ..Options::default()
    })
    .await
    .unwrap();
    let mcp_url = qs.mcp_url().to_owned();
    let issuer = qs.issuer().unwrap();
    let users = issuer.users();
    assert_ne!(users[0].id, users[1].id);

    // 1. Both connect at the same time, each as its own user with its own client.
    let mut a = Conversation::spawn(&mcp_url, &users[0].id);
    let mut b = Conversation::spawn(&mcp_url, &users[1].id);
    let (reg_a, reg_b) = tokio::join!(
        async {
            let reg = a.until("registered").await;
            a.until("connected").await;
            reg
        },
        async {
            let reg = b.until("registered").await;
            b.until("connected").await;
            reg
        }
    );
    let client_a = reg_a["client_id"].as_str().unwrap().to_owned();
    let client_b = reg_b["client_id"].as_str().unwrap().to_owned();
    assert_ne!(client_a, client_b, "each SDK client registered itself");
    for (conv, reg) in [(&a, &reg_a), (&b, &reg_b)] {
        assert!(
            reg["grant_types"].to_string().contains("refresh_token"),
            "{reg}"
        );
        let tokens = conv.events("tokens");
        assert_eq!(tokens.len(), 1, "{:#?}", conv.log);
        assert_eq!(tokens[0]["has_refresh_token"], true, "{:#?}", conv.log);
        assert_eq!(conv.events("consented")[0]["user_id"], conv.user.as_str());
    }

    // 2. Interleaved, concurrent calls: each only ever sees itself.
    for _ in 0..3 {
        let ((ra, _), (rb, _)) = tokio::join!(a.whoami(), b.whoami());
        assert_own_identity(&a, &ra, &client_a);
        assert_own_identity(&b, &rb, &client_b);
    }

    // 3. Expiry mid-conversation. Wait for the server's verdict on each current token ...
    let (old_a, old_b) = (a.access_token(), b.access_token());
    assert_ne!(old_a, old_b);
    for token in [&old_a, &old_b] {
        let challenge = wait_until_refused(&mcp_url, token).await;
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
    }
    let before = token_requests(&issuer.metrics());

    // ... then continue the conversation: 401 → refresh_token grant → retried call succeeds.
    let ((ra, events_a), (rb, events_b)) = tokio::join!(a.whoami(), b.whoami());
    assert_own_identity(&a, &ra, &client_a);
    assert_own_identity(&b, &rb, &client_b);
    for (conv, events, old) in [(&a, &events_a, &old_a), (&b, &events_b, &old_b)] {
        let order: Vec<String> = events
            .iter()
            .map(|e| match e["event"].as_str() {
                Some("http") => format!(
                    "{} {} {}{}",
                    e["method"].as_str().unwrap_or(""),
                    e["url"].as_str().unwrap_or(""),
                    e["status"],
                    e["grant_type"]
                        .as_str()
                        .map(|g| format!(" grant_type={g}"))
                        .unwrap_or_default()
                ),
                Some(other) => other.to_owned(),
                None => e.to_string(),
            })
            .collect();
        let refused = order
            .iter()
            .position(|e| e == &format!("POST {mcp_url} 401"))
            .unwrap_or_else(|| panic!("{}: no 401 on the MCP endpoint: {order:#?}", conv.user));
        let refreshed = order
            .iter()
            .position(|e| e.ends_with(" 200 grant_type=refresh_token"))
            .unwrap_or_else(|| panic!("{}: no refresh: {order:#?}", conv.user));
        let retried = order
            .iter()
            .rposition(|e| e == &format!("POST {mcp_url} 200"))
            .unwrap_or_else(|| panic!("{}: no retried call: {order:#?}", conv.user));
        assert!(
            refused < refreshed && refreshed < retried,
            "{}: {order:#?}",
            conv.user
        );
        assert!(
            !order.iter().any(|e| e.contains("/oauth/authorize")),
            "{}: refreshed without the browser: {order:#?}",
            conv.user
        );
        let new = conv.access_token();
        assert_ne!(&new, old, "{}: a new access token was saved", conv.user);
    }
    let after = token_requests(&issuer.metrics());
    assert_eq!(
        after,
        before + 2,
        "one refresh per client at the token endpoint"
    );

    // The conversation goes on as the same users.
    let ((ra, _), (rb, _)) = tokio::join!(a.whoami(), b.whoami());
    assert_own_identity(&a, &ra, &client_a);
    assert_own_identity(&b, &rb, &client_b);
    for conv in [&a, &b] {
        assert!(
            conv.events("unauthorized").len() == 1,
            "{}: the consent page was needed only once: {:#?}",
            conv.user,
            conv.log
        );
    }

    a.exit().await;
    b.exit().await;
    qs.shutdown().await;
}

/// JWT access tokens: the verifier compares `exp` (plus 5 s leeway) with the real clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_concurrently_with_jwt_tokens_and_refresh() {
    two_users(false, Duration::from_secs(1)).await;
}

/// Opaque `oat_…` tokens: verified through the Backend API, cached until their expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_concurrently_with_opaque_tokens_and_refresh() {
    two_users(true, Duration::from_secs(4)).await;
}
