//! Load generator for MCP session mode (used by `scripts/bench.sh`): opens exactly N sessions
//! (one `initialize` each) over C keep-alive connections and prints how long opening one took.
//! The sessions stay open afterwards (until the server's idle timeout), so the caller can read
//! the server's memory with N sessions held.
//!
//! ```sh
//! TOKEN=… cargo run --release -p mcp-auth --example open-sessions -- http://127.0.0.1:8793/mcp 10000 32
//! ```
//!
//! Prints one line: `opened=N seconds=… per_second=… p50_us=… p99_us=…`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: open-sessions URL [N] [CONNECTIONS]")?;
    let total: u64 = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let connections: u64 = args.next().map_or(Ok(32), |n| n.parse())?;
    let token = std::env::var("TOKEN").unwrap_or_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections as usize)
        .timeout(Duration::from_secs(10))
        .build()?;

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, token, next) = (client.clone(), url.clone(), token.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(INITIALIZE);
                if !token.is_empty() {
                    request = request.bearer_auth(&token);
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let opened = response.headers().contains_key("mcp-session-id");
                // The answer is a short SSE stream that ends after the initialize result.
                response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() || !opened {
                    return Err(format!("initialize answered {status} without a session"));
                }
                latencies.push(t0.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_micros()
    };
    println!(
        "opened={} seconds={elapsed:.2} per_second={:.0} p50_us={} p99_us={}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
    );
    Ok(())
}
