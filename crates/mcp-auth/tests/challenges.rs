//! Every refusal over real HTTP, header for header: what a client sees when its request is not
//! good enough, and that the right requests get through.

mod common;

use common::*;
use reqwest::{StatusCode, header::WWW_AUTHENTICATE};
use serde_json::{Value, json};

fn www(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn body(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

/// No token: 401, `resource_metadata` + default `scope`, and no `error` attribute (RFC 6750 §3.1).
#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let s = start_server(Options::default()).await;
    let resp = post(&s.mcp, None, &initialize(), &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&resp),
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"openid profile\"",
            s.metadata_url()
        )
    );
    assert_eq!(body(resp).await["error"], "unauthorized");
}

/// A `Basic` header is "another authentication method": treated like no token.
#[tokio::test]
async fn basic_scheme_is_treated_as_no_token() {
    let s = start_server(Options::default()).await;
    let resp = post(
        &s.mcp,
        None,
        &initialize(),
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!www(&resp).contains("error="), "{}", www(&resp));
}

/// Malformed credentials are a bad request, with `invalid_request`.
#[tokio::test]
async fn malformed_credentials_are_invalid_requests() {
    let s = start_server(Options::default()).await;
    for header in ["Bearer", "Bearer ", "Bearer a b c", "Bearer tok\"en"] {
        let resp = post(&s.mcp, None, &initialize(), &[("authorization", header)]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{header:?}");
        assert!(
            www(&resp).contains("error=\"invalid_request\""),
            "{header:?}: {}",
            www(&resp)
        );
        assert_eq!(body(resp).await["error"], "invalid_request");
    }
}

/// Two `Authorization` headers: 400 `invalid_request`, even when both are valid.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let s = start_server(Options::default()).await;
    let t = s.token("user_a", "openid");
    let resp = reqwest::Client::new()
        .post(&s.mcp)
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(www(&resp).contains("invalid_request"));
}

/// A token in the query string is refused even with a good header.
#[tokio::test]
async fn token_in_query_is_refused() {
    let s = start_server(Options::default()).await;
    let t = s.token("user_a", "openid");
    let resp = post(
        &format!("{}?access_token={t}", s.mcp),
        Some(&t),
        &initialize(),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let b = body(resp).await;
    assert_eq!(b["error"], "invalid_request");
    assert!(!b.to_string().contains(&t), "the token must not be echoed");
}

/// Each kind of bad token gets 401 `invalid_token`, and the body never echoes the token.
#[tokio::test]
async fn bad_tokens_are_invalid_tokens() {
    let s = start_server(Options::default()).await;
    let good = claims(ISSUER, &s.resource, "user_a", "openid");
    let now = now();
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let other_key = TestKey::rsa("key-1"); // same kid, different key
    let tampered = {
        let t = s.token("user_a", "openid");
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let sig = parts[2].clone();
        // Change the first signature character (keeps valid base64url).
        let first = if sig.starts_with('A') { "B" } else { "A" };
        let flipped = format!("{first}{}", &sig[1..]);
        parts[2] = flipped;
        parts.join(".")
    };
    let none_alg = {
        use base64::Engine;
        let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", e(&json!({"alg":"none","typ":"JWT"})), e(&good))
    };
    let hs256_with_public_key = {
        // The classic confusion attack: sign HS256 with the RSA public key's bytes.
        let n = match &s.key.jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(r) => r.n.clone(),
            _ => unreachable!(),
        };
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("key-1".into());
        jsonwebtoken::encode(
            &h,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
        )
        .unwrap()
    };
    // Issued well before the server fetched its keys: a key that old would be in its set.
    // (A token issued after the fetch, naming a key not yet seen, is answered 503 until the
    // next fetch may run: tests/jwks.rs.)
    let unknown_kid = {
        let k = TestKey::rsa("nobody-knows-me");
        k.sign(&with(json!({"iat": now - 600})), Some("at+jwt"))
    };
    let session_token = s.key.sign(
        &json!({"iss": ISSUER, "aud": s.resource, "sub": "user_a", "sid": "sess_1", "azp": "https://app", "v": 2,
                "iat": now, "nbf": now, "exp": now + 600}),
        None,
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-jwt".into(), "malformed token"),
        ("tampered signature", tampered, "invalid signature"),
        ("alg none", none_alg, "malformed token"),
        (
            "HS256 with the public key",
            hs256_with_public_key,
            "signing algorithm not allowed",
        ),
        (
            "signed by another key",
            other_key.sign(&good, Some("at+jwt")),
            "invalid signature",
        ),
        ("unknown kid", unknown_kid, "unknown signing key"),
        (
            "expired",
            s.key.sign(
                &with(json!({"exp": now - 60, "iat": now - 120})),
                Some("at+jwt"),
            ),
            "token expired",
        ),
        (
            "nbf in the future",
            s.key.sign(&with(json!({"nbf": now + 600})), Some("at+jwt")),
            "token not yet valid",
        ),
        (
            "iat in the future",
            s.key.sign(&with(json!({"iat": now + 600})), Some("at+jwt")),
            "token issued in the future",
        ),
        (
            "wrong iss",
            s.key
                .sign(&with(json!({"iss": "https://evil.test"})), Some("at+jwt")),
            "issuer mismatch",
        ),
        (
            "aud for another resource",
            s.key.sign(
                &with(json!({"aud": "https://other.test/mcp"})),
                Some("at+jwt"),
            ),
            "audience mismatch",
        ),
        (
            "missing aud (strict)",
            s.key.sign(&with(json!({"aud": null})), Some("at+jwt")),
            "missing aud claim",
        ),
        (
            "missing exp",
            s.key.sign(&with(json!({"exp": null})), Some("at+jwt")),
            "missing exp claim",
        ),
        (
            "missing sub",
            s.key.sign(&with(json!({"sub": null})), Some("at+jwt")),
            "missing subject",
        ),
        (
            "session token",
            session_token,
            "session tokens are not accepted here",
        ),
    ];
    for (name, token, description) in cases {
        let resp = post(&s.mcp, Some(&token), &initialize(), &[]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = www(&resp);
        assert_eq!(
            challenge,
            format!(
                "Bearer resource_metadata=\"{}\", scope=\"openid profile\", error=\"invalid_token\", error_description=\"{description}\"",
                s.metadata_url()
            ),
            "{name}"
        );
        let b = body(resp).await;
        assert_eq!(b["error"], "invalid_token", "{name}");
        assert!(!b.to_string().contains(&token), "{name}: token echoed");
    }
}

/// ES256 tokens verify too, from a key set with mixed key types.
#[tokio::test]
async fn es256_tokens_are_accepted() {
    let s = start_server(Options::default()).await;
    let ec = TestKey::ec("ec-1");
    s.jwks.set_keys(vec![s.key.jwk.clone(), ec.jwk.clone()]);
    let t = ec.sign(
        &claims(ISSUER, &s.resource, "user_ec", "openid"),
        Some("at+jwt"),
    );
    let resp = post(&s.mcp, Some(&t), &call("whoami", json!({})), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let r = rpc_result(resp).await;
    assert_eq!(
        r["result"]["structuredContent"]["user_id"], "user_ec",
        "{r}"
    );
}

/// The documented opt-out accepts a token without `aud` but still refuses a wrong one.
#[tokio::test]
async fn audience_optional_accepts_missing_but_not_wrong_aud() {
    let s = start_server(Options {
        audience_optional: true,
        ..Options::default()
    })
    .await;
    let mut c = claims(ISSUER, &s.resource, "user_a", "openid");
    c.as_object_mut().unwrap().remove("aud");
    let resp = post(
        &s.mcp,
        Some(&s.key.sign(&c, Some("at+jwt"))),
        &call("whoami", json!({})),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    c["aud"] = json!("https://other.test/mcp");
    let resp = post(
        &s.mcp,
        Some(&s.key.sign(&c, Some("at+jwt"))),
        &call("whoami", json!({})),
        &[],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// An oversized token is refused before verification; an oversized body gets 413.
#[tokio::test]
async fn oversized_header_and_body_are_refused() {
    let s = start_server(Options {
        max_body: 4096,
        ..Options::default()
    })
    .await;
    let huge = "a".repeat(mcp_auth::bearer::MAX_TOKEN_LEN + 1);
    let resp = post(&s.mcp, Some(&huge), &initialize(), &[]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(www(&resp).contains("invalid_request"));

    let t = s.token("user_a", "openid");
    let big = call("whoami", json!({"padding": "x".repeat(10_000)}));
    let resp = post(&s.mcp, Some(&t), &big, &[]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// The declared length is checked before authentication (no work is spent on a body that
/// will be refused); a body sent chunked, with no length, is cut off at the limit by whichever
/// reads it: the step-up guard (2025 revisions) or rmcp (2026-07-28 headers, not read by us).
#[tokio::test]
async fn oversized_bodies_are_refused_however_they_are_sent() {
    let s = start_server(Options {
        max_body: 4096,
        ..Options::default()
    })
    .await;
    let big = call("whoami", json!({"padding": "x".repeat(10_000)}));
    let resp = post(&s.mcp, None, &big, &[]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());

    let t = s.token("user_a", "openid");
    let body = big.to_string();
    let read_by_step_up = chunked_post(s.addr, &t, &body, &[("mcp-protocol-version", PROTOCOL)]);
    assert_eq!(read_by_step_up.await, 413);
    let modern = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "whoami"),
    ];
    assert_eq!(chunked_post(s.addr, &t, &body, &modern).await, 413);
    // The same request under the limit passes, so the 413s above are the size's doing.
    let small = call("whoami", json!({})).to_string();
    let ok = chunked_post(s.addr, &t, &small, &[("mcp-protocol-version", PROTOCOL)]);
    assert_eq!(ok.await, 200);
}

/// POSTs `body` to `/mcp` with `Transfer-Encoding: chunked` (so no `Content-Length`) and
/// returns the response status.
async fn chunked_post(
    addr: std::net::SocketAddr,
    token: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n"
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(1000) {
        let sent = async {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            stream.write_all(chunk).await?;
            stream.write_all(b"\r\n").await
        };
        // The server may answer and close before the whole body is sent.
        if sent.await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
}

/// A browser request from a foreign Origin is refused with 403 before anything else, even when
/// its body is also too large.
#[tokio::test]
async fn bad_origin_is_refused_before_anything_else() {
    let s = start_server(Options {
        max_body: 4096,
        ..Options::default()
    })
    .await;
    let big = call("whoami", json!({"padding": "x".repeat(10_000)}));
    let resp = post(&s.mcp, None, &big, &[("origin", "https://evil.example")]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// CORS headers go to browsers (requests with `Origin`); every response says with `Vary` that
/// it depends on the CORS request headers, with or without `Origin`, so a shared cache never
/// hands one kind of answer to the other.
#[tokio::test]
async fn cors_answers_depend_on_origin_and_vary_says_so() {
    let s = start_server(Options::default()).await;
    let t = s.token("user_a", "openid");
    let whoami = call("whoami", json!({}));
    let vary = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let plain = post(&s.mcp, Some(&t), &whoami, &[]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("access-control-allow-origin").is_none());

    let own = format!("http://{}", s.addr);
    let browser = post(&s.mcp, Some(&t), &whoami, &[("origin", &own)]).await;
    assert_eq!(browser.status(), StatusCode::OK);
    assert_eq!(
        browser.headers()["access-control-allow-origin"],
        own.as_str()
    );
    assert!(
        browser
            .headers()
            .contains_key("access-control-expose-headers")
    );

    // The same Vary whichever way the request went, as tower-http's CORS layer writes it.
    assert_eq!(vary(&plain), vary(&browser));
    assert!(
        vary(&plain).iter().any(|v| v.contains("origin")),
        "{:?}",
        vary(&plain)
    );
    let unauthenticated = post(&s.mcp, None, &whoami, &[]).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(vary(&unauthenticated), vary(&browser));
}

/// A bad Origin is refused with 403 before authentication; the resource's own origin passes.
#[tokio::test]
async fn bad_origin_is_forbidden() {
    let s = start_server(Options::default()).await;
    let resp = post(
        &s.mcp,
        None,
        &initialize(),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let own = format!("http://{}", s.addr);
    let t = s.token("user_a", "openid");
    let resp = post(
        &s.mcp,
        Some(&t),
        &call("whoami", json!({})),
        &[("origin", &own)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("access-control-allow-origin").is_some());
}

/// A CORS preflight from the resource's own origin is allowed; one from any other origin gets
/// no `Access-Control-Allow-Origin`, so the browser never sends the real request.
#[tokio::test]
async fn cors_preflight_allows_only_listed_origins() {
    let s = start_server(Options::default()).await;
    let preflight = |origin: String| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, &s.mcp)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let own = format!("http://{}", s.addr);
    let resp = preflight(own.clone()).await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], own.as_str());
    let resp = preflight("https://evil.example".into()).await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

/// Browsers may read `WWW-Authenticate` on a 401 (CORS exposes it).
#[tokio::test]
async fn www_authenticate_is_exposed_to_browsers() {
    let s = start_server(Options::default()).await;
    let own = format!("http://{}", s.addr);
    let resp = post(&s.mcp, None, &initialize(), &[("origin", &own)]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}

/// `Host` must be the resource's host (DNS-rebinding protection, enforced by rmcp with the
/// allow-list the builder derives from the resource URL).
#[tokio::test]
async fn foreign_host_is_refused() {
    let s = start_server(Options::default()).await;
    let t = s.token("user_a", "openid");
    let resp = post(
        &s.mcp,
        Some(&t),
        &call("whoami", json!({})),
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post(&s.mcp, Some(&t), &call("whoami", json!({})), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A form POST to the MCP endpoint, with `token` in the header (if any).
async fn post_form(url: &str, token: Option<&str>, form: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// RFC 6750 §2: a client "MUST NOT use more than one method to transmit the token". A token in
/// the header and the query, or the header and a form body, is a 400 `invalid_request` even
/// when both copies are the same valid token; a token in a form body alone is refused as one
/// in the query is. The body never echoes the token.
#[tokio::test]
async fn tokens_outside_the_header_or_in_two_places_are_refused() {
    let s = start_server(Options::default()).await;
    let t = s.token("user_a", "openid");
    let query = format!("{}?access_token={t}", s.mcp);
    let form = format!("access_token={t}");
    let cases = [
        (
            "header and query",
            post(&query, Some(&t), &initialize(), &[]).await,
        ),
        ("header and form", post_form(&s.mcp, Some(&t), &form).await),
        ("form alone", post_form(&s.mcp, None, &form).await),
        // A percent-escaped name is the same parameter to a form handler.
        (
            "header and an escaped name in the form",
            post_form(&s.mcp, Some(&t), &format!("x=1&access%5Ftoken={t}")).await,
        ),
        ("query alone", post(&query, None, &initialize(), &[]).await),
    ];
    for (case, resp) in cases {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{case}");
        assert!(www(&resp).contains("error=\"invalid_request\""), "{case}");
        let b = body(resp).await;
        assert_eq!(b["error"], "invalid_request", "{case}");
        assert!(!b.to_string().contains(&t), "{case}: the token is echoed");
        let more_than_one = case.starts_with("header");
        assert_eq!(
            b["error_description"]
                .as_str()
                .unwrap()
                .contains("more than one place"),
            more_than_one,
            "{case}: {b}"
        );
    }
    // A form without a token gets past authentication (rmcp then refuses the media type).
    let resp = post_form(&s.mcp, Some(&t), "note=access_token").await;
    assert_ne!(resp.status(), StatusCode::BAD_REQUEST);
    assert_ne!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// The same rule through `AuthLayer` on an ordinary route, whose handler still reads the form
/// body the layer looked into; a form body beyond the layer's limit is refused with 413.
#[tokio::test]
async fn auth_layer_refuses_form_and_duplicate_tokens_and_keeps_the_body() {
    use axum::{Extension, Form, Router, routing::post as post_route};
    use mcp_auth::{AuthInfo, AuthLayer, Jwks, JwtVerifier};

    let key = TestKey::rsa("k");
    let resource = "http://127.0.0.1/api";
    let verifier = JwtVerifier::builder(
        ISSUER,
        Jwks::from_set(&jsonwebtoken::jwk::JwkSet {
            keys: vec![key.jwk.clone()],
        })
        .unwrap(),
    )
    .resource(resource)
    .build()
    .unwrap();
    #[derive(serde::Deserialize)]
    struct Note {
        text: String,
    }
    let handler = |Extension(auth): Extension<AuthInfo>, Form(note): Form<Note>| async move {
        format!("{}: {}", auth.user_id(), note.text)
    };
    let md = "http://127.0.0.1/.well-known/oauth-protected-resource/api";
    let addr = spawn(
        Router::new()
            .route("/notes", post_route(handler))
            .layer(AuthLayer::new(verifier, md).max_form_bytes(1024)),
    )
    .await;
    let t = key.sign(
        &claims(ISSUER, resource, "user_z", "openid"),
        Some("at+jwt"),
    );
    let url = format!("http://{addr}/notes");

    let resp = post_form(&url, Some(&t), "text=hello+world").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "user_z: hello world");

    for (case, resp) in [
        (
            "header and form",
            post_form(&url, Some(&t), &format!("text=hi&access_token={t}")).await,
        ),
        (
            "header and query",
            post_form(&format!("{url}?access_token={t}"), Some(&t), "text=hi").await,
        ),
        (
            "form alone",
            post_form(&url, None, &format!("text=hi&access_token={t}")).await,
        ),
    ] {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{case}");
        assert!(www(&resp).contains("error=\"invalid_request\""), "{case}");
        assert!(!resp.text().await.unwrap().contains(&t), "{case}");
    }

    let big = format!("text={}", "a".repeat(2048));
    let resp = post_form(&url, Some(&t), &big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
