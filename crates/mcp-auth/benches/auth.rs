//! Micro-benchmarks of the per-request auth work. Run with `cargo bench -p mcp-auth`.
//!
//! Keys are generated when the benchmark starts; nothing touches the network (the key set is
//! static, the "opaque" verifier is an in-memory stand-in behind the same cache the Clerk preset
//! uses).
#![allow(missing_docs)]

use std::{hint::black_box, time::Duration};

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Uri, header::AUTHORIZATION};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use mcp_auth::{
    AuthError, AuthInfo, CachedVerifier, Challenge, Jwks, JwtVerifier, ProtectedResourceMetadata,
    TokenKind, TokenVerifier, VerifyError, bearer,
};

const ISSUER: &str = "https://issuer.bench";
const RESOURCE: &str = "http://127.0.0.1:8787/mcp";

fn rsa_key(kid: &str) -> (EncodingKey, Jwk) {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("keygen");
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).expect("der");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let enc = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    (enc, jwk)
}

fn token(enc: &EncodingKey, sub: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": sub, "client_id": "bench", "scope": "openid profile",
        "iat": now, "nbf": now, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims, enc).expect("sign")
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (enc, jwk) = rsa_key("bench");
    // Three keys, as during a rotation (the current one, the next, the previous).
    let keys = vec![rsa_key("next").1, jwk, rsa_key("previous").1];
    let jwks = Jwks::from_set(&jsonwebtoken::jwk::JwkSet { keys }).expect("jwks");
    let verifier = || {
        JwtVerifier::builder(ISSUER, jwks.clone())
            .resource(RESOURCE)
            .build()
            .expect("verifier")
    };
    let tok = token(&enc, "user_bench");

    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {tok}")).expect("header"),
    );
    let uri = Uri::from_static("/mcp");
    c.bench_function("bearer_parse", |b| {
        b.iter(|| bearer::parse(black_box(&headers), black_box(&uri)).expect("parse"))
    });

    c.bench_function("jwks_lookup", |b| {
        b.iter(|| {
            rt.block_on(jwks.key(black_box(Some("bench"))))
                .expect("key")
        })
    });

    let cold = verifier();
    c.bench_function("jwt_verify_cold_rs256", |b| {
        b.iter(|| rt.block_on(cold.verify(black_box(&tok))).expect("valid"))
    });

    let warm = CachedVerifier::new(verifier());
    rt.block_on(warm.verify(&tok)).expect("valid");
    c.bench_function("jwt_verify_warm_cache_hit", |b| {
        b.iter(|| rt.block_on(warm.verify(black_box(&tok))).expect("valid"))
    });

    // An opaque-token verifier stand-in (what the Clerk preset's Backend API call returns),
    // behind the same cache: after the first call every request is a cache hit.
    let opaque = CachedVerifier::new(|t: &str| {
        let ok = t.starts_with("oat_");
        async move {
            if ok {
                Ok(AuthInfo::builder("user_bench", TokenKind::OAuthAccessToken)
                    .expires_at_unix(jsonwebtoken::get_current_timestamp() + 3600)
                    .build())
            } else {
                Err(VerifyError::invalid_token("unknown token"))
            }
        }
    });
    let oat = "oat_2bench0000000000000000000000000";
    rt.block_on(opaque.verify(oat)).expect("valid");
    c.bench_function("opaque_verify_cache_hit", |b| {
        b.iter(|| rt.block_on(opaque.verify(black_box(oat))).expect("valid"))
    });

    let challenge =
        Challenge::new("http://127.0.0.1:8787/.well-known/oauth-protected-resource/mcp")
            .with_default_scope(["openid", "profile"]);
    let invalid = AuthError::InvalidToken("token expired".into());
    c.bench_function("challenge_401_response", |b| {
        b.iter(|| challenge.response(black_box(&invalid)))
    });

    let metadata = ProtectedResourceMetadata::new(RESOURCE, [ISSUER])
        .scopes_supported(["openid", "profile", "email"])
        .resource_name("bench");
    c.bench_function("metadata_serialise", |b| {
        b.iter(|| serde_json::to_vec(black_box(&metadata)).expect("json"))
    });
}

criterion_group! {
    name = auth;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(auth);
