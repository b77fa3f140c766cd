//! Memory bound of the verification caches: verifies a stream of distinct valid tokens (one
//! million by default) and prints the process's resident memory as it goes. With the cache
//! bounded (10,000 entries by default, [`CacheConfig::max_entries`]), RSS must level off once
//! the cache is full, however many more distinct tokens arrive.
//!
//! Two caches, the ones a server puts in front of its verifier:
//! - `jwt`: ES256 access tokens through [`JwtVerifier`] behind [`CachedVerifier`];
//! - `opaque`: `oat_…` tokens through an in-memory stand-in for Clerk's Backend API behind the
//!   same [`CachedVerifier`] the Clerk preset uses (the cache is what is measured, not HTTP).
//!
//! Keys are generated at start; nothing touches the network.
//!
//! ```sh
//! cargo run --release -p mcp-auth --example token-churn              # both, 1,000,000 each
//! cargo run --release -p mcp-auth --example token-churn -- jwt 200000
//! ```

use std::{sync::Arc, time::Instant};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use mcp_auth::{
    AuthInfo, CacheConfig, CachedVerifier, Jwks, JwtVerifier, TokenKind, TokenVerifier,
    VerifyError, verify::VerifyFuture,
};

const ISSUER: &str = "https://issuer.churn";
const RESOURCE: &str = "http://127.0.0.1:8787/mcp";
/// Tokens verified between two memory readings.
const REPORT_EVERY: u64 = 100_000;
/// Concurrent verifications (the runtime has one worker per core).
const WORKERS: u64 = 2;

fn es256_key() -> Result<(EncodingKey, Jwk), Box<dyn std::error::Error>> {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| "key generation failed")?;
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)?;
    jwk.common.key_id = Some("churn".into());
    Ok((key, jwk))
}

/// An introspection stand-in: every `oat_` token is valid for an hour, for a user derived from
/// the token, with the claims the Clerk preset keeps.
struct Introspection;

impl TokenVerifier for Introspection {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            let Some(id) = token.strip_prefix("oat_") else {
                return Err(VerifyError::invalid_token("not an oat_ token"));
            };
            let exp = jsonwebtoken::get_current_timestamp() + 3600;
            Ok(
                AuthInfo::builder(format!("user_{id}"), TokenKind::OAuthAccessToken)
                    .client_id("client_churn")
                    .scopes(["profile", "email"])
                    .issuer(ISSUER)
                    .expires_at_unix(exp)
                    .build(),
            )
        })
    }
}

fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn churn<V, F>(
    name: &str,
    verifier: Arc<CachedVerifier<V>>,
    total: u64,
    make_token: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    V: TokenVerifier,
    F: Fn(u64) -> String + Send + Sync + 'static,
{
    let make_token = Arc::new(make_token);
    let started = Instant::now();
    println!("{name}: {total} distinct tokens");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>8}",
        "tokens", "entries", "RSS MiB", "peak MiB", "s"
    );
    let mut done = 0;
    while done < total {
        let batch = REPORT_EVERY.min(total - done);
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let verifier = verifier.clone();
            let make_token = make_token.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = done + w;
                while i < done + batch {
                    let token = make_token(i);
                    verifier.verify(&token).await.map_err(|e| e.to_string())?;
                    i += WORKERS;
                }
                Ok::<(), String>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        done += batch;
        verifier.run_pending_tasks().await;
        let (rss, peak) = memory();
        println!(
            "{done:>10} {:>10} {rss:>10.1} {peak:>10.1} {:>8.1}",
            verifier.entry_count(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".into());
    let total: u64 = args.next().map_or(Ok(1_000_000), |n| n.parse())?;
    let config = CacheConfig::default();
    let (rss, _) = memory();
    println!(
        "cache bound: {} entries; RSS at start {rss:.1} MiB",
        config.max_entries
    );

    if matches!(which.as_str(), "jwt" | "both") {
        let (key, jwk) = es256_key()?;
        let jwks = Jwks::from_set(&jsonwebtoken::jwk::JwkSet { keys: vec![jwk] })?;
        let verifier = JwtVerifier::builder(ISSUER, jwks)
            .resource(RESOURCE)
            .build()?;
        let cached = Arc::new(CachedVerifier::with_config(verifier, config.clone()));
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("churn".into());
        header.typ = Some("at+jwt".into());
        churn("jwt", cached, total, move |i| {
            let now = jsonwebtoken::get_current_timestamp();
            let claims = serde_json::json!({
                "iss": ISSUER, "aud": RESOURCE, "sub": format!("user_{i}"),
                "client_id": "client_churn", "scope": "profile email",
                "iat": now, "exp": now + 3600,
            });
            jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default()
        })
        .await?;
    }
    if matches!(which.as_str(), "opaque" | "both") {
        let cached = Arc::new(CachedVerifier::with_config(Introspection, config));
        churn("opaque", cached, total, |i| format!("oat_{i:032x}")).await?;
    }
    Ok(())
}
