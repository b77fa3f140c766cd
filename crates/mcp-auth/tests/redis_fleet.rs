//! The shared verification cache, the fleet-wide 429 backoff and fleet-wide rate limits on a
//! real `redis-server` (feature `redis`), with "replicas" that are separate verifiers and
//! servers in this process, each with its own Redis connection, against the local
//! Clerk-compatible issuer handing out opaque tokens. Redis is killed and restarted to show a
//! replica never fails a request because of it. Needs the feature (`required-features` in
//! Cargo.toml): `cargo test -p mcp-auth --features redis --test redis_fleet`.

#[path = "common/clerk.rs"]
mod clerk_common;
mod common;
#[path = "common/redis.rs"]
mod redis_common;

use std::{sync::Arc, time::Duration};

use clerk_common::*;
use mcp_auth::{
    FleetStore, SharedStore, TokenVerifier, VerifyError,
    clerk::{BackendSettings, ClerkConfig, ClerkVerifier},
    redis::RedisStore,
};
use mcp_auth_issuer::{IssuerConfig, IssuerHandle, MintRequest, TokenFormat};
use redis_common::RedisServer;

const RESOURCE: &str = "http://127.0.0.1:1/mcp";

fn opaque_token(issuer: &IssuerHandle, user: &str) -> String {
    issuer
        .mint_access_token(MintRequest {
            scopes: vec!["profile".into()],
            format: Some(TokenFormat::Opaque),
            resource: Some(RESOURCE.into()),
            ..MintRequest::new(user, "client_1")
        })
        .unwrap()
}

fn fleet(redis: &RedisServer) -> FleetStore {
    FleetStore::new(RedisStore::open(&redis.url()).unwrap())
        .key_prefix("test:")
        .probe_interval(Duration::from_millis(100))
}

/// One "replica": its own verifier, local cache and Redis connection.
fn replica(clerk: &ClerkConfig, fleet: &FleetStore) -> ClerkVerifier {
    clerk
        .verifier(RESOURCE)
        .shared_cache(fleet.clone())
        .build()
        .unwrap()
}

fn verify_calls(issuer: &IssuerHandle) -> u64 {
    issuer_requests(issuer, &[VERIFY_OAT])
}

/// The store's operations as the framework relies on them: values expire, a lock is taken once
/// and released only by its owner, a hold only grows, a counter counts within its window.
#[tokio::test]
async fn redis_store_operations() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url()).unwrap();
    assert_eq!(store.get("k").await.unwrap(), None);
    store
        .set("k", b"v", Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    assert!(
        store
            .try_lock("l", "a", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lock("l", "b", Duration::from_secs(5))
            .await
            .unwrap()
    );
    store.unlock("l", "b").await.unwrap();
    assert!(
        !store
            .try_lock("l", "c", Duration::from_secs(5))
            .await
            .unwrap()
    );
    store.unlock("l", "a").await.unwrap();
    assert!(
        store
            .try_lock("l", "c", Duration::from_secs(5))
            .await
            .unwrap()
    );

    assert_eq!(store.hold_remaining("h").await.unwrap(), None);
    store.hold("h", Duration::from_secs(30)).await.unwrap();
    store.hold("h", Duration::from_secs(1)).await.unwrap();
    let left = store.hold_remaining("h").await.unwrap().unwrap();
    assert!(
        left > Duration::from_secs(28),
        "{left:?}: a shorter hold never shortens"
    );

    for n in 1..=3 {
        let (count, left) = store.count("c", Duration::from_secs(60)).await.unwrap();
        assert_eq!(count, n);
        assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60));
    }
}

/// Two replicas: the second finds the first one's Backend API answer in Redis and makes no
/// call of its own; neither the token nor the verify answer's secrets are stored; the key is
/// the prefix and the token's SHA-256.
#[tokio::test]
async fn a_second_replica_uses_the_first_ones_answer() {
    let redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let (fa, fb) = (fleet(&redis), fleet(&redis));
    let (a, b) = (replica(&clerk, &fa), replica(&clerk, &fb));
    let token = opaque_token(&issuer, "user_alice");

    assert_eq!(a.verify(&token).await.unwrap().user_id(), "user_alice");
    assert_eq!(verify_calls(&issuer), 1);
    assert_eq!(b.verify(&token).await.unwrap().user_id(), "user_alice");
    assert_eq!(
        verify_calls(&issuer),
        1,
        "the second replica asked Redis, not Clerk"
    );
    assert_eq!(fb.stats().shared_hits, 1);
    // Served locally from then on: no Redis look-up either.
    b.verify(&token).await.unwrap();
    assert_eq!(fb.stats().shared_hits, 1);

    let dump = redis.dump();
    assert!(
        !dump.contains(&token),
        "the token is never a key or a value"
    );
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(dump.contains(&format!("test:verify:oat:{hash}")), "{dump}");

    // A refusal is shared too (briefly).
    let unknown = "oat_not_a_token_of_this_instance";
    assert!(matches!(
        a.verify(unknown).await,
        Err(VerifyError::InvalidToken(_))
    ));
    assert!(matches!(
        b.verify(unknown).await,
        Err(VerifyError::InvalidToken(_))
    ));
    assert_eq!(verify_calls(&issuer), 2);
}

/// Many replicas meeting one new token at once make at most one Backend API call between them
/// (the others wait for its answer in Redis).
#[tokio::test]
async fn fleet_wide_single_flight() {
    let redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let replicas: Vec<Arc<ClerkVerifier>> = (0..8)
        .map(|_| Arc::new(replica(&clerk, &fleet(&redis))))
        .collect();
    let token = opaque_token(&issuer, "user_alice");
    let tasks: Vec<_> = replicas
        .iter()
        .flat_map(|r| {
            (0..3).map({
                let token = token.clone();
                move |_| {
                    let (r, token) = (r.clone(), token.clone());
                    tokio::spawn(
                        async move { r.verify(&token).await.map(|i| i.user_id().to_owned()) },
                    )
                }
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "user_alice");
    }
    assert_eq!(verify_calls(&issuer), 1);
}

/// A warm token costs Redis nothing: once a replica holds a token's answer locally (fetched
/// from the Backend API, or read from another replica's entry in Redis), its later requests are
/// served from the local cache with no Redis command at all, over the whole request path (a
/// server with the shared store for its rate limits and sessions, and the shared cache).
#[tokio::test]
async fn warm_local_hits_send_no_redis_command() {
    let redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let start = |fleet: FleetStore| {
        start_mcp_with(
            &clerk,
            {
                let fleet = fleet.clone();
                move |v| v.shared_cache(fleet).allow_missing_audience()
            },
            move |b| b.shared_store(fleet),
        )
    };
    let (fa, fb) = (fleet(&redis), fleet(&redis));
    let (a, b) = (start(fa.clone()).await, start(fb.clone()).await);
    // Without an audience (the servers have different URLs): accepted by the relaxed policy.
    let token = issuer
        .mint_access_token(MintRequest {
            format: Some(TokenFormat::Opaque),
            ..MintRequest::new("user_alice", "client_1")
        })
        .unwrap();

    // Warm-up: `a` asks the Backend API and writes Redis; `b` reads `a`'s answer from Redis.
    assert_eq!(a.whoami(&token).await["user_id"], "user_alice");
    assert_eq!(b.whoami(&token).await["user_id"], "user_alice");
    assert_eq!(verify_calls(&issuer), 1);
    assert_eq!((fa.stats().shared_misses, fb.stats().shared_hits), (1, 1));

    redis.command(&["CONFIG", "RESETSTAT"]);
    for _ in 0..50 {
        assert_eq!(a.whoami(&token).await["user_id"], "user_alice");
        assert_eq!(b.whoami(&token).await["user_id"], "user_alice");
    }
    assert_eq!(
        redis.commands_since_reset(),
        0,
        "a warm local hit sent commands to Redis"
    );
    assert_eq!(verify_calls(&issuer), 1);
    for f in [&fa, &fb] {
        let stats = f.stats();
        assert_eq!(stats.shared_hits + stats.shared_misses, 1, "{stats:?}");
        assert_eq!(stats.fallbacks, 0, "{stats:?}");
    }
}

/// JWTs verify locally on every replica: nothing is read from or written to Redis.
#[tokio::test]
async fn jwts_never_touch_redis() {
    let redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let f = fleet(&redis);
    let v = replica(&clerk, &f);
    let jwt = issuer
        .mint_access_token(MintRequest {
            scopes: vec!["profile".into()],
            format: Some(TokenFormat::Jwt),
            resource: Some(RESOURCE.into()),
            ..MintRequest::new("user_alice", "client_1")
        })
        .unwrap();
    redis.command(&["CONFIG", "RESETSTAT"]);
    v.verify(&jwt).await.unwrap();
    assert_eq!(redis.key_count(), 0);
    let stats = f.stats();
    assert_eq!((stats.shared_hits, stats.shared_misses), (0, 0));
}

/// A 429 seen by one replica holds back the others until its `Retry-After` passes: they do not
/// call the Backend API (the issuer counts one 429 in all) and answer 503-worthy `Unavailable`
/// with the remaining wait.
#[tokio::test]
async fn a_429_holds_back_every_replica() {
    let redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    // A short deadline: a replica does not sit out the whole wait inside one request.
    let clerk = clerk_config(&issuer)
        .with_backend_settings(BackendSettings::default().deadline(Duration::from_millis(500)));
    let replicas: Vec<ClerkVerifier> = (0..3).map(|_| replica(&clerk, &fleet(&redis))).collect();
    issuer.throttle_backend(Duration::from_secs(30));

    let err = replicas[0]
        .verify(&opaque_token(&issuer, "user_a"))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Unavailable { .. }), "{err:?}");
    assert_eq!(issuer_requests(&issuer, &[VERIFY_OAT, "429"]), 1);
    for (i, r) in replicas.iter().enumerate().skip(1) {
        let err = r
            .verify(&opaque_token(&issuer, &format!("user_{i}")))
            .await
            .unwrap_err();
        let VerifyError::Unavailable { retry_after } = err else {
            panic!("{err:?}");
        };
        assert!(retry_after > Duration::from_secs(25), "{retry_after:?}");
    }
    assert_eq!(
        verify_calls(&issuer),
        1,
        "no replica called the Backend API during the backoff"
    );
}

/// Redis killed (SIGKILL) mid-run: every verification still succeeds (each replica falls back
/// to its own cache and calls), the outage is counted once, not per request; Redis restarted:
/// the replicas use it again (a second replica is answered from Redis).
#[tokio::test]
async fn redis_killed_and_restarted() {
    let mut redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let (fa, fb) = (fleet(&redis), fleet(&redis));
    let (a, b) = (replica(&clerk, &fa), replica(&clerk, &fb));
    let before = opaque_token(&issuer, "user_before");
    a.verify(&before).await.unwrap();
    b.verify(&before).await.unwrap();
    assert_eq!(fb.stats().shared_hits, 1);

    redis.kill();
    for i in 0..20 {
        let token = opaque_token(&issuer, &format!("user_down_{i}"));
        let who = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            who.verify(&token).await.unwrap().user_id(),
            format!("user_down_{i}")
        );
    }
    assert_eq!(fa.stats().outages, 1, "one outage, logged once");
    assert!(!fa.stats().available);

    redis.restart();
    // Rejoining takes one probe interval (100 ms here) after Redis is back: poll for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let token = opaque_token(&issuer, &format!("user_after_{n}"));
        a.verify(&token).await.unwrap();
        let hits = fb.stats().shared_hits;
        b.verify(&token).await.unwrap();
        if fb.stats().shared_hits > hits {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replicas did not use Redis again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fa.stats().available && fb.stats().available);
}

/// Per-user rate limit over two servers sharing Redis: 5 allowed per window in all, whichever
/// server is called; another user unaffected; with Redis down, requests are served (each
/// server counting alone), never refused because of Redis.
#[tokio::test]
async fn fleet_wide_rate_limit() {
    let mut redis = RedisServer::start();
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let servers = [
        start_limited(&clerk, &fleet(&redis)).await,
        start_limited(&clerk, &fleet(&redis)).await,
    ];
    // Without an audience (the servers have different URLs): accepted by the relaxed policy.
    let unbound = |user: &str| {
        issuer
            .mint_access_token(MintRequest {
                format: Some(TokenFormat::Opaque),
                ..MintRequest::new(user, "client_1")
            })
            .unwrap()
    };
    let alice = unbound("user_alice");
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(servers[i % 2].call_whoami(&alice).await);
    }
    let ok = statuses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<_> = statuses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!((ok, limited.len()), (5, 3));
    for r in &limited {
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry));
    }
    let bob = unbound("user_bob");
    assert_eq!(servers[1].call_whoami(&bob).await.status(), 200);

    redis.kill();
    assert_eq!(servers[0].call_whoami(&bob).await.status(), 200);
}

async fn start_limited(clerk: &ClerkConfig, fleet: &FleetStore) -> McpUnderTest {
    let fleet = fleet.clone();
    start_mcp_with(
        clerk,
        move |v| v.allow_missing_audience(),
        move |b| {
            b.rate_limit_per_user(5, Duration::from_secs(60))
                .shared_store(fleet)
        },
    )
    .await
}
