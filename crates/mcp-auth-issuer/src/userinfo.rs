//! `GET|POST /oauth/userinfo`: OIDC UserInfo for a valid access token; claims follow its scopes.
//! The answer has the fields Clerk's Frontend API answers (`OAuth.UserInfo` in
//! `fapi/2026-05-12.yml`: `object`, `instance_id`, `user_id`, `sub` always; profile, email and
//! metadata claims by scope).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::oauth_error::OAuthError;
use crate::state::Shared;

pub(crate) async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match claims(&shared, &headers) {
        Ok(json) => Json(json).into_response(),
        Err(e) => e.into_response(),
    }
}

fn claims(shared: &Shared, headers: &HeaderMap) -> Result<Value, OAuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            OAuthError::invalid_token("send the access token as `Authorization: Bearer …`")
        })?;
    let record = shared
        .find_access_token(token)?
        .ok_or_else(|| OAuthError::invalid_token("the access token is not valid"))?;
    if record.revoked_at_ms.is_some() {
        return Err(OAuthError::invalid_token("the access token was revoked"));
    }
    if record.expires_at_ms <= shared.clock.now_ms() {
        return Err(OAuthError::invalid_token("the access token has expired"));
    }
    // The spec types `object` as a plain string and gives no value; this one is ours.
    let mut out = json!({
        "object": "oauth_user_info",
        "instance_id": shared.instance_id(),
        "user_id": record.subject,
        "sub": record.subject,
    });
    if let (Some(user), Value::Object(map)) = (shared.user(&record.subject), &mut out) {
        map.extend(shared.user_claims(user, &record.scopes));
        if record.scopes.iter().any(|s| s == "profile") {
            // Deprecated in Clerk's answer, still sent.
            map.insert("username".into(), json!(user.username));
        }
    }
    Ok(out)
}
