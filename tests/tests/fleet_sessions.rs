//! The quickstart as a fleet: three replicas in Clerk mode against the local issuer (opaque
//! tokens), behind haproxy running `deploy/haproxy.cfg` (`e2e::fleet`). Through haproxy:
//!
//! - a replica killed with SIGKILL mid-run is taken out by haproxy's `/readyz` health check;
//!   no call fails after that, and the calls in flight at the kill are counted and reported;
//! - session mode with sticky routing on `Mcp-Session-Id`: two official TypeScript SDK clients
//!   hold their sessions through the fleet for 100 calls each;
//! - `--max-sessions-per-user`: one user's sessions beyond the limit get 429 with
//!   `Retry-After`; a `DELETE` frees a slot at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use e2e::fleet::{PROTOCOL, call_tool};
use serde_json::Value;

/// An error with its causes (reqwest's own message names only the URL).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    out
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// What the callers saw, by phase.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    /// Failed calls (transport error or non-200) before haproxy marked the replica down.
    failed_before_down: AtomicUsize,
    /// Failed calls after.
    failed_after_down: AtomicUsize,
    ok_after_down: AtomicUsize,
}

/// Stateless calls keep succeeding when a replica dies: haproxy's health check (`/readyz`,
/// every second, two failures) takes the killed replica out, and requests that cannot connect
/// to it meanwhile are retried on another replica (`retry-on conn-failure`). Only calls sent to
/// the killed replica before haproxy marks it DOWN can fail: those it had received, and those
/// haproxy sends over a kept-alive connection to it that it has not yet seen closed (its
/// default `http-reuse safe` reuses idle server connections for a client's later requests, and
/// a POST sent on a dead one is not retried). They are counted and printed, must be transport
/// failures or a 502/503 (never an answer from a replica, such as a 401), and are bounded by a
/// few per caller. After haproxy marks it DOWN, not one call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_is_taken_out_and_no_call_fails_after() {
    const CALLERS: usize = 6;
    const CALLS_AFTER_DOWN: usize = 150;
    let mut fleet = e2e::fleet!().replicas(3).start().await;
    let url = fleet.url().to_owned();
    let users = fleet.issuer().users();
    let tokens: Vec<String> = (0..CALLERS)
        .map(|i| fleet.token(&users[i % users.len()].id, "client_fleet"))
        .collect();
    let tally = Arc::new(Tally::default());
    let down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for token in tokens {
        let (url, tally, down, stop) = (url.clone(), tally.clone(), down.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let http = http();
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                // The phase is read before the call: a call started after DOWN must succeed.
                let after = down.load(Ordering::SeqCst);
                let outcome = match call_tool(&http, &url, &token, "whoami").await {
                    Ok(r) if r.status() == 200 => r.text().await.map(|_| ()).map_err(|e| chain(&e)),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(chain(&e)),
                };
                match (outcome, after) {
                    (Ok(()), false) => {
                        tally.ok.fetch_add(1, Ordering::SeqCst);
                    }
                    (Ok(()), true) => {
                        tally.ok.fetch_add(1, Ordering::SeqCst);
                        tally.ok_after_down.fetch_add(1, Ordering::SeqCst);
                    }
                    (Err(e), false) => {
                        tally.failed_before_down.fetch_add(1, Ordering::SeqCst);
                        failures.push(e);
                    }
                    (Err(e), true) => {
                        tally.failed_after_down.fetch_add(1, Ordering::SeqCst);
                        failures.push(format!("after DOWN: {e}"));
                    }
                }
            }
            failures
        }));
    }

    // Let traffic reach every replica, then kill one mid-run.
    wait_for(|| tally.ok.load(Ordering::SeqCst) >= 60).await;
    fleet.kill_replica(1).await;
    fleet.wait_until_down(1).await;
    down.store(true, Ordering::SeqCst);
    wait_for(|| tally.ok_after_down.load(Ordering::SeqCst) >= CALLS_AFTER_DOWN).await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }

    let in_flight = tally.failed_before_down.load(Ordering::SeqCst);
    eprintln!(
        "replica killed mid-run: {} calls succeeded; {in_flight} failed between the kill and \
         haproxy marking the replica DOWN (in flight at the kill): {failures:?}; \
         {} failed after",
        tally.ok.load(Ordering::SeqCst),
        tally.failed_after_down.load(Ordering::SeqCst),
    );
    assert_eq!(
        tally.failed_after_down.load(Ordering::SeqCst),
        0,
        "calls failed after haproxy took the replica out: {failures:?}"
    );
    // One per caller is what a lightly loaded machine shows; when haproxy is short of CPU it
    // notices the dead replica's idle connections later and may send a caller's next call over
    // one of them too (seen: 7 failures for 6 callers with the machine saturated).
    assert!(
        in_flight <= 3 * CALLERS,
        "only calls sent to the killed replica before DOWN may fail: {failures:?}"
    );
    // A transport error (the connection lost with the replica) or haproxy's own 502/503; any
    // other status would be an answer, and no answer may be a failure.
    for failure in &failures {
        assert!(
            !failure.starts_with("HTTP ")
                || failure == "HTTP 502 Bad Gateway"
                || failure == "HTTP 503 Service Unavailable",
            "a call failed otherwise than by losing its replica: {failure}"
        );
    }
    let status = fleet.backend_status().await;
    assert_eq!(
        status.iter().filter(|(_, s)| s == "UP").count(),
        2,
        "{status:?}"
    );
}

/// Waits (polling, 60 s at most) until `done` holds.
async fn wait_for(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The official TypeScript SDK client, through haproxy: OAuth flow, then `calls` × `whoami`
/// on one session. Its JSON event lines.
async fn sdk_client(url: &str, user: &str, calls: usize) -> Vec<Value> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(e2e::js_dir("@modelcontextprotocol/sdk"))
        .arg("sdk-client.mjs")
        .arg(url)
        .arg(user)
        .args(std::iter::repeat_n("whoami", calls))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the SDK client hung")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK client failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Session mode behind haproxy: each SDK client opens a session (on whichever replica the
/// round-robin picks) and all its later requests carry `Mcp-Session-Id`, which haproxy's stick
/// table routes back to that replica, the only one holding the session. Without sticky
/// routing, a call would reach another replica and get 404 (unknown session) and the client
/// would fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sdk_clients_hold_sessions_through_the_fleet() {
    const CALLS: usize = 100;
    let fleet = e2e::fleet!()
        .replicas(3)
        .common_args(["--sessions"])
        .start()
        .await;
    let users = fleet.issuer().users();
    let (alice, bob) = (users[0].id.clone(), users[1].id.clone());
    let (a, b) = tokio::join!(
        sdk_client(fleet.url(), &alice, CALLS),
        sdk_client(fleet.url(), &bob, CALLS)
    );
    for (events, user) in [(&a, &alice), (&b, &bob)] {
        let calls: Vec<&Value> = events.iter().filter(|e| e["event"] == "tool").collect();
        assert_eq!(calls.len(), CALLS);
        assert!(
            calls
                .iter()
                .all(|c| c["isError"] == false && c["text"] == user.as_str()),
            "{calls:?}"
        );
        assert_eq!(
            events.iter().filter(|e| e["event"] == "connected").count(),
            1,
            "one session for all the calls: {events:?}"
        );
    }
}

async fn open_session(http: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    http.post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL)
        .bearer_auth(token)
        .body(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"fleet-test","version":"0"}}}}}}"#
        ))
        .send()
        .await
        .unwrap()
}

fn session_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `--max-sessions-per-user 2` on three replicas behind haproxy. The limit is per replica
/// (sessions live in one process), and haproxy spreads new sessions round-robin: the user's
/// first six sessions open (two per replica), the extra ones get 429 with `Retry-After` and
/// no session; another user opens sessions freely; after the user closes one session with
/// `DELETE` (routed to its replica by the stick table), exactly one new session opens, on that
/// replica, and the others still get 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_per_user_limit_get_429_until_one_is_deleted() {
    const PER_USER: usize = 2;
    const REPLICAS: usize = 3;
    let fleet = e2e::fleet!()
        .replicas(REPLICAS)
        .common_args(["--sessions", "--max-sessions-per-user", "2"])
        .start()
        .await;
    let users = fleet.issuer().users();
    let alice = fleet.token(&users[0].id, "client_fleet");
    let bob = fleet.token(&users[1].id, "client_fleet");
    let http = http();
    let mut sessions = Vec::new();
    for _ in 0..PER_USER * REPLICAS {
        let response = open_session(&http, fleet.url(), &alice).await;
        assert_eq!(response.status(), 200);
        sessions.push(session_id(&response).expect("a session id"));
    }
    for _ in 0..REPLICAS {
        let response = open_session(&http, fleet.url(), &alice).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "60");
        assert_eq!(session_id(&response), None);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_many_sessions");
    }
    let response = open_session(&http, fleet.url(), &bob).await;
    assert_eq!(
        response.status(),
        200,
        "another user is not limited by alice"
    );

    let deleted = http
        .delete(fleet.url())
        .bearer_auth(&alice)
        .header("mcp-session-id", &sessions[0])
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let mut statuses = Vec::new();
    for _ in 0..REPLICAS {
        statuses.push(
            open_session(&http, fleet.url(), &alice)
                .await
                .status()
                .as_u16(),
        );
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 429, 429], "one freed slot, on one replica");

    // Each replica's `/metrics` (scraped directly, as Prometheus does) counted the refusals:
    // three extra sessions, then two after the DELETE. The load balancer refuses `/metrics`.
    let mut rate_limited = 0.0;
    for i in 0..REPLICAS {
        let text = http
            .get(format!("http://{}/metrics", fleet.replica_addr(i)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        rate_limited += text
            .lines()
            .filter(|l| {
                l.starts_with("mcp_auth_requests_total{") && l.contains(r#"outcome="rate_limited""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert_eq!(rate_limited, 5.0);
    let public_metrics = fleet.url().replace("/mcp", "/metrics");
    assert_eq!(http.get(public_metrics).send().await.unwrap().status(), 404);
}

/// The harness's Redis handles (for the fleet cache tests): Redis answers at the fleet's URL,
/// is gone after `kill_redis`, and answers again on the same port after `restart_redis`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_kills_and_restarts_redis() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn ping(url: &str) -> bool {
        let addr = url.trim_start_matches("redis://");
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut buf).await.is_ok()
            && &buf == b"+PONG\r\n"
    }
    let mut fleet = e2e::fleet!().replicas(1).redis(true).start().await;
    let url = fleet.redis_url().expect("a Redis URL");
    assert!(ping(&url).await);
    fleet.kill_redis().await;
    assert!(!ping(&url).await, "Redis is gone after kill_redis");
    fleet.restart_redis().await;
    assert_eq!(fleet.redis_url().as_deref(), Some(url.as_str()));
    assert!(ping(&url).await, "Redis answers again after restart_redis");
}
