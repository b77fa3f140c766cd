//! Discovery documents over HTTP: RFC 9728 metadata compared with the golden file, CORS for
//! browser clients, the legacy AS-metadata passthrough, and `AuthLayer` on a plain router.

mod common;

use std::path::Path;

use axum::{Extension, Router, routing::get};
use common::*;
use mcp_auth::{AuthInfo, AuthLayer, Jwks, JwtVerifier, McpServer, ScopeHierarchy};
use serde_json::{Value, json};

fn golden(name: &str, base: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.well-known-fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("{base}", base);
    serde_json::from_str(&text).unwrap()
}

/// The document is served at the path-inserted URI and at the root fallback, equal to the
/// golden file, cacheable, and readable cross-origin.
#[tokio::test]
async fn protected_resource_metadata_matches_golden_file() {
    let s = start_server(Options::default()).await;
    let base = format!("http://{}", s.addr);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("origin", "https://some-browser-client.example")
            // Ignored unless the operator opted in: clients must not choose the resource.
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "proto=https;host=evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(
            doc,
            golden("oauth-protected-resource.json", &base),
            "{path}"
        );
    }
    // CORS preflight with the MCP protocol header browsers send.
    let resp = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/.well-known/oauth-protected-resource/mcp"),
        )
        .header("origin", "https://some-browser-client.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

/// `/.well-known/oauth-authorization-server` at the MCP origin passes the issuer's own
/// metadata through (2025-03-26 discovery), and keeps serving it when the issuer goes away.
#[tokio::test]
async fn legacy_authorization_server_metadata_is_passed_through() {
    let as_doc = std::sync::Arc::new(std::sync::Mutex::new(None::<Value>));
    let doc_for_route = as_doc.clone();
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let up_route = up.clone();
    let as_addr = spawn(Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let doc = doc_for_route.lock().unwrap().clone();
            let up = up_route.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if up {
                    axum::Json(doc.unwrap()).into_response()
                } else {
                    axum::http::StatusCode::BAD_GATEWAY.into_response()
                }
            }
        }),
    ))
    .await;
    use axum::response::IntoResponse;
    let issuer = format!("http://{as_addr}");
    let doc = json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/oauth/authorize"), "token_endpoint": format!("{issuer}/oauth/token")});
    *as_doc.lock().unwrap() = Some(doc.clone());

    let key = TestKey::rsa("k");
    let addr = spawn_with(|addr| {
        let resource = format!("http://{addr}/mcp");
        let v = JwtVerifier::builder(
            &issuer,
            Jwks::from_set(&jsonwebtoken::jwk::JwkSet {
                keys: vec![key.jwk.clone()],
            })
            .unwrap(),
        )
        .resource(&resource)
        .build()
        .unwrap();
        McpServer::builder(&resource)
            .authorization_server(&issuer)
            .verifier(v)
            .build()
            .unwrap()
    })
    .await;
    let url = format!("http://{addr}/.well-known/oauth-authorization-server");
    let got: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(got, doc);
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let got: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(got, doc, "cached copy served while the issuer is down");
}

/// `AuthLayer::required_scopes` matches exactly by default (a token granted `admin` is refused
/// `admin:read`, with one 403 naming every required scope and never `offline_access`); with a
/// declared hierarchy `admin` is enough.
#[tokio::test]
async fn auth_layer_required_scopes_and_hierarchy() {
    let key = TestKey::rsa("k");
    let resource = "http://127.0.0.1/api";
    let layer = || {
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
        AuthLayer::new(
            verifier,
            "http://127.0.0.1/.well-known/oauth-protected-resource/api",
        )
        .required_scopes(["admin:read", "admin:write"])
    };
    let me = |Extension(a): Extension<AuthInfo>| async move { a.user_id().to_owned() };
    let exact = spawn(Router::new().route("/me", get(me)).layer(layer())).await;
    let nested = spawn(Router::new().route("/me", get(me)).layer(
        layer().scope_hierarchy(
            ScopeHierarchy::exact().implies("admin", ["admin:read", "admin:write"]),
        ),
    ))
    .await;
    let admin = key.sign(
        &claims(ISSUER, resource, "user_z", "admin offline_access"),
        Some("at+jwt"),
    );
    let c = reqwest::Client::new();
    let r = c
        .get(format!("http://{exact}/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        www.contains("scope=\"admin admin:read admin:write\""),
        "{www}"
    );
    let r = c
        .get(format!("http://{nested}/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "user_z");
}

/// `AuthLayer` protects ordinary axum routes: required mode refuses anonymous calls,
/// optional mode lets them through without an identity but still refuses bad tokens.
#[tokio::test]
async fn auth_layer_on_a_plain_router() {
    let key = TestKey::rsa("k");
    let resource = "http://127.0.0.1/api";
    let verifier = || {
        JwtVerifier::builder(
            ISSUER,
            Jwks::from_set(&jsonwebtoken::jwk::JwkSet {
                keys: vec![key.jwk.clone()],
            })
            .unwrap(),
        )
        .resource(resource)
        .build()
        .unwrap()
    };
    let me = |auth: Option<Extension<AuthInfo>>| async move {
        auth.map(|Extension(a)| a.user_id().to_owned())
            .unwrap_or_else(|| "anonymous".into())
    };
    let md = "http://127.0.0.1/.well-known/oauth-protected-resource/api";
    let required = spawn(
        Router::new()
            .route("/me", get(me))
            .layer(AuthLayer::new(verifier(), md)),
    )
    .await;
    let optional = spawn(
        Router::new()
            .route("/me", get(me))
            .layer(AuthLayer::new(verifier(), md).optional()),
    )
    .await;
    let good = key.sign(
        &claims(ISSUER, resource, "user_z", "openid"),
        Some("at+jwt"),
    );
    let c = reqwest::Client::new();

    let r = c.get(format!("http://{required}/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{md}\"")
    );
    let r = c
        .get(format!("http://{required}/me"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "user_z");

    let r = c.get(format!("http://{optional}/me")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "anonymous");
    let r = c
        .get(format!("http://{optional}/me"))
        .bearer_auth("bad.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("http://{optional}/me"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "user_z");
}

/// With `trust_forwarded_headers(true)` (behind a proxy that sets them), the 401 and 403
/// challenges' `resource_metadata` and the document at that URL follow the public origin the
/// proxy reports, so they name the same one; without it, both ignore the headers. The client's
/// path is walked as a real one walks it: challenge, then the document at the URL it names
/// (reached here through the same "proxy" headers), then `resource` back to its metadata URL.
#[tokio::test]
async fn challenges_and_metadata_agree_on_the_forwarded_origin() {
    let key = TestKey::rsa("k");
    for trusted in [true, false] {
        let mut resource = String::new();
        let addr = spawn_with(|addr| {
            resource = format!("http://{addr}/mcp");
            let v = JwtVerifier::builder(
                ISSUER,
                Jwks::from_set(&jsonwebtoken::jwk::JwkSet {
                    keys: vec![key.jwk.clone()],
                })
                .unwrap(),
            )
            .resource(&resource)
            .build()
            .unwrap();
            McpServer::builder(&resource)
                .authorization_server(ISSUER)
                .legacy_authorization_server_metadata(false)
                .trust_forwarded_headers(trusted)
                .verifier(v)
                .scoped_tool(
                    "admin-report",
                    "Needs admin:read",
                    ["admin:read"],
                    |_: NoArgs, _: AuthInfo| async move { "report".to_owned() },
                )
                .build()
                .unwrap()
        })
        .await;
        let origin = if trusted {
            "https://mcp.example.com".to_owned()
        } else {
            format!("http://{addr}")
        };
        let proxied = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "mcp.example.com"),
        ];
        let token = key.sign(
            &claims(ISSUER, &resource, "user_a", "openid"),
            Some("at+jwt"),
        );
        let no_token = post(&format!("http://{addr}/mcp"), None, &initialize(), &proxied).await;
        let step_up = post(
            &format!("http://{addr}/mcp"),
            Some(&token),
            &call("admin-report", json!({})),
            &proxied,
        )
        .await;
        for (status, resp) in [(401, no_token), (403, step_up)] {
            assert_eq!(resp.status(), status, "trusted={trusted}");
            let www = resp.headers()["www-authenticate"].to_str().unwrap();
            let challenged = www
                .split("resource_metadata=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no resource_metadata in {www}"));
            assert_eq!(
                challenged,
                format!("{origin}/.well-known/oauth-protected-resource/mcp"),
                "trusted={trusted}, {status}"
            );
            // The proxy maps the public URL's path onto this server.
            let path = url::Url::parse(challenged).unwrap().path().to_owned();
            let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
            for (name, value) in proxied {
                req = req.header(name, value);
            }
            let doc: Value = req.send().await.unwrap().json().await.unwrap();
            assert_eq!(
                doc["resource"],
                format!("{origin}/mcp"),
                "trusted={trusted}"
            );
            let resource_url = url::Url::parse(doc["resource"].as_str().unwrap()).unwrap();
            assert_eq!(
                mcp_auth::metadata::metadata_url(&resource_url),
                challenged,
                "trusted={trusted}: the document's resource does not lead back to the challenge"
            );
        }
    }
}

/// Fuzzing finding (fuzz target `metadata_urls`): a resource URL whose path has a segment
/// starting with `:` or `*` (`https://h/:mcp`) made `build()` panic inside axum's router, which
/// reads those as route parameters. It is refused with `BuildError::InvalidResource` instead.
#[tokio::test]
async fn resource_paths_axum_cannot_route_are_refused_not_a_panic() {
    for (resource, legacy, health) in [
        ("http://127.0.0.1:8787/:mcp", false, false),
        ("http://127.0.0.1:8787/a/*rest", false, false),
        ("http://127.0.0.1:8787/mcp/:x/y", false, false),
        // The health checks' own paths, when they are on.
        ("http://127.0.0.1:8787/healthz", false, true),
        ("http://127.0.0.1:8787/readyz", false, true),
        // Paths the metadata routes serve themselves (found by the `metadata_urls` fuzz target:
        // the legacy authorization-server path, which axum refused with a panic as a route
        // registered twice).
        (
            "http://127.0.0.1:8787/.well-known/oauth-authorization-server",
            true,
            false,
        ),
        (
            "http://127.0.0.1:8787/.well-known/oauth-protected-resource",
            false,
            false,
        ),
    ] {
        let result = std::panic::catch_unwind(|| {
            McpServer::builder(resource)
                .legacy_authorization_server_metadata(legacy)
                .health_checks(health)
                .authorization_server("https://issuer.example")
                .verifier(|_: &str| async {
                    Err::<AuthInfo, _>(mcp_auth::VerifyError::invalid_token("no"))
                })
                .build()
        });
        let result = result.unwrap_or_else(|_| panic!("build() panicked for {resource}"));
        assert!(
            matches!(result, Err(mcp_auth::BuildError::InvalidResource(_))),
            "{resource}: {:?}",
            result.map(|_| ())
        );
    }
}
