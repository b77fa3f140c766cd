//! The shared verification cache and per-user rate limits in a real fleet (`e2e::fleet`):
//! `redis-server`, the local issuer handing out opaque tokens, three quickstart replicas in Clerk
//! mode sharing that Redis (`--redis-url`), and haproxy (`deploy/haproxy.cfg`, round-robin) in
//! front. Every call goes through haproxy; Backend API verify calls are counted with the
//! issuer's `/metrics` (`mcp_auth_issuer_requests_total`, `crates/mcp-auth-issuer/src/metrics.rs`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use e2e::fleet::{Fleet, call_tool};
use mcp_auth_issuer::{IssuerConfig, RateLimit, User};
use serde_json::{Value, json};

/// The path label of Clerk's opaque-token verify endpoint in the issuer's metrics.
const VERIFY: &str = "access_tokens/verify";

/// `n` users `user_fleet_0..n` (the issuer mints tokens only for users it knows).
fn users(n: usize) -> Vec<User> {
    (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "id": format!("user_fleet_{i}"),
                "first_name": "Fleet",
                "last_name": format!("User {i}"),
                "email": format!("fleet{i}@example.com"),
            }))
            .unwrap()
        })
        .collect()
}

/// 120 users, and a Backend API limit no run here reaches (the 429 case throttles explicitly),
/// so counts measure the replicas, not the limit.
fn with_users(config: &mut IssuerConfig) {
    config.users = Some(users(120));
    config.rate_limit = RateLimit {
        requests: 100_000,
        window: Duration::from_secs(10),
    };
}

/// Backend API verify calls the issuer received, all statuses (`status` filters, e.g. `"429"`).
fn verify_calls(fleet: &Fleet, status: Option<&str>) -> u64 {
    fleet
        .issuer()
        .metrics()
        .lines()
        .filter(|l| l.starts_with("mcp_auth_issuer_requests_total{") && l.contains(VERIFY))
        .filter(|l| status.is_none_or(|s| l.contains(&format!("status=\"{s}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// How many keys match `pattern` in the Redis at `url` (`KEYS`, over RESP).
fn redis_keys(url: &str, pattern: &str) -> usize {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("redis://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    // `*N` (an array of N keys) on the first line.
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .and_then(|l| l.strip_prefix('*'))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `calls` × `tools/call whoami` per token, `concurrency` at a time; the statuses in order.
async fn call_many(fleet: &Fleet, tokens: &[String], calls: usize, concurrency: usize) -> Vec<u16> {
    let http = http();
    let jobs: Vec<String> = (0..calls).flat_map(|_| tokens.iter().cloned()).collect();
    let mut statuses = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(concurrency) {
        let mut set = tokio::task::JoinSet::new();
        for token in chunk {
            let (http, url, token) = (http.clone(), fleet.url().to_owned(), token.clone());
            set.spawn(async move {
                call_tool(&http, &url, &token, "whoami")
                    .await
                    .map_or(0, |r| r.status().as_u16())
            });
        }
        while let Some(status) = set.join_next().await {
            statuses.push(status.unwrap());
        }
    }
    statuses
}

async fn redis_fleet(extra: &[&str]) -> Fleet {
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    e2e::fleet!()
        .replicas(3)
        .redis(true)
        .issuer(with_users)
        .args(move |_, info| {
            let mut args = vec!["--redis-url".to_owned(), info.redis_url.clone().unwrap()];
            args.extend(extra.iter().cloned());
            args
        })
        .start()
        .await
}

/// 50 users × 20 `tools/call` through haproxy over three replicas sharing Redis: at most one
/// Backend API verify call per token in the whole fleet; then 30 concurrent first calls with
/// one new token, spread over the replicas: at most 2 verify calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_cache_one_verify_per_token_fleet_wide() {
    let fleet = redis_fleet(&[]).await;
    let tokens: Vec<String> = (0..50)
        .map(|i| fleet.token(&format!("user_fleet_{i}"), "client_fleet"))
        .collect();
    let statuses = call_many(&fleet, &tokens, 20, 16).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let calls = verify_calls(&fleet, None);
    assert!(
        calls <= 50,
        "{calls} verify calls for 50 tokens (at most one per token)"
    );

    let before = verify_calls(&fleet, None);
    let token = fleet.token("user_fleet_99", "client_fleet");
    let statuses = call_many(&fleet, &[token], 30, 30).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let calls = verify_calls(&fleet, None) - before;
    assert!(
        calls <= 2,
        "30 concurrent first calls made {calls} verify calls"
    );
}

/// The same 50 × 20 run without `--redis-url`: every replica verifies every token itself, so
/// about three times as many calls (one per token per replica; at least 2.5 × 50).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_verifies_for_itself() {
    let fleet = e2e::fleet!().replicas(3).issuer(with_users).start().await;
    let tokens: Vec<String> = (0..50)
        .map(|i| fleet.token(&format!("user_fleet_{i}"), "client_fleet"))
        .collect();
    let statuses = call_many(&fleet, &tokens, 20, 16).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let calls = verify_calls(&fleet, None);
    assert!(
        (125..=150).contains(&calls),
        "{calls} verify calls for 50 tokens over 3 replicas without Redis (expected about 150)"
    );
}

/// `--rate-limit-per-user 30 --rate-limit-window 60` on every replica, counted in Redis: one
/// user's 40 calls spread over the three replicas get exactly 30 answers and 10 × 429 with
/// `Retry-After` and a JSON body; another user is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_rate_limit_holds_across_replicas() {
    let fleet = redis_fleet(&["--rate-limit-per-user", "30", "--rate-limit-window", "60"]).await;
    let http = http();
    let alice = fleet.token("user_fleet_1", "client_fleet");
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..40 {
        let response = call_tool(&http, fleet.url(), &alice, "whoami")
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited");
                assert_eq!(body["retry_after"], retry);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, limited), (30, 10));
    let bob = fleet.token("user_fleet_2", "client_fleet");
    let statuses = call_many(&fleet, &[bob], 10, 5).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "another user: {statuses:?}"
    );
}

/// The issuer answers 429 with `Retry-After: 4` (its Backend API throttled): after the first
/// 429, no replica calls the verify endpoint again before those 4 s have passed (the wait is
/// shared through Redis), and every call still succeeds once it has.
///
/// Then Redis is killed (SIGKILL) under a steady stream of calls and restarted: zero calls fail,
/// and once it is back the replicas share verification answers through it again (a new token
/// called on every replica costs one verify call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backoff_for_the_fleet_and_redis_outages_fail_nothing() {
    let mut fleet = redis_fleet(&[]).await;
    let http = Arc::new(http());

    // --- the shared 429 backoff
    let throttle = Duration::from_secs(4);
    fleet.issuer().throttle_backend(throttle);
    let started = std::time::Instant::now();
    let first = {
        let (http, url, token) = (
            http.clone(),
            fleet.url().to_owned(),
            fleet.token("user_fleet_10", "c"),
        );
        tokio::spawn(async move {
            call_tool(&http, &url, &token, "whoami")
                .await
                .map(|r| r.status().as_u16())
        })
    };
    // The first replica's call has been refused, and it has told the fleet (the wait is in
    // Redis: calls that left before that are not what this case is about)...
    let redis = fleet.redis_url().unwrap();
    while redis_keys(&redis, "mcp-auth:clerk-backoff:*") == 0 {
        assert!(started.elapsed() < throttle, "no shared backoff seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(verify_calls(&fleet, Some("429")), 1);
    // ... and new tokens now arrive on every replica (round-robin).
    let others: Vec<_> = (11..17)
        .map(|i| {
            let (http, url, token) = (
                http.clone(),
                fleet.url().to_owned(),
                fleet.token(&format!("user_fleet_{i}"), "c"),
            );
            tokio::spawn(async move {
                call_tool(&http, &url, &token, "whoami")
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Until the wait is nearly over, the issuer sees that one call and nothing else.
    while started.elapsed() + Duration::from_millis(500) < throttle {
        assert_eq!(
            verify_calls(&fleet, None),
            1,
            "a replica called during the backoff"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first.await.unwrap().unwrap(), 200);
    for call in others {
        assert_eq!(call.await.unwrap().unwrap(), 200);
    }
    assert_eq!(verify_calls(&fleet, Some("429")), 1);

    // --- Redis killed and restarted under load
    let running = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicU32::new(0));
    let load = {
        let (http, url) = (http.clone(), fleet.url().to_owned());
        let (running, served) = (running.clone(), served.clone());
        let tokens: Vec<String> = (20..60)
            .map(|i| fleet.token(&format!("user_fleet_{i}"), "c"))
            .collect();
        tokio::spawn(async move {
            let (mut failed, mut n) = (Vec::new(), 0usize);
            while running.load(Ordering::SeqCst) {
                // A new token every three calls: verifications happen while Redis is gone.
                let token = &tokens[(n / 3) % tokens.len()];
                n += 1;
                match call_tool(&http, &url, token, "whoami").await {
                    Ok(r) if r.status() == 200 => {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            failed
        })
    };
    // Each phase lasts until the load has been served 20 more times (a new token every three
    // calls, so several verifications fall inside each phase).
    let wait_served = |more: u32| {
        let served = served.clone();
        async move {
            let target = served.load(Ordering::SeqCst) + more;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while served.load(Ordering::SeqCst) < target {
                assert!(std::time::Instant::now() < deadline, "the load stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_served(20).await;
    fleet.kill_redis().await;
    wait_served(20).await;
    fleet.restart_redis().await;
    wait_served(20).await;
    running.store(false, Ordering::SeqCst);
    let failed = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} calls failed around the Redis outage, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // Back in use: a new token called on every replica costs one verify call. The replicas
    // try Redis again once a second after an outage, so allow a few tries.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    for i in 60.. {
        let before = verify_calls(&fleet, None);
        let token = fleet.token(&format!("user_fleet_{i}"), "c");
        let statuses = call_many(&fleet, &[token], 3, 1).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        if verify_calls(&fleet, None) - before == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replicas did not share through Redis again"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // One warning per replica for the whole outage (not one per request), and a line when
    // Redis was back. Every replica used Redis again above, so that line has been written; the
    // harness reads the replicas' output as it comes, so poll for it briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut warned = 0;
    for i in 0..fleet.replica_count() {
        loop {
            let out = fleet.replica_output(i);
            let warnings = out
                .lines()
                .filter(|l| l.contains("shared store unavailable;"))
                .count();
            assert!(
                warnings <= 1,
                "replica {i} logged the outage {warnings} times:\n{out}"
            );
            if warnings == 0 || out.contains("shared store reachable again") {
                warned += warnings;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replica {i} never logged that Redis was back:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(warned >= 1, "no replica noticed the outage");
}
