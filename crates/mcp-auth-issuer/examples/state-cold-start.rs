//! Cold start of the quickstart with a big existing issuer state (BENCHMARKS.md, "Cold start
//! with a persistent state").
//!
//! ```sh
//! cargo build --release -p quickstart
//! cargo run --release -p mcp-auth-issuer --example state-cold-start -- \
//!     --quickstart target/release/quickstart --clients 10000 --refresh-tokens 100000 --runs 10
//! ```
//!
//! It creates a state directory the way the issuer does (one start of `Issuer::serve`), fills
//! it with `--clients` registered clients and `--refresh-tokens` live refresh tokens (one
//! transaction, rows in the current schema's shape), then starts the quickstart binary on it
//! `--runs` times and measures from spawn to its "ready" banner on stdout (both listeners bound,
//! the issuer serving). Prints each run and the min / median / max in milliseconds.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_auth_issuer::{Issuer, IssuerConfig};
use rusqlite::{Connection, params};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Args {
    quickstart: PathBuf,
    clients: usize,
    refresh_tokens: usize,
    runs: usize,
    state_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quickstart: PathBuf::from("target/release/quickstart"),
        clients: 10_000,
        refresh_tokens: 100_000,
        runs: 10,
        state_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--quickstart" => args.quickstart = PathBuf::from(value()?),
            "--clients" => args.clients = value()?.parse().map_err(|e| format!("{e}"))?,
            "--refresh-tokens" => {
                args.refresh_tokens = value()?.parse().map_err(|e| format!("{e}"))?;
            }
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--state-dir" => args.state_dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// Create the state with a real issuer, then add the rows in one transaction.
async fn fill(dir: &Path, clients: usize, refresh_tokens: usize) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let config = IssuerConfig {
        state_dir: Some(dir.to_path_buf()),
        ..IssuerConfig::default()
    };
    let issuer = Issuer::serve(listener, config)
        .await
        .map_err(|e| e.to_string())?;
    issuer.shutdown().await.map_err(|e| e.to_string())?;

    let mut conn = Connection::open(dir.join("issuer.sqlite3")).map_err(|e| e.to_string())?;
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let far = 4_102_444_800_000_i64; // 2100-01-01, so nothing is pruned as expired
    {
        let mut client = tx
            .prepare(
                "INSERT INTO clients (client_id, secret_hash, auth_method, redirect_uris,
                     grant_types, client_name, logo_uri, created_at)
                 VALUES (?1, NULL, 'none', '[\"http://127.0.0.1:33418/callback\"]',
                     '[\"authorization_code\",\"refresh_token\"]', ?2, NULL, 1)",
            )
            .map_err(|e| e.to_string())?;
        for i in 0..clients {
            client
                .execute(params![
                    format!("bench{i:019}"),
                    format!("Bench client {i}")
                ])
                .map_err(|e| e.to_string())?;
        }
        let mut refresh = tx
            .prepare(
                "INSERT INTO refresh_tokens (hash, client_id, subject, scopes, resource,
                     expires_at, status, grant_id, created_at)
                 VALUES (?1, ?2, 'user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6', '[\"profile\",\"email\"]',
                     'http://127.0.0.1:8787/mcp', ?3, 'active', ?4, 1)",
            )
            .map_err(|e| e.to_string())?;
        for i in 0..refresh_tokens {
            let client = i % clients.max(1);
            refresh
                .execute(params![
                    format!("{i:064x}"),
                    format!("bench{client:019}"),
                    far,
                    format!("grant_bench{i}")
                ])
                .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Spawn the quickstart on `dir` and return the time until its ready banner.
async fn time_start(quickstart: &Path, dir: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(quickstart)
        .args(["--port", "0", "--issuer-port", "0", "--state-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", quickstart.display()))?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let ready = loop {
        match lines.next_line().await.map_err(|e| e.to_string())? {
            Some(line) if line.contains("mcp-auth quickstart is running") => {
                break started.elapsed();
            }
            Some(_) => {}
            None => return Err("the quickstart exited before it was ready".into()),
        }
    };
    child.start_kill().map_err(|e| e.to_string())?;
    child.wait().await.map_err(|e| e.to_string())?;
    Ok(ready)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let dir = args.state_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mcp-auth-cold-start-{}", std::process::id()))
    });
    if dir.exists() {
        println!("using the existing state in {}", dir.display());
    } else {
        let filling = Instant::now();
        fill(&dir, args.clients, args.refresh_tokens).await?;
        let size = std::fs::metadata(dir.join("issuer.sqlite3")).map_or(0, |m| m.len());
        println!(
            "filled {} with {} clients and {} refresh tokens in {:.1} s ({:.1} MiB)",
            dir.display(),
            args.clients,
            args.refresh_tokens,
            filling.elapsed().as_secs_f64(),
            size as f64 / 1_048_576.0
        );
    }
    // One untimed start first: it brings the binary and the database into the page cache, as
    // on a developer's machine where the quickstart ran a moment ago.
    time_start(&args.quickstart, &dir).await?;
    let mut times = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        let t = time_start(&args.quickstart, &dir).await?;
        println!("run {run:>2}: {:.1} ms to ready", t.as_secs_f64() * 1000.0);
        times.push(t);
    }
    times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let median = times[times.len() / 2];
        println!(
            "cold start to ready: min {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
            min.as_secs_f64() * 1000.0,
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0,
            times.len()
        );
    }
    if args.state_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
