//! The Clerk preset against `mcp-auth-issuer`, the local Clerk-compatible server: every token
//! kind, refusals, the rate-limit load, single-flight, and `users().get`.

#[path = "common/clerk.rs"]
mod clerk_common;
mod common;

use std::{sync::Arc, time::Duration};

use clerk_common::*;
use mcp_auth::{
    CacheConfig, TokenVerifier, VerifyError,
    clerk::{BackendError, ClerkConfig, JwksSource},
};
use mcp_auth_issuer::{
    ApiKeyRequest, IssuerConfig, JWT_CATEGORY_TEMPLATE, MachineTokenRequest, MintRequest,
    OrganizationClaims, SessionTokenRequest, TokenFormat,
};
use serde_json::json;

const FRONTEND: &str = "https://app.example.com";

fn jwt(resource: Option<&str>) -> MintRequest {
    MintRequest {
        scopes: vec!["profile".into(), "email".into()],
        resource: resource.map(str::to_owned),
        format: Some(TokenFormat::Jwt),
        ..MintRequest::new("user_alice", "client_1")
    }
}

/// An opaque OAuth token issued for `resource` (Clerk's verify answer then carries it in `aud`).
fn opaque(user: &str, resource: &str) -> MintRequest {
    MintRequest {
        scopes: vec!["profile".into()],
        format: Some(TokenFormat::Opaque),
        resource: Some(resource.into()),
        ..MintRequest::new(user, "client_1")
    }
}

async fn assert_invalid_token(mcp: &McpUnderTest, token: &str, what: &str) {
    let resp = mcp.call_whoami(token).await;
    assert_eq!(resp.status(), 401, "{what} should be refused");
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// The default preset accepts OAuth access tokens only (JWT and opaque); session tokens, API
/// keys and machine tokens are refused with 401 invalid_token, without a Backend API call.
#[tokio::test]
async fn default_accepts_only_oauth_access_tokens() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b).await;

    let token = issuer.mint_access_token(jwt(Some(&mcp.url))).unwrap();
    let me = mcp.whoami(&token).await;
    assert_eq!(me["user_id"], "user_alice");
    assert_eq!(me["kind"], "oauth_token");
    assert_eq!(me["client_id"], "client_1");
    assert_eq!(me["scopes"], json!(["profile", "email"]));

    let token = issuer
        .mint_access_token(opaque("user_bob", &mcp.url))
        .unwrap();
    assert!(token.starts_with("oat_"));
    let me = mcp.whoami(&token).await;
    assert_eq!(me["user_id"], "user_bob");
    assert_eq!(me["kind"], "oauth_token");

    let session = issuer
        .mint_session_token(SessionTokenRequest {
            user_id: "user_alice".into(),
            authorized_party: Some(FRONTEND.into()),
            ..Default::default()
        })
        .unwrap();
    assert_invalid_token(&mcp, &session, "session token").await;
    let key = issuer
        .mint_api_key(ApiKeyRequest {
            subject: "user_alice".into(),
            ..Default::default()
        })
        .unwrap();
    assert_invalid_token(&mcp, &key, "API key").await;
    let machine = issuer
        .mint_machine_token(MachineTokenRequest {
            subject: "mch_1".into(),
            ..Default::default()
        })
        .unwrap();
    assert_invalid_token(&mcp, &machine, "machine token").await;
    assert_invalid_token(&mcp, "not-a-clerk-token", "unknown shape").await;
    assert_eq!(issuer_requests(&issuer, &[VERIFY_AK]), 0);
    assert_eq!(issuer_requests(&issuer, &[VERIFY_MT]), 0);
}

/// Each opt-in kind is accepted once enabled; session tokens expose `sid`, `v` and the
/// organization claims through AuthInfo's claims.
#[tokio::test]
async fn enabled_kinds_are_accepted() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| {
        b.accept_session_tokens([FRONTEND])
            .accept_api_keys()
            .accept_machine_tokens()
    })
    .await;

    let session = issuer
        .mint_session_token(SessionTokenRequest {
            user_id: "user_alice".into(),
            session_id: Some("sess_1".into()),
            authorized_party: Some(FRONTEND.into()),
            organization: Some(OrganizationClaims {
                id: "org_1".into(),
                slug: "acme".into(),
                role: "admin".into(),
                permissions: vec![],
            }),
            ..Default::default()
        })
        .unwrap();
    let me = mcp.whoami(&session).await;
    assert_eq!(me["kind"], "session_token");
    assert_eq!(me["user_id"], "user_alice");
    assert_eq!(me["sid"], "sess_1");
    assert_eq!(me["v"], 2);
    assert_eq!(me["o"]["id"], "org_1");

    let key = issuer
        .mint_api_key(ApiKeyRequest {
            subject: "user_bob".into(),
            scopes: vec!["reports:read".into()],
            ..Default::default()
        })
        .unwrap();
    let me = mcp.whoami(&key).await;
    assert_eq!(me["kind"], "api_key");
    assert_eq!(me["user_id"], "user_bob");
    assert_eq!(me["scopes"], json!(["reports:read"]));

    let machine = issuer
        .mint_machine_token(MachineTokenRequest {
            subject: "mch_1".into(),
            ..Default::default()
        })
        .unwrap();
    let me = mcp.whoami(&machine).await;
    assert_eq!(me["kind"], "m2m_token");
    assert_eq!(me["user_id"], "", "a machine is not a user");
    assert_eq!(me["machine_id"], "mch_1");
    assert_eq!(issuer_requests(&issuer, &[VERIFY_AK, "status=\"200\""]), 1);
    assert_eq!(issuer_requests(&issuer, &[VERIFY_MT, "status=\"200\""]), 1);
}

/// Revoked and expired opaque tokens (and a revoked API key) are refused with 401.
#[tokio::test]
async fn revoked_and_expired_opaque_tokens_are_refused() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b.accept_api_keys()).await;

    let revoked = issuer
        .mint_access_token(opaque("user_alice", &mcp.url))
        .unwrap();
    assert!(issuer.revoke(&revoked));
    assert_invalid_token(&mcp, &revoked, "revoked oat_").await;

    let expired = issuer
        .mint_access_token(MintRequest {
            lifetime: Some(Duration::ZERO),
            ..opaque("user_alice", &mcp.url)
        })
        .unwrap();
    assert_invalid_token(&mcp, &expired, "expired oat_").await;

    let key = issuer
        .mint_api_key(ApiKeyRequest {
            subject: "user_alice".into(),
            ..Default::default()
        })
        .unwrap();
    assert!(issuer.revoke(&key));
    assert_invalid_token(&mcp, &key, "revoked ak_").await;

    assert_invalid_token(&mcp, "oat_unknown", "unknown oat_").await;
}

/// A revocation is noticed once the cache entry's bound (`max_ttl`) has passed, while the
/// identity is served from cache before that.
#[tokio::test]
async fn revocation_is_noticed_within_the_cache_bound() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let verifier = clerk
        .verifier("http://127.0.0.1:1/mcp")
        .cache(CacheConfig::default().max_ttl(Duration::from_secs(1)))
        .build()
        .unwrap();
    let token = issuer
        .mint_access_token(opaque("user_alice", "http://127.0.0.1:1/mcp"))
        .unwrap();
    verifier.verify(&token).await.unwrap();
    assert!(issuer.revoke(&token));
    // Still cached: no second verify call yet.
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer_requests(&issuer, &[VERIFY_OAT]), 1);
    let started = std::time::Instant::now();
    let refused = loop {
        match verifier.verify(&token).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "revocation not noticed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Clerk refuses a revoked token with 404 (its SDK throws for it).
    assert_eq!(
        refused,
        VerifyError::invalid_token("token not recognised by Clerk")
    );
}

/// Wrong issuer, a wrong present `aud`, a missing `aud` (strict default) and a session token
/// with a foreign `azp` are refused; `allow_missing_audience` accepts a missing `aud` only.
#[tokio::test]
async fn wrong_issuer_audience_and_azp_are_refused() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b.accept_session_tokens([FRONTEND])).await;

    let other_aud = issuer
        .mint_access_token(jwt(Some("http://127.0.0.1:1/other")))
        .unwrap();
    assert_invalid_token(&mcp, &other_aud, "wrong aud").await;
    let no_aud = issuer.mint_access_token(jwt(None)).unwrap();
    assert_invalid_token(&mcp, &no_aud, "missing aud under the strict default").await;
    let foreign = issuer
        .mint_session_token(SessionTokenRequest {
            user_id: "user_alice".into(),
            authorized_party: Some("https://evil.example".into()),
            ..Default::default()
        })
        .unwrap();
    assert_invalid_token(&mcp, &foreign, "foreign azp").await;

    let lenient = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    assert_eq!(lenient.whoami(&no_aud).await["user_id"], "user_alice");
    assert_invalid_token(&lenient, &other_aud, "wrong aud with missing allowed").await;

    // Same keys, but the instance is configured with another issuer string.
    let port = issuer.local_addr().port();
    let other_issuer = clerk_config(&issuer)
        .with_frontend_api_url(&format!("http://localhost:{port}"))
        .unwrap();
    let strict_iss = start_mcp(&other_issuer, |b| b).await;
    let good_elsewhere = issuer
        .mint_access_token(jwt(Some(&strict_iss.url)))
        .unwrap();
    assert_invalid_token(&strict_iss, &good_elsewhere, "wrong iss").await;
}

/// Keys can come from the Backend API's `/v1/jwks` (with the secret key) instead of the
/// Frontend API.
#[tokio::test]
async fn jwks_from_the_backend_api() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b.jwks_source(JwksSource::BackendApi)).await;
    let token = issuer.mint_access_token(jwt(Some(&mcp.url))).unwrap();
    assert_eq!(mcp.whoami(&token).await["user_id"], "user_alice");
    assert_eq!(issuer_requests(&issuer, &["/v1/jwks", "status=\"200\""]), 1);
}

/// The protected resource metadata names the Frontend API as authorization server and lists
/// scopes_supported.
#[tokio::test]
async fn metadata_names_the_frontend_api() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b).await;
    let doc: serde_json::Value = reqwest::get(format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        mcp.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["resource"], mcp.url);
    assert_eq!(doc["authorization_servers"], json!([issuer.base_url()]));
    assert_eq!(doc["scopes_supported"], json!(["profile", "email"]));
}

/// 50 users × 100 tool calls with opaque tokens against the emulated development limit
/// (100 / 10 s): every call succeeds, no 429 is ever produced, one verify call per token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_stays_under_the_development_rate_limit() {
    let issuer = start_issuer(IssuerConfig {
        token_format: TokenFormat::Opaque,
        ..IssuerConfig::default()
    })
    .await;
    let clerk = clerk_config(&issuer);
    let mcp = Arc::new(start_mcp(&clerk, |b| b).await);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let user = format!("user_load_{i}");
            let token = issuer
                .mint_access_token(MintRequest {
                    resource: Some(mcp.url.clone()),
                    ..MintRequest::new(user.clone(), "client_load")
                })
                .unwrap();
            let mcp = mcp.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    let me = mcp.whoami(&token).await;
                    assert_eq!(me["user_id"], user.as_str());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let verifies = issuer_requests_http(&issuer, &[VERIFY_OAT]).await;
    assert_eq!(verifies, 50, "one verify call per token");
    assert_eq!(issuer_requests_http(&issuer, &["status=\"429\""]).await, 0);
}

/// 200 concurrent first requests with one new token make exactly one verify call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_verify_call() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = Arc::new(start_mcp(&clerk, |b| b).await);
    let token = Arc::new(
        issuer
            .mint_access_token(opaque("user_carol", &mcp.url))
            .unwrap(),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (mcp, token, barrier) = (mcp.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                mcp.call_whoami(&token).await.status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(issuer_requests_http(&issuer, &[VERIFY_OAT]).await, 1);
}

/// `users().get` returns Clerk's user for a known id and a typed NotFound for an unknown one.
#[tokio::test]
async fn users_get_known_and_unknown() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk: ClerkConfig = clerk_config(&issuer);
    let alice = issuer.users()[0].clone();
    let user = clerk.users().get(&alice.id).await.unwrap();
    assert_eq!(user.id, alice.id);
    assert_eq!(user.first_name.as_deref(), Some(alice.first_name.as_str()));
    assert_eq!(user.last_name.as_deref(), Some(alice.last_name.as_str()));
    assert_eq!(user.username, alice.username);
    assert_eq!(user.primary_email(), Some(alice.email.as_str()));
    assert!(user.image_url.is_some());
    assert!(user.created_at.is_some() && user.updated_at.is_some());
    // Unknown fields are kept.
    assert_eq!(user.extra["object"], "user");
    assert!(user.extra.contains_key("phone_numbers"));

    let err = clerk.users().get("user_does_not_exist").await.unwrap_err();
    assert_eq!(err, BackendError::NotFound);
}

/// An M2M token as a JWT (`sub` = `mch_…`, Clerk's M2M `cat`) is verified locally: kind
/// `m2m_token`, the machine as `machine_id`, no user id, the granted machines as scopes, and no
/// Backend API call. Without `accept_machine_tokens` it is refused, not taken for another kind.
#[tokio::test]
async fn m2m_jwts_are_machine_tokens() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b.accept_machine_tokens()).await;
    let token = issuer
        .mint_machine_token(MachineTokenRequest {
            subject: "mch_worker".into(),
            scopes: vec!["mch_api".into()],
            format: Some(TokenFormat::Jwt),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(token.split('.').count(), 3);
    let me = mcp.whoami(&token).await;
    assert_eq!(me["kind"], "m2m_token");
    assert_eq!(me["machine_id"], "mch_worker");
    assert_eq!(me["user_id"], "");
    assert_eq!(me["scopes"], json!(["mch_api"]));
    assert_eq!(
        issuer_requests(&issuer, &[VERIFY_MT]),
        0,
        "verified locally"
    );

    let default = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    assert_invalid_token(&default, &token, "M2M JWT without accept_machine_tokens").await;
}

/// With a receiving machine, only M2M tokens granted to it pass: opaque ones are verified with
/// its machine secret key (the stand-in, like Clerk, then refuses tokens not granted to it), JWTs
/// by their granted machines. Without one, any M2M token of the instance passes.
#[tokio::test]
async fn receiving_machine_accepts_only_granted_tokens() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let api = issuer.create_machine("api").unwrap();
    let other = issuer.create_machine("other").unwrap();
    let worker = issuer.create_machine("worker").unwrap();
    let mcp = start_mcp(&clerk, |b| {
        b.accept_machine_tokens()
            .receiving_machine(api.id.clone(), api.secret_key.clone())
    })
    .await;
    let any_machine = start_mcp(&clerk, |b| b.accept_machine_tokens()).await;
    let mint = |to: &str, format| {
        issuer
            .mint_machine_token(MachineTokenRequest {
                subject: worker.id.clone(),
                scopes: vec![to.to_owned()],
                format: Some(format),
                ..Default::default()
            })
            .unwrap()
    };
    for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
        let granted = mint(&api.id, format);
        let me = mcp.whoami(&granted).await;
        assert_eq!(me["machine_id"], worker.id.as_str(), "{format}");
        assert_eq!(me["scopes"], json!([api.id]), "{format}");
        let not_granted = mint(&other.id, format);
        assert_invalid_token(
            &mcp,
            &not_granted,
            &format!("{format} token for another machine"),
        )
        .await;
        assert_eq!(
            any_machine.whoami(&not_granted).await["machine_id"],
            worker.id.as_str(),
            "{format}: without a receiving machine any token of the instance passes"
        );
    }
    let builder = clerk
        .verifier("https://mcp.example/mcp")
        .receiving_machine(api.id.clone(), api.secret_key.clone());
    assert!(
        !format!("{builder:?}").contains(&api.secret_key),
        "the machine secret key is redacted"
    );
    assert!(
        ClerkConfig::from_env_values(Some("sk_test_x"), None, None, Some("https://c.example"))
            .unwrap()
            .verifier("https://mcp.example/mcp")
            .accept_machine_tokens()
            .receiving_machine("user_1", "ak_x")
            .build()
            .is_err(),
        "a receiving machine id must be mch_…"
    );
}

/// Opaque OAuth tokens follow the JWT audience policy: without `aud` refused under the strict
/// default and accepted with `allow_missing_audience`; a wrong `aud` refused by both.
#[tokio::test]
async fn opaque_token_audience_policy() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let strict = start_mcp(&clerk, |b| b).await;
    let lenient = start_mcp(&clerk, |b| b.allow_missing_audience()).await;
    let no_aud = issuer
        .mint_access_token(MintRequest {
            resource: None,
            ..opaque("user_alice", "unused")
        })
        .unwrap();
    assert_invalid_token(&strict, &no_aud, "opaque token without aud, strict").await;
    assert_eq!(lenient.whoami(&no_aud).await["user_id"], "user_alice");
    let other = issuer
        .mint_access_token(opaque("user_alice", "http://127.0.0.1:1/other"))
        .unwrap();
    assert_invalid_token(&strict, &other, "opaque token for another resource").await;
    assert_invalid_token(
        &lenient,
        &other,
        "opaque token for another resource, lenient",
    )
    .await;
    let right = issuer
        .mint_access_token(opaque("user_alice", &strict.url))
        .unwrap();
    let me = strict.whoami(&right).await;
    assert_eq!(me["audience"], json!([strict.url]));
}

/// A JWT-template token (Clerk's template `cat`) signed by the same keys is not a session token.
#[tokio::test]
async fn template_jwt_is_refused_as_a_session_token() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b.accept_session_tokens([FRONTEND])).await;
    let request = SessionTokenRequest {
        user_id: "user_alice".into(),
        authorized_party: Some(FRONTEND.into()),
        ..Default::default()
    };
    let session = issuer.mint_session_token(request.clone()).unwrap();
    assert_eq!(mcp.whoami(&session).await["kind"], "session_token");
    let template = issuer
        .mint_session_token(SessionTokenRequest {
            category: Some(JWT_CATEGORY_TEMPLATE.into()),
            ..request
        })
        .unwrap();
    assert_invalid_token(&mcp, &template, "JWT-template token as a session token").await;
}

/// An organization's API key never surfaces as a user id: `user_id` is empty and the
/// organization is `organization_id`; a machine's key is `machine_id`.
#[tokio::test]
async fn org_api_key_is_never_a_user_id() {
    let issuer = start_issuer(IssuerConfig::default()).await;
    let clerk = clerk_config(&issuer);
    let mcp = start_mcp(&clerk, |b| b.accept_api_keys()).await;
    let key = |subject: &str| {
        issuer
            .mint_api_key(ApiKeyRequest {
                subject: subject.into(),
                ..Default::default()
            })
            .unwrap()
    };
    let me = mcp.whoami(&key("org_acme")).await;
    assert_eq!(me["user_id"], "");
    assert_eq!(me["organization_id"], "org_acme");
    assert_eq!(me["subject"], "org_acme");
    let me = mcp.whoami(&key("mch_robot")).await;
    assert_eq!(me["user_id"], "");
    assert_eq!(me["machine_id"], "mch_robot");
    let me = mcp.whoami(&key("user_alice")).await;
    assert_eq!(me["user_id"], "user_alice");
    assert_eq!(me["organization_id"], serde_json::Value::Null);
    // What a tool doing `users().get(auth.user_id())` gets for the org key: not found, and no
    // Backend API call with the organization id.
    let before = issuer_requests(&issuer, &["/v1/users/{id}"]);
    assert_eq!(
        clerk.users().get("").await.unwrap_err(),
        BackendError::NotFound
    );
    assert_eq!(issuer_requests(&issuer, &["/v1/users/{id}"]), before);
}
