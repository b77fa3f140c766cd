//! The Backend API stand-in over real HTTP: secret-key authentication, the three verify endpoints
//! (valid, revoked, expired, unknown), users, JWKS, the rate limit, metrics, and the `/admin`
//! helpers, plus Clerk-shaped session tokens.

mod common;

use std::time::Duration;

use common::{jwt_parts, start, start_default};
use mcp_auth_issuer::{
    ApiKeyRequest, IssuerConfig, MachineTokenRequest, MintRequest, OrganizationClaims,
    SessionTokenRequest, TokenFormat,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Opaque and JWT access tokens verify at `/v1/oauth_applications/access_tokens/verify` (and
/// without `/v1`) in Clerk's JSON (no `type`; `aud` as an array when issued for a resource;
/// `secret` accepted as the deprecated body field); revoked ones and expired opaque ones are 404
/// (Clerk's SDK throws for them), an expired JWT is `200 {"active": false}`; unknown is 404; a
/// missing field is 400; a missing or wrong secret key is a Clerk-style 401.
#[tokio::test]
async fn verify_oauth_access_tokens() {
    let issuer = start_default().await;
    let alice = issuer.alice();
    let mint = |format, lifetime| {
        issuer
            .handle
            .mint_access_token(MintRequest {
                scopes: vec!["profile".into(), "email".into()],
                lifetime,
                format: Some(format),
                resource: Some("https://mcp.example.com/mcp".into()),
                ..MintRequest::new(alice.clone(), "client_abc")
            })
            .unwrap()
    };
    let path = "/v1/oauth_applications/access_tokens/verify";
    for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
        let token = mint(format, None);
        if format == TokenFormat::Opaque {
            assert!(token.starts_with("oat_"));
        }
        let response = issuer
            .backend_post(path, json!({ "access_token": token }))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "clerk_idp_oauth_access_token");
        let id = body["id"].as_str().unwrap();
        assert!(is_clerk_token_id(id, "oat_"), "{id}");
        assert!(body.get("type").is_none(), "Clerk's answer has no `type`");
        assert_eq!(body["aud"], json!(["https://mcp.example.com/mcp"]));
        // The deprecated `secret` body field is still accepted.
        let by_secret: Value = issuer.backend_json(path, json!({ "secret": token })).await;
        assert_eq!(by_secret["id"], body["id"]);
        assert_eq!(body["client_id"], "client_abc");
        assert_eq!(body["subject"], alice);
        assert_eq!(body["scopes"], json!(["profile", "email"]));
        assert_eq!(body["revoked"], false);
        assert_eq!(body["expired"], false);
        assert!(body["expiration"].as_u64().unwrap() > body["created_at"].as_u64().unwrap());
        assert!(
            body["created_at"].as_u64().unwrap() > 1_600_000_000_000,
            "milliseconds"
        );

        assert!(issuer.handle.revoke(&token));
        let response = issuer
            .backend_post(path, json!({ "access_token": token }))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "revoked");

        let expired = mint(format, Some(Duration::ZERO));
        let response = issuer
            .backend_post(
                "/oauth_applications/access_tokens/verify",
                json!({ "access_token": expired }),
            )
            .await;
        if format == TokenFormat::Jwt {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.json::<Value>().await.unwrap(),
                json!({"active": false})
            );
        } else {
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "expired opaque");
        }
    }
    // Issued without a resource: no `aud`.
    let plain = issuer
        .handle
        .mint_access_token(MintRequest {
            format: Some(TokenFormat::Opaque),
            ..MintRequest::new(alice.clone(), "client_abc")
        })
        .unwrap();
    let body: Value = issuer
        .backend_json(path, json!({ "access_token": plain }))
        .await;
    assert!(body.get("aud").is_none(), "{body}");

    let response = issuer
        .backend_post(path, json!({ "access_token": "oat_unknown" }))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Value>().await.unwrap()["errors"][0]["code"],
        "resource_not_found"
    );
    let response = issuer.backend_post(path, json!({})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let token = mint(TokenFormat::Opaque, None);
    for auth in [
        None,
        Some("sk_test_wrong"),
        Some(issuer.handle.publishable_key().as_str()),
    ] {
        let mut request = issuer
            .http
            .post(issuer.url(path))
            .json(&json!({ "access_token": token }));
        if let Some(key) = auth {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["message"].is_string());
        assert!(body["errors"][0]["code"].is_string());
    }
}

/// `prefix` + 32 lowercase hex digits, Clerk's token id shape.
fn is_clerk_token_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// API keys and machine tokens: valid (with `last_used_at`), revoked and expired (404), unknown.
#[tokio::test]
async fn verify_api_keys_and_machine_tokens() {
    let issuer = start_default().await;
    let alice = issuer.alice();
    let key = issuer
        .handle
        .mint_api_key(ApiKeyRequest {
            subject: alice.clone(),
            name: "ci".into(),
            scopes: vec!["read".into()],
            claims: Some(json!({"team": "a"})),
            lifetime: None,
        })
        .unwrap();
    assert!(key.starts_with("ak_"));
    let body: Value = issuer
        .backend_json("/v1/api_keys/verify", json!({"secret": key}))
        .await;
    assert_eq!(body["object"], "api_key");
    assert!(
        is_clerk_token_id(body["id"].as_str().unwrap(), "ak_"),
        "{body}"
    );
    assert_eq!(body["type"], "api_key");
    assert!(body["last_used_at"].is_u64(), "{body}");
    assert_eq!(body["subject"], alice);
    assert_eq!(body["name"], "ci");
    assert_eq!(body["claims"]["team"], "a");
    assert_eq!(body["expiration"], Value::Null);
    assert_eq!(
        (body["revoked"].as_bool(), body["expired"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(issuer.handle.revoke(&key));
    assert_eq!(
        issuer
            .backend_post("/v1/api_keys/verify", json!({"secret": key}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let expiring = issuer
        .handle
        .mint_api_key(ApiKeyRequest {
            subject: alice.clone(),
            lifetime: Some(Duration::from_secs(60)),
            ..Default::default()
        })
        .unwrap();
    issuer.handle.advance_clock(Duration::from_secs(61));
    assert_eq!(
        issuer
            .backend_post("/api_keys/verify", json!({"secret": expiring}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        issuer
            .backend_post("/v1/api_keys/verify", json!({"secret": "ak_nope"}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let machine = issuer
        .handle
        .mint_machine_token(MachineTokenRequest {
            subject: "mch_2worker".into(),
            scopes: vec!["mch_2api".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(machine.starts_with("mt_"));
    let body: Value = issuer
        .backend_json("/v1/m2m_tokens/verify", json!({"token": machine}))
        .await;
    assert_eq!(body["object"], "machine_to_machine_token");
    assert!(
        is_clerk_token_id(body["id"].as_str().unwrap(), "mt_"),
        "{body}"
    );
    assert_eq!(body["subject"], "mch_2worker");
    assert_eq!(body["scopes"], json!(["mch_2api"]));
    assert_eq!(body["expired"], false);
    // `last_used_at` is required in Clerk's answer: null before the first use, then set.
    assert_eq!(body["last_used_at"], Value::Null);
    let body: Value = issuer
        .backend_json("/m2m_tokens/verify", json!({"token": machine}))
        .await;
    assert!(body["last_used_at"].is_u64(), "{body}");
    assert!(issuer.handle.revoke(&machine));
    assert_eq!(
        issuer
            .backend_post("/v1/m2m_tokens/verify", json!({"token": machine}))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "revoked"
    );
    let expiring = issuer
        .handle
        .mint_machine_token(MachineTokenRequest {
            subject: "mch_2worker".into(),
            ..Default::default()
        })
        .unwrap();
    issuer.handle.advance_clock(Duration::from_secs(3601));
    assert_eq!(
        issuer
            .backend_post("/v1/m2m_tokens/verify", json!({"token": expiring}))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "expired"
    );
    assert_eq!(
        issuer
            .backend_post("/v1/m2m_tokens/verify", json!({"token": "mt_nope"}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// `GET /v1/users/{id}` returns Clerk's User JSON; unknown ids are 404; `/v1/jwks` equals the
/// Frontend JWKS.
#[tokio::test]
async fn users_and_jwks() {
    let issuer = start_default().await;
    let get = |path: String| {
        issuer
            .http
            .get(issuer.url(&path))
            .bearer_auth(issuer.handle.secret_key())
            .send()
    };
    let user: Value = get(format!("/v1/users/{}", issuer.alice()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["object"], "user");
    assert_eq!(user["id"], issuer.alice());
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], "Anderson");
    assert_eq!(user["username"], "alice");
    assert_eq!(
        user["email_addresses"][0]["email_address"],
        "alice@example.com"
    );
    assert_eq!(
        user["email_addresses"][0]["id"],
        user["primary_email_address_id"]
    );
    assert_eq!(
        user["email_addresses"][0]["verification"]["status"],
        "verified"
    );
    assert!(user["image_url"].as_str().unwrap().ends_with(".svg"));
    assert!(user["public_metadata"].is_object());
    assert!(user["created_at"].is_u64() && user["updated_at"].is_u64());
    // Every field Clerk's Backend API spec marks required for a User (`bapi/2026-05-12.yml`,
    // `components.schemas.User.required`).
    for field in [
        "id",
        "object",
        "username",
        "first_name",
        "last_name",
        "has_image",
        "primary_email_address_id",
        "primary_phone_number_id",
        "primary_web3_wallet_id",
        "password_enabled",
        "two_factor_enabled",
        "totp_enabled",
        "backup_code_enabled",
        "email_addresses",
        "phone_numbers",
        "web3_wallets",
        "passkeys",
        "external_accounts",
        "saml_accounts",
        "enterprise_accounts",
        "public_metadata",
        "external_id",
        "last_sign_in_at",
        "banned",
        "locked",
        "lockout_expires_in_seconds",
        "verification_attempts_remaining",
        "created_at",
        "updated_at",
        "delete_self_enabled",
        "create_organization_enabled",
        "last_active_at",
        "mfa_enabled_at",
        "mfa_disabled_at",
        "legal_accepted_at",
    ] {
        assert!(user.get(field).is_some(), "User lacks required `{field}`");
    }
    let avatar = issuer
        .http
        .get(user["image_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(avatar.headers()["content-type"], "image/svg+xml");

    let missing = get("/v1/users/user_nobody".into()).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let backend: Value = get("/v1/jwks".into()).await.unwrap().json().await.unwrap();
    let frontend: Value = issuer.get_json("/.well-known/jwks.json").await;
    assert_eq!(backend, frontend);
    assert_eq!(
        issuer
            .http
            .get(issuer.url("/v1/jwks"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// The 101st Backend API call inside the 10 s window gets 429 with `Retry-After`; the Frontend API
/// is not limited; the window reopens once it has passed; metrics count both outcomes.
#[tokio::test]
async fn backend_rate_limit_and_metrics() {
    let issuer = start_default().await;
    let path = format!("/v1/users/{}", issuer.alice());
    let call = || {
        issuer
            .http
            .get(issuer.url(&path))
            .bearer_auth(issuer.handle.secret_key())
            .send()
    };
    for i in 0..100 {
        assert_eq!(
            call().await.unwrap().status(),
            StatusCode::OK,
            "call {}",
            i + 1
        );
    }
    let limited = call().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["errors"][0]["code"],
        "too_many_requests"
    );

    // The Frontend API is not rate limited.
    let metadata = issuer
        .http
        .get(issuer.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);

    assert_eq!(
        issuer.request_count("/v1/users/{id}", "GET", 200).await,
        100
    );
    assert_eq!(issuer.request_count("/v1/users/{id}", "GET", 429).await, 1);

    issuer.handle.advance_clock(Duration::from_secs(10));
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);

    let text = issuer
        .http
        .get(issuer.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("# TYPE mcp_auth_issuer_requests_total counter"));
    assert!(
        !text.contains(&issuer.alice()),
        "raw paths (user ids) never become labels"
    );
}

/// `POST /admin/backend/throttle` makes every Backend API call answer 429 with `Retry-After`
/// until the given seconds pass on the issuer's clock, far below the configured limit; it needs
/// the secret key like every admin route.
#[tokio::test]
async fn admin_throttle_answers_429_until_it_ends() {
    let issuer = start_default().await;
    let path = format!("/v1/users/{}", issuer.alice());
    let call = || {
        issuer
            .http
            .get(issuer.url(&path))
            .bearer_auth(issuer.handle.secret_key())
            .send()
    };
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    let unauthenticated = issuer
        .http
        .post(issuer.url("/admin/backend/throttle"))
        .json(&json!({"seconds": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);

    let throttled = issuer
        .http
        .post(issuer.url("/admin/backend/throttle"))
        .bearer_auth(issuer.handle.secret_key())
        .json(&json!({"seconds": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::OK);
    let limited = call().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    let verify = issuer
        .backend_post(
            "/oauth_applications/access_tokens/verify",
            json!({"access_token": "oat_unknown"}),
        )
        .await;
    assert_eq!(verify.status(), StatusCode::TOO_MANY_REQUESTS);

    issuer.handle.advance_clock(Duration::from_secs(30));
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
}

/// Limit and window are configurable (1000 per 10 s gives a production-like run).
#[tokio::test]
async fn rate_limit_is_configurable() {
    let issuer = start(IssuerConfig {
        rate_limit: mcp_auth_issuer::RateLimit {
            requests: 2,
            window: Duration::from_secs(1),
        },
        ..IssuerConfig::default()
    })
    .await;
    let path = format!("/v1/users/{}", issuer.alice());
    let call = |path: String| {
        issuer
            .http
            .get(issuer.url(&path))
            .bearer_auth(issuer.handle.secret_key())
            .send()
    };
    assert_eq!(call(path.clone()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(call(path.clone()).await.unwrap().status(), StatusCode::OK);
    let limited = call(path).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    // `GET /v1/jwks` is not rate-limited at Clerk (docs: system limits), so not here either.
    for _ in 0..5 {
        assert_eq!(
            call("/v1/jwks".into()).await.unwrap().status(),
            StatusCode::OK
        );
    }
}

/// Session tokens look like Clerk's: RS256 JWT, `typ: JWT` (not `at+jwt`), `sid`, `azp`, `v`,
/// org claims when asked.
#[tokio::test]
async fn session_tokens_have_clerk_claims() {
    let issuer = start_default().await;
    let token = issuer
        .handle
        .mint_session_token(SessionTokenRequest {
            user_id: issuer.alice(),
            authorized_party: Some("http://localhost:3000".into()),
            organization: Some(OrganizationClaims {
                id: "org_2acme".into(),
                slug: "acme".into(),
                role: "admin".into(),
                permissions: vec!["manage".into()],
            }),
            ..Default::default()
        })
        .unwrap();
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert!(header["kid"].is_string());
    assert_eq!(claims["sub"], issuer.alice());
    assert!(claims["sid"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(claims["azp"], "http://localhost:3000");
    assert_eq!(claims["v"], 2);
    assert_eq!(claims["iss"], issuer.base);
    assert_eq!(claims["o"]["id"], "org_2acme");
    assert_eq!(claims["o"]["rol"], "admin");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    assert!(issuer.handle.revoke(&token));
}

/// The `/admin` endpoints mint, revoke, rotate and move the clock, and need the secret key.
#[tokio::test]
async fn admin_endpoints() {
    let issuer = start_default().await;
    let admin = |path: &str, body: Value| {
        issuer
            .http
            .post(issuer.url(path))
            .bearer_auth(issuer.handle.secret_key())
            .json(&body)
            .send()
    };
    let minted: Value = admin(
        "/admin/tokens/access",
        json!({"user_id": issuer.alice(), "client_id": "c1", "scopes": ["email"], "format": "opaque", "resource": "http://x/mcp"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(minted["kind"], "access_token");
    let token = minted["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("oat_"));
    let verified: Value = issuer
        .backend_json(
            "/v1/oauth_applications/access_tokens/verify",
            json!({"access_token": token}),
        )
        .await;
    assert_eq!(verified["client_id"], "c1");

    let jwt: Value = admin("/admin/tokens/access", json!({"user_id": issuer.alice()}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwt_parts(jwt["token"].as_str().unwrap()).0["typ"], "at+jwt");

    for (path, body, prefix) in [
        (
            "/admin/api_keys",
            json!({"subject": issuer.alice(), "scopes": ["a"]}),
            "ak_",
        ),
        (
            "/admin/m2m_tokens",
            json!({"subject": "mch_1", "lifetime_secs": 60}),
            "mt_",
        ),
    ] {
        let minted: Value = admin(path, body).await.unwrap().json().await.unwrap();
        assert!(
            minted["token"].as_str().unwrap().starts_with(prefix),
            "{minted}"
        );
    }
    let session: Value = admin(
        "/admin/tokens/session",
        json!({"user_id": issuer.alice(), "organization": {"id": "org_1"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        jwt_parts(session["token"].as_str().unwrap()).1["o"]["id"],
        "org_1"
    );

    let revoked: Value = admin("/admin/revoke", json!({"token": token}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], true);
    let revoked: Value = admin("/admin/revoke", json!({"token": "unknown"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], false);

    let rotated: Value = admin("/admin/rotate_keys", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["jwks"]["keys"].as_array().unwrap().len(), 2);
    assert_eq!(rotated["jwks"]["keys"][0]["kid"], rotated["kid"]);

    let before: Value = admin("/admin/clock/advance", json!({"seconds": 0}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after: Value = admin("/admin/clock/advance", json!({"seconds": 100}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(after["now"].as_u64().unwrap() >= before["now"].as_u64().unwrap() + 100);

    let bad = admin("/admin/tokens/access", json!({"user_id": ""}))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad = admin("/admin/tokens/access", json!({"nope": 1}))
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let unauthenticated = issuer
        .http
        .post(issuer.url("/admin/tokens/access"))
        .json(&json!({"user_id": issuer.alice()}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

/// `POST /admin/machines` answers Clerk's `Machine.Created` (id `mch_` + 27, an `ak_` secret key);
/// `POST /admin/m2m_tokens` mints opaque (default) or JWT M2M tokens granted to the machines in
/// `scopes`; `m2m_tokens/verify` with a machine's secret key passes only tokens granted to that
/// machine, with the instance key any token, with an unknown key none (401).
#[tokio::test]
async fn machines_grants_and_m2m_jwts() {
    let issuer = start_default().await;
    let create = |name: &str| issuer.backend_post("/admin/machines", json!({ "name": name }));
    let worker: Value = create("worker").await.json().await.unwrap();
    assert_eq!(worker["object"], "machine");
    assert_eq!(worker["name"], "worker");
    let worker_id = worker["id"].as_str().unwrap().to_owned();
    assert!(
        worker_id.len() == 4 + 27 && worker_id.starts_with("mch_"),
        "{worker_id}"
    );
    assert!(worker["secret_key"].as_str().unwrap().starts_with("ak_"));
    assert!(worker["instance_id"].as_str().unwrap().starts_with("ins_"));
    assert_eq!(worker["scoped_machines"], json!([]));
    let api: Value = create("api").await.json().await.unwrap();
    let other: Value = create("other").await.json().await.unwrap();
    assert_eq!(
        create("").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a machine needs a name"
    );

    let mint = |format: Option<&str>| {
        let mut body = json!({ "subject": worker_id, "scopes": [api["id"]] });
        if let Some(f) = format {
            body["format"] = json!(f);
        }
        issuer.backend_post("/admin/m2m_tokens", body)
    };
    let opaque: Value = mint(None).await.json().await.unwrap();
    let opaque = opaque["token"].as_str().unwrap().to_owned();
    assert!(opaque.starts_with("mt_"));
    let verify_with = |key: String, token: String| {
        issuer
            .http
            .post(issuer.url("/m2m_tokens/verify"))
            .bearer_auth(key)
            .json(&json!({ "token": token }))
            .send()
    };
    let granted = verify_with(api["secret_key"].as_str().unwrap().into(), opaque.clone())
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::OK);
    let granted: Value = granted.json().await.unwrap();
    assert_eq!(granted["subject"], worker_id.as_str());
    assert_eq!(granted["scopes"], json!([api["id"]]));
    let not_granted = verify_with(other["secret_key"].as_str().unwrap().into(), opaque.clone())
        .await
        .unwrap();
    assert_eq!(not_granted.status(), StatusCode::NOT_FOUND);
    let instance = verify_with(issuer.handle.secret_key(), opaque.clone())
        .await
        .unwrap();
    assert_eq!(instance.status(), StatusCode::OK);
    let unknown = verify_with("ak_unknown".into(), opaque).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    // JWT format: Clerk's M2M JWT claims and `cat` header.
    let jwt: Value = mint(Some("jwt")).await.json().await.unwrap();
    let jwt = jwt["token"].as_str().unwrap();
    let (header, claims) = jwt_parts(jwt);
    assert_eq!(header["cat"], mcp_auth_issuer::JWT_CATEGORY_M2M);
    assert_eq!(claims["sub"], worker_id.as_str());
    assert_eq!(claims["aud"], json!([api["id"]]));
    assert_eq!(claims["scopes"], api["id"]);
    assert!(is_clerk_token_id(claims["jti"].as_str().unwrap(), "mt_"));
    assert_eq!(claims["iss"], issuer.handle.base_url());
    assert_eq!(
        mint(Some("paper")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
