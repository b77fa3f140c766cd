//! `POST /oauth/token`: the `authorization_code` grant (PKCE S256, single-use short-lived codes,
//! `redirect_uri` and `client_id` binding, `resource` → `aud`) and the `refresh_token` grant with
//! rotation (a rotated refresh token presented again revokes the whole grant, RFC 9700 §4.14).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::authorize::validate_resource;
use crate::client_auth::authenticate;
use crate::clients::Client;
use crate::form::{Params, is_form};
use crate::ids;
use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::store::{RefreshStatus, StoreError, Tx};
use crate::tokens::AccessGrant;

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match exchange(&shared, &headers, &body).await {
        Ok(json) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(json),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn exchange(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(&String::from_utf8_lossy(body));
    let grant_type = params.one("grant_type", OAuthError::invalid_request)?;
    let client = authenticate(shared, headers, &params).await?;
    match grant_type {
        None => Err(OAuthError::invalid_request("grant_type is required")),
        Some("authorization_code") => authorization_code(shared, &client, &params),
        Some("refresh_token") => refresh_token(shared, &client, &params),
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{other}` is not supported; use authorization_code or refresh_token"
        ))),
    }
}

fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorization_code(
    shared: &Shared,
    client: &Client,
    params: &Params,
) -> Result<Value, OAuthError> {
    if !client.allows_grant("authorization_code") {
        return Err(OAuthError::unauthorized_client(
            "this client did not register the authorization_code grant",
        ));
    }
    let dup = OAuthError::invalid_request;
    let code = params
        .one("code", dup)?
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier = params
        .one("code_verifier", dup)?
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    let redirect_uri = params.one("redirect_uri", dup)?;
    let resource = params.one("resource", dup)?;

    let now_ms = shared.clock.now_ms();
    let hash = ids::hash(code);
    // One transaction: the code is burnt, and the tokens recorded, together or not at all.
    shared.store.write(|tx| {
        let Some(grant) = tx.code(&hash)? else {
            return Ok(Err(OAuthError::invalid_grant(
                "the authorization code is invalid",
            )));
        };
        if grant.client_id != client.client_id {
            return Ok(Err(OAuthError::invalid_grant(
                "the authorization code was issued to another client",
            )));
        }
        if grant.used {
            tx.revoke_grant(&grant.grant_id, now_ms, "authorization code reused")?;
            return Ok(Err(OAuthError::invalid_grant(
                "the authorization code was already used; tokens issued with it are revoked",
            )));
        }
        if grant.expires_at_ms <= now_ms {
            return Ok(Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            )));
        }
        // A failed attempt burns the code, so a stolen code cannot be brute-forced for PKCE.
        tx.mark_code_used(&hash)?;
        if grant.redirect_uri.is_some() && redirect_uri != grant.redirect_uri.as_deref() {
            return Ok(Err(OAuthError::invalid_grant(
                "redirect_uri does not match the one in the authorization request",
            )));
        }
        if !ids::constant_time_eq(
            pkce_s256(verifier).as_bytes(),
            grant.code_challenge.as_bytes(),
        ) {
            return Ok(Err(OAuthError::invalid_grant(
                "PKCE verification failed: code_verifier does not match",
            )));
        }
        let resource = match (resource, grant.resource.as_deref()) {
            (None, granted) => granted.map(str::to_owned),
            (Some(asked), Some(granted)) if asked == granted => Some(granted.to_owned()),
            (Some(asked), Some(_)) => {
                return Ok(Err(OAuthError::invalid_target(format!(
                    "resource `{asked}` differs from the one authorized"
                ))));
            }
            (Some(asked), None) => match validate_resource(asked) {
                Ok(r) => Some(r),
                Err(e) => return Ok(Err(OAuthError::invalid_target(e))),
            },
        };
        let Some(user) = shared.user(&grant.subject).cloned() else {
            return Ok(Err(OAuthError::invalid_grant(
                "the user of this grant no longer exists",
            )));
        };
        let mut response = match issue(
            shared,
            tx,
            client,
            &grant.subject,
            &grant.scopes,
            resource.as_deref(),
            &grant.grant_id,
        )? {
            Ok(response) => response,
            Err(e) => return Ok(Err(e)),
        };
        if grant.scopes.iter().any(|s| s == "openid") {
            match shared.issue_id_token(
                &user,
                &client.client_id,
                &grant.scopes,
                grant.nonce.as_deref(),
                grant.auth_time,
            ) {
                Ok(id_token) => response["id_token"] = json!(id_token),
                Err(e) => return Ok(Err(e.into())),
            }
        }
        Ok(Ok(response))
    })?
}

fn refresh_token(shared: &Shared, client: &Client, params: &Params) -> Result<Value, OAuthError> {
    if !client.allows_grant("refresh_token") {
        return Err(OAuthError::unauthorized_client(
            "this client did not register the refresh_token grant",
        ));
    }
    let dup = OAuthError::invalid_request;
    let token = params
        .one("refresh_token", dup)?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let scope = params.one("scope", dup)?;
    let resource = params.one("resource", dup)?;
    let now_ms = shared.clock.now_ms();
    let hash = ids::hash(token);
    // One transaction: the presented token is rotated out and its successors recorded together.
    shared.store.write(|tx| {
        let Some(record) = tx.refresh(&hash)? else {
            return Ok(Err(OAuthError::invalid_grant(
                "the refresh token is invalid",
            )));
        };
        if record.client_id != client.client_id {
            return Ok(Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            )));
        }
        match record.status {
            RefreshStatus::Active => {}
            RefreshStatus::Revoked => {
                return Ok(Err(OAuthError::invalid_grant(
                    "the refresh token was revoked",
                )));
            }
            RefreshStatus::Rotated => {
                tx.revoke_grant(
                    &record.grant_id,
                    now_ms,
                    "refresh token reused after rotation",
                )?;
                return Ok(Err(OAuthError::invalid_grant(
                    "the refresh token was already used (rotated); the grant is revoked",
                )));
            }
        }
        if record.expires_at_ms <= now_ms {
            return Ok(Err(OAuthError::invalid_grant(
                "the refresh token has expired",
            )));
        }
        let scopes = match scope {
            None => record.scopes.clone(),
            Some(asked) => {
                let asked: Vec<String> = asked
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(extra) = asked.iter().find(|s| !record.scopes.contains(s)) {
                    return Ok(Err(OAuthError::invalid_scope(format!(
                        "scope `{extra}` was not granted originally"
                    ))));
                }
                asked
            }
        };
        if let (Some(asked), granted) = (resource, record.resource.as_deref())
            && granted != Some(asked)
        {
            return Ok(Err(OAuthError::invalid_target(format!(
                "resource `{asked}` differs from the one authorized"
            ))));
        }
        // Rotate: the presented token stops working the moment the new one is issued.
        tx.set_refresh_status(&hash, RefreshStatus::Rotated)?;
        issue(
            shared,
            tx,
            client,
            &record.subject,
            &scopes,
            record.resource.as_deref(),
            &record.grant_id,
        )
    })?
}

/// Mint the access token (and a refresh token when the client may refresh) and record them in
/// `tx`. The outer `Result` is the store's, the inner one the protocol's.
fn issue(
    shared: &Shared,
    tx: &Tx<'_>,
    client: &Client,
    subject: &str,
    scopes: &[String],
    resource: Option<&str>,
    grant_id: &str,
) -> Result<Result<Value, OAuthError>, StoreError> {
    let lifetime = shared.config.access_token_lifetime;
    let grant = AccessGrant {
        subject,
        client_id: &client.client_id,
        scopes,
        resource: resource.or(shared.config.default_audience.as_deref()),
        lifetime,
        format: shared.config.token_format,
        grant_id: Some(grant_id),
    };
    let access = match shared.mint_access_token(&grant) {
        Ok(access) => access,
        Err(e) => return Ok(Err(e.into())),
    };
    tx.insert_access(&access.record, access.hash.as_deref())?;
    let mut response = json!({
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "scope": scopes.join(" "),
    });
    if client.allows_grant("refresh_token") {
        let (hash, token, record) = shared.mint_refresh_token(&grant, grant_id);
        tx.insert_refresh(&hash, &record)?;
        response["refresh_token"] = json!(token);
    }
    Ok(Ok(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_base64url_of_sha256() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mJ0kXMfJsBjeE0dKkHHOqJoqE1-gWk"),
            "JEqMIOUO7eGsmfVWFj-0KGOXykNNjauIj7liTq9KFr4"
        );
    }
}
