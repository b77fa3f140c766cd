//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, or `none` (public client, `client_id` only).

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::cimd::Lookup;
use crate::clients::Client;
use crate::form::Params;
use crate::ids;
use crate::oauth_error::OAuthError;
use crate::state::Shared;

struct BasicCredentials {
    client_id: String,
    secret: String,
}

/// Parse `Authorization: Basic …`; `Ok(None)` when the header is absent or another scheme.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<BasicCredentials>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed HTTP Basic client credentials", true);
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both halves are form-urlencoded before being joined.
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some(BasicCredentials {
        client_id: unescape(id),
        secret: unescape(secret),
    }))
}

fn secret_matches(client: &Client, secret: &str) -> bool {
    client
        .secret_hash
        .as_deref()
        .is_some_and(|h| ids::constant_time_eq(h.as_bytes(), ids::hash(secret).as_bytes()))
}

/// Authenticate the calling client, or explain in RFC 6749 terms why not.
pub(crate) async fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Client, OAuthError> {
    let dup = OAuthError::invalid_request;
    let body_id = params.one("client_id", dup)?;
    let body_secret = params.one("client_secret", dup)?;

    if let Some(basic) = basic_credentials(headers)? {
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use exactly one client authentication method, not both Basic and client_secret",
            ));
        }
        if body_id.is_some_and(|id| id != basic.client_id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the one in the Authorization header",
            ));
        }
        let client = lookup(shared, &basic.client_id, true).await?;
        let ok = if client.auth_method.is_confidential() {
            secret_matches(&client, &basic.secret)
        } else {
            basic.secret.is_empty()
        };
        return if ok {
            Ok(client)
        } else {
            Err(OAuthError::invalid_client(
                "client authentication failed",
                true,
            ))
        };
    }

    let Some(client_id) = body_id else {
        return Err(OAuthError::invalid_client(
            "client authentication required: send client_id (and client_secret for confidential clients)",
            false,
        ));
    };
    let client = lookup(shared, client_id, false).await?;
    match (client.auth_method.is_confidential(), body_secret) {
        (true, Some(secret)) if secret_matches(&client, secret) => Ok(client),
        (true, Some(_)) => Err(OAuthError::invalid_client(
            "client authentication failed",
            false,
        )),
        (true, None) => Err(OAuthError::invalid_client(
            "this client is confidential: authenticate with its client_secret",
            false,
        )),
        (false, None) => Ok(client),
        (false, Some(_)) => Err(OAuthError::invalid_client(
            "this client is public (token_endpoint_auth_method none) and has no secret",
            false,
        )),
    }
}

/// A registered client, or one described by its metadata document (CIMD): a document that
/// cannot be fetched or is invalid is `invalid_client` with the reason.
async fn lookup(shared: &Shared, client_id: &str, basic: bool) -> Result<Client, OAuthError> {
    match crate::cimd::lookup(shared, client_id).await? {
        // Registered while public clients were admitted, before a restart without them.
        Lookup::Found(client)
            if !client.auth_method.is_confidential() && !shared.config.public_clients =>
        {
            Err(OAuthError::invalid_client(
                "this authorization server accepts confidential clients only",
                basic,
            ))
        }
        Lookup::Found(client) => Ok(client),
        Lookup::Unknown => Err(OAuthError::invalid_client("unknown client", basic)),
        Lookup::BadDocument(message) => Err(OAuthError::invalid_client(message, basic)),
    }
}
