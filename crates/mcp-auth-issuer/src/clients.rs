//! OAuth clients: RFC 7591 registration metadata, its validation, and redirect URI matching
//! (exact, except that loopback redirect URIs may use any port, RFC 8252 §7.3).

use serde_json::{Map, Value, json};
use url::{Host, Url};

use crate::oauth_error::OAuthError;

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// Public client (PKCE only).
    None,
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl AuthMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    /// The inverse of [`as_str`](Self::as_str) (stored clients).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    pub(crate) fn is_confidential(self) -> bool {
        self != Self::None
    }
}

/// A registered client. The secret is kept as a hash only.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) secret_hash: Option<String>,
    pub(crate) auth_method: AuthMethod,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) grant_types: Vec<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) logo_uri: Option<String>,
    /// Set for a client whose `client_id` is the URL of its metadata document (CIMD): never
    /// stored in `clients`, described by the document.
    pub(crate) document: Option<MetadataDocument>,
}

/// What the consent page shows of a metadata-document client besides its name and logo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MetadataDocument {
    /// The host the document was served from: who vouches for this client.
    pub(crate) host: String,
    /// The client's home page, from the document.
    pub(crate) client_uri: Option<String>,
}

impl Client {
    pub(crate) fn display_name(&self) -> &str {
        self.client_name.as_deref().unwrap_or(&self.client_id)
    }

    pub(crate) fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// The registered redirect URI that `presented` matches, if any.
    pub(crate) fn match_redirect_uri(&self, presented: &str) -> Option<&str> {
        self.redirect_uris
            .iter()
            .find(|registered| redirect_uri_matches(registered, presented))
            .map(String::as_str)
    }
}

/// Validated registration request (everything except the generated credentials).
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) auth_method: AuthMethod,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) grant_types: Vec<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) logo_uri: Option<String>,
    pub(crate) metadata: Map<String, Value>,
}

const GRANTS: [&str; 2] = ["authorization_code", "refresh_token"];

/// Validate RFC 7591 client metadata. Unknown fields are kept and echoed, as §3.2.1 allows.
pub(crate) fn validate_registration(
    body: &Value,
    scopes_supported: &[String],
) -> Result<Registration, OAuthError> {
    let Some(object) = body.as_object() else {
        return Err(OAuthError::invalid_client_metadata(
            "the registration body must be a JSON object",
        ));
    };
    let mut metadata = object.clone();
    // Credentials are ours to issue; never echo values a client tried to choose.
    for key in [
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
    ] {
        metadata.remove(key);
    }

    let auth_method = match object.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => AuthMethod::ClientSecretBasic,
        Some(Value::String(s)) => match s.as_str() {
            "none" => AuthMethod::None,
            "client_secret_basic" => AuthMethod::ClientSecretBasic,
            "client_secret_post" => AuthMethod::ClientSecretPost,
            other => {
                return Err(OAuthError::invalid_client_metadata(format!(
                    "token_endpoint_auth_method `{other}` is not supported: use none, \
                     client_secret_basic or client_secret_post"
                )));
            }
        },
        Some(_) => {
            return Err(OAuthError::invalid_client_metadata(
                "token_endpoint_auth_method must be a string",
            ));
        }
    };
    metadata.insert(
        "token_endpoint_auth_method".into(),
        json!(auth_method.as_str()),
    );

    let grant_types = string_array(object, "grant_types")?
        .unwrap_or_else(|| vec!["authorization_code".to_owned()]);
    if grant_types.is_empty() {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must not be empty",
        ));
    }
    if let Some(bad) = grant_types.iter().find(|g| !GRANTS.contains(&g.as_str())) {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant type `{bad}` is not supported: use authorization_code and refresh_token"
        )));
    }
    metadata.insert("grant_types".into(), json!(grant_types));

    let response_types =
        string_array(object, "response_types")?.unwrap_or_else(|| vec!["code".to_owned()]);
    if let Some(bad) = response_types.iter().find(|r| *r != "code") {
        return Err(OAuthError::invalid_client_metadata(format!(
            "response type `{bad}` is not supported: use code"
        )));
    }
    if grant_types.iter().any(|g| g == "authorization_code") && response_types.is_empty() {
        return Err(OAuthError::invalid_client_metadata(
            "the authorization_code grant needs the `code` response type",
        ));
    }
    metadata.insert("response_types".into(), json!(response_types));

    let redirect_uris = match string_array(object, "redirect_uris") {
        Ok(Some(uris)) => uris,
        Ok(None) => Vec::new(),
        Err(_) => {
            return Err(OAuthError::invalid_redirect_uri(
                "redirect_uris must be an array of strings",
            ));
        }
    };
    if redirect_uris.is_empty() && grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::invalid_redirect_uri(
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    for uri in &redirect_uris {
        validate_redirect_uri(uri).map_err(OAuthError::invalid_redirect_uri)?;
    }

    let client_name = optional_string(object, "client_name")?;
    if client_name
        .as_deref()
        .is_some_and(|n| n.chars().count() > 200)
    {
        return Err(OAuthError::invalid_client_metadata(
            "client_name is longer than 200 characters",
        ));
    }
    let logo_uri = optional_string(object, "logo_uri")?;
    for field in ["logo_uri", "client_uri", "policy_uri", "tos_uri"] {
        if let Some(uri) = optional_string(object, field)? {
            validate_web_uri(&uri)
                .map_err(|e| OAuthError::invalid_client_metadata(format!("{field}: {e}")))?;
        }
    }
    if let Some(scope) = optional_string(object, "scope")?
        && let Some(bad) = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .find(|s| !scopes_supported.iter().any(|supported| supported == s))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "scope `{bad}` is not supported by this issuer"
        )));
    }

    Ok(Registration {
        auth_method,
        redirect_uris,
        grant_types,
        client_name,
        logo_uri,
        metadata,
    })
}

fn string_array(object: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                OAuthError::invalid_client_metadata(format!("{key} must be an array of strings"))
            }),
        Some(_) => Err(OAuthError::invalid_client_metadata(format!(
            "{key} must be an array of strings"
        ))),
    }
}

fn optional_string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, OAuthError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(OAuthError::invalid_client_metadata(format!(
            "{key} must be a string"
        ))),
    }
}

/// Whether `uri` is an `http` or `https` URL on a loopback host (a redirect anyone on the
/// user's machine could listen on).
pub(crate) fn is_loopback_uri(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|u| is_loopback_host(&u))
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Schemes that must never receive an authorization response.
const FORBIDDEN_SCHEMES: [&str; 6] = ["javascript", "data", "file", "blob", "about", "vbscript"];

/// `https` anywhere, `http` on loopback only, or a private-use scheme (`cursor://…`,
/// `com.example.app:/cb`); absolute, no fragment.
pub(crate) fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let url =
        Url::parse(uri).map_err(|e| format!("redirect URI `{uri}` is not an absolute URI: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("redirect URI `{uri}` must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(format!(
            "redirect URI `{uri}` uses http on a non-loopback host: use https, or http://localhost, \
             http://127.0.0.1 or http://[::1]"
        )),
        s if FORBIDDEN_SCHEMES.contains(&s) => Err(format!(
            "redirect URI `{uri}` uses the forbidden scheme `{s}`"
        )),
        _ => Ok(()),
    }
}

/// `logo_uri` and friends: https, or http on loopback (a local development client).
fn validate_web_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        _ => Err(format!(
            "`{uri}` must be an https URL (or http on loopback)"
        )),
    }
}

/// Exact string match, except a loopback `http` redirect URI whose port differs (RFC 8252 §7.3).
pub(crate) fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback_host(&r)
        && r.host() == p.host()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && r.username() == p.username()
        && r.password() == p.password()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> Vec<String> {
        vec!["openid".into(), "profile".into()]
    }

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://app.example/cb",
            "http://localhost:3000/callback",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback",
            "com.example.app:/oauth2redirect",
        ] {
            validate_redirect_uri(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://evil.example/cb",
            "javascript:alert(1)",
            "/relative",
            "https://app.example/cb#frag",
            "data:text/html,hi",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loopback_port_may_vary_but_nothing_else() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1:1000/cb",
            "http://127.0.0.1:2000/cb"
        ));
        assert!(redirect_uri_matches(
            "http://localhost/cb",
            "http://localhost:49152/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1:1000/cb",
            "http://127.0.0.1:1000/other"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1:1000/cb",
            "http://localhost:1000/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
    }

    #[test]
    fn registration_defaults_and_errors() {
        let reg = validate_registration(
            &json!({"redirect_uris": ["http://localhost:1/cb"], "client_name": "X"}),
            &scopes(),
        )
        .unwrap();
        assert_eq!(reg.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(reg.grant_types, ["authorization_code"]);

        let err = |body: Value| validate_registration(&body, &scopes()).unwrap_err().code;
        assert_eq!(
            err(json!({"redirect_uris": ["http://evil/cb"]})),
            "invalid_redirect_uri"
        );
        assert_eq!(err(json!({})), "invalid_redirect_uri");
        assert_eq!(
            err(
                json!({"redirect_uris": ["http://localhost/cb"], "token_endpoint_auth_method": "private_key_jwt"})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(json!({"redirect_uris": ["http://localhost/cb"], "grant_types": ["implicit"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(json!({"redirect_uris": ["http://localhost/cb"], "logo_uri": "ftp://x/logo.png"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(json!({"redirect_uris": ["http://localhost/cb"], "scope": "openid admin"})),
            "invalid_client_metadata"
        );
        assert_eq!(
            err(json!(["not", "an", "object"])),
            "invalid_client_metadata"
        );
    }
}
