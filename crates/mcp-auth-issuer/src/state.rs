//! The state every handler shares: configuration, keys, store, clock, metrics, rate limiter.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use aws_lc_rs::hmac;

use crate::clock::Clock;
use crate::config::IssuerConfig;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::rate_limit::FixedWindow;
use crate::store::Store;
use crate::users::User;

pub(crate) struct Shared {
    pub(crate) config: IssuerConfig,
    /// Issuer identifier and Frontend API URL, no trailing slash.
    pub(crate) base_url: String,
    pub(crate) secret_key: String,
    pub(crate) publishable_key: String,
    /// The local users (given, saved in the state by an earlier run, or the defaults).
    pub(crate) users: Vec<User>,
    /// The signing keys, loaded from the store at start; every change is written back
    /// ([`Shared::persist_keys`]).
    pub(crate) keys: RwLock<KeyRing>,
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) metrics: Metrics,
    pub(crate) rate_limit: FixedWindow,
    /// The SSRF-safe HTTP client for Client ID Metadata Documents.
    pub(crate) cimd: crate::cimd::Fetcher,
    /// Signs consent forms (CSRF protection); kept in the state, so a consent page rendered
    /// before a restart can still be submitted after it.
    pub(crate) csrf_key: hmac::Key,
    /// The key file the keys are mirrored to, if any.
    pub(crate) key_file: Option<std::path::PathBuf>,
    /// The secret key a run generated, remembered in the key file too (`None` if none was).
    pub(crate) remembered_secret: Option<String>,
}

impl Shared {
    /// Save the key ring in the state (one transaction) and mirror it to the key file.
    pub(crate) fn persist_keys(&self, ring: &KeyRing) -> Result<(), crate::Error> {
        let stored = ring.stored();
        self.store.write(|tx| tx.replace_signing_keys(&stored))?;
        if let Some(path) = &self.key_file {
            crate::keys::write_key_file(path, &stored, self.remembered_secret.as_deref())?;
        }
        Ok(())
    }

    pub(crate) fn keys(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn keys_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub(crate) fn is_supported_scope(&self, scope: &str) -> bool {
        self.config.scopes_supported.iter().any(|s| s == scope)
    }
}
