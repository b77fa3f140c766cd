//! OAuth 2.0 Protected Resource Metadata (RFC 9728) and the legacy authorization-server
//! metadata passthrough for 2025-03-26 clients.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};
use url::Url;

use crate::{challenge::plain_error, scopes::advertisable};

fn no_advertised_scope(scopes: &[String]) -> bool {
    !scopes.iter().any(|s| advertisable(s))
}

fn serialize_advertised<S: serde::Serializer>(
    scopes: &[String],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(scopes.iter().filter(|s| advertisable(s)))
}

/// The RFC 9728 document. Empty fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The protected resource's identifier: the URL clients use (RFC 9728 §3.3).
    pub resource: String,
    /// Issuer identifiers of the authorization servers that issue tokens for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request. Some clients (VS Code) misbehave when this is missing.
    /// `offline_access` is never served, even when put here: MCP servers SHOULD NOT list it
    /// (MCP 2026-07-28, `docs/specification/2026-07-28/basic/authorization/index.mdx`,
    /// § Refresh Tokens); whether a client gets a refresh token is between it and the
    /// authorization server.
    #[serde(
        default,
        skip_serializing_if = "no_advertised_scope",
        serialize_with = "serialize_advertised"
    )]
    pub scopes_supported: Vec<String>,
    /// How tokens may be presented: always `["header"]` here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name for the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page with documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

impl ProtectedResourceMetadata {
    /// A document for `resource` served by `authorization_servers`, with
    /// `bearer_methods_supported: ["header"]`.
    pub fn new<I, S>(resource: impl Into<String>, authorization_servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            resource: resource.into(),
            authorization_servers: authorization_servers.into_iter().map(Into::into).collect(),
            bearer_methods_supported: vec!["header".to_owned()],
            ..Self::default()
        }
    }

    /// Sets `scopes_supported` (`offline_access` is dropped, see the field).
    #[must_use]
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| advertisable(s))
            .collect();
        self
    }

    /// Sets `resource_name`.
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Sets `resource_documentation`.
    #[must_use]
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }
}

/// The well-known path for a resource URL, with the resource's path inserted after the
/// well-known segment (RFC 9728 §3.1): `https://h/mcp` → `/.well-known/oauth-protected-resource/mcp`.
#[must_use]
pub fn well_known_path(resource: &Url) -> String {
    let path = resource.path().trim_end_matches('/');
    format!("/.well-known/oauth-protected-resource{path}")
}

/// The absolute metadata URL for a resource URL.
#[must_use]
pub fn metadata_url(resource: &Url) -> String {
    format!("{}{}", origin(resource), well_known_path(resource))
}

/// `scheme://host[:port]` of a URL, without a trailing slash.
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Shared state of the metadata routes.
#[derive(Clone)]
pub(crate) struct MetadataState {
    pub(crate) document: Arc<ProtectedResourceMetadata>,
    /// Pre-serialised document, so serving it costs no serialisation.
    pub(crate) body: bytes::Bytes,
    pub(crate) trust_forwarded: bool,
    pub(crate) resource: Url,
    pub(crate) legacy: Option<Arc<LegacyAsMetadata>>,
}

impl MetadataState {
    pub(crate) fn new(
        document: ProtectedResourceMetadata,
        resource: Url,
        trust_forwarded: bool,
        legacy: Option<Arc<LegacyAsMetadata>>,
    ) -> Self {
        let body = serde_json::to_vec(&document).unwrap_or_default().into();
        Self {
            document: Arc::new(document),
            body,
            trust_forwarded,
            resource,
            legacy,
        }
    }
}

/// The paths [`routes`] serves: the root well-known path, the path-inserted one when it differs,
/// and the legacy authorization-server path when `legacy`. The builder refuses an MCP path
/// that is one of them (axum cannot route one path twice).
pub(crate) fn route_paths(
    resource: &Url,
    legacy: bool,
) -> (&'static str, Option<String>, Option<&'static str>) {
    const ROOT: &str = "/.well-known/oauth-protected-resource";
    let inserted = well_known_path(resource);
    (
        ROOT,
        (inserted != ROOT).then_some(inserted),
        legacy.then_some("/.well-known/oauth-authorization-server"),
    )
}

/// Routes serving the document at the path-inserted URI and at the root well-known URI (the
/// fallback clients try), and, when configured, `/.well-known/oauth-authorization-server`.
/// CORS allows any origin: the documents are public and browser-based clients fetch them.
pub(crate) fn routes(state: MetadataState) -> Router {
    let (root, inserted, legacy) = route_paths(&state.resource, state.legacy.is_some());
    let mut router = Router::new().route(root, get(serve_prm));
    if let Some(inserted) = inserted {
        router = router.route(&inserted, get(serve_prm));
    }
    if let Some(legacy) = legacy {
        router = router.route(legacy, get(serve_legacy));
    }
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([http::Method::GET, http::Method::OPTIONS])
        .allow_headers(Any)
        .max_age(Duration::from_secs(86_400));
    router.layer(cors).with_state(state)
}

async fn serve_prm(State(state): State<MetadataState>, headers: HeaderMap) -> Response {
    let body = match state
        .trust_forwarded
        .then(|| forwarded_origin(&headers))
        .flatten()
    {
        Some(public_origin) => {
            let mut doc = (*state.document).clone();
            doc.resource = format!("{public_origin}{}", state.resource.path());
            serde_json::to_vec(&doc).unwrap_or_default().into()
        }
        None => state.body.clone(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn serve_legacy(State(state): State<MetadataState>) -> Response {
    let Some(legacy) = &state.legacy else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match legacy.get().await {
        Some(doc) => (
            [(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            )],
            Json((*doc).clone()),
        )
            .into_response(),
        None => {
            let mut r = plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the authorization server metadata could not be fetched; retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
    }
}

/// The public origin from `Forwarded` (RFC 7239) or `X-Forwarded-Proto`/`X-Forwarded-Host`.
/// Only consulted when the operator opted in: these headers are client-controlled unless a
/// trusted proxy overwrites them.
pub(crate) fn forwarded_origin(headers: &HeaderMap) -> Option<String> {
    let valid_host = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    };
    let valid_proto = |p: &str| p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https");
    if let Some(fwd) = headers.get("forwarded").and_then(|v| v.to_str().ok()) {
        let first = fwd.split(',').next().unwrap_or("");
        let (mut proto, mut host) = (None, None);
        for pair in first.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "proto" => proto = Some(v.to_ascii_lowercase()),
                    "host" => host = Some(v.to_owned()),
                    _ => {}
                }
            }
        }
        if let (Some(p), Some(h)) = (proto, host)
            && valid_proto(&p)
            && valid_host(&h)
        {
            return Some(format!("{p}://{h}"));
        }
    }
    let proto = headers
        .get("x-forwarded-proto")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    let host = headers
        .get("x-forwarded-host")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim();
    (valid_proto(proto) && valid_host(host))
        .then(|| format!("{}://{host}", proto.to_ascii_lowercase()))
}

/// The authorization server's RFC 8414 metadata, fetched from the issuer and cached, served
/// at the MCP server's origin for clients that follow the 2025-03-26 discovery rules.
pub struct LegacyAsMetadata {
    issuer: Url,
    /// Built on the first fetch: building a client reads the system's root certificates
    /// (tens of milliseconds), which a server that is never asked for this document, or a
    /// program that builds many servers, should not pay at `build()`.
    client: std::sync::OnceLock<reqwest::Client>,
    ttl: Duration,
    cached: tokio::sync::Mutex<Option<(Instant, Arc<serde_json::Value>)>>,
}

impl std::fmt::Debug for LegacyAsMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyAsMetadata")
            .field("issuer", &self.issuer.as_str())
            .finish()
    }
}

impl LegacyAsMetadata {
    /// Passes through the metadata of `issuer`, cached for `ttl`.
    #[must_use]
    pub fn new(issuer: Url, ttl: Duration) -> Self {
        Self {
            issuer,
            client: std::sync::OnceLock::new(),
            ttl,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The document, from cache or freshly fetched; the last good copy when the issuer is down.
    pub async fn get(&self) -> Option<Arc<serde_json::Value>> {
        let mut cached = self.cached.lock().await;
        if let Some((at, doc)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Some(doc.clone());
        }
        match self.fetch().await {
            Some(doc) => {
                let doc = Arc::new(doc);
                *cached = Some((Instant::now(), doc.clone()));
                Some(doc)
            }
            None => cached.as_ref().map(|(_, d)| d.clone()),
        }
    }

    async fn fetch(&self) -> Option<serde_json::Value> {
        let base = self.issuer.as_str().trim_end_matches('/');
        let path = self.issuer.path().trim_end_matches('/');
        let origin = origin(&self.issuer);
        // RFC 8414 §3.1 path insertion first, then OIDC-style appending.
        let candidates = [
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{base}/.well-known/openid-configuration"),
        ];
        let client = self.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        });
        for url in candidates {
            let Ok(resp) = client.get(&url).send().await else {
                continue;
            };
            if !resp.status().is_success() {
                continue;
            }
            if let Ok(doc) = resp.json::<serde_json::Value>().await
                && doc.get("issuer").is_some()
            {
                return Some(doc);
            }
        }
        tracing::warn!(issuer = %self.issuer, "could not fetch authorization server metadata");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_insertion() {
        let u: Url = "https://mcp.example/mcp".parse().unwrap();
        assert_eq!(
            well_known_path(&u),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url(&u),
            "https://mcp.example/.well-known/oauth-protected-resource/mcp"
        );
        let root: Url = "http://127.0.0.1:8787/".parse().unwrap();
        assert_eq!(
            well_known_path(&root),
            "/.well-known/oauth-protected-resource"
        );
        let nested: Url = "https://h:8443/a/b/".parse().unwrap();
        assert_eq!(
            metadata_url(&nested),
            "https://h:8443/.well-known/oauth-protected-resource/a/b"
        );
    }

    #[test]
    fn empty_fields_are_omitted() {
        let doc = ProtectedResourceMetadata::new("https://r/mcp", ["https://as"]);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"resource":"https://r/mcp","authorization_servers":["https://as"],"bearer_methods_supported":["header"]})
        );
    }

    #[test]
    fn forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=1.2.3.4;proto=https;host=mcp.example"),
        );
        assert_eq!(forwarded_origin(&h).as_deref(), Some("https://mcp.example"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("a.example:8443"),
        );
        assert_eq!(
            forwarded_origin(&h).as_deref(),
            Some("https://a.example:8443")
        );
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("javascript"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil"));
        assert_eq!(forwarded_origin(&h), None);
    }
}
