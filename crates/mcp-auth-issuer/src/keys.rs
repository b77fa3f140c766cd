//! RS256 signing keys: generated at run time with aws-lc-rs, published as a JWKS, rotated on demand
//! with a grace period, optionally persisted to a key file so tokens survive a restart.

use std::path::{Path, PathBuf};
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

/// One RSA-2048 key. The private half never leaves this struct except into the key file.
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

/// The on-disk form of the key ring.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    /// Secret key generated on the first run, reused so resource servers keep working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// Base64 (standard) PKCS#8 DER.
    private_key_pkcs8: String,
    created_at: u64,
    #[serde(default)]
    retired_at: Option<u64>,
}

/// The active key plus retired keys still inside their grace period.
#[derive(Debug)]
pub(crate) struct KeyRing {
    active: SigningKey,
    retired: Vec<SigningKey>,
    grace_secs: u64,
    file: Option<PathBuf>,
    /// Secret key remembered in the key file (only written when it was generated).
    stored_secret: Option<String>,
}

impl KeyRing {
    /// Load the ring from `file` when it exists, otherwise generate a key (and save it if a file
    /// was named). CPU-bound (RSA key generation): call from a blocking context.
    pub(crate) fn load_or_generate(
        file: Option<&Path>,
        grace: Duration,
        now: u64,
    ) -> Result<Self, Error> {
        let grace_secs = grace.as_secs();
        if let Some(path) = file
            && path.exists()
        {
            return Self::load(path, grace_secs, now);
        }
        let ring = Self {
            active: SigningKey::generate(now)?,
            retired: Vec::new(),
            grace_secs,
            file: file.map(Path::to_path_buf),
            stored_secret: None,
        };
        Ok(ring)
    }

    fn load(path: &Path, grace_secs: u64, now: u64) -> Result<Self, Error> {
        let err = |message: String| Error::KeyFile {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let parsed: KeyFile = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut active = None;
        let mut retired = Vec::new();
        for stored in parsed.keys {
            let der = STANDARD
                .decode(stored.private_key_pkcs8.as_bytes())
                .map_err(|e| err(format!("key {}: bad base64: {e}", stored.kid)))?;
            let key = SigningKey::from_pkcs8(stored.kid, der, stored.created_at, stored.retired_at)
                .map_err(|e| err(e.to_string()))?;
            match key.retired_at {
                None if active.is_none() => active = Some(key),
                None => return Err(err("more than one active key".into())),
                Some(at) if at.saturating_add(grace_secs) > now => retired.push(key),
                Some(_) => {}
            }
        }
        let active = active.ok_or_else(|| err("no active key".into()))?;
        Ok(Self {
            active,
            retired,
            grace_secs,
            file: Some(path.to_path_buf()),
            stored_secret: parsed.secret_key,
        })
    }

    /// The secret key remembered in the key file, if any.
    pub(crate) fn stored_secret(&self) -> Option<&str> {
        self.stored_secret.as_deref()
    }

    /// Remember a generated secret key so the next run reuses it.
    pub(crate) fn remember_secret(&mut self, secret: &str) {
        self.stored_secret = Some(secret.to_owned());
    }

    /// Write the ring to its file (mode 0600 on Unix). No-op without a file.
    pub(crate) fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let err = |message: String| Error::KeyFile {
            path: path.clone(),
            message,
        };
        let keys = std::iter::once(&self.active)
            .chain(&self.retired)
            .map(|k| StoredKey {
                kid: k.kid.clone(),
                private_key_pkcs8: STANDARD.encode(&k.pkcs8),
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect();
        let file = KeyFile {
            secret_key: self.stored_secret.clone(),
            keys,
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        write_private(&tmp, text.as_bytes()).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Replace the active key; the old one stays published for the grace period. Returns the new
    /// `kid`. CPU-bound: call from a blocking context.
    pub(crate) fn rotate(&mut self, now: u64) -> Result<String, Error> {
        let fresh = SigningKey::generate(now)?;
        let mut old = std::mem::replace(&mut self.active, fresh);
        old.retired_at = Some(now);
        self.retired.push(old);
        self.prune(now);
        self.save()?;
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
        let mut ring = KeyRing::load_or_generate(None, Duration::from_secs(100), 1_000).unwrap();
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
    fn key_file_round_trips() {
        let dir =
            std::env::temp_dir().join(format!("mcp-auth-issuer-keys-{}", ids::random_alnum(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        let mut ring = KeyRing::load_or_generate(Some(&path), Duration::from_secs(100), 5).unwrap();
        ring.remember_secret("sk_test_abc");
        ring.save().unwrap();
        let token = ring.sign("JWT", &json!({"sub": "x"})).unwrap();
        let loaded = KeyRing::load_or_generate(Some(&path), Duration::from_secs(100), 6).unwrap();
        assert_eq!(loaded.active_kid(), ring.active_kid());
        assert_eq!(loaded.stored_secret(), Some("sk_test_abc"));
        assert!(loaded.verify(&token, 6).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
