//! Clerk's `User` object and `users().get(user_id)`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::backend::{BackendApi, BackendError};

/// The users endpoints of the Backend API; from [`BackendApi::users`].
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    api: &'a BackendApi,
}

impl<'a> Users<'a> {
    pub(crate) fn new(api: &'a BackendApi) -> Self {
        Self { api }
    }

    /// `GET /v1/users/{user_id}`: the user, or [`BackendError::NotFound`].
    ///
    /// Authenticated with the secret key, never with the MCP client's token. Rate limits are
    /// handled like every Backend API call (see [`BackendSettings`](super::BackendSettings)).
    ///
    /// ```no_run
    /// # async fn run(api: mcp_auth::clerk::BackendApi, auth: mcp_auth::AuthInfo) {
    /// use mcp_auth::clerk::BackendError;
    ///
    /// match api.users().get(auth.user_id()).await {
    ///     Ok(user) => println!("hello {}", user.full_name().unwrap_or_default()),
    ///     Err(BackendError::NotFound) => println!("no such user"),
    ///     Err(other) => println!("Clerk unavailable: {other}"),
    /// }
    /// # }
    /// ```
    pub async fn get(&self, user_id: &str) -> Result<ClerkUser, BackendError> {
        if user_id.is_empty() {
            return Err(BackendError::NotFound);
        }
        let json = self.api.get_json(&["users", user_id]).await?;
        user_from_answer(user_id, json)
    }
}

/// The user in the answer to `GET /v1/users/{user_id}`: a Clerk `User` object (`"object":
/// "user"`, Backend API spec `bapi/2026-05-12.yml`) for the user asked for, never another one
/// (a proxy or cache in front of the Backend API answering for the wrong path must not hand a
/// tool someone else's profile).
pub(crate) fn user_from_answer(user_id: &str, json: Value) -> Result<ClerkUser, BackendError> {
    if json.get("object").and_then(Value::as_str) != Some("user") {
        return Err(BackendError::InvalidResponse(
            "not a Clerk user object".into(),
        ));
    }
    let user: ClerkUser = serde_json::from_value(json)
        .map_err(|e| BackendError::InvalidResponse(format!("not a Clerk user: {e}")))?;
    if user.id != user_id {
        return Err(BackendError::InvalidResponse(
            "the answer is another user than the one asked for".into(),
        ));
    }
    Ok(user)
}

/// A Clerk user as the Backend API returns it. Timestamps are milliseconds since the Unix
/// epoch, as Clerk sends them. Fields not modelled here are kept in [`ClerkUser::extra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClerkUser {
    /// `user_…`: the `sub` of the user's tokens.
    pub id: String,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Username, when the instance uses them.
    #[serde(default)]
    pub username: Option<String>,
    /// Profile image URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Id of the primary entry of [`ClerkUser::email_addresses`].
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    /// Every email address of the user.
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    /// Public metadata (readable by the frontend, writable from the backend).
    #[serde(default)]
    pub public_metadata: Map<String, Value>,
    /// Creation time, ms since the epoch.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Last update, ms since the epoch.
    #[serde(default)]
    pub updated_at: Option<i64>,
    /// Last sign-in, ms since the epoch.
    #[serde(default)]
    pub last_sign_in_at: Option<i64>,
    /// Everything else Clerk sent (`phone_numbers`, `external_accounts`, `private_metadata`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ClerkUser {
    /// The primary email address, if any.
    #[must_use]
    pub fn primary_email(&self) -> Option<&str> {
        let primary = self.primary_email_address_id.as_deref()?;
        self.email_addresses
            .iter()
            .find(|e| e.id == primary)
            .map(|e| e.email_address.as_str())
    }

    /// "First Last", or whichever of the two is set.
    #[must_use]
    pub fn full_name(&self) -> Option<String> {
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!name.is_empty()).then_some(name)
    }
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmailAddress {
    /// `idn_…`.
    pub id: String,
    /// The address.
    pub email_address: String,
    /// Clerk's verification object (`status` is `verified` once confirmed).
    #[serde(default)]
    pub verification: Option<Value>,
    /// Everything else Clerk sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmailAddress {
    /// Whether Clerk reports the address as verified.
    #[must_use]
    pub fn is_verified(&self) -> bool {
        self.verification
            .as_ref()
            .and_then(|v| v.get("status"))
            .and_then(Value::as_str)
            == Some("verified")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer without `"object": "user"`, or for another user than the one asked for, used
    /// to be returned as the user (a disagreement with the `clerk_answers` fuzz target's
    /// reference).
    #[test]
    fn only_the_user_asked_for_is_accepted() {
        let ada = serde_json::json!({"object": "user", "id": "user_1", "email_addresses": []});
        assert_eq!(
            user_from_answer("user_1", ada.clone()).unwrap().id,
            "user_1"
        );
        assert!(matches!(
            user_from_answer("user_2", ada.clone()),
            Err(BackendError::InvalidResponse(_))
        ));
        let mut not_a_user = ada;
        not_a_user["object"] = "api_key".into();
        assert!(matches!(
            user_from_answer("user_1", not_a_user.clone()),
            Err(BackendError::InvalidResponse(_))
        ));
        not_a_user.as_object_mut().unwrap().remove("object");
        assert!(user_from_answer("user_1", not_a_user).is_err());
    }

    #[test]
    fn unknown_fields_are_kept_and_round_trip() {
        let json = serde_json::json!({
            "object": "user", "id": "user_1", "first_name": "Ada", "last_name": null,
            "primary_email_address_id": "idn_1",
            "email_addresses": [{"id": "idn_1", "email_address": "ada@example.com",
                                 "verification": {"status": "verified"}, "linked_to": []}],
            "public_metadata": {"plan": "pro"}, "created_at": 1, "updated_at": 2,
            "banned": false,
        });
        let user: ClerkUser = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(user.primary_email(), Some("ada@example.com"));
        assert_eq!(user.full_name().as_deref(), Some("Ada"));
        assert!(user.email_addresses[0].is_verified());
        assert_eq!(user.extra["banned"], false);
        assert_eq!(
            user.email_addresses[0].extra["linked_to"],
            serde_json::json!([])
        );
        let back = serde_json::to_value(&user).unwrap();
        assert_eq!(back["object"], "user");
        assert_eq!(back["public_metadata"]["plan"], "pro");
    }
}
