//! `/oauth/authorize`: validates the authorization request (RFC 6749 §4.1.1, PKCE S256 per
//! RFC 7636, `resource` per RFC 8707), renders the consent page on GET, takes the decision on
//! POST, and answers the client with a code or an error (RFC 6749 §4.1.2, `iss` per RFC 9207).
//! An unknown client or an untrusted redirect URI is shown on the page and never redirected.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use crate::cimd::Lookup;
use crate::clients::Client;
use crate::consent::{ConsentView, consent_page, error_page, unknown_client_page};
use crate::csrf::{self, CsrfError, SIGNED_FIELDS};
use crate::form::{Params, is_form};
use crate::ids;
use crate::state::Shared;
use crate::store::AuthCode;

/// A request that passed validation.
struct AuthorizationRequest {
    client: Client,
    /// As presented (a loopback port may differ from the registered one).
    redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it).
    redirect_uri_sent: bool,
    state: Option<String>,
    scopes: Vec<String>,
    resource: Option<String>,
    code_challenge: String,
    nonce: Option<String>,
    prompt_none: bool,
}

/// Why a request was refused, and where the answer goes.
enum Rejection {
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    /// No client has this id: registered with a state that is gone, or never registered.
    UnknownClient { client_id: String },
    /// The `client_id` is a metadata document URL whose document could not be fetched or is
    /// invalid: its redirect URIs are unknown, so the user is told, never the client
    /// (RFC 6749 §4.1.2.1).
    BadDocument { client_id: String, message: String },
    /// The state could not be read.
    Failed,
}

fn page(message: impl Into<String>) -> Rejection {
    Rejection::Page {
        status: StatusCode::BAD_REQUEST,
        title: "Invalid authorization request",
        message: message.into(),
    }
}

fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The client the request names: registered, or described by its metadata document.
async fn find_client(shared: &Shared, params: &Params) -> Result<Client, Rejection> {
    let client_id = params
        .get("client_id")
        .map_err(page)?
        .ok_or_else(|| page("The request has no client_id."))?;
    match crate::cimd::lookup(shared, client_id).await {
        Ok(Lookup::Found(client)) => Ok(client),
        Ok(Lookup::Unknown) => Err(Rejection::UnknownClient {
            client_id: client_id.to_owned(),
        }),
        Ok(Lookup::BadDocument(message)) => Err(Rejection::BadDocument {
            client_id: client_id.to_owned(),
            message,
        }),
        Err(e) => {
            tracing::error!(error = %e, "the issuer state failed while looking up a client");
            Err(Rejection::Failed)
        }
    }
}

fn validate(
    shared: &Shared,
    params: &Params,
    client: Client,
) -> Result<AuthorizationRequest, Rejection> {
    let redirect_uri_sent = params.get("redirect_uri").map_err(page)?.is_some();
    let redirect_uri = match params.get("redirect_uri").map_err(page)? {
        Some(uri) => {
            if client.match_redirect_uri(uri).is_none() {
                return Err(page(format!(
                    "The redirect_uri “{uri}” is not registered for “{}”.",
                    client.display_name()
                )));
            }
            uri.to_owned()
        }
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(page(
                    "The request has no redirect_uri and the application registered several.",
                ));
            }
        },
    };

    // From here on the client and its return address are trusted: errors go back to it.
    let state = params.get("state").ok().flatten().map(str::to_owned);
    let fail = |error: &'static str, description: String| Rejection::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    let get = |name: &str| params.get(name).map_err(|e| fail("invalid_request", e));

    if params.get("state").is_err() {
        return Err(fail(
            "invalid_request",
            "parameter `state` was sent more than once".into(),
        ));
    }
    match get("response_type")? {
        None => return Err(fail("invalid_request", "response_type is required".into())),
        Some("code") => {}
        Some(other) => {
            return Err(fail(
                "unsupported_response_type",
                format!("response_type `{other}` is not supported; use `code`"),
            ));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(fail(
            "unauthorized_client",
            "this client did not register the authorization_code grant".into(),
        ));
    }
    if get("request")?.is_some() || get("request_uri")?.is_some() {
        return Err(fail(
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    match get("code_challenge_method")? {
        Some("S256") => {}
        None => {
            return Err(fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            ));
        }
        Some("plain") => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method `plain` is not allowed; use S256".into(),
            ));
        }
        Some(other) => {
            return Err(fail(
                "invalid_request",
                format!("code_challenge_method `{other}` is not supported; use S256"),
            ));
        }
    }
    let code_challenge = match get("code_challenge")? {
        Some(c) if is_pkce_value(c) => c.to_owned(),
        Some(_) => {
            return Err(fail(
                "invalid_request",
                "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]".into(),
            ));
        }
        None => {
            return Err(fail(
                "invalid_request",
                "code_challenge is required (PKCE S256)".into(),
            ));
        }
    };
    let mut scopes: Vec<String> = Vec::new();
    for scope in get("scope")?
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !shared.is_supported_scope(scope) {
            return Err(fail(
                "invalid_scope",
                format!("scope `{scope}` is not supported"),
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        scopes.clone_from(&shared.config.default_scopes);
    }
    let resource = match get("resource")? {
        None => None,
        Some(r) => Some(validate_resource(r).map_err(|d| fail("invalid_target", d))?),
    };
    let nonce = get("nonce")?.map(str::to_owned);
    let prompt_none = get("prompt")?.is_some_and(|p| p.split(' ').any(|v| v == "none"));
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        redirect_uri_sent,
        state,
        scopes,
        resource,
        code_challenge,
        nonce,
        prompt_none,
    })
}

/// RFC 8707 §2: an absolute URI without a fragment.
pub(crate) fn validate_resource(resource: &str) -> Result<String, String> {
    match Url::parse(resource) {
        Ok(url) if url.fragment().is_none() => Ok(resource.to_owned()),
        Ok(_) => Err(format!("resource `{resource}` must not contain a fragment")),
        Err(_) => Err(format!("resource `{resource}` is not an absolute URI")),
    }
}

/// The redirect back to the client with `pairs` added to its query (and `iss`, RFC 9207).
fn redirect(
    shared: &Shared,
    redirect_uri: &str,
    pairs: &[(&str, &str)],
    status: StatusCode,
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The redirect URI cannot be parsed.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        query.append_pair("iss", &shared.base_url);
    }
    let mut response = status.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn reject(shared: &Shared, rejection: Rejection, status: StatusCode) -> Response {
    match rejection {
        Rejection::Page {
            status: page_status,
            title,
            message,
        } => error_page(page_status, title, &message),
        Rejection::UnknownClient { client_id } => {
            unknown_client_page(&client_id, shared.store.dir().is_some())
        }
        Rejection::BadDocument { client_id, message } => error_page(
            StatusCode::BAD_REQUEST,
            "This application's metadata document cannot be used",
            &format!(
                "The application identifies itself with the client metadata document at \
                 {client_id}, and this authorization server cannot use it: {message}. \
                 Its developer has to fix the document (or where it is served from)."
            ),
        ),
        Rejection::Failed => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The authorization server could not read its state; see its log.",
        ),
        Rejection::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(state) = &state {
                pairs.push(("state", state));
            }
            redirect(shared, &redirect_uri, &pairs, status)
        }
    }
}

/// Issue a code for `user` and send it to the client.
fn approve(
    shared: &Shared,
    req: &AuthorizationRequest,
    user_id: &str,
    status: StatusCode,
) -> Response {
    let code = ids::random_urlsafe();
    let now_ms = shared.clock.now_ms();
    let record = AuthCode {
        client_id: req.client.client_id.clone(),
        redirect_uri: req.redirect_uri_sent.then(|| req.redirect_uri.clone()),
        code_challenge: req.code_challenge.clone(),
        subject: user_id.to_owned(),
        scopes: req.scopes.clone(),
        resource: req.resource.clone(),
        nonce: req.nonce.clone(),
        auth_time: now_ms / 1000,
        expires_at_ms: now_ms.saturating_add(crate::clock::millis(
            shared.config.authorization_code_lifetime,
        )),
        used: false,
        grant_id: ids::id("grant_"),
    };
    let hash = ids::hash(&code);
    let stored = shared.store.write(|tx| {
        tx.prune_codes(now_ms)?;
        tx.insert_consent(&record, now_ms)?;
        tx.insert_code(&hash, &record)
    });
    if let Err(e) = stored {
        tracing::error!(error = %e, "the issuer state failed while recording a consent");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The authorization server could not record your consent; see its log.",
        );
    }
    shared.metrics.token_issued("authorization_code");
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &req.state {
        pairs.push(("state", state));
    }
    redirect(shared, &req.redirect_uri, &pairs, status)
}

/// The signed fields of a request, in [`SIGNED_FIELDS`] order.
fn signed_values(req: &AuthorizationRequest, issued_at: &str) -> [Option<String>; 10] {
    [
        Some("code".to_owned()),
        Some(req.client.client_id.clone()),
        req.redirect_uri_sent.then(|| req.redirect_uri.clone()),
        Some(req.scopes.join(" ")),
        req.state.clone(),
        req.resource.clone(),
        Some(req.code_challenge.clone()),
        Some("S256".to_owned()),
        req.nonce.clone(),
        Some(issued_at.to_owned()),
    ]
}

/// `GET /oauth/authorize`.
pub(crate) async fn authorize_get(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.as_deref().unwrap_or_default());
    let req = match find_client(&shared, &params)
        .await
        .and_then(|client| validate(&shared, &params, client))
    {
        Ok(req) => req,
        Err(rejection) => return reject(&shared, rejection, StatusCode::FOUND),
    };
    if let Some(user_id) = shared.config.auto_approve_user.as_deref() {
        return approve(&shared, &req, user_id, StatusCode::FOUND);
    }
    if req.prompt_none {
        let rejection = Rejection::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: "consent_required",
            description: "this issuer always asks for consent; retry without prompt=none".into(),
        };
        return reject(&shared, rejection, StatusCode::FOUND);
    }
    let issued_at = shared.clock.now_secs().to_string();
    let values = signed_values(&req, &issued_at);
    let refs: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
    let token = csrf::sign(&shared.csrf_key, &refs);
    let mut hidden: Vec<(&'static str, String)> = SIGNED_FIELDS
        .iter()
        .zip(values)
        .filter_map(|(name, value)| value.map(|v| (*name, v)))
        .collect();
    hidden.push(("csrf_token", token));
    consent_page(&ConsentView {
        app_name: req.client.display_name(),
        logo_uri: req.client.logo_uri.as_deref(),
        document: req.client.document.as_ref(),
        localhost_only: req
            .client
            .redirect_uris
            .iter()
            .all(|uri| crate::clients::is_loopback_uri(uri)),
        redirect_uri: &req.redirect_uri,
        scopes: &req.scopes,
        resource: req.resource.as_deref(),
        users: &shared.users,
        base_url: &shared.base_url,
        hidden,
    })
}

/// `POST /oauth/authorize`: the consent form.
pub(crate) async fn authorize_post(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        return error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported form encoding",
            "Submit the consent form as application/x-www-form-urlencoded.",
        );
    }
    let params = Params::parse(&String::from_utf8_lossy(&body));
    let mut values = Vec::with_capacity(SIGNED_FIELDS.len());
    for name in SIGNED_FIELDS {
        match params.get(name) {
            Ok(v) => values.push(v),
            Err(e) => return error_page(StatusCode::BAD_REQUEST, "Invalid consent form", &e),
        }
    }
    let token = params.get("csrf_token").ok().flatten();
    let issued_at = params.get("issued_at").ok().flatten();
    if let Err(e) = csrf::verify(
        &shared.csrf_key,
        &values,
        token,
        issued_at,
        shared.clock.now_secs(),
        shared.config.consent_lifetime.as_secs(),
    ) {
        let (status, message) = match e {
            CsrfError::Missing => (
                StatusCode::FORBIDDEN,
                "The form has no CSRF token. Start again from the application.",
            ),
            CsrfError::Invalid => (
                StatusCode::FORBIDDEN,
                "The form's CSRF token does not match its contents. Start again from the application.",
            ),
            CsrfError::Expired => (
                StatusCode::BAD_REQUEST,
                "The consent form has expired. Start again from the application.",
            ),
        };
        return error_page(status, "Consent form refused", message);
    }
    // The signed fields are the original request; validate them again (the client may be gone).
    let req = match find_client(&shared, &params)
        .await
        .and_then(|client| validate(&shared, &params, client))
    {
        Ok(req) => req,
        Err(rejection) => return reject(&shared, rejection, StatusCode::SEE_OTHER),
    };
    match params.get("decision").ok().flatten() {
        Some("deny") => {
            let rejection = Rejection::Redirect {
                redirect_uri: req.redirect_uri.clone(),
                state: req.state.clone(),
                error: "access_denied",
                description: "the user denied the request".into(),
            };
            reject(&shared, rejection, StatusCode::SEE_OTHER)
        }
        Some("allow") => {
            let user_id = params.get("user_id").ok().flatten().unwrap_or_default();
            if shared.user(user_id).is_none() {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Choose a user",
                    "Pick one of the listed users to sign in as, then press Allow.",
                );
            }
            approve(&shared, &req, user_id, StatusCode::SEE_OTHER)
        }
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "Invalid consent form",
            "The form must be submitted with decision=allow or decision=deny.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_values_and_resources() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
        assert!(validate_resource("https://mcp.example/mcp").is_ok());
        assert!(validate_resource("/mcp").is_err());
        assert!(validate_resource("https://mcp.example/#x").is_err());
    }
}
