//! The per-request span: who called, which tool, the outcome, and never the token.

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

/// A tool call is logged inside a span naming the user, the client, the tool and the status;
/// neither the accepted nor a refused token appears anywhere in the log.
// Current-thread runtime: the server's tasks run on this thread, under the thread-local
// subscriber installed below.
#[tokio::test(flavor = "current_thread")]
async fn request_span_names_caller_tool_and_status_but_not_the_token() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = start_server(Options::default()).await;
    let good = s.token("user_alice", "openid admin:read");
    let resp = post(&s.mcp, Some(&good), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let bad = format!("{good}x");
    let resp = post(&s.mcp, Some(&bad), &call("admin-report", json!({})), &[]).await;
    assert_eq!(resp.status(), 401);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let finished = log
        .lines()
        .find(|l| l.contains("request finished"))
        .unwrap_or_else(|| panic!("no request span in:\n{log}"));
    for field in [
        "user=user_alice",
        "client=client_test",
        "tool=\"admin-report\"",
        "status=200",
    ] {
        assert!(finished.contains(field), "{field} missing from: {finished}");
    }
    assert!(!log.contains(&good[good.len() - 40..]), "token in the log");
}
