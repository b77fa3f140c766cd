//! Clerk machine-to-machine tokens as JWTs, the JWT categories (`cat` header), and the receiving
//! machine whose secret key decides which M2M tokens this service accepts.
//!
//! Every rule here is Clerk's own, read in `@clerk/backend` 3.25.0 (the TypeScript sources
//! shipped in its `dist/*.mjs.map`); each function names the file and line it follows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::{ClerkConfigError, SecretKey};
use crate::{
    AuthInfo, Jwks, TokenKind, VerifyError,
    auth_info::split_scopes,
    verify::{DEFAULT_ALGORITHMS, jwt},
};

/// `cat` of a session token (`tokens/jwtCategories.ts:5`).
pub(crate) const CAT_SESSION: &str = "cl_B7d4PD111AAA";
/// `cat` of a JWT-template token (`tokens/jwtCategories.ts:6`).
#[cfg(test)]
pub(crate) const CAT_TEMPLATE: &str = "cl_B7d4PD222AAA";
/// `cat` of an M2M JWT (`tokens/jwtCategories.ts:7`).
pub(crate) const CAT_M2M: &str = "cl_B7d4PD333AAA";
/// `cat` stamped on every class by instances with `use_ignore_jwt_cat`; it says nothing about
/// the class (`tokens/jwtCategories.ts:8-10`).
pub(crate) const CAT_IGNORE: &str = "cl_I7d4PD111III";

/// The subject prefix that makes a JWT an M2M token (`tokens/machine.ts:6`, `M2M_SUBJECT_PREFIX`).
pub(crate) const MACHINE_PREFIX: &str = "mch_";

/// The service's own Clerk machine: its id and its machine secret key (Clerk Dashboard →
/// Machines). With it, only M2M tokens *granted to this machine* are accepted.
#[derive(Clone)]
pub(crate) struct ReceivingMachine {
    pub(crate) id: String,
    pub(crate) secret_key: SecretKey,
}

impl std::fmt::Debug for ReceivingMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivingMachine")
            .field("id", &self.id)
            .field("secret_key", &self.secret_key)
            .finish()
    }
}

impl ReceivingMachine {
    pub(crate) fn new(id: &str, secret_key: &str) -> Result<Self, ClerkConfigError> {
        let id = id.trim();
        if !id.starts_with(MACHINE_PREFIX)
            || id.len() == MACHINE_PREFIX.len()
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ClerkConfigError::InvalidMachineId);
        }
        let secret_key =
            SecretKey::new(secret_key).map_err(|_| ClerkConfigError::InvalidMachineSecretKey)?;
        Ok(Self {
            id: id.to_owned(),
            secret_key,
        })
    }
}

/// A JWT's header and payload, decoded without any check, to decide which verifier it goes to.
pub(crate) struct Peek {
    pub(crate) header: Map<String, Value>,
    pub(crate) payload: Map<String, Value>,
}

impl Peek {
    /// `None` when `token` is not three base64url segments with JSON objects in the first two.
    pub(crate) fn of(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || s.is_empty() {
            return None;
        }
        let decode = |segment: &str| -> Option<Map<String, Value>> {
            let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
            match serde_json::from_slice(&bytes).ok()? {
                Value::Object(map) => Some(map),
                _ => None,
            }
        };
        Some(Self {
            header: decode(h)?,
            payload: decode(p)?,
        })
    }

    /// An M2M JWT: `sub` starts with `mch_`, whatever `typ` says. Clerk looks at this *before*
    /// `typ` (`tokens/verify.ts:291-297`, `tokens/machine.ts:224-234`).
    pub(crate) fn is_m2m(&self) -> bool {
        self.payload
            .get("sub")
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(MACHINE_PREFIX))
    }

    /// `typ` is `at+jwt` or `application/at+jwt` (RFC 9068; `tokens/machine.ts:191`). Clerk
    /// compares exactly; so do we.
    pub(crate) fn is_oauth(&self) -> bool {
        matches!(
            self.header.get("typ").and_then(Value::as_str),
            Some("at+jwt" | "application/at+jwt")
        )
    }

    pub(crate) fn cat(&self) -> Option<&str> {
        self.header.get("cat").and_then(Value::as_str)
    }

    /// A category other than session (absent and the "ignore" value say nothing): Clerk
    /// refuses such a JWT as a session token (`tokens/jwtCategories.ts:17-19`, used at
    /// `tokens/request.ts:428,868`).
    pub(crate) fn has_non_session_cat(&self) -> bool {
        self.cat()
            .is_some_and(|c| c != CAT_SESSION && c != CAT_IGNORE)
    }
}

/// Verifies M2M JWTs locally against the instance's keys.
#[derive(Debug)]
pub(crate) struct M2mJwtVerifier {
    pub(crate) jwks: Jwks,
    pub(crate) issuer: String,
    pub(crate) leeway: Duration,
    pub(crate) machine: Option<ReceivingMachine>,
}

impl M2mJwtVerifier {
    /// Clerk's checks (`jwt/verifyMachineJwt.ts:104-137`): a `cat` other than the M2M one is
    /// refused (absent is accepted, as Clerk does during its rollout); then the signature
    /// against the instance's keys, `exp`/`nbf`/`iat` with leeway, `sub`. In addition, stricter
    /// than Clerk's SDK: `iss` must be the Frontend API URL (Clerk's M2M JWTs carry it:
    /// `packages/backend/src/fixtures/index.ts:48-58` in `clerk/javascript`), and `exp` is
    /// required.
    ///
    /// The machines a token is granted to are its `scopes` claim (space-separated machine ids),
    /// else its `aud` (`api/resources/M2MToken.ts:88`). With a receiving machine configured,
    /// this machine must be one of them: the rule Clerk's Backend API applies to opaque tokens
    /// verified with a machine secret key (Backend API spec `bapi/2026-05-12.yml`,
    /// `POST /m2m_tokens/verify`: "the token must be granted access to the Machine associated
    /// with the Machine Secret Key"), applied locally.
    pub(crate) async fn verify(&self, token: &str, peek: &Peek) -> Result<AuthInfo, VerifyError> {
        if peek.cat().is_some_and(|c| c != CAT_M2M) {
            return Err(VerifyError::invalid_token("invalid M2M JWT category"));
        }
        let header = jwt::checked_header(token, DEFAULT_ALGORITHMS)?;
        let key = jwt::key_for(&self.jwks, &header, token).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        // `aud` lists machines, not this resource: the grant check below reads it.
        validation.validate_aud = false;
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), &validation)
                .map_err(|e| VerifyError::invalid_token(format!("M2M JWT refused: {e}")))?
                .claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_u64()
                .ok_or_else(|| VerifyError::invalid_token("malformed iat claim"))?;
            if iat > now + self.leeway.as_secs() {
                return Err(VerifyError::invalid_token("token issued in the future"));
            }
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| s.starts_with(MACHINE_PREFIX))
            .ok_or_else(|| VerifyError::invalid_token("M2M JWT without a machine subject"))?
            .to_owned();
        let granted = granted_machines(&claims);
        if let Some(machine) = &self.machine
            && !granted.contains(&machine.id)
        {
            return Err(VerifyError::invalid_token(
                "M2M token not granted to this machine",
            ));
        }
        let mut builder = AuthInfo::builder(subject, TokenKind::MachineToken)
            .subject_is_machine()
            .scopes(granted)
            .issuer(self.issuer.clone());
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            builder = builder.expires_at_unix(exp);
        }
        Ok(builder.claims(claims).build())
    }
}

/// `scopes` (space-separated) else `aud` (array or string), as `M2MToken.fromJwtPayload` reads
/// them (`api/resources/M2MToken.ts:88`).
pub(crate) fn granted_machines(claims: &Map<String, Value>) -> Vec<String> {
    if let Some(Value::String(s)) = claims.get("scopes") {
        return split_scopes(s);
    }
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(header: Value, payload: Value) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn m2m_is_recognised_by_subject_before_typ() {
        let t = token(
            json!({"alg":"RS256","typ":"at+jwt"}),
            json!({"sub":"mch_1","client_id":"c"}),
        );
        let peek = Peek::of(&t).unwrap();
        assert!(peek.is_m2m());
        assert!(peek.is_oauth());
        let t = token(json!({"alg":"RS256","typ":"JWT"}), json!({"sub":"user_1"}));
        let peek = Peek::of(&t).unwrap();
        assert!(!peek.is_m2m());
        assert!(!peek.is_oauth());
        assert!(Peek::of("a.b").is_none());
        assert!(Peek::of("a.b.c").is_none());
    }

    #[test]
    fn categories() {
        for (cat, non_session) in [
            (Some(CAT_SESSION), false),
            (Some(CAT_IGNORE), false),
            (None, false),
            (Some(CAT_TEMPLATE), true),
            (Some(CAT_M2M), true),
        ] {
            let mut header = json!({"alg":"RS256"});
            if let Some(c) = cat {
                header["cat"] = json!(c);
            }
            let peek = Peek::of(&token(header, json!({"sub":"user_1"}))).unwrap();
            assert_eq!(peek.has_non_session_cat(), non_session, "{cat:?}");
        }
    }

    #[test]
    fn granted_machines_prefer_scopes_then_aud() {
        let claims = json!({"scopes":"mch_a mch_b","aud":["mch_c"]});
        assert_eq!(
            granted_machines(claims.as_object().unwrap()),
            ["mch_a", "mch_b"]
        );
        let claims = json!({"aud":["mch_c"]});
        assert_eq!(granted_machines(claims.as_object().unwrap()), ["mch_c"]);
        let claims = json!({});
        assert!(granted_machines(claims.as_object().unwrap()).is_empty());
    }

    #[test]
    fn receiving_machine_ids_are_checked() {
        assert!(ReceivingMachine::new("mch_2abc", "ak_x").is_ok());
        assert_eq!(
            ReceivingMachine::new("user_2abc", "ak_x").unwrap_err(),
            ClerkConfigError::InvalidMachineId
        );
        assert_eq!(
            ReceivingMachine::new("mch_2abc", " ").unwrap_err(),
            ClerkConfigError::InvalidMachineSecretKey
        );
        let m = ReceivingMachine::new("mch_2abc", "ak_secret").unwrap();
        assert!(!format!("{m:?}").contains("ak_secret"));
    }
}
