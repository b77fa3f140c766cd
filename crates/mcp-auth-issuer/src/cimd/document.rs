//! Validation of a fetched client metadata document (draft-ietf-oauth-client-id-metadata-document-00
//! §4, as MCP 2025-11-25 `basic/authorization.mdx` lines 221-238 and 2026-07-28
//! `basic/authorization/client-registration.mdx` lines 32-49 require): the document's
//! `client_id` equals the URL it was fetched from, exactly; it names `client_name` and
//! `redirect_uris`; it holds no shared secret (a public document cannot keep one). The rest
//! is RFC 7591 metadata, checked with the same rules as a dynamic registration.

use serde_json::{Value, json};
use url::Url;

use crate::clients::{AuthMethod, Client, MetadataDocument, validate_registration};

/// Whether `client_id` is meant as a metadata-document URL (rather than an id this issuer
/// generated, which never contains `:`).
pub(crate) fn is_url_client_id(client_id: &str) -> bool {
    client_id.contains("://")
}

/// Check the `client_id` URL itself, before anything is fetched: `https`, a path other than
/// `/`, no fragment, no user information, no dot segments (draft §3).
pub(crate) fn parse_client_id_url(client_id: &str) -> Result<Url, String> {
    let url = Url::parse(client_id)
        .map_err(|e| format!("the client_id `{client_id}` is not a valid URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "the client_id `{client_id}` must be an https URL to be used as a client metadata document"
        ));
    }
    // `Url` resolves dot segments; a client_id that had any is not what it parses to.
    if url.as_str() != client_id {
        return Err(format!(
            "the client_id `{client_id}` is not in normalised form (dot segments, case or escaping differ from `{url}`)"
        ));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(format!(
            "the client_id `{client_id}` must have a path (a metadata document URL, not a site root)"
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "the client_id `{client_id}` must not contain a fragment or user information"
        ));
    }
    Ok(url)
}

/// The client a valid document describes; the error says what is wrong with it.
pub(crate) fn client_from_document(url: &Url, body: &[u8]) -> Result<Client, String> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the client metadata document is not valid JSON: {e}"))?;
    let Some(object) = doc.as_object() else {
        return Err("the client metadata document is not a JSON object".into());
    };
    match object.get("client_id") {
        Some(Value::String(id)) if id == url.as_str() => {}
        Some(Value::String(id)) => {
            return Err(format!(
                "the client metadata document's client_id `{id}` differs from the URL it was fetched from, `{url}`"
            ));
        }
        _ => return Err("the client metadata document has no client_id string".into()),
    }
    // Draft §4.1: a document MUST NOT carry a secret, nor a client_secret_* method.
    for forbidden in ["client_secret", "client_secret_expires_at"] {
        if object.contains_key(forbidden) {
            return Err(format!(
                "the client metadata document must not contain `{forbidden}`"
            ));
        }
    }
    match object.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(other) => {
            return Err(format!(
                "token_endpoint_auth_method {other} is not supported for a client metadata document: use `none` (public client with PKCE)"
            ));
        }
    }
    if !matches!(object.get("client_name"), Some(Value::String(n)) if !n.trim().is_empty()) {
        return Err("the client metadata document has no client_name".into());
    }
    if !matches!(object.get("redirect_uris"), Some(Value::Array(uris)) if !uris.is_empty()) {
        return Err("the client metadata document has no redirect_uris".into());
    }
    let mut as_registration = object.clone();
    as_registration.insert("token_endpoint_auth_method".into(), json!("none"));
    // `scope` in a document is what the client may ask for; the request's `scope` is checked
    // against this issuer's scopes anyway.
    as_registration.remove("scope");
    let reg = validate_registration(&Value::Object(as_registration), &[])
        .map_err(|e| format!("the client metadata document is invalid: {}", e.description))?;
    let client_uri = reg
        .metadata
        .get("client_uri")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Client {
        client_id: url.as_str().to_owned(),
        secret_hash: None,
        auth_method: AuthMethod::None,
        redirect_uris: reg.redirect_uris,
        grant_types: reg.grant_types,
        client_name: reg.client_name,
        logo_uri: reg.logo_uri,
        document: Some(MetadataDocument {
            host: url.host_str().unwrap_or_default().to_owned(),
            client_uri,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://app.example/oauth/client.json";

    fn check(doc: Value) -> Result<Client, String> {
        client_from_document(
            &Url::parse(URL).unwrap(),
            &serde_json::to_vec(&doc).unwrap(),
        )
    }

    #[test]
    fn a_valid_document_is_a_public_client() {
        let client = check(json!({
            "client_id": URL,
            "client_name": "Example",
            "client_uri": "https://app.example",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .unwrap();
        assert_eq!(client.client_id, URL);
        assert_eq!(client.auth_method, AuthMethod::None);
        assert!(client.allows_grant("refresh_token"));
        let doc = client.document.unwrap();
        assert_eq!(doc.host, "app.example");
        assert_eq!(doc.client_uri.as_deref(), Some("https://app.example"));
    }

    #[test]
    fn documents_that_break_the_rules_are_refused() {
        let base = json!({
            "client_id": URL,
            "client_name": "Example",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
        });
        let with = |key: &str, value: Value| {
            let mut doc = base.clone();
            doc[key] = value;
            check(doc).unwrap_err()
        };
        assert!(with("client_id", json!("https://evil.example/c.json")).contains("differs"));
        assert!(with("client_secret", json!("s")).contains("client_secret"));
        assert!(
            with("token_endpoint_auth_method", json!("client_secret_basic"))
                .contains("token_endpoint_auth_method")
        );
        assert!(with("redirect_uris", json!([])).contains("redirect_uris"));
        assert!(with("redirect_uris", json!(["http://evil.example/cb"])).contains("http"));
        assert!(with("client_name", json!("")).contains("client_name"));
        assert!(check(json!([1, 2])).unwrap_err().contains("object"));
    }

    #[test]
    fn client_id_urls() {
        assert!(parse_client_id_url(URL).is_ok());
        for bad in [
            "http://app.example/client.json",
            "https://app.example/",
            "https://app.example/a/../client.json",
            "https://user@app.example/client.json",
            "https://app.example/client.json#x",
            "https://APP.example/client.json",
        ] {
            assert!(parse_client_id_url(bad).is_err(), "{bad}");
        }
        assert!(is_url_client_id(URL));
        assert!(!is_url_client_id("abcDEF123"));
    }
}
