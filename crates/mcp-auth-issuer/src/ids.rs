//! Random identifiers and secrets in Clerk's `prefix_base62` style, and hashing for storage keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// `len` random alphanumeric characters (about 5.95 bits each).
pub(crate) fn random_alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `prefix` followed by 32 random alphanumeric characters (about 190 bits).
pub(crate) fn secret(prefix: &str) -> String {
    format!("{prefix}{}", random_alnum(32))
}

/// `prefix` followed by 27 random alphanumeric characters, the length of Clerk's ids.
pub(crate) fn id(prefix: &str) -> String {
    format!("{prefix}{}", random_alnum(27))
}

/// `prefix` followed by 32 random lowercase hex digits: the shape of Clerk's token ids
/// (`^oat_[0-9A-Fa-f]{32}$`, `^ak_…`, `^mt_…` in Clerk's Backend API spec `bapi/2026-05-12.yml`;
/// its examples are lowercase, e.g. `mt_f7f0ba8c3b4843ce7d85fcdd5e71853e`).
pub(crate) fn hex_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// 32 random bytes, base64url without padding (authorization codes, refresh tokens).
pub(crate) fn random_urlsafe() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256: secrets are stored by hash so a dump of the store reveals no usable token.
pub(crate) fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Compare two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_and_distinct() {
        let a = secret("oat_");
        let b = secret("oat_");
        assert!(a.starts_with("oat_") && a.len() == 36);
        assert_ne!(a, b);
    }

    #[test]
    fn hex_ids_are_clerk_shaped() {
        let id = hex_id("mt_");
        assert_eq!(id.len(), 3 + 32);
        assert!(
            id[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
