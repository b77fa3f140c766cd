//! Clerk's two keys: the secret key (kept redacted) and the publishable key, which carries the
//! Frontend API host.

use std::fmt;

use base64::Engine;
use url::Url;

use super::ClerkConfigError;

/// The Clerk secret key (`sk_test_…` / `sk_live_…`).
///
/// It authenticates Backend API calls and nothing else. `Debug` and `Display` never print it.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret key, refusing an empty one or one that cannot go into an HTTP header.
    pub fn new(key: impl Into<String>) -> Result<Self, ClerkConfigError> {
        let key = key.into();
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(ClerkConfigError::MissingSecretKey);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClerkConfigError::InvalidSecretKey);
        }
        Ok(Self(key))
    }

    /// `true` for a production instance's key (`sk_live_…`).
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.0.starts_with("sk_live_")
    }

    /// The key itself, for the `Authorization` header of Backend API calls.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What a publishable key says: the instance kind and its Frontend API URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKey {
    /// `true` for `pk_live_…` (production), `false` for `pk_test_…` (development).
    pub live: bool,
    /// `https://` + the host encoded in the key, e.g. `https://clerk.example.com` or
    /// `https://happy-otter-12.clerk.accounts.dev`. No trailing slash: this is the `iss` of the
    /// instance's tokens.
    pub frontend_api_url: String,
}

impl PublishableKey {
    /// Decodes `pk_test_…` / `pk_live_…`: base64 of the Frontend API host followed by `$`. The
    /// host must contain a dot, as Clerk's own parser requires.
    ///
    /// ```
    /// use mcp_auth::clerk::PublishableKey;
    ///
    /// // base64("clerk.example.com$")
    /// let pk = PublishableKey::parse("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k").unwrap();
    /// assert_eq!(pk.frontend_api_url, "https://clerk.example.com");
    /// assert!(pk.live);
    /// ```
    pub fn parse(key: &str) -> Result<Self, ClerkConfigError> {
        let key = key.trim();
        let (live, encoded) = if let Some(rest) = key.strip_prefix("pk_live_") {
            (true, rest)
        } else if let Some(rest) = key.strip_prefix("pk_test_") {
            (false, rest)
        } else {
            return Err(ClerkConfigError::InvalidPublishableKey(
                "must start with pk_test_ or pk_live_",
            ));
        };
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let decoded = engines
            .iter()
            .find_map(|e| e.decode(encoded).ok())
            .ok_or(ClerkConfigError::InvalidPublishableKey("not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| ClerkConfigError::InvalidPublishableKey("not UTF-8"))?;
        let host = decoded
            .strip_suffix('$')
            .ok_or(ClerkConfigError::InvalidPublishableKey(
                "decoded value does not end with `$`",
            ))?;
        // Clerk's own rule (clerk/javascript `packages/shared/src/keys.ts`,
        // `isValidDecodedPublishableKey`): the host contains a dot.
        let valid_host = host.contains('.')
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
        if !valid_host {
            return Err(ClerkConfigError::InvalidPublishableKey(
                "the encoded Frontend API host is not a host name",
            ));
        }
        let url = format!("https://{host}");
        Url::parse(&url).map_err(|_| {
            ClerkConfigError::InvalidPublishableKey("the encoded Frontend API host is not valid")
        })?;
        Ok(Self {
            live,
            frontend_api_url: url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn decodes_test_and_live_keys() {
        let pk = PublishableKey::parse(&format!(
            "pk_test_{}",
            encode("happy-otter-12.clerk.accounts.dev$")
        ))
        .unwrap();
        assert_eq!(
            pk.frontend_api_url,
            "https://happy-otter-12.clerk.accounts.dev"
        );
        assert!(!pk.live);
        let pk = PublishableKey::parse(&format!("pk_live_{}", encode("127.0.0.1:8788$"))).unwrap();
        assert_eq!(pk.frontend_api_url, "https://127.0.0.1:8788");
        assert!(pk.live);
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let enc = base64::engine::general_purpose::STANDARD_NO_PAD.encode("a.example$");
        let pk = PublishableKey::parse(&format!("pk_test_{enc}")).unwrap();
        assert_eq!(pk.frontend_api_url, "https://a.example");
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "sk_test_abc".to_owned(),
            "pk_test_!!!".to_owned(),
            format!("pk_test_{}", encode("no-dollar.example")),
            format!("pk_test_{}", encode("$")),
            format!("pk_test_{}", encode("evil.example/path?x$")),
            format!("pk_test_{}", encode("user@evil.example$")),
        ] {
            assert!(PublishableKey::parse(&bad).is_err(), "{bad}");
        }
    }

    /// Fuzzing finding (fuzz target `clerk_keys`): a key whose host has no dot was accepted,
    /// which Clerk's own `parsePublishableKey` refuses (clerk/javascript
    /// `packages/shared/src/keys.ts`, `isValidDecodedPublishableKey`, lines 88-99).
    #[test]
    fn keys_clerk_refuses_are_refused() {
        for bad in [
            format!("pk_test_{}", encode("localhost$")),
            format!("pk_live_{}", encode("localhost:8788$")),
            format!("pk_test_{}", encode("mcp-auth$")),
        ] {
            assert!(PublishableKey::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_key_is_redacted() {
        let key = SecretKey::new("sk_test_supersecret").unwrap();
        assert!(!format!("{key:?} {key}").contains("supersecret"));
        assert!(SecretKey::new("  ").is_err());
        assert!(SecretKey::new("sk_test_a b").is_err());
    }
}
