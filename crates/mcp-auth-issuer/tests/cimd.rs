//! Client ID Metadata Documents (CIMD) over real HTTPS on loopback, with a CA generated for the
//! run: a document whose URL is the `client_id` is the client's registration (consent page,
//! redirect URI binding, token endpoint as a public client with PKCE), and every way a document
//! can be unusable or dangerous is refused with a clear page and a clear OAuth error, never a
//! 500: a redirect URI it does not list, a loopback address without the opt-in, a redirect, an
//! oversized or slow body.

mod common;
#[path = "common/https.rs"]
mod https;

use std::time::{Duration, Instant};

use common::{REDIRECT, TestIssuer, jwt_parts, location, pkce, query_of, start};
use https::{DocumentServer, Reply};
use mcp_auth_issuer::{Error, Issuer, IssuerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The issuer as tests run it: trusting the run's CA, loopback documents allowed.
fn config(server: &DocumentServer) -> IssuerConfig {
    IssuerConfig {
        cimd_allow_loopback: true,
        cimd_root_certificates_pem: server.ca_pem.clone().into_bytes(),
        cimd_fetch_timeout: Duration::from_secs(2),
        ..IssuerConfig::default()
    }
}

fn document() -> Value {
    json!({
        "client_name": "Metadata Client",
        "client_uri": "https://metadata-client.example",
        "logo_uri": "https://metadata-client.example/logo.png",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// GET /oauth/authorize for `client_id` with the standard parameters: (status, body, Location).
async fn authorize(
    issuer: &TestIssuer,
    client_id: &str,
    redirect_uri: &str,
) -> (StatusCode, String, Option<String>) {
    let (_, challenge) = pkce();
    let mut params = TestIssuer::standard_params(client_id, &challenge);
    params[2] = ("redirect_uri", redirect_uri);
    let response = issuer
        .http
        .get(issuer.authorize_url(&params))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let loc = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), loc)
}

/// The token endpoint's answer for a public client `client_id` presenting a bogus code: a
/// usable client gets `invalid_grant`, an unusable document `invalid_client`.
async fn token_error(issuer: &TestIssuer, client_id: &str) -> (StatusCode, Value) {
    let (status, body, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", "not-a-code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"v".repeat(43)),
        ])
        .await;
    (status, body)
}

async fn metric(issuer: &TestIssuer, outcome: &str) -> u64 {
    let text = issuer
        .http
        .get(issuer.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix =
        format!("mcp_auth_issuer_client_metadata_documents_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.parse().unwrap())
}

/// The metadata advertises CIMD and RFC 9207 `iss`; a document client goes through consent
/// (which shows its name, logo, home page and the host serving the document), gets a code,
/// exchanges it as a public client with PKCE, and refreshes. The document is fetched once and
/// then served from the cache, as its `Cache-Control` allows.
#[tokio::test]
async fn a_metadata_document_is_the_registration() {
    let server = DocumentServer::start().await;
    let client_id = server.document(
        &server.base,
        "/oauth/client.json",
        document(),
        Some("max-age=600"),
    );
    let issuer = start(config(&server)).await;
    let metadata: Value = issuer
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );

    let (verifier, challenge) = pkce();
    let mut params = TestIssuer::standard_params(&client_id, &challenge);
    params.push(("scope", "profile email offline_access"));
    let page = issuer
        .http
        .get(issuer.authorize_url(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<strong id=\"app-name\">Metadata Client</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<strong id=\"client-host\">localhost</strong>"),
        "{html}"
    );
    assert!(
        html.contains("https://metadata-client.example/logo.png"),
        "{html}"
    );
    assert!(
        html.contains("id=\"client-uri\" href=\"https://metadata-client.example\""),
        "{html}"
    );
    assert!(html.contains("id=\"localhost-warning\""), "{html}");

    let fields = common::hidden_fields(&html);
    let response = issuer
        .submit(
            fields,
            &[("decision", "allow"), ("user_id", &issuer.alice())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let query = query_of(&location(response.headers()));
    assert_eq!(query["iss"], issuer.base);
    let (status, tokens, _) = issuer
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &query["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        jwt_parts(tokens["access_token"].as_str().unwrap()).1["client_id"],
        client_id.as_str()
    );
    let (status, refreshed, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    // A public client: a secret is refused.
    let (status, body, _) = issuer
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("client_secret", "guess"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
        ])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    assert_eq!(
        server.hits("/oauth/client.json"),
        1,
        "fetched once, then cached"
    );
    assert_eq!(metric(&issuer, "fetched").await, 1);
    assert!(metric(&issuer, "cached").await >= 3);
    // Nothing was registered: the client exists only as its document.
    let text = issuer
        .http
        .get(issuer.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("path=\"/oauth/register\""), "{text}");
}

/// `Cache-Control: no-store` is honoured: every use fetches the document again.
#[tokio::test]
async fn a_no_store_document_is_fetched_at_every_use() {
    let server = DocumentServer::start().await;
    let client_id = server.document(&server.base, "/client.json", document(), Some("no-store"));
    let issuer = start(config(&server)).await;
    for _ in 0..2 {
        let (status, body, _) = authorize(&issuer, &client_id, REDIRECT).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(server.hits("/client.json"), 2);
}

/// The document's `redirect_uris` bind the request exactly: another redirect URI is refused
/// on a page (never redirected to), and the client is not told.
#[tokio::test]
async fn a_redirect_uri_the_document_does_not_list_is_refused() {
    let server = DocumentServer::start().await;
    let client_id = server.document(&server.base, "/client.json", document(), None);
    let issuer = start(config(&server)).await;
    let (status, body, loc) =
        authorize(&issuer, &client_id, "http://127.0.0.1:4567/elsewhere").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(loc.is_none(), "never redirected: {loc:?}");
    assert!(body.contains("is not registered for"), "{body}");
    assert!(body.contains("Metadata Client"), "{body}");
}

/// Documents that must not be used: each gives the user a 400 page naming the reason (no
/// redirect) and the client `invalid_client` with the reason at the token endpoint.
#[tokio::test]
async fn unusable_documents_are_refused_with_clear_errors() {
    let server = DocumentServer::start().await;
    let issuer = start(config(&server)).await;
    let other = format!("{}/real.json", server.base);
    let cases = [
        (
            server.document(
                &server.base,
                "/other-id.json",
                json!({"client_id": other, "client_name": "X", "redirect_uris": [REDIRECT]}),
                None,
            ),
            "differs from the URL",
        ),
        (
            server.document(
                &server.base,
                "/secret.json",
                json!({"client_name": "X", "redirect_uris": [REDIRECT], "client_secret": "s"}),
                None,
            ),
            "must not contain `client_secret`",
        ),
        (
            server.document(
                &server.base,
                "/no-redirects.json",
                json!({"client_name": "X"}),
                None,
            ),
            "no redirect_uris",
        ),
        (format!("{}/missing.json", server.base), "HTTP 404"),
        (
            "http://localhost:1/client.json".to_owned(),
            "must be an https URL",
        ),
    ];
    for (client_id, reason) in &cases {
        let (status, body, loc) = authorize(&issuer, client_id, REDIRECT).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{client_id}: {body}");
        assert!(loc.is_none(), "{client_id}");
        assert!(body.contains("metadata document cannot be used"), "{body}");
        assert!(body.contains(reason), "{client_id}: {reason} not in {body}");
        let (status, error) = token_error(&issuer, client_id).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
        assert_eq!(error["error"], "invalid_client");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{error}"
        );
    }
}

/// Without `cimd_allow_loopback`, a document on a loopback address is never fetched: neither
/// by name (`localhost`, checked in the resolver) nor as an IP literal. No TCP connection
/// reaches the server.
#[tokio::test]
async fn a_loopback_document_is_refused_without_the_opt_in() {
    let server = DocumentServer::start().await;
    let by_name = server.document(&server.base, "/client.json", document(), None);
    let by_ip = server.document(&server.base_ip, "/ip.json", document(), None);
    let issuer = start(IssuerConfig {
        cimd_allow_loopback: false,
        ..config(&server)
    })
    .await;
    for client_id in [&by_name, &by_ip] {
        let (status, body, loc) = authorize(&issuer, client_id, REDIRECT).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(loc.is_none());
        assert!(body.contains("is a loopback address"), "{body}");
        let (status, error) = token_error(&issuer, client_id).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("loopback"),
            "{error}"
        );
    }
    assert_eq!(server.connections(), 0, "nothing connected to the server");
}

/// A redirect is never followed, even to a valid document on the same server.
#[tokio::test]
async fn redirects_are_not_followed() {
    let server = DocumentServer::start().await;
    let target = server.document(&server.base, "/target.json", document(), None);
    server.route("/moved.json", Reply::Redirect(target));
    let issuer = start(config(&server)).await;
    let client_id = format!("{}/moved.json", server.base);
    let (status, body, _) = authorize(&issuer, &client_id, REDIRECT).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("redirects are not followed"), "{body}");
    assert_eq!(server.hits("/moved.json"), 1);
    assert_eq!(
        server.hits("/target.json"),
        0,
        "the redirect was not followed"
    );
}

/// An endless body is cut at the size cap while it streams (not read to the end first), and a
/// body that trickles is cut at the timeout: both well before the server would finish.
#[tokio::test]
async fn oversized_and_slow_documents_are_refused_in_time() {
    let server = DocumentServer::start().await;
    server.route("/endless.json", Reply::Endless);
    server.route("/slow.json", Reply::Trickle);
    let issuer = start(IssuerConfig {
        cimd_fetch_timeout: Duration::from_secs(1),
        ..config(&server)
    })
    .await;

    let started = Instant::now();
    let (status, body, _) =
        authorize(&issuer, &format!("{}/endless.json", server.base), REDIRECT).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("is larger than 5120 bytes"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "cut by size, not time"
    );

    let started = Instant::now();
    let (status, body, _) =
        authorize(&issuer, &format!("{}/slow.json", server.base), REDIRECT).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("could not be fetched within 1s"), "{body}");
    // The trickle would take 20 s; the timeout is 1 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Loopback documents are for development: the opt-in is refused on a non-loopback listener.
#[tokio::test]
async fn the_loopback_opt_in_is_refused_on_a_public_listener() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = Issuer::serve(
        listener,
        IssuerConfig {
            cimd_allow_loopback: true,
            ..IssuerConfig::default()
        },
    )
    .await;
    match refused {
        Err(Error::Config(message)) => {
            assert!(message.contains("--cimd-allow-loopback"), "{message}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// With CIMD switched off, the metadata says so and a URL `client_id` is refused without any
/// connection to the document's server.
#[tokio::test]
async fn documents_can_be_switched_off() {
    let server = DocumentServer::start().await;
    let client_id = server.document(&server.base, "/client.json", document(), None);
    let issuer = start(IssuerConfig {
        client_id_metadata_documents: false,
        ..config(&server)
    })
    .await;
    let metadata: Value = issuer
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(metadata["client_id_metadata_document_supported"], false);
    let (status, body, _) = authorize(&issuer, &client_id, REDIRECT).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("does not accept Client ID Metadata Documents"),
        "{body}"
    );
    assert_eq!(server.connections(), 0);
}
