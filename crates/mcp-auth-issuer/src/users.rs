//! The local users one can sign in as, and their Clerk Backend API `User` JSON.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;

/// A local user. Ids look like Clerk's (`user_…`) and stay stable across runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Clerk-style id, `user_…`; the `sub` of every token issued for this user.
    pub id: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Username, if the user has one.
    #[serde(default)]
    pub username: Option<String>,
    /// Primary email address (shown as verified).
    pub email: String,
    /// Profile picture URL. `None`: the issuer serves a generated avatar at `/avatars/{id}.svg`.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Clerk `public_metadata`; any JSON object.
    #[serde(default = "empty_object")]
    pub public_metadata: Value,
    /// Creation time in milliseconds since the epoch (Clerk's unit). Default: 2024-01-01.
    #[serde(default = "default_created_at")]
    pub created_at: u64,
}

fn empty_object() -> Value {
    json!({})
}

fn default_created_at() -> u64 {
    1_704_067_200_000
}

impl User {
    fn new(id: &str, first: &str, last: &str, username: &str, email: &str) -> Self {
        Self {
            id: id.into(),
            first_name: first.into(),
            last_name: last.into(),
            username: Some(username.into()),
            email: email.into(),
            image_url: None,
            public_metadata: empty_object(),
            created_at: default_created_at(),
        }
    }

    /// "First Last".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }

    /// Id of the primary email address object, derived from the user id so it is stable too.
    pub fn email_address_id(&self) -> String {
        format!("idn_{}", self.id.trim_start_matches("user_"))
    }

    /// The picture URL: `image_url` or the generated avatar under `base_url`.
    pub fn picture(&self, base_url: &str) -> String {
        self.image_url
            .clone()
            .unwrap_or_else(|| format!("{base_url}/avatars/{}.svg", self.id))
    }

    /// Initials for avatars.
    pub(crate) fn initials(&self) -> String {
        self.first_name
            .chars()
            .take(1)
            .chain(self.last_name.chars().take(1))
            .flat_map(char::to_uppercase)
            .collect()
    }

    /// Clerk's Backend API `User` object (`GET /v1/users/{id}`).
    pub(crate) fn clerk_json(&self, base_url: &str) -> Value {
        let email_id = self.email_address_id();
        json!({
            "object": "user",
            "id": self.id,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "image_url": self.picture(base_url),
            "has_image": self.image_url.is_some(),
            "primary_email_address_id": email_id,
            "primary_phone_number_id": null,
            "primary_web3_wallet_id": null,
            "primary_web3_wallet_id": null,
            "password_enabled": false,
            "two_factor_enabled": false,
            "totp_enabled": false,
            "backup_code_enabled": false,
            "email_addresses": [{
                "object": "email_address",
                "id": email_id,
                "email_address": self.email,
                "reserved": false,
                "verification": {
                    "object": "verification_admin",
                    "status": "verified",
                    "strategy": "admin",
                    "attempts": null,
                    "expire_at": null,
                },
                "linked_to": [],
                "created_at": self.created_at,
                "updated_at": self.created_at,
            }],
            "phone_numbers": [],
            "web3_wallets": [],
            "passkeys": [],
            "enterprise_accounts": [],
            "web3_wallets": [],
            "external_accounts": [],
            "saml_accounts": [],
            "organization_memberships": [],
            "password_last_updated_at": null,
            "public_metadata": self.public_metadata,
            "private_metadata": {},
            "unsafe_metadata": {},
            "external_id": null,
            "last_sign_in_at": null,
            "banned": false,
            "locked": false,
            "lockout_expires_in_seconds": null,
            "verification_attempts_remaining": null,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "last_active_at": null,
            "mfa_enabled_at": null,
            "mfa_disabled_at": null,
            "create_organization_enabled": true,
            "create_organizations_limit": null,
            "delete_self_enabled": true,
            "legal_accepted_at": null,
            "locale": null,
        })
    }
}

/// The built-in users: Alice, Bob and Carol, with ids that never change between runs.
pub fn default_users() -> Vec<User> {
    vec![
        User::new(
            "user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6",
            "Alice",
            "Anderson",
            "alice",
            "alice@example.com",
        ),
        User::new(
            "user_2bobHs5Jd8Fg1Qw3Ek7Tz9Xc4Nv",
            "Bob",
            "Brown",
            "bob",
            "bob@example.com",
        ),
        User::new(
            "user_2carolMp4Lk6Ub2Yr8Oi1Wq5Ez3",
            "Carol",
            "Chen",
            "carol",
            "carol@example.com",
        ),
    ]
}

/// Read users from a JSON file: an array of [`User`] objects (`id`, `first_name`, `last_name`,
/// `email` required; `username`, `image_url`, `public_metadata`, `created_at` optional).
pub fn load_users(path: &Path) -> Result<Vec<User>, Error> {
    let err = |message: String| Error::Users {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let users: Vec<User> = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    validate_users(&users).map_err(err)?;
    Ok(users)
}

/// At least one user, ids `user_…` and unique.
pub(crate) fn validate_users(users: &[User]) -> Result<(), String> {
    if users.is_empty() {
        return Err("at least one user is required".into());
    }
    let mut seen = std::collections::HashSet::new();
    for user in users {
        if !user.id.starts_with("user_") || user.id.len() <= "user_".len() {
            return Err(format!("user id `{}` must look like `user_…`", user.id));
        }
        if !seen.insert(user.id.as_str()) {
            return Err(format!("duplicate user id `{}`", user.id));
        }
        if !user.email.contains('@') {
            return Err(format!("user `{}` has no valid email", user.id));
        }
    }
    Ok(())
}

/// A small SVG avatar with the user's initials, so nothing is fetched from outside.
pub(crate) fn avatar_svg(user: &User) -> String {
    let hue = user
        .id
        .bytes()
        .fold(0u32, |h, b| (h * 31 + u32::from(b)) % 360);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><rect width="64" height="64" rx="32" fill="hsl({hue},55%,45%)"/><text x="32" y="40" font-family="sans-serif" font-size="24" fill="#fff" text-anchor="middle">{}</text></svg>"##,
        crate::consent::escape(&user.initials())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_stable() {
        let users = default_users();
        assert!(users.len() >= 3);
        validate_users(&users).unwrap();
        assert_eq!(users[0].id, "user_2aliceQx7Vn3Kp9Lm2Rt8Wz4Yb6");
    }

    #[test]
    fn duplicate_and_malformed_ids_are_refused() {
        let mut users = default_users();
        users[1].id = users[0].id.clone();
        assert!(validate_users(&users).unwrap_err().contains("duplicate"));
        users[1].id = "bob".into();
        assert!(validate_users(&users).unwrap_err().contains("user_"));
    }
}
