//! The Clerk wiring, exactly as a Clerk user writes it: two keys (plus, locally, the two URL
//! overrides pointing at the embedded issuer), the Clerk preset, and its Backend API client.

use mcp_auth::{
    FleetStore, McpServerBuilder,
    clerk::{BackendApi, BackendError, ClerkConfig},
};
use rmcp::{ErrorData, model::CallToolResult};

/// Clerk's keys and URL overrides, as the binaries read them from `CLERK_SECRET_KEY`,
/// `CLERK_PUBLISHABLE_KEY`, `CLERK_API_URL` and `CLERK_FRONTEND_API_URL`, plus this service's
/// own machine (`CLERK_MACHINE_ID`, `CLERK_MACHINE_SECRET_KEY`): when both are set, Clerk M2M
/// tokens granted to this machine are accepted too (other services calling the tools).
#[derive(Clone)]
pub struct ClerkKeys {
    /// `sk_test_…` / `sk_live_…`.
    pub secret_key: String,
    /// `pk_test_…` / `pk_live_…`.
    pub publishable_key: String,
    /// Backend API base URL override.
    pub api_url: Option<String>,
    /// Frontend API URL override.
    pub frontend_api_url: Option<String>,
    /// `(machine id, machine secret key)` of this service's Clerk machine.
    pub machine: Option<(String, String)>,
}

impl std::fmt::Debug for ClerkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkKeys")
            .field("secret_key", &"[redacted]")
            .field("publishable_key", &self.publishable_key)
            .field("api_url", &self.api_url)
            .field("frontend_api_url", &self.frontend_api_url)
            .field("machine", &self.machine.as_ref().map(|(id, _)| id))
            .finish()
    }
}

impl ClerkKeys {
    /// The keys from the environment (through `get`): `Ok(None)` unless both Clerk keys are
    /// set and non-empty. An error when only one of `CLERK_MACHINE_ID` and
    /// `CLERK_MACHINE_SECRET_KEY` is set: silently ignoring the other would leave the server
    /// accepting every M2M token of the instance while its operator believes only this
    /// machine's are.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let machine = match (
            non_empty("CLERK_MACHINE_ID"),
            non_empty("CLERK_MACHINE_SECRET_KEY"),
        ) {
            (Some(id), Some(secret_key)) => Some((id, secret_key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "CLERK_MACHINE_ID is set: set CLERK_MACHINE_SECRET_KEY (the same \
                            machine's secret key) too, or unset both"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "CLERK_MACHINE_SECRET_KEY is set: set CLERK_MACHINE_ID (mch_…, the \
                            same machine's id) too, or unset both"
                        .into(),
                );
            }
        };
        let (Some(secret_key), Some(publishable_key)) = (
            non_empty("CLERK_SECRET_KEY"),
            non_empty("CLERK_PUBLISHABLE_KEY"),
        ) else {
            return Ok(None);
        };
        Ok(Some(Self {
            secret_key,
            publishable_key,
            api_url: non_empty("CLERK_API_URL"),
            frontend_api_url: non_empty("CLERK_FRONTEND_API_URL"),
            machine,
        }))
    }
}

/// The scopes the metadata advertises. `private_metadata` is advertised but not asked for up
/// front (see [`CHALLENGE_SCOPES`]): the tool that needs it demonstrates step-up.
pub(crate) const SCOPES_SUPPORTED: [&str; 4] = ["openid", "profile", "email", "private_metadata"];
/// What clients are told to request on first authorization.
pub(crate) const CHALLENGE_SCOPES: [&str; 2] = ["profile", "email"];

/// A server builder protected by the Clerk preset, and the Backend API client for tools.
pub(crate) struct Protected {
    pub(crate) builder: McpServerBuilder,
    pub(crate) backend: BackendApi,
    pub(crate) authorization_server: String,
}

/// `fleet`: the store shared with the other replicas (`--redis-url`), for verification results,
/// Clerk's 429 backoff and per-user rate limits.
pub(crate) fn clerk(
    keys: &ClerkKeys,
    mcp_url: &str,
    fleet: Option<&FleetStore>,
) -> Result<Protected, String> {
    let config = ClerkConfig::from_env_values(
        Some(&keys.secret_key),
        Some(&keys.publishable_key),
        keys.api_url.as_deref(),
        keys.frontend_api_url.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    // The tools' Backend API calls share the fleet's 429 backoff too.
    let backend = match fleet {
        Some(fleet) => config.backend_api().with_fleet(fleet.clone()),
        None => config.backend_api(),
    };
    let authorization_server = config.frontend_api_url().to_owned();
    let mut verifier = config.verifier(mcp_url);
    if let Some(fleet) = fleet {
        verifier = verifier.shared_cache(fleet.clone());
    }
    if let Some((id, secret_key)) = &keys.machine {
        // Services whose M2M tokens are granted to this machine may call the tools; they have no
        // user id, so the user tools answer "no such Clerk user" for them.
        verifier = verifier
            .accept_machine_tokens()
            .receiving_machine(id.clone(), secret_key.clone());
    }
    let mut builder = verifier
        .mcp_server(SCOPES_SUPPORTED)
        .map_err(|e| e.to_string())?
        .challenge_scopes(CHALLENGE_SCOPES);
    if let Some(fleet) = fleet {
        builder = builder.shared_store(fleet.clone());
    }
    Ok(Protected {
        builder,
        backend,
        authorization_server,
    })
}

/// The caller's Clerk user as JSON, fetched with the secret key (never the client's token).
async fn user_value(backend: &BackendApi, user_id: &str) -> Result<serde_json::Value, ErrorData> {
    let user = backend.users().get(user_id).await.map_err(backend_error)?;
    serde_json::to_value(&user).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

/// `get-clerk-user-data`: the caller's Clerk user, as JSON.
pub(crate) async fn user_json(
    backend: &BackendApi,
    user_id: &str,
) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::structured(
        user_value(backend, user_id).await?,
    ))
}

/// `get-private-metadata`: the caller's private metadata (needs the `private_metadata` scope).
pub(crate) async fn private_metadata(
    backend: &BackendApi,
    user_id: &str,
) -> Result<CallToolResult, ErrorData> {
    let user = user_value(backend, user_id).await?;
    let private = user
        .get("private_metadata")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    Ok(CallToolResult::structured(
        serde_json::json!({ "user_id": user_id, "private_metadata": private }),
    ))
}

fn backend_error(e: BackendError) -> ErrorData {
    match e {
        BackendError::NotFound => ErrorData::invalid_params("no such Clerk user", None),
        other => ErrorData::internal_error(format!("Clerk Backend API: {other}"), None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::ClerkKeys;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// Real Clerk is used only when both keys are set and non-empty; otherwise the embedded
    /// issuer starts.
    #[test]
    fn clerk_keys_need_both_keys() {
        assert!(ClerkKeys::from_env(env(&[])).unwrap().is_none());
        assert!(
            ClerkKeys::from_env(env(&[("CLERK_SECRET_KEY", "sk_test_x")]))
                .unwrap()
                .is_none()
        );
        assert!(
            ClerkKeys::from_env(env(&[
                ("CLERK_SECRET_KEY", " "),
                ("CLERK_PUBLISHABLE_KEY", "pk_test_x")
            ]))
            .unwrap()
            .is_none()
        );
        let keys = ClerkKeys::from_env(env(&[
            ("CLERK_SECRET_KEY", "sk_test_x"),
            ("CLERK_PUBLISHABLE_KEY", "pk_test_x"),
            ("CLERK_API_URL", "http://127.0.0.1:1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(keys.api_url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(keys.frontend_api_url, None);
        assert_eq!(keys.machine, None, "no machine configured");
        assert!(
            !format!("{keys:?}").contains("sk_test_x"),
            "secret key redacted"
        );
    }

    /// A machine needs both its id and its secret key; one without the other is an error at
    /// start, never a silent fallback to "any M2M token of the instance".
    #[test]
    fn a_half_configured_machine_is_refused() {
        let base = [
            ("CLERK_SECRET_KEY", "sk_test_x"),
            ("CLERK_PUBLISHABLE_KEY", "pk_test_x"),
        ];
        for (name, value) in [
            ("CLERK_MACHINE_ID", "mch_x"),
            ("CLERK_MACHINE_SECRET_KEY", "ak_x"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            let error = ClerkKeys::from_env(env(&pairs)).unwrap_err();
            assert!(error.contains(name), "{error}");
            assert!(!error.contains(value), "{error}");
        }
        let mut pairs = base.to_vec();
        pairs.extend([
            ("CLERK_MACHINE_ID", "mch_x"),
            ("CLERK_MACHINE_SECRET_KEY", "ak_x"),
        ]);
        let keys = ClerkKeys::from_env(env(&pairs)).unwrap().unwrap();
        assert_eq!(keys.machine, Some(("mch_x".into(), "ak_x".into())));
    }
}
