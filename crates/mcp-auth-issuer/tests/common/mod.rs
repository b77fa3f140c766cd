//! Shared helpers for the issuer's HTTP tests: start an issuer on port 0, register clients, walk
//! the consent form like a browser, call the token endpoint.

#![allow(dead_code)]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_issuer::{Issuer, IssuerConfig, IssuerHandle};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:4567/callback";

/// A running issuer plus an HTTP client that never follows redirects.
pub(crate) struct TestIssuer {
    pub(crate) handle: IssuerHandle,
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

pub(crate) async fn start(config: IssuerConfig) -> TestIssuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, config).await
}

pub(crate) async fn start_on(
    listener: tokio::net::TcpListener,
    config: IssuerConfig,
) -> TestIssuer {
    let handle = Issuer::serve(listener, config)
        .await
        .expect("issuer starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = handle.base_url();
    TestIssuer { handle, http, base }
}

pub(crate) async fn start_default() -> TestIssuer {
    start(IssuerConfig::default()).await
}

/// A fresh PKCE pair (verifier, S256 challenge).
pub(crate) fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Query parameters of a URL (e.g. a `Location` header).
pub(crate) fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("absolute URL")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Hidden inputs of the consent page, HTML-unescaped.
pub(crate) fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let marker = "<input type=\"hidden\" name=\"";
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let name_end = rest.find('"').unwrap();
        let name = rest[..name_end].to_owned();
        let value_start = rest.find("value=\"").unwrap() + "value=\"".len();
        let value_end = value_start + rest[value_start..].find('"').unwrap();
        let value = rest[value_start..value_end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        out.push((name, value));
        rest = &rest[value_end..];
    }
    out
}

pub(crate) fn location(headers: &HeaderMap) -> String {
    headers
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

impl TestIssuer {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn alice(&self) -> String {
        self.handle.users()[0].id.clone()
    }

    /// POST /oauth/register; returns (status, body).
    pub(crate) async fn try_register(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/oauth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Register a client and return the registration response (asserts 201).
    pub(crate) async fn register(&self, body: Value) -> Value {
        let (status, json) = self.try_register(body).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }

    /// A public client with the refresh grant, redirecting to [`REDIRECT`].
    pub(crate) async fn public_client(&self) -> String {
        let json = self
            .register(json!({
                "client_name": "Test Client",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .await;
        json["client_id"].as_str().unwrap().to_owned()
    }

    /// A confidential client (`method` = client_secret_basic or client_secret_post): (id, secret).
    pub(crate) async fn confidential_client(&self, method: &str) -> (String, String) {
        let json = self
            .register(json!({
                "client_name": "Confidential",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": method,
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .await;
        (
            json["client_id"].as_str().unwrap().to_owned(),
            json["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    pub(crate) fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.into()
    }

    /// Standard authorization parameters for `client_id` with `challenge`.
    pub(crate) fn standard_params<'a>(
        client_id: &'a str,
        challenge: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("state", "st4te"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
    }

    /// GET the authorize URL and return the consent page's hidden fields (asserts 200).
    pub(crate) async fn consent_form(&self, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let response = self
            .http
            .get(self.authorize_url(params))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "consent page expected");
        hidden_fields(&response.text().await.unwrap())
    }

    /// POST the consent form with extra fields; returns the raw response.
    pub(crate) async fn submit(
        &self,
        mut fields: Vec<(String, String)>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        fields.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.http
            .post(self.url("/oauth/authorize"))
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// Walk authorize → consent (Allow as Alice) and return the redirect's query.
    pub(crate) async fn authorize(&self, params: &[(&str, &str)]) -> HashMap<String, String> {
        let fields = self.consent_form(params).await;
        let alice = self.alice();
        let response = self
            .submit(fields, &[("decision", "allow"), ("user_id", &alice)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        query_of(&location(response.headers()))
    }

    /// A code for a public client.
    pub(crate) async fn code_for(&self, client_id: &str, challenge: &str) -> String {
        let query = self
            .authorize(&Self::standard_params(client_id, challenge))
            .await;
        query["code"].clone()
    }

    /// POST /oauth/token with a form; returns (status, json, headers).
    pub(crate) async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value, HeaderMap) {
        self.token_with(self.http.post(self.url("/oauth/token")).form(form))
            .await
    }

    pub(crate) async fn token_with(
        &self,
        request: reqwest::RequestBuilder,
    ) -> (StatusCode, Value, HeaderMap) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, response.json().await.unwrap(), headers)
    }

    /// Backend API call with the secret key.
    pub(crate) async fn backend_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(self.handle.secret_key())
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `backend_post`'s answer body as JSON.
    pub(crate) async fn backend_json(&self, path: &str, body: Value) -> Value {
        self.backend_post(path, body).await.json().await.unwrap()
    }

    /// An unauthenticated `GET` of `path`, parsed from JSON.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The value of one series of `mcp_auth_issuer_requests_total` (0 when absent).
    pub(crate) async fn request_count(&self, path: &str, method: &str, status: u16) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!(
            "mcp_auth_issuer_requests_total{{path=\"{path}\",method=\"{method}\",status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |v| v.trim().parse().unwrap())
    }
}

/// Decode a JWT's header and claims without verifying (tests check the signature separately).
pub(crate) fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    let header = next();
    let claims = next();
    (header, claims)
}
