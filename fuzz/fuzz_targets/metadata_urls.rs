//! Resource URL → metadata URL, the `WWW-Authenticate` challenge, and `Forwarded` /
//! `X-Forwarded-*` parsing: never panics; every URL handed to a client is absolute, on the
//! configured origin unless forwarding is trusted (and then still a well-formed URL with the
//! resource's path); every challenge is one well-formed RFC 9110 challenge whose parameters
//! are exactly the ones meant (nothing injected through a description or a scope).
//!
//! Pure functions on every input, then the real router (`McpServer::build`) for the served
//! metadata document and the 401 challenge.
#![no_main]

use std::{collections::HashMap, sync::Mutex};

use arbitrary::Arbitrary;
use axum::{Router, body::Body};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use mcp_auth::{AuthError, AuthInfo, Challenge, McpServer, VerifyError, metadata};
use tower::ServiceExt;
use url::Url;

#[derive(Arbitrary, Debug)]
enum Resource {
    /// `scheme://host[:port]/path`, from parts.
    Parts {
        https: bool,
        host: String,
        port: Option<u16>,
        path: String,
    },
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Forwarding {
    Forwarded,
    XForwardedProto,
    XForwardedHost,
    Host,
}

#[derive(Arbitrary, Debug)]
enum Refusal {
    Missing,
    Invalid(String),
    Scope(Vec<String>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    resource: Resource,
    trust_forwarded: bool,
    headers: Vec<(Forwarding, Vec<u8>)>,
    default_scope: Vec<String>,
    refusal: Refusal,
    through_router: bool,
}

/// RFC 9110 §11.2 `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, for a single
/// challenge: the scheme and its parameters, or `None` if the value does not follow the grammar.
fn parse_challenge(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut rest = value;
    let scheme_len = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
    if scheme_len == 0 {
        return None;
    }
    let scheme = rest[..scheme_len].to_owned();
    rest = &rest[scheme_len..];
    let mut params = Vec::new();
    if rest.is_empty() {
        return Some((scheme, params));
    }
    rest = rest.strip_prefix(' ')?.trim_start_matches(' ');
    loop {
        let name_len = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        if name_len == 0 {
            return None;
        }
        let name = rest[..name_len].to_ascii_lowercase();
        rest = rest[name_len..].trim_start_matches([' ', '\t']);
        rest = rest.strip_prefix('=')?.trim_start_matches([' ', '\t']);
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i + 1,
                    '\\' => out.push(chars.next()?.1),
                    c if c == '\t' || (' '..='~').contains(&c) => out.push(c),
                    _ => return None,
                }
            };
            value = out;
            rest = &quoted[end..];
        } else {
            let len = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
            if len == 0 {
                return None;
            }
            value = rest[..len].to_owned();
            rest = &rest[len..];
        }
        params.push((name, value));
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Some((scheme, params));
        }
        rest = rest.strip_prefix(',')?.trim_start_matches([' ', '\t']);
    }
}

/// What a quoted-string can carry of `s`: visible ASCII and space.
fn printable(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c)).collect()
}

/// The challenge names exactly the expected parameters, each once.
fn check_challenge(
    value: &str,
    metadata_url: Option<&str>,
    scope: Option<String>,
    error: Option<&str>,
) {
    let (scheme, params) =
        parse_challenge(value).unwrap_or_else(|| panic!("not an RFC 9110 challenge: {value:?}"));
    assert_eq!(scheme, "Bearer", "{value:?}");
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &params {
        assert!(
            seen.insert(k, v).is_none(),
            "parameter {k} twice in {value:?}"
        );
    }
    assert_eq!(seen.remove("resource_metadata"), metadata_url, "{value:?}");
    assert_eq!(seen.remove("scope").map(str::to_owned), scope, "{value:?}");
    assert_eq!(seen.remove("error"), error, "{value:?}");
    if error.is_some() {
        assert!(seen.remove("error_description").is_some(), "{value:?}");
    }
    assert!(
        seen.is_empty(),
        "unexpected parameters {seen:?} in {value:?}"
    );
}

fn is_absolute_http(url: &str) -> Option<Url> {
    let parsed = Url::parse(url).ok()?;
    (matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none())
    .then_some(parsed)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Routers by (resource, trust): building one per input would dominate the run time.
fn router(resource: &str, trust: bool, default_scope: &[String]) -> Option<Router> {
    static ROUTERS: Mutex<Option<HashMap<(String, bool, Vec<String>), Router>>> = Mutex::new(None);
    let mut routers = ROUTERS.lock().unwrap();
    let routers = routers.get_or_insert_with(HashMap::new);
    if routers.len() > 512 {
        routers.clear();
    }
    let key = (resource.to_owned(), trust, default_scope.to_vec());
    if let Some(r) = routers.get(&key) {
        return Some(r.clone());
    }
    let verifier = |_token: &str| async { Err::<AuthInfo, _>(VerifyError::invalid_token("no")) };
    let built = McpServer::builder(resource)
        .authorization_server("https://issuer.fuzz.invalid")
        .scopes_supported(default_scope.iter().cloned())
        .trust_forwarded_headers(trust)
        .allow_any_origin()
        .verifier(verifier)
        .build()
        .ok()?;
    routers.insert(key, built.clone());
    Some(built)
}

fuzz_target!(|input: Input| {
    let resource = match &input.resource {
        Resource::Parts {
            https,
            host,
            port,
            path,
        } => {
            let scheme = if *https { "https" } else { "http" };
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}/{path}")
        }
        Resource::Any(s) => s.clone(),
    };
    let Some(url) = is_absolute_http(&resource) else {
        return;
    };
    let origin = mcp_auth::__fuzz::origin(&url);

    // Resource URL → metadata URL: absolute, same origin, path inserted (RFC 9728 §3.1).
    let md = metadata::metadata_url(&url);
    let md_url =
        is_absolute_http(&md).unwrap_or_else(|| panic!("metadata URL {md:?} for {resource:?}"));
    assert_eq!(md_url.origin(), url.origin(), "{md:?} for {resource:?}");
    assert_eq!(
        md_url.path(),
        format!(
            "/.well-known/oauth-protected-resource{}",
            url.path().trim_end_matches('/')
        ),
        "{md:?} for {resource:?}"
    );
    assert_eq!(md, format!("{origin}{}", metadata::well_known_path(&url)));

    // The challenge: one well-formed challenge with exactly the intended parameters.
    let challenge = Challenge::new(&md).with_default_scope(&input.default_scope);
    // Scopes are joined with spaces; characters a header cannot carry are dropped; and
    // `offline_access` is never challenged for (MCP 2026-07-28, basic/authorization, § Refresh
    // Tokens: a refresh token is not a resource requirement).
    let joined = |s: &[String]| {
        Some(
            s.iter()
                .map(String::as_str)
                .filter(|s| *s != "offline_access")
                .collect::<Vec<_>>()
                .join(" "),
        )
        .filter(|j| !j.is_empty())
        .map(|j| printable(&j))
    };
    let default_scope = joined(&input.default_scope);
    let (error, scope, code) = match &input.refusal {
        Refusal::Missing => (AuthError::MissingToken, default_scope.clone(), None),
        Refusal::Invalid(d) => (
            AuthError::InvalidToken(d.clone().into()),
            default_scope.clone(),
            Some("invalid_token"),
        ),
        Refusal::Scope(s) => (
            AuthError::InsufficientScope { scope: s.clone() },
            joined(s),
            Some("insufficient_scope"),
        ),
    };
    let value = challenge.header_value(&error);
    assert!(
        HeaderValue::from_str(&value).is_ok(),
        "not a header value: {value:?}"
    );
    check_challenge(&value, Some(&md), scope, code);

    // Forwarded headers.
    let mut headers = HeaderMap::new();
    for (which, bytes) in &input.headers {
        let name = match which {
            Forwarding::Forwarded => HeaderName::from_static("forwarded"),
            Forwarding::XForwardedProto => HeaderName::from_static("x-forwarded-proto"),
            Forwarding::XForwardedHost => HeaderName::from_static("x-forwarded-host"),
            Forwarding::Host => header::HOST,
        };
        if let Ok(v) = HeaderValue::from_bytes(bytes) {
            headers.append(name, v);
        }
    }
    if !headers.contains_key(header::HOST)
        && let Ok(v) =
            HeaderValue::from_str(&url[url::Position::BeforeHost..url::Position::AfterPort])
    {
        headers.insert(header::HOST, v);
    }
    if let Some(public) = mcp_auth::__fuzz::forwarded_origin(&headers) {
        let with_path = format!("{public}{}", url.path());
        let parsed = is_absolute_http(&with_path).unwrap_or_else(|| {
            panic!("forwarded origin {public:?} from {headers:?} is not an origin")
        });
        assert_eq!(parsed.path(), url.path(), "{public:?} from {headers:?}");
    }

    if !input.through_router {
        return;
    }
    let Some(app) = router(&resource, input.trust_forwarded, &input.default_scope) else {
        return;
    };
    let send = |method: http::Method, path: String| {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let req = req.body(Body::empty()).unwrap();
        runtime().block_on(async {
            let resp = app.clone().oneshot(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, body)
        })
    };

    // The served document's `resource`.
    let (parts, body) = send(http::Method::GET, metadata::well_known_path(&url));
    assert!(!parts.status.is_server_error(), "{:?}", parts.status);
    if parts.status == StatusCode::OK {
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON document");
        let served = doc["resource"].as_str().expect("resource").to_owned();
        let served_url = is_absolute_http(&served)
            .unwrap_or_else(|| panic!("served resource {served:?} for {resource:?}, {headers:?}"));
        if input.trust_forwarded {
            assert_eq!(served_url.path(), url.path(), "{served:?} for {resource:?}");
        } else {
            assert_eq!(
                served_url.origin(),
                url.origin(),
                "{served:?} for {resource:?}"
            );
        }
    }

    // The 401 challenge at the MCP endpoint.
    let (parts, _) = send(http::Method::POST, url.path().to_owned());
    assert!(!parts.status.is_server_error(), "{:?}", parts.status);
    if parts.status == StatusCode::UNAUTHORIZED {
        let value = parts.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        let (_, params) = parse_challenge(value).expect("a challenge");
        let md_sent = params
            .iter()
            .find(|(k, _)| k == "resource_metadata")
            .map(|(_, v)| v.clone())
            .expect("resource_metadata");
        let sent = is_absolute_http(&md_sent).unwrap_or_else(|| panic!("{md_sent:?}"));
        if input.trust_forwarded {
            assert_eq!(sent.path(), md_url.path(), "{md_sent:?}");
        } else {
            assert_eq!(md_sent, md, "challenge for {resource:?}");
        }
    }
});
