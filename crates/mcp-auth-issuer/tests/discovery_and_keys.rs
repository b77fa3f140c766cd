//! Discovery documents against golden files, the JWKS, key rotation with a grace period, the key
//! file (tokens survive a restart), and the publishable key.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use common::{jwt_parts, start, start_default, start_on};
use mcp_auth_issuer::{IssuerConfig, MintRequest};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.well-known-fixtures/issuer")
}

/// Both metadata documents equal their golden files once the base URL is replaced by `{base}`.
/// Regenerate with `UPDATE_GOLDEN=1 cargo test -p mcp-auth-issuer --test discovery_and_keys`.
#[tokio::test]
async fn metadata_documents_match_golden_files() {
    let issuer = start_default().await;
    for (path, file) in [
        (
            "/.well-known/oauth-authorization-server",
            "oauth-authorization-server.json",
        ),
        (
            "/.well-known/openid-configuration",
            "openid-configuration.json",
        ),
    ] {
        let response = issuer.http.get(issuer.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{path} has CORS"
        );
        let text = response
            .text()
            .await
            .unwrap()
            .replace(&issuer.base, "{base}");
        let actual: Value = serde_json::from_str(&text).unwrap();
        let golden_path = fixtures().join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(fixtures()).unwrap();
            std::fs::write(
                &golden_path,
                serde_json::to_string_pretty(&actual).unwrap() + "\n",
            )
            .unwrap();
        }
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
                    golden_path.display()
                )
            }))
            .unwrap();
        assert_eq!(
            actual,
            golden,
            "{path} differs from {}",
            golden_path.display()
        );
        assert_eq!(actual["issuer"], "{base}", "issuer is exactly the base URL");
    }
}

/// The JWKS publishes RS256 signing keys with `kid`, `n` and `e`.
#[tokio::test]
async fn jwks_publishes_rsa_signing_keys() {
    let issuer = start_default().await;
    let jwks: Value = issuer.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(key["kid"].as_str().unwrap().starts_with("ins_"));
    assert_eq!(key["e"], "AQAB");
    // 2048-bit modulus: 256 bytes → 342 base64url characters.
    assert_eq!(key["n"].as_str().unwrap().len(), 342);
    assert!(key.get("d").is_none(), "no private material");
}

/// Rotation makes a new key active and keeps the old one published (and verifying) for the grace
/// period; after it the old key is gone.
#[tokio::test]
async fn key_rotation_keeps_the_old_key_for_the_grace_period() {
    let issuer = start(IssuerConfig {
        key_rotation_grace: Duration::from_secs(3600),
        ..IssuerConfig::default()
    })
    .await;
    let mint = || {
        issuer
            .handle
            .mint_access_token(MintRequest::new(issuer.alice(), "c"))
            .unwrap()
    };
    let old_token = mint();
    let old_kid = jwt_parts(&old_token).0["kid"].as_str().unwrap().to_owned();

    let new_kid = issuer.handle.rotate_keys().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let kids = |jwks: Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        kids(issuer.handle.jwks()),
        [new_kid.clone(), old_kid.clone()]
    );
    assert_eq!(jwt_parts(&mint()).0["kid"], new_kid.as_str());
    let verify = |token: String| {
        issuer.backend_post(
            "/v1/oauth_applications/access_tokens/verify",
            json!({"access_token": token}),
        )
    };
    assert_eq!(
        verify(old_token.clone()).await.status(),
        StatusCode::OK,
        "old key verifies in the grace period"
    );

    issuer.handle.advance_clock(Duration::from_secs(3601));
    let published: Value = issuer.get_json("/.well-known/jwks.json").await;
    assert_eq!(kids(published), [new_kid]);
    assert_eq!(
        verify(old_token).await.status(),
        StatusCode::NOT_FOUND,
        "old key no longer trusted"
    );
}

/// With a key file, the signing key and the generated secret key survive a restart, and so do
/// JWT access tokens.
#[tokio::test]
async fn key_file_makes_tokens_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("mcp-auth-issuer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("keys.json");
    let _ = std::fs::remove_file(&key_file);
    let config = || IssuerConfig {
        key_file: Some(key_file.clone()),
        ..IssuerConfig::default()
    };

    let first = start(config()).await;
    let token = first
        .handle
        .mint_access_token(MintRequest::new(first.alice(), "c"))
        .unwrap();
    let secret = first.handle.secret_key();
    let kid = first.handle.jwks()["keys"][0]["kid"].clone();
    let addr = first.handle.local_addr();
    first.handle.shutdown().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key file is private");
    }

    // Same address again, so the issuer (`iss`) is the same, as on a real restart.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let second = start_on(listener, config()).await;
    assert_eq!(second.handle.secret_key(), secret);
    assert_eq!(second.handle.jwks()["keys"][0]["kid"], kid);
    let response = second
        .backend_post(
            "/v1/oauth_applications/access_tokens/verify",
            json!({"access_token": token}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["subject"],
        second.alice()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Keys look like Clerk's: `sk_test_…`, and `pk_test_` + unpadded base64(`host:port$`).
#[tokio::test]
async fn publishable_and_secret_keys_are_clerk_shaped() {
    let issuer = start_default().await;
    assert!(issuer.handle.secret_key().starts_with("sk_test_"));
    let encoded = issuer
        .handle
        .publishable_key()
        .strip_prefix("pk_test_")
        .unwrap()
        .to_owned();
    // Unpadded, as Clerk's `buildPublishableKey` (`packages/shared/src/keys.ts:43`).
    assert!(!encoded.contains('='), "{encoded}");
    let decoded = String::from_utf8(STANDARD_NO_PAD.decode(encoded).unwrap()).unwrap();
    assert_eq!(
        decoded,
        format!("{}$", issuer.base.trim_start_matches("http://"))
    );
    assert!(!issuer.base.ends_with('/'));

    let given = start(IssuerConfig {
        secret_key: Some("sk_test_given".into()),
        ..IssuerConfig::default()
    })
    .await;
    assert_eq!(given.handle.secret_key(), "sk_test_given");
}
