//! CSRF protection for the consent form: the form carries every field of the authorization
//! request plus the time it was rendered, and an HMAC-SHA256 over all of them with a key that is
//! random per run. A POST is accepted only with an untampered, unexpired set of fields, so a
//! cross-site page can neither forge a consent nor change what a rendered form approves.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The form fields the token covers, in signing order. `user_id` and `decision` are the user's
/// choices and deliberately not covered.
pub(crate) const SIGNED_FIELDS: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "resource",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "issued_at",
];

/// Why a submitted form was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CsrfError {
    Missing,
    Invalid,
    Expired,
}

/// 32 random bytes for a new key (generated once per state, then kept in it).
pub(crate) fn random_key_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    bytes
}

pub(crate) fn key_from_bytes(bytes: &[u8; 32]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, bytes)
}

/// The key's stored form (base64url).
pub(crate) fn encode_key(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form read back; `None` when malformed (a new key is made).
pub(crate) fn decode_key(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// Unambiguous encoding: a JSON array of the values (null when absent).
fn message(values: &[Option<&str>]) -> Vec<u8> {
    serde_json::to_vec(values).unwrap_or_default()
}

/// The token for these field values (in [`SIGNED_FIELDS`] order).
pub(crate) fn sign(key: &hmac::Key, values: &[Option<&str>]) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(key, &message(values)).as_ref())
}

/// Check a submitted token against the submitted values and the form's age.
pub(crate) fn verify(
    key: &hmac::Key,
    values: &[Option<&str>],
    token: Option<&str>,
    issued_at: Option<&str>,
    now: u64,
    lifetime_secs: u64,
) -> Result<(), CsrfError> {
    let token = token.ok_or(CsrfError::Missing)?;
    let tag = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| CsrfError::Invalid)?;
    hmac::verify(key, &message(values), &tag).map_err(|_| CsrfError::Invalid)?;
    let issued: u64 = issued_at
        .and_then(|s| s.parse().ok())
        .ok_or(CsrfError::Invalid)?;
    if now > issued.saturating_add(lifetime_secs) {
        return Err(CsrfError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_binds_every_value_and_expires() {
        let key = key_from_bytes(&random_key_bytes());
        let values = [Some("code"), Some("client"), None, Some("100")];
        let token = sign(&key, &values);
        assert_eq!(
            verify(&key, &values, Some(&token), Some("100"), 150, 60),
            Ok(())
        );
        let tampered = [Some("code"), Some("other"), None, Some("100")];
        assert_eq!(
            verify(&key, &tampered, Some(&token), Some("100"), 150, 60),
            Err(CsrfError::Invalid)
        );
        assert_eq!(
            verify(&key, &values, None, Some("100"), 150, 60),
            Err(CsrfError::Missing)
        );
        assert_eq!(
            verify(&key, &values, Some(&token), Some("100"), 161, 60),
            Err(CsrfError::Expired)
        );
        assert_eq!(
            verify(
                &key_from_bytes(&random_key_bytes()),
                &values,
                Some(&token),
                Some("100"),
                150,
                60
            ),
            Err(CsrfError::Invalid)
        );
    }
}
