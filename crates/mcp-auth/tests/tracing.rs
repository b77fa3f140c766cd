//! The access line: who called, which tool, the outcome, and never the token; the request's
//! span at `debug`.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use common::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs, for this thread, a plain-text subscriber at `level` writing into the returned
/// buffer; it stays installed while the guard lives.
fn capture(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(level)
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// [`capture`], with an `EnvFilter` of `directives` instead of a single level.
fn capture_filtered(directives: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// One access line per request at `info` (target `mcp_auth::access`): for an admitted request
/// the method, user, client, tool, status and duration; for a refused one the method, status
/// and duration. Neither the accepted nor a refused token appears anywhere in the log.
// Current-thread runtime: the server's tasks run on this thread, under the thread-local
// subscriber installed below.
#[tokio::test(flavor = "current_thread")]
async fn one_access_line_per_request_with_caller_tool_status_and_duration_but_not_the_token() {
    let (captured, _guard) = capture(tracing::Level::INFO);

    let s = start_server(Options::default()).await;
    let good = s.token("user_alice", "openid admin:read");
    let resp = post(&s.mcp, Some(&good), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let bad = format!("{good}x");
    let resp = post(&s.mcp, Some(&bad), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 401);
    // Refused by the step-up guard: the line still names the tool asked for.
    let weak = s.token("user_bob", "openid");
    let resp = post(&s.mcp, Some(&weak), &call("audit-log", json!({})), &[]).await;
    assert_eq!(resp.status(), 403);
    // An unscoped tool: the guard has no reason to read the body; the handler names it.
    let resp = post(&s.mcp, Some(&weak), &call("whoami", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mcp_auth::access"))
        .collect();
    assert_eq!(access.len(), 4, "one line per request:\n{log}");
    let (finished, refused, stepped_up, unscoped) = (access[0], access[1], access[2], access[3]);
    for field in ["tool=\"whoami\"", "status=200"] {
        assert!(unscoped.contains(field), "{field} missing from: {unscoped}");
    }
    // One event, no span: the line carries every field itself.
    assert!(!log.contains("mcp_request"), "{log}");
    for field in [
        "user=\"user_bob\"",
        "tool=\"audit-log\"",
        "status=403",
        "request finished",
    ] {
        assert!(
            stepped_up.contains(field),
            "{field} missing from: {stepped_up}"
        );
    }
    for field in [
        " INFO ",
        "method=POST",
        "user=\"user_alice\"",
        "client=\"client_test\"",
        "tool=\"admin-report\"",
        "status=200",
        "duration_us=",
        "request finished",
    ] {
        assert!(finished.contains(field), "{field} missing from: {finished}");
    }
    for field in [
        " INFO ",
        "method=POST",
        "status=401",
        "duration_us=",
        "request refused",
    ] {
        assert!(refused.contains(field), "{field} missing from: {refused}");
    }
    assert!(!refused.contains("user="), "{refused}");
    // Neither token, nor any part of one long enough to matter (the signature's tail).
    for token in [&good, &bad, &weak] {
        assert!(
            !log.contains(&token[token.len() - 40..]),
            "token in the log"
        );
        assert!(!log.contains(&token[..40]), "token in the log");
    }
}

/// At `warn` the access line, and the span it would carry, cost nothing: nothing is logged
/// for a request, and requests are served as usual.
#[tokio::test(flavor = "current_thread")]
async fn nothing_is_logged_per_request_at_warn() {
    let (captured, _guard) = capture(tracing::Level::WARN);

    let s = start_server(Options::default()).await;
    let good = s.token("user_alice", "openid admin:read");
    let resp = post(&s.mcp, Some(&good), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let resp = post(&s.mcp, None, &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 401);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log, "");
}

/// At `debug` for the access target, each request also gets a span (`mcp_request`, with the
/// user, client and tool) that the tool's own events carry; at the default `info` there is none
/// (asserted in the test above).
#[tokio::test(flavor = "current_thread")]
async fn at_debug_a_tools_own_events_carry_the_request_span() {
    let (captured, _guard) = capture_filtered("warn,mcp_auth::access=debug,tool_events=info");

    let s = start_server_with(Options::default(), |b| {
        b.tool(
            "logs",
            "Writes one event of its own",
            |_: NoArgs, _auth: mcp_auth::AuthInfo| async move {
                tracing::info!(target: "tool_events", "inside the tool");
                "done".to_owned()
            },
        )
    })
    .await;
    let good = s.token("user_alice", "openid");
    let resp = post(&s.mcp, Some(&good), &call("logs", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let inside = log
        .lines()
        .find(|l| l.contains("inside the tool"))
        .unwrap_or_else(|| panic!("the tool's event is missing:\n{log}"));
    for field in [
        "mcp_request{",
        "user=\"user_alice\"",
        "client=\"client_test\"",
        "tool=\"logs\"",
    ] {
        assert!(inside.contains(field), "{field} missing from: {inside}");
    }
}

/// With sessions the answer is a stream whose headers can be sent before the tool has run; the
/// access line still names the tool (the step-up guard reads it from the body for the line).
#[tokio::test(flavor = "current_thread")]
async fn with_sessions_the_access_line_names_the_tool() {
    let (captured, _guard) = capture(tracing::Level::INFO);

    let s = start_server(Options {
        sessions: true,
        ..Options::default()
    })
    .await;
    let alice = s.token("user_alice", "openid");
    let session = open_initialized_session(&s.mcp, &alice).await;
    let headers = [("mcp-session-id", session.as_str())];
    let resp = post(&s.mcp, Some(&alice), &call("whoami", json!({})), &headers).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mcp_auth::access"))
        .collect();
    assert_eq!(access.len(), 3, "one line per request:\n{log}");
    assert!(access[2].contains("tool=\"whoami\""), "{}", access[2]);
    assert!(!access[0].contains("tool="), "{}", access[0]);
}

/// A server that keeps everything at `warn` but the access line (`warn,mcp_auth::access=info`)
/// still gets the tool's name on each line: the tool handler, which names it, asks whether
/// anything at `info` is wanted, and the access target is.
#[tokio::test(flavor = "current_thread")]
async fn only_the_access_line_at_info_still_names_the_tool() {
    let (captured, _guard) = capture_filtered("warn,mcp_auth::access=info");

    let s = start_server(Options::default()).await;
    let alice = s.token("user_alice", "openid");
    let resp = post(&s.mcp, Some(&alice), &call("whoami", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "the access line and nothing else:\n{log}");
    for field in ["mcp_auth::access", "tool=\"whoami\"", "status=200"] {
        assert!(
            lines[0].contains(field),
            "{field} missing from: {}",
            lines[0]
        );
    }
}
