//! The Clerk preset's reading of Backend API answers (`mcp_auth::__fuzz::clerk_verify_answer`,
//! `clerk_user_answer`): any JSON never panics, and never yields an identity from an answer
//! that Clerk's schema would refuse, nor an identity other than the one the answer describes.
//!
//! Input: one selector byte, then the answer's body. The selector's low two bits pick the
//! endpoint (`0` `POST /oauth_applications/access_tokens/verify`, `1` `POST /api_keys/verify`,
//! `2` `POST /m2m_tokens/verify`, `3` `GET /v1/users/{id}`); bit 2 relaxes the OAuth audience
//! policy (`allow_missing_audience`).
//!
//! The reference below is written from Clerk's schema, as summarised with its sources in the
//! project's Clerk reference (Backend API spec `clerk/openapi-specs` `bapi/2026-05-12.yml`,
//! `@clerk/backend` 3.25.0 `api/resources/JSON.ts` and `tokens/authObjects.ts`):
//!
//! - every 200 answer is a JSON object whose `object` names its type:
//!   `clerk_idp_oauth_access_token`, `api_key`, `machine_to_machine_token`, `user`;
//! - `id` is a string with the type's prefix (`oat_`, `ak_`, `mt_`); the spec's pattern also
//!   fixes 32 hex digits after it, which is not required here (the id does not enter the
//!   identity, and a length change on Clerk's side must not refuse every token);
//! - `subject` is a string: a user for OAuth tokens, `user_…`/`org_…`/`mch_…` for API keys,
//!   `mch_…` for M2M tokens; `scopes` is an array of strings; `revoked` and `expired` are
//!   booleans, and a token with either set is not valid (Clerk's docs; the SDK never reads
//!   them); `expiration` is null or an integer timestamp in milliseconds (values below 10¹¹
//!   are read as seconds: the spec's examples look like seconds, and no live token can carry a
//!   millisecond time before 1973);
//! - OAuth answers carry `client_id` (a string) and, when the token was obtained for a
//!   resource, `aud` (an array of strings), checked with the same policy as a JWT's `aud`;
//! - the user of `GET /v1/users/{id}` is the one asked for.
//!
//! Fields that do not enter the identity (`created_at`, `name`, `claims`, …) are not checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth::{__fuzz, TokenKind};
use serde_json::Value;

const ISSUER: &str = "https://clerk.fuzz.example";
const RESOURCE: &str = "https://mcp.fuzz.example/mcp";
/// A fixed "now" (Unix seconds, 2027-01-15), so that expiry is reproducible.
const NOW: u64 = 1_800_000_000;
const USER_ID: &str = "user_2fuzz";

/// The identity an answer describes, when Clerk's schema accepts it as a valid token.
#[derive(Debug)]
struct Expected {
    subject: String,
    user_id: String,
    organization_id: Option<String>,
    machine_id: Option<String>,
    scopes: Vec<String>,
    client_id: Option<String>,
    audience: Vec<String>,
    expires_at: Option<u64>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn schema_accepts(kind: TokenKind, v: &Value, allow_missing_audience: bool) -> Option<Expected> {
    let m = v.as_object()?;
    let (object, id_prefix, subject_prefixes): (&str, &str, &[&str]) = match kind {
        TokenKind::OAuthAccessToken => ("clerk_idp_oauth_access_token", "oat_", &[""]),
        TokenKind::ApiKey => ("api_key", "ak_", &["user_", "org_", "mch_"]),
        TokenKind::MachineToken => ("machine_to_machine_token", "mt_", &["mch_"]),
        _ => return None,
    };
    if m.get("object")?.as_str()? != object || !m.get("id")?.as_str()?.starts_with(id_prefix) {
        return None;
    }
    let subject = m.get("subject")?.as_str()?;
    if subject.is_empty() || !subject_prefixes.iter().any(|p| subject.starts_with(p)) {
        return None;
    }
    if m.get("revoked")?.as_bool()? || m.get("expired")?.as_bool()? {
        return None;
    }
    let expires_at = match m.get("expiration") {
        None | Some(Value::Null) => None,
        Some(n) => {
            let n = n.as_u64()?;
            let secs = if n > 100_000_000_000 { n / 1000 } else { n };
            if secs <= NOW {
                return None;
            }
            Some(secs)
        }
    };
    let scopes = strings(m.get("scopes")?)?;
    let (mut client_id, mut audience) = (None, Vec::new());
    if kind == TokenKind::OAuthAccessToken {
        client_id = Some(m.get("client_id")?.as_str()?.to_owned());
        audience = match m.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(a) => strings(a)?,
        };
        let fits = if audience.is_empty() {
            allow_missing_audience
        } else {
            audience.iter().any(|a| a == RESOURCE)
        };
        if !fits {
            return None;
        }
    }
    let on = |p: &str| subject.starts_with(p).then(|| subject.to_owned());
    let (user_id, organization_id, machine_id) = match kind {
        TokenKind::OAuthAccessToken => (subject.to_owned(), None, None),
        TokenKind::MachineToken => (String::new(), None, Some(subject.to_owned())),
        _ => (on("user_").unwrap_or_default(), on("org_"), on("mch_")),
    };
    Some(Expected {
        subject: subject.to_owned(),
        user_id,
        organization_id,
        machine_id,
        scopes,
        client_id,
        audience,
        expires_at,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let allow_missing = selector & 4 != 0;
    let kind = match selector & 3 {
        0 => TokenKind::OAuthAccessToken,
        1 => TokenKind::ApiKey,
        2 => TokenKind::MachineToken,
        _ => {
            let Ok(user) = __fuzz::clerk_user_answer(USER_ID, body) else {
                return;
            };
            let v: Value = serde_json::from_slice(body).expect("accepted, so JSON");
            assert_eq!(v["object"], "user", "not a user object, accepted: {v}");
            assert_eq!(user.id, USER_ID, "another user than asked for: {v}");
            if let Some(email) = user.primary_email() {
                assert!(
                    user.email_addresses
                        .iter()
                        .any(|e| e.email_address == email)
                );
            }
            return;
        }
    };
    let ours = __fuzz::clerk_verify_answer(kind, body, ISSUER, RESOURCE, allow_missing, NOW);
    let expected = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| schema_accepts(kind, &v, allow_missing));
    match (ours, expected) {
        (Err(_), None) => {}
        (Ok(info), None) => panic!(
            "identity from an answer Clerk's schema refuses ({kind:?}, allow_missing_audience \
             {allow_missing}): {:?} -> {info:?}",
            String::from_utf8_lossy(body)
        ),
        (Err(e), Some(want)) => panic!(
            "valid {kind:?} answer refused ({e}): {:?} describes {want:?}",
            String::from_utf8_lossy(body)
        ),
        (Ok(info), Some(want)) => {
            let body = String::from_utf8_lossy(body);
            assert_eq!(info.kind(), kind, "{body:?}");
            assert_eq!(info.subject(), want.subject, "{body:?}");
            assert_eq!(info.user_id(), want.user_id, "{body:?}");
            assert_eq!(
                info.organization_id(),
                want.organization_id.as_deref(),
                "{body:?}"
            );
            assert_eq!(info.machine_id(), want.machine_id.as_deref(), "{body:?}");
            assert_eq!(info.scopes(), want.scopes, "{body:?}");
            assert_eq!(info.client_id(), want.client_id.as_deref(), "{body:?}");
            assert_eq!(info.audience(), want.audience, "{body:?}");
            assert_eq!(info.expires_at_unix(), want.expires_at, "{body:?}");
            assert_eq!(info.issuer(), Some(ISSUER), "{body:?}");
        }
    }
});
