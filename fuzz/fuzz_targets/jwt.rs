//! The JWT verifier (`JwtVerifier`) with a fixed key set (`fuzz/keys`, test-only keys):
//!
//! - never panics, whatever the string;
//! - never accepts a token whose bytes differ from one the target signed: mutations of valid
//!   tokens (a byte, a segment, a re-encoded header or claim set that keeps the old signature,
//!   another base64 spelling) are always refused;
//! - a token the target signed over arbitrary header and claims is accepted only when its
//!   claims satisfy the policy (issuer, audience, expiry, not-before, issued-at, subject).
#![no_main]

use std::{
    sync::LazyLock,
    time::{SystemTime, UNIX_EPOCH},
};

use arbitrary::{Arbitrary, Unstructured};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use mcp_auth::{Jwks, JwtVerifier, TokenKind};
use serde_json::{Map, Value, json};

const ISSUER: &str = "https://issuer.fuzz.invalid";
const RESOURCE: &str = "https://mcp.fuzz.invalid/mcp";
/// 2100-01-01: the signed tokens stay valid for as long as anyone fuzzes them.
const FAR_FUTURE: u64 = 4_102_444_800;
const LEEWAY: u64 = 5;

struct Fixture {
    verifier: JwtVerifier,
    ed: EncodingKey,
    /// Tokens the target signed with valid claims, in a fixed order (inputs pick by index).
    valid: Vec<String>,
}

fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let jwks = Jwks::from_json(include_bytes!("../keys/jwks.json")).unwrap();
    let verifier = JwtVerifier::builder(ISSUER, jwks)
        .resource(RESOURCE)
        .accept_kinds([
            TokenKind::OAuthAccessToken,
            TokenKind::SessionToken,
            TokenKind::MachineToken,
        ])
        .build()
        .unwrap();
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../keys/rsa.pem")).unwrap();
    let ed = EncodingKey::from_ed_pem(include_bytes!("../keys/ed25519.pem")).unwrap();
    let base = json!({"iss": ISSUER, "sub": "user_fuzz", "aud": RESOURCE, "exp": FAR_FUTURE,
        "iat": 1_700_000_000, "nbf": 1_700_000_000, "client_id": "client_fuzz", "jti": "oat_1"});
    let with = |extra: Value| {
        let mut claims = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let valid = vec![
        sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": "fuzz-rsa"}),
            &with(json!({"scope": "openid admin:read"})),
            &rsa,
            Algorithm::RS256,
        ),
        sign(
            &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "fuzz-ed25519"}),
            &with(json!({"aud": ["https://other.invalid", RESOURCE], "scp": ["a", "b"]})),
            &ed,
            Algorithm::EdDSA,
        ),
        sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": "fuzz-rsa"}),
            &with(json!({"sid": "sess_1", "azp": "https://app.invalid", "v": 2})),
            &rsa,
            Algorithm::RS256,
        ),
        sign(
            &json!({"alg": "EdDSA", "kid": "fuzz-ed25519", "cat": "cl_B7d4PD333AAA"}),
            &with(json!({"sub": "mch_1", "scopes": "mch_2"})),
            &ed,
            Algorithm::EdDSA,
        ),
    ];
    Fixture {
        verifier,
        ed,
        valid,
    }
});

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    });
    &RT
}

fn accepts(token: &str) -> bool {
    runtime()
        .block_on(FIXTURE.verifier.verify_jwt(token))
        .is_ok()
}

/// Names that mean something in a JOSE header or a claim set.
const KNOWN_KEYS: &[&str] = &[
    "alg",
    "typ",
    "kid",
    "crit",
    "jku",
    "jwk",
    "x5u",
    "x5c",
    "cty",
    "b64",
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "scp",
    "client_id",
    "azp",
    "sid",
    "cat",
];
const KNOWN_VALUES: &[&str] = &[
    ISSUER,
    RESOURCE,
    "RS256",
    "EdDSA",
    "HS256",
    "none",
    "ES256",
    "PS256",
    "at+jwt",
    "application/at+jwt",
    "JWT",
    "fuzz-rsa",
    "fuzz-ed25519",
    "mch_1",
    "user_fuzz",
    "",
];

#[derive(Arbitrary, Debug, Clone)]
enum Key {
    Known(u8),
    Any(String),
}

impl Key {
    fn name(&self) -> String {
        match self {
            Key::Known(i) => KNOWN_KEYS[*i as usize % KNOWN_KEYS.len()].to_owned(),
            Key::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Seconds from now (expiry, not-before, issued-at near the edges).
    FromNow(i32),
    Known(u8),
    Str(String),
    Array(Vec<Val>),
    Object(Vec<(Key, Val)>),
}

impl Val {
    fn to_json(&self, now: u64, depth: u32) -> Value {
        if depth > 8 {
            return Value::Null;
        }
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => json!(b),
            Val::Int(i) => json!(i),
            Val::UInt(u) => json!(u),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::FromNow(d) => json!(now as i64 + i64::from(*d)),
            Val::Known(i) => json!(KNOWN_VALUES[*i as usize % KNOWN_VALUES.len()]),
            Val::Str(s) => json!(s),
            Val::Array(items) => items.iter().map(|v| v.to_json(now, depth + 1)).collect(),
            Val::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.name(), v.to_json(now, depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Flip {
        at: u16,
        xor: u8,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Delete {
        at: u16,
        len: u8,
    },
    Truncate {
        at: u16,
    },
    ReplaceSegment {
        segment: u8,
        with: String,
    },
    SwapSegments {
        a: u8,
        b: u8,
    },
    DuplicateSegment {
        segment: u8,
    },
    /// Decode the header (0) or the claims (1), set one member, encode again; the signature
    /// stays the old one.
    EditJson {
        segment: u8,
        key: Key,
        value: Val,
    },
    /// Re-encode a segment with padding, the standard alphabet, or surrounding whitespace.
    Respell {
        segment: u8,
        how: u8,
    },
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn apply(token: &mut Vec<u8>, op: &Op, now: u64) {
    let at = |at: u16, len: usize| usize::from(at) % (len + 1);
    match op {
        Op::Flip { at: a, xor } => {
            if !token.is_empty() {
                let i = usize::from(*a) % token.len();
                token[i] ^= xor;
            }
        }
        Op::Insert { at: a, byte } => {
            let i = at(*a, token.len());
            token.insert(i, *byte);
        }
        Op::Delete { at: a, len } => {
            let i = at(*a, token.len());
            let end = (i + usize::from(*len).max(1)).min(token.len());
            token.drain(i..end);
        }
        Op::Truncate { at: a } => {
            let i = at(*a, token.len());
            token.truncate(i);
        }
        Op::ReplaceSegment { .. }
        | Op::SwapSegments { .. }
        | Op::DuplicateSegment { .. }
        | Op::EditJson { .. }
        | Op::Respell { .. } => {
            let text = String::from_utf8_lossy(token).into_owned();
            let mut segs = segments(&text);
            let n = segs.len();
            let pick = |s: u8| usize::from(s) % n;
            match op {
                Op::ReplaceSegment { segment, with } => segs[pick(*segment)] = with.clone(),
                Op::SwapSegments { a, b } => segs.swap(pick(*a), pick(*b)),
                Op::DuplicateSegment { segment } => {
                    let s = segs[pick(*segment)].clone();
                    segs.insert(pick(*segment), s);
                }
                Op::EditJson {
                    segment,
                    key,
                    value,
                } => {
                    let i = usize::from(*segment % 2).min(n - 1);
                    let decoded = URL_SAFE_NO_PAD
                        .decode(&segs[i])
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok());
                    if let Some(mut obj) = decoded {
                        obj.insert(key.name(), value.to_json(now, 0));
                        segs[i] = URL_SAFE_NO_PAD.encode(Value::Object(obj).to_string());
                    }
                }
                Op::Respell { segment, how } => {
                    let i = pick(*segment);
                    if let Ok(bytes) = URL_SAFE_NO_PAD.decode(&segs[i]) {
                        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
                        segs[i] = match how % 4 {
                            0 => URL_SAFE.encode(&bytes),
                            1 => STANDARD.encode(&bytes),
                            2 => format!(" {} ", segs[i]),
                            _ => format!("{}\n", segs[i]),
                        };
                    }
                }
                _ => unreachable!(),
            }
            *token = segs.join(".").into_bytes();
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// Any string.
    Raw(String),
    /// A valid token, mutated.
    Mutated { base: u8, ops: Vec<Op> },
    /// A token the target signs over arbitrary header members and claims (Ed25519: signing
    /// with RSA on every input would slow the target down a hundredfold), then optionally
    /// mutates.
    Signed {
        header: Vec<(Key, Val)>,
        claims: Vec<(Key, Val)>,
        ops: Vec<Op>,
    },
}

/// The policy an accepted token's claims must meet.
fn claims_meet_policy(claims: &Map<String, Value>, now: u64) -> Result<(), String> {
    if claims.get("iss") != Some(&json!(ISSUER)) {
        return Err("iss".into());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == RESOURCE,
        Some(Value::Array(a)) => a.iter().any(|v| v == RESOURCE),
        _ => false,
    };
    if !aud_ok {
        return Err("aud".into());
    }
    let num = |k: &str| claims.get(k).and_then(Value::as_f64);
    match num("exp") {
        Some(exp) if exp + LEEWAY as f64 > now as f64 => {}
        _ => return Err("exp".into()),
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_f64() {
            Some(nbf) if nbf <= (now + LEEWAY) as f64 => {}
            _ => return Err("nbf".into()),
        }
    }
    if let Some(iat) = claims.get("iat") {
        match iat.as_u64() {
            Some(iat) if iat <= now + LEEWAY => {}
            _ => return Err("iat".into()),
        }
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        _ => Err("sub".into()),
    }
}

/// Input bytes starting with 0xFF are a structured case (the rest, through `arbitrary`); any
/// other input is a token as it is, so seeds are plain tokens.
fn input(data: &[u8]) -> Option<Input> {
    match data.split_first() {
        Some((0xFF, rest)) => Input::arbitrary(&mut Unstructured::new(rest)).ok(),
        _ => Some(Input::Raw(String::from_utf8_lossy(data).into_owned())),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = input(data) else {
        return;
    };
    let fx = &*FIXTURE;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    match input {
        Input::Raw(token) => {
            if accepts(&token) {
                assert!(
                    fx.valid.contains(&token),
                    "accepted a token nobody signed: {token:?}"
                );
            }
        }
        Input::Mutated { base, ops } => {
            let original = &fx.valid[usize::from(base) % fx.valid.len()];
            let mut token = original.clone().into_bytes();
            for op in ops.iter().take(16) {
                apply(&mut token, op, now);
            }
            let token = String::from_utf8_lossy(&token);
            if accepts(&token) {
                assert!(
                    fx.valid.iter().any(|v| *v == *token),
                    "accepted a mutated token: {token:?} (from {original:?}, ops {ops:?})"
                );
            }
        }
        Input::Signed {
            header,
            claims,
            ops,
        } => {
            let mut h = Map::new();
            h.insert("alg".into(), json!("EdDSA"));
            h.insert("kid".into(), json!("fuzz-ed25519"));
            for (k, v) in &header {
                h.insert(k.name(), v.to_json(now, 0));
            }
            let mut c = Map::new();
            for (k, v) in &claims {
                c.insert(k.name(), v.to_json(now, 0));
            }
            let signed = sign(
                &Value::Object(h),
                &Value::Object(c.clone()),
                &fx.ed,
                Algorithm::EdDSA,
            );
            let mut token = signed.clone().into_bytes();
            for op in ops.iter().take(16) {
                apply(&mut token, op, now);
            }
            let token = String::from_utf8_lossy(&token);
            if accepts(&token) {
                assert!(
                    *token == signed || fx.valid.iter().any(|v| *v == *token),
                    "accepted a mutated token: {token:?} (signed {signed:?}, ops {ops:?})"
                );
                if *token == signed {
                    if let Err(claim) = claims_meet_policy(&c, now) {
                        panic!("accepted a signed token whose `{claim}` breaks the policy: {c:?}");
                    }
                }
            }
        }
    }
});
