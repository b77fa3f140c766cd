//! JWT access tokens verified against a JWKS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{Jwks, JwksKey, TokenVerifier, VerifyError, VerifyFuture};
use crate::{AuthInfo, TokenKind, auth_info::split_scopes};

/// The algorithms accepted by default: every asymmetric one jsonwebtoken supports. `none` and
/// the HMAC family are never accepted by a JWKS-backed verifier.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which `aud` values a token must carry.
///
/// MCP servers MUST check that a token was issued for them (RFC 8707, MCP authorization
/// specification): the default is [`Audience::Required`] with the server's canonical resource
/// URL. Some authorization servers (Clerk's OAuth access tokens among them) do not set `aud`;
/// [`Audience::RequiredIfPresent`] is the explicit opt-out for those.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Audience {
    /// `aud` must be present and contain at least one of these values.
    Required(Vec<String>),
    /// A present `aud` must contain one of these values; a token without `aud` is accepted.
    /// Weaker: a token minted for another resource by the same issuer, without `aud`, is
    /// accepted here too.
    RequiredIfPresent(Vec<String>),
}

/// Verifies JWT access tokens: signature against a [`Jwks`], then issuer, audience, time claims,
/// `typ`, token kind, authorized party and scopes.
///
/// ```no_run
/// use mcp_auth::{Jwks, JwtVerifier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jwks = Jwks::from_url("https://issuer.example/.well-known/jwks.json".parse()?);
/// let verifier = JwtVerifier::builder("https://issuer.example", jwks)
///     .resource("https://mcp.example/mcp") // the token's `aud` must name this server
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct JwtVerifier {
    jwks: Jwks,
    issuers: Vec<String>,
    audience: Audience,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    typ: Option<Vec<String>>,
    accepted_kinds: Vec<TokenKind>,
    authorized_parties: Option<Vec<String>>,
    required_scopes: Vec<String>,
}

/// Configures a [`JwtVerifier`]; see each setter for its default.
#[derive(Debug)]
#[must_use]
pub struct JwtVerifierBuilder {
    jwks: Jwks,
    issuers: Vec<String>,
    audience: Option<Audience>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    typ: Option<Vec<String>>,
    accepted_kinds: Vec<TokenKind>,
    authorized_parties: Option<Vec<String>>,
    required_scopes: Vec<String>,
}

/// A [`JwtVerifier`] configuration that cannot be safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// No audience policy: call `resource`, `audiences` or `audience`.
    #[error("no audience policy: call .resource(url) (or .audience(...) to opt out explicitly)")]
    NoAudience,
    /// An HMAC algorithm was allowed, which a public key set can never verify safely.
    #[error("HMAC algorithms cannot be used with a public key set")]
    SymmetricAlgorithm,
    /// The algorithm list is empty.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithms,
    /// No issuer.
    #[error("at least one issuer is required")]
    NoIssuer,
    /// No accepted token kind.
    #[error("at least one token kind must be accepted")]
    NoTokenKinds,
}

impl JwtVerifier {
    /// Starts a verifier for tokens whose `iss` is exactly `issuer`, signed by keys in `jwks`.
    pub fn builder(issuer: impl Into<String>, jwks: Jwks) -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            jwks,
            issuers: vec![issuer.into()],
            audience: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(5),
            typ: None,
            accepted_kinds: vec![TokenKind::OAuthAccessToken],
            authorized_parties: None,
            required_scopes: Vec::new(),
        }
    }

    /// The key set this verifier uses.
    #[must_use]
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Verifies `token` (no caching; wrap in [`CachedVerifier`](crate::CachedVerifier) for that).
    pub async fn verify_jwt(&self, token: &str) -> Result<AuthInfo, VerifyError> {
        let header = checked_header(token, &self.algorithms)?;
        if let Some(expected) = &self.typ {
            let typ = header.typ.as_deref().unwrap_or("");
            let typ = strip_application(typ);
            if !expected
                .iter()
                .any(|t| strip_application(t).eq_ignore_ascii_case(typ))
            {
                return Err(VerifyError::invalid_token("unexpected token type"));
            }
        }
        let key = key_for(&self.jwks, &header, token).await?;

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&self.issuers);
        let mut required = vec!["exp", "iss"];
        match &self.audience {
            Audience::Required(auds) => {
                required.push("aud");
                validation.set_audience(auds);
            }
            Audience::RequiredIfPresent(auds) => validation.set_audience(auds),
        }
        validation.set_required_spec_claims(&required);

        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| VerifyError::invalid_token(describe(e.kind())))?;
        let claims = data.claims;
        self.identity(header.typ.as_deref(), claims)
    }

    fn identity(
        &self,
        typ: Option<&str>,
        claims: Map<String, Value>,
    ) -> Result<AuthInfo, VerifyError> {
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
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(VerifyError::invalid_token("missing subject")),
        };
        let kind = classify(typ, &claims);
        if !self.accepted_kinds.contains(&kind) {
            return Err(VerifyError::invalid_token(match kind {
                TokenKind::SessionToken => "session tokens are not accepted here",
                _ => "token kind not accepted here",
            }));
        }
        let azp = claims.get("azp").and_then(Value::as_str);
        if let (Some(parties), Some(azp)) = (&self.authorized_parties, azp)
            && !parties.iter().any(|p| p == azp)
        {
            return Err(VerifyError::invalid_token("unauthorized party"));
        }
        let client_id = claims
            .get("client_id")
            .and_then(Value::as_str)
            .or(azp)
            .map(str::to_owned);
        let scopes = scopes_from_claims(&claims);
        if self.required_scopes.iter().any(|s| !scopes.contains(s)) {
            return Err(VerifyError::InsufficientScope(self.required_scopes.clone()));
        }
        let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        let audience: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let exp = claims.get("exp").and_then(Value::as_u64);

        let mut builder = AuthInfo::builder(sub, kind)
            .scopes(scopes)
            .audience(audience);
        if let Some(c) = client_id {
            builder = builder.client_id(c);
        }
        if let Some(i) = issuer {
            builder = builder.issuer(i);
        }
        if let Some(exp) = exp {
            builder = builder.expires_at_unix(exp);
        }
        Ok(builder.claims(claims).build())
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.verify_jwt(token))
    }

    /// Ready once the signing keys are loaded (fetching them if they are not).
    fn ready(&self) -> super::ReadyFuture<'_> {
        Box::pin(self.jwks.ready())
    }
}

impl JwtVerifierBuilder {
    /// Requires `aud` to contain `resource`, this server's canonical URL (RFC 8707). The
    /// strict default policy; see [`Audience`].
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.audience = Some(Audience::Required(vec![resource.into()]));
        self
    }

    /// Sets the audience policy explicitly (see [`Audience`] for the opt-out).
    pub fn audience(mut self, audience: Audience) -> Self {
        self.audience = Some(audience);
        self
    }

    /// Accepts another issuer too (exact string match, as RFC 8414 requires).
    pub fn also_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Replaces the algorithm allow-list. Default: [`DEFAULT_ALGORITHMS`]. HMAC algorithms are
    /// refused by [`build`](Self::build).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat`. Default: 5 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the header `typ` to be one of these (compared case-insensitively, with or
    /// without `application/`), e.g. `["at+jwt"]` (RFC 9068). Default: not checked.
    pub fn require_typ<I, S>(mut self, typ: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.typ = Some(typ.into_iter().map(Into::into).collect());
        self
    }

    /// Token kinds accepted. Default: OAuth access tokens only. A JWT is a session token when
    /// it has Clerk's session shape (`sid` claim, no `client_id`, no `at+jwt` type).
    pub fn accept_kinds(mut self, kinds: impl IntoIterator<Item = TokenKind>) -> Self {
        self.accepted_kinds = kinds.into_iter().collect();
        self
    }

    /// When a token carries `azp`, it must be one of these (Clerk's `authorizedParties`).
    /// Default: not checked.
    pub fn authorized_parties<I, S>(mut self, parties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorized_parties = Some(parties.into_iter().map(Into::into).collect());
        self
    }

    /// Scopes every token must carry; a token without them gets 403 `insufficient_scope`.
    /// Default: none.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<JwtVerifier, JwtConfigError> {
        let audience = self.audience.ok_or(JwtConfigError::NoAudience)?;
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithms);
        }
        if self
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(JwtConfigError::SymmetricAlgorithm);
        }
        if self.issuers.iter().all(String::is_empty) {
            return Err(JwtConfigError::NoIssuer);
        }
        if self.accepted_kinds.is_empty() {
            return Err(JwtConfigError::NoTokenKinds);
        }
        Ok(JwtVerifier {
            jwks: self.jwks,
            issuers: self.issuers,
            audience,
            algorithms: self.algorithms,
            leeway: self.leeway,
            typ: self.typ,
            accepted_kinds: self.accepted_kinds,
            authorized_parties: self.authorized_parties,
            required_scopes: self.required_scopes,
        })
    }
}

fn strip_application(typ: &str) -> &str {
    typ.get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..])
}

/// Decides what kind of JWT this is. `at+jwt` (RFC 9068) is always an access token; Clerk
/// session tokens carry `sid` and no `client_id`.
pub(crate) fn classify(typ: Option<&str>, claims: &Map<String, Value>) -> TokenKind {
    if typ.is_some_and(|t| strip_application(t).eq_ignore_ascii_case("at+jwt")) {
        return TokenKind::OAuthAccessToken;
    }
    if claims.contains_key("sid") && !claims.contains_key("client_id") {
        return TokenKind::SessionToken;
    }
    TokenKind::OAuthAccessToken
}

/// Scopes from `scope` (RFC 8693/9068: space-separated string) or `scp` (string or array).
pub(crate) fn scopes_from_claims(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => split_scopes(s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn describe(kind: &ErrorKind) -> std::borrow::Cow<'static, str> {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not yet valid".into(),
        ErrorKind::InvalidIssuer => "issuer mismatch".into(),
        ErrorKind::InvalidAudience => "audience mismatch".into(),
        ErrorKind::InvalidSignature => "invalid signature".into(),
        ErrorKind::InvalidAlgorithm => "signing algorithm not allowed".into(),
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "missing exp claim".into(),
            "iss" => "missing iss claim".into(),
            "aud" => "missing aud claim".into(),
            _ => "missing required claim".into(),
        },
        ErrorKind::InvalidClaimFormat(_) => "malformed claim".into(),
        _ => "malformed token".into(),
    }
}

/// The header of a JWS, refused unless it parses, names no critical extension and uses one of
/// `algorithms`. The checks every JWT path makes before it looks up a key.
pub(crate) fn checked_header(
    token: &str,
    algorithms: &[Algorithm],
) -> Result<jsonwebtoken::Header, VerifyError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| VerifyError::invalid_token("malformed token"))?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: we understand no extension, so a critical one means refuse.
        return Err(VerifyError::invalid_token("unsupported critical header"));
    }
    if !algorithms.contains(&header.alg) {
        return Err(VerifyError::invalid_token("signing algorithm not allowed"));
    }
    Ok(header)
}

/// The key `header` names in `jwks`, refused unless its type fits the header's algorithm.
/// `jku`, `x5u`, `jwk` and `x5c` in the header are ignored on purpose: keys come only from the
/// configured set.
pub(crate) async fn key_for(
    jwks: &Jwks,
    header: &jsonwebtoken::Header,
    token: &str,
) -> Result<std::sync::Arc<JwksKey>, VerifyError> {
    let key = jwks
        .key_for_token(header.kid.as_deref(), unverified_iat(token))
        .await?;
    if !key.algorithms.contains(&header.alg) {
        return Err(VerifyError::invalid_token(
            "signing algorithm does not fit the key",
        ));
    }
    Ok(key)
}

/// The token's `iat`, read without any check: only used to choose between two refusals of a
/// token whose key is unknown (see `Jwks::key_for_token`), never to accept anything.
fn unverified_iat(token: &str) -> Option<u64> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Iat {
        iat: Option<u64>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iat>(&bytes).ok()?.iat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let mut claims = Map::new();
        claims.insert("sid".into(), "sess_1".into());
        assert_eq!(classify(None, &claims), TokenKind::SessionToken);
        assert_eq!(
            classify(Some("at+jwt"), &claims),
            TokenKind::OAuthAccessToken
        );
        assert_eq!(
            classify(Some("application/AT+JWT"), &claims),
            TokenKind::OAuthAccessToken
        );
        claims.insert("client_id".into(), "c".into());
        assert_eq!(classify(Some("JWT"), &claims), TokenKind::OAuthAccessToken);
    }

    #[test]
    fn scopes_from_scope_or_scp() {
        let claims: Map<String, Value> = serde_json::from_str(r#"{"scope":"a b"}"#).unwrap();
        assert_eq!(scopes_from_claims(&claims), vec!["a", "b"]);
        let claims: Map<String, Value> = serde_json::from_str(r#"{"scp":["x","y"]}"#).unwrap();
        assert_eq!(scopes_from_claims(&claims), vec!["x", "y"]);
        let claims: Map<String, Value> = serde_json::from_str(r#"{"scp":"x y"}"#).unwrap();
        assert_eq!(scopes_from_claims(&claims), vec!["x", "y"]);
    }

    #[test]
    fn unsafe_configurations_do_not_build() {
        let jwks = Jwks::from_json(
            br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
        )
        .unwrap();
        let err = JwtVerifier::builder("https://iss", jwks.clone())
            .build()
            .unwrap_err();
        assert_eq!(err, JwtConfigError::NoAudience);
        let err = JwtVerifier::builder("https://iss", jwks.clone())
            .resource("https://r")
            .algorithms([Algorithm::HS256])
            .build()
            .unwrap_err();
        assert_eq!(err, JwtConfigError::SymmetricAlgorithm);
        let err = JwtVerifier::builder("", jwks)
            .resource("https://r")
            .build()
            .unwrap_err();
        assert_eq!(err, JwtConfigError::NoIssuer);
    }
}
