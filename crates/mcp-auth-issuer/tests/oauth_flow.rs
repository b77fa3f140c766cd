//! The Frontend API over real HTTP: registration, authorization with consent and PKCE, token
//! exchange, refresh rotation, userinfo, introspection, revocation, and every error the
//! authorization and token endpoints must produce.

mod common;

use std::time::Duration;

use common::{REDIRECT, TestIssuer, jwt_parts, location, pkce, query_of, start, start_default};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use mcp_auth_issuer::{Error, Issuer, IssuerConfig, TokenFormat};
use reqwest::StatusCode;
use serde_json::{Value, json};

const RESOURCE: &str = "http://127.0.0.1:3000/mcp";

async fn exchange(
    issuer: &TestIssuer,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let (status, json, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await;
    (status, json)
}

/// `POST /oauth/token_info` as the (public) client the token was issued to: Clerk's
/// introspection needs client credentials.
async fn introspect(issuer: &TestIssuer, client_id: &str, token: &str) -> Value {
    issuer
        .http
        .post(issuer.url("/oauth/token_info"))
        .form(&[("token", token), ("client_id", client_id)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The whole authorization code flow with PKCE, `resource` carried into `aud`, a JWT access
/// token in Clerk's shape whose signature checks against the published JWKS, then refresh with
/// rotation: the old refresh token is refused, and replaying it revokes the grant.
#[tokio::test]
async fn code_flow_with_pkce_then_refresh_rotation() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let (verifier, challenge) = pkce();
    let mut params = TestIssuer::standard_params(&client_id, &challenge);
    params.extend([
        ("scope", "profile email offline_access"),
        ("resource", RESOURCE),
    ]);
    let query = issuer.authorize(&params).await;
    assert_eq!(query["state"], "st4te");
    assert_eq!(query["iss"], issuer.base);
    let code = &query["code"];

    let (status, body, headers) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("resource", RESOURCE),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["scope"], "profile email offline_access");
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    let (header, claims) = jwt_parts(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], issuer.base);
    assert_eq!(claims["sub"], issuer.alice());
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["scope"], "profile email offline_access");
    assert_eq!(claims["aud"], RESOURCE);
    assert!(claims["jti"].as_str().unwrap().starts_with("oat_"));
    assert_eq!(claims["iat"], claims["nbf"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        86_400
    );

    let jwks: JwkSet = issuer.get_json("/.well-known/jwks.json").await;
    let jwk = jwks
        .find(header["kid"].as_str().unwrap())
        .expect("kid published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[RESOURCE]);
    validation.set_issuer(&[&issuer.base]);
    jsonwebtoken::decode::<Value>(access, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("signature, iss, aud and exp verify");

    let userinfo: Value = issuer
        .http
        .get(issuer.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], issuer.alice());
    // Clerk's always-present fields (`OAuth.UserInfo` in `fapi/2026-05-12.yml`).
    assert_eq!(userinfo["user_id"], issuer.alice());
    assert!(userinfo["object"].is_string());
    assert!(
        userinfo["instance_id"]
            .as_str()
            .unwrap()
            .starts_with("ins_")
    );
    assert_eq!(userinfo["email"], "alice@example.com");
    assert_eq!(userinfo["given_name"], "Alice");

    let refresh_form = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", client_id.clone()),
            ("refresh_token", token.to_owned()),
        ]
    };
    let response = issuer
        .http
        .post(issuer.url("/oauth/token"))
        .form(&refresh_form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: Value = response.json().await.unwrap();
    let new_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    assert_ne!(rotated["access_token"], body["access_token"]);
    assert_eq!(
        jwt_parts(rotated["access_token"].as_str().unwrap()).1["aud"],
        RESOURCE
    );

    let (status, err, _) = issuer
        .token_with(
            issuer
                .http
                .post(issuer.url("/oauth/token"))
                .form(&refresh_form(&refresh)),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // Replay of a rotated token revokes the grant: the newest refresh token is dead too.
    let (status, err, _) = issuer
        .token_with(
            issuer
                .http
                .post(issuer.url("/oauth/token"))
                .form(&refresh_form(&new_refresh)),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        introspect(
            &issuer,
            &client_id,
            rotated["access_token"].as_str().unwrap()
        )
        .await["active"],
        false
    );
}

/// With `token_format = Opaque` access tokens are `oat_…` strings, and introspection knows them.
#[tokio::test]
async fn opaque_format_issues_oat_tokens() {
    let issuer = start(IssuerConfig {
        token_format: TokenFormat::Opaque,
        ..IssuerConfig::default()
    })
    .await;
    let client_id = issuer.public_client().await;
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (status, body) = exchange(&issuer, &client_id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().unwrap();
    assert!(
        access.starts_with("oat_") && !access.contains('.'),
        "{access}"
    );
    let info = introspect(&issuer, &client_id, access).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], issuer.alice());
    assert_eq!(info["client_id"], client_id);
    assert_eq!(info["scope"], "profile email", "default scopes");
}

/// With `default_audience`, a token whose client sent no `resource` (a 2025-03-26 client) gets
/// that audience; without it, no `aud`, as Clerk.
#[tokio::test]
async fn default_audience_applies_only_without_resource() {
    for (default_audience, expected) in [(Some(RESOURCE), Some(RESOURCE)), (None, None)] {
        let issuer = start(IssuerConfig {
            default_audience: default_audience.map(str::to_owned),
            ..IssuerConfig::default()
        })
        .await;
        let client_id = issuer.public_client().await;
        let (verifier, challenge) = pkce();
        let code = issuer.code_for(&client_id, &challenge).await;
        let (status, body) = exchange(&issuer, &client_id, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"].as_str(), expected, "{claims}");
    }
}

/// `openid` yields an ID token for the client carrying the authorization request's nonce.
#[tokio::test]
async fn openid_scope_returns_an_id_token_with_the_nonce() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let (verifier, challenge) = pkce();
    let mut params = TestIssuer::standard_params(&client_id, &challenge);
    params.extend([("scope", "openid email"), ("nonce", "n-0S6_WzA2Mj")]);
    let code = issuer.authorize(&params).await["code"].clone();
    let (status, body) = exchange(&issuer, &client_id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let (header, claims) = jwt_parts(body["id_token"].as_str().unwrap());
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["aud"], client_id);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims.get("name").is_none(), "no profile scope, no name");
}

/// Confidential clients authenticate with Basic or with the secret in the body; a wrong secret
/// is `invalid_client` 401, with `WWW-Authenticate: Basic` when Basic was tried.
#[tokio::test]
async fn confidential_client_authentication() {
    let issuer = start_default().await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let (id, secret) = issuer.confidential_client(method).await;
        let (verifier, challenge) = pkce();
        let code = issuer.code_for(&id, &challenge).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ];
        let request = issuer.http.post(issuer.url("/oauth/token"));
        let request = if method == "client_secret_basic" {
            request.basic_auth(&id, Some(&secret)).form(&form)
        } else {
            let mut with_secret = form.to_vec();
            with_secret.extend([
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ]);
            request.form(&with_secret)
        };
        let (status, body, _) = issuer.token_with(request).await;
        assert_eq!(status, StatusCode::OK, "{method}: {body}");

        // Wrong secret, via Basic.
        let (status, body, headers) = issuer
            .token_with(
                issuer
                    .http
                    .post(issuer.url("/oauth/token"))
                    .basic_auth(&id, Some("wrong"))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );

        // Wrong secret, in the body.
        let (status, body, _) = issuer
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", &id),
                ("client_secret", "wrong"),
            ])
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );

        // No secret at all for a confidential client.
        let (status, body, _) = issuer
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", &id),
            ])
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
    }
}

/// Every token-endpoint error with its RFC 6749 code and status.
#[tokio::test]
async fn token_endpoint_errors() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let expect = |got: (StatusCode, Value), status: StatusCode, code: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["error"], code, "{}", got.1);
        assert!(got.1["error_description"].is_string());
    };

    // Code reuse: the second exchange fails and the first token is revoked.
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let first = exchange(&issuer, &client_id, &code, &verifier).await;
    assert_eq!(first.0, StatusCode::OK);
    expect(
        exchange(&issuer, &client_id, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        introspect(
            &issuer,
            &client_id,
            first.1["access_token"].as_str().unwrap()
        )
        .await["active"],
        false
    );

    // PKCE mismatch.
    let (_, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (other_verifier, _) = pkce();
    expect(
        exchange(&issuer, &client_id, &code, &other_verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    // Missing code_verifier.
    let (_, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_request");

    // redirect_uri mismatch.
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:4567/other"),
            ("code_verifier", &verifier),
        ])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_grant");

    // Expired code (the issuer's clock moves past the 10-minute lifetime, Clerk's; no sleeping).
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    issuer.handle.advance_clock(Duration::from_secs(601));
    expect(
        exchange(&issuer, &client_id, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    // Code issued to another client.
    let other_client = issuer.public_client().await;
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    expect(
        exchange(&issuer, &other_client, &code, &verifier).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );

    // resource differing from the authorized one.
    let (verifier, challenge) = pkce();
    let mut params = TestIssuer::standard_params(&client_id, &challenge);
    params.push(("resource", RESOURCE));
    let code = issuer.authorize(&params).await["code"].clone();
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("resource", "http://127.0.0.1:9999/elsewhere"),
        ])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_target");

    // Unknown client.
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
            ("code", "x"),
        ])
        .await;
    expect((s, b), StatusCode::UNAUTHORIZED, "invalid_client");

    // Unsupported grant type; missing grant type.
    let (s, b, _) = issuer
        .token(&[("grant_type", "password"), ("client_id", &client_id)])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let (s, b, _) = issuer.token(&[("client_id", &client_id)]).await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_request");

    // Repeated parameter.
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
        ])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_request");

    // Not a form body.
    let (s, b, _) = issuer
        .token_with(
            issuer
                .http
                .post(issuer.url("/oauth/token"))
                .json(&json!({"grant_type": "authorization_code"})),
        )
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_request");

    // Refresh asking for a scope that was never granted.
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (_, tokens) = exchange(&issuer, &client_id, &code, &verifier).await;
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("scope", "profile openid"),
        ])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "invalid_scope");

    // A client registered without the refresh grant may not use it.
    let no_refresh = issuer
        .register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await;
    let (s, b, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", no_refresh["client_id"].as_str().unwrap()),
            ("refresh_token", "x"),
        ])
        .await;
    expect((s, b), StatusCode::BAD_REQUEST, "unauthorized_client");
}

/// Authorization-endpoint errors: unknown client and bad redirect URI are shown on the page
/// (never redirected); everything else goes back to the client with `error` and `state`.
#[tokio::test]
async fn authorize_endpoint_errors() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let (_, challenge) = pkce();

    for (params, what) in [
        (
            vec![
                ("response_type", "code"),
                ("client_id", "nobody"),
                ("redirect_uri", REDIRECT),
            ],
            "unknown client",
        ),
        (
            vec![
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", "https://evil.example/cb"),
            ],
            "unregistered redirect_uri",
        ),
        (
            vec![("response_type", "code"), ("redirect_uri", REDIRECT)],
            "missing client_id",
        ),
    ] {
        let response = issuer
            .http
            .get(issuer.authorize_url(&params))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(
            response.headers().get("location").is_none(),
            "{what} must not redirect"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    let redirected = |overrides: Vec<(&'static str, &'static str)>,
                      removed: &'static [&'static str]| {
        let mut params: Vec<(&str, &str)> = TestIssuer::standard_params(&client_id, &challenge)
            .into_iter()
            .filter(|(k, _)| !removed.contains(k) && !overrides.iter().any(|(o, _)| o == k))
            .collect();
        params.extend(overrides);
        issuer.authorize_url(&params)
    };
    for (url, code) in [
        (
            redirected(vec![("code_challenge_method", "plain")], &[]),
            "invalid_request",
        ),
        (
            redirected(vec![], &["code_challenge_method"]),
            "invalid_request",
        ),
        (redirected(vec![], &["code_challenge"]), "invalid_request"),
        (
            redirected(vec![("code_challenge", "short")], &[]),
            "invalid_request",
        ),
        (
            redirected(vec![("response_type", "token")], &[]),
            "unsupported_response_type",
        ),
        (
            redirected(vec![("scope", "openid admin")], &[]),
            "invalid_scope",
        ),
        (
            redirected(vec![("resource", "not-a-uri")], &[]),
            "invalid_target",
        ),
        (
            redirected(vec![("prompt", "none")], &[]),
            "consent_required",
        ),
    ] {
        let response = issuer.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{code}");
        let loc = location(response.headers());
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let query = query_of(&loc);
        assert_eq!(query["error"], code, "{url}");
        assert_eq!(query["state"], "st4te");
        assert!(query.contains_key("error_description"));
    }

    // RFC 8252: a loopback redirect URI may use another port.
    let mut params = TestIssuer::standard_params(&client_id, &challenge);
    params[2] = ("redirect_uri", "http://127.0.0.1:60001/callback");
    let response = issuer
        .http
        .get(issuer.authorize_url(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Deny sends `error=access_denied` (with `state`) to the client; no code is issued.
#[tokio::test]
async fn deny_returns_access_denied() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let (_, challenge) = pkce();
    let fields = issuer
        .consent_form(&TestIssuer::standard_params(&client_id, &challenge))
        .await;
    let response = issuer
        .submit(
            fields,
            &[("decision", "deny"), ("user_id", &issuer.alice())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let query = query_of(&location(response.headers()));
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st4te");
    assert!(!query.contains_key("code"));
}

/// The consent form is CSRF-protected: a missing or wrong token, or any tampered signed field, is
/// refused with 403 and nothing is sent to the client.
#[tokio::test]
async fn consent_form_without_valid_csrf_token_is_refused() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let (_, challenge) = pkce();
    let fields = issuer
        .consent_form(&TestIssuer::standard_params(&client_id, &challenge))
        .await;
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "scope",
        "csrf_token",
    ] {
        assert!(
            names.contains(&expected),
            "hidden field {expected} missing: {names:?}"
        );
    }
    let allow = [
        ("decision", "allow"),
        ("user_id", "user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6"),
    ];

    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    let wrong: Vec<_> = fields
        .iter()
        .map(|(k, v)| {
            if k == "csrf_token" {
                (k.clone(), "AAAA".repeat(11))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let tampered: Vec<_> = fields
        .iter()
        .map(|(k, v)| {
            if k == "scope" {
                (k.clone(), "openid profile email".into())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    for (form, what) in [
        (without, "missing"),
        (wrong, "wrong"),
        (tampered, "tampered scope"),
    ] {
        let response = issuer.submit(form, &allow).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(response.headers().get("location").is_none(), "{what}");
    }
    // The untouched form still works.
    let response = issuer.submit(fields, &allow).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(query_of(&location(response.headers())).contains_key("code"));
}

/// Auto-approve skips the consent page on loopback and is refused on a non-loopback listener.
#[tokio::test]
async fn auto_approve_works_on_loopback_and_is_refused_elsewhere() {
    let bob = mcp_auth_issuer::default_users()[1].id.clone();
    let issuer = start(IssuerConfig {
        auto_approve_user: Some(bob.clone()),
        ..IssuerConfig::default()
    })
    .await;
    let client_id = issuer.public_client().await;
    let (verifier, challenge) = pkce();
    let response = issuer
        .http
        .get(issuer.authorize_url(&TestIssuer::standard_params(&client_id, &challenge)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = query_of(&location(response.headers()))["code"].clone();
    let (status, body) = exchange(&issuer, &client_id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        jwt_parts(body["access_token"].as_str().unwrap()).1["sub"],
        bob
    );

    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = Issuer::serve(
        listener,
        IssuerConfig {
            auto_approve_user: Some(bob),
            ..IssuerConfig::default()
        },
    )
    .await;
    assert!(
        matches!(refused, Err(Error::AutoApproveOnNonLoopback(_))),
        "{refused:?}"
    );
}

/// Registration validates redirect URIs and metadata and echoes what it registered.
#[tokio::test]
async fn registration_validates_metadata() {
    let issuer = start_default().await;
    let ok = issuer
        .register(json!({
            "client_name": "Cursor",
            "redirect_uris": ["cursor://anysphere.cursor-retrieval/oauth/callback", "http://localhost:6274/cb"],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
            "logo_uri": "https://cursor.example/logo.png",
            "software_id": "kept-and-echoed",
        }))
        .await;
    assert!(ok["client_secret"].as_str().unwrap().len() >= 32);
    assert_eq!(ok["client_secret_expires_at"], 0);
    assert_eq!(ok["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(ok["software_id"], "kept-and-echoed");
    assert_eq!(
        ok["redirect_uris"][0],
        "cursor://anysphere.cursor-retrieval/oauth/callback"
    );

    let public = issuer
        .register(
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
        )
        .await;
    assert!(public.get("client_secret").is_none());

    for (body, code) in [
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["http://localhost/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://localhost/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://localhost/cb"], "client_name": 42}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://localhost/cb"], "logo_uri": "not a url"}),
            "invalid_client_metadata",
        ),
    ] {
        let (status, json) = issuer.try_register(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], code, "{body}");
    }
    let response = issuer
        .http
        .post(issuer.url("/oauth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
}

/// RFC 7009 revocation by the client (always 200), and RFC 7662 introspection.
#[tokio::test]
async fn revocation_and_introspection() {
    let issuer = start_default().await;
    let client_id = issuer.public_client().await;
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(&client_id, &challenge).await;
    let (_, tokens) = exchange(&issuer, &client_id, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let info = introspect(&issuer, &client_id, refresh).await;
    // Clerk's `OAuth.TokenInfo` fields, and no others.
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], client_id.as_str());
    assert!(info["iat"].is_u64());
    let mut fields: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["active", "client_id", "iat", "scope", "sub"]);

    // Introspection needs authentication.
    let response = issuer
        .http
        .post(issuer.url("/oauth/token_info"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let revoke = |token: &str| {
        issuer
            .http
            .post(issuer.url("/oauth/token/revoke"))
            .form(&[("token", token), ("client_id", client_id.as_str())])
            .send()
    };
    assert_eq!(
        revoke("unknown-token").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(revoke(access).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        introspect(&issuer, &client_id, access).await["active"],
        false
    );
    let response = issuer
        .http
        .get(issuer.url("/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Revoking the refresh token ends the grant; `/oauth/revoke` is kept as an alias of Clerk's
    // `/oauth/token/revoke`.
    let alias = issuer
        .http
        .post(issuer.url("/oauth/revoke"))
        .form(&[("token", refresh), ("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), StatusCode::OK);
    let (status, body, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

/// Browser clients can call the token endpoint cross-origin (CORS preflight and response).
#[tokio::test]
async fn token_endpoint_allows_cross_origin_calls() {
    let issuer = start_default().await;
    let response = issuer
        .http
        .request(reqwest::Method::OPTIONS, issuer.url("/oauth/token"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let response = issuer
        .http
        .post(issuer.url("/oauth/token"))
        .header("origin", "http://localhost:6274")
        .form(&[("grant_type", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

/// RFC 9207: every authorization response carries `iss`, equal to the metadata's `issuer`:
/// a code after consent, a code from auto-approve, an error redirect from the GET, and the
/// `access_denied` redirect from the consent form. The metadata says so
/// (`authorization_response_iss_parameter_supported`).
#[tokio::test]
async fn every_authorization_response_carries_iss() {
    let issuer = start_default().await;
    let metadata: Value = issuer
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let expected = metadata["issuer"].as_str().unwrap().to_owned();
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let client_id = issuer.public_client().await;
    let (_, challenge) = pkce();
    let params = TestIssuer::standard_params(&client_id, &challenge);

    let success = issuer.authorize(&params).await;
    assert!(success.contains_key("code"));
    assert_eq!(success["iss"], expected, "success");

    let fields = issuer.consent_form(&params).await;
    let response = issuer
        .submit(
            fields,
            &[("decision", "deny"), ("user_id", &issuer.alice())],
        )
        .await;
    let denied = query_of(&location(response.headers()));
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(denied["iss"], expected, "denied");

    let mut bad = params.clone();
    bad.push(("scope", "not-a-scope"));
    let response = issuer
        .http
        .get(issuer.authorize_url(&bad))
        .send()
        .await
        .unwrap();
    let error = query_of(&location(response.headers()));
    assert_eq!(error["error"], "invalid_scope");
    assert_eq!(error["iss"], expected, "error");

    let auto = start(IssuerConfig {
        auto_approve_user: Some(issuer.alice()),
        ..IssuerConfig::default()
    })
    .await;
    let auto_client = auto.public_client().await;
    let response = auto
        .http
        .get(auto.authorize_url(&TestIssuer::standard_params(&auto_client, &challenge)))
        .send()
        .await
        .unwrap();
    let approved = query_of(&location(response.headers()));
    assert!(approved.contains_key("code"));
    assert_eq!(approved["iss"], auto.base, "auto-approved");
}

/// A registered redirect URI's own query is kept, first, and the answer's parameters follow it
/// (RFC 6749 §3.1.2), even when its names are the answer's own: the client chose that URI.
/// The `issuer_forms` fuzz target met such a URI (`ftp://p/?code`) and its oracle took the
/// registered `code` for the issuer's (`fuzz/corpus/issuer_forms/d6b81c26…`).
#[tokio::test]
async fn a_redirect_uri_keeps_its_own_query_before_the_answer() {
    let issuer = start_default().await;
    let redirect = "http://127.0.0.1:9/cb?code&app=x";
    let client = issuer
        .register(json!({
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    // No response_type: an error redirect.
    let response = issuer
        .http
        .get(issuer.authorize_url(&[("client_id", client_id), ("redirect_uri", redirect)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let to = location(response.headers());
    let answer = to
        .strip_prefix("http://127.0.0.1:9/cb?code&app=x&")
        .unwrap_or_else(|| panic!("the registered query is not kept first: {to}"));
    let added = query_of(&format!("http://x/?{answer}"));
    assert_eq!(added["error"], "invalid_request", "{to}");
    assert_eq!(added["iss"], issuer.base, "{to}");
    assert!(!added.contains_key("code"), "{to}");
}

/// `POST /admin/clients` makes pre-registered clients: a public one (no secret) and a
/// confidential one whose secret authenticates at the token endpoint; bad metadata is a 400
/// saying what is wrong; a missing or wrong secret key is a 401.
#[tokio::test]
async fn admin_clients_are_pre_registered() {
    let issuer = start_default().await;
    let create = |key: Option<String>, body: Value| {
        let mut request = issuer.http.post(issuer.url("/admin/clients")).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let key = Some(issuer.handle.secret_key());

    let response = create(
        key.clone(),
        json!({"client_name": "Public", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let public: Value = response.json().await.unwrap();
    assert!(public.get("client_secret").is_none(), "{public}");
    let public_id = public["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(public_id, &challenge).await;
    let (status, tokens) = exchange(&issuer, public_id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(
        tokens["refresh_token"].is_string(),
        "refresh_token granted by default"
    );

    let response = create(
        key.clone(),
        json!({"client_name": "Confidential", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let confidential: Value = response.json().await.unwrap();
    let (id, secret) = (
        confidential["client_id"].as_str().unwrap(),
        confidential["client_secret"].as_str().unwrap(),
    );
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(id, &challenge).await;
    let (status, tokens, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    for (body, code, says) in [
        (
            json!({"client_name": "X", "redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
            "http on a non-loopback host",
        ),
        (
            json!({"client_name": "X", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "not supported",
        ),
        (
            json!({"client_name": "X"}),
            "invalid_redirect_uri",
            "redirect_uris is required",
        ),
        (
            json!(["not", "an", "object"]),
            "invalid_client_metadata",
            "JSON object",
        ),
    ] {
        let response = create(key.clone(), body.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], code, "{error}");
        assert!(
            error["error_description"].as_str().unwrap().contains(says),
            "{error}"
        );
    }

    let ok = json!({"client_name": "X", "redirect_uris": [REDIRECT]});
    let missing = create(None, ok.clone()).await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let wrong = create(Some("sk_test_wrong".into()), ok).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

/// `public_clients: false` (`--no-public-clients`): both discovery documents leave `none` out
/// of `token_endpoint_auth_methods_supported` and do not advertise Client ID Metadata
/// Documents; registering a public client, dynamically or with `POST /admin/clients`, is
/// refused with `invalid_client_metadata`; a metadata-document `client_id` is refused at the
/// token endpoint; a confidential client still registers and gets its tokens.
#[tokio::test]
async fn confidential_clients_only() {
    let issuer = start(IssuerConfig {
        public_clients: false,
        ..IssuerConfig::default()
    })
    .await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let metadata: Value = issuer
            .http
            .get(issuer.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            metadata["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post"]),
            "{path}"
        );
        assert_eq!(
            metadata["client_id_metadata_document_supported"], false,
            "{path}"
        );
    }

    let public = json!({"client_name": "Public", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    let (status, error) = issuer.try_register(public.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"], "invalid_client_metadata");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("confidential clients only"),
        "{error}"
    );
    let response = issuer
        .http
        .post(issuer.url("/admin/clients"))
        .bearer_auth(issuer.handle.secret_key())
        .json(&public)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "invalid_client_metadata", "{error}");

    let (status, error, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "https://client.example/metadata.json"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "x"),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"], "invalid_client");

    let confidential = issuer
        .register(json!({"client_name": "Confidential", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}))
        .await;
    let (id, secret) = (
        confidential["client_id"].as_str().unwrap(),
        confidential["client_secret"].as_str().unwrap(),
    );
    let (verifier, challenge) = pkce();
    let code = issuer.code_for(id, &challenge).await;
    let (status, tokens, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

/// A body over the issuer's 64 KiB limit gets 413 with an RFC 6749 error object
/// (`invalid_request`) at every endpoint that reads one, never a bare text answer. Found by the
/// `issuer_forms` fuzz target (a consent POST of about 100 KiB, RELIABILITY.md, session 8).
#[tokio::test]
async fn an_oversized_body_gets_an_oauth_error() {
    let issuer = start_default().await;
    let form = format!("client_id=abc&scope={}", "a".repeat(70_000));
    let json = json!({ "client_name": "a".repeat(70_000) }).to_string();
    let form_type = "application/x-www-form-urlencoded";
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    // Introspection reads its body itself and already answered 400 `invalid_request`.
    // Registration answers in RFC 7591 §3.2.2's codes (found by the `issuer_forms` fuzz target:
    // `invalid_request` is not one of them).
    for (path, content_type, body, status, code) in [
        (
            "/oauth/authorize",
            form_type,
            &form,
            too_large,
            "invalid_request",
        ),
        (
            "/oauth/token",
            form_type,
            &form,
            too_large,
            "invalid_request",
        ),
        (
            "/oauth/token/revoke",
            form_type,
            &form,
            too_large,
            "invalid_request",
        ),
        (
            "/oauth/token_info",
            form_type,
            &form,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/oauth/register",
            "application/json",
            &json,
            too_large,
            "invalid_client_metadata",
        ),
    ] {
        let resp = issuer
            .http
            .post(format!("{}{path}", issuer.base))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        let answer: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        assert_eq!(answer["error"], code, "{path}: {answer}");
        assert!(answer["error_description"].is_string(), "{path}: {answer}");
    }
}
