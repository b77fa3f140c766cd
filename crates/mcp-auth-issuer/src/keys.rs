//! RS256 signing keys: generated at run time with aws-lc-rs, published as a JWKS, rotated on demand
//! with a grace period. They are kept in the state (see `store`), and mirrored to a key file when
//! one is configured.

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::ids;
use crate::store::StoredKey;

/// One RSA-2048 key. The private half never leaves this struct except into the state (or the
/// key file).
pub(crate) struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
    created_at: u64,
    /// When a rotation replaced this key (seconds); it stays published for the grace period.
    retired_at: Option<u64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

fn crypto(what: &str) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> Error + '_ {
    move |_| Error::Crypto(format!("{what} failed"))
}

impl SigningKey {
    fn generate(now: u64) -> Result<Self, Error> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(crypto("RSA key generation"))?;
        let der = pair.as_der().map_err(crypto("PKCS#8 encoding"))?;
        Self::from_pkcs8(ids::id("ins_"), der.as_ref().to_vec(), now, None)
    }

    fn from_pkcs8(
        kid: String,
        pkcs8: Vec<u8>,
        created_at: u64,
        retired_at: Option<u64>,
    ) -> Result<Self, Error> {
        let pair = KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| Error::Crypto(format!("not an RSA PKCS#8 private key: {e}")))?;
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        // jsonwebtoken's aws-lc backend wants PKCS#1 DER; its PEM reader unwraps PKCS#8 for us.
        let pem = pkcs8_pem(&pkcs8);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| Error::Crypto(format!("cannot load signing key: {e}")))?;
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        Ok(Self {
            kid,
            pkcs8,
            encoding,
            decoding,
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(&e),
            created_at,
            retired_at,
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": self.n,
            "e": self.e,
        })
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The on-disk form of the key ring in a `--key-file`.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    /// Secret key generated on the first run, reused so resource servers keep working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyFileEntry {
    kid: String,
    /// Base64 (standard) PKCS#8 DER.
    private_key_pkcs8: String,
    created_at: u64,
    #[serde(default)]
    retired_at: Option<u64>,
}

/// A key file's contents: the keys and the secret key it remembers.
pub(crate) type KeyFileContents = (Vec<StoredKey>, Option<String>);

/// Read a key file. `Ok(None)` when it does not exist.
pub(crate) fn read_key_file(path: &Path) -> Result<Option<KeyFileContents>, Error> {
    let err = |message: String| Error::KeyFile {
        path: path.to_path_buf(),
        message,
    };
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let parsed: KeyFile = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let mut keys = Vec::with_capacity(parsed.keys.len());
    for entry in parsed.keys {
        let pkcs8 = STANDARD
            .decode(entry.private_key_pkcs8.as_bytes())
            .map_err(|e| err(format!("key {}: bad base64: {e}", entry.kid)))?;
        keys.push(StoredKey {
            kid: entry.kid,
            pkcs8,
            created_at: entry.created_at,
            retired_at: entry.retired_at,
        });
    }
    Ok(Some((keys, parsed.secret_key)))
}

/// Write a key file (mode 0600 on Unix), atomically (temporary file, then rename).
pub(crate) fn write_key_file(
    path: &Path,
    keys: &[StoredKey],
    secret_key: Option<&str>,
) -> Result<(), Error> {
    let err = |message: String| Error::KeyFile {
        path: path.to_path_buf(),
        message,
    };
    let file = KeyFile {
        secret_key: secret_key.map(str::to_owned),
        keys: keys
            .iter()
            .map(|k| KeyFileEntry {
                kid: k.kid.clone(),
                private_key_pkcs8: STANDARD.encode(&k.pkcs8),
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    write_private(&tmp, text.as_bytes()).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

/// The active key plus retired keys still inside their grace period.
#[derive(Debug)]
pub(crate) struct KeyRing {
    active: SigningKey,
    retired: Vec<SigningKey>,
    grace_secs: u64,
}

impl KeyRing {
    /// A ring with one fresh key. CPU-bound (RSA key generation): call from a blocking context.
    pub(crate) fn generate(grace: Duration, now: u64) -> Result<Self, Error> {
        Ok(Self {
            active: SigningKey::generate(now)?,
            retired: Vec::new(),
            grace_secs: grace.as_secs(),
        })
    }

    /// The ring from stored keys (retired keys past their grace period are dropped); `Ok(None)`
    /// when nothing is stored. The error says what is wrong with the stored keys.
    pub(crate) fn from_stored(
        stored: Vec<StoredKey>,
        grace: Duration,
        now: u64,
    ) -> Result<Option<Self>, String> {
        if stored.is_empty() {
            return Ok(None);
        }
        let grace_secs = grace.as_secs();
        let mut active = None;
        let mut retired = Vec::new();
        for entry in stored {
            let key =
                SigningKey::from_pkcs8(entry.kid, entry.pkcs8, entry.created_at, entry.retired_at)
                    .map_err(|e| e.to_string())?;
            match key.retired_at {
                None if active.is_none() => active = Some(key),
                None => return Err("more than one active key".into()),
                Some(at) if at.saturating_add(grace_secs) > now => retired.push(key),
                Some(_) => {}
            }
        }
        let active = active.ok_or_else(|| "no active key".to_owned())?;
        Ok(Some(Self {
            active,
            retired,
            grace_secs,
        }))
    }

    /// The keys to store (private halves included).
    pub(crate) fn stored(&self) -> Vec<StoredKey> {
        std::iter::once(&self.active)
            .chain(&self.retired)
            .map(|k| StoredKey {
                kid: k.kid.clone(),
                pkcs8: k.pkcs8.clone(),
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect()
    }

    /// Replace the active key; the old one stays published for the grace period. Returns the new
    /// `kid`. CPU-bound: call from a blocking context.
    pub(crate) fn rotate(&mut self, now: u64) -> Result<String, Error> {
        let fresh = SigningKey::generate(now)?;
        let mut old = std::mem::replace(&mut self.active, fresh);
        old.retired_at = Some(now);
        self.retired.push(old);
        self.prune(now);
        Ok(self.active.kid.clone())
    }

    fn prune(&mut self, now: u64) {
        let grace = self.grace_secs;
        self.retired.retain(|k| {
            k.retired_at
                .is_some_and(|at| at.saturating_add(grace) > now)
        });
    }

    fn published(&self, now: u64) -> impl Iterator<Item = &SigningKey> {
        let grace = self.grace_secs;
        std::iter::once(&self.active).chain(self.retired.iter().filter(move |k| {
            k.retired_at
                .is_some_and(|at| at.saturating_add(grace) > now)
        }))
    }

    /// The public JWKS: the active key first, then retired keys still in their grace period.
    pub(crate) fn jwks(&self, now: u64) -> Value {
        let keys: Vec<Value> = self.published(now).map(SigningKey::jwk).collect();
        json!({ "keys": keys })
    }

    /// The active key's id.
    #[cfg(test)]
    pub(crate) fn active_kid(&self) -> &str {
        &self.active.kid
    }

    /// Sign `claims` with the active key (RS256) and the given `typ` header.
    pub(crate) fn sign(&self, typ: &str, claims: &Value) -> Result<String, Error> {
        self.sign_with_category(typ, None, claims)
    }

    /// Like [`sign`](Self::sign), with Clerk's `cat` header (the JWT category that tells
    /// session, JWT-template and M2M tokens apart) when given.
    pub(crate) fn sign_with_category(
        &self,
        typ: &str,
        cat: Option<&str>,
        claims: &Value,
    ) -> Result<String, Error> {
        let mut header = Header::new(Algorithm::RS256);
        if let Some(cat) = cat {
            header.extras.insert("cat", cat);
        }
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.active.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.active.encoding)
            .map_err(|e| Error::Crypto(format!("JWT signing failed: {e}")))
    }

    /// Check the signature of a JWT signed by one of the published keys and return its header
    /// `typ` and claims. Time-based claims are left to the caller, which owns the clock.
    pub(crate) fn verify(&self, token: &str, now: u64) -> Option<(Option<String>, Value)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let kid = header.kid?;
        let key = self.published(now).find(|k| k.kid == kid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation).ok()?;
        Some((header.typ, data.claims))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rotates_with_grace() {
        let mut ring = KeyRing::generate(Duration::from_secs(100), 1_000).unwrap();
        let token = ring.sign("at+jwt", &json!({"sub": "user_1"})).unwrap();
        let (typ, claims) = ring.verify(&token, 1_000).unwrap();
        assert_eq!(typ.as_deref(), Some("at+jwt"));
        assert_eq!(claims["sub"], "user_1");

        let old_kid = ring.active_kid().to_owned();
        let new_kid = ring.rotate(1_010).unwrap();
        assert_ne!(old_kid, new_kid);
        assert_eq!(ring.jwks(1_010)["keys"].as_array().unwrap().len(), 2);
        assert!(
            ring.verify(&token, 1_050).is_some(),
            "old key verifies in grace"
        );
        assert_eq!(ring.jwks(1_110)["keys"].as_array().unwrap().len(), 1);
        assert!(
            ring.verify(&token, 1_110).is_none(),
            "old key gone after grace"
        );
    }

    #[test]
    fn stored_keys_and_key_file_round_trip() {
        let grace = Duration::from_secs(100);
        let mut ring = KeyRing::generate(grace, 5).unwrap();
        ring.rotate(6).unwrap();
        let token = ring.sign("JWT", &json!({"sub": "x"})).unwrap();
        let reloaded = KeyRing::from_stored(ring.stored(), grace, 7)
            .unwrap()
            .unwrap();
        assert_eq!(reloaded.active_kid(), ring.active_kid());
        assert!(reloaded.verify(&token, 7).is_some());
        assert!(
            KeyRing::from_stored(Vec::new(), grace, 7)
                .unwrap()
                .is_none()
        );

        let dir =
            std::env::temp_dir().join(format!("mcp-auth-issuer-keys-{}", ids::random_alnum(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        assert!(read_key_file(&path).unwrap().is_none());
        write_key_file(&path, &ring.stored(), Some("sk_test_abc")).unwrap();
        let (keys, secret) = read_key_file(&path).unwrap().unwrap();
        assert_eq!(secret.as_deref(), Some("sk_test_abc"));
        let loaded = KeyRing::from_stored(keys, grace, 7).unwrap().unwrap();
        assert_eq!(loaded.active_kid(), ring.active_kid());
        assert!(loaded.verify(&token, 7).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
