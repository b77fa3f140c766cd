//! Key-set behaviour against a real JWKS endpoint on loopback: rotation, outages, and a
//! random-`kid` flood.

mod common;

use std::time::Duration;

use common::*;
use mcp_auth::{Jwks, JwksConfig, JwtVerifier, TokenVerifier, VerifyError};

const RESOURCE: &str = "http://127.0.0.1:1/mcp";

fn verifier(jwks: &JwksServer, config: JwksConfig) -> JwtVerifier {
    JwtVerifier::builder(
        ISSUER,
        Jwks::from_url_config(jwks.url.parse().unwrap(), config),
    )
    .resource(RESOURCE)
    .build()
    .unwrap()
}

fn token(key: &TestKey, sub: &str) -> String {
    key.sign(&claims(ISSUER, RESOURCE, sub, "openid"), Some("at+jwt"))
}

/// A new `kid` after rotation is picked up with exactly one more fetch.
#[tokio::test]
async fn rotation_is_picked_up_with_one_fetch() {
    let k1 = TestKey::rsa("k1");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let v = verifier(
        &server,
        JwksConfig::default().min_refetch_interval(Duration::ZERO),
    );
    assert_eq!(v.verify(&token(&k1, "a")).await.unwrap().user_id(), "a");
    assert_eq!(server.fetches(), 1);

    let k2 = TestKey::rsa("k2");
    server.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    assert_eq!(v.verify(&token(&k2, "b")).await.unwrap().user_id(), "b");
    assert_eq!(server.fetches(), 2);
    // Both keys now cached: no more fetches.
    v.verify(&token(&k2, "c")).await.unwrap();
    v.verify(&token(&k1, "d")).await.unwrap();
    assert_eq!(server.fetches(), 2);
}

/// The endpoint going down does not affect tokens signed with cached keys, even when the
/// cached set is stale and every request triggers a (failing) background refresh.
#[tokio::test]
async fn endpoint_down_keeps_cached_keys_working() {
    let k1 = TestKey::rsa("k1");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let config = JwksConfig::default()
        .ttl(Duration::ZERO, Duration::ZERO, Duration::ZERO)
        .min_refetch_interval(Duration::ZERO);
    let v = verifier(&server, config);
    v.verify(&token(&k1, "a")).await.unwrap();
    server.set_down(true);
    for i in 0..5 {
        let info = v.verify(&token(&k1, &format!("u{i}"))).await.unwrap();
        assert_eq!(info.user_id(), format!("u{i}"));
    }
}

/// With nothing cached and the endpoint down, verification is unavailable (503 later), not
/// "invalid token".
#[tokio::test]
async fn endpoint_down_with_nothing_cached_is_unavailable() {
    let k1 = TestKey::rsa("k1");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    server.set_down(true);
    let v = verifier(&server, JwksConfig::default());
    match v.verify(&token(&k1, "a")).await {
        Err(VerifyError::Unavailable { retry_after }) => assert!(retry_after > Duration::ZERO),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A key rotated in while the key endpoint is down: tokens signed with the new key are
/// answered "unavailable" (503 + `Retry-After`), never "invalid" (a 401 would send the client
/// back through sign-in for a token that is fine), also when the next fetch is not due yet;
/// they verify once the endpoint answers again. A `kid` the answering endpoint does not know
/// is still invalid.
#[tokio::test]
async fn new_key_during_an_outage_is_unavailable_not_invalid() {
    let k1 = TestKey::rsa("k1");
    let k2 = TestKey::rsa("k2");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let eager = verifier(
        &server,
        JwksConfig::default().min_refetch_interval(Duration::ZERO),
    );
    let interval = Duration::from_millis(300);
    let patient = verifier(
        &server,
        JwksConfig::default().min_refetch_interval(interval),
    );
    eager.verify(&token(&k1, "a")).await.unwrap();
    patient.verify(&token(&k1, "a")).await.unwrap();
    server.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    server.set_down(true);
    // The patient verifier's next fetch is due once its interval has passed since its load.
    tokio::time::sleep(interval).await;
    let before = server.fetches();
    for v in [&eager, &patient, &patient] {
        match v.verify(&token(&k2, "b")).await {
            Err(VerifyError::Unavailable { retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    // The patient verifier fetched once: its second call came within the interval after a
    // failed fetch, and is still "unavailable", not "invalid".
    assert_eq!(server.fetches(), before + 2);
    // Cached keys keep working meanwhile.
    eager.verify(&token(&k1, "c")).await.unwrap();

    server.set_down(false);
    assert_eq!(eager.verify(&token(&k2, "b")).await.unwrap().user_id(), "b");
    assert!(matches!(
        eager.verify(&token(&TestKey::rsa("k3"), "d")).await,
        Err(VerifyError::InvalidToken(_))
    ));
}

/// Found by the soak (RELIABILITY.md): an issuer that publishes a new key and signs with it at
/// once, shortly after the server fetched its keys (within `min_refetch_interval`, so no fetch
/// is due). Its tokens used to be refused 401 "unknown signing key" until the interval passed;
/// now they are 503 + `Retry-After` (the key may be newer than the cached set: the tokens say
/// they were issued after it was fetched), and verify once the next fetch may run.
#[tokio::test]
async fn key_used_at_once_after_a_recent_fetch_is_unavailable_not_invalid() {
    let k1 = TestKey::rsa("k1");
    let k2 = TestKey::rsa("k2");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let interval = Duration::from_millis(300);
    let v = verifier(
        &server,
        JwksConfig::default().min_refetch_interval(interval),
    );
    v.verify(&token(&k1, "a")).await.unwrap();
    server.set_keys(vec![k1.jwk.clone(), k2.jwk.clone()]);
    match v.verify(&token(&k2, "b")).await {
        Err(VerifyError::Unavailable { retry_after }) => {
            assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Waiting out the interval, as the Retry-After says.
    tokio::time::sleep(interval).await;
    assert_eq!(v.verify(&token(&k2, "b")).await.unwrap().user_id(), "b");
}

/// Hundreds of tokens with random `kid`s cause no fetch beyond the first within the refetch
/// interval: an attacker cannot turn us into a load generator against the issuer. None is
/// accepted.
#[tokio::test]
async fn random_kid_flood_is_bounded() {
    let k1 = TestKey::rsa("k1");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let v = std::sync::Arc::new(verifier(
        &server,
        JwksConfig::default().min_refetch_interval(Duration::from_secs(60)),
    ));
    let attacker = TestKey::rsa("attacker");
    let forged: Vec<String> = (0..300)
        .map(|i| {
            let mut k = attacker.clone();
            k.kid = format!("random-{i}");
            token(&k, "mallory")
        })
        .collect();
    let tasks: Vec<_> = forged
        .into_iter()
        .map(|t| {
            let v = v.clone();
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    // Refused, every one: the tokens say they were issued now, after the set was fetched, so
    // their unknown keys could be newer than it; they are "unavailable" until the next fetch
    // is allowed (a valid token after a rotation must not be refused for good).
    for t in tasks {
        assert!(matches!(
            t.await.unwrap(),
            Err(VerifyError::Unavailable { .. } | VerifyError::InvalidToken(_))
        ));
    }
    assert_eq!(server.fetches(), 1, "one initial load, then nothing");
    // A forged token that says it is older than the cached set is invalid at once.
    let mut old_claims = claims(ISSUER, RESOURCE, "mallory", "openid");
    old_claims["iat"] = serde_json::json!(now() - 600);
    let mut k = attacker.clone();
    k.kid = "random-old".into();
    assert!(matches!(
        v.verify(&k.sign(&old_claims, Some("at+jwt"))).await,
        Err(VerifyError::InvalidToken(_))
    ));
    assert_eq!(server.fetches(), 1);
    // Legitimate tokens keep working.
    v.verify(&token(&k1, "alice")).await.unwrap();
    assert_eq!(server.fetches(), 1);
}

/// Over HTTP: JWKS down with nothing cached → 503 with Retry-After, never 401.
#[tokio::test]
async fn unavailable_verifier_answers_503() {
    let s = start_server(Options::default()).await;
    s.jwks.set_down(true);
    let resp = post(
        &s.mcp,
        Some(&s.token("user_a", "openid")),
        &initialize(),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert!(resp.headers().get("www-authenticate").is_none());
}

/// A server whose key endpoint is down when it starts answers 503 + `Retry-After` (never 401)
/// while nothing is cached, without turning its traffic into fetches: a burst of requests
/// during the outage causes at most one fetch per `cold_refetch_interval` between them. Once
/// the endpoint is back, a client that presents its token and, if told to, waits the
/// `Retry-After` it was given, is served on its first or second try.
#[tokio::test]
async fn down_at_start_recovers_soon_after_the_endpoint_returns() {
    let s = start_server(Options::default()).await;
    s.jwks.set_down(true);
    let token = s.token("user_a", "openid");
    let cold = JwksConfig::default().cold_refetch_interval;

    // Distinct tokens, so the verification cache cannot coalesce them into one key lookup.
    let tokens: Vec<String> = (0..100)
        .map(|i| s.token(&format!("user_{i}"), "openid"))
        .collect();
    let body = initialize();
    let started = std::time::Instant::now();
    let burst = tokens.iter().map(|t| post(&s.mcp, Some(t), &body, &[]));
    for resp in futures::future::join_all(burst).await {
        assert_eq!(resp.status(), 503);
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(Duration::from_secs(retry_after) >= cold, "{retry_after}");
        assert!(resp.headers().get("www-authenticate").is_none());
    }
    // An upper bound from the time the burst actually took, so a slow machine cannot fail it:
    // one fetch at the first request, then at most one per interval.
    let bound = 1 + (started.elapsed().as_millis() / cold.as_millis()) as usize;
    let fetches = s.jwks.fetches();
    assert!(
        (1..=bound).contains(&fetches),
        "{fetches} fetches for 100 requests (bound {bound})"
    );

    s.jwks.set_down(false);
    let first = post(&s.mcp, Some(&token), &initialize(), &[]).await;
    if first.status() != 200 {
        assert_eq!(first.status(), 503);
        let wait: u64 = first.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // The client honours Retry-After, as the protocol asks it to.
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let second = post(&s.mcp, Some(&token), &initialize(), &[]).await;
        assert_eq!(second.status(), 200, "not recovered on the second try");
    }
}

/// A server whose key endpoint hangs when it starts (accepts connections, never answers)
/// answers 503 + `Retry-After` meanwhile without holding requests for the whole fetch timeout,
/// starts at most one fetch per `cold_refetch_interval` (no refetch storm, although every fetch
/// it starts hangs), and serves within a second of the endpoint answering again, although the
/// fetches it started earlier are still hanging then.
#[tokio::test]
async fn hang_at_start_recovers_within_a_second_of_answering() {
    let s = start_server(Options::default()).await;
    s.jwks.set_hanging(true);
    let config = JwksConfig::default();
    let cold = config.cold_refetch_interval;

    let tokens: Vec<String> = (0..10)
        .map(|i| s.token(&format!("user_{i}"), "openid"))
        .collect();
    let body = initialize();
    let started = std::time::Instant::now();
    let burst = tokens.iter().map(|t| post(&s.mcp, Some(t), &body, &[]));
    for resp in futures::future::join_all(burst).await {
        assert_eq!(resp.status(), 503);
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(Duration::from_secs(retry_after) >= cold, "{retry_after}");
        assert!(resp.headers().get("www-authenticate").is_none());
    }
    // Answered without waiting for the hung fetch to time out.
    assert!(
        started.elapsed() < config.fetch_timeout,
        "requests were held {:?} by a hung key endpoint",
        started.elapsed()
    );

    s.jwks.set_hanging(false);
    let answering = std::time::Instant::now();
    let token = s.token("user_a", "openid");
    let resp = post(&s.mcp, Some(&token), &initialize(), &[]).await;
    let recovered = answering.elapsed();
    assert_eq!(resp.status(), 200, "not served after the endpoint answered");
    assert!(
        recovered < Duration::from_secs(1),
        "served {recovered:?} after the endpoint answered"
    );
    // One fetch at the first request, then at most one per interval, for the whole run.
    let bound = 1 + (started.elapsed().as_millis() / cold.as_millis()) as usize;
    let fetches = s.jwks.fetches();
    assert!(
        (1..=bound).contains(&fetches),
        "{fetches} fetches (bound {bound})"
    );
}

/// Keys named by the token itself (`jku`, `jwk` headers) are never fetched or used: a token
/// signed by an attacker's key, carrying that key and a URL to it, is refused, and the
/// attacker's key set is never requested.
#[tokio::test]
async fn jku_and_jwk_headers_are_never_followed() {
    let k1 = TestKey::rsa("k1");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let attacker = TestKey::rsa("k1");
    let attacker_jwks = JwksServer::start(vec![attacker.jwk.clone()]).await;
    let v = verifier(&server, JwksConfig::default());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("k1".into());
    header.jku = Some(attacker_jwks.url.clone());
    header.jwk = Some(attacker.jwk.clone());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(ISSUER, RESOURCE, "mallory", "openid"),
        &attacker.encoding,
    )
    .unwrap();
    assert_eq!(
        v.verify(&forged).await.unwrap_err(),
        VerifyError::invalid_token("invalid signature")
    );
    assert_eq!(attacker_jwks.fetches(), 0);
}

/// Optional checks: `typ`, required scopes, authorized parties.
#[tokio::test]
async fn typ_required_scopes_and_authorized_parties() {
    let k1 = TestKey::rsa("k1");
    let server = JwksServer::start(vec![k1.jwk.clone()]).await;
    let jwks = Jwks::from_url(server.url.parse().unwrap());
    let build = || JwtVerifier::builder(ISSUER, jwks.clone()).resource(RESOURCE);
    let base = claims(ISSUER, RESOURCE, "alice", "openid read");

    let typed = build().require_typ(["at+jwt"]).build().unwrap();
    assert!(typed.verify(&k1.sign(&base, Some("at+jwt"))).await.is_ok());
    assert!(
        typed
            .verify(&k1.sign(&base, Some("application/at+jwt")))
            .await
            .is_ok()
    );
    assert_eq!(
        typed
            .verify(&k1.sign(&base, Some("JWT")))
            .await
            .unwrap_err(),
        VerifyError::invalid_token("unexpected token type")
    );

    let scoped = build().required_scopes(["read", "write"]).build().unwrap();
    assert_eq!(
        scoped.verify(&k1.sign(&base, None)).await.unwrap_err(),
        VerifyError::InsufficientScope(vec!["read".into(), "write".into()])
    );
    let mut wide = base.clone();
    wide["scope"] = "read write".into();
    assert!(scoped.verify(&k1.sign(&wide, None)).await.is_ok());

    let parties = build()
        .authorized_parties(["https://app.example"])
        .build()
        .unwrap();
    let mut azp = base.clone();
    azp["azp"] = "https://app.example".into();
    assert!(parties.verify(&k1.sign(&azp, None)).await.is_ok());
    azp["azp"] = "https://evil.example".into();
    assert_eq!(
        parties.verify(&k1.sign(&azp, None)).await.unwrap_err(),
        VerifyError::invalid_token("unauthorized party")
    );
}
